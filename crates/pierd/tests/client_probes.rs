//! Shapes and endpoints that client libraries (docker-py, bollard) and the docker CLI
//! probe, on pierd and on an isolated dockerd in the same test: exec streams with a
//! terminal, inspect and stats fields, `system df`, network names, legacy links.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{api, demux, hijack_to_end, with_busybox_engines};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `POST /containers/{name}/exec` with `body`; the exec's ID.
fn exec_create(socket: &Path, name: &str, body: &str) -> String {
    let (code, text) = api(
        socket,
        "POST",
        &format!("/containers/{name}/exec"),
        Some(body),
    );
    assert_eq!(code, 201, "{text}");
    json(&text)["Id"].as_str().expect("Id").to_string()
}

/// The stdout payloads of a multiplexed stream, joined.
fn stdout_of(body: &[u8]) -> String {
    demux(body)
        .into_iter()
        .filter(|(s, _)| *s == 1)
        .map(|(_, t)| t)
        .collect()
}

#[test]
fn exec_with_a_terminal_streams_raw_or_framed_as_the_start_asks() {
    with_busybox_engines("exec_with_a_terminal", |engine, e, socket| {
        e.docker_ok(&["run", "-d", "--name", "ex1", "busybox", "sleep", "600"]);
        let create =
            r#"{"AttachStdout":true,"AttachStderr":true,"Tty":true,"Cmd":["echo","hello out"]}"#;
        let create_and_start = |start: &str| {
            let id = exec_create(socket, "ex1", create);
            let got = hijack_to_end(
                socket,
                &format!("/exec/{id}/start"),
                start,
                Duration::from_secs(20),
            );
            assert!(got.ended, "{engine}: {got:?}");
            got
        };
        // docker-py's exec_run(tty=True) and bollard: start with Tty, a raw stream.
        let got = create_and_start(r#"{"Detach":false,"Tty":true}"#);
        assert!(
            got.status.contains(" 101 ") || got.status.contains(" 200 "),
            "{engine}: {got:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&got.body),
            "hello out\r\n",
            "{engine}"
        );
        // docker-py's low-level exec_start(id) sends Tty false: the terminal's output
        // comes in stdout frames then.
        let got = create_and_start(r#"{"Detach":false,"Tty":false}"#);
        assert_eq!(stdout_of(&got.body), "hello out\r\n", "{engine}");

        // The docker CLI.
        let out = e.docker(&["exec", "-t", "ex1", "echo", "hello out"]);
        assert_eq!(out.code, Some(0), "{engine}: {out:?}");
        assert_eq!(out.stdout, "hello out\r\n", "{engine}: {out:?}");
        let out = e.docker(&["exec", "ex1", "sh", "-c", "echo o; echo e >&2"]);
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("o\n", "e\n"),
            "{engine}"
        );
        e.docker_ok(&["rm", "-f", "ex1"]);
    });
}
