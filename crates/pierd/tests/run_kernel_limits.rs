//! `docker run` resource options the kernel may lack (`--oom-kill-disable`,
//! `--memory-swappiness`, `--kernel-memory`, `--cpu-rt-period`/`--cpu-rt-runtime`),
//! run with the real docker CLI against pierd and an isolated dockerd in the same
//! test, asserting the container's cgroup files (cgroup v1) or dockerd's warnings.

mod common;

use common::{shell_words, Engine};

/// `docker <line>` on `e`.
fn docker(e: &dyn Engine, line: &str) -> pier_testsupport::Out {
    let args = shell_words(line);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    e.docker(&args)
}

fn v1_has(controller: &str, file: &str) -> bool {
    std::path::Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(file)
        .exists()
}

#[test]
fn oom_kill_disable_and_swappiness_as_dockerd() {
    let Some((pierd, dockerd, _work)) =
        common::pierd_and_dockerd_with_busybox("run_kernel_limits_memory")
    else {
        return;
    };
    let v1 = v1_has("memory", "memory.oom_control") && v1_has("memory", "memory.swappiness");
    for (label, e) in [("pierd", &pierd as &dyn Engine), ("dockerd", &dockerd)] {
        let line = "run --rm --network none -m 64m --oom-kill-disable --memory-swappiness 7 busybox \
                    sh -c 'head -n1 /sys/fs/cgroup/memory/memory.oom_control; cat /sys/fs/cgroup/memory/memory.swappiness'";
        let out = docker(e, line);
        assert_eq!(out.code, Some(0), "{label}: {out:?}");
        if v1 {
            assert_eq!(out.stdout, "oom_kill_disable 1\n7\n", "{label}");
        } else {
            for words in [
                "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.",
            ] {
                assert!(out.stderr.contains(words), "{label}: {out:?}");
            }
        }
        // Both stored as honoured (or as discarded).
        let id = docker(
            e,
            "create --network none --oom-kill-disable --memory-swappiness 7 busybox",
        );
        let id = id.stdout.trim();
        let out = docker(
            e,
            &format!("inspect -f '{{{{.HostConfig.OomKillDisable}}}} {{{{.HostConfig.MemorySwappiness}}}}' {id}"),
        );
        let want = if v1 { "true 7\n" } else { "false <nil>\n" };
        assert_eq!(out.stdout, want, "{label}: {out:?}");
        assert_eq!(docker(e, &format!("rm {id}")).code, Some(0));
    }
}

#[test]
fn kernel_memory_is_ignored_as_docker_28() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    // Docker 28 drops `KernelMemory` (API 1.42 on): accepted, stored as 0, no limit.
    let out = docker(
        &pierd,
        "run -d --network none --kernel-memory 8m busybox sleep 100",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let id = out.stdout.trim();
    let stored = pierd.docker_ok(&["inspect", "-f", "{{.HostConfig.KernelMemory}}", id]);
    assert_eq!(stored, "0\n");
    if v1_has("memory", "memory.kmem.limit_in_bytes") {
        let limit = pierd.docker_ok(&[
            "exec",
            id,
            "cat",
            "/sys/fs/cgroup/memory/memory.kmem.limit_in_bytes",
        ]);
        assert_ne!(limit.trim(), (8u64 << 20).to_string());
    }
    pierd.docker_ok(&["rm", "-f", id]);
}

#[test]
fn cpu_realtime_as_dockerd() {
    let Some((pierd, dockerd, _work)) =
        common::pierd_and_dockerd_with_busybox("run_kernel_limits_rt")
    else {
        return;
    };
    if !v1_has("cpu", "cpu.rt_runtime_us") {
        eprintln!("skipped: no cgroup v1 cpu.rt_runtime_us (CONFIG_RT_GROUP_SCHED, cgroup v1)");
        return;
    }
    for (label, e) in [("pierd", &pierd as &dyn Engine), ("dockerd", &dockerd)] {
        let out = docker(
            e,
            "run --rm --network none --cpu-rt-period 1000 --cpu-rt-runtime 2000 busybox true",
        );
        assert_eq!(out.code, Some(125), "{label}: {out:?}");
        assert!(
            out.stderr
                .contains("cpu real-time runtime cannot be higher than cpu real-time period"),
            "{label}: {out:?}"
        );
        // Under a parent with no real-time budget (the default, with either daemon's
        // default flags) the kernel refuses the write, and the start fails.
        let out = docker(
            e,
            "run --rm --network none --cpu-rt-runtime 1000 busybox true",
        );
        assert_eq!(out.code, Some(125), "{label}: {out:?}");
        assert!(
            out.stderr
                .to_lowercase()
                .contains("cpu.rt_runtime_us: invalid argument"),
            "{label}: {out:?}"
        );
        // Under a parent given a budget: the container's cgroup gets its runtime.
        let parent = common::CgroupParent::new("pier-rt");
        let dir = std::path::Path::new("/sys/fs/cgroup/cpu").join(&parent.0);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cpu.rt_runtime_us"), "100000").unwrap();
        let out = docker(
            e,
            &format!(
                "run --rm --network none --cgroup-parent /{} --cpu-rt-period 100000 --cpu-rt-runtime 5000 busybox \
                 sh -c 'cat /sys/fs/cgroup/cpu/cpu.rt_period_us /sys/fs/cgroup/cpu/cpu.rt_runtime_us'",
                parent.0
            ),
        );
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(0), "100000\n5000\n"),
            "{label}: {out:?}"
        );
    }
}
