//! Helpers for tests that drive real container engines (dockerd, containerd, podman):
//! commands with deadlines, daemons stopped by pid when dropped, a pty driver, a
//! scenario report that tells pier-runtime's failures from the environment's, and a
//! host guard that finds, removes and reports whatever a run left on the machine.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// The generic pieces (commands with deadlines, daemons stopped by pid, an isolated
// dockerd) live in pier-testsupport.
pub use pier_testsupport::{
    missing_tool, poll, run, sh_quote, wait_deadline, Containerd, DockerdOptions, IsolatedDockerd,
    Out,
};

/// Set to 1 (CI) to make "could not run here" a failure instead of a warning.
pub const REQUIRE_ENV: &str = "PIER_INTEROP_REQUIRE";

/// Runs `argv` under `script` (util-linux) so that it gets a terminal, as a user's shell
/// would give it; types `input` once `prompt` appears in the output. Returns the exit
/// code and the output with carriage returns removed.
pub fn run_in_pty(
    argv: &[String],
    envs: &[(String, String)],
    prompt: &str,
    input: &str,
    timeout: Duration,
) -> Result<(Option<i32>, String), String> {
    let line: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    let line = line.join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("script -c {line}: cannot spawn: {e}"))?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let sink = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = |seen: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&seen.lock().unwrap()).replace('\r', "")
    };
    let deadline = Instant::now() + timeout;
    // Until the prompt shows, or the command ends without it.
    let prompted = poll(timeout, || {
        if text(&seen).contains(prompt) {
            Some(true)
        } else {
            matches!(child.try_wait(), Ok(Some(_))).then_some(false)
        }
    })
    .unwrap_or(false)
    .then_some(());
    let mut stdin = child.stdin.take().expect("piped stdin");
    if prompted.is_some() {
        let _ = stdin.write_all(input.as_bytes());
        let _ = stdin.flush();
    }
    let status = wait_deadline(
        &mut child,
        deadline.saturating_duration_since(Instant::now()),
    );
    drop(stdin);
    // The reader ends with script; don't hang on it if something else holds the pipe.
    let _ = poll(Duration::from_secs(5), || {
        reader.is_finished().then_some(())
    });
    let out = text(&seen);
    match (prompted, status) {
        (Some(()), Some(s)) => Ok((s.code(), out)),
        (None, _) => Err(format!(
            "{line}: prompt {prompt:?} never appeared (status {status:?}); output: {out:?}"
        )),
        (_, None) => Err(format!("{line}: timed out; output: {out:?}")),
    }
}

/// Paths outside the test's directory that the engines create whatever they are told:
/// shim sockets in /run/containerd/s, ctr FIFOs, dockerd's plugin dir and its managed
/// containerd's /opt/containerd, podman's blob-info cache and the runtimes' default
/// state roots (podman's cleanup process calls the runtime without our flags). The guard
/// removes those the run created: empty directories, and the files listed here.
pub const HOST_PATHS: &[&str] = &[
    "/run/containerd",
    "/run/docker",
    "/opt/containerd",
    "/run/runc",
    "/run/pier-runtime",
    "/var/lib/containers",
    "/etc/docker/key.json",
];
const DISPOSABLE_FILES: &[&str] = &[
    "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
    "/etc/docker/key.json",
];

/// What the host looked like before the test, to find what the test left behind.
/// `finish` (or Drop, after a panic) cleans up and reports. Create it before the
/// daemons, so that it is dropped after them.
pub struct HostGuard {
    pub dir: PathBuf,
    /// Top-level cgroup (in every hierarchy) under which all containers go.
    pub cgroup_parent: String,
    links: BTreeSet<String>,
    firewall: String,
    cgroup_top: BTreeSet<String>,
    host_paths: Vec<(PathBuf, bool)>,
    finished: bool,
}

impl HostGuard {
    pub fn new(dir: &Path, cgroup_parent: &str) -> HostGuard {
        HostGuard {
            dir: dir.to_path_buf(),
            cgroup_parent: cgroup_parent.to_string(),
            links: net_links(),
            firewall: firewall_rules(),
            cgroup_top: dir_names(Path::new("/sys/fs/cgroup")),
            host_paths: HOST_PATHS
                .iter()
                .map(|p| (PathBuf::from(p), Path::new(p).exists()))
                .collect(),
            finished: false,
        }
    }

