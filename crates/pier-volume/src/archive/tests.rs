//! Export, import and clone on real trees: owners, modes, xattrs, hardlinks, sparse
//! files, symlinks, devices; and archives that try to write outside the volume.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::*;

/// The user.* xattr support of the filesystem under `dir`, or why not.
fn user_xattrs_work(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    std::fs::write(&probe, b"").unwrap();
    let ok = rustix::fs::setxattr(&probe, "user.probe", b"1", XattrFlags::empty()).is_ok();
    std::fs::remove_file(&probe).unwrap();
    ok
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).unwrap();
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with everything an archive must keep.
fn make_tree(root: &Path) {
    chown(root, 1000, 1001);
    chmod(root, 0o750);
    set_xattr(root, "user.root", b"top");

    let d = root.join("d");
    std::fs::create_dir(&d).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("f"), &data).unwrap();
    chown(&d.join("f"), 1234, 5678);
    chmod(&d.join("f"), 0o640);
    set_xattr(&d.join("f"), "user.a", b"b");
    set_xattr(&d.join("f"), "user.bin", &[0, 1, 255]);
    std::fs::hard_link(d.join("f"), d.join("f2")).unwrap();
    std::fs::hard_link(d.join("f"), root.join("h")).unwrap();
    chown(&d, 1001, 1002);
    chmod(&d, 0o711);
    set_xattr(&d, "user.dir", b"1");

    // Set-uid survives: the owner is set before the mode.
    std::fs::write(root.join("suid"), b"#!/bin/sh\n").unwrap();
    chown(&root.join("suid"), 1000, 1000);
    chmod(&root.join("suid"), 0o4755);

    // 64 MiB with two 4 KiB islands of data.
    let sparse = File::create(root.join("sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    sparse.write_all_at(&[7u8; 4096], 0).unwrap();
    sparse.write_all_at(&[9u8; 4096], 32 << 20).unwrap();
    drop(sparse);

    symlink("d/f", root.join("link")).unwrap();
    symlink("/etc/passwd", root.join("abs-link")).unwrap();
    chown(&root.join("link"), 1000, 1000);

    std::fs::create_dir(root.join("empty")).unwrap();
    std::fs::write(root.join("empty-file"), b"").unwrap();
    let long = root.join("l".repeat(120));
    std::fs::create_dir(&long).unwrap();
    std::fs::write(long.join("n".repeat(150)), b"long name").unwrap();

    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o620),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    // Tar has no sockets: left out.
    drop(std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap());
}

fn check_copy(source: &Path, copy: &Path) {
    // The socket is left out of archives (and of snapshots).
    pier_testsupport::tree::assert_same_tree(source, copy);
    // Hardlinks are one inode again.
    let ino = |p: &str| std::fs::metadata(copy.join(p)).unwrap().ino();
    assert_eq!(ino("d/f"), ino("d/f2"));
    assert_eq!(ino("d/f"), ino("h"));
    assert_eq!(std::fs::metadata(copy.join("d/f")).unwrap().nlink(), 3);
    // The sparse file keeps its holes: 8 KiB of data, not 64 MiB.
    let sparse = std::fs::metadata(copy.join("sparse")).unwrap();
    assert_eq!(sparse.len(), 64 << 20);
    assert!(
        sparse.blocks() * 512 <= 256 << 10,
        "{} blocks",
        sparse.blocks()
    );
}

fn two_dirs() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    if !user_xattrs_work(dir.path()) {
        eprintln!(
            "skipped: the filesystem of {} has no user xattrs",
            dir.path().display()
        );
        return None;
    }
    let source = dir.path().join("source");
    let target = dir.path().join("target");
    std::fs::create_dir(&source).unwrap();
    std::fs::create_dir(&target).unwrap();
    make_tree(&source);
    Some((dir, source, target))
}

#[test]
fn export_then_import_is_the_same_tree() {
    let Some((_dir, source, target)) = two_dirs() else {
        return;
    };
    let mut tar = Vec::new();
    export(&source, &mut tar).unwrap();
    // The sparse file's holes are not in the stream.
    assert!(tar.len() < 2 << 20, "{} bytes", tar.len());
    import(&target, tar.as_slice()).unwrap();
    check_copy(&source, &target);
}

#[test]
fn clone_is_the_same_tree() {
    let Some((_dir, source, target)) = two_dirs() else {
        return;
    };
    clone_tree(&source, &target).unwrap();
    check_copy(&source, &target);
}

