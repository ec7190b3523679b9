//! Container objects of the Engine API: the create body (`ContainerConfig` with
//! `HostConfig` and `NetworkingConfig`), the update body, and their parts, named as in
//! the swagger (`docker-engine-api.yaml`).
//!
//! Every field is an `Option`: absent and `null` are both Docker's zero value (clients
//! send `null` for empty lists and maps), and `None` is not written back, so a body
//! read and written again gives what was sent (less its `null`s). Fields this model
//! does not name are kept in each object's `extra` map. Fields that only some API
//! versions carry are in [`crate::versioned`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::mount::Extra;
use crate::mount::Mount;
pub use crate::network::{EndpointIpamConfig, EndpointSettings, NetworkingConfig};
use crate::versioned::{LegacyConfig, LegacyResources};

/// `ContainerConfig` (Go's `container.Config`): what a container runs, independent of
/// the host. The top level of a create body, and a commit's body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_stdin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_stdout: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_stderr: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Option<Extra>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Option<Extra>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub shell: Option<Vec<String>>,
    /// Fields older API versions carry (`MacAddress`).
    #[serde(flatten)]
    pub legacy: LegacyConfig,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `Resources`: a container's cgroup limits, devices and ulimits. Part of
/// [`HostConfig`], and the update body. It has no `extra` map of its own: it is always
/// flattened into an object that keeps the unknown fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_weight_device: Option<Vec<WeightDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_device_read_bps: Option<Vec<ThrottleDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_device_write_bps: Option<Vec<ThrottleDevice>>,
    #[serde(
        rename = "BlkioDeviceReadIOps",
        skip_serializing_if = "Option::is_none"
    )]
    pub blkio_device_read_iops: Option<Vec<ThrottleDevice>>,
    #[serde(
        rename = "BlkioDeviceWriteIOps",
        skip_serializing_if = "Option::is_none"
    )]
    pub blkio_device_write_iops: Option<Vec<ThrottleDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_realtime_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_realtime_runtime: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset_mems: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<DeviceMapping>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_cgroup_rules: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_requests: Option<Vec<DeviceRequest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<i64>,
    #[serde(rename = "IOMaximumIOps", skip_serializing_if = "Option::is_none")]
    pub io_maximum_iops: Option<u64>,
    #[serde(rename = "IOMaximumBandwidth", skip_serializing_if = "Option::is_none")]
    pub io_maximum_bandwidth: Option<u64>,
}

/// `HostConfig`: how the host runs a container (swagger: `allOf` [`Resources`] and its
/// own properties).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile", skip_serializing_if = "Option::is_none")]
    pub container_id_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_config: Option<LogConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_bindings: Option<PortMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_remove: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_driver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_size: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub cap_add: Option<Vec<String>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub cap_drop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroupns_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_options: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_search: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_add: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_all_ports: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_rootfs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_opt: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_opt: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode", skip_serializing_if = "Option::is_none")]
    pub uts_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    #[serde(flatten)]
    pub resources: Resources,
    /// Resource fields older API versions carry (`KernelMemory`, `KernelMemoryTCP`).
    #[serde(flatten)]
    pub legacy: LegacyResources,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `PortMap`: container port (`80/tcp`) to host bindings; `null` means exposed but
/// not published.
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

/// The body of `POST /containers/create`: a [`ContainerConfig`] with the host's and the
/// networks' parts. Unknown top-level fields are kept in `config.extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerCreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_config: Option<HostConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<NetworkingConfig>,
}

