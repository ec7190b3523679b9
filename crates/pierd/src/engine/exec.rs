//! `docker exec`: exec instances and running them through the OCI runtime.
//!
//! An exec instance is a record in memory only ([`ExecStore`]); like Docker's, they do
//! not survive a restart of the daemon. Starting one runs
//! `<runtime> exec --process <process.json> [--console-socket S] <container>` as a
//! child of pierd, without `--detach`, so the runtime's exit status is the process's
//! exit code (runc's contract). Without a terminal the process inherits the runtime's
//! pipes; with one, the runtime sends the pty master over the console socket and pierd
//! relays raw bytes (and resizes it).
//!
//! The runtime reports its own failures (`executable file not found`) on the same
//! stderr as the process's; it writes the pid file only once the process is set up,
//! so stderr is held back until the pid file exists, and dropped if the runtime failed
//! before that (the error is read from its JSON log instead).

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{internal, process_user, random_id, strings, Engine, EngineError, DEFAULT_PATH};

/// How long output may still come after the process exited (a background child of
/// the process holding the pipes open must not hold the client forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// What `POST /containers/{id}/exec` asked for.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    pub container_id: String,
    pub entrypoint: String,
    pub arguments: Vec<String>,
    pub tty: bool,
    /// As given, or the container's `User`.
    pub user: String,
    pub privileged: bool,
    pub env: Vec<String>,
    pub working_dir: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    /// Height, width.
    pub console_size: Option<(u16, u16)>,
    /// Whether the client's stream is raw rather than multiplexed: the start
    /// request's `Tty` (Docker frames by the start, not by the create).
    pub raw_stream: bool,
}

#[derive(Debug)]
struct Record {
    config: ExecConfig,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: i32,
    pid_file: Option<PathBuf>,
    /// The pty master while a terminal exec runs.
    master: Option<Arc<OwnedFd>>,
}

/// The daemon's exec instances, by ID.
#[derive(Debug, Default)]
pub struct ExecStore {
    inner: Mutex<HashMap<String, Record>>,
}

impl ExecStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update<T>(&self, id: &str, f: impl FnOnce(&mut Record) -> T) -> Option<T> {
        self.lock().get_mut(id).map(f)
    }
}

fn no_such_exec(id: &str) -> EngineError {
    EngineError::NotFound(format!("No such exec instance: {id}"))
}

/// Docker's `ReplaceOrAppendEnvValues`: `K=V` replaces `K`, a bare `K` removes it.
fn merge_env(env: &mut Vec<String>, overrides: &[String]) {
    for o in overrides {
        let key = o.split('=').next().unwrap_or(o);
        let pos = env.iter().position(|e| e.split('=').next() == Some(key));
        match (pos, o.contains('=')) {
            (Some(i), true) => env[i] = o.clone(),
            (Some(i), false) => {
                env.remove(i);
            }
            (None, true) => env.push(o.clone()),
            (None, false) => {}
        }
    }
}

