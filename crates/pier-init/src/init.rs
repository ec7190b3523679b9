//! pier-init: PID 1 of a container run with `--init`. pierd bind-mounts it read-only
//! at `/sbin/docker-init`, where dockerd puts its own init, and runs
//! `/sbin/docker-init -- COMMAND [ARG...]`.
//!
//! It starts the command as its child, forwards every signal it receives to it (a
//! `docker stop`'s SIGTERM reaches the command, which as PID 1 would have ignored it),
//! reaps every process that ends up as its child (orphans are re-parented to PID 1,
//! and would stay zombies otherwise), and exits with the command's status: its exit
//! code, or 128+N when signal N ended it.
//!
//! One thread and no async: the signals are blocked and taken synchronously with
//! `sigwaitinfo`. Built by `build.rs` on its own, statically linked, so it runs in any
//! image; it declares the few C library calls it makes itself (no crates).

use std::ffi::{c_char, c_int, CString, OsString};
use std::os::unix::ffi::OsStrExt;

/// glibc's `sigset_t` (1024 bits) and `siginfo_t` (128 bytes), as storage only.
type SigSet = [u64; 16];
type SigInfo = [u64; 16];

const SIG_BLOCK: c_int = 0;
const SIG_SETMASK: c_int = 2;
const SIGPIPE: c_int = 13;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;
const ENOENT: c_int = 2;
/// `SIG_DFL`.
const DEFAULT_ACTION: usize = 0;

/// Signals that report a fault of this very process (SIGILL, SIGTRAP, SIGBUS, SIGFPE,
/// SIGSEGV, SIGSYS): never blocked, or a fault would hang it instead of ending it.
const SYNCHRONOUS: [c_int; 6] = [4, 5, 7, 8, 11, 31];

extern "C" {
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, signal: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn signal(signal: c_int, handler: usize) -> usize;
    fn fork() -> c_int;
    fn kill(pid: c_int, signal: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn _exit(code: c_int) -> !;
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = match args.first() {
        Some(first) if first == "--" => &args[1..],
        _ => &args[..],
    };
    if command.is_empty() {
        eprintln!("usage: pier-init [--] COMMAND [ARG...]");
        std::process::exit(2);
    }
    let Ok(argv) = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<CString>, _>>()
    else {
        eprintln!("pier-init: an argument contains a NUL byte");
        std::process::exit(2);
    };
    std::process::exit(run(&argv));
}

/// Starts `argv`, then forwards signals and reaps until it has exited; its status.
fn run(argv: &[CString]) -> i32 {
    let forwarded = forwarded_signals();
    let mut previous = empty_set();
    // SAFETY: both sets are initialized; this process has one thread.
    if unsafe { sigprocmask(SIG_BLOCK, &forwarded, &mut previous) } != 0 {
        fail("block signals");
    }
    // SAFETY: one thread, so the child may do anything until exec.
    let child = unsafe { fork() };
    if child < 0 {
        fail("fork");
    }
    if child == 0 {
        exec_command(argv, &previous);
    }
    loop {
        let mut info: SigInfo = [0; 16];
        // SAFETY: the set is initialized and `info` is writable storage of its size.
        let received = unsafe { sigwaitinfo(&forwarded, &mut info) };
        if received > 0 && received != SIGCHLD {
            // The command may have gone already (ESRCH): nothing to forward to then.
            // SAFETY: kill takes plain integers.
            unsafe { kill(child, received) };
        }
        if let Some(status) = reap(child) {
            return status;
        }
    }
}

/// Reaps every child that has exited; the command's status once it is among them.
fn reap(command: c_int) -> Option<i32> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is writable.
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        if pid <= 0 {
            return result;
        }
        if pid == command {
            result = Some(exit_code(status));
        }
    }
}

/// A wait status as a shell reports it: the exit code, or 128+N for signal N.
fn exit_code(status: c_int) -> i32 {
    let signal = status & 0x7f;
    if signal != 0 && signal != 0x7f {
        128 + signal
    } else {
        (status >> 8) & 0xff
    }
}

/// In the child: the signal mask and SIGPIPE as they were before this process (Rust's
/// runtime ignores SIGPIPE, which exec would hand on), then the command.
fn exec_command(argv: &[CString], mask: &SigSet) -> ! {
    let mut pointers: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: signal-state calls of a single-threaded child; `pointers` is a
    // NULL-terminated array of C strings that outlive the exec.
    unsafe {
        signal(SIGPIPE, DEFAULT_ACTION);
        sigprocmask(SIG_SETMASK, mask, std::ptr::null_mut());
        execvp(pointers[0], pointers.as_ptr());
    }
    let error = std::io::Error::last_os_error();
    let name = argv[0].to_string_lossy();
    eprintln!("pier-init: exec {name} failed: {error}");
    // The shell's codes: 127 not found, 126 found but not runnable.
    let code = if error.raw_os_error() == Some(ENOENT) {
        127
    } else {
        126
    };
    // SAFETY: _exit ends the child without running the parent's exit handlers.
    unsafe { _exit(code) }
}

/// Every signal but the synchronous ones (SIGKILL and SIGSTOP cannot be blocked).
fn forwarded_signals() -> SigSet {
    let mut set: SigSet = [0; 16];
    // SAFETY: `set` is storage of sigset_t's size.
    unsafe {
        sigfillset(&mut set);
        for s in SYNCHRONOUS {
            sigdelset(&mut set, s);
        }
    }
    set
}

fn empty_set() -> SigSet {
    let mut set: SigSet = [0; 16];
    // SAFETY: `set` is storage of sigset_t's size.
    unsafe { sigemptyset(&mut set) };
    set
}

fn fail(what: &str) -> ! {
    eprintln!("pier-init: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_as_a_shell_reports_them() {
        assert_eq!(exit_code(7 << 8), 7);
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(15), 143);
        assert_eq!(exit_code(9 | 0x80), 137, "a core dump changes nothing");
    }
}
