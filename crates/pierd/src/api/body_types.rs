//! Type checks of request bodies, before anything reads them: every field pierd reads
//! from a container create, update or commit config, a network create, connect or
//! disconnect, and an exec create or start must have the JSON type of Docker's model,
//! or the request is refused with 400 and the message dockerd's JSON decoder gives
//! (`json: cannot unmarshal string into Go value of type container.HostConfig`).
//! So nothing of a wrong type is stored, and no handler meets a shape it did not
//! expect. As in Go, `null` is every field's zero value and unknown fields are
//! ignored. Docker's `strslice.StrSlice` fields (`Cmd`, `Entrypoint`, `Shell`,
//! `CapAdd`, `CapDrop`) also take a single string, made a one-element list here.
//!
//! A typed model of the whole API replaces this later; until then this table names the
//! types, as `docker-engine-api.yaml` gives them.

use serde_json::Value;

use super::ApiError;

/// A JSON type of Docker's model.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    Bool,
    /// A signed integer (Go's `int`, `int64`, `time.Duration`).
    Int,
    /// An unsigned integer (Go's `uint`, `uint16`, `uint64`).
    Uint,
    /// A list of strings, or one string (Docker's `strslice.StrSlice`).
    StrSlice,
    List(&'static Ty),
    /// An object whose values all have one type (a Go map).
    Map(&'static Ty),
    /// A Go struct: its type name and its fields.
    Struct(&'static str, &'static [(&'static str, Ty)]),
}

use Ty::{Bool, Int, Str, StrSlice, Uint};

const STR_LIST: Ty = Ty::List(&Str);
const STR_MAP: Ty = Ty::Map(&Str);
/// `map[string]struct{}` (`ExposedPorts`, `Volumes`).
const SET: Ty = Ty::Map(&Ty::Struct("struct {}", &[]));
/// `[2]uint` (`ConsoleSize`).
const SIZE: Ty = Ty::List(&Uint);

const HEALTHCHECK: Ty = Ty::Struct(
    "container.HealthConfig",
    &[
        ("Test", STR_LIST),
        ("Interval", Int),
        ("Timeout", Int),
        ("StartPeriod", Int),
        ("StartInterval", Int),
        ("Retries", Int),
    ],
);

/// `container.Config`: the create body's top level, and commit's body.
const CONFIG_FIELDS: &[(&str, Ty)] = &[
    ("Hostname", Str),
    ("Domainname", Str),
    ("User", Str),
    ("AttachStdin", Bool),
    ("AttachStdout", Bool),
    ("AttachStderr", Bool),
    ("ExposedPorts", SET),
    ("Tty", Bool),
    ("OpenStdin", Bool),
    ("StdinOnce", Bool),
    ("Env", STR_LIST),
    ("Cmd", StrSlice),
    ("Healthcheck", HEALTHCHECK),
    ("ArgsEscaped", Bool),
    ("Image", Str),
    ("Volumes", SET),
    ("WorkingDir", Str),
    ("Entrypoint", StrSlice),
    ("NetworkDisabled", Bool),
    ("MacAddress", Str),
    ("OnBuild", STR_LIST),
    ("Labels", STR_MAP),
    ("StopSignal", Str),
    ("StopTimeout", Int),
    ("Shell", StrSlice),
];

const CONFIG: Ty = Ty::Struct("container.Config", CONFIG_FIELDS);

const RESTART_POLICY: Ty = Ty::Struct(
    "container.RestartPolicy",
    &[("Name", Str), ("MaximumRetryCount", Int)],
);

const WEIGHT_DEVICE: Ty = Ty::Struct("blkiodev.WeightDevice", &[("Path", Str), ("Weight", Uint)]);
const THROTTLE_DEVICE: Ty = Ty::Struct("blkiodev.ThrottleDevice", &[("Path", Str), ("Rate", Uint)]);

/// `container.Resources`: part of `HostConfig`, and the update body.
const RESOURCES_FIELDS: &[(&str, Ty)] = &[
    ("CpuShares", Int),
    ("Memory", Int),
    ("NanoCpus", Int),
    ("CgroupParent", Str),
    ("BlkioWeight", Uint),
    ("BlkioWeightDevice", Ty::List(&WEIGHT_DEVICE)),
    ("BlkioDeviceReadBps", Ty::List(&THROTTLE_DEVICE)),
    ("BlkioDeviceWriteBps", Ty::List(&THROTTLE_DEVICE)),
    ("BlkioDeviceReadIOps", Ty::List(&THROTTLE_DEVICE)),
    ("BlkioDeviceWriteIOps", Ty::List(&THROTTLE_DEVICE)),
    ("CpuPeriod", Int),
    ("CpuQuota", Int),
    ("CpuRealtimePeriod", Int),
    ("CpuRealtimeRuntime", Int),
    ("CpusetCpus", Str),
    ("CpusetMems", Str),
    (
        "Devices",
        Ty::List(&Ty::Struct(
            "container.DeviceMapping",
            &[
                ("PathOnHost", Str),
                ("PathInContainer", Str),
                ("CgroupPermissions", Str),
            ],
        )),
    ),
    ("DeviceCgroupRules", STR_LIST),
    (
        "DeviceRequests",
        Ty::List(&Ty::Struct(
            "container.DeviceRequest",
            &[
                ("Driver", Str),
                ("Count", Int),
                ("DeviceIDs", STR_LIST),
                ("Capabilities", Ty::List(&STR_LIST)),
                ("Options", STR_MAP),
            ],
        )),
    ),
    ("KernelMemoryTCP", Int),
    ("MemoryReservation", Int),
    ("MemorySwap", Int),
    ("MemorySwappiness", Int),
    ("OomKillDisable", Bool),
    ("PidsLimit", Int),
    (
        "Ulimits",
        Ty::List(&Ty::Struct(
            "container.Ulimit",
            &[("Name", Str), ("Soft", Int), ("Hard", Int)],
        )),
    ),
    ("CpuCount", Int),
    ("CpuPercent", Int),
    ("IOMaximumIOps", Uint),
    ("IOMaximumBandwidth", Uint),
];

const MOUNT: Ty = Ty::Struct(
    "mount.Mount",
    &[
        ("Type", Str),
        ("Source", Str),
        ("Target", Str),
        ("ReadOnly", Bool),
        ("Consistency", Str),
        (
            "BindOptions",
            Ty::Struct(
                "mount.BindOptions",
                &[
                    ("Propagation", Str),
                    ("NonRecursive", Bool),
                    ("CreateMountpoint", Bool),
                    ("ReadOnlyNonRecursive", Bool),
                    ("ReadOnlyForceRecursive", Bool),
                ],
            ),
        ),
        (
            "VolumeOptions",
            Ty::Struct(
                "mount.VolumeOptions",
                &[
                    ("NoCopy", Bool),
                    ("Labels", STR_MAP),
                    ("Subpath", Str),
                    (
                        "DriverConfig",
                        Ty::Struct("mount.Driver", &[("Name", Str), ("Options", STR_MAP)]),
                    ),
                ],
            ),
        ),
        (
            "ImageOptions",
            Ty::Struct("mount.ImageOptions", &[("Subpath", Str)]),
        ),
        (
            "TmpfsOptions",
            Ty::Struct(
                "mount.TmpfsOptions",
                &[
                    ("SizeBytes", Int),
                    ("Mode", Uint),
                    ("Options", Ty::List(&STR_LIST)),
                ],
            ),
        ),
    ],
);

/// `container.HostConfig` less its resources (checked with [`RESOURCES_FIELDS`]).
const HOST_CONFIG_FIELDS: &[(&str, Ty)] = &[
    ("Binds", STR_LIST),
    ("ContainerIDFile", Str),
    (
        "LogConfig",
        Ty::Struct("container.LogConfig", &[("Type", Str), ("Config", STR_MAP)]),
    ),
    ("NetworkMode", Str),
    (
        "PortBindings",
        Ty::Map(&Ty::List(&Ty::Struct(
            "nat.PortBinding",
            &[("HostIp", Str), ("HostPort", Str)],
        ))),
    ),
    ("RestartPolicy", RESTART_POLICY),
    ("AutoRemove", Bool),
    ("VolumeDriver", Str),
    ("VolumesFrom", STR_LIST),
    ("ConsoleSize", SIZE),
    ("Annotations", STR_MAP),
    ("CapAdd", StrSlice),
    ("CapDrop", StrSlice),
    ("CgroupnsMode", Str),
    ("Dns", STR_LIST),
    ("DnsOptions", STR_LIST),
    ("DnsSearch", STR_LIST),
    ("ExtraHosts", STR_LIST),
    ("GroupAdd", STR_LIST),
    ("IpcMode", Str),
    ("Cgroup", Str),
    ("Links", STR_LIST),
    ("OomScoreAdj", Int),
    ("PidMode", Str),
    ("Privileged", Bool),
    ("PublishAllPorts", Bool),
    ("ReadonlyRootfs", Bool),
    ("SecurityOpt", STR_LIST),
    ("StorageOpt", STR_MAP),
    ("Tmpfs", STR_MAP),
    ("UTSMode", Str),
    ("UsernsMode", Str),
    ("ShmSize", Int),
    ("Sysctls", STR_MAP),
    ("Runtime", Str),
    ("Isolation", Str),
    ("Mounts", Ty::List(&MOUNT)),
    ("MaskedPaths", STR_LIST),
    ("ReadonlyPaths", STR_LIST),
    ("Init", Bool),
];

const ENDPOINT_SETTINGS: Ty = Ty::Struct(
    "network.EndpointSettings",
    &[
        (
            "IPAMConfig",
            Ty::Struct(
                "network.EndpointIPAMConfig",
                &[
                    ("IPv4Address", Str),
                    ("IPv6Address", Str),
                    ("LinkLocalIPs", STR_LIST),
                ],
            ),
        ),
        ("Links", STR_LIST),
        ("Aliases", STR_LIST),
        ("DriverOpts", STR_MAP),
        ("GwPriority", Int),
        ("NetworkID", Str),
        ("EndpointID", Str),
        ("Gateway", Str),
        ("IPAddress", Str),
        ("IPPrefixLen", Int),
        ("IPv6Gateway", Str),
        ("GlobalIPv6Address", Str),
        ("GlobalIPv6PrefixLen", Int),
        ("MacAddress", Str),
        ("DNSNames", STR_LIST),
    ],
);

const NETWORKING_CONFIG: Ty = Ty::Struct(
    "network.NetworkingConfig",
    &[("EndpointsConfig", Ty::Map(&ENDPOINT_SETTINGS))],
);

const NETWORK_CREATE: Ty = Ty::Struct(
    "network.CreateRequest",
    &[
        ("Name", Str),
        ("CheckDuplicate", Bool),
        ("Driver", Str),
        ("Scope", Str),
        ("EnableIPv4", Bool),
        ("EnableIPv6", Bool),
        (
            "IPAM",
            Ty::Struct(
                "network.IPAM",
                &[
                    ("Driver", Str),
                    ("Options", STR_MAP),
                    (
                        "Config",
                        Ty::List(&Ty::Struct(
                            "network.IPAMConfig",
                            &[
                                ("Subnet", Str),
                                ("IPRange", Str),
                                ("Gateway", Str),
                                ("AuxiliaryAddresses", STR_MAP),
                            ],
                        )),
                    ),
                ],
            ),
        ),
        ("Internal", Bool),
        ("Attachable", Bool),
        ("Ingress", Bool),
        ("ConfigOnly", Bool),
        (
            "ConfigFrom",
            Ty::Struct("network.ConfigReference", &[("Network", Str)]),
        ),
        ("Options", STR_MAP),
        ("Labels", STR_MAP),
    ],
);

const NETWORK_CONNECT: Ty = Ty::Struct(
    "network.ConnectOptions",
    &[("Container", Str), ("EndpointConfig", ENDPOINT_SETTINGS)],
);

const NETWORK_DISCONNECT: Ty = Ty::Struct(
    "network.DisconnectOptions",
    &[("Container", Str), ("Force", Bool)],
);

const EXEC_CREATE: Ty = Ty::Struct(
    "container.ExecOptions",
    &[
        ("User", Str),
        ("Privileged", Bool),
        ("Tty", Bool),
        ("ConsoleSize", SIZE),
        ("AttachStdin", Bool),
        ("AttachStderr", Bool),
        ("AttachStdout", Bool),
        ("DetachKeys", Str),
        ("Env", STR_LIST),
        ("WorkingDir", Str),
        ("Cmd", STR_LIST),
    ],
);

const EXEC_START: Ty = Ty::Struct(
    "container.ExecStartOptions",
    &[("Detach", Bool), ("Tty", Bool), ("ConsoleSize", SIZE)],
);

/// `POST /containers/create`: `container.Config` with `HostConfig` (resources
/// included) and `NetworkingConfig`.
pub fn container_create(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, CONFIG)?;
    const HOST_CONFIG: Ty = Ty::Struct("container.HostConfig", HOST_CONFIG_FIELDS);
    if let Some(hc) = body.get_mut("HostConfig") {
        top_level(hc, HOST_CONFIG)?;
        top_level(hc, Ty::Struct("container.HostConfig", RESOURCES_FIELDS))?;
    }
    if let Some(nc) = body.get_mut("NetworkingConfig") {
        top_level(nc, NETWORKING_CONFIG)?;
    }
    Ok(())
}

/// `POST /containers/{id}/update`: `container.Resources` and a `RestartPolicy`.
pub fn container_update(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, Ty::Struct("container.UpdateConfig", RESOURCES_FIELDS))?;
    top_level(
        body,
        Ty::Struct(
            "container.UpdateConfig",
            &[("RestartPolicy", RESTART_POLICY)],
        ),
    )
}

/// `POST /commit`: the new image's `container.Config`.
pub fn commit_config(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, CONFIG)
}

/// `POST /networks/create`.
pub fn network_create(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, NETWORK_CREATE)
}

