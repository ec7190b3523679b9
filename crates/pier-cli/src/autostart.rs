//! Starting `pierd` when nothing answers: with the default socket (or any unix
//! socket when `PIER_AUTOSTART=1`), `pier` starts the daemon itself, detached, on
//! `--data-root`, and waits for it. CLI policy, kept out of the client.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pier_api::client::Host;

use crate::client::{Client, Target, DEFAULT_HOST};

/// How long a freshly started pierd may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A client for `target` whose daemon answered the version negotiation; starts
/// `pierd` first if allowed (see the module docs) and none answers.
pub fn connect(target: &Target, data_root: &Path) -> Result<Client> {
    let client = Client::new(target)?;
    let first = match client.negotiate() {
        Ok(()) => return Ok(client),
        Err(e) => e,
    };
    let host = target.host();
    let autostart = std::env::var("PIER_AUTOSTART").is_ok_and(|v| v == "1");
    let socket = match pier_api::client::Host::parse(&host) {
        Ok(Host::Unix(socket)) if first.is_connect() && (host == DEFAULT_HOST || autostart) => {
            socket
        }
        _ if first.is_connect() => {
            bail!("Cannot connect to the Pier daemon at {host}. Is the pier daemon running?")
        }
        _ => return Err(first.into()),
    };
    start_daemon(&socket, data_root)?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if client.negotiate().is_ok() {
            return Ok(client);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "started pierd, but it does not answer on {host}: see {}",
        socket.with_file_name("pierd.log").display()
    )
}

/// Starts `pierd` (beside this binary, else from PATH), detached, logging to
/// `pierd.log` beside the socket.
fn start_daemon(socket: &Path, data_root: &Path) -> Result<()> {
    let exe = std::env::current_exe().ok();
    let beside = exe
        .as_ref()
        .and_then(|e| e.parent())
        .map(|d| d.join("pierd"))
        .filter(|p| p.is_file());
    let program = beside.unwrap_or_else(|| PathBuf::from("pierd"));
    let run_dir = socket.parent().unwrap_or(Path::new("/run/pier"));
    std::fs::create_dir_all(run_dir).with_context(|| {
        format!(
            "creating {} (pier needs root to start pierd)",
            run_dir.display()
        )
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("pierd.log"))
        .context("opening the pierd log")?;
    let mut cmd = Command::new(&program);
    cmd.arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(run_dir);
    // More flags for the daemon pier starts (e.g. `--bridge pier1 --dns 10.0.0.2`).
    if let Ok(flags) = std::env::var("PIERD_FLAGS") {
        cmd.args(flags.split_whitespace());
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid and close_range are async-signal-safe. setsid detaches pierd from
    // this terminal's session so it outlives the command; close_range marks every
    // descriptor above stdio close-on-exec, so that pierd inherits none of ours (std's
    // own exec-error pipe is close-on-exec already and keeps working).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let _ = rustix::process::setsid();
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(())
}
