//! Attach, resize and logs through pierd: container terminal resize, detach keys
//! (raw API and the real `docker` CLI under a pty), the WebSocket attach, log
//! drivers (`local`, `none`, option validation) and `logs --follow` across rotation.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pierd_with_busybox, wait_until, Engine, Pierd};

// ---------------------------------------------------------------------------------
// Helpers.

/// A request with curl on pierd's socket; (status, body).
fn api(pierd: &Pierd, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.arg("-sS")
        .arg("--unix-socket")
        .arg(pierd.socket())
        .arg("-X")
        .arg(method)
        .arg("-w")
        .arg("\n%{http_code}");
    if let Some(b) = body {
        cmd.arg("-H")
            .arg("Content-Type: application/json")
            .arg("-d")
            .arg(b);
    }
    cmd.arg(format!("http://pierd{path}"));
    let out =
        pier_testsupport::run(&mut cmd, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn running(pierd: &Pierd, name: &str) -> bool {
    pierd
        .docker(&["inspect", "-f", "{{.State.Running}}", name])
        .stdout
        .trim()
        == "true"
}

/// Reads from `s` until `needle` was seen (or the deadline); everything read.
fn read_until(s: &mut UnixStream, seen: &mut Vec<u8>, needle: &[u8], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

/// True when the server closes `s` (EOF) within `timeout`; data read meanwhile is
/// appended to `seen`.
fn closed_within(s: &mut UnixStream, seen: &mut Vec<u8>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Sends a raw HTTP request and reads the answer's head; (stream, head).
fn raw_request(pierd: &Pierd, request: &str) -> (UnixStream, String) {
    let mut s = UnixStream::connect(pierd.socket()).expect("connect");
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// `POST path` hijacked (`Upgrade: tcp`); the stream after the 101.
fn hijack(pierd: &Pierd, path: &str, body: &str) -> UnixStream {
    let (s, head) = raw_request(
        pierd,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: pierd\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// A shell line under `script` (a real pty), with the daemon's environment.
fn under_pty(pierd: &Pierd, shell: &str) -> Command {
    let mut cmd = Command::new("script");
    for (k, v) in pierd.command().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.arg("-qec").arg(shell).arg("/dev/null");
    cmd
}

/// A process under a pty we type into, its output collected.
struct Interactive {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Interactive {
    fn spawn(mut cmd: Command) -> Interactive {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn script");
        let output = Arc::new(Mutex::new(Vec::new()));
        for mut r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Interactive { child, output }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, needle: &str) {
        assert!(
            wait_until(Duration::from_secs(20), || self.text().contains(needle)),
            "never saw {needle:?} in {:?}",
            self.text()
        );
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// The exit status within `timeout`, or None (the process is then killed).
    fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------
// Resize.

#[test]
fn resize_a_container_terminal() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "tty1",
        "busybox",
        "sh",
        "-c",
        "while :; do stty size; sleep 0.2; done",
    ]);
    let (code, body) = api(&pierd, "POST", "/containers/tty1/resize?h=41&w=101", None);
    assert_eq!(code, 200, "{body}");
    assert!(
        wait_until(Duration::from_secs(10), || pierd
            .docker_ok(&["logs", "tty1"])
            .contains("41 101")),
        "{}",
        pierd.docker_ok(&["logs", "tty1"])
    );
    let (code, body) = api(
        &pierd,
        "POST",
        "/v1.47/containers/tty1/resize?h=12&w=34",
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(wait_until(Duration::from_secs(10), || pierd
        .docker_ok(&["logs", "--tail", "1", "tty1"])
        .contains("12 34")));

    // Docker's errors.
    let (code, body) = api(&pierd, "POST", "/containers/nope/resize?h=1&w=1", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such container: nope"), "{body}");
    let (code, body) = api(&pierd, "POST", "/containers/tty1/resize?h=x&w=1", None);
    assert_eq!(code, 400, "{body}");
    let id = pierd.docker_ok(&["create", "--name", "stopped1", "busybox"]);
    let (code, body) = api(&pierd, "POST", "/containers/stopped1/resize?h=1&w=1", None);
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(&format!("container {} is not running", id.trim())),
        "{body}"
    );

    // docker run -it: the terminal has the client's size from the start.
    let out = common::run_with_stdin(
        &mut under_pty(
            &pierd,
            &format!(
                "stty rows 33 cols 77; {} run --rm -it busybox stty size",
                common::DOCKER
            ),
        ),
        Stdio::null(),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("33 77"), "{out:?}");
}

// ---------------------------------------------------------------------------------
// Detach keys.

#[test]
fn detach_keys_over_the_api() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["run", "-dit", "--name", "det1", "busybox", "sh"]);
    let attach = "/containers/det1/attach?stream=1&stdin=1&stdout=1&stderr=1";

    // Default ctrl-p,ctrl-q: the connection ends, the container runs on.
    let mut s = hijack(&pierd, attach, "");
    let mut seen = Vec::new();
    s.write_all(b"echo one$((1+1))\n").unwrap();
    assert!(
        read_until(&mut s, &mut seen, b"one2", Duration::from_secs(20)),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    s.write_all(b"\x10\x11").unwrap();
    assert!(
        closed_within(&mut s, &mut seen, Duration::from_secs(10)),
        "the attach did not end at ctrl-p ctrl-q"
    );
    assert!(running(&pierd, "det1"));

    // The keys did not reach the shell: a new line is read as typed (a ctrl-p at
    // the shell's line editor would have brought back the last line).
    let mut s = hijack(&pierd, attach, "");
    let mut seen = Vec::new();
    s.write_all(b"echo two$((1+2))\n").unwrap();
    assert!(
        read_until(&mut s, &mut seen, b"two3\r\n", Duration::from_secs(20)),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        text.lines().any(|l| l.trim_end_matches('\r') == "two3"),
        "{text:?}"
    );
    // A ctrl-p not followed by ctrl-q goes through: the attach stays.
    s.write_all(b"\x10x").unwrap();
    let mut more = Vec::new();
    assert!(!closed_within(
        &mut s,
        &mut more,
        Duration::from_millis(700)
    ));
    s.write_all(b"\x15").unwrap(); // ctrl-u: clear the line
    drop(s);

    // Custom keys; the default ones then pass through.
    let mut s = hijack(&pierd, &format!("{attach}&detachKeys=ctrl-x,e"), "");
    let mut seen = Vec::new();
    s.write_all(b"\x10\x11").unwrap();
    assert!(!closed_within(
        &mut s,
        &mut seen,
        Duration::from_millis(700)
    ));
    s.write_all(b"\x15echo three$((1+3))\n").unwrap();
    assert!(read_until(
        &mut s,
        &mut seen,
        b"three4",
        Duration::from_secs(20)
    ));
    s.write_all(b"\x18e").unwrap();
    assert!(closed_within(&mut s, &mut seen, Duration::from_secs(10)));
    assert!(running(&pierd, "det1"));

    // Invalid keys: Docker's 400.
    let (code, body) = api(&pierd, "POST", &format!("{attach}&detachKeys=ctrl-1"), None);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("Invalid detach keys (ctrl-1) provided"),
        "{body}"
    );

    // Exec: the same keys end the exec's connection, the process runs on.
    let (code, body) = api(
        &pierd,
        "POST",
        "/containers/det1/exec",
        Some(
            r#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"Cmd":["sh"]}"#,
        ),
    );
    assert_eq!(code, 201, "{body}");
    let exec_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut s = hijack(
        &pierd,
        &format!("/exec/{exec_id}/start"),
        r#"{"Detach":false,"Tty":true}"#,
    );
    let mut seen = Vec::new();
    s.write_all(b"echo ex$((1+3))\n").unwrap();
    assert!(read_until(
        &mut s,
        &mut seen,
        b"ex4",
        Duration::from_secs(20)
    ));
    s.write_all(b"\x10\x11").unwrap();
    assert!(
        closed_within(&mut s, &mut seen, Duration::from_secs(10)),
        "the exec attach did not end at ctrl-p ctrl-q"
    );
    let (_, inspect) = api(&pierd, "GET", &format!("/exec/{exec_id}/json"), None);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Running"], true, "{inspect}");
    let (code, body) = api(
        &pierd,
        "POST",
        "/containers/det1/exec",
        Some(r#"{"Cmd":["true"],"DetachKeys":"ctrl-"}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("Invalid escape keys (ctrl-) provided"),
        "{body}"
    );
}

#[test]
fn detach_with_the_docker_cli() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    // docker run -it, then ctrl-p ctrl-q.
    let mut run = Interactive::spawn(under_pty(
        &pierd,
        &format!("{} run -it --name run1 busybox sh", common::DOCKER),
    ));
    assert!(wait_until(Duration::from_secs(20), || running(
        &pierd, "run1"
    )));
    // Typed only once the client's terminal is raw (else the tty eats ctrl-q).
    std::thread::sleep(Duration::from_millis(800));
    run.type_bytes(b"echo in$((2+2))\r");
    run.wait_for("in4");
    run.type_bytes(b"\x10");
    std::thread::sleep(Duration::from_millis(100));
    run.type_bytes(b"\x11");
    assert!(
        run.exit_within(Duration::from_secs(15)).is_some(),
        "docker run -it did not detach: {:?}",
        run.text()
    );
    assert!(running(&pierd, "run1"), "{:?}", run.text());

    // docker attach (resizing the terminal to the client's), then detach again.
    let mut attach = Interactive::spawn(under_pty(
        &pierd,
        &format!("stty rows 22 cols 88; {} attach run1", common::DOCKER),
    ));
    std::thread::sleep(Duration::from_millis(1500));
    attach.type_bytes(b"stty size\r");
    attach.wait_for("22 88");
    attach.type_bytes(b"\x10");
    std::thread::sleep(Duration::from_millis(100));
    attach.type_bytes(b"\x11");
    assert!(
        attach.exit_within(Duration::from_secs(15)).is_some(),
        "docker attach did not detach: {:?}",
        attach.text()
    );
    assert!(running(&pierd, "run1"));

    // --detach-keys.
    let mut attach = Interactive::spawn(under_pty(
        &pierd,
        &format!("{} attach --detach-keys ctrl-a run1", common::DOCKER),
    ));
    std::thread::sleep(Duration::from_millis(1500));
    attach.type_bytes(b"echo still$((3+3))\r");
    attach.wait_for("still6");
    attach.type_bytes(b"\x01");
    assert!(attach.exit_within(Duration::from_secs(15)).is_some());
    assert!(running(&pierd, "run1"));

    // The shell still works after all that, and exiting ends the container.
    let mut attach = Interactive::spawn(under_pty(
        &pierd,
        &format!("{} attach run1", common::DOCKER),
    ));
    std::thread::sleep(Duration::from_millis(1500));
    attach.type_bytes(b"exit 3\r");
    let status = attach.exit_within(Duration::from_secs(15));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "{:?}",
        attach.text()
    );
    assert!(wait_until(Duration::from_secs(10), || !running(
        &pierd, "run1"
    )));
}

/// The detach keys of the client's config file (`detachKeys` in
/// `$DOCKER_CONFIG/config.json`), which the CLI sends with `docker exec -it` and
/// `docker attach`.
#[test]
fn detach_keys_from_the_cli_config_file() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let config_dir = pierd.dir().join("cli");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"detachKeys":"ctrl-a,x"}"#,
    )
    .unwrap();
    pierd.docker_ok(&["run", "-dit", "--name", "cfg1", "busybox", "sh"]);
    for (what, shell) in [
        ("exec", format!("{} exec -it cfg1 sh", common::DOCKER)),
        ("attach", format!("{} attach cfg1", common::DOCKER)),
    ] {
        let mut client = Interactive::spawn(under_pty(&pierd, &shell));
        std::thread::sleep(Duration::from_millis(1500));
        client.type_bytes(b"echo in$((4+4))\r");
        client.wait_for("in8");
        // The default keys are not the keys now: ctrl-p ctrl-q goes to the shell.
        client.type_bytes(b"\x10");
        std::thread::sleep(Duration::from_millis(100));
        client.type_bytes(b"\x11");
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            client.child.try_wait().unwrap().is_none(),
            "docker {what} ended at ctrl-p ctrl-q: {:?}",
            client.text()
        );
        client.type_bytes(b"\x01");
        std::thread::sleep(Duration::from_millis(100));
        client.type_bytes(b"x");
        assert!(
            client.exit_within(Duration::from_secs(15)).is_some(),
            "docker {what} did not detach at ctrl-a x: {:?}",
            client.text()
        );
        assert!(running(&pierd, "cfg1"), "{what}");
    }
}

// ---------------------------------------------------------------------------------
// WebSocket attach.

fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut out = vec![0x80 | opcode];
    assert!(payload.len() < 126);
    out.push(0x80 | payload.len() as u8);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One server frame: (opcode, payload); server frames are never masked.
fn ws_read(s: &mut UnixStream) -> Option<(u8, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = [0u8; 2];
    s.read_exact(&mut head).ok()?;
    assert_eq!(head[0] & 0x80, 0x80, "FIN");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x0F, payload))
}

