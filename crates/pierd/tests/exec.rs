//! `docker exec` through pierd, driven by the real `docker` CLI: output, exit codes,
//! `-e`/`-w`/`-u`, stdin, detached, a terminal, the API's inspect, and errors.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{pierd_with_busybox, wait_until, Engine, Pierd};

/// A pierd with a `busybox` image imported and a container `c1` running in it.
fn pierd_with_running_container() -> Option<(Pierd, tempfile::TempDir)> {
    let (pierd, work) = pierd_with_busybox()?;
    pierd.docker_ok(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]);
    Some((pierd, work))
}

/// `GET` on pierd's socket with curl; the body.
fn api_get(pierd: &Pierd, path: &str) -> String {
    let out = pier_testsupport::run(
        Command::new("curl")
            .arg("-sS")
            .arg("--unix-socket")
            .arg(pierd.socket())
            .arg(format!("http://pierd{path}")),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout
}

/// `POST` with a JSON body; status line and body.
fn api_post(pierd: &Pierd, path: &str, body: &str) -> (u16, String) {
    let out = pier_testsupport::run(
        Command::new("curl")
            .arg("-sS")
            .arg("--unix-socket")
            .arg(pierd.socket())
            .arg("-H")
            .arg("Content-Type: application/json")
            .arg("-d")
            .arg(body)
            .arg("-w")
            .arg("\n%{http_code}")
            .arg(format!("http://pierd{path}")),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn poll(what: &str, f: impl FnMut() -> bool) {
    assert!(
        wait_until(Duration::from_secs(10), f),
        "timed out waiting for {what}"
    );
}

#[test]
fn exec_output_exit_codes_options_and_stdin() {
    let Some((pierd, work)) = pierd_with_running_container() else {
        return;
    };
    let out = pierd.docker(&["exec", "c1", "echo", "hi"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "hi\n", ""),
        "{out:?}"
    );

    // Exit code; stdout and stderr kept apart.
    let out = pierd.docker(&["exec", "c1", "sh", "-c", "echo out; echo err >&2; exit 5"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(5), "out\n", "err\n"),
        "{out:?}"
    );

    // The container's env, plus -e.
    let out = pierd.docker_ok(&["exec", "-e", "FOO=bar", "c1", "sh", "-c", "echo $FOO $PATH"]);
    assert!(out.starts_with("bar /"), "{out:?}");
    let out = pierd.docker_ok(&["exec", "c1", "sh", "-c", "echo $HOSTNAME"]);
    let id = pierd.docker_ok(&["inspect", "-f", "{{.Id}}", "c1"]);
    assert_eq!(out.trim(), &id.trim()[..12]);

    // -w, and the default cwd.
    assert_eq!(
        pierd.docker_ok(&["exec", "-w", "/tmp", "c1", "pwd"]),
        "/tmp\n"
    );
    assert_eq!(pierd.docker_ok(&["exec", "c1", "pwd"]), "/\n");

    // -u, by name through the container's /etc/passwd, and by number.
    assert_eq!(pierd.docker_ok(&["exec", "c1", "id", "-u"]), "0\n");
    assert_eq!(
        pierd.docker_ok(&["exec", "-u", "nobody", "c1", "id", "-u"]),
        "65534\n"
    );
    assert_eq!(
        pierd.docker_ok(&["exec", "-u", "nobody", "c1", "id", "-g"]),
        "65534\n"
    );
    assert_eq!(
        pierd.docker_ok(&["exec", "-u", "1234:5", "c1", "sh", "-c", "id -u; id -g"]),
        "1234\n5\n"
    );

    // -i: stdin from a file, to its end.
    let input = work.path().join("input");
    let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&input, &text).unwrap();
    let out = pierd.docker_with_stdin(&["exec", "-i", "c1", "cat"], &input);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout == text,
        "stdin came back changed: {} bytes",
        out.stdout.len()
    );
    let out = pierd.docker_with_stdin(&["exec", "-i", "c1", "wc", "-l"], &input);
    assert_eq!(out.stdout.trim(), "2000", "{out:?}");

    // Without -i, no stdin: the process reads EOF at once.
    let out = pierd.docker(&["exec", "c1", "cat"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""), "{out:?}");

    // -d: runs on its own.
    let out = pierd.docker(&["exec", "-d", "c1", "touch", "/tmp/x"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""), "{out:?}");
    poll("the detached exec's file", || {
        pierd.docker(&["exec", "c1", "test", "-f", "/tmp/x"]).code == Some(0)
    });

    // A command that does not exist: Docker's message and 127.
    let out = pierd.docker(&["exec", "c1", "nonexistent"]);
    assert_eq!(out.code, Some(127), "{out:?}");
    assert!(
        out.stdout.contains(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nonexistent\": executable file not found in $PATH"
        ),
        "{out:?}"
    );
    // Not executable: 126.
    let out = pierd.docker(&["exec", "c1", "/etc/passwd"]);
    assert_eq!(out.code, Some(126), "{out:?}");
    assert!(out.stdout.contains("permission denied"), "{out:?}");

    // The container is still fine.
    assert_eq!(pierd.docker_ok(&["exec", "c1", "echo", "ok"]), "ok\n");
}

#[test]
fn exec_api_create_inspect_resize() {
    let Some((pierd, _work)) = pierd_with_running_container() else {
        return;
    };
    let id = pierd.docker_ok(&["inspect", "-f", "{{.Id}}", "c1"]);
    let id = id.trim();
    let (code, body) = api_post(
        &pierd,
        "/v1.47/containers/c1/exec",
        r#"{"AttachStdout":true,"AttachStderr":true,"Cmd":["sh","-c","exit 3"],"User":"nobody","DetachKeys":"ctrl-x"}"#,
    );
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let exec_id = v["Id"].as_str().unwrap().to_string();
    assert_eq!(exec_id.len(), 64);
    assert!(exec_id.bytes().all(|b| b.is_ascii_hexdigit()));

    let v: serde_json::Value =
        serde_json::from_str(&api_get(&pierd, &format!("/exec/{exec_id}/json"))).unwrap();
    assert_eq!(v["ID"], exec_id.as_str());
    assert_eq!(v["Running"], false);
    assert!(v["ExitCode"].is_null(), "{v}");
    assert_eq!(v["ContainerID"], id);
    assert_eq!(v["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(
        v["ProcessConfig"]["arguments"],
        serde_json::json!(["-c", "exit 3"])
    );
    assert_eq!(v["ProcessConfig"]["user"], "nobody");
    assert_eq!(v["ProcessConfig"]["tty"], false);
    assert_eq!(v["ProcessConfig"]["privileged"], false);
    assert_eq!(v["OpenStdin"], false);
    assert_eq!(v["OpenStdout"], true);
    assert_eq!(v["DetachKeys"], "ctrl-x");
    assert_eq!(v["CanRemove"], false);

    // Detached start: 204, then the exit code shows up.
    let (code, body) = api_post(
        &pierd,
        &format!("/exec/{exec_id}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(code, 204, "{body}");
    poll("the exec's exit code", || {
        let v: serde_json::Value =
            serde_json::from_str(&api_get(&pierd, &format!("/exec/{exec_id}/json"))).unwrap();
        v["ExitCode"] == 3 && v["Running"] == false
    });
    // Started twice: 409.
    let (code, body) = api_post(
        &pierd,
        &format!("/exec/{exec_id}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("has already run"), "{body}");

    // A running one: Running, ExitCode null, a Pid; resize is accepted.
    let (_, body) = api_post(
        &pierd,
        "/containers/c1/exec",
        r#"{"Cmd":["sleep","1001"],"Tty":true}"#,
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sleeper = v["Id"].as_str().unwrap().to_string();
    let (code, _) = api_post(
        &pierd,
        &format!("/exec/{sleeper}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(code, 204);
    poll("the exec's pid", || {
        let v: serde_json::Value =
            serde_json::from_str(&api_get(&pierd, &format!("/exec/{sleeper}/json"))).unwrap();
        v["Running"] == true && v["ExitCode"].is_null() && v["Pid"].as_i64().unwrap_or(0) > 0
    });
    let (code, body) = api_post(&pierd, &format!("/exec/{sleeper}/resize?h=40&w=100"), "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        pierd.docker_ok(&[
            "exec",
            "c1",
            "sh",
            "-c",
            "ps -o args | grep -c '^sleep 1001'"
        ]),
        "1\n"
    );

    // Unknown exec, unknown container, no command.
    let (code, body) = api_post(&pierd, "/exec/nope/start", "{}");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such exec instance: nope"), "{body}");
    let (code, body) = api_post(&pierd, "/containers/nope/exec", r#"{"Cmd":["true"]}"#);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such container: nope"), "{body}");
    let (code, body) = api_post(&pierd, "/containers/c1/exec", r#"{"Cmd":[]}"#);
    assert_eq!(code, 400, "{body}");
}

#[test]
fn exec_in_a_terminal() {
    let Some((pierd, work)) = pierd_with_running_container() else {
        return;
    };
    let docker = pierd.command();
    let mut cmd = Command::new("script");
    for (k, v) in docker.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.arg("-qec")
        .arg(format!("{} exec -t c1 tty", common::DOCKER))
        .arg("/dev/null");
    let out = common::run_with_stdin(&mut cmd, std::process::Stdio::null());
    assert_eq!(out.code, Some(0), "{out:?}");
    let line = out.stdout.trim();
    assert!(line.starts_with("/dev/pts/"), "{out:?}");

    // The terminal's size comes from the client's, and exit codes still propagate.
    let mut cmd = Command::new("script");
    for (k, v) in pierd.command().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.arg("-qec")
        .arg(format!(
            "stty rows 33 cols 77; {} exec -t c1 sh -c 'stty size; exit 4'",
            common::DOCKER
        ))
        .arg("/dev/null");
    let out = common::run_with_stdin(&mut cmd, std::process::Stdio::null());
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stdout.contains("33 77"), "{out:?}");

    // -it: what is typed reaches the process through the terminal.
    let input = work.path().join("typed");
    std::fs::write(&input, "hello\n").unwrap();
    let mut cmd = Command::new("script");
    for (k, v) in pierd.command().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.arg("-qec")
        .arg(format!(
            "{} exec -it c1 sh -c 'read x; echo got $x'",
            common::DOCKER
        ))
        .arg("/dev/null");
    let out = common::run_with_stdin(&mut cmd, std::fs::File::open(&input).unwrap().into());
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("got hello"), "{out:?}");
}

#[test]
fn exec_errors() {
    let Some((pierd, _work)) = pierd_with_running_container() else {
        return;
    };
    let out = pierd.docker(&["exec", "nope", "true"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "Error response from daemon: No such container: nope\n"
    );

    let id = pierd.docker_ok(&["inspect", "-f", "{{.Id}}", "c1"]);
    pierd.docker_ok(&["kill", "c1"]);
    let out = pierd.docker(&["exec", "c1", "true"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "Error response from daemon: container {} is not running\n",
            id.trim()
        )
    );
}
