//! `pier`'s container commands through pierd, with pierd started by `pier` itself.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp root with a socket, a data root, and whatever pierd `pier` starts there;
/// containers and that pierd go when it is dropped.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let pierd = Path::new(env!("CARGO_BIN_EXE_pier")).with_file_name("pierd");
        let runtime = pierd.with_file_name("pier-runtime");
        assert!(
            pierd.is_file() && runtime.is_file(),
            "build pierd and pier-runtime first (cargo build --workspace)"
        );
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("pier.sock")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
        c.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--data-root")
            .arg(self.dir.path().join("data"))
            .args(args)
            .env("PIER_AUTOSTART", "1")
            .env_remove("PIER_HOST")
            .env_remove("PIER_DATA_ROOT");
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, b"");
        assert!(
            out.status.success(),
            "pier {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn daemon_pid(&self) -> Option<i32> {
        fs::read_to_string(self.dir.path().join("pierd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let Some(pid) = self.daemon_pid() else { return };
        let ids = self.run(&["ps", "-aq"], b"");
        let ids = String::from_utf8_lossy(&ids.stdout).to_string();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.run(&args, b"");
        }
        // SAFETY: kill(2) on the pierd this test had pier start (its pid file).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn rootfs_tar(dir: &Path) -> Option<Vec<u8>> {
    if !Path::new("/bin/busybox").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "busybox-static is missing"
        );
        eprintln!("skipped: /bin/busybox is missing");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    let rootfs = dir.join("rootfs");
    assert!(Command::new("bash")
        .arg(&script)
        .arg(&rootfs)
        .status()
        .unwrap()
        .success());
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &rootfs).unwrap();
    Some(b.into_inner().unwrap())
}

#[test]
fn pier_starts_pierd_and_runs_containers() {
    let s = Setup::new();
    let Some(tar) = rootfs_tar(s.dir.path()) else {
        return;
    };
    let out = s.run(&["import", "-c", "CMD [\"sh\"]", "-", "busybox"], &tar);
    assert!(out.status.success(), "{out:?}");
    assert!(s.daemon_pid().is_none(), "image commands need no daemon");

    // The first container command starts pierd.
    assert_eq!(s.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    let pid = s.daemon_pid().expect("pier started pierd");
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
