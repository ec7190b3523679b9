//! Copy-up: a new, empty volume mounted over image content is first filled with that
//! content, as Docker does (what makes non-root images such as postgres work).
//!
//! The tree is copied with owners, modes, extended attributes, symlinks (as links),
//! hardlinks (as links), device nodes, fifos and timestamps. `trusted.overlay.*`
//! attributes are overlayfs's bookkeeping and are left behind. Sockets are skipped, as
//! a socket file means nothing without its listener.
//!
//! The source is walked by descriptors: every entry is opened relative to its parent
//! with `O_NOFOLLOW`, so no symlink inside the tree (or one swapped in while copying)
//! leads the copy out of it. Owners are copied as the source shows them: a container's
//! rootfs under user-namespace remapping is an idmapped mount whose files already show
//! their host owners.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::driver::VolumeError;

/// What a copy-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// False when there was nothing to do: the destination was not empty, or the
    /// source does not exist or is not a directory (Docker's rules).
    pub copied: bool,
    /// Entries made under the destination (its root not counted).
    pub entries: u64,
    /// Bytes of regular file content copied.
    pub bytes: u64,
    /// Entries made as hardlinks to an entry copied before.
    pub hardlinks: u64,
}

/// Fills the empty directory `dest` with the tree at `source`, and gives `dest` the
/// owner, mode, xattrs and times of `source`. Does nothing when `dest` is not empty or
/// `source` is missing or not a directory.
///
/// `source` itself is trusted and followed (pass the `/proc/self/fd/N` path of a
/// directory resolved inside the container's root); nothing below it is followed.
pub fn copy_up(source: &Path, dest: &Path) -> Result<CopyStats, VolumeError> {
    let io = |what: &str, p: &Path, e: Errno| {
        VolumeError::io(format!("copy-up: {what} {}", p.display()), e.into())
    };
    let src = match rustix::fs::open(
        source,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(CopyStats::default()),
        Err(e) => return Err(io("open", source, e)),
    };
    let dst = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open", dest, e))?;
    if !dir_is_empty(&dst).map_err(|e| io("read", dest, e))? {
        return Ok(CopyStats::default());
    }
    let mut copier = Copier {
        dest_root: dst
            .try_clone()
            .map_err(|e| VolumeError::io("copy-up: dup", e))?,
        links: HashMap::new(),
        stats: CopyStats {
            copied: true,
            ..CopyStats::default()
        },
        buf: vec![0; XATTR_MAX],
    };
    copier.copy_dir(&src, &dst, Path::new(""))?;
    let st = rustix::fs::fstat(&src).map_err(|e| io("stat", source, e))?;
    copier
        .set_metadata(&dst, None, &st, Some(&src))
        .map_err(|e| io("set owner and mode of", dest, e))?;
    Ok(copier.stats)
}

/// The largest xattr value (and name list) Linux allows.
const XATTR_MAX: usize = 64 * 1024;

struct Copier {
    dest_root: OwnedFd,
    /// Source `(dev, ino)` of files with more than one link → their path under dest.
    links: HashMap<(u64, u64), PathBuf>,
    stats: CopyStats,
    buf: Vec<u8>,
}

