//! Interop: pier-runtime driven by real engines: dockerd (through its managed containerd
//! and the runc shim), podman (through conmon) and containerd's `ctr` (through the runc
//! shim). Each engine is started by the test on its own socket and directories, stopped
//! by pid at the end (also when a check fails: Drop guards), and the host is checked for
//! leftovers: processes, mounts, cgroups, paths, network devices, firewall rules.
//!
//! Every scenario runs with runc too: a scenario that passes with runc and fails with
//! pier-runtime is pier-runtime's bug; one that fails with both is reported as an
//! environment (or test) problem. An engine that cannot run on the host at all is
//! reported and skipped; `PIER_INTEROP_REQUIRE=1` (CI) turns both into failures.

mod common;
#[path = "common/daemons.rs"]
mod daemons;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::{make_busybox_rootfs, require_root, which};
use daemons::{
    hard_limit, missing_tool, not_run_here, poll, run, run_in_pty, Containerd, DockerdOptions,
    HostGuard, IsolatedDockerd, Out, Report,
};

/// The image every engine imports from a busybox rootfs (there are no registries).
const IMAGE: &str = "pier-busybox:test";
/// How podman and containerd name the same image.
const IMAGE_REF: &str = "localhost/pier-busybox:test";
const PIER: &str = "pier-runtime";
const REFERENCE: &str = "runc";
/// The deadline for any one engine command.
const T: Duration = Duration::from_secs(60);

/// One engine at a time: each starts daemons, and the host checks (links, firewall,
/// /run) are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

type R = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn pier_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pier-runtime"))
}

/// A runtime as an engine is told to use it.
struct Rt {
    name: &'static str,
    /// The engine's argument: a runtime name for dockerd, a path for podman and ctr.
    arg: String,
    /// The cgroup parent of this runtime's containers: `/<parent>/<name>`.
    cgroup: String,
}

/// runc (the reference, unless missing or PIER_TEST_REFERENCE=0), then pier-runtime.
fn runtimes(parent: &str, docker: bool) -> Vec<Rt> {
    let mut v = Vec::new();
    if std::env::var("PIER_TEST_REFERENCE").as_deref() != Ok("0") {
        if let Some(runc) = which(REFERENCE) {
            v.push(Rt {
                name: REFERENCE,
                arg: if docker {
                    REFERENCE.into()
                } else {
                    runc.display().to_string()
                },
                cgroup: format!("/{parent}/{REFERENCE}"),
            });
        }
    }
    v.push(Rt {
        name: PIER,
        arg: if docker {
            "pier".into()
        } else {
            pier_bin().display().to_string()
        },
        cgroup: format!("/{parent}/{PIER}"),
    });
    v
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn test_dir(tool: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("pier-interop-{tool}-"))
        .tempdir()
        .expect("temp dir")
}

fn cgroup_parent(tool: &str) -> String {
    format!("pier-interop-{}-{tool}", std::process::id())
}

fn name(scenario: &str, rt: &Rt) -> String {
    format!("pier-interop-{}-{scenario}-{}", std::process::id(), rt.name)
}

fn has(out: &Out, needle: &str) -> R {
    ensure!(
        out.stdout.contains(needle),
        "{}",
        out.explain(&format!("expected {needle:?} in stdout"))
    );
    Ok(())
}

fn code(out: &Out, want: i32) -> R {
    ensure!(
        out.code == Some(want),
        "{}",
        out.explain(&format!("expected exit code {want}"))
    );
    Ok(())
}

/// `tar -C <rootfs> -c .`: what `docker import` and `podman import` take.
fn rootfs_tar(dir: &Path) -> Result<PathBuf, String> {
    let rootfs = dir.join("rootfs");
    make_busybox_rootfs(&rootfs);
    let tar = dir.join("rootfs.tar");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        T,
    )?
    .ok()?;
    Ok(tar)
}

/// Reads the container's memory limit and pids limit, cgroup v1 or v2.
const CG_LIMITS: &str = "m=/sys/fs/cgroup/memory/memory.limit_in_bytes; \
    [ -e $m ] || m=/sys/fs/cgroup/memory.max; \
    p=/sys/fs/cgroup/pids/pids.max; [ -e $p ] || p=/sys/fs/cgroup/pids.max; \
    read mem < $m; read pids < $p; echo mem=$mem pids=$pids";

