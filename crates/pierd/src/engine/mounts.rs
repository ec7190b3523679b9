//! A container's mounts: every form Docker takes, parsed into one typed plan, and the
//! plan turned into the runtime spec's mounts.
//!
//! The forms are `HostConfig.Binds` (`-v /host:/ctr[:mode]`, `-v name:/ctr[:mode]`,
//! `-v /ctr`), `HostConfig.Mounts` (`--mount`, as [`pier_api::mount::Mount`]),
//! `HostConfig.Tmpfs` (`--tmpfs`) and the anonymous volumes of `Config.Volumes` and the
//! image's `VOLUME`s. [`plan`] checks them all at create, with Docker's messages (moby's
//! `volume/mounts/linux_parser.go` and `daemon/volumes.go`), so that nothing invalid is
//! stored. At start the volume service resolves volume entries to host paths and
//! [`oci_mounts`] writes the spec entries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use pier_api::mount::{BindOptions, Mount, MountType, TmpfsOptions, VolumeOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::EngineError;

/// Where a mount came from: it decides Docker's inspect `Mode` and which duplicate
/// message names the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountOrigin {
    /// `HostConfig.Binds` (`-v`).
    Binds,
    /// `HostConfig.Mounts` (`--mount`).
    Mounts,
    /// `HostConfig.Tmpfs` (`--tmpfs`).
    Tmpfs,
    /// `Config.Volumes` of the container or of its image: an anonymous volume.
    ConfigVolumes,
}

/// Mount propagation, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    Private,
    #[default]
    Rprivate,
    Shared,
    Rshared,
    Slave,
    Rslave,
}

impl Propagation {
    pub fn parse(s: &str) -> Option<Propagation> {
        Some(match s {
            "private" => Propagation::Private,
            "rprivate" => Propagation::Rprivate,
            "shared" => Propagation::Shared,
            "rshared" => Propagation::Rshared,
            "slave" => Propagation::Slave,
            "rslave" => Propagation::Rslave,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Rprivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::Rshared => "rshared",
            Propagation::Slave => "slave",
            Propagation::Rslave => "rslave",
        }
    }
}

/// How deep a read-only bind is read-only (Docker 25+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ReadonlyDepth {
    /// Submounts too where the kernel can (mount_setattr, Linux 5.12), else only the
    /// mount itself: Docker's default since API 1.44.
    #[default]
    Recursive,
    /// Only the mount itself (`bind-recursive=writable`, `ReadOnlyNonRecursive`).
    NonRecursive,
    /// Submounts too, or the start fails (`bind-recursive=readonly`,
    /// `ReadOnlyForceRecursive`).
    ForceRecursive,
}

/// What is mounted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MountSource {
    /// A host path.
    Bind {
        source: PathBuf,
        propagation: Propagation,
        /// Submounts of the source are not bound (`bind-nonrecursive`).
        non_recursive: bool,
        readonly_depth: ReadonlyDepth,
        /// A missing source is made as a directory at start (`-v`, and `--mount` with
        /// `CreateMountpoint`); otherwise create refuses it.
        create_host_path: bool,
    },
    /// A volume, made (or found) by the volume service.
    Volume {
        /// None: anonymous, a fresh name is given.
        name: Option<String>,
        /// None: `HostConfig.VolumeDriver`, else `local` (or the existing volume's).
        driver: Option<String>,
        driver_opts: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        /// A directory inside the volume mounted instead of its root.
        subpath: Option<String>,
        /// Do not fill a new, empty volume from the image (`nocopy`).
        nocopy: bool,
    },
    /// A new tmpfs.
    Tmpfs {
        size_bytes: Option<u64>,
        /// Permission bits of its root.
        mode: Option<u32>,
        /// Other mount(2) options, in order (`exec`, `uid=1000`, ...).
        options: Vec<String>,
    },
    /// An image's root filesystem, read-only (Docker 28's `type=image`).
    Image {
        reference: String,
        subpath: Option<String>,
    },
}

/// One mount of a container, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountPlan {
    /// Absolute and clean.
    pub target: String,
    pub readonly: bool,
    pub source: MountSource,
    pub origin: MountOrigin,
    /// Docker's `MountPoint.Mode`: the mode text of a `-v` (`ro,z`), else empty.
    pub mode: String,
}

impl MountPlan {
    pub fn is_anonymous_volume(&self) -> bool {
        matches!(&self.source, MountSource::Volume { name: None, .. })
    }
}

/// A plan entry with what start found for it: the host path of a volume (its
/// mountpoint, subpath not yet applied), or the layers of an image mount.
#[derive(Debug, Clone)]
pub struct ResolvedMount<'a> {
    pub plan: &'a MountPlan,
    pub host_path: Option<PathBuf>,
    /// An image mount of several layers (top-most first, subpath applied): mounted by
    /// the runtime as a read-only overlay in the container's own mount namespace, so
    /// nothing stays mounted on the host.
    pub overlay_lowerdirs: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------
// Errors in Docker's words.

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidParameter(msg)
}

fn mount_config_error(kind: &MountType, err: &str) -> EngineError {
    invalid(format!(
        "invalid mount config for type {:?}: {err}",
        kind.as_str()
    ))
}

fn invalid_spec(raw: &str) -> EngineError {
    invalid(format!("invalid volume specification: '{raw}'"))
}

fn duplicate(target: &str) -> EngineError {
    invalid(format!("Duplicate mount point: {target}"))
}

// ---------------------------------------------------------------------------------
// Parsing.

