//! A volume's content as a tar stream: export, import and clone (Pier's backup
//! commands, beyond Docker).
//!
//! **Export** walks the volume through directory file descriptors (every step opened
//! with `O_NOFOLLOW`, so a symlink swapped in by a running container cannot lead the
//! walk out of the volume) and writes a GNU tar: the volume's root as `./`, owners,
//! modes, mtimes (whole seconds), `SCHILY.xattr.*` PAX records for every extended
//! attribute, hardlinks as link entries to the first path of the inode, sparse files as
//! GNU sparse entries (only their data is stored), symlinks, devices and fifos. Sockets
//! are left out, as GNU tar leaves them out: tar has no type for them.
//!
//! **Import** fills an *empty* directory from such a tar (or any tar: GNU, ustar, PAX).
//! Every entry is created relative to a directory descriptor reached one component at a
//! time with `O_NOFOLLOW`: an entry with `..`, an absolute path, or one whose parent is
//! a symlink (the "symlink, then a file through it" trick) is refused, never followed.
//! Hardlink targets are resolved the same way. Files are written with holes wherever a
//! 4 KiB block is all zeros, so sparse files stay sparse, whichever way the tar stored
//! them. Owners are set before modes (a chown clears set-uid bits), and directory
//! mtimes last. On any error the directory is emptied again and its own owner and mode
//! restored: an import is whole or not at all.
//!
//! **Clone** is an export piped into an import, through a pipe, without a temporary
//! file.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps, XattrFlags};

use crate::driver::VolumeError;

/// The PAX record prefix under which tar tools keep extended attributes.
const XATTR_PAX_PREFIX: &str = "SCHILY.xattr.";

/// The kernel's limits for one attribute list and one value (XATTR_LIST_MAX,
/// XATTR_SIZE_MAX): a buffer this big never gets ERANGE.
const XATTR_BUFFER: usize = 64 * 1024;

/// The block size below which zeros are written rather than left as a hole.
const HOLE_BLOCK: usize = 4096;

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> VolumeError {
    let context = context.into();
    move |e| VolumeError::io(context, e)
}

fn errno(context: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> VolumeError {
    let context = context.into();
    move |e| VolumeError::io(context, io::Error::from(e))
}

fn bad_archive(message: impl std::fmt::Display) -> VolumeError {
    VolumeError::InvalidParameter(format!("import: {message}"))
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_root(root: &Path) -> Result<OwnedFd, VolumeError> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno(format!("opening {}", root.display())))
}

/// The names in a directory, sorted (so that the same tree gives the same tar).
fn dir_names(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// `/proc/self/fd/N/NAME`: a path to `name` in `dir` for the calls that have no `*at`
/// form (the `l*xattr` family); the directory part is the descriptor, never re-walked.
fn fd_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    path.push(name);
    path
}

/// Is `root` an empty directory?
pub fn is_empty(root: &Path) -> Result<bool, VolumeError> {
    let dir = open_root(root)?;
    Ok(dir_names(dir.as_fd())
        .map_err(errno(format!("reading {}", root.display())))?
        .is_empty())
}

// ---------------------------------------------------------------------------------------
// Export

/// Writes the content of the directory `root` to `out` as a tar stream.
pub fn export(root: &Path, out: impl Write) -> Result<(), VolumeError> {
    let dir = open_root(root)?;
    let mut exporter = Exporter {
        builder: tar::Builder::new(out),
        inodes: HashMap::new(),
        xattr_buffer: vec![0; XATTR_BUFFER],
        value_buffer: vec![0; XATTR_BUFFER],
    };
    exporter.builder.mode(tar::HeaderMode::Complete);
    exporter.builder.sparse(true);
    let stat = rustix::fs::fstat(&dir).map_err(errno(format!("stat {}", root.display())))?;
    let xattrs = exporter
        .xattrs(dir.as_fd(), None)
        .map_err(errno(format!("reading the xattrs of {}", root.display())))?;
    exporter
        .append_dir(Path::new("."), &stat, &xattrs)
        .map_err(io_error("writing the archive"))?;
    exporter.walk(dir.as_fd(), Path::new(""))?;
    exporter
        .builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io_error("writing the archive"))
}

