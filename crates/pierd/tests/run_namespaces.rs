//! `docker run` options that share another container's namespaces (`--ipc shareable`,
//! `--ipc container:`, `--pid container:`, `--ipc none`) or place its cgroup
//! (`--cgroup-parent`), run with the real docker CLI against pierd and an isolated
//! dockerd in the same test; the effect is asserted inside the containers (namespace
//! links, `/dev/shm`, `/proc/self/cgroup`) and on the host (the cgroup directory).

mod common;

use common::{shell_words, Engine};

/// `docker <line>` on `e`.
fn docker(e: &dyn Engine, line: &str) -> pier_testsupport::Out {
    let args = shell_words(line);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    e.docker(&args)
}

/// `docker <line>` on `e`, which must succeed; its stdout.
fn docker_ok(e: &dyn Engine, label: &str, line: &str) -> String {
    let out = docker(e, line);
    assert_eq!(out.code, Some(0), "{label}: docker {line}: {out:?}");
    out.stdout
}

#[test]
fn ipc_and_pid_namespaces_are_shared_as_dockerd_shares_them() {
    let Some((pierd, dockerd, _work)) =
        common::pierd_and_dockerd_with_busybox("run_namespaces_ipc_pid")
    else {
        return;
    };
    for (label, e) in [("pierd", &pierd as &dyn Engine), ("dockerd", &dockerd)] {
        docker_ok(
            e,
            label,
            "run -d --network none --ipc shareable --name donor busybox sleep 300",
        );
        docker_ok(
            e,
            label,
            "run -d --network none --ipc private --name private busybox sleep 300",
        );
        let donor = docker_ok(
            e,
            label,
            "exec donor sh -c 'echo shared > /dev/shm/mark; readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid'",
        );
        let donor: Vec<&str> = donor.lines().collect();
        let private = docker_ok(e, label, "exec private readlink /proc/self/ns/ipc");
        assert_ne!(private.trim(), donor[0], "{label}");

        // The donor's IPC namespace and its /dev/shm.
        let joined = docker_ok(
            e,
            label,
            "run --rm --network none --ipc container:donor busybox sh -c 'readlink /proc/self/ns/ipc; cat /dev/shm/mark'",
        );
        assert_eq!(joined, format!("{}\nshared\n", donor[0]), "{label}");
        // A private donor cannot be joined (named by its full ID).
        let private_id = docker_ok(e, label, "inspect -f {{.Id}} private");
        let out = docker(
            e,
            "run --rm --network none --ipc container:private busybox true",
        );
        assert_eq!(out.code, Some(125), "{label}: {out:?}");
        let words = format!(
            "can't join IPC of container {}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)",
            private_id.trim()
        );
        assert!(out.stderr.contains(&words), "{label}: {out:?}");

        // The donor's PID namespace: its processes are seen.
        let joined = docker_ok(
            e,
            label,
            "run --rm --network none --pid container:donor busybox sh -c 'readlink /proc/self/ns/pid; ps -o comm | grep -c sleep'",
        );
        assert_eq!(joined, format!("{}\n1\n", donor[1]), "{label}");

        // `--ipc none`: no /dev/shm mounted.
        let out = docker_ok(
            e,
            label,
            "run --rm --network none --ipc none busybox sh -c 'grep -c \" /dev/shm \" /proc/mounts || true'",
        );
        assert_eq!(out, "0\n", "{label}");

        // A donor that is not running cannot be joined.
        docker_ok(e, label, "stop -t 0 donor");
        for (line, words) in [
            (
                "run --rm --network none --pid container:donor busybox true",
                "is not running",
            ),
            (
                "run --rm --network none --ipc container:donor busybox true",
                "can't join IPC of container ",
            ),
        ] {
            let out = docker(e, line);
            assert_eq!(out.code, Some(125), "{label}: {line}: {out:?}");
            assert!(out.stderr.contains(words), "{label}: {line}: {out:?}");
        }
        docker_ok(e, label, "rm -f donor private");
    }
    // Invalid modes are refused at create (by the CLI here; pierd's own check is
    // unit-tested), and nothing is left.
    assert!(pierd.docker_ok(&["ps", "-aq"]).is_empty());
}

