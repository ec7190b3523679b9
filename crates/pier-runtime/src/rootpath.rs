//! The one resolver of paths inside a container's root, shared by the runtime (mount
//! targets, device nodes, `/dev` links, the working directory) and pierd (files it
//! reads from an image).
//!
//! Lookups go through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the kernel
//! resolves `..` and absolute symlinks as if the root were `/`, refuses `/proc/…/fd/N`
//! style magic links, and fails a symlink loop with ELOOP instead of handing the rest
//! of the path to the host. What must be created (a missing mount point, the cwd) is
//! made one component at a time with `*at` calls on directories resolved the same
//! way, so nothing is ever created outside the root.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Linux's own limit (MAXSYMLINKS) on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// What to do with components of a path that do not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Fail with ENOENT.
    Fail,
    /// Create directories (mode, and owner when given).
    Dirs {
        mode: u32,
        owner: Option<(u32, u32)>,
    },
    /// Create directories up to the last component, and an empty file as the last.
    File,
}

/// A directory that acts as `/` for every path resolved through it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// An object resolved inside a [`Root`], held by an `O_PATH` descriptor so that it
/// cannot be swapped for a symlink between lookup and use.
#[derive(Debug)]
pub struct Resolved {
    fd: OwnedFd,
    /// The path asked for, for messages.
    asked: PathBuf,
}

impl Root {
    /// Opens `path` (a trusted host path) as a root.
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open root {}", path.display()), e.into()))?;
        // The kernel's name for it, so that resolved objects' paths can be made
        // relative to it.
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap_or_else(|_| path.to_path_buf());
        Ok(Root { fd, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `path` inside the root with `flags` (`O_CLOEXEC` is added).
    pub fn open_at(&self, path: &Path, flags: OFlags) -> Result<OwnedFd> {
        openat2_retry(self.fd.as_fd(), relative(path), flags | OFlags::CLOEXEC)
            .map_err(|e| self.error(path, e))
    }

    /// An `O_PATH` handle on `path` inside the root.
    pub fn resolve(&self, path: &Path) -> Result<Resolved> {
        let fd = self.open_at(path, OFlags::PATH)?;
        Ok(Resolved {
            fd,
            asked: path.to_path_buf(),
        })
    }

    /// [`resolve`](Self::resolve), creating what is missing as `missing` says.
    pub fn resolve_or_create(&self, path: &Path, missing: Missing) -> Result<Resolved> {
        let fd = match openat2_retry(self.fd.as_fd(), relative(path), OFlags::PATH) {
            Err(Errno::NOENT) if missing != Missing::Fail => self.walk(path, missing),
            other => other,
        }
        .map_err(|e| self.error(path, e))?;
        Ok(Resolved {
            fd,
            asked: path.to_path_buf(),
        })
    }

    /// Reads a file of the root into a string.
    pub fn read_to_string(&self, path: &Path) -> Result<String> {
        use std::io::Read;
        let fd = self.open_at(path, OFlags::RDONLY)?;
        let mut text = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::io(
                    format!("read {} in {}", path.display(), self.path.display()),
                    e,
                )
            })?;
        Ok(text)
    }

    fn error(&self, path: &Path, errno: Errno) -> Error {
        let why = match errno {
            Errno::LOOP => {
                " (ELOOP: a symlink loop, too many symlinks, or a /proc magic link: refused)"
            }
            Errno::XDEV => " (leads outside the root: refused)",
            _ => "",
        };
        Error::io(
            format!(
                "resolve {} inside {}{why}",
                path.display(),
                self.path.display()
            ),
            errno.into(),
        )
    }

