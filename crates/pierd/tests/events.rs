//! `GET /events` through the real `docker events`: the lifecycle of a container as
//! the same sequence real dockerd reports, live streaming with filters, `since`/
//! `until` replay, health, exec and image events, and Docker's errors.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{busybox_rootfs_tar, pierd_with_busybox, Engine, Pierd};
use pier_testsupport::{DockerdOptions, IsolatedDockerd};

const LINE: &str = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";

/// Now, as `docker events --since/--until` takes it (Unix seconds with fraction).
fn unix_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// `docker events` output between two instants, with `--filter`s and a `--format`.
fn events_in(e: &dyn Engine, since: &str, until: &str, filters: &[&str], format: &str) -> String {
    let mut args = vec!["events", "--since", since, "--until", until];
    for f in filters {
        args.extend(["--filter", f]);
    }
    if !format.is_empty() {
        args.extend(["--format", format]);
    }
    e.docker_ok(&args)
}

/// The events between two instants, one `LINE` each.
fn events_between(e: &dyn Engine, since: &str, until: &str, filters: &[&str]) -> Vec<String> {
    events_in(e, since, until, filters, LINE)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The container lifecycle scenario; returns its events for the container `name`.
fn lifecycle(e: &dyn Engine, name: &str) -> Vec<String> {
    let since = unix_now();
    e.docker_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        "busybox",
        "sleep",
        "60",
    ]);
    e.docker_ok(&["pause", name]);
    e.docker_ok(&["unpause", name]);
    e.docker_ok(&["stop", "-t", "1", name]);
    e.docker_ok(&["start", name]);
    e.docker_ok(&["kill", name]);
    e.docker_ok(&["wait", name]);
    e.docker_ok(&["rename", name, &format!("{name}-2")]);
    e.docker_ok(&["rm", &format!("{name}-2")]);
    std::thread::sleep(Duration::from_millis(200));
    let until = unix_now();
    events_between(e, &since, &until, &["type=container"])
}

#[test]
fn a_containers_life_reads_as_with_real_dockerd() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let Some(dockerd) =
        IsolatedDockerd::start_or_skip("events_as_real_dockerd", DockerdOptions::default())
    else {
        return;
    };
    let pierd = Pierd::start();
    let mut seen = Vec::new();
    for e in [&pierd as &dyn Engine, &dockerd as &dyn Engine] {
        e.docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &rootfs)
            .ok()
            .unwrap_or_else(|err| panic!("{err}"));
        seen.push(lifecycle(e, "life"));
    }
    let (pier, docker) = (&seen[0], &seen[1]);
    assert_eq!(pier, docker, "pierd's events, then dockerd's");
    // And it is a real sequence, not two empty ones.
    assert!(pier.contains(&"container die life".to_string()), "{pier:?}");
    assert_eq!(
        pier.last().map(String::as_str),
        Some("container destroy life-2")
    );
}

#[test]
fn die_carries_the_exit_code_and_attributes_carry_labels() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let since = unix_now();
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "three",
        "-l",
        "tier=back",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(pierd.docker_ok(&["wait", "three"]).trim(), "3");
    let until = unix_now();
    let format = "{{.Action}} {{.Actor.Attributes.exitCode}} {{.Actor.Attributes.tier}} {{.Actor.Attributes.image}} {{.Actor.ID}}";
    let out = events_in(&pierd, &since, &until, &["event=die"], format);
    let id = pierd.docker_ok(&["inspect", "-f", "{{.Id}}", "three"]);
    assert_eq!(out.trim(), format!("die 3 back busybox {}", id.trim()));
    // Label filters select by the container's labels.
    let none = events_in(&pierd, &since, &until, &["label=tier=front"], "");
    assert_eq!(none.trim(), "");
    let some = events_in(&pierd, &since, &until, &["label=tier=back"], "{{.Action}}");
    assert_eq!(some.lines().collect::<Vec<_>>(), ["create", "start", "die"]);
}

/// A live `docker events` sees what happens after it started, filtered, as it happens.
#[test]
fn live_stream_with_filters() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let mut child = pierd
        .command()
        .args([
            "events",
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--filter",
            "container=wanted",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker events");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Subscribed once the daemon has answered; give the CLI a moment to connect.
    std::thread::sleep(Duration::from_millis(500));
    pierd.docker_ok(&["run", "-d", "--name", "unwanted", "busybox", "true"]);
    pierd.docker_ok(&["run", "-d", "--name", "wanted", "busybox", "true"]);
    let first = rx.recv_timeout(Duration::from_secs(20));
    // Killed by PID: the child is ours.
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    assert_eq!(first.as_deref(), Ok("start wanted"));
    assert!(rx.try_recv().is_err(), "only one event passes the filters");
}

#[test]
fn health_exec_and_image_events() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let since = unix_now();
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "doc",
        "--health-cmd",
        "true",
        "--health-interval",
        "300ms",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            pierd
                .docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", "doc"])
                .trim()
                == "healthy"
        }),
        "never healthy"
    );
    let exec = pierd.docker(&["exec", "doc", "sh", "-c", "exit 4"]);
    assert_eq!(exec.code, Some(4), "{exec:?}");
    pierd.docker_ok(&["tag", "busybox", "example/tagged:1"]);
    pierd.docker_ok(&["rmi", "example/tagged:1"]);
    pierd.docker_ok(&["rm", "-f", "doc"]);
    let until = unix_now();

    let health = events_in(
        &pierd,
        &since,
        &until,
        &["event=health_status"],
        "{{.Action}}",
    );
    assert_eq!(
        health.lines().next(),
        Some("health_status: healthy"),
        "{health}"
    );

    let exec = events_in(
        &pierd,
        &since,
        &until,
        &["event=exec_create", "event=exec_start", "event=exec_die"],
        "{{.Action}}|{{.Actor.Attributes.exitCode}}",
    );
    // Only this exec's events (not the healthcheck's).
    let mine: Vec<&str> = exec
        .lines()
        .filter(|l| l.contains("exit 4") || l.starts_with("exec_die|4"))
        .collect();
    assert_eq!(
        mine,
        [
            "exec_create: sh -c exit 4|<no value>",
            "exec_start: sh -c exit 4|<no value>",
            "exec_die|4"
        ],
        "{exec}"
    );

    let image = events_in(
        &pierd,
        &since,
        &until,
        &["type=image"],
        "{{.Action}} {{.Actor.Attributes.name}}",
    );
    assert_eq!(
        image.lines().collect::<Vec<_>>(),
        ["tag example/tagged:1", "untag example/tagged:1"]
    );
}

#[test]
fn bad_requests_get_dockers_errors() {
    let pierd = Pierd::start();
    let out = pierd.docker(&["events", "--filter", "colour=red", "--until", "1"]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("invalid filter 'colour'"), "{out:?}");
    let out = pierd.docker(&["events", "--since", "200", "--until", "100"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("`since` time cannot be after `until` time"),
        "{out:?}"
    );
    // A bounded window in the past ends by itself.
    let out = pierd.docker(&["events", "--since", "1", "--until", "2"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "");
}
