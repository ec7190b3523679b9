//! Restart policies, pause/unpause, top, stats, rename and update through pierd,
//! driven by the real `docker` CLI (and raw API calls for what the CLI checks itself).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{pierd_with_busybox, wait_until, Engine, Pierd};
use serde_json::Value;

fn inspect(pierd: &Pierd, name: &str) -> Value {
    let out = pierd.docker_ok(&["inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// A raw API call: (status, body).
fn api(pierd: &Pierd, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "60",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ])
    .arg("--unix-socket")
    .arg(pierd.socket());
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", b]);
    }
    cmd.arg(format!("http://localhost{path}"));
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap_or_default()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn restart_policy_on_failure_counts_and_stops() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fail",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    let done = wait_until(Duration::from_secs(30), || {
        let c = inspect(&pierd, "fail");
        c["State"]["Status"] == "exited" && c["RestartCount"] == 2
    });
    let c = inspect(&pierd, "fail");
    assert!(done, "{c}");
    // And it stays stopped.
    std::thread::sleep(Duration::from_secs(2));
    let c = inspect(&pierd, "fail");
    assert_eq!(c["State"]["Status"], "exited", "{c}");
    assert_eq!(c["RestartCount"], 2);
    assert_eq!(c["State"]["ExitCode"], 3);
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);

    // A success is not restarted by on-failure.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    assert!(wait_until(Duration::from_secs(10), || inspect(
        &pierd, "ok"
    )["State"]["Status"]
        == "exited"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(inspect(&pierd, "ok")["RestartCount"], 0);
}

