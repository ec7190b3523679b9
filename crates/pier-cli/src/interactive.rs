//! The interactive commands, `exec` and `attach`, and the attached session they
//! share with `run` and `start -a`: output demultiplexed (or raw with a tty), stdin
//! copied to the connection and its write half closed at EOF, the terminal raw while
//! a tty takes input, docker's detach keys, the size followed on SIGWINCH, and
//! signals forwarded to the container (`--sig-proxy`) when there is no tty.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgAction, Args};
use serde_json::{json, Value};

use pier_api::client::blocking::Upgraded;

use crate::client::{demux, Client};
use crate::containers::{enc, parse_env_file};
use crate::terminal::{self, Escape, RawMode};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    sig_proxy: bool,
    container: String,
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The output ended (the process exited, or the daemon closed the stream).
    Output,
    /// The user typed the detach keys.
    Detached,
}

/// What an attached session does besides copying output.
#[derive(Debug, Default)]
pub struct Session {
    /// The process has a terminal: raw output, raw mode, detach keys.
    pub tty: bool,
    /// Copy stdin to the process.
    pub stdin: bool,
    /// The resize endpoint (`/containers/ID/resize`, `/exec/ID/resize`) when the
    /// process's terminal follows ours.
    pub resize: Option<String>,
    /// Resize to one more row and column first (docker's `attach`: makes the program
    /// redraw).
    pub nudge: bool,
    /// The detach keys (looked for in a tty's input).
    pub detach_keys: Vec<u8>,
    /// The container to forward signals to (`--sig-proxy`).
    pub proxy: Option<String>,
}

impl Session {
    /// A session with container `id`'s main process: resized along with our terminal
    /// when it has one, its signals forwarded with `sig_proxy` (as docker, not with a
    /// tty, where the terminal sends the keys).
    pub fn container(
        id: &str,
        tty: bool,
        stdin: bool,
        detach_keys: Option<&str>,
        sig_proxy: bool,
    ) -> Session {
        Session {
            tty,
            stdin,
            resize: (tty && terminal::stdout_is_terminal())
                .then(|| format!("/containers/{id}/resize")),
            nudge: false,
            detach_keys: terminal::detach_keys(detach_keys),
            proxy: (sig_proxy && !tty).then(|| format!("/containers/{id}")),
        }
    }
}

enum Event {
    Output(io::Result<()>),
    InputDone,
    Detached,
}

/// A `--detach-keys` value as a query parameter (empty when not given: the
/// daemon's default).
pub fn detach_keys_query(keys: Option<&str>) -> String {
    keys.filter(|k| !k.is_empty())
        .map(|k| format!("&detachKeys={}", enc(k)))
        .unwrap_or_default()
}

/// Docker's exit status for a process's exit code (`os.Exit` truncates).
pub fn exit_status(code: i64) -> ExitCode {
    ExitCode::from(u8::try_from(code.rem_euclid(256)).unwrap_or(1))
}

