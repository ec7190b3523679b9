//! CVE-2019-5736 class: a container process must never write the runtime binary on the
//! host through `/proc/<pid>/exe`.
//!
//! The attack, as in the CVE: the container's dynamic loader
//! (`/lib64/ld-linux-x86-64.so.2`, which the image controls) is the attacker's static
//! program (`c/selfexe_attacker.c`). The container executes `/proc/self/exe` — as its
//! init (`docker run`) or as an exec'd process (`docker exec`) — which, at that moment,
//! is the runtime itself; the kernel loads the image's "loader" into that process, so
//! the attacker's code runs inside a process whose `/proc/self/exe` is the runtime. It
//! takes an `O_PATH` handle on it, replaces the process (so the binary is no longer
//! busy), reopens the handle `O_WRONLY` and writes. pier-runtime re-executes itself
//! from a read-only overlay view of its binary (else a sealed memfd copy) before
//! entering a container (`pier-runtime/src/selfexe.rs`), so the reopen fails (EROFS) or
//! the write hits the sealed copy, and the file on disk stays as it was.
//!
//! A control run first proves the attack program overwrites an unprotected dynamically
//! linked binary on this kernel (a chroot, no runtime involved), so the test cannot
//! pass merely because the attack does not work. The container runs use a copy of
//! pier-runtime (`--add-runtime victim=…`): were the defence gone, only that copy
//! would be damaged.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{pierd_with_busybox_args, wait_until, Engine};
use crate::support::{compile_static, sha256_file};

const ATTACKER: &str = include_str!("c/selfexe_attacker.c");
const TEST: &str = "runtime_binary_cannot_be_overwritten_through_proc_self_exe";

/// The attacker's report (`key=value` lines), once it says `done`.
fn wait_report(path: &Path) -> Option<String> {
    let done = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(path).is_ok_and(|r| r.lines().any(|l| l == "done=1"))
    });
    done.then(|| std::fs::read_to_string(path).unwrap_or_default())
}

fn field<'a>(report: &'a str, key: &str) -> Option<&'a str> {
    report
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// The control: the attack against a plain binary in a chroot (with its own /proc)
/// overwrites it. Returns false (after saying why) if the tools for it are missing.
fn attack_works_without_the_defence(work: &Path, attacker: &Path) -> bool {
    if !pier_testsupport::require_tools(TEST, &["unshare", "chroot", "sh"]) {
        return false;
    }
    let root = work.join("control-root");
    for d in ["lib64", "proc", "r"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy(attacker, root.join("lib64/ld-linux-x86-64.so.2")).expect("copy attacker");
    // Any dynamically linked program will do; the attacker runs as its loader.
    let victim = root.join("victim");
    std::fs::copy("/bin/true", &victim).expect("copy /bin/true");
    let before = sha256_file(&victim);
    let script = format!(
        "mount -t proc proc {root}/proc && chroot {root} /victim /r/report",
        root = pier_testsupport::sh_quote(&root.display().to_string())
    );
    pier_testsupport::run_ok(
        Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("control run: {e}"));
    let report = wait_report(&root.join("r/report")).expect("the control attack never finished");
    assert_eq!(
        field(&report, "exe"),
        Some("/victim"),
        "control: the attacker did not run as the victim's loader:\n{report}"
    );
    // The writer may still be finishing its write when `done` is read: wait for it.
    assert!(
        wait_until(Duration::from_secs(5), || sha256_file(&victim) != before),
        "control: the attack did not overwrite an unprotected binary, so this test would \
         prove nothing:\n{report}"
    );
    true
}

/// The attacker compiled and the control passed; None (after saying why) otherwise.
fn prepared_attacker(work: &Path) -> Option<std::path::PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        pier_testsupport::skip(TEST, "the attack program is written for x86_64");
        return None;
    }
    let attacker = compile_static(
        TEST,
        work,
        "attacker",
        ATTACKER,
        &["-nostdlib", "-fno-stack-protector", "-fno-builtin"],
    )?;
    attack_works_without_the_defence(work, &attacker).then_some(attacker)
}

