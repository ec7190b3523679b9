//! Persistent network namespaces: a new namespace bind-mounted on a file, so it
//! outlives the thread that made it and can be handed to the runtime as a path.
//!
//! Everything that needs to be inside a namespace happens on a dedicated thread that
//! exits afterwards: the calling thread's namespace never changes (pierd is a
//! multi-threaded process).

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType, UnshareFlags};

use crate::link::{LinkError, Netlink};

/// `statfs(2)` magic of nsfs, the filesystem of namespace files.
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Creates a new network namespace bound at `path` (the file is created; its parent
/// must exist) and brings its loopback up. Fails if `path` is already a namespace.
pub fn create(path: &Path) -> Result<(), LinkError> {
    let path = path.to_path_buf();
    on_thread(move || create_here(&path))?
}

/// Unmounts and removes the namespace file at `path`. A missing file is not an error.
/// The namespace itself (and the container ends of its veths) goes away with its last
/// user.
pub fn remove(path: &Path) -> Result<(), LinkError> {
    // Unmount every namespace stacked there (normally one), lazily: a process may
    // still be using it.
    while is_nsfs(path) {
        match unmount(path, UnmountFlags::DETACH) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => break,
            Err(e) => {
                return Err(io_error(
                    format!("unmounting network namespace {}", path.display()),
                    e.into(),
                ))
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(
            format!("removing network namespace file {}", path.display()),
            e,
        )),
    }
}

/// Runs `f` on a fresh thread that entered the network namespace at `path`, and
/// returns its result. Sockets `f` opens stay in that namespace after it returns.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T, LinkError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path: PathBuf = path.to_path_buf();
    on_thread(move || {
        enter(&path)?;
        Ok(f())
    })?
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> Result<(), LinkError> {
    let file = std::fs::File::open(path)
        .map_err(|e| io_error(format!("opening network namespace {}", path.display()), e))?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)).map_err(|e| {
        io_error(
            format!("entering network namespace {}", path.display()),
            e.into(),
        )
    })
}

/// The body of [`create`], on its own thread.
fn create_here(path: &Path) -> Result<(), LinkError> {
    let created_file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            if is_nsfs(path) {
                return Err(io_error(
                    format!("creating network namespace {}", path.display()),
                    std::io::Error::new(ErrorKind::AlreadyExists, "already a namespace"),
                ));
            }
            // A plain file left behind (e.g. by a crash): mount over it.
            false
        }
        Err(e) => {
            return Err(io_error(
                format!("creating network namespace file {}", path.display()),
                e,
            ))
        }
    };
    let result = unshare_and_bind(path);
    if result.is_err() && created_file {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn unshare_and_bind(path: &Path) -> Result<(), LinkError> {
    // SAFETY: only the network namespace of this thread changes (no CLONE_FILES, so
    // file descriptors stay shared and valid); the thread is a dedicated one that
    // exits when `create` is done, so no other code runs in the new namespace.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }
        .map_err(|e| io_error("unsharing the network namespace", e.into()))?;
    mount_bind("/proc/thread-self/ns/net", path).map_err(|e| {
        io_error(
            format!("bind-mounting the network namespace on {}", path.display()),
            e.into(),
        )
    })?;
    let lo = Netlink::open().and_then(|nl| nl.set_link_up("lo"));
    if let Err(e) = lo {
        let _ = unmount(path, UnmountFlags::DETACH);
        return Err(e);
    }
    Ok(())
}

/// Whether `path` is a namespace file (a mounted nsfs inode).
fn is_nsfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == NSFS_MAGIC)
}

/// Runs `f` on a new thread and returns its result; a panic in `f` is resumed here.
fn on_thread<T, F>(f: F) -> Result<T, LinkError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let handle = std::thread::Builder::new()
        .name("pier-netns".into())
        .spawn(f)
        .map_err(|e| io_error("spawning a network namespace thread", e))?;
    match handle.join() {
        Ok(value) => Ok(value),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn io_error(context: impl Into<String>, source: std::io::Error) -> LinkError {
    LinkError::Io {
        context: context.into(),
        source,
    }
}