/// Runs an attached session on a hijacked connection until the output ends or the
/// user detaches. Call it from the only thread: it blocks signals before starting
/// its helper threads, which inherit the mask.
pub fn session(client: &Client, conn: Upgraded, s: Session) -> Result<End> {
    let mut signals = Vec::new();
    if s.resize.is_some() {
        signals.push(libc::SIGWINCH);
    }
    if s.proxy.is_some() {
        signals.extend_from_slice(terminal::PROXIED);
    }
    if !signals.is_empty() {
        let blocked = terminal::block(&signals).context("blocking signals")?;
        let c = client.clone();
        let resize = s.resize.clone();
        let proxy = s.proxy.clone();
        terminal::on_signals(blocked, move |sig| {
            if let Some(path) = &proxy {
                let _ = c
                    .request("POST", &format!("{path}/kill?signal={sig}"), None)
                    .and_then(|r| r.bytes());
            } else if let (Some(path), libc::SIGWINCH) = (&resize, sig) {
                let _ = resize_to(&c, path, terminal::size());
            }
        });
    }
    let raw = if s.tty && s.stdin && terminal::stdin_is_terminal() {
        Some(RawMode::enable().context("unable to set IO streams as raw terminal")?)
    } else {
        None
    };
    if let Some(path) = &s.resize {
        initial_size(client, path, s.nudge);
    }

    let (tx, rx) = mpsc::channel();
    let (reader, mut writer) = conn.split();
    let tty = s.tty;
    let out_tx = tx.clone();
    thread::spawn(move || {
        let r = demux(reader, tty);
        // Back to a normal terminal as soon as the output ends, as docker.
        terminal::restore();
        let _ = out_tx.send(Event::Output(r));
    });
    if s.stdin {
        let escape = s.tty.then(|| Escape::new(s.detach_keys.clone()));
        thread::spawn(move || {
            let detached = copy_input(&mut writer, escape).unwrap_or(false);
            if detached {
                // Docker closes the connection on detach.
                let _ = writer.shutdown();
                terminal::restore();
                let _ = tx.send(Event::Detached);
            } else {
                // EOF: the process sees its stdin end; its output goes on.
                let _ = writer.shutdown();
                let _ = tx.send(Event::InputDone);
            }
        });
    } else {
        drop(tx);
    }
    let end = loop {
        match rx.recv() {
            Ok(Event::Output(Err(e))) if e.kind() != io::ErrorKind::BrokenPipe => {
                return Err(anyhow!(e))
            }
            Ok(Event::Output(_)) | Err(_) => break End::Output,
            Ok(Event::InputDone) => continue,
            Ok(Event::Detached) => break End::Detached,
        }
    };
    drop(raw);
    Ok(end)
}

/// Copies stdin to the connection; with a tty, stops at the detach keys (true).
fn copy_input(to: &mut impl Write, mut escape: Option<Escape>) -> io::Result<bool> {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::new();
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match &mut escape {
            Some(e) => {
                out.clear();
                let detached = e.feed(&buf[..n], &mut out);
                to.write_all(&out)?;
                if detached {
                    return Ok(true);
                }
            }
            None => to.write_all(&buf[..n])?,
        }
    }
}

/// Whether a resize failed for good (`Err`), or went (or cannot go: no such
/// endpoint yet, a 404, is best-effort).
fn resize_to(client: &Client, path: &str, (h, w): (u16, u16)) -> Result<()> {
    if h == 0 && w == 0 {
        return Ok(());
    }
    let r = client.request("POST", &format!("{path}?h={h}&w={w}"), None)?;
    if r.status == 404 {
        let _ = r.bytes();
        return Ok(());
    }
    r.check()?.bytes().map(|_| ())
}

/// docker's `initTtySize`: the size now, retried a few times in the background (an
/// exec's terminal may not exist yet).
fn initial_size(client: &Client, path: &str, nudge: bool) {
    let (h, w) = terminal::size();
    if nudge {
        let _ = resize_to(client, path, (h.saturating_add(1), w.saturating_add(1)));
    }
    if resize_to(client, path, (h, w)).is_ok() {
        return;
    }
    let client = client.clone();
    let path = path.to_string();
    thread::spawn(move || {
        for retry in 1..=10 {
            thread::sleep(Duration::from_millis(retry * 10));
            if resize_to(&client, &path, terminal::size()).is_ok() {
                return;
            }
        }
        eprintln!("failed to resize tty, using default size");
    });
}

fn read_env(files: &[String], flags: &[String]) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        env.extend(parse_env_file(f)?);
    }
    for e in flags {
        if e.contains('=') {
            env.push(e.clone());
        } else if e.is_empty() {
            bail!("invalid argument \"\" for \"-e, --env\" flag: invalid environment variable: ");
        } else {
            // docker: a bare name takes the client's value, or stays bare.
            env.push(match std::env::var(e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => e.clone(),
            });
        }
    }
    Ok(env)
}