// ---------------------------------------------------------------------------------------
// dockerd

struct Docker {
    dockerd: IsolatedDockerd,
}

impl Docker {
    fn start(dir: &Path, parent: &str) -> Result<Docker, String> {
        let opts = DockerdOptions {
            cgroup_parent: Some(format!("/{parent}")),
            extra_args: vec![
                "--add-runtime".into(),
                format!("pier={}", pier_bin().display()).into(),
            ],
            ready_timeout: T,
            cmd_timeout: T,
        };
        Ok(Docker {
            dockerd: IsolatedDockerd::start_in(dir, opts)?,
        })
    }

    fn cli(&self, args: &[&str]) -> Result<Out, String> {
        self.dockerd.docker(args)
    }

    fn env(&self) -> Vec<(String, String)> {
        self.dockerd.env()
    }

    fn inspect(&self, name: &str, format: &str) -> Result<String, String> {
        Ok(self
            .cli(&["inspect", "-f", format, name])?
            .ok()?
            .stdout
            .trim()
            .to_string())
    }

    /// `docker run --rm` with the runtime, no network and the runtime's cgroup parent.
    fn run(&self, rt: &Rt, opts: &[&str], cmd: &[&str]) -> Result<Out, String> {
        self.cli(&run_args(rt, &["--rm"], opts, cmd).strs())
    }

    /// A detached container `name` running `cmd`; `body` runs, then the container goes.
    fn with_container(
        &self,
        rt: &Rt,
        name: &str,
        opts: &[&str],
        cmd: &[&str],
        body: impl FnOnce() -> R,
    ) -> R {
        let mut o = vec!["--name", name];
        o.extend_from_slice(opts);
        self.cli(&run_args(rt, &["-d"], &o, cmd).strs())?.ok()?;
        let result = body();
        let rm = self.cli(&["rm", "-f", name]).and_then(Out::ok);
        result.and(rm.map(|_| ()))
    }

    /// Removes the containers, then stops the daemons; returns what went wrong.
    fn stop(mut self) -> Vec<String> {
        self.dockerd.stop()
    }
}

