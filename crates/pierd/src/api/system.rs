//! `/_ping`, `/version`, `/info`, `/system/df`, and the prunes of what Pier does not
//! have yet (build cache), which answer honestly: nothing removed.

use std::collections::HashMap;

use axum::extract::{Extension, Query, State};
use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiError, ApiVersion, AppState, MAX_API_VERSION, MIN_API_VERSION};
use crate::engine::events::Event;
use crate::engine::usage::ContainerPruneFilters;
use crate::engine::Container;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/df", get(df))
        .route("/build/prune", post(prune_build_cache))
}

/// Docker's ping: `OK` plus the headers clients negotiate with.
async fn ping() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("api-version", MAX_API_VERSION.to_string());
    set("docker-experimental", "false".into());
    set("ostype", "linux".into());
    set("builder-version", "1".into());
    set("swarm", "inactive".into());
    set(
        "cache-control",
        "no-cache, no-store, must-revalidate".into(),
    );
    set("pragma", "no-cache".into());
    (
        headers,
        [("content-type", "text/plain; charset=utf-8")],
        "OK",
    )
}

fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version(Extension(_v): Extension<ApiVersion>) -> Json<Value> {
    let engine_version = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": { "Name": "Pier Engine" },
        "Components": [{
            "Name": "Engine",
            "Version": engine_version,
            "Details": {
                "ApiVersion": MAX_API_VERSION.to_string(),
                "MinAPIVersion": MIN_API_VERSION.to_string(),
                "Os": "linux",
                "Arch": arch(),
                "KernelVersion": kernel_version(),
                "GitCommit": option_env!("PIER_GIT_COMMIT").unwrap_or("unknown"),
                "GoVersion": "n/a (Rust)",
                "BuildTime": "",
                "Experimental": "false",
            }
        }],
        "Version": engine_version,
        "ApiVersion": MAX_API_VERSION.to_string(),
        "MinAPIVersion": MIN_API_VERSION.to_string(),
        "GitCommit": option_env!("PIER_GIT_COMMIT").unwrap_or("unknown"),
        "GoVersion": "n/a (Rust)",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
}

async fn info(State(daemon): State<AppState>) -> Result<Json<Value>, ApiError> {
    let images = daemon.images.clone();
    let image_count = tokio::task::spawn_blocking(move || {
        images
            .list(&pier_image::service::ListFilters::default(), None)
            .map(|l| l.len())
    })
    .await??;
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let config = &daemon.config;
    let (total, running, paused, stopped) = daemon.engine.counts();
    Ok(Json(json!({
        "ID": daemon.id,
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": image_count,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "pier snapshots"], ["Supports d_type", "true"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["host", "none"],
            "Authorization": null,
            "Log": ["json-file", "local", "none"],
        },
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "OomKillDisable": true,
        "IPv4Forwarding": true,
        "Debug": config.log_level == "debug",
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": pier_image::time::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os_name(),
        "OSVersion": os_release("VERSION_ID").unwrap_or_default(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, usize::from),
        "MemTotal": mem_total,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "IndexConfigs": {},
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "Mirrors": [],
        },
        "GenericResources": null,
        "DockerRootDir": config.data_root.display().to_string(),
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes(config),
        "DefaultRuntime": config.default_runtime,
        "Swarm": { "LocalNodeState": "inactive", "ControlAvailable": false, "NodeID": "", "NodeAddr": "", "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        // No containerd and no init binary; the runtime is pier-runtime, of this build.
        "ContainerdCommit": { "ID": "" },
        "RuncCommit": { "ID": env!("CARGO_PKG_VERSION") },
        "InitCommit": { "ID": "" },
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    })))
}

fn runtimes(config: &crate::config::DaemonConfig) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("pier-runtime".into(), json!({ "path": "pier-runtime" }));
    for entry in &config.add_runtime {
        if let Some((name, path)) = entry.split_once('=') {
            map.insert(name.to_string(), json!({ "path": path }));
        }
    }
    Value::Object(map)
}

