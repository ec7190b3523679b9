//! The `pier` image commands, run as a user runs them: the real binary, the pierd it
//! starts on its own socket (`PIER_AUTOSTART`), a real data root, real overlay
//! snapshots.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

struct Pier {
    root: tempfile::TempDir,
}

impl Pier {
    fn new() -> Pier {
        Pier {
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// `pier` on this data root, with pierd (started on the first command) on a
    /// socket of its own under `run/`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.root.path().join("run/pier.sock").display()
            ))
            .arg("--data-root")
            .arg(self.root.path())
            .args(args);
        c.env("PIER_AUTOSTART", "1")
            .env_remove("PIER_HOST")
            .env_remove("PIER_DATA_ROOT");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pier {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Pier {
    /// Stops the pierd that `pier` started for this root (by its pid file).
    fn drop(&mut self) {
        let pid_file = self.root.path().join("run/pierd.pid");
        let Some(pid) = fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            return;
        };
        // SAFETY: kill(2) has no memory effects; the pid is the pierd this test had
        // pier start.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(dir.join("etc/hostname"), "pier\n").unwrap();
    fs::write(dir.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(dir.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("tool", dir.join("bin/link")).unwrap();
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn import_list_tag_inspect_history_rmi() {
    let pier = Pier::new();
    let src = tempfile::tempdir().unwrap();
    rootfs(src.path());
    let id = pier.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/tool\"]",
        "-c",
        "ENV A=1",
        src.path().to_str().unwrap(),
        "example/tool:1.0",
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let short = &id[7..19];

    let table = pier.ok(&["images"]);
    let rows = lines(&table);
    // The CREATED column's width depends on the text ("Less than a second ago").
    assert!(
        rows[0].starts_with("REPOSITORY     TAG       IMAGE ID       CREATED    "),
        "{table}"
    );
    let header: Vec<&str> = rows[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert!(rows[1].starts_with(&format!("example/tool   1.0       {short}   ")));

    pier.ok(&["tag", "example/tool:1.0", "localhost:5000/tool"]);
    assert_eq!(
        pier.ok(&["images", "-q"]),
        format!("{short}\n"),
        "one image"
    );
    let names = pier.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(names, "example/tool:1.0\nlocalhost:5000/tool:latest\n");
    let filtered = pier.ok(&["images", "-f", "reference=example/*"]);
    assert_eq!(lines(&filtered).len(), 2, "{filtered}");

    let inspect: serde_json::Value =
        serde_json::from_str(&pier.ok(&["image", "inspect", "example/tool:1.0"])).unwrap();
    assert_eq!(inspect[0]["Id"], id);
    assert_eq!(
        inspect[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/tool"])
    );
    assert_eq!(inspect[0]["Config"]["Env"], serde_json::json!(["A=1"]));
    let upper = inspect[0]["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap();
    assert_eq!(
        fs::read_link(Path::new(upper).join("bin/link")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        pier.ok(&["image", "inspect", "-f", "{{.Config.Cmd}}", short]),
        "[/bin/tool]\n"
    );

    let history = pier.ok(&["history", "--no-trunc", "example/tool:1.0"]);
    let rows = lines(&history);
    assert!(rows[0].starts_with("IMAGE "), "{history}");
    assert!(rows[1].starts_with(id), "{history}");

    // Unknown image: Docker's message, exit 1, other names still handled.
    let out = pier.run(&["rmi", "nothere", "localhost:5000/tool"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error response from daemon: No such image: nothere:latest\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Untagged: localhost:5000/tool:latest\n"
    );
    let removed = pier.ok(&["rmi", short]);
    let rows = lines(&removed);
    assert_eq!(rows[0], "Untagged: example/tool:1.0");
    assert_eq!(rows[1], format!("Deleted: {id}"));
    assert_eq!(rows.len(), 3, "the image and its one layer: {removed}");
    assert_eq!(
        lines(&pier.ok(&["images"])).len(),
        1,
        "only the header is left"
    );

    // Bad input: a clear error, nothing recorded.
    let out = pier.run(&["import", src.path().to_str().unwrap(), "Bad:Name"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid reference format"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pier.run(&["import", "-c", "FROB x", src.path().to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error response from daemon: frob is not a valid change command\n"
    );
    assert_eq!(lines(&pier.ok(&["images"])).len(), 1);
}

#[test]
fn save_load_through_pipes_and_prune() {
    let a = Pier::new();
    let b = Pier::new();
    let src = tempfile::tempdir().unwrap();
    rootfs(src.path());
    let mut tarball = tar::Builder::new(Vec::new());
    tarball.append_dir_all(".", src.path()).unwrap();
    let tarball = tarball.into_inner().unwrap();
    let out = a.with_stdin(&["import", "-", "app:1"], &tarball);
    assert!(out.status.success(), "{out:?}");
    let out = a.with_stdin(&["import", "-"], &tarball);
    assert!(out.status.success(), "{out:?}");
    let dangling = String::from_utf8(out.stdout).unwrap();

    let saved = a.run(&["save", "app:1", dangling.trim()]);
    assert!(saved.status.success(), "{saved:?}");
    let loaded = b.with_stdin(&["load"], &saved.stdout);
    assert!(loaded.status.success(), "{loaded:?}");
    let loaded = String::from_utf8(loaded.stdout).unwrap();
    assert!(loaded.contains("Loaded image: app:1\n"), "{loaded}");
    assert!(
        loaded.contains(&format!("Loaded image ID: {}", dangling.trim())),
        "{loaded}"
    );
    assert_eq!(a.ok(&["images", "-q"]), b.ok(&["images", "-q"]));

    // `save -o`: a file readable like any other, loadable with -i.
    let file = a.root.path().join("out.tar");
    a.ok(&["save", "-o", file.to_str().unwrap(), "app:1"]);
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let c = Pier::new();
    assert_eq!(
        c.ok(&["load", "-i", file.to_str().unwrap()]),
        "Loaded image: app:1\n"
    );
    // A failed save leaves no file behind.
    let bad = a.root.path().join("bad.tar");
    assert!(!a
        .run(&["save", "-o", bad.to_str().unwrap(), "nope"])
        .status
        .success());
    assert!(!bad.exists());

    // Prune asks first; "n" keeps everything.
    let out = b.with_stdin(&["image", "prune"], b"n\n");
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("WARNING! This will remove all dangling images.\nAre you sure"));
    assert_eq!(lines(&b.ok(&["images", "-q"])).len(), 2);
    let pruned = b.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.starts_with("Deleted Images:\ndeleted: sha256:"),
        "{pruned}"
    );
    assert_eq!(lines(&b.ok(&["images"])).len(), 2, "app:1 stays");
    let pruned = b.ok(&["image", "prune", "-a", "-f"]);
    assert!(pruned.contains("untagged: app:1\n"), "{pruned}");
    assert_eq!(
        b.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    let snapshots = b.root.path().join("image/snapshots/snapshots");
    assert_eq!(
        fs::read_dir(&snapshots).unwrap().count(),
        0,
        "no layer left on disk"
    );
}