fn run_args(rt: &Rt, mode: &[&str], opts: &[&str], cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    v.extend(mode.iter().map(|s| s.to_string()));
    for a in [
        "--runtime",
        &rt.arg,
        "--network",
        "none",
        "--cgroup-parent",
        &rt.cgroup,
    ] {
        v.push(a.to_string());
    }
    v.extend(opts.iter().map(|s| s.to_string()));
    v.push(IMAGE.into());
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

trait Args {
    fn strs(&self) -> Vec<&str>;
}

impl Args for Vec<String> {
    fn strs(&self) -> Vec<&str> {
        self.iter().map(String::as_str).collect()
    }
}

type DockerScenario = fn(&Docker, &Rt) -> R;

const DOCKER_SCENARIOS: &[(&str, DockerScenario)] = &[
    ("run: output, exit code", d_plain),
    ("run -it: tty and input", d_tty),
    ("exec, exec -t, update, pause", d_exec),
    ("--memory", d_memory),
    ("--pids-limit", d_pids),
    ("--read-only", d_read_only),
    ("--cap-drop ALL", d_cap_drop),
    ("--user 1000:1000", d_user),
    ("no-new-privileges", d_no_new_privs),
    ("default seccomp profile", d_seccomp),
    ("--restart on-failure:2", d_restart),
];

fn d_plain(d: &Docker, rt: &Rt) -> R {
    let out = d.run(rt, &[], &["sh", "-c", "echo hello; echo oops >&2; exit 7"])?;
    code(&out, 7)?;
    ensure!(out.stdout == "hello\n", "{}", out.explain("stdout"));
    ensure!(out.stderr.contains("oops"), "{}", out.explain("stderr"));
    Ok(())
}

fn d_tty(d: &Docker, rt: &Rt) -> R {
    let mut argv = vec!["docker".to_string()];
    argv.extend(run_args(
        rt,
        &["--rm", "-it"],
        &[],
        &[
            "sh",
            "-c",
            "tty; echo READY; read line; echo got:$line; exit 5",
        ],
    ));
    let (code, out) = run_in_pty(&argv, &d.env(), "READY", "typed-input\n", T)?;
    ensure!(code == Some(5), "exit code {code:?}, output {out:?}");
    ensure!(
        out.lines().any(|l| l == "/dev/pts/0"),
        "tty should be /dev/pts/0: {out:?}"
    );
    ensure!(
        out.contains("got:typed-input"),
        "typed input did not reach the container: {out:?}"
    );
    Ok(())
}

fn d_exec(d: &Docker, rt: &Rt) -> R {
    let n = name("exec", rt);
    d.with_container(rt, &n, &["--memory", "64m"], &["sleep", "300"], || {
        let out = d.cli(&["exec", &n, "sh", "-c", "echo exec-out; tty; exit 4"])?;
        code(&out, 4)?;
        ensure!(
            out.stdout == "exec-out\nnot a tty\n",
            "{}",
            out.explain("stdout")
        );
        let out = d.cli(&["exec", "-t", &n, "sh", "-c", "tty; exit 6"])?;
        code(&out, 6)?;
        ensure!(
            out.stdout.starts_with("/dev/pts/"),
            "{}",
            out.explain("exec -t: no tty")
        );
        // The shim passes the new limits with `update --resources -`.
        d.cli(&[
            "update",
            "--memory",
            "96m",
            "--memory-swap",
            "192m",
            "--pids-limit",
            "33",
            &n,
        ])?
        .ok()?;
        has(
            &d.cli(&["exec", &n, "sh", "-c", CG_LIMITS])?,
            "mem=100663296 pids=33",
        )?;
        d.cli(&["pause", &n])?.ok()?;
        let status = d.inspect(&n, "{{.State.Status}}")?;
        ensure!(status == "paused", "after pause: {status}");
        d.cli(&["unpause", &n])?.ok()?;
        let status = d.inspect(&n, "{{.State.Status}}")?;
        ensure!(status == "running", "after unpause: {status}");
        Ok(())
    })
}

fn d_memory(d: &Docker, rt: &Rt) -> R {
    // dd's buffer is its block size: 16M fits in 32M, 64M gets the container OOM-killed.
    let out = d.run(
        rt,
        &["--memory", "32m", "--memory-swap", "32m"],
        &[
            "sh",
            "-c",
            &format!(
                "{CG_LIMITS}; dd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null; \
                 echo small=$?; dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; \
                 echo big=$?"
            ),
        ],
    )?;
    code(&out, 0)?;
    has(&out, "mem=33554432 ")?;
    has(&out, "small=0\n")?;
    has(&out, "big=137\n")
}

fn d_pids(d: &Docker, rt: &Rt) -> R {
    // A bounded fork bomb: an inner shell starts up to 50 sleeps and dies at the first
    // failed fork; the outer one counts with builtins only (no forks left to spare).
    let script = format!(
        "{CG_LIMITS}; sh -c 'i=0; while [ $i -lt 50 ]; do sleep 30 & i=$((i+1)); done' \
         2>/dev/null; echo inner=$?; set -- /proc/[0-9]*; echo procs=$#"
    );
    let out = d.run(rt, &["--pids-limit", "10"], &["sh", "-c", &script])?;
    code(&out, 0)?;
    has(&out, "pids=10\n")?;
    let num = |key: &str| -> Option<i64> {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    ensure!(
        num("inner=").is_some_and(|c| c != 0),
        "{}",
        out.explain("forking 50 processes should have failed")
    );
    ensure!(
        num("procs=").is_some_and(|c| (2..=10).contains(&c)),
        "{}",
        out.explain("processes should be capped at 10")
    );
    Ok(())
}

fn d_read_only(d: &Docker, rt: &Rt) -> R {
    let out = d.run(
        rt,
        &["--read-only"],
        &[
            "sh",
            "-c",
            "touch /probe 2>&1; echo touch=$?; awk '$5 == \"/\" {print \"root=\" $6}' /proc/self/mountinfo",
        ],
    )?;
    code(&out, 0)?;
    has(&out, "Read-only file system")?;
    ensure!(
        !out.stdout.contains("touch=0"),
        "{}",
        out.explain("/ writable")
    );
    ensure!(
        out.stdout.lines().any(|l| l.starts_with("root=ro")),
        "{}",
        out.explain("/ should be mounted ro")
    );
    Ok(())
}

fn d_cap_drop(d: &Docker, rt: &Rt) -> R {
    let out = d.run(
        rt,
        &["--cap-drop", "ALL"],
        &["grep", "-E", "^Cap(Prm|Eff|Bnd|Amb):", "/proc/self/status"],
    )?;
    code(&out, 0)?;
    for set in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        has(&out, &format!("{set}:\t0000000000000000\n"))?;
    }
    Ok(())
}

fn d_user(d: &Docker, rt: &Rt) -> R {
    let out = d.run(
        rt,
        &["--user", "1000:1000"],
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; grep CapEff /proc/self/status",
        ],
    )?;
    code(&out, 0)?;
    ensure!(
        out.stdout == "1000\n1000\n1000\nCapEff:\t0000000000000000\n",
        "{}",
        out.explain("identity")
    );
    Ok(())
}

