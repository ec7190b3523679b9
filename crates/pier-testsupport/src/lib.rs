//! Test harness shared by Pier's crates (a dev-dependency only, never published).
//!
//! - [`run`]: a command with stdin closed, its output captured through files and a
//!   deadline after which it is killed (by pid); [`Out`] is what it did.
//! - [`Daemon`]: a long-running process with a log, stopped by its pid (SIGTERM, then
//!   SIGKILL) when dropped, also when a test panics.
//! - [`Containerd`] and [`IsolatedDockerd`]: real daemons on their own sockets and
//!   directories (nothing under /var/lib, /run or /etc of the host), cleaned up when
//!   dropped.
//! - [`require_tools`] / [`skip`]: tests skip with a message when a tool is missing,
//!   unless `CI` is set: then a missing tool is a failure.
//! - [`volume_plugin`]: a test volume plugin (HTTP on a unix socket) that records its calls.
//! - [`tree`]: what a directory tree holds, to compare a copy with its source.
//! - [`swagger`]: names and definitions' properties of the Engine API contract.
//! - [`debian`]: a Debian rootfs tarball (debootstrap, cached across runs).

pub mod debian;
pub mod http_server;
pub mod registry;
pub mod swagger;
pub mod tree;
pub mod volume_plugin;

use std::ffi::OsString;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub desc: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Ok if the command exited 0.
    pub fn ok(self) -> Result<Out, String> {
        if self.code == Some(0) {
            Ok(self)
        } else {
            Err(self.explain("failed"))
        }
    }

    pub fn explain(&self, what: &str) -> String {
        format!(
            "{}: {what} (exit {:?})\n  stdout: {}\n  stderr: {}",
            self.desc,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with stdin closed; kills it (by pid) if it outlives `timeout`. Output goes
/// through files: a daemonized grandchild holding a pipe must not make us wait.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Out, String> {
    let desc = describe(cmd);
    let out = tempfile::tempfile().map_err(|e| e.to_string())?;
    let err = tempfile::tempfile().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(err.try_clone().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{desc}: cannot spawn: {e}"))?;
    let status = wait_deadline(&mut child, timeout);
    let stdout = read_file(out);
    let stderr = read_file(err);
    match status {
        Some(s) => Ok(Out {
            desc,
            code: s.code(),
            stdout,
            stderr,
        }),
        None => Err(format!(
            "{desc}: timed out after {timeout:?}\n  stdout: {}\n  stderr: {}",
            stdout.trim_end(),
            stderr.trim_end()
        )),
    }
}

/// [`run`], and an error unless it exited 0; returns stdout.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    Ok(run(cmd, timeout)?.ok()?.stdout)
}

fn read_file(mut f: std::fs::File) -> String {
    let mut v = Vec::new();
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.read_to_end(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// Waits for `child` until `timeout`, then SIGKILLs it; None on timeout.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 100ms until it returns Some, or gives up after `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Quotes `s` for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `name`'s path in PATH, if it is there.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The first of `names` missing from PATH.
pub fn missing_tool(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| which(n).is_none())
        .map(|n| n.to_string())
}

/// Whether this is a CI run (`CI` set): there, whatever a test needs must be present.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A test that cannot run here: prints why and returns (the caller returns too), or
/// panics when `CI` is set.
pub fn skip(test: &str, why: &str) {
    let msg = format!("{test}: SKIPPED: {why}");
    assert!(!in_ci(), "{msg} (CI is set, so this is a failure)");
    eprintln!("{msg}");
}

/// Ok if every tool in `names` is in PATH; otherwise [`skip`]s (or panics under CI)
/// and returns false.
pub fn require_tools(test: &str, names: &[&str]) -> bool {
    match missing_tool(names) {
        None => true,
        Some(t) => {
            skip(
                test,
                &format!("{t} is not installed (see scripts/setup.sh)"),
            );
            false
        }
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------
// Daemons

/// A daemon started by a test, stopped (SIGTERM, then SIGKILL) by its pid when dropped.
pub struct Daemon {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    stopped: bool,
}

impl Daemon {
    /// Spawns `cmd` with stdin closed and stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Daemon, String> {
        let f = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let desc = describe(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .spawn()
            .map_err(|e| format!("{desc}: cannot spawn: {e}"))?;
        Ok(Daemon {
            name: name.to_string(),
            child,
            log,
            stopped: false,
        })
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until `ready` holds; an error (with the log's tail) if the daemon exits or
    /// takes longer than `timeout`.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                return Err(format!(
                    "{} exited during startup ({status}); log:\n{}",
                    self.name,
                    self.log_tail(30)
                ));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready after {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, up to 30s for a clean shutdown (dockerd stops its containerd and unmounts
    /// its data root), then SIGKILL. Returns a note if it had to be killed.
    pub fn stop(&mut self) -> Option<String> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        if let Ok(Some(_)) = self.child.try_wait() {
            return None;
        }
        // SAFETY: kill takes a pid and a signal; the pid is our own unreaped child, so it
        // cannot have been recycled for another process.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        if wait_deadline(&mut self.child, Duration::from_secs(30)).is_some() {
            return None;
        }
        Some(format!(
            "{} (pid {}) ignored SIGTERM for 30s and was killed",
            self.name,
            self.pid()
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(note) = self.stop() {
            eprintln!("warning: {note}");
        }
    }
}

/// A containerd of the test's own: its config, root, state, socket, and the opt
/// plugin's directory (default /opt/containerd) under one directory.
pub struct Containerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub daemon: Daemon,
}

impl Containerd {
    /// Starts containerd in `dir` (created if missing) and waits until `ctr version`
    /// answers on its socket (up to `timeout`).
    pub fn start(dir: &Path, timeout: Duration) -> Result<Containerd, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let d = dir.display();
        let sock = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{}\"\n[debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
            sock.display()
        );
        std::fs::write(dir.join("config.toml"), config).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(dir.join("config.toml"));
        let mut daemon = Daemon::spawn("containerd", cmd, dir.join("containerd.log"))?;
        daemon.wait_ready(timeout, || {
            run(
                Command::new("ctr")
                    .arg("--address")
                    .arg(&sock)
                    .arg("version"),
                Duration::from_secs(10),
            )
            .is_ok_and(|o| o.code == Some(0))
        })?;
        Ok(Containerd {
            dir: dir.to_path_buf(),
            sock,
            daemon,
        })
    }
}

/// If this exists, dockerd would use that (the system's) containerd instead of its own.
pub const SYSTEM_CONTAINERD_SOCK: &str = "/run/containerd/containerd.sock";

/// How to start an [`IsolatedDockerd`].
#[derive(Debug, Clone)]
pub struct DockerdOptions {
    /// `--cgroup-parent` (a cgroupfs path such as `/pier-test-1`); default: one named
    /// after this process and the daemon.
    pub cgroup_parent: Option<String>,
    /// More dockerd arguments (`--add-runtime`, ...).
    pub extra_args: Vec<OsString>,
    /// How long dockerd may take to answer `docker version`.
    pub ready_timeout: Duration,
    /// The deadline of each [`IsolatedDockerd::docker`] command.
    pub cmd_timeout: Duration,
}

impl Default for DockerdOptions {
    fn default() -> DockerdOptions {
        DockerdOptions {
            cgroup_parent: None,
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            cmd_timeout: Duration::from_secs(120),
        }
    }
}

/// A real dockerd of the test's own: its socket, data root, exec root, pid file and
/// config (and trust key) in one directory; no bridge, no iptables, cgroupfs cgroups
/// under their own parent. When a system containerd answers on
/// [`SYSTEM_CONTAINERD_SOCK`] (dockerd would silently use it), a containerd of our own
/// is started for it in the same directory.
///
/// [`stop`](Self::stop) (or Drop, also after a panic) removes the containers, stops
/// dockerd and our containerd by pid, kills dockerd's managed containerd should it have
/// outlived dockerd, detaches the mounts left under the directory and removes the
/// cgroup parent; the temporary directory of [`start`](Self::start) is then removed.
pub struct IsolatedDockerd {
    dir: PathBuf,
    cgroup_parent: String,
    cmd_timeout: Duration,
    // Fields drop in order: dockerd stops before a containerd of ours it may use, and
    // the directory goes last.
    dockerd: Daemon,
    containerd: Option<Containerd>,
    tmp: Option<tempfile::TempDir>,
    cleaned: bool,
}

impl IsolatedDockerd {
    /// Starts dockerd in a new temporary directory (removed when dropped).
    pub fn start(opts: DockerdOptions) -> Result<IsolatedDockerd, String> {
        let tmp = tempfile::Builder::new()
            .prefix("pier-dockerd-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut d = IsolatedDockerd::start_in(tmp.path(), opts)?;
        d.tmp = Some(tmp);
        Ok(d)
    }

    /// Starts dockerd with its files in `dir` (an existing directory the caller owns).
    pub fn start_in(dir: &Path, opts: DockerdOptions) -> Result<IsolatedDockerd, String> {
        let cgroup_parent = opts.cgroup_parent.clone().unwrap_or_else(|| {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            format!(
                "/pier-test-dockerd-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )
        });
        // The trust key would otherwise go to /etc/docker/key.json; a config file of our
        // own also keeps /etc/docker/daemon.json out.
        let config = format!(
            "{{\"deprecated-key-path\":{}}}",
            json_string(&dir.join("key.json").to_string_lossy())
        );
        std::fs::write(dir.join("daemon.json"), config).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("dockerd");
        cmd.arg("--host")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .args(&opts.extra_args)
            .args(["--log-level", "warn"]);
        // Without --containerd, dockerd runs its own containerd with its socket under
        // --exec-root and its data under --data-root, unless a containerd answers on the
        // system socket: then it would silently use that one. Ours, in that case.
        let containerd = if Path::new(SYSTEM_CONTAINERD_SOCK).exists() {
            let c = Containerd::start(&dir.join("containerd"), opts.ready_timeout)?;
            cmd.arg("--containerd").arg(&c.sock);
            Some(c)
        } else {
            None
        };
        let dockerd = Daemon::spawn("dockerd", cmd, dir.join("dockerd.log"))?;
        // From here on a failure drops `d`, which cleans up.
        let mut d = IsolatedDockerd {
            dir: dir.to_path_buf(),
            cgroup_parent,
            cmd_timeout: opts.cmd_timeout,
            dockerd,
            containerd,
            tmp: None,
            cleaned: false,
        };
        let sock = dir.join("docker.sock");
        d.dockerd.wait_ready(opts.ready_timeout, || {
            sock.exists()
                && run(docker_command(dir).arg("version"), Duration::from_secs(10))
                    .is_ok_and(|o| o.code == Some(0))
        })?;
        let pidfile = std::fs::read_to_string(dir.join("docker.pid")).unwrap_or_default();
        if pidfile.trim() != d.dockerd.pid().to_string() {
            return Err(format!(
                "dockerd's --pidfile says {pidfile:?}, its pid is {}",
                d.dockerd.pid()
            ));
        }
        Ok(d)
    }

    /// [`start`](Self::start), or None after printing why dockerd cannot run here (a
    /// kernel or host that does not let it start is the environment's problem, not the
    /// test's). With `PIER_INTEROP_REQUIRE=1` that is a failure instead.
    pub fn start_or_skip(test: &str, opts: DockerdOptions) -> Option<IsolatedDockerd> {
        match IsolatedDockerd::start(opts) {
            Ok(d) => Some(d),
            Err(e) => {
                let msg = format!("{test}: SKIPPED: dockerd cannot start here: {e}");
                assert!(
                    std::env::var("PIER_INTEROP_REQUIRE").as_deref() != Ok("1"),
                    "{msg} (PIER_INTEROP_REQUIRE=1)"
                );
                eprintln!("{msg}");
                None
            }
        }
    }

    /// The directory holding the daemon's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `unix://<socket>`, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// The path of the daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn daemon(&self) -> &Daemon {
        &self.dockerd
    }

    /// A `docker` command talking to this daemon (DOCKER_HOST set; the CLI's own
    /// config, contexts and auth, stays out of ~/.docker).
    pub fn command(&self) -> Command {
        docker_command(&self.dir)
    }

    /// The environment [`command`](Self::command) sets, for commands run otherwise.
    pub fn env(&self) -> Vec<(String, String)> {
        self.command()
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect()
    }

    /// Runs `docker <args>` against this daemon, bounded by the options' `cmd_timeout`.
    pub fn docker(&self, args: &[&str]) -> Result<Out, String> {
        run(self.command().args(args), self.cmd_timeout)
    }

    /// [`docker`](Self::docker), and an error unless it exited 0; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> Result<String, String> {
        Ok(self.docker(args)?.ok()?.stdout)
    }

    /// Removes every container (`docker rm -f`) and user network, if dockerd is still
    /// running.
    pub fn remove_containers_and_networks(&self) {
        if self.dockerd.stopped() {
            return;
        }
        if let Ok(out) = self.docker(&["ps", "-aq"]) {
            let ids: Vec<&str> = out.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker(&args);
            }
        }
        // Its user networks too: dockerd takes their bridges down only when it removes
        // them, and a test that failed halfway would leave them on the host.
        let _ = self.docker(&["network", "prune", "-f"]);
    }

    /// Removes the containers and user networks, stops the daemons and cleans up; returns what was wrong
    /// (a daemon that had to be killed, mounts or cgroups left behind). Idempotent.
    pub fn stop(&mut self) -> Vec<String> {
        self.remove_containers_and_networks();
        let mut notes: Vec<String> = self.dockerd.stop().into_iter().collect();
        if let Some(c) = &mut self.containerd {
            notes.extend(c.daemon.stop());
        }
        if self.cleaned {
            return notes;
        }
        self.cleaned = true;
        // dockerd's own containerd, should it have outlived dockerd.
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            // Only if that pid still is a containerd of this directory.
            if String::from_utf8_lossy(&cmdline).contains(&*self.dir.to_string_lossy()) {
                notes.push(format!(
                    "dockerd's containerd (pid {pid}) outlived it; killed"
                ));
                // SAFETY: kill takes a pid and a signal; the pid's command line names
                // our directory, so it is the daemon we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = poll(Duration::from_secs(5), || {
                    (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
                });
            }
        }
        for m in detach_mounts_below(&self.dir) {
            notes.push(format!("mount left behind, detached: {}", m.display()));
        }
        notes.extend(remove_cgroup(&self.cgroup_parent));
        notes
    }
}

