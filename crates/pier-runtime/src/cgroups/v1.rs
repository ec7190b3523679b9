//! cgroup v1 (one hierarchy per controller or group of co-mounted controllers), after
//! runc 1.1's `libcontainer/cgroups/fs`. On a hybrid host the cgroup2 mount is managed
//! too (membership, hugetlb and `unified` keys for the controllers it holds).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::devices;
use super::fsutil::{self, err, os_text};
use super::mountinfo::{self, CgroupMount, Membership};
use super::stats::{self, BlkioEntry, Hugetlb, MemoryEntry, Stats};
use super::v2::{check_not_root, check_unified_key};
use super::{Cgroup, Requested, Version, V2};
use crate::error::Result;
use crate::spec;

/// runc: USER_HZ is 100 on every Linux architecture it supports.
const CLOCK_TICKS: u64 = 100;

/// One v1 hierarchy and the container's cgroup in it.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    /// "memory", "cpu,cpuacct", "name=systemd".
    pub name: String,
    pub controllers: Vec<String>,
    pub mountpoint: PathBuf,
    /// Path as /proc/<pid>/cgroup shows it.
    pub path: String,
    pub dir: PathBuf,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A cgroup spanning every v1 hierarchy of the host (and its cgroup2 mount if hybrid).
#[derive(Debug)]
pub struct V1 {
    path: String,
    hierarchies: Vec<Hierarchy>,
    unified: Option<V2>,
}

/// The v1 mounts (controllers, one mount per hierarchy) and the hybrid cgroup2 mount.
type Layout = (Vec<(Vec<String>, CgroupMount)>, Option<CgroupMount>);

fn layout(mounts: Vec<CgroupMount>, known: &[String]) -> Layout {
    let mut v1: Vec<(Vec<String>, CgroupMount)> = Vec::new();
    let mut unified = None;
    for m in mounts {
        if m.unified {
            unified.get_or_insert(m);
            continue;
        }
        let controllers: Vec<String> = m
            .super_options
            .iter()
            .filter(|o| o.starts_with("name=") || known.contains(o))
            .cloned()
            .collect();
        if controllers.is_empty() {
            continue;
        }
        // The same hierarchy can be mounted more than once: keep the first.
        if v1.iter().any(|(c, _)| same_set(c, &controllers)) {
            continue;
        }
        v1.push((controllers, m));
    }
    (v1, unified)
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    a == b
}

/// Our own cgroup in the hierarchy of `controllers` ("/" if not listed).
fn own_path(own: &[Membership], controllers: &[String]) -> String {
    own.iter()
        .find(|m| same_set(&m.controllers, controllers))
        .map(|m| m.path.clone())
        .unwrap_or_else(|| "/".to_string())
}

fn host_layout() -> Result<Layout> {
    Ok(layout(
        mountinfo::read_mountinfo()?,
        &mountinfo::known_controllers(),
    ))
}

impl V1 {
    /// The cgroup for `requested` on this host. Relative paths are joined, per
    /// hierarchy, to our own cgroup there (runc's GetOwnCgroupPath).
    pub(crate) fn on_host(requested: &Requested) -> Result<V1> {
        let own = mountinfo::read_own_cgroups()?;
        V1::assemble(host_layout()?, |_, controllers, mount| {
            Some(super::cgroup_path_in(
                requested,
                &mount.root,
                &own_path(&own, controllers),
            ))
        })
    }

    /// An existing cgroup from stored paths: `path_for(hierarchy name)` gives the path
    /// as /proc/<pid>/cgroup shows it ("unified" for the hybrid cgroup2 mount); `None`
    /// leaves that hierarchy out.
    pub(crate) fn existing(path_for: impl Fn(&str) -> Option<String>) -> Result<V1> {
        V1::assemble(host_layout()?, |name, _, _| path_for(name))
    }

    pub(crate) fn from_paths(paths: &BTreeMap<String, String>) -> Result<V1> {
        V1::existing(|name| paths.get(name).map(|p| super::clean_path(p)))
    }

    fn assemble(
        (v1, unified): Layout,
        path_for: impl Fn(&str, &[String], &CgroupMount) -> Option<String>,
    ) -> Result<V1> {
        let mut hierarchies = Vec::new();
        for (controllers, mount) in v1 {
            let name = controllers.join(",");
            let Some(path) = path_for(&name, &controllers, &mount) else {
                continue;
            };
            check_not_root(&path)?;
            hierarchies.push(Hierarchy {
                dir: super::dir_in(&mount.mountpoint, &mount.root, &path),
                name,
                controllers,
                mountpoint: mount.mountpoint,
                path,
            });
        }
        if hierarchies.is_empty() {
            return Err(err(
                "no cgroup v1 hierarchy is mounted (see /proc/self/mountinfo)",
            ));
        }
        let unified = match unified {
            Some(mount) => match path_for("unified", &[], &mount) {
                Some(path) => {
                    check_not_root(&path)?;
                    Some(V2::at(mount.mountpoint, mount.root, path, false))
                }
                None => None,
            },
            None => None,
        };
        let mut v1 = V1 {
            path: String::new(),
            hierarchies,
            unified,
        };
        v1.path = stored_path(&v1.paths());
        Ok(v1)
    }

