//! A container's life cycle made safe against concurrency and crashes.
//!
//! - Start, stop and remove of one container hold its [`Lock`] throughout, so they
//!   never interleave (concurrent starts: one starts, the others find it running).
//! - A create reserves its name before it makes anything, and gives it back if it
//!   fails.
//! - A removal is recorded (`removing`, in the store) before anything is undone; a
//!   pierd that restarts finishes it ([`Engine::finish_removals`]).
//! - At restart, what no record explains is ended: monitors pierd cannot adopt, the
//!   runtime's containers of records that are not running (a create blocked on its
//!   FIFO whose start never came), and the rootfs mounts of stopped containers.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{resolve_in, Engine, EngineError, Entry};

/// One container's lifecycle lock (held across awaits).
pub(super) type Lock = Arc<tokio::sync::Mutex<()>>;

/// A name held by a create under way; given back on drop (a failed or cancelled
/// create). Once the record exists, its name is held by the record.
pub(super) struct NameReservation<'a> {
    engine: &'a Engine,
    pub name: String,
}

impl Drop for NameReservation<'_> {
    fn drop(&mut self) {
        self.engine.reserved().remove(&self.name);
    }
}

/// Docker's message for a name in use by container `id`.
pub(super) fn name_in_use(name: &str, id: &str) -> String {
    format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )
}

/// Whether a start can go ahead (Docker's checks, in Docker's order).
pub(super) fn startable(c: &super::Container) -> Result<(), EngineError> {
    if c.state.paused {
        return Err(EngineError::Conflict(
            "cannot start a paused container, try unpause instead".into(),
        ));
    }
    if c.state.running {
        return Err(EngineError::NotModified);
    }
    if c.state.status == "removing" {
        return Err(EngineError::Conflict(format!(
            "container {} is marked for removal and cannot be started",
            c.id
        )));
    }
    Ok(())
}

/// A free `adjective_scientist` name (a suffix when the pair is taken).
fn generate_name(taken: impl Fn(&str) -> bool) -> String {
    const LEFT: [&str; 16] = [
        "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble",
        "proud", "quiet", "sharp", "tender", "vivid", "witty",
    ];
    const RIGHT: [&str; 16] = [
        "babbage", "curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler", "lovelace",
        "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
    ];
    loop {
        let r = super::random_id();
        let nibble = |i: usize| usize::from_str_radix(&r[i..=i], 16).unwrap_or_default() % 16;
        let n = format!("{}_{}", LEFT[nibble(0)], RIGHT[nibble(1)]);
        let n = if taken(&n) {
            format!("{n}{}", &r[..4])
        } else {
            n
        };
        if !taken(&n) {
            return n;
        }
    }
}

/// How long restart recovery waits for a monitor it ended to go.
const MONITOR_GRACE: Duration = Duration::from_secs(5);

impl Engine {
    pub(super) fn reserved(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.reserved_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The containers whose monitors a starting pierd reconnects to: recorded as
    /// running, and not between two runs of their restart policy.
    pub(super) fn adoptable(&self) -> Vec<String> {
        self.lock()
            .values()
            .filter(|e| e.c.state.running && !e.c.state.restarting)
            .map(|e| e.c.id.clone())
            .collect()
    }

    /// The full ID and the lifecycle lock of a container (not yet locked).
    pub(super) fn lifecycle_lock(&self, input: &str) -> Result<(String, Lock), EngineError> {
        let inner = self.lock();
        let id = resolve_in(&inner, input)?;
        let lock = inner[&id].lifecycle.clone();
        Ok((id, lock))
    }

    /// Takes `name` (or a generated one) for the container `id` being created, or
    /// Docker's 409 when a container or another create has it.
    pub(super) fn reserve_name(
        &self,
        name: Option<String>,
        id: &str,
    ) -> Result<NameReservation<'_>, EngineError> {
        // Lock order: the records, then the reservations (as rename).
        let inner = self.lock();
        let mut reserved = self.reserved();
        let owner = |n: &str, inner: &HashMap<String, Entry>| -> Option<String> {
            inner
                .values()
                .find(|e| e.c.name == n)
                .map(|e| e.c.id.clone())
                .or_else(|| reserved.get(n).cloned())
        };
        let name = match name {
            Some(n) => {
                if let Some(other) = owner(&n, &inner) {
                    return Err(EngineError::Conflict(name_in_use(&n, &other)));
                }
                n
            }
            None => generate_name(|n| owner(n, &inner).is_some()),
        };
        reserved.insert(name.clone(), id.to_string());
        Ok(NameReservation { engine: self, name })
    }