fn os_name() -> String {
    os_release("PRETTY_NAME").unwrap_or_else(|| "Linux".to_string())
}

/// A value of `/etc/os-release`, unquoted.
fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_string())
}

// ---------------------------------------------------------------------------------
// GET /system/df

/// The object types of `system df`'s `type` parameter.
const DF_TYPES: [&str; 4] = ["container", "image", "volume", "build-cache"];

/// `GET /system/df`: images (with `SharedSize` and `Containers`), containers (with
/// `SizeRw`/`SizeRootFs`), volumes (with `UsageData`), no build cache. API ≥ 1.42 honours `type=`
/// (types not asked for are null); API ≥ 1.52 answers in the `*Usage` shape, with the
/// items only when `verbose`.
async fn df(
    State(d): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut wanted: Vec<String> = Vec::new();
    if v >= ApiVersion(1, 42) {
        for (k, t) in &q {
            if k != "type" {
                continue;
            }
            if !DF_TYPES.contains(&t.as_str()) {
                return Err(ApiError::bad_request(format!("unknown object type: {t}")));
            }
            wanted.push(t.clone());
        }
    }
    let want = |t: &str| wanted.is_empty() || wanted.iter().any(|w| w == t);
    let verbose = q
        .iter()
        .any(|(k, v)| k == "verbose" && matches!(v.as_str(), "1" | "true" | "True"));

    let users = d.image_users();
    let images = d.images.clone();
    let (layers_size, image_list) = tokio::task::spawn_blocking(move || {
        let list = images.list(&pier_image::service::ListFilters::default(), Some(&users))?;
        Ok::<_, pier_image::Error>((images.layers_size()?, list))
    })
    .await??;
    let image_size: HashMap<String, i64> =
        image_list.iter().map(|i| (i.id.clone(), i.size)).collect();

    let volumes = if want("volume") {
        let engine = d.engine.clone();
        tokio::task::spawn_blocking(move || engine.volumes().usage()).await?
    } else {
        Vec::new()
    };

    let mut containers = Vec::new();
    if want("container") {
        for c in d.engine.list() {
            let engine = d.engine.clone();
            let rec = c.clone();
            let size_rw = tokio::task::spawn_blocking(move || engine.size_rw(&rec))
                .await?
                .unwrap_or(0) as i64;
            let root = size_rw + image_size.get(&c.image_id).copied().unwrap_or(0);
            let mut summary = container_summary(&d.engine, &c);
            summary["SizeRw"] = json!(size_rw);
            summary["SizeRootFs"] = json!(root);
            containers.push(summary);
        }
    }

    if v >= ApiVersion(1, 52) {
        let images_total = layers_size as i64;
        let used: i64 = image_list
            .iter()
            .filter(|i| i.containers > 0)
            .map(|i| i.size - i.shared_size)
            .sum();
        let c_total: i64 = containers.iter().filter_map(|c| c["SizeRw"].as_i64()).sum();
        let c_reclaimable: i64 = containers
            .iter()
            .filter(|c| c["State"] != "running" && c["State"] != "paused")
            .filter_map(|c| c["SizeRw"].as_i64())
            .sum();
        let c_active = containers
            .iter()
            .filter(|c| c["State"] == "running" || c["State"] == "paused")
            .count();
        let usage = |active: usize, total: usize, reclaimable: i64, size: i64, items: Value| {
            let mut u = json!({
                "ActiveCount": active,
                "TotalCount": total,
                "Reclaimable": reclaimable,
                "TotalSize": size,
            });
            if verbose {
                u["Items"] = items;
            }
            u
        };
        let mut out = serde_json::Map::new();
        if want("image") {
            let active = image_list.iter().filter(|i| i.containers > 0).count();
            out.insert(
                "ImageUsage".into(),
                usage(
                    active,
                    image_list.len(),
                    (images_total - used).max(0),
                    images_total,
                    serde_json::to_value(&image_list).map_err(internal_json)?,
                ),
            );
        }
        if want("container") {
            let n = containers.len();
            out.insert(
                "ContainerUsage".into(),
                usage(
                    c_active,
                    n,
                    c_reclaimable,
                    c_total,
                    Value::Array(containers),
                ),
            );
        }
        if want("volume") {
            let active = volumes
                .iter()
                .filter(|v| v.usage_data.is_some_and(|u| u.ref_count > 0))
                .count();
            let size = |v: &pier_api::volume::Volume| v.usage_data.map_or(0, |u| u.size.max(0));
            let total: i64 = volumes.iter().map(size).sum();
            let reclaimable: i64 = volumes
                .iter()
                .filter(|v| v.usage_data.is_some_and(|u| u.ref_count == 0))
                .map(size)
                .sum();
            let n = volumes.len();
            out.insert(
                "VolumeUsage".into(),
                usage(
                    active,
                    n,
                    reclaimable,
                    total,
                    serde_json::to_value(&volumes).map_err(internal_json)?,
                ),
            );
        }
        if want("build-cache") {
            let records = build_cache_records(&d);
            let total: i64 = records
                .iter()
                .map(|r| r["Size"].as_i64().unwrap_or(0))
                .sum();
            let n = records.len();
            out.insert(
                "BuildCacheUsage".into(),
                usage(0, n, total, total, Value::Array(records)),
            );
        }
        return Ok(Json(Value::Object(out)));
    }

    Ok(Json(json!({
        "LayersSize": if want("image") { layers_size } else { 0 },
        "Images": if want("image") {
            serde_json::to_value(&image_list).map_err(internal_json)?
        } else {
            Value::Null
        },
        "Containers": if want("container") { Value::Array(containers) } else { Value::Null },
        "Volumes": if want("volume") {
            serde_json::to_value(&volumes).map_err(internal_json)?
        } else {
            Value::Null
        },
        "BuildCache": if want("build-cache") {
            Value::Array(build_cache_records(&d))
        } else {
            Value::Null
        },
    })))
}

