//! User namespaces for containers: dockerd's `--userns-remap` (container root is an
//! unprivileged host user), the per-container opt-out `--userns host`, and Pier's own
//! `--userns auto`, which gives a container a range no other container has.
//!
//! Host IDs come from the remap user's subordinate ranges (`/etc/subuid`,
//! `/etc/subgid`). They are cut into slots of [`SLOT`] IDs: slot 0 is the mapping of
//! every remapped container (as dockerd's single mapping), slots 1… go to `auto`
//! containers, one each. `default` is Pier's own user, [`DEFAULT_USER`], made on first
//! use with room for [`DEFAULT_SLOTS`] slots.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;

/// IDs per mapping: a whole 16-bit range, as dockerd and podman give a container.
pub const SLOT: u32 = 65536;
/// The user `--userns-remap default` means (dockerd's is `dockremap`; a Pier of its own
/// keeps Pier's containers out of Docker's range).
pub const DEFAULT_USER: &str = "pierremap";
/// Slots given to [`DEFAULT_USER`] when Pier makes it: slot 0 and 63 `auto` slots.
pub const DEFAULT_SLOTS: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("--userns-remap {0:?}: {1}")]
    BadRemap(String, String),
    #[error("user {user:?} has no subordinate {kind} range in {file}: add one (e.g. `usermod --add-sub{kind}s 200000-265535 {user}`)")]
    NoRanges {
        user: String,
        kind: &'static str,
        file: &'static str,
    },
    #[error("no free user namespace range for --userns auto: all {0} slots of the remap user's subordinate IDs are in use")]
    Exhausted(u32),
    #[error("{0}")]
    Io(String),
}

/// One line of a uid or gid map: `size` IDs from `container` map to `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// A container's user namespace mapping (kept in its record, so a restart keeps it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMapping {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMapping {
    /// The host IDs container root maps to.
    pub fn root(&self) -> (u32, u32) {
        let host = |r: &[IdRange]| {
            r.iter()
                .find(|r| r.container == 0)
                .map_or(u32::MAX, |r| r.host)
        };
        (host(&self.uids), host(&self.gids))
    }

    /// The host uid of container uid `id` (None: unmapped).
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        forth(&self.uids, id)
    }

    /// The host gid of container gid `id` (None: unmapped).
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        forth(&self.gids, id)
    }

    /// The container uid that host uid `id` is (None: outside the mapping).
    pub fn container_uid(&self, id: u32) -> Option<u32> {
        back(&self.uids, id)
    }

    /// The container gid that host gid `id` is (None: outside the mapping).
    pub fn container_gid(&self, id: u32) -> Option<u32> {
        back(&self.gids, id)
    }

    /// Which slot of `remap` this mapping is (None: not one of its slots).
    fn slot_of(&self, remap: &Remap) -> Option<u32> {
        let first = self.uids.first()?;
        (0..remap.slots()).find(|s| remap.slot_start(&remap.uid_ranges, *s) == Some(first.host))
    }
}

/// Container ID `id` as a host ID, through `ranges`.
fn forth(ranges: &[IdRange], id: u32) -> Option<u32> {
    let r = ranges
        .iter()
        .find(|r| id >= r.container && id - r.container < r.size)?;
    r.host.checked_add(id - r.container)
}

/// Host ID `id` as a container ID, through `ranges`.
fn back(ranges: &[IdRange], id: u32) -> Option<u32> {
    let r = ranges
        .iter()
        .find(|r| id >= r.host && id - r.host < r.size)?;
    r.container.checked_add(id - r.host)
}

/// The daemon's remap user and its subordinate ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    pub user: String,
    pub group: String,
    uid_ranges: Vec<(u32, u32)>,
    gid_ranges: Vec<(u32, u32)>,
}

