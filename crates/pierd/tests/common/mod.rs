//! Test harness for pierd: a daemon of the test's own (temp data root, exec root and
//! socket), driven with the real `docker` CLI.
//!
//! [`Pierd`] is stopped by its pid (SIGTERM, then SIGKILL) and its directories are
//! removed when it is dropped, also when the test panics. [`Engine`] is what a
//! scenario needs from a daemon, so one script can run against pierd and against a
//! real dockerd ([`pier_testsupport::IsolatedDockerd`]) and the outputs be compared.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pier_testsupport::{mounts_below, wait_deadline, Daemon, IsolatedDockerd, Out};

/// The docker CLI the tests drive.
pub const DOCKER: &str = "/usr/local/bin/docker";

/// How long one docker command may take.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// What a scenario needs from a daemon: a `docker` command talking to it.
pub trait Engine {
    /// A `docker` command with `DOCKER_HOST` and an isolated `DOCKER_CONFIG` set.
    fn command(&self) -> Command;

    /// Runs `docker <args>` with stdin closed, bounded by [`CMD_TIMEOUT`].
    fn docker(&self, args: &[&str]) -> Out {
        let mut cmd = self.command();
        cmd.args(args);
        pier_testsupport::run(&mut cmd, CMD_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`docker`](Self::docker), panicking unless it exited 0; returns stdout.
    fn docker_ok(&self, args: &[&str]) -> String {
        match self.docker(args).ok() {
            Ok(out) => out.stdout,
            Err(e) => panic!("{e}"),
        }
    }

    /// Runs `docker <args>` with the file `stdin` as its standard input.
    fn docker_with_stdin(&self, args: &[&str], stdin: &Path) -> Out {
        let input = File::open(stdin).unwrap_or_else(|e| panic!("{}: {e}", stdin.display()));
        let mut cmd = self.command();
        cmd.args(args);
        run_with_stdin(&mut cmd, Stdio::from(input))
    }
}

/// Runs `cmd` with `stdin`, output through files, killed at [`CMD_TIMEOUT`].
pub fn run_with_stdin(cmd: &mut Command, stdin: Stdio) -> Out {
    let desc = pier_testsupport::describe(cmd);
    let out = tempfile::tempfile().expect("temp file");
    let err = tempfile::tempfile().expect("temp file");
    let mut child = cmd
        .stdin(stdin)
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .spawn()
        .unwrap_or_else(|e| panic!("{desc}: cannot spawn: {e}"));
    let status = wait_deadline(&mut child, CMD_TIMEOUT);
    let stdout = read_all(out);
    let stderr = read_all(err);
    match status {
        Some(s) => Out {
            desc,
            code: s.code(),
            stdout,
            stderr,
        },
        None => panic!(
            "{desc}: timed out after {CMD_TIMEOUT:?}\n  stdout: {stdout}\n  stderr: {stderr}"
        ),
    }
}

fn read_all(mut f: File) -> String {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.read_to_end(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// A pierd of the test's own.
pub struct Pierd {
    // Drop order: the daemon stops (in `Drop::drop`) before the directory goes.
    daemon: Daemon,
    tmp: tempfile::TempDir,
    /// Flags added to every start of this daemon ([`Pierd::start_with_args`]).
    extra_args: Vec<String>,
}

impl Pierd {
    /// Starts `pierd` with its data root, exec root and socket in a new temp
    /// directory and waits until `/_ping` answers.
    pub fn start() -> Pierd {
        Pierd::start_with_args(&[])
    }

    /// [`start`](Self::start) with more daemon flags (e.g. `-H tcp://…`, `--tlsverify`).
    pub fn start_with_args(extra_args: &[&str]) -> Pierd {
        Pierd::start_with_setup(extra_args, &mut |_| {})
    }

    /// [`start_with_args`](Self::start_with_args), with `setup` applied to pierd's
    /// command first (e.g. to hand it an inherited descriptor). A restart does not
    /// apply it again.
    pub fn start_with_setup(extra_args: &[&str], setup: &mut dyn FnMut(&mut Command)) -> Pierd {
        let mut extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        // Each test daemon has its own default bridge (and so its own firewall table).
        if !extra_args
            .iter()
            .any(|a| a == "--bridge" || a == "-b" || a.starts_with("--bridge="))
        {
            extra_args.push("--bridge".into());
            extra_args.push(pier_testsupport::unique_name("pt"));
        }
        // Names no container knows are relayed to a resolver on loopback (nothing
        // leaves the machine), unless the test picks its own.
        if !extra_args.iter().any(|a| a == "--dns") {
            extra_args.push("--dns".into());
            extra_args.push("127.0.0.1".into());
        }
        let runtime = Path::new(env!("CARGO_BIN_EXE_pierd")).with_file_name("pier-runtime");
        assert!(
            runtime.is_file(),
            "{} is missing: build it first (cargo build -p pier-runtime)",
            runtime.display()
        );
        let tmp = tempfile::Builder::new()
            .prefix("pierd-test-")
            .tempdir()
            .expect("temp dir");
        let daemon = spawn_daemon_with(tmp.path(), &extra_args, setup);
        Pierd {
            daemon,
            tmp,
            extra_args,
        }
    }

    /// The daemon's default bridge device.
    pub fn bridge(&self) -> Option<String> {
        let at = self.extra_args.iter().position(|a| a == "--bridge")?;
        self.extra_args.get(at + 1).cloned()
    }

    /// `kill -9` of the daemon, `down` of nothing, then a new daemon on the same
    /// roots (live restore).
    pub fn crash_and_restart(&mut self, down: Duration) {
        self.crash_and_restart_with(down, || {});
    }

    /// [`crash_and_restart`](Self::crash_and_restart), running `meanwhile` while pierd
    /// is down.
    pub fn crash_and_restart_with(&mut self, down: Duration, meanwhile: impl FnOnce()) {
        // SAFETY: kill(2) on the pid of the daemon this harness spawned.
        unsafe { libc::kill(self.daemon.pid(), libc::SIGKILL) };
        let _ = self.daemon.stop();
        meanwhile();
        std::thread::sleep(down);
        self.daemon = spawn_daemon(self.tmp.path(), &self.extra_args);
    }

    /// Processes of this daemon's container monitors (their command line names the
    /// exec root), by pid.
    pub fn monitor_pids(&self) -> Vec<i32> {
        let needle = self.exec_root().display().to_string();
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(" monitor ") && text.contains(&needle) {
                out.push(pid);
            }
        }
        out
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir().join("pier.sock")
    }

    /// `unix://<socket>`, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir().join("data")
    }

    pub fn exec_root(&self) -> PathBuf {
        self.dir().join("exec")
    }

    pub fn pid(&self) -> i32 {
        self.daemon.pid()
    }

    /// The end of the daemon's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 30s); idempotent.
    pub fn stop(&mut self) -> Option<String> {
        self.daemon.stop()
    }
}

impl Engine for Pierd {
    fn command(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir().join("cli"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION");
        c
    }
}

impl Engine for IsolatedDockerd {
    fn command(&self) -> Command {
        let mut c = IsolatedDockerd::command(self);
        c.env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION");
        c
    }
}

impl Drop for Pierd {
    fn drop(&mut self) {
        // Containers outlive pierd by design: remove them first, then make sure no
        // monitor of ours is left (its container goes with it).
        if !self.daemon.stopped() {
            let ids = self.docker(&["ps", "-aq", "--no-trunc"]).stdout;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker(&args);
            }
        }
        for pid in self.monitor_pids() {
            eprintln!("warning: container monitor {pid} left behind; killing its container");
            let init = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .ok()
                .and_then(|c| c.split('\0').nth(2).map(str::to_string))
                .and_then(|cfg| {
                    std::fs::read_to_string(Path::new(&cfg).with_file_name("init.pid")).ok()
                })
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(init) = init {
                // SAFETY: kill(2) on the init of a container this test created.
                unsafe { libc::kill(init, libc::SIGKILL) };
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(note) = self.daemon.stop() {
            eprintln!("warning: {note}");
        }
        // An orderly stop with nothing running takes pierd's bridges and table down;
        // after a crash they would stay: remove the default ones by name.
        if let Some(bridge) = self.bridge() {
            pier_testsupport::remove_bridge_and_table(&bridge);
        }
        // Whatever the daemon left mounted below its directories must not keep the
        // temp directory from going.
        for m in mounts_below(self.tmp.path()) {
            eprintln!(
                "warning: pierd left a mount behind, detached: {}",
                m.display()
            );
            if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
                // SAFETY: umount2 takes a NUL-terminated path that outlives the call.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

fn spawn_daemon(dir: &Path, extra_args: &[String]) -> Daemon {
    spawn_daemon_with(dir, extra_args, &mut |_| {})
}

fn spawn_daemon_with(
    dir: &Path,
    extra_args: &[String],
    setup: &mut dyn FnMut(&mut Command),
) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pierd"));
    cmd.arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("pier.sock").display()))
        .args(extra_args);
    setup(&mut cmd);
    let mut daemon =
        Daemon::spawn("pierd", cmd, dir.join("pierd.log")).unwrap_or_else(|e| panic!("{e}"));
    let sock = dir.join("pier.sock");
    daemon
        .wait_ready(Duration::from_secs(30), || ping(&sock))
        .unwrap_or_else(|e| panic!("{e}"));
    daemon
}

/// Whether `GET /_ping` on the socket answers `OK`.
fn ping(sock: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: pierd\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.ends_with("OK")
}

/// A busybox rootfs tar made by `scripts/busybox-rootfs.sh` in `dir`; None (after
/// printing why, or a panic under `CI`) when busybox or the docker CLI is missing.
pub fn busybox_rootfs_tar(dir: &Path) -> Option<PathBuf> {
    if !Path::new(DOCKER).exists() {
        pier_testsupport::skip("docker CLI", &format!("{DOCKER} is missing"));
        return None;
    }
    if !Path::new("/bin/busybox").exists() {
        pier_testsupport::skip("busybox rootfs", "/bin/busybox is missing (busybox-static)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    let rootfs = dir.join("rootfs");
    pier_testsupport::run_ok(
        Command::new("bash").arg(&script).arg(&rootfs),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tar = dir.join("busybox-rootfs.tar");
    pier_testsupport::run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Some(tar)
}

/// A pierd with a `busybox` image imported (from `busybox_rootfs_tar`); None when the
/// host lacks what it needs. The temp dir holds the rootfs and tar.
pub fn pierd_with_busybox() -> Option<(Pierd, tempfile::TempDir)> {
    pierd_with_busybox_args(&[])
}

/// [`pierd_with_busybox`] with more daemon flags.
pub fn pierd_with_busybox_args(extra_args: &[&str]) -> Option<(Pierd, tempfile::TempDir)> {
    let work = tempfile::tempdir().expect("temp dir");
    let tar = busybox_rootfs_tar(work.path())?;
    let pierd = Pierd::start_with_args(extra_args);
    let out = pierd.docker_with_stdin(&["import", "-c", "CMD [\"sh\"]", "-", "busybox"], &tar);
    assert_eq!(out.code, Some(0), "{out:?}");
    Some((pierd, work))
}

/// A pierd and a real, isolated dockerd (`test` names it in a skip message), each with
/// the same `busybox` image imported; None when the host lacks what they need. The
/// temp dir holds the rootfs and tar.
pub fn pierd_and_dockerd_with_busybox(
    test: &str,
) -> Option<(Pierd, IsolatedDockerd, tempfile::TempDir)> {
    let work = tempfile::tempdir().expect("temp dir");
    let tar = busybox_rootfs_tar(work.path())?;
    let dockerd =
        IsolatedDockerd::start_or_skip(test, pier_testsupport::DockerdOptions::default())?;
    let pierd = Pierd::start();
    for e in [&pierd as &dyn Engine, &dockerd] {
        let out = e.docker_with_stdin(&["import", "-c", "CMD [\"sh\"]", "-", "busybox"], &tar);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    Some((pierd, dockerd, work))
}

/// One API request (API version 1.41, which both pierd and dockerd 20.10 serve) over a
/// daemon's unix socket, with curl: (status, body without its final newline).
pub fn api(socket: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "60", "--unix-socket"])
        .arg(socket)
        .args(["-X", method, "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/json"]);
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    cmd.arg(format!("http://docker/v1.41{path}"));
    let out =
        pier_testsupport::run(&mut cmd, Duration::from_secs(90)).unwrap_or_else(|e| panic!("{e}"));
    let (text, code) = out
        .stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("no status from curl: {out:?}"));
    (
        code.trim().parse().unwrap_or_else(|_| panic!("{out:?}")),
        // dockerd ends its bodies with a newline, pierd does not.
        text.trim_end().to_string(),
    )
}

/// Lines of this process's mountinfo that mention `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Polls `f` every 100 ms until it is true or `timeout` passes; the last answer.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Splits a command line at spaces, keeping '...' quoted parts whole.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in line.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// What a hijacked attach or exec start gave: the status line, the stream's bytes, and whether the
/// daemon ended the stream (false: still open at the deadline).
#[derive(Debug)]
pub struct Hijacked {
    pub status: String,
    pub body: Vec<u8>,
    pub ended: bool,
}

/// `POST /v1.41<path>` with `Upgrade: tcp` and a JSON `body` on `socket`, as
/// docker-py and bollard hijack attach and exec start; read until the daemon closes
/// the stream or `timeout` passes.
pub fn hijack_to_end(socket: &Path, path: &str, body: &str, timeout: Duration) -> Hijacked {
    let mut s = UnixStream::connect(socket).expect("connect");
    let request = format!(
        "POST /v1.41{path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    let ended = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break false,
            Err(_) => break true,
        }
    };
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    Hijacked {
        status: head.lines().next().unwrap_or_default().to_string(),
        body: all[head_end + 4..].to_vec(),
        ended,
    }
}

/// Docker's multiplexed frames as (stream, text).
pub fn demux(mut body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while body.len() >= 8 {
        let len = u32::from_be_bytes([body[4], body[5], body[6], body[7]]) as usize;
        assert!(body.len() >= 8 + len, "a cut frame: {body:?}");
        out.push((
            body[0],
            String::from_utf8_lossy(&body[8..8 + len]).into_owned(),
        ));
        body = &body[8 + len..];
    }
    assert!(body.is_empty(), "trailing bytes: {body:?}");
    out
}

/// Runs `f` (engine name, engine, its socket) on an isolated dockerd and on pierd,
/// each with `busybox`; on pierd alone when dockerd cannot run here (the skip is
/// printed).
pub fn with_busybox_engines(test: &str, mut f: impl FnMut(&str, &dyn Engine, &Path)) {
    if let Some((pierd, dockerd, _work)) = pierd_and_dockerd_with_busybox(test) {
        f("dockerd", &dockerd, &dockerd.socket());
        f("pierd", &pierd, &pierd.socket());
    } else if let Some((pierd, _work)) = pierd_with_busybox() {
        f("pierd", &pierd, &pierd.socket());
    }
}

/// A cgroup parent of the test's own (`--cgroup-parent /NAME`): its directories in
/// every hierarchy are removed at the end (also on failure).
pub struct CgroupParent(pub String);

impl CgroupParent {
    pub fn new(prefix: &str) -> CgroupParent {
        CgroupParent(pier_testsupport::unique_name(prefix))
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for h in hierarchies.flatten() {
            let _ = std::fs::remove_dir(h.path().join(&self.0));
        }
        let _ = std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(&self.0));
    }
}
