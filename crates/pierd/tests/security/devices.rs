//! Device cgroup rules: a container may make device nodes (`CAP_MKNOD`, as in Docker)
//! but not use them — reading a disk (`mknod /dev/sda b 8 0`, and a block device this
//! host really has), `/dev/mem`, `/dev/kmem` or `/dev/port` is refused (EPERM, the
//! cgroup's answer, before any driver is asked) — while the default devices
//! (`/dev/null`, `/dev/zero`, `/dev/full`, `/dev/urandom`, `/dev/tty`) work. Compared
//! with a real dockerd. The control: the same host disk read through a node made on the
//! host works, so the refusal inside comes from the container's rules. (`--privileged`,
//! which lifts them, cannot run on this host: its bounding set lacks
//! `CAP_SYS_RESOURCE`.)
//!
//! Nothing is ever written to a device node but `/dev/null` and `/dev/full`.

use std::process::Command;
use std::time::Duration;

use crate::common::{pierd_with_busybox, Engine};
use crate::support::{dockerd_with_busybox, rootfs_tar, run_sh};

/// A block device this host has (`major:minor`), from `/sys/dev/block`.
fn host_block_device() -> Option<String> {
    let mut devs: Vec<String> = std::fs::read_dir("/sys/dev/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    devs.sort();
    devs.into_iter().next()
}

/// `NAME=RESULT` lines: `ok`, or the error the shell reported (errno text reduced to a
/// name).
fn survey(e: &dyn Engine, host_dev: &str) -> String {
    let (major, minor) = host_dev.split_once(':').expect("major:minor");
    let script = format!(
        r#"check() {{
  name=$1; shift
  err=$("$@" 2>&1 >/dev/null); rc=$?
  case "$err" in
    *"not permitted"*) r=EPERM ;;
    *"No such device or address"*) r=ENXIO ;;
    *"No such device"*) r=ENODEV ;;
    *"No such file"*) r=ENOENT ;;
    *"No space left"*) r=ENOSPC ;;
    *) if [ $rc = 0 ]; then r=ok; else r="exit-$rc"; fi ;;
  esac
  echo "$name=$r"
}}
check mknod-sda mknod /tmp/sda b 8 0
check read-sda head -c 1 /tmp/sda
check mknod-hostdev mknod /tmp/hostdev b {major} {minor}
check read-hostdev head -c 1 /tmp/hostdev
check dev-mem-present test -e /dev/mem
check mknod-mem mknod /tmp/mem c 1 1
check read-mem head -c 1 /tmp/mem
check mknod-kmem mknod /tmp/kmem c 1 2
check read-kmem head -c 1 /tmp/kmem
check mknod-port mknod /tmp/port c 1 4
check read-port head -c 1 /tmp/port
check write-null sh -c 'echo x > /dev/null'
check read-zero sh -c 'test $(head -c 16 /dev/zero | wc -c) = 16'
check read-urandom sh -c 'test $(head -c 16 /dev/urandom | wc -c) = 16'
check write-full sh -c 'echo x > /dev/full'
check open-tty sh -c ': < /dev/tty'"#
    );
    run_sh(e, &script)
}

fn result<'a>(survey: &'a str, name: &str) -> &'a str {
    survey
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in:\n{survey}"))
}

#[test]
fn device_rules_refuse_host_devices_and_allow_the_defaults() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let host_dev = host_block_device().unwrap_or_else(|| "8:0".to_string());
    let survey_pierd = survey(&pierd, &host_dev);
    for node in ["sda", "hostdev", "mem", "kmem", "port"] {
        assert_eq!(
            result(&survey_pierd, &format!("mknod-{node}")),
            "ok",
            "{survey_pierd}"
        );
        assert_eq!(
            result(&survey_pierd, &format!("read-{node}")),
            "EPERM",
            "reading {node} ({host_dev} for hostdev) was not refused:\n{survey_pierd}"
        );
    }
    assert_eq!(result(&survey_pierd, "dev-mem-present"), "exit-1");
    for ok in ["write-null", "read-zero", "read-urandom"] {
        assert_eq!(result(&survey_pierd, ok), "ok", "{survey_pierd}");
    }
    // Reached the driver: /dev/full is full; /dev/tty is allowed but the container has
    // no controlling terminal.
    assert_eq!(
        result(&survey_pierd, "write-full"),
        "ENOSPC",
        "{survey_pierd}"
    );
    assert_eq!(result(&survey_pierd, "open-tty"), "ENXIO", "{survey_pierd}");

    // The control: outside the container, the same disk reads through such a node.
    if let Some(dev) = host_block_device() {
        let dir = tempfile::tempdir().expect("temp dir");
        let node = dir.path().join("hostdev");
        let (major, minor) = dev.split_once(':').expect("major:minor");
        let script = format!(
            "mknod {n} b {major} {minor} && head -c 1 {n} >/dev/null",
            n = node.display()
        );
        pier_testsupport::run_ok(
            Command::new("sh").args(["-c", &script]),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("control: the host cannot read {dev} either: {e}"));
    }

    let Some(dockerd) = dockerd_with_busybox(
        "device_rules_refuse_host_devices_and_allow_the_defaults",
        &rootfs_tar(work.path()),
    ) else {
        return;
    };
    let survey_dockerd = survey(&dockerd, &host_dev);
    assert_eq!(
        survey_pierd, survey_dockerd,
        "pierd's device rules differ from dockerd's"
    );
}
