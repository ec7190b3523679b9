//! Takes the wait out of a container's first cgroup join.
//!
//! Every write to a `cgroup.procs` file (v1 or v2) takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing, and a writer that finds that lock idle first
//! waits for an RCU grace period: 7-15 ms on a 2-CPU host, longer than everything else
//! `run` does. Once one writer has waited, others that come while it waits, or shortly
//! after it is done, go through at once. So, as soon as the runtime knows it is going to
//! move a process into a cgroup (`create`, `run`, `exec`), a throwaway child process
//! writes itself into the cgroup it is already in (a move to where it is: nothing
//! changes) and exits. It sits out the grace period while the runtime reads the spec,
//! makes the cgroups and clones the container's init, whose join then does not wait.
//!
//! Only a warm-up: if the child cannot find or write its cgroup, the join waits as it
//! would have. Nothing in the container's confinement depends on it.

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// The warm-up child's pid, 0 when there is none to reap.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Starts the warm-up child. Call while the process is single-threaded (the child is
/// forked), at most once.
pub fn start() {
    let Some(procs) = own_procs_file() else {
        return;
    };
    // SAFETY: a raw fork with no new stack, as `clone_fork`: the process is
    // single-threaded, and the child only makes raw syscalls on memory prepared before
    // the fork (`procs`), then leaves with _exit, running none of the parent's code.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: see above; "0" moves the writing process itself.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, c"0".as_ptr().cast(), 1);
            }
            libc::_exit(0);
        }
    }
    if pid > 0 {
        CHILD.store(pid as i32, Ordering::Relaxed);
    }
}

/// Reaps the warm-up child, if any (waiting for it: it ends within a grace period).
/// Call once the container's process has joined its cgroup.
pub fn finish() {
    let pid = CHILD.swap(0, Ordering::Relaxed);
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}

/// The `cgroup.procs` file of the cgroup this process is in: of the unified hierarchy
/// when there is one (a hybrid host's at `/sys/fs/cgroup/unified`), else of the first
/// v1 hierarchy found under its usual mount point.
fn own_procs_file() -> Option<CString> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut lines: Vec<&str> = text.lines().collect();
    // The unified hierarchy's line ("0::/path") first.
    lines.sort_by_key(|l| !l.starts_with("0::"));
    for line in lines {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        let bases: Vec<String> = if controllers.is_empty() {
            vec![
                format!("{}/unified", super::CGROUP_ROOT),
                super::CGROUP_ROOT.to_string(),
            ]
        } else {
            let name = controllers.trim_start_matches("name=");
            vec![format!("{}/{name}", super::CGROUP_ROOT)]
        };
        for base in bases {
            let file = Path::new(&base).join(rel).join("cgroup.procs");
            if file.exists() {
                return CString::new(file.into_os_string().into_encoded_bytes()).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_procs_file_of_its_own_cgroup() {
        let Some(file) = own_procs_file() else {
            eprintln!("skipped: no cgroup filesystem under /sys/fs/cgroup");
            return;
        };
        let file = Path::new(file.to_str().expect("utf-8"));
        assert!(file.ends_with("cgroup.procs"), "{}", file.display());
        let pids = std::fs::read_to_string(file).expect("read cgroup.procs");
        let own = std::process::id().to_string();
        assert!(
            pids.lines().any(|p| p == own),
            "{} does not list this process ({own})",
            file.display()
        );
    }
}
