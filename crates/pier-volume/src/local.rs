//! Docker's `local` volume driver.
//!
//! A volume is a directory, `<root>/<name>/_data`, laid out and moded as dockerd lays
//! out `/var/lib/docker/volumes` (the root and each volume's directory 0701, `_data`
//! 0755). With options (`type=`, `device=`, `o=`, as `docker volume create -o` takes
//! them) a filesystem is mounted over `_data` when the first user mounts the volume
//! and unmounted when the last one unmounts: `type=tmpfs device=tmpfs o=size=1m`,
//! `type=nfs o=addr=... device=:/export`, `type=none o=bind device=/host/dir`. The
//! options are kept beside `_data` in `opts.json` (as dockerd keeps them), so they
//! survive a restart of pierd.
//!
//! Users are counted per `mount_id` (pierd gives the container ID) in memory; after a
//! restart pierd mounts again for the containers still running, and
//! [`LocalDriver::unmount_unused`] takes down what no one uses any more.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::driver::{DriverVolume, Scope, VolumeDriver, VolumeError};

/// The driver's name.
pub const NAME: &str = "local";
/// The options file beside `_data`.
const OPTS_FILE: &str = "opts.json";
/// The directory in a volume's directory that containers see.
const DATA_DIR: &str = "_data";
/// The options Docker's local driver takes on Linux. (`size`, a quota on xfs, is
/// refused as dockerd refuses it without quota support.)
const VALID_OPTS: [&str; 4] = ["type", "o", "device", "size"];

/// The local driver; see the [module docs](self).
#[derive(Debug)]
pub struct LocalDriver {
    root: PathBuf,
    /// Users of each volume (mount IDs), for volumes with at least one.
    users: Mutex<HashMap<String, HashSet<String>>>,
}

/// What `-o type=... -o o=... -o device=...` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MountOptions {
    #[serde(rename = "MountType")]
    pub mount_type: String,
    #[serde(rename = "MountOpts")]
    pub mount_opts: String,
    #[serde(rename = "MountDevice")]
    pub mount_device: String,
}

impl MountOptions {
    /// The options of `docker volume create -o`, checked as dockerd checks them;
    /// None when there is nothing to mount (no options).
    pub fn from_opts(opts: &BTreeMap<String, String>) -> Result<Option<MountOptions>, VolumeError> {
        if opts.is_empty() {
            return Ok(None);
        }
        for key in opts.keys() {
            if !VALID_OPTS.contains(&key.as_str()) {
                return Err(VolumeError::InvalidParameter(format!(
                    "invalid option: {key:?}"
                )));
            }
        }
        if opts.contains_key("size") {
            return Err(VolumeError::InvalidParameter(
                "quota size requested but no quota support".into(),
            ));
        }
        // dockerd's mandatory options: each option needs the ones listed with it.
        for (opt, needs) in [
            ("device", &["type"][..]),
            ("type", &["device"][..]),
            ("o", &["device", "type"][..]),
        ] {
            if opts.contains_key(opt) {
                if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                    return Err(VolumeError::InvalidParameter(format!(
                        "missing required option: {missing:?}"
                    )));
                }
            }
        }
        Ok(Some(MountOptions {
            mount_type: opts.get("type").cloned().unwrap_or_default(),
            mount_opts: opts.get("o").cloned().unwrap_or_default(),
            mount_device: opts.get("device").cloned().unwrap_or_default(),
        }))
    }
}

