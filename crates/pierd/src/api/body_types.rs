//! Request bodies read as Docker's model. The container create and update bodies are
//! parsed into `pier_api`'s typed structs ([`parse_container_create`],
//! [`parse_container_update`]); what does not fit is refused with 400 and the message
//! dockerd's JSON decoder gives (`json: cannot unmarshal string into Go value of type
//! container.HostConfig`), phrased from the table of Go types below, so nothing of a
//! wrong type is stored. The other bodies (commit, network create, connect,
//! disconnect, exec create and start) are checked against the table only. As in Go,
//! `null` is every field's zero value and unknown fields are kept. Docker's
//! `strslice.StrSlice` fields (`Cmd`, `Entrypoint`, `Shell`, `CapAdd`, `CapDrop`) also
//! take a single string, made a one-element list here.
//!
//! The table names the Go types as dockerd's messages name them (`int64`,
//! `strslice.StrSlice`, `container.HealthConfig`), which serde's errors do not.

use pier_api::container::{ContainerCreateRequest, ContainerUpdateRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// A JSON type of Docker's model.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    Bool,
    /// A signed integer (Go's `int`, `int64`, `time.Duration`).
    Int,
    /// An unsigned integer (Go's `uint`, `uint64`).
    Uint,
    /// Go's `uint16`.
    U16,
    /// A list of strings, or one string (Docker's `strslice.StrSlice`).
    StrSlice,
    List(&'static Ty),
    /// An object whose values all have one type (a Go map).
    Map(&'static Ty),
    /// A Go struct: its type name and its fields.
    Struct(&'static str, &'static [(&'static str, Ty)]),
    /// A Go type of its own name (`time.Duration`, `nat.PortSet`) over a JSON type.
    Named(&'static str, &'static Ty),
}

impl Ty {
    /// The JSON type under any names.
    fn base(self) -> Ty {
        match self {
            Ty::Named(_, inner) => inner.base(),
            other => other,
        }
    }
}

use Ty::{Bool, Int, Str, StrSlice, Uint, U16};

/// Go's `int` (as wide as `int64` here, named apart in messages).
const GO_INT: Ty = Ty::Named("int", &Int);
const DURATION: Ty = Ty::Named("time.Duration", &Int);

const STR_LIST: Ty = Ty::List(&Str);
const STR_MAP: Ty = Ty::Map(&Str);
/// `map[string]struct{}` (`ExposedPorts`, `Volumes`).
const SET: Ty = Ty::Map(&Ty::Struct("struct {}", &[]));
/// `[2]uint` (`ConsoleSize`).
const SIZE: Ty = Ty::List(&Ty::Named("uint", &Uint));

const HEALTHCHECK: Ty = Ty::Struct(
    "container.HealthConfig",
    &[
        ("Test", STR_LIST),
        ("Interval", DURATION),
        ("Timeout", DURATION),
        ("StartPeriod", DURATION),
        ("StartInterval", DURATION),
        ("Retries", GO_INT),
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
    ("ExposedPorts", Ty::Named("nat.PortSet", &SET)),
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
    ("StopTimeout", GO_INT),
    ("Shell", StrSlice),
];

const CONFIG: Ty = Ty::Struct("container.Config", CONFIG_FIELDS);

const RESTART_POLICY: Ty = Ty::Struct(
    "container.RestartPolicy",
    &[("Name", Str), ("MaximumRetryCount", GO_INT)],
);

const WEIGHT_DEVICE: Ty = Ty::Struct("blkiodev.WeightDevice", &[("Path", Str), ("Weight", U16)]);
const THROTTLE_DEVICE: Ty = Ty::Struct("blkiodev.ThrottleDevice", &[("Path", Str), ("Rate", Uint)]);

/// `container.Resources`: part of `HostConfig`, and the update body.
const RESOURCES_FIELDS: &[(&str, Ty)] = &[
    ("CpuShares", Int),
    ("Memory", Int),
    ("NanoCpus", Int),
    ("CgroupParent", Str),
    ("BlkioWeight", U16),
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
                ("Count", GO_INT),
                ("DeviceIDs", STR_LIST),
                ("Capabilities", Ty::List(&STR_LIST)),
                ("Options", STR_MAP),
            ],
        )),
    ),
    // API versions before 1.42 (pier_api::versioned).
    ("KernelMemory", Int),
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
        ("Type", Ty::Named("mount.Type", &Str)),
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
    ("NetworkMode", Ty::Named("container.NetworkMode", &Str)),
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
    ("CgroupnsMode", Ty::Named("container.CgroupnsMode", &Str)),
    ("Dns", STR_LIST),
    ("DnsOptions", STR_LIST),
    ("DnsSearch", STR_LIST),
    ("ExtraHosts", STR_LIST),
    ("GroupAdd", STR_LIST),
    ("IpcMode", Ty::Named("container.IpcMode", &Str)),
    ("Cgroup", Ty::Named("container.CgroupSpec", &Str)),
    ("Links", STR_LIST),
    ("OomScoreAdj", Int),
    ("PidMode", Ty::Named("container.PidMode", &Str)),
    ("Privileged", Bool),
    ("PublishAllPorts", Bool),
    ("ReadonlyRootfs", Bool),
    ("SecurityOpt", STR_LIST),
    ("StorageOpt", STR_MAP),
    ("Tmpfs", STR_MAP),
    ("UTSMode", Ty::Named("container.UTSMode", &Str)),
    ("UsernsMode", Ty::Named("container.UsernsMode", &Str)),
    ("ShmSize", Int),
    ("Sysctls", STR_MAP),
    ("Runtime", Str),
    ("Isolation", Ty::Named("container.Isolation", &Str)),
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
        ("IPPrefixLen", GO_INT),
        ("IPv6Gateway", Str),
        ("GlobalIPv6Address", Str),
        ("GlobalIPv6PrefixLen", GO_INT),
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

/// `POST /containers/create`'s body, typed; a field of the wrong type is a 400 in Go's
/// words.
pub fn parse_container_create(body: &Value) -> Result<ContainerCreateRequest, ApiError> {
    typed(body, container_create)
}

/// `POST /containers/{id}/update`'s body, typed.
pub fn parse_container_update(body: &Value) -> Result<ContainerUpdateRequest, ApiError> {
    typed(body, container_update)
}

/// A typed body part as JSON again, for the code that still reads JSON.
pub fn to_json<T: serde::Serialize>(part: &T) -> Result<Value, ApiError> {
    serde_json::to_value(part).map_err(|e| ApiError::internal(format!("re-encoding a body: {e}")))
}

/// `body` as a `T`, or a 400: in dockerd's words where the table of Go types has the
/// field, else naming the field that does not fit and serde's reason.
fn typed<T: DeserializeOwned>(
    body: &Value,
    go_words: fn(&mut Value) -> Result<(), ApiError>,
) -> Result<T, ApiError> {
    let error = match T::deserialize(body) {
        Ok(typed) => return Ok(typed),
        Err(e) => e,
    };
    go_words(&mut body.clone())?;
    let field = failing_field::<T>(body, "");
    Err(ApiError::bad_request(format!(
        "json: cannot unmarshal field {field}: {error}"
    )))
}

/// The dotted name of the first field of `body` that does not parse as part of a `T`:
/// each field is tried alone, and an object field's own fields in turn.
fn failing_field<T: DeserializeOwned>(body: &Value, prefix: &str) -> String {
    let Some(object) = body.as_object() else {
        return prefix.trim_end_matches('.').to_string();
    };
    for (key, value) in object {
        let alone = nest(prefix, serde_json::json!({ key: value }));
        if T::deserialize(&alone).is_err() {
            if value.as_object().is_some_and(|o| !o.is_empty()) {
                return failing_field::<T>(value, &format!("{prefix}{key}."));
            }
            return format!("{prefix}{key}");
        }
    }
    prefix.trim_end_matches('.').to_string()
}

/// `leaf` placed under the dotted `prefix` (`HostConfig.` → `{"HostConfig": leaf}`).
fn nest(prefix: &str, leaf: Value) -> Value {
    prefix
        .split('.')
        .filter(|k| !k.is_empty())
        .rev()
        .fold(leaf, |inner, key| serde_json::json!({ key: inner }))
}

/// `POST /containers/create`: `container.Config` with `HostConfig` (resources
/// included) and `NetworkingConfig`.
/// dockerd 20.10 reads it as one `runconfig.ContainerConfigWrapper` (the `Config`
/// embedded), so its messages name fields from the body's top
/// (`HostConfig.HostConfig.Memory`: the innermost struct, then the path).
pub fn container_create(body: &mut Value) -> Result<(), ApiError> {
    const WRAPPER: &str = "runconfig.ContainerConfigWrapper";
    const HOST_CONFIG: &[(&str, Ty)] = &[
        (
            "HostConfig",
            Ty::Struct("container.HostConfig", HOST_CONFIG_FIELDS),
        ),
        (
            "HostConfig",
            Ty::Struct("container.HostConfig", RESOURCES_FIELDS),
        ),
        ("NetworkingConfig", NETWORKING_CONFIG),
    ];
    top_level(body, Ty::Struct(WRAPPER, CONFIG_FIELDS))?;
    top_level(body, Ty::Struct(WRAPPER, HOST_CONFIG))
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
    let fits = match (ty.base(), &mut *value) {
        (Str, Value::String(_)) | (Bool, Value::Bool(_)) => true,
        (Int, Value::Number(n)) => n.is_i64(),
        (Uint, Value::Number(n)) => n.is_u64(),
        (U16, Value::Number(n)) => n.as_u64().is_some_and(|n| n <= u64::from(u16::MAX)),
        (StrSlice, Value::String(s)) => {
            *value = Value::Array(vec![Value::String(std::mem::take(s))]);
            true
        }
        // Docker's StrSlice reads a list, else a string: Go's message is the string's.
        (StrSlice, Value::Array(items)) => items.iter().all(Value::is_string),
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
        Value::Number(n) if matches!(ty.base(), Int | Uint | U16) => format!("number {n}"),
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
        U16 => "uint16".into(),
        StrSlice => "string".into(),
        Ty::Named(name, _) => name.into(),
        Ty::List(inner) => format!("[]{}", go_type(*inner)),
        Ty::Map(inner) => format!("map[string]{}", go_type(*inner)),
        Ty::Struct(go, _) => go.into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn create(body: Value) -> Result<ContainerCreateRequest, String> {
        parse_container_create(&body).map_err(|e| {
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            e.message
        })
    }

    /// The messages dockerd 20.10 gives (tests/typed_bodies.rs compares them live).
    #[test]
    fn wrong_types_are_refused_with_go_messages() {
        let cases = [
            (
                json!({"Image": "busybox", "HostConfig": "x"}),
                "string into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig",
            ),
            (
                json!({"Image": "busybox", "Labels": {"a": 1}}),
                "number into Go struct field ContainerConfigWrapper.Labels of type string",
            ),
            (
                json!({"Image": "busybox", "Env": "A=1"}),
                "string into Go struct field ContainerConfigWrapper.Env of type []string",
            ),
            (
                json!({"Image": "busybox", "Cmd": [5]}),
                "array into Go struct field ContainerConfigWrapper.Cmd of type string",
            ),
            (
                json!({"HostConfig": {"RestartPolicy": {"MaximumRetryCount": 1.5}}}),
                "number 1.5 into Go struct field RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount of type int",
            ),
            (
                json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}),
                "number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string",
            ),
            (
                json!({"HostConfig": {"ConsoleSize": [-1, 2]}}),
                "number -1 into Go struct field HostConfig.HostConfig.ConsoleSize of type uint",
            ),
            (
                json!({"HostConfig": {"BlkioWeight": 70000}}),
                "number 70000 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16",
            ),
            (
                json!([]),
                "array into Go value of type runconfig.ContainerConfigWrapper",
            ),
        ];
        for (body, words) in cases {
            assert_eq!(
                create(body.clone()).unwrap_err(),
                format!("json: cannot unmarshal {words}"),
                "{body}"
            );
        }
        assert!(create(json!({"NetworkingConfig": {"EndpointsConfig": []}})).is_err());
    }

    #[test]
    fn a_field_the_table_lacks_is_found_through_the_typed_model() {
        let body = json!({"Image": "x", "Labels": {"a": "b"}, "HostConfig": {"Init": true, "KernelMemory": "1g"}});
        assert_eq!(
            failing_field::<ContainerCreateRequest>(&body, ""),
            "HostConfig.KernelMemory"
        );
    }

    #[test]
    fn nulls_and_unknown_fields_pass_and_strslices_become_lists() {
        let request = create(json!({
            "Image": "busybox",
            "Cmd": "echo hi",
            "Env": null,
            "HostConfig": null,
            "Whatever": {"x": 1},
            "Labels": {"a": "b"},
        }))
        .unwrap();
        let config = to_json(&request.config).unwrap();
        assert_eq!(config["Cmd"], json!(["echo hi"]));
        assert_eq!(config["Whatever"], json!({"x": 1}));
        assert_eq!(config.get("Env"), None);
        assert_eq!(request.host_config, None);
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
