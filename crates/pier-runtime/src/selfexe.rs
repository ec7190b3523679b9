//! Protection against CVE-2019-5736: a process inside the container must never get a
//! writable handle on the runtime binary through /proc/<pid>/exe. Before a command that
//! enters a container, the runtime re-executes itself from a copy no one can change:
//! - first choice, as runc 1.2: the binary seen through a read-only overlayfs mount
//!   made for it and never attached anywhere (its directory over an empty tmpfs). A
//!   write through /proc/<pid>/exe gets EROFS, and nothing is copied: the sealed memfd
//!   below costs a copy of the whole binary and the exec of fresh pages, some 5 ms per
//!   container, which this avoids;
//! - else (no overlayfs, no privilege to mount) a sealed memfd copy: a write through
//!   /proc/<pid>/exe then hits the sealed, anonymous copy, not the binary on disk.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

use crate::error::{Error, Result};

const MEMFD_NAME: &str = "pier-runtime";

/// The seals `sealed_copy` sets; a copy lacking any of them could still be changed.
fn required_seals() -> SealFlags {
    SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
}

/// Whether this process already runs from a copy no one can change. The kernel is
/// asked, not the exe's name (a host path can be called `/memfd:pier-runtime…` too):
/// a memfd whose seals forbid every change, or a file on a read-only overlayfs mount.
pub fn is_cloned() -> bool {
    let Ok(exe) = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    is_sealed(&exe) || on_readonly_overlay(&exe)
}

/// Whether `file` is on a read-only overlayfs mount (which a write can never pass:
/// EROFS at the mount, and overlayfs never writes to its lower layers).
fn on_readonly_overlay(file: impl AsFd) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let overlay =
        rustix::fs::fstatfs(&file).is_ok_and(|s| s.f_type as i64 == OVERLAYFS_SUPER_MAGIC);
    overlay
        && rustix::fs::fstatvfs(&file)
            .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Whether `file` is a memfd sealed against every change.
fn is_sealed(file: impl AsFd) -> bool {
    rustix::fs::fcntl_get_seals(file).is_ok_and(|seals| seals.contains(required_seals()))
}

/// Re-executes the current binary from a read-only overlay view of it, else from a
/// sealed memfd. Returns only on failure.
pub fn reexec_from_sealed_copy() -> Error {
    if let Ok(fd) = overlay_view() {
        // Only returns if the exec failed: the memfd is tried next.
        let _ = exec_fd(&fd);
    }
    match sealed_copy() {
        Ok(fd) => exec_fd(&fd),
        Err(e) => e,
    }
}

/// The binary, opened (`O_PATH`) through a read-only overlayfs mount of its directory
/// over an empty tmpfs, both detached: nothing is attached to any path, and the mounts
/// go when the last reference (this fd, then the exec'd process's exe) goes.
fn overlay_view() -> Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Error::io("readlink /proc/self/exe", e))?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(Error::InvalidConfig(format!(
            "runtime binary path {}",
            exe.display()
        )));
    };
    let mount_err = |what: &str| {
        let what = what.to_string();
        move |e: rustix::io::Errno| Error::io(what, e.into())
    };
    let tmpfs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(mount_err("fsopen tmpfs"))?;
    rustix::mount::fsconfig_create(&tmpfs).map_err(mount_err("create tmpfs"))?;
    let empty = rustix::mount::fsmount(
        &tmpfs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(mount_err("fsmount tmpfs"))?;
    let overlay = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(mount_err("fsopen overlay"))?;
    // Two lower layers and no upper: read-only by construction, and mounted read-only.
    let lower = format!("{}:/proc/self/fd/{}", dir.display(), empty.as_raw_fd());
    rustix::mount::fsconfig_set_string(&overlay, "lowerdir", lower.as_str())
        .map_err(mount_err("overlay lowerdir"))?;
    rustix::mount::fsconfig_create(&overlay).map_err(mount_err("create overlay"))?;
    let view = rustix::mount::fsmount(
        &overlay,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(mount_err("fsmount overlay"))?;
    let file = rustix::fs::openat(
        &view,
        name,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(mount_err("open the runtime through its overlay"))?;
    if !on_readonly_overlay(&file) {
        return Err(Error::InvalidConfig(
            "the runtime's overlay view is not read-only".into(),
        ));
    }
    Ok(file)
}

fn sealed_copy() -> Result<OwnedFd> {
    let exe =
        std::fs::File::open("/proc/self/exe").map_err(|e| Error::io("open /proc/self/exe", e))?;
    let size = exe
        .metadata()
        .map_err(|e| Error::io("stat /proc/self/exe", e))?
        .len();
    let memfd =
        rustix::fs::memfd_create(MEMFD_NAME, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| Error::io("memfd_create", e.into()))?;
    let mut copied = 0u64;
    while copied < size {
        let n = rustix::fs::sendfile(&memfd, &exe, None, (size - copied) as usize)
            .map_err(|e| Error::io("copy runtime binary into memfd", e.into()))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    rustix::fs::fcntl_add_seals(&memfd, required_seals())
        .map_err(|e| Error::io("seal memfd", e.into()))?;
    Ok(memfd)
}

fn exec_fd(fd: &OwnedFd) -> Error {
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.into_encoded_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = c"";
    // SAFETY: fd is an open memfd holding an ELF binary; argv and envp are null-terminated
    // arrays of C strings that live until the call returns (it only returns on failure).
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Error::io(
        "execveat sealed runtime copy",
        std::io::Error::last_os_error(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fully_sealed_memfd_counts() {
        let plain = tempfile::tempfile().expect("temp file");
        assert!(!is_sealed(&plain), "a regular file has no seals");
        let memfd = rustix::fs::memfd_create("t", MemfdFlags::ALLOW_SEALING).expect("memfd");
        assert!(!is_sealed(&memfd));
        rustix::fs::fcntl_add_seals(&memfd, SealFlags::WRITE | SealFlags::GROW).expect("seal");
        assert!(!is_sealed(&memfd), "shrinkable and re-sealable");
        rustix::fs::fcntl_add_seals(&memfd, required_seals()).expect("seal");
        assert!(is_sealed(&memfd));
        assert!(is_sealed(sealed_copy().expect("sealed copy")));
        assert!(!is_cloned(), "the test binary runs from its file");
    }

    #[test]
    fn the_overlay_view_is_read_only_and_the_binary_itself() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let view = overlay_view().expect("overlay view");
        assert!(on_readonly_overlay(&view));
        let through = format!("/proc/self/fd/{}", view.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&through)
            .expect_err("a write through the view");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert_eq!(
            std::fs::read(&through).expect("read through the view"),
            std::fs::read("/proc/self/exe").expect("read the binary")
        );
        let plain = tempfile::tempfile().expect("temp file");
        assert!(!on_readonly_overlay(&plain));
    }
}
