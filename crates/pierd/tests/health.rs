//! Healthchecks through pierd, driven by the real `docker` CLI: status transitions,
//! the log in inspect, `ps` STATUS, timeouts, the start period, image healthchecks,
//! `--no-healthcheck`, and stop/start.

mod common;

use std::time::{Duration, Instant};

use common::{pierd_with_busybox, Engine, Pierd};
use serde_json::Value;

fn health_status(pierd: &Pierd, name: &str) -> String {
    pierd
        .docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", name])
        .trim()
        .to_string()
}

fn health(pierd: &Pierd, name: &str) -> Value {
    let text = pierd.docker_ok(&["inspect", "-f", "{{json .State.Health}}", name]);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Polls the health status until it is `want`; panics at the deadline.
fn wait_status(pierd: &Pierd, name: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = health_status(pierd, name);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: health {now:?}, want {want:?}; {}",
            pierd.docker_ok(&["inspect", "-f", "{{json .State}}", name])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ps_status(pierd: &Pierd, name: &str) -> String {
    let out = pierd.docker_ok(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"]);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")))
        .unwrap_or_else(|| panic!("{name} not in ps: {out}"))
        .to_string()
}

fn has_health_key(pierd: &Pierd, name: &str) -> bool {
    let text = pierd.docker_ok(&["inspect", "-f", "{{json .State}}", name]);
    let state: Value = serde_json::from_str(text.trim()).unwrap();
    state.get("Health").is_some()
}

#[test]
fn starting_unhealthy_healthy_log_and_ps() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "echo probe; echo oops >&2; test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    let first = health_status(&pierd, "web");
    assert!(
        first == "starting" || first == "unhealthy",
        "first status {first:?}"
    );
    if first == "starting" {
        let ps = ps_status(&pierd, "web");
        assert!(
            ps.ends_with("(health: starting)") || ps.ends_with("(unhealthy)"),
            "{ps}"
        );
    }
    wait_status(&pierd, "web", "unhealthy", Duration::from_secs(20));
    let h = health(&pierd, "web");
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{h}");
    for entry in log {
        assert_eq!(entry["ExitCode"], 1, "{h}");
        // stdout and stderr are separate pipes: their order is not kept.
        let mut lines: Vec<&str> = entry["Output"].as_str().unwrap().lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["oops", "probe"], "{h}");
        assert!(entry["Start"].as_str().unwrap().starts_with("20"), "{h}");
        assert!(entry["End"].as_str().unwrap() >= entry["Start"].as_str().unwrap());
    }
    assert!(ps_status(&pierd, "web").ends_with("(unhealthy)"));

    pierd.docker_ok(&["exec", "web", "touch", "/tmp/ok"]);
    wait_status(&pierd, "web", "healthy", Duration::from_secs(20));
    let h = health(&pierd, "web");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["ExitCode"], 0, "{h}");
    let ps = ps_status(&pierd, "web");
    assert!(ps.starts_with("Up ") && ps.ends_with("(healthy)"), "{ps}");
    // The config carries the healthcheck, as given.
    let hc = pierd.docker_ok(&["inspect", "-f", "{{json .Config.Healthcheck}}", "web"]);
    let hc: Value = serde_json::from_str(hc.trim()).unwrap();
    assert_eq!(
        hc["Test"],
        serde_json::json!(["CMD-SHELL", "echo probe; echo oops >&2; test -f /tmp/ok"])
    );
    assert_eq!(hc["Interval"], 200_000_000);

    // Stopped: the monitor ends, unhealthy (as in Docker); started again: starting,
    // then healthy (the file is still there).
    pierd.docker_ok(&["stop", "-t", "1", "web"]);
    assert_eq!(health_status(&pierd, "web"), "unhealthy");
    assert!(ps_status(&pierd, "web").starts_with("Exited"));
    let before = health(&pierd, "web")["Log"].as_array().unwrap().len();
    std::thread::sleep(Duration::from_millis(600));
    let after = health(&pierd, "web")["Log"].as_array().unwrap().len();
    assert_eq!(before, after, "no probes while stopped");
    pierd.docker_ok(&["start", "web"]);
    wait_status(&pierd, "web", "healthy", Duration::from_secs(20));
    pierd.docker_ok(&["rm", "-f", "web"]);
}

