//! Holes 2, 3 and 4 of issue 11, through pierd and the docker CLI:
//! - a pierd started holding a host directory open: `run -w /proc/self/fd/N` and
//!   `exec -w …` reached the host's files (CVE-2024-21626 class);
//! - an image with a long symlink chain made pierd's runtime create `/etc/hosts`,
//!   `hostname`, `resolv.conf` and `-v` targets in a host directory the image chose;
//! - the `pier-runtime exec` setup process could be read through `/proc/N/fd` (and
//!   ptraced) from inside the container (CVE-2016-9962 class).
//!
//! Also the runtime's parity fix that rides along: `run -w` of a missing directory.

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{self, wait_until, Engine, Pierd};

/// The descriptor number pierd inherits the host directory as.
const LEAKED_FD: i32 = 7;

/// A host directory with a secret file in it.
struct HostDir {
    dir: tempfile::TempDir,
    secret: String,
}

impl HostDir {
    fn new() -> HostDir {
        let dir = tempfile::Builder::new()
            .prefix("pier-host-dir")
            .tempdir()
            .expect("temp dir");
        let secret = format!("host-secret-{}", pier_testsupport::unique_name("s"));
        std::fs::write(dir.path().join("secret"), &secret).expect("write secret");
        HostDir { dir, secret }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What appeared in the directory besides the secret.
    fn intruders(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .expect("read host dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != "secret")
            .collect();
        names.sort();
        names
    }
}

/// Imports the busybox rootfs tar (from `busybox_rootfs_tar`) as `busybox`.
fn import_busybox(pierd: &Pierd, tar: &Path) {
    let out = pierd.docker_with_stdin(&["import", "-c", "CMD [\"sh\"]", "-", "busybox"], tar);
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// A pierd that inherited `dir` open as descriptor [`LEAKED_FD`] (no close-on-exec),
/// as one started by a careless parent would; busybox imported.
fn pierd_holding(dir: &Path) -> Option<(Pierd, tempfile::TempDir)> {
    let work = tempfile::tempdir().expect("temp dir");
    let tar = common::busybox_rootfs_tar(work.path())?;
    let held = std::fs::File::open(dir).expect("open host dir");
    let raw = held.as_raw_fd();
    let pierd = Pierd::start_with_setup(&[], &mut |cmd| {
        // SAFETY: dup2 is async-signal-safe; the copy has no close-on-exec flag.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, LEAKED_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    drop(held);
    import_busybox(&pierd, &tar);
    Some((pierd, work))
}

/// What a process with its cwd on the host would do: read, climb, plant.
const RAID: &str = "cat secret; cat ../../../../../../etc/shadow; touch planted; pwd";

#[test]
fn a_leaked_directory_descriptor_is_no_way_out() {
    let host = HostDir::new();
    let Some((pierd, _work)) = pierd_holding(host.path()) else {
        return;
    };
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = pierd.docker(&["run", "--rm", "-w", &cwd, "busybox", "sh", "-c", RAID]);
        assert!(
            !out.stdout.contains(&host.secret),
            "run -w {cwd} read the host's secret: {out:?}"
        );
        assert!(!out.stdout.contains("root:"), "run -w {cwd}: {out:?}");
        assert_eq!(
            host.intruders(),
            Vec::<String>::new(),
            "run -w {cwd}: {out:?}"
        );
        if n == LEAKED_FD {
            // As with runc ≥ 1.1.12: refused, not run somewhere else.
            assert_ne!(out.code, Some(0), "run -w {cwd} must fail: {out:?}");
        }
    }
    let id = pierd
        .docker_ok(&["run", "-d", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = pierd.docker(&["exec", "-w", &cwd, &id, "sh", "-c", RAID]);
        assert!(
            !out.stdout.contains(&host.secret),
            "exec -w {cwd} read the host's secret: {out:?}"
        );
        assert_eq!(
            host.intruders(),
            Vec::<String>::new(),
            "exec -w {cwd}: {out:?}"
        );
        if n == LEAKED_FD {
            assert_ne!(out.code, Some(0), "exec -w {cwd} must fail: {out:?}");
        }
    }
    // pierd itself kept none of what it inherited.
    let fd = PathBuf::from(format!("/proc/{}/fd/{LEAKED_FD}", pierd.pid()));
    let target = std::fs::read_link(&fd).ok();
    assert_ne!(
        target.as_deref(),
        Some(host.path()),
        "pierd still holds the inherited directory"
    );
}

/// A busybox rootfs tar whose `/etc` is replaced by what `make_etc` makes; imported
/// into `pierd` as `name`.
fn import_with_etc(pierd: &Pierd, work: &Path, name: &str, make_etc: impl FnOnce(&Path)) {
    let rootfs = work.join("rootfs");
    let copy = work.join(format!("rootfs-{name}"));
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(&rootfs)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(out.success());
    std::fs::remove_dir_all(copy.join("etc")).expect("remove etc");
    make_etc(&copy);
    let tar = work.join(format!("{name}.tar"));
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(&copy)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(out.success());
    let out = pierd.docker_with_stdin(&["import", "-", name], &tar);
    assert_eq!(out.code, Some(0), "{out:?}");
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target.as_ref(), link.as_ref()).expect("symlink");
}

#[test]
fn symlink_chains_and_loops_in_an_image_create_nothing_on_the_host() {
    let host = HostDir::new();
    let Some((pierd, work)) = common::pierd_with_busybox() else {
        return;
    };
    // /etc → chain/1 → chain/2 → … → chain/261 → <host dir>: longer than the old
    // resolver's 255 links, and the rest of the chain short enough for the kernel to
    // follow it to the host.
    import_with_etc(&pierd, work.path(), "chain", |rootfs| {
        let chain = rootfs.join("chain");
        std::fs::create_dir(&chain).expect("mkdir chain");
        symlink("chain/1", rootfs.join("etc"));
        for i in 1..261 {
            symlink((i + 1).to_string(), chain.join(i.to_string()));
        }
        symlink(host.path(), chain.join("261"));
    });
    // /etc → loop → /etc.
    import_with_etc(&pierd, work.path(), "loop", |rootfs| {
        symlink("loop", rootfs.join("etc"));
        symlink("/etc", rootfs.join("loop"));
    });
    let volume = tempfile::tempdir().expect("temp dir");
    let bind = format!("{}:/etc/sub", volume.path().display());
    for image in ["chain", "loop"] {
        for args in [
            vec!["run", "--rm", image, "/bin/true"],
            vec!["run", "--rm", "-v", &bind, image, "/bin/true"],
        ] {
            let out = pierd.docker(&args);
            assert_eq!(host.intruders(), Vec::<String>::new(), "{args:?}: {out:?}");
            assert_ne!(out.code, Some(0), "{args:?} must fail: {out:?}");
            assert!(
                out.stderr.contains("symlink loop"),
                "{args:?}: the error should say why: {out:?}"
            );
        }
    }
    assert!(
        std::fs::read_dir(volume.path())
            .expect("read volume")
            .next()
            .is_none(),
        "something was created in the -v source"
    );
}

#[test]
fn a_short_link_to_a_host_directory_resolves_inside_the_container() {
    let host = HostDir::new();
    let Some((pierd, work)) = common::pierd_with_busybox() else {
        return;
    };
    // /etc names the host directory; inside the image that path does not exist.
    import_with_etc(&pierd, work.path(), "abslink", |rootfs| {
        symlink(host.path(), rootfs.join("etc"));
    });
    let out = pierd.docker(&["run", "--rm", "abslink", "cat", "/etc/hostname"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim().len(), 12, "{out:?}");
    assert_eq!(host.intruders(), Vec::<String>::new());
}

#[test]
fn run_w_creates_a_missing_working_directory() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let out = pierd.docker_ok(&["run", "--rm", "-w", "/work", "busybox", "pwd"]);
    assert_eq!(out, "/work\n");
    // Made for the container's user, as Docker makes it.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "-u",
        "1000:1001",
        "-w",
        "/work/deeper",
        "busybox",
        "sh",
        "-c",
        "pwd; stat -c %u:%g /work /work/deeper; touch mine",
    ]);
    assert_eq!(out, "/work/deeper\n1000:1001\n1000:1001\n");
}

/// `CapPrm` of a process, from its status.
fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn pid_ns(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// Processes in /proc not in `seen` (which then holds them).
fn new_pids(seen: &mut HashSet<i32>) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
            if seen.insert(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// The late part of the exec setup, when it already has the container's capabilities
/// but has not exec'd yet, is where an old runtime was reachable: stop it there.
/// Returns its pid (stopped) or None when the moment was missed.
fn stop_exec_setup_in_its_last_stretch(
    seen: &mut HashSet<i32>,
    container_ns: &Path,
    container_caps: &str,
    exec: &mut std::process::Child,
) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if exec.try_wait().ok().flatten().is_some() {
            return None;
        }
        for pid in new_pids(seen) {
            if pid_ns(pid).as_deref() != Some(container_ns) {
                continue;
            }
            if !cmdline(pid).contains("pier-runtime") {
                continue;
            }
            // The setup process, inside the container's pid namespace: watch its
            // capabilities drop to the container's.
            while let Some(caps) = status_field(pid, "CapPrm:") {
                if caps == container_caps {
                    // SAFETY: kill(2) on a process of the exec this test started.
                    unsafe { libc::kill(pid, libc::SIGSTOP) };
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[test]
fn the_exec_setup_is_out_of_the_containers_reach() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    // The container's own process is the attacker: given a pid, it lists that
    // process's descriptors (`ls -l` reads each link: ptrace-mode access).
    let shared = tempfile::tempdir().expect("temp dir");
    let script = "while :; do if [ -f /x/go ]; then p=$(cat /x/go); rm -f /x/go; \
                  ls -l /proc/$p/fd/ >/x/out.tmp 2>&1; \
                  grep -E '^(Uid|CapEff)' /proc/$p/status >>/x/out.tmp 2>&1; \
                  mv /x/out.tmp /x/out; fi; usleep 10000; done";
    let volume = format!("{}:/x", shared.path().display());
    let id = pierd
        .docker_ok(&["run", "-d", "-v", &volume, "busybox", "sh", "-c", script])
        .trim()
        .to_string();
    let init: i32 = pierd
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .parse()
        .expect("init pid");
    let container_ns = pid_ns(init).expect("container pid namespace");
    let container_caps = status_field(init, "CapPrm:").expect("init caps");
    let mut seen = HashSet::new();
    new_pids(&mut seen);
    let (mut caught, mut leaks) = (0, Vec::new());
    for _ in 0..30 {
        let mut exec = pierd
            .command()
            .args(["exec", &id, "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker exec");
        let stopped = stop_exec_setup_in_its_last_stretch(
            &mut seen,
            &container_ns,
            &container_caps,
            &mut exec,
        );
        if let Some(pid) = stopped {
            let is_stopped = wait_until(Duration::from_secs(5), || {
                status_field(pid, "State:").is_some_and(|s| s.starts_with('T'))
            });
            // Still the runtime (not yet the exec'd `true`): the moment is caught.
            if is_stopped && cmdline(pid).contains("pier-runtime") {
                caught += 1;
                let inner = status_field(pid, "NSpid:")
                    .and_then(|s| s.split_whitespace().last().map(str::to_string))
                    .expect("NSpid");
                let go = shared.path().join("go");
                std::fs::write(shared.path().join("go.tmp"), &inner).expect("write go");
                std::fs::rename(shared.path().join("go.tmp"), &go).expect("rename go");
                let out = shared.path().join("out");
                assert!(
                    wait_until(Duration::from_secs(10), || out.exists()),
                    "the container did not answer"
                );
                let seen_inside = std::fs::read_to_string(&out).unwrap_or_default();
                let _ = std::fs::remove_file(&out);
                if seen_inside.contains(" -> ") {
                    leaks.push(seen_inside);
                }
            }
            // SAFETY: kill(2) on the process this test stopped.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        let status = pier_testsupport::wait_deadline(&mut exec, Duration::from_secs(60));
        assert!(status.is_some(), "docker exec did not end");
    }
    assert!(
        leaks.is_empty(),
        "from inside the container, the exec setup's descriptors were readable in {} of {caught} \
         caught execs:\n{}",
        leaks.len(),
        leaks.join("\n---\n")
    );
    // Without catching the moment the test would prove nothing.
    assert!(
        caught >= 3,
        "the exec setup was caught in its last stretch only {caught} times in 30 execs"
    );
}