#[test]
fn websocket_attach() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-di",
        "--name",
        "ws1",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo out-$l; echo err-$l >&2; done",
    ]);
    let request = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: pierd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    let (mut s, head) = raw_request(
        &pierd,
        &request("/v1.47/containers/ws1/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"),
    );
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(lower.contains("upgrade: websocket"), "{head}");
    // RFC 6455's example key and answer.
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    s.write_all(&ws_frame(0x1, b"hello\n")).unwrap();
    let mut got = Vec::new();
    while !(String::from_utf8_lossy(&got).contains("out-hello")
        && String::from_utf8_lossy(&got).contains("err-hello"))
    {
        let (op, payload) = ws_read(&mut s).expect("a frame");
        assert_eq!(op, 0x2, "binary frames");
        got.extend_from_slice(&payload);
    }
    // Raw, not multiplexed.
    let text = String::from_utf8_lossy(&got).into_owned();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["err-hello", "out-hello"], "{text:?}");

    // Ping → pong with the same payload; close → close, and the container runs on.
    s.write_all(&ws_frame(0x9, b"p1")).unwrap();
    assert_eq!(ws_read(&mut s), Some((0xA, b"p1".to_vec())));
    s.write_all(&ws_frame(0x8, &1000u16.to_be_bytes())).unwrap();
    let (op, _) = ws_read(&mut s).expect("close frame");
    assert_eq!(op, 0x8);
    let mut rest = Vec::new();
    assert!(closed_within(&mut s, &mut rest, Duration::from_secs(10)));
    assert!(running(&pierd, "ws1"));

    // Only stdout asked for: stderr is not sent. The container's end closes the
    // socket with a close frame.
    let (mut s, head) = raw_request(
        &pierd,
        &request("/containers/ws1/attach/ws?stream=1&stdin=1&stdout=1"),
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&ws_frame(0x2, b"two\n")).unwrap();
    let (op, payload) = ws_read(&mut s).expect("a frame");
    assert_eq!((op, payload.as_slice()), (0x2, &b"out-two\n"[..]));
    pierd.docker_ok(&["kill", "ws1"]);
    loop {
        let (op, payload) = ws_read(&mut s).expect("frames until close");
        assert!(
            !String::from_utf8_lossy(&payload).contains("err-"),
            "stderr was sent"
        );
        if op == 0x8 {
            break;
        }
    }

    // Not a websocket request: 400; unknown container: 404.
    let (code, body) = api(&pierd, "GET", "/containers/ws1/attach/ws?stream=1", None);
    assert_eq!(code, 400, "{body}");
    let (_, head) = raw_request(&pierd, &request("/containers/nope/attach/ws?stream=1"));
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

