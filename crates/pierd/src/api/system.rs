//! `/_ping`, `/version`, `/info`.

use axum::extract::{Extension, State};
use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiError, ApiVersion, AppState, MAX_API_VERSION, MIN_API_VERSION};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
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
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string())
}