impl Remap {
    /// The remap user `flag` names (`default`, `USER`, `USER:GROUP`, `UID[:GID]`),
    /// read from the host's files, making [`DEFAULT_USER`] when `default` needs it.
    pub fn load(flag: &str) -> Result<Remap, UsernsError> {
        let (user, group) = match flag.split_once(':') {
            Some((u, g)) => (u.to_string(), g.to_string()),
            None => (flag.to_string(), String::new()),
        };
        if user.is_empty() {
            return Err(UsernsError::BadRemap(flag.into(), "no user given".into()));
        }
        let (user, group) = if user == "default" {
            ensure_default_user()?;
            (DEFAULT_USER.to_string(), DEFAULT_USER.to_string())
        } else {
            let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
            let user = resolve_name(&passwd, &user)
                .ok_or_else(|| UsernsError::BadRemap(flag.into(), "no such user".into()))?;
            let group = if group.is_empty() {
                user.clone()
            } else {
                let groups = fs::read_to_string("/etc/group").unwrap_or_default();
                resolve_name(&groups, &group)
                    .ok_or_else(|| UsernsError::BadRemap(flag.into(), "no such group".into()))?
            };
            (user, group)
        };
        Remap::from_files(
            &user,
            &group,
            &fs::read_to_string("/etc/subuid").unwrap_or_default(),
            &fs::read_to_string("/etc/subgid").unwrap_or_default(),
        )
    }

    /// [`load`](Self::load)'s reading of `/etc/subuid` and `/etc/subgid` texts.
    pub fn from_files(
        user: &str,
        group: &str,
        subuid: &str,
        subgid: &str,
    ) -> Result<Remap, UsernsError> {
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let groups = fs::read_to_string("/etc/group").unwrap_or_default();
        let uid_ranges = subordinate_ranges(subuid, user, numeric_id(&passwd, user).as_deref());
        let gid_ranges = subordinate_ranges(subgid, group, numeric_id(&groups, group).as_deref());
        if uid_ranges.is_empty() {
            return Err(UsernsError::NoRanges {
                user: user.into(),
                kind: "uid",
                file: "/etc/subuid",
            });
        }
        if gid_ranges.is_empty() {
            return Err(UsernsError::NoRanges {
                user: group.into(),
                kind: "gid",
                file: "/etc/subgid",
            });
        }
        Ok(Remap {
            user: user.into(),
            group: group.into(),
            uid_ranges,
            gid_ranges,
        })
    }

    /// The mapping of every remapped container: slot 0 (the whole first range when it is
    /// smaller than a slot).
    pub fn default_mapping(&self) -> IdMapping {
        self.slot_mapping(0).unwrap_or_else(|| {
            let one = |r: &[(u32, u32)]| {
                vec![IdRange {
                    container: 0,
                    host: r[0].0,
                    size: r[0].1,
                }]
            };
            IdMapping {
                uids: one(&self.uid_ranges),
                gids: one(&self.gid_ranges),
            }
        })
    }

    /// A slot of its own for an `auto` container: the first one that none of `taken`
    /// (the mappings of the existing containers) uses.
    pub fn auto_mapping<'a>(
        &self,
        taken: impl IntoIterator<Item = &'a IdMapping>,
    ) -> Result<IdMapping, UsernsError> {
        let used: Vec<u32> = taken.into_iter().filter_map(|m| m.slot_of(self)).collect();
        (1..self.slots())
            .find(|s| !used.contains(s))
            .and_then(|s| self.slot_mapping(s))
            .ok_or(UsernsError::Exhausted(self.slots().saturating_sub(1)))
    }

    /// Whole slots in both the uid and the gid ranges.
    fn slots(&self) -> u32 {
        let count = |r: &[(u32, u32)]| r.iter().map(|(_, n)| n / SLOT).sum::<u32>();
        count(&self.uid_ranges).min(count(&self.gid_ranges))
    }

    /// The first host ID of slot `slot` in `ranges` (slots never straddle two ranges).
    fn slot_start(&self, ranges: &[(u32, u32)], slot: u32) -> Option<u32> {
        let mut left = slot;
        for (start, count) in ranges {
            let here = count / SLOT;
            if left < here {
                return start.checked_add(left * SLOT);
            }
            left -= here;
        }
        None
    }

    fn slot_mapping(&self, slot: u32) -> Option<IdMapping> {
        let uid = self.slot_start(&self.uid_ranges, slot)?;
        let gid = self.slot_start(&self.gid_ranges, slot)?;
        let range = |host| {
            vec![IdRange {
                container: 0,
                host,
                size: SLOT,
            }]
        };
        Some(IdMapping {
            uids: range(uid),
            gids: range(gid),
        })
    }
}

