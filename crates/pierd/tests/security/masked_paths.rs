//! Masked and read-only paths: the kernel files that leak host state or control the
//! host (`/proc/kcore`, `/proc/keys`, `/proc/timer_list`, `/sys/firmware`, …) are
//! masked (an empty file or directory mounted over them), and `/proc/sys`,
//! `/proc/sysrq-trigger`, `/proc/irq`, `/proc/bus` are mounted read-only; the whole
//! set is compared with a real dockerd's for the same image.
//!
//! Nothing is written to those files (a writable `/proc/sysrq-trigger` would act on the
//! host): the mount table inside the container says whether a path is a mount point
//! and whether it is read-only. The same survey of the host's own `/proc` and `/sys`
//! is the control that the check sees an unmasked path. (`--privileged`, which masks
//! nothing, cannot run on this host: its bounding set lacks `CAP_SYS_RESOURCE`.)

use std::process::Command;
use std::time::Duration;

use crate::common::{pierd_with_busybox, Engine};
use crate::support::{dockerd_with_busybox, rootfs_tar, run_sh};

/// Docker's masked paths and read-only paths (moby's defaults, with the ones either
/// engine may add).
const PATHS: [&str; 17] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Paths this test requires masked (an empty file or directory) on pierd, when the
/// kernel has them.
const MASKED: [&str; 4] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/sys/firmware",
];

/// Paths this test requires mounted read-only on pierd.
const READ_ONLY: [&str; 4] = ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"];

/// One line per path: `PATH KIND CONTENT MOUNT` — KIND `dir`/`file`/`absent`, CONTENT
/// `empty` or `data` (entries or the first bytes readable), MOUNT `ro`/`rw` when the
/// path is a mount point in the container, else `-`.
fn survey_script() -> String {
    format!(
        r#"for p in {}; do
  if [ -d "$p" ]; then k=dir; n=$(ls -A "$p" 2>/dev/null | wc -l)
  elif [ -e "$p" ]; then k=file; n=$(head -c 4096 "$p" 2>/dev/null | wc -c)
  else k=absent; n=0; fi
  if [ "$n" -gt 0 ]; then c=data; else c=empty; fi
  m=$(awk -v p="$p" '$5 == p {{ split($6, o, ","); print o[1] }}' /proc/self/mountinfo | tail -n 1)
  echo "$p $k $c ${{m:--}}"
done"#,
        PATHS.join(" ")
    )
}

fn survey(e: &dyn Engine) -> String {
    run_sh(e, &survey_script())
}

/// `path`'s line of a survey, split in its fields.
fn entry<'a>(survey: &'a str, path: &str) -> Vec<&'a str> {
    survey
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&path))
        .unwrap_or_else(|| panic!("{path} missing from the survey:\n{survey}"))
}

#[test]
fn kernel_files_are_masked_or_read_only() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let survey_pierd = survey(&pierd);
    for path in MASKED {
        let f = entry(&survey_pierd, path);
        if f[1] == "absent" {
            continue; // this kernel has no such file: nothing to leak
        }
        assert!(
            f[2] == "empty" && f[3] != "-",
            "{path} is not masked: {f:?}\n{survey_pierd}"
        );
    }
    for path in READ_ONLY {
        let f = entry(&survey_pierd, path);
        if f[1] == "absent" {
            continue;
        }
        assert_eq!(f[3], "ro", "{path} is not read-only: {f:?}\n{survey_pierd}");
    }

    // The control: on the host nothing is masked, and the survey sees it.
    let host = pier_testsupport::run_ok(
        Command::new("/bin/busybox").args(["sh", "-c", &survey_script()]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let unmasked: Vec<&str> = MASKED
        .into_iter()
        .filter(|p| entry(&host, p)[2..] == ["data", "-"])
        .collect();
    assert!(
        !unmasked.is_empty(),
        "none of {MASKED:?} has data on the host, so masking them proves nothing:\n{host}"
    );
    assert_eq!(entry(&host, "/proc/sys")[3], "-", "{host}");

    let Some(dockerd) = dockerd_with_busybox(
        "kernel_files_are_masked_or_read_only",
        &rootfs_tar(work.path()),
    ) else {
        return;
    };
    let survey_dockerd = survey(&dockerd);
    let mut differences = Vec::new();
    for path in PATHS {
        let (ours, theirs) = (entry(&survey_pierd, path), entry(&survey_dockerd, path));
        let known = STRICTER_ON_PIERD.iter().any(|(p, _)| *p == path);
        if ours != theirs && !(known && protection(&ours) > protection(&theirs)) {
            differences.push(format!("pierd {ours:?}, dockerd {theirs:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "pierd masks or protects another set of paths than dockerd:\n{}",
        differences.join("\n")
    );
}

/// Paths pierd protects more than the reference dockerd (20.10), and why.
const STRICTER_ON_PIERD: [(&str, &str); 1] = [(
    "/proc/interrupts",
    "read-only in pierd's list (engine::spec::READONLY_PATHS); not in dockerd 20.10's",
)];

/// 2 masked (empty and a mount point), 1 read-only, 0 neither.
fn protection(fields: &[&str]) -> u8 {
    match fields {
        [_, _, "empty", m] if *m != "-" => 2,
        [_, _, _, "ro"] => 1,
        _ => 0,
    }
}