struct Exporter<W: Write> {
    builder: tar::Builder<W>,
    /// The archive path of the first link to each multiply linked inode.
    inodes: HashMap<(u64, u64), PathBuf>,
    xattr_buffer: Vec<u8>,
    value_buffer: Vec<u8>,
}

/// A tar header filled from `stat` (type, owner, mode, mtime; size 0).
fn header_of(stat: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(stat.st_mode & 0o7777);
    header.set_uid(u64::from(stat.st_uid));
    header.set_gid(u64::from(stat.st_gid));
    header.set_mtime(u64::try_from(stat.st_mtime).unwrap_or(0));
    header.set_size(0);
    header
}

impl<W: Write> Exporter<W> {
    /// The extended attributes of `name` in `dir` (not following a symlink), or of
    /// `dir` itself when `name` is `None`.
    fn xattrs(
        &mut self,
        dir: BorrowedFd<'_>,
        name: Option<&OsStr>,
    ) -> rustix::io::Result<Vec<(String, Vec<u8>)>> {
        let path = name.map(|name| fd_path(dir, name));
        let listed = match &path {
            Some(path) => rustix::fs::llistxattr(path, &mut self.xattr_buffer[..]),
            None => rustix::fs::flistxattr(dir, &mut self.xattr_buffer[..]),
        };
        let len = match listed {
            Ok(len) => len,
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for attribute in self.xattr_buffer[..len].split(|&b| b == 0) {
            if attribute.is_empty() {
                continue;
            }
            let attribute = OsStr::from_bytes(attribute);
            let got = match &path {
                Some(path) => rustix::fs::lgetxattr(path, attribute, &mut self.value_buffer[..]),
                None => rustix::fs::fgetxattr(dir, attribute, &mut self.value_buffer[..]),
            };
            let size = match got {
                Ok(size) => size,
                // Removed since it was listed.
                Err(rustix::io::Errno::NODATA) => continue,
                Err(e) => return Err(e),
            };
            out.push((
                attribute.to_string_lossy().into_owned(),
                self.value_buffer[..size].to_vec(),
            ));
        }
        Ok(out)
    }

    fn append_xattrs(&mut self, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(name, value)| (format!("{XATTR_PAX_PREFIX}{name}"), value.as_slice()))
            .collect();
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    fn append_dir(
        &mut self,
        path: &Path,
        stat: &Stat,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        self.append_xattrs(xattrs)?;
        let mut header = header_of(stat, tar::EntryType::Directory);
        self.builder.append_data(&mut header, path, io::empty())
    }

    /// Appends everything under `dir` (whose archive path is `prefix`), depth first.
    fn walk(&mut self, dir: BorrowedFd<'_>, prefix: &Path) -> Result<(), VolumeError> {
        let shown = |name: &OsStr| prefix.join(name).display().to_string();
        let names = dir_names(dir).map_err(errno(format!("reading ./{}", prefix.display())))?;
        for name in names {
            let path = prefix.join(&name);
            let stat = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno(format!("stat ./{}", shown(&name))))?;
            let kind = FileType::from_raw_mode(stat.st_mode);
            if kind == FileType::Socket {
                continue;
            }
            let xattrs = self
                .xattrs(dir, Some(&name))
                .map_err(errno(format!("reading the xattrs of ./{}", shown(&name))))?;
            let written = match kind {
                FileType::Directory => {
                    self.append_dir(&path, &stat, &xattrs)
                        .map_err(io_error("writing the archive"))?;
                    let child = open_dir_at(dir, &name)
                        .map_err(errno(format!("opening ./{}", shown(&name))))?;
                    self.walk(child.as_fd(), &path)?;
                    Ok(())
                }
                FileType::RegularFile => self.append_file(dir, &name, &path, &stat, &xattrs)?,
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(dir, &name, Vec::new())
                        .map_err(errno(format!("readlink ./{}", shown(&name))))?;
                    let target = PathBuf::from(OsStr::from_bytes(target.to_bytes()));
                    self.append_xattrs(&xattrs).and_then(|()| {
                        let mut header = header_of(&stat, tar::EntryType::Symlink);
                        self.builder.append_link(&mut header, &path, &target)
                    })
                }
                FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                    let entry_type = match kind {
                        FileType::CharacterDevice => tar::EntryType::Char,
                        FileType::BlockDevice => tar::EntryType::Block,
                        _ => tar::EntryType::Fifo,
                    };
                    let mut header = header_of(&stat, entry_type);
                    let numbered = if kind == FileType::Fifo {
                        Ok(())
                    } else {
                        header
                            .set_device_major(rustix::fs::major(stat.st_rdev))
                            .and_then(|()| header.set_device_minor(rustix::fs::minor(stat.st_rdev)))
                    };
                    numbered
                        .and_then(|()| self.append_xattrs(&xattrs))
                        .and_then(|()| self.builder.append_data(&mut header, &path, io::empty()))
                }
                _ => Ok(()),
            };
            written.map_err(io_error("writing the archive"))?;
        }
        Ok(())
    }

    /// A regular file: a link entry if its inode was archived already, else its data
    /// (GNU sparse when it has holes).
    fn append_file(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        stat: &Stat,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<io::Result<()>, VolumeError> {
        if stat.st_nlink > 1 {
            let key = (stat.st_dev, stat.st_ino);
            if let Some(first) = self.inodes.get(&key) {
                let first = first.clone();
                let mut header = header_of(stat, tar::EntryType::Link);
                return Ok(self.builder.append_link(&mut header, path, first));
            }
            self.inodes.insert(key, path.to_path_buf());
        }
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(errno(format!("opening ./{}", path.display())))?;
        let mut file = File::from(fd);
        Ok(self
            .append_xattrs(xattrs)
            .and_then(|()| self.builder.append_file(path, &mut file)))
    }
}