fn d_no_new_privs(d: &Docker, rt: &Rt) -> R {
    let probe = ["grep", "NoNewPrivs", "/proc/self/status"];
    has(
        &d.run(rt, &["--security-opt", "no-new-privileges"], &probe)?,
        "NoNewPrivs:\t1",
    )?;
    has(&d.run(rt, &[], &probe)?, "NoNewPrivs:\t0")
}

fn d_seccomp(d: &Docker, rt: &Rt) -> R {
    // Docker's profile refuses unshare(CLONE_NEWUSER) without CAP_SYS_ADMIN; the kernel
    // alone would allow it, as the unconfined control shows.
    let probe = [
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; unshare -U true 2>&1; echo unshare=$?",
    ];
    let out = d.run(rt, &[], &probe)?;
    has(&out, "Seccomp:\t2\n")?;
    has(&out, "Operation not permitted")?;
    ensure!(
        !out.stdout.contains("unshare=0"),
        "{}",
        out.explain("unshare -U allowed")
    );
    let out = d.run(rt, &["--security-opt", "seccomp=unconfined"], &probe)?;
    has(&out, "Seccomp:\t0\n")?;
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|s| s.trim() != "0");
    if userns {
        has(&out, "unshare=0")?;
    }
    Ok(())
}

fn d_restart(d: &Docker, rt: &Rt) -> R {
    let n = name("restart", rt);
    d.with_container(
        rt,
        &n,
        &["--restart", "on-failure:2"],
        &["sh", "-c", "echo run; exit 1"],
        || {
            // "restarting" between runs; "exited" for good after the second restart.
            let format = "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}";
            let mut last = String::new();
            let done = poll(Duration::from_secs(30), || {
                last = d.inspect(&n, format).unwrap_or_default();
                (last == "exited 2 1").then_some(())
            });
            ensure!(
                done.is_some(),
                "status/restarts/exit code {last:?}, want \"exited 2 1\""
            );
            let logs = d.cli(&["logs", &n])?.ok()?;
            ensure!(
                logs.stdout == "run\nrun\nrun\n",
                "{}",
                logs.explain("three runs expected")
            );
            Ok(())
        },
    )
}

/// After a runtime's containers are gone, so are their cgroups.
fn cgroups_removed(host: &HostGuard, rt: &Rt) -> R {
    let left = poll(Duration::from_secs(10), || {
        let left = host.cgroups_below(rt.name);
        left.is_empty().then_some(())
    });
    ensure!(
        left.is_some(),
        "container cgroups left: {:?}",
        host.cgroups_below(rt.name)
    );
    Ok(())
}

#[test]
fn dockerd_runs_containers_with_pier_runtime() {
    require_root();
    let _serial = serial();
    let tools = [
        "dockerd",
        "docker",
        "containerd",
        "containerd-shim-runc-v2",
        "script",
    ];
    if let Some(t) = missing_tool(&tools) {
        return not_run_here(
            "dockerd",
            &format!("{t} is not installed (scripts/setup.sh)"),
        );
    }
    let tmp = test_dir("docker");
    let parent = cgroup_parent("docker");
    let mut host = HostGuard::new(tmp.path(), &parent);
    let started = Docker::start(tmp.path(), &parent).and_then(|d| {
        let tar = rootfs_tar(tmp.path())?;
        d.cli(&["import", tar.to_str().unwrap(), IMAGE])?.ok()?;
        Ok(d)
    });
    let docker = match started {
        Ok(d) => d,
        Err(e) => {
            for p in host.finish() {
                eprintln!("cleanup: {p}");
            }
            return not_run_here("dockerd", &e);
        }
    };
    let rts = runtimes(&parent, true);
    let mut report = Report::new("dockerd", REFERENCE);
    for (scenario, f) in DOCKER_SCENARIOS {
        for rt in &rts {
            report.record(scenario, rt.name, f(&docker, rt));
        }
    }
    for rt in &rts {
        report.record(
            "container cgroups removed",
            rt.name,
            cgroups_removed(&host, rt),
        );
    }
    let mut leftovers = docker.stop();
    leftovers.extend(host.finish());
    report.finish(PIER, leftovers);
}

