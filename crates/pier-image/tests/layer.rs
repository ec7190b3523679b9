//! Integration tests of the layer applier on a real filesystem (run as root).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use pier_image::digest::Digest;
use pier_image::layer::{apply_layer, apply_layer_with, ApplyOptions, Compression};
use pier_image::Error;
use proptest::prelude::*;

/// Builds tars with raw (unvalidated) paths, as a hostile producer would.
struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl TarBuilder {
    fn new() -> Self {
        TarBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn raw(
        &mut self,
        path: &[u8],
        kind: tar::EntryType,
        link: Option<&[u8]>,
        data: &[u8],
        mode: u32,
        uid: u64,
        mtime: u64,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        if !xattrs.is_empty() {
            let recs: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            self.b
                .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..path.len()].copy_from_slice(path);
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l);
            }
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(mtime);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.raw(
            path.as_bytes(),
            tar::EntryType::Regular,
            None,
            data,
            0o644,
            0,
            1_600_000_000,
            &[],
        )
    }

    fn dir(&mut self, path: &str) -> &mut Self {
        self.raw(
            path.as_bytes(),
            tar::EntryType::Directory,
            None,
            b"",
            0o755,
            0,
            1_600_000_000,
            &[],
        )
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(
            path.as_bytes(),
            tar::EntryType::Symlink,
            Some(target.as_bytes()),
            b"",
            0o777,
            0,
            1_600_000_000,
            &[],
        )
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(
            path.as_bytes(),
            tar::EntryType::Link,
            Some(target.as_bytes()),
            b"",
            0o644,
            0,
            1_600_000_000,
            &[],
        )
    }

    fn device(&mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o666);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &b""[..]).unwrap();
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// `outer/` holds `target/` (the snapshot) and `sentinel/` (must never change).
struct Sandbox {
    _tmp: tempfile::TempDir,
    outer: PathBuf,
    target: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().to_path_buf();
        let target = outer.join("target");
        fs::create_dir(&target).unwrap();
        fs::create_dir(outer.join("sentinel")).unwrap();
        fs::write(outer.join("sentinel/secret"), b"secret").unwrap();
        Sandbox {
            _tmp: tmp,
            outer,
            target,
        }
    }

    /// Nothing was written outside `target`.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<String> = fs::read_dir(&self.outer)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["sentinel", "target"]);
        let sentinel: Vec<String> = fs::read_dir(self.outer.join("sentinel"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(sentinel, ["secret"]);
        assert_eq!(
            fs::read(self.outer.join("sentinel/secret")).unwrap(),
            b"secret"
        );
        let meta = fs::metadata(self.outer.join("sentinel/secret")).unwrap();
        assert_eq!(meta.nlink(), 1);
    }

    fn assert_target_empty(&self) {
        assert_eq!(fs::read_dir(&self.target).unwrap().count(), 0);
    }

    fn outer_str(&self) -> String {
        self.outer.to_str().unwrap().to_string()
    }
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest::sha256(bytes)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zstd_compress(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
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

#[test]
fn detects_compression() {
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"etc/\0\0"), Compression::None);
    assert_eq!(Compression::detect(b""), Compression::None);
}

