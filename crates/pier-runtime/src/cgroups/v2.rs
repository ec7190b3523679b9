//! cgroup v2 (unified hierarchy), after runc 1.1's `libcontainer/cgroups/fs2`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::devices;
use super::fsutil::{self, err, os_text};
use super::mountinfo;
use super::stats::{self, Hugetlb, MemoryEntry, Stats};
use super::{Cgroup, Requested, Version};
use crate::error::{Error, Result};
use crate::spec;

/// A cgroup on a cgroup2 mount. The mount is a parameter, so the same code serves a v2
/// host (`/sys/fs/cgroup`) and the cgroup2 mount of a hybrid host
/// (`/sys/fs/cgroup/unified`).
#[derive(Debug, Clone)]
pub struct V2 {
    mountpoint: PathBuf,
    path: String,
    dir: PathBuf,
    /// Whether device rules are enforced here with eBPF. Off for the cgroup2 part of a
    /// hybrid host, where the v1 devices controller does it.
    device_filter: bool,
}

impl V2 {
    /// Cgroup `path` ("/pier/abc", from the hierarchy root) on the cgroup2 filesystem
    /// mounted at `mountpoint` (whose root is the hierarchy root).
    pub fn new(mountpoint: impl Into<PathBuf>, path: &str) -> Result<V2> {
        if !path.starts_with('/') {
            return Err(err(format!("cgroup path {path:?} is not absolute")));
        }
        Ok(V2::at(
            mountpoint.into(),
            "/".to_string(),
            super::clean_path(path),
            true,
        ))
    }

    /// `mount_root` is the mountinfo "root" of the mount, "/" unless in a container.
    pub(crate) fn at(
        mountpoint: PathBuf,
        mount_root: String,
        path: String,
        device_filter: bool,
    ) -> V2 {
        let dir = super::dir_in(&mountpoint, &mount_root, &path);
        V2 {
            mountpoint,
            path,
            dir,
            device_filter,
        }
    }

    /// The cgroup for `requested` on a v2 host (/sys/fs/cgroup). Relative paths are
    /// joined to the *parent* of our own cgroup, as runc does: our own cgroup has
    /// processes in it, so it cannot have children with controllers.
    pub(crate) fn on_host(requested: &Requested) -> Result<V2> {
        let mountpoint = PathBuf::from(super::CGROUP_ROOT);
        let mount_root = host_mount_root(&mountpoint)?;
        let own = match requested {
            Requested::Absolute(_) => "/".to_string(),
            Requested::Relative(_) => {
                let own = mountinfo::read_own_cgroups()?
                    .into_iter()
                    .find(|m| m.controllers.is_empty())
                    .map(|m| m.path)
                    .ok_or_else(|| err("/proc/self/cgroup has no cgroup v2 entry"))?;
                parent_of(&own)
            }
        };
        let path = super::cgroup_path_in(requested, &mount_root, &own);
        check_not_root(&path)?;
        Ok(V2::at(mountpoint, mount_root, path, true))
    }

    /// A cgroup on a v2 host by the path /proc/<pid>/cgroup shows for it.
    pub(crate) fn existing_on_host(path: &str) -> Result<V2> {
        check_not_root(path)?;
        let mountpoint = PathBuf::from(super::CGROUP_ROOT);
        let mount_root = host_mount_root(&mountpoint)?;
        Ok(V2::at(mountpoint, mount_root, path.to_string(), true))
    }

    /// The cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Controllers available in this cgroup (its cgroup.controllers), empty if it does
    /// not exist.
    pub fn controllers(&self) -> Vec<String> {
        controllers_of(&self.dir)
    }

    fn require(&self, controller: &str, what: &str) -> Result<()> {
        let have = self.controllers();
        if have.iter().any(|c| c == controller) {
            return Ok(());
        }
        Err(err(format!(
            "{what}: the {controller} controller is not available in {} (cgroup.controllers: {:?})",
            self.dir.display(),
            have.join(" ")
        )))
    }

