//! Host devices in a container, as dockerd gives them: `HostConfig.Devices`
//! (`--device /dev/x[:/dev/y[:rwm]]`, a directory bringing every device below it),
//! `DeviceCgroupRules` (`--device-cgroup-rule 'c 42:* rwm'`), the block I/O throttles
//! (`--device-read-bps` and the other `BlkioDevice*` lists) and `BlkioWeightDevice`;
//! and the refusal of `DeviceRequests` (`--gpus`), which no driver here can honour.
//!
//! Each device becomes a node in the container (`linux.devices`) and an allow rule of
//! the devices cgroup (`linux.resources.devices`), which the runtime applies (v1
//! `devices.allow`, v2 an eBPF program).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use pier_api::container::DeviceMapping;
use serde::Serialize;
use serde_json::Value;

use super::EngineError;

/// Where the blkio controller's per-device weight would be (cgroup v1).
const WEIGHT_DEVICE_FILE: &str = "/sys/fs/cgroup/blkio/blkio.weight_device";

/// Whether the kernel takes per-device weights: cgroup v1's `blkio.weight_device`, or
/// cgroup v2's `io` controller (dockerd's `sysinfo.BlkioWeightDevice`).
fn kernel_has_weight_device() -> bool {
    Path::new(WEIGHT_DEVICE_FILE).exists()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|name| name == "io"))
}

/// Whether the kernel takes a container-wide block I/O weight: cgroup v1's
/// `blkio.weight`, or cgroup v2's `io` controller (dockerd's `sysinfo.BlkioWeight`).
fn kernel_has_weight() -> bool {
    Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|name| name == "io"))
}

/// A device node of the OCI spec (`linux.devices`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceNode {
    #[serde(rename = "type")]
    kind: &'static str,
    path: PathBuf,
    major: u64,
    minor: u64,
    file_mode: u32,
    uid: u32,
    gid: u32,
}

/// A devices cgroup rule of the OCI spec (`linux.resources.devices`); None: any.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct DeviceRule {
    allow: bool,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    major: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    minor: Option<u64>,
    access: String,
}

/// A throttle or weight of the OCI spec (`linux.resources.blockIO`).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct BlockDeviceLimit {
    major: u64,
    minor: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u16>,
}

/// What a create checks and records: `DeviceRequests` are refused (no driver can
/// honour them: no NVIDIA runtime hook, no CDI spec), cgroup rules and device modes
/// must parse, and `BlkioWeightDevice` is discarded with dockerd's warning when the
/// kernel has no per-device weight. The warnings, for the create's answer.
pub fn check_create(host_config: &mut Value) -> Result<Vec<String>, EngineError> {
    let sent = super::typed::resources(host_config)?;
    if let Some(request) = sent.device_requests.unwrap_or_default().into_iter().next() {
        let capabilities = request
            .capabilities
            .unwrap_or_default()
            .iter()
            .map(|set| format!("[{}]", set.join(" ")))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(EngineError::InvalidParameter(format!(
            "could not select device driver {:?} with capabilities: [{capabilities}]",
            request.driver.unwrap_or_default()
        )));
    }
    for rule in sent.device_cgroup_rules.iter().flatten() {
        parse_cgroup_rule(rule)?;
    }
    for d in sent.devices.iter().flatten() {
        permissions(d)?;
    }
    let mut warnings = Vec::new();
    let weight = sent.blkio_weight.unwrap_or(0);
    if weight > 0 && !kernel_has_weight() {
        warnings.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
                .to_string(),
        );
        host_config["BlkioWeight"] = Value::from(0);
    } else if weight > 0 && !(10..=1000).contains(&weight) {
        return Err(EngineError::InvalidParameter(
            "Range of blkio weight is from 10 to 1000".into(),
        ));
    }
    let weights = sent.blkio_weight_device.unwrap_or_default();
    if !weights.is_empty() && !kernel_has_weight_device() {
        warnings.push(
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."
                .to_string(),
        );
        host_config["BlkioWeightDevice"] = Value::Array(Vec::new());
    }
    Ok(warnings)
}

