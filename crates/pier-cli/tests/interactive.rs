//! `pier exec`, `pier attach`, and `-i`/`-t` of `run`/`start`, against a pierd that
//! `pier` starts; terminal sessions run on a real pty that the test holds the master
//! of (its size set there, SIGWINCH sent to `pier` as a terminal would).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::termios::{self, LocalModes, Winsize};

mod common;

use common::{kill, text, Setup};

/// `pier` on the slave side of a fresh pty (stdin, stdout, stderr), its output
/// collected from the master.
struct Tty {
    master: File,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Tty {
    fn spawn(s: &Setup, args: &[&str], rows: u16, cols: u16) -> Tty {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave: OwnedFd = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap()
            .into();
        set_size(&master, rows, cols);
        let mut cmd = s.cmd(args);
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn().unwrap();
        drop(cmd);
        let master = File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut from = master.try_clone().unwrap();
        let sink = output.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once no one holds the slave: the end.
            while let Ok(n @ 1..) = from.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Tty {
            master,
            child,
            output,
            reader: Some(reader),
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).to_string()
    }

    /// Waits (up to 30 s) for `needle` in the output.
    fn expect(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.output().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                self.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// A new window size, announced as a terminal does.
    fn resize(&self, rows: u16, cols: u16) {
        set_size(&self.master, rows, cols);
        kill(self.child.id(), libc::SIGWINCH);
    }

    /// The slave's local modes now (read through the master).
    fn local_modes(&self) -> LocalModes {
        termios::tcgetattr(&self.master).unwrap().local_modes
    }

    /// Waits (up to 60 s, then kills) for `pier` to end: its exit code and output.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let st = self.child.wait().unwrap();
                eprintln!("killed after 60 s; output: {:?}", self.output());
                break st;
            }
            thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status.code(), self.output())
    }
}

