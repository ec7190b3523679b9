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
    // Made by root inside the container's root whatever the user, as dockerd makes it
    // (moby's SetupWorkingDirectory: the remapped root's identity, 0755); the test in
    // run_options.rs compares this with dockerd.
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
        "pwd; stat -c %u:%g:%a /work /work/deeper",
    ]);
    assert_eq!(out, "/work/deeper\n0:0:755\n0:0:755\n");
}

/// A field of a process's status.
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

/// The exec setup process, once it appears: in the container's pid namespace and
/// still the runtime. None when the exec ended first.
fn find_exec_setup(
    seen: &mut HashSet<i32>,
    container_ns: &Path,
    exec: &mut std::process::Child,
) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if exec.try_wait().ok().flatten().is_some() {
            return None;
        }
        for pid in new_pids(seen) {
            if pid_ns(pid).as_deref() == Some(container_ns) && cmdline(pid).contains("pier-runtime")
            {
                return Some(pid);
            }
        }
    }
    None
}

/// `PTRACE_GET_SYSCALL_INFO` (Linux 5.3), not in every libc crate version.
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;

/// Follows `pid` (ptrace, as the host's root) from system call to system call until it
/// enters its final execve, and leaves it stopped there: the last moment of the setup,
/// with the container's capabilities and every descriptor it still had. False when
/// the process ended or could not be followed.
fn hold_at_final_execve(pid: i32) -> bool {
    // SAFETY: ptrace requests with integer arguments on a process of the exec this
    // test started.
    unsafe {
        if libc::ptrace(libc::PTRACE_SEIZE, pid, 0, libc::PTRACE_O_TRACESYSGOOD) != 0 {
            return false;
        }
        libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0);
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our tracee, with a local out pointer.
        if unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } != pid {
            return false;
        }
        if !libc::WIFSTOPPED(status) {
            return false;
        }
        let sig = libc::WSTOPSIG(status);
        let mut pass_on = 0;
        if sig == libc::SIGTRAP | 0x80 {
            // op (u8) at byte 0, the syscall number of an entry at byte 24.
            let mut info = [0u64; 16];
            // SAFETY: the kernel writes at most the given size into the local buffer.
            let n = unsafe {
                libc::ptrace(
                    PTRACE_GET_SYSCALL_INFO,
                    pid,
                    std::mem::size_of_val(&info),
                    info.as_mut_ptr(),
                )
            };
            let entry = info[0] as u8 == 1;
            let nr = info[3] as libc::c_long;
            if n > 0 && entry && (nr == libc::SYS_execve || nr == libc::SYS_execveat) {
                return true;
            }
        } else if status >> 16 == 0 {
            // A signal on its way to the process: deliver it.
            pass_on = sig;
        }
        // SAFETY: as above; the tracee is in a ptrace-stop.
        unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid, 0, pass_on) };
    }
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
        let setup = find_exec_setup(&mut seen, &container_ns, &mut exec);
        if let Some(pid) = setup.filter(|pid| hold_at_final_execve(*pid)) {
            caught += 1;
            let inner = status_field(pid, "NSpid:")
                .and_then(|s| s.split_whitespace().last().map(str::to_string))
                .expect("NSpid");
            std::fs::write(shared.path().join("go.tmp"), &inner).expect("write go");
            std::fs::rename(shared.path().join("go.tmp"), shared.path().join("go"))
                .expect("rename go");
            let out = shared.path().join("out");
            assert!(
                wait_until(Duration::from_secs(10), || out.exists()),
                "the container did not answer"
            );
            let seen_inside = std::fs::read_to_string(&out).unwrap_or_default();
            let _ = std::fs::remove_file(&out);
            if seen_inside.contains(" -> ") {
                leaks.push(seen_inside);
            } else {
                // Refused by the kernel, not missed: the links were there.
                assert!(
                    seen_inside.contains("Permission denied"),
                    "the attempt from inside did not run as expected:\n{seen_inside}"
                );
            }
            // SAFETY: detaching from our tracee, stopped at its execve; it goes on.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
        }
        let status = pier_testsupport::wait_deadline(&mut exec, Duration::from_secs(60));
        assert!(status.is_some(), "docker exec did not end");
    }
    eprintln!("the exec setup was held at its final execve in {caught} of 30 execs");
    assert!(
        leaks.is_empty(),
        "from inside the container, the exec setup's descriptors were readable in {} of {caught} \
         caught execs:\n{}",
        leaks.len(),
        leaks.join("\n---\n")
    );
    // And the exec'd process holds nothing but its stdio (ls's own directory aside).
    let fds = pierd.docker_ok(&["exec", &id, "ls", "/proc/self/fd"]);
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "descriptors in an exec'd process"
    );
    // Without catching the moment the test would prove nothing.
    assert!(
        caught >= 10,
        "the exec setup was held at its final execve only {caught} times in 30 execs"
    );
}
