//! The code that runs in the forked child: the container's init (for `create`) or the
//! new process (for `exec`). The child is a copy of the single-threaded runtime, so it
//! may allocate and run ordinary Rust; it never returns, it execs or exits.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::channel::{Channel, Message};
use crate::error::{Error, Result};
use crate::mounts::CgroupMountInfo;
use crate::spec::{NamespaceKind, Process, Spec};

/// Everything the child needs, prepared by the parent before fork.
#[derive(Debug)]
pub struct ChildConfig<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: &'a Path,
    pub channel: Channel,
    /// `create`: the exec fifo, opened O_PATH before pivot_root.
    pub exec_fifo: Option<OwnedFd>,
    pub console_socket: Option<OwnedFd>,
    pub seccomp: Option<crate::seccomp::Filter>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// `exec`: namespaces to join, opened from /proc/<init>/ns before fork.
    pub join: Vec<(NamespaceKind, OwnedFd)>,
    pub is_exec: bool,
    pub no_new_keyring: bool,
    /// Bind mount sources opened by the runtime, index-aligned with `spec.mounts`.
    pub bind_fds: Vec<Option<OwnedFd>>,
    /// `create`, when the init sets up its mounts while the runtime moves it into its
    /// cgroup: what `/proc/self/cgroup` will read once it is moved. The init then
    /// waits for [`Message::Joined`] before anything runs that must be inside.
    pub cgroup_to_be: Option<String>,
}

impl ChildConfig<'_> {
    /// The descriptors the setup still needs; every other one above the preserved
    /// ones is closed before the child enters the container.
    pub fn own_fds(&self) -> Vec<i32> {
        let mut fds = vec![self.channel.as_fd().as_raw_fd()];
        fds.extend(self.exec_fifo.iter().map(|f| f.as_raw_fd()));
        fds.extend(self.console_socket.iter().map(|f| f.as_raw_fd()));
        fds.extend(self.bind_fds.iter().flatten().map(|f| f.as_raw_fd()));
        fds.extend(self.join.iter().map(|(_, f)| f.as_raw_fd()));
        fds.extend(crate::log::file_fd());
        fds
    }
}

/// Set once the parent stopped listening (after Ready): errors then go to the log.
static PARENT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs the child to its end: exec on success, exit(1) after reporting on failure.
pub fn run_child(mut cfg: ChildConfig) -> ! {
    // Before any chdir, setns or pivot_root: an inherited descriptor of a host
    // directory must not be reachable as /proc/self/fd/N from inside.
    // SAFETY: this forked child execs or exits and never returns to the frames that
    // own the descriptors closed here.
    unsafe { crate::process::close_fds_except(3 + cfg.preserve_fds, &cfg.own_fds()) };
    let result = if cfg.is_exec {
        exec_child(&mut cfg)
    } else {
        init_child(&mut cfg)
    };
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if PARENT_GONE.load(std::sync::atomic::Ordering::Relaxed) {
        crate::log::error(&err.to_string());
    } else {
        let _ = cfg.channel.send(&Message::Failed(err.to_string()));
    }
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the parent.
    unsafe { libc::_exit(1) }
}

enum Never {}

