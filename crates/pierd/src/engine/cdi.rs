//! CDI devices (Container Device Interface, cncf-tags/container-device-interface
//! SPEC.md): `--device vendor.com/class=name` (a `DeviceRequest` of driver `cdi`)
//! resolved from the JSON spec files in the daemon's `--cdi-spec-dir`s (default
//! `/etc/cdi`, `/var/run/cdi`; a later directory's device of one name wins), and
//! `--gpus` mapped to the `nvidia.com/gpu` devices when such a spec exists. The
//! spec's and the device's `containerEdits` (env, deviceNodes, mounts, hooks,
//! additionalGIDs) are applied to the container's OCI spec at start. YAML spec files
//! are not read: no YAML parser is in the dependency tree.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use super::EngineError;

/// The kind `--gpus` maps to.
const GPU_KIND: &str = "nvidia.com/gpu";

/// One CDI spec file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFile {
    kind: String,
    #[serde(default)]
    devices: Vec<Device>,
    #[serde(default)]
    container_edits: Edits,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Device {
    name: String,
    #[serde(default)]
    container_edits: Edits,
}

/// `containerEdits`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Edits {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    mounts: Vec<Mount>,
    #[serde(default)]
    hooks: Vec<Hook>,
    #[serde(default, rename = "additionalGIDs")]
    additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceNode {
    path: String,
    host_path: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    major: Option<i64>,
    minor: Option<i64>,
    file_mode: Option<u32>,
    permissions: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mount {
    host_path: String,
    container_path: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hook {
    hook_name: String,
    path: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    timeout: Option<i64>,
}

/// `HostConfig.DeviceRequests[]`, the fields CDI needs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Request {
    #[serde(default)]
    driver: String,
    #[serde(default)]
    count: i64,
    #[serde(default, rename = "DeviceIDs")]
    device_ids: Option<Vec<String>>,
    #[serde(default)]
    capabilities: Option<Vec<Vec<String>>>,
}

/// The daemon's CDI spec directories.
#[derive(Debug, Clone)]
pub struct Registry {
    dirs: Vec<PathBuf>,
}

/// The devices the specs define: qualified name → (the spec's edits, the device's).
type Devices = BTreeMap<String, (Edits, Edits)>;

impl Registry {
    pub fn from_config(config: &crate::config::DaemonConfig) -> Registry {
        let dirs = if config.cdi_spec_dirs.is_empty() {
            vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")]
        } else {
            config.cdi_spec_dirs.clone()
        };
        Registry { dirs }
    }

    /// Every device of the `.json` specs, read now (specs may change while pierd
    /// runs, as with dockerd's refreshing registry). A spec that does not parse is
    /// skipped, as the CDI registry skips it.
    fn devices(&self) -> Devices {
        let mut devices = Devices::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for file in files {
                let Ok(spec) = std::fs::read(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<SpecFile>(&b).map_err(|e| e.to_string())
                    })
                else {
                    continue;
                };
                for d in spec.devices {
                    devices.insert(
                        format!("{}={}", spec.kind, d.name),
                        (spec.container_edits.clone(), d.container_edits),
                    );
                }
            }
        }
        devices
    }

    /// The CDI device names the container's requests resolve to: `cdi` requests'
    /// IDs, and GPU requests when an `nvidia.com/gpu` spec exists (count -1: all).
    /// Unknown names: Docker's `CDI device injection failed: unresolvable CDI
    /// devices …`. The requests left for [`super::devices`] are the others.
    fn resolve(&self, hc: &Value) -> Result<(Vec<String>, Vec<Value>), EngineError> {
        let requests = hc["DeviceRequests"].as_array().cloned().unwrap_or_default();
        let mut names = Vec::new();
        let mut others = Vec::new();
        let mut devices = None;
        for raw in requests {
            let r: Request = serde_json::from_value(raw.clone()).unwrap_or_default();
            let gpu = r
                .capabilities
                .iter()
                .flatten()
                .any(|set| set.iter().any(|c| c == "gpu"));
            if r.driver == "cdi" {
                names.extend(r.device_ids.unwrap_or_default());
                continue;
            }
            if gpu && matches!(r.driver.as_str(), "" | "nvidia") {
                let all = devices.get_or_insert_with(|| self.devices());
                let kinds: Vec<&String> = all
                    .keys()
                    .filter(|k| k.starts_with(&format!("{GPU_KIND}=")))
                    .collect();
                if !kinds.is_empty() {
                    match r.device_ids.filter(|ids| !ids.is_empty()) {
                        Some(ids) => names.extend(ids.iter().map(|id| format!("{GPU_KIND}={id}"))),
                        None if r.count < 0 => names.extend(kinds.iter().map(|k| k.to_string())),
                        None => names.extend(
                            kinds
                                .iter()
                                .take(r.count.max(1) as usize)
                                .map(|k| k.to_string()),
                        ),
                    }
                    continue;
                }
            }
            others.push(raw);
        }
        if !names.is_empty() {
            let all = devices.get_or_insert_with(|| self.devices());
            let unresolved: Vec<&str> = names
                .iter()
                .filter(|n| !all.contains_key(*n))
                .map(String::as_str)
                .collect();
            if !unresolved.is_empty() {
                return Err(EngineError::Internal(format!(
                    "CDI device injection failed: unresolvable CDI devices {}",
                    unresolved.join(", ")
                )));
            }
        }
        Ok((names, others))
    }

    /// At create: checks the CDI requests, and gives the other requests to `check`
    /// (the DeviceRequests stay in the record as sent).
    pub(super) fn check_create<T>(
        &self,
        hc: &mut Value,
        check: impl FnOnce(&mut Value) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let (_, others) = self.resolve(hc)?;
        let sent = std::mem::replace(&mut hc["DeviceRequests"], json!(others));
        let result = check(hc);
        hc["DeviceRequests"] = sent;
        result
    }

    /// At start: the resolved devices' edits applied to `spec`.
    pub(super) fn apply(&self, hc: &Value, spec: &mut Value) -> Result<(), EngineError> {
        let (names, _) = self.resolve(hc)?;
        if names.is_empty() {
            return Ok(());
        }
        let all = self.devices();
        let mut spec_edits_done = std::collections::HashSet::new();
        for name in &names {
            // The spec directory is read again here: a device gone since `resolve` is
            // the same unresolvable-device error, not a panic.
            let (spec_edits, device_edits) = all.get(name).ok_or_else(|| {
                EngineError::Internal(format!(
                    "CDI device injection failed: unresolvable CDI devices {name}"
                ))
            })?;
            let kind = name.split('=').next().unwrap_or_default();
            if spec_edits_done.insert(kind.to_string()) {
                apply_edits(spec_edits, spec)?;
            }
            apply_edits(device_edits, spec)?;
        }
        Ok(())
    }
}