    // ------------------------------------------------------------------------------
    // Restart recovery (at open, before the API serves and before live restore).

    /// Records of removals a crash interrupted: the removal is finished. The records
    /// go here; their snapshot, directories, mounts, runtime state, monitor and
    /// network go with what no record explains (the sweeps that follow).
    pub(super) fn finish_removals(&self) {
        let mut inner = self.lock();
        let removing: Vec<String> = inner
            .values()
            .filter(|e| e.c.state.status == "removing")
            .map(|e| e.c.id.clone())
            .collect();
        for id in removing {
            match self.store.delete(&id) {
                Ok(()) => {
                    inner.remove(&id);
                    eprintln!("pierd: container {}: removal finished", &id[..12]);
                }
                Err(e) => eprintln!("pierd: container {}: finishing its removal: {e}", &id[..12]),
            }
        }
    }

    /// Ends what the records do not let pierd adopt: monitors of containers not
    /// recorded as running (a start or removal the crash cut short) and the runtime's
    /// containers of such records (a created container whose init waits on its FIFO
    /// for a start that will never come). Blocking.
    pub(super) fn end_unadoptable(&self) {
        let adopted: HashSet<String> = self.adoptable().into_iter().collect();
        let adopted_dirs: HashSet<String> = adopted.iter().map(|id| id[..16].to_string()).collect();
        let monitors: Vec<(rustix::process::Pid, String)> = self
            .monitor_processes()
            .into_iter()
            .filter(|(_, dir)| !adopted_dirs.contains(dir))
            .collect();
        // Their containers die first: each monitor then sees its exit, cleans up
        // (runtime state, rootfs mount) and ends on its own.
        self.delete_runtime_containers(&adopted);
        let deadline = Instant::now() + MONITOR_GRACE;
        while monitors.iter().any(|(pid, _)| alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for (pid, dir) in &monitors {
            if alive(*pid) {
                eprintln!("pierd: ending the monitor {pid:?} of {dir}, which no record explains");
                let _ = rustix::process::kill_process(*pid, rustix::process::Signal::KILL);
            }
        }
        let deadline = Instant::now() + MONITOR_GRACE;
        while monitors.iter().any(|(pid, _)| alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // A monitor killed while its runtime was still creating leaves that create's
        // container: deleted now that nothing makes more.
        if !monitors.is_empty() {
            self.delete_runtime_containers(&adopted);
        }
    }

    /// `<runtime> delete --force` of every container in the runtimes' state that is
    /// not in `keep`. Blocking.
    fn delete_runtime_containers(&self, keep: &HashSet<String>) {
        for (name, binary) in &self.runtimes {
            let root = self.runtime_root(name);
            for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if keep.contains(&id) || !entry.path().is_dir() {
                    continue;
                }
                let _ = delete_in_runtime(binary, &root, &id);
            }
        }
    }

    /// This daemon's monitor processes: pid and the name of their exec dir. A
    /// monitor's command line is `/proc/self/exe monitor <exec-root>/c/<dir>/monitor.json`.
    fn monitor_processes(&self) -> Vec<(rustix::process::Pid, String)> {
        let dirs = self.exec_root.join("c");
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
            else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.get(1) != Some(&&b"monitor"[..]) {
                continue;
            }
            let Some(config) = args
                .get(2)
                .map(|a| Path::new(std::ffi::OsStr::from_bytes(a)))
            else {
                continue;
            };
            let Some(dir) = config.parent() else { continue };
            if dir.parent() == Some(dirs.as_path()) {
                if let Some(name) = dir.file_name() {
                    out.push((pid, name.to_string_lossy().into_owned()));
                }
            }
        }
        out
    }

    /// The rootfs mounts of containers that do not run (a start the crash cut
    /// short), and exec dirs no record names. Blocking.
    pub(super) fn unmount_stopped(&self) {
        let stopped: Vec<String> = self
            .lock()
            .values()
            .filter(|e| !e.c.state.running)
            .map(|e| e.c.id.clone())
            .collect();
        for id in stopped {
            let rootfs = self.data_dir(&id).join("rootfs");
            let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        }
        let known: HashSet<String> = self.lock().keys().map(|id| id[..16].to_string()).collect();
        for entry in std::fs::read_dir(self.exec_root.join("c"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !known.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn alive(pid: rustix::process::Pid) -> bool {
    // A zombie is as good as gone: its parent (not pierd) reaps it.
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

/// `<runtime> --root ROOT delete --force ID`, output discarded. Blocking.
pub(super) fn delete_in_runtime(binary: &Path, root: &Path, id: &str) -> std::io::Result<bool> {
    Command::new(binary)
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
}