    /// Resolves `path` component by component, creating missing ones. Symlinks are
    /// followed by hand, inside the root; every step is an `*at` call on a directory
    /// already resolved, and never follows a link itself.
    fn walk(&self, path: &Path, missing: Missing) -> std::result::Result<OwnedFd, Errno> {
        let mut queue: VecDeque<OsString> = components(path);
        // The directories resolved so far, innermost last (a `..` pops one).
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        let mut last_fd: Option<OwnedFd> = None;
        while let Some(name) = queue.pop_front() {
            last_fd = None;
            if name == ".." {
                stack.pop();
                continue;
            }
            let parent = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
            let is_last = queue.is_empty();
            let fd = match open_nofollow(parent, &name) {
                Err(Errno::NOENT) => create_component(parent, &name, missing, is_last)?,
                other => other?,
            };
            let st = rustix::fs::fstat(&fd)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::LOOP);
                    }
                    // /proc's fd, cwd, exe and root links are magic: their text is not
                    // where they lead. Nothing is created through procfs anyway.
                    if rustix::fs::fstatfs(parent)?.f_type == rustix::fs::PROC_SUPER_MAGIC {
                        return Err(Errno::LOOP);
                    }
                    let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
                    let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
                    if target.is_absolute() {
                        stack.clear();
                    }
                    for c in components(&target).into_iter().rev() {
                        queue.push_front(c);
                    }
                }
                FileType::Directory => stack.push(fd),
                _ if is_last => last_fd = Some(fd),
                _ => return Err(Errno::NOTDIR),
            }
        }
        match last_fd {
            Some(fd) => Ok(fd),
            None => match stack.pop() {
                Some(fd) => Ok(fd),
                None => openat2_retry(self.fd.as_fd(), Path::new("."), OFlags::PATH),
            },
        }
    }
}

impl Resolved {
    /// `/proc/self/fd/N`: a path the kernel resolves to exactly this object, for calls
    /// that take only paths (mount(2), chmod, chown). Valid while `self` lives.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Where the object is now, as the kernel names it (for messages and for paths
    /// kept past pivot_root).
    pub fn real_path(&self) -> PathBuf {
        std::fs::read_link(self.proc_path()).unwrap_or_else(|_| self.asked.clone())
    }

    pub fn asked(&self) -> &Path {
        &self.asked
    }

    pub fn file_type(&self) -> Result<FileType> {
        let st = rustix::fs::fstat(&self.fd)
            .map_err(|e| Error::io(format!("stat {}", self.asked.display()), e.into()))?;
        Ok(FileType::from_raw_mode(st.st_mode))
    }

    /// The path of the object relative to `root` (its real path with the root's prefix
    /// taken off), `/`-rooted as the container sees it.
    pub fn path_in(&self, root: &Root) -> PathBuf {
        let real = self.real_path();
        match real.strip_prefix(&root.path) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => real,
        }
    }

    /// Rewrites `/proc/self/fd/N` in an error's context to the path that was asked for.
    pub fn explain(&self, err: Error) -> Error {
        match err {
            Error::Io { context, cause } => Error::Io {
                context: context.replace(
                    &self.proc_path().display().to_string(),
                    &self.asked.display().to_string(),
                ),
                cause,
            },
            other => other,
        }
    }
}

