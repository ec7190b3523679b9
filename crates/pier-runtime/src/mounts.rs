//! The container's root filesystem: mounts, devices, pivot_root, masked and read-only
//! paths. Runs inside the container's new mount namespace, in the single-threaded init.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::rootpath::{Missing, Root};
use crate::spec::{Device, Mount, Spec};

/// Propagation flag for an OCI propagation name (`rootfsPropagation` and mount options).
pub fn propagation_flag(name: &str) -> Option<u64> {
    let f = match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    };
    Some(f)
}

/// Mount options split the way mount(2) wants them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: u64,
    pub propagation: Vec<u64>,
    pub data: Vec<String>,
    /// `rro` and friends: recursive attributes applied with mount_setattr.
    pub recursive_ro: bool,
}

pub fn parse_options(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let (set, clear): (u64, u64) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "suid" => (0, libc::MS_NOSUID),
            "nosuid" => (libc::MS_NOSUID, 0),
            "dev" => (0, libc::MS_NODEV),
            "nodev" => (libc::MS_NODEV, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "noexec" => (libc::MS_NOEXEC, 0),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "rro" => {
                out.recursive_ro = true;
                (0, 0)
            }
            // runc-specific options with no mount(2) meaning here.
            "tmpcopyup" | "rrw" | "idmap" | "ridmap" => (0, 0),
            other => {
                if let Some(p) = propagation_flag(other) {
                    out.propagation.push(p);
                } else {
                    out.data.push(other.to_string());
                }
                (0, 0)
            }
        };
        out.flags = (out.flags | set) & !clear;
    }
    out
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidConfig(format!("path {p:?} contains a NUL byte")))
}

/// mount(2) with an error that says what was mounted where.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> Result<()> {
    let src = source.map(cstr).transpose()?;
    let tgt = cstr(target)?;
    let ty = fstype.map(|t| CString::new(t).unwrap_or_default());
    let dat = data
        .filter(|d| !d.is_empty())
        .map(|d| CString::new(d).unwrap_or_default());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the
    // call; mount(2) does not keep them.
    let rc = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            tgt.as_ptr(),
            ty.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags as libc::c_ulong,
            dat.as_ref().map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::io(
            format!(
                "mount {} to {} (type {}, flags {:#x}, data {:?})",
                source.map_or("none".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("none"),
                flags,
                data.unwrap_or("")
            ),
            err,
        ));
    }
    Ok(())
}

const NEW_DIRS: Missing = Missing::Dirs {
    mode: 0o755,
    owner: None,
};

/// What the init needs to know about the container's cgroup to mount it.
#[derive(Debug, Clone, Default)]
pub struct CgroupMountInfo {
    /// `(hierarchy mount point on the host, path of the container's cgroup in it)`.
    pub v1: Vec<(PathBuf, String)>,
    /// Host path of the container's cgroup on a pure v2 host.
    pub v2_dir: Option<PathBuf>,
    pub has_cgroupns: bool,
}

/// Sets up propagation and every mount of the spec under `rootfs`, plus `/dev`.
/// Pivoting happens later, after createRuntime hooks.
/// Detached copies (`open_tree(OPEN_TREE_CLONE)`) of every bind mount source, made by
/// the runtime before the child enters a user namespace whose root may not be allowed
/// to look the sources up. Only for containers with a new user namespace; elsewhere
/// the child binds the paths itself.
pub fn clone_bind_sources(spec: &Spec) -> Vec<Option<std::os::fd::OwnedFd>> {
    let new_userns = spec
        .namespace(crate::spec::NamespaceKind::User)
        .is_some_and(|n| n.path.is_none());
    if !new_userns {
        return Vec::new();
    }
    spec.mounts
        .iter()
        .map(|m| {
            let source = m.source.as_deref().filter(|_| is_bind(m))?;
            let recursive = m.options.iter().any(|o| o == "rbind");
            open_tree_clone(source, recursive).ok()
        })
        .collect()
}