impl LocalDriver {
    /// The driver over `root` (`<data-root>/volumes`), made (0701) if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalDriver, VolumeError> {
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o701)
            .create(&root)
            .map_err(|e| VolumeError::io(format!("create {}", root.display()), e))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o701))
            .map_err(|e| VolumeError::io(format!("chmod {}", root.display()), e))?;
        Ok(LocalDriver {
            root,
            users: Mutex::new(HashMap::new()),
        })
    }

    /// Where volumes live.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn volume_dir(&self, name: &str) -> Result<PathBuf, VolumeError> {
        // The name becomes a path component: nothing that leaves the root.
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(VolumeError::InvalidParameter(format!(
                "invalid volume name {name:?}"
            )));
        }
        Ok(self.root.join(name))
    }

    fn data_path(&self, name: &str) -> Result<PathBuf, VolumeError> {
        Ok(self.volume_dir(name)?.join(DATA_DIR))
    }

    fn no_such_volume(name: &str) -> VolumeError {
        VolumeError::NotFound(format!("no such volume: {name}"))
    }

    fn exists(&self, name: &str) -> Result<bool, VolumeError> {
        Ok(self.data_path(name)?.is_dir())
    }

    /// The volume's mount options (from `opts.json`); None for a plain directory.
    pub fn mount_options(&self, name: &str) -> Result<Option<MountOptions>, VolumeError> {
        let file = self.volume_dir(name)?.join(OPTS_FILE);
        match fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| VolumeError::Driver(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VolumeError::io(format!("read {}", file.display()), e)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unmounts the filesystems of volumes no one uses: what a container that ended
    /// while pierd was down left mounted. pierd calls it after it mounted again the
    /// volumes of the containers still running.
    pub fn unmount_unused(&self) {
        let users = self.lock();
        for name in self.names() {
            if users.get(&name).is_some_and(|u| !u.is_empty()) {
                continue;
            }
            if let Ok(path) = self.data_path(&name) {
                if is_mount_point(&path) {
                    let _ = rustix::mount::unmount(&path, UnmountFlags::DETACH);
                }
            }
        }
    }

    /// The names of the volume directories under the root.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        out.sort();
        out
    }

    fn mount_filesystem(&self, opts: &MountOptions, target: &Path) -> Result<(), VolumeError> {
        if opts.mount_device.is_empty() {
            return Err(VolumeError::Driver(
                "missing device in volume options".into(),
            ));
        }
        let mut data = opts.mount_opts.clone();
        if matches!(opts.mount_type.as_str(), "nfs" | "cifs") {
            data = resolve_addr(&data)?;
        }
        mount_with_options(&opts.mount_device, target, &opts.mount_type, &data)
            .map_err(|e| VolumeError::Driver(format!("failed to mount local volume: {e}")))
    }
}