impl Drop for IsolatedDockerd {
    fn drop(&mut self) {
        for note in self.stop() {
            eprintln!("dockerd cleanup: {note}");
        }
    }
}

/// A `docker` command for the daemon whose files are in `dir`.
fn docker_command(dir: &Path) -> Command {
    let mut c = Command::new("docker");
    c.env(
        "DOCKER_HOST",
        format!("unix://{}", dir.join("docker.sock").display()),
    )
    .env("DOCKER_CONFIG", dir.join("cli"));
    c
}

/// `s` as a JSON string.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_octal(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Detaches (lazily unmounts) the mount points at or below `dir`, deepest first; returns
/// them.
pub fn detach_mounts_below(dir: &Path) -> Vec<PathBuf> {
    let found = mounts_below(dir);
    for m in &found {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2 takes a NUL-terminated path that outlives the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|_| b[i] == b'\\');
        if let Some(v) =
            octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok())
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the cgroup `parent` (and empty cgroups below it) in every hierarchy; returns
/// the ones that could not be removed.
fn remove_cgroup(parent: &str) -> Vec<String> {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty() {
        return Vec::new();
    }
    let hierarchies: Vec<PathBuf> = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        vec![PathBuf::from("/sys/fs/cgroup")]
    } else {
        std::fs::read_dir("/sys/fs/cgroup")
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    for h in hierarchies {
        for d in dirs_post_order(&h.join(rel)) {
            if let Err(e) = std::fs::remove_dir(&d) {
                problems.push(format!("cannot remove cgroup {}: {e}", d.display()));
            }
        }
    }
    problems
}

/// `dir` and every directory below it, children before parents.
pub fn dirs_post_order(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return out;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(dirs_post_order(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// `prefix` and 8 random hex digits: a name no other test run uses (network devices
/// are at most 15 bytes: keep prefixes short).
pub fn unique_name(prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// Removes a test daemon's default bridge and its firewall table (`pier_<bridge>`)
/// if they are still there (after a crash), and says so.
pub fn remove_bridge_and_table(bridge: &str) {
    let link = Command::new("ip")
        .args(["link", "delete", bridge])
        .stderr(Stdio::null())
        .status();
    if link.is_ok_and(|s| s.success()) {
        eprintln!("warning: bridge {bridge} was left behind; deleted");
    }
    let table = format!(
        "pier_{}",
        bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let nft = Command::new("nft")
        .args(["delete", "table", "inet", &table])
        .stderr(Stdio::null())
        .status();
    if nft.is_ok_and(|s| s.success()) {
        eprintln!("warning: nftables table {table} was left behind; deleted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_code() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(out.ok().is_err());
    }

    #[test]
    fn run_kills_at_deadline() {
        let start = Instant::now();
        let err = run(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn quoting_and_escapes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(unescape_octal(r"/a\040b"), "/a b");
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
    }
}
