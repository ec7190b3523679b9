//! Scenario tests of runc's command line on the real kernel, run against pier-runtime
//! and the reference runtimes (see `common`). Each checks from inside the container with
//! busybox as the probe.

mod common;

use common::*;
use serde_json::json;

#[test]
fn run_prints_output_and_propagates_exit_code() {
    require_root();
    for rt in runtimes() {
        let b = Bundle::new(&["sh", "-c", "echo hello from $(hostname); exit 7"]);
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("run")]);
        assert_eq!(out.status.code(), Some(7), "{}: {}", rt.name, stderr(&out));
        assert_eq!(stdout(&out), "hello from runc\n", "{}", rt.name);
        assert!(
            rt.ok(&["list", "-q"]).trim().is_empty(),
            "{}: run must delete",
            rt.name
        );
    }
}

#[test]
fn create_start_state_kill_delete() {
    require_root();
    for rt in runtimes() {
        let b = Bundle::new(&["sleep", "100"]);
        let id = unique_id("life");
        let pid_file = b.path().join("pid");
        rt.ok(&[
            "create",
            "--bundle",
            b.path_str(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ]);
        let st = rt.state(&id);
        assert_eq!(st["status"], "created", "{}", rt.name);
        assert_eq!(st["id"], id.as_str());
        assert_eq!(st["bundle"], b.path_str());
        let pid = st["pid"].as_i64().unwrap();
        assert!(pid > 0);
        assert_eq!(
            std::fs::read_to_string(&pid_file).unwrap().trim(),
            pid.to_string()
        );
        // A created container can be deleted without --force, as with runc.
        rt.ok(&["delete", &id]);
        // Again, this time through start.
        rt.ok(&["create", "--bundle", b.path_str(), &id]);
        rt.ok(&["start", &id]);
        assert_eq!(rt.state(&id)["status"], "running", "{}", rt.name);
        let list = rt.ok(&["list"]);
        assert!(list.starts_with("ID"), "{}: {list}", rt.name);
        assert!(
            list.contains(&id) && list.contains("running"),
            "{}: {list}",
            rt.name
        );
        let listed: serde_json::Value =
            serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
        assert_eq!(listed[0]["id"], id.as_str());
        let out = rt.output(&["start", &id]);
        assert!(!out.status.success(), "{}: second start must fail", rt.name);
        let out = rt.output(&["delete", &id]);
        assert!(
            !out.status.success(),
            "{}: delete of a running container must fail",
            rt.name
        );
        rt.ok(&["kill", &id, "KILL"]);
        rt.wait_status(&id, "stopped");
        assert_eq!(rt.state(&id)["pid"], 0, "{}", rt.name);
        rt.ok(&["delete", &id]);
        assert!(!rt.output(&["state", &id]).status.success(), "{}", rt.name);
        assert!(
            cgroups_named(&id).is_empty(),
            "{}: cgroups left: {:?}",
            rt.name,
            cgroups_named(&id)
        );
    }
}

#[test]
fn namespaces_identity_and_limits_seen_from_inside() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "echo pid=$$; echo uid=$(id -u) gid=$(id -g) groups=$(id -G); echo nofile=$(ulimit -n); \
             grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; hostname; \
             touch /rootfs-write 2>/dev/null && echo rw || echo ro; \
             wc -c < /proc/keys; echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sysro; \
             ls /dev | tr '\\n' ' '",
        ]);
        b.edit(|c| {
            c["hostname"] = json!("probe-host");
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5]});
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]);
            // Ambient capabilities need the inheritable set; they are what a non-root
            // user keeps across execve.
            let caps = c["process"]["capabilities"]["bounding"].clone();
            c["process"]["capabilities"]["inheritable"] = caps;
        });
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("ns")]);
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{}: {} {}",
            rt.name,
            text,
            stderr(&out)
        );
        assert!(text.contains("pid=1\n"), "{}: {text}", rt.name);
        assert!(
            text.contains("uid=1000 gid=1000 groups=1000 5\n"),
            "{}: {text}",
            rt.name
        );
        assert!(text.contains("nofile=512\n"), "{}: {text}", rt.name);
        // CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE as in the default spec.
        assert!(
            text.contains("CapEff:\t0000000020000420"),
            "{}: {text}",
            rt.name
        );
        assert!(text.contains("NoNewPrivs:\t1"), "{}: {text}", rt.name);
        assert!(text.contains("probe-host\n"), "{}: {text}", rt.name);
        assert!(text.contains("ro\n"), "{}: readonly root: {text}", rt.name);
        assert!(
            text.contains("\n0\n"),
            "{}: /proc/kcore must be masked: {text}",
            rt.name
        );
        assert!(
            text.contains("sysro"),
            "{}: /proc/sys must be read-only: {text}",
            rt.name
        );
        for dev in [
            "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd",
            "stdin",
        ] {
            assert!(
                text.contains(&format!("{dev} ")),
                "{}: /dev/{dev} missing: {text}",
                rt.name
            );
        }
    }
}

