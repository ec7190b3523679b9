//! The container's root filesystem: mounts, devices, pivot_root, masked and read-only
//! paths. Runs inside the container's new mount namespace, in the single-threaded init.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
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

/// Joins `unsafe_path` onto `root`, resolving symlinks as if `root` were `/`, so that no
/// component (including `..` and absolute symlinks) can lead outside `root`.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<PathBuf> = vec![unsafe_path.to_path_buf()];
    let mut links = 0;
    let mut queue: std::collections::VecDeque<std::ffi::OsString> =
        std::collections::VecDeque::new();
    if let Some(p) = pending.pop() {
        for c in p.components() {
            if let Component::Normal(n) = c {
                queue.push_back(n.to_os_string());
            } else if c == Component::ParentDir {
                queue.push_back("..".into());
            }
        }
    }
    while let Some(part) = queue.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() && links < 255 => {
                links += 1;
                let Ok(target) = fs::read_link(&full) else {
                    resolved = candidate;
                    continue;
                };
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut rest: Vec<std::ffi::OsString> = Vec::new();
                for c in target.components() {
                    match c {
                        Component::Normal(n) => rest.push(n.to_os_string()),
                        Component::ParentDir => rest.push("..".into()),
                        _ => {}
                    }
                }
                for r in rest.into_iter().rev() {
                    queue.push_front(r);
                }
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

fn mkdir_all(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Error::io(format!("mkdir {}", path.display()), e))
}

/// Creates the mount point: a file when the source is a file, a directory otherwise.
fn create_mount_point(dest: &Path, source_is_file: bool) -> Result<()> {
    if source_is_file {
        if let Some(parent) = dest.parent() {
            mkdir_all(parent, 0o755)?;
        }
        if fs::symlink_metadata(dest).is_err() {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dest)
                .map_err(|e| Error::io(format!("create mount point {}", dest.display()), e))?;
        }
        Ok(())
    } else {
        mkdir_all(dest, 0o755)
    }
}

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
            MOVE_MOUNT_F_EMPTY_PATH,
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

    let in_userns = spec.has_namespace(crate::spec::NamespaceKind::User);
    let mut dev_bound_from_host = false;
    let mut readonly_later = Vec::new();
    for (i, m) in spec.mounts.iter().enumerate() {
        if m.destination == Path::new("/dev") && is_bind(m) {
            dev_bound_from_host = true;
        }
        let fd = bind_fds.get(i).and_then(|f| f.as_ref());
        if let Some(dest) = mount_entry(m, rootfs, cgroup, spec.mount_label(), fd)? {
            readonly_later.push(dest);
        }
    }
    if !dev_bound_from_host {
        create_devices(rootfs, &linux.devices, in_userns)?;
        setup_dev_symlinks(rootfs)?;
    } else {
        for d in &linux.devices {
            create_device(rootfs, d, in_userns)?;
        }
    }
    // Read-only tmpfs mounts (a read-only /dev) were mounted writable so that nested
    // mount points, devices and /dev/console could be made in them; they become
    // read-only in finalize_rootfs. Their paths as seen after pivot_root:
    Ok(readonly_later
        .into_iter()
        .filter_map(|d| d.strip_prefix(rootfs).ok().map(|r| Path::new("/").join(r)))
        .collect())
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
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 7 {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mountinfo(fields[4]));
        if rootfs.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|(b, _)| mount_point.as_os_str().len() >= b.as_os_str().len())
        {
            let shared = fields[6..]
                .iter()
                .take_while(|f| **f != "-")
                .any(|f| f.starts_with("shared:"));
            best = Some((mount_point, shared));
        }
    }
    if let Some((mount_point, true)) = best {
        mount(None, &mount_point, None, libc::MS_PRIVATE, None)?;
    }
    Ok(())
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