impl VolumeDriver for LocalDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn scope(&self) -> Scope {
        Scope::Local
    }

    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
        let mount = MountOptions::from_opts(opts)?;
        let dir = self.volume_dir(name)?;
        if self.exists(name)? {
            return Ok(());
        }
        let made = (|| {
            let data = dir.join(DATA_DIR);
            fs::DirBuilder::new()
                .mode(0o701)
                .create(&dir)
                .map_err(|e| VolumeError::io(format!("create {}", dir.display()), e))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o701))
                .map_err(|e| VolumeError::io(format!("chmod {}", dir.display()), e))?;
            if let Some(mount) = &mount {
                let file = dir.join(OPTS_FILE);
                let bytes = serde_json::to_vec(mount)
                    .map_err(|e| VolumeError::Driver(format!("options: {e}")))?;
                write_private(&file, &bytes)
                    .map_err(|e| VolumeError::io(format!("write {}", file.display()), e))?;
            }
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&data)
                .map_err(|e| VolumeError::io(format!("create {}", data.display()), e))?;
            fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
                .map_err(|e| VolumeError::io(format!("chmod {}", data.display()), e))
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let dir = self.volume_dir(name)?;
        if !dir.exists() {
            return Err(Self::no_such_volume(name));
        }
        if self.lock().get(name).is_some_and(|u| !u.is_empty()) {
            return Err(VolumeError::Conflict("volume has active mounts".into()));
        }
        let data = dir.join(DATA_DIR);
        // A filesystem still mounted over _data (a crash) comes off first: removing
        // through it would delete a bind-mounted host directory's content.
        if is_mount_point(&data) {
            rustix::mount::unmount(&data, UnmountFlags::DETACH)
                .map_err(|e| VolumeError::io(format!("unmount {}", data.display()), e.into()))?;
        }
        if is_mount_point(&data) {
            return Err(VolumeError::Driver(format!(
                "{} is still mounted",
                data.display()
            )));
        }
        fs::remove_dir_all(&dir)
            .map_err(|e| VolumeError::io(format!("remove {}", dir.display()), e))
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>, VolumeError> {
        if !self.exists(name)? {
            return Err(Self::no_such_volume(name));
        }
        Ok(Some(self.data_path(name)?))
    }

    fn mount(&self, name: &str, mount_id: &str) -> Result<PathBuf, VolumeError> {
        if !self.exists(name)? {
            return Err(Self::no_such_volume(name));
        }
        let path = self.data_path(name)?;
        let mut users = self.lock();
        let first = users.get(name).is_none_or(HashSet::is_empty);
        // Mounted already: by this driver before a restart of pierd.
        if first && !is_mount_point(&path) {
            if let Some(opts) = self.mount_options(name)? {
                self.mount_filesystem(&opts, &path)?;
            }
        }
        users
            .entry(name.to_string())
            .or_default()
            .insert(mount_id.to_string());
        Ok(path)
    }

    fn unmount(&self, name: &str, mount_id: &str) -> Result<(), VolumeError> {
        let path = self.data_path(name)?;
        let mut users = self.lock();
        let Some(set) = users.get_mut(name) else {
            return Ok(());
        };
        set.remove(mount_id);
        if !set.is_empty() {
            return Ok(());
        }
        users.remove(name);
        if self.mount_options(name)?.is_some() && is_mount_point(&path) {
            rustix::mount::unmount(&path, UnmountFlags::DETACH)
                .map_err(|e| VolumeError::io(format!("unmount {}", path.display()), e.into()))?;
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<DriverVolume, VolumeError> {
        if !self.exists(name)? {
            return Err(Self::no_such_volume(name));
        }
        let dir = self.volume_dir(name)?;
        let created_at = fs::metadata(&dir).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            pier_time::format_rfc3339(m.mtime(), 0)
        });
        Ok(DriverVolume {
            name: name.to_string(),
            mountpoint: Some(dir.join(DATA_DIR)),
            status: None,
            created_at,
        })
    }

    fn list(&self) -> Result<Vec<DriverVolume>, VolumeError> {
        Ok(self
            .names()
            .iter()
            .filter_map(|n| self.get(n).ok())
            .collect())
    }
}

/// Writes a root-only file.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The mount flags `mount(8)` options stand for: (clears the flag, flag bits).
fn flag_option(option: &str) -> Option<(bool, libc::c_ulong)> {
    use libc::*;
    let flag = |clear: bool, bits: c_ulong| Some((clear, bits));
    match option {
        "defaults" => flag(false, 0),
        "ro" => flag(false, MS_RDONLY),
        "rw" => flag(true, MS_RDONLY),
        "suid" => flag(true, MS_NOSUID),
        "nosuid" => flag(false, MS_NOSUID),
        "dev" => flag(true, MS_NODEV),
        "nodev" => flag(false, MS_NODEV),
        "exec" => flag(true, MS_NOEXEC),
        "noexec" => flag(false, MS_NOEXEC),
        "sync" => flag(false, MS_SYNCHRONOUS),
        "async" => flag(true, MS_SYNCHRONOUS),
        "dirsync" => flag(false, MS_DIRSYNC),
        "remount" => flag(false, MS_REMOUNT),
        "mand" => flag(false, MS_MANDLOCK),
        "nomand" => flag(true, MS_MANDLOCK),
        "atime" => flag(true, MS_NOATIME),
        "noatime" => flag(false, MS_NOATIME),
        "diratime" => flag(true, MS_NODIRATIME),
        "nodiratime" => flag(false, MS_NODIRATIME),
        "bind" => flag(false, MS_BIND),
        "rbind" => flag(false, MS_BIND | MS_REC),
        "unbindable" => flag(false, MS_UNBINDABLE),
        "runbindable" => flag(false, MS_UNBINDABLE | MS_REC),
        "private" => flag(false, MS_PRIVATE),
        "rprivate" => flag(false, MS_PRIVATE | MS_REC),
        "shared" => flag(false, MS_SHARED),
        "rshared" => flag(false, MS_SHARED | MS_REC),
        "slave" => flag(false, MS_SLAVE),
        "rslave" => flag(false, MS_SLAVE | MS_REC),
        "relatime" => flag(false, MS_RELATIME),
        "norelatime" => flag(true, MS_RELATIME),
        "strictatime" => flag(false, MS_STRICTATIME),
        "nostrictatime" => flag(true, MS_STRICTATIME),
        _ => None,
    }
}