#[test]
fn extracts_all_entry_kinds_with_metadata() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .raw(
            b"etc/",
            tar::EntryType::Directory,
            None,
            b"",
            0o750,
            1000,
            1_500_000_000,
            &[],
        )
        .raw(
            b"etc/file",
            tar::EntryType::Regular,
            None,
            b"hello",
            0o640,
            1000,
            1_400_000_000,
            &[("user.pier", b"yes")],
        )
        .raw(
            b"etc/suid",
            tar::EntryType::Regular,
            None,
            b"x",
            0o4755,
            0,
            1_400_000_000,
            &[],
        )
        .symlink("etc/link", "/etc/file")
        .hardlink("etc/hard", "/etc/file")
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/fifo", tar::EntryType::Fifo, 0, 0)
        .file("no/parent/dir/file", b"deep")
        .finish();
    let applied = apply_layer(&tar[..], &sb.target, None).unwrap();
    assert_eq!(applied.diff_id, sha256(&tar));
    assert_eq!(applied.digest, sha256(&tar));
    assert_eq!(applied.size, tar.len() as u64);
    assert_eq!(applied.files, 8);

    let t = &sb.target;
    let etc = fs::metadata(t.join("etc")).unwrap();
    assert!(etc.is_dir());
    assert_eq!(etc.mode() & 0o7777, 0o750);
    assert_eq!((etc.uid(), etc.gid()), (1000, 1000));
    assert_eq!(
        etc.mtime(),
        1_500_000_000,
        "dir mtime survives its children"
    );

    let f = fs::metadata(t.join("etc/file")).unwrap();
    assert_eq!(fs::read(t.join("etc/file")).unwrap(), b"hello");
    assert_eq!(f.mode() & 0o7777, 0o640);
    assert_eq!((f.uid(), f.gid()), (1000, 1000));
    assert_eq!(f.mtime(), 1_400_000_000);
    assert_eq!(f.nlink(), 2);
    assert_eq!(
        lgetxattr(&t.join("etc/file"), "user.pier").as_deref(),
        Some(&b"yes"[..])
    );
    let hard = fs::metadata(t.join("etc/hard")).unwrap();
    assert_eq!(hard.ino(), f.ino());

    let suid = fs::metadata(t.join("etc/suid")).unwrap();
    assert_eq!(suid.mode() & 0o7777, 0o4755);

    assert_eq!(
        fs::read_link(t.join("etc/link")).unwrap(),
        Path::new("/etc/file")
    );
    let l = fs::symlink_metadata(t.join("etc/link")).unwrap();
    assert_eq!(l.mtime(), 1_600_000_000);

    let null = fs::symlink_metadata(t.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    assert!(fs::symlink_metadata(t.join("dev/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::read(t.join("no/parent/dir/file")).unwrap(),
        b"deep".to_vec()
    );
    let implicit = fs::metadata(t.join("no/parent")).unwrap();
    assert_eq!(implicit.mode() & 0o7777, 0o755);
    sb.assert_outside_untouched();
}

#[test]
fn replaces_non_dirs_and_merges_dirs() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .file("a", b"file first")
        .dir("a") // dir replaces file
        .file("a/keep", b"k")
        .dir("a") // dir over dir merges
        .file("b", b"one")
        .file("b", b"two") // file replaces file
        .dir("c")
        .file("c/x", b"x")
        .symlink("c", "/a") // symlink replaces dir (recursively)
        .finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    let t = &sb.target;
    assert!(fs::symlink_metadata(t.join("a")).unwrap().is_dir());
    assert_eq!(fs::read(t.join("a/keep")).unwrap(), b"k");
    assert_eq!(fs::read(t.join("b")).unwrap(), b"two");
    assert!(fs::symlink_metadata(t.join("c"))
        .unwrap()
        .file_type()
        .is_symlink());
}

fn layer1() -> Vec<u8> {
    TarBuilder::new()
        .dir("gone")
        .file("gone/file", b"1")
        .file("deleted", b"1")
        .dir("opaque")
        .file("opaque/old", b"1")
        .file("kept", b"1")
        .finish()
}

fn layer2() -> Vec<u8> {
    TarBuilder::new()
        .file(".wh.deleted", b"")
        .file(".wh.gone", b"")
        .dir("opaque")
        .file("opaque/new", b"2")
        .file("opaque/.wh..wh..opq", b"")
        .file(".wh..wh.plnk", b"") // aufs metadata: ignored
        .finish()
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let sb = Sandbox::new();
    let applied = apply_layer(&layer2()[..], &sb.target, None).unwrap();
    assert_eq!(applied.files, 5);
    let t = &sb.target;
    for name in ["deleted", "gone"] {
        let m = fs::symlink_metadata(t.join(name)).unwrap();
        assert!(m.file_type().is_char_device(), "{name}");
        assert_eq!(m.rdev(), 0);
    }
    assert!(!t.join(".wh.deleted").exists());
    assert!(!t.join("opaque/.wh..wh..opq").exists());
    assert!(!t.join(".wh..wh.plnk").exists());
    assert_eq!(
        lgetxattr(&t.join("opaque"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    // Entries of this layer in the opaque dir stay.
    assert_eq!(fs::read(t.join("opaque/new")).unwrap(), b"2");
}

#[test]
fn whiteout_removes_earlier_entry_of_same_layer() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .dir("d")
        .file("d/f", b"x")
        .file(".wh.d", b"")
        .finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    let m = fs::symlink_metadata(sb.target.join("d")).unwrap();
    assert!(m.file_type().is_char_device());
}

#[test]
fn layer_cannot_forge_overlay_xattrs() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .raw(
            b"d/",
            tar::EntryType::Directory,
            None,
            b"",
            0o755,
            0,
            0,
            &[("trusted.overlay.redirect", b"/etc")],
        )
        .finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    assert_eq!(
        lgetxattr(&sb.target.join("d"), "trusted.overlay.redirect"),
        None
    );
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn overlay_mount_honours_whiteouts_and_opaque_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2, mnt) = (
        tmp.path().join("l1"),
        tmp.path().join("l2"),
        tmp.path().join("mnt"),
    );
    for d in [&l1, &l2, &mnt] {
        fs::create_dir(d).unwrap();
    }
    apply_layer(&layer1()[..], &l1, None).unwrap();
    apply_layer(&layer2()[..], &l2, None).unwrap();
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={}:{}",
            l2.to_str().unwrap(),
            l1.to_str().unwrap()
        ))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount overlay");
    let _guard = Mount(mnt.clone());
    assert!(!mnt.join("deleted").exists());
    assert!(!mnt.join("gone").exists());
    assert_eq!(fs::read(mnt.join("kept")).unwrap(), b"1");
    let mut opaque: Vec<String> = fs::read_dir(mnt.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    opaque.sort();
    assert_eq!(opaque, ["new"]);
    let mut top: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["kept", "opaque"]);
}

