//! Protection against CVE-2019-5736: a process inside the container must never get a
//! writable handle on the runtime binary through /proc/<pid>/exe. Before a command that
//! enters a container, the runtime re-executes itself from a sealed memfd copy; a write
//! through /proc/<pid>/exe then hits the sealed, anonymous copy, not the binary on disk.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

use crate::error::{Error, Result};

const MEMFD_NAME: &str = "pier-runtime";

/// The seals `sealed_copy` sets; a copy lacking any of them could still be changed.
fn required_seals() -> SealFlags {
    SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
}

/// Whether this process already runs from the sealed copy. The kernel is asked, not
/// the exe's name (a host path can be called `/memfd:pier-runtime…` too): only a memfd
/// answers `F_GET_SEALS`, and its seals must forbid every change.
pub fn is_cloned() -> bool {
    let Ok(exe) = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    is_sealed(&exe)
}

/// Whether `file` is a memfd sealed against every change.
fn is_sealed(file: impl AsFd) -> bool {
    rustix::fs::fcntl_get_seals(file).is_ok_and(|seals| seals.contains(required_seals()))
}

/// Re-executes the current binary from a sealed memfd. Returns only on failure.
pub fn reexec_from_sealed_copy() -> Error {
    match sealed_copy() {
        Ok(fd) => exec_fd(&fd),
        Err(e) => e,
    }
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
}