#[test]
fn restart_policy_always_but_not_after_stop_and_back_after_crash() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 0",
    ]);
    let restarted = wait_until(Duration::from_secs(30), || {
        inspect(&pierd, "always")["RestartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    });
    assert!(restarted, "{}", inspect(&pierd, "always"));
    let out = pierd.docker(&["stop", "-t", "1", "always"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let c = inspect(&pierd, "always");
    assert_eq!(c["State"]["Status"], "exited", "{c}");
    let count = c["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(3));
    let c = inspect(&pierd, "always");
    assert_eq!(
        c["State"]["Status"], "exited",
        "not restarted after stop: {c}"
    );
    assert_eq!(c["RestartCount"], count);

    // A long-running `always` container stopped by the user, and an
    // `unless-stopped` one stopped by the user: after a daemon restart the first runs
    // again, the second does not.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ]);
    pierd.docker_ok(&["stop", "-t", "0", "svc"]);
    pierd.docker_ok(&["stop", "-t", "0", "quiet"]);
    assert_eq!(inspect(&pierd, "svc")["State"]["Status"], "exited");
    pierd.crash_and_restart(Duration::from_millis(200));
    let back = wait_until(Duration::from_secs(20), || {
        inspect(&pierd, "svc")["State"]["Status"] == "running"
    });
    assert!(back, "{}\n{}", inspect(&pierd, "svc"), pierd.log_tail(30));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(inspect(&pierd, "quiet")["State"]["Status"], "exited");
    // It really runs: top sees its process.
    let top = pierd.docker_ok(&["top", "svc"]);
    assert!(top.contains("sleep 1000"), "{top}");

    // An exit while pierd is down is seen at its return, and the policy applies.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "--restart",
        "on-failure:1",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 7",
    ]);
    pierd.crash_and_restart(Duration::from_secs(3));
    let done = wait_until(Duration::from_secs(20), || {
        let c = inspect(&pierd, "brief");
        c["RestartCount"] == 1 && c["State"]["Status"] == "exited"
    });
    let c = inspect(&pierd, "brief");
    assert!(done, "{c}\n{}", pierd.log_tail(30));
    assert_eq!(c["State"]["ExitCode"], 7);
}

#[test]
fn restart_policy_unless_stopped_backoff_and_kill() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    // Back-off: 100 ms doubling, so about five restarts in three seconds.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flappy",
        "--restart",
        "unless-stopped",
        "busybox",
        "false",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let count = inspect(&pierd, "flappy")["RestartCount"].as_u64().unwrap();
    assert!((3..=8).contains(&count), "{count} restarts in 3s");
    // A user's stop ends it, whatever state it was in (running or waiting).
    pierd.docker_ok(&["stop", "flappy"]);
    let after_stop = inspect(&pierd, "flappy")["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let c = inspect(&pierd, "flappy");
    assert_eq!(c["State"]["Status"], "exited", "{c}");
    assert_eq!(c["State"]["Restarting"], false, "{c}");
    assert_eq!(c["RestartCount"], after_stop);

    // A kill with another signal is a user stop for unless-stopped.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--restart",
        "unless-stopped",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while true; do sleep 0.1; done",
    ]);
    pierd.docker_ok(&["kill", "-s", "USR1", "usr1"]);
    assert!(wait_until(Duration::from_secs(10), || inspect(
        &pierd, "usr1"
    )["State"]["Status"]
        == "exited"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(inspect(&pierd, "usr1")["RestartCount"], 0);
    // ... but not for always (Docker cancels only on SIGKILL or the stop signal).
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "usr2",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while true; do sleep 0.1; done",
    ]);
    pierd.docker_ok(&["kill", "-s", "USR1", "usr2"]);
    assert!(wait_until(Duration::from_secs(10), || {
        let c = inspect(&pierd, "usr2");
        c["RestartCount"] == 1 && c["State"]["Status"] == "running"
    }));
    // A paused container goes with rm -f at once (it is thawed for the SIGKILL).
    pierd.docker_ok(&["pause", "usr2"]);
    let start = Instant::now();
    pierd.docker_ok(&["rm", "-f", "usr2"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(pierd.docker(&["inspect", "usr2"]).code, Some(1));
}

#[test]
fn pause_and_unpause() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let id = pierd
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "counter",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done",
        ])
        .trim()
        .to_string();
    let lines = || pierd.docker_ok(&["logs", "counter"]).lines().count();
    assert!(wait_until(Duration::from_secs(10), || lines() >= 2));
    pierd.docker_ok(&["pause", "counter"]);
    let c = inspect(&pierd, "counter");
    assert_eq!(c["State"]["Paused"], true, "{c}");
    assert_eq!(c["State"]["Status"], "paused", "{c}");
    assert_eq!(c["State"]["Running"], true, "{c}");
    let at_pause = lines();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lines(), at_pause, "the counter stopped while paused");
    let ps = pierd.docker_ok(&["ps", "--filter", "status=paused", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "counter");

    let out = pierd.docker(&["pause", "counter"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        format!("Error response from daemon: container {id} is already paused")
    );
    pierd.docker_ok(&["unpause", "counter"]);
    let c = inspect(&pierd, "counter");
    assert_eq!(
        (&c["State"]["Paused"], &c["State"]["Status"]),
        (&Value::Bool(false), &Value::from("running"))
    );
    assert!(wait_until(Duration::from_secs(5), || lines() > at_pause + 1));
    let out = pierd.docker(&["unpause", "counter"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        format!("Error response from daemon: container {id} is not paused")
    );

    // Kill and stop of a paused container work (it is thawed).
    pierd.docker_ok(&["pause", "counter"]);
    let start = Instant::now();
    pierd.docker_ok(&["kill", "counter"]);
    assert!(
        wait_until(Duration::from_secs(10), || inspect(&pierd, "counter")
            ["State"]["Status"]
            == "exited"),
        "{}",
        inspect(&pierd, "counter")
    );
    assert!(start.elapsed() < Duration::from_secs(8));
    assert_eq!(inspect(&pierd, "counter")["State"]["Paused"], false);

    pierd.docker_ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"]);
    pierd.docker_ok(&["pause", "sleeper"]);
    pierd.docker_ok(&["stop", "-t", "1", "sleeper"]);
    let c = inspect(&pierd, "sleeper");
    assert_eq!(c["State"]["Status"], "exited", "{c}");
    let out = pierd.docker(&["pause", "sleeper"]);
    assert!(out.stderr.contains("is not running"), "{out:?}");
}

#[test]
fn top_stats_rename_update() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let id = pierd
        .docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"])
        .trim()
        .to_string();

    // top: the container's process, Docker's columns.
    let top = pierd.docker_ok(&["top", "web"]);
    let mut lines = top.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{top}");
    assert!(rows[0].ends_with("sleep 1000"), "{top}");
    let (code, body) = api(
        &pierd,
        "GET",
        "/containers/web/top?ps_args=-o%20pid,args",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Titles"], serde_json::json!(["PID", "COMMAND"]));
    assert_eq!(v["Processes"][0][1], "sleep 1000");

    // stats: a row from the CLI, Docker's shape from the API.
    let row = pierd.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "web",
    ]);
    assert!(row.starts_with("web 1 "), "{row}");
    let (code, body) = api(&pierd, "GET", "/containers/web/stats?stream=false", None);
    assert_eq!(code, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["name"], "/web");
    assert_eq!(s["id"], id);
    assert!(s["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);
    assert!(
        s["precpu_stats"]["cpu_usage"]["total_usage"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(s["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0);
    assert!(s["cpu_stats"]["online_cpus"].as_u64().unwrap() >= 1);
    assert!(s["memory_stats"]["usage"].as_u64().unwrap() > 0);
    assert!(s["memory_stats"]["limit"].as_u64().unwrap() > 0);
    assert!(s["memory_stats"]["stats"].is_object());
    assert_eq!(s["pids_stats"]["current"], 1);
    // The default bridge's interface, counted in the container's netns.
    assert!(s["networks"]["eth0"]["rx_bytes"].is_u64(), "{body}");
    assert!(s["networks"].get("lo").is_none(), "{body}");
    assert!(s["preread"] != "0001-01-01T00:00:00Z");
    let (code, body) = api(
        &pierd,
        "GET",
        "/containers/web/stats?stream=false&one-shot=true",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["preread"], "0001-01-01T00:00:00Z");
    // Streaming: an object a second.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2.5", "--unix-socket"])
        .arg(pierd.socket())
        .arg("http://localhost/containers/web/stats")
        .output()
        .unwrap();
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!((2..=4).contains(&n), "{n} objects");

    // update: the memory limit reaches the cgroup; the restart policy the record.
    // As in Docker, memory alone is refused while no memory+swap limit is set.
    let out = pierd.docker(&["update", "--memory", "64m", "web"]);
    assert_eq!(
        out.stderr.trim(),
        format!("Error response from daemon: Cannot update container {id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")
    );
    let out = pierd.docker(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--restart",
        "always",
        "web",
    ]);
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "web"), "{out:?}");
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/pier/{id}/memory.limit_in_bytes"
    ))
    .unwrap();
    assert_eq!(limit.trim(), "67108864");
    let memsw = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/pier/{id}/memory.memsw.limit_in_bytes"
    ))
    .unwrap_or_else(|_| "134217728".into());
    assert_eq!(memsw.trim(), "134217728");
    // Within the memory+swap limit, memory alone may change.
    pierd.docker_ok(&["update", "--memory", "100m", "web"]);
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/pier/{id}/memory.limit_in_bytes"
    ))
    .unwrap();
    assert_eq!(limit.trim(), "104857600");
    let c = inspect(&pierd, "web");
    assert_eq!(c["HostConfig"]["Memory"], 104857600);
    assert_eq!(c["HostConfig"]["MemorySwap"], 134217728);
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "always");
    let out = pierd.docker(&["update", "--cpu-shares", "512", "--pids-limit", "50", "web"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let pids = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/pier/{id}/pids.max")).unwrap();
    assert_eq!(pids.trim(), "50");
    let shares =
        std::fs::read_to_string(format!("/sys/fs/cgroup/cpu/pier/{id}/cpu.shares")).unwrap();
    assert_eq!(shares.trim(), "512");
    let out = pierd.docker(&["update", "--cpus", "0.5", "--cpuset-cpus", "0", "web"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let quota =
        std::fs::read_to_string(format!("/sys/fs/cgroup/cpu/pier/{id}/cpu.cfs_quota_us")).unwrap();
    assert_eq!(quota.trim(), "50000");
    let cpus =
        std::fs::read_to_string(format!("/sys/fs/cgroup/cpuset/pier/{id}/cpuset.cpus")).unwrap();
    assert_eq!(cpus.trim(), "0");
    let c = inspect(&pierd, "web");
    assert_eq!(
        (&c["HostConfig"]["NanoCpus"], &c["HostConfig"]["CpusetCpus"]),
        (&Value::from(500_000_000), &Value::from("0"))
    );
    // Docker's conflict: a CPU quota once NanoCpus is set.
    let out = pierd.docker(&["update", "--cpu-quota", "20000", "web"]);
    assert_eq!(
        out.stderr.trim(),
        format!("Error response from daemon: Cannot update container {id}: Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    );
    let (code, body) = api(
        &pierd,
        "POST",
        "/containers/web/update",
        Some(r#"{"RestartPolicy":{"Name":"always","MaximumRetryCount":2}}"#),
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (
            400,
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    );

    // rename.
    pierd.docker_ok(&["run", "-d", "--name", "other", "busybox", "sleep", "1000"]);
    pierd.docker_ok(&["rename", "web", "site"]);
    assert_eq!(inspect(&pierd, id.as_str())["Name"], "/site");
    let out = pierd.docker(&["rename", "site", "other"]);
    let other_id = inspect(&pierd, "other")["Id"].as_str().unwrap().to_string();
    assert_eq!(out.code, Some(1));
    // The CLI adds its own line ("Error: failed to rename container named site").
    assert_eq!(
        out.stderr.lines().next().unwrap_or_default(),
        format!("Error response from daemon: Error when allocating new name: Conflict. The container name \"/other\" is already in use by container \"{other_id}\". You have to remove (or rename) that container to be able to reuse that name.")
    );
    let (code, body) = api(&pierd, "POST", "/containers/site/rename?name=a%20b", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "Error when allocating new name: Invalid container name (/a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    );
    let out = pierd.docker(&["rename", "nope", "x1"]);
    assert_eq!(
        out.stderr.lines().next().unwrap_or_default(),
        "Error response from daemon: No such container: nope"
    );
    pierd.docker_ok(&["stop", "-t", "0", "site"]);
    let out = pierd.docker(&["top", "site"]);
    assert_eq!(
        out.stderr.trim(),
        format!("Error response from daemon: container {id} is not running")
    );
    // Stats of a stopped container: one row of zeros.
    let row = pierd.docker_ok(&["stats", "--no-stream", "--format", "{{.Name}}", "site"]);
    assert_eq!(row.trim(), "site");
}

#[test]
fn bad_restart_policies_and_auto_remove() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let create = |host_config: &str| {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{host_config}}}"#);
        let (code, body) = api(&pierd, "POST", "/containers/create", Some(&body));
        (code, message(&body))
    };
    assert_eq!(
        create(r#"{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-1}}"#),
        (
            400,
            "invalid restart policy: maximum retry count cannot be negative".into()
        )
    );
    assert_eq!(
        create(r#"{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}"#),
        (
            400,
            "invalid restart policy: maximum retry count can only be used with 'on-failure'".into()
        )
    );
    assert_eq!(
        create(r#"{"RestartPolicy":{"Name":"x"}}"#),
        (
            400,
            "invalid restart policy: unknown policy 'x'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'".into()
        )
    );
    assert_eq!(
        create(r#"{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}"#),
        (
            400,
            "can't create 'AutoRemove' container with restart policy".into()
        )
    );
    assert_eq!(
        create(r#"{"AutoRemove":true,"RestartPolicy":{"Name":"no"}}"#).0,
        201
    );
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]).lines().count(), 1);
    // The CLI's own form: the daemon's message comes through.
    let out = pierd.docker(&["create", "--restart", "bogus", "busybox"]);
    assert_ne!(out.code, Some(0), "{out:?}");
}