// ---------------------------------------------------------------------------------
// Log drivers and logs.

#[test]
fn logs_follow_across_rotation() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    const N: usize = 150;
    for (name, opts) in [
        (
            "json",
            &["--log-opt", "max-size=1k", "--log-opt", "max-file=2"][..],
        ),
        (
            "local",
            &[
                "--log-driver",
                "local",
                "--log-opt",
                "max-size=1k",
                "--log-opt",
                "max-file=3",
            ][..],
        ),
    ] {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        let script = format!(
            "sleep 2; i=1; while [ $i -le {N} ]; do echo line-$i; i=$((i+1)); sleep 0.02; done"
        );
        args.extend_from_slice(&["busybox", "sh", "-c", &script]);
        let id = pierd.docker_ok(&args).trim().to_string();
        let out = pierd.docker(&["logs", "-f", name]);
        assert_eq!(out.code, Some(0), "{out:?}");
        let want: Vec<String> = (1..=N).map(|i| format!("line-{i}")).collect();
        let got: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(got, want, "{name}: follow lost or repeated lines");

        // The log really rotated: what is left is only the tail.
        let kept = pierd.docker_ok(&["logs", name]);
        assert!(kept.lines().count() < N / 2, "{name}: {kept}");
        assert!(kept.ends_with(&format!("line-{N}\n")), "{name}: {kept}");
        let dir = pierd.data_root().join("containers").join(&id);
        if name == "local" {
            let logs = dir.join("local-logs");
            assert!(logs.join("container.log.1.gz").is_file());
            assert!(logs.join("container.log.2.gz").is_file());
            assert!(!logs.join("container.log.3.gz").exists());
        } else {
            assert!(dir.join(format!("{id}-json.log.1")).is_file());
            assert!(!dir.join(format!("{id}-json.log.2")).exists());
        }
    }
}

