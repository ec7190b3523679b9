//! The per-container monitor (`pierd monitor CONFIG`), Pier's conmon/shim.
//!
//! One small single-threaded process per running container, started by pierd and
//! detached from it (own session), so containers outlive a pierd restart or crash. It
//! runs the OCI runtime (`create`, then `start` when pierd says so), becomes the
//! container init's parent (child subreaper), owns the container's stdio: writes the
//! json-file log (rotated) and relays output to attached clients, feeds stdin, reaps
//! the init and records the exit status in a file pierd reads even if it was down,
//! then deletes the container from the runtime and unmounts its rootfs.
//!
//! Control socket protocol (stream socket, one connection per request): the client
//! sends one JSON line, then
//! - `{"op":"start"}`: the monitor answers `ok` or `error: <message>` (one line);
//! - `{"op":"attach","stdin":true}`: the monitor streams output in Docker's
//!   multiplexed frames (`[stream,0,0,0,len_be32]`, stream 1 stdout, 2 stderr) — or
//!   raw bytes for a tty — until the container's output ends; with `stdin`, what the
//!   client sends is the container's stdin;
//! - `{"op":"wait"}`: the monitor answers one line, the exit status JSON, on exit;
//! - `{"op":"resize","height":H,"width":W}`: resizes the tty.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, WaitOptions};
use serde::{Deserialize, Serialize};

/// What pierd tells a monitor, as a JSON file (the only argument).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    /// The json-file log; `None` for the `none` driver.
    pub log_path: Option<PathBuf>,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// Rotated files are gzip-compressed (`<log>.N.gz`): the `local` driver's
    /// default, json-file's `compress` option.
    #[serde(default)]
    pub log_compress: bool,
    pub exit_file: PathBuf,
    pub control_socket: PathBuf,
    /// Unmounted when the container is gone.
    pub rootfs: Option<PathBuf>,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// The terminal's size (height, width) before the container starts
    /// (`HostConfig.ConsoleSize`).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Seconds the created container waits for `start` (default
    /// [`START_TIMEOUT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<u64>,
}

/// What the monitor records when the container exits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
    /// Set when the container could not be created or started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The line a monitor writes to its stdout once the container is created (or not).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Request {
    op: String,
    #[serde(default)]
    stdin: bool,
    #[serde(default)]
    height: u16,
    #[serde(default)]
    width: u16,
}

/// Entry point of `pierd monitor CONFIG`; never returns to pierd's main.
pub fn main(config_path: &Path) -> i32 {
    let config: MonitorConfig = match fs::read(config_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            report(&CreatedReport {
                pid: None,
                error: Some(format!("monitor: reading {}: {e}", config_path.display())),
            });
            return 1;
        }
    };
    // Detached from pierd: its signals and its death do not reach us.
    let _ = rustix::process::setsid();
    // The container's init is reparented to us when the runtime exits.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    let mut monitor = match Monitor::create(config) {
        Ok(m) => m,
        Err(e) => {
            report(&CreatedReport {
                pid: None,
                error: Some(e),
            });
            return 1;
        }
    };
    report(&CreatedReport {
        pid: Some(monitor.pid.as_raw_nonzero().get()),
        error: None,
    });
    // Nothing more for pierd on stdout; it may be gone any time now.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    monitor.run();
    0
}

fn report(r: &CreatedReport) {
    let mut out = io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, r);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

struct Client {
    stream: UnixStream,
    /// What the client sends is the container's stdin.
    stdin: bool,
}

struct Monitor {
    config: MonitorConfig,
    pid: Pid,
    pidfd: OwnedFd,
    listener: UnixListener,
    stdout: Option<File>,
    stderr: Option<File>,
    /// tty master, when the container has a terminal.
    pty: Option<File>,
    stdin: Option<File>,
    attached: Vec<Client>,
    waiters: Vec<UnixStream>,
    log: Option<JsonLog>,
    exit: Option<ExitStatus>,
    /// When the container was created; pierd's `start` must come within the start
    /// timeout of it.
    created_at: Instant,
    /// pierd asked to start the container (or the wait for it was given up).
    start_asked: bool,
    /// The container cgroup's OOM kill counters, with their count at creation.
    oom: Vec<(PathBuf, u64)>,
}