impl AsFd for Resolved {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn openat2_retry(dir: BorrowedFd<'_>, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE) {
            // The kernel asks for a retry when a rename raced the lookup.
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// One component under `dir`, without following it if it is a symlink.
fn open_nofollow(dir: BorrowedFd<'_>, name: &OsString) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name.as_os_str(),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn create_component(
    dir: BorrowedFd<'_>,
    name: &OsString,
    missing: Missing,
    is_last: bool,
) -> rustix::io::Result<OwnedFd> {
    match missing {
        Missing::Fail => Err(Errno::NOENT),
        Missing::File if is_last => {
            // O_EXCL: never opens (or follows) something that appeared meanwhile.
            match rustix::fs::openat(
                dir,
                name.as_os_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            ) {
                Ok(_) | Err(Errno::EXIST) => open_nofollow(dir, name),
                Err(e) => Err(e),
            }
        }
        Missing::File => mkdir_component(dir, name, 0o755, None),
        Missing::Dirs { mode, owner } => mkdir_component(dir, name, mode, owner),
    }
}

fn mkdir_component(
    dir: BorrowedFd<'_>,
    name: &OsString,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name.as_os_str(), Mode::from_raw_mode(mode)) {
        Ok(()) => {
            if let Some((uid, gid)) = owner {
                rustix::fs::chownat(
                    dir,
                    name.as_os_str(),
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
        }
        // Made meanwhile: whatever it is, it is resolved like any other component.
        Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    open_nofollow(dir, name)
}

/// The path without its leading `/`, for lookups relative to the root.
/// The resolver at descriptor level, for callers that hold a root's directory fd
/// themselves (pierd's `docker cp`): `path` opened inside `root` with `flags`, the
/// same `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` lookup as [`Root::open_at`].
/// An empty path is the root itself.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let path = relative(path);
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    openat2_retry(root, path, flags)
}

fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

/// Normal and `..` components; `/` and `.` say nothing inside a root.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from_vec(b"..".to_vec())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const DIRS: Missing = Missing::Dirs {
        mode: 0o755,
        owner: None,
    };

    /// A root beside a "host" directory that links in the root point at.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let host = dir.path().join("host");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        (dir, root, host)
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let (_dir, root_path, host) = setup();
        symlink("/a", root_path.join("abs")).unwrap();
        symlink("../../../../..", root_path.join("a/up")).unwrap();
        symlink(&host, root_path.join("tohost")).unwrap();
        let root = Root::open(&root_path).unwrap();
        let canon = root_path.canonicalize().unwrap();
        for (asked, real) in [("/a/b", "a/b"), ("/abs/b", "a/b"), ("/a/up/a", "a")] {
            let r = root.resolve(Path::new(asked)).unwrap();
            assert_eq!(r.real_path(), canon.join(real), "{asked}");
            assert_eq!(r.path_in(&root), Path::new("/").join(real), "{asked}");
        }
        // A link naming a host directory names the same path inside the root, and
        // what is created through it is created there.
        let made = root
            .resolve_or_create(Path::new("/tohost/x/y"), DIRS)
            .unwrap();
        assert!(made.real_path().starts_with(&canon), "{made:?}");
        assert!(std::fs::read_dir(&host).unwrap().next().is_none());
        let file = root
            .resolve_or_create(Path::new("/tohost/etc/hosts"), Missing::File)
            .unwrap();
        assert_eq!(file.file_type().unwrap(), FileType::RegularFile);
        assert!(std::fs::read_dir(&host).unwrap().next().is_none());
    }

    #[test]
    fn loops_fail_with_eloop_and_create_nothing() {
        let (dir, root_path, host) = setup();
        symlink("loop", root_path.join("etc")).unwrap();
        symlink("etc", root_path.join("loop")).unwrap();
        symlink("self", root_path.join("a/self")).unwrap();
        let root = Root::open(&root_path).unwrap();
        for (path, missing) in [
            ("/etc/hosts", Missing::File),
            ("/etc/x/y", DIRS),
            ("/a/self/z", DIRS),
            ("/etc", Missing::Fail),
        ] {
            let err = root
                .resolve_or_create(Path::new(path), missing)
                .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{path}: {err}");
            let text = err.to_string();
            assert!(
                text.contains(path) && text.contains("ELOOP: a symlink loop"),
                "{text}"
            );
        }
        assert!(std::fs::read_dir(&host).unwrap().next().is_none());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["host", "root"]);
    }

    #[test]
    fn magic_links_are_refused() {
        let (_dir, _root_path, host) = setup();
        // A host directory held open, as a leaked descriptor would be.
        let held = std::fs::File::open(&host).unwrap();
        let magic = format!("/proc/self/fd/{}", held.as_raw_fd());
        // The root's /proc as the host's procfs, as it is inside a container.
        let proc_root = Root::open(Path::new("/")).unwrap();
        let err = proc_root.resolve(Path::new(&magic)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        let err = proc_root
            .resolve_or_create(Path::new(&format!("{magic}/sub")), DIRS)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        assert!(std::fs::read_dir(&host).unwrap().next().is_none());
    }

    #[test]
    fn created_directories_get_their_owner() {
        let (_dir, root_path, _host) = setup();
        let root = Root::open(&root_path).unwrap();
        let owner = Some((1234, 2345));
        let made = root
            .resolve_or_create(
                Path::new("/a/new/deeper"),
                Missing::Dirs { mode: 0o755, owner },
            )
            .unwrap();
        let st = rustix::fs::fstat(&made).unwrap();
        assert_eq!((st.st_uid, st.st_gid), (1234, 2345));
        let existing = rustix::fs::stat(root_path.join("a")).unwrap();
        assert_eq!(existing.st_uid, rustix::process::geteuid().as_raw());
    }
}