/// `POST /networks/{id}/connect`.
pub fn network_connect(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, NETWORK_CONNECT)
}

/// `POST /networks/{id}/disconnect`.
pub fn network_disconnect(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, NETWORK_DISCONNECT)
}

/// `POST /containers/{id}/exec`.
pub fn exec_create(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, EXEC_CREATE)
}

/// `POST /exec/{id}/start`.
pub fn exec_start(body: &mut Value) -> Result<(), ApiError> {
    top_level(body, EXEC_START)
}

/// A whole body (or a section of it, such as `HostConfig`) of struct type `ty`. A
/// `null` section is the struct's zero value: an empty object.
fn top_level(value: &mut Value, ty: Ty) -> Result<(), ApiError> {
    let Ty::Struct(go, fields) = ty else {
        return check(value, ty, "", "");
    };
    if value.is_null() {
        *value = Value::Object(serde_json::Map::new());
    }
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type {go}",
            kind(value, ty)
        )));
    };
    struct_fields(object, short_name(go), "", fields)
}

fn struct_fields(
    object: &mut serde_json::Map<String, Value>,
    struct_name: &str,
    path: &str,
    fields: &[(&str, Ty)],
) -> Result<(), ApiError> {
    for (name, ty) in fields {
        if let Some(v) = object.get_mut(*name) {
            let field = if path.is_empty() {
                (*name).to_string()
            } else {
                format!("{path}.{name}")
            };
            check(v, *ty, struct_name, &field)?;
        }
    }
    Ok(())
}

