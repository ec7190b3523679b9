//! Control groups, v1 and v2 behind one trait.
//!
//! [`open`] detects the host: if `/sys/fs/cgroup` is a cgroup2 mount the host is v2
//! ([`V2`]); otherwise every v1 hierarchy found in `/proc/self/mountinfo` is used
//! ([`V1`]), and on a *hybrid* host the extra cgroup2 mount (usually
//! `/sys/fs/cgroup/unified`) is managed too, for the controllers it holds (hugetlb here).
//!
//! Behaviour follows runc 1.1 (`libcontainer/cgroups/fs` and `fs2`) unless a comment
//! says otherwise. Everything is plain file writes except the v2 device filter, an
//! eBPF program loaded with `bpf(2)` (see [`devices`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec;

pub mod devices;
mod fsutil;
mod mountinfo;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

pub use devices::{default_allowed_devices, default_device_nodes, default_device_rules};
pub use devices::{DefaultDevice, DEFAULT_ALLOWED_DEVICES};
pub use v1::V1;
pub use v2::V2;

/// Where cgroup filesystems are mounted on every supported host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Parent of the default cgroup path, `/pier/<container id>`.
pub const DEFAULT_PARENT: &str = "/pier";
/// Scope prefix used with `--systemd-cgroup` when `linux.cgroupsPath` is unset
/// (runc uses "runc": `system.slice/runc-<id>.scope`).
pub const SYSTEMD_SCOPE_PREFIX: &str = "pier";

/// `statfs(2)` magic of a cgroup2 filesystem.
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// Which cgroup API the resource controllers use on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller (or group of controllers); possibly hybrid.
    V1,
    /// The unified hierarchy.
    V2,
}

/// A container's cgroup, in every hierarchy it spans.
pub trait Cgroup: std::fmt::Debug {
    /// Creates the cgroup (all hierarchies for v1). Idempotent.
    fn create(&self) -> Result<()>;
    /// Moves a process into it (cgroup.procs in every hierarchy).
    fn add_process(&self, pid: i32) -> Result<()>;
    /// Applies resources (on create and on `update`). Device rules are always applied:
    /// the spec's `devices` followed by [`default_device_rules`], so `update` must pass
    /// the container's complete resources, not only the changed fields (as runc does).
    fn apply(&self, resources: &spec::Resources) -> Result<()> {
        self.apply_with_devices(resources, &[])
    }
    /// [`Cgroup::apply`], dropping default device rules whose path the spec's
    /// `linux.devices` redefines (runc's `createDevices` de-duplication).
    fn apply_with_devices(
        &self,
        resources: &spec::Resources,
        linux_devices: &[spec::Device],
    ) -> Result<()>;
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn is_frozen(&self) -> Result<bool>;
    /// PIDs of every process in it and its descendants (runc's GetAllPids), sorted.
    /// A cgroup directory that does not exist counts as empty.
    fn pids(&self) -> Result<Vec<i32>>;
    /// runc's `events --stats` data object (runc 1.1's `types.Stats` JSON). Fails if the
    /// cgroup does not exist (any more).
    fn stats(&self) -> Result<serde_json::Value>;
    /// Removes it (every hierarchy); processes must be gone. Retries briefly on EBUSY
    /// as runc does. Missing directories are fine. Parents (e.g. `/pier`) are kept.
    fn destroy(&self) -> Result<()>;
    /// The cgroup path inside a hierarchy, e.g. "/pier/abc" (what /proc/<pid>/cgroup
    /// shows); store it and reopen with [`open_existing`]. On v1 the hierarchies can
    /// disagree (a relative `cgroupsPath` while our own cgroups differ per hierarchy,
    /// as for memory on this host): then it is the JSON object of [`Cgroup::paths`],
    /// which [`open_existing`] accepts too.
    fn path(&self) -> &str;
    /// Hierarchy name ("memory", "cpu,cpuacct", "name=systemd", "unified") → cgroup
    /// path, for [`open_existing_paths`].
    fn paths(&self) -> BTreeMap<String, String>;
    /// The cgroup directories this handle manages.
    fn dirs(&self) -> Vec<PathBuf>;
    fn version(&self) -> Version;
    /// What [`Cgroup::apply`] ignores on this host, for the caller to print as warnings
    /// (e.g. kernel memory limits, which runc 1.1 ignores too).
    fn warnings(&self, resources: &spec::Resources) -> Vec<String>;
}