/// Mounts one entry. Returns the destination when it must be made read-only later.
fn mount_entry(
    m: &Mount,
    rootfs: &Path,
    cgroup: &CgroupMountInfo,
    label: Option<&str>,
    source_fd: Option<&std::os::fd::OwnedFd>,
) -> Result<Option<PathBuf>> {
    let opts = parse_options(&m.options);
    let kind = m.kind.as_deref().unwrap_or("");
    if matches!(kind, "proc" | "sysfs") {
        // A symlink here could point the kernel's proc/sys mount anywhere (runc refuses
        // it the same way).
        let unresolved = rootfs.join(m.destination.strip_prefix("/").unwrap_or(&m.destination));
        if fs::symlink_metadata(&unresolved).is_ok_and(|md| !md.is_dir()) {
            return Err(Error::InvalidConfig(format!(
                "mounts: {} cannot be mounted on {}: {kind} must be mounted on ordinary directory",
                kind,
                m.destination.display()
            )));
        }
    }
    let dest = secure_join(rootfs, &m.destination);
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
    if is_bind(m) {
        let source = m.source.as_deref().ok_or_else(|| {
            Error::InvalidConfig(format!(
                "mounts: bind mount to {:?} has no source",
                m.destination
            ))
        })?;
        if let Some(tree) = source_fd {
            // A copy the runtime made while it could still see the source.
            let st =
                rustix::fs::fstat(tree).map_err(|e| Error::io("fstat mount tree", e.into()))?;
            let is_dir =
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
            create_mount_point(&dest, !is_dir)?;
            move_mount_to(tree, &dest)?;
        } else {
            let meta = fs::metadata(source)
                .map_err(|e| Error::io(format!("bind mount source {}", source.display()), e))?;
            create_mount_point(&dest, !meta.is_dir())?;
            let rec = opts.flags & libc::MS_REC;
            mount(Some(source), &dest, Some("bind"), libc::MS_BIND | rec, None)?;
        }
        let remount_flags = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if remount_flags != 0 {
            remount_bind(&dest, remount_flags)?;
        }
        if opts.recursive_ro {
            set_recursive_readonly(&dest)?;
        }
    } else if kind == "cgroup" || kind == "cgroup2" {
        mount_cgroup(&dest, &opts, cgroup)?;
    } else {
        create_mount_point(&dest, false)?;
        let source = m.source.clone().unwrap_or_else(|| PathBuf::from(kind));
        let mut flags = opts.flags & !libc::MS_REMOUNT;
        if kind == "tmpfs" && flags & libc::MS_RDONLY != 0 {
            flags &= !libc::MS_RDONLY;
            readonly_later = Some(dest.clone());
        }
        let result = mount(Some(&source), &dest, Some(kind), flags, Some(&data));
        match result {
            // In a user namespace without its own network namespace sysfs cannot be
            // mounted; runc falls back to a recursive bind of the host's /sys.
            Err(e) if kind == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                mount(
                    Some(Path::new("/sys")),
                    &dest,
                    Some("bind"),
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )?;
                if flags & libc::MS_RDONLY != 0 {
                    remount_bind(&dest, flags)?;
                }
            }
            // devpts's gid= option fails when gid 5 is not mapped into the user namespace.
            Err(e)
                if kind == "devpts"
                    && e.raw_os_error() == Some(libc::EINVAL)
                    && data.contains("gid=") =>
            {
                let data: Vec<&str> = data.split(',').filter(|o| !o.starts_with("gid=")).collect();
                mount(
                    Some(&source),
                    &dest,
                    Some(kind),
                    flags,
                    Some(&data.join(",")),
                )?;
            }
            other => other?,
        }
        if opts.recursive_ro {
            set_recursive_readonly(&dest)?;
        }
    }
    for p in &opts.propagation {
        mount(None, &dest, None, *p, None)?;
    }
    Ok(readonly_later)
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

