//! Default capabilities and seccomp: inside `docker run busybox`, the syscalls that
//! lead out of a container (new user and mount namespaces, `mount`, the kernel keyring,
//! `bpf`, `open_by_handle_at`) are refused, and the capability sets are Docker's
//! default — on pierd as on a real dockerd.
//!
//! `c/sysprobe.c` (compiled static with the host's gcc, bind-mounted read-only) makes
//! each syscall in a child of its own and prints the errno. A run of the same probe on
//! pierd with `CAP_SYS_ADMIN` and no seccomp filter is the control: there every probe
//! gets through, so a probe that always failed could not make this test pass.
//! (`--privileged` would be the obvious control, but this host's own bounding set lacks
//! `CAP_SYS_RESOURCE`, so privileged containers fail here on dockerd and pierd alike.)

use crate::common::{pierd_with_busybox, Engine};
use crate::support::{compile_static, dockerd_with_busybox, rootfs_tar};

const PROBE: &str = include_str!("c/sysprobe.c");
const TEST: &str = "default_capabilities_and_seccomp_refuse_escape_syscalls";

/// Docker's default capability set (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID,
/// SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP).
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

/// The probe's syscalls, each of which the default confinement must refuse.
const REFUSED: [&str; 9] = [
    "unshare-user",
    "unshare-mount",
    "unshare-net",
    "clone-newuser",
    "mount-tmpfs",
    "keyctl",
    "add_key",
    "bpf",
    "open_by_handle_at",
];

/// The probe's report, then busybox's own `unshare` and `mount`, in one container.
fn confinement(e: &dyn Engine, probe_mount: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", "-v", probe_mount];
    args.extend(extra);
    args.extend([
        "busybox",
        "sh",
        "-c",
        "/probe/sysprobe; \
         unshare -U true 2>/dev/null; echo busybox-unshare-U=$?; \
         unshare -m true 2>/dev/null; echo busybox-unshare-m=$?; \
         mount -t tmpfs none /tmp 2>/dev/null; echo busybox-mount=$?",
    ]);
    e.docker_ok(&args)
}

fn value<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(['=', ':'])?;
            (k == key).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {key} in the report:\n{report}"))
}

#[test]
fn default_capabilities_and_seccomp_refuse_escape_syscalls() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let probe_dir = work.path().join("probe");
    std::fs::create_dir(&probe_dir).expect("mkdir");
    if compile_static(TEST, &probe_dir, "sysprobe", PROBE, &[]).is_none() {
        return;
    }
    let mount = format!("{}:/probe:ro", probe_dir.display());

    let report = confinement(&pierd, &mount, &[]);
    for probe in REFUSED {
        assert_eq!(
            value(&report, probe),
            "EPERM",
            "{probe} was not refused:\n{report}"
        );
    }
    for tool in ["busybox-unshare-U", "busybox-unshare-m", "busybox-mount"] {
        assert_ne!(value(&report, tool), "0", "{tool} succeeded:\n{report}");
    }
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(
            value(&report, set),
            DOCKER_DEFAULT_CAPS,
            "{set} is not Docker's default set:\n{report}"
        );
    }
    assert_eq!(value(&report, "CapInh"), "0000000000000000", "{report}");
    assert_eq!(value(&report, "CapAmb"), "0000000000000000", "{report}");
    assert_eq!(
        value(&report, "Seccomp"),
        "2",
        "no seccomp filter:\n{report}"
    );

    // The control: with the capability and without the filter, the probes get through.
    let unconfined = confinement(
        &pierd,
        &mount,
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--security-opt",
            "seccomp=unconfined",
        ],
    );
    // open_by_handle_at also needs CAP_DAC_READ_SEARCH and a real handle.
    for probe in REFUSED.iter().filter(|p| **p != "open_by_handle_at") {
        assert_eq!(
            value(&unconfined, probe),
            "ok",
            "{probe} fails even unconfined, so its refusal proves nothing:\n{unconfined}"
        );
    }
    assert_eq!(value(&unconfined, "Seccomp"), "0", "{unconfined}");

    // The same report from a real dockerd.
    let Some(dockerd) = dockerd_with_busybox(TEST, &rootfs_tar(work.path())) else {
        return;
    };
    let docker_report = confinement(&dockerd, &mount, &[]);
    assert_eq!(
        report, docker_report,
        "pierd's confinement differs from dockerd's"
    );
}