#[test]
fn cgroup_limits_apply_and_are_removed() {
    require_root();
    for rt in runtimes() {
        let id = unique_id("cg");
        let mut b = Bundle::new(&["sleep", "100"]);
        b.edit(|c| {
            c["linux"]["cgroupsPath"] = json!(format!("/pier-test/{id}"));
            c["linux"]["resources"] = json!({
                "memory": {"limit": 67108864},
                "pids": {"limit": 42},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                "devices": [{"allow": false, "access": "rwm"}]
            });
        });
        rt.ok(&["run", "-d", "--bundle", b.path_str(), &id]);
        let found = cgroups_named(&id);
        assert!(!found.is_empty(), "{}: no cgroup made", rt.name);
        let read = |ctrl: &str, file: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/pier-test/{id}/{file}"))
                .or_else(|_| {
                    std::fs::read_to_string(format!("/sys/fs/cgroup/pier-test/{id}/{file}"))
                })
                .unwrap_or_else(|e| panic!("{}: read {ctrl}/{file}: {e}", rt.name))
        };
        if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
            assert_eq!(
                read("memory", "memory.limit_in_bytes").trim(),
                "67108864",
                "{}",
                rt.name
            );
            assert_eq!(read("pids", "pids.max").trim(), "42", "{}", rt.name);
            assert_eq!(read("cpu", "cpu.shares").trim(), "512", "{}", rt.name);
            assert_eq!(
                read("cpu", "cpu.cfs_quota_us").trim(),
                "50000",
                "{}",
                rt.name
            );
            let pid = rt.state(&id)["pid"].as_i64().unwrap().to_string();
            assert!(
                read("memory", "cgroup.procs").lines().any(|l| l == pid),
                "{}",
                rt.name
            );
        } else {
            assert_eq!(read("", "memory.max").trim(), "67108864", "{}", rt.name);
            assert_eq!(read("", "pids.max").trim(), "42", "{}", rt.name);
        }
        // Update through the CLI.
        rt.ok(&["update", "--pids-limit", "43", &id]);
        if std::path::Path::new("/sys/fs/cgroup/pids").exists() {
            assert_eq!(read("pids", "pids.max").trim(), "43", "{}", rt.name);
        }
        rt.ok(&["delete", "--force", &id]);
        let left = cgroups_named(&id);
        assert!(
            left.is_empty(),
            "{}: cgroups left behind: {left:?}",
            rt.name
        );
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(h.path().join("pier-test"));
        }
    }
}

#[test]
fn exec_joins_the_container() {
    require_root();
    for rt in runtimes() {
        let id = unique_id("exec");
        let mut b = Bundle::new(&["sleep", "100"]);
        b.edit(|c| {
            c["hostname"] = json!("exec-host");
        });
        rt.ok(&["run", "-d", "--bundle", b.path_str(), &id]);
        let out = rt.output(&["exec", &id, "sh", "-c", "hostname; echo $$; id -u; exit 3"]);
        assert_eq!(out.status.code(), Some(3), "{}: {}", rt.name, stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "exec-host", "{}: {text}", rt.name);
        assert_ne!(lines[1], "1", "{}: exec'd process is not the init", rt.name);
        assert_eq!(lines[2], "0", "{}", rt.name);
        let out = rt.output(&[
            "exec",
            "--user",
            "1000:1000",
            "--env",
            "FOO=bar",
            "--cwd",
            "/tmp",
            &id,
            "sh",
            "-c",
            "id -u; echo $FOO; pwd",
        ]);
        assert_eq!(
            stdout(&out),
            "1000\nbar\n/tmp\n",
            "{}: {}",
            rt.name,
            stderr(&out)
        );
        let ps: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
        assert_eq!(ps.len(), 1, "{}: {ps:?}", rt.name);
        rt.ok(&["delete", "--force", &id]);
    }
}

