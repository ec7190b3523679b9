//! Container lifecycle, runc's commands: create, start, run, exec, kill, delete, pause,
//! resume, ps, update, events. Every function here runs in the single-threaded runtime.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroups;
use crate::channel::{self, Channel, Message};
use crate::error::{Context, Error, Result};
use crate::init::{run_child, ChildConfig};
use crate::spec::{NamespaceKind, Process, Spec};
use crate::state::{self, Container, Status, EXEC_FIFO};

/// Global options shared by every command.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

#[derive(Debug, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

#[derive(Debug, Default)]
pub struct ExecOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: i32,
    /// Exec into a paused container anyway (the process starts frozen).
    pub ignore_paused: bool,
    /// `--cgroup [CONTROLLERS:]PATH`: join a sub-cgroup of the container's cgroup.
    pub sub_cgroups: Vec<String>,
}

/// Removes what a failed `create` made, in reverse order, unless disarmed.
struct CreateGuard {
    dir: PathBuf,
    cgroup: Option<String>,
    child: Option<i32>,
    armed: bool,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            // SAFETY: kill/waitpid on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(path) = &self.cgroup {
            let _ = cgroups::open_existing(path).and_then(|cg| cg.destroy());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Namespaces the runtime left (its own, open) to join the container's for a clone;
/// it returns to them with [`restore`](Self::restore), or when dropped on an error.
struct NamespacesToRestore(Vec<(NamespaceKind, OwnedFd)>);

impl NamespacesToRestore {
    fn restore(&mut self) -> Result<()> {
        for (kind, fd) in self.0.drain(..) {
            crate::init::setns(&fd, kind).map_err(|e| match e {
                Error::Io { cause, .. } => Error::io(
                    format!("return to own {} namespace", kind.proc_name()),
                    cause,
                ),
                other => other,
            })?;
        }
        Ok(())
    }
}

impl Drop for NamespacesToRestore {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// fork(2) with namespace flags: a raw clone without a new stack, so the child goes on
/// from here like a forked process. Safe because the runtime is single-threaded.
fn clone_fork(flags: libc::c_int) -> Result<i32> {
    // SAFETY: with a null stack the kernel copies the caller's stack, as fork does; the
    // caller is single-threaded, so no lock is held by another thread in the child.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(Error::io("clone", std::io::Error::last_os_error()));
    }
    Ok(pid as i32)
}

fn resolve_rootfs(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec
        .root
        .as_ref()
        .map(|r| r.path.clone())
        .unwrap_or_default();
    let path = if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    };
    std::fs::canonicalize(&path)
        .map_err(|e| Error::InvalidConfig(format!("root.path: {}: {e}", path.display())))
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .ctx(|| format!("connect to console socket {}", path.display()))?;
    Ok(OwnedFd::from(stream))
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    // runc writes to a temp file and renames, so readers never see a partial pid.
    let tmp = path.with_extension("pier-tmp");
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename pid file {}", path.display()))
}

fn write_id_map(pid: i32, file: &str, maps: &[crate::spec::IdMapping]) -> Result<()> {
    let content: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect();
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, content).ctx(|| format!("write {path}"))
}

fn set_time_offsets(spec: &Spec) -> Result<()> {
    // SAFETY: unshare takes flags only; the runtime is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
        return Err(Error::io(
            "unshare time namespace",
            std::io::Error::last_os_error(),
        ));
    }
    if let Some(offsets) = &spec.linux().time_offsets {
        let content: String = offsets
            .iter()
            .map(|(clock, o)| format!("{clock} {} {}\n", o.secs, o.nanosecs))
            .collect();
        std::fs::write("/proc/self/timens_offsets", content)
            .ctx(|| "write timens_offsets".into())?;
    }
    Ok(())
}

