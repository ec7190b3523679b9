//! Helpers shared by the security tests: static test programs compiled with the host's
//! `gcc`, a real dockerd with the same busybox image as the test's pierd, file hashes,
//! hand-made tar entries and host sentinel directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pier_testsupport::{DockerdOptions, IsolatedDockerd};

use crate::common::Engine;

/// Compiles the C program `source` into a static binary `dir/name` with the host's
/// `gcc` (plus `flags`); None, after saying why, when gcc cannot.
pub fn compile_static(
    test: &str,
    dir: &Path,
    name: &str,
    source: &str,
    flags: &[&str],
) -> Option<PathBuf> {
    if !pier_testsupport::require_tools(test, &["gcc"]) {
        return None;
    }
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write C source");
    let bin = dir.join(name);
    let out = pier_testsupport::run(
        Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&bin)
            .arg(&src)
            .args(flags),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if out.code != Some(0) {
        // gcc is there: a program that does not compile is this test's bug, unless the
        // static C library is what is missing.
        assert!(
            out.stderr.contains("cannot find -lc"),
            "{}",
            out.explain("compiling a test program failed")
        );
        pier_testsupport::skip(test, "gcc has no static C library (libc6-dev)");
        return None;
    }
    Some(bin)
}

/// The sha256 of a file's content, in hex.
pub fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pier_image::digest::Digest::sha256(&bytes).hex().to_string()
}

/// A real, isolated dockerd with the `busybox` image imported from the same tar as
/// the pierd's; None (after saying why) when dockerd cannot run here.
pub fn dockerd_with_busybox(test: &str, rootfs_tar: &Path) -> Option<IsolatedDockerd> {
    let dockerd = IsolatedDockerd::start_or_skip(test, DockerdOptions::default())?;
    let out = dockerd.docker_with_stdin(
        &["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"],
        rootfs_tar,
    );
    assert_eq!(out.code, Some(0), "{}", out.explain("import into dockerd"));
    Some(dockerd)
}

/// `sh -c script` in a new busybox container without network, removed after; its
/// output (the command must succeed).
pub fn run_sh(e: &dyn Engine, script: &str) -> String {
    e.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ])
}

/// The busybox rootfs tar `common::pierd_with_busybox` left in its work directory.
pub fn rootfs_tar(work: &Path) -> PathBuf {
    work.join("busybox-rootfs.tar")
}

/// One tar entry with its name and link name written as given, byte for byte (the
/// `tar` crate refuses to write `..` and absolute names; archives from attackers have
/// them), padded to a whole record.
pub fn tar_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    {
        let raw = h.as_ustar_mut().expect("ustar header");
        assert!(name.len() < raw.name.len() && link.len() < raw.linkname.len());
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A whole tar: the entries, then the two zero records that end it.
pub fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend(vec![0u8; 1024]);
    out
}

/// A host directory a container must never reach: it holds one file, `secret`, whose
/// content is a token unique to this run; [`Sentinel::untouched`] says whether it
/// still holds exactly that.
pub struct Sentinel {
    pub dir: tempfile::TempDir,
    pub token: String,
}

impl Sentinel {
    pub fn new(label: &str) -> Sentinel {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pier-sentinel-{label}-"))
            .tempdir()
            .expect("temp dir");
        let token = pier_testsupport::unique_name(&format!("pier-secret-{label}-"));
        std::fs::write(dir.path().join("secret"), &token).expect("write sentinel");
        Sentinel { dir, token }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The host path, as text (for symlink targets and tar names).
    pub fn text(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// What is wrong with the directory: entries other than `secret`, or `secret`
    /// changed.
    pub fn damage(&self) -> Option<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .expect("read sentinel dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let secret = std::fs::read_to_string(self.path().join("secret")).unwrap_or_default();
        (names != ["secret"] || secret != self.token).then(|| {
            format!(
                "host sentinel {} changed: entries {names:?}, secret {secret:?}",
                self.text()
            )
        })
    }

    /// Panics if the directory changed or `text` (output a container produced) holds
    /// the token.
    pub fn assert_untouched(&self, what: &str, text: &str) {
        if let Some(d) = self.damage() {
            panic!("{what}: {d}");
        }
        assert!(
            !text.contains(&self.token),
            "{what}: the host secret was read: {text:?}"
        );
    }
}

/// Regular files below `dir` (walked as root, symlinks not followed) that `keep` takes.
pub fn files_below(
    dir: &Path,
    keep: impl Fn(&Path, &std::fs::Metadata) -> bool,
) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && keep(&entry.path(), &meta) {
                found.push(entry.path());
            }
        }
    }
    found
}