#[test]
fn pause_and_resume() {
    require_root();
    for rt in runtimes() {
        let id = unique_id("pause");
        let b = Bundle::new(&["sleep", "100"]);
        rt.ok(&["run", "-d", "--bundle", b.path_str(), &id]);
        rt.ok(&["pause", &id]);
        assert_eq!(rt.state(&id)["status"], "paused", "{}", rt.name);
        rt.ok(&["resume", &id]);
        assert_eq!(rt.state(&id)["status"], "running", "{}", rt.name);
        rt.ok(&["pause", &id]);
        rt.ok(&["delete", "--force", &id]);
        assert!(cgroups_named(&id).is_empty(), "{}", rt.name);
    }
}

#[test]
fn hooks_get_state_on_stdin() {
    require_root();
    for rt in runtimes() {
        let id = unique_id("hooks");
        let mut b = Bundle::new(&["true"]);
        let out_dir = b.path().join("hook-out");
        std::fs::create_dir(&out_dir).unwrap();
        let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}", out_dir.display())]});
        b.edit(|c| {
            c["hooks"] = json!({
                "prestart": [hook("prestart")],
                "createRuntime": [hook("createRuntime")],
                "poststart": [hook("poststart")],
                "poststop": [hook("poststop")]
            });
        });
        rt.ok(&["run", "--bundle", b.path_str(), &id]);
        for name in ["prestart", "createRuntime", "poststart", "poststop"] {
            let text = std::fs::read_to_string(out_dir.join(name))
                .unwrap_or_else(|e| panic!("{}: {name} hook did not run: {e}", rt.name));
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["id"], id.as_str(), "{}: {name}", rt.name);
            assert!(
                v["pid"].as_i64().unwrap_or(0) > 0 || name == "poststop",
                "{}: {name} {v}",
                rt.name
            );
        }
    }
}

#[test]
fn user_namespace_maps_ids() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/uid_map; id -u"]);
        let rootfs = b.rootfs();
        chown_tree(&rootfs, 100000, 100000);
        b.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        });
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("userns")]);
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{}: {} {}",
            rt.name,
            text,
            stderr(&out)
        );
        let fields: Vec<&str> = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(fields, ["0", "100000", "65536"], "{}: {text}", rt.name);
        assert!(text.ends_with("0\n"), "{}: {text}", rt.name);
    }
}

fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{gid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn exec_into_a_sub_cgroup() {
    require_root();
    if !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("cgroup v1 memory hierarchy absent: sub-cgroup test is for v1 hosts");
        return;
    }
    for rt in runtimes() {
        let id = unique_id("subcg");
        let mut b = Bundle::new(&["sleep", "100"]);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/pier-test/{id}")));
        rt.ok(&["run", "-d", "--bundle", b.path_str(), &id]);
        let sub = format!("/sys/fs/cgroup/memory/pier-test/{id}/sub");
        std::fs::create_dir(&sub).unwrap();
        let out = rt.output(&[
            "exec",
            "--cgroup",
            "memory:sub",
            &id,
            "cat",
            "/proc/self/cgroup",
        ]);
        assert!(out.status.success(), "{}: {}", rt.name, stderr(&out));
        assert!(
            stdout(&out).contains(&format!(":memory:/pier-test/{id}/sub")),
            "{}: {}",
            rt.name,
            stdout(&out)
        );
        let out = rt.output(&["exec", "--cgroup", "..", &id, "true"]);
        assert!(
            !out.status.success(),
            "{}: escaping --cgroup must fail",
            rt.name
        );
        assert!(
            stderr(&out).contains("is not a sub cgroup path"),
            "{}: {}",
            rt.name,
            stderr(&out)
        );
        // delete removes the sub-cgroup the container made too.
        rt.ok(&["delete", "--force", &id]);
        assert!(
            cgroups_named(&id).is_empty(),
            "{}: {:?}",
            rt.name,
            cgroups_named(&id)
        );
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(h.path().join("pier-test"));
        }
    }
}

#[test]
fn help_and_version_follow_the_invoked_name() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("runc");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pier-runtime"), &link).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&link)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["-v"]);
    assert!(
        stdout(&out).starts_with("runc version "),
        "{}",
        stdout(&out)
    );
    let out = run(&["exec", "-h"]);
    assert!(
        stdout(&out).starts_with("NAME:\n   runc exec - "),
        "{}",
        stdout(&out)
    );
    let out = run(&["foo", "-h"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("No help topic for 'foo'"),
        "{}",
        stderr(&out)
    );
}