fn dir_is_empty(dir: &OwnedFd) -> Result<bool, Errno> {
    for e in rustix::fs::Dir::read_from(dir)? {
        let name = e?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn nofollow(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Copier {
    fn copy_dir(&mut self, src: &OwnedFd, dst: &OwnedFd, rel: &Path) -> Result<(), VolumeError> {
        let mut names: Vec<OsString> = Vec::new();
        let entries = rustix::fs::Dir::read_from(src)
            .map_err(|e| VolumeError::io(format!("copy-up: read {}", rel.display()), e.into()))?;
        for e in entries {
            let e = e.map_err(|e| {
                VolumeError::io(format!("copy-up: read {}", rel.display()), e.into())
            })?;
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        for name in names {
            let path = rel.join(&name);
            let failed =
                |e: Errno| VolumeError::io(format!("copy-up: copy {}", path.display()), e.into());
            if let Some((s, d, st)) = self.copy_entry(src, dst, &name, &path).map_err(failed)? {
                self.copy_dir(&s, &d, &path)?;
                // After the contents, so that their creation does not move its times.
                self.set_metadata(&d, None, &st, Some(&s)).map_err(failed)?;
            }
        }
        Ok(())
    }

    /// Copies one entry; a directory is only made, and returned (source, dest, its
    /// stat) for the caller to fill and finish.
    fn copy_entry(
        &mut self,
        src_dir: &OwnedFd,
        dst_dir: &OwnedFd,
        name: &OsStr,
        rel: &Path,
    ) -> Result<Option<(OwnedFd, OwnedFd, Stat)>, Errno> {
        let st = rustix::fs::statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::Directory && st.st_nlink > 1 {
            if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) {
                rustix::fs::linkat(&self.dest_root, first, dst_dir, name, AtFlags::empty())?;
                self.stats.entries += 1;
                self.stats.hardlinks += 1;
                return Ok(None);
            }
            self.links.insert((st.st_dev, st.st_ino), rel.to_path_buf());
        }
        match kind {
            FileType::Directory => {
                rustix::fs::mkdirat(dst_dir, name, Mode::from_raw_mode(0o700))?;
                let s = nofollow(src_dir.as_fd(), name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let d = nofollow(dst_dir.as_fd(), name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                self.stats.entries += 1;
                return Ok(Some((s, d, st)));
            }
            FileType::RegularFile => {
                let s = nofollow(src_dir.as_fd(), name, OFlags::RDONLY)?;
                let d = rustix::fs::openat(
                    dst_dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut from = std::fs::File::from(s);
                let mut to = std::fs::File::from(d);
                let n = std::io::copy(&mut from, &mut to)
                    .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
                self.stats.bytes += n;
                self.stats.entries += 1;
                self.set_metadata(&OwnedFd::from(to), None, &st, Some(&OwnedFd::from(from)))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src_dir, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dst_dir, name)?;
                self.stats.entries += 1;
                self.set_metadata(dst_dir, Some((src_dir, name)), &st, None)?;
            }
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                rustix::fs::mknodat(
                    dst_dir,
                    name,
                    kind,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    st.st_rdev,
                )?;
                self.stats.entries += 1;
                self.set_metadata(dst_dir, Some((src_dir, name)), &st, None)?;
            }
            // A socket is only meaningful with its listener: not copied (as tar).
            FileType::Socket | FileType::Unknown => {}
        }
        Ok(None)
    }

    /// Owner, mode, xattrs and times of `st` onto the new object: `fd` itself (an open
    /// file or directory, `src` its source), or `entry` = `(its source dir, its name)`
    /// inside the dest dir `fd` for objects that cannot be opened (symlinks, devices).
    fn set_metadata(
        &mut self,
        fd: &OwnedFd,
        entry: Option<(&OwnedFd, &OsStr)>,
        st: &Stat,
        src: Option<&OwnedFd>,
    ) -> Result<(), Errno> {
        let owner = Some(rustix::fs::Uid::from_raw(st.st_uid));
        let group = Some(rustix::fs::Gid::from_raw(st.st_gid));
        let times = Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        match entry {
            None => {
                rustix::fs::fchown(fd, owner, group)?;
                // After chown, which clears set-id bits.
                rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
                if let Some(src) = src {
                    self.copy_xattrs_fd(src, fd)?;
                }
                rustix::fs::futimens(fd, &times)?;
            }
            Some((src_dir, name)) => {
                rustix::fs::chownat(fd, name, owner, group, AtFlags::SYMLINK_NOFOLLOW)?;
                let kind = FileType::from_raw_mode(st.st_mode);
                if kind != FileType::Symlink {
                    rustix::fs::chmodat(
                        fd,
                        name,
                        Mode::from_raw_mode(st.st_mode & 0o7777),
                        AtFlags::empty(),
                    )?;
                }
                self.copy_xattrs_path(&proc_entry(src_dir, name), &proc_entry(fd, name))?;
                rustix::fs::utimensat(fd, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        Ok(())
    }

    fn copy_xattrs_fd(&mut self, src: &OwnedFd, dst: &OwnedFd) -> Result<(), Errno> {
        let names = match rustix::fs::flistxattr(src, &mut self.buf[..]) {
            Ok(n) => self.buf[..n].to_vec(),
            Err(Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(e),
        };
        for name in xattr_names(&names) {
            let n = match rustix::fs::fgetxattr(src, name, &mut self.buf[..]) {
                Ok(n) => n,
                Err(Errno::NODATA) => continue,
                Err(e) => return Err(e),
            };
            tolerate(
                name,
                rustix::fs::fsetxattr(dst, name, &self.buf[..n], XattrFlags::empty()),
            )?;
        }
        Ok(())
    }

    fn copy_xattrs_path(&mut self, src: &Path, dst: &Path) -> Result<(), Errno> {
        let names = match rustix::fs::llistxattr(src, &mut self.buf[..]) {
            Ok(n) => self.buf[..n].to_vec(),
            Err(Errno::NOTSUP | Errno::PERM) => return Ok(()),
            Err(e) => return Err(e),
        };
        for name in xattr_names(&names) {
            let n = match rustix::fs::lgetxattr(src, name, &mut self.buf[..]) {
                Ok(n) => n,
                Err(Errno::NODATA) => continue,
                Err(e) => return Err(e),
            };
            tolerate(
                name,
                rustix::fs::lsetxattr(dst, name, &self.buf[..n], XattrFlags::empty()),
            )?;
        }
        Ok(())
    }
}

/// `/proc/self/fd/<dir>/<name>`: a path to an entry of an open directory that the
/// `l*xattr` calls take without following its last component.
fn proc_entry(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    use std::os::fd::AsRawFd;
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// The names of an xattr list, less overlayfs's own.
fn xattr_names(list: &[u8]) -> impl Iterator<Item = &OsStr> {
    list.split(|b| *b == 0)
        .filter(|n| !n.is_empty() && !n.starts_with(b"trusted.overlay."))
        .map(OsStr::from_bytes)
}

/// A destination that cannot hold an attribute (no xattr support; `security.*` or
/// `trusted.*` refused) loses it, as a tar copy would; any other failure is an error.
fn tolerate(name: &OsStr, result: Result<(), Errno>) -> Result<(), Errno> {
    match result {
        Err(Errno::NOTSUP) => Ok(()),
        Err(Errno::PERM | Errno::ACCESS) if !name.as_bytes().starts_with(b"user.") => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn set_user_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
        rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).is_ok()
    }

    fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 1024];
        let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
        Some(buf[..n].to_vec())
    }

    #[test]
    fn copies_a_tree_with_owners_modes_xattrs_links_and_times() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let dst = tmp.path().join("dst");
        fs::create_dir_all(src.join("sub/deeper")).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("file"), b"hello").unwrap();
        fs::write(src.join("sub/deeper/data"), vec![7u8; 100_000]).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::chown(src.join("file"), Some(1234), Some(5678)).unwrap();
        // After chown, which clears set-id bits.
        fs::set_permissions(src.join("file"), fs::Permissions::from_mode(0o4751)).unwrap();
        std::os::unix::fs::chown(&src, Some(999), Some(998)).unwrap();
        std::os::unix::fs::chown(src.join("sub"), Some(70), Some(71)).unwrap();
        std::os::unix::fs::symlink("../file", src.join("sub/link")).unwrap();
        std::os::unix::fs::lchown(src.join("sub/link"), Some(42), Some(43)).unwrap();
        fs::hard_link(src.join("file"), src.join("sub/hard")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        let xattrs = set_user_xattr(&src.join("file"), "user.pier", b"copied")
            && set_user_xattr(&src.join("sub"), "user.dir", b"too");
        // A fixed past mtime, to see it kept.
        let old = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 5,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 5,
            },
        };
        rustix::fs::utimensat(rustix::fs::CWD, src.join("sub"), &old, AtFlags::empty()).unwrap();
        rustix::fs::utimensat(rustix::fs::CWD, src.join("file"), &old, AtFlags::empty()).unwrap();

        let stats = copy_up(&src, &dst).unwrap();
        assert!(stats.copied);
        assert_eq!(stats.hardlinks, 1);
        assert_eq!(stats.bytes, 5 + 100_000);
        // file, sub, deeper, data, link, hard, fifo
        assert_eq!(stats.entries, 7);

        let root = fs::metadata(&dst).unwrap();
        assert_eq!(
            (root.uid(), root.gid(), root.mode() & 0o7777),
            (999, 998, 0o750)
        );
        let file = fs::metadata(dst.join("file")).unwrap();
        assert_eq!((file.uid(), file.gid()), (1234, 5678));
        assert_eq!(file.mode() & 0o7777, 0o4751, "set-uid kept after chown");
        assert_eq!(file.mtime(), 1_000_000_000);
        assert_eq!(fs::read(dst.join("file")).unwrap(), b"hello");
        assert_eq!(
            fs::read(dst.join("sub/deeper/data")).unwrap(),
            vec![7u8; 100_000]
        );
        let sub = fs::metadata(dst.join("sub")).unwrap();
        assert_eq!((sub.uid(), sub.gid(), sub.mtime()), (70, 71, 1_000_000_000));
        let link = fs::symlink_metadata(dst.join("sub/link")).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!((link.uid(), link.gid()), (42, 43));
        assert_eq!(
            fs::read_link(dst.join("sub/link")).unwrap(),
            Path::new("../file")
        );
        let hard = fs::metadata(dst.join("sub/hard")).unwrap();
        assert_eq!(hard.ino(), file.ino(), "a hardlink stays a hardlink");
        assert!(fs::symlink_metadata(dst.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        if xattrs {
            assert_eq!(
                get_xattr(&dst.join("file"), "user.pier").as_deref(),
                Some(&b"copied"[..])
            );
            assert_eq!(
                get_xattr(&dst.join("sub"), "user.dir").as_deref(),
                Some(&b"too"[..])
            );
        } else {
            eprintln!(
                "skipping the xattr checks: {} has no user xattrs",
                tmp.path().display()
            );
        }
    }

    #[test]
    fn security_capability_is_kept_and_overlay_attributes_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir(&src).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("ping"), b"x").unwrap();
        // VFS_CAP_REVISION_2 with cap_net_raw (bit 13) permitted and effective.
        let mut cap = vec![0u8; 20];
        cap[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
        cap[4..8].copy_from_slice(&(1u32 << 13).to_le_bytes());
        if !set_user_xattr(&src.join("ping"), "security.capability", &cap) {
            eprintln!("skipping: cannot set security.capability here");
            return;
        }
        let overlay = set_user_xattr(&src.join("ping"), "trusted.overlay.origin", b"x");
        copy_up(&src, &dst).unwrap();
        assert_eq!(
            get_xattr(&dst.join("ping"), "security.capability"),
            Some(cap)
        );
        if overlay {
            assert_eq!(get_xattr(&dst.join("ping"), "trusted.overlay.origin"), None);
        }
    }

    #[test]
    fn does_nothing_into_a_non_empty_volume_or_from_a_missing_source() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir(&src).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("image-file"), b"x").unwrap();
        fs::write(dst.join("user-data"), b"kept").unwrap();
        let stats = copy_up(&src, &dst).unwrap();
        assert!(!stats.copied);
        assert!(!dst.join("image-file").exists());
        fs::remove_file(dst.join("user-data")).unwrap();
        assert!(!copy_up(&tmp.path().join("missing"), &dst).unwrap().copied);
        assert!(!copy_up(&src.join("image-file"), &dst).unwrap().copied);
    }

    #[test]
    fn never_follows_a_symlink_out_of_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst, outside) = (
            tmp.path().join("src"),
            tmp.path().join("dst"),
            tmp.path().join("outside"),
        );
        fs::create_dir(&src).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"host data").unwrap();
        std::os::unix::fs::symlink(&outside, src.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), src.join("secret-link")).unwrap();
        copy_up(&src, &dst).unwrap();
        assert!(fs::symlink_metadata(dst.join("escape"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::symlink_metadata(dst.join("secret-link"))
            .unwrap()
            .file_type()
            .is_symlink());
        // Nothing of the outside was copied as content.
        let copied: Vec<_> = fs::read_dir(&dst)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(copied.len(), 2);
    }
}