    /// Creates the cgroup and its parents, enabling in every ancestor (the mount root
    /// included) all controllers the root offers, best effort (runc's CreateCgroupPath).
    pub(crate) fn create_dirs(&self) -> Result<()> {
        self.create_dirs_with(true)
    }

    /// Enables the root's controllers in every ancestor of an existing cgroup (for the
    /// hybrid cgroup2 mount, only when a limit on one of its controllers is asked for).
    pub(crate) fn enable_controllers_along_path(&self) {
        let wanted = controllers_of(&self.mountpoint);
        let Ok(rel) = self.dir.strip_prefix(&self.mountpoint) else {
            return;
        };
        let mut current = self.mountpoint.clone();
        for component in rel.components() {
            enable_controllers(&current, &wanted);
            current.push(component);
        }
    }

    /// Creates the cgroup and its parents; with `enable`, turns on every controller the
    /// root offers along the way. The hybrid cgroup2 mount is joined without: enabling
    /// its controllers host-wide would stop tools that move them to v1 (crun does).
    pub(crate) fn create_dirs_with(&self, enable: bool) -> Result<()> {
        let rel = self
            .dir
            .strip_prefix(&self.mountpoint)
            .map_err(|_| {
                err(format!(
                    "{} is not below {}",
                    self.dir.display(),
                    self.mountpoint.display()
                ))
            })?
            .to_path_buf();
        let components: Vec<_> = rel.components().collect();
        if components.is_empty() {
            return Err(err(format!(
                "refusing to manage the root cgroup {}",
                self.dir.display()
            )));
        }
        let wanted = controllers_of(&self.mountpoint);
        let mut current = self.mountpoint.clone();
        for component in components {
            if enable {
                enable_controllers(&current, &wanted);
            }
            current.push(component);
            match std::fs::create_dir(&current) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(err(format!(
                        "create {}: {}",
                        current.display(),
                        os_text(&e)
                    )))
                }
            }
        }
        Ok(())
    }

    fn set_pids(&self, r: &spec::Resources) -> Result<()> {
        if let Some(p) = &r.pids {
            self.require("pids", "linux.resources.pids")?;
            fsutil::write(&self.dir, "pids.max", &super::pids_max(p.limit)?)?;
        }
        Ok(())
    }

    fn set_memory(&self, r: &spec::Resources) -> Result<()> {
        let Some(m) = &r.memory else {
            return Ok(());
        };
        let limit = m.limit.unwrap_or(0);
        let swap = m.swap.unwrap_or(0);
        let reservation = m.reservation.unwrap_or(0);
        if limit == 0 && swap == 0 && reservation == 0 {
            return Ok(());
        }
        self.require("memory", "linux.resources.memory")?;
        if m.check_before_update == Some(true) && limit > 0 {
            let usage = fsutil::read_u64_or_zero(&self.dir, "memory.current")?;
            if usage > limit as u64 {
                return Err(err(format!(
                    "linux.resources.memory.limit: {limit} is below the current usage {usage} of {}",
                    self.dir.display()
                )));
            }
        }
        let swap_v2 = super::memory_swap_to_v2(swap, limit)?;
        // 0 is "unset", except that memory == memory+swap means "no swap".
        if swap_v2 != 0 || swap > 0 {
            if fsutil::exists(&self.dir, "memory.swap.max") {
                fsutil::write(&self.dir, "memory.swap.max", &super::v2_limit(swap_v2))?;
            } else if swap != 0 {
                return Err(err(format!(
                    "linux.resources.memory.swap: not supported by this kernel (no memory.swap.max in {}: swap accounting is off)",
                    self.dir.display()
                )));
            }
        }
        if limit != 0 {
            fsutil::write(&self.dir, "memory.max", &super::v2_limit(limit))?;
        }
        if reservation != 0 {
            fsutil::write(&self.dir, "memory.low", &super::v2_limit(reservation))?;
        }
        Ok(())
    }

    fn set_io(&self, r: &spec::Resources) -> Result<()> {
        let Some(b) = &r.block_io else {
            return Ok(());
        };
        let weight = b.weight.unwrap_or(0);
        let device_weights: Vec<(i64, i64, u16)> = b
            .weight_device
            .iter()
            .filter_map(|d| d.weight.filter(|w| *w != 0).map(|w| (d.major, d.minor, w)))
            .collect();
        let throttles = [
            ("rbps", &b.throttle_read_bps_device),
            ("wbps", &b.throttle_write_bps_device),
            ("riops", &b.throttle_read_iops_device),
            ("wiops", &b.throttle_write_iops_device),
        ];
        if weight == 0 && device_weights.is_empty() && throttles.iter().all(|(_, t)| t.is_empty()) {
            return Ok(());
        }
        self.require("io", "linux.resources.blockIO")?;
        // BFQ takes blkio-style weights (runc prefers it); io.weight needs conversion.
        let bfq = fsutil::exists(&self.dir, "io.bfq.weight");
        if weight != 0 {
            if bfq {
                fsutil::write(&self.dir, "io.bfq.weight", &weight.to_string())?;
            } else {
                let w = super::blkio_weight_to_io_weight(weight);
                fsutil::write(&self.dir, "io.weight", &w.to_string())?;
            }
        }
        for (major, minor, w) in device_weights {
            if bfq {
                fsutil::write(&self.dir, "io.bfq.weight", &format!("{major}:{minor} {w}"))?;
            } else {
                // runc 1.1 ignores per-device weights without BFQ; io.weight takes them.
                let w = super::blkio_weight_to_io_weight(w);
                fsutil::write(&self.dir, "io.weight", &format!("{major}:{minor} {w}"))?;
            }
        }
        for (key, list) in throttles {
            for t in list.iter() {
                // v1 uses 0 for "no limit"; io.max uses "max".
                let rate = if t.rate == 0 {
                    "max".to_string()
                } else {
                    t.rate.to_string()
                };
                fsutil::write(
                    &self.dir,
                    "io.max",
                    &format!("{}:{} {key}={rate}", t.major, t.minor),
                )?;
            }
        }
        Ok(())
    }

    fn set_cpu(&self, r: &spec::Resources) -> Result<()> {
        let Some(c) = &r.cpu else {
            return Ok(());
        };
        if c.realtime_runtime.is_some_and(|v| v != 0) || c.realtime_period.is_some_and(|v| v != 0) {
            return Err(err(
                "linux.resources.cpu.realtimeRuntime/realtimePeriod: not supported on cgroup v2",
            ));
        }
        let weight = super::cpu_shares_to_weight(c.shares.unwrap_or(0));
        let quota = c.quota.unwrap_or(0);
        let period = c.period.unwrap_or(0);
        if c.idle.is_none() && weight == 0 && quota == 0 && period == 0 && c.burst.is_none() {
            return Ok(());
        }
        self.require("cpu", "linux.resources.cpu")?;
        if let Some(idle) = c.idle {
            fsutil::write_supported(
                &self.dir,
                "cpu.idle",
                &idle.to_string(),
                "linux.resources.cpu.idle",
            )?;
        }
        // An idle cgroup has no weight to set.
        if weight != 0 && c.idle != Some(1) {
            fsutil::write(&self.dir, "cpu.weight", &weight.to_string())?;
        }
        if quota != 0 || period != 0 {
            let quota = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_string()
            };
            // The kernel's documented default period.
            let period = if period == 0 { 100_000 } else { period };
            fsutil::write(&self.dir, "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(burst) = c.burst {
            fsutil::write_supported(
                &self.dir,
                "cpu.max.burst",
                &burst.to_string(),
                "linux.resources.cpu.burst",
            )?;
        }
        Ok(())
    }

    fn set_cpuset(&self, r: &spec::Resources) -> Result<()> {
        let Some(c) = &r.cpu else {
            return Ok(());
        };
        for (file, value) in [("cpuset.cpus", &c.cpus), ("cpuset.mems", &c.mems)] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                self.require("cpuset", "linux.resources.cpu.cpus/mems")?;
                fsutil::write(&self.dir, file, v)?;
            }
        }
        Ok(())
    }

    fn set_devices(&self, r: &spec::Resources, linux_devices: &[spec::Device]) -> Result<()> {
        let rules = devices::effective_rules(&r.devices, linux_devices)?;
        let prog = devices::device_filter(&rules)?;
        devices::attach_device_filter(&self.dir, &prog)
    }

    /// hugetlb.<size>.max (and .rsvd.max where the kernel has it, as runc 1.2 does).
    pub(crate) fn set_hugetlb(&self, limits: &[spec::HugepageLimit]) -> Result<()> {
        if limits.is_empty() {
            return Ok(());
        }
        super::check_hugepage_sizes(limits)?;
        self.require("hugetlb", "linux.resources.hugepageLimits")?;
        for l in limits {
            let limit = l.limit.to_string();
            fsutil::write(&self.dir, &format!("hugetlb.{}.max", l.page_size), &limit)?;
            let rsvd = format!("hugetlb.{}.rsvd.max", l.page_size);
            if fsutil::exists(&self.dir, &rsvd) {
                fsutil::write(&self.dir, &rsvd, &limit)?;
            }
        }
        Ok(())
    }

    /// `linux.resources.unified`: each key is a file name in the cgroup directory.
    pub(crate) fn set_unified(&self, unified: &BTreeMap<String, String>) -> Result<()> {
        for (key, value) in unified {
            check_unified_key(key)?;
            let path = self.dir.join(key);
            if let Err(e) = fsutil::try_write(&path, value) {
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EPERM | libc::EACCES)
                ) {
                    let controller = key.split('.').next().unwrap_or_default();
                    if controller != "cgroup" && !self.controllers().iter().any(|c| c == controller)
                    {
                        return Err(err(format!(
                            "linux.resources.unified: {key:?} can't be set: controller {controller:?} is not available in {}",
                            self.dir.display()
                        )));
                    }
                }
                return Err(err(format!(
                    "linux.resources.unified: {key:?}: {}",
                    fsutil::write_message(&path, value, &e)
                )));
            }
        }
        Ok(())
    }

    /// Polls cgroup.events for "frozen 1" (runc: 10ms × 1000).
    fn wait_frozen(&self) -> Result<bool> {
        for _ in 0..1000 {
            let events = fsutil::read(&self.dir, "cgroup.events")?;
            let frozen = events
                .lines()
                .find_map(|l| l.strip_prefix("frozen "))
                .map(|v| v.trim() == "1");
            match frozen {
                Some(true) => return Ok(true),
                Some(false) => std::thread::sleep(Duration::from_millis(10)),
                // A kernel without the freezer (before 5.2) has no such line.
                None => {
                    return Err(err(format!(
                        "cgroup freezer is not supported in {}",
                        self.dir.display()
                    )))
                }
            }
        }
        Err(err(format!(
            "timeout of 10s reached waiting for {} to freeze",
            self.dir.display()
        )))
    }

    pub(crate) fn hugetlb_stats(&self) -> Result<BTreeMap<String, Hugetlb>> {
        let mut out = BTreeMap::new();
        for size in super::hugepage_sizes() {
            let Some(usage) = fsutil::read_u64_opt(&self.dir, &format!("hugetlb.{size}.current"))?
            else {
                continue;
            };
            let events = stats::read_flat(&self.dir, &format!("hugetlb.{size}.events"))?;
            out.insert(
                size,
                Hugetlb {
                    usage,
                    max: 0,
                    failcnt: events.get("max").copied().unwrap_or(0),
                },
            );
        }
        Ok(out)
    }

    fn collect_stats(&self) -> Result<Stats> {
        // Missing files are optional features; a missing cgroup is an error.
        if !self.dir.is_dir() {
            return Err(err(format!("cgroup {} does not exist", self.dir.display())));
        }
        let mut s = Stats::default();
        let cpu = stats::read_flat(&self.dir, "cpu.stat")?;
        let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        s.cpu.usage.total = get(&cpu, "usage_usec").saturating_mul(1000);
        s.cpu.usage.user = get(&cpu, "user_usec").saturating_mul(1000);
        s.cpu.usage.kernel = get(&cpu, "system_usec").saturating_mul(1000);
        s.cpu.throttling.periods = get(&cpu, "nr_periods");
        s.cpu.throttling.throttled_periods = get(&cpu, "nr_throttled");
        s.cpu.throttling.throttled_time = get(&cpu, "throttled_usec").saturating_mul(1000);

        if let Some(raw) = fsutil::read_opt(&self.dir, "memory.stat")? {
            s.memory.raw = fsutil::parse_key_values(&raw);
            s.memory.cache = get(&s.memory.raw, "file");
            let usage = MemoryEntry {
                usage: fsutil::read_u64_or_zero(&self.dir, "memory.current")?,
                limit: fsutil::read_u64_or_zero(&self.dir, "memory.max")?,
                max: fsutil::read_u64_or_zero(&self.dir, "memory.peak")?,
                failcnt: 0,
            };
            // v1 reports swap as memory+swap; runc keeps that for v2 too.
            let swap_limit = fsutil::read_u64_or_zero(&self.dir, "memory.swap.max")?;
            s.memory.swap = MemoryEntry {
                usage: fsutil::read_u64_or_zero(&self.dir, "memory.swap.current")?
                    .saturating_add(usage.usage),
                limit: if swap_limit == u64::MAX {
                    u64::MAX
                } else {
                    swap_limit.saturating_add(usage.limit)
                },
                max: 0,
                failcnt: 0,
            };
            s.memory.usage = usage;
        }

        if let Some(current) = fsutil::read_u64_opt(&self.dir, "pids.current")? {
            s.pids.current = current;
            let max = fsutil::read_u64_or_zero(&self.dir, "pids.max")?;
            s.pids.limit = if max == u64::MAX { 0 } else { max };
        }

        if let Some(io) = fsutil::read_opt(&self.dir, "io.stat")? {
            s.blkio = stats::parse_io_stat(&io);
        }
        s.hugetlb = self.hugetlb_stats()?;
        Ok(s)
    }
}