// ---------------------------------------------------------------------------------------
// Import

/// Fills the empty directory `root` from the tar stream `input`. On error `root` is left
/// as it was: empty, with its own owner and mode.
pub fn import(root: &Path, input: impl Read) -> Result<(), VolumeError> {
    let root_fd = open_root(root)?;
    let before = rustix::fs::fstat(&root_fd).map_err(errno(format!("stat {}", root.display())))?;
    if !dir_names(root_fd.as_fd())
        .map_err(errno(format!("reading {}", root.display())))?
        .is_empty()
    {
        return Err(VolumeError::Conflict(format!(
            "import: {} is not empty",
            root.display()
        )));
    }
    let result = Importer {
        root: root_fd.as_fd(),
        parent_cache: None,
        dir_times: Vec::new(),
    }
    .run(input);
    if result.is_err() {
        empty_again(root, root_fd.as_fd(), &before);
    }
    result
}

/// Removes what a failed import made, and gives the root back its owner and mode.
fn empty_again(root: &Path, root_fd: BorrowedFd<'_>, before: &Stat) {
    if let Ok(names) = dir_names(root_fd) {
        for name in names {
            let path = root.join(&name);
            // std's remove_dir_all does not follow symlinks; a plain file is unlinked.
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
    let _ = rustix::fs::fchown(
        root_fd,
        Some(rustix::fs::Uid::from_raw(before.st_uid)),
        Some(rustix::fs::Gid::from_raw(before.st_gid)),
    );
    let _ = rustix::fs::fchmod(root_fd, Mode::from_raw_mode(before.st_mode & 0o7777));
}

struct Importer<'a> {
    root: BorrowedFd<'a>,
    /// The last parent directory opened, by its components: entries come grouped by
    /// directory, so most need no new walk.
    parent_cache: Option<(Vec<OsString>, OwnedFd)>,
    /// Directories and their mtimes, set when everything inside them is written.
    dir_times: Vec<(Vec<OsString>, u64)>,
}

/// The components of an entry's path, or why it is refused. `.` components are dropped;
/// the root itself is the empty list.
fn entry_components(path: &Path) -> Result<Vec<OsString>, VolumeError> {
    let mut components = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => components.push(name.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(bad_archive(format!(
                    "entry {:?} has a '..' component",
                    path.display()
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad_archive(format!(
                    "entry {:?} is an absolute path",
                    path.display()
                )))
            }
        }
    }
    Ok(components)
}

fn shown(components: &[OsString]) -> String {
    let mut path = PathBuf::from(".");
    path.extend(components);
    path.display().to_string()
}

fn uid_gid(header: &tar::Header) -> io::Result<(rustix::fs::Uid, rustix::fs::Gid)> {
    let id = |v: u64| u32::try_from(v).map_err(|_| io::Error::other("owner id out of range"));
    Ok((
        rustix::fs::Uid::from_raw(id(header.uid()?)?),
        rustix::fs::Gid::from_raw(id(header.gid()?)?),
    ))
}

fn timestamps(mtime: u64) -> Timestamps {
    let time = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

impl Importer<'_> {
    fn run(mut self, input: impl Read) -> Result<(), VolumeError> {
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(|e| bad_archive(format!("reading the tar stream: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| bad_archive(format!("reading the tar stream: {e}")))?;
            self.entry(&mut entry)?;
        }
        // Innermost first, so that setting a directory's mtime is not undone by
        // setting its children's.
        self.parent_cache = None;
        for (components, mtime) in self.dir_times.iter().rev() {
            let dir = self.resolve(components, false)?;
            rustix::fs::futimens(&dir, &timestamps(*mtime))
                .map_err(errno(format!("setting the mtime of {}", shown(components))))?;
        }
        Ok(())
    }

    /// The directory at `components` below the root, each step without following a
    /// symlink; missing directories are made (mode 0755) when `create`, as tar does.
    fn resolve(&self, components: &[OsString], create: bool) -> Result<OwnedFd, VolumeError> {
        let mut dir = rustix::io::fcntl_dupfd_cloexec(self.root, 0)
            .map_err(errno("duplicating the volume's descriptor"))?;
        for (depth, name) in components.iter().enumerate() {
            let opened = match open_dir_at(dir.as_fd(), name) {
                Err(rustix::io::Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => {
                            return Err(errno(format!("mkdir {}", shown(&components[..=depth])))(e))
                        }
                    }
                    open_dir_at(dir.as_fd(), name)
                }
                other => other,
            };
            dir = opened.map_err(|e| match e {
                rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => bad_archive(format!(
                    "{} is not a directory (a symlink or a file), and entries below it are \
                     not followed through it",
                    shown(&components[..=depth])
                )),
                e => errno(format!("opening {}", shown(&components[..=depth])))(e),
            })?;
        }
        Ok(dir)
    }

    /// The parent directory of an entry, from the cache when it is the last one's.
    fn parent(&mut self, components: &[OsString]) -> Result<BorrowedFd<'_>, VolumeError> {
        let hit = matches!(&self.parent_cache, Some((cached, _)) if cached == components);
        if !hit {
            let fd = self.resolve(components, true)?;
            self.parent_cache = Some((components.to_vec(), fd));
        }
        Ok(self
            .parent_cache
            .as_ref()
            .map(|(_, fd)| fd.as_fd())
            .unwrap())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), VolumeError> {
        let path = entry
            .path()
            .map_err(|e| bad_archive(format!("an entry's path: {e}")))?
            .into_owned();
        let (sparse_name, sparse_size) =
            pax_sparse(entry).map_err(|e| bad_archive(format!("entry {}: {e}", path.display())))?;
        let components = entry_components(sparse_name.as_deref().unwrap_or(&path))?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let what = shown(&components);
        let bad_header = |e: io::Error| bad_archive(format!("entry {what}: {e}"));
        let (uid, gid) = uid_gid(&header).map_err(bad_header)?;
        let mode = Mode::from_raw_mode(header.mode().map_err(bad_header)? & 0o7777);
        let mtime = header.mtime().map_err(bad_header)?;
        let xattrs = pax_xattrs(entry).map_err(bad_header)?;
        let link_name = match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => Some(
                entry
                    .link_name()
                    .map_err(bad_header)?
                    .ok_or_else(|| bad_archive(format!("entry {what}: a link without a target")))?
                    .into_owned(),
            ),
            _ => None,
        };

        let Some((name, parent_components)) = components.split_last() else {
            // The root itself (`./`): its owner, mode and xattrs are the volume's.
            if !kind.is_dir() {
                return Err(bad_archive("the root entry (./) is not a directory"));
            }
            return self.set_dir_metadata(&[], self.root, uid, gid, mode, &xattrs, mtime);
        };
        let name = name.clone();
        let parent_components = parent_components.to_vec();
        let parent = self.parent(&parent_components)?;
        let parent = rustix::io::fcntl_dupfd_cloexec(parent, 0)
            .map_err(errno("duplicating a directory descriptor"))?;
        let parent = parent.as_fd();

        // An entry for a name that exists already replaces it, as tar does, except a
        // directory, which is kept (its metadata updated).
        if let Ok(existing) = rustix::fs::statat(parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
            let existing_dir = FileType::from_raw_mode(existing.st_mode) == FileType::Directory;
            if !(existing_dir && kind.is_dir()) {
                rustix::fs::unlinkat(
                    parent,
                    &name,
                    if existing_dir {
                        AtFlags::REMOVEDIR
                    } else {
                        AtFlags::empty()
                    },
                )
                .map_err(errno(format!("replacing {what}")))?;
            }
        }

        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(parent, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(errno(format!("mkdir {what}"))(e)),
                }
                let dir = open_dir_at(parent, &name).map_err(errno(format!("opening {what}")))?;
                self.set_dir_metadata(&components, dir.as_fd(), uid, gid, mode, &xattrs, mtime)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    parent,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno(format!("creating {what}")))?;
                let file = File::from(fd);
                match sparse_size {
                    Some(real_size) => write_pax_sparse(entry, &file, real_size),
                    None => write_with_holes(entry, &file, 0).and_then(|end| file.set_len(end)),
                }
                .map_err(io_error(format!("writing {what}")))?;
                rustix::fs::fchown(&file, Some(uid), Some(gid))
                    .and_then(|()| rustix::fs::fchmod(&file, mode))
                    .map_err(errno(format!("setting the owner and mode of {what}")))?;
                for (key, value) in &xattrs {
                    rustix::fs::fsetxattr(&file, key.as_str(), value, XattrFlags::empty())
                        .map_err(errno(format!("setting xattr {key} on {what}")))?;
                }
                rustix::fs::futimens(&file, &timestamps(mtime))
                    .map_err(errno(format!("setting the mtime of {what}")))
            }
            tar::EntryType::Symlink => {
                let target = link_name.unwrap_or_default();
                rustix::fs::symlinkat(target.as_os_str(), parent, &name)
                    .map_err(errno(format!("symlink {what}")))?;
                self.set_node_metadata(parent, &name, &what, uid, gid, None, &xattrs, mtime)
            }
            tar::EntryType::Link => {
                let target = link_name.unwrap_or_default();
                let target_components = entry_components(&target)?;
                let Some((target_name, target_parent)) = target_components.split_last() else {
                    return Err(bad_archive(format!("entry {what}: a hardlink to the root")));
                };
                let target_dir = self.resolve(target_parent, false)?;
                rustix::fs::linkat(&target_dir, target_name, parent, &name, AtFlags::empty())
                    .map_err(|e| {
                        bad_archive(format!(
                            "entry {what}: hardlink to {}: {}",
                            shown(&target_components),
                            io::Error::from(e)
                        ))
                    })
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = header.device_major().map_err(bad_header)?.unwrap_or(0);
                        let minor = header.device_minor().map_err(bad_header)?.unwrap_or(0);
                        let file_type = if kind == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (file_type, rustix::fs::makedev(major, minor))
                    }
                };
                rustix::fs::mknodat(parent, &name, file_type, Mode::from_raw_mode(0o600), dev)
                    .map_err(errno(format!("mknod {what}")))?;
                self.set_node_metadata(parent, &name, &what, uid, gid, Some(mode), &xattrs, mtime)
            }
            other => Err(bad_archive(format!(
                "entry {what}: unsupported entry type {:?}",
                other.as_byte() as char
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set_dir_metadata(
        &mut self,
        components: &[OsString],
        dir: BorrowedFd<'_>,
        uid: rustix::fs::Uid,
        gid: rustix::fs::Gid,
        mode: Mode,
        xattrs: &[(String, Vec<u8>)],
        mtime: u64,
    ) -> Result<(), VolumeError> {
        let what = shown(components);
        rustix::fs::fchown(dir, Some(uid), Some(gid))
            .and_then(|()| rustix::fs::fchmod(dir, mode))
            .map_err(errno(format!("setting the owner and mode of {what}")))?;
        for (key, value) in xattrs {
            rustix::fs::fsetxattr(dir, key.as_str(), value, XattrFlags::empty())
                .map_err(errno(format!("setting xattr {key} on {what}")))?;
        }
        self.dir_times.push((components.to_vec(), mtime));
        Ok(())
    }

    /// Owner, mode (not for symlinks: they have none), xattrs and mtime of a node that
    /// has no descriptor of its own (symlinks, devices, fifos).
    #[allow(clippy::too_many_arguments)]
    fn set_node_metadata(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        what: &str,
        uid: rustix::fs::Uid,
        gid: rustix::fs::Gid,
        mode: Option<Mode>,
        xattrs: &[(String, Vec<u8>)],
        mtime: u64,
    ) -> Result<(), VolumeError> {
        rustix::fs::chownat(
            parent,
            name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno(format!("setting the owner of {what}")))?;
        if let Some(mode) = mode {
            rustix::fs::chmodat(parent, name, mode, AtFlags::empty())
                .map_err(errno(format!("setting the mode of {what}")))?;
        }
        let path = fd_path(parent, name);
        for (key, value) in xattrs {
            rustix::fs::lsetxattr(&path, key.as_str(), value, XattrFlags::empty())
                .map_err(errno(format!("setting xattr {key} on {what}")))?;
        }
        rustix::fs::utimensat(parent, name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno(format!("setting the mtime of {what}")))
    }
}

/// A PAX sparse file's real name and size (format 1.0); other PAX sparse formats are
/// refused rather than imported as their raw encoding.
fn pax_sparse<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> io::Result<(Option<PathBuf>, Option<u64>)> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok((None, None));
    };
    let mut records = HashMap::new();
    for extension in extensions {
        let extension = extension?;
        if let Ok(key) = extension.key() {
            if key.starts_with("GNU.sparse.") {
                records.insert(key.to_string(), extension.value_bytes().to_vec());
            }
        }
    }
    if records.is_empty() {
        return Ok((None, None));
    }
    let text = |key: &str| {
        records
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    if text("GNU.sparse.major").as_deref() != Some("1")
        || text("GNU.sparse.minor").as_deref() != Some("0")
    {
        return Err(io::Error::other(
            "PAX sparse format 0.x is not supported (GNU tar writes 1.0 with --sparse-version=1.0, \
             its default for PAX archives)",
        ));
    }
    let name = records
        .get("GNU.sparse.name")
        .map(|v| PathBuf::from(OsStr::from_bytes(v)));
    let size = text("GNU.sparse.realsize")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("a PAX sparse file without GNU.sparse.realsize"))?;
    Ok((name, Some(size)))
}