    fn hier(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.has(controller))
    }

    fn need(&self, controller: &str, what: &str) -> Result<&Hierarchy> {
        self.hier(controller).ok_or_else(|| {
            err(format!(
                "{what}: the {controller} cgroup controller is not mounted on this cgroup v1 host"
            ))
        })
    }

    /// The cgroup2 part of a hybrid host, if it offers `controller`.
    fn unified_with(&self, controller: &str) -> Option<&V2> {
        self.unified
            .as_ref()
            .filter(|u| v2_root_controllers(u).iter().any(|c| c == controller))
    }

    /// cpuset needs cpus and mems before it takes tasks: create every level from the
    /// root down, copying the parent's values where empty (runc's ensureParent).
    fn create_cpuset(h: &Hierarchy) -> Result<()> {
        let rel = h.dir.strip_prefix(&h.mountpoint).map_err(|_| {
            err(format!(
                "{} is not below {}",
                h.dir.display(),
                h.mountpoint.display()
            ))
        })?;
        let mut current = h.mountpoint.clone();
        for component in rel.components() {
            let parent = current.clone();
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
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if fsutil::read(&current, file)?.trim().is_empty() {
                    let value = fsutil::read(&parent, file)?;
                    if !value.trim().is_empty() {
                        fsutil::write(&current, file, value.trim())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Everything that can be checked before writing anything.
    fn validate(&self, r: &spec::Resources) -> Result<()> {
        super::check_hugepage_sizes(&r.hugepage_limits)?;
        if !r.hugepage_limits.is_empty()
            && self.hier("hugetlb").is_none()
            && self.unified_with("hugetlb").is_none()
        {
            return Err(err(
                "linux.resources.hugepageLimits: the hugetlb cgroup controller is not available on this host",
            ));
        }
        for key in r.unified.keys() {
            check_unified_key(key)?;
            let controller = key.split('.').next().unwrap_or_default();
            // Hybrid host: keys of controllers that live on the cgroup2 mount are fine.
            if self.unified_with(controller).is_none() {
                // A config this host cannot honour: runc reports it as invalid too.
                return Err(crate::error::Error::InvalidConfig(format!(
                    "linux.resources.unified: {key:?} needs cgroup v2, and this host runs the {controller:?} controller on cgroup v1 (or not at all)"
                )));
            }
        }
        if let Some(m) = &r.memory {
            if let Some(s) = super::swappiness(m).filter(|s| *s > 100) {
                return Err(err(format!(
                    "linux.resources.memory.swappiness: invalid value {s} (valid range is 0-100)"
                )));
            }
        }
        Ok(())
    }

    fn set_cpuset(&self, r: &spec::Resources) -> Result<()> {
        let Some(c) = &r.cpu else {
            return Ok(());
        };
        for (file, value) in [("cpuset.cpus", &c.cpus), ("cpuset.mems", &c.mems)] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                let h = self.need("cpuset", "linux.resources.cpu.cpus/mems")?;
                fsutil::write(&h.dir, file, v)?;
            }
        }
        Ok(())
    }

    fn set_devices(&self, r: &spec::Resources, linux_devices: &[spec::Device]) -> Result<()> {
        let rules = devices::effective_rules(&r.devices, linux_devices)?;
        // runc treats the devices controller as a hard requirement.
        let h = self.need("devices", "linux.resources.devices")?;
        devices::apply_v1(&h.dir, &rules)
    }

    fn set_memory(&self, r: &spec::Resources) -> Result<()> {
        let Some(m) = &r.memory else {
            return Ok(());
        };
        let limit = m.limit.unwrap_or(0);
        let mut swap = m.swap.unwrap_or(0);
        let reservation = m.reservation.unwrap_or(0);
        let oom = m.disable_oom_killer == Some(true);
        let swappiness = super::swappiness(m);
        if limit == 0 && swap == 0 && reservation == 0 && !oom && swappiness.is_none() {
            return Ok(());
        }
        let dir = &self.need("memory", "linux.resources.memory")?.dir;
        let has_memsw = fsutil::exists(dir, "memory.memsw.limit_in_bytes");
        // Unlimited memory with swap unset means unlimited swap too (only if the kernel
        // accounts swap).
        if limit == -1 && swap == 0 && has_memsw {
            swap = -1;
        }
        if swap != 0 && !has_memsw {
            return Err(err(format!(
                "linux.resources.memory.swap: not supported by this kernel (no {}: swap accounting is off)",
                dir.join("memory.memsw.limit_in_bytes").display()
            )));
        }
        if m.check_before_update == Some(true) && limit > 0 {
            let usage = fsutil::read_u64_or_zero(dir, "memory.usage_in_bytes")?;
            if usage > limit as u64 {
                return Err(err(format!(
                    "linux.resources.memory.limit: {limit} is below the current usage {usage} of {}",
                    dir.display()
                )));
            }
        }
        // memory.limit_in_bytes <= memory.memsw.limit_in_bytes must hold after every
        // write: raise memsw first when growing, lower memory first when shrinking.
        let swap_first = limit != 0 && swap != 0 && {
            let current = fsutil::parse_u64(
                &dir.join("memory.limit_in_bytes"),
                &fsutil::read(dir, "memory.limit_in_bytes")?,
            )?;
            swap == -1 || current < swap as u64
        };
        if swap_first {
            set_memsw(dir, swap)?;
            set_memory_limit(dir, limit)?;
        } else {
            set_memory_limit(dir, limit)?;
            set_memsw(dir, swap)?;
        }
        if reservation != 0 {
            fsutil::write(dir, "memory.soft_limit_in_bytes", &reservation.to_string())?;
        }
        if oom {
            fsutil::write(dir, "memory.oom_control", "1")?;
        }
        if let Some(s) = swappiness {
            fsutil::write(dir, "memory.swappiness", &s.to_string())?;
        }
        Ok(())
    }

    fn set_cpu(&self, r: &spec::Resources) -> Result<()> {
        let Some(c) = &r.cpu else {
            return Ok(());
        };
        let shares = c.shares.unwrap_or(0);
        let quota = c.quota.unwrap_or(0);
        let period = c.period.unwrap_or(0);
        let rt_period = c.realtime_period.unwrap_or(0);
        let rt_runtime = c.realtime_runtime.unwrap_or(0);
        if shares == 0
            && quota == 0
            && period == 0
            && rt_period == 0
            && rt_runtime == 0
            && c.burst.is_none()
            && c.idle.is_none()
        {
            return Ok(());
        }
        let dir = &self.need("cpu", "linux.resources.cpu")?.dir;
        if shares != 0 {
            fsutil::write(dir, "cpu.shares", &shares.to_string())?;
            // The kernel clamps silently; say so instead (runc does the same check).
            let path = dir.join("cpu.shares");
            let got = fsutil::parse_u64(&path, &fsutil::read(dir, "cpu.shares")?)?;
            if shares > got {
                return Err(err(format!(
                    "linux.resources.cpu.shares: the maximum allowed cpu-shares is {got}"
                )));
            }
            if shares < got {
                return Err(err(format!(
                    "linux.resources.cpu.shares: the minimum allowed cpu-shares is {got}"
                )));
            }
        }
        let mut period_pending = None;
        if period != 0 {
            let value = period.to_string();
            let path = dir.join("cpu.cfs_period_us");
            if let Err(e) = fsutil::try_write(&path, &value) {
                // A period below the current one can be refused (EINVAL) while the old
                // quota/new period exceeds the parent's limit: retry after the quota.
                if e.raw_os_error() != Some(libc::EINVAL) || quota == 0 {
                    return Err(fsutil::write_error(&path, &value, &e));
                }
                period_pending = Some(value);
            }
        }
        if quota != 0 {
            fsutil::write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
            if let Some(value) = period_pending {
                fsutil::write(dir, "cpu.cfs_period_us", &value)?;
            }
        }
        if let Some(burst) = c.burst {
            fsutil::write_supported(
                dir,
                "cpu.cfs_burst_us",
                &burst.to_string(),
                "linux.resources.cpu.burst",
            )?;
        }
        if let Some(idle) = c.idle {
            fsutil::write_supported(
                dir,
                "cpu.idle",
                &idle.to_string(),
                "linux.resources.cpu.idle",
            )?;
        }
        if rt_period != 0 {
            let what = "linux.resources.cpu.realtimePeriod";
            fsutil::write_supported(dir, "cpu.rt_period_us", &rt_period.to_string(), what)?;
        }
        if rt_runtime != 0 {
            let what = "linux.resources.cpu.realtimeRuntime";
            fsutil::write_supported(dir, "cpu.rt_runtime_us", &rt_runtime.to_string(), what)?;
        }
        Ok(())
    }

    fn set_pids(&self, r: &spec::Resources) -> Result<()> {
        if let Some(p) = &r.pids {
            let h = self.need("pids", "linux.resources.pids")?;
            fsutil::write(&h.dir, "pids.max", &super::pids_max(p.limit)?)?;
        }
        Ok(())
    }

    fn set_blkio(&self, r: &spec::Resources) -> Result<()> {
        let Some(b) = &r.block_io else {
            return Ok(());
        };
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                &b.throttle_read_bps_device,
            ),
            (
                "blkio.throttle.write_bps_device",
                &b.throttle_write_bps_device,
            ),
            (
                "blkio.throttle.read_iops_device",
                &b.throttle_read_iops_device,
            ),
            (
                "blkio.throttle.write_iops_device",
                &b.throttle_write_iops_device,
            ),
        ];
        let weight = b.weight.unwrap_or(0);
        let leaf = b.leaf_weight.unwrap_or(0);
        if weight == 0
            && leaf == 0
            && b.weight_device.is_empty()
            && throttles.iter().all(|(_, t)| t.is_empty())
        {
            return Ok(());
        }
        let dir = &self.need("blkio", "linux.resources.blockIO")?.dir;
        // CFQ's files, else BFQ's (runc's detectWeightFilenames).
        let (weight_file, weight_device_file) = if fsutil::exists(dir, "blkio.weight") {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        };
        if weight != 0 {
            fsutil::write_supported(
                dir,
                weight_file,
                &weight.to_string(),
                "linux.resources.blockIO.weight",
            )?;
        }
        if leaf != 0 {
            let what = "linux.resources.blockIO.leafWeight";
            fsutil::write_supported(dir, "blkio.leaf_weight", &leaf.to_string(), what)?;
        }
        for (i, wd) in b.weight_device.iter().enumerate() {
            if let Some(w) = wd.weight.filter(|w| *w != 0) {
                let what = format!("linux.resources.blockIO.weightDevice[{i}].weight");
                let value = format!("{}:{} {w}", wd.major, wd.minor);
                fsutil::write_supported(dir, weight_device_file, &value, &what)?;
            }
            if let Some(w) = wd.leaf_weight.filter(|w| *w != 0) {
                let what = format!("linux.resources.blockIO.weightDevice[{i}].leafWeight");
                let value = format!("{}:{} {w}", wd.major, wd.minor);
                fsutil::write_supported(dir, "blkio.leaf_weight_device", &value, &what)?;
            }
        }
        for (file, list) in throttles {
            for t in list.iter() {
                let value = format!("{}:{} {}", t.major, t.minor, t.rate);
                fsutil::write_supported(dir, file, &value, "linux.resources.blockIO throttling")?;
            }
        }
        Ok(())
    }

    fn set_hugetlb(&self, r: &spec::Resources) -> Result<()> {
        if r.hugepage_limits.is_empty() {
            return Ok(());
        }
        if let Some(h) = self.hier("hugetlb") {
            for l in &r.hugepage_limits {
                let limit = l.limit.to_string();
                fsutil::write(
                    &h.dir,
                    &format!("hugetlb.{}.limit_in_bytes", l.page_size),
                    &limit,
                )?;
                let rsvd = format!("hugetlb.{}.rsvd.limit_in_bytes", l.page_size);
                if fsutil::exists(&h.dir, &rsvd) {
                    fsutil::write(&h.dir, &rsvd, &limit)?;
                }
            }
            return Ok(());
        }
        match self.unified_with("hugetlb") {
            Some(u) => u.set_hugetlb(&r.hugepage_limits),
            None => Err(err(
                "linux.resources.hugepageLimits: the hugetlb cgroup controller is not available on this host",
            )),
        }
    }

    fn set_network(&self, r: &spec::Resources) -> Result<()> {
        let Some(network) = &r.network else {
            return Ok(());
        };
        let (class_id, priorities) = super::network_settings(network)?;
        if let Some(id) = class_id.filter(|id| *id != 0) {
            let h = self.need("net_cls", "linux.resources.network.classID")?;
            fsutil::write(&h.dir, "net_cls.classid", &id.to_string())?;
        }
        for (name, prio) in priorities {
            let h = self.need("net_prio", "linux.resources.network.priorities")?;
            fsutil::write(&h.dir, "net_prio.ifpriomap", &format!("{name} {prio}"))?;
        }
        Ok(())
    }

    fn set_unified(&self, r: &spec::Resources) -> Result<()> {
        if r.unified.is_empty() {
            return Ok(());
        }
        // validate() made sure every key belongs to a controller of the cgroup2 mount.
        match &self.unified {
            Some(u) => u.set_unified(&r.unified),
            None => Err(err("linux.resources.unified: needs cgroup v2")),
        }
    }

    fn freezer_dir(&self) -> Option<&Path> {
        self.hier("freezer").map(|h| h.dir.as_path())
    }

    fn collect_stats(&self) -> Result<Stats> {
        // Missing files are optional features; a missing cgroup is an error.
        if !self.dirs().iter().any(|d| d.is_dir()) {
            return Err(err(format!("cgroup {} does not exist", self.path)));
        }
        let mut s = Stats::default();
        if let Some(h) = self.hier("cpu") {
            let cpu = stats::read_flat(&h.dir, "cpu.stat")?;
            let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
            s.cpu.throttling.periods = get("nr_periods");
            s.cpu.throttling.throttled_periods = get("nr_throttled");
            s.cpu.throttling.throttled_time = get("throttled_time");
        }
        if let Some(h) = self.hier("cpuacct") {
            cpuacct_stats(&h.dir, &mut s)?;
        }
        if let Some(h) = self.hier("cpuset") {
            cpuset_stats(&h.dir, &mut s)?;
        }
        if let Some(h) = self.hier("memory") {
            memory_stats(&h.dir, &mut s)?;
        }
        if let Some(h) = self.hier("pids") {
            s.pids.current = fsutil::read_u64_or_zero(&h.dir, "pids.current")?;
            let max = fsutil::read_u64_or_zero(&h.dir, "pids.max")?;
            s.pids.limit = if max == u64::MAX { 0 } else { max };
        }
        if let Some(h) = self.hier("blkio") {
            blkio_stats(&h.dir, &mut s)?;
        }
        if let Some(h) = self.hier("hugetlb") {
            for size in super::hugepage_sizes() {
                let file = |f: &str| format!("hugetlb.{size}.{f}");
                let Some(usage) = fsutil::read_u64_opt(&h.dir, &file("usage_in_bytes"))? else {
                    continue;
                };
                let entry = Hugetlb {
                    usage,
                    max: fsutil::read_u64_or_zero(&h.dir, &file("max_usage_in_bytes"))?,
                    failcnt: fsutil::read_u64_or_zero(&h.dir, &file("failcnt"))?,
                };
                s.hugetlb.insert(size, entry);
            }
        } else if let Some(u) = self.unified_with("hugetlb") {
            s.hugetlb = u.hugetlb_stats()?;
        }
        Ok(s)
    }
}