/// The mountinfo root of the cgroup2 mount at `mountpoint` ("/" unless in a container).
fn host_mount_root(mountpoint: &Path) -> Result<String> {
    Ok(mountinfo::read_mountinfo()?
        .into_iter()
        .find(|m| m.unified && m.mountpoint == mountpoint)
        .map(|m| m.root)
        .unwrap_or_else(|| "/".to_string()))
}

fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((parent, _)) => parent.to_string(),
    }
}

pub(crate) fn check_not_root(path: &str) -> Result<()> {
    if path == "/" {
        return Err(Error::InvalidConfig(
            "linux.cgroupsPath: resolves to the root cgroup".into(),
        ));
    }
    Ok(())
}

pub(crate) fn check_unified_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
        return Err(Error::InvalidConfig(format!(
            "linux.resources.unified: {key:?} is not a cgroup file name"
        )));
    }
    Ok(())
}

pub(crate) fn controllers_of(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Best effort: a controller can be missing (rootless, containerized); setting a limit
/// on it then fails with a clear error instead.
fn enable_controllers(dir: &Path, wanted: &[String]) {
    let enabled: BTreeSet<String> = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let available = controllers_of(dir);
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled.contains(*c) && available.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return;
    }
    let path = dir.join("cgroup.subtree_control");
    if fsutil::try_write(&path, &missing.join(" ")).is_err() {
        for m in &missing {
            let _ = fsutil::try_write(&path, m);
        }
    }
}