/// The entry's `SCHILY.xattr.*` PAX records, as (attribute name, value).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for extension in extensions {
            let extension = extension?;
            let Ok(key) = extension.key() else { continue };
            if let Some(name) = key.strip_prefix(XATTR_PAX_PREFIX) {
                out.push((name.to_string(), extension.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Copies `input` into `file` from `offset` on, leaving a hole for every all-zero
/// block; answers the offset after the last byte.
fn write_with_holes(input: &mut impl Read, file: &File, mut offset: u64) -> io::Result<u64> {
    let mut buffer = vec![0u8; 16 * HOLE_BLOCK];
    loop {
        // Fill the buffer (or reach the end), so that blocks stay aligned in the file.
        let mut filled = 0;
        while filled < buffer.len() {
            match input.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        for block in buffer[..filled].chunks(HOLE_BLOCK) {
            if block.iter().any(|&b| b != 0) {
                file.write_all_at(block, offset)?;
            }
            // The offset comes from the archive's sparse map: refuse one past u64.
            offset = offset
                .checked_add(block.len() as u64)
                .ok_or_else(|| io::Error::other("sparse offset out of range"))?;
        }
        if filled < buffer.len() {
            return Ok(offset);
        }
    }
}

/// The data of a PAX sparse file, format 1.0 (GNU tar's with `--sparse` in PAX
/// archives): a text map (count, then offset and size of each data segment, one
/// decimal number a line, padded to 512 bytes), then the segments one after another.
fn write_pax_sparse(input: &mut impl Read, file: &File, real_size: u64) -> io::Result<()> {
    let mut consumed = 0u64;
    let mut read_number = |input: &mut dyn Read| -> io::Result<u64> {
        let mut digits = Vec::new();
        loop {
            let mut byte = [0u8];
            input.read_exact(&mut byte)?;
            consumed += 1;
            if byte[0] == b'\n' {
                break;
            }
            if digits.len() > 20 {
                return Err(io::Error::other("bad PAX sparse map"));
            }
            digits.push(byte[0]);
        }
        std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| io::Error::other("bad PAX sparse map"))
    };
    let count = read_number(input)?;
    let mut segments = Vec::new();
    for _ in 0..count {
        let offset = read_number(input)?;
        let size = read_number(input)?;
        segments.push((offset, size));
    }
    let padding = consumed.next_multiple_of(512) - consumed;
    io::copy(&mut input.take(padding), &mut io::sink())?;
    for (offset, size) in segments {
        let end = write_with_holes(&mut input.take(size), file, offset)?;
        if offset.checked_add(size) != Some(end) || end > real_size {
            return Err(io::Error::other("PAX sparse data shorter than its map"));
        }
    }
    file.set_len(real_size)
}

// ---------------------------------------------------------------------------------------
// Clone

/// Copies the content of `source` into the empty directory `target`: an export piped
/// into an import (the export on a thread of its own), no temporary file.
pub fn clone_tree(source: &Path, target: &Path) -> Result<(), VolumeError> {
    let (reader, writer) = rustix::pipe::pipe().map_err(errno("making a pipe"))?;
    let source = source.to_path_buf();
    let exporter = std::thread::spawn(move || export(&source, File::from(writer)));
    let imported = import(target, File::from(reader));
    let exported = exporter
        .join()
        .unwrap_or_else(|_| Err(VolumeError::Driver("clone: the export panicked".into())));
    // The export's error explains an import that ended early (a broken stream).
    match (exported, imported) {
        (Err(e), _) => {
            // The import may have succeeded on a stream cut short; never keep half.
            if let Ok(fd) = open_root(target) {
                if let Ok(stat) = rustix::fs::fstat(&fd) {
                    empty_again(target, fd.as_fd(), &stat);
                }
            }
            Err(e)
        }
        (Ok(()), result) => result,
    }
}

#[cfg(test)]
mod tests;
