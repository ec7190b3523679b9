//! Test harness for the `pier` integration tests that need a daemon: a temp root
//! with a socket and a data root, the pierd that `pier` starts there on the first
//! container command (`PIER_AUTOSTART`), and the busybox image imported into it.
//!
//! [`Setup`] removes its containers and stops that pierd (by its pid file) when it is
//! dropped, also when the test panics.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one `pier` (or `docker`) command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// A temp root with a socket, a data root, and whatever pierd `pier` starts there;
/// containers and that pierd go when it is dropped.
pub struct Setup {
    pub dir: tempfile::TempDir,
    /// The default bridge of the pierd started here (its own, so test daemons never
    /// share one).
    pub bridge: String,
}

impl Setup {
    /// An empty daemon root (no image, no daemon yet).
    pub fn new() -> Setup {
        let pierd = Path::new(env!("CARGO_BIN_EXE_pier")).with_file_name("pierd");
        let runtime = pierd.with_file_name("pier-runtime");
        assert!(
            pierd.is_file() && runtime.is_file(),
            "build pierd and pier-runtime first (cargo build -p pierd -p pier-runtime)"
        );
        let mut bytes = [0u8; 4];
        if let Ok(mut f) = fs::File::open("/dev/urandom") {
            let _ = std::io::Read::read_exact(&mut f, &mut bytes);
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Setup {
            dir: tempfile::tempdir().unwrap(),
            bridge: format!("pc{hex}"),
        }
    }

    /// A daemon root with busybox imported as `busybox` (with `CMD ["sh"]`), or
    /// `None` (skipped) without busybox on the host.
    pub fn with_busybox() -> Option<Setup> {
        let s = Setup::new();
        if !host_has("/bin/busybox", "busybox-static") {
            return None;
        }
        let tar = rootfs_tar(s.dir.path());
        let out = s.run(&["import", "-c", "CMD [\"sh\"]", "-", "busybox"], &tar);
        assert!(out.status.success(), "{out:?}");
        Some(s)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("pier.sock")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pier` against this root's socket and data root, starting pierd if needed.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
        c.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--data-root")
            .arg(self.dir.path().join("data"))
            .args(args)
            .env("PIER_AUTOSTART", "1")
            // Names no container knows go to loopback, where nothing answers.
            .env(
                "PIERD_FLAGS",
                format!("--bridge {} --dns 127.0.0.1", self.bridge),
            )
            .env_remove("PIER_HOST")
            .env_remove("PIER_DATA_ROOT");
        c
    }

    /// Runs `pier ARGS` with `stdin` piped in, killed after [`COMMAND_TIMEOUT`].
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        finish(self.cmd(args), stdin)
    }

    /// Runs `pier ARGS` and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, b"");
        assert!(
            out.status.success(),
            "pier {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The pid of the pierd that `pier` started here, if it did.
    pub fn daemon_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("pierd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let Some(pid) = self.daemon_pid() else { return };
        let ids = self.run(&["ps", "-aq"], b"");
        let ids = String::from_utf8_lossy(&ids.stdout).to_string();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.run(&args, b"");
        }
        kill(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // pierd takes its bridge and firewall table down when it stops with nothing
        // running; should it have died instead, they go here.
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &format!("pier_{}", self.bridge)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Whether `path` exists; if not, the test is skipped (a failure under `CI`, where
/// `package` must be installed).
pub fn host_has(path: &str, package: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{package} is missing");
    eprintln!("skipped: {path} is missing");
    false
}

/// Runs `cmd` with `stdin` written to it and both output pipes collected, killed
/// after [`COMMAND_TIMEOUT`].
pub fn finish(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    // Read both pipes while waiting, with a deadline.
    let pid = child.id();
    let watchdog = thread::spawn(move || {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            if !alive(pid) {
                return;
            }
        }
        kill(pid, libc::SIGKILL);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    drop(watchdog);
    out
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// kill(2) on a process this test started (pier, or the pierd it had pier start).
pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory effects; the pid is one of this test's children
    // (or the pierd from this test's pid file).
    unsafe { libc::kill(pid as i32, signal) };
}

/// A tar of the busybox rootfs that scripts/busybox-rootfs.sh builds under `dir`.
pub fn rootfs_tar(dir: &Path) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    let rootfs = dir.join("rootfs");
    assert!(Command::new("bash")
        .arg(&script)
        .arg(&rootfs)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &rootfs).unwrap();
    let tar = b.into_inner().unwrap();
    fs::remove_dir_all(&rootfs).unwrap();
    tar
}

/// stdout and stderr as (lossy) text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}
