//! Fault tests: `kill -9` of pierd while a container is being created, at many
//! moments. After the restart every container is whole (inspectable, startable) or
//! absent without a trace (no snapshot, no directory), and the containers that were
//! running kept running.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{pierd_with_busybox, Engine, Pierd, CMD_TIMEOUT};
use pier_testsupport::wait_deadline;

/// The snapshotter's records under the data root: (container IDs of the
/// `container-<id>` keys, number of records).
fn snapshot_records(data_root: &Path) -> (BTreeSet<String>, usize) {
    let path = data_root.join("image/snapshots/metadata.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let meta: serde_json::Value = serde_json::from_str(&text).expect("snapshot metadata");
    let records = meta["snapshots"].as_object().expect("snapshots map");
    let containers = records
        .keys()
        .filter_map(|k| k.strip_prefix("container-"))
        .map(str::to_string)
        .collect();
    (containers, records.len())
}

/// Snapshot directories on disk.
fn snapshot_dirs(data_root: &Path) -> usize {
    std::fs::read_dir(data_root.join("image/snapshots/snapshots"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn container_dirs(data_root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(data_root.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn all_ids(pierd: &Pierd) -> BTreeSet<String> {
    pierd
        .docker_ok(&["ps", "-aq", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn kill_9_during_create_leaves_whole_containers_or_none() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["run", "-d", "--name", "keeper", "busybox", "sleep", "1000"]);
    let keeper_pid = pierd.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "keeper"]);

    // How long one `docker create` takes end to end: the crashes are spread over it
    // (and a little past it), so they land before, during and after the commit.
    let started = std::time::Instant::now();
    pierd.docker_ok(&["create", "--name", "timing", "busybox", "true"]);
    let span = started.elapsed();
    pierd.docker_ok(&["rm", "timing"]);

    let mut created = 0;
    let mut lost = 0;
    for i in 0..12u32 {
        let delay = span * i / 8;
        let name = format!("victim{i}");
        let mut create = pierd
            .command()
            .args(["create", "--name", &name, "busybox", "echo", "whole"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker create");
        std::thread::sleep(delay);
        pierd.crash_and_restart(Duration::ZERO);
        let _ = wait_deadline(&mut create, CMD_TIMEOUT);

        // Nothing half-made: records, snapshots and directories agree.
        let ids = all_ids(&pierd);
        let (snapshot_ids, records) = snapshot_records(&pierd.data_root());
        assert_eq!(
            snapshot_ids, ids,
            "snapshots vs containers after a crash {delay:?} into create"
        );
        assert_eq!(
            snapshot_dirs(&pierd.data_root()),
            records,
            "snapshot directories vs records after a crash {delay:?} into create"
        );
        assert_eq!(
            container_dirs(&pierd.data_root()),
            ids,
            "directories vs containers after a crash {delay:?} into create"
        );
        // A container that exists is whole: it starts and runs its command.
        let exists = pierd.docker(&["inspect", &name]).code == Some(0);
        if exists {
            created += 1;
            assert_eq!(pierd.docker_ok(&["start", "-a", &name]), "whole\n");
            pierd.docker_ok(&["rm", &name]);
        } else {
            lost += 1;
            // The name is free again.
            pierd.docker_ok(&["create", "--name", &name, "busybox", "true"]);
            pierd.docker_ok(&["rm", &name]);
        }
        // The running container was never disturbed.
        assert_eq!(
            pierd.docker_ok(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Pid}}",
                "keeper"
            ]),
            format!("running {keeper_pid}"),
            "keeper after crash {i}"
        );
    }
    // Both outcomes happen: the crashes did land before and after the commit point.
    eprintln!("create takes {span:?}; created {created}, lost {lost}");
    assert!(lost > 0, "no crash landed before the record was written");
    assert!(created > 0, "no crash landed after the record was written");
    pierd.docker_ok(&["rm", "-f", "keeper"]);
    assert!(pierd.monitor_pids().is_empty());
}