/// Adds the container's devices, cgroup rules and block I/O limits to `spec`.
pub fn apply(host_config: &Value, spec: &mut Value) -> Result<(), EngineError> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    let sent = super::typed::resources(host_config)?;
    for d in sent.devices.iter().flatten() {
        let access = permissions(d)?;
        let host = d.path_on_host.as_deref().unwrap_or_default();
        let target = d
            .path_in_container
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(host);
        for node in nodes_at(Path::new(host), Path::new(target))? {
            rules.push(DeviceRule {
                allow: true,
                kind: node.kind.to_string(),
                major: Some(node.major),
                minor: Some(node.minor),
                access: access.clone(),
            });
            nodes.push(node);
        }
    }
    for rule in sent.device_cgroup_rules.iter().flatten() {
        rules.push(parse_cgroup_rule(rule)?);
    }
    let mut block_io = serde_json::Map::new();
    for (sent_limits, oci) in [
        (&sent.blkio_device_read_bps, "throttleReadBpsDevice"),
        (&sent.blkio_device_write_bps, "throttleWriteBpsDevice"),
        (&sent.blkio_device_read_iops, "throttleReadIOPSDevice"),
        (&sent.blkio_device_write_iops, "throttleWriteIOPSDevice"),
    ] {
        let mut limits = Vec::new();
        for t in sent_limits.iter().flatten() {
            let (major, minor) = device_number(t.path.as_deref().unwrap_or_default())?;
            limits.push(BlockDeviceLimit {
                major,
                minor,
                rate: Some(t.rate.unwrap_or(0)),
                weight: None,
            });
        }
        if !limits.is_empty() {
            block_io.insert(oci.into(), to_value(&limits));
        }
    }
    let mut weights = Vec::new();
    for w in sent.blkio_weight_device.iter().flatten() {
        let (major, minor) = device_number(w.path.as_deref().unwrap_or_default())?;
        weights.push(BlockDeviceLimit {
            major,
            minor,
            rate: None,
            weight: Some(w.weight.unwrap_or(0)),
        });
    }
    if !weights.is_empty() {
        block_io.insert("weightDevice".into(), to_value(&weights));
    }
    if let Some(weight) = sent.blkio_weight.filter(|w| *w > 0) {
        block_io.insert("weight".into(), Value::from(weight));
    }

    let linux = &mut spec["linux"];
    if !nodes.is_empty() {
        extend(&mut linux["devices"], to_value(&nodes));
    }
    if !rules.is_empty() {
        extend(&mut linux["resources"]["devices"], to_value(&rules));
    }
    if !block_io.is_empty() {
        let target = &mut linux["resources"]["blockIO"];
        if !target.is_object() {
            *target = Value::Object(serde_json::Map::new());
        }
        for (k, v) in block_io {
            target[k] = v;
        }
    }
    Ok(())
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Appends the items of the array `more` to the array at `target` (made if absent).
fn extend(target: &mut Value, more: Value) {
    let Value::Array(more) = more else { return };
    match target.as_array_mut() {
        Some(list) => list.extend(more),
        None => *target = Value::Array(more),
    }
}

/// The cgroup permissions of a mapping (default `rwm`), checked as dockerd does.
fn permissions(d: &DeviceMapping) -> Result<String, EngineError> {
    let access = d
        .cgroup_permissions
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("rwm");
    if access.len() > 3 || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(EngineError::InvalidParameter(format!(
            "invalid device mode: {access}"
        )));
    }
    Ok(access.to_string())
}