/// How long a created container waits for pierd's `start`. pierd sends it right after
/// the report (attaches connect first, a few seconds at most); past this, pierd died
/// or gave up, and the container's init must not stay blocked on its FIFO forever.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn pipe() -> Result<(File, File), String> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    Ok((File::from(r), File::from(w)))
}

impl Monitor {
    /// Runs `runtime create` with the container's stdio and waits for it.
    fn create(config: MonitorConfig) -> Result<Monitor, String> {
        let _ = fs::remove_file(&config.control_socket);
        let listener = UnixListener::bind(&config.control_socket).map_err(|e| {
            format!(
                "monitor: listen on {}: {e}",
                config.control_socket.display()
            )
        })?;
        let pid_file = config.bundle.join("init.pid");
        let runtime_log = config.bundle.join("runtime.log");
        let _ = fs::remove_file(&runtime_log);
        let mut cmd = Command::new(&config.runtime);
        cmd.arg("--root")
            .arg(&config.runtime_root)
            .arg("--log")
            .arg(&runtime_log)
            .arg("--log-format")
            .arg("json")
            .arg("create")
            .arg("--bundle")
            .arg(&config.bundle)
            .arg("--pid-file")
            .arg(&pid_file);

        let (mut stdout, mut stderr, mut stdin, mut pty) = (None, None, None, None);
        let mut console_listener = None;
        if config.tty {
            let socket = config.bundle.join("console.sock");
            let _ = fs::remove_file(&socket);
            let l = UnixListener::bind(&socket).map_err(|e| format!("console socket: {e}"))?;
            cmd.arg("--console-socket").arg(&socket);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            console_listener = Some(l);
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            cmd.stdout(out_w).stderr(err_w);
            if config.stdin {
                let (in_r, in_w) = pipe()?;
                cmd.stdin(in_r);
                stdin = Some(in_w);
            } else {
                cmd.stdin(Stdio::null());
            }
            stdout = Some(out_r);
            stderr = Some(err_r);
        }
        cmd.arg(&config.id);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("running {}: {e}", config.runtime.display()))?;
        if let Some(l) = console_listener {
            // The runtime connects and sends the pty master; give up if it exits first.
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match l.accept() {
                    Ok((s, _)) => {
                        let master = File::from(receive_fd(&s)?);
                        if let Some((h, w)) = config.console_size.filter(|&(h, w)| h > 0 && w > 0) {
                            let size = rustix::termios::Winsize {
                                ws_row: h,
                                ws_col: w,
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            };
                            let _ = rustix::termios::tcsetwinsize(&master, size);
                        }
                        pty = Some(master);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Ok(Some(_)) = child.try_wait() {
                            break;
                        }
                        if Instant::now() > deadline {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(format!("console socket: {e}")),
                }
            }
        }
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the runtime: {e}"))?;
        drop(cmd);
        if !status.success() {
            return Err(runtime_error(&runtime_log)
                .unwrap_or_else(|| format!("runtime create failed ({status})")));
        }
        let pid_text = fs::read_to_string(&pid_file)
            .map_err(|e| format!("reading {}: {e}", pid_file.display()))?;
        let raw: i32 = pid_text
            .trim()
            .parse()
            .map_err(|_| format!("bad pid file {}", pid_file.display()))?;
        let pid = Pid::from_raw(raw).ok_or_else(|| "bad pid 0".to_string())?;
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty())
            .map_err(|e| format!("pidfd_open {raw}: {e}"))?;
        let log = match &config.log_path {
            Some(p) => Some(JsonLog::open(
                p,
                config.log_max_size,
                config.log_max_files,
                config.log_compress,
            )?),
            None => None,
        };
        Ok(Monitor {
            config,
            pid,
            pidfd,
            listener,
            stdout,
            stderr,
            pty,
            stdin,
            attached: Vec::new(),
            waiters: Vec::new(),
            log,
            exit: None,
            created_at: Instant::now(),
            start_asked: false,
            oom: oom_counters(raw)
                .into_iter()
                .map(|file| {
                    let n = oom_kills(&file);
                    (file, n)
                })
                .collect(),
        })
    }

    fn run(&mut self) {
        let _ = self.listener.set_nonblocking(true);
        let mut exited_at: Option<Instant> = None;
        loop {
            let outputs_open = self.stdout.is_some() || self.stderr.is_some() || self.pty.is_some();
            if self.exit.is_some() {
                let drained = !outputs_open;
                let overdue = exited_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2));
                if drained || overdue {
                    break;
                }
            }
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            let mut kinds: Vec<Source> = Vec::new();
            fds.push(PollFd::new(&self.listener, PollFlags::IN));
            kinds.push(Source::Listener);
            if self.exit.is_none() {
                fds.push(PollFd::new(&self.pidfd, PollFlags::IN));
                kinds.push(Source::Pidfd);
            }
            if let Some(f) = &self.stdout {
                fds.push(PollFd::new(f, PollFlags::IN));
                kinds.push(Source::Out(1));
            }
            if let Some(f) = &self.stderr {
                fds.push(PollFd::new(f, PollFlags::IN));
                kinds.push(Source::Out(2));
            }
            if let Some(f) = &self.pty {
                fds.push(PollFd::new(f, PollFlags::IN));
                kinds.push(Source::Out(1));
            }
            for (i, c) in self.attached.iter().enumerate() {
                if c.stdin {
                    fds.push(PollFd::new(&c.stream, PollFlags::IN));
                    kinds.push(Source::Client(i));
                }
            }
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 200_000_000,
            };
            if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
                continue;
            }
            let ready: Vec<(Source, PollFlags)> = fds
                .iter()
                .zip(kinds.iter())
                .filter(|(f, _)| !f.revents().is_empty())
                .map(|(f, k)| (*k, f.revents()))
                .collect();
            drop(fds);
            let mut dropped_clients = Vec::new();
            for (source, _flags) in ready {
                match source {
                    Source::Listener => self.accept(),
                    Source::Pidfd => {}
                    Source::Out(stream) => self.pump(stream),
                    Source::Client(i) => {
                        if !self.feed_stdin(i) {
                            dropped_clients.push(i);
                        }
                    }
                }
            }
            dropped_clients.sort_unstable();
            for i in dropped_clients.into_iter().rev() {
                // Keep the connection for output; it just sends no more stdin.
                if let Some(c) = self.attached.get_mut(i) {
                    c.stdin = false;
                }
            }
            let start_timeout = self
                .config
                .start_timeout
                .map_or(START_TIMEOUT, Duration::from_secs);
            if !self.start_asked && self.created_at.elapsed() > start_timeout {
                // Nobody will start it: the init dies, and the exit path cleans up.
                self.start_asked = true;
                let _ =
                    rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
            }
            if self.exit.is_none() {
                self.reap();
                if self.exit.is_some() {
                    exited_at = Some(Instant::now());
                }
            } else {
                // Keep reaping orphans handed to us.
                while let Ok(Some(_)) = rustix::process::wait(WaitOptions::NOHANG) {}
            }
        }
        self.finish();
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Bytes the client sent after its request line belong to stdin.
            let early = reader.buffer().to_vec();
            drop(reader);
            let _ = stream.set_read_timeout(None);
            let Ok(req) = serde_json::from_str::<Request>(line.trim()) else {
                let _ = (&stream).write_all(b"error: bad request\n");
                continue;
            };
            match req.op.as_str() {
                "start" => {
                    self.start_asked = true;
                    let answer = self.start();
                    let _ = (&stream).write_all(answer.as_bytes());
                }
                "attach" => {
                    // With a terminal, stdin (when open) goes to the pty.
                    let stdin = req.stdin
                        && (self.stdin.is_some() || (self.config.stdin && self.pty.is_some()));
                    if stdin && !early.is_empty() {
                        let target = match &mut self.pty {
                            Some(p) => Some(p),
                            None => self.stdin.as_mut(),
                        };
                        if let Some(w) = target {
                            let _ = w.write_all(&early);
                        }
                    }
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                    self.attached.push(Client { stream, stdin });
                }
                "wait" => match &self.exit {
                    Some(status) => send_exit(&stream, status),
                    None => self.waiters.push(stream),
                },
                "resize" => {
                    if let Some(pty) = &self.pty {
                        let size = rustix::termios::Winsize {
                            ws_row: req.height,
                            ws_col: req.width,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        let _ = rustix::termios::tcsetwinsize(pty, size);
                    }
                    let _ = (&stream).write_all(b"ok\n");
                }
                _ => {
                    let _ = (&stream).write_all(b"error: unknown op\n");
                }
            }
        }
    }

    fn start(&mut self) -> String {
        let runtime_log = self.config.bundle.join("runtime.log");
        let status = Command::new(&self.config.runtime)
            .arg("--root")
            .arg(&self.config.runtime_root)
            .arg("--log")
            .arg(&runtime_log)
            .arg("--log-format")
            .arg("json")
            .arg("start")
            .arg(&self.config.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => "ok\n".to_string(),
            Ok(s) => format!(
                "error: {}\n",
                runtime_error(&runtime_log)
                    .unwrap_or_else(|| format!("runtime start failed ({s})"))
            ),
            Err(e) => format!("error: running the runtime: {e}\n"),
        }
    }

    /// Moves output from the container to the log and the attached clients.
    fn pump(&mut self, stream: u8) {
        let mut buf = [0u8; 32 * 1024];
        let source = if self.pty.is_some() {
            &mut self.pty
        } else if stream == 1 {
            &mut self.stdout
        } else {
            &mut self.stderr
        };
        let Some(file) = source else { return };
        let n = match file.read(&mut buf) {
            Ok(0) | Err(_) => {
                // EOF (for a pty: EIO once every process closed it).
                *source = None;
                if let Some(log) = &mut self.log {
                    log.flush_partial(stream);
                }
                return;
            }
            Ok(n) => n,
        };
        let data = &buf[..n];
        if let Some(log) = &mut self.log {
            log.write(stream, data);
        }
        let tty = self.config.tty;
        self.attached.retain(|c| {
            let mut s = &c.stream;
            let ok = if tty {
                s.write_all(data)
            } else {
                let mut frame = Vec::with_capacity(8 + data.len());
                frame.extend_from_slice(&[stream, 0, 0, 0]);
                frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
                frame.extend_from_slice(data);
                s.write_all(&frame)
            };
            ok.is_ok()
        });
    }

    /// Copies a client's input to the container's stdin; false when the client is
    /// done sending.
    fn feed_stdin(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 32 * 1024];
        let Some(client) = self.attached.get(i) else {
            return false;
        };
        let n = match (&client.stream).read(&mut buf) {
            Ok(0) | Err(_) => {
                if self.config.stdin_once {
                    self.stdin = None;
                    if self.pty.is_none() {
                        return false;
                    }
                }
                return false;
            }
            Ok(n) => n,
        };
        let target: Option<&mut File> = if let Some(p) = &mut self.pty {
            Some(p)
        } else {
            self.stdin.as_mut()
        };
        if let Some(t) = target {
            if t.write_all(&buf[..n]).is_err() {
                self.stdin = None;
            }
        }
        true
    }

    fn reap(&mut self) {
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            if pid == self.pid {
                let code = match (status.exit_status(), status.terminating_signal()) {
                    (Some(c), _) => c,
                    (None, Some(sig)) => 128 + sig,
                    _ => 255,
                };
                // Read now: the cgroup goes with `runtime delete` in `finish`.
                let oom_killed = self
                    .oom
                    .iter()
                    .any(|(file, at_start)| oom_kills(file) > *at_start);
                self.exit = Some(ExitStatus {
                    exit_code: code,
                    finished_at: pier_image::time::now_rfc3339(),
                    oom_killed,
                    error: None,
                });
                // The write end of stdin goes: nothing reads it any more.
                self.stdin = None;
            }
        }
    }

    fn finish(&mut self) {
        if let Some(log) = &mut self.log {
            log.flush_partial(1);
            log.flush_partial(2);
        }
        let status = self.exit.clone().unwrap_or(ExitStatus {
            exit_code: 255,
            finished_at: pier_image::time::now_rfc3339(),
            oom_killed: false,
            error: Some("container monitor lost its container".into()),
        });
        let _ = write_atomic(
            &self.config.exit_file,
            &serde_json::to_vec(&status).unwrap_or_default(),
        );
        // Output clients see EOF.
        self.attached.clear();
        // The runtime's state and the rootfs mount go before waiters hear of the exit:
        // pierd may start the container again at once (restart, a policy), and this
        // cleanup must not delete the next run's state or unmount its rootfs.
        let _ = Command::new(&self.config.runtime)
            .arg("--root")
            .arg(&self.config.runtime_root)
            .arg("delete")
            .arg("--force")
            .arg(&self.config.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(rootfs) = &self.config.rootfs {
            let _ = rustix::mount::unmount(rootfs, rustix::mount::UnmountFlags::DETACH);
        }
        let _ = fs::remove_file(&self.config.control_socket);
        for w in self.waiters.drain(..) {
            send_exit(&w, &status);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Listener,
    Pidfd,
    Out(u8),
    Client(usize),
}

fn send_exit(stream: &UnixStream, status: &ExitStatus) {
    let mut line = serde_json::to_vec(status).unwrap_or_default();
    line.push(b'\n');
    let mut s = stream;
    let _ = s.write_all(&line);
}

/// The files counting OOM kills in the cgroup of process `pid` (the container's
/// init): `memory.oom_control` of the v1 memory controller, `memory.events` of
/// cgroup v2 when it has the memory controller. Both on a hybrid host, either may be
/// missing (no memory controller: nothing to report).
fn oom_counters(pid: i32) -> Vec<PathBuf> {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut files = Vec::new();
    for line in cgroups.lines() {
        // `hierarchy-ID:controllers:path`
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (v2, file) = if controllers.is_empty() {
            (true, "memory.events")
        } else if controllers.split(',').any(|c| c == "memory") {
            (false, "memory.oom_control")
        } else {
            continue;
        };
        if let Some(dir) = cgroup_dir(&mountinfo, v2, path) {
            let candidate = dir.join(file);
            if candidate.is_file() {
                files.push(candidate);
            }
        }
    }
    files
}

/// Where the cgroup `path` of the v1 memory hierarchy (or of cgroup v2) is mounted.
fn cgroup_dir(mountinfo: &str, v2: bool, path: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // `id parent dev root mountpoint options [optional…] - fstype source super`
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let mut r = right.split(' ');
        let (fstype, _, super_opts) = (r.next()?, r.next()?, r.next().unwrap_or(""));
        let matches = if v2 {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && super_opts.split(',').any(|o| o == "memory")
        };
        if !matches {
            return None;
        }
        let (root, mountpoint) = (*fields.get(3)?, *fields.get(4)?);
        let rel = path.strip_prefix(root.trim_end_matches('/'))?;
        let mountpoint = mountpoint.replace("\\040", " ");
        Some(Path::new(&mountpoint).join(rel.trim_start_matches('/')))
    })
}