/// Picks v1/v2 for this host and resolves the path.
///
/// `cgroups_path` is OCI `linux.cgroupsPath`: absolute ("/a/b", from the hierarchy root),
/// relative ("a/b", joined to the cgroup of the calling process as seen in
/// /proc/self/cgroup: per hierarchy for v1; for v2 to its *parent*, as runc does, since
/// the caller's own cgroup has processes and cannot delegate controllers), or absent
/// ("/pier/<container id>"). With `systemd` it has the form "slice:prefix:name" and is
/// mapped to the cgroupfs path runc's systemd driver would produce, see
/// [`systemd_to_cgroupfs`].
pub fn open(
    cgroups_path: Option<&str>,
    container_id: &str,
    systemd: bool,
) -> Result<Box<dyn Cgroup>> {
    let requested = requested_path(cgroups_path, container_id, systemd)?;
    open_requested(&requested)
}

/// Same, for an existing container whose resolved path (see [`Cgroup::path`]) was stored:
/// "/a/b", or the JSON object `path()` gives when v1 hierarchies disagree.
pub fn open_existing(path: &str) -> Result<Box<dyn Cgroup>> {
    if path.starts_with('{') {
        let paths: BTreeMap<String, String> = serde_json::from_str(path)
            .map_err(|e| Error::Cgroup(format!("stored cgroup paths {path:?}: {e}")))?;
        return open_existing_paths(&paths);
    }
    if !path.starts_with('/') {
        return Err(Error::Cgroup(format!(
            "stored cgroup path {path:?} is not absolute"
        )));
    }
    let path = clean_path(path);
    match host_version()? {
        Version::V2 => Ok(Box::new(V2::existing_on_host(&path)?)),
        Version::V1 => Ok(Box::new(V1::existing(|_| Some(path.clone()))?)),
    }
}

/// Same, from [`Cgroup::paths`]: exact per-hierarchy paths. Hierarchies missing from the
/// map are not managed.
pub fn open_existing_paths(paths: &BTreeMap<String, String>) -> Result<Box<dyn Cgroup>> {
    match host_version()? {
        Version::V2 => {
            let path = paths.get("unified").ok_or_else(|| {
                Error::Cgroup("stored cgroup paths have no \"unified\" entry".into())
            })?;
            Ok(Box::new(V2::existing_on_host(&clean_path(path))?))
        }
        Version::V1 => Ok(Box::new(V1::from_paths(paths)?)),
    }
}

fn open_requested(requested: &Requested) -> Result<Box<dyn Cgroup>> {
    match host_version()? {
        Version::V2 => Ok(Box::new(V2::on_host(requested)?)),
        Version::V1 => Ok(Box::new(V1::on_host(requested)?)),
    }
}

/// v2 if `/sys/fs/cgroup` is a cgroup2 mount, else v1 (including hybrid hosts).
pub fn host_version() -> Result<Version> {
    let st = rustix::fs::statfs(CGROUP_ROOT).map_err(|e| {
        Error::Cgroup(format!(
            "statfs {CGROUP_ROOT}: {}",
            fsutil::os_text(&e.into())
        ))
    })?;
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as u64;
    Ok(if magic == CGROUP2_SUPER_MAGIC {
        Version::V2
    } else {
        Version::V1
    })
}

/// The cgroup path asked for, after cleaning; relative paths are resolved per hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Requested {
    Absolute(String),
    Relative(String),
}

impl Requested {
    /// The path inside a hierarchy whose caller's own cgroup is `own`.
    pub(crate) fn resolve(&self, own: &str) -> String {
        match self {
            Requested::Absolute(p) => p.clone(),
            Requested::Relative(r) => clean_path(&format!("{own}/{r}")),
        }
    }
}

