//! The container endpoints (`/containers/...`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ApiError, AppState};
use crate::engine::{AttachTarget, Container, EngineError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}", delete(remove))
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::NotFound(m) => ApiError::not_found(m),
            EngineError::Conflict(m) => ApiError::conflict(m),
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
    let mut config: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "Config cannot be empty in order to create a container",
        ));
    }
    let host_config = config
        .as_object_mut()
        .and_then(|o| o.remove("HostConfig"))
        .unwrap_or_else(|| json!({}));
    if let Some(o) = config.as_object_mut() {
        o.remove("NetworkingConfig");
    }
    let (id, warnings) = d
        .engine
        .create(q.get("name").cloned(), config, host_config)
        .await?;
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
    no_content(d.engine.start(&id).await)
}

async fn stop(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let t = q.get("t").and_then(|t| t.parse().ok());
    no_content(d.engine.stop(&id, t).await)
}

async fn restart(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let t = q.get("t").and_then(|t| t.parse().ok());
    match d.engine.stop(&id, t).await {
        Ok(()) | Err(EngineError::NotModified) => {}
        Err(e) => return Err(e.into()),
    }
    match d.engine.start(&id).await {
        Ok(()) | Err(EngineError::NotModified) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e.into()),
    }
}

async fn kill(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    d.engine
        .kill(
            &id,
            q.get("signal")
                .map(String::as_str)
                .filter(|s| !s.is_empty()),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    d.engine.remove(&id, flag(&q, "force")).await?;
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

async fn prune(State(d): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut deleted = Vec::new();
    for c in d.engine.list() {
        if !c.state.running && d.engine.remove(&c.id, false).await.is_ok() {
            deleted.push(c.id);
        }
    }
    Ok(Json(
        json!({ "ContainersDeleted": deleted, "SpaceReclaimed": 0 }),
    ))
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

fn command_line(c: &Container) -> String {
    let mut parts = vec![c.path.clone()];
    parts.extend(c.args.iter().cloned());
    parts.join(" ")
}

fn summary(c: &Container) -> Value {
    let created = pier_image::time::parse_rfc3339(&c.created).map_or(0, |(s, _)| s);
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_name,
        "ImageID": c.image_id,
        "Command": command_line(c),
        "Created": created,
        "Ports": [],
        "Labels": c.config["Labels"].as_object().cloned().unwrap_or_default(),
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": { "NetworkMode": c.host_config["NetworkMode"] },
        "NetworkSettings": { "Networks": {} },
        "Mounts": [],
    })
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
    let all = flag(&q, "all");
    let limit: i64 = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(-1);
    for key in filters.keys() {
        if !matches!(
            key.as_str(),
            "status" | "label" | "name" | "id" | "ancestor" | "exited" | "before" | "since"
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
            && any("label", &|v| match v.split_once('=') {
                Some((k, val)) => labels.get(k).and_then(|x| x.as_str()) == Some(val),
                None => labels.contains_key(v),
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
        out.push(summary(c));
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn inspect(
    State(d): State<AppState>,
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
    ] {
        if host_config.get(key).is_none() {
            host_config[key] = default;
        }
    }
    let log_path = d.engine.log_path(&c.id);
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
        "GraphDriver": { "Name": "overlay2", "Data": null },
        "Mounts": [],
        "Config": config,
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": {},
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Networks": {},
        },
    })))
}

// ---------------------------------------------------------------------------------
// Attach and logs.

