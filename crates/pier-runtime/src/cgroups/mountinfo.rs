//! Cgroup mounts from /proc/self/mountinfo and memberships from /proc/self/cgroup.

use std::path::PathBuf;

use super::fsutil::{err, os_text};
use crate::error::Result;

/// One cgroup or cgroup2 mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// The "root" field: which cgroup of the hierarchy is mounted (usually "/").
    pub root: String,
    pub mountpoint: PathBuf,
    /// true for cgroup2.
    pub unified: bool,
    /// The superblock options (controllers, "name=systemd", "rw", ...).
    pub super_options: Vec<String>,
}

/// Cgroup mounts, in mountinfo order.
pub(crate) fn parse_mountinfo(content: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in content.lines() {
        // id parent maj:min root mountpoint options [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rfields: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || rfields.len() < 3 {
            continue;
        }
        let unified = match rfields[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        out.push(CgroupMount {
            root: unescape(fields[3]),
            mountpoint: PathBuf::from(unescape(fields[4])),
            unified,
            super_options: rfields[2].split(',').map(str::to_string).collect(),
        });
    }
    out
}

pub(crate) fn read_mountinfo() -> Result<Vec<CgroupMount>> {
    let path = "/proc/self/mountinfo";
    let content =
        std::fs::read_to_string(path).map_err(|e| err(format!("read {path}: {}", os_text(&e))))?;
    Ok(parse_mountinfo(&content))
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/<pid>/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Empty for the unified hierarchy ("0::/path").
    pub controllers: Vec<String>,
    pub path: String,
}

pub(crate) fn parse_proc_cgroup(content: &str) -> Vec<Membership> {
    content
        .lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let _id = it.next()?;
            let controllers = it.next()?;
            let path = it.next()?;
            Some(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: path.to_string(),
            })
        })
        .collect()
}

pub(crate) fn read_own_cgroups() -> Result<Vec<Membership>> {
    let path = "/proc/self/cgroup";
    let content =
        std::fs::read_to_string(path).map_err(|e| err(format!("read {path}: {}", os_text(&e))))?;
    Ok(parse_proc_cgroup(&content))
}

/// Names of the v1 controllers this kernel knows (first column of /proc/cgroups).
pub(crate) fn known_controllers() -> Vec<String> {
    let content = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let mut names: Vec<String> = content
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        // /proc/cgroups is optional (CONFIG_PROC_FS quirks); fall back to the usual set.
        names = [
            "cpuset",
            "cpu",
            "cpuacct",
            "blkio",
            "memory",
            "devices",
            "freezer",
            "net_cls",
            "perf_event",
            "net_prio",
            "hugetlb",
            "pids",
            "rdma",
            "misc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpu\\040x rw,relatime shared:5 - cgroup cgroup rw,cpuset
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m[0].super_options, vec!["rw", "cpu"]);
        assert_eq!(m[1].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu x"));
        assert!(!m[2].unified);
        assert!(m[3].unified);
    }

    #[test]
    fn proc_cgroup() {
        let m = parse_proc_cgroup("9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/d:e\n");
        assert_eq!(m[0].controllers, vec!["name=systemd"]);
        assert_eq!(m[2].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[3].controllers, Vec::<String>::new());
        assert_eq!(m[3].path, "/d:e");
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("trailing\\"), "trailing\\");
        assert_eq!(unescape("\\04"), "\\04");
        assert_eq!(unescape("x\\0401"), "x 1");
    }
}