#[test]
fn cgroup_parent_places_the_cgroup_as_dockerd() {
    let Some((pierd, dockerd, _work)) =
        common::pierd_and_dockerd_with_busybox("run_namespaces_cgroup_parent")
    else {
        return;
    };
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (controller_line, host_dir) = if v2 {
        ("0::", "/sys/fs/cgroup".to_string())
    } else {
        (":memory:", "/sys/fs/cgroup/memory".to_string())
    };
    for (label, e) in [("pierd", &pierd as &dyn Engine), ("dockerd", &dockerd)] {
        let parent = common::CgroupParent::new("pier-cgparent");
        let id = docker_ok(
            e,
            label,
            &format!(
                "run -d --network none --cgroupns host --cgroup-parent /{} busybox sleep 300",
                parent.0
            ),
        );
        let id = id.trim();
        let cgroup = docker_ok(e, label, &format!("exec {id} cat /proc/self/cgroup"));
        let line = cgroup
            .lines()
            .find(|l| l.contains(controller_line))
            .unwrap_or_else(|| panic!("{label}: {cgroup}"));
        assert!(
            line.ends_with(&format!("/{}/{id}", parent.0)),
            "{label}: {line}"
        );
        let dir = std::path::Path::new(&host_dir).join(&parent.0).join(id);
        assert!(dir.is_dir(), "{label}: {}", dir.display());
        docker_ok(e, label, &format!("rm -f {id}"));
        assert!(
            common::wait_until(std::time::Duration::from_secs(10), || !dir.exists()),
            "{label}: {} left",
            dir.display()
        );
    }
}

#[test]
fn domainname_and_mac_address_as_docker() {
    let Some((pierd, dockerd, _work)) =
        common::pierd_and_dockerd_with_busybox("run_namespaces_domainname")
    else {
        return;
    };
    let mut answers = Vec::new();
    for (label, e) in [("pierd", &pierd as &dyn Engine), ("dockerd", &dockerd)] {
        // The NIS domain name of the container's own UTS namespace.
        let out = docker_ok(
            e,
            label,
            "run --rm --network none -h box --domainname example.test busybox \
             sh -c 'cat /proc/sys/kernel/domainname; hostname'",
        );
        assert_eq!(out, "example.test\nbox\n", "{label}");
        // A MAC address on the default bridge is the interface's, as Docker 28 sets
        // it (the docker CLI 28 sends it per network, API 1.44, which dockerd 20.10
        // lacks: the CLI refuses there before asking).
        if label == "pierd" {
            let out = docker_ok(
                e,
                label,
                "run --rm --mac-address 02:42:ac:11:00:99 busybox cat /sys/class/net/eth0/address",
            );
            assert_eq!(out, "02:42:ac:11:00:99\n", "{label}");
            // An address of one's choosing is refused there (`--ip` also in
            // networks.rs and network_scenario.rs).
            for flag in ["--ip 172.17.0.99", "--ip6 fd00::99"] {
                let out = docker(e, &format!("run --rm {flag} busybox true"));
                assert_eq!(out.code, Some(125), "{flag}: {out:?}");
                assert!(
                    out.stderr.contains(
                        "user specified IP address is supported on user defined networks only"
                    ),
                    "{flag}: {out:?}"
                );
            }
        }
        answers.push(docker_ok(
            e,
            label,
            "run --rm --network none -h box --domainname example.test busybox cat /etc/hostname",
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(pierd.docker_ok(&["ps", "-aq"]).is_empty());
}

#[test]
fn a_shareable_dev_shm_is_unmounted_at_exit_and_after_a_crash() {
    let Some((mut pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let shm_mounts = |pierd: &common::Pierd| -> Vec<String> {
        common::mounts_under(&pierd.data_root())
            .into_iter()
            // Field 5 of a mountinfo line: the mount point.
            .filter(|m| m.split(' ').nth(4).is_some_and(|p| p.ends_with("/shm")))
            .collect()
    };
    let id = pierd.docker_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--ipc",
        "shareable",
        "busybox",
        "sleep",
        "300",
    ]);
    let id = id.trim().to_string();
    assert_eq!(shm_mounts(&pierd).len(), 1, "{:?}", shm_mounts(&pierd));
    pierd.docker_ok(&["stop", "-t", "0", &id]);
    assert!(shm_mounts(&pierd).is_empty(), "{:?}", shm_mounts(&pierd));
    // Started again, then removed after a pierd crash: nothing stays mounted.
    pierd.docker_ok(&["start", &id]);
    assert_eq!(shm_mounts(&pierd).len(), 1);
    pierd.crash_and_restart(std::time::Duration::from_millis(100));
    pierd.docker_ok(&["rm", "-f", &id]);
    assert!(
        common::wait_until(std::time::Duration::from_secs(10), || shm_mounts(&pierd)
            .is_empty()),
        "{:?}",
        shm_mounts(&pierd)
    );
}