fn apply_edits(edits: &Edits, spec: &mut Value) -> Result<(), EngineError> {
    for var in &edits.env {
        let key = var.split('=').next().unwrap_or_default();
        if let Some(env) = spec["process"]["env"].as_array_mut() {
            env.retain(|e| e.as_str().and_then(|e| e.split('=').next()) != Some(key));
            env.push(json!(var));
        }
    }
    for node in &edits.device_nodes {
        let host = node.host_path.as_deref().unwrap_or(&node.path);
        let (kind, major, minor, mode, uid, gid) = match (node.major, node.minor) {
            (Some(major), Some(minor)) => (
                node.kind.clone().unwrap_or_else(|| "c".into()),
                major,
                minor,
                node.file_mode.unwrap_or(0o666),
                node.uid.unwrap_or(0),
                node.gid.unwrap_or(0),
            ),
            _ => {
                let meta = std::fs::metadata(host).map_err(|e| {
                    EngineError::Internal(format!(
                        "CDI device injection failed: failed to stat {host:?}: {e}"
                    ))
                })?;
                let kind = if meta.file_type().is_block_device() {
                    "b"
                } else {
                    "c"
                };
                let rdev = meta.rdev();
                (
                    node.kind.clone().unwrap_or_else(|| kind.into()),
                    i64::from(rustix::fs::major(rdev)),
                    i64::from(rustix::fs::minor(rdev)),
                    node.file_mode.unwrap_or(meta.mode() & 0o7777),
                    node.uid.unwrap_or(meta.uid()),
                    node.gid.unwrap_or(meta.gid()),
                )
            }
        };
        let linux = &mut spec["linux"];
        if !linux["devices"].is_array() {
            linux["devices"] = json!([]);
        }
        if let Some(list) = linux["devices"].as_array_mut() {
            list.retain(|d| d["path"] != node.path.as_str());
            list.push(json!({
                "path": node.path, "type": kind, "major": major, "minor": minor,
                "fileMode": mode, "uid": uid, "gid": gid,
            }));
        }
        if !linux["resources"]["devices"].is_array() {
            linux["resources"]["devices"] = json!([]);
        }
        if let Some(rules) = linux["resources"]["devices"].as_array_mut() {
            rules.push(json!({
                "allow": true, "type": kind, "major": major, "minor": minor,
                "access": node.permissions.as_deref().unwrap_or("rwm"),
            }));
        }
    }
    for m in &edits.mounts {
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            mounts.push(json!({
                "destination": m.container_path,
                "source": m.host_path,
                "type": m.kind.as_deref().unwrap_or("bind"),
                "options": m.options,
            }));
        }
    }
    for h in &edits.hooks {
        let mut hook = json!({"path": h.path});
        if !h.args.is_empty() {
            hook["args"] = json!(h.args);
        }
        if !h.env.is_empty() {
            hook["env"] = json!(h.env);
        }
        if let Some(t) = h.timeout {
            hook["timeout"] = json!(t);
        }
        let list = &mut spec["hooks"][h.hook_name.as_str()];
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(list) = list.as_array_mut() {
            list.push(hook);
        }
    }
    if !edits.additional_gids.is_empty() {
        let user = &mut spec["process"]["user"];
        if !user["additionalGids"].is_array() {
            user["additionalGids"] = json!([]);
        }
        if let Some(gids) = user["additionalGids"].as_array_mut() {
            for g in &edits.additional_gids {
                if !gids.contains(&json!(g)) {
                    gids.push(json!(g));
                }
            }
        }
    }
    Ok(())
}