    /// Cgroups left below `/<parent>/<sub>` in any hierarchy (a container's cgroup that
    /// its runtime should have removed).
    pub fn cgroups_below(&self, sub: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for h in hierarchies() {
            let base = h.join(&self.cgroup_parent).join(sub);
            if let Ok(rd) = std::fs::read_dir(&base) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        found.push(e.path());
                    }
                }
            }
        }
        found
    }

    /// Kills stray processes (by pid), unmounts, removes cgroups and the host paths the
    /// run created; returns what was wrong. Call after the daemons have stopped.
    pub fn finish(&mut self) -> Vec<String> {
        self.finished = true;
        let mut problems = Vec::new();
        self.thaw();
        for _ in 0..3 {
            let strays = self.strays();
            if strays.is_empty() {
                break;
            }
            for (pid, what) in strays {
                problems.push(format!("stray process {pid} killed: {what}"));
                // SAFETY: kill takes a pid and a signal. The pid was just found in this
                // test's directory or cgroups, so it is one of the run's processes.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        for m in self.mounts() {
            problems.push(format!("mount left behind, detached: {}", m.display()));
            if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
                // SAFETY: umount2 takes a NUL-terminated path that outlives the call.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        problems.extend(self.remove_cgroups());
        problems.extend(self.remove_host_paths());
        let links = net_links();
        for l in links.difference(&self.links) {
            problems.push(format!("network device appeared: {l}"));
        }
        let firewall = firewall_rules();
        if firewall != self.firewall {
            problems.push(format!(
                "firewall rules changed:\nbefore:\n{}\nafter:\n{firewall}",
                self.firewall
            ));
        }
        problems
    }

    fn thaw(&self) {
        // Frozen processes cannot die; a paused container must be thawed to be killed.
        for h in hierarchies() {
            for d in pier_testsupport::dirs_post_order(&h.join(&self.cgroup_parent)) {
                let state = d.join("freezer.state");
                if state.exists() {
                    let _ = std::fs::write(&state, "THAWED");
                }
            }
        }
    }

    /// Processes whose command line names the test's directory (daemons, shims, conmon)
    /// or that live in the test's cgroups (containers).
    fn strays(&self) -> Vec<(i32, String)> {
        let me = std::process::id() as i32;
        let dir = self.dir.to_string_lossy().into_owned();
        let cg = format!(":/{}", self.cgroup_parent);
        let mut found = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return found;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            // Zombies are dead already; their parent (or init) reaps them.
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            if pid == me || state.is_none_or(|s| s == 'Z') {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let cgroups = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            let in_cgroup = cgroups
                .lines()
                .any(|l| l.contains(&format!("{cg}/")) || l.ends_with(&cg));
            if cmdline.contains(&dir) || in_cgroup {
                found.push((pid, cmdline.trim().to_string()));
            }
        }
        found
    }

    fn mounts(&self) -> Vec<PathBuf> {
        pier_testsupport::mounts_below(&self.dir)
    }

    fn remove_cgroups(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for h in hierarchies() {
            for d in pier_testsupport::dirs_post_order(&h.join(&self.cgroup_parent)) {
                if let Err(e) = std::fs::remove_dir(&d) {
                    problems.push(format!("cannot remove cgroup {}: {e}", d.display()));
                }
            }
        }
        // A cgroupfs manager that does not check which hierarchies are mounted makes
        // plain directories in the /sys/fs/cgroup tmpfs (podman's conmon cgroup does).
        if unified_only() {
            return problems;
        }
        let root_dev = std::fs::metadata("/sys/fs/cgroup").map(|m| m.dev()).ok();
        for name in dir_names(Path::new("/sys/fs/cgroup")).difference(&self.cgroup_top) {
            let p = Path::new("/sys/fs/cgroup").join(name);
            let plain = std::fs::metadata(&p).map(|m| m.dev()).ok() == root_dev;
            let ours = dir_names(&p) == BTreeSet::from([self.cgroup_parent.clone()]);
            problems.push(format!(
                "{} appeared in /sys/fs/cgroup (no hierarchy is mounted there)",
                p.display()
            ));
            if plain && ours {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        problems
    }

    fn remove_host_paths(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (path, existed) in &self.host_paths {
            if *existed || !path.exists() {
                continue;
            }
            for f in DISPOSABLE_FILES {
                if Path::new(f).starts_with(path) {
                    let _ = std::fs::remove_file(f);
                }
            }
            if path.is_dir() {
                for d in pier_testsupport::dirs_post_order(path) {
                    // Sockets of killed shims (in /run/containerd/s): inert once their
                    // process is gone, and this directory did not exist before the run.
                    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                        if e.file_type().is_ok_and(|t| t.is_socket()) {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                    let _ = std::fs::remove_dir(d);
                }
            }
            if path.exists() {
                problems.push(format!(
                    "{} was created by the run and is not empty",
                    path.display()
                ));
            }
        }
        problems
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if !self.finished {
            for p in self.finish() {
                eprintln!("cleanup: {p}");
            }
        }
    }
}

/// The unified hierarchy itself, or each v1 (and hybrid) hierarchy's mount point.
fn hierarchies() -> Vec<PathBuf> {
    if unified_only() {
        return vec![PathBuf::from("/sys/fs/cgroup")];
    }
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn unified_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn net_links() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// iptables and ip6tables rules (read-only listings), where the tools exist.
fn firewall_rules() -> String {
    let mut all = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        if let Ok(out) = Command::new(tool).stderr(Stdio::null()).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            // Drop the comment lines: they carry a timestamp.
            for l in text.lines().filter(|l| !l.starts_with('#')) {
                all.push_str(l);
                all.push('\n');
            }
        }
    }
    all
}

/// Results of each scenario with each runtime; pier-runtime's failures are only its
/// own when the reference runtime (runc) passes the same scenario.
type RuntimeResult = (String, Result<(), String>);

pub struct Report {
    tool: String,
    reference: String,
    rows: Vec<(String, Vec<RuntimeResult>)>,
}

impl Report {
    pub fn new(tool: &str, reference: &str) -> Report {
        Report {
            tool: tool.to_string(),
            reference: reference.to_string(),
            rows: Vec::new(),
        }
    }

    pub fn record(&mut self, scenario: &str, runtime: &str, result: Result<(), String>) {
        if let Err(e) = &result {
            eprintln!("{} / {scenario} / {runtime}: FAILED: {e}", self.tool);
        }
        match self.rows.iter_mut().find(|(s, _)| s == scenario) {
            Some((_, r)) => r.push((runtime.to_string(), result)),
            None => self
                .rows
                .push((scenario.to_string(), vec![(runtime.to_string(), result)])),
        }
    }

    /// Prints the table; panics on pier-runtime failures, on leftovers, and (with
    /// PIER_INTEROP_REQUIRE=1) on scenarios the reference runtime fails too.
    pub fn finish(self, pier: &str, leftovers: Vec<String>) {
        let require = std::env::var(REQUIRE_ENV).as_deref() == Ok("1");
        let mut failures = Vec::new();
        let mut table = format!("{} interop results:\n", self.tool);
        for (scenario, results) in &self.rows {
            let get = |rt: &str| results.iter().find(|(r, _)| r == rt).map(|(_, x)| x);
            let cell = |r: Option<&Result<(), String>>| match r {
                None => "-",
                Some(Ok(())) => "ok",
                Some(Err(_)) => "FAIL",
            };
            let (reference, ours) = (get(&self.reference), get(pier));
            table.push_str(&format!(
                "  {scenario:<28} {}={:<5} {pier}={}\n",
                self.reference,
                cell(reference),
                cell(ours)
            ));
            match (reference, ours) {
                (Some(Err(re)), Some(Err(pe))) => {
                    let msg = format!(
                        "{scenario}: fails with {} too, so not counted against {pier} \
                         (environment or test problem)\n  {}: {re}\n  {pier}: {pe}",
                        self.reference, self.reference
                    );
                    if require {
                        failures.push(msg);
                    } else {
                        eprintln!("warning: {} / {msg}", self.tool);
                    }
                }
                (_, Some(Err(pe))) => failures.push(format!("{pier} / {scenario}: {pe}")),
                (Some(Err(re)), _) => {
                    let msg = format!("{scenario}: reference {} fails: {re}", self.reference);
                    if require {
                        failures.push(msg);
                    } else {
                        eprintln!("warning: {} / {msg}", self.tool);
                    }
                }
                _ => {}
            }
        }
        eprint!("{table}");
        for l in leftovers {
            failures.push(format!("left behind: {l}"));
        }
        assert!(
            failures.is_empty(),
            "{} interop: {} failure(s):\n{}\n{table}",
            self.tool,
            failures.len(),
            failures.join("\n")
        );
    }
}

/// For "cannot run here" (a tool missing, a daemon that won't start): warn and let the
/// test pass, unless PIER_INTEROP_REQUIRE=1.
pub fn not_run_here(tool: &str, why: &str) {
    let msg = format!("{tool} interop NOT RUN on this host: {why}");
    assert!(
        std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
        "{msg} ({REQUIRE_ENV}=1)"
    );
    eprintln!("WARNING: {msg}");
}

/// A limit no higher than the current hard one: an engine that asks for more (podman
/// asks for 1048576 open files) fails where CAP_SYS_RESOURCE is missing.
pub fn hard_limit(resource: libc::__rlimit_resource_t, cap: u64) -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(resource, &mut rl) } != 0 {
        return 1024;
    }
    rl.rlim_max.min(cap)
}