#[test]
fn compressed_layers_have_same_diff_id() {
    let tar = layer1();
    for (blob, comp) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (zstd_compress(&tar), Compression::Zstd),
    ] {
        assert_eq!(Compression::detect(&blob), comp);
        let sb = Sandbox::new();
        let want = sha256(&blob);
        let applied = apply_layer(&blob[..], &sb.target, Some(&want)).unwrap();
        assert_eq!(applied.diff_id, sha256(&tar), "{comp:?}");
        assert_eq!(applied.digest, want);
        assert_eq!(applied.size, blob.len() as u64);
        assert_eq!(fs::read(sb.target.join("gone/file")).unwrap(), b"1");
    }
}

#[test]
fn multi_member_gzip_is_read_fully() {
    let tar = layer1();
    let (a, b) = tar.split_at(700);
    let mut blob = gzip(a);
    blob.extend(gzip(b));
    let sb = Sandbox::new();
    let applied = apply_layer(&blob[..], &sb.target, None).unwrap();
    assert_eq!(applied.diff_id, sha256(&tar));
    assert_eq!(applied.digest, sha256(&blob));
}

#[test]
fn diff_id_covers_trailing_padding() {
    let mut tar = layer1();
    tar.extend(std::iter::repeat_n(0u8, 10240));
    let sb = Sandbox::new();
    let applied = apply_layer(&tar[..], &sb.target, None).unwrap();
    assert_eq!(applied.diff_id, sha256(&tar));
    assert_eq!(applied.size, tar.len() as u64);
}

#[test]
fn wrong_digest_is_mismatch_and_leaves_target_empty() {
    let sb = Sandbox::new();
    let blob = gzip(&layer2());
    let wrong = sha256(b"something else");
    let err = apply_layer(&blob[..], &sb.target, Some(&wrong)).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    sb.assert_target_empty();
    assert_eq!(
        lgetxattr(&sb.target, "trusted.overlay.opaque"),
        None,
        "no xattr left on the root"
    );
}

