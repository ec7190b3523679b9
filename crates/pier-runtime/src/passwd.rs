//! The container's `/etc/passwd`, for the `HOME` a process gets when its environment
//! has none (runc's `setupUser`: the user's entry, else `/`).
//!
//! The file belongs to the image, so it is treated as hostile: opened through the
//! in-root resolver (no magic link, no way out of the root), without blocking (a FIFO
//! or a device is not read), and only so much of it.

use std::io::Read;
use std::path::Path;

use rustix::fs::{FileType, OFlags};

use crate::rootpath::Root;

/// More than any real passwd file; the rest is not read.
const MAX_PASSWD: u64 = 4 << 20;

/// The home directory of `uid` in `/etc/passwd` of `root`; `None` when the file is
/// missing, unreadable or not a regular file, or lists no such uid.
pub fn home_of(root: &Root, uid: u32) -> Option<String> {
    let fd = root
        .open_at(
            Path::new("/etc/passwd"),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        )
        .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    let mut text = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_PASSWD)
        .read_to_end(&mut text)
        .ok()?;
    home_in(&String::from_utf8_lossy(&text), uid)
}

/// The home of the first entry for `uid` in passwd-format `text` (runc's first
/// match); comment lines are skipped (as glibc does), an entry with an empty home
/// counts as none.
fn home_in(text: &str, uid: u32) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 6)
        .find(|f| f[2].trim().parse::<u32>().ok() == Some(uid))
        .map(|f| f[5].to_string())
        .filter(|home| !home.is_empty())
}

/// `env` with `HOME` set as runc sets it: kept when given and not empty, otherwise
/// `home` (the user's entry, or `/`).
pub fn env_with_home(env: &[String], home: impl FnOnce() -> Option<String>) -> Vec<String> {
    let given = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("HOME="))
        .is_some_and(|h| !h.is_empty());
    if given {
        return env.to_vec();
    }
    let mut env: Vec<String> = env
        .iter()
        .filter(|e| !e.starts_with("HOME="))
        .cloned()
        .collect();
    env.push(format!("HOME={}", home().unwrap_or_else(|| "/".into())));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment:x:1:1::/nope:\n\
        broken line\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        dup:x:1000:1000::/second:/bin/sh\n\
        nohome:x:7:7::::\n";

    #[test]
    fn first_entry_of_the_uid() {
        assert_eq!(home_in(PASSWD, 0).as_deref(), Some("/root"));
        assert_eq!(home_in(PASSWD, 1000).as_deref(), Some("/home/app"));
        assert_eq!(home_in(PASSWD, 1), None);
        assert_eq!(home_in(PASSWD, 7), None);
        assert_eq!(home_in(PASSWD, 4242), None);
        assert_eq!(home_in("", 0), None);
    }

    #[test]
    fn home_is_kept_unless_missing_or_empty() {
        let env = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let found = || Some("/root".to_string());
        assert_eq!(
            env_with_home(&env(&["PATH=/bin"]), found),
            env(&["PATH=/bin", "HOME=/root"])
        );
        assert_eq!(
            env_with_home(&env(&["HOME=/x", "A=1"]), found),
            env(&["HOME=/x", "A=1"])
        );
        assert_eq!(
            env_with_home(&env(&["HOME=", "A=1"]), found),
            env(&["A=1", "HOME=/root"])
        );
        assert_eq!(env_with_home(&env(&[]), || None), env(&["HOME=/"]));
    }
}