fn open_tree_clone(source: &Path, recursive: bool) -> Result<std::os::fd::OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    let path = cstr(source)?;
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: path is a valid C string; open_tree returns a new fd we take ownership of.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::io(
            format!("open_tree {}", source.display()),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// Attaches a detached mount tree at `dest`.
fn move_mount_to(tree: &std::os::fd::OwnedFd, dest: &Path) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    // `dest` is the `/proc/self/fd/N` of a target resolved inside the root: the link
    // must be followed to the inode it holds.
    const MOVE_MOUNT_T_SYMLINKS: libc::c_uint = 0x10;
    let empty = c"";
    let target = cstr(dest)?;
    // SAFETY: tree is an open_tree fd, both paths are valid C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            std::os::fd::AsRawFd::as_raw_fd(tree),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("move_mount to {}", dest.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

pub fn prepare_rootfs(
    spec: &Spec,
    rootfs: &Path,
    cgroup: &CgroupMountInfo,
    bind_fds: &[Option<std::os::fd::OwnedFd>],
) -> Result<Vec<PathBuf>> {
    let linux = spec.linux();
    let propagation = linux
        .rootfs_propagation
        .as_deref()
        .and_then(propagation_flag)
        .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    mount(None, Path::new("/"), None, propagation, None)?;
    make_parent_mount_private(rootfs)?;
    mount(
        Some(rootfs),
        rootfs,
        Some("bind"),
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;

    // Opened after the bind above, so that mounts land on it, not under it.
    let root = Root::open(rootfs)?;
    let in_userns = spec.has_namespace(crate::spec::NamespaceKind::User);
    let mut dev_bound_from_host = false;
    let mut readonly_later = Vec::new();
    for (i, m) in spec.mounts.iter().enumerate() {
        if m.destination == Path::new("/dev") && is_bind(m) {
            dev_bound_from_host = true;
        }
        let fd = bind_fds.get(i).and_then(|f| f.as_ref());
        if let Some(dest) = mount_entry(m, &root, cgroup, spec.mount_label(), fd)? {
            readonly_later.push(dest);
        }
    }
    if !dev_bound_from_host {
        create_devices(&root, &linux.devices, in_userns)?;
        setup_dev_symlinks(&root)?;
    } else {
        for d in &linux.devices {
            create_device(&root, d, in_userns)?;
        }
    }
    // Read-only tmpfs mounts (a read-only /dev) were mounted writable so that nested
    // mount points, devices and /dev/console could be made in them; they become
    // read-only in finalize_rootfs (paths as seen after pivot_root).
    Ok(readonly_later)
}

fn is_bind(m: &Mount) -> bool {
    m.kind.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind")
}

impl Spec {
    fn mount_label(&self) -> Option<&str> {
        self.linux()
            .mount_label
            .as_deref()
            .filter(|l| !l.is_empty())
    }
}

/// pivot_root needs the rootfs's parent mount not to be shared.
fn make_parent_mount_private(rootfs: &Path) -> Result<()> {
    if let Some(holder) = mount_holding(rootfs)? {
        if holder.propagates(&["shared:"]) {
            mount(None, &holder.mount_point, None, libc::MS_PRIVATE, None)?;
        }
    }
    Ok(())
}

/// A line of `/proc/self/mountinfo`, as far as propagation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountHolder {
    pub mount_point: PathBuf,
    /// The optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
}

impl MountHolder {
    /// Whether an optional field starts with one of `tags` (`shared:`, `master:`).
    pub fn propagates(&self, tags: &[&str]) -> bool {
        self.optional
            .iter()
            .any(|f| tags.iter().any(|t| f.starts_with(t)))
    }
}

/// The mount that holds `path` in this process's mount namespace: the deepest mount
/// point above it, the last listed of equal ones (the one on top).
pub fn mount_holding(path: &Path) -> Result<Option<MountHolder>> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
    let mut best: Option<MountHolder> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 7 {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mountinfo(fields[4]));
        if path.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|b| mount_point.as_os_str().len() >= b.mount_point.as_os_str().len())
        {
            let optional = fields[6..]
                .iter()
                .take_while(|f| **f != "-")
                .map(|f| f.to_string())
                .collect();
            best = Some(MountHolder {
                mount_point,
                optional,
            });
        }
    }
    Ok(best)
}

pub fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

