//! The pids limit against a fork bomb: `docker run --pids-limit 64` with a bomb inside
//! keeps the container's cgroup at 64 processes at most, the host and pierd stay
//! responsive, and `docker rm -f` ends every process and removes the cgroup.
//!
//! The bomb is bounded even if the limit failed: a binary tree of shells ten levels deep
//! (about two thousand processes at most), each sleeping a minute at most, and the
//! container is removed at the end (also on failure, by the `Pierd` drop). The kernel's
//! own count (`pids.events`) must show forks refused, so the bomb did press on the
//! limit. Not compared with dockerd: the limit is the kernel's, given the same number.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{pierd_with_busybox, wait_until, Engine};

const TEST: &str = "pids_limit_holds_against_a_fork_bomb";
const LIMIT: u64 = 64;

/// Every process makes two more, ten levels deep, then sleeps.
const BOMB: &str = "b(){ if [ $1 -lt 10 ]; then b $(($1+1)) & b $(($1+1)) & fi; sleep 60; }; b 0";

/// Where the pids controller is mounted: a cgroup v1 hierarchy with `pids`, or the
/// cgroup2 mount when it has the controller. `(mount point, v2)`.
fn pids_controller() -> Option<(PathBuf, bool)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount = pre.split_whitespace().nth(4)?;
        let mut post = post.split_whitespace();
        let fstype = post.next()?;
        let super_opts = post.nth(1).unwrap_or_default();
        if fstype == "cgroup" && super_opts.split(',').any(|o| o == "pids") {
            return Some((PathBuf::from(mount), false));
        }
        if fstype == "cgroup2"
            && std::fs::read_to_string(Path::new(mount).join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"))
        {
            return Some((PathBuf::from(mount), true));
        }
    }
    None
}

/// The pids cgroup directory of process `pid`.
fn cgroup_of(pid: &str, mount: &Path, v2: bool) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let rel = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let ours = if v2 {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == "pids")
            };
            ours.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no pids cgroup for {pid}:\n{text}"));
    mount.join(rel.trim_start_matches('/'))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn pids_limit_holds_against_a_fork_bomb() {
    let Some((mount, v2)) = pids_controller() else {
        pier_testsupport::skip(TEST, "no cgroup hierarchy has the pids controller");
        return;
    };
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let limit = LIMIT.to_string();
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "bomb",
        "--network",
        "none",
        "--pids-limit",
        &limit,
        "busybox",
        "sh",
        "-c",
        BOMB,
    ]);
    let inspect = pierd.docker_ok(&["inspect", "-f", "{{.State.Pid}} {{.Id}}", "bomb"]);
    let (pid, id) = inspect.trim().split_once(' ').expect("pid and id");
    let cgroup = cgroup_of(pid, &mount, v2);
    assert_eq!(
        std::fs::read_to_string(cgroup.join("pids.max"))
            .unwrap_or_default()
            .trim(),
        limit,
        "{}",
        cgroup.display()
    );

    // Watch the bomb for a few seconds; meanwhile the host and pierd must answer.
    let mut highest = 0;
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        if let Some(n) = read_u64(&cgroup.join("pids.current")) {
            highest = highest.max(n);
        }
        let t = Instant::now();
        pierd.docker_ok(&["ps", "-q"]);
        pier_testsupport::run_ok(
            &mut std::process::Command::new("true"),
            Duration::from_secs(10),
        )
        .expect("the host cannot start a process");
        slowest = slowest.max(t.elapsed());
    }
    let refused = std::fs::read_to_string(cgroup.join("pids.events"))
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();

    let t = Instant::now();
    pierd.docker_ok(&["rm", "-f", "bomb"]);
    let removal = t.elapsed();
    let gone = wait_until(Duration::from_secs(10), || !cgroup.exists());
    let survivors: Vec<&str> = procs
        .split_whitespace()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();

    assert!(
        highest <= LIMIT,
        "the container had {highest} processes with --pids-limit {LIMIT}"
    );
    // The kernel's count of forks refused at the limit: the bomb did press on it (the
    // samples above may miss the peaks, as refused forks make shells exit).
    assert!(
        refused > 0,
        "the bomb never reached the limit ({highest} processes at most): this run proves \
         nothing"
    );
    assert!(
        slowest < Duration::from_secs(10),
        "the host took {slowest:?} to answer `docker ps` and run `true` during the bomb"
    );
    assert!(
        removal < Duration::from_secs(30),
        "docker rm -f took {removal:?}"
    );
    assert!(
        gone,
        "the container's cgroup {} is still there",
        cgroup.display()
    );
    // A pid may have been reused by then: a leftover is one still in the container's
    // cgroup (named by its id).
    let leftovers: Vec<&&str> = survivors
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cgroup")).is_ok_and(|c| c.contains(id))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "bomb processes outlived docker rm -f: {leftovers:?}"
    );
}
