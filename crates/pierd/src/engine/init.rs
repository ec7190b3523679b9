//! `--init` (`HostConfig.Init`, the daemon's `--init` and `--init-path`): a small init
//! runs as the container's PID 1 and starts the command as its child, forwarding
//! signals and reaping zombies. As dockerd does with its `docker-init`, the init is
//! bind-mounted read-only at `/sbin/docker-init` and the process becomes
//! `/sbin/docker-init -- COMMAND...`. The init is Pier's own (crate `pier-init`),
//! written to `EXEC_ROOT/pier-init` when the daemon starts, unless `--init-path` names
//! another.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{internal, EngineError};

/// Where the init is in the container (dockerd's `inContainerInitPath`).
pub const IN_CONTAINER_PATH: &str = "/sbin/docker-init";

/// The daemon's `--init` settings.
#[derive(Debug, Clone)]
pub struct InitSettings {
    /// `--init`: containers that do not say get an init.
    default_on: bool,
    /// The init's executable on the host.
    path: PathBuf,
}

impl InitSettings {
    /// The daemon's settings; Pier's own init is written out unless `--init-path` is
    /// given.
    pub fn from_config(config: &crate::config::DaemonConfig) -> Result<InitSettings, EngineError> {
        let path = match &config.init_path {
            Some(path) => path.clone(),
            None => write_builtin(&config.exec_root)?,
        };
        Ok(InitSettings {
            default_on: config.init,
            path,
        })
    }

    /// Whether a container runs with an init: its `HostConfig.Init`, else the daemon's.
    pub fn wanted(&self, host_config: &Value) -> bool {
        host_config["Init"].as_bool().unwrap_or(self.default_on)
    }

    /// Makes the init the spec's process, with the command after `--`, and mounts it.
    pub fn apply(&self, spec: &mut Value) -> Result<(), EngineError> {
        if !self.path.is_file() {
            return Err(EngineError::Internal(format!(
                "the init for --init is missing: {}: no such file",
                self.path.display()
            )));
        }
        let mut args = vec![json!(IN_CONTAINER_PATH), json!("--")];
        args.extend(
            spec["process"]["args"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        spec["process"]["args"] = Value::Array(args);
        let mount = json!({
            "destination": IN_CONTAINER_PATH,
            "type": "bind",
            "source": self.path,
            "options": ["bind", "ro"],
        });
        match spec["mounts"].as_array_mut() {
            Some(mounts) => mounts.push(mount),
            None => spec["mounts"] = json!([mount]),
        }
        Ok(())
    }
}

/// Writes `pier-init` into `dir` (replacing an older one whole, so a container that
/// has the old one mounted keeps it); its path.
fn write_builtin(dir: &Path) -> Result<PathBuf, EngineError> {
    let path = dir.join("pier-init");
    if fs::read(&path).is_ok_and(|old| old == pier_init::BINARY) {
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(|e| internal("create the exec root", e))?;
    let mut file =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| internal("write pier-init", e))?;
    file.write_all(pier_init::BINARY)
        .and_then(|()| {
            file.as_file()
                .set_permissions(fs::Permissions::from_mode(0o755))
        })
        .map_err(|e| internal("write pier-init", e))?;
    file.persist(&path)
        .map_err(|e| internal("write pier-init", e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_under_the_mounted_init() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_builtin(dir.path()).unwrap();
        let settings = InitSettings {
            default_on: false,
            path: path.clone(),
        };
        assert!(!settings.wanted(&json!({})));
        assert!(settings.wanted(&json!({"Init": true})));
        let mut spec = json!({"process": {"args": ["sleep", "1"]}, "mounts": []});
        settings.apply(&mut spec).unwrap();
        assert_eq!(
            spec["process"]["args"],
            json!(["/sbin/docker-init", "--", "sleep", "1"])
        );
        assert_eq!(spec["mounts"][0]["source"], json!(path));
        assert_eq!(spec["mounts"][0]["options"], json!(["bind", "ro"]));
        // Written once: the same file is kept.
        assert_eq!(write_builtin(dir.path()).unwrap(), path);
    }
}