#[test]
fn gnu_tars_archive_imports_the_same_tree() {
    let Some((_dir, source, target)) = two_dirs() else {
        return;
    };
    if pier_testsupport::which("tar").is_none() {
        eprintln!("skipped: no tar");
        return;
    }
    let out = std::process::Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--sparse",
            "--numeric-owner",
            "-cpf",
            "-",
            "-C",
        ])
        .arg(&source)
        .arg(".")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    import(&target, out.stdout.as_slice()).unwrap();
    check_copy(&source, &target);
}

#[test]
fn import_refuses_a_volume_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("there"), b"x").unwrap();
    let err = import(dir.path(), &[0u8; 1024][..]).unwrap_err();
    assert!(matches!(err, VolumeError::Conflict(_)), "{err:?}");
    assert_eq!(std::fs::read(dir.path().join("there")).unwrap(), b"x");
}

/// A tar entry written header by header, so that names tar::Builder refuses (with `..`,
/// absolute) can be made.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    let gnu = header.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(data.len() as u64);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0u8; 1024]);
}

#[test]
fn import_refuses_paths_that_leave_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&volume).unwrap();
    std::fs::create_dir(&outside).unwrap();
    chmod(&volume, 0o755);
    let outside_str = outside.to_str().unwrap();
    let evil_file = format!("{outside_str}/pwned");

    type Case = (
        &'static str,
        Vec<(String, tar::EntryType, String)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "dot-dot",
            vec![(
                "../outside/pwned".into(),
                tar::EntryType::Regular,
                String::new(),
            )],
            "has a '..' component",
        ),
        (
            "absolute",
            vec![(evil_file.clone(), tar::EntryType::Regular, String::new())],
            "is an absolute path",
        ),
        (
            "through a symlink",
            vec![
                ("ok".into(), tar::EntryType::Regular, String::new()),
                (
                    "evil".into(),
                    tar::EntryType::Symlink,
                    outside_str.to_string(),
                ),
                ("evil/pwned".into(), tar::EntryType::Regular, String::new()),
            ],
            "is not a directory (a symlink or a file)",
        ),
        (
            "through a relative symlink",
            vec![
                ("evil".into(), tar::EntryType::Symlink, "../outside".into()),
                ("evil/pwned".into(), tar::EntryType::Regular, String::new()),
            ],
            "is not a directory (a symlink or a file)",
        ),
        (
            "hardlink out",
            vec![("h".into(), tar::EntryType::Link, "../outside/secret".into())],
            "has a '..' component",
        ),
        (
            "hardlink through a symlink",
            vec![
                (
                    "evil".into(),
                    tar::EntryType::Symlink,
                    outside_str.to_string(),
                ),
                ("h".into(), tar::EntryType::Link, "evil/secret".into()),
            ],
            "is not a directory (a symlink or a file)",
        ),
    ];
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    for (what, entries, message) in cases {
        let mut tar = Vec::new();
        for (name, kind, link) in &entries {
            raw_entry(&mut tar, name, *kind, link, b"evil");
        }
        end(&mut tar);
        let err = import(&volume, tar.as_slice()).unwrap_err();
        assert!(
            matches!(err, VolumeError::InvalidParameter(_)),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains(message), "{what}: {err}");
        assert!(!Path::new(&evil_file).exists(), "{what}");
        // Whole or nothing: the volume is empty again, with its own mode.
        assert!(is_empty(&volume).unwrap(), "{what}");
        assert_eq!(std::fs::metadata(&volume).unwrap().mode() & 0o7777, 0o755);
    }
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
    assert_eq!(
        std::fs::metadata(outside.join("secret")).unwrap().nlink(),
        1
    );
}

#[test]
fn a_broken_stream_leaves_the_volume_empty() {
    let Some((_dir, source, target)) = two_dirs() else {
        return;
    };
    let mut tar = Vec::new();
    export(&source, &mut tar).unwrap();
    let cut = &tar[..tar.len() / 2];
    let err = import(&target, cut).unwrap_err();
    assert!(
        matches!(
            err,
            VolumeError::InvalidParameter(_) | VolumeError::Io { .. }
        ),
        "{err:?}"
    );
    assert!(is_empty(&target).unwrap());
}

#[test]
fn pax_sparse_map_past_u64_is_an_error_not_a_panic() {
    // One segment at an offset a zero block would carry past u64::MAX.
    let mut map = format!("1\n{}\n4096\n", u64::MAX - 10).into_bytes();
    map.resize(512, 0);
    map.extend(vec![0u8; 4096]);
    let file = tempfile::tempfile().expect("temp file");
    let result = write_pax_sparse(&mut std::io::Cursor::new(map), &file, 100);
    assert!(result.is_err(), "a sparse map past u64 must be refused");
}
