//! What a directory tree holds, path by path, for tests that copy trees (volume
//! archives, copy-up) and compare the copy with its source.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The extended attributes of `path` (not following a final symlink), sorted, as
/// `name=[bytes]`.
pub fn xattrs(path: &Path) -> Vec<String> {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut list = vec![0u8; 64 * 1024];
    // SAFETY: the path is NUL-terminated and the buffer is valid for its length.
    let len = unsafe { libc::llistxattr(c_path.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    if len < 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in list[..len as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let c_name = CString::new(name).unwrap();
        let mut value = vec![0u8; 64 * 1024];
        // SAFETY: both strings are NUL-terminated and the buffer is valid for its length.
        let n = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n >= 0 {
            out.push(format!(
                "{}={:?}",
                OsStr::from_bytes(name).to_string_lossy(),
                &value[..n as usize]
            ));
        }
    }
    out.sort();
    out
}

/// Every path under `root` (itself as ""), with its type and mode, owner, device
/// number, mtime (files, directories and symlinks), xattrs, and content: size and a
/// checksum for files, the target for symlinks. Sockets are left out.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        if std::os::unix::fs::FileTypeExt::is_socket(&kind) {
            continue;
        }
        let content = if kind.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            // std's hasher is built optimized, also in a debug test build.
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hasher::write(&mut hasher, &bytes);
            let sum = std::hash::Hasher::finish(&hasher);
            format!("{} bytes, checksum {sum:x}", bytes.len())
        } else if kind.is_symlink() {
            std::fs::read_link(&path).unwrap().display().to_string()
        } else {
            String::new()
        };
        let mtime = if kind.is_symlink() || kind.is_dir() || kind.is_file() {
            meta.mtime()
        } else {
            0
        };
        out.insert(
            path.strip_prefix(root).unwrap().to_path_buf(),
            format!(
                "mode {:o} owner {}:{} rdev {} mtime {mtime} xattrs {:?} {content}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.rdev(),
                xattrs(&path),
            ),
        );
        if kind.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    out
}

/// Panics with the first difference between the trees at `source` and `copy`.
pub fn assert_same_tree(source: &Path, copy: &Path) {
    let expected = snapshot(source);
    let got = snapshot(copy);
    for (path, want) in &expected {
        assert_eq!(got.get(path), Some(want), "{}", path.display());
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
}