/// `name` of an `/etc/passwd` or `/etc/group` text, looked up by name or by number.
fn resolve_name(db: &str, name_or_id: &str) -> Option<String> {
    db.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (name == name_or_id || id == name_or_id).then(|| name.to_string())
    })
}

/// The numeric ID of `name` in an `/etc/passwd` or `/etc/group` text.
fn numeric_id(db: &str, name: &str) -> Option<String> {
    db.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1).map(str::to_string))?
    })
}

/// `(start, count)` of every `/etc/subuid`-format line for `name` (or its numeric ID).
pub fn subordinate_ranges(text: &str, name: &str, id: Option<&str>) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let owner = f.next()?;
            let start: u32 = f.next()?.parse().ok()?;
            let count: u32 = f.next()?.parse().ok()?;
            // A range past the last ID cannot be mapped: left out, as an empty one.
            (owner == name || Some(owner) == id)
                .then_some((start, count))
                .filter(|_| count > 0 && start.checked_add(count).is_some())
        })
        .collect()
}

/// Makes [`DEFAULT_USER`] (a system user with no login) and its subordinate ranges,
/// placed above every range the host has given out, when they are missing.
fn ensure_default_user() -> Result<(), UsernsError> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    if numeric_id(&passwd, DEFAULT_USER).is_none() {
        run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            DEFAULT_USER,
        ]))?;
    }
    let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = fs::read_to_string("/etc/subgid").unwrap_or_default();
    let has = |text: &str| !subordinate_ranges(text, DEFAULT_USER, None).is_empty();
    if has(&subuid) && has(&subgid) {
        return Ok(());
    }
    let end = |text: &str| {
        text.lines()
            .filter_map(|l| {
                let mut f = l.split(':').skip(1);
                let start: u64 = f.next()?.parse().ok()?;
                let count: u64 = f.next()?.parse().ok()?;
                Some(start + count)
            })
            .max()
            .unwrap_or(0)
    };
    // Above every range given out so far, at a slot boundary, and at least 100000 (the
    // IDs below are the host's own users).
    let start = end(&subuid).max(end(&subgid)).max(100_000);
    let start = start.div_ceil(SLOT as u64) * SLOT as u64;
    let last = start + SLOT as u64 * DEFAULT_SLOTS as u64 - 1;
    if last > u32::MAX as u64 - 1 {
        return Err(UsernsError::Io(
            "no room left for the remap user's subordinate IDs".into(),
        ));
    }
    let range = format!("{start}-{last}");
    let mut cmd = Command::new("usermod");
    if !has(&subuid) {
        cmd.args(["--add-subuids", &range]);
    }
    if !has(&subgid) {
        cmd.args(["--add-subgids", &range]);
    }
    run(cmd.arg(DEFAULT_USER))
}

