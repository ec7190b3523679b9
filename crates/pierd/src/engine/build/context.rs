//! A build's context: the tar the client sends (plain, gzip or zstd), unpacked into a
//! private directory under `<data-root>/builder/tmp`, and read only through
//! `openat2(RESOLVE_IN_ROOT)` so that no symlink in it leads outside.
//!
//! The `.dockerignore` that applies (`<Dockerfile>.dockerignore` first, then the
//! context's `.dockerignore`) is applied here too, as dockerd does for the Dockerfile
//! and the ignore file themselves: clients filter the rest before sending, and a raw
//! API client that does not gets the same result.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use pier_dockerfile::ignore::{ignore_file_candidates, DockerIgnore};
use pier_image::layer::Compression;
use rustix::fs::{Mode, OFlags};

use super::BuildError;
use crate::rootfs_tar::{clean, in_root};

/// The unpacked context of one build; removed when dropped.
#[derive(Debug)]
pub struct BuildContext {
    dir: tempfile::TempDir,
    root: OwnedFd,
    ignore: Option<DockerIgnore>,
}

/// The context's tar, decompressed: plain, gzip or zstd (what the layer applier reads);
/// bzip2 and xz, which the classic builder also takes, are refused by name.
fn decompressed<'a>(input: impl Read + 'a) -> Result<Box<dyn Read + 'a>, BuildError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|e| BuildError::Invalid(format!("reading the build context: {e}")))?;
    let refused = if head.starts_with(b"BZh") {
        Some("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else {
        None
    };
    if let Some(kind) = refused {
        return Err(BuildError::Invalid(format!(
            "the build context is {kind}-compressed, which Pier does not read: send it plain, gzip- or zstd-compressed"
        )));
    }
    Compression::detect(head)
        .decoder(input)
        .map_err(|e| BuildError::Invalid(format!("reading the build context: {e}")))
}

impl BuildContext {
    /// Unpacks `input` (a tar, perhaps compressed) into a new directory under `tmp`.
    pub fn receive(input: impl Read, tmp: &Path) -> Result<BuildContext, BuildError> {
        fs::create_dir_all(tmp)
            .map_err(|e| BuildError::internal("creating the context directory", e))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(tmp)
            .map_err(|e| BuildError::internal("creating the context directory", e))?;
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .map_err(|e| BuildError::internal("creating the context directory", e))?;
        let reader = decompressed(input)?;
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        // `unpack_in` refuses names with `..` and parents that lead outside through a
        // symlink unpacked before.
        let entries = archive
            .entries()
            .map_err(|e| BuildError::Invalid(format!("reading the build context: {e}")))?;
        for entry in entries {
            let mut entry = entry
                .map_err(|e| BuildError::Invalid(format!("reading the build context: {e}")))?;
            let unpacked = entry.unpack_in(dir.path()).map_err(|e| {
                // tar's error names the entry; the cause is its source.
                let cause = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                BuildError::Invalid(format!("unpacking the build context: {e}{cause}"))
            })?;
            if !unpacked {
                return Err(BuildError::Invalid(format!(
                    "unpacking the build context: the entry {:?} points outside the context",
                    String::from_utf8_lossy(&entry.path_bytes())
                )));
            }
        }
        let root = rustix::fs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BuildError::internal("opening the build context", e))?;
        Ok(BuildContext {
            dir,
            root,
            ignore: None,
        })
    }

    /// The context's root directory, for in-root resolution.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The directory the context is unpacked in.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file of the context (`Dockerfile`, `.dockerignore`), or None if it has none.
    pub fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>, BuildError> {
        let rel = clean(rel).0.join("/");
        if rel.is_empty() {
            return Ok(None);
        }
        match in_root(self.root(), &rel, OFlags::RDONLY | OFlags::CLOEXEC) {
            Ok(fd) => {
                let mut bytes = Vec::new();
                fs::File::from(fd)
                    .read_to_end(&mut bytes)
                    .map_err(|e| BuildError::internal(&format!("reading {rel}"), e))?;
                Ok(Some(bytes))
            }
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::ISDIR) => Ok(None),
            Err(e) => Err(BuildError::internal(
                &format!("reading {rel}"),
                io::Error::from(e),
            )),
        }
    }

    /// Reads the ignore file that applies to `dockerfile` and removes what it
    /// excludes from the context (the Dockerfile and ignore file included, once read).
    pub fn apply_ignore(&mut self, dockerfile: &str) -> Result<(), BuildError> {
        let mut found = None;
        for candidate in ignore_file_candidates(dockerfile) {
            if let Some(bytes) = self.read_file(&candidate)? {
                found = Some(bytes);
                break;
            }
        }
        let Some(bytes) = found else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&bytes);
        let ignore = DockerIgnore::parse(&text).map_err(|e| {
            BuildError::Invalid(format!("failed to parse .dockerignore: {}", e.message))
        })?;
        if !ignore.patterns().is_empty() {
            remove_excluded(self.dir.path(), "", &ignore)
                .map_err(|e| BuildError::internal("applying .dockerignore", e))?;
        }
        self.ignore = Some(ignore);
        Ok(())
    }
}

/// Removes the entries under `dir` (the context path `rel`) that `ignore` excludes.
fn remove_excluded(dir: &Path, rel: &str, ignore: &DockerIgnore) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path: PathBuf = entry.path();
        let rel_path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = entry.file_type()?.is_dir();
        if ignore.excludes(&rel_path) {
            if is_dir {
                if ignore.can_skip_dir(&rel_path) {
                    fs::remove_dir_all(&path)?;
                } else {
                    remove_excluded(&path, &rel_path, ignore)?;
                }
            } else {
                fs::remove_file(&path)?;
            }
        } else if is_dir {
            remove_excluded(&path, &rel_path, ignore)?;
        }
    }
    Ok(())
}