/// `pier exec`: docker's `RunExec`.
pub fn exec(client: &Client, a: ExecArgs) -> Result<ExitCode> {
    let env = read_env(&a.env_file, &a.env)?;
    // As docker: an inspect first, so "No such container" wins over other errors.
    client.get_json(&format!("/containers/{}/json", enc(&a.container)))?;
    if !a.detach {
        terminal::check_tty(a.interactive, a.tty)?;
    }
    let mut body = json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
        "AttachStdin": !a.detach && a.interactive,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
        "Env": env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Cmd": a.command,
    });
    let console = if a.tty {
        Some(terminal::size()).filter(|&(h, w)| h > 0 || w > 0)
    } else {
        None
    };
    if let Some((h, w)) = console {
        body["ConsoleSize"] = json!([h, w]);
    }
    let created = client.post_json(
        &format!("/containers/{}/exec", enc(&a.container)),
        Some(&body),
    )?;
    let id = created["Id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| anyhow!("exec ID empty"))?
        .to_string();
    let mut start = json!({"Detach": a.detach, "Tty": a.tty});
    if let Some((h, w)) = console {
        start["ConsoleSize"] = json!([h, w]);
    }
    if a.detach {
        let bytes = serde_json::to_vec(&start)?;
        client
            .request(
                "POST",
                &format!("/exec/{id}/start"),
                Some(("application/json", &bytes)),
            )?
            .check()?
            .bytes()?;
        return Ok(ExitCode::SUCCESS);
    }
    let conn = client.hijack_with(&format!("/exec/{id}/start"), Some(&start))?;
    let end = session(
        client,
        conn,
        Session {
            tty: a.tty,
            stdin: a.interactive,
            resize: (a.tty && terminal::stdin_is_terminal()).then(|| format!("/exec/{id}/resize")),
            nudge: false,
            detach_keys: terminal::detach_keys(a.detach_keys.as_deref()),
            proxy: None,
        },
    )?;
    if end == End::Detached {
        bail!("read escape sequence");
    }
    // The daemon records the exit code as the stream ends; should the end come
    // first, give it a moment rather than report a wrong 0.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let info = loop {
        let info = client.get_json(&format!("/exec/{id}/json"))?;
        if !info["ExitCode"].is_null() || std::time::Instant::now() > deadline {
            break info;
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(exit_status(info["ExitCode"].as_i64().unwrap_or(0)))
}

/// docker's check of a container before attaching.
fn attachable(client: &Client, container: &str) -> Result<Value> {
    let c = client.get_json(&format!("/containers/{}/json", enc(container)))?;
    let state = &c["State"];
    if state["Running"].as_bool() != Some(true) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if state["Paused"].as_bool() == Some(true) {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if state["Restarting"].as_bool() == Some(true) {
        bail!("You cannot attach to a restarting container, wait until it is running");
    }
    Ok(c)
}

/// `pier attach`: docker's `RunAttach`; exits with the container's exit code.
pub fn attach(client: &Client, a: AttachArgs) -> Result<ExitCode> {
    let c = attachable(client, &a.container)?;
    let id = c["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon answered no container ID"))?
        .to_string();
    // The wait goes first, as docker's, so an exit during the attach is not missed.
    let waiter = client
        .request("POST", &format!("/containers/{id}/wait"), None)?
        .check()?;
    let tty = c["Config"]["Tty"].as_bool() == Some(true);
    terminal::check_tty(!a.no_stdin, tty)?;
    let stdin = !a.no_stdin && c["Config"]["OpenStdin"].as_bool() == Some(true);
    let conn = client.hijack(&format!(
        "/containers/{id}/attach?stream=1&stdin={}&stdout=1&stderr=1{}",
        u8::from(stdin),
        detach_keys_query(a.detach_keys.as_deref())
    ))?;
    // It may have stopped between the inspect and the attach.
    attachable(client, &id)?;
    let end = session(
        client,
        conn,
        Session {
            nudge: true,
            ..Session::container(&id, tty, stdin, a.detach_keys.as_deref(), a.sig_proxy)
        },
    )?;
    if end == End::Detached {
        bail!("read escape sequence");
    }
    let result = waiter.json()?;
    if let Some(m) = result["Error"]["Message"]
        .as_str()
        .filter(|m| !m.is_empty())
    {
        bail!("{m}");
    }
    Ok(exit_status(result["StatusCode"].as_i64().unwrap_or(0)))
}
