//! Tests of `diff_upper` (round trip through `apply_layer`) and `import_rootfs`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use pier_image::content::ContentStore;
use pier_image::diff::{diff_upper, import_rootfs};
use pier_image::digest::Digest;
use pier_image::image::{media_types, ImageConfig, ImageStore, ManifestKind};
use pier_image::layer::apply_layer;
use pier_image::reference::Reference;
use rustix::fs::{FileType, Mode, XattrFlags, CWD};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Builds an upper dir; returns whether the user xattr could be set.
fn make_upper(u: &Path) -> bool {
    fs::create_dir(u.join("etc")).unwrap();
    fs::write(u.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::set_permissions(u.join("etc/passwd"), fs::Permissions::from_mode(0o640)).unwrap();
    let f = fs::File::options()
        .write(true)
        .open(u.join("etc/passwd"))
        .unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        .unwrap();
    drop(f);
    fs::create_dir(u.join("bin")).unwrap();
    fs::write(u.join("bin/busybox"), vec![7u8; 3000]).unwrap();
    fs::set_permissions(u.join("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(u.join("bin/busybox"), u.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("../etc/passwd", u.join("bin/pw")).unwrap();
    rustix::fs::mknodat(
        CWD,
        u.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    fs::create_dir_all(u.join("opq/sub")).unwrap();
    fs::write(u.join("opq/keep"), b"k").unwrap();
    // A long path (GNU long-name entry).
    let long = "d".repeat(120);
    fs::create_dir(u.join(&long)).unwrap();
    fs::write(u.join(&long).join("f"), b"long").unwrap();
    let user_xattr = rustix::fs::setxattr(
        u.join("etc/passwd"),
        "user.pier",
        b"v\0bin",
        XattrFlags::empty(),
    )
    .is_ok();
    if is_root() {
        rustix::fs::mknodat(
            CWD,
            u.join("etc/gone"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        rustix::fs::mknodat(
            CWD,
            u.join("null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        rustix::fs::setxattr(
            u.join("opq"),
            "trusted.overlay.opaque",
            b"y",
            XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::setxattr(
            u.join("opq/keep"),
            "trusted.overlay.origin",
            b"forged",
            XattrFlags::empty(),
        )
        .unwrap();
    }
    user_xattr
}

fn entry_names(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, Vec<String>)> {
    let mut ar = tar::Archive::new(tar_bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let kind = e.header().entry_type();
            let xattrs = match e.pax_extensions().unwrap() {
                Some(exts) => exts
                    .map(|x| x.unwrap().key().unwrap().to_string())
                    .collect(),
                None => Vec::new(),
            };
            (path, kind, xattrs)
        })
        .collect()
}

#[test]
fn diff_round_trips_through_apply_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).unwrap();
    let user_xattr = make_upper(&upper);

    let mut tar_bytes = Vec::new();
    let stats = diff_upper(&upper, &mut tar_bytes).unwrap();
    assert_eq!(stats.diff_id, Digest::sha256(&tar_bytes));

    // Deterministic.
    let mut again = Vec::new();
    assert_eq!(diff_upper(&upper, &mut again).unwrap(), stats);
    assert_eq!(again, tar_bytes);

    // Order: sorted, parents before children; markers and xattrs as expected.
    let entries = entry_names(&tar_bytes);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| x.trim_end_matches('/') == n)
            .unwrap_or_else(|| panic!("{n} missing from {names:?}"))
    };
    assert!(pos("bin") < pos("bin/busybox"));
    assert!(pos("bin/busybox") < pos("bin/pw"));
    assert!(pos("bin/pw") < pos("bin/sh"));
    assert!(pos("bin/sh") < pos("etc"));
    assert!(pos("opq") < pos("opq/keep"));
    assert_eq!(entries[pos("bin/sh")].1, tar::EntryType::Link);
    assert_eq!(entries[pos("bin/pw")].1, tar::EntryType::Symlink);
    assert_eq!(entries[pos("fifo")].1, tar::EntryType::Fifo);
    if user_xattr {
        assert_eq!(entries[pos("etc/passwd")].2, vec!["SCHILY.xattr.user.pier"]);
    }
    if is_root() {
        assert!(pos("etc/.wh.gone") > pos("etc"));
        assert_eq!(pos("opq/.wh..wh..opq"), pos("opq") + 1);
        assert!(
            entries[pos("opq/keep")].2.is_empty(),
            "overlay xattr leaked"
        );
        assert_eq!(entries[pos("null")].1, tar::EntryType::Char);
    }
    assert_eq!(stats.files, entries.len() as u64);

    // Apply into an empty dir.
    let target = tmp.path().join("target");
    fs::create_dir(&target).unwrap();
    // Apply in a later second than the upper dir was made, so that metadata the applier
    // fails to carry over (e.g. a whiteout's mtime) shows in the re-diff below.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let applied = apply_layer(&tar_bytes[..], &target, None).unwrap();
    assert_eq!(applied.diff_id, stats.diff_id);
    assert_eq!(applied.files, stats.files);

    let t = &target;
    assert_eq!(
        fs::read(t.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    let pw = fs::symlink_metadata(t.join("etc/passwd")).unwrap();
    assert_eq!(pw.mode() & 0o7777, 0o640);
    assert_eq!(pw.mtime(), 1_600_000_000);
    if user_xattr {
        assert_eq!(
            lgetxattr(&t.join("etc/passwd"), "user.pier").as_deref(),
            Some(&b"v\0bin"[..])
        );
    }
    let bb = fs::symlink_metadata(t.join("bin/busybox")).unwrap();
    assert_eq!(bb.mode() & 0o7777, 0o4755);
    assert_eq!(bb.len(), 3000);
    assert_eq!(
        fs::symlink_metadata(t.join("bin/sh")).unwrap().ino(),
        bb.ino()
    );
    assert_eq!(
        fs::read_link(t.join("bin/pw")).unwrap(),
        Path::new("../etc/passwd")
    );
    assert!(fs::symlink_metadata(t.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(t.join("opq/sub").is_dir());
    assert_eq!(fs::read(t.join("opq/keep")).unwrap(), b"k");
    assert_eq!(
        fs::read(t.join("d".repeat(120)).join("f")).unwrap(),
        b"long"
    );
    if is_root() {
        let gone = fs::symlink_metadata(t.join("etc/gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        assert_eq!(gone.rdev(), 0);
        assert!(!t.join("etc/.wh.gone").exists());
        assert!(!t.join("opq/.wh..wh..opq").exists());
        assert_eq!(
            lgetxattr(&t.join("opq"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        let null = fs::symlink_metadata(t.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));

        // And the applied dir diffs to the same layer again.
        let mut third = Vec::new();
        assert_eq!(diff_upper(t, &mut third).unwrap().diff_id, stats.diff_id);
    }
}

#[test]
fn diff_of_empty_upper_is_an_empty_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let stats = diff_upper(tmp.path(), &mut out).unwrap();
    assert_eq!(stats.files, 0);
    assert_eq!(out, vec![0u8; 1024]);
    assert!(diff_upper(&tmp.path().join("missing"), Vec::new()).is_err());
}

fn store(dir: &Path) -> ImageStore {
    let content = ContentStore::open(&dir.join("content")).unwrap();
    ImageStore::open(content, &dir.join("meta")).unwrap()
}

fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o755);
    b.append_data(&mut h, "bin/hello", &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

fn config_of(store: &ImageStore, desc: &pier_image::image::Descriptor) -> (ImageConfig, String) {
    let ManifestKind::Manifest(m) = store.read_manifest(desc).unwrap() else {
        panic!("not a manifest");
    };
    assert_eq!(m.layers.len(), 1);
    let bytes = store.content().read(&m.config.digest).unwrap();
    (
        ImageConfig::parse(&bytes).unwrap(),
        m.layers[0].media_type.clone(),
    )
}

#[test]
fn import_applies_changes_and_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let tar_bytes = rootfs_tar();
    let changes: Vec<String> = [
        r#"CMD ["/bin/hello", "-v"]"#,
        "ENV PATH=/bin FOO=\"a b\"",
        "ENV FOO=c",
        "WORKDIR /app",
        "WORKDIR sub",
        "USER 1000:1000",
        "LABEL org.x=y version=1",
        "EXPOSE 80/tcp 53/udp 8080",
        "VOLUME /data",
        "STOPSIGNAL SIGTERM",
        "entrypoint echo hi",
        r#"HEALTHCHECK --interval=1m30s --retries=3 CMD ["/bin/check", "-q"]"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let reference = Reference::parse("example.com/imported:v1").unwrap();
    let desc = import_rootfs(&store, &tar_bytes[..], &changes, Some(&reference)).unwrap();
    assert_eq!(desc.media_type, media_types::OCI_MANIFEST);

    let (config, layer_type) = config_of(&store, &desc);
    assert_eq!(layer_type, media_types::OCI_LAYER);
    assert_eq!(config.rootfs.diff_ids, vec![Digest::sha256(&tar_bytes)]);
    assert_eq!(config.os, "linux");
    assert!(!config.architecture.is_empty());
    assert!(config.created.as_deref().unwrap().ends_with('Z'));
    assert_eq!(
        config.history[0].comment.as_deref(),
        Some("Imported from -")
    );
    let c = config.config.unwrap();
    assert_eq!(c.cmd.unwrap(), vec!["/bin/hello", "-v"]);
    assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
    assert_eq!(c.env.unwrap(), vec!["PATH=/bin", "FOO=c"]);
    assert_eq!(c.working_dir.as_deref(), Some("/app/sub"));
    assert_eq!(c.user.as_deref(), Some("1000:1000"));
    let labels = c.labels.unwrap();
    assert_eq!(labels["org.x"], "y");
    assert_eq!(labels["version"], "1");
    let ports: Vec<&String> = c.exposed_ports.as_ref().unwrap().keys().collect();
    assert_eq!(ports, vec!["53/udp", "80/tcp", "8080/tcp"]);
    assert!(c.volumes.unwrap().contains_key("/data"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
    let hc = c.healthcheck.unwrap();
    assert_eq!(hc.test.unwrap(), vec!["CMD", "/bin/check", "-q"]);
    assert_eq!(hc.interval, Some(90_000_000_000));
    assert_eq!(hc.retries, Some(3));

    // The tag resolves to the manifest.
    assert_eq!(store.get(&reference).unwrap().target.digest, desc.digest);
    let resolved = store.resolve("example.com/imported:v1").unwrap();
    assert_eq!(resolved.target.digest, desc.digest);

    // The layer blob is the tar as given and applies.
    let ManifestKind::Manifest(m) = store.read_manifest(&desc).unwrap() else {
        panic!()
    };
    let mut blob = Vec::new();
    store
        .content()
        .open_blob(&m.layers[0].digest)
        .unwrap()
        .read_to_end(&mut blob)
        .unwrap();
    assert_eq!(blob, tar_bytes);

    // No lease is left behind, and GC from the store's roots keeps the image.
    assert!(store.content().leases().unwrap().is_empty());
    store.content().gc(&store.roots().unwrap()).unwrap();
    assert!(store.content().exists(&m.config.digest));
    assert!(store.content().exists(&m.layers[0].digest));
    assert!(store.content().exists(&desc.digest));
}

#[test]
fn import_gzip_records_compressed_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let tar_bytes = rootfs_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
    let gz = gz.finish().unwrap();
    let desc = import_rootfs(&store, &gz[..], &[], None).unwrap();
    let (config, layer_type) = config_of(&store, &desc);
    assert_eq!(layer_type, media_types::OCI_LAYER_GZIP);
    assert_eq!(config.rootfs.diff_ids, vec![Digest::sha256(&tar_bytes)]);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn import_rejects_bad_changes_with_dockers_message() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let err = import_rootfs(
        &store,
        &rootfs_tar()[..],
        &["RUN echo hi".to_string()],
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, pier_image::Error::InvalidArgument(m) if m == "run is not a valid change command"),
        "{err}"
    );
    let err =
        import_rootfs(&store, &rootfs_tar()[..], &["EXPOSE x".to_string()], None).unwrap_err();
    assert!(
        err.to_string().contains("invalid containerPort: x"),
        "{err}"
    );
    // Nothing was stored for the failed imports.
    assert!(store.content().list().unwrap().is_empty());
}

#[test]
fn import_rejects_non_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let junk = vec![0xabu8; 2048];
    assert!(import_rootfs(&store, &junk[..], &[], None).is_err());
}