/// One frame of Docker's multiplexed stream (raw bytes with a terminal).
fn frame(stream: u8, data: &[u8], tty: bool) -> Vec<u8> {
    if tty {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The exit code Docker gives an exec that could not start.
fn failure_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else {
        126
    }
}

/// The runtime's error as dockerd words it (runc's prefix, containerd's suffix).
pub(super) fn docker_exec_error(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "container init: ",
        "exec failed: ",
        "unable to start container process: ",
    ] {
        while let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    format!("OCI runtime exec failed: exec failed: unable to start container process: {m}: unknown")
}

/// Sets the terminal size of a pty master.
fn set_size(master: &OwnedFd, height: u16, width: u16) -> Result<(), EngineError> {
    let size = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(master.as_fd(), size).map_err(|e| internal("resize", e))
}

impl Engine {
    /// `POST /containers/{id}/exec`: records an exec instance; returns its ID.
    pub fn exec_create(&self, input: &str, body: &Value) -> Result<String, EngineError> {
        let c = self.get(input)?;
        if c.state.paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if c.state.restarting {
            return Err(EngineError::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            )));
        }
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let cmd = strings(body["Cmd"].as_array().map_or(&[][..], |v| v));
        let Some((entrypoint, arguments)) = cmd.split_first() else {
            return Err(EngineError::InvalidParameter(
                "No exec command specified".into(),
            ));
        };
        let user = body["User"]
            .as_str()
            .filter(|u| !u.is_empty())
            .or_else(|| c.config["User"].as_str())
            .unwrap_or_default()
            .to_string();
        let console_size = body["ConsoleSize"].as_array().and_then(|a| {
            let h = u16::try_from(a.first()?.as_u64()?).ok()?;
            let w = u16::try_from(a.get(1)?.as_u64()?).ok()?;
            (h > 0 && w > 0).then_some((h, w))
        });
        if let Some(keys) = body["DetachKeys"].as_str().filter(|k| !k.is_empty()) {
            if crate::api::detach::parse_detach_keys(keys).is_err() {
                return Err(EngineError::InvalidParameter(format!(
                    "Invalid escape keys ({keys}) provided"
                )));
            }
        }
        let config = ExecConfig {
            container_id: c.id.clone(),
            entrypoint: entrypoint.clone(),
            arguments: arguments.to_vec(),
            tty: body["Tty"].as_bool() == Some(true),
            user,
            privileged: body["Privileged"].as_bool() == Some(true),
            env: strings(body["Env"].as_array().map_or(&[][..], |v| v)),
            working_dir: body["WorkingDir"].as_str().unwrap_or_default().to_string(),
            attach_stdin: body["AttachStdin"].as_bool() == Some(true),
            attach_stdout: body["AttachStdout"].as_bool() == Some(true),
            attach_stderr: body["AttachStderr"].as_bool() == Some(true),
            detach_keys: body["DetachKeys"].as_str().unwrap_or_default().to_string(),
            console_size,
            raw_stream: body["Tty"].as_bool() == Some(true),
        };
        let id = random_id();
        // Instances of removed containers go (Docker drops them with the container).
        let live: std::collections::HashSet<String> = self.lock().keys().cloned().collect();
        let mut execs = self.execs.lock();
        execs.retain(|_, r| live.contains(&r.config.container_id));
        execs.insert(
            id.clone(),
            Record {
                config,
                started: false,
                running: false,
                exit_code: None,
                pid: 0,
                pid_file: None,
                master: None,
            },
        );
        drop(execs);
        self.container_event(
            &c.id,
            &format!("exec_create: {}", cmd.join(" ")),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<Value, EngineError> {
        let mut execs = self.execs.lock();
        let r = execs.get_mut(id).ok_or_else(|| no_such_exec(id))?;
        if r.running && r.pid == 0 {
            if let Some(p) = &r.pid_file {
                r.pid = fs::read_to_string(p)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
        let c = &r.config;
        Ok(json!({
            "ID": id,
            "Running": r.running,
            "ExitCode": r.exit_code,
            "ProcessConfig": {
                "tty": c.tty,
                "entrypoint": c.entrypoint,
                "arguments": c.arguments,
                "privileged": c.privileged,
                "user": c.user,
            },
            "OpenStdin": c.attach_stdin,
            "OpenStderr": c.attach_stderr,
            "OpenStdout": c.attach_stdout,
            "CanRemove": false,
            "ContainerID": c.container_id,
            "DetachKeys": c.detach_keys,
            "Pid": r.pid,
        }))
    }

    /// `POST /exec/{id}/resize`: now if the terminal exists, else when it does.
    pub fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<(), EngineError> {
        let master = {
            let mut execs = self.execs.lock();
            let r = execs.get_mut(id).ok_or_else(|| no_such_exec(id))?;
            if !r.config.tty {
                return Ok(());
            }
            r.config.console_size = Some((height, width));
            r.master.clone()
        };
        match master {
            Some(m) => set_size(&m, height, width),
            None => Ok(()),
        }
    }

    /// `POST /exec/{id}/start`, before anything runs: checks that the instance can
    /// start, and marks it started. Returns its config.
    pub fn exec_begin(&self, id: &str) -> Result<ExecConfig, EngineError> {
        let container_id = {
            let execs = self.execs.lock();
            let r = execs.get(id).ok_or_else(|| no_such_exec(id))?;
            if r.exit_code.is_some() {
                return Err(EngineError::Conflict(format!(
                    "Error: Exec command {id} has already run"
                )));
            }
            if r.started {
                return Err(EngineError::Conflict(format!(
                    "Error: Exec command {id} is already running"
                )));
            }
            r.config.container_id.clone()
        };
        let c = self.get(&container_id)?;
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if c.state.paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        let mut execs = self.execs.lock();
        let r = execs.get_mut(id).ok_or_else(|| no_such_exec(id))?;
        if r.started {
            return Err(EngineError::Conflict(format!(
                "Error: Exec command {id} is already running"
            )));
        }
        r.started = true;
        Ok(r.config.clone())
    }

    /// The OCI `process` of an exec: the container's, with the exec's args, env, cwd,
    /// user, terminal and (for `Privileged`) capabilities.
    fn exec_process(&self, cfg: &ExecConfig) -> Result<Value, EngineError> {
        let c = self.get(&cfg.container_id)?;
        let bundle = self.exec_dir(&c.id).join("config.json");
        let spec: Value = fs::read(&bundle)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| EngineError::Internal(format!("cannot read {}", bundle.display())))?;
        let mut process = spec["process"].clone();
        if !process.is_object() {
            process = json!({});
        }
        let rootfs = self.data_dir(&c.id).join("rootfs");
        let (uid, gid, additional_gids) = process_user(&rootfs, &cfg.user, &c.host_config)?;

        // Docker's `CreateDaemonEnvironment`, then the container's env, then the exec's.
        let mut env = vec![DEFAULT_PATH.to_string(), format!("HOSTNAME={}", c.hostname)];
        if cfg.tty {
            env.push("TERM=xterm".into());
        }
        merge_env(
            &mut env,
            &strings(c.config["Env"].as_array().map_or(&[][..], |v| v)),
        );
        merge_env(&mut env, &cfg.env);

        let cwd = Some(cfg.working_dir.as_str())
            .filter(|w| !w.is_empty())
            .or_else(|| c.config["WorkingDir"].as_str().filter(|w| !w.is_empty()))
            .unwrap_or("/");
        let mut args = vec![cfg.entrypoint.clone()];
        args.extend(cfg.arguments.iter().cloned());
        process["args"] = json!(args);
        process["env"] = json!(env);
        process["cwd"] = json!(cwd);
        process["terminal"] = json!(cfg.tty);
        process["user"] = json!({"uid": uid, "gid": gid, "additionalGids": additional_gids});
        match cfg.console_size {
            Some((h, w)) if cfg.tty => process["consoleSize"] = json!({"height": h, "width": w}),
            _ => {
                if let Some(o) = process.as_object_mut() {
                    o.remove("consoleSize");
                }
            }
        }
        if cfg.privileged {
            let all = super::spec::capabilities(&json!({"Privileged": true}))?;
            let caps = &mut process["capabilities"];
            if !caps.is_object() {
                *caps = json!({});
            }
            for set in ["bounding", "effective", "permitted"] {
                caps[set] = json!(all);
            }
        }
        Ok(process)
    }

    /// Runs a started exec instance to its end. `client` is the hijacked connection
    /// (None when detached: output is dropped). Records the exit code before the
    /// client's stream ends, so the client's inspect afterwards sees it.
    pub async fn exec_run<S>(self: Arc<Self>, id: String, cfg: ExecConfig, client: Option<S>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(32);
        let (client_r, writer) = match client {
            Some(client) => {
                let (r, mut w) = tokio::io::split(client);
                // Detach keys (with a terminal, as Docker): the client's connection
                // ends, the process runs on.
                let keys = (cfg.tty && cfg.attach_stdin).then(|| {
                    crate::api::detach::keys_or_default(Some(&cfg.detach_keys)).unwrap_or_default()
                });
                let (detach_tx, mut detached) = tokio::sync::oneshot::channel();
                let r = crate::api::detach::DetachReader::new(r, keys, detach_tx);
                let writer = tokio::spawn(async move {
                    // A oneshot must not be polled again once it answered.
                    let mut detach_pending = true;
                    loop {
                        tokio::select! {
                            bytes = rx.recv() => match bytes {
                                Some(bytes) if w.write_all(&bytes).await.is_ok() => {}
                                _ => break,
                            },
                            r = &mut detached, if detach_pending => {
                                if r.is_ok() {
                                    break;
                                }
                                detach_pending = false;
                            }
                        }
                    }
                    let _ = w.shutdown().await;
                });
                (Some(r), Some(writer))
            }
            None => {
                drop(rx);
                (None, None)
            }
        };
        let dir = self.exec_dir(&cfg.container_id);
        let short = &id[..12];
        let files = ExecFiles::new(&dir, &format!("exec-{short}"));
        let mut command = vec![cfg.entrypoint.clone()];
        command.extend(cfg.arguments.iter().cloned());
        self.container_event(
            &cfg.container_id,
            &format!("exec_start: {}", command.join(" ")),
            &[("execID", id.clone())],
        );
        let code = match self.exec_spawn(&id, &cfg, &files, client_r, &tx).await {
            Ok(code) => code,
            Err(message) => {
                let code = failure_code(&message);
                let text = docker_exec_error(&message);
                let _ = tx
                    .send(frame(1, format!("{text}\r\n").as_bytes(), cfg.raw_stream))
                    .await;
                code
            }
        };
        self.execs.update(&id, |r| {
            r.running = false;
            r.exit_code = Some(code);
            r.master = None;
        });
        self.container_event(
            &cfg.container_id,
            "exec_die",
            &[("execID", id.clone()), ("exitCode", code.to_string())],
        );
        files.remove();
        drop(tx);
        if let Some(w) = writer {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
    }

    /// Spawns the runtime, relays until the process ends; Ok(exit code) or Err(why it
    /// could not start). Also runs healthcheck probes ([`super::health`]).
    pub(super) async fn exec_spawn<R>(
        &self,
        id: &str,
        cfg: &ExecConfig,
        files: &ExecFiles,
        client_r: Option<R>,
        tx: &mpsc::Sender<Vec<u8>>,
    ) -> Result<i32, String>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let process = self.exec_process(cfg).map_err(|e| e.to_string())?;
        let c = self.get(&cfg.container_id).map_err(|e| e.to_string())?;
        files.remove();
        fs::write(
            &files.process,
            serde_json::to_vec(&process).unwrap_or_default(),
        )
        .map_err(|e| format!("write {}: {e}", files.process.display()))?;
        let mut cmd = tokio::process::Command::new(&self.runtimes[&c.runtime]);
        cmd.arg("--root")
            .arg(self.runtime_root(&c.runtime))
            .arg("--log")
            .arg(&files.log)
            .arg("--log-format")
            .arg("json")
            .arg("exec")
            .arg("--process")
            .arg(&files.process)
            .arg("--pid-file")
            .arg(&files.pid);
        let attached = client_r.is_some();
        let listener = if cfg.tty {
            let l = tokio::net::UnixListener::bind(&files.console)
                .map_err(|e| format!("console socket: {e}"))?;
            cmd.arg("--tty").arg("--console-socket").arg(&files.console);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            Some(l)
        } else {
            let stdin = if attached && cfg.attach_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            };
            let out = if attached {
                Stdio::piped()
            } else {
                Stdio::null()
            };
            let err = if attached {
                Stdio::piped()
            } else {
                Stdio::null()
            };
            cmd.stdin(stdin).stdout(out).stderr(err);
            None
        };
        cmd.arg(&c.id);
        let mut child = cmd.spawn().map_err(|e| format!("run the runtime: {e}"))?;
        self.execs.update(id, |r| {
            r.running = true;
            r.pid_file = Some(files.pid.clone());
        });

        let mut tasks: Vec<tokio::task::JoinHandle<Vec<u8>>> = Vec::new();
        let mut input = None;
        if let Some(listener) = listener {
            let stream = tokio::select! {
                s = listener.accept() => s.map_err(|e| format!("console socket: {e}"))?.0,
                status = child.wait() => {
                    let status = status.map_err(|e| format!("waiting for the runtime: {e}"))?;
                    return Err(runtime_failure(&files.log, status));
                }
            };
            let stream = stream
                .into_std()
                .and_then(|s| s.set_nonblocking(false).map(|()| s))
                .map_err(|e| format!("console socket: {e}"))?;
            let master = tokio::task::spawn_blocking(move || crate::monitor::receive_fd(&stream))
                .await
                .map_err(|e| e.to_string())??;
            let master = Arc::new(master);
            let size = self.execs.update(id, |r| {
                r.master = Some(master.clone());
                r.config.console_size
            });
            if let Some(Some((h, w))) = size {
                let _ = set_size(&master, h, w);
            }
            let dup = |m: &OwnedFd| {
                m.try_clone()
                    .map(|fd| tokio::fs::File::from_std(fs::File::from(fd)))
                    .map_err(|e| format!("pty: {e}"))
            };
            let mut out = dup(&master)?;
            let tx = tx.clone();
            let forward = attached && (cfg.attach_stdout || cfg.attach_stderr);
            let raw = cfg.raw_stream;
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                // A closed pty reads EIO: the end.
                let mut forward = forward;
                while let Ok(n @ 1..) = out.read(&mut buf).await {
                    // A client gone (detached): keep draining the terminal.
                    if forward && tx.send(frame(1, &buf[..n], raw)).await.is_err() {
                        forward = false;
                    }
                }
                Vec::new()
            }));
            if let (Some(mut r), true) = (client_r, cfg.attach_stdin) {
                let mut w = dup(&master)?;
                input = Some(tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }));
            }
        } else {
            if let Some(mut out) = child.stdout.take() {
                let tx = tx.clone();
                let forward = cfg.attach_stdout;
                let raw = cfg.raw_stream;
                tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n @ 1..) = out.read(&mut buf).await {
                        if forward && tx.send(frame(1, &buf[..n], raw)).await.is_err() {
                            break;
                        }
                    }
                    Vec::new()
                }));
            }
            if let Some(err) = child.stderr.take() {
                let tx = tx.clone();
                let forward = cfg.attach_stderr;
                let pid_file = files.pid.clone();
                let raw = cfg.raw_stream;
                tasks.push(tokio::spawn(relay_stderr(err, pid_file, tx, forward, raw)));
            }
            if let (Some(mut r), Some(mut w)) = (client_r, child.stdin.take()) {
                input = Some(tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    // Dropping `w` closes the process's stdin.
                }));
            }
        }

        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for the runtime: {e}"));
        let mut held_back = Vec::new();
        for mut t in tasks {
            match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut t).await {
                Ok(Ok(rest)) => held_back.extend(rest),
                _ => t.abort(),
            }
        }
        if let Some(i) = input {
            i.abort();
        }
        let status = status?;
        let started = files.pid.exists();
        if !started && status.code() == Some(255) {
            return Err(runtime_failure(&files.log, status));
        }
        if !held_back.is_empty() && cfg.attach_stderr {
            let _ = tx.send(frame(2, &held_back, cfg.raw_stream)).await;
        }
        Ok(status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }))
    }
}