/// Turns `linux.cgroupsPath` (and `--systemd-cgroup`) into a cleaned path.
pub(crate) fn requested_path(
    cgroups_path: Option<&str>,
    container_id: &str,
    systemd: bool,
) -> Result<Requested> {
    let cgroups_path = cgroups_path.filter(|p| !p.is_empty());
    if systemd {
        return Ok(Requested::Absolute(systemd_to_cgroupfs(
            cgroups_path,
            container_id,
        )?));
    }
    let Some(raw) = cgroups_path else {
        check_name(container_id, "container id")?;
        return Ok(Requested::Absolute(format!(
            "{DEFAULT_PARENT}/{container_id}"
        )));
    };
    // runc's utils.CleanPath: ".." can never climb above the starting point.
    let cleaned = clean_path(raw);
    if cleaned == "/" {
        return Err(Error::InvalidConfig(
            "linux.cgroupsPath: must not be the root cgroup".into(),
        ));
    }
    if cleaned == "." {
        return Err(Error::InvalidConfig(format!(
            "linux.cgroupsPath: {raw:?} names the runtime's own cgroup"
        )));
    }
    Ok(if cleaned.starts_with('/') {
        Requested::Absolute(cleaned)
    } else {
        Requested::Relative(cleaned)
    })
}

fn check_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::InvalidConfig(format!(
            "{what} {name:?} cannot be used as a cgroup name"
        )));
    }
    Ok(())
}

/// Lexically cleans a path like Go's `filepath.Clean`, except that ".." never climbs
/// above the start (runc's `CleanPath`): "/../a" → "/a", "../../a" → "a", "" → ".".
pub(crate) fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Maps runc's systemd form "slice:prefix:name" to the cgroupfs path systemd would use:
/// "system.slice:docker:abc" → "/system.slice/docker-abc.scope", nested slices expanded
/// ("a-b.slice" → "/a.slice/a-b.slice"). An empty slice means "system.slice"; an empty
/// prefix gives "name.scope"; a name ending in ".slice" is used as is (runc's
/// `getUnitName`). Unset → "/system.slice/pier-<id>.scope".
pub fn systemd_to_cgroupfs(cgroups_path: Option<&str>, container_id: &str) -> Result<String> {
    let (slice, prefix, name) = match cgroups_path {
        None => ("", SYSTEMD_SCOPE_PREFIX, container_id),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(Error::InvalidConfig(format!(
                    "linux.cgroupsPath: expected \"slice:prefix:name\" for systemd cgroups, got {p:?}"
                )));
            };
            (slice, prefix, name)
        }
    };
    check_name(name, "systemd unit name")?;
    if prefix.contains('/') {
        return Err(Error::InvalidConfig(format!(
            "linux.cgroupsPath: invalid systemd scope prefix {prefix:?}"
        )));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let slice_path = expand_slice(slice)?;
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(clean_path(&format!("{slice_path}/{unit}")))
}