fn mount_cgroup(dest: &Path, opts: &MountOptions, cgroup: &CgroupMountInfo) -> Result<()> {
    create_mount_point(dest, false)?;
    let flags = opts.flags & !libc::MS_REMOUNT;
    if let Some(dir) = &cgroup.v2_dir {
        if cgroup.has_cgroupns {
            return mount(
                Some(Path::new("cgroup2")),
                dest,
                Some("cgroup2"),
                flags,
                None,
            );
        }
        mount(
            Some(dir),
            dest,
            Some("bind"),
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        if flags != 0 {
            remount_bind(dest, flags)?;
        }
        return Ok(());
    }
    // cgroup v1: a tmpfs with each hierarchy's container cgroup bound under its name.
    mount(
        Some(Path::new("tmpfs")),
        dest,
        Some("tmpfs"),
        flags & !libc::MS_RDONLY,
        Some("mode=755"),
    )?;
    for (host_mount, path) in &cgroup.v1 {
        let Some(name) = host_mount.file_name() else {
            continue;
        };
        let target = dest.join(name);
        mkdir_all(&target, 0o755)?;
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
        remount_bind_tmpfs_ro(dest, flags)?;
    }
    Ok(())
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

fn create_devices(rootfs: &Path, devices: &[Device], in_userns: bool) -> Result<()> {
    for d in default_devices().iter().chain(devices.iter()) {
        create_device(rootfs, d, in_userns)?;
    }
    Ok(())
}

fn create_device(rootfs: &Path, d: &Device, in_userns: bool) -> Result<()> {
    let dest = secure_join(rootfs, &d.path);
    if let Some(parent) = dest.parent() {
        mkdir_all(parent, 0o755)?;
    }
    if in_userns {
        // mknod is not allowed in a user namespace: bind the host's node instead.
        create_mount_point(&dest, true)?;
        return mount(Some(&d.path), &dest, Some("bind"), libc::MS_BIND, None);
    }
    let kind = match d.kind.as_str() {
        "c" | "u" => libc::S_IFCHR,
        "b" => libc::S_IFBLK,
        "p" => libc::S_IFIFO,
        other => {
            return Err(Error::InvalidConfig(format!(
                "linux.devices: {}: unknown device type {other:?}",
                d.path.display()
            )))
        }
    };
    let mode = d.file_mode.unwrap_or(0o666) & 0o7777;
    let _ = fs::remove_file(&dest);
    let path = cstr(&dest)?;
    let devnum = libc::makedev(d.major as u32, d.minor as u32);
    // SAFETY: path is a valid C string; mknod does not retain it.
    let rc = unsafe { libc::mknod(path.as_ptr(), kind | mode, devnum) };
    if rc != 0 {
        return Err(Error::io(
            format!("mknod {}", dest.display()),
            std::io::Error::last_os_error(),
        ));
    }
    // mknod's mode is masked by the umask; set it exactly.
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", dest.display()), e))?;
    rustix::fs::chown(
        &dest,
        Some(uid(d.uid.unwrap_or(0))),
        Some(gid(d.gid.unwrap_or(0))),
    )
    .map_err(|e| Error::io(format!("chown {}", dest.display()), e.into()))?;
    Ok(())
}

fn uid(u: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u)
}

fn gid(g: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(g)
}

fn setup_dev_symlinks(rootfs: &Path) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "dev/core"));
    }
    for (target, link) in links {
        let path = rootfs.join(link);
        match symlink(target, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("symlink {}", path.display()), e)),
        }
    }
    // /dev/ptmx points into the container's own devpts instance.
    let ptmx = rootfs.join("dev/ptmx");
    if rootfs.join("dev/pts/ptmx").exists() {
        let _ = fs::remove_file(&ptmx);
        symlink("pts/ptmx", &ptmx)
            .map_err(|e| Error::io(format!("symlink {}", ptmx.display()), e))?;
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
    fn secure_join_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("/etc", root.join("a/abs")).unwrap();
        symlink("../../../../..", root.join("a/up")).unwrap();
        assert_eq!(secure_join(root, Path::new("/a/b")), root.join("a/b"));
        assert_eq!(
            secure_join(root, Path::new("/a/abs/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(root, Path::new("/a/up/x")), root.join("x"));
        assert_eq!(secure_join(root, Path::new("/../../x")), root.join("x"));
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }
}
