//! `pier`'s container commands through pierd, with pierd started by `pier` itself.

use std::path::Path;
use std::process::Command;

mod common;

use common::Setup;

#[test]
fn pier_starts_pierd_and_runs_containers() {
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    // The import (the first command) started pierd.
    let pid = s.daemon_pid().expect("pier started pierd");
    assert_eq!(s.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    let out = s.run(
        &[
            "run",
            "--name",
            "c1",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = s.run(&["logs", "c1"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = s.run(&["run", "-i", "--rm", "busybox", "cat"], b"through stdin\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    let id = s.ok(&["run", "-d", "--name", "bg", "busybox", "sleep", "1000"]);
    assert_eq!(id.trim().len(), 64);
    let ps = s.ok(&["ps"]);
    let rows: Vec<&str> = ps.lines().collect();
    assert!(
        rows[0].starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{ps}"
    );
    assert!(
        rows[1].contains("\"sleep 1000\"") && rows[1].ends_with("bg"),
        "{ps}"
    );
    assert_eq!(s.ok(&["ps", "-a", "--format", "{{.Names}}"]), "bg\nc1\n");
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.State.Status}}", "bg"]),
        "running\n"
    );
    assert_eq!(s.ok(&["stop", "-t", "1", "bg"]), "bg\n");
    assert_eq!(s.ok(&["wait", "bg"]), "137\n");

    let out = s.run(&["run", "--rm", "busybox", "nonexistent"], b"");
    assert_eq!(out.status.code(), Some(127));
    let out = s.run(&["rm", "nosuch"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error response from daemon: No such container: nosuch\n"
    );
    assert_eq!(s.ok(&["rm", "bg", "c1"]), "bg\nc1\n");
    assert_eq!(s.ok(&["ps", "-aq"]), "");
}

#[test]
fn other_hosts_are_not_started_without_asking() {
    let s = Setup::new();
    let out = Command::new(env!("CARGO_BIN_EXE_pier"))
        .arg("-H")
        .arg(format!("unix://{}", s.socket().display()))
        .args(["ps"])
        .env_remove("PIER_AUTOSTART")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Cannot connect to the Pier daemon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.daemon_pid().is_none());
}
