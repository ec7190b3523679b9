//! File helpers for cgroupfs: every error names the file (and the value written).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error::Cgroup(msg.into())
}

/// "Device or resource busy", without std's " (os error 16)" suffix.
pub(crate) fn os_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// One `write(2)` of the whole value: a cgroup file takes one command per write.
/// No O_CREAT: a missing file is ENOENT, never a new regular file.
pub(crate) fn try_write(path: &Path, value: &str) -> io::Result<()> {
    let mut file = loop {
        match fs::OpenOptions::new().write(true).truncate(true).open(path) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    loop {
        match file.write(value.as_bytes()) {
            Ok(n) if n == value.len() => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// "write 12 to /sys/fs/cgroup/.../memory.max: Device or resource busy".
pub(crate) fn write_message(path: &Path, value: &str, e: &io::Error) -> String {
    format!("write {value} to {}: {}", path.display(), os_text(e))
}

pub(crate) fn write_error(path: &Path, value: &str, e: &io::Error) -> Error {
    err(write_message(path, value, e))
}

/// Writes a file that only some kernels have; a missing file is "not supported" for
/// `what` (the spec field) instead of a bare ENOENT.
pub(crate) fn write_supported(dir: &Path, file: &str, value: &str, what: &str) -> Result<()> {
    let path = dir.join(file);
    match try_write(&path, value) {
        Err(e) if is_not_found(&e) && dir.is_dir() => Err(err(format!(
            "{what}: not supported by this kernel (no {})",
            path.display()
        ))),
        Err(e) => Err(write_error(&path, value, &e)),
        Ok(()) => Ok(()),
    }
}

pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    try_write(&path, value).map_err(|e| write_error(&path, value, &e))
}

pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|e| err(format!("read {}: {}", path.display(), os_text(&e))))
}

/// `None` if the file does not exist (controller absent or not enabled).
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(err(format!("read {}: {}", path.display(), os_text(&e)))),
    }
}

/// A single number; "max" reads as `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| {
        err(format!(
            "parse {}: unexpected content {s:?}",
            path.display()
        ))
    })
}

pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&dir.join(file), &s).map(Some),
        None => Ok(None),
    }
}

/// `read_u64_opt`, 0 when absent (stats of optional files).
pub(crate) fn read_u64_or_zero(dir: &Path, file: &str) -> Result<u64> {
    Ok(read_u64_opt(dir, file)?.unwrap_or(0))
}

/// A flat keyed file ("key value" per line), e.g. memory.stat or cpu.stat. Lines that do
/// not parse are skipped, as new kernels add fields.
pub(crate) fn parse_key_values(content: &str) -> BTreeMap<String, u64> {
    content
        .lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let key = it.next()?;
            let value = it.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

/// PIDs in `dir/cgroup.procs` and every descendant cgroup. Directories that vanish while
/// walking are skipped.
pub(crate) fn collect_pids(dir: &Path, out: &mut BTreeSet<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(s) => {
            for word in s.split_whitespace() {
                let pid = word.parse().map_err(|_| {
                    err(format!(
                        "parse {}: unexpected content {word:?}",
                        procs.display()
                    ))
                })?;
                out.insert(pid);
            }
        }
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(err(format!("read {}: {}", procs.display(), os_text(&e)))),
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => {
            return Err(err(format!(
                "read directory {}: {}",
                dir.display(),
                os_text(&e)
            )))
        }
    };
    for entry in entries {
        let entry =
            entry.map_err(|e| err(format!("read directory {}: {}", dir.display(), os_text(&e))))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// runc's `RemovePath`: rmdir, removing child cgroups first. Missing is fine.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(_) => {}
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// runc's `RemovePaths`: five rounds with a doubling delay from 10ms, because rmdir of
/// a cgroup whose last task just exited can fail with EBUSY for a moment.
pub(crate) fn remove_dirs(dirs: &[PathBuf]) -> Result<()> {
    let mut left: Vec<&PathBuf> = dirs.iter().collect();
    let mut delay = Duration::from_millis(10);
    let mut last_error = None;
    for round in 0..5 {
        if round > 0 {
            std::thread::sleep(delay);
            delay *= 2;
        }
        left.retain(|dir| match remove_tree(dir) {
            Ok(()) => false,
            Err(e) => {
                last_error = Some(format!("remove {}: {}", dir.display(), os_text(&e)));
                dir.exists()
            }
        });
        if left.is_empty() {
            return Ok(());
        }
    }
    Err(err(last_error.unwrap_or_else(|| {
        let names: Vec<String> = left.iter().map(|d| d.display().to_string()).collect();
        format!("remove {}: still present", names.join(", "))
    })))
}

/// `mkdir -p` with a cgroup error.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| err(format!("create {}: {}", dir.display(), os_text(&e))))
}

/// Parses a cpuset list ("0-3,8,10-11") into its members.
pub(crate) fn parse_cpu_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(v) = part.parse() {
                    out.push(v);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::EBUSY);
        assert_eq!(os_text(&e), "Device or resource busy");
    }

    #[test]
    fn key_values() {
        let m = parse_key_values("usage_usec 10\nuser_usec 4\nbad\nx y\n");
        assert_eq!(m.get("usage_usec"), Some(&10));
        assert_eq!(m.get("user_usec"), Some(&4));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("\n"), Vec::<u16>::new());
    }

    #[test]
    fn write_error_names_file_and_value() {
        let e = write(Path::new("/nonexistent-dir"), "memory.max", "12").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cgroup: write 12 to /nonexistent-dir/memory.max: No such file or directory"
        );
    }
}