fn run(cmd: &mut Command) -> Result<(), UsernsError> {
    let desc = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| UsernsError::Io(format!("{desc}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(UsernsError::Io(format!(
            "{desc}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A user namespace with `mapping`, as an fd (for idmapped mounts). A child made for
/// it enters a new user namespace and waits; its maps are written from here, then the
/// namespace is opened and the child ends.
pub fn namespace_fd(mapping: &IdMapping) -> Result<OwnedFd, UsernsError> {
    use std::os::unix::process::CommandExt;
    let io =
        |what: &str, e: std::io::Error| UsernsError::Io(format!("user namespace: {what}: {e}"));
    let enter_userns = || {
        // SAFETY: a new user namespace for the single-threaded forked child; nothing
        // else shares its credentials.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }
            .map_err(std::io::Error::from)
    };
    // The child only has to live until the namespace is opened: `cat` on a pipe, which
    // ends when this function drops its end (and is killed by pid in any case).
    let mut cmd = Command::new("/bin/cat");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure only calls unshare(2), async-signal-safe as pre_exec requires.
    unsafe { cmd.pre_exec(enter_userns) };
    let mut child = cmd.spawn().map_err(|e| io("spawn", e))?;
    let pid = child.id();
    let result = (|| {
        let line = |r: &[IdRange]| {
            r.iter()
                .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
                .collect::<String>()
        };
        fs::write(format!("/proc/{pid}/uid_map"), line(&mapping.uids))
            .map_err(|e| io("uid_map", e))?;
        fs::write(format!("/proc/{pid}/gid_map"), line(&mapping.gids))
            .map_err(|e| io("gid_map", e))?;
        fs::File::open(format!("/proc/{pid}/ns/user"))
            .map(OwnedFd::from)
            .map_err(|e| io("open", e))
    })();
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Whether idmapped layers can be mounted on this kernel (Linux ≥ 5.19 for overlayfs).
pub fn kernel_supports_idmapped_layers() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut nums = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    (major, minor) >= (5, 19)
}

/// Changes the owner of `path` (not following a symlink) to the mapped root.
pub fn chown_to_root(path: &Path, mapping: &IdMapping) -> std::io::Result<()> {
    let (uid, gid) = mapping.root();
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remap(subuid: &str, subgid: &str) -> Remap {
        Remap::from_files("someone", "someone", subuid, subgid).unwrap()
    }

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let text = "someone:100000:65536\nother:1:2\n1000:300000:65536\nbad line\nsomeone:x:1\n";
        assert_eq!(
            subordinate_ranges(text, "someone", Some("1000")),
            vec![(100000, 65536), (300000, 65536)]
        );
        assert!(subordinate_ranges(text, "nobody", None).is_empty());
    }

    #[test]
    fn slot_zero_for_remap_and_distinct_slots_for_auto() {
        let r = remap("someone:100000:196608\n", "someone:500000:196608\n");
        let d = r.default_mapping();
        assert_eq!(d.root(), (100000, 500000));
        assert_eq!(d.host_uid(1000), Some(101000));
        assert_eq!(d.host_uid(SLOT), None);
        assert_eq!(d.container_uid(101000), Some(1000));
        assert_eq!(d.container_gid(500000), Some(0));
        assert_eq!(d.container_uid(99999), None);
        let a1 = r.auto_mapping([&d]).unwrap();
        assert_eq!(a1.root(), (165536, 565536));
        let a2 = r.auto_mapping([&d, &a1]).unwrap();
        assert_eq!(a2.root(), (231072, 631072));
        assert!(matches!(
            r.auto_mapping([&a1, &a2]),
            Err(UsernsError::Exhausted(2))
        ));
        // A freed slot is given again.
        assert_eq!(r.auto_mapping([&a2]).unwrap(), a1);
    }

    #[test]
    fn slots_never_straddle_ranges_and_small_ranges_still_map() {
        let r = remap(
            "someone:100000:70000\nsomeone:900000:65536\n",
            "someone:100000:200000\n",
        );
        assert_eq!(r.auto_mapping([]).unwrap().root(), (900000, 165536));
        let small = remap("someone:100000:1000\n", "someone:100000:1000\n");
        assert_eq!(small.default_mapping().uids[0].size, 1000);
        assert!(small.auto_mapping([]).is_err());
    }

    #[test]
    fn missing_ranges_are_named() {
        let e = Remap::from_files("someone", "someone", "", "someone:1:65536").unwrap_err();
        assert!(e.to_string().contains("/etc/subuid"), "{e}");
    }
}