#[test]
fn truncated_gzip_is_rejected_and_leaves_target_empty() {
    let sb = Sandbox::new();
    let blob = gzip(&layer1());
    let err = apply_layer(&blob[..blob.len() - 10], &sb.target, None).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    sb.assert_target_empty();
}

#[test]
fn truncated_tar_is_rejected_and_leaves_target_empty() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .file("a", b"a")
        .file("big", &[7u8; 4096])
        .finish();
    let err = apply_layer(&tar[..512 * 3 + 100], &sb.target, None).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    sb.assert_target_empty();
}

/// A tar that stops right after its last entry's data, without the entry's padding
/// or the end-of-archive blocks (Debian's umoci 0.4.7 writes layers like this; Go's
/// archive/tar and so Docker accept them).
#[test]
fn layer_missing_final_padding_applies_when_its_digest_is_checked() {
    let tar = TarBuilder::new()
        .file("a", b"a")
        .file("last", b"hello")
        .finish();
    let cut = &tar[..512 * 3 + 5];
    let sb = Sandbox::new();
    let applied = apply_layer(cut, &sb.target, Some(&sha256(cut))).unwrap();
    assert_eq!(
        applied.diff_id,
        sha256(cut),
        "diffID of the bytes as stored"
    );
    assert_eq!(fs::read(sb.target.join("last")).unwrap(), b"hello");

    // Cut inside the data: still refused, and nothing is left.
    let short = &tar[..512 * 3 + 3];
    let sb = Sandbox::new();
    let err = apply_layer(short, &sb.target, Some(&sha256(cut))).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    sb.assert_target_empty();
}

#[test]
fn corrupt_zstd_is_rejected() {
    let sb = Sandbox::new();
    let mut blob = zstd_compress(&layer1());
    let n = blob.len();
    for b in &mut blob[8..n - 4] {
        *b ^= 0x5a;
    }
    apply_layer(&blob[..], &sb.target, None).unwrap_err();
    sb.assert_target_empty();
}

#[test]
fn non_empty_target_is_refused() {
    let sb = Sandbox::new();
    fs::write(sb.target.join("x"), b"").unwrap();
    let err = apply_layer(&layer1()[..], &sb.target, None).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(sb.target.join("x").exists());
}

fn expect_refused(tar: &[u8], needle: &str) -> Sandbox {
    let sb = Sandbox::new();
    let err = apply_layer(tar, &sb.target, None).unwrap_err();
    assert!(err.to_string().contains(needle), "{err}");
    sb.assert_target_empty();
    sb.assert_outside_untouched();
    sb
}

#[test]
fn dotdot_escape_is_refused() {
    let tar = TarBuilder::new()
        .file("ok", b"")
        .file("../evil", b"x")
        .finish();
    expect_refused(&tar, "breakout");
    let tar = TarBuilder::new().file("a/../../evil", b"x").finish();
    expect_refused(&tar, "breakout");
    let tar = TarBuilder::new()
        .file("../sentinel/secret", b"pwned")
        .finish();
    expect_refused(&tar, "breakout");
}

#[test]
fn inner_dotdot_is_normalised() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new().file("a/b/../c", b"x").finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    assert_eq!(fs::read(sb.target.join("a/c")).unwrap(), b"x");
    assert!(!sb.target.join("a/b").exists());
}

#[test]
fn absolute_paths_are_made_relative() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new().file("/abs/evil", b"x").finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    assert_eq!(fs::read(sb.target.join("abs/evil")).unwrap(), b"x");
    sb.assert_outside_untouched();
}

