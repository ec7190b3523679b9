//! Process attributes applied in the container's init (or exec'd process) right before
//! `execve`: rlimits, identity, oom score, io priority, scheduler, personality, and the
//! final exec itself. All of it runs in a single-threaded child.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::{Process, Rlimit};

/// A signal by number (0–64; 0 only checks that the process exists, as with kill(1))
/// or name (`SIGTERM`, `term`, `RTMIN+3`).
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (0..65).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let sig = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            let rt = name.strip_prefix("RTMIN")?;
            let off: i32 = if rt.is_empty() {
                0
            } else {
                rt.trim_start_matches('+').parse().ok()?
            };
            let n = libc::SIGRTMIN() + off;
            return (n <= libc::SIGRTMAX()).then_some(n);
        }
    };
    Some(sig)
}

/// The resource number for an OCI rlimit name such as `RLIMIT_NOFILE`.
pub fn rlimit_resource(name: &str) -> Option<i32> {
    let r = match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    };
    Some(r as i32)
}

/// The personality(2) domain for an OCI personality name.
pub fn personality_domain(name: &str) -> Option<u64> {
    match name {
        "LINUX" => Some(0x0000),
        "LINUX32" => Some(0x0008),
        _ => None,
    }
}

pub fn set_rlimits(rlimits: &[Rlimit]) -> Result<()> {
    for r in rlimits {
        let resource = rlimit_resource(&r.kind)
            .ok_or_else(|| Error::InvalidConfig(format!("process.rlimits: unknown {}", r.kind)))?;
        let limit = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: `limit` is a valid rlimit struct; resource comes from the libc table.
        let rc = unsafe { libc::setrlimit(resource as _, &limit) };
        if rc != 0 {
            return Err(Error::io(
                format!("setrlimit {} soft={} hard={}", r.kind, r.soft, r.hard),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

pub fn set_oom_score_adj(pid: i32, value: i32) -> Result<()> {
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, value.to_string())
        .map_err(|e| Error::io(format!("write {value} to {path}"), e))
}

pub fn set_personality(domain: u64) -> Result<()> {
    // SAFETY: personality takes a plain integer persona.
    let rc = unsafe { libc::personality(domain as libc::c_ulong) };
    if rc < 0 {
        return Err(Error::io("personality", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn set_io_priority(class: &str, priority: i32) -> Result<()> {
    let class_num = match class {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        other => {
            return Err(Error::InvalidConfig(format!(
                "process.ioPriority.class: unknown class {other:?}"
            )))
        }
    };
    let ioprio = (class_num << 13) | priority;
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: ioprio_set takes integer arguments only; 0 means the calling process.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio) };
    if rc < 0 {
        return Err(Error::io("ioprio_set", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn set_scheduler(s: &crate::spec::Scheduler) -> Result<()> {
    let policy = match s.policy.as_str() {
        "SCHED_OTHER" => libc::SCHED_OTHER,
        "SCHED_FIFO" => libc::SCHED_FIFO,
        "SCHED_RR" => libc::SCHED_RR,
        "SCHED_BATCH" => libc::SCHED_BATCH,
        "SCHED_IDLE" => libc::SCHED_IDLE,
        other => {
            return Err(Error::InvalidConfig(format!(
                "process.scheduler.policy: unsupported policy {other:?}"
            )))
        }
    };
    if policy == libc::SCHED_OTHER || policy == libc::SCHED_BATCH {
        // SAFETY: setpriority takes integer arguments; 0 means the calling process.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, s.nice) };
        if rc < 0 {
            return Err(Error::io("setpriority", std::io::Error::last_os_error()));
        }
    }
    let param = libc::sched_param {
        sched_priority: s.priority,
    };
    // SAFETY: param is a valid sched_param; 0 means the calling process.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc < 0 {
        return Err(Error::io(
            "sched_setscheduler",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Switches to the process's user: supplementary groups, gid, uid. Capabilities that
/// must survive the switch are kept with PR_SET_KEEPCAPS by the caller.
pub fn set_identity(process: &Process, allow_setgroups: bool) -> Result<()> {
    let user = &process.user;
    if allow_setgroups {
        let groups: Vec<libc::gid_t> = user.additional_gids.clone();
        // SAFETY: `groups` is a valid slice of gids for the duration of the call. The raw
        // syscall (not glibc's wrapper) affects only this thread, which is the only one.
        let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
        if rc < 0 {
            return Err(Error::io("setgroups", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: setresgid/setresuid take integers; the process is single-threaded.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid) };
    if rc < 0 {
        return Err(Error::io(
            format!("setgid to {}", user.gid),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid) };
    if rc < 0 {
        return Err(Error::io(
            format!("setuid to {}", user.uid),
            std::io::Error::last_os_error(),
        ));
    }
    if let Some(umask) = user.umask {
        rustix::process::umask(rustix::fs::Mode::from_bits_truncate(umask));
    }
    Ok(())
}

/// Finds the executable like execvp would, using the container's PATH.
pub fn lookup_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return check_executable(&p).map(|_| p);
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(Error::Init(format!(
        "exec: \"{arg0}\": executable file not found in $PATH"
    )))
}

fn check_executable(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(m) if m.is_dir() => Err(Error::Init(format!(
            "exec: \"{}\": is a directory",
            p.display()
        ))),
        Ok(_) => Err(Error::Init(format!(
            "exec: \"{}\": permission denied",
            p.display()
        ))),
        // runc's words (`stat <path>: no such file or directory`): the docker CLI picks
        // its exit code (127, 126) from them.
        Err(e) => Err(Error::Init(format!(
            "exec: \"{path}\": stat {path}: {}",
            errno_text(&e),
            path = p.display()
        ))),
    }
}

/// An OS error as Go's `syscall.Errno` writes it: the C library's text in lower case,
/// without Rust's ` (os error N)`.
fn errno_text(e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(n) => std::io::Error::from_raw_os_error(n)
            .to_string()
            .trim_end_matches(&format!(" (os error {n})"))
            .to_string(),
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Replaces the process image. Only returns on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> Error {
    let to_c = |s: &str| {
        CString::new(s).map_err(|_| Error::Init(format!("argument {s:?} contains a NUL byte")))
    };
    let prog = match CString::new(path.as_os_str().as_encoded_bytes()) {
        Ok(p) => p,
        Err(_) => return Error::Init("executable path contains a NUL byte".into()),
    };
    let argv: Result<Vec<CString>> = args.iter().map(|a| to_c(a)).collect();
    let envp: Result<Vec<CString>> = env.iter().map(|e| to_c(e)).collect();
    let (argv, envp) = match (argv, envp) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: prog, argv and envp are NUL-terminated C strings kept alive by the vectors
    // above, and both pointer arrays end with a null pointer.
    unsafe { libc::execve(prog.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    let err = std::io::Error::last_os_error();
    Error::Init(format!("exec {:?}: {err}", path))
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), used
/// to tell a container's init apart from a later process that reused its pid.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(19)?.parse().ok()
}

/// The one-letter process state from /proc/PID/stat (R, S, Z, X, ...).
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Closes every fd from `first` up, except those in `keep`.
/// Closes every descriptor from `first` up, except those in `keep`: really closed, not
/// just marked close-on-exec, so that none (a leaked host directory above all) can be
/// reached from the container while it is being set up (CVE-2024-21626).
///
/// # Safety
/// No live object may own a descriptor that this closes: call it at the start of
/// `main`, or in a forked child that execs or exits without returning.
pub unsafe fn close_fds_except(first: i32, keep: &[i32]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|fd| **fd >= first)
        .map(|fd| *fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut low = first.max(0) as u32;
    for high in keep.into_iter().map(Some).chain([None]) {
        let last = match high {
            Some(k) if k == low => {
                low = k + 1;
                continue;
            }
            Some(k) => k - 1,
            None => u32::MAX,
        };
        // SAFETY: close_range takes integers; the caller guarantees no live owner of
        // the descriptors it closes.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, low, last, 0) };
        if rc != 0 {
            // SAFETY: as above.
            unsafe { close_listed_fds(low, last) };
        }
        if let Some(k) = high {
            low = k + 1;
        }
    }
}

/// close_range's fallback (kernels before 5.9): the open descriptors, one by one.
///
/// # Safety
/// As [`close_fds_except`].
unsafe fn close_listed_fds(low: u32, high: u32) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| (low..=high).contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: the caller guarantees no live owner; the directory's own fd is
        // gone by now.
        unsafe { libc::close(fd as i32) };
    }
}

pub fn close_fds_from(first: i32, keep: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first && !keep.contains(fd))
        .collect();
    for fd in fds {
        // Mark close-on-exec rather than close: the directory fd used above is already
        // gone, and fds we still need until execve stay usable.
        // SAFETY: fcntl F_SETFD on an fd number is harmless even if it is not open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names() {
        assert_eq!(
            rlimit_resource("RLIMIT_NOFILE"),
            Some(libc::RLIMIT_NOFILE as i32)
        );
        assert_eq!(rlimit_resource("RLIMIT_BOGUS"), None);
    }

    #[test]
    fn start_time_of_self() {
        let pid = std::process::id() as i32;
        assert!(start_time(pid).is_some());
        assert!(matches!(proc_state(pid), Some('R') | Some('S')));
    }

    #[test]
    fn a_missing_executable_is_reported_in_runcs_words() {
        let err = lookup_executable("/no/such/binary", &[]).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "exec: \"/no/such/binary\": stat /no/such/binary: no such file or directory"
            ),
            "{err}"
        );
    }

    #[test]
    fn lookup_uses_path() {
        let found = lookup_executable("sh", &["PATH=/usr/bin:/bin".to_string()]).unwrap();
        assert!(found.ends_with("sh"));
        assert!(lookup_executable("no-such-binary-xyz", &[]).is_err());
    }
}