/// Every mount of a container, from its `Config`, `HostConfig` and its image's
/// `Config.Volumes`, in Docker's order (binds, mounts, tmpfs, anonymous volumes).
/// Fails with Docker's message for the first bad entry.
pub fn plan(
    config: &Value,
    host_config: &Value,
    image_volumes: Option<&BTreeMap<String, Value>>,
) -> Result<Vec<MountPlan>, EngineError> {
    let volume_driver = host_config["VolumeDriver"]
        .as_str()
        .filter(|d| !d.is_empty());
    let tmpfs: BTreeMap<String, String> = match &host_config["Tmpfs"] {
        Value::Null => BTreeMap::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|e| invalid(format!("HostConfig.Tmpfs: {e}")))?,
    };
    let mut plans = Vec::new();
    let mut taken = BTreeSet::new();

    for raw in super::spec::str_list(&host_config["Binds"]) {
        let p = parse_bind(&raw, volume_driver)?;
        if taken.contains(&p.target) || tmpfs.contains_key(&p.target) {
            return Err(duplicate(&p.target));
        }
        taken.insert(p.target.clone());
        plans.push(p);
    }

    let mounts: Vec<Mount> = match &host_config["Mounts"] {
        Value::Null => Vec::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|e| invalid(format!("HostConfig.Mounts: {e}")))?,
    };
    for m in &mounts {
        let p = parse_api_mount(m)?;
        if taken.contains(&p.target) || tmpfs.contains_key(&p.target) {
            return Err(duplicate(&m.target));
        }
        taken.insert(p.target.clone());
        plans.push(p);
    }

    for (dest, data) in &tmpfs {
        validate_target(dest).map_err(invalid)?;
        let target = clean(dest);
        taken.insert(target.clone());
        plans.push(MountPlan {
            target,
            readonly: data.split(',').any(|o| o == "ro"),
            source: tmpfs_from_data(data),
            origin: MountOrigin::Tmpfs,
            mode: String::new(),
        });
    }

    // The container's own `Config.Volumes` (where the CLI puts `-v /ctr`), then the
    // image's; a destination a user mount covers gets no volume.
    let own = config["Volumes"].as_object();
    let anonymous = own
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(image_volumes.into_iter().flat_map(|m| m.keys()));
    for dest in anonymous {
        if !dest.starts_with('/') {
            return Err(invalid(format!(
                "invalid volume specification: '{dest}': invalid mount config for type \"volume\": invalid mount path: '{dest}' mount path must be absolute"
            )));
        }
        let target = clean(dest);
        if target == "/" {
            return Err(invalid(format!(
                "invalid volume specification: '{dest}': invalid mount config for type \"volume\": invalid specification: destination can't be '/'"
            )));
        }
        if !taken.insert(target.clone()) {
            continue;
        }
        plans.push(MountPlan {
            target,
            readonly: false,
            source: MountSource::Volume {
                name: None,
                driver: volume_driver.map(str::to_string),
                driver_opts: BTreeMap::new(),
                labels: BTreeMap::new(),
                subpath: None,
                nocopy: false,
            },
            origin: MountOrigin::ConfigVolumes,
            mode: String::new(),
        });
    }
    Ok(plans)
}

/// The options of a `-v` mode: one of each kind at most.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0u8; 5];
    for o in mode.split(',') {
        let kind = match o {
            "rw" | "ro" => 0,
            // SELinux relabelling: no SELinux here, accepted and ignored as dockerd
            // does without it.
            "z" | "Z" => 1,
            _ if Propagation::parse(o).is_some() => 2,
            "nocopy" => 3,
            // Docker for Mac's consistency modes, ignored on Linux.
            "consistent" | "cached" | "delegated" => 4,
            _ => return false,
        };
        counts[kind] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

/// A `HostConfig.Binds` entry (moby's `ParseMountRaw`): it becomes the `Mount` that
/// `--mount` would give, checked the same way except that a missing bind source is
/// made at start instead of refused.
fn parse_bind(raw: &str, volume_driver: Option<&str>) -> Result<MountPlan, EngineError> {
    let parts: Vec<&str> = raw.splitn(4, ':').collect();
    if parts[0].is_empty() {
        return Err(invalid_spec(raw));
    }
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        // `/ctr:ro` is a destination with a mode: volumes cannot have one.
        [_, m] if valid_mode(m) => return Err(invalid_spec(raw)),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid_spec(raw)),
    };
    if !valid_mode(mode) {
        return Err(invalid(format!("invalid mode: {mode}")));
    }
    let opts: Vec<&str> = mode.split(',').filter(|o| !o.is_empty()).collect();
    let kind = if source.starts_with('/') {
        MountType::Bind
    } else {
        MountType::Volume
    };
    let mut m = Mount {
        r#type: kind.clone(),
        source: source.to_string(),
        target: target.to_string(),
        read_only: opts.contains(&"ro"),
        ..Mount::default()
    };
    if let (Some(driver), MountType::Volume) = (volume_driver, &kind) {
        m.volume_options = Some(VolumeOptions {
            driver_config: Some(pier_api::mount::Driver {
                name: driver.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if opts.contains(&"nocopy") {
        m.volume_options
            .get_or_insert_with(Default::default)
            .no_copy = true;
    }
    if let Some(p) = opts.iter().find(|o| Propagation::parse(o).is_some()) {
        m.bind_options = Some(BindOptions {
            propagation: p.to_string(),
            ..Default::default()
        });
    }
    let mut plan = to_plan(&m, false).map_err(|e| {
        let e = match e {
            EngineError::InvalidParameter(m) => m,
            other => other.to_string(),
        };
        invalid(format!("invalid volume specification: '{raw}': {e}"))
    })?;
    plan.origin = MountOrigin::Binds;
    plan.mode = mode.to_string();
    Ok(plan)
}

/// A `HostConfig.Mounts` entry (moby's `ParseMountSpec`).
fn parse_api_mount(m: &Mount) -> Result<MountPlan, EngineError> {
    to_plan(m, true)
}

/// `Target` checks shared by every form; the error text without its prefix.
fn validate_target(target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("field Target must not be empty".into());
    }
    if !target.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        ));
    }
    if clean(target) == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    Ok(())
}