// ---------------------------------------------------------------------------------------
// podman

struct Podman {
    dir: PathBuf,
}

impl Podman {
    /// Storage, state, temp files, events, locks and network configs all under `dir`:
    /// CONTAINERS_CONF and CONTAINERS_STORAGE_CONF replace the system's configuration.
    fn new(dir: &Path) -> Result<Podman, String> {
        let d = dir.display();
        for sub in ["tmp", "net"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        let conf = format!(
            "[containers]\nnetns = \"none\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{d}/events.log\"\nlock_type = \"file\"\n\
             tmp_dir = \"{d}/tmp\"\nstatic_dir = \"{d}/root/libpod\"\n\
             volume_path = \"{d}/root/volumes\"\n\
             [network]\nnetwork_config_dir = \"{d}/net\"\n"
        );
        // vfs: no mounts to leave behind, and it works on any backing filesystem.
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/run\"\n"
        );
        std::fs::write(dir.join("containers.conf"), conf).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("storage.conf"), storage).map_err(|e| e.to_string())?;
        Ok(Podman {
            dir: dir.to_path_buf(),
        })
    }

    fn cmd(&self, runtime: Option<&Rt>) -> Command {
        let d = &self.dir;
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        if let Some(rt) = runtime {
            c.arg("--runtime").arg(&rt.arg);
        }
        c
    }

    fn cli(&self, runtime: Option<&Rt>, args: &[&str]) -> Result<Out, String> {
        run(self.cmd(runtime).args(args), T)
    }

    fn run_args(rt: &Rt, mode: &[&str], cmd: &[&str]) -> Vec<String> {
        // Podman asks for 1048576 open files by default, which fails (with runc too)
        // where CAP_SYS_RESOURCE is not in the bounding set: the runtime cannot raise its
        // hard limits (and conmon starts it with lower ones than ours). Ask for little.
        let nofile = hard_limit(libc::RLIMIT_NOFILE, 4096);
        let nproc = hard_limit(libc::RLIMIT_NPROC, 4096);
        let mut v: Vec<String> = vec!["run".into()];
        v.extend(mode.iter().map(|s| s.to_string()));
        v.extend([
            "--network".to_string(),
            "none".into(),
            // conmon's own cgroup is podman's business, and its cgroupfs code makes
            // directories for hierarchies that are not mounted (hybrid hosts).
            "--cgroups".into(),
            "no-conmon".into(),
            "--cgroup-parent".into(),
            rt.cgroup.clone(),
            "--ulimit".into(),
            format!("nofile={nofile}:{nofile}"),
            "--ulimit".into(),
            format!("nproc={nproc}:{nproc}"),
            IMAGE_REF.into(),
        ]);
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cli(None, &["rm", "--all", "--force", "--time", "0"]);
    }
}

fn p_run(p: &Podman, rt: &Rt) -> R {
    let args = Podman::run_args(
        rt,
        &["--rm"],
        &["sh", "-c", "echo hello; echo oops >&2; exit 7"],
    );
    let out = p.cli(Some(rt), &args.strs())?;
    code(&out, 7)?;
    ensure!(out.stdout == "hello\n", "{}", out.explain("stdout"));
    ensure!(out.stderr.contains("oops"), "{}", out.explain("stderr"));
    Ok(())
}