fn set_size(fd: impl AsFd, rows: u16, cols: u16) {
    termios::tcsetwinsize(
        fd,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
}

#[test]
fn exec_and_attach_without_a_terminal() {
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    s.ok(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]);

    let out = s.run(&["exec", "c1", "sh", "-c", "exit 3"], b"");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = s.run(&["exec", "c1", "echo", "hi"], b"");
    assert_eq!(text(&out), ("hi\n".into(), String::new()));
    assert_eq!(out.status.code(), Some(0));

    // Docker's message, on stdout (the daemon writes it into the stream), and 127.
    let out = s.run(&["exec", "c1", "nosuch"], b"");
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert_eq!(
        text(&out).0,
        "OCI runtime exec failed: exec failed: unable to start container process: \
         exec: \"nosuch\": executable file not found in $PATH: unknown\r\n"
    );
    let out = s.run(&["exec", "c1", "/etc"], b"");
    assert_eq!(out.status.code(), Some(126), "{out:?}");

    // -i: stdin goes in, its EOF ends `cat`.
    let out = s.run(&["exec", "-i", "c1", "cat"], b"through stdin\n");
    assert_eq!(text(&out).0, "through stdin\n");
    assert_eq!(out.status.code(), Some(0));
    // Without -i, stdin is not read.
    let out = s.run(&["exec", "c1", "cat"], b"not read\n");
    assert_eq!(text(&out).0, "");

    let out = s.run(
        &[
            "exec",
            "-e",
            "A=1",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "c1",
            "sh",
            "-c",
            "echo $A $(id -u) $PWD",
        ],
        b"",
    );
    assert_eq!(text(&out).0, "1 1000 /tmp\n", "{out:?}");
    let env_file = s.dir.path().join("env");
    fs::write(&env_file, "# comment\nB=2\n").unwrap();
    let out = s.run(
        &[
            "exec",
            "--env-file",
            env_file.to_str().unwrap(),
            "c1",
            "sh",
            "-c",
            "echo $B",
        ],
        b"",
    );
    assert_eq!(text(&out).0, "2\n", "{out:?}");

    // -d: nothing printed, the command runs on.
    assert_eq!(
        s.ok(&["exec", "-d", "c1", "sh", "-c", "echo bg > /tmp/f"]),
        ""
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.run(&["exec", "c1", "cat", "/tmp/f"], b"").stdout != b"bg\n" {
        assert!(Instant::now() < deadline, "exec -d did not run");
        thread::sleep(Duration::from_millis(50));
    }

    let out = s.run(&["exec", "nosuch", "true"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "Error response from daemon: No such container: nosuch\n"
    );
    // A terminal for a piped stdin: docker's refusal.
    let out = s.run(&["exec", "-it", "c1", "true"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).1, "the input device is not a TTY\n");
    let out = s.run(&["run", "-it", "--rm", "busybox", "true"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).1, "the input device is not a TTY\n");

    // attach: the output from now on, then the container's exit code.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "a1",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo late; echo lateerr >&2; exit 7",
    ]);
    let out = s.run(&["attach", "a1"], b"");
    assert_eq!(text(&out), ("late\n".into(), "lateerr\n".into()));
    assert_eq!(out.status.code(), Some(7));
    let out = s.run(&["attach", "a1"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "You cannot attach to a stopped container, start it first\n"
    );

    // attach with stdin (the container was started with -i).
    s.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "a2",
        "busybox",
        "sh",
        "-c",
        "read x; echo got $x; exit 2",
    ]);
    let out = s.run(&["attach", "a2"], b"hello\n");
    assert_eq!(text(&out).0, "got hello\n");
    assert_eq!(out.status.code(), Some(2));

    // --sig-proxy (the default): a SIGTERM to `pier attach` reaches the container.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "a3",
        "busybox",
        "sh",
        "-c",
        "trap 'echo TERM; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    // Attach after "ready": attach shows only what comes after it connects.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !s.ok(&["logs", "a3"]).contains("ready") {
        assert!(std::time::Instant::now() < deadline, "a3 never got ready");
        thread::sleep(Duration::from_millis(50));
    }
    let child = s
        .cmd(&["attach", "a3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    kill(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out).0, "TERM\n", "{out:?}");
    assert_eq!(out.status.code(), Some(9));

    // --sig-proxy=false: the signal is pier's own; the container runs on.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "a4",
        "busybox",
        "sh",
        "-c",
        "trap 'echo TERM; exit 9' TERM; while :; do sleep 0.1; done",
    ]);
    let child = s
        .cmd(&["attach", "--sig-proxy=false", "a4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    kill(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None, "{out:?}");
    assert_eq!(text(&out).0, "");
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.State.Running}}", "a4"]),
        "true\n"
    );

    // run proxies signals too (no terminal).
    let child = s
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo INT; exit 12' INT; while :; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(2000));
    kill(child.id(), libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out).0, "INT\n", "{out:?}");
    assert_eq!(out.status.code(), Some(12));

    // start -a / -ai.
    s.ok(&[
        "create",
        "--name",
        "s1",
        "busybox",
        "sh",
        "-c",
        "echo started; exit 4",
    ]);
    let out = s.run(&["start", "-a", "s1"], b"");
    assert_eq!(text(&out).0, "started\n");
    assert_eq!(out.status.code(), Some(4));
    s.ok(&[
        "create",
        "-i",
        "--name",
        "s2",
        "busybox",
        "sh",
        "-c",
        "read x; echo $x; exit 5",
    ]);
    let out = s.run(&["start", "-ai", "s2"], b"via start\n");
    assert_eq!(text(&out).0, "via start\n");
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn terminal_sessions() {
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    s.ok(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]);
    let (rows, cols) = (33, 111);

    let tty = Tty::spawn(&s, &["exec", "-it", "c1", "tty"], rows, cols);
    let (code, out) = tty.finish();
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");

    // The initial size travels with the exec.
    let tty = Tty::spawn(&s, &["exec", "-it", "c1", "stty", "size"], rows, cols);
    let (code, out) = tty.finish();
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.contains("33 111\r\n"), "{out:?}");

    // Exit codes come through a terminal session too.
    let tty = Tty::spawn(&s, &["exec", "-t", "c1", "sh", "-c", "exit 6"], rows, cols);
    assert_eq!(tty.finish().0, Some(6));

    // SIGWINCH: the new size reaches the process's terminal; input goes in raw (the
    // CR is the container terminal's to translate), and the terminal is restored.
    let mut tty = Tty::spawn(
        &s,
        &[
            "exec",
            "-it",
            "c1",
            "sh",
            "-c",
            "stty size; read x; stty size; echo \"x=$x\"",
        ],
        rows,
        cols,
    );
    tty.expect("33 111");
    assert!(
        !tty.local_modes().contains(LocalModes::ICANON),
        "the terminal is not raw while attached"
    );
    tty.resize(40, 120);
    thread::sleep(Duration::from_millis(500));
    tty.send(b"typed\r");
    tty.expect("x=typed");
    let (code, out) = tty.finish();
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.contains("40 120\r\n"), "{out:?}");

    // Detach keys: ctrl-p ctrl-q ends the session (docker's message and status for
    // exec), the process runs on, and the terminal is back to cooked mode.
    let mut tty = Tty::spawn(&s, &["exec", "-it", "c1", "cat"], rows, cols);
    tty.send(b"abc\r");
    tty.expect("abc\r\nabc\r\n");
    let master = tty.master.try_clone().unwrap();
    tty.send(&[16, 17]);
    let (code, out) = tty.finish();
    assert_eq!(code, Some(1), "{out:?}");
    assert!(out.contains("read escape sequence"), "{out:?}");
    let modes = termios::tcgetattr(&master).unwrap().local_modes;
    assert!(modes.contains(LocalModes::ICANON | LocalModes::ECHO));
    // Custom keys.
    let mut tty = Tty::spawn(
        &s,
        &["exec", "-it", "--detach-keys", "ctrl-x", "c1", "cat"],
        rows,
        cols,
    );
    tty.send(b"abc\r");
    tty.expect("abc");
    tty.send(&[24]);
    assert_eq!(tty.finish().0, Some(1));

    // run -it: the container's terminal, its size, its exit code.
    let tty = Tty::spawn(
        &s,
        &[
            "run",
            "-it",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "tty; stty size; exit 5",
        ],
        rows,
        cols,
    );
    let (code, out) = tty.finish();
    assert!(out.contains("/dev/pts/0\r\n33 111\r\n"), "{out:?}");
    assert_eq!(code, Some(5), "{out:?}");

    // ... and its size follows ours (POST /containers/{id}/resize on SIGWINCH).
    let tty = Tty::spawn(
        &s,
        &[
            "run",
            "-it",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "stty size; sleep 2; stty size",
        ],
        rows,
        cols,
    );
    tty.expect("33 111\r\n");
    tty.resize(40, 120);
    let (code, out) = tty.finish();
    assert!(out.contains("33 111\r\n40 120\r\n"), "{out:?}");
    assert_eq!(code, Some(0), "{out:?}");
}

#[test]
fn run_terminal_input_detach_and_attach() {
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    let (rows, cols) = (33, 111);
    // run -it, detached with the keys: pier exits 0, the container runs on.
    let script = "while read x; do echo \"got $x\"; [ \"$x\" = bye ] && exit 8; done";
    let mut tty = Tty::spawn(
        &s,
        &["run", "-it", "--name", "r2", "busybox", "sh", "-c", script],
        rows,
        cols,
    );
    tty.send(b"hi\r");
    tty.expect("got hi");
    tty.send(&[16, 17]);
    let (code, out) = tty.finish();
    assert_eq!(code, Some(0), "{out:?}");
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.State.Running}}", "r2"]),
        "true\n"
    );

    // attach -it to it: input reaches the shell; its exit ends the attach.
    let mut tty = Tty::spawn(&s, &["attach", "r2"], rows, cols);
    thread::sleep(Duration::from_millis(500));
    tty.send(b"bye\r");
    let (code, out) = tty.finish();
    assert_eq!(code, Some(8), "{out:?}");
}