/// moby's `validateMountConfigImpl` and `parseMountSpec` in one.
fn to_plan(m: &Mount, bind_source_must_exist: bool) -> Result<MountPlan, EngineError> {
    let kind = &m.r#type;
    let fail = |e: &str| mount_config_error(kind, e);
    validate_target(&m.target).map_err(|e| fail(&e))?;
    let target = clean(&m.target);
    let source = match kind {
        MountType::Bind => {
            if m.source.is_empty() {
                return Err(fail("field Source must not be empty"));
            }
            let bind = m.bind_options.clone().unwrap_or_default();
            let propagation = if bind.propagation.is_empty() {
                Propagation::default()
            } else {
                Propagation::parse(&bind.propagation).ok_or_else(|| {
                    fail(&format!("invalid propagation mode: {}", bind.propagation))
                })?
            };
            if m.volume_options.is_some() {
                return Err(fail("field VolumeOptions must not be specified"));
            }
            if m.image_options.is_some() {
                return Err(fail("field ImageOptions must not be specified"));
            }
            if !m.source.starts_with('/') {
                return Err(fail(&format!(
                    "invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            let readonly_depth =
                match (bind.read_only_non_recursive, bind.read_only_force_recursive) {
                    (true, true) => {
                        return Err(fail(
                            "cannot set both ReadOnlyNonRecursive and ReadOnlyForceRecursive",
                        ))
                    }
                    (true, false) => ReadonlyDepth::NonRecursive,
                    (false, true) => ReadonlyDepth::ForceRecursive,
                    (false, false) => ReadonlyDepth::Recursive,
                };
            if readonly_depth != ReadonlyDepth::Recursive && !m.read_only {
                return Err(fail("must also set ReadOnly"));
            }
            if readonly_depth == ReadonlyDepth::ForceRecursive
                && propagation != Propagation::Rprivate
            {
                return Err(fail(
                    "read-only force-recursive mount requires private propagation",
                ));
            }
            // `-v` makes a missing source at start; `--mount` refuses it unless asked.
            let create_host_path = !bind_source_must_exist || bind.create_mountpoint;
            if !create_host_path && std::fs::symlink_metadata(&m.source).is_err() {
                return Err(fail(&format!(
                    "bind source path does not exist: {}",
                    m.source
                )));
            }
            MountSource::Bind {
                source: PathBuf::from(clean(&m.source)),
                propagation,
                non_recursive: bind.non_recursive,
                readonly_depth,
                create_host_path,
            }
        }
        MountType::Volume => {
            if m.bind_options.is_some() {
                return Err(fail("field BindOptions must not be specified"));
            }
            if m.image_options.is_some() {
                return Err(fail("field ImageOptions must not be specified"));
            }
            let anonymous = m.source.is_empty();
            let opts = m.volume_options.clone().unwrap_or_default();
            let subpath = Some(opts.subpath.clone()).filter(|s| !s.is_empty());
            if let Some(sub) = &subpath {
                if anonymous {
                    return Err(fail("must not set Subpath when using anonymous volumes"));
                }
                if !is_local(sub) {
                    return Err(fail("subpath must be a relative path within the volume"));
                }
            }
            if m.read_only && anonymous {
                return Err(fail(
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            let driver_config = opts.driver_config.unwrap_or_default();
            MountSource::Volume {
                name: Some(m.source.clone()).filter(|s| !s.is_empty()),
                driver: Some(driver_config.name).filter(|d| !d.is_empty()),
                driver_opts: driver_config.options.unwrap_or_default(),
                labels: opts.labels.unwrap_or_default(),
                subpath,
                nocopy: opts.no_copy,
            }
        }
        MountType::Tmpfs => {
            if m.bind_options.is_some() {
                return Err(fail("field BindOptions must not be specified"));
            }
            if !m.source.is_empty() {
                return Err(fail("field Source must not be specified"));
            }
            tmpfs_from_options(m.tmpfs_options.as_ref()).map_err(|e| fail(&e))?
        }
        MountType::Image => {
            if m.bind_options.is_some() {
                return Err(fail("field BindOptions must not be specified"));
            }
            if m.volume_options.is_some() {
                return Err(fail("field VolumeOptions must not be specified"));
            }
            if m.source.is_empty() {
                return Err(fail("field Source must not be empty"));
            }
            let subpath = m
                .image_options
                .as_ref()
                .map(|o| o.subpath.clone())
                .filter(|s| !s.is_empty());
            if let Some(sub) = &subpath {
                if !is_local(sub) {
                    return Err(fail("subpath must be a relative path within the image"));
                }
            }
            MountSource::Image {
                reference: m.source.clone(),
                subpath,
            }
        }
        // npipe is Windows's, cluster is Swarm's: moby's Linux parser knows neither.
        MountType::Npipe | MountType::Cluster | MountType::Other(_) => {
            return Err(fail("mount type unknown"))
        }
    };
    Ok(MountPlan {
        target,
        // An image mount is read-only whatever was asked (as Docker 28).
        readonly: m.read_only || matches!(source, MountSource::Image { .. }),
        source,
        origin: MountOrigin::Mounts,
        mode: String::new(),
    })
}

/// `TmpfsOptions` (moby's `ConvertTmpfsOptions`): only `exec`/`noexec` may be given
/// as further options.
fn tmpfs_from_options(opts: Option<&TmpfsOptions>) -> Result<MountSource, String> {
    let default = TmpfsOptions::default();
    let opts = opts.unwrap_or(&default);
    if opts.size_bytes < 0 {
        return Err(format!("invalid size: {}", opts.size_bytes));
    }
    let mut options = Vec::new();
    for o in opts.options.iter().flatten() {
        match o.as_slice() {
            [name] if name == "exec" || name == "noexec" => options.push(name.clone()),
            [name, _] if name != "exec" && name != "noexec" => {
                return Err(format!("invalid option: {name}"))
            }
            [name, value] => options.push(format!("{name}={value}")),
            [name] => return Err(format!("invalid option: {name}")),
            _ => return Err("invalid option array length".into()),
        }
    }
    Ok(MountSource::Tmpfs {
        size_bytes: u64::try_from(opts.size_bytes).ok().filter(|s| *s > 0),
        mode: Some(opts.mode).filter(|m| *m != 0),
        options,
    })
}

/// `HostConfig.Tmpfs` data (`size=64m,mode=1777,uid=1000`): handed to mount(2) as
/// Docker does, with the size and mode taken out when they are plain numbers.
fn tmpfs_from_data(data: &str) -> MountSource {
    let mut size_bytes = None;
    let mut mode = None;
    let mut options = Vec::new();
    for o in data.split(',').filter(|o| !o.is_empty()) {
        if let Some(parsed) = o.strip_prefix("size=").and_then(parse_size) {
            size_bytes = Some(parsed);
        } else if let Some(parsed) = o
            .strip_prefix("mode=")
            .and_then(|m| u32::from_str_radix(m, 8).ok())
        {
            mode = Some(parsed);
        } else if o != "ro" {
            options.push(o.to_string());
        }
    }
    MountSource::Tmpfs {
        size_bytes,
        mode,
        options,
    }
}

/// A tmpfs size with tmpfs's own suffixes (k, m, g, t, p, e).
fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_lowercase() {
                'k' => 10,
                'm' => 20,
                'g' => 30,
                't' => 40,
                'p' => 50,
                'e' => 60,
                _ => return None,
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// Go's `path.Clean` of an absolute path.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if p.starts_with('/') {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// Go's `filepath.IsLocal`: relative, not empty, never leaving its base.
fn is_local(p: &str) -> bool {
    if p.is_empty() || p.starts_with('/') {
        return false;
    }
    let mut depth = 0i32;
    for c in Path::new(p).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------------
// The runtime spec.

/// The spec's mounts for a plan, and the root propagation they need.
#[derive(Debug, Default)]
pub struct OciMounts {
    pub mounts: Vec<Value>,
    /// `linux.rootfsPropagation`: `shared` for a shared bind, `rslave` for a slave
    /// one (as dockerd), else none (the runtime's default).
    pub rootfs_propagation: Option<&'static str>,
    /// Volume subpaths, resolved inside their volume and bound (by descriptor) onto
    /// staging directories that the spec names instead: a container writing to the
    /// volume meanwhile cannot swap a directory on the way for a symlink out of it.
    /// Unmounted when this is dropped: keep it until the runtime created the container.
    staged: Vec<PathBuf>,
}

impl Drop for OciMounts {
    fn drop(&mut self) {
        for dir in &self.staged {
            let _ = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH);
            let _ = std::fs::remove_dir(dir);
        }
        if let Some(parent) = self.staged.first().and_then(|d| d.parent()) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Undoes the staging mounts a run cut short (a crash) left in `staging_dir`; never
/// removes anything recursively, as a mount there would lead into a volume.
fn clear_staging(staging_dir: &Path) {
    for entry in std::fs::read_dir(staging_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = rustix::mount::unmount(entry.path(), rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(entry.path());
    }
}

/// Binds what `fd` holds onto `staging_dir/<n>`. Its propagation is left as the
/// parent's, so that its unmount reaches wherever its mount did.
fn stage(fd: &std::os::fd::OwnedFd, staging_dir: &Path, n: usize) -> Result<PathBuf, EngineError> {
    use std::os::fd::AsRawFd;
    let failed = |e: std::io::Error| {
        EngineError::Internal(format!(
            "stage a volume subpath in {}: {e}",
            staging_dir.display()
        ))
    };
    let dir = staging_dir.join(n.to_string());
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let held = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let bound = rustix::mount::mount_bind_recursive(held.as_str(), &dir);
    if let Err(e) = bound {
        let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&dir);
        return Err(failed(e.into()));
    }
    Ok(dir)
}

/// Whether this kernel can make a bind recursively read-only (mount_setattr, Linux
/// 5.12), as the runtime does for `rro`.
pub fn kernel_has_recursive_readonly() -> bool {
    pier_runtime::mounts::kernel_has_mount_setattr()
}

/// The spec entries of resolved plans. Missing `-v` bind sources are made here
/// (directories, as dockerd), and shared/slave binds are checked against the
/// propagation of their source on the host, with dockerd's errors.
///
/// Volume subpaths are staged under `staging_dir` (see [`OciMounts`]).
pub fn oci_mounts(
    resolved: &[ResolvedMount<'_>],
    staging_dir: &Path,
) -> Result<OciMounts, EngineError> {
    let mut out = OciMounts::default();
    clear_staging(staging_dir);
    // Sorted by depth of destination, as dockerd, so that a mount inside another is
    // made after it.
    let mut order: Vec<&ResolvedMount<'_>> = resolved.iter().collect();
    order.sort_by_key(|r| r.plan.target.split('/').filter(|s| !s.is_empty()).count());
    for r in order {
        let plan = r.plan;
        let entry = match &plan.source {
            MountSource::Tmpfs {
                size_bytes,
                mode,
                options,
            } => {
                let mut opts: Vec<String> = ["noexec", "nosuid", "nodev", "rprivate"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                if plan.readonly {
                    opts.push("ro".into());
                }
                if let Some(m) = mode {
                    opts.push(format!("mode={m:o}"));
                }
                if let Some(s) = size_bytes {
                    opts.push(format!("size={s}"));
                }
                opts.extend(options.iter().cloned());
                json!({"destination": plan.target, "type": "tmpfs", "source": "tmpfs", "options": merge_tmpfs_options(opts)})
            }
            MountSource::Bind {
                source,
                propagation,
                non_recursive,
                readonly_depth,
                create_host_path,
            } => {
                if *create_host_path {
                    make_bind_source(source, None)?;
                }
                match propagation {
                    Propagation::Shared | Propagation::Rshared => {
                        ensure_propagation(source, &["shared:"], "a shared mount")?;
                        out.rootfs_propagation = Some("shared");
                    }
                    Propagation::Slave | Propagation::Rslave => {
                        ensure_propagation(
                            source,
                            &["shared:", "master:"],
                            "a shared or slave mount",
                        )?;
                        if out.rootfs_propagation.is_none() {
                            out.rootfs_propagation = Some("rslave");
                        }
                    }
                    Propagation::Private | Propagation::Rprivate => {}
                }
                let mut opts = vec![if *non_recursive { "bind" } else { "rbind" }.to_string()];
                opts.extend(readonly_options(plan.readonly, *readonly_depth)?);
                opts.push(propagation.as_str().to_string());
                json!({"destination": plan.target, "type": "bind", "source": source, "options": opts})
            }
            MountSource::Image { .. } if !r.overlay_lowerdirs.is_empty() => {
                let lower: Vec<String> = r
                    .overlay_lowerdirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                json!({"destination": plan.target, "type": "overlay", "source": "overlay",
                       "options": ["ro", "nosuid", "nodev", format!("lowerdir={}", lower.join(":"))]})
            }
            // An image mount's subpath is applied to its layers already.
            MountSource::Image { .. } => {
                let source = r.host_path.as_ref().ok_or_else(|| {
                    EngineError::Internal(format!(
                        "mount {}: the image was not made ready",
                        plan.target
                    ))
                })?;
                let mut opts = vec!["rbind".to_string()];
                opts.extend(readonly_options(true, ReadonlyDepth::Recursive)?);
                json!({"destination": plan.target, "type": "bind", "source": source, "options": opts})
            }
            MountSource::Volume { subpath, .. } => {
                let base = r.host_path.as_ref().ok_or_else(|| {
                    EngineError::Internal(format!(
                        "mount {}: the volume was not made ready",
                        plan.target
                    ))
                })?;
                let source = match subpath {
                    Some(sub) => {
                        let fd = resolve_subpath(base, sub)?;
                        let dir = stage(&fd, staging_dir, out.staged.len())?;
                        out.staged.push(dir.clone());
                        dir
                    }
                    None => base.clone(),
                };
                let mut opts = vec!["rbind".to_string()];
                opts.extend(readonly_options(plan.readonly, ReadonlyDepth::Recursive)?);
                json!({"destination": plan.target, "type": "bind", "source": source, "options": opts})
            }
        };
        out.mounts.push(entry);
    }
    Ok(out)
}

/// A missing `-v` source, made as dockerd does: directories (0755) for each missing
/// component, given to `owner` (the remapped root, under user namespace remapping).
fn make_bind_source(source: &Path, owner: Option<(u32, u32)>) -> Result<(), EngineError> {
    let failed = |e: std::io::Error| {
        EngineError::Internal(format!(
            "error while creating mount source path '{}': {e}",
            source.display()
        ))
    };
    let missing: Vec<&Path> = source
        .ancestors()
        .take_while(|p| std::fs::symlink_metadata(p).is_err())
        .collect();
    for dir in missing.into_iter().rev() {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            // Made meanwhile (another container starting): theirs, left as it is.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(failed(e)),
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(failed)?;
        }
    }
    Ok(())
}

/// `ro`, plus `rro` where the depth and the kernel allow it.
fn readonly_options(readonly: bool, depth: ReadonlyDepth) -> Result<Vec<String>, EngineError> {
    if !readonly {
        return Ok(Vec::new());
    }
    let mut opts = vec!["ro".to_string()];
    match depth {
        ReadonlyDepth::NonRecursive => {}
        ReadonlyDepth::Recursive if !kernel_has_recursive_readonly() => {}
        ReadonlyDepth::ForceRecursive if !kernel_has_recursive_readonly() => {
            return Err(EngineError::InvalidParameter(
                "recursive read-only mounts need Linux 5.12 or later (mount_setattr)".into(),
            ))
        }
        ReadonlyDepth::Recursive | ReadonlyDepth::ForceRecursive => opts.push("rro".into()),
    }
    Ok(opts)
}

/// Later options win over earlier ones of the same key (`exec` over `noexec`,
/// `size=` over `size=`), as moby's `MergeTmpfsOptions`.
fn merge_tmpfs_options(options: Vec<String>) -> Vec<String> {
    let key = |o: &str| -> String {
        let k = o.split('=').next().unwrap_or(o);
        match k {
            "exec" | "noexec" => "exec".into(),
            "suid" | "nosuid" => "suid".into(),
            "dev" | "nodev" => "dev".into(),
            "ro" | "rw" => "ro".into(),
            p if Propagation::parse(p).is_some() => "propagation".into(),
            other => other.to_string(),
        }
    };
    let mut out: Vec<String> = Vec::new();
    for o in options {
        let k = key(&o);
        out.retain(|x| key(x) != k);
        out.push(o);
    }
    out
}

/// A subpath of a volume, resolved without leaving it (symlinks included) and
/// required to exist, as Docker 26+: an `O_PATH` descriptor of what it names.
fn resolve_subpath(base: &Path, sub: &str) -> Result<std::os::fd::OwnedFd, EngineError> {
    let root = pier_runtime::rootpath::Root::open(base)
        .map_err(|e| EngineError::Internal(format!("open {}: {e}", base.display())))?;
    root.open_at(Path::new(sub), rustix::fs::OFlags::PATH)
        .map_err(|e| {
            EngineError::InvalidParameter(format!(
                "cannot access path {}/{sub}: {e}",
                base.display()
            ))
        })
}

/// dockerd's `ensureShared`/`ensureSharedOrSlave`: the mount holding `path` on the
/// host must propagate (its mountinfo optional fields carry one of `tags`).
fn ensure_propagation(path: &Path, tags: &[&str], what: &str) -> Result<(), EngineError> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let holder = pier_runtime::mounts::mount_holding(&real)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    match holder {
        Some(h) if h.propagates(tags) => Ok(()),
        Some(h) => Err(EngineError::InvalidParameter(format!(
            "path {} is mounted on {} but it is not {what}",
            path.display(),
            h.mount_point.display()
        ))),
        None => Err(EngineError::Internal(format!(
            "no mount holds {}",
            path.display()
        ))),
    }
}

// ---------------------------------------------------------------------------------
// Image mounts (Docker 28's `type=image`).

/// Prefix of the snapshot views that hold the images of image mounts: kept apart from
/// `container-` so that the orphan sweep at start can tell them by their container.
pub(super) const IMAGE_VIEW_PREFIX: &str = "imagemount-";

/// The snapshot view of a container's image mount at `target`.
fn image_view_key(id: &str, target: &str) -> String {
    let hex: String = target.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{IMAGE_VIEW_PREFIX}{id}-{hex}")
}

/// The container that an image mount's view belongs to.
pub(super) fn image_view_owner(snapshot: &str) -> Option<&str> {
    snapshot.strip_prefix(IMAGE_VIEW_PREFIX)?.get(..64)
}

/// At remove (and after a failed create): the views of a container's image mounts go.
pub(super) fn release_image_mounts(images: &pier_image::service::ImageService, id: &str) {
    let snapshots = images.snapshots();
    for info in snapshots.list().unwrap_or_default() {
        if image_view_owner(&info.name) == Some(id) {
            let _ = snapshots.remove(&info.name);
        }
    }
}

impl super::Engine {
    /// At create: a read-only view of each image mount's image, which also keeps the
    /// image's layers from being removed while the container exists. A missing image is
    /// refused with Docker's message (as a bad parameter: a 404 would make the docker
    /// CLI pull the container's image).
    pub(super) fn prepare_image_mounts(
        &self,
        id: &str,
        plans: &[MountPlan],
    ) -> Result<(), EngineError> {
        let mut made = Vec::new();
        for plan in plans {
            let MountSource::Image { reference, .. } = &plan.source else {
                continue;
            };
            let made_view = (|| -> Result<String, EngineError> {
                let details = self.images.details(reference).map_err(|e| match e {
                    pier_image::Error::NotFound(m) => EngineError::InvalidParameter(m),
                    other => other.into(),
                })?;
                self.images.unpack(&details.target)?;
                let key = image_view_key(id, &plan.target);
                let parent = details.chain.last().map(ToString::to_string);
                self.images.snapshots().view(&key, parent.as_deref())?;
                Ok(key)
            })();
            match made_view {
                Ok(key) => made.push(key),
                Err(e) => {
                    for key in made {
                        let _ = self.images.snapshots().remove(&key);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// At start: each planned mount with what it needs from the host. Volumes are the
    /// volume service's to resolve; until it does, they have no host path and
    /// [`oci_mounts`] refuses them.
    pub(super) fn resolve_mounts<'a>(
        &self,
        c: &super::Container,
        plans: &'a [MountPlan],
    ) -> Result<Vec<ResolvedMount<'a>>, EngineError> {
        plans
            .iter()
            .map(|plan| match &plan.source {
                MountSource::Image { .. } => self.resolve_image_mount(&c.id, plan),
                MountSource::Bind {
                    source,
                    create_host_path: true,
                    ..
                } => {
                    make_bind_source(source, c.userns.as_ref().map(|m| m.root()))?;
                    Ok(ResolvedMount {
                        plan,
                        host_path: None,
                        overlay_lowerdirs: Vec::new(),
                    })
                }
                _ => Ok(ResolvedMount {
                    plan,
                    host_path: None,
                    overlay_lowerdirs: Vec::new(),
                }),
            })
            .collect()
    }

    /// Where a start stages the container's volume subpaths ([`oci_mounts`]).
    pub(super) fn subpath_staging_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("subpaths").join(id)
    }

    /// At start: what an image mount mounts, its subpath applied.
    pub(super) fn resolve_image_mount<'a>(
        &self,
        id: &str,
        plan: &'a MountPlan,
    ) -> Result<ResolvedMount<'a>, EngineError> {
        let MountSource::Image { subpath, .. } = &plan.source else {
            return Err(EngineError::Internal("not an image mount".into()));
        };
        let spec = self
            .images
            .snapshots()
            .mounts(&image_view_key(id, &plan.target))?;
        let layers = match spec {
            pier_image::snapshot::MountSpec::Bind { source, .. } => vec![source],
            pier_image::snapshot::MountSpec::Overlay { lowerdirs, .. } => lowerdirs,
        };
        let layers = match subpath {
            Some(sub) => layers_at_subpath(&layers, sub)?,
            None => layers,
        };
        Ok(match layers.as_slice() {
            [one] => ResolvedMount {
                plan,
                host_path: Some(one.clone()),
                overlay_lowerdirs: Vec::new(),
            },
            _ => ResolvedMount {
                plan,
                host_path: None,
                overlay_lowerdirs: layers,
            },
        })
    }
}

/// The directories of `sub` in each layer (top-most first) that make up `sub` in the
/// merged image: a layer that whites it (or a parent) out or makes it opaque hides
/// the layers below. Symlinks on the way are refused: they would be resolved against
/// the host, not the image.
fn layers_at_subpath(layers: &[PathBuf], sub: &str) -> Result<Vec<PathBuf>, EngineError> {
    let not_dir = || {
        EngineError::InvalidParameter(format!(
            "invalid mount config for type \"image\": image subpath {sub:?} is not a directory in the image"
        ))
    };
    let components: Vec<&str> = sub
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut out = Vec::new();
    'layers: for layer in layers {
        let mut path = layer.clone();
        // Whether this layer hides the layers below at some directory on the way.
        let mut opaque = false;
        for c in &components {
            path.push(c);
            let Ok(st) = rustix::fs::lstat(&path) else {
                if opaque {
                    break 'layers;
                }
                continue 'layers;
            };
            let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if kind == rustix::fs::FileType::CharacterDevice && st.st_rdev == 0 {
                // A whiteout: nothing of it below this layer.
                break 'layers;
            }
            if kind != rustix::fs::FileType::Directory {
                return Err(not_dir());
            }
            let mut flag = [0u8; 1];
            opaque |= rustix::fs::lgetxattr(&path, "trusted.overlay.opaque", &mut flag[..])
                .is_ok_and(|n| n == 1 && flag[0] == b'y');
        }
        out.push(path);
        if opaque {
            break;
        }
    }
    if out.is_empty() {
        return Err(not_dir());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binds(list: &[&str]) -> Result<Vec<MountPlan>, EngineError> {
        plan(&json!({}), &json!({ "Binds": list }), None)
    }

    fn err(r: Result<Vec<MountPlan>, EngineError>) -> String {
        match r {
            Err(EngineError::InvalidParameter(m)) => m,
            other => panic!("expected a bad parameter, got {other:?}"),
        }
    }

    #[test]
    fn binds_parse_like_docker() {
        let p = binds(&["/tmp:/data:ro,rslave,z"]).unwrap();
        assert_eq!(p[0].target, "/data");
        assert!(p[0].readonly);
        assert_eq!(p[0].mode, "ro,rslave,z");
        match &p[0].source {
            MountSource::Bind {
                propagation,
                create_host_path,
                ..
            } => {
                assert_eq!(*propagation, Propagation::Rslave);
                assert!(*create_host_path);
            }
            other => panic!("{other:?}"),
        }
        let p = binds(&["vol:/data:nocopy", "/anon/"]).unwrap();
        assert_eq!(
            p[0].source,
            MountSource::Volume {
                name: Some("vol".into()),
                driver: None,
                driver_opts: BTreeMap::new(),
                labels: BTreeMap::new(),
                subpath: None,
                nocopy: true,
            }
        );
        assert_eq!(p[1].target, "/anon");
        assert!(p[1].is_anonymous_volume());
        // A missing -v source is made at start, not refused.
        assert!(binds(&["/does/not/exist:/d"]).is_ok());
    }

    #[test]
    fn bad_binds_get_dockers_messages() {
        assert_eq!(
            err(binds(&["/tmp:data"])),
            "invalid volume specification: '/tmp:data': invalid mount config for type \"bind\": invalid mount path: 'data' mount path must be absolute"
        );
        assert_eq!(err(binds(&["/tmp:/d:bogus"])), "invalid mode: bogus");
        assert_eq!(err(binds(&["/tmp:/d:ro,rw"])), "invalid mode: ro,rw");
        assert_eq!(
            err(binds(&["/data:ro"])),
            "invalid volume specification: '/data:ro'"
        );
        assert_eq!(
            err(binds(&["/a:/b:ro:x"])),
            "invalid volume specification: '/a:/b:ro:x'"
        );
        assert_eq!(
            err(binds(&["/tmp:/d", "/var:/d/"])),
            "Duplicate mount point: /d"
        );
        assert_eq!(
            err(binds(&["/tmp:/d:nocopy"])),
            "invalid volume specification: '/tmp:/d:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        assert_eq!(
            err(binds(&["vol:/d:rshared"])),
            "invalid volume specification: 'vol:/d:rshared': invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        assert_eq!(
            err(binds(&["/d:/"])),
            "invalid volume specification: '/d:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
    }

    #[test]
    fn api_mounts_parse_like_docker() {
        let m = |v: Value| plan(&json!({}), &json!({ "Mounts": [v] }), None);
        assert_eq!(
            err(m(json!({"Type": "bind", "Source": "/does/not/exist", "Target": "/x"}))),
            "invalid mount config for type \"bind\": bind source path does not exist: /does/not/exist"
        );
        assert!(m(
            json!({"Type": "bind", "Source": "/does/not/exist", "Target": "/x",
                         "BindOptions": {"CreateMountpoint": true}})
        )
        .is_ok());
        assert_eq!(
            err(m(json!({"Type": "npipe", "Source": "x", "Target": "/x"}))),
            "invalid mount config for type \"npipe\": mount type unknown"
        );
        assert_eq!(
            err(m(json!({"Type": "volume", "Target": "/x", "ReadOnly": true}))),
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"
        );
        assert_eq!(
            err(m(json!({"Type": "volume", "Source": "v", "Target": "/x",
                         "VolumeOptions": {"Subpath": "../up"}}))),
            "invalid mount config for type \"volume\": subpath must be a relative path within the volume"
        );
        assert_eq!(
            err(m(json!({"Type": "tmpfs", "Target": "/t",
                         "TmpfsOptions": {"Options": [["uid", "0"]]}}))),
            "invalid mount config for type \"tmpfs\": invalid option: uid"
        );
        let p = m(
            json!({"Type": "bind", "Source": "/tmp", "Target": "/x", "ReadOnly": true,
                         "Consistency": "cached",
                         "BindOptions": {"NonRecursive": true, "ReadOnlyForceRecursive": true}}),
        )
        .unwrap();
        assert_eq!(
            p[0].source,
            MountSource::Bind {
                source: "/tmp".into(),
                propagation: Propagation::Rprivate,
                non_recursive: true,
                readonly_depth: ReadonlyDepth::ForceRecursive,
                create_host_path: false,
            }
        );
        let p = m(json!({"Type": "image", "Source": "busybox", "Target": "/img"})).unwrap();
        assert!(p[0].readonly);
    }

    #[test]
    fn anonymous_volumes_skip_covered_targets() {
        let image: BTreeMap<String, Value> = [
            ("/data".to_string(), json!({})),
            ("/logs".to_string(), json!({})),
        ]
        .into();
        let p = plan(
            &json!({"Volumes": {"/cache": {}}}),
            &json!({"Binds": ["/tmp:/data"], "VolumeDriver": "plug"}),
            Some(&image),
        )
        .unwrap();
        let targets: Vec<&str> = p.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(targets, ["/data", "/cache", "/logs"]);
        assert!(
            matches!(&p[1].source, MountSource::Volume { name: None, driver: Some(d), .. } if d == "plug")
        );
    }

    #[test]
    fn tmpfs_options_become_docker_mount_options() {
        let p = plan(
            &json!({}),
            &json!({"Tmpfs": {"/run": "size=64m,mode=1777,exec"},
                    "Mounts": [{"Type": "tmpfs", "Target": "/t",
                                "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}}]}),
            None,
        )
        .unwrap();
        let resolved: Vec<ResolvedMount<'_>> = p
            .iter()
            .map(|plan| ResolvedMount {
                plan,
                host_path: None,
                overlay_lowerdirs: Vec::new(),
            })
            .collect();
        let oci = oci_mounts(&resolved, Path::new("/nonexistent")).unwrap();
        let run = oci
            .mounts
            .iter()
            .find(|m| m["destination"] == "/run")
            .unwrap();
        assert_eq!(
            run["options"],
            json!([
                "nosuid",
                "nodev",
                "rprivate",
                "mode=1777",
                "size=67108864",
                "exec"
            ])
        );
        let t = oci
            .mounts
            .iter()
            .find(|m| m["destination"] == "/t")
            .unwrap();
        assert_eq!(
            t["options"],
            json!([
                "noexec",
                "nosuid",
                "nodev",
                "rprivate",
                "mode=700",
                "size=1048576"
            ])
        );
    }

    #[test]
    fn missing_bind_sources_are_made_for_the_containers_root() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("a/b/c");
        make_bind_source(&source, Some((4242, 4243))).unwrap();
        for dir in [tmp.path().join("a"), tmp.path().join("a/b"), source.clone()] {
            let m = std::fs::metadata(&dir).unwrap();
            assert!(m.is_dir());
            assert_eq!((m.uid(), m.gid()), (4242, 4243), "{}", dir.display());
        }
        // What existed keeps its owner.
        assert_eq!(std::fs::metadata(tmp.path()).unwrap().uid(), 0);
        make_bind_source(&source, None).unwrap();
    }

    #[test]
    fn an_image_subpath_takes_the_layers_that_show_it() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = |n: &str| {
            let d = tmp.path().join(n);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        // Top-most first: `top` has app/, `opaque` makes app/ opaque, `hidden` is
        // below it, `gone` whites app/ out under another layer set.
        let (top, opaque, hidden) = (layer("top"), layer("opaque"), layer("hidden"));
        for l in [&top, &opaque, &hidden] {
            std::fs::create_dir_all(l.join("app/bin")).unwrap();
        }
        let opaque_set = rustix::fs::setxattr(
            opaque.join("app"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        let empty = layer("empty");
        let got = layers_at_subpath(
            &[top.clone(), empty.clone(), opaque.clone(), hidden.clone()],
            "app/bin",
        )
        .unwrap();
        if opaque_set {
            assert_eq!(got, [top.join("app/bin"), opaque.join("app/bin")]);
        } else {
            eprintln!("skipping the opaque-directory check: no trusted.* xattrs here");
        }
        // A whiteout of app/ hides what is below it.
        let whiteout = layer("whiteout");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            whiteout.join("app"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let got = layers_at_subpath(&[top.clone(), whiteout, hidden.clone()], "app").unwrap();
        assert_eq!(got, [top.join("app")]);
        // Not a directory, or nowhere: refused.
        std::fs::write(empty.join("file"), "x").unwrap();
        assert!(layers_at_subpath(std::slice::from_ref(&empty), "file").is_err());
        assert!(layers_at_subpath(&[empty], "nowhere").is_err());
    }

    #[test]
    fn paths_clean_and_stay_local() {
        assert_eq!(clean("/a//b/./c/../"), "/a/b");
        assert_eq!(clean("/.."), "/");
        assert!(is_local("a/../b"));
        assert!(!is_local("a/../../b"));
        assert!(!is_local("/a"));
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1x"), None);
    }
}