/// Checks `value` against `ty`; `struct_name` and `field` say where, for the message.
fn check(value: &mut Value, ty: Ty, struct_name: &str, field: &str) -> Result<(), ApiError> {
    if value.is_null() {
        return Ok(());
    }
    let fits = match (ty, &mut *value) {
        (Str, Value::String(_)) | (Bool, Value::Bool(_)) => true,
        (Int, Value::Number(n)) => n.is_i64(),
        (Uint, Value::Number(n)) => n.is_u64(),
        (StrSlice, Value::String(s)) => {
            *value = Value::Array(vec![Value::String(std::mem::take(s))]);
            true
        }
        (StrSlice, Value::Array(items)) => {
            for item in items {
                check(item, Str, struct_name, field)?;
            }
            true
        }
        (Ty::List(inner), Value::Array(items)) => {
            for item in items {
                check(item, *inner, struct_name, field)?;
            }
            true
        }
        (Ty::Map(inner), Value::Object(entries)) => {
            for item in entries.values_mut() {
                check(item, *inner, struct_name, field)?;
            }
            true
        }
        (Ty::Struct(go, fields), Value::Object(object)) => {
            let name = if go.contains('.') {
                short_name(go)
            } else {
                struct_name
            };
            struct_fields(object, name, field, fields)?;
            true
        }
        _ => false,
    };
    if fits {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "json: cannot unmarshal {} into Go struct field {struct_name}.{field} of type {}",
        kind(value, ty),
        go_type(ty)
    )))
}

