//! `pier push/pull/login/logout` and `run` pulling a missing image, against Debian's
//! `docker-registry` on a loopback port: the same output as the docker CLI against
//! the same pierd, credentials in docker's `config.json`.

use std::process::{Command, Output};

mod common;

use common::{finish, text, Setup};
use pier_testsupport::registry::DockerRegistry;

const DOCKER: &str = "/usr/local/bin/docker";

fn docker(s: &Setup, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(DOCKER);
    c.args(args)
        .env("DOCKER_HOST", format!("unix://{}", s.socket().display()))
        .env("DOCKER_CONFIG", s.path("docker-config"))
        .env_remove("DOCKER_CONTEXT");
    finish(c, stdin)
}

fn pier(s: &Setup, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = s.cmd(args);
    c.env("DOCKER_CONFIG", s.path("pier-config"));
    finish(c, stdin)
}

#[test]
fn push_pull_login_and_run_pull_as_docker_does() {
    let test = "push_pull_login_and_run_pull_as_docker_does";
    if !common::host_has(DOCKER, "docker-ce-cli") {
        return;
    }
    let Some(registry) = DockerRegistry::start_or_skip(test, None) else {
        return;
    };
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    let app = format!("{}/cli/app:1", registry.host());
    s.ok(&["tag", "busybox", &app]);

    let out = pier(&s, &["push", &app], b"");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("Pushed"), "{stdout}");
    assert!(stdout.contains("1: digest: sha256:"), "{stdout}");

    // Pushed again and pulled while present: the same lines as docker's.
    for args in [vec!["push", app.as_str()], vec!["pull", app.as_str()]] {
        let mine = pier(&s, &args, b"");
        let theirs = docker(&s, &args, b"");
        assert_eq!(text(&mine), text(&theirs), "{args:?}");
        assert_eq!(mine.status.code(), theirs.status.code(), "{args:?}");
    }
    let quiet = pier(&s, &["pull", "-q", &app], b"");
    assert_eq!(String::from_utf8_lossy(&quiet.stdout).trim(), app);

    // Gone locally: `run` pulls it (messages on stderr), `--pull never` refuses.
    s.ok(&["rmi", &app]);
    let out = pier(
        &s,
        &["run", "--rm", "--pull", "never", &app, "echo", "hi"],
        b"",
    );
    assert!(!out.status.success(), "{out:?}");
    let out = pier(&s, &["run", "--rm", &app, "echo", "hi"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Unable to find image '{app}' locally")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Status: Downloaded newer image"),
        "{stderr}"
    );

    // login stores what docker's login stores; logout removes it.
    let host = registry.host();
    let out = pier(
        &s,
        &["login", "-u", "tester", "--password-stdin", &host],
        b"pw\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Login Succeeded"
    );
    let theirs = docker(
        &s,
        &["login", "-u", "tester", "--password-stdin", &host],
        b"pw\n",
    );
    assert!(theirs.status.success(), "{theirs:?}");
    let read = |dir: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(s.path(dir).join("config.json")).expect("config");
        serde_json::from_str(&text).expect("json")
    };
    assert_eq!(read("pier-config")["auths"], read("docker-config")["auths"]);
    let out = pier(&s, &["logout", &host], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Removing login credentials for {host}")
    );
    assert!(read("pier-config")["auths"].get(&host).is_none());
    drop(registry);
}