/// systemd's slice hierarchy: "test-a-b.slice" → "/test.slice/test-a.slice/test-a-b.slice",
/// "-.slice" → "/" (runc's `ExpandSlice`).
pub fn expand_slice(slice: &str) -> Result<String> {
    const SUFFIX: &str = ".slice";
    let invalid =
        || Error::InvalidConfig(format!("linux.cgroupsPath: invalid slice name {slice:?}"));
    let Some(name) = slice.strip_suffix(SUFFIX) else {
        return Err(invalid());
    };
    if slice.contains('/') || name.is_empty() {
        return Err(invalid());
    }
    if name == "-" {
        return Ok("/".to_string());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in name.split('-') {
        // "test--a.slice" and "-test.slice" are not valid slice names.
        if component.is_empty() {
            return Err(invalid());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(SUFFIX);
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

/// The directory of cgroup `cgroup_path` on a mount of the hierarchy whose root (the
/// mountinfo "root" field) is `mount_root`.
pub(crate) fn dir_in(mountpoint: &Path, mount_root: &str, cgroup_path: &str) -> PathBuf {
    let inner = if mount_root == "/" {
        cgroup_path
    } else {
        // A path outside the mounted subtree cannot be reached through this mount;
        // fall back to treating it as relative to the mount.
        cgroup_path
            .strip_prefix(mount_root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or(cgroup_path)
    };
    let inner = inner.trim_start_matches('/');
    if inner.is_empty() {
        mountpoint.to_path_buf()
    } else {
        mountpoint.join(inner)
    }
}

/// The cgroup path that `requested` names on a mount with root `mount_root`, for a
/// caller whose own cgroup there is `own` (as /proc/self/cgroup shows it).
pub(crate) fn cgroup_path_in(requested: &Requested, mount_root: &str, own: &str) -> String {
    match requested {
        // runc joins absolute paths to the mountpoint, i.e. below the mount's root.
        Requested::Absolute(p) if mount_root != "/" => clean_path(&format!("{mount_root}/{p}")),
        _ => requested.resolve(own),
    }
}

/// Converts cpu.shares (v1, 2..262144) to cpu.weight (v2, 1..10000) with runc 1.1's
/// linear formula; 0 stays 0 ("unset").
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Converts blkio.weight (v1, 10..1000) to io.weight (v2, 1..10000) like runc's
/// `ConvertBlkIOToIOWeightValue`; 0 stays 0 ("unset").
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

/// Converts OCI memory.swap (memory+swap, v1 semantics) to memory.swap.max (swap only)
/// like runc's `ConvertMemorySwapToCgroupV2Value`: 0 = unset, -1 = max.
pub fn memory_swap_to_v2(swap: i64, memory: i64) -> Result<i64> {
    // Memory unlimited and swap unset means "both unlimited", as v1 does.
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(Error::Cgroup(
            "linux.resources.memory.swap: unable to set swap limit without memory limit".into(),
        ));
    }
    if memory < 0 {
        return Err(Error::Cgroup(format!(
            "linux.resources.memory.limit: invalid value {memory}"
        )));
    }
    if swap < memory {
        return Err(Error::Cgroup(format!(
            "linux.resources.memory.swap: memory+swap limit {swap} should be >= memory limit {memory}"
        )));
    }
    Ok(swap - memory)
}

/// A v2 limit value: -1 → "max", others as is.
pub(crate) fn v2_limit(value: i64) -> String {
    if value == -1 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// pids.max from `linux.resources.pids.limit`: 0 and -1 mean unlimited.
pub(crate) fn pids_max(limit: i64) -> Result<String> {
    match limit {
        0 | -1 => Ok("max".to_string()),
        l if l > 0 => Ok(l.to_string()),
        l => Err(Error::Cgroup(format!(
            "linux.resources.pids.limit: invalid value {l}"
        ))),
    }
}

/// Huge page sizes this kernel supports, as OCI/cgroup names ("2MB", "1GB").
pub(crate) fn hugepage_sizes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kb, hugepage_name(kb)))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, n)| n).collect()
}

/// 2048 (kB) → "2MB", 1048576 → "1GB", 64 → "64KB" (the kernel's hugetlb file names).
pub(crate) fn hugepage_name(kb: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let mut value = kb;
    let mut unit = 0;
    while value >= 1024 && value % 1024 == 0 && unit < UNITS.len() - 1 {
        value /= 1024;
        unit += 1;
    }
    format!("{value}{}", UNITS[unit])
}

/// Checks every `hugepageLimits[].pageSize` against the kernel's sizes.
pub(crate) fn check_hugepage_sizes(limits: &[spec::HugepageLimit]) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    let sizes = hugepage_sizes();
    for (i, l) in limits.iter().enumerate() {
        if !sizes.contains(&l.page_size) {
            return Err(Error::Cgroup(format!(
                "linux.resources.hugepageLimits[{i}].pageSize: {:?} is not supported by this kernel (available: {})",
                l.page_size,
                if sizes.is_empty() { "none".to_string() } else { sizes.join(", ") }
            )));
        }
    }
    Ok(())
}

/// `memory.swappiness`, where -1 (sent as u64::MAX by Docker) means unset, as in runc.
pub(crate) fn swappiness(m: &spec::Memory) -> Option<u64> {
    m.swappiness.filter(|s| *s != u64::MAX)
}