/// `container.HostConfig` → `HostConfig`.
fn short_name(go: &str) -> &str {
    go.rsplit('.').next().unwrap_or(go)
}

/// What Go's decoder calls a JSON value in its errors: a number that does not fit
/// an integer field is named with its value.
fn kind(value: &Value, ty: Ty) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Number(n) if matches!(ty, Int | Uint) => format!("number {n}"),
        Value::Number(_) => "number".into(),
    }
}

/// The Go type of `ty`, as the decoder names it.
fn go_type(ty: Ty) -> String {
    match ty {
        Str => "string".into(),
        Bool => "bool".into(),
        Int => "int64".into(),
        Uint => "uint64".into(),
        StrSlice => "strslice.StrSlice".into(),
        Ty::List(inner) => format!("[]{}", go_type(*inner)),
        Ty::Map(inner) => format!("map[string]{}", go_type(*inner)),
        Ty::Struct(go, _) => go.into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn create(mut body: Value) -> Result<Value, String> {
        container_create(&mut body).map(|()| body).map_err(|e| {
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            e.message
        })
    }

    #[test]
    fn wrong_types_are_refused_with_go_messages() {
        assert_eq!(
            create(json!({"Image": "busybox", "HostConfig": "x"})).unwrap_err(),
            "json: cannot unmarshal string into Go value of type container.HostConfig"
        );
        assert_eq!(
            create(json!({"Image": "busybox", "Labels": {"a": 1}})).unwrap_err(),
            "json: cannot unmarshal number into Go struct field Config.Labels of type string"
        );
        assert_eq!(
            create(json!({"Image": "busybox", "Env": "A=1"})).unwrap_err(),
            "json: cannot unmarshal string into Go struct field Config.Env of type []string"
        );
        assert_eq!(
            create(json!({"Image": "busybox", "Cmd": 5})).unwrap_err(),
            "json: cannot unmarshal number into Go struct field Config.Cmd of type strslice.StrSlice"
        );
        assert_eq!(
            create(json!({"HostConfig": {"RestartPolicy": {"MaximumRetryCount": 1.5}}}))
                .unwrap_err(),
            "json: cannot unmarshal number 1.5 into Go struct field RestartPolicy.RestartPolicy.MaximumRetryCount of type int64"
        );
        assert_eq!(
            create(json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}))
                .unwrap_err(),
            "json: cannot unmarshal number into Go struct field PortBinding.PortBindings.HostPort of type string"
        );
        assert_eq!(
            create(json!({"HostConfig": {"ConsoleSize": [-1, 2]}})).unwrap_err(),
            "json: cannot unmarshal number -1 into Go struct field HostConfig.ConsoleSize of type uint64"
        );
        assert!(create(json!({"NetworkingConfig": {"EndpointsConfig": []}})).is_err());
        assert!(create(json!([])).is_err());
    }

    #[test]
    fn nulls_and_unknown_fields_pass_and_strslices_become_lists() {
        let body = create(json!({
            "Image": "busybox",
            "Cmd": "echo hi",
            "Env": null,
            "HostConfig": null,
            "Whatever": {"x": 1},
            "Labels": {"a": "b"},
        }))
        .unwrap();
        assert_eq!(body["Cmd"], json!(["echo hi"]));
        assert_eq!(body["HostConfig"], json!({}));
        assert_eq!(body["Whatever"], json!({"x": 1}));
    }

    #[test]
    fn other_bodies() {
        let mut v = json!({"Memory": "1g"});
        assert!(container_update(&mut v).is_err());
        let mut v = json!({"RestartPolicy": "always"});
        assert!(container_update(&mut v).is_err());
        let mut v = json!({"IPAM": {"Config": [{"Subnet": 10}]}});
        assert!(network_create(&mut v).is_err());
        let mut v = json!({"Container": "x", "EndpointConfig": {"Aliases": "a"}});
        assert!(network_connect(&mut v).is_err());
        let mut v = json!({"Container": 1});
        assert!(network_disconnect(&mut v).is_err());
        let mut v = json!({"Cmd": "sh"});
        assert!(exec_create(&mut v).is_err());
        let mut v = json!({"Cmd": ["sh"], "Env": ["A=1"], "Tty": false});
        assert!(exec_create(&mut v).is_ok());
        let mut v = json!({"Detach": "yes"});
        assert!(exec_start(&mut v).is_err());
        let mut v = json!({"Healthcheck": {"Test": "true"}});
        assert!(commit_config(&mut v).is_err());
    }
}