/// The one path when every hierarchy agrees (the usual case); otherwise (a relative
/// `cgroupsPath` while our own cgroups differ per hierarchy, or a cgroupfs mounted
/// from a sub-tree) the JSON map of all of them, which [`super::open_existing`] reads.
fn stored_path(paths: &BTreeMap<String, String>) -> String {
    let mut values = paths.values();
    let first = values.next().cloned().unwrap_or_else(|| "/".to_string());
    if values.all(|p| *p == first) {
        return first;
    }
    // A map of strings always serializes.
    serde_json::to_string(paths).unwrap_or(first)
}

fn v2_root_controllers(u: &V2) -> Vec<String> {
    super::v2::controllers_of(u.mountpoint())
}

fn set_memory_limit(dir: &Path, limit: i64) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let path = dir.join("memory.limit_in_bytes");
    let value = limit.to_string();
    match fsutil::try_write(&path, &value) {
        Ok(()) => Ok(()),
        // EBUSY: the new limit is below the current usage. Say how far.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let usage = fsutil::read_u64_or_zero(dir, "memory.usage_in_bytes")?;
            let peak = fsutil::read_u64_or_zero(dir, "memory.max_usage_in_bytes")?;
            Err(err(format!(
                "{} (unable to set memory limit to {limit}: current usage {usage}, peak usage {peak})",
                fsutil::write_message(&path, &value, &e)
            )))
        }
        Err(e) => Err(fsutil::write_error(&path, &value, &e)),
    }
}

