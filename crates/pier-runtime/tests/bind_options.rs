//! Bind mount recursion options as pierd writes them for Docker's mount forms: `rbind`
//! (submounts come along), `bind` (they do not), `ro` (the mount itself read-only) and
//! `rro` (submounts read-only too, mount_setattr with AT_RECURSIVE). Run with every
//! runtime present, so pier-runtime answers as runc does.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

/// A host directory `src` with a tmpfs mounted at `src/sub`; unmounted when dropped.
struct SourceWithSubmount {
    dir: tempfile::TempDir,
}

impl SourceWithSubmount {
    fn new() -> SourceWithSubmount {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        rustix::mount::mount(
            "tmpfs",
            &sub,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        std::fs::write(sub.join("marker"), "submount").unwrap();
        SourceWithSubmount { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SourceWithSubmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(
            self.dir.path().join("sub"),
            rustix::mount::UnmountFlags::DETACH,
        );
    }
}

/// Runs `script` in a container with `src` bound at `/d` with `options`; its exit code
/// and output.
fn run_with_bind(rt: &Runtime, src: &Path, options: &[&str], script: &str) -> (bool, String) {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/d", "type": "bind", "source": src, "options": options,
        }));
    });
    let id = unique_id("bindopt");
    let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
    let _ = rt.output(&["delete", "--force", &id]);
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn recursion_of_binds_and_of_read_only() {
    require_root();
    let src = SourceWithSubmount::new();
    let rro = pier_runtime::mounts::kernel_has_mount_setattr();
    for rt in runtimes() {
        let name = rt.name.clone();
        let s = src.path();
        let (ok, out) = run_with_bind(&rt, s, &["rbind", "rprivate"], "cat /d/sub/marker");
        assert!(
            ok && out == "submount",
            "{name}: rbind brings submounts: {out}"
        );
        let (ok, out) = run_with_bind(&rt, s, &["bind", "rprivate"], "ls -A /d/sub");
        assert!(
            ok && out.is_empty(),
            "{name}: bind leaves submounts out: {out}"
        );
        let (ok, out) = run_with_bind(
            &rt,
            s,
            &["rbind", "ro", "rprivate"],
            "touch /d/sub/w && ! touch /d/top",
        );
        assert!(ok, "{name}: ro alone is not recursive: {out}");
        if rro {
            let (ok, out) = run_with_bind(
                &rt,
                s,
                &["rbind", "ro", "rro", "rprivate"],
                "! touch /d/sub/x && ! touch /d/top && cat /d/sub/marker",
            );
            assert!(
                ok && out.contains("submount"),
                "{name}: rro reaches submounts: {out}"
            );
        }
    }
    assert!(!src.path().join("sub/x").exists());
    assert!(!src.path().join("top").exists());
    if !rro {
        eprintln!("rro: SKIPPED: this kernel has no mount_setattr");
    }
}
