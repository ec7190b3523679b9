//! The container endpoints (`/containers/...`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ApiError, AppState};
use crate::engine::{AttachTarget, Container, EngineError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(super::system::prune_containers))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route(
            "/containers/{id}/attach/ws",
            get(super::websocket::attach_ws),
        )
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/logs", get(super::logs::logs))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{id}/{link}", delete(remove_link))
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::NotFound(m) => ApiError::not_found(m),
            EngineError::Conflict(m) => ApiError::conflict(m),
            EngineError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            EngineError::InvalidParameter(m) => ApiError::bad_request(m),
            EngineError::NotModified => ApiError::new(StatusCode::NOT_MODIFIED, ""),
            EngineError::Internal(m) => ApiError::internal(m),
            EngineError::Image(e) => e.into(),
        }
    }
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("1" | "true" | "True"))
}

// ---------------------------------------------------------------------------------

async fn create(
    State(d): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if body.is_null() {
        return Err(ApiError::bad_request(
            "Config cannot be empty in order to create a container",
        ));
    }
    let mut request = super::body_types::parse_container_create(&body)?;
    let mut warnings = super::linux_fields::check_create(&mut request)?;
    // The engine still reads these parts as JSON: the typed parts written back, so of
    // Docker's types (single-string StrSlices made lists, nulls dropped).
    let host_config = request.host_config.unwrap_or_default();
    super::cpusets::check(&host_config.resources)?;
    let config = super::body_types::to_json(&request.config)?;
    let mut host_config = super::body_types::to_json(&host_config)?;
    super::resource_limits::check_create(&mut host_config)?;
    let networking = match &request.networking_config {
        Some(n) => super::body_types::to_json(n)?,
        None => Value::Null,
    };
    let (id, engine_warnings) = d
        .engine
        .create(q.get("name").cloned(), config, host_config, networking)
        .await?;
    warnings.extend(engine_warnings);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warnings": warnings })),
    )
        .into_response())
}

/// 204, or 304 when there was nothing to do.
fn no_content(result: Result<(), EngineError>) -> Result<StatusCode, ApiError> {
    match result {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(EngineError::NotModified) => Ok(StatusCode::NOT_MODIFIED),
        Err(e) => Err(e.into()),
    }
}

async fn start(State(d): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    // In a task of its own: a client that goes away mid-start does not cut a start
    // short between launching the container and recording it.
    let engine = d.engine.clone();
    let started = tokio::spawn(async move { engine.start(&id).await }).await?;
    no_content(started)
}

async fn stop(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let t = q.get("t").and_then(|t| t.parse().ok());
    let signal = q.get("signal").map(String::as_str);
    no_content(d.engine.stop(&id, t, signal).await)
}