fn set_memsw(dir: &Path, swap: i64) -> Result<()> {
    if swap == 0 {
        return Ok(());
    }
    fsutil::write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())
}

fn memory_entry(dir: &Path, prefix: &str, optional: bool) -> Result<MemoryEntry> {
    let file = |f: &str| format!("{prefix}.{f}");
    let Some(usage) = fsutil::read_u64_opt(dir, &file("usage_in_bytes"))? else {
        // memsw and kmem are optional in the kernel.
        if optional {
            return Ok(MemoryEntry::default());
        }
        return Err(err(format!(
            "read {}: No such file or directory",
            dir.join(file("usage_in_bytes")).display()
        )));
    };
    Ok(MemoryEntry {
        usage,
        max: fsutil::read_u64_or_zero(dir, &file("max_usage_in_bytes"))?,
        failcnt: fsutil::read_u64_or_zero(dir, &file("failcnt"))?,
        limit: fsutil::read_u64_or_zero(dir, &file("limit_in_bytes"))?,
    })
}

fn memory_stats(dir: &Path, s: &mut Stats) -> Result<()> {
    let Some(raw) = fsutil::read_opt(dir, "memory.stat")? else {
        return Ok(());
    };
    s.memory.raw = fsutil::parse_key_values(&raw);
    s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
    s.memory.usage = memory_entry(dir, "memory", false)?;
    s.memory.swap = memory_entry(dir, "memory.memsw", true)?;
    s.memory.kernel = memory_entry(dir, "memory.kmem", true)?;
    s.memory.kernel_tcp = memory_entry(dir, "memory.kmem.tcp", true)?;
    Ok(())
}

