//! Namespaces a container shares with another, and where its cgroup lives:
//! `--ipc shareable` (its `/dev/shm` a tmpfs mounted on the host's side, so that a
//! joiner can bind the same one, as dockerd's `ShmPath`), `--ipc container:<id>` and
//! `--pid container:<id>` (the donor's namespaces joined by path), `--ipc none`
//! (no `/dev/shm`), `--domainname` (in its own UTS namespace), and `--cgroup-parent`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{internal, Container, Engine, EngineError};

/// The default parent of containers' cgroups (pier-runtime's own default).
const DEFAULT_CGROUP_PARENT: &str = "/pier";

/// Checks `IpcMode` and `PidMode` at create, with dockerd's words.
pub(super) fn validate(hc: &Value) -> Result<(), EngineError> {
    let hc = super::typed::host_config(hc)?;
    let ipc = hc.ipc_mode.as_deref().unwrap_or_default();
    let ipc_valid = matches!(ipc, "" | "host" | "private" | "none" | "shareable")
        || ipc
            .strip_prefix("container:")
            .is_some_and(|c| !c.is_empty());
    if !ipc_valid {
        return Err(EngineError::InvalidParameter(format!(
            "invalid IPC mode: {ipc}"
        )));
    }
    let pid = hc.pid_mode.as_deref().unwrap_or_default();
    let pid_valid = matches!(pid, "" | "host")
        || pid
            .strip_prefix("container:")
            .is_some_and(|c| !c.is_empty());
    if !pid_valid {
        return Err(EngineError::InvalidParameter(format!(
            "invalid PID mode: {pid}"
        )));
    }
    Ok(())
}

/// OCI `linux.cgroupsPath` of a container: `<CgroupParent>/<id>` (a relative parent
/// taken from the hierarchy's root, as runc cleans it), else under Pier's parent.
pub(super) fn cgroups_path(hc: &Value, id: &str) -> Result<String, EngineError> {
    let resources = super::typed::resources(hc)?;
    let parent = resources
        .cgroup_parent
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_CGROUP_PARENT);
    Ok(format!("/{}/{id}", parent.trim_matches('/')).replace("//", "/"))
}

/// `Config.Domainname` as the NIS domain name of the container's UTS namespace
/// (dockerd sets it through the `kernel.domainname` sysctl); never set in the host's.
pub(super) fn set_domainname(config: &Value, spec: &mut Value) -> Result<(), EngineError> {
    let config = super::typed::config(config)?;
    let own_uts = spec["linux"]["namespaces"].as_array().is_some_and(|list| {
        list.iter()
            .any(|n| n["type"] == "uts" && n["path"].is_null())
    });
    if let Some(d) = config.domainname.filter(|d| !d.is_empty()) {
        if own_uts {
            spec["domainname"] = json!(d);
        }
    }
    Ok(())
}

/// Where a shareable container's `/dev/shm` is mounted on the host.
fn shm_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("shm")
}

/// What [`Engine::shared_namespaces`] resolved for one start.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The IPC namespace to join and the `/dev/shm` to bind.
    ipc: Option<(PathBuf, PathBuf)>,
    /// The PID namespace to join.
    pid: Option<PathBuf>,
    /// This container's own shareable `/dev/shm` (a host tmpfs).
    own_shm: Option<PathBuf>,
    /// `--ipc none`: no `/dev/shm` at all.
    no_shm: bool,
}

impl Shared {
    /// Sets the joined namespaces' paths and the `/dev/shm` mount in `spec`.
    pub(super) fn apply(&self, spec: &mut Value) {
        let set_path = |spec: &mut Value, kind: &str, path: &Path| {
            if let Some(list) = spec["linux"]["namespaces"].as_array_mut() {
                list.retain(|n| n["type"] != kind);
                list.push(json!({"type": kind, "path": path}));
            }
        };
        if let Some((ns, _)) = &self.ipc {
            set_path(spec, "ipc", ns);
        }
        if let Some(ns) = &self.pid {
            set_path(spec, "pid", ns);
        }
        let shm_bind = self
            .ipc
            .as_ref()
            .map(|(_, shm)| shm)
            .or(self.own_shm.as_ref());
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            if self.no_shm {
                mounts.retain(|m| m["destination"] != "/dev/shm");
            } else if let Some(source) = shm_bind {
                for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
                    *m = json!({
                        "destination": "/dev/shm",
                        "type": "bind",
                        "source": source,
                        "options": ["rbind", "rprivate"],
                    });
                }
            }
        }
    }
}