/// The `oom_kill` count of a `memory.oom_control` or `memory.events` file (0 when
/// unreadable, or on kernels that do not count).
fn oom_kills(file: &Path) -> u64 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// The last error the runtime logged (its `--log-format json` lines).
pub(crate) fn runtime_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        if v.get("level")?.as_str()? == "error" {
            v.get("msg")?.as_str().map(str::to_string)
        } else {
            None
        }
    })
}

pub(crate) fn receive_fd(stream: &UnixStream) -> Result<OwnedFd, String> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    rustix::net::recvmsg(
        stream.as_fd(),
        &mut iov,
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| format!("console socket: {e}"))?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err("console socket: no terminal received".into())
}

/// Writes `bytes` to `dest` through a temp file and a rename: a reader sees the old
/// file or the whole new one, also if this process dies half-way.
///
/// No fsync: the only file written so is the exit status, for a pierd that restarts
/// while the host keeps running (the page cache has it). After a host crash the
/// container is gone anyway and pierd's recovery finds no exit file (the exec root is
/// usually a tmpfs); an fsync cost up to 9 ms per container exit on a busy disk.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dest.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
    }
    fs::rename(&tmp, dest)
}

/// Docker's json-file log: one JSON object per line of output, rotated by size.
struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    compress: bool,
    partial: [Vec<u8>; 2],
}