impl Runtime {
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Container> {
        state::validate_id(id)?;
        let bundle = std::fs::canonicalize(&opts.bundle)
            .ctx(|| format!("bundle {}", opts.bundle.display()))?;
        let spec = Spec::load(&bundle)?;
        let process = spec.process()?.clone();
        crate::caps::warn_unknown(process.capabilities.as_ref());
        if process.terminal && opts.console_socket.is_none() {
            return Err(Error::InvalidConfig(
                "process.terminal: a terminal needs --console-socket with create".into(),
            ));
        }
        let rootfs = resolve_rootfs(&bundle, &spec)?;
        let user_ns = spec.namespace(NamespaceKind::User);
        if user_ns.is_some_and(|n| n.path.is_some())
            && spec
                .namespace(NamespaceKind::Pid)
                .is_some_and(|n| n.path.is_none())
        {
            return Err(Error::InvalidConfig(
                "linux.namespaces: joining a user namespace by path together with a new pid namespace is not supported yet".into(),
            ));
        }
        let seccomp = spec
            .linux()
            .seccomp
            .as_ref()
            .map(|profile| crate::seccomp_cache::compile(profile, &self.root))
            .transpose()?;
        // Like runc, work from the bundle: relative mount sources and hooks count on it.
        std::env::set_current_dir(&bundle).ctx(|| format!("chdir to {}", bundle.display()))?;
        let bind_fds = crate::mounts::clone_bind_sources(&spec);

        std::fs::create_dir_all(&self.root)
            .ctx(|| format!("create root {}", self.root.display()))?;
        let dir = Container::dir(&self.root, id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(Error::io(format!("create state dir {}", dir.display()), e)),
        }
        let mut guard = CreateGuard {
            dir: dir.clone(),
            cgroup: None,
            child: None,
            armed: true,
        };
        let fifo_path = dir.join(EXEC_FIFO);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo_path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_bits_truncate(0o622),
            0,
        )
        .ctx(|| format!("mkfifo {}", fifo_path.display()))?;
        // umask may have masked the mode; write access for the container user matters.
        rustix::fs::chmod(&fifo_path, rustix::fs::Mode::from_bits_truncate(0o622))
            .ctx(|| "chmod exec fifo".into())?;
        let fifo = rustix::fs::open(
            &fifo_path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ctx(|| "open exec fifo".into())?;

        let cgroup = cgroups::open(
            spec.linux().cgroups_path.as_deref(),
            id,
            self.systemd_cgroup,
        )?;
        let pre_existing = cgroup.dirs().iter().any(|d| d.is_dir());
        cgroup.create()?;
        if !pre_existing {
            // Only what create made is removed on failure.
            guard.cgroup = Some(cgroup.path().to_string());
        }
        if pre_existing && cgroup.is_frozen().unwrap_or(false) {
            return Err(Error::InvalidState(
                "container's cgroup unexpectedly frozen".into(),
            ));
        }
        if pre_existing && !cgroup.pids().unwrap_or_default().is_empty() {
            crate::log::warn("container's cgroup is not empty: it is shared with other processes");
        }
        // Always applied: with no resources the default device allow-list still holds.
        let resources = spec.linux().resources.clone().unwrap_or_default();
        cgroup.apply_with_devices(&resources, &spec.linux().devices)?;
        for warning in cgroup.warnings(&resources) {
            crate::log::warn(&warning);
        }
        let console_socket = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;

        // A new user namespace together with namespaces joined by path that the host
        // owns (a daemon's network namespace, another container's IPC): from inside the
        // new user namespace the child has no privilege over them, so they are joined
        // here, before the clone, and the child is born in them (runc's nsexec joins
        // them before it unshares the user namespace).
        // The runtime goes back to its own namespaces right after the clone: the
        // hooks it runs (prestart, createRuntime) belong in the runtime's namespace.
        let mut own_namespaces = NamespacesToRestore(Vec::new());
        if user_ns.is_some_and(|n| n.path.is_none()) {
            for kind in crate::init::JOINED_BEFORE_NEW_USERNS {
                if let Some(path) = spec.namespace(kind).and_then(|n| n.path.as_ref()) {
                    let own = format!("/proc/self/ns/{}", kind.proc_name());
                    let own_fd = rustix::fs::open(
                        own.as_str(),
                        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .ctx(|| format!("open {own}"))?;
                    own_namespaces.0.push((kind, own_fd));
                    let fd = rustix::fs::open(
                        path,
                        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .ctx(|| format!("open {} namespace {}", kind.proc_name(), path.display()))?;
                    crate::init::setns(&fd, kind).map_err(|e| match e {
                        Error::Io { cause, .. } => Error::io(
                            format!("join {} namespace {}", kind.proc_name(), path.display()),
                            cause,
                        ),
                        other => other,
                    })?;
                }
            }
        }
        if let Some(path) = spec
            .namespace(NamespaceKind::Pid)
            .and_then(|n| n.path.as_ref())
        {
            let fd = rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ctx(|| format!("open pid namespace {}", path.display()))?;
            crate::init::setns(&fd, NamespaceKind::Pid)?;
        }
        if spec
            .namespace(NamespaceKind::Time)
            .is_some_and(|n| n.path.is_none())
        {
            set_time_offsets(&spec)?;
        } else if let Some(path) = spec
            .namespace(NamespaceKind::Time)
            .and_then(|n| n.path.as_ref())
        {
            let fd = rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ctx(|| format!("open time namespace {}", path.display()))?;
            crate::init::setns(&fd, NamespaceKind::Time)?;
        }
        let mut flags = 0;
        for ns in &spec.linux().namespaces {
            if ns.path.is_none() && !matches!(ns.kind, NamespaceKind::Cgroup | NamespaceKind::Time)
            {
                flags |= ns.kind.clone_flag();
            }
        }
        // Without a new user namespace (the init waits for its id maps first) or a
        // cgroup namespace (made once the init is in its cgroup), the init sets up its
        // mounts while we move it into its cgroup: the kernel's first cgroup.procs
        // write of a while waits for an RCU grace period (~10 ms), which then overlaps
        // the init's work. It learns its cgroups from us and waits for `Joined` before
        // hooks run and before its program does.
        let early_go =
            user_ns.is_none_or(|n| n.path.is_some()) && !spec.has_namespace(NamespaceKind::Cgroup);
        let cgroup_to_be = early_go.then(|| cgroup_in_proc_form(cgroup.as_ref()));
        let (parent_end, child_end) = channel::pair()?;
        crate::log::debug(&format!("nsexec container setup: clone flags {flags:#x}"));
        // The init is born not dumpable and stays so until its final execve: while it
        // holds host descriptors (bind sources, the exec fifo, the log, the console
        // socket), nothing that shares its uid (a container's root in a user
        // namespace, processes of a pid namespace it joined) may ptrace it or read its
        // /proc/N/fd (CVE-2016-9962). The runtime itself is dumpable again right after.
        let dumpable =
            rustix::process::dumpable_behavior().ctx(|| "prctl PR_GET_DUMPABLE".into())?;
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .ctx(|| "prctl PR_SET_DUMPABLE 0".into())?;
        let cloned = clone_fork(flags);
        if !matches!(cloned, Ok(0)) {
            rustix::process::set_dumpable_behavior(dumpable)
                .ctx(|| "prctl PR_SET_DUMPABLE".into())?;
        }
        let pid = cloned?;
        if pid == 0 {
            drop(parent_end);
            crate::log::debug("child process in init()");
            run_child(ChildConfig {
                spec: &spec,
                process: &process,
                rootfs: &rootfs,
                channel: child_end,
                exec_fifo: Some(fifo),
                console_socket,
                seccomp,
                no_pivot: opts.no_pivot,
                preserve_fds: opts.preserve_fds,
                join: Vec::new(),
                is_exec: false,
                no_new_keyring: opts.no_new_keyring,
                bind_fds,
                cgroup_to_be,
            });
        }
        drop(child_end);
        drop(fifo);
        drop(console_socket);
        guard.child = Some(pid);
        own_namespaces.restore()?;

        if user_ns.is_some_and(|n| n.path.is_none()) {
            write_id_map(pid, "uid_map", &spec.linux().uid_mappings)?;
            write_id_map(pid, "gid_map", &spec.linux().gid_mappings)?;
        }
        // From the host's side, as runc's nsexec does: the init's /proc files belong to
        // the host's root while it is not dumpable, which a user namespace's root is
        // not; and only a privileged writer may lower the score.
        if let Some(adj) = process.oom_score_adj {
            crate::process::set_oom_score_adj(pid, adj)?;
        }
        if early_go {
            parent_end.send(&Message::Go)?;
        }
        cgroup.add_process(pid)?;
        if early_go {
            if let Err(e) = parent_end.send(&Message::Joined) {
                // The init gave up meanwhile: its reason is waiting on the channel.
                return Err(match parent_end.recv() {
                    Ok(Message::Failed(msg)) => Error::Init(msg),
                    _ => e,
                });
            }
        }
        let container = Container {
            id: id.to_string(),
            init_pid: pid,
            init_start_time: crate::process::start_time(pid).unwrap_or(0),
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: state::now_rfc3339(),
            owner: state::owner_name(rustix::process::getuid().as_raw()),
            cgroup_path: cgroup.path().to_string(),
            config: spec.clone(),
            systemd_cgroup: self.systemd_cgroup,
            started: false,
        };
        if !early_go {
            parent_end.send(&Message::Go)?;
        }
        self.parent_handshake(&parent_end, &container, &spec)?;
        container.save(&self.root)?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        guard.armed = false;
        Ok(container)
    }

    fn parent_handshake(&self, ch: &Channel, container: &Container, spec: &Spec) -> Result<()> {
        loop {
            match ch.recv_with_fd()? {
                (Message::RunHooks, _) => {
                    if let Some(hooks) = &spec.hooks {
                        let st = container.hook_state(Status::Creating);
                        crate::hooks::run_all("prestart", &hooks.prestart, &st)?;
                        crate::hooks::run_all("createRuntime", &hooks.create_runtime, &st)?;
                    }
                    ch.send(&Message::HooksDone)?;
                }
                (Message::SeccompFd, Some(fd)) => {
                    forward_seccomp_fd(container, spec, Status::Creating, fd)?
                }
                (Message::Ready, _) => return Ok(()),
                (Message::Failed(msg), _) => return Err(Error::Init(msg)),
                (other, _) => return Err(Error::Init(format!("unexpected {other:?} from init"))),
            }
        }
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        Container::load(&self.root, id)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        let mut container = self.load(id)?;
        match container.status(&self.root) {
            Status::Created => {}
            Status::Stopped => {
                return Err(Error::InvalidState(
                    "cannot start a container that has stopped".into(),
                ))
            }
            _ => {
                return Err(Error::InvalidState(
                    "cannot start an already running container".into(),
                ))
            }
        }
        let fifo_path = container.state_dir(&self.root).join(EXEC_FIFO);
        let fifo = rustix::fs::open(
            &fifo_path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ctx(|| format!("open {}", fifo_path.display()))?;
        let mut buf = [0u8; 1];
        loop {
            let mut fds = [rustix::event::PollFd::new(
                &fifo,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            let _ = rustix::event::poll(&mut fds, Some(&timeout));
            match rustix::io::read(&fifo, &mut buf) {
                Ok(1) => break,
                Ok(_) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {
                    if !container.init_alive() {
                        return Err(Error::InvalidState(
                            "cannot start a container that has stopped".into(),
                        ));
                    }
                }
                Err(e) => return Err(Error::io("read exec fifo", e.into())),
            }
        }
        let _ = std::fs::remove_file(&fifo_path);
        container.started = true;
        container.save(&self.root)?;
        if let Some(hooks) = &container.config.hooks {
            let st = container.hook_state(Status::Running);
            if let Err(e) = crate::hooks::run_all("poststart", &hooks.poststart, &st) {
                // runc kills the container when a poststart hook fails.
                let _ = self.destroy(&container);
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let container = self.load(id)?;
        let status = container.status(&self.root);
        if status == Status::Stopped && !all {
            return Err(Error::InvalidState("container not running".into()));
        }
        if all {
            let cg = cgroups::open_existing(&container.cgroup_path)?;
            let frozen = status == Status::Paused;
            for pid in cg.pids()? {
                // SAFETY: kill takes integers.
                unsafe { libc::kill(pid, signal) };
            }
            if frozen && signal == libc::SIGKILL {
                cg.thaw()?;
            }
            return Ok(());
        }
        // SAFETY: kill takes integers.
        if unsafe { libc::kill(container.init_pid, signal) } != 0 {
            return Err(Error::io("kill", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let container = match self.load(id) {
            Ok(c) => c,
            // A state dir without state.json is what a crashed create leaves: remove it.
            Err(Error::NotFound(_)) if force => {
                let dir = Container::dir(&self.root, id);
                if dir.exists() {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match container.status(&self.root) {
            Status::Stopped | Status::Created => self.destroy(&container),
            status if force => {
                if status == Status::Paused {
                    let _ = cgroups::open_existing(&container.cgroup_path).and_then(|c| c.thaw());
                }
                self.destroy(&container)
            }
            status => Err(Error::InvalidState(format!(
                "cannot delete container {} that is not stopped: {}",
                container.id, status
            ))),
        }
    }

    /// Kills what is left, removes the cgroup and the state, runs poststop hooks.
    fn destroy(&self, container: &Container) -> Result<()> {
        let cg = cgroups::open_existing(&container.cgroup_path)?;
        let own_pidns = container
            .config
            .namespace(NamespaceKind::Pid)
            .is_some_and(|n| n.path.is_none());
        if container.init_alive() {
            // SAFETY: kill takes integers.
            unsafe { libc::kill(container.init_pid, libc::SIGKILL) };
        }
        if !own_pidns {
            // Without its own pid namespace, killing init does not take the rest along.
            for pid in cg.pids().unwrap_or_default() {
                // SAFETY: kill takes integers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if cg.is_frozen().unwrap_or(false) {
            let _ = cg.thaw();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while container.init_alive() && Instant::now() < deadline {
            reap_if_child(container.init_pid);
            std::thread::sleep(Duration::from_millis(1));
        }
        // Processes of a dying pid namespace leave the cgroup shortly after its init; a
        // cgroup shared with another container never empties, so the wait is short.
        let settle = (Instant::now() + Duration::from_millis(500)).min(deadline);
        while !cg.pids().unwrap_or_default().is_empty() && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(2));
        }
        let cg_result = if cg.pids().unwrap_or_default().is_empty() {
            let parents: Vec<PathBuf> = cg
                .dirs()
                .iter()
                .filter_map(|d| d.parent().map(Path::to_path_buf))
                .collect();
            let result = cg.destroy();
            // The default parent (/pier) goes when its last container does, so nothing
            // of Pier's stays on the host; a concurrent create re-makes it.
            if container
                .cgroup_path
                .starts_with(&format!("{}/", cgroups::DEFAULT_PARENT))
            {
                for parent in parents {
                    let _ = std::fs::remove_dir(parent);
                }
            }
            result
        } else {
            crate::log::warn("container's cgroup is not empty after delete: left in place");
            Ok(())
        };
        let _ = std::fs::remove_dir_all(container.state_dir(&self.root));
        if let Some(hooks) = &container.config.hooks {
            let st = container.hook_state(Status::Stopped);
            // runc logs poststop failures and carries on.
            if let Err(e) = crate::hooks::run_all("poststop", &hooks.poststop, &st) {
                crate::log::warn(&e.to_string());
            }
        }
        cg_result
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let c = self.load(id)?;
        match c.status(&self.root) {
            Status::Running | Status::Created => cgroups::open_existing(&c.cgroup_path)?.freeze(),
            s => Err(Error::InvalidState(format!("container not running: {s}"))),
        }
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let c = self.load(id)?;
        match c.status(&self.root) {
            Status::Paused => cgroups::open_existing(&c.cgroup_path)?.thaw(),
            _ => Err(Error::InvalidState("container not paused".into())),
        }
    }

    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let c = self.load(id)?;
        cgroups::open_existing(&c.cgroup_path)?.pids()
    }

    pub fn update(&self, id: &str, resources: &crate::spec::Resources) -> Result<()> {
        let mut c = self.load(id)?;
        if c.status(&self.root) == Status::Stopped {
            return Err(Error::InvalidState("container not running".into()));
        }
        // The cgroup gets the complete, merged set (device rules and memory+swap must
        // be written together), as runc does.
        let linux = c.config.linux.get_or_insert_with(Default::default);
        let cg = cgroups::open_existing(&c.cgroup_path)?;
        let mut resources = resources.clone();
        // Like runc: lifting the memory limit without a word on swap lifts swap too
        // (memory+swap may never be below memory), where swap is accounted.
        let swap_accounted = cg.dirs().iter().any(|d| {
            d.join("memory.memsw.limit_in_bytes").exists() || d.join("memory.swap.max").exists()
        });
        if let Some(m) = resources.memory.as_mut() {
            if m.limit == Some(-1) && m.swap.is_none() && swap_accounted {
                m.swap = Some(-1);
            }
        }
        let merged = merge_resources(linux.resources.take().unwrap_or_default(), &resources);

        cg.apply_with_devices(&merged, &linux.devices)?;
        linux.resources = Some(merged);
        c.save(&self.root)
    }

    /// How many processes the kernel's OOM killer has killed in the container's memory
    /// cgroup (v1 `memory.oom_control`, v2 `memory.events`).
    pub fn oom_kills(&self, id: &str) -> Result<u64> {
        let c = self.load(id)?;
        if c.status(&self.root) == Status::Stopped {
            return Err(Error::InvalidState("container not running".into()));
        }
        let cg = cgroups::open_existing(&c.cgroup_path)?;
        let count = cg
            .dirs()
            .iter()
            .flat_map(|d| [d.join("memory.oom_control"), d.join("memory.events")])
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("oom_kill "))
                    .filter_map(|n| n.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .max()
            .unwrap_or(0);
        Ok(count)
    }

    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let c = self.load(id)?;
        if c.status(&self.root) == Status::Stopped {
            return Err(Error::InvalidState("container not running".into()));
        }
        cgroups::open_existing(&c.cgroup_path)?.stats()
    }

    /// Runs a new process in a running container. Returns its pid, and its exit status
    /// when not detached.
    pub fn exec(
        &self,
        id: &str,
        process: &Process,
        opts: &ExecOptions,
    ) -> Result<(i32, Option<i32>)> {
        let container = self.load(id)?;
        match container.status(&self.root) {
            Status::Running | Status::Created => {}
            Status::Paused if opts.ignore_paused => {}
            Status::Paused => {
                return Err(Error::InvalidState(
                    "cannot exec in a paused container".into(),
                ))
            }
            _ => {
                return Err(Error::InvalidState(
                    "cannot exec in a stopped container".into(),
                ))
            }
        }
        if process.args.is_empty() {
            return Err(Error::InvalidConfig(
                "process.args: must not be empty".into(),
            ));
        }
        crate::caps::warn_unknown(process.capabilities.as_ref());
        let spec = &container.config;
        let init = container.init_pid;
        // Open every namespace of the init first, then join them: user first, mount last.
        let mut joins: Vec<(NamespaceKind, OwnedFd)> = Vec::new();
        for kind in NamespaceKind::ALL {
            if !spec.has_namespace(kind) {
                continue;
            }
            let path = format!("/proc/{init}/ns/{}", kind.proc_name());
            if same_namespace(&path, kind) {
                continue;
            }
            let fd = rustix::fs::open(
                path.as_str(),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ctx(|| format!("open {path}"))?;
            joins.push((kind, fd));
        }
        joins.sort_by_key(|(k, _)| match k {
            NamespaceKind::User => 0,
            NamespaceKind::Mount => 2,
            _ => 1,
        });
        let local_pty = process.terminal && opts.console_socket.is_none();
        let (console_socket, pty_receiver) = if local_pty {
            let (a, b) = rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .ctx(|| "socketpair".into())?;
            (Some(a), Some(b))
        } else {
            (
                opts.console_socket
                    .as_deref()
                    .map(connect_console)
                    .transpose()?,
                None,
            )
        };
        let seccomp = spec
            .linux()
            .seccomp
            .as_ref()
            .map(|profile| crate::seccomp_cache::compile(profile, &self.root))
            .transpose()?;
        let rootfs_cwd = PathBuf::from("/");
        let cg = cgroups::open_existing(&container.cgroup_path)?;
        let (parent_end, child_end) = channel::pair()?;
        // The process is forked by the helper below; as a subreaper we inherit it when the
        // helper exits, so that we can wait for it.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .ctx(|| "become child subreaper".into())?;
        // A helper process joins the namespaces (joining user/mount ones needs a
        // single-threaded process, and pid namespaces only apply to children) and forks
        // the real process; we stay outside to wait and to keep our own namespaces.
        // Nobody in the container may ptrace the setup or read its /proc/N/fd
        // (CVE-2016-9962); the process's final execve makes it dumpable again.
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .ctx(|| "prctl PR_SET_DUMPABLE 0".into())?;
        crate::log::debug("nsexec container setup: joining the container's namespaces");
        let helper = clone_fork(0)?;
        if helper == 0 {
            crate::log::debug("child process in init()");
            drop(parent_end);
            let code = exec_helper(
                joins,
                ChildConfig {
                    spec,
                    process,
                    rootfs: &rootfs_cwd,
                    channel: child_end,
                    exec_fifo: None,
                    console_socket,
                    seccomp,
                    no_pivot: false,
                    preserve_fds: opts.preserve_fds,
                    join: Vec::new(),
                    is_exec: true,
                    no_new_keyring: true,
                    bind_fds: Vec::new(),
                    cgroup_to_be: None,
                },
            );
            // SAFETY: leaving the helper without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        drop(child_end);
        drop(console_socket);
        let pid = match parent_end.recv() {
            Ok(Message::Pid(pid)) => pid,
            Ok(Message::Failed(msg)) => {
                wait_pid(helper);
                return Err(Error::Init(msg));
            }
            Ok(other) => return Err(Error::Init(format!("unexpected {other:?}"))),
            Err(e) => {
                wait_pid(helper);
                return Err(e);
            }
        };
        wait_pid(helper);
        let fail = |e: Error| {
            // SAFETY: kill takes integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            e
        };
        if opts.sub_cgroups.is_empty() {
            cg.add_process(pid).map_err(fail)?;
        } else {
            join_sub_cgroups(cg.as_ref(), pid, &opts.sub_cgroups).map_err(fail)?;
        }
        parent_end.send(&Message::Go).map_err(fail)?;
        let mut master = None;
        if let Some(rx) = &pty_receiver {
            master = Some(channel::recv_fd(rx.as_fd()).map_err(fail)?);
        }
        loop {
            match parent_end.recv_with_fd() {
                Ok((Message::Ready, _)) => break,
                Ok((Message::SeccompFd, Some(fd))) => {
                    forward_seccomp_fd(&container, spec, Status::Running, fd).map_err(fail)?
                }
                Ok((Message::Failed(msg), _)) => return Err(fail(Error::Init(msg))),
                Ok((other, _)) => return Err(fail(Error::Init(format!("unexpected {other:?}")))),
                Err(e) => return Err(fail(e)),
            }
        }
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        if opts.detach {
            return Ok((pid, None));
        }
        drop(parent_end);
        if let Some(master) = master {
            crate::console::proxy(&master);
        }
        let code = wait_with_signal_forwarding(pid, true);
        Ok((pid, Some(code)))
    }

    /// `run`: create, start, wait, delete (unless detached). Returns the exit code.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
        let spec = Spec::load(&opts.bundle)?;
        let terminal = spec.process.as_ref().is_some_and(|p| p.terminal);
        // `run` with a terminal and no socket: make our own socket and proxy the pty.
        let mut local_console = None;
        let mut own_opts = CreateOptions {
            bundle: opts.bundle.clone(),
            pid_file: opts.pid_file.clone(),
            console_socket: opts.console_socket.clone(),
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            preserve_fds: opts.preserve_fds,
        };
        if terminal && opts.console_socket.is_none() {
            if detach {
                return Err(Error::InvalidConfig(
                    "process.terminal: a detached container with a terminal needs --console-socket"
                        .into(),
                ));
            }
            let dir =
                std::env::temp_dir().join(format!("pier-console-{}-{id}", std::process::id()));
            std::fs::create_dir_all(&dir).ctx(|| "console dir".into())?;
            let sock_path = dir.join("console.sock");
            let listener = std::os::unix::net::UnixListener::bind(&sock_path)
                .ctx(|| format!("bind {}", sock_path.display()))?;
            own_opts.console_socket = Some(sock_path);
            local_console = Some((listener, dir));
        }
        block_forwarded_signals();
        let created = self.create(id, &own_opts);
        let mut master = None;
        if let Some((listener, dir)) = local_console {
            if created.is_ok() {
                let (stream, _) = listener.accept().ctx(|| "accept console".into())?;
                master = Some(channel::recv_fd(stream.as_fd())?);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
        let container = created?;
        if let Err(e) = self.start(id) {
            let _ = self.destroy(&container);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        if let Some(master) = master {
            crate::console::proxy(&master);
        }
        let code = wait_with_signal_forwarding(container.init_pid, false);
        if !keep {
            let container = self.load(id)?;
            self.destroy(&container)?;
        }
        Ok(code)
    }
}

/// The container's cgroups as its `/proc/self/cgroup` shows them once it is inside.
fn cgroup_in_proc_form(cg: &dyn cgroups::Cgroup) -> String {
    cg.paths()
        .iter()
        .map(|(name, path)| match name.as_str() {
            "unified" => format!("0::{path}\n"),
            _ => format!("1:{name}:{path}\n"),
        })
        .collect()
}

/// Puts an exec'd process into sub-cgroups of the container's cgroup, runc's
/// `exec --cgroup`: "PATH" for every hierarchy, "ctrl[,ctrl]:PATH" for some.
fn join_sub_cgroups(cg: &dyn cgroups::Cgroup, pid: i32, specs: &[String]) -> Result<()> {
    let mut all: Option<&str> = None;
    let mut by_controller: Vec<(&str, &str)> = Vec::new();
    for spec in specs {
        let (ctrls, sub) = match spec.split_once(':') {
            Some((c, p)) => (Some(c), p),
            None => (None, spec.as_str()),
        };
        let escapes = Path::new(sub)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        if escapes {
            return Err(Error::InvalidConfig(format!(
                "exec --cgroup: {sub} is not a sub cgroup path"
            )));
        }
        match ctrls {
            Some(list) => by_controller.extend(list.split(',').map(|c| (c, sub))),
            None => all = Some(sub),
        }
    }
    let dirs = cg.dirs();
    // A hierarchy's controllers are the parts of its mount directory's name.
    let controllers_of = |dir: &Path| -> Vec<String> {
        dir.strip_prefix("/sys/fs/cgroup")
            .ok()
            .and_then(|rest| rest.components().next())
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .split(',')
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    for (ctrl, _) in &by_controller {
        if !dirs
            .iter()
            .any(|d| controllers_of(d).iter().any(|c| c == ctrl))
        {
            return Err(Error::InvalidConfig(format!(
                "exec --cgroup: unknown controller {ctrl}"
            )));
        }
    }
    for dir in &dirs {
        let ctrls = controllers_of(dir);
        let sub = by_controller
            .iter()
            .find(|(c, _)| ctrls.iter().any(|x| x == c))
            .map(|(_, s)| *s)
            .or(all)
            .unwrap_or("");
        let procs = dir.join(sub.trim_start_matches('/')).join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(|e| {
            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".to_string()
            } else {
                e.to_string()
            };
            Error::Cgroup(format!(
                "adding pid {pid} to cgroups: open {}: {reason}",
                procs.display()
            ))
        })?;
    }
    Ok(())
}

/// The exec helper: joins the container's namespaces, forks the process (so that it is
/// inside the pid namespace), reports its pid and exits.
fn exec_helper(joins: Vec<(NamespaceKind, OwnedFd)>, cfg: ChildConfig) -> i32 {
    let mut keep = cfg.own_fds();
    keep.extend(joins.iter().map(|(_, fd)| fd.as_raw_fd()));
    // SAFETY: the helper exits without returning to the frames that own the
    // descriptors closed here.
    unsafe { crate::process::close_fds_except(3 + cfg.preserve_fds, &keep) };
    // Inherited by the process forked below; written here, from the host's side
    // before any namespace is joined, so that the process's own /proc (owned by the
    // host's root while it is not dumpable) is not needed for it.
    if let Some(adj) = cfg.process.oom_score_adj {
        if let Err(e) = crate::process::set_oom_score_adj(std::process::id() as i32, adj) {
            let _ = cfg.channel.send(&Message::Failed(e.to_string()));
            return 1;
        }
    }
    if let Err(e) = crate::init::join_all(&joins) {
        let _ = cfg.channel.send(&Message::Failed(e.to_string()));
        return 1;
    }
    drop(joins);
    if let Err(e) = rustix::process::chdir("/") {
        let _ = cfg.channel.send(&Message::Failed(format!("chdir /: {e}")));
        return 1;
    }
    match clone_fork(0) {
        Ok(0) => run_child(cfg),
        Ok(pid) => {
            let _ = cfg.channel.send(&Message::Pid(pid));
            0
        }
        Err(e) => {
            let _ = cfg.channel.send(&Message::Failed(e.to_string()));
            1
        }
    }
}

fn same_namespace(path: &str, kind: NamespaceKind) -> bool {
    let ours = std::fs::read_link(format!("/proc/self/ns/{}", kind.proc_name()));
    let theirs = std::fs::read_link(path);
    matches!((ours, theirs), (Ok(a), Ok(b)) if a == b)
}

fn wait_pid(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return exit_code(status);
        }
        if rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return -1;
        }
    }
}

fn reap_if_child(pid: i32) {
    let mut status = 0;
    // SAFETY: non-blocking waitpid on a pid that may or may not be our child.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    }
}

const FORWARDED_SIGNALS: [i32; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: building a local signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}

/// Blocks the signals `run` forwards, before the container exists, so none is lost.
fn block_forwarded_signals() {
    let set = forwarded_set();
    // SAFETY: sigprocmask on the only thread with a valid set.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits for `pid` (our child) to exit, forwarding signals to it as runc does.
fn wait_with_signal_forwarding(pid: i32, block_now: bool) -> i32 {
    if block_now {
        block_forwarded_signals();
    }
    let set = forwarded_set();
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return exit_code(status);
        }
        if rc < 0 {
            return -1;
        }
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        // SAFETY: set and timeout are valid; siginfo is optional.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill takes integers.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Hands a seccomp notify fd to the agent at `linux.seccomp.listenerPath`.
fn forward_seccomp_fd(
    container: &Container,
    spec: &Spec,
    status: Status,
    fd: OwnedFd,
) -> Result<()> {
    let listener = spec
        .linux()
        .seccomp
        .as_ref()
        .and_then(|s| s.listener_path.as_ref())
        .ok_or_else(|| {
            Error::InvalidConfig(
                "linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs a listener".into(),
            )
        })?;
    let st = seccomp_state(container, spec, status);
    crate::seccomp::send_to_listener(listener, &st, fd.as_fd())
}

fn seccomp_state(container: &Container, spec: &Spec, status: Status) -> Vec<u8> {
    let state = container.output(status);
    let value = serde_json::json!({
        "ociVersion": state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": container.init_pid,
        "metadata": spec.linux().seccomp.as_ref().and_then(|s| s.listener_metadata.clone()).unwrap_or_default(),
        "state": state,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Overlays the fields set in `update` onto the stored resources.
fn merge_resources(
    mut base: crate::spec::Resources,
    update: &crate::spec::Resources,
) -> crate::spec::Resources {
    let mut base_json = serde_json::to_value(&base).unwrap_or_default();
    let update_json = serde_json::to_value(update).unwrap_or_default();
    merge_json(&mut base_json, &update_json);
    if let Ok(merged) = serde_json::from_value(base_json) {
        base = merged;
    }
    base
}

fn merge_json(base: &mut serde_json::Value, update: &serde_json::Value) {
    match (base, update) {
        (serde_json::Value::Object(b), serde_json::Value::Object(u)) => {
            for (k, v) in u {
                merge_json(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, u) => *b = u.clone(),
    }
}