/// Forwards the runtime's stderr: held back until the process is set up (the pid
/// file exists), so that the runtime's own error does not reach the client; what is
/// still held back at the end is returned.
async fn relay_stderr(
    mut err: tokio::process::ChildStderr,
    pid_file: PathBuf,
    tx: mpsc::Sender<Vec<u8>>,
    forward: bool,
    raw: bool,
) -> Vec<u8> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut held = Vec::new();
    let mut live = false;
    loop {
        let read = if live {
            err.read(&mut buf).await
        } else {
            tokio::select! {
                r = err.read(&mut buf) => r,
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if pid_file.exists() {
                        live = true;
                        if !held.is_empty() && forward {
                            let _ = tx.send(frame(2, &std::mem::take(&mut held), raw)).await;
                        }
                    }
                    continue;
                }
            }
        };
        let n = match read {
            Ok(n @ 1..) => n,
            _ => break,
        };
        if !live && pid_file.exists() {
            live = true;
            if !held.is_empty() && forward {
                let _ = tx.send(frame(2, &std::mem::take(&mut held), raw)).await;
            }
        }
        if live {
            if forward && tx.send(frame(2, &buf[..n], raw)).await.is_err() {
                break;
            }
        } else {
            held.extend_from_slice(&buf[..n]);
        }
    }
    if forward {
        held
    } else {
        Vec::new()
    }
}

