//! `pier`'s image commands through pierd's Engine API: the same answers as the real
//! docker CLI against the same pierd, and the daemon's view of image users.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::{Command, Output};

mod common;

use common::{finish, text, Setup};

/// The docker CLI, if installed (else the test is skipped).
const DOCKER: &str = "/usr/local/bin/docker";

fn docker(s: &Setup, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(DOCKER);
    c.args(args)
        .env("DOCKER_HOST", format!("unix://{}", s.socket().display()))
        .env("DOCKER_CONFIG", s.path("docker-config"))
        .env_remove("DOCKER_CONTEXT");
    finish(c, stdin)
}

/// `pier ARGS` and `docker ARGS` print the same (stdout, stderr, exit code). Output
/// with a CREATED column may differ when a second ticks between the two, so this
/// tries a few times.
fn same_as_docker(s: &Setup, args: &[&str]) -> String {
    let mut last = None;
    for _ in 0..3 {
        let p = s.run(args, b"");
        let d = docker(s, args, b"");
        let pier = (text(&p), p.status.code());
        let dock = (text(&d), d.status.code());
        if pier == dock {
            return pier.0 .0;
        }
        last = Some((pier, dock));
    }
    let (pier, dock) = last.unwrap();
    panic!("{args:?}\npier:   {pier:?}\ndocker: {dock:?}");
}

#[test]
fn image_commands_go_through_the_daemon() {
    if !common::host_has(DOCKER, "docker-ce-cli") {
        return;
    }
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    // The import itself went through the daemon, which pier started.
    assert!(
        s.daemon_pid().is_some(),
        "pier started pierd for the import"
    );

    // Listing and inspecting: byte for byte what docker prints.
    let table = same_as_docker(&s, &["images"]);
    assert!(
        table.starts_with("REPOSITORY   TAG       IMAGE ID"),
        "{table}"
    );
    same_as_docker(&s, &["images", "-q"]);
    same_as_docker(&s, &["images", "--no-trunc", "--digests"]);
    same_as_docker(&s, &["image", "ls", "-f", "reference=busy*"]);
    same_as_docker(&s, &["images", "busybox"]);
    same_as_docker(
        &s,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    );
    same_as_docker(&s, &["image", "inspect", "busybox"]);
    let cmd = same_as_docker(
        &s,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{json .Config.Cmd}}",
            "busybox",
        ],
    );
    assert!(cmd.ends_with(" [\"sh\"]\n"), "{cmd}");
    same_as_docker(&s, &["image", "inspect", "nosuch"]);
    same_as_docker(&s, &["history", "busybox"]);
    same_as_docker(&s, &["history", "-q", "--no-trunc", "busybox"]);

    // An image a container uses: the daemon refuses, as docker's does (409).
    s.ok(&["run", "-d", "--name", "user", "busybox", "sleep", "1000"]);
    let out = s.run(&["rmi", "busybox"], b"");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.starts_with("Error response from daemon: conflict: unable to "),
        "{stderr}"
    );
    let d = docker(&s, &["rmi", "busybox"], b"");
    assert_eq!(text(&d), (stdout, stderr), "the same as docker rmi");
    assert_eq!(d.status.code(), Some(1));
    assert!(
        s.ok(&["images", "-q"]).lines().count() == 1,
        "busybox stays"
    );
    same_as_docker(&s, &["rmi", "nosuch"]);

    // tag, save (to stdout and -o), rmi of the copy, load it back.
    s.ok(&["tag", "busybox", "copy:1"]);
    s.ok(&["image", "tag", "copy:1", "localhost:5000/copy"]);
    let names = s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(
        names,
        "busybox:latest\ncopy:1\nlocalhost:5000/copy:latest\n"
    );
    let saved = s.run(&["save", "copy:1"], b"");
    assert!(saved.status.success(), "{:?}", text(&saved));
    assert!(saved.stdout.len() > 100_000, "a whole archive");
    let file = s.path("copy.tar");
    s.ok(&["save", "-o", file.to_str().unwrap(), "copy:1"]);
    assert_eq!(
        fs::read(&file).unwrap(),
        saved.stdout,
        "-o and stdout agree"
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let bad = s.path("bad.tar");
    let out = s.run(&["save", "-o", bad.to_str().unwrap(), "nosuch"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(!bad.exists(), "a failed save leaves no file");
    assert_eq!(
        s.ok(&["rmi", "copy:1", "localhost:5000/copy"]),
        "Untagged: copy:1\nUntagged: localhost:5000/copy:latest\n"
    );
    let out = s.run(&["load"], &saved.stdout);
    assert_eq!(text(&out).0, "Loaded image: copy:1\n", "{:?}", text(&out));
    assert!(out.status.success());
    s.ok(&["rmi", "copy:1"]);
    assert_eq!(
        s.ok(&["load", "-q", "-i", file.to_str().unwrap()]),
        "Loaded image: copy:1\n"
    );
    // A broken archive: the daemon's error message, exit 1, as docker load.
    let out = s.run(&["load"], b"not a tar archive");
    let d = docker(&s, &["load"], b"not a tar archive");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out), text(&d));

    // import from a directory: ownership, modes and links kept; changes applied.
    let src = s.path("src");
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::write(src.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("tool", src.join("bin/link")).unwrap();
    let id = s.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/tool\"]",
        "-c",
        "ENV A=1",
        src.to_str().unwrap(),
        "dir/img:1",
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let config = same_as_docker(
        &s,
        &[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{.Config.Cmd}} {{.Config.Env}}",
            "dir/img:1",
        ],
    );
    assert_eq!(config, format!("{id} [/bin/tool] [A=1]\n"));
    let upper = s.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.GraphDriver.Data.UpperDir}}",
        "dir/img:1",
    ]);
    let upper = std::path::Path::new(upper.trim());
    assert_eq!(
        fs::read_link(upper.join("bin/link")).unwrap(),
        std::path::Path::new("tool")
    );
    // A bad change: the daemon's message.
    let out = s.run(&["import", "-c", "FROB x", src.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "Error response from daemon: frob is not a valid change command\n"
    );
    same_as_docker(&s, &["images"]);

    // prune: the daemon knows the container's image is in use.
    s.ok(&["rmi", "dir/img:1", "copy:1"]);
    let pruned = s.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(pruned, "Total reclaimed space: 0B\n", "busybox is in use");
    s.ok(&["rm", "-f", "user"]);
    let pruned = s.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        pruned.starts_with("Deleted Images:\nuntagged: busybox:latest\n"),
        "{pruned}"
    );
    same_as_docker(&s, &["images"]);
}

#[test]
fn image_commands_need_the_daemon_they_name() {
    let s = Setup::new();
    let out = Command::new(env!("CARGO_BIN_EXE_pier"))
        .arg("-H")
        .arg(format!("unix://{}", s.socket().display()))
        .arg("--data-root")
        .arg(s.path("data"))
        .args(["images"])
        .env_remove("PIER_AUTOSTART")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("Cannot connect to the Pier daemon"),
        "{:?}",
        text(&out)
    );
    assert!(s.daemon_pid().is_none());
}