fn cpuacct_stats(dir: &Path, s: &mut Stats) -> Result<()> {
    s.cpu.usage.total = fsutil::read_u64_or_zero(dir, "cpuacct.usage")?;
    if let Some(percpu) = fsutil::read_opt(dir, "cpuacct.usage_percpu")? {
        s.cpu.usage.percpu = percpu
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
    }
    // "cpu user system" header, then one row per CPU (nanoseconds).
    if let Some(all) = fsutil::read_opt(dir, "cpuacct.usage_all")? {
        for line in all.lines().skip(1) {
            let f: Vec<u64> = line
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if let [_, user, system] = f[..] {
                s.cpu.usage.percpu_user.push(user);
                s.cpu.usage.percpu_kernel.push(system);
            }
        }
    }
    // cpuacct.stat counts USER_HZ ticks.
    let st = stats::read_flat(dir, "cpuacct.stat")?;
    let ns = |k: &str| {
        st.get(k)
            .copied()
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            / CLOCK_TICKS
    };
    s.cpu.usage.user = ns("user");
    s.cpu.usage.kernel = ns("system");
    Ok(())
}

fn cpuset_stats(dir: &Path, s: &mut Stats) -> Result<()> {
    if let Some(cpus) = fsutil::read_opt(dir, "cpuset.cpus")? {
        s.cpuset.cpus = fsutil::parse_cpu_list(&cpus);
    }
    if let Some(mems) = fsutil::read_opt(dir, "cpuset.mems")? {
        s.cpuset.mems = fsutil::parse_cpu_list(&mems);
    }
    let c = &mut s.cpuset;
    for (file, field) in [
        ("cpuset.cpu_exclusive", &mut c.cpu_exclusive),
        ("cpuset.mem_exclusive", &mut c.mem_exclusive),
        ("cpuset.mem_hardwall", &mut c.mem_hardwall),
        ("cpuset.memory_migrate", &mut c.memory_migrate),
        ("cpuset.memory_pressure", &mut c.memory_pressure),
        ("cpuset.memory_spread_page", &mut c.memory_spread_page),
        ("cpuset.memory_spread_slab", &mut c.memory_spread_slab),
        ("cpuset.sched_load_balance", &mut c.sched_load_balance),
    ] {
        *field = fsutil::read_u64_or_zero(dir, file)?;
    }
    if let Some(level) = fsutil::read_opt(dir, "cpuset.sched_relax_domain_level")? {
        c.sched_relax_domain_level = level.trim().parse().unwrap_or(0);
    }
    Ok(())
}