fn init_child(cfg: &mut ChildConfig) -> Result<Never> {
    let spec = cfg.spec;
    cfg.channel.expect(Message::Go)?;
    let new_userns = spec
        .namespace(NamespaceKind::User)
        .is_some_and(|n| n.path.is_none());
    if new_userns {
        become_root_in_userns()?;
    }
    join_namespaces_by_path(spec)?;
    let cgroup_info = cgroup_mount_info(spec, cfg.cgroup_to_be.as_deref())?;
    if spec
        .namespace(NamespaceKind::Cgroup)
        .is_some_and(|n| n.path.is_none())
    {
        // After the parent placed us in the container's cgroup, so that it is the root
        // of the new cgroup namespace.
        // SAFETY: unshare takes flags only; the child is single-threaded.
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
            return Err(Error::io(
                "unshare cgroup namespace",
                std::io::Error::last_os_error(),
            ));
        }
    }
    if spec
        .namespace(NamespaceKind::Network)
        .is_some_and(|n| n.path.is_none())
    {
        bring_up_loopback()?;
    }
    if !cfg.no_new_keyring {
        join_session_keyring(&spec_id(spec));
    }
    let has_mountns = spec.has_namespace(NamespaceKind::Mount);
    let mut readonly_later = Vec::new();
    if has_mountns {
        readonly_later =
            crate::mounts::prepare_rootfs(spec, cfg.rootfs, &cgroup_info, &cfg.bind_fds)?;
    }
    cfg.bind_fds.clear();
    // Hooks run from the rootfs, as with runc (relative paths in them count on it).
    rustix::process::chdir(cfg.rootfs).map_err(|e| Error::io("chdir to rootfs", e.into()))?;
    if cfg.cgroup_to_be.is_some() {
        // Set up so far outside the cgroup (runtime code only, overlapping the
        // kernel's wait on the first cgroup join); hooks and the program run inside.
        cfg.channel.expect(Message::Joined)?;
    }
    // The runtime runs them in its own namespaces while we wait; without any, the
    // round trip is skipped (the parent answers whatever arrives).
    if spec
        .hooks
        .as_ref()
        .is_some_and(|h| !h.prestart.is_empty() || !h.create_runtime.is_empty())
    {
        cfg.channel.send(&Message::RunHooks)?;
        cfg.channel.expect(Message::HooksDone)?;
    }
    if let Some(hooks) = &spec.hooks {
        // createContainer hooks run in the container's namespaces, before pivot_root.
        crate::hooks::run_all("createContainer", &hooks.create_container, b"{}")?;
    }
    if has_mountns && !cfg.no_pivot {
        crate::mounts::pivot_root(cfg.rootfs)?;
    } else if has_mountns {
        crate::mounts::move_root(cfg.rootfs)?;
    } else {
        rustix::process::chroot(cfg.rootfs).map_err(|e| Error::io("chroot", e.into()))?;
        rustix::process::chdir("/").map_err(|e| Error::io("chdir /", e.into()))?;
    }
    if cfg.process.terminal {
        setup_terminal(cfg, true)?;
    }
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(h.as_bytes())
            .map_err(|e| Error::io("sethostname", e.into()))?;
    }
    if let Some(d) = spec.domainname.as_deref().filter(|d| !d.is_empty()) {
        rustix::system::setdomainname(d.as_bytes())
            .map_err(|e| Error::io("setdomainname", e.into()))?;
    }
    for (key, value) in &spec.linux().sysctl {
        // The UTS ones through their system calls: in a new user namespace /proc/sys
        // refuses the container's root (it is not the host's root) although the UTS
        // namespace is the container's own; the calls check exactly that namespace.
        let uts = match key.as_str() {
            "kernel.hostname" => Some(rustix::system::sethostname(uts_sysctl_value(value))),
            "kernel.domainname" => Some(rustix::system::setdomainname(uts_sysctl_value(value))),
            _ => None,
        };
        if let Some(result) = uts {
            result.map_err(|e| Error::io(format!("set sysctl {key}={value}"), e.into()))?;
            continue;
        }
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value)
            .map_err(|e| Error::io(format!("write sysctl {key}={value}"), e))?;
    }
    // Before the root may turn read-only below.
    create_cwd(cfg.process)?;
    // After the sysctls, as runc does: readonlyPaths usually covers /proc/sys.
    if has_mountns {
        crate::mounts::finalize_rootfs(spec, &readonly_later)?;
    }
    if let Some(p) = &spec.linux().personality {
        if let Some(domain) = crate::process::personality_domain(&p.domain) {
            crate::process::set_personality(domain)?;
        }
    }
    apply_process(cfg, true)
}

/// What a write of `value` to /proc/sys/kernel/{hostname,domainname} would set: up to
/// the first newline or NUL, at most the kernel's 64 bytes.
fn uts_sysctl_value(value: &str) -> &[u8] {
    let bytes = value.as_bytes();
    let end = bytes
        .iter()
        .position(|b| *b == b'\n' || *b == 0)
        .unwrap_or(bytes.len())
        .min(64);
    &bytes[..end]
}

fn exec_child(cfg: &mut ChildConfig) -> Result<Never> {
    cfg.channel.expect(Message::Go)?;
    if cfg.process.terminal {
        setup_terminal(cfg, false)?;
    }
    apply_process(cfg, false)
}