fn p_exec(p: &Podman, rt: &Rt) -> R {
    let n = name("exec", rt);
    let args = Podman::run_args(rt, &["-d", "--name", &n], &["sleep", "300"]);
    p.cli(Some(rt), &args.strs())?.ok()?;
    let result = (|| {
        let out = p.cli(Some(rt), &["exec", &n, "sh", "-c", "echo exec-out; exit 4"])?;
        code(&out, 4)?;
        ensure!(out.stdout == "exec-out\n", "{}", out.explain("stdout"));
        Ok(())
    })();
    let rm = p
        .cli(Some(rt), &["rm", "--force", "--time", "0", &n])
        .and_then(Out::ok);
    result.and(rm.map(|_| ()))
}

#[test]
fn podman_runs_containers_with_pier_runtime() {
    require_root();
    let _serial = serial();
    if let Some(t) = missing_tool(&["podman", "conmon"]) {
        return not_run_here(
            "podman",
            &format!("{t} is not installed (scripts/setup.sh)"),
        );
    }
    let tmp = test_dir("podman");
    let parent = cgroup_parent("podman");
    let mut host = HostGuard::new(tmp.path(), &parent);
    let started = Podman::new(tmp.path()).and_then(|p| {
        let tar = rootfs_tar(tmp.path())?;
        p.cli(None, &["import", tar.to_str().unwrap(), IMAGE_REF])?
            .ok()?;
        Ok(p)
    });
    let podman = match started {
        Ok(p) => p,
        Err(e) => {
            for p in host.finish() {
                eprintln!("cleanup: {p}");
            }
            return not_run_here("podman", &e);
        }
    };
    let rts = runtimes(&parent, false);
    let mut report = Report::new("podman", REFERENCE);
    for rt in &rts {
        report.record("run: output, exit code", rt.name, p_run(&podman, rt));
        report.record("exec", rt.name, p_exec(&podman, rt));
        report.record(
            "container cgroups removed",
            rt.name,
            cgroups_removed(&host, rt),
        );
    }
    drop(podman);
    let leftovers = host.finish();
    report.finish(PIER, leftovers);
}

// ---------------------------------------------------------------------------------------
// containerd (ctr)

/// `ctr` against a containerd of the test's own ([`Containerd`]).
trait Ctr {
    fn ctr(&self, args: &[&str]) -> Result<Out, String>;
    fn run_opts(&self, rt: &Rt, id: &str) -> Vec<String>;
    fn task_status(&self, id: &str) -> Result<String, String>;
}

impl Ctr for Containerd {
    fn ctr(&self, args: &[&str]) -> Result<Out, String> {
        let ns = format!("pier-interop-{}", std::process::id());
        run(
            Command::new("ctr")
                .arg("--address")
                .arg(&self.sock)
                .args(["--namespace", &ns])
                .args(args),
            T,
        )
    }

    /// `ctr run` options: the runtime binary, its state root and the IO FIFOs under our
    /// directory (defaults: /run/containerd/runc, /run/containerd/fifo).
    fn run_opts(&self, rt: &Rt, id: &str) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            rt.arg.clone(),
            "--runc-root".into(),
            self.dir.join("runc-root").display().to_string(),
            "--fifo-dir".into(),
            self.dir.join("fifo").display().to_string(),
            "--cgroup".into(),
            format!("{}/{id}", rt.cgroup),
        ]
    }

    fn task_status(&self, id: &str) -> Result<String, String> {
        let out = self.ctr(&["task", "ls"])?.ok()?;
        Ok(out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string())
    }
}

/// An OCI image layout archive of the busybox rootfs, for `ctr images import`: one
/// uncompressed layer, its config and manifest, named by the containerd annotation.
fn oci_archive(dir: &Path) -> Result<PathBuf, String> {
    let rootfs = dir.join("rootfs");
    make_busybox_rootfs(&rootfs);
    let layout = dir.join("oci");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let add_blob = |path: &Path| -> Result<(String, u64), String> {
        let out = run(Command::new("sha256sum").arg(path), T)?.ok()?;
        let hex = out
            .stdout
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        std::fs::rename(path, blobs.join(&hex)).map_err(|e| e.to_string())?;
        Ok((format!("sha256:{hex}"), size))
    };
    let layer = layout.join("layer.tar");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
        T,
    )?
    .ok()?;
    let (layer_digest, layer_size) = add_blob(&layer)?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    let config_path = layout.join("config.json");
    std::fs::write(&config_path, config.to_string()).map_err(|e| e.to_string())?;
    let (config_digest, config_size) = add_blob(&config_path)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size }],
    });
    let manifest_path = layout.join("manifest.json");
    std::fs::write(&manifest_path, manifest.to_string()).map_err(|e| e.to_string())?;
    let (manifest_digest, manifest_size) = add_blob(&manifest_path)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": { "io.containerd.image.name": IMAGE_REF, "org.opencontainers.image.ref.name": "test" },
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(|e| e.to_string())?;
    let archive = dir.join("oci.tar");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .args(["oci-layout", "index.json", "blobs"]),
        T,
    )?
    .ok()?;
    Ok(archive)
}