/// Logs hold what containers print, secrets included: readable by root and its group
/// only, as dockerd's.
const LOG_MODE: u32 = 0o640;

/// Lines longer than this are split into several records, as Docker does.
const MAX_LINE: usize = 16 * 1024;

impl JsonLog {
    fn open(path: &Path, max_size: u64, max_files: u32, compress: bool) -> Result<JsonLog, String> {
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(LOG_MODE)
            .open(path)
            .map_err(|e| format!("log {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files,
            compress,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn write(&mut self, stream: u8, data: &[u8]) {
        let idx = usize::from(stream == 2);
        let mut pending = std::mem::take(&mut self.partial[idx]);
        pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            self.record(stream, &pending[start..end]);
            start = end;
        }
        let mut rest = pending.split_off(start);
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.record(stream, &rest);
            rest = tail;
        }
        self.partial[idx] = rest;
    }

    fn flush_partial(&mut self, stream: u8) {
        let idx = usize::from(stream == 2);
        let pending = std::mem::take(&mut self.partial[idx]);
        if !pending.is_empty() {
            self.record(stream, &pending);
        }
    }

    fn record(&mut self, stream: u8, line: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": if stream == 2 { "stderr" } else { "stdout" },
            "time": pier_image::time::now_rfc3339(),
        });
        let mut bytes = serde_json::to_vec(&entry).unwrap_or_default();
        bytes.push(b'\n');
        if self.max_size > 0 && self.size + bytes.len() as u64 > self.max_size && self.size > 0 {
            self.rotate();
        }
        if self.file.write_all(&bytes).is_ok() {
            self.size += bytes.len() as u64;
        }
    }

    /// `log` → `log.1` → … → `log.<max_files-1>`; the oldest is dropped.
    fn rotate(&mut self) {
        if self.max_files <= 1 {
            let _ = self.file.set_len(0);
            self.size = 0;
            return;
        }
        let suffix = if self.compress { ".gz" } else { "" };
        let name = |n: u32| PathBuf::from(format!("{}.{n}{suffix}", self.path.display()));
        for n in (1..self.max_files - 1).rev() {
            let _ = fs::rename(name(n), name(n + 1));
        }
        if self.compress {
            // Readers that have the file open keep reading it after the unlink.
            if compress_file(&self.path, &name(1)).is_ok() {
                let _ = fs::remove_file(&self.path);
            } else {
                let _ = fs::rename(&self.path, name(1));
            }
        } else {
            let _ = fs::rename(&self.path, name(1));
        }
        if let Ok(f) = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(LOG_MODE)
            .open(&self.path)
        {
            self.file = f;
            self.size = 0;
        }
    }
}

/// `src` gzip-compressed into `dest` (through a temp file and a rename).
fn compress_file(src: &Path, dest: &Path) -> io::Result<()> {
    let tmp = dest.with_extension("tmp");
    let result = (|| {
        let mut input = File::open(src)?;
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(LOG_MODE)
            .open(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        io::copy(&mut input, &mut gz)?;
        gz.finish()?;
        fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn cgroups_are_found_under_their_mounts() {
        assert_eq!(
            cgroup_dir(MOUNTINFO, false, "/pier/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/pier/abc"))
        );
        assert_eq!(
            cgroup_dir(MOUNTINFO, true, "/pier/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/pier/abc"))
        );
        // No memory hierarchy mounted: nothing to read.
        let devices_only = MOUNTINFO.lines().nth(1).unwrap();
        assert_eq!(cgroup_dir(devices_only, false, "/pier/abc"), None);
    }

    #[test]
    fn oom_kill_counts_of_v1_and_v2() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("memory.oom_control");
        fs::write(&v1, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(oom_kills(&v1), 2);
        let v2 = dir.path().join("memory.events");
        fs::write(
            &v2,
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(oom_kills(&v2), 1);
        assert_eq!(oom_kills(&dir.path().join("missing")), 0);
    }
}