impl Cgroup for V2 {
    fn create(&self) -> Result<()> {
        self.create_dirs()
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        fsutil::write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn apply_with_devices(
        &self,
        r: &spec::Resources,
        linux_devices: &[spec::Device],
    ) -> Result<()> {
        // runc's fs2 order; unified last so it can override the rest.
        self.set_pids(r)?;
        self.set_memory(r)?;
        self.set_io(r)?;
        self.set_cpu(r)?;
        if self.device_filter {
            self.set_devices(r, linux_devices)?;
        }
        self.set_cpuset(r)?;
        self.set_hugetlb(&r.hugepage_limits)?;
        self.set_unified(&r.unified)
    }

    fn freeze(&self) -> Result<()> {
        let path = self.dir.join("cgroup.freeze");
        fsutil::try_write(&path, "1").map_err(|e| {
            err(format!(
                "freezer not supported: {}",
                fsutil::write_message(&path, "1", &e)
            ))
        })?;
        match self.wait_frozen() {
            Ok(_) => Ok(()),
            Err(e) => {
                // Do not leave it half frozen.
                let _ = fsutil::try_write(&path, "0");
                Err(e)
            }
        }
    }

    fn thaw(&self) -> Result<()> {
        let path = self.dir.join("cgroup.freeze");
        match fsutil::try_write(&path, "0") {
            // Nothing can be frozen without the freezer.
            Err(e) if fsutil::is_not_found(&e) && self.dir.exists() => Ok(()),
            Err(e) => Err(fsutil::write_error(&path, "0", &e)),
            Ok(()) => Ok(()),
        }
    }

    fn is_frozen(&self) -> Result<bool> {
        match fsutil::read_opt(&self.dir, "cgroup.freeze")?
            .as_deref()
            .map(str::trim)
        {
            None | Some("0") => Ok(false),
            // Asked to freeze: report frozen once it is (runc waits as well).
            Some("1") => self.wait_frozen(),
            Some(other) => Err(err(format!(
                "unexpected content {other:?} in {}",
                self.dir.join("cgroup.freeze").display()
            ))),
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut set = BTreeSet::new();
        fsutil::collect_pids(&self.dir, &mut set)?;
        Ok(set.into_iter().collect())
    }

    fn stats(&self) -> Result<serde_json::Value> {
        self.collect_stats()?.to_json()
    }

    fn destroy(&self) -> Result<()> {
        fsutil::remove_dirs(std::slice::from_ref(&self.dir))
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn paths(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("unified".to_string(), self.path.clone())])
    }

    fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn version(&self) -> Version {
        Version::V2
    }

    fn warnings(&self, r: &spec::Resources) -> Vec<String> {
        let mut w = super::common_warnings(r);
        if let Some(m) = &r.memory {
            if super::swappiness(m).is_some() {
                w.push("linux.resources.memory.swappiness: ignored, cgroup v2 has no per-cgroup swappiness".into());
            }
            if m.disable_oom_killer == Some(true) {
                w.push("linux.resources.memory.disableOOMKiller: ignored, cgroup v2 cannot disable the OOM killer".into());
            }
        }
        if let Some(b) = &r.block_io {
            if b.leaf_weight.is_some() || b.weight_device.iter().any(|d| d.leaf_weight.is_some()) {
                w.push(
                    "linux.resources.blockIO.leafWeight: ignored, cgroup v2 has no leaf weights"
                        .into(),
                );
            }
        }
        if r.network.is_some() {
            w.push(
                "linux.resources.network: ignored, cgroup v2 has no net_cls/net_prio controllers"
                    .into(),
            );
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(parent_of("/"), "/");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a/b/"), "/a");
    }

    #[test]
    fn unified_keys() {
        assert!(check_unified_key("memory.high").is_ok());
        assert!(check_unified_key("cgroup.max.depth").is_ok());
        assert!(check_unified_key("../memory.high").is_err());
        assert!(check_unified_key("memory").is_err());
        assert!(check_unified_key("").is_err());
    }

    #[test]
    fn paths_and_dirs() {
        let v = V2::new("/sys/fs/cgroup/unified", "/pier/x/../y").unwrap();
        assert_eq!(v.path(), "/pier/y");
        assert_eq!(v.dir(), Path::new("/sys/fs/cgroup/unified/pier/y"));
        assert!(V2::new("/sys/fs/cgroup", "relative").is_err());
    }
}