/// Mounts one entry. Returns the destination (as seen after pivot_root) when it must
/// be made read-only later.
///
/// The target is resolved inside the root and held open; mount(2) gets it as
/// `/proc/self/fd/N`, so no symlink can redirect it after the check. Later steps on
/// the new mount (remounts, propagation) resolve the destination again, which then
/// leads onto the mount just made.
fn mount_entry(
    m: &Mount,
    root: &Root,
    cgroup: &CgroupMountInfo,
    label: Option<&str>,
    source_fd: Option<&std::os::fd::OwnedFd>,
) -> Result<Option<PathBuf>> {
    let opts = parse_options(&m.options);
    let kind = m.kind.as_deref().unwrap_or("");
    if matches!(kind, "proc" | "sysfs") && destination_is_not_a_directory(root, &m.destination) {
        // A symlink here could point the kernel's proc/sys mount anywhere (runc refuses
        // it the same way).
        return Err(Error::InvalidConfig(format!(
            "mounts: {} cannot be mounted on {}: {kind} must be mounted on ordinary directory",
            kind,
            m.destination.display()
        )));
    }
    let mut readonly_later = None;
    let mut data = opts.data.join(",");
    if let Some(label) = label {
        if matches!(kind, "tmpfs" | "devpts" | "mqueue") {
            if !data.is_empty() {
                data.push(',');
            }
            data.push_str(&format!("context=\"{label}\""));
        }
    }
    let mut after_mount_flags = 0;
    if is_bind(m) {
        let source = m.source.as_deref().ok_or_else(|| {
            Error::InvalidConfig(format!(
                "mounts: bind mount to {:?} has no source",
                m.destination
            ))
        })?;
        let source_is_dir = match source_fd {
            Some(tree) => {
                // A copy the runtime made while it could still see the source.
                let st =
                    rustix::fs::fstat(tree).map_err(|e| Error::io("fstat mount tree", e.into()))?;
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
            }
            None => fs::metadata(source)
                .map_err(|e| Error::io(format!("bind mount source {}", source.display()), e))?
                .is_dir(),
        };
        let missing = if source_is_dir {
            NEW_DIRS
        } else {
            Missing::File
        };
        let target = root.resolve_or_create(&m.destination, missing)?;
        match source_fd {
            Some(tree) => move_mount_to(tree, &target.proc_path()),
            None => {
                let rec = opts.flags & libc::MS_REC;
                mount(
                    Some(source),
                    &target.proc_path(),
                    Some("bind"),
                    libc::MS_BIND | rec,
                    None,
                )
            }
        }
        .map_err(|e| target.explain(e))?;
        after_mount_flags = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    } else if kind == "cgroup" || kind == "cgroup2" {
        mount_cgroup(root, &m.destination, &opts, cgroup)?;
    } else {
        let target = root.resolve_or_create(&m.destination, NEW_DIRS)?;
        let source = m.source.clone().unwrap_or_else(|| PathBuf::from(kind));
        let mut flags = opts.flags & !libc::MS_REMOUNT;
        if kind == "tmpfs" && flags & libc::MS_RDONLY != 0 {
            flags &= !libc::MS_RDONLY;
            readonly_later = Some(target.path_in(root));
        }
        let fallback = mount_new(&source, &target.proc_path(), kind, flags, &data)
            .map_err(|e| target.explain(e))?;
        if fallback == Fallback::BoundHostSys && flags & libc::MS_RDONLY != 0 {
            after_mount_flags = flags;
        }
    }
    if after_mount_flags == 0 && !opts.recursive_ro && opts.propagation.is_empty() {
        return Ok(readonly_later);
    }
    let mounted = root.resolve(&m.destination)?;
    let dest = mounted.proc_path();
    let finish = || -> Result<()> {
        if after_mount_flags != 0 {
            remount_bind(&dest, after_mount_flags)?;
        }
        if opts.recursive_ro {
            set_recursive_readonly(&dest)?;
        }
        for p in &opts.propagation {
            mount(None, &dest, None, *p, None)?;
        }
        Ok(())
    };
    finish().map_err(|e| mounted.explain(e))?;
    Ok(readonly_later)
}