fn internal_json(e: serde_json::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

/// A container in `GET /containers/json`'s shape (what `system df -v` prints).
fn container_summary(engine: &crate::engine::Engine, c: &Container) -> Value {
    let created = pier_image::time::parse_rfc3339(&c.created).map_or(0, |(s, _)| s);
    let mut command = vec![c.path.clone()];
    command.extend(c.args.iter().cloned());
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_name,
        "ImageID": c.image_id,
        "Command": command.join(" "),
        "Created": created,
        "Ports": engine.ports_list_json(c),
        "Labels": c.config["Labels"].as_object().cloned().unwrap_or_default(),
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": { "NetworkMode": c.host_config["NetworkMode"] },
        "NetworkSettings": { "Networks": engine.network_settings_json(c)["Networks"] },
        "Mounts": super::containers::mount_points(engine, c),
    })
}

/// `Status` of a container summary, as Docker words it.
fn status_text(c: &Container) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let since = |t: &str| {
        pier_image::time::human_duration(
            pier_image::time::parse_rfc3339(t).map_or(0, |(s, _)| now - s),
        )
    };
    match c.state.status.as_str() {
        _ if c.state.running && c.state.paused => {
            format!("Up {} (Paused)", since(&c.state.started_at))
        }
        "running" => match &c.state.health {
            Some(h) if h.status == crate::engine::health::STARTING => {
                format!("Up {} (health: starting)", since(&c.state.started_at))
            }
            Some(h) => format!("Up {} ({})", since(&c.state.started_at), h.status),
            None => format!("Up {}", since(&c.state.started_at)),
        },
        "restarting" => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            since(&c.state.finished_at)
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            since(&c.state.finished_at)
        ),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ => "Created".into(),
    }
}