#[test]
fn symlink_to_root_is_resolved_inside_the_snapshot() {
    let sb = Sandbox::new();
    let outer = sb.outer_str();
    let tar = TarBuilder::new()
        .symlink("link", "/")
        .file(&format!("link{outer}/sentinel/evil"), b"x")
        .symlink("out", &outer)
        .file("out/sentinel/evil2", b"x")
        .finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    sb.assert_outside_untouched();
    let inner = sb.target.join(outer.trim_start_matches('/'));
    assert_eq!(fs::read(inner.join("sentinel/evil")).unwrap(), b"x");
    assert_eq!(fs::read(inner.join("sentinel/evil2")).unwrap(), b"x");
}

#[test]
fn relative_symlink_climbing_out_is_clamped() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .dir("a")
        .symlink("a/up", "../../..")
        .file("a/up/x", b"x")
        .file("a/up/sentinel/secret", b"pwned")
        .finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    sb.assert_outside_untouched();
    assert_eq!(fs::read(sb.target.join("x")).unwrap(), b"x");
    assert_eq!(
        fs::read(sb.target.join("sentinel/secret")).unwrap(),
        b"pwned"
    );
}

#[test]
fn hardlinks_out_of_the_root_are_refused() {
    // Absolute target means the snapshot's path, which does not exist.
    let tar = TarBuilder::new().hardlink("passwd", "/etc/passwd").finish();
    expect_refused(&tar, "hardlink");
    let tar = TarBuilder::new().hardlink("x", "../x").finish();
    expect_refused(&tar, "invalid hardlink");
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .symlink("out", &sb.outer_str())
        .hardlink("stolen", "out/sentinel/secret")
        .finish();
    let err = apply_layer(&tar[..], &sb.target, None).unwrap_err();
    assert!(err.to_string().contains("hardlink"), "{err}");
    sb.assert_target_empty();
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_to_symlink_links_the_symlink_itself() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .symlink("s", &format!("{}/sentinel/secret", sb.outer_str()))
        .hardlink("h", "s")
        .finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    assert!(fs::symlink_metadata(sb.target.join("h"))
        .unwrap()
        .file_type()
        .is_symlink());
    sb.assert_outside_untouched();
}

#[test]
fn whiteout_through_symlink_stays_inside() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .symlink("out", &format!("{}/sentinel", sb.outer_str()))
        .file("out/.wh.secret", b"")
        .file("out/.wh..wh..opq", b"")
        .finish();
    // `out/` resolves to the snapshot's own (missing) path: refused or contained, never outside.
    let _ = apply_layer(&tar[..], &sb.target, None);
    sb.assert_outside_untouched();
    assert_eq!(
        lgetxattr(&sb.outer.join("sentinel"), "trusted.overlay.opaque"),
        None
    );
}

#[test]
fn replacing_a_symlink_never_writes_through_it() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .symlink("f", &format!("{}/sentinel/secret", sb.outer_str()))
        .file("f", b"pwned")
        .finish();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    sb.assert_outside_untouched();
    assert_eq!(fs::read(sb.target.join("f")).unwrap(), b"pwned");
}

#[test]
fn ids_are_shifted() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .raw(
            b"f",
            tar::EntryType::Regular,
            None,
            b"",
            0o644,
            1000,
            0,
            &[],
        )
        .finish();
    let opts = ApplyOptions {
        id_shift: Some((100_000, 65_536)),
    };
    apply_layer_with(&tar[..], &sb.target, None, &opts).unwrap();
    let m = fs::metadata(sb.target.join("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (101_000, 101_000));

    let sb = Sandbox::new();
    let opts = ApplyOptions {
        id_shift: Some((100_000, 500)),
    };
    apply_layer_with(&tar[..], &sb.target, None, &opts).unwrap_err();
    sb.assert_target_empty();
}

fn path_strategy() -> impl Strategy<Value = String> {
    let comp = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("sentinel".to_string()),
        Just("secret".to_string()),
    ];
    (any::<bool>(), prop::collection::vec(comp, 1..6))
        .prop_map(|(abs, c)| format!("{}{}", if abs { "/" } else { "" }, c.join("/")))
}