/// Whether the destination exists as something other than a directory (a symlink
/// included), looked at without following its last component.
fn destination_is_not_a_directory(root: &Root, destination: &Path) -> bool {
    let (Some(parent), Some(name)) = (destination.parent(), destination.file_name()) else {
        return false;
    };
    let Ok(parent) = root.resolve(parent) else {
        return false;
    };
    rustix::fs::statat(&parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Fallback {
    None,
    /// sysfs could not be mounted: the host's /sys is bound instead, and a read-only
    /// one must be remounted so.
    BoundHostSys,
}

/// Mounts a new (not bind) filesystem at `dest`, with the fallbacks the kernel makes
/// necessary in user namespaces.
fn mount_new(source: &Path, dest: &Path, kind: &str, flags: u64, data: &str) -> Result<Fallback> {
    match mount(Some(source), dest, Some(kind), flags, Some(data)) {
        // In a user namespace without its own network namespace sysfs cannot be
        // mounted; runc falls back to a recursive bind of the host's /sys.
        Err(e) if kind == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
            mount(
                Some(Path::new("/sys")),
                dest,
                Some("bind"),
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            Ok(Fallback::BoundHostSys)
        }
        // devpts's gid= option fails when gid 5 is not mapped into the user namespace.
        Err(e)
            if kind == "devpts"
                && e.raw_os_error() == Some(libc::EINVAL)
                && data.contains("gid=") =>
        {
            let data: Vec<&str> = data.split(',').filter(|o| !o.starts_with("gid=")).collect();
            mount(Some(source), dest, Some(kind), flags, Some(&data.join(",")))?;
            Ok(Fallback::None)
        }
        other => other.map(|()| Fallback::None),
    }
}

/// Remounts a bind mount with new flags, keeping the flags the kernel locks in a user
/// namespace (nodev, nosuid, noexec, atime flags inherited from the source).
fn remount_bind(dest: &Path, flags: u64) -> Result<()> {
    let base = libc::MS_REMOUNT | libc::MS_BIND;
    match mount(None, dest, None, base | flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = statvfs_flags(dest)?;
            mount(None, dest, None, base | flags | locked, None)
        }
        other => other,
    }
}

fn statvfs_flags(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| Error::io(format!("statvfs {}", path.display()), e.into()))?;
    let f = st.f_flag;
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (rustix::fs::StatVfsMountFlags::RDONLY, libc::MS_RDONLY),
        (rustix::fs::StatVfsMountFlags::NOSUID, libc::MS_NOSUID),
        (rustix::fs::StatVfsMountFlags::NODEV, libc::MS_NODEV),
        (rustix::fs::StatVfsMountFlags::NOEXEC, libc::MS_NOEXEC),
        (rustix::fs::StatVfsMountFlags::NOATIME, libc::MS_NOATIME),
        (
            rustix::fs::StatVfsMountFlags::NODIRATIME,
            libc::MS_NODIRATIME,
        ),
        (rustix::fs::StatVfsMountFlags::RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(st_flag) {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

/// Whether this kernel has mount_setattr(2) (Linux 5.12), which the `rro` option needs.
/// Probed once, with a call that fails with EINVAL or EBADF where it exists.
pub fn kernel_has_mount_setattr() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        // SAFETY: a NULL attr with size 0 is refused before any access; the path is a
        // valid C string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                -1,
                c"".as_ptr(),
                0,
                std::ptr::null::<u8>(),
                0usize,
            )
        };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
    })
}