/// Warnings common to both versions.
pub(crate) fn common_warnings(resources: &spec::Resources) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(m) = &resources.memory {
        // runc 1.1: "Kernel memory settings are ignored and will be removed".
        if m.kernel.is_some() || m.kernel_tcp.is_some() {
            w.push(
                "linux.resources.memory.kernel/kernelTCP: kernel memory settings are ignored (as runc 1.1 does; the kernel deprecated them)"
                    .to_string(),
            );
        }
        if m.use_hierarchy == Some(false) {
            w.push(
                "linux.resources.memory.useHierarchy: ignored, hierarchy is always on".to_string(),
            );
        }
    }
    w
}

/// `linux.resources.network.classID`, and `priorities` as (interface, priority).
pub(crate) type NetworkSettings = (Option<u32>, Vec<(String, u32)>);

/// `linux.resources.network` as runc reads it: `classID` and `priorities`.
pub(crate) fn network_settings(value: &serde_json::Value) -> Result<NetworkSettings> {
    let bad =
        |what: &str| Error::InvalidConfig(format!("linux.resources.network.{what}: invalid value"));
    let class_id = match value.get("classID") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("classID"))?,
        ),
    };
    let mut priorities = Vec::new();
    if let Some(list) = value.get("priorities").filter(|v| !v.is_null()) {
        for p in list.as_array().ok_or_else(|| bad("priorities"))? {
            let name = p
                .get("name")
                .and_then(|n| n.as_str())
                .ok_or_else(|| bad("priorities"))?;
            let prio = p
                .get("priority")
                .and_then(|n| n.as_u64())
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("priorities"))?;
            priorities.push((name.to_string(), prio));
        }
    }
    Ok((class_id, priorities))
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn clean_path_never_climbs() {
        assert_eq!(clean_path("/a/b/../c/./d/"), "/a/c/d");
        assert_eq!(clean_path("/../../a"), "/a");
        assert_eq!(clean_path("../../a"), "a");
        assert_eq!(clean_path("a//b"), "a/b");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path(".."), ".");
    }

    #[test]
    fn requested_paths() {
        assert_eq!(
            requested_path(None, "abc", false).unwrap(),
            Requested::Absolute("/pier/abc".into())
        );
        assert_eq!(
            requested_path(Some(""), "abc", false).unwrap(),
            Requested::Absolute("/pier/abc".into())
        );
        assert_eq!(
            requested_path(Some("/a/../b"), "abc", false).unwrap(),
            Requested::Absolute("/b".into())
        );
        assert_eq!(
            requested_path(Some("../x/y"), "abc", false).unwrap(),
            Requested::Relative("x/y".into())
        );
        assert!(requested_path(Some("/.."), "abc", false).is_err());
        assert!(requested_path(Some("a/.."), "abc", false).is_err());
        assert!(requested_path(None, "../etc", false).is_err());
        assert!(requested_path(None, "", false).is_err());
    }

    #[test]
    fn relative_resolution() {
        let rel = Requested::Relative("a/b".into());
        assert_eq!(rel.resolve("/"), "/a/b");
        assert_eq!(rel.resolve("/process_api/x"), "/process_api/x/a/b");
        let abs = Requested::Absolute("/pier/c".into());
        assert_eq!(abs.resolve("/process_api/x"), "/pier/c");
        assert_eq!(
            cgroup_path_in(&abs, "/docker/1", "/docker/1"),
            "/docker/1/pier/c"
        );
        assert_eq!(cgroup_path_in(&rel, "/", "/user.slice"), "/user.slice/a/b");
    }

    #[test]
    fn dirs_in_mounts() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            dir_in(m, "/", "/pier/a"),
            PathBuf::from("/sys/fs/cgroup/memory/pier/a")
        );
        assert_eq!(dir_in(m, "/", "/"), PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(
            dir_in(m, "/docker/1", "/docker/1/x"),
            PathBuf::from("/sys/fs/cgroup/memory/x")
        );
        assert_eq!(
            dir_in(m, "/docker/1", "/docker/10"),
            PathBuf::from("/sys/fs/cgroup/memory/docker/10")
        );
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            systemd_to_cgroupfs(Some("system.slice:docker:abc"), "x").unwrap(),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            systemd_to_cgroupfs(Some("a-b.slice:crio:abc"), "x").unwrap(),
            "/a.slice/a-b.slice/crio-abc.scope"
        );
        assert_eq!(
            systemd_to_cgroupfs(Some(":docker:abc"), "x").unwrap(),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            systemd_to_cgroupfs(Some("-.slice::abc"), "x").unwrap(),
            "/abc.scope"
        );
        assert_eq!(
            systemd_to_cgroupfs(Some("machine.slice:x:my-b.slice"), "x").unwrap(),
            "/machine.slice/my-b.slice"
        );
        assert_eq!(
            systemd_to_cgroupfs(None, "abc").unwrap(),
            "/system.slice/pier-abc.scope"
        );
        assert!(systemd_to_cgroupfs(Some("system.slice:docker"), "x").is_err());
        assert!(systemd_to_cgroupfs(Some("system:docker:abc"), "x").is_err());
        assert!(systemd_to_cgroupfs(Some("a--b.slice:docker:abc"), "x").is_err());
        assert!(systemd_to_cgroupfs(Some("system.slice:docker:../x"), "x").is_err());
        assert_eq!(
            requested_path(Some("user-1000.slice:podman:c1"), "x", true).unwrap(),
            Requested::Absolute("/user.slice/user-1000.slice/podman-c1.scope".into())
        );
    }

    #[test]
    fn slices() {
        assert_eq!(
            expand_slice("test-a-b.slice").unwrap(),
            "/test.slice/test-a.slice/test-a-b.slice"
        );
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        assert!(expand_slice(".slice").is_err());
        assert!(expand_slice("-test.slice").is_err());
        assert!(expand_slice("test").is_err());
        assert!(expand_slice("a/b.slice").is_err());
    }

    #[test]
    fn conversions() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(1), 1);
        assert_eq!(cpu_shares_to_weight(u64::MAX), 10_000);

        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);

        assert_eq!(memory_swap_to_v2(0, 0).unwrap(), 0);
        assert_eq!(memory_swap_to_v2(0, -1).unwrap(), -1);
        assert_eq!(memory_swap_to_v2(-1, 100).unwrap(), -1);
        assert_eq!(memory_swap_to_v2(300, 100).unwrap(), 200);
        assert_eq!(memory_swap_to_v2(100, 100).unwrap(), 0);
        assert!(memory_swap_to_v2(50, 100).is_err());
        assert!(memory_swap_to_v2(100, 0).is_err());
        assert!(memory_swap_to_v2(100, -1).is_err());

        assert_eq!(v2_limit(-1), "max");
        assert_eq!(v2_limit(42), "42");
        assert_eq!(pids_max(0).unwrap(), "max");
        assert_eq!(pids_max(-1).unwrap(), "max");
        assert_eq!(pids_max(7).unwrap(), "7");
        assert!(pids_max(-2).is_err());

        let unset = spec::Memory {
            swappiness: Some(u64::MAX),
            ..Default::default()
        };
        assert_eq!(swappiness(&unset), None);
        let set = spec::Memory {
            swappiness: Some(60),
            ..Default::default()
        };
        assert_eq!(swappiness(&set), Some(60));
    }

    #[test]
    fn hugepage_names() {
        assert_eq!(hugepage_name(2048), "2MB");
        assert_eq!(hugepage_name(1_048_576), "1GB");
        assert_eq!(hugepage_name(64), "64KB");
        assert_eq!(hugepage_name(32_768), "32MB");
        assert_eq!(hugepage_name(16 * 1024 * 1024 * 1024), "16TB");
    }

    #[test]
    fn network() {
        let v = serde_json::json!({"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]});
        let (c, p) = network_settings(&v).unwrap();
        assert_eq!(c, Some(1_048_577));
        assert_eq!(p, vec![("eth0".to_string(), 500)]);
        assert!(network_settings(&serde_json::json!({"classID": -1})).is_err());
    }
}