#[derive(Debug, Clone)]
enum Op {
    File(String),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let link_target = prop_oneof![
        Just("/".to_string()),
        Just("..".to_string()),
        Just("../..".to_string()),
        Just("../../sentinel".to_string()),
        Just("OUTER".to_string()),
        path_strategy(),
    ];
    prop_oneof![
        path_strategy().prop_map(Op::File),
        path_strategy().prop_map(Op::Dir),
        (path_strategy(), link_target).prop_map(|(p, t)| Op::Symlink(p, t)),
        (path_strategy(), path_strategy()).prop_map(|(p, t)| Op::Hardlink(p, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_paths_never_escape(ops in prop::collection::vec(op_strategy(), 1..12)) {
        let sb = Sandbox::new();
        let outer = sb.outer_str();
        let mut tb = TarBuilder::new();
        for op in &ops {
            match op {
                Op::File(p) if !p.is_empty() => { tb.file(p, b"pwned"); }
                Op::Dir(p) if !p.is_empty() => { tb.dir(p); }
                Op::Symlink(p, t) if !p.is_empty() => {
                    tb.symlink(p, &t.replace("OUTER", &outer));
                }
                Op::Hardlink(p, t) if !p.is_empty() && !t.is_empty() => { tb.hardlink(p, t); }
                _ => {}
            }
        }
        let tar = tb.finish();
        if apply_layer(&tar[..], &sb.target, None).is_err() {
            sb.assert_target_empty();
        }
        sb.assert_outside_untouched();
    }
}

#[test]
fn pax_records_and_long_names_are_honoured() {
    let sb = Sandbox::new();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let mut b = tar::Builder::new(Vec::new());
    // GNU long name (the Builder writes a ././@LongLink entry).
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    // PAX path, uid/gid and sub-second mtime override the header.
    b.append_pax_extensions([
        ("path", &b"pax/named"[..]),
        ("uid", &b"3000000"[..]),
        ("gid", &b"3000001"[..]),
        ("mtime", &b"1234567890.5"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("short").unwrap();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"pax"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    apply_layer(&tar[..], &sb.target, None).unwrap();
    assert_eq!(fs::read(sb.target.join(&long)).unwrap(), b"long");
    assert!(!sb.target.join("short").exists());
    let m = fs::metadata(sb.target.join("pax/named")).unwrap();
    assert_eq!(fs::read(sb.target.join("pax/named")).unwrap(), b"pax");
    assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 500_000_000));
}

#[test]
fn unsupported_entry_types_are_refused() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("volume").unwrap();
    h.set_entry_type(tar::EntryType::new(b'V'));
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let sb = Sandbox::new();
    let err = apply_layer(&tar[..], &sb.target, None).unwrap_err();
    assert!(err.to_string().contains("unsupported"), "{err}");
    sb.assert_target_empty();
}

#[test]
fn missing_target_is_an_error() {
    let sb = Sandbox::new();
    let err = apply_layer(&layer1()[..], &sb.outer.join("nope"), None).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn symlink_swap_race_stays_inside() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let sb = Sandbox::new();
    let mut tb = TarBuilder::new();
    tb.dir("d");
    for i in 0..3000 {
        tb.file(&format!("d/f{i}"), b"pwned");
    }
    let tar = tb.finish();
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let target = sb.target.clone();
        let sentinel = sb.outer.join("sentinel");
        std::thread::spawn(move || {
            let (d, real) = (target.join("d"), target.join("d-real"));
            while !stop.load(Ordering::Relaxed) {
                if fs::rename(&d, &real).is_ok() {
                    let _ = std::os::unix::fs::symlink(&sentinel, &d);
                    std::thread::yield_now();
                    let _ = fs::remove_file(&d);
                    let _ = fs::rename(&real, &d);
                }
            }
        })
    };
    // Errors (a directory vanishing mid-way) are fine; escaping is not.
    let _ = apply_layer(&tar[..], &sb.target, None);
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    let names: Vec<_> = fs::read_dir(sb.outer.join("sentinel"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("secret")]);
}
