//! A Docker container's configuration (`Config` + `HostConfig`) as an OCI runtime
//! spec, with Docker's defaults: its mounts, masked and read-only paths, capability
//! set, default seccomp profile and device rules.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::EngineError;

/// Docker's default seccomp profile (moby `profiles/seccomp/default.json`).
const SECCOMP_DEFAULT: &[u8] = include_bytes!("../seccomp-default.json");

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/interrupts",
];

/// `HostConfig.MaskedPaths` as dockerd reports it: the defaults, or null if privileged.
pub fn default_masked_paths(hc: &Value) -> Value {
    if hc["Privileged"].as_bool() == Some(true) {
        Value::Null
    } else {
        json!(MASKED_PATHS)
    }
}

/// `HostConfig.ReadonlyPaths` as dockerd reports it: the defaults, or null if privileged.
pub fn default_readonly_paths(hc: &Value) -> Value {
    if hc["Privileged"].as_bool() == Some(true) {
        Value::Null
    } else {
        json!(READONLY_PATHS)
    }
}

/// `configured` if it is a list, else `default`.
fn configured_or(configured: &Value, default: &[&str]) -> Value {
    if configured.is_array() {
        configured.clone()
    } else {
        json!(default)
    }
}

/// The inputs of [`build`].
pub struct SpecInput<'a> {
    pub config: &'a Value,
    pub host_config: &'a Value,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub rootfs: &'a Path,
    /// `hostname`, `hosts`, `resolv.conf` files bind-mounted into `/etc`.
    pub etc_files: &'a [(String, std::path::PathBuf)],
    pub cgroups_path: String,
    /// The container's user namespace mapping (`--userns-remap`, `--userns auto`).
    pub userns: Option<&'a crate::userns::IdMapping>,
    /// Its binds, volumes and tmpfs mounts ([`super::mounts::oci_mounts`]).
    pub user_mounts: &'a super::mounts::OciMounts,
}

/// The strings of a JSON array (others and non-arrays: none).
pub(crate) fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn cap_name(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The capability set after `CapAdd`/`CapDrop` (`ALL` allowed in both), or every
/// capability for `Privileged`.
pub fn capabilities(host_config: &Value) -> Result<Vec<String>, EngineError> {
    let all: Vec<String> = pier_runtime::caps::NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    if host_config["Privileged"].as_bool() == Some(true) {
        return Ok(all);
    }
    let mut caps: Vec<String> = pier_runtime::caps::DOCKER_DEFAULT
        .iter()
        .map(|s| s.to_string())
        .collect();
    let adds = str_list(&host_config["CapAdd"]);
    let drops = str_list(&host_config["CapDrop"]);
    for name in adds.iter().chain(drops.iter()) {
        if !name.eq_ignore_ascii_case("ALL") && !all.contains(&cap_name(name)) {
            return Err(EngineError::InvalidParameter(format!(
                "invalid CapAdd: unknown capability: {name:?}"
            )));
        }
    }
    if drops.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        caps.clear();
    } else {
        caps.retain(|c| !drops.iter().any(|d| cap_name(d) == *c));
    }
    if adds.iter().any(|a| a.eq_ignore_ascii_case("ALL")) {
        caps = all;
    } else {
        for a in &adds {
            let name = cap_name(a);
            if !caps.contains(&name) {
                caps.push(name);
            }
        }
    }
    Ok(caps)
}

/// `HostConfig.CgroupnsMode` (`--cgroupns`): whether the container gets a cgroup
/// namespace of its own (its cgroup is then its `/`). dockerd's default: private on
/// cgroup v2, the host's on v1.
pub fn private_cgroupns(host_config: &Value) -> Result<bool, EngineError> {
    match host_config["CgroupnsMode"].as_str().unwrap_or("") {
        "private" => Ok(true),
        "host" => Ok(false),
        "" => Ok(Path::new("/sys/fs/cgroup/cgroup.controllers").exists()),
        other => Err(EngineError::InvalidParameter(format!(
            "invalid cgroup namespace mode: {other}"
        ))),
    }
}