#[test]
fn no_healthcheck_no_health_key() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "300"]);
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "none",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    for name in ["plain", "none"] {
        assert!(!has_health_key(&pierd, name), "{name} has State.Health");
        let ps = ps_status(&pierd, name);
        assert!(ps.starts_with("Up ") && !ps.contains('('), "{ps}");
    }
    pierd.docker_ok(&["rm", "-f", "plain", "none"]);
}

#[test]
fn image_healthcheck_and_no_healthcheck_override() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let tar = work.path().join("busybox-rootfs.tar");
    let out = pierd.docker_with_stdin(
        &[
            "import",
            "-c",
            "CMD [\"sleep\", \"300\"]",
            "-c",
            "HEALTHCHECK --interval=200ms --retries=1 CMD [\"true\"]",
            "-",
            "hc",
        ],
        &tar,
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    pierd.docker_ok(&["run", "-d", "--name", "fromimage", "hc"]);
    wait_status(&pierd, "fromimage", "healthy", Duration::from_secs(20));
    let hc = pierd.docker_ok(&[
        "inspect",
        "-f",
        "{{json .Config.Healthcheck.Test}}",
        "fromimage",
    ]);
    assert_eq!(hc.trim(), "[\"CMD\",\"true\"]");
    // The container's options override the image's, the rest comes from the image.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "override",
        "--health-cmd",
        "exit 3",
        "hc",
    ]);
    wait_status(&pierd, "override", "unhealthy", Duration::from_secs(20));
    let h = health(&pierd, "override");
    assert_eq!(h["Log"][0]["ExitCode"], 3, "{h}");
    pierd.docker_ok(&["run", "-d", "--name", "off", "--no-healthcheck", "hc"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_health_key(&pierd, "off"));
    pierd.docker_ok(&["rm", "-f", "fromimage", "override", "off"]);
}

#[test]
fn timeout_kills_the_probe() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 30",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    wait_status(&pierd, "slow", "unhealthy", Duration::from_secs(20));
    let h = health(&pierd, "slow");
    let entry = &h["Log"][0];
    assert_eq!(entry["ExitCode"], -1, "{h}");
    assert_eq!(
        entry["Output"], "Health check exceeded timeout (300ms)",
        "{h}"
    );
    // The probe was killed: no `sleep 30` piles up in the container.
    let ps = pierd.docker_ok(&["exec", "slow", "ps", "-o", "args"]);
    assert!(
        ps.lines().filter(|l| l.trim() == "sleep 30").count() <= 1,
        "{ps}"
    );
    pierd.docker_ok(&["rm", "-f", "slow"]);
}

#[test]
fn start_period_failures_do_not_count() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sp",
        "--health-cmd",
        "false",
        "--health-interval",
        "5s",
        "--health-start-period",
        "3s",
        "--health-start-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    // Start interval: several probes within the start period, none counted.
    std::thread::sleep(Duration::from_millis(1500));
    let h = health(&pierd, "sp");
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    assert!(h["Log"].as_array().unwrap().len() >= 2, "{h}");
    // After it, the (start-interval) probe counts.
    wait_status(&pierd, "sp", "unhealthy", Duration::from_secs(15));
    pierd.docker_ok(&["rm", "-f", "sp"]);
}

#[test]
fn health_survives_a_pierd_crash() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 300",
    ]);
    wait_status(&pierd, "live", "healthy", Duration::from_secs(20));
    pierd.crash_and_restart(Duration::from_millis(200));
    // Kept across the restart (persisted), and monitored again.
    assert_eq!(health_status(&pierd, "live"), "healthy");
    pierd.docker_ok(&["exec", "live", "rm", "/tmp/ok"]);
    wait_status(&pierd, "live", "unhealthy", Duration::from_secs(20));
    pierd.docker_ok(&["rm", "-f", "live"]);
}
