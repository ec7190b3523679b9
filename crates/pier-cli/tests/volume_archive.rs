//! `pier volume export|import|clone` through pierd: a volume with owners, modes,
//! xattrs, hardlinks, a sparse file and symlinks goes out as a tar and comes back (and
//! is cloned) the same, byte for byte; a running user of the volume makes export refuse
//! (naming it) unless `--force`; import refuses a volume with content.

use std::fs::File;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod common;

use common::Setup;

fn mountpoint(s: &Setup, volume: &str) -> PathBuf {
    PathBuf::from(
        s.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume])
            .trim(),
    )
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// Fills the volume's directory from the host: everything an archive must keep.
fn fill(dir: &Path) {
    let chown = |p: &Path, uid, gid| std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    let chmod = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chown(dir, 999, 999);
    chmod(dir, 0o700);
    std::fs::create_dir(dir.join("db")).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 253) as u8).collect();
    std::fs::write(dir.join("db/table"), &data).unwrap();
    chown(&dir.join("db/table"), 999, 998);
    chmod(&dir.join("db/table"), 0o600);
    set_xattr(&dir.join("db/table"), "user.checksum", b"abc");
    std::fs::hard_link(dir.join("db/table"), dir.join("db/table.link")).unwrap();
    symlink("db/table", dir.join("current")).unwrap();
    let sparse = File::create(dir.join("db/sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"tail", (64 << 20) - 4).unwrap();
}

#[test]
fn export_import_and_clone_round_trip_a_volume() {
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    let probe = tempfile::tempdir_in(s.dir.path()).unwrap();
    if rustix::fs::setxattr(
        probe.path(),
        "user.probe",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_err()
    {
        eprintln!(
            "skipped: no user xattrs on the filesystem of {}",
            s.dir.path().display()
        );
        return;
    }
    drop(probe);

    s.ok(&["volume", "create", "src"]);
    let src = mountpoint(&s, "src");
    fill(&src);
    // A container writes too, as the volume's owner would.
    s.ok(&[
        "run",
        "--rm",
        "-v",
        "src:/data",
        "busybox",
        "sh",
        "-c",
        "echo from-a-container > /data/note && chown 999:999 /data/note",
    ]);

    // Export to stdout and with -o: the same bytes.
    let out = s.run(&["volume", "export", "src"], b"");
    assert!(out.status.success(), "{out:?}");
    let tar = out.stdout;
    assert!(
        tar.len() < 8 << 20,
        "the sparse file's hole is not in the tar: {} bytes",
        tar.len()
    );
    let file = s.path("backup.tar");
    s.ok(&["volume", "export", "-o", file.to_str().unwrap(), "src"]);
    assert_eq!(std::fs::read(&file).unwrap(), tar);

    // Import into a new volume: made, and the same tree.
    let out = s.run(&["volume", "import", "restored"], &tar);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "restored\n");
    let restored = mountpoint(&s, "restored");
    pier_testsupport::tree::assert_same_tree(&src, &restored);
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&restored.join("db/table")),
        ino(&restored.join("db/table.link"))
    );
    assert!(
        std::fs::metadata(restored.join("db/sparse"))
            .unwrap()
            .blocks()
            < 1024
    );
    let note = s.ok(&[
        "run",
        "--rm",
        "-v",
        "restored:/data",
        "busybox",
        "cat",
        "/data/note",
    ]);
    assert_eq!(note, "from-a-container\n");

    // Import into an empty existing volume (-i) works; into one with content, refused.
    s.ok(&["volume", "create", "empty"]);
    s.ok(&["volume", "import", "-i", file.to_str().unwrap(), "empty"]);
    pier_testsupport::tree::assert_same_tree(&src, &mountpoint(&s, "empty"));
    let out = s.run(&["volume", "import", "restored"], &tar);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("volume is not empty"), "{stderr}");

    // Clone: a new volume, the same tree.
    assert_eq!(s.ok(&["volume", "clone", "src", "copy"]), "copy\n");
    pier_testsupport::tree::assert_same_tree(&src, &mountpoint(&s, "copy"));
    let out = s.run(&["volume", "clone", "src", "copy"], b"");
    assert!(
        !out.status.success(),
        "a clone into a volume with content is refused"
    );

    // A bad archive: refused, and the volume it would have made is not left behind.
    let out = s.run(&["volume", "import", "broken"], b"this is not a tar archive at all, but long enough to look like a header block? no: it is far too short");
    assert!(!out.status.success());
    let names = s.ok(&["volume", "ls", "-q"]);
    assert!(!names.lines().any(|n| n == "broken"), "{names}");

    // A running container writes to src: export refuses, naming it, unless --force.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "-v",
        "src:/data",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = s.run(&["volume", "export", "src"], b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by running container(s) writer"),
        "{stderr}"
    );
    let out = s.run(&["volume", "export", "--force", "src"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.len(), tar.len());
    let out = s.run(&["volume", "clone", "src", "copy2"], b"");
    assert!(!out.status.success());
    s.ok(&["rm", "-f", "writer"]);

    for v in ["src", "restored", "empty", "copy"] {
        s.ok(&["volume", "rm", v]);
    }
}