// ---------------------------------------------------------------------------------
// Prunes

/// Docker's `filters` query parameter, as a map of key → values.
/// A prune's `until` filter, as seconds since the epoch.
pub fn until_filter(filters: &HashMap<String, Vec<String>>) -> Result<Option<i64>, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match filters.get("until").map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([u]) => Ok(Some(pier_image::service::parse_until(u, now)?)),
        Some(_) => Err(ApiError::bad_request(
            "more than one until filter specified",
        )),
    }
}

fn prune_filters(
    q: &HashMap<String, String>,
    accepted: &[&str],
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let filters = super::containers::parse_filters(q.get("filters"))?;
    for key in filters.keys() {
        if !accepted.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    Ok(filters)
}

/// `POST /containers/prune` with Docker's filters (`until`, `label`, `label!`) and
/// `SpaceReclaimed` (the removed containers' writable layers).
pub async fn prune_containers(
    State(d): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let filters = prune_filters(&q, &["until", "label", "label!"])?;
    let until = until_filter(&filters)?;
    let pf = ContainerPruneFilters {
        until,
        labels: filters.get("label").cloned().unwrap_or_default(),
        not_labels: filters.get("label!").cloned().unwrap_or_default(),
    };
    let report = d.engine.prune_containers(&pf).await;
    d.engine.bus().publish(
        Event::new("container", "prune", "").with("reclaimed", report.space_reclaimed.to_string()),
    );
    Ok(Json(json!({
        "ContainersDeleted": report.deleted,
        "SpaceReclaimed": report.space_reclaimed,
    })))
}

/// `POST /build/prune` (`docker builder prune`): the build cache's step records and
/// `RUN --mount=type=cache` directories, all of them or those older than the `until`
/// filter (`all` changes nothing: no entry is in use once its build ended); then the
/// blobs and layers nothing else holds. `keep-storage` and other filters are refused.
async fn prune_build_cache(
    State(d): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let filters = prune_filters(&q, &["until"])?;
    let until = until_filter(&filters)?;
    if q.get("keep-storage")
        .is_some_and(|k| !k.is_empty() && k != "0")
    {
        return Err(ApiError::bad_request(
            "keep-storage is not supported by Pier's build cache",
        ));
    }
    let users = d.image_users();
    let engine = d.engine.clone();
    let images = d.images.clone();
    let (removed, freed) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let cache = engine.build_cache();
        let before: u64 = cache
            .usage(&images, engine.data_root())
            .iter()
            .filter(|u| u.kind == "exec.cachemount")
            .map(|u| u.size)
            .sum();
        let removed = cache.prune(&images, engine.data_root(), until)?;
        let after: u64 = cache
            .usage(&images, engine.data_root())
            .iter()
            .filter(|u| u.kind == "exec.cachemount")
            .map(|u| u.size)
            .sum();
        let freed = images.collect_garbage(&users)? + before.saturating_sub(after);
        Ok((removed, freed))
    })
    .await??;
    Ok(Json(
        // Go's nil slice: `null` when nothing went, as dockerd answers.
        json!({
            "CachesDeleted": if removed.is_empty() { Value::Null } else { json!(removed) },
            "SpaceReclaimed": freed,
        }),
    ))
}

/// The build cache in `system df`'s shape (BuildKit's `BuildCache` records).
fn build_cache_records(d: &AppState) -> Vec<Value> {
    d.engine
        .build_cache()
        .usage(&d.images, d.engine.data_root())
        .into_iter()
        .map(|u| {
            let created = pier_image::time::format_rfc3339(u.created, 0);
            json!({
                "ID": u.id,
                "Parents": Value::Null,
                "Type": u.kind,
                "Description": u.description,
                "InUse": false,
                "Shared": false,
                "Size": u.size,
                "CreatedAt": created,
                "LastUsedAt": created,
                "UsageCount": 1,
            })
        })
        .collect()
}