/// runc's order: BFQ debug stats, BFQ, CFQ, recursive throttle, throttle; the first
/// set whose files all exist wins.
fn blkio_stats(dir: &Path, s: &mut Stats) -> Result<()> {
    type Target = fn(&mut stats::Blkio) -> &mut Vec<BlkioEntry>;
    let bytes: Target = |b| &mut b.io_service_bytes_recursive;
    let serviced: Target = |b| &mut b.io_serviced_recursive;
    let queued: Target = |b| &mut b.io_queued_recursive;
    let service_time: Target = |b| &mut b.io_service_time_recursive;
    let wait_time: Target = |b| &mut b.io_wait_time_recursive;
    let merged: Target = |b| &mut b.io_merged_recursive;
    let time: Target = |b| &mut b.io_time_recursive;
    let sectors: Target = |b| &mut b.sectors_recursive;
    let debug = |p: &str| -> Vec<(String, Target)> {
        vec![
            (format!("blkio.{p}sectors_recursive"), sectors),
            (format!("blkio.{p}io_service_time_recursive"), service_time),
            (format!("blkio.{p}io_wait_time_recursive"), wait_time),
            (format!("blkio.{p}io_merged_recursive"), merged),
            (format!("blkio.{p}io_queued_recursive"), queued),
            (format!("blkio.{p}time_recursive"), time),
            (format!("blkio.{p}io_serviced_recursive"), serviced),
            (format!("blkio.{p}io_service_bytes_recursive"), bytes),
        ]
    };
    let groups: Vec<Vec<(String, Target)>> = vec![
        debug("bfq."),
        vec![
            ("blkio.bfq.io_serviced_recursive".into(), serviced),
            ("blkio.bfq.io_service_bytes_recursive".into(), bytes),
        ],
        debug(""),
        vec![
            ("blkio.throttle.io_serviced_recursive".into(), serviced),
            ("blkio.throttle.io_service_bytes_recursive".into(), bytes),
        ],
        vec![
            ("blkio.throttle.io_serviced".into(), serviced),
            ("blkio.throttle.io_service_bytes".into(), bytes),
        ],
    ];
    'groups: for group in groups {
        let mut blkio = stats::Blkio::default();
        for (file, target) in group {
            match fsutil::read_opt(dir, &file)? {
                Some(content) => target(&mut blkio).extend(stats::parse_blkio_entries(&content)),
                None => continue 'groups,
            }
        }
        s.blkio = blkio;
        return Ok(());
    }
    Ok(())
}

