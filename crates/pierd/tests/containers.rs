//! Containers through pierd, driven by the real `docker` CLI: run, logs, stdin, stop,
//! kill, rm, errors, and live restore across a `kill -9` of pierd.

mod common;

use std::time::{Duration, Instant};

use common::{mounts_under, pierd_with_busybox, Engine};

fn pier_cgroups(ids: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        for id in ids {
            let p = entry.path().join("pier").join(id);
            if p.exists() {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn run_attach_exit_codes_logs_and_stdin() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    // The classic: output attached, container gone afterwards.
    let out = pierd.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "hi\n"),
        "{out:?}"
    );
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]), "", "--rm removed it");

    // Exit code, stdout and stderr kept apart, in the logs too.
    let out = pierd.docker(&[
        "run",
        "--name",
        "t1",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let logs = pierd.docker(&["logs", "t1"]);
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("out\n", "err\n")
    );
    let logs = pierd.docker_ok(&["logs", "--tail", "1", "-t", "t1"]);
    assert!(logs.ends_with(" err\n") || logs.is_empty(), "{logs}");
    assert_eq!(
        pierd.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{.Name}}",
            "t1"
        ]),
        "exited 3 /t1\n"
    );
    let ps = pierd.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("t1 Exited (3) "), "{ps}");

    // The image's config and the container's settings reach the process.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u) $(hostname)",
    ]);
    assert_eq!(out, "1 /tmp 65534 box\n");

    // Stdin.
    let input = _work.path().join("input");
    std::fs::write(&input, "hello stdin\n").unwrap();
    let out = pierd.docker_with_stdin(&["run", "-i", "--rm", "busybox", "cat"], &input);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "hello stdin\n"),
        "{out:?}"
    );

    // Docker's errors and exit codes.
    let out = pierd.docker(&["run", "--rm", "busybox", "nonexistent"]);
    assert_eq!(out.code, Some(127), "{out:?}");
    assert!(
        out.stderr.contains("executable file not found in $PATH"),
        "{}",
        out.stderr
    );
    let out = pierd.docker(&["run", "--name", "t1", "busybox", "true"]);
    assert_eq!(out.code, Some(125));
    assert!(
        out.stderr
            .contains("Conflict. The container name \"/t1\" is already in use by container"),
        "{}",
        out.stderr
    );
    let out = pierd.docker(&["run", "--rm", "nothere", "true"]);
    assert_ne!(out.code, Some(0));
    let out = pierd.docker(&["logs", "nosuch"]);
    assert_eq!(
        out.stderr,
        "Error response from daemon: No such container: nosuch\n"
    );
    assert_eq!(
        pierd.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "t1\n",
        "failed runs left nothing behind"
    );
    let id = pierd
        .docker_ok(&["inspect", "-f", "{{.Id}}", "t1"])
        .trim()
        .to_string();
    pierd.docker_ok(&["rm", "t1"]);
    assert!(
        mounts_under(pierd.dir()).is_empty(),
        "{:?}",
        mounts_under(pierd.dir())
    );
    assert!(pier_cgroups(&[id]).is_empty());
}

#[test]
fn detached_stop_kill_remove() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let id = pierd
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "svc",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = pierd.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("svc Up "), "{ps}");
    let out = pierd.docker(&["rm", "svc"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("cannot remove container \"/svc\": container is running: stop the container before removing or force remove"),
        "{}",
        out.stderr
    );
    // Wait for the trap to be installed before stopping.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pierd.docker_ok(&["logs", "svc"]).contains("ready") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    pierd.docker_ok(&["stop", "svc"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "SIGTERM, not the timeout"
    );
    assert_eq!(pierd.docker_ok(&["logs", "svc"]), "ready\ngot TERM\n");
    assert_eq!(
        pierd.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.State.Running}}",
            "svc"
        ]),
        "0 false\n"
    );
    // Stopping a stopped container is not an error (304).
    pierd.docker_ok(&["stop", "svc"]);
    let out = pierd.docker(&["kill", "svc"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("is not running"), "{}", out.stderr);

    // start again, then kill with a signal, and wait.
    pierd.docker_ok(&["start", "svc"]);
    pierd.docker_ok(&["kill", "-s", "KILL", "svc"]);
    assert_eq!(pierd.docker_ok(&["wait", "svc"]), "137\n");
    pierd.docker_ok(&["rm", "svc"]);

    // rm -f of a running container.
    pierd.docker_ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"]);
    pierd.docker_ok(&["rm", "-f", "busy"]);
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]), "");
    assert!(pierd.monitor_pids().is_empty(), "no monitor left");
    assert!(mounts_under(pierd.dir()).is_empty());
    assert!(pier_cgroups(&[id]).is_empty());
}

#[test]
fn containers_survive_a_pierd_crash() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    let pid_before = pierd.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "live"]);
    pierd.crash_and_restart(Duration::ZERO);
    assert_eq!(
        pierd.docker_ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "live"]),
        format!("running {pid_before}")
    );
    // Output written while pierd was down is in the logs, and more keeps coming.
    let first = pierd.docker_ok(&["logs", "live"]).lines().count();
    std::thread::sleep(Duration::from_millis(500));
    let later = pierd.docker_ok(&["logs", "live"]).lines().count();
    assert!(later > first, "{first} then {later}");
    // And the restarted daemon still controls it.
    pierd.docker_ok(&["kill", "live"]);
    assert_eq!(pierd.docker_ok(&["wait", "live"]), "137\n");

    // A container that exits while pierd is down is seen as exited.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    pierd.crash_and_restart(Duration::from_secs(2));
    assert_eq!(pierd.docker_ok(&["wait", "brief"]), "7\n");
    pierd.docker_ok(&["rm", "live", "brief"]);
    assert!(pierd.monitor_pids().is_empty());
}