/// Builds the runtime spec.
pub fn build(input: &SpecInput<'_>) -> Result<Value, EngineError> {
    let hc = input.host_config;
    let privileged = hc["Privileged"].as_bool() == Some(true);
    let caps = capabilities(hc)?;
    let security_opts = str_list(&hc["SecurityOpt"]);
    let mut no_new_privileges = false;
    let mut seccomp_profile: Option<Vec<u8>> = Some(SECCOMP_DEFAULT.to_vec());
    for opt in &security_opts {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match key {
            "no-new-privileges" => {
                no_new_privileges = value.is_empty() || value == "true";
            }
            "seccomp" => {
                seccomp_profile = if value == "unconfined" {
                    None
                } else {
                    Some(value.as_bytes().to_vec())
                };
            }
            // No AppArmor or SELinux on this host: accepted and not applied, as dockerd
            // does when the LSM is absent.
            "apparmor" | "label" => {}
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "Invalid --security-opt: {opt:?}"
                )))
            }
        }
    }
    if privileged {
        seccomp_profile = None;
    }
    let seccomp = match seccomp_profile {
        Some(profile) => {
            let converted =
                pier_runtime::seccomp::docker_profile_to_oci(&profile, &caps).map_err(|e| {
                    EngineError::InvalidParameter(format!("Decoding seccomp profile failed: {e}"))
                })?;
            Some(serde_json::to_value(converted).unwrap_or(Value::Null))
        }
        None => None,
    };

    let shm_size = hc["ShmSize"]
        .as_u64()
        .filter(|s| *s > 0)
        .unwrap_or(64 << 20);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm_size}")]}),
    ];
    for (name, path) in input.etc_files {
        mounts.push(json!({
            "destination": format!("/etc/{name}"),
            "type": "bind",
            "source": path,
            "options": ["rbind", "rprivate"],
        }));
    }
    // Binds, mounts, tmpfs and volumes: planned and resolved by the engine.
    mounts.extend(input.user_mounts.mounts.iter().cloned());

    let network_mode = hc["NetworkMode"].as_str().unwrap_or("none");
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match network_mode {
        "host" => {}
        "none" | "" | "default" | "bridge" => namespaces.push(json!({"type": "network"})),
        other if other.starts_with("container:") => {
            // Resolved by the engine into a path before calling build().
            namespaces
                .push(json!({"type": "network", "path": other.trim_start_matches("container:")}));
        }
        other => {
            return Err(EngineError::NotFound(format!("network {other} not found")));
        }
    }
    if hc["PidMode"].as_str() == Some("host") {
        namespaces.retain(|n| n["type"] != "pid");
    }
    if hc["IpcMode"].as_str() == Some("host") {
        namespaces.retain(|n| n["type"] != "ipc");
    }
    if hc["UTSMode"].as_str() == Some("host") {
        namespaces.retain(|n| n["type"] != "uts");
    }
    if input.userns.is_some() {
        namespaces.push(json!({"type": "user"}));
    }
    if private_cgroupns(hc)? {
        namespaces.push(json!({"type": "cgroup"}));
    }
    let has_uts_namespace = namespaces.iter().any(|n| n["type"] == "uts");

    let mut resources = serde_json::Map::new();
    let mut devices = vec![json!({"allow": false, "access": "rwm"})];
    if privileged {
        devices = vec![json!({"allow": true, "access": "rwm"})];
    } else {
        for (kind, major, minor) in [
            ("c", None, None),
            ("b", None, None),
            ("c", Some(1), Some(3)),
            ("c", Some(1), Some(5)),
            ("c", Some(1), Some(7)),
            ("c", Some(5), Some(0)),
            ("c", Some(5), Some(1)),
            ("c", Some(1), Some(8)),
            ("c", Some(1), Some(9)),
            ("c", Some(136), None),
            ("c", Some(5), Some(2)),
            ("c", Some(10), Some(200)),
        ] {
            let access = if major.is_none() { "m" } else { "rwm" };
            let mut d = json!({"allow": true, "type": kind, "access": access});
            if let Some(m) = major {
                d["major"] = json!(m);
            }
            if let Some(m) = minor {
                d["minor"] = json!(m);
            }
            devices.push(d);
        }
    }
    resources.insert("devices".into(), Value::Array(devices));
    let mut memory = serde_json::Map::new();
    if let Some(m) = hc["Memory"].as_i64().filter(|m| *m > 0) {
        memory.insert("limit".into(), json!(m));
        match hc["MemorySwap"].as_i64() {
            Some(s) if s != 0 => {
                memory.insert("swap".into(), json!(s));
            }
            _ => {
                memory.insert("swap".into(), json!(m * 2));
            }
        }
    }
    if let Some(r) = hc["MemoryReservation"].as_i64().filter(|m| *m > 0) {
        memory.insert("reservation".into(), json!(r));
    }
    if hc["OomKillDisable"].as_bool() == Some(true) {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        resources.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = hc["CpuShares"].as_u64().filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(n) = hc["NanoCpus"].as_i64().filter(|n| *n > 0) {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(n * period / 1_000_000_000));
    }
    if let Some(q) = hc["CpuQuota"].as_i64().filter(|q| *q != 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = hc["CpuPeriod"].as_u64().filter(|p| *p > 0) {
        cpu.insert("period".into(), json!(p));
    }
    if let Some(c) = hc["CpusetCpus"].as_str().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = hc["CpusetMems"].as_str().filter(|c| !c.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = hc["PidsLimit"].as_i64().filter(|p| *p != 0) {
        resources.insert("pids".into(), json!({"limit": p}));
    }

    let mut rlimits = Vec::new();
    if let Some(list) = hc["Ulimits"].as_array() {
        for u in list {
            let name = u["Name"].as_str().unwrap_or_default();
            rlimits.push(json!({
                "type": format!("RLIMIT_{}", name.to_ascii_uppercase()),
                "hard": u["Hard"].as_u64().unwrap_or(0),
                "soft": u["Soft"].as_u64().unwrap_or(0),
            }));
        }
    }
    let sysctls: BTreeMap<String, String> = hc["Sysctls"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();

    let tty = input.config["Tty"].as_bool() == Some(true);
    let mut process = json!({
        "terminal": tty,
        "user": {"uid": input.uid, "gid": input.gid},
        "args": input.args,
        "env": input.env,
        "cwd": input.cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": no_new_privileges,
    });
    if !input.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(input.additional_gids);
    }
    if !rlimits.is_empty() {
        process["rlimits"] = Value::Array(rlimits);
    }
    if let Some(adj) = hc["OomScoreAdj"].as_i64().filter(|a| *a != 0) {
        process["oomScoreAdj"] = json!(adj);
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": input.cgroups_path,
        "sysctl": sysctls,
    });
    if !privileged {
        // The client's lists when it sent any (`--security-opt systempaths=unconfined`
        // sends empty ones), else Docker's defaults.
        linux["maskedPaths"] = configured_or(&hc["MaskedPaths"], &MASKED_PATHS);
        linux["readonlyPaths"] = configured_or(&hc["ReadonlyPaths"], &READONLY_PATHS);
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    if let Some(p) = input.user_mounts.rootfs_propagation {
        linux["rootfsPropagation"] = json!(p);
    }
    if let Some(mapping) = input.userns {
        let oci = |ranges: &[crate::userns::IdRange]| {
            ranges
                .iter()
                .map(|r| json!({"containerID": r.container, "hostID": r.host, "size": r.size}))
                .collect::<Vec<_>>()
        };
        linux["uidMappings"] = json!(oci(&mapping.uids));
        linux["gidMappings"] = json!(oci(&mapping.gids));
    }
    // `HostConfig.Annotations` (API 1.43) go to the runtime, as dockerd passes them.
    let annotations = hc["Annotations"].as_object().cloned().unwrap_or_default();
    Ok(json!({
        "ociVersion": "1.2.0",
        "annotations": annotations,
        "process": process,
        "root": {
            "path": input.rootfs,
            "readonly": hc["ReadonlyRootfs"].as_bool() == Some(true),
        },
        // In the host's UTS namespace the host's name stays (dockerd sets none).
        "hostname": if has_uts_namespace { input.hostname.as_str() } else { "" },
        "mounts": mounts,
        "linux": linux,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_add_drop_like_docker() {
        let caps = capabilities(&json!({"CapDrop": ["chown"], "CapAdd": ["NET_ADMIN"]})).unwrap();
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        let caps = capabilities(&json!({"CapDrop": ["ALL"], "CapAdd": ["kill"]})).unwrap();
        assert_eq!(caps, vec!["CAP_KILL".to_string()]);
        assert!(capabilities(&json!({"CapAdd": ["NOPE"]})).is_err());
        assert_eq!(
            capabilities(&json!({"Privileged": true})).unwrap().len(),
            pier_runtime::caps::NAMES.len()
        );
    }
}
