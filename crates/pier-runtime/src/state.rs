//! A container's persisted state under the runtime root (`<root>/<id>/state.json`) and
//! the status derived from the live system, as runc derives it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::spec::Spec;

pub const OCI_VERSION: &str = "1.2.0";
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub init_pid: i32,
    /// Start time of the init (clock ticks since boot), to detect pid reuse.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub cgroup_path: String,
    pub config: Spec,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Set once the container was started, so a dead init reads as stopped, not created.
    #[serde(default)]
    pub started: bool,
}

/// The `state` command's JSON, key for key as runc prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOutput<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

/// Container ids runc accepts: `^[\w+\-\.]+$`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

impl Container {
    pub fn dir(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let path = Self::dir(root, id).join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidState(format!("corrupt state {}: {e}", path.display())))
    }

    /// Writes state.json atomically (temp file + rename).
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = Self::dir(root, &self.id);
        let tmp = dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec(self)
            .map_err(|e| Error::InvalidState(format!("serialize state: {e}")))?;
        std::fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(STATE_FILE)).ctx(|| format!("rename {}", tmp.display()))
    }

    pub fn state_dir(&self, root: &Path) -> PathBuf {
        Self::dir(root, &self.id)
    }

    /// Whether the recorded init process still exists (and is not a zombie).
    pub fn init_alive(&self) -> bool {
        if self.init_pid <= 0 {
            return false;
        }
        match crate::process::start_time(self.init_pid) {
            Some(t) if t == self.init_start_time => !matches!(
                crate::process::proc_state(self.init_pid),
                Some('Z') | Some('X') | None
            ),
            _ => false,
        }
    }

    pub fn status(&self, root: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if !self.started && self.state_dir(root).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        match crate::cgroups::open_existing(&self.cgroup_path).and_then(|cg| cg.is_frozen()) {
            Ok(true) => Status::Paused,
            _ => Status::Running,
        }
    }

    pub fn output<'a>(&'a self, status: Status) -> StateOutput<'a> {
        StateOutput {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.init_pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.config.annotations,
        }
    }

    /// The state the OCI spec hands to hooks on stdin.
    pub fn hook_state(&self, status: Status) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct HookState<'a> {
            oci_version: &'a str,
            id: &'a str,
            status: Status,
            pid: i32,
            bundle: &'a Path,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            annotations: &'a BTreeMap<String, String>,
        }
        serde_json::to_vec(&HookState {
            oci_version: OCI_VERSION,
            id: &self.id,
            status,
            pid: self.init_pid,
            bundle: &self.bundle,
            annotations: &self.config.annotations,
        })
        .unwrap_or_default()
    }
}

/// Every container id under the runtime root.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", root.display()), e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

pub use pier_time::{format_rfc3339, now_rfc3339};

/// The user name for a uid from the host's /etc/passwd, as runc's `owner`.
pub fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_3+x").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("..").is_err());
        assert!(validate_id("a/b").is_err());
    }
}