fn c_run(c: &Containerd, rt: &Rt) -> R {
    let id = name("run", rt);
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(c.run_opts(rt, &id));
    args.extend([IMAGE_REF, &id, "sh", "-c", "echo hello; exit 7"].map(String::from));
    let out = c.ctr(&args.strs())?;
    code(&out, 7)?;
    ensure!(out.stdout == "hello\n", "{}", out.explain("stdout"));
    Ok(())
}

fn c_detached(c: &Containerd, rt: &Rt) -> R {
    let id = name("task", rt);
    let mut args = vec!["run".to_string(), "-d".into()];
    args.extend(c.run_opts(rt, &id));
    args.extend([IMAGE_REF, &id, "sleep", "300"].map(String::from));
    c.ctr(&args.strs())?.ok()?;
    let fifo = c.dir.join("fifo").display().to_string();
    let result = (|| {
        let out = c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "probe",
            "--fifo-dir",
            &fifo,
            &id,
            "sh",
            "-c",
            "echo exec-out; exit 4",
        ])?;
        code(&out, 4)?;
        ensure!(out.stdout == "exec-out\n", "{}", out.explain("stdout"));
        c.ctr(&["task", "pause", &id])?.ok()?;
        let status = c.task_status(&id)?;
        ensure!(status == "PAUSED", "after pause: {status:?}");
        c.ctr(&["task", "resume", &id])?.ok()?;
        let status = c.task_status(&id)?;
        ensure!(status == "RUNNING", "after resume: {status:?}");
        c.ctr(&["task", "kill", "--signal", "SIGKILL", &id])?.ok()?;
        let mut status = String::new();
        let stopped = poll(Duration::from_secs(20), || {
            status = c.task_status(&id).unwrap_or_default();
            (status == "STOPPED").then_some(())
        });
        ensure!(stopped.is_some(), "after SIGKILL: {status:?}");
        c.ctr(&["task", "rm", &id])?.ok()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = c.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
        let _ = c.ctr(&["task", "rm", "--force", &id]);
    }
    let rm = c.ctr(&["container", "rm", &id]).and_then(Out::ok);
    result.and(rm.map(|_| ()))
}

#[test]
fn containerd_runs_containers_with_pier_runtime() {
    require_root();
    let _serial = serial();
    if let Some(t) = missing_tool(&["containerd", "ctr", "containerd-shim-runc-v2", "sha256sum"]) {
        return not_run_here(
            "containerd",
            &format!("{t} is not installed (scripts/setup.sh)"),
        );
    }
    let tmp = test_dir("ctr");
    let parent = cgroup_parent("ctr");
    let mut host = HostGuard::new(tmp.path(), &parent);
    let started = Containerd::start(&tmp.path().join("containerd"), T).and_then(|c| {
        let archive = oci_archive(tmp.path())?;
        c.ctr(&["images", "import", archive.to_str().unwrap()])?
            .ok()?;
        Ok(c)
    });
    let mut containerd = match started {
        Ok(c) => c,
        Err(e) => {
            for p in host.finish() {
                eprintln!("cleanup: {p}");
            }
            return not_run_here("containerd", &e);
        }
    };
    let rts = runtimes(&parent, false);
    let mut report = Report::new("containerd", REFERENCE);
    for rt in &rts {
        report.record(
            "ctr run --rm: output, exit code",
            rt.name,
            c_run(&containerd, rt),
        );
        report.record(
            "ctr task exec/pause/kill",
            rt.name,
            c_detached(&containerd, rt),
        );
        report.record(
            "container cgroups removed",
            rt.name,
            cgroups_removed(&host, rt),
        );
    }
    let mut leftovers: Vec<String> = containerd.daemon.stop().into_iter().collect();
    leftovers.extend(host.finish());
    report.finish(PIER, leftovers);
}