/// `POST /containers/{id}/attach`: hijacks the connection (101, `Upgrade: tcp`) and
/// joins it to the container's monitor. Works before start: the connection is joined
/// when the container starts, before it runs.
async fn attach(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let c = d.engine.get(&id)?;
    let target = d.engine.attach_target(&id)?;
    let want_stdin = flag(&q, "stdin");
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tty = c.config["Tty"].as_bool() == Some(true);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let client = TokioIo::new(upgraded);
        let (socket, ack) = match target {
            AttachTarget::Now(s) => (s, None),
            AttachTarget::AtStart(rx) => match rx.await {
                Ok((s, ack)) => (s, Some(ack)),
                Err(_) => return,
            },
        };
        let Ok(mut monitor) = tokio::net::UnixStream::connect(&socket).await else {
            return;
        };
        let hello = json!({"op": "attach", "stdin": want_stdin}).to_string() + "\n";
        if monitor.write_all(hello.as_bytes()).await.is_err() {
            return;
        }
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        let (mut client_r, mut client_w) = tokio::io::split(client);
        let (mut mon_r, mut mon_w) = monitor.into_split();
        let to_client = async {
            let _ = tokio::io::copy(&mut mon_r, &mut client_w).await;
            let _ = client_w.shutdown().await;
        };
        let from_client = async {
            if want_stdin {
                let _ = tokio::io::copy(&mut client_r, &mut mon_w).await;
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

#[derive(Debug, Deserialize)]
struct LogLine {
    log: String,
    stream: String,
    time: String,
}

/// Parses a Docker time filter: Unix seconds (with fraction) or RFC 3339.
fn time_filter(v: Option<&String>) -> Option<f64> {
    let v = v?.trim();
    if v.is_empty() || v == "0" {
        return None;
    }
    v.parse::<f64>()
        .ok()
        .or_else(|| pier_image::time::parse_rfc3339(v).map(|(s, n)| s as f64 + f64::from(n) / 1e9))
}

fn frame(stream: u8, data: &[u8], tty: bool) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(data);
    }
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    Bytes::from(out)
}

/// `GET /containers/{id}/logs`: the json-file log (rotated files oldest first), then,
/// with `follow`, what the container writes until it stops.
async fn logs(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let c = d.engine.get(&id)?;
    let want_out = flag(&q, "stdout");
    let want_err = flag(&q, "stderr");
    if !want_out && !want_err {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let driver = c.host_config["LogConfig"]["Type"]
        .as_str()
        .unwrap_or("json-file");
    if driver == "none" {
        return Err(ApiError::bad_request(
            "configured logging driver does not support reading",
        ));
    }
    let follow = flag(&q, "follow");
    let timestamps = flag(&q, "timestamps");
    let since = time_filter(q.get("since"));
    let until = time_filter(q.get("until"));
    let tail: Option<usize> = q.get("tail").and_then(|t| t.parse().ok());
    let tty = c.config["Tty"].as_bool() == Some(true);
    let path = d.engine.log_path(&c.id);
    let mut events = d.engine.events(&c.id);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);

    tokio::spawn(async move {
        let render = |line: &LogLine| -> Option<Bytes> {
            let stream = if line.stream == "stderr" { 2 } else { 1 };
            if (stream == 1 && !want_out) || (stream == 2 && !want_err) {
                return None;
            }
            let t = pier_image::time::parse_rfc3339(&line.time)
                .map_or(0.0, |(s, n)| s as f64 + f64::from(n) / 1e9);
            if since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u) {
                return None;
            }
            let text = if timestamps {
                format!("{} {}", line.time, line.log)
            } else {
                line.log.clone()
            };
            Some(frame(stream, text.as_bytes(), tty))
        };
        // Everything so far, oldest rotated file first.
        let mut files: Vec<std::path::PathBuf> = (1..100)
            .map(|n| std::path::PathBuf::from(format!("{}.{n}", path.display())))
            .take_while(|p| p.exists())
            .collect();
        files.reverse();
        files.push(path.clone());
        let mut lines: Vec<Bytes> = Vec::new();
        let mut offset = 0u64;
        for f in &files {
            let Ok(text) = tokio::fs::read(f).await else {
                continue;
            };
            if f == &path {
                offset = text.len() as u64;
            }
            for l in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(line) = serde_json::from_slice::<LogLine>(l) {
                    if let Some(b) = render(&line) {
                        lines.push(b);
                    }
                }
            }
        }
        let skip = match tail {
            Some(n) => lines.len().saturating_sub(n),
            None => 0,
        };
        for b in lines.into_iter().skip(skip) {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        // Follow: read what is appended until the container stops and all is read.
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let running = events.as_ref().is_some_and(|e| e.borrow().running);
            let mut grew = false;
            if let Ok(mut file) = tokio::fs::File::open(&path).await {
                let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                if len < offset {
                    offset = 0; // rotated
                }
                if len > offset {
                    use tokio::io::AsyncSeekExt;
                    let _ = file.seek(std::io::SeekFrom::Start(offset)).await;
                    let mut buf = Vec::new();
                    let _ = file.read_to_end(&mut buf).await;
                    offset += buf.len() as u64;
                    partial.extend_from_slice(&buf);
                    grew = true;
                }
            }
            while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                let l: Vec<u8> = partial.drain(..=pos).collect();
                if let Ok(line) = serde_json::from_slice::<LogLine>(&l[..l.len() - 1]) {
                    if let Some(b) = render(&line) {
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if !running && !grew {
                return;
            }
            if let Some(e) = events.as_mut() {
                let _ = tokio::time::timeout(Duration::from_millis(100), e.changed()).await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let stream = tokio_stream_from(rx);
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok)
}
