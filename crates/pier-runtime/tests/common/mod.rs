//! Test harness: busybox bundles, runtimes under test, and cleanup.
//!
//! Every scenario runs against pier-runtime and, to prove the test itself, against runc
//! and crun when they are installed and work on this host (`PIER_TEST_REFERENCE=0`
//! turns that off).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const BUSYBOX: &str = "/bin/busybox";

/// A runtime binary under test with its own state root.
pub struct Runtime {
    pub name: String,
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
}

impl Runtime {
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs a command to completion and returns its output, stdin closed. Output goes
    /// through files, not pipes: a detached container keeps the runtime's stdio open,
    /// and waiting for a pipe's end would wait for the container.
    pub fn output(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .unwrap_or_else(|e| panic!("{}: spawn {args:?}: {e}", self.name));
        Output {
            status,
            stdout: read_all(out),
            stderr: read_all(err),
        }
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{}: {args:?} failed ({}): stdout={} stderr={}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    /// Waits until the container's status is `status` (bounded).
    pub fn wait_status(&self, id: &str, status: &str) {
        for _ in 0..500 {
            let out = self.output(&["state", id]);
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                if v["status"] == status {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{}: container {id} never reached {status}", self.name);
    }

    /// Removes every container this runtime still knows (test cleanup).
    pub fn cleanup(&self) {
        let out = self.output(&["list", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.output(&["delete", "--force", id.trim()]);
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn read_all(mut f: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}

fn works(bin: &Path) -> bool {
    let rt = Runtime {
        name: "probe".into(),
        bin: bin.to_path_buf(),
        root: tempfile::tempdir().unwrap(),
    };
    let b = Bundle::new(&["true"]);
    let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("probe")]);
    out.status.success()
}

/// pier-runtime, then runc and crun where installed and working here.
pub fn runtimes() -> Vec<Runtime> {
    let mut bins = vec![(
        "pier-runtime".to_string(),
        PathBuf::from(env!("CARGO_BIN_EXE_pier-runtime")),
    )];
    if std::env::var("PIER_TEST_REFERENCE").as_deref() != Ok("0") {
        for name in ["runc", "crun"] {
            if let Some(path) = which(name) {
                if works(&path) {
                    bins.push((name.to_string(), path));
                } else {
                    eprintln!("note: {name} is installed but cannot run a container on this host; not used as a reference");
                }
            }
        }
    }
    bins.into_iter()
        .map(|(name, bin)| Runtime {
            name,
            bin,
            root: tempfile::tempdir().unwrap(),
        })
        .collect()
}

pub fn pier() -> Runtime {
    Runtime {
        name: "pier-runtime".into(),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_pier-runtime")),
        root: tempfile::tempdir().unwrap(),
    }
}

pub use pier_testsupport::which;

pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "piertest-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bundle: a busybox rootfs and a runc-default config.json with tweaks.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("pier-bundle")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        make_busybox_rootfs(&rootfs);
        let out = Command::new(env!("CARGO_BIN_EXE_pier-runtime"))
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|a| Value::String(a.to_string())).collect();
        let b = Bundle { dir, config };
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn save(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.save();
    }

    /// A new user namespace mapping the container's ids 0-65535 to the host's
    /// 100000-165535, with the rootfs owned accordingly.
    pub fn with_user_namespace(&mut self) {
        let status = Command::new("chown")
            .args(["-R", "-h", "100000:100000"])
            .arg(self.rootfs())
            .status()
            .unwrap();
        assert!(status.success());
        self.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        });
    }
}

pub fn make_busybox_rootfs(rootfs: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("busybox-static is installed");
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
    std::fs::set_permissions(
        rootfs.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every cgroup directory (any hierarchy) whose name contains `needle`.
pub fn cgroups_named(needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hierarchies.flatten() {
        walk(&h.path(), needle, 4, &mut found);
    }
    found
}

fn walk(dir: &Path, needle: &str, depth: u32, found: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(e.path());
            }
            walk(&e.path(), needle, depth - 1, found);
        }
    }
}

/// These tests need real namespaces, cgroups and mounts: they must run as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests must run as root (sudo cargo test)"
    );
}
