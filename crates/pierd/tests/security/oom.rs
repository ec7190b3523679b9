//! OOM kills are reported (hole 6): a container killed by its memory limit exits 137,
//! shows `State.OOMKilled: true`, and `docker events` has `oom` before `die` — as with
//! a real dockerd, compared in the same test when one can run here.

use std::time::{SystemTime, UNIX_EPOCH};

use pier_testsupport::{DockerdOptions, IsolatedDockerd};

use crate::common::{busybox_rootfs_tar, Engine, Pierd};

/// Reads one endless line (no newline in /dev/zero), keeping it all, until the
/// memory limit kills it.
const HOG: &[&str] = &["tail", "/dev/zero"];

/// Where the memory controller is (v1 on a hybrid host, or cgroup v2), or why not.
fn memory_controller() -> Result<&'static str, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        let (fstype, _, opts) = (r.next(), r.next(), r.next().unwrap_or(""));
        if fstype == Some("cgroup") && opts.split(',').any(|o| o == "memory") {
            return Ok("cgroup v1 memory");
        }
        if fstype == Some("cgroup2") {
            let mountpoint = left.split(' ').nth(4).unwrap_or_default();
            let controllers = std::fs::read_to_string(format!("{mountpoint}/cgroup.controllers"))
                .unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                return Ok("cgroup v2 memory");
            }
        }
    }
    Err("no memory cgroup controller on this host (neither v1 nor v2)".into())
}

fn unix_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Runs `cmd` in busybox under a 16 MiB limit; returns its exit code, `OOMKilled`,
/// and the container's `oom`/`die` events in order.
fn limited_run(e: &dyn Engine, name: &str, cmd: &[&str]) -> (Option<i32>, String, Vec<String>) {
    let since = unix_now();
    let mut args = vec![
        "run",
        "--name",
        name,
        "--network",
        "none",
        "-m",
        "16m",
        "busybox",
    ];
    args.extend(cmd);
    let run = e.docker(&args);
    let oom_killed = e.docker_ok(&["inspect", "-f", "{{.State.OOMKilled}}", name]);
    let until = unix_now();
    let filter = format!("container={name}");
    let events = e.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &filter,
        "--format",
        "{{.Action}}",
    ]);
    let _ = e.docker(&["rm", "-f", name]);
    let events = events
        .lines()
        .filter(|a| matches!(*a, "oom" | "die"))
        .map(str::to_string)
        .collect();
    (run.code, oom_killed.trim().to_string(), events)
}

#[test]
fn a_memory_limit_kill_is_reported_as_oom() {
    let why = match memory_controller() {
        Ok(controller) => controller,
        Err(reason) => {
            pier_testsupport::skip("oom reporting", &reason);
            return;
        }
    };
    eprintln!("memory controller: {why}");
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let pierd = Pierd::start();
    pierd
        .docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &rootfs)
        .ok()
        .unwrap_or_else(|e| panic!("{e}"));
    let pier = limited_run(&pierd, "hog", HOG);
    let want = (
        Some(137),
        "true".to_string(),
        vec!["oom".into(), "die".into()],
    );
    assert_eq!(
        pier,
        want,
        "pierd: exit code, OOMKilled, events\n{}",
        pierd.log_tail(20)
    );
    // A container that ends on its own under the limit is no OOM.
    let calm = limited_run(&pierd, "calm", &["true"]);
    assert_eq!(calm, (Some(0), "false".to_string(), vec!["die".into()]));

    let Some(dockerd) =
        IsolatedDockerd::start_or_skip("oom_as_real_dockerd", DockerdOptions::default())
    else {
        return;
    };
    dockerd
        .docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &rootfs)
        .ok()
        .unwrap_or_else(|e| panic!("{e}"));
    let docker = limited_run(&dockerd, "hog", HOG);
    eprintln!("dockerd: {docker:?}");
    assert_eq!(pier, docker, "pierd, then dockerd");
}