/// `o=` split as mount(8) splits it: flags, and the rest for the filesystem.
fn parse_mount_options(options: &str) -> (libc::c_ulong, String) {
    let mut flags: libc::c_ulong = 0;
    let mut data = Vec::new();
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match flag_option(option) {
            Some((true, bits)) => flags &= !bits,
            Some((false, bits)) => flags |= bits,
            None => data.push(option),
        }
    }
    (flags, data.join(","))
}

/// mount(2) with `o=` options as dockerd's mount package does it: the filesystem with
/// its flags, then the propagation, then a read-only remount of a bind.
fn mount_with_options(
    device: &str,
    target: &Path,
    fstype: &str,
    options: &str,
) -> std::io::Result<()> {
    let propagation_bits =
        libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE;
    let (flags, data) = parse_mount_options(options);
    // MS_REC stays with the first call too: it makes `rbind` recursive.
    let plain = flags & !propagation_bits;
    let data =
        CString::new(data).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let data = (!data.as_bytes().is_empty()).then_some(data.as_c_str());
    rustix::mount::mount(
        device,
        target,
        fstype,
        MountFlags::from_bits_retain(bits32(plain)),
        data,
    )?;
    let propagation = flags & (propagation_bits | (libc::MS_REC));
    if flags & propagation_bits != 0 {
        rustix::mount::mount_change(
            target,
            MountPropagationFlags::from_bits_retain(bits32(propagation)),
        )?;
    }
    let bind_ro = libc::MS_BIND | libc::MS_RDONLY;
    if plain & bind_ro == bind_ro {
        rustix::mount::mount_remount(
            target,
            MountFlags::from_bits_retain(bits32(plain)) | MountFlags::BIND | MountFlags::RDONLY,
            "",
        )?;
    }
    Ok(())
}

fn bits32(bits: libc::c_ulong) -> u32 {
    u32::try_from(bits).unwrap_or(u32::MAX)
}

/// nfs/cifs: an `addr=` given as a host name becomes its address, as dockerd does.
fn resolve_addr(options: &str) -> Result<String, VolumeError> {
    let mut out = Vec::new();
    for option in options.split(',') {
        match option.strip_prefix("addr=") {
            Some(addr) if addr.parse::<std::net::IpAddr>().is_err() && !addr.is_empty() => {
                use std::net::ToSocketAddrs;
                let ip = (addr, 0)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        VolumeError::Driver(format!(
                            "error resolving passed in network volume address: lookup {addr}: no such host"
                        ))
                    })?;
                out.push(format!("addr={}", ip.ip()));
            }
            _ => out.push(option.to_string()),
        }
    }
    Ok(out.join(","))
}