/// A copy of pier-runtime in `victim_dir` is the runtime of a pierd; containers of it
/// execute the runtime with the attacker as their loader (`docker run`, then `docker
/// exec`). Asserts the attack reached the runtime and that the copy on disk is intact.
fn attack_runtime_copy(work: &Path, attacker: &Path, victim_dir: &Path) {
    // A copy, so a failure damages only the copy.
    let runtime = Path::new(env!("CARGO_BIN_EXE_pierd")).with_file_name("pier-runtime");
    let victim = victim_dir.join("pier-runtime");
    std::fs::copy(&runtime, &victim).expect("copy pier-runtime");
    let victim_hash = sha256_file(&victim);
    let runtime_hash = sha256_file(&runtime);

    let loader = work.join("loader");
    std::fs::create_dir(&loader).expect("mkdir");
    std::fs::copy(attacker, loader.join("ld-linux-x86-64.so.2")).expect("copy attacker");
    let reports = work.join("reports");
    std::fs::create_dir(&reports).expect("mkdir");
    let lib64 = format!("{}:/lib64:ro", loader.display());
    let report_mount = format!("{}:/report", reports.display());

    let add_runtime = format!("victim={}", victim.display());
    let Some((pierd, _busybox)) = pierd_with_busybox_args(&["--add-runtime", &add_runtime]) else {
        return;
    };
    let base = [
        "--runtime",
        "victim",
        "--network",
        "none",
        "-v",
        &lib64,
        "-v",
        &report_mount,
    ];

    // `docker run`: the container's init executes the runtime.
    let mut args = vec!["run", "--rm"];
    args.extend(base);
    args.extend(["busybox", "/proc/self/exe", "/report/run"]);
    let out = pierd.docker(&args);
    let run_report = wait_report(&reports.join("run"))
        .unwrap_or_else(|| panic!("the attack in `docker run` never finished: {out:?}"));
    let assert_intact = |phase: &str, report: &str| {
        // Give a straggling writer time to do its worst before looking.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            sha256_file(&victim),
            victim_hash,
            "the runtime binary on disk was overwritten from inside a container \
             ({phase}):\n{report}"
        );
    };
    assert_intact("run", &run_report);

    // `docker exec`: an exec'd process executes the runtime.
    let mut args = vec!["run", "-d", "--name", "target"];
    args.extend(base);
    args.extend(["busybox", "sleep", "600"]);
    pierd.docker_ok(&args);
    let out = pierd.docker(&["exec", "target", "/proc/self/exe", "/report/exec"]);
    let exec_report = wait_report(&reports.join("exec"))
        .unwrap_or_else(|| panic!("the attack in `docker exec` never finished: {out:?}"));
    pierd.docker_ok(&["rm", "-f", "target"]);

    for (what, report) in [("run", &run_report), ("exec", &exec_report)] {
        // The attack reached the runtime: its code ran in a process whose exe is the
        // runtime, and it held that exe and tried to write it.
        let exe = field(report, "exe").unwrap_or_default();
        assert!(
            exe.contains("pier-runtime"),
            "{what}: the attacker did not run inside the runtime:\n{report}"
        );
        assert!(
            field(report, "opath").is_some_and(|fd| !fd.starts_with('-')),
            "{what}: the attacker got no handle on /proc/self/exe:\n{report}"
        );
        assert!(
            field(report, "reopen").is_some(),
            "{what}: the attacker never tried to write:\n{report}"
        );
        // The defence: that exe is not the file on disk but a copy no one can change:
        // the binary seen through a read-only overlay mount attached nowhere (its path
        // in that mount is just its name), or a sealed in-memory copy.
        let overlay_view = exe == "/pier-runtime"
            && field(report, "reopen").is_some_and(|r| r == format!("-{}", libc::EROFS));
        let sealed_memfd = exe.starts_with("/memfd:") && exe.ends_with("(deleted)");
        assert!(
            overlay_view || sealed_memfd,
            "{what}: the runtime ran in the container from {exe:?}, not a protected copy:\n{report}"
        );
        if field(report, "reopen").is_some_and(|fd| !fd.starts_with('-')) {
            assert!(
                field(report, "write").is_some_and(|w| w.starts_with('-')),
                "{what}: a write to the runtime's sealed copy succeeded:\n{report}"
            );
        }
    }
    assert_intact("exec", &exec_report);
    assert_eq!(sha256_file(&runtime), runtime_hash);
}

#[test]
fn runtime_binary_cannot_be_overwritten_through_proc_self_exe() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(attacker) = prepared_attacker(work.path()) else {
        return;
    };
    let victim_dir = work.path().join("victim-runtime");
    std::fs::create_dir(&victim_dir).expect("mkdir");
    attack_runtime_copy(work.path(), &attacker, &victim_dir);
}

/// A directory at the host's root, removed when dropped.
struct RootDir(std::path::PathBuf);

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// pier-runtime once decided whether it already ran from its sealed copy by the name
/// `/proc/self/exe` reads back (it started with `/memfd:pier-runtime`): a runtime
/// installed below a host directory of such a name (`/memfd:pier-runtime-…/pier-runtime`)
/// was taken for the sealed copy, never copied, and a container overwrote it on disk.
/// `selfexe::is_cloned` now asks the kernel (`F_GET_SEALS` on the exe, which only a
/// memfd answers, with every seal of the copy); the attack must find the disk intact.
#[test]
fn runtime_under_a_memfd_like_path_is_still_sealed() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(attacker) = prepared_attacker(work.path()) else {
        return;
    };
    let victim_dir = RootDir(std::path::PathBuf::from(format!(
        "/{}",
        pier_testsupport::unique_name("memfd:pier-runtime-test-")
    )));
    std::fs::create_dir(&victim_dir.0).expect("mkdir at /");
    attack_runtime_copy(work.path(), &attacker, &victim_dir.0);
}
