//! runc-style logging: `--log FILE` and `--log-format text|json`. containerd's shim and
//! dockerd read the last error from this file, so the JSON shape matches runc's
//! (`{"level":"error","msg":"...","time":"..."}`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug)]
struct Config {
    /// Opened once, so that the container's init can still log after pivot_root.
    file: Option<std::fs::File>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn init(path: Option<PathBuf>, format: Format, debug: bool) {
    let file = path.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .inspect_err(|e| eprintln!("cannot open log file {}: {e}", p.display()))
            .ok()
    });
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
    });
}

fn write(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else {
        let _ = writeln!(std::io::stderr(), "{level}: {msg}");
        return;
    };
    if level == "debug" && !cfg.debug {
        return;
    }
    let time = crate::state::now_rfc3339();
    let line = match cfg.format {
        Format::Json => format!(
            "{}\n",
            serde_json::json!({ "level": level, "msg": msg, "time": time })
        ),
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    };
    match &cfg.file {
        Some(f) => {
            // `Write` is implemented for `&File`: appends need no exclusive access.
            let _ = (&*f).write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

pub fn error(msg: &str) {
    write("error", msg);
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    write("debug", msg);
}

/// The log file's descriptor, which the container's setup keeps (close-on-exec) until
/// its final exec.
pub fn file_fd() -> Option<i32> {
    use std::os::fd::AsRawFd;
    CONFIG.get()?.file.as_ref().map(|f| f.as_raw_fd())
}

/// Whether log lines go to a file (then errors are also printed on stderr by the binary).
pub fn to_file() -> bool {
    CONFIG.get().is_some_and(|c| c.file.is_some())
}