#[test]
fn local_driver_and_log_options() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let out = pierd.docker(&[
        "run",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "busybox",
        "sh",
        "-c",
        "echo out1; echo err1 >&2; sleep 1.2; echo out2",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        pierd
            .docker_ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "loc"])
            .trim(),
        r#"{"Type":"local","Config":{}}"#
    );
    // As Docker: the local driver's file is not part of the API.
    assert_eq!(
        pierd
            .docker_ok(&["inspect", "-f", "{{.LogPath}}", "loc"])
            .trim(),
        ""
    );
    let id = pierd
        .docker_ok(&["inspect", "-f", "{{.Id}}", "loc"])
        .trim()
        .to_string();
    assert!(pierd
        .data_root()
        .join("containers")
        .join(&id)
        .join("local-logs/container.log")
        .is_file());

    let out = pierd.docker(&["logs", "loc"]);
    assert_eq!(out.stdout, "out1\nout2\n", "{out:?}");
    assert_eq!(out.stderr, "err1\n", "{out:?}");
    assert_eq!(pierd.docker_ok(&["logs", "--tail", "1", "loc"]), "out2\n");
    let stamped = pierd.docker_ok(&["logs", "-t", "loc"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 2, "{stamped}");
    let (t1, rest1) = lines[0].split_once(' ').unwrap();
    let (t2, rest2) = lines[1].split_once(' ').unwrap();
    assert_eq!((rest1, rest2), ("out1", "out2"));
    assert!(t1.starts_with("20") && t1.ends_with('Z'), "{t1}");
    assert_eq!(pierd.docker_ok(&["logs", "--since", t2, "loc"]), "out2\n");
    assert_eq!(pierd.docker_ok(&["logs", "--until", t1, "loc"]), "out1\n");
    let out = pierd.docker(&["logs", "-f", "loc"]);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out1\nout2\n", "err1\n")
    );

    // Options are shown as given.
    pierd.docker_ok(&[
        "create",
        "--name",
        "loc2",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=10m",
        "--log-opt",
        "compress=false",
        "busybox",
    ]);
    let config: serde_json::Value = serde_json::from_str(&pierd.docker_ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.LogConfig}}",
        "loc2",
    ]))
    .unwrap();
    assert_eq!(
        config,
        serde_json::json!({"Type": "local", "Config": {"max-size": "10m", "compress": "false"}})
    );

    // Docker's validation at create.
    for (args, message) in [
        (
            &["--log-opt", "x=1"][..],
            "unknown log opt 'x' for json-file log driver",
        ),
        (
            &["--log-driver", "local", "--log-opt", "tag=x"][..],
            "unknown log opt 'tag' for log driver local",
        ),
        (
            &["--log-driver", "nope"][..],
            "logger: no log driver named 'nope' is registered",
        ),
        (&["--log-opt", "max-size=lots"][..], "invalid size: 'lots'"),
    ] {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.push("busybox");
        let out = pierd.docker(&a);
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(out.stderr.contains(message), "{message}: {out:?}");
    }
    // json-file takes Docker's other options.
    pierd.docker_ok(&[
        "create",
        "--log-opt",
        "tag=x",
        "--log-opt",
        "compress=true",
        "--log-opt",
        "labels=a",
        "busybox",
    ]);

    // none: nothing to read.
    let out = pierd.docker(&[
        "run",
        "--name",
        "none1",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "hi\n", "attached output still flows: {out:?}");
    let out = pierd.docker(&["logs", "none1"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "Error response from daemon: configured logging driver does not support reading"
    );
}