/// Whether `path` is a mount point in this process's mount namespace (the kernel's
/// `STATX_ATTR_MOUNT_ROOT`, Linux 5.8+; before that, a device differing from the
/// parent's, which misses a bind mount from the same filesystem).
pub fn is_mount_point(path: &Path) -> bool {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
    let Ok(st) = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) else {
        return false;
    };
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
    }
    let parent = path.parent().unwrap_or(path);
    statx(CWD, parent, AtFlags::empty(), StatxFlags::BASIC_STATS)
        .is_ok_and(|p| (p.stx_dev_major, p.stx_dev_minor) != (st.stx_dev_major, st.stx_dev_minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_as_dockerd_checks_them() {
        assert_eq!(MountOptions::from_opts(&opts(&[])).unwrap(), None);
        let err = MountOptions::from_opts(&opts(&[("x", "1")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid option: \"x\"");
        let err = MountOptions::from_opts(&opts(&[("type", "tmpfs")])).unwrap_err();
        assert_eq!(err.to_string(), "missing required option: \"device\"");
        let err = MountOptions::from_opts(&opts(&[("o", "size=1m")])).unwrap_err();
        assert_eq!(err.to_string(), "missing required option: \"device\"");
        let m = MountOptions::from_opts(&opts(&[("type", "tmpfs"), ("device", "tmpfs")]))
            .unwrap()
            .unwrap();
        assert_eq!(m.mount_type, "tmpfs");
    }

    #[test]
    fn mount_options_split_into_flags_and_data() {
        let (flags, data) = parse_mount_options("bind,ro,size=1m,uid=5");
        assert_eq!(flags, libc::MS_BIND | libc::MS_RDONLY);
        assert_eq!(data, "size=1m,uid=5");
        assert_eq!(parse_mount_options("ro,rw").0, 0);
    }

    #[test]
    fn a_plain_volume_is_a_directory_laid_out_as_dockerd_does() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("volumes");
        let d = LocalDriver::new(&root).unwrap();
        d.create("data", &BTreeMap::new()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&root), 0o701);
        assert_eq!(mode(&root.join("data")), 0o701);
        assert_eq!(mode(&root.join("data/_data")), 0o755);
        assert_eq!(d.path("data").unwrap(), Some(root.join("data/_data")));
        assert_eq!(d.mount("data", "c1").unwrap(), root.join("data/_data"));
        assert!(matches!(d.remove("data"), Err(VolumeError::Conflict(_))));
        d.unmount("data", "c1").unwrap();
        assert_eq!(d.names(), vec!["data".to_string()]);
        d.remove("data").unwrap();
        assert!(!root.join("data").exists());
        assert!(matches!(d.get("data"), Err(VolumeError::NotFound(_))));
        assert!(matches!(
            d.create("../x", &BTreeMap::new()),
            Err(VolumeError::InvalidParameter(_))
        ));
        // Bad options leave nothing behind.
        assert!(d.create("bad", &opts(&[("x", "1")])).is_err());
        assert!(!root.join("bad").exists());
    }

    #[test]
    fn a_read_only_bind_volume_shows_the_host_directory_read_only() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("f"), "from the host").unwrap();
        let d = LocalDriver::new(tmp.path().join("volumes")).unwrap();
        let device = host.display().to_string();
        let o = opts(&[("type", "none"), ("device", &device), ("o", "bind,ro")]);
        d.create("b", &o).unwrap();
        let path = d.mount("b", "c1").unwrap();
        assert_eq!(fs::read_to_string(path.join("f")).unwrap(), "from the host");
        let err = fs::write(path.join("g"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        d.unmount("b", "c1").unwrap();
        assert!(!is_mount_point(&path));
        d.remove("b").unwrap();
        assert!(host.join("f").exists(), "the host directory is left alone");
    }

    #[test]
    fn a_tmpfs_volume_is_mounted_by_its_first_user_and_unmounted_by_its_last() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let d = LocalDriver::new(tmp.path().join("volumes")).unwrap();
        let o = opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]);
        d.create("t", &o).unwrap();
        let path = d.mount("t", "a").unwrap();
        assert!(is_mount_point(&path));
        let st = rustix::fs::statvfs(&path).unwrap();
        assert_eq!(st.f_blocks * st.f_frsize, 1 << 20);
        d.mount("t", "b").unwrap();
        d.unmount("t", "a").unwrap();
        assert!(is_mount_point(&path), "b still uses it");
        d.unmount("t", "b").unwrap();
        assert!(!is_mount_point(&path));
        // Left mounted (a crash): unmount_unused takes it down, a new driver reads the
        // options back from disk.
        let again = LocalDriver::new(tmp.path().join("volumes")).unwrap();
        again.mount("t", "a").unwrap();
        let third = LocalDriver::new(tmp.path().join("volumes")).unwrap();
        third.unmount_unused();
        assert!(!is_mount_point(&path));
        third.remove("t").unwrap();
    }
}