/// The part shared by init and exec: process attributes, security, identity, exec.
fn apply_process(cfg: &mut ChildConfig, is_init: bool) -> Result<Never> {
    let process = cfg.process;
    let spec = cfg.spec;
    // oom_score_adj was set from the host's side, as runc's nsexec does: the init's by
    // the runtime after the clone (Runtime::create), exec's by its helper before it
    // joined the container (exec_helper).
    crate::process::set_rlimits(&process.rlimits)?;
    if let Some(io) = &process.io_priority {
        crate::process::set_io_priority(&io.class, io.priority)?;
    }
    if let Some(s) = &process.scheduler {
        crate::process::set_scheduler(s)?;
    }
    apply_lsm(process)?;
    let cwd = cwd_of(process);
    // Resolved inside the root (no magic link, no loop), and held: the chdir below
    // goes exactly there.
    let root = crate::rootpath::Root::open(Path::new("/"))?;
    let cwd_dir = root.resolve(Path::new(cwd))?;
    // chdir as root first; again after the user switch below in case permissions differ.
    let cwd_ok = rustix::process::fchdir(&cwd_dir).is_ok();
    // No HOME (or an empty one): the user's, from the container's passwd, read
    // inside the root before the user switch, as runc's setupUser does.
    let env = crate::passwd::env_with_home(&process.env, || {
        crate::passwd::home_of(&root, process.user.uid)
    });
    drop(root);
    let executable = crate::process::lookup_executable(&process.args[0], &env)?;
    if process.no_new_privileges {
        rustix::thread::set_no_new_privs(true)
            .map_err(|e| Error::io("set no_new_privs", e.into()))?;
    }
    let seccomp = cfg.seccomp.take();
    let load_early = seccomp
        .as_ref()
        .is_some_and(|f| !process.no_new_privileges || f.uses_notify());
    if load_early {
        if let Some(filter) = &seccomp {
            load_seccomp(cfg, filter)?;
        }
    }
    if let Some(caps) = &process.capabilities {
        crate::caps::drop_bounding(caps)?;
    }
    crate::caps::keep_across_setuid(true)?;
    let allow_setgroups = setgroups_allowed();
    if process.user.uid != 0 {
        fix_stdio_ownership(process.user.uid);
    }
    crate::process::set_identity(process, allow_setgroups)?;
    crate::caps::keep_across_setuid(false)?;
    match &process.capabilities {
        Some(caps) => crate::caps::apply(caps)?,
        None => crate::caps::apply(&crate::spec::Capabilities::default())?,
    }
    if !cwd_ok {
        rustix::process::fchdir(&cwd_dir)
            .map_err(|e| Error::io(format!("chdir to cwd {cwd:?}"), e.into()))?;
    }
    drop(cwd_dir);
    verify_cwd_inside_root(cwd)?;
    crate::process::close_fds_from(3 + cfg.preserve_fds, &[cfg.channel.as_fd().as_raw_fd()]);
    if is_init {
        crate::log::debug("init: closing the pipe to signal completion");
        cfg.channel.send(&Message::Ready)?;
        PARENT_GONE.store(true, std::sync::atomic::Ordering::Relaxed);
        let fifo = cfg
            .exec_fifo
            .take()
            .ok_or_else(|| Error::Init("exec fifo missing".into()))?;
        wait_for_start(&fifo)?;
    } else {
        crate::log::debug("setns_init: about to exec");
        cfg.channel.send(&Message::Ready)?;
        PARENT_GONE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if !load_early {
        if let Some(filter) = &seccomp {
            load_seccomp(cfg, filter)?;
        }
    }
    // startContainer hooks run with the container's seccomp filter in force.
    if let (true, Some(hooks)) = (is_init, &spec.hooks) {
        crate::hooks::run_all("startContainer", &hooks.start_container, b"{}")?;
    }
    reset_signals();
    Err(crate::process::exec(&executable, &process.args, &env))
}

fn cwd_of(process: &Process) -> &str {
    if process.cwd.is_empty() {
        "/"
    } else {
        &process.cwd
    }
}

/// A cwd missing from the rootfs is created, as runc does, owned by the process's
/// user as Docker makes it; through the resolver, so only inside the root.
fn create_cwd(process: &Process) -> Result<()> {
    let owner = Some((process.user.uid, process.user.gid));
    crate::rootpath::Root::open(Path::new("/"))?.resolve_or_create(
        Path::new(cwd_of(process)),
        crate::rootpath::Missing::Dirs { mode: 0o755, owner },
    )?;
    Ok(())
}

/// After the chdir, the kernel's own name for the cwd must be a path below the root:
/// a directory outside it reads as "(unreachable)/…" or fails with ENOENT.
fn verify_cwd_inside_root(cwd: &str) -> Result<()> {
    match rustix::process::getcwd(Vec::new()) {
        Ok(name) if name.as_bytes().starts_with(b"/") => Ok(()),
        Ok(name) => Err(Error::InvalidConfig(format!(
            "process.cwd {cwd:?} is outside the container's root ({name:?}): refused"
        ))),
        Err(e) => Err(Error::io(
            format!("process.cwd {cwd:?}: outside the container's root? refused"),
            e.into(),
        )),
    }
}

fn load_seccomp(cfg: &ChildConfig, filter: &crate::seccomp::Filter) -> Result<()> {
    if let Some(notify_fd) = filter.load()? {
        // The parent forwards it to linux.seccomp.listenerPath with the state.
        cfg.channel
            .send_with_fd(&Message::SeccompFd, notify_fd.as_fd())?;
    }
    Ok(())
}

/// Blocks until `start` opens the exec fifo for reading, then says go.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let fd = rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("open exec fifo", e.into()))?;
    rustix::io::write(&fd, b"0").map_err(|e| Error::io("write exec fifo", e.into()))?;
    Ok(())
}