/// The body of `POST /containers/{id}/update`: [`Resources`] and a restart policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerUpdateRequest {
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(flatten)]
    pub legacy: LegacyResources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `RestartPolicy`: `""`/`no`, `always`, `unless-stopped`, `on-failure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RestartPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_count: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `DeviceMapping` (`--device HOST[:CONTAINER[:PERMISSIONS]]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DeviceMapping {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_on_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_in_container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_permissions: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `DeviceRequest` (`--gpus`, CDI devices).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DeviceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(rename = "DeviceIDs", skip_serializing_if = "Option::is_none")]
    pub device_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ThrottleDevice`: a rate limit on a block device (`--device-read-bps` and kin).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ThrottleDevice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An entry of `BlkioWeightDevice` (Go's `blkiodev.WeightDevice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct WeightDevice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An entry of `Ulimits` (`--ulimit NAME=SOFT[:HARD]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Ulimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `HostConfig.LogConfig`: the log driver and its options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `PortBinding`: one host address and port for a container port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PortBinding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `HealthConfig` (`Config.Healthcheck`); durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Docker's `strslice.StrSlice` (`Cmd`, `Entrypoint`, `Shell`, `CapAdd`, `CapDrop`):
/// a list of strings, or one string taken as a one-element list.
fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct StrSlice;
    impl<'de> serde::de::Visitor<'de> for StrSlice {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![s.to_string()]))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(Some(items))
        }
    }
    d.deserialize_option(StrSlice)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(body: Value) -> (T, Value) {
        let typed: T = serde_json::from_value(body).expect("parses");
        let again = serde_json::to_value(&typed).expect("serializes");
        (typed, again)
    }

    #[test]
    fn a_full_create_body_round_trips() {
        let body = json!({
            "Hostname": "h", "Domainname": "d", "User": "1:2", "Tty": true,
            "Env": ["A=1"], "Cmd": ["sh", "-c", "true"], "Image": "busybox",
            "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
            "Labels": {"a": "b"}, "StopTimeout": 3, "StopSignal": "SIGINT",
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000, "Retries": 2},
            "MacAddress": "02:42:ac:11:00:02",
            "FutureConfigField": [1, 2.5],
            "HostConfig": {
                "Binds": ["/a:/b:ro"], "Memory": 104857600, "NanoCpus": 500000000,
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "81/tcp": null},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rwm"}],
                "DeviceRequests": [{"Driver": "cdi", "Count": -1, "DeviceIDs": ["v.com/c=x"], "Capabilities": [["gpu"]], "Options": {}}],
                "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 300}],
                "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1048576}],
                "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                "Mounts": [{"Type": "tmpfs", "Target": "/t"}],
                "ConsoleSize": [24, 80], "Init": true, "PidsLimit": -1,
                "KernelMemory": 0, "Isolation": "", "HostFutureField": {"x": 1},
            },
            "NetworkingConfig": {"EndpointsConfig": {"n1": {
                "Aliases": ["db"], "IPAMConfig": {"IPv4Address": "10.0.0.2", "LinkLocalIPs": []},
                "MacAddress": "02:00:00:00:00:01", "GwPriority": 1, "EndpointFuture": true,
            }}},
        });
        let (req, again) = round_trip::<ContainerCreateRequest>(body.clone());
        assert_eq!(again, body);
        assert_eq!(
            req.config.legacy.mac_address.as_deref(),
            Some("02:42:ac:11:00:02")
        );
        assert_eq!(
            req.config.extra.keys().collect::<Vec<_>>(),
            ["FutureConfigField"]
        );
        let hc = req.host_config.expect("host config");
        assert_eq!(hc.resources.memory, Some(104857600));
        assert_eq!(hc.legacy.kernel_memory, Some(0));
        // Fields claimed by the flattened parts do not land in `extra` as well.
        assert_eq!(hc.extra.keys().collect::<Vec<_>>(), ["HostFutureField"]);
        let port = &hc.port_bindings.expect("ports")["80/tcp"];
        assert_eq!(port.as_ref().unwrap()[0].host_port.as_deref(), Some("8080"));
        let endpoint = &req.networking_config.unwrap().endpoints_config.unwrap()["n1"];
        assert_eq!(
            endpoint
                .ipam_config
                .as_ref()
                .unwrap()
                .ipv4_address
                .as_deref(),
            Some("10.0.0.2")
        );
        assert!(endpoint.extra.contains_key("EndpointFuture"));
    }

    #[test]
    fn an_update_body_round_trips() {
        let body = json!({
            "Memory": 1, "CpuShares": 512, "RestartPolicy": {"Name": "always"},
            "KernelMemoryTCP": 5, "Future": "x",
        });
        let (req, again) = round_trip::<ContainerUpdateRequest>(body.clone());
        assert_eq!(again, body);
        assert_eq!(req.resources.cpu_shares, Some(512));
        assert_eq!(req.legacy.kernel_memory_tcp, Some(5));
        assert_eq!(req.extra.keys().collect::<Vec<_>>(), ["Future"]);
    }

    #[test]
    fn nulls_are_zero_values_and_str_slices_take_one_string() {
        let req: ContainerCreateRequest = serde_json::from_value(json!({
            "Image": "busybox", "Env": null, "Cmd": "echo hi", "Entrypoint": null,
            "Labels": null, "HostConfig": {"Binds": null, "CapAdd": "NET_ADMIN", "Memory": null},
            "NetworkingConfig": null,
        }))
        .expect("parses");
        assert_eq!(req.config.env, None);
        assert_eq!(req.config.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(req.config.entrypoint, None);
        let hc = req.host_config.unwrap();
        assert_eq!(hc.cap_add, Some(vec!["NET_ADMIN".to_string()]));
        assert_eq!(hc.resources.memory, None);
        assert!(hc.extra.is_empty() && req.config.extra.is_empty());
        assert_eq!(req.networking_config, None);
    }

    #[test]
    fn wrong_types_are_refused() {
        for body in [
            json!({"Labels": {"a": 1}}),
            json!({"Env": "a"}),
            json!({"Cmd": 5}),
            json!({"Cmd": [1]}),
            json!({"StopTimeout": 1.5}),
            json!({"HostConfig": {"Binds": 7}}),
            json!({"HostConfig": {"Memory": "x"}}),
            json!({"HostConfig": {"BlkioWeight": -1}}),
            json!({"HostConfig": {"KernelMemory": "x"}}),
            json!({"HostConfig": {"RestartPolicy": "always"}}),
            json!({"NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}}),
        ] {
            assert!(
                serde_json::from_value::<ContainerCreateRequest>(body.clone()).is_err(),
                "{body}"
            );
        }
        assert!(serde_json::from_value::<ContainerUpdateRequest>(json!({"Memory": "1g"})).is_err());
    }
}