/// The runtime's error from its JSON log, else its exit status.
fn runtime_failure(log: &Path, status: std::process::ExitStatus) -> String {
    crate::monitor::runtime_error(log).unwrap_or_else(|| format!("runtime exec failed ({status})"))
}

/// The files of one running exec, beside the container's bundle.
pub(super) struct ExecFiles {
    pub(super) process: PathBuf,
    pub(super) pid: PathBuf,
    pub(super) log: PathBuf,
    pub(super) console: PathBuf,
}

impl ExecFiles {
    /// `<prefix>.json|pid|log|sock` in `dir`.
    pub(super) fn new(dir: &Path, prefix: &str) -> ExecFiles {
        ExecFiles {
            process: dir.join(format!("{prefix}.json")),
            pid: dir.join(format!("{prefix}.pid")),
            log: dir.join(format!("{prefix}.log")),
            console: dir.join(format!("{prefix}.sock")),
        }
    }

    pub(super) fn remove(&self) {
        for p in [&self.process, &self.pid, &self.log, &self.console] {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        merge_env(
            &mut env,
            &["A=2".to_string(), "B=3".to_string(), "PATH".to_string()],
        );
        assert_eq!(env, vec!["A=2".to_string(), "B=3".to_string()]);
    }

    #[test]
    fn frames() {
        assert_eq!(
            frame(2, b"hi", false),
            vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(frame(1, b"hi", true), b"hi".to_vec());
    }

    #[test]
    fn error_text() {
        assert_eq!(
            docker_exec_error("container init: container init: exec: \"x\": executable file not found in $PATH"),
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"x\": executable file not found in $PATH: unknown"
        );
    }

    #[test]
    fn failure_codes() {
        assert_eq!(
            failure_code("exec: \"x\": executable file not found in $PATH"),
            127
        );
        assert_eq!(failure_code("exec: \"/etc\": permission denied"), 126);
    }
}