fn setup_terminal(cfg: &ChildConfig, is_init: bool) -> Result<()> {
    let (master, slave, name) = crate::console::open_pty()?;
    if let Some(size) = cfg.process.console_size {
        crate::console::set_size(master.as_fd(), size)?;
    }
    let socket = cfg.console_socket.as_ref().ok_or_else(|| {
        Error::InvalidConfig("process.terminal: set, but no console socket".into())
    })?;
    crate::channel::send_fd(socket.as_fd(), b"/dev/ptmx", master.as_fd())?;
    drop(master);
    crate::console::become_console(slave, &name, is_init && Path::new("/dev").exists())
}

fn apply_lsm(process: &Process) -> Result<()> {
    if let Some(profile) = process
        .apparmor_profile
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y");
        if !enabled {
            return Err(Error::InvalidConfig(format!(
                "process.apparmorProfile: {profile:?} requested but AppArmor is not enabled on this host"
            )));
        }
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}"))
            .map_err(|e| Error::io(format!("set AppArmor profile {profile}"), e))?;
    }
    if let Some(label) = process.selinux_label.as_deref().filter(|l| !l.is_empty()) {
        if !Path::new("/sys/fs/selinux/enforce").exists() {
            return Err(Error::InvalidConfig(format!(
                "process.selinuxLabel: {label:?} requested but SELinux is not enabled on this host"
            )));
        }
        std::fs::write("/proc/self/attr/exec", label)
            .map_err(|e| Error::io(format!("set SELinux label {label}"), e))?;
    }
    Ok(())
}

