//! `POST /containers/{id}/attach` modes, on pierd and on an isolated dockerd alike:
//! `logs=1` (the logs so far, then the live stream), `logs=1&stream=0` (the logs,
//! then the end), and the `stdout`/`stderr` selection on both parts, through a raw
//! hijacked connection (as docker-py and bollard use it) and the docker CLI's
//! `run -a`.

mod common;

use std::time::Duration;

use common::{demux, hijack_to_end, wait_until, with_busybox_engines, Engine};

fn frames(list: &[(u8, &str)]) -> Vec<(u8, String)> {
    list.iter().map(|(s, t)| (*s, t.to_string())).collect()
}

fn logs_contain(e: &dyn Engine, name: &str, text: &str) -> bool {
    let out = e.docker(&["logs", name]);
    out.stdout.contains(text) || out.stderr.contains(text)
}

#[test]
fn attach_with_logs_and_no_stream_sends_the_logs_then_ends() {
    with_busybox_engines("attach_with_logs_and_no_stream", |engine, e, socket| {
        e.docker_ok(&[
            "run",
            "-d",
            "--name",
            "al1",
            "busybox",
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2; sleep 600",
        ]);
        assert!(
            wait_until(Duration::from_secs(20), || logs_contain(e, "al1", "out2")),
            "{engine}: no logs"
        );
        let cases: [(&str, &[(u8, &str)]); 3] = [
            (
                "stdout=1&stderr=1",
                &[(1, "out1\n"), (2, "err1\n"), (1, "out2\n")],
            ),
            ("stdout=1", &[(1, "out1\n"), (1, "out2\n")]),
            ("stderr=1", &[(2, "err1\n")]),
        ];
        for (select, want) in cases {
            let path = format!("/containers/al1/attach?logs=1&stream=0&{select}");
            let got = hijack_to_end(socket, &path, "", Duration::from_secs(15));
            assert!(
                got.ended,
                "{engine} {path}: the stream did not end: {got:?}"
            );
            assert!(got.status.contains(" 101 "), "{engine}: {got:?}");
            // Interleaving of two pipes is not ordered across streams: compare each
            // stream's own sequence.
            for stream in [1, 2] {
                let of = |v: &[(u8, String)]| -> Vec<String> {
                    v.iter()
                        .filter(|(s, _)| *s == stream)
                        .map(|(_, t)| t.clone())
                        .collect()
                };
                assert_eq!(
                    of(&demux(&got.body)),
                    of(&frames(want)),
                    "{engine} {path}: stream {stream}"
                );
            }
        }
        // Neither logs nor stream: nothing, and the end.
        let got = hijack_to_end(
            socket,
            "/containers/al1/attach?stdout=1&stderr=1",
            "",
            Duration::from_secs(15),
        );
        assert!(got.ended && got.body.is_empty(), "{engine}: {got:?}");
        e.docker_ok(&["rm", "-f", "al1"]);
    });
}

#[test]
fn attach_with_logs_and_stream_sends_the_logs_then_the_live_output_of_the_chosen_streams() {
    with_busybox_engines("attach_with_logs_and_stream", |engine, e, socket| {
        e.docker_ok(&[
            "run",
            "-d",
            "--name",
            "al2",
            "busybox",
            "sh",
            "-c",
            "echo before; echo beforeerr >&2; while [ ! -e /go ]; do sleep 0.1; done; \
             echo after; echo aftererr >&2",
        ]);
        assert!(
            wait_until(Duration::from_secs(20), || logs_contain(
                e,
                "al2",
                "beforeerr"
            )),
            "{engine}: no logs"
        );
        let sock = socket.to_path_buf();
        let reader = std::thread::spawn(move || {
            hijack_to_end(
                &sock,
                "/containers/al2/attach?logs=1&stream=1&stdout=1",
                "",
                Duration::from_secs(30),
            )
        });
        // The attach is joined to the live output right after the logs.
        std::thread::sleep(Duration::from_secs(2));
        e.docker_ok(&["exec", "al2", "touch", "/go"]);
        let got = reader.join().expect("reader");
        assert!(
            got.ended,
            "{engine}: the stream did not end at exit: {got:?}"
        );
        assert_eq!(
            demux(&got.body),
            frames(&[(1, "before\n"), (1, "after\n")]),
            "{engine}"
        );
        e.docker_ok(&["rm", "-f", "al2"]);

        // With a terminal the logs come raw, not framed.
        e.docker_ok(&[
            "run",
            "-d",
            "-t",
            "--name",
            "al3",
            "busybox",
            "sh",
            "-c",
            "echo hi; sleep 600",
        ]);
        assert!(
            wait_until(Duration::from_secs(20), || logs_contain(e, "al3", "hi")),
            "{engine}: no logs"
        );
        let got = hijack_to_end(
            socket,
            "/containers/al3/attach?logs=1&stream=0&stdout=1&stderr=1",
            "",
            Duration::from_secs(15),
        );
        assert!(got.ended, "{engine}: {got:?}");
        assert_eq!(String::from_utf8_lossy(&got.body), "hi\r\n", "{engine}");
        e.docker_ok(&["rm", "-f", "al3"]);
    });
}

#[test]
fn run_attached_to_one_stream_shows_only_that_stream() {
    with_busybox_engines("run_attached_to_one_stream", |engine, e, _socket| {
        let script = "echo to-out; echo to-err >&2";
        let out = e.docker(&["run", "--rm", "-a", "stderr", "busybox", "sh", "-c", script]);
        assert_eq!(out.code, Some(0), "{engine}: {out:?}");
        assert_eq!(out.stdout, "", "{engine}: {out:?}");
        assert_eq!(out.stderr.trim(), "to-err", "{engine}: {out:?}");
        let out = e.docker(&["run", "--rm", "-a", "stdout", "busybox", "sh", "-c", script]);
        assert_eq!(out.code, Some(0), "{engine}: {out:?}");
        assert_eq!(out.stdout.trim(), "to-out", "{engine}: {out:?}");
        assert_eq!(out.stderr, "", "{engine}: {out:?}");
    });
}