fn set_recursive_readonly(dest: &Path) -> Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let path = cstr(dest)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: path is a valid C string and attr a correctly laid out mount_attr whose
    // size is passed alongside; both outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("mount_setattr rro {}", dest.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn mount_cgroup(
    root: &Root,
    destination: &Path,
    opts: &MountOptions,
    cgroup: &CgroupMountInfo,
) -> Result<()> {
    let target = root.resolve_or_create(destination, NEW_DIRS)?;
    let flags = opts.flags & !libc::MS_REMOUNT;
    if let Some(dir) = &cgroup.v2_dir {
        if cgroup.has_cgroupns {
            return mount(
                Some(Path::new("cgroup2")),
                &target.proc_path(),
                Some("cgroup2"),
                flags,
                None,
            )
            .map_err(|e| target.explain(e));
        }
        mount(
            Some(dir),
            &target.proc_path(),
            Some("bind"),
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(|e| target.explain(e))?;
        if flags != 0 {
            let mounted = root.resolve(destination)?;
            remount_bind(&mounted.proc_path(), flags).map_err(|e| mounted.explain(e))?;
        }
        return Ok(());
    }
    // cgroup v1: a tmpfs with each hierarchy's container cgroup bound under its name.
    mount(
        Some(Path::new("tmpfs")),
        &target.proc_path(),
        Some("tmpfs"),
        flags & !libc::MS_RDONLY,
        Some("mode=755"),
    )
    .map_err(|e| target.explain(e))?;
    // The fresh tmpfs is ours: paths below it hold no link of the image's.
    let mounted = root.resolve(destination)?;
    let dest = mounted.proc_path();
    let fill = || -> Result<()> {
        for (host_mount, path) in &cgroup.v1 {
            let Some(name) = host_mount.file_name() else {
                continue;
            };
            let target = dest.join(name);
            fs::create_dir_all(&target)
                .map_err(|e| Error::io(format!("mkdir {}", target.display()), e))?;
            let source = host_mount.join(path.trim_start_matches('/'));
            let source = if source.exists() {
                source
            } else {
                host_mount.clone()
            };
            mount(
                Some(&source),
                &target,
                Some("bind"),
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            remount_bind(
                &target,
                flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            )?;
            // Co-mounted controllers ("cpu,cpuacct") get a symlink per controller.
            let name = name.to_string_lossy();
            if name.contains(',') {
                for ctrl in name.split(',') {
                    let _ = symlink(&*name, dest.join(ctrl));
                }
            }
        }
        if flags & libc::MS_RDONLY != 0 {
            remount_bind_tmpfs_ro(&dest, flags)?;
        }
        Ok(())
    };
    fill().map_err(|e| mounted.explain(e))
}

fn remount_bind_tmpfs_ro(dest: &Path, flags: u64) -> Result<()> {
    mount(
        None,
        dest,
        None,
        libc::MS_REMOUNT | flags | libc::MS_RDONLY,
        None,
    )
}

/// The devices every container gets (runc's default set).
pub fn default_devices() -> Vec<Device> {
    let dev = |path: &str, major, minor| Device {
        kind: "c".into(),
        path: PathBuf::from(path),
        major,
        minor,
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(0),
    };
    vec![
        dev("/dev/null", 1, 3),
        dev("/dev/zero", 1, 5),
        dev("/dev/full", 1, 7),
        dev("/dev/tty", 5, 0),
        dev("/dev/urandom", 1, 9),
        dev("/dev/random", 1, 8),
    ]
}

fn create_devices(root: &Root, devices: &[Device], in_userns: bool) -> Result<()> {
    for d in default_devices().iter().chain(devices.iter()) {
        create_device(root, d, in_userns)?;
    }
    Ok(())
}

fn create_device(root: &Root, d: &Device, in_userns: bool) -> Result<()> {
    if in_userns {
        // mknod is not allowed in a user namespace: bind the host's node instead.
        let target = root.resolve_or_create(&d.path, Missing::File)?;
        return mount(
            Some(&d.path),
            &target.proc_path(),
            Some("bind"),
            libc::MS_BIND,
            None,
        )
        .map_err(|e| target.explain(e));
    }
    let kind = match d.kind.as_str() {
        "c" | "u" => rustix::fs::FileType::CharacterDevice,
        "b" => rustix::fs::FileType::BlockDevice,
        "p" => rustix::fs::FileType::Fifo,
        other => {
            return Err(Error::InvalidConfig(format!(
                "linux.devices: {}: unknown device type {other:?}",
                d.path.display()
            )))
        }
    };
    let (Some(parent), Some(name)) = (d.path.parent(), d.path.file_name()) else {
        return Err(Error::InvalidConfig(format!(
            "linux.devices: {:?} is not a device path",
            d.path
        )));
    };
    let parent = root.resolve_or_create(parent, NEW_DIRS)?;
    let shown = || d.path.display();
    let mode = d.file_mode.unwrap_or(0o666) & 0o7777;
    // Whatever is there goes, a symlink included (unlinkat never follows one).
    let _ = rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty());
    rustix::fs::mknodat(
        &parent,
        name,
        kind,
        rustix::fs::Mode::from_raw_mode(mode),
        libc::makedev(d.major as u32, d.minor as u32),
    )
    .map_err(|e| Error::io(format!("mknod {}", shown()), e.into()))?;
    let node = root.resolve(&d.path)?;
    // mknod's mode is masked by the umask; set it exactly.
    fs::set_permissions(node.proc_path(), fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", shown()), e))?;
    rustix::fs::chownat(
        &parent,
        name,
        Some(uid(d.uid.unwrap_or(0))),
        Some(gid(d.gid.unwrap_or(0))),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io(format!("chown {}", shown()), e.into()))?;
    Ok(())
}

fn uid(u: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u)
}

fn gid(g: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(g)
}

fn setup_dev_symlinks(root: &Root) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    let dev = root.resolve_or_create(Path::new("/dev"), NEW_DIRS)?;
    for (target, link) in links {
        match rustix::fs::symlinkat(target, &dev, link) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::io(format!("symlink /dev/{link}"), e.into())),
        }
    }
    // /dev/ptmx points into the container's own devpts instance.
    if root.resolve(Path::new("/dev/pts/ptmx")).is_ok() {
        let _ = rustix::fs::unlinkat(&dev, "ptmx", rustix::fs::AtFlags::empty());
        rustix::fs::symlinkat("pts/ptmx", &dev, "ptmx")
            .map_err(|e| Error::io("symlink /dev/ptmx", e.into()))?;
    }
    Ok(())
}