/// `c 1:3 rwm`, `b *:* m`, `a 7:* r`: a rule of Docker's `--device-cgroup-rule`.
fn parse_cgroup_rule(text: &str) -> Result<DeviceRule, EngineError> {
    let invalid =
        || EngineError::InvalidParameter(format!("invalid device cgroup format '{text}'"));
    let fields: Vec<&str> = text.split(' ').collect();
    let [kind, numbers, access] = fields.as_slice() else {
        return Err(invalid());
    };
    if !matches!(*kind, "a" | "b" | "c") {
        return Err(invalid());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(invalid)?;
    let number = |n: &str| -> Result<Option<u64>, EngineError> {
        if n == "*" {
            Ok(None)
        } else {
            n.parse().map(Some).map_err(|_| invalid())
        }
    };
    if access.is_empty()
        || access.len() > 3
        || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
    {
        return Err(invalid());
    }
    Ok(DeviceRule {
        allow: true,
        kind: kind.to_string(),
        major: number(major)?,
        minor: number(minor)?,
        access: access.to_string(),
    })
}

/// The device nodes at `host` (a device, or a directory: every device below it), as
/// nodes at `target` in the container.
fn nodes_at(host: &Path, target: &Path) -> Result<Vec<DeviceNode>, EngineError> {
    let gathering = |e: std::io::Error| {
        EngineError::InvalidParameter(format!(
            "error gathering device information while adding custom device {:?}: {}",
            host.display().to_string(),
            go_error_text(&e)
        ))
    };
    let meta = std::fs::metadata(host).map_err(gathering)?;
    if meta.is_dir() {
        let mut nodes = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(host)
            .map_err(gathering)?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            // Devices and subdirectories; links and other files are not devices.
            if kind.is_dir() || kind.is_char_device() || kind.is_block_device() {
                nodes.extend(nodes_at(&entry.path(), &target.join(entry.file_name()))?);
            }
        }
        return Ok(nodes);
    }
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(EngineError::InvalidParameter(format!(
            "error gathering device information while adding custom device {:?}: not a device node",
            host.display().to_string()
        )));
    };
    let rdev = meta.rdev();
    Ok(vec![DeviceNode {
        kind,
        path: target.to_path_buf(),
        major: u64::from(rustix::fs::major(rdev)),
        minor: u64::from(rustix::fs::minor(rdev)),
        file_mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }])
}

/// The major and minor number of the block device at `path` (a throttle's device).
fn device_number(path: &str) -> Result<(u64, u64), EngineError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        EngineError::InvalidParameter(format!("stat {path}: {}", go_error_text(&e)))
    })?;
    if !meta.file_type().is_block_device() {
        return Err(EngineError::InvalidParameter(format!(
            "{path} is not a block device"
        )));
    }
    let rdev = meta.rdev();
    Ok((
        u64::from(rustix::fs::major(rdev)),
        u64::from(rustix::fs::minor(rdev)),
    ))
}

/// An OS error in Go's words (`no such file or directory`).
fn go_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cgroup_rules_as_docker_writes_them() {
        assert_eq!(
            parse_cgroup_rule("c 42:* rmw").unwrap(),
            DeviceRule {
                allow: true,
                kind: "c".into(),
                major: Some(42),
                minor: None,
                access: "rmw".into()
            }
        );
        for bad in ["x 1", "c 1:2", "q 1:2 rwm", "c a:b rwm", "c 1:2 rwx"] {
            assert!(parse_cgroup_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gpu_requests_are_refused_with_dockers_words() {
        let mut hc =
            json!({"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]});
        let err = check_create(&mut hc).unwrap_err().to_string();
        assert_eq!(
            err,
            "could not select device driver \"\" with capabilities: [[gpu]]"
        );
    }

    #[test]
    fn a_device_becomes_a_node_and_a_rule() {
        let mut spec =
            json!({"linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}});
        let hc = json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"}]});
        apply(&hc, &mut spec).unwrap();
        assert_eq!(spec["linux"]["devices"][0]["path"], json!("/dev/mynull"));
        assert_eq!(
            (
                spec["linux"]["devices"][0]["major"].clone(),
                spec["linux"]["devices"][0]["minor"].clone()
            ),
            (json!(1), json!(3))
        );
        assert_eq!(
            spec["linux"]["resources"]["devices"][1],
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"})
        );
        let missing = json!({"Devices": [{"PathOnHost": "/dev/nonexist"}]});
        assert_eq!(
            apply(&missing, &mut spec).unwrap_err().to_string(),
            "error gathering device information while adding custom device \"/dev/nonexist\": no such file or directory"
        );
    }
}