impl Engine {
    /// Resolves `IpcMode`/`PidMode` for a start: the donors must be running (an IPC
    /// donor shareable, or in the host's IPC namespace), as dockerd checks; a
    /// shareable container's `/dev/shm` is mounted now (undone by
    /// [`Engine::release_shm`]).
    pub(super) fn shared_namespaces(&self, c: &Container) -> Result<Shared, EngineError> {
        let hc = super::typed::host_config(&c.host_config)?;
        let mut shared = Shared::default();
        let ipc = hc.ipc_mode.as_deref().unwrap_or_default();
        if let Some(donor) = ipc.strip_prefix("container:") {
            let target = self.get(donor).map_err(|e| match e {
                EngineError::NotFound(m) => {
                    EngineError::NotFound(format!("can't join IPC of container {donor}: {m}"))
                }
                other => other,
            })?;
            // dockerd names the donor by its full ID.
            let cant = |e: String| format!("can't join IPC of container {}: {e}", target.id);
            if !target.state.running || target.state.restarting {
                return Err(EngineError::Conflict(cant(format!(
                    "container {} is not running",
                    target.id
                ))));
            }
            let donor_mode = super::typed::host_config(&target.host_config)?.ipc_mode;
            let shm =
                match donor_mode.as_deref() {
                    Some("shareable") => shm_dir(&self.data_dir(&target.id)),
                    Some("host") => PathBuf::from("/dev/shm"),
                    _ => return Err(EngineError::InvalidParameter(cant(
                        "non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
                            .into(),
                    ))),
                };
            let ns = PathBuf::from(format!("/proc/{}/ns/ipc", target.state.pid));
            shared.ipc = Some((ns, shm));
        }
        if let Some(donor) = hc
            .pid_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
        {
            let target = self.get(donor).map_err(|e| {
                EngineError::NotFound(format!(
                    "cannot join PID of a non running container: {donor}: {e}"
                ))
            })?;
            if !target.state.running || target.state.restarting {
                return Err(EngineError::Conflict(format!(
                    "container {} is not running",
                    target.id
                )));
            }
            shared.pid = Some(PathBuf::from(format!("/proc/{}/ns/pid", target.state.pid)));
        }
        match ipc {
            "none" => shared.no_shm = true,
            "shareable" => {
                let dir = shm_dir(&self.data_dir(&c.id));
                mount_shm(&dir, hc.shm_size)?;
                shared.own_shm = Some(dir);
            }
            _ => {}
        }
        Ok(shared)
    }

    /// Unmounts a shareable container's `/dev/shm` (after its run, or a failed start).
    pub(super) fn release_shm(&self, id: &str) {
        release_shm_in(&self.data_dir(id));
    }
}

/// Unmounts the shareable `/dev/shm` under a container's data directory, if any
/// (also at removal, for a run whose end pierd did not see).
pub(super) fn release_shm_in(data_dir: &Path) {
    let dir = shm_dir(data_dir);
    if dir.exists() {
        let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&dir);
    }
}

/// A tmpfs of `ShmSize` (default 64 MB) at `dir`, as dockerd mounts a shareable
/// container's `/dev/shm`; a stale one from an earlier run is replaced.
fn mount_shm(dir: &Path, shm_size: Option<i64>) -> Result<(), EngineError> {
    use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};
    let _ = unmount(dir, UnmountFlags::DETACH);
    std::fs::create_dir_all(dir).map_err(|e| internal("create shm dir", e))?;
    let size = shm_size
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .unwrap_or(64 << 20);
    mount(
        "shm",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        std::ffi::CString::new(format!("mode=1777,size={size}"))
            .ok()
            .as_deref(),
    )
    .map_err(|e| internal("mount shm", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_checked_with_dockerds_words() {
        for ok in ["", "host", "private", "none", "shareable", "container:db"] {
            assert!(validate(&json!({"IpcMode": ok})).is_ok(), "{ok}");
        }
        for ok in ["", "host", "container:db"] {
            assert!(validate(&json!({"PidMode": ok})).is_ok(), "{ok}");
        }
        let e = validate(&json!({"IpcMode": "container:"})).unwrap_err();
        assert_eq!(e.to_string(), "invalid IPC mode: container:");
        let e = validate(&json!({"PidMode": "private"})).unwrap_err();
        assert_eq!(e.to_string(), "invalid PID mode: private");
    }

    #[test]
    fn cgroups_path_is_under_the_parent() {
        assert_eq!(cgroups_path(&json!({}), "abc").unwrap(), "/pier/abc");
        assert_eq!(
            cgroups_path(&json!({"CgroupParent": "/my/parent"}), "abc").unwrap(),
            "/my/parent/abc"
        );
        assert_eq!(
            cgroups_path(&json!({"CgroupParent": "rel/"}), "abc").unwrap(),
            "/rel/abc"
        );
        assert_eq!(
            cgroups_path(&json!({"CgroupParent": "/"}), "abc").unwrap(),
            "/abc"
        );
    }
}