/// Makes `rootfs` the new `/` with pivot_root(2), then detaches the old root.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    use rustix::fd::AsFd;
    let old = rustix::fs::open(
        "/",
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("open /", e.into()))?;
    let new = rustix::fs::open(
        rootfs,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io(format!("open {}", rootfs.display()), e.into()))?;
    rustix::process::fchdir(new.as_fd()).map_err(|e| Error::io("fchdir rootfs", e.into()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; no temp dir needed.
    rustix::process::pivot_root(".", ".")
        .map_err(|e| Error::io(format!("pivot_root {}", rootfs.display()), e.into()))?;
    rustix::process::fchdir(old.as_fd()).map_err(|e| Error::io("fchdir old root", e.into()))?;
    // Keep unmount events of the old root from propagating back to the host.
    mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| Error::io("unmount old root", e.into()))?;
    rustix::process::chdir("/").map_err(|e| Error::io("chdir /", e.into()))?;
    Ok(())
}

/// `--no-pivot`: move the rootfs mount over `/` and chroot into it. The host's own proc
/// and sysfs mounts stay reachable in this mount namespace under a chroot, and the
/// kernel allows a new proc mount while a full one is visible: detach them first (runc
/// does the same).
pub fn move_root(rootfs: &Path) -> Result<()> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
    let mut exposed: Vec<PathBuf> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let fstype = post.split(' ').next().unwrap_or("");
        if pre.len() < 5 || pre[3] != "/" || !matches!(fstype, "proc" | "sysfs") {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mountinfo(pre[4]));
        if !mount_point.starts_with(rootfs) {
            exposed.push(mount_point);
        }
    }
    // Deepest first, so that nested mounts go before their parents.
    exposed.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in exposed {
        match mount(None, &p, None, libc::MS_SLAVE | libc::MS_REC, None) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            other => other?,
        }
        if rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH).is_err() {
            // Without the privilege to unmount, cover it.
            mount(Some(Path::new("tmpfs")), &p, Some("tmpfs"), 0, None)?;
        }
    }
    rustix::process::chdir(rootfs)
        .map_err(|e| Error::io(format!("chdir {}", rootfs.display()), e.into()))?;
    mount(Some(rootfs), Path::new("/"), None, libc::MS_MOVE, None)?;
    rustix::process::chroot(".").map_err(|e| Error::io("chroot", e.into()))?;
    rustix::process::chdir("/").map_err(|e| Error::io("chdir /", e.into()))?;
    Ok(())
}

/// After pivoting: read-only root, masked paths, read-only paths.
pub fn finalize_rootfs(spec: &Spec, readonly_later: &[PathBuf]) -> Result<()> {
    let linux = spec.linux();
    for dest in readonly_later {
        mount(
            None,
            dest,
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | statvfs_flags(dest)?,
            None,
        )?;
    }
    for path in &linux.readonly_paths {
        readonly_path(Path::new(path))?;
    }
    for path in &linux.masked_paths {
        mask_path(Path::new(path), spec.mount_label())?;
    }
    if spec.root.as_ref().is_some_and(|r| r.readonly) {
        remount_bind(Path::new("/"), libc::MS_RDONLY)?;
    }
    Ok(())
}

fn readonly_path(path: &Path) -> Result<()> {
    match mount(
        Some(path),
        path,
        Some("bind"),
        libc::MS_BIND | libc::MS_REC,
        None,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        other => other?,
    }
    remount_bind(
        path,
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
}

fn mask_path(path: &Path, label: Option<&str>) -> Result<()> {
    match mount(
        Some(Path::new("/dev/null")),
        path,
        Some("bind"),
        libc::MS_BIND,
        None,
    ) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        // A directory cannot take /dev/null: cover it with an empty read-only tmpfs.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            let data = label.map(|l| format!("context=\"{l}\""));
            mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                libc::MS_RDONLY,
                data.as_deref(),
            )
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let o = parse_options(&[
            "nosuid".into(),
            "ro".into(),
            "mode=755".into(),
            "rprivate".into(),
            "rw".into(),
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID);
        assert_eq!(o.data, vec!["mode=755".to_string()]);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }
}