fn become_root_in_userns() -> Result<()> {
    // SAFETY: setresgid/setresuid take integers; the process is single-threaded.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, 0, 0, 0) };
    if rc != 0 {
        return Err(Error::io(
            "setgid 0 in user namespace",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, 0, 0, 0) };
    if rc != 0 {
        return Err(Error::io(
            "setuid 0 in user namespace",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Gives the container user its stdio (so it can reopen /dev/stdout and friends), as
/// runc does: only the owner changes, and never for /dev/null, which would be the
/// host's /dev/null when the caller passed it (runc issue 3674).
fn fix_stdio_ownership(uid: u32) {
    let null_rdev = std::fs::metadata("/dev/null")
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::rdev(&m));
    for fd in 0..3 {
        // SAFETY: fds 0-2 are borrowed only for the duration of the fstat/fchown calls.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = rustix::fs::fstat(fd) else {
            continue;
        };
        let is_char = rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::CharacterDevice;
        if is_char && (Some(st.st_rdev) == null_rdev || st.st_rdev == libc::makedev(1, 3)) {
            continue;
        }
        // EINVAL/EPERM (gid not mapped, or not ours to give): leave it as it is.
        let _ = rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
        );
    }
}

fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// Namespaces that `create` joins by path in the parent, before cloning, when the
/// container gets a new user namespace (see `Runtime::create`).
pub const JOINED_BEFORE_NEW_USERNS: [NamespaceKind; 3] = [
    NamespaceKind::Network,
    NamespaceKind::Ipc,
    NamespaceKind::Uts,
];

/// Joins `joins` (in the given order, the user namespace wherever it stands). A
/// namespace that refuses (EPERM) before the user namespace is joined is tried again
/// after it: a privileged caller joins the host-owned ones first, an unprivileged one
/// the container-owned ones after gaining privilege in the user namespace.
pub fn join_all(joins: &[(NamespaceKind, OwnedFd)]) -> Result<()> {
    let user = joins.iter().find(|(k, _)| *k == NamespaceKind::User);
    let mut deferred = Vec::new();
    for (kind, fd) in joins.iter().filter(|(k, _)| *k != NamespaceKind::User) {
        match setns(fd, *kind) {
            Err(Error::Io { cause, .. })
                if user.is_some() && cause.raw_os_error() == Some(libc::EPERM) =>
            {
                deferred.push((*kind, fd));
            }
            other => other?,
        }
    }
    if let Some((kind, fd)) = user {
        setns(fd, *kind)?;
    }
    for (kind, fd) in deferred {
        setns(fd, kind)?;
    }
    Ok(())
}

/// Joins namespaces given by path (user first: the others need its privileges), but
/// for those `create` joined before the clone.
fn join_namespaces_by_path(spec: &Spec) -> Result<()> {
    let new_userns = spec
        .namespace(NamespaceKind::User)
        .is_some_and(|n| n.path.is_none());
    let mut joins: Vec<(NamespaceKind, &Path)> = spec
        .linux()
        .namespaces
        .iter()
        .filter(|n| n.kind != NamespaceKind::Pid && n.kind != NamespaceKind::Time)
        .filter(|n| !(new_userns && JOINED_BEFORE_NEW_USERNS.contains(&n.kind)))
        .filter_map(|n| n.path.as_deref().map(|p| (n.kind, p)))
        .collect();
    joins.sort_by_key(|(k, _)| *k != NamespaceKind::User);
    for (kind, path) in joins {
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| {
            Error::io(
                format!("open {} namespace {}", kind.proc_name(), path.display()),
                e.into(),
            )
        })?;
        setns(&fd, kind).map_err(|e| match e {
            Error::Io { cause, .. } => Error::io(
                format!("join {} namespace {}", kind.proc_name(), path.display()),
                cause,
            ),
            other => other,
        })?;
    }
    Ok(())
}

pub fn setns(fd: &OwnedFd, kind: NamespaceKind) -> Result<()> {
    // SAFETY: fd is an open namespace file; setns does not retain it. The caller is
    // single-threaded, as joining user and mount namespaces requires.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), kind.clone_flag()) };
    if rc != 0 {
        return Err(Error::io(
            format!("setns {}", kind.proc_name()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Where each cgroup hierarchy is mounted on the host and where the container sits in it,
/// read before a new cgroup namespace hides the host paths. `to_be`: the container's
/// cgroups in `/proc/self/cgroup`'s form, when we are not moved into them yet.
fn cgroup_mount_info(spec: &Spec, to_be: Option<&str>) -> Result<CgroupMountInfo> {
    let needs = spec
        .mounts
        .iter()
        .any(|m| matches!(m.kind.as_deref(), Some("cgroup") | Some("cgroup2")));
    let mut info = CgroupMountInfo {
        has_cgroupns: spec.has_namespace(NamespaceKind::Cgroup),
        ..Default::default()
    };
    if !needs {
        return Ok(info);
    }
    let own = match to_be {
        Some(lines) => lines.to_string(),
        None => std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let mount_point = PathBuf::from(crate::mounts::unescape_mountinfo(pre[4]));
        match post[0] {
            "cgroup2" if mount_point == Path::new("/sys/fs/cgroup") => {
                let path = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .unwrap_or("/");
                info.v2_dir = Some(mount_point.join(path.trim_start_matches('/')));
            }
            "cgroup" => {
                let opts: Vec<&str> = post[2].split(',').collect();
                let path = own.lines().find_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let _ = parts.next();
                    let ctrls = parts.next()?;
                    let path = parts.next()?;
                    ctrls
                        .split(',')
                        .any(|c| opts.contains(&c))
                        .then(|| path.to_string())
                });
                if let Some(path) = path {
                    info.v1.push((mount_point, path));
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn bring_up_loopback() -> Result<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(|e| Error::io("socket for loopback", e.into()))?;
    // SAFETY: ifreq is plain old data; zeroed is a valid initial value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Error::io("get lo flags", std::io::Error::last_os_error()));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Error::io("bring up lo", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn spec_id(spec: &Spec) -> String {
    spec.hostname.clone().unwrap_or_default()
}

/// A new session keyring per container, so containers don't share the host's keys.
fn join_session_keyring(name: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let name = std::ffi::CString::new(format!("_ses.{name}")).unwrap_or_default();
    // SAFETY: keyctl JOIN_SESSION_KEYRING takes a C string that outlives the call. Failure
    // (e.g. keyrings disabled, or blocked by seccomp) is not fatal, as with runc.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
}

/// The runtime blocks signals while it waits; its children must start clean.
fn reset_signals() {
    // SAFETY: sigset operations on a local set, then sigprocmask on this thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::uts_sysctl_value;

    #[test]
    fn uts_sysctl_values_are_cut_as_proc_sys_cuts_them() {
        assert_eq!(uts_sysctl_value("example.org\n"), b"example.org");
        assert_eq!(uts_sysctl_value("a\0b"), b"a");
        assert_eq!(uts_sysctl_value(&"x".repeat(80)), "x".repeat(64).as_bytes());
        assert_eq!(uts_sysctl_value(""), b"");
    }
}
