//! The client's terminal: raw mode (restored on every way out, panics included), its
//! size, Docker's detach keys, and signals taken by a waiting thread.
//!
//! Signals (SIGWINCH for resizes, and the signals `--sig-proxy` forwards) are blocked
//! in the calling thread before any helper thread exists, so every thread inherits
//! the mask, and one thread takes them with `sigwait(3)`. No handler ever runs, so
//! there is nothing async-signal-unsafe to get wrong, and a resize is seen at once
//! (polling the size would be late or busy).

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Mutex;
use std::thread;

use rustix::termios::{self, OptionalActions, Termios};

/// The terminal settings to put back: the stdin terminal's, while it is raw.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

fn stdin_fd() -> BorrowedFd<'static> {
    rustix::stdio::stdin()
}

pub fn stdin_is_terminal() -> bool {
    termios::isatty(stdin_fd())
}

pub fn stdout_is_terminal() -> bool {
    termios::isatty(rustix::stdio::stdout())
}

/// The size (rows, columns) of the terminal on stdout, as docker's `GetTtySize`;
/// (0, 0) when stdout is no terminal.
pub fn size() -> (u16, u16) {
    match termios::tcgetwinsize(rustix::stdio::stdout()) {
        Ok(w) => (w.ws_row, w.ws_col),
        Err(_) => (0, 0),
    }
}

/// Docker's check before attaching a terminal: a piped stdin cannot drive a tty.
pub fn check_tty(attach_stdin: bool, tty: bool) -> anyhow::Result<()> {
    if tty && attach_stdin && !stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    Ok(())
}

/// Stdin's terminal in raw mode until dropped (or until a panic: the panic hook puts
/// it back too, as release builds abort instead of unwinding).
#[derive(Debug)]
pub struct RawMode(());

impl RawMode {
    pub fn enable() -> io::Result<RawMode> {
        let fd = stdin_fd();
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        {
            let mut slot = SAVED.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(saved);
            }
        }
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        termios::tcsetattr(fd, OptionalActions::Now, &raw)?;
        Ok(RawMode(()))
    }
}

/// Puts the saved terminal settings back, once.
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = saved {
        let _ = termios::tcsetattr(stdin_fd(), OptionalActions::Now, &t);
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Docker's default detach keys, ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

/// Docker's `term.ToBytes`: comma-separated keys, each one character, `ctrl-<c>`
/// (`@`, `a`..`z`, `[`, `\`, `]`, `^`, `_`) or `DEL`.
pub fn parse_detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    const CTRL: &str = "@abcdefghijklmnopqrstuvwxyz[\\]^_";
    let mut out = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else if key == "DEL" {
            out.push(127);
        } else {
            let code = key
                .strip_prefix("ctrl-")
                .filter(|c| c.len() == 1)
                .and_then(|c| CTRL.find(c));
            match code {
                Some(c) => out.push(u8::try_from(c).unwrap_or(0)),
                None => return Err(format!("Unknown character: '{key}'")),
            }
        }
    }
    Ok(out)
}

/// The detach keys of `--detach-keys` (docker warns and uses the default on a bad
/// value).
pub fn detach_keys(flag: Option<&str>) -> Vec<u8> {
    match flag.filter(|k| !k.is_empty()) {
        None => DEFAULT_DETACH_KEYS.to_vec(),
        Some(k) => parse_detach_keys(k).unwrap_or_else(|e| {
            eprintln!("WARNING: invalid detach escape keys, using default: {e}");
            DEFAULT_DETACH_KEYS.to_vec()
        }),
    }
}

/// Docker's `term.EscapeProxy`: holds back a partial match of the keys; a mismatch
/// lets the held bytes through; the whole sequence is a detach, never sent.
#[derive(Debug)]
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Escape {
        Escape { keys, matched: 0 }
    }

    /// Appends to `out` what of `input` goes to the container; true on a detach.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                out.push(b);
            }
        }
        false
    }
}

/// Signals blocked in this thread (and in every thread it starts afterwards).
#[derive(Clone, Copy)]
pub struct Blocked(libc::sigset_t);

/// The signals docker's `--sig-proxy` forwards that a process can catch and that do
/// not report its own faults.
pub const PROXIED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGALRM,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGXCPU,
    libc::SIGXFSZ,
];

/// Blocks `signals` in the calling thread; call before starting helper threads.
pub fn block(signals: &[i32]) -> io::Result<Blocked> {
    // SAFETY: `set` is a local sigset_t, initialised by sigemptyset before use;
    // pthread_sigmask only changes the calling thread's mask (new threads inherit it).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        set
    };
    Ok(Blocked(set))
}

/// Starts the thread that takes the blocked signals and calls `f` with each one.
pub fn on_signals(blocked: Blocked, mut f: impl FnMut(i32) + Send + 'static) {
    thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait reads the initialised set and writes one int we own.
        let r = unsafe { libc::sigwait(&blocked.0, &mut sig) };
        if r == 0 {
            f(sig);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-_,DEL").unwrap(),
            vec![b'a', 0, 31, 127]
        );
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert_eq!(detach_keys(None), vec![16, 17]);
        assert_eq!(detach_keys(Some("ctrl-x")), vec![24]);
    }

    #[test]
    fn escape_holds_partial_matches() {
        let mut e = Escape::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(!e.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        assert!(!e.feed(b"c", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        assert!(!e.feed(b"x\x10", &mut out));
        assert!(e.feed(b"\x11never", &mut out));
        assert_eq!(out, b"x");
    }
}
