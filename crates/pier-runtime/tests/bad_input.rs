//! Bad input: a clear error that names the problem, a non-zero exit, nothing left behind.

mod common;

use common::*;
use serde_json::json;

fn assert_fails_cleanly(rt: &Runtime, b: &Bundle, id: &str, expect_in_error: &str) {
    let out = rt.output(&["create", "--bundle", b.path_str(), id]);
    assert!(!out.status.success(), "{}: create must fail", rt.name);
    let err = stderr(&out);
    assert!(
        err.contains(expect_in_error),
        "{}: error should mention {expect_in_error:?}: {err}",
        rt.name
    );
    assert!(
        !rt.root.path().join(id).exists(),
        "{}: state dir left behind",
        rt.name
    );
    assert!(
        cgroups_named(id).is_empty(),
        "{}: cgroup left behind: {:?}",
        rt.name,
        cgroups_named(id)
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(b.path_str()),
        "{}: mount left behind",
        rt.name
    );
}

#[test]
fn invalid_configs_name_the_field_and_leave_nothing() {
    require_root();
    let rt = pier();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "process.cwd",
            Box::new(|c| c["process"]["cwd"] = json!("relative")),
        ),
        (
            "process.args",
            Box::new(|c| c["process"]["args"] = json!([])),
        ),
        (
            "process.rlimits[0].type",
            Box::new(|c| {
                c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}])
            }),
        ),
        (
            "mounts[0].destination",
            Box::new(|c| c["mounts"][0]["destination"] = json!("proc")),
        ),
        (
            "linux.namespaces[5]",
            Box::new(|c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "pid"}))
            }),
        ),
        (
            "unknown variant",
            Box::new(|c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "bogus"}))
            }),
        ),
        (
            "linux.sysctl",
            Box::new(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "10"})),
        ),
        (
            "linux.intelRdt",
            Box::new(|c| c["linux"]["intelRdt"] = json!({"closID": "x"})),
        ),
        (
            "root.path",
            Box::new(|c| c["root"]["path"] = json!("no-such-rootfs")),
        ),
        ("ociVersion", Box::new(|c| c["ociVersion"] = json!(""))),
    ];
    for (field, edit) in cases {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| edit(c));
        assert_fails_cleanly(&rt, &b, &unique_id("bad"), field);
    }
}

#[test]
fn failure_halfway_through_create_cleans_up() {
    require_root();
    for rt in runtimes() {
        // The executable is only found missing inside the container, after namespaces,
        // cgroup and mounts were made.
        let b = Bundle::new(&["/no/such/binary"]);
        let id = unique_id("halfway");
        let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
        assert!(!out.status.success(), "{}", rt.name);
        let _ = rt.output(&["delete", "--force", &id]);
        assert!(
            cgroups_named(&id).is_empty(),
            "{}: cgroup left behind",
            rt.name
        );
        if rt.name == "pier-runtime" {
            assert!(stderr(&out).contains("/no/such/binary"), "{}", stderr(&out));
            assert!(!rt.root.path().join(&id).exists(), "state dir left behind");
        }
    }
}

#[test]
fn unknown_container_and_duplicate_ids() {
    require_root();
    for rt in runtimes() {
        let out = rt.output(&["state", "does-not-exist"]);
        assert!(!out.status.success(), "{}", rt.name);
        assert!(
            stderr(&out).contains("does not exist"),
            "{}: {}",
            rt.name,
            stderr(&out)
        );
        let b = Bundle::new(&["sleep", "100"]);
        let id = unique_id("dup");
        rt.ok(&["create", "--bundle", b.path_str(), &id]);
        let out = rt.output(&["create", "--bundle", b.path_str(), &id]);
        assert!(!out.status.success(), "{}", rt.name);
        assert!(
            stderr(&out).contains("exists"),
            "{}: {}",
            rt.name,
            stderr(&out)
        );
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
fn delete_force_in_every_state_leaves_nothing() {
    require_root();
    let rt = pier();
    for stage in ["created", "running", "paused", "stopped"] {
        let b = Bundle::new(&["sleep", "100"]);
        let id = unique_id("force");
        rt.ok(&["create", "--bundle", b.path_str(), &id]);
        if stage != "created" {
            rt.ok(&["start", &id]);
        }
        if stage == "paused" {
            rt.ok(&["pause", &id]);
        }
        if stage == "stopped" {
            rt.ok(&["kill", &id, "9"]);
            rt.wait_status(&id, "stopped");
        }
        assert_eq!(rt.state(&id)["status"], stage);
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        rt.ok(&["delete", "--force", &id]);
        assert!(
            !rt.root.path().join(&id).exists(),
            "{stage}: state dir left"
        );
        assert!(cgroups_named(&id).is_empty(), "{stage}: cgroup left");
        if pid > 0 {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| !s.contains(") Z"))
                    .unwrap_or(false);
            assert!(!alive, "{stage}: process {pid} survived");
        }
    }
}