async fn restart(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let t = q.get("t").and_then(|t| t.parse().ok());
    let signal = q.get("signal").map(String::as_str);
    match d.engine.stop(&id, t, signal).await {
        Ok(()) | Err(EngineError::NotModified) => {}
        Err(e) => return Err(e.into()),
    }
    match d.engine.start(&id).await {
        Ok(()) | Err(EngineError::NotModified) => {
            if let Ok(full) = d.engine.resolve(&id) {
                d.engine.container_event(&full, "restart", &[]);
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => Err(e.into()),
    }
}

async fn kill(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let signal = q
        .get("signal")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    match d.engine.kill(&id, signal).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(super::container_ops::unless_exited(&d, &id, e.into()).await),
    }
}

async fn remove(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    d.engine
        .remove_with_volumes(&id, flag(&q, "force"), flag(&q, "v"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /containers/{parent}/{alias}`: with `link=1` the removal of a legacy link
/// (`docker rm --link parent/alias`); otherwise, as in Docker, a container named
/// `parent/alias`, which cannot exist.
async fn remove_link(
    State(d): State<AppState>,
    Path((parent, alias)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let name = format!("{parent}/{alias}");
    if !flag(&q, "link") {
        return Err(ApiError::from(EngineError::NotFound(format!(
            "No such container: {name}"
        ))));
    }
    d.engine.remove_link(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer's headers go out at once: clients (`docker run`) wait for them before
/// they start the container; the body follows on exit.
async fn wait(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let condition = q.get("condition").cloned().unwrap_or_default();
    let waiting = d.engine.wait(&id, &condition)?;
    let body = futures_util::stream::once(async move {
        let code = waiting.await;
        let text = json!({ "StatusCode": code, "Error": null }).to_string() + "\n";
        Ok::<_, Infallible>(Bytes::from(text))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------
// Inspect and list, in Docker's shapes.

fn status_text(c: &Container) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let since = |t: &str| pier_image::time::parse_rfc3339(t).map_or(0, |(s, _)| now - s);
    match c.state.status.as_str() {
        "running" | "paused" if c.state.paused => {
            format!(
                "Up {} (Paused)",
                pier_image::time::human_duration(since(&c.state.started_at))
            )
        }
        "running" => {
            let up = pier_image::time::human_duration(since(&c.state.started_at));
            match &c.state.health {
                Some(h) if h.status == crate::engine::health::STARTING => {
                    format!("Up {up} (health: starting)")
                }
                Some(h) => format!("Up {up} ({})", h.status),
                None => format!("Up {up}"),
            }
        }
        "restarting" => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            pier_image::time::human_duration(since(&c.state.finished_at))
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            pier_image::time::human_duration(since(&c.state.finished_at))
        ),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ => "Created".into(),
    }
}

/// The list's `Command`, as dockerd writes it: arguments with a space in quotes.
fn command_line(c: &Container) -> String {
    let mut parts = vec![c.path.clone()];
    parts.extend(c.args.iter().map(|a| {
        if a.contains(' ') {
            format!("'{a}'")
        } else {
            a.clone()
        }
    }));
    parts.join(" ")
}

fn summary(engine: &crate::engine::Engine, c: &Container) -> Value {
    let created = pier_image::time::parse_rfc3339(&c.created).map_or(0, |(s, _)| s);
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_name,
        "ImageID": c.image_id,
        "Command": command_line(c),
        "Created": created,
        "Ports": engine.ports_list_json(c),
        "Labels": c.config["Labels"].as_object().cloned().unwrap_or_default(),
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": { "NetworkMode": c.host_config["NetworkMode"] },
        "NetworkSettings": { "Networks": engine.network_settings_json(c)["Networks"] },
        "Mounts": mount_points(engine, c),
    })
}

/// `GraphDriver.Data` of inspect: the overlay dirs of the container's snapshot (null
/// when it is not an overlay).
fn graph_driver_data(d: &AppState, c: &Container, data_dir: &std::path::Path) -> Value {
    match d.images.snapshots().mounts(&c.snapshot_key) {
        Ok(pier_image::snapshot::MountSpec::Overlay {
            lowerdirs,
            upperdir: Some(upper),
            workdir: Some(work),
        }) => {
            let lower: Vec<String> = lowerdirs.iter().map(|p| p.display().to_string()).collect();
            json!({
                "LowerDir": lower.join(":"),
                "MergedDir": data_dir.join("rootfs"),
                "UpperDir": upper,
                "WorkDir": work,
            })
        }
        _ => Value::Null,
    }
}

/// Docker's `Mounts` (list and inspect): binds, volumes and `--mount` tmpfs and image
/// mounts, from the container's mount plan (`--tmpfs` is only in `HostConfig.Tmpfs`,
/// as in dockerd).
pub(crate) fn mount_points(engine: &crate::engine::Engine, c: &Container) -> Value {
    Value::Array(engine.mount_points(c))
}

/// Docker's `filters` JSON in either form: `{"k":["v"]}` or `{"k":{"v":true}}`.
pub fn parse_filters(text: Option<&String>) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(out);
    };
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    for (k, vals) in v.as_object().into_iter().flatten() {
        let list: Vec<String> = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o
                .iter()
                .filter(|(_, b)| b.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

async fn list(
    State(d): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(q.get("filters"))?;
    let limit: i64 = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(-1);
    // As dockerd: `limit` (docker ps -n/-l) counts stopped containers too.
    let all = flag(&q, "all") || limit > 0;
    let with_size = flag(&q, "size");
    for key in filters.keys() {
        if !matches!(
            key.as_str(),
            "status"
                | "label"
                | "name"
                | "id"
                | "ancestor"
                | "exited"
                | "before"
                | "since"
                | "volume"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    let containers = d.engine.list();
    let created_of = |input: &str| -> Result<String, ApiError> { Ok(d.engine.get(input)?.created) };
    let before = filters
        .get("before")
        .and_then(|v| v.first())
        .map(|b| created_of(b))
        .transpose()?;
    let since = filters
        .get("since")
        .and_then(|v| v.first())
        .map(|b| created_of(b))
        .transpose()?;
    let mut out = Vec::new();
    for c in &containers {
        let has_filter_status = filters.contains_key("status") || filters.contains_key("exited");
        if !all && !c.state.running && !has_filter_status && before.is_none() && since.is_none() {
            continue;
        }
        let any = |key: &str, f: &dyn Fn(&str) -> bool| {
            filters
                .get(key)
                .is_none_or(|vals| vals.iter().any(|v| f(v)))
        };
        let labels = c.config["Labels"].as_object().cloned().unwrap_or_default();
        let ok = any("status", &|v| v == c.state.status)
            && any("name", &|v| c.name.contains(v.trim_start_matches('/')))
            && any("id", &|v| c.id.starts_with(v))
            // As dockerd, every `label` filter must match (compose selects a
            // service's containers with project AND service labels).
            && filters.get("label").is_none_or(|vals| {
                vals.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => labels.get(k).and_then(|x| x.as_str()) == Some(val),
                    None => labels.contains_key(v),
                })
            })
            // Docker's `volume` filter: a volume's name, a bind's source, or a
            // mount's destination.
            && (!filters.contains_key("volume") || {
                let mounts = d.engine.mount_points(c);
                any("volume", &|v| {
                    mounts.iter().any(|m| {
                        let name = m["Name"].as_str().filter(|n| !n.is_empty());
                        name.or(m["Source"].as_str()) == Some(v) || m["Destination"] == v
                    })
                })
            })
            && any("exited", &|v| {
                c.state.status == "exited" && v.parse::<i32>().ok() == Some(c.state.exit_code)
            })
            && any("ancestor", &|v| {
                v == c.image_name
                    || c.image_id
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
                    || d.images
                        .store()
                        .resolve(v)
                        .is_ok_and(|r| r.id.to_string() == c.image_id)
            });
        if !ok {
            continue;
        }
        if before.as_ref().is_some_and(|b| c.created >= *b)
            || since.as_ref().is_some_and(|s| c.created <= *s)
        {
            continue;
        }
        let mut item = summary(&d.engine, c);
        if with_size {
            let (rw, root) = tokio::task::block_in_place(|| container_sizes(&d, c));
            item["SizeRw"] = json!(rw);
            item["SizeRootFs"] = json!(root);
        }
        out.push(item);
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `SizeRw` (the container's own changes) and `SizeRootFs` (those plus its image).
/// Blocking: walks the container's upper directory.
fn container_sizes(d: &AppState, c: &Container) -> (u64, u64) {
    let rw = d.images.snapshots().usage(&c.snapshot_key).unwrap_or(0);
    let image = d
        .images
        .inspect(&c.image_id)
        .map_or(0, |i| u64::try_from(i.size).unwrap_or(0));
    (rw, rw + image)
}

async fn inspect(
    State(d): State<AppState>,
    Extension(version): Extension<super::ApiVersion>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = d.engine.get(&id)?;
    let data_dir = d.config.data_root.join("containers").join(&c.id);
    let mut config = c.config.clone();
    for (key, default) in [
        ("Hostname", json!("")),
        ("Domainname", json!("")),
        ("User", json!("")),
        ("AttachStdin", json!(false)),
        ("AttachStdout", json!(false)),
        ("AttachStderr", json!(false)),
        ("Tty", json!(false)),
        ("OpenStdin", json!(false)),
        ("StdinOnce", json!(false)),
        ("Env", json!([])),
        ("Cmd", Value::Null),
        ("Image", json!(c.image_name)),
        ("Volumes", Value::Null),
        ("WorkingDir", json!("")),
        ("Entrypoint", Value::Null),
        ("OnBuild", Value::Null),
        ("Labels", json!({})),
    ] {
        if config.get(key).is_none() {
            config[key] = default;
        }
    }
    let mut host_config = c.host_config.clone();
    for (key, default) in [
        ("Binds", Value::Null),
        ("NetworkMode", json!("none")),
        (
            "RestartPolicy",
            json!({"Name": "no", "MaximumRetryCount": 0}),
        ),
        ("AutoRemove", json!(false)),
        ("Privileged", json!(false)),
        ("ReadonlyRootfs", json!(false)),
        ("CapAdd", Value::Null),
        ("CapDrop", Value::Null),
        ("LogConfig", json!({"Type": "json-file", "Config": {}})),
        ("Memory", json!(0)),
        ("NanoCpus", json!(0)),
        ("CpuShares", json!(0)),
        ("PidsLimit", Value::Null),
        ("Runtime", json!(c.runtime)),
        // dockerd reports every field, also those the client did not send.
        ("ContainerIDFile", json!("")),
        ("PortBindings", Value::Null),
        ("VolumeDriver", json!("")),
        ("VolumesFrom", Value::Null),
        ("ConsoleSize", json!([0, 0])),
        ("CgroupnsMode", json!("host")),
        ("Dns", Value::Null),
        ("DnsOptions", Value::Null),
        ("DnsSearch", Value::Null),
        ("ExtraHosts", Value::Null),
        ("GroupAdd", Value::Null),
        ("IpcMode", json!("private")),
        ("Cgroup", json!("")),
        ("Links", Value::Null),
        ("OomScoreAdj", json!(0)),
        ("PidMode", json!("")),
        ("PublishAllPorts", json!(false)),
        ("SecurityOpt", Value::Null),
        ("UTSMode", json!("")),
        ("UsernsMode", json!("")),
        ("ShmSize", json!(64 << 20)),
        ("Isolation", json!("")),
        ("CgroupParent", json!("")),
        ("BlkioWeight", json!(0)),
        ("BlkioWeightDevice", Value::Null),
        ("BlkioDeviceReadBps", Value::Null),
        ("BlkioDeviceWriteBps", Value::Null),
        ("BlkioDeviceReadIOps", Value::Null),
        ("BlkioDeviceWriteIOps", Value::Null),
        ("CpuPeriod", json!(0)),
        ("CpuQuota", json!(0)),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("CpusetCpus", json!("")),
        ("CpusetMems", json!("")),
        ("Devices", Value::Null),
        ("DeviceCgroupRules", Value::Null),
        ("DeviceRequests", Value::Null),
        ("MemoryReservation", json!(0)),
        ("MemorySwappiness", Value::Null),
        ("OomKillDisable", json!(false)),
        ("Ulimits", Value::Null),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("IOMaximumBandwidth", json!(0)),
    ] {
        if host_config.get(key).is_none() {
            host_config[key] = default;
        }
    }
    // As dockerd, which stores its defaults in place of an empty IPC mode and a zero
    // shm size (compose sends both).
    if host_config["IpcMode"].as_str() == Some("") {
        host_config["IpcMode"] = json!("private");
    }
    if host_config["ShmSize"].as_i64() == Some(0) {
        host_config["ShmSize"] = json!(64 << 20);
    }
    // As dockerd: no driver given is the daemon's default, reported by name.
    if host_config["LogConfig"]["Type"].as_str() == Some("") {
        host_config["LogConfig"]["Type"] = json!("json-file");
    }
    // As dockerd (and the spec pierd runs): swap defaults to twice the memory limit.
    if host_config["MemorySwap"].as_i64().unwrap_or(0) == 0 {
        let memory = host_config["Memory"].as_i64().unwrap_or(0);
        host_config["MemorySwap"] = json!(if memory > 0 { memory * 2 } else { 0 });
    }
    // As dockerd: the default masked and read-only paths, unless privileged.
    if host_config["MaskedPaths"].is_null() {
        host_config["MaskedPaths"] = crate::engine::spec::default_masked_paths(&c.host_config);
    }
    if host_config["ReadonlyPaths"].is_null() {
        host_config["ReadonlyPaths"] = crate::engine::spec::default_readonly_paths(&c.host_config);
    }
    // As Docker: only json-file's path is shown.
    let json_file = c.host_config["LogConfig"]["Type"]
        .as_str()
        .is_none_or(|t| t.is_empty() || t == "json-file");
    let log_path = if json_file {
        d.engine.log_path(&c.id).display().to_string()
    } else {
        String::new()
    };
    let mut state = json!({
        "Status": c.state.status,
        "Running": c.state.running,
        "Paused": c.state.paused,
        "Restarting": c.state.restarting,
        "OOMKilled": c.state.oom_killed,
        "Dead": c.state.dead,
        "Pid": c.state.pid,
        "ExitCode": c.state.exit_code,
        "Error": c.state.error,
        "StartedAt": c.state.started_at,
        "FinishedAt": c.state.finished_at,
    });
    // Only for a container with a healthcheck (Docker's `State.Health` is nil else).
    if let Some(h) = &c.state.health {
        state["Health"] = serde_json::to_value(h).unwrap_or_default();
    }
    Ok(Json(json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": data_dir.join("resolv.conf"),
        "HostnamePath": data_dir.join("hostname"),
        "HostsPath": data_dir.join("hosts"),
        "LogPath": log_path,
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": { "Name": "overlay2", "Data": graph_driver_data(&d, &c, &data_dir) },
        "Mounts": mount_points(&d.engine, &c),
        "Config": config,
        "NetworkSettings": d.engine.network_settings_versioned(&c, version),
    })))
}

// ---------------------------------------------------------------------------------
// Attach, resize and logs.

/// `POST /containers/{id}/resize?h=&w=`: the container's terminal size, through its
/// monitor. Docker's answers: 404 unknown, 409 not running, 400 bad numbers.
async fn resize(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let c = d.engine.get(&id)?;
    let dim = |k: &str| -> Result<u16, ApiError> {
        let v = q.get(k).map(String::as_str).unwrap_or_default();
        v.parse::<u16>().map_err(|_| {
            ApiError::bad_request(format!("invalid resize value {k}={v:?}: want 0..65535"))
        })
    };
    let (h, w) = (dim("h")?, dim("w")?);
    if !c.state.running {
        return Err(ApiError::conflict(format!(
            "container {} is not running",
            c.id
        )));
    }
    let socket = d.engine.control_socket(&c.id);
    let request = json!({"op": "resize", "height": h, "width": w}).to_string() + "\n";
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::UnixStream::connect(&socket).await?;
        s.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    })
    .await;
    let error = match answer {
        Ok(Ok(a)) if a.trim() == "ok" => {
            d.engine.container_event(
                &c.id,
                "resize",
                &[("height", h.to_string()), ("width", w.to_string())],
            );
            return Ok(StatusCode::OK);
        }
        Ok(Ok(a)) => ApiError::internal(format!(
            "resize: {}",
            a.trim().trim_start_matches("error: ")
        )),
        Ok(Err(e)) => ApiError::internal(format!("resize: {e}")),
        Err(_) => ApiError::internal("resize: the container monitor did not answer"),
    };
    Err(super::container_ops::unless_exited(&d, &c.id, error).await)
}

/// Copies the monitor's output to an attached client, only the streams it asked for:
/// frames of stdout (1) and stderr (2), or raw bytes with a terminal (all of it is
/// stdout then, as in Docker). Ends when the output ends or the client is gone.
async fn copy_selected<R, W>(mon: &mut R, client: &mut W, tty: bool, out: bool, err: bool)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut demux = super::stream::Demux::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match mon.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tty {
            if out && client.write_all(&buf[..n]).await.is_err() {
                return;
            }
            continue;
        }
        for (stream, data) in demux.push(&buf[..n]) {
            if (stream == 2 && !err) || (stream != 2 && !out) {
                continue;
            }
            let frame = super::logs::frame(stream, &data, false);
            if client.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}

/// Joins an attach to the container's monitor: waits for the start if `target` is
/// one, says hello (`attach`, with or without stdin), then lets the start go on.
/// `None` when the container never started or its monitor is gone.
pub(super) async fn connect_attach(
    target: AttachTarget,
    want_stdin: bool,
) -> Option<tokio::net::UnixStream> {
    let (socket, ack) = match target {
        AttachTarget::Now(s) => (s, None),
        AttachTarget::AtStart(rx) => {
            let (s, ack) = rx.await.ok()?;
            (s, Some(ack))
        }
    };
    let mut monitor = tokio::net::UnixStream::connect(&socket).await.ok()?;
    let hello = json!({"op": "attach", "stdin": want_stdin}).to_string() + "\n";
    monitor.write_all(hello.as_bytes()).await.ok()?;
    if let Some(ack) = ack {
        let _ = ack.send(());
    }
    Some(monitor)
}

/// `POST /containers/{id}/attach`: hijacks the connection (101, `Upgrade: tcp`) and
/// joins it to the container's monitor. Works before start: the connection is joined
/// when the container starts, before it runs.
///
/// As Docker's: with `logs=1` the logs so far come first; with `stream=1` the live
/// stream follows (without it the attach ends after the logs); only the streams
/// asked for (`stdout`, `stderr`) are sent, in both parts.
async fn attach(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let c = d.engine.get(&id)?;
    let keys = super::detach::keys_or_default(q.get("detachKeys").map(String::as_str))
        .map_err(ApiError::bad_request)?;
    let want_logs = flag(&q, "logs");
    let want_stream = flag(&q, "stream");
    let (want_out, want_err) = (flag(&q, "stdout"), flag(&q, "stderr"));
    let target = if want_stream {
        Some(d.engine.attach_target(&id)?)
    } else {
        None
    };
    let log_file = crate::logdriver::log_file(&c.host_config, &d.engine.log_path(&c.id));
    d.engine.container_event(&c.id, "attach", &[]);
    let want_stdin = flag(&q, "stdin");
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tty = c.config["Tty"].as_bool() == Some(true);
    // As in Docker, detach keys only with a terminal.
    let keys = tty.then_some(keys);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let (mut client_r, mut client_w) = tokio::io::split(TokioIo::new(upgraded));
        if want_logs {
            let Some(path) = log_file else {
                // Docker writes the error into the hijacked stream and ends it.
                let _ = client_w
                    .write_all(
                        b"Error attaching: configured logging driver does not support reading\n",
                    )
                    .await;
                let _ = client_w.shutdown().await;
                return;
            };
            for frame in super::logs::attach_history(&path, want_out, want_err, tty).await {
                if client_w.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
        let Some(target) = target else {
            let _ = client_w.shutdown().await;
            return;
        };
        let Some(monitor) = connect_attach(target, want_stdin).await else {
            let _ = client_w.shutdown().await;
            return;
        };
        let (mut mon_r, mut mon_w) = monitor.into_split();
        let to_client = async {
            copy_selected(&mut mon_r, &mut client_w, tty, want_out, want_err).await;
            let _ = client_w.shutdown().await;
        };
        let from_client = async {
            if want_stdin {
                let end = super::detach::copy_detachable(&mut client_r, &mut mon_w, keys).await;
                if end == super::detach::InputEnd::Detached {
                    // The attach ends here; the container runs on.
                    return;
                }
                let _ = mon_w.shutdown().await;
            }
            // Keep going until the output side ends.
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = to_client => {}
            () = from_client => {}
        }
    });
    super::hijack_response(tty)
}