impl Cgroup for V1 {
    fn create(&self) -> Result<()> {
        for h in &self.hierarchies {
            if h.has("cpuset") {
                V1::create_cpuset(h)?;
            } else {
                fsutil::create_dir_all(&h.dir)?;
            }
        }
        if let Some(u) = &self.unified {
            u.create_dirs_with(false)?;
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for h in &self.hierarchies {
            fsutil::write(&h.dir, "cgroup.procs", &pid)?;
        }
        if let Some(u) = &self.unified {
            fsutil::write(u.dir(), "cgroup.procs", &pid)?;
        }
        Ok(())
    }

    fn apply_with_devices(
        &self,
        r: &spec::Resources,
        linux_devices: &[spec::Device],
    ) -> Result<()> {
        self.validate(r)?;
        // runc's subsystem order; cpuset first so tasks can always run.
        self.set_cpuset(r)?;
        self.set_devices(r, linux_devices)?;
        self.set_memory(r)?;
        self.set_cpu(r)?;
        self.set_pids(r)?;
        self.set_blkio(r)?;
        if let Some(u) = &self.unified {
            if !r.hugepage_limits.is_empty() || !r.unified.is_empty() {
                u.enable_controllers_along_path();
            }
        }
        self.set_hugetlb(r)?;
        self.set_network(r)?;
        self.set_unified(r)
    }

    fn freeze(&self) -> Result<()> {
        let dir = self
            .freezer_dir()
            .ok_or_else(|| err("the freezer cgroup controller is not mounted"))?;
        let result = freeze_v1(dir);
        if result.is_err() {
            // Never leave it FROZEN or FREEZING after a failure.
            let _ = fsutil::write(dir, "freezer.state", "THAWED");
        }
        result
    }

    fn thaw(&self) -> Result<()> {
        match self.freezer_dir() {
            Some(dir) => fsutil::write(dir, "freezer.state", "THAWED"),
            // Nothing can be frozen without the freezer.
            None => Ok(()),
        }
    }

    fn is_frozen(&self) -> Result<bool> {
        let Some(dir) = self.freezer_dir() else {
            return Ok(false);
        };
        for _ in 0..1000 {
            let Some(state) = fsutil::read_opt(dir, "freezer.state")? else {
                return Ok(false);
            };
            match state.trim() {
                "THAWED" => return Ok(false),
                // Frozen by us, or only because an ancestor is?
                "FROZEN" => {
                    return Ok(match fsutil::read_opt(dir, "freezer.self_freezing")? {
                        Some(s) => s.trim() == "1",
                        None => true,
                    })
                }
                // Still in transition: wait for a stable state (runc does).
                "FREEZING" => std::thread::sleep(Duration::from_millis(1)),
                other => {
                    return Err(err(format!(
                        "unexpected state {other:?} in {}",
                        dir.join("freezer.state").display()
                    )))
                }
            }
        }
        Err(err(format!(
            "{} stays FREEZING",
            dir.join("freezer.state").display()
        )))
    }

    fn pids(&self) -> Result<Vec<i32>> {
        // The union over hierarchies: a process half moved elsewhere still counts.
        let mut set = BTreeSet::new();
        for dir in self.dirs() {
            fsutil::collect_pids(&dir, &mut set)?;
        }
        Ok(set.into_iter().collect())
    }

    fn stats(&self) -> Result<serde_json::Value> {
        self.collect_stats()?.to_json()
    }

    fn destroy(&self) -> Result<()> {
        fsutil::remove_dirs(&self.dirs())
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn paths(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self
            .hierarchies
            .iter()
            .map(|h| (h.name.clone(), h.path.clone()))
            .collect();
        if let Some(u) = &self.unified {
            m.insert("unified".into(), u.path().to_string());
        }
        m
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.hierarchies.iter().map(|h| h.dir.clone()).collect();
        if let Some(u) = &self.unified {
            dirs.push(u.dir().to_path_buf());
        }
        dirs
    }

    fn version(&self) -> Version {
        Version::V1
    }

    fn warnings(&self, r: &spec::Resources) -> Vec<String> {
        super::common_warnings(r)
    }
}

/// runc 1.1's freeze loop: a v1 cgroup can get stuck in FREEZING while tasks keep
/// appearing, so write FROZEN again and again, thawing briefly every 50 tries.
fn freeze_v1(dir: &Path) -> Result<()> {
    for i in 0..1000 {
        if i % 50 == 49 {
            let _ = fsutil::write(dir, "freezer.state", "THAWED");
            std::thread::sleep(Duration::from_millis(10));
        }
        fsutil::write(dir, "freezer.state", "FROZEN")?;
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_micros(10));
        }
        match fsutil::read(dir, "freezer.state")?.trim() {
            "FROZEN" => return Ok(()),
            "FREEZING" => continue,
            other => {
                return Err(err(format!(
                    "unexpected state {other:?} in {} while freezing",
                    dir.join("freezer.state").display()
                )))
            }
        }
    }
    Err(err(format!(
        "unable to freeze {}: it stays FREEZING",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:32 / /mnt/memory-again rw,relatime - cgroup cgroup rw,memory
37 31 0:33 /docker/1 /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "9:name=systemd:/user.slice\n4:memory:/process_api/x\n2:cpu,cpuacct:/\n1:pids:/docker/1\n0::/\n";

    fn build(requested: &Requested) -> V1 {
        let known: Vec<String> = ["cpu", "cpuacct", "memory", "pids"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let own = mountinfo::parse_proc_cgroup(OWN);
        let l = layout(mountinfo::parse_mountinfo(MOUNTINFO), &known);
        V1::assemble(l, |_, controllers, mount| {
            Some(super::super::cgroup_path_in(
                requested,
                &mount.root,
                &own_path(&own, controllers),
            ))
        })
        .unwrap()
    }

    #[test]
    fn absolute_paths_per_hierarchy() {
        let v = build(&Requested::Absolute("/pier/abc".into()));
        let paths = v.paths();
        assert_eq!(paths["cpu,cpuacct"], "/pier/abc");
        assert_eq!(paths["memory"], "/pier/abc");
        // A mount of a sub-tree (mount root /docker/1): the path runc would create.
        assert_eq!(paths["pids"], "/docker/1/pier/abc");
        assert_eq!(paths["name=systemd"], "/pier/abc");
        assert_eq!(paths["unified"], "/pier/abc");
        assert_eq!(
            v.hierarchies.len(),
            4,
            "the duplicate memory mount is skipped"
        );
        let dirs = v.dirs();
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/pier/abc")));
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/pids/pier/abc")));
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/unified/pier/abc")));
        // pids disagrees, so path() carries every hierarchy.
        let stored: BTreeMap<String, String> = serde_json::from_str(v.path()).unwrap();
        assert_eq!(stored, paths);
        assert!(v.hier("cpuacct").is_some());
        assert!(v.hier("freezer").is_none());
    }

    #[test]
    fn relative_paths_per_hierarchy() {
        let v = build(&Requested::Relative("a/b".into()));
        let paths = v.paths();
        assert_eq!(paths["memory"], "/process_api/x/a/b");
        assert_eq!(paths["cpu,cpuacct"], "/a/b");
        assert_eq!(paths["name=systemd"], "/user.slice/a/b");
        assert_eq!(paths["pids"], "/docker/1/a/b");
        let dirs = v.dirs();
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/memory/process_api/x/a/b")));
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/pids/a/b")));
        let stored: BTreeMap<String, String> = serde_json::from_str(v.path()).unwrap();
        assert_eq!(stored, paths);
    }

    #[test]
    fn stored_path_is_plain_when_uniform() {
        let m = BTreeMap::from([
            ("a".to_string(), "/x".to_string()),
            ("b".to_string(), "/x".to_string()),
        ]);
        assert_eq!(stored_path(&m), "/x");
        let m = BTreeMap::from([
            ("a".to_string(), "/x".to_string()),
            ("b".to_string(), "/y".to_string()),
        ]);
        assert_eq!(stored_path(&m), r#"{"a":"/x","b":"/y"}"#);
    }

    #[test]
    fn v1_rejects_unified_keys_without_cgroup2_controller() {
        let v = build(&Requested::Absolute("/pier/abc".into()));
        let mut r = spec::Resources::default();
        r.unified.insert("memory.high".into(), "1".into());
        let e = v.validate(&r).unwrap_err().to_string();
        assert!(e.contains("\"memory.high\""), "{e}");
    }
}
