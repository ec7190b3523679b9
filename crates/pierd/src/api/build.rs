//! `POST /build`: the classic builder's endpoint (what `DOCKER_BUILDKIT=0 docker
//! build`, docker-py and compose use), over [`engine::build`](crate::engine::build).
//!
//! The body is the context as a tar, read into the context directory while it
//! arrives. What fails before the build starts (a bad parameter, no Dockerfile, a
//! parse error) is answered with its status, as dockerd does while nothing is written;
//! after that the answer is a 200 JSON stream and a failure is its `error` line.
//!
//! Query parameters, each honoured or refused:
//! - honoured: `dockerfile`, `t` (repeated), `buildargs`, `labels`, `target`,
//!   `nocache`, `rm`, `forcerm`, `q`, `networkmode`, `platform` (the native one),
//!   and for `RUN`: `shmsize`, `extrahosts`, `ulimits`, `memory`, `memswap`,
//!   `cpushares`, `cpusetcpus`, `cpusetmems`, `cpuperiod`, `cpuquota`, `cgroupparent`;
//! - honoured: `pull`, and the `X-Registry-Config` header's credentials for the base
//!   images a build pulls (those missing from the store, or all with `pull`);
//! - honoured: `remote`, an http(s) URL of a tar (plain, gzip, zstd) or of a lone
//!   Dockerfile; git URLs are refused by name;
//! - refused with 400: `cachefrom`, `squash`, `outputs`, `version=2` (BuildKit's
//!   session protocol), an `isolation` other than `default`;
//! - ignored, as by dockerd on Linux: `session` (BuildKit only);
//! - `buildid`: dockerd's classic builder ignores it (only BuildKit's builds can be
//!   cancelled by ID); Pier honours it: `POST /build/cancel?id=` stops that build as
//!   a client going away does. That endpoint answers as dockerd's does otherwise: 200
//!   for any ID (also one that names no running build), 500 `build ID not provided`
//!   without one.
//! - Pier's own: `explain=1` adds a ` ---> Cache miss: <reason>` line to each step
//!   that runs (`pier build --explain`; docs/API-EXTENSIONS.md).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use pier_distribution::pull::PullRequest;
use pier_distribution::{AuthConfig, Progress, ProgressSink};
use pier_image::reference::Reference;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::distribution::{pull_error, registry_client, registry_domain};
use super::images::pump_body;
use super::params::Params;
use super::{ApiError, AppState};
use crate::engine::build::{BuildContext, BuildError, BuildEvent, BuildOptions, Puller};
use crate::engine::events::Event;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/build", post(build))
        .route("/build/cancel", post(cancel))
}

/// The running builds that were given a `buildid`, with their cancel flags.
fn running_builds() -> &'static Mutex<HashMap<String, Arc<AtomicBool>>> {
    static BUILDS: OnceLock<Mutex<HashMap<String, Arc<AtomicBool>>>> = OnceLock::new();
    BUILDS.get_or_init(Mutex::default)
}

/// A build's entry in [`running_builds`], removed when the build ends.
struct RunningBuild(String);

impl RunningBuild {
    fn register(id: &str, cancel: Arc<AtomicBool>) -> RunningBuild {
        if let Ok(mut builds) = running_builds().lock() {
            builds.insert(id.to_string(), cancel);
        }
        RunningBuild(id.to_string())
    }
}

impl Drop for RunningBuild {
    fn drop(&mut self) {
        if let Ok(mut builds) = running_builds().lock() {
            builds.remove(&self.0);
        }
    }
}

/// `POST /build/cancel?id=`: stops the build started with that `buildid`.
async fn cancel(Query(params): Query<Vec<(String, String)>>) -> Result<StatusCode, ApiError> {
    let params = Params(params);
    let Some(id) = params.get("id").filter(|id| !id.is_empty()) else {
        return Err(ApiError::internal("build ID not provided"));
    };
    if let Some(flag) = running_builds()
        .lock()
        .ok()
        .and_then(|b| b.get(id).cloned())
    {
        flag.store(true, Ordering::SeqCst);
    }
    Ok(StatusCode::OK)
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> ApiError {
        match e {
            BuildError::Invalid(m) => ApiError::bad_request(m),
            BuildError::NotFound(m) => ApiError::not_found(m),
            BuildError::Failed { message, .. } => ApiError::bad_request(message),
            BuildError::Internal(m) => ApiError::internal(m),
            BuildError::Cancelled => ApiError::internal("the build was cancelled"),
        }
    }
}

/// The options of a request, checked.
fn options(p: &Params) -> Result<BuildOptions, ApiError> {
    if p.get("version").is_some_and(|v| v == "2") {
        return Err(ApiError::bad_request(
            "BuildKit is not supported by Pier: use the classic builder (DOCKER_BUILDKIT=0), whose endpoint takes the modern Dockerfile syntax here",
        ));
    }
    if p.bool("squash") {
        return Err(ApiError::bad_request(
            "squash is only supported with experimental mode",
        ));
    }
    let cache_from: Vec<String> = p.json("cachefrom")?;
    if !cache_from.is_empty() {
        return Err(ApiError::bad_request(
            "--cache-from is not supported by Pier's builder: its cache is keyed by content, not by image",
        ));
    }
    if p.get("outputs")
        .is_some_and(|o| !o.is_empty() && o != "[]" && o != "null")
    {
        return Err(ApiError::bad_request(
            "build outputs are only supported by BuildKit",
        ));
    }
    if let Some(iso) = p
        .get("isolation")
        .filter(|i| !i.is_empty() && *i != "default")
    {
        return Err(ApiError::bad_request(format!(
            "Isolation {iso} is not supported on Linux"
        )));
    }
    let mut tags = Vec::new();
    for t in p.all("t") {
        if t.is_empty() {
            continue;
        }
        let r = Reference::parse_with_default_tag(&t)
            .map_err(|_| ApiError::bad_request(format!("invalid reference format: {t}")))?;
        if r.digest().is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid reference format: {t}: a tag cannot name a digest"
            )));
        }
        tags.push(r);
    }
    let build_args: BTreeMap<String, Option<String>> = p.json("buildargs")?;
    let labels: BTreeMap<String, String> = p.json("labels")?;
    let mut host_config = serde_json::Map::new();
    for (param, field) in [
        ("memory", "Memory"),
        ("memswap", "MemorySwap"),
        ("cpushares", "CpuShares"),
        ("cpuperiod", "CpuPeriod"),
        ("cpuquota", "CpuQuota"),
        ("shmsize", "ShmSize"),
    ] {
        if let Some(v) = p.int(param)?.filter(|v| *v != 0) {
            host_config.insert(field.into(), json!(v));
        }
    }
    for (param, field) in [
        ("cpusetcpus", "CpusetCpus"),
        ("cpusetmems", "CpusetMems"),
        ("cgroupparent", "CgroupParent"),
    ] {
        if let Some(v) = p.get(param).filter(|v| !v.is_empty()) {
            host_config.insert(field.into(), json!(v));
        }
    }
    let ulimits: Vec<Value> = p.json("ulimits")?;
    if !ulimits.is_empty() {
        host_config.insert("Ulimits".into(), json!(ulimits));
    }
    let extra_hosts: Vec<String> = match p.get("extrahosts").filter(|v| !v.is_empty()) {
        None => Vec::new(),
        // The docker CLI sends a JSON list; older clients a comma-separated one.
        Some(v) => {
            serde_json::from_str(v).unwrap_or_else(|_| v.split(',').map(str::to_string).collect())
        }
    };
    if !extra_hosts.is_empty() {
        host_config.insert("ExtraHosts".into(), json!(extra_hosts));
    }
    Ok(BuildOptions {
        dockerfile: p.get("dockerfile").unwrap_or("").to_string(),
        tags,
        build_args,
        labels,
        target: p.get("target").map(str::to_string),
        no_cache: p.bool("nocache"),
        remove: p.bool_or("rm", true),
        force_remove: p.bool("forcerm"),
        network_mode: p
            .get("networkmode")
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string(),
        host_config,
        quiet: p.bool("q"),
        platform: p.get("platform").map(str::to_string),
        pull: p.bool("pull"),
        explain: p.bool("explain"),
    })
}

fn line(v: &Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

/// `X-Registry-Config`: credentials by registry, keyed as pulls name registries.
fn registry_configs(headers: &HeaderMap) -> HashMap<String, AuthConfig> {
    let value = headers
        .get("x-registry-config")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    AuthConfig::map_from_header(value)
        .into_iter()
        .map(|(server, auth)| (registry_domain(&server), auth))
        .collect()
}

/// Pulls through the daemon's registry client, with the request's credentials.
fn puller(state: &AppState, configs: HashMap<String, AuthConfig>) -> Puller {
    let client = registry_client(state);
    let images = state.images.clone();
    let bus = state.engine.clone();
    let configs = Arc::new(configs);
    Arc::new(
        move |reference: Reference, events: mpsc::Sender<BuildEvent>| {
            let client = client.clone();
            let images = images.clone();
            let bus = bus.clone();
            let auth = configs.get(reference.domain()).cloned().unwrap_or_default();
            Box::pin(async move {
                let sink: ProgressSink = Arc::new(move |p: Progress| {
                    let message = match &p {
                        Progress::Status { id, text } => json!({ "status": text, "id": id }),
                        Progress::Layer { id, state } if state.bytes().is_none() => {
                            json!({ "status": state.text(), "id": id })
                        }
                        _ => return,
                    };
                    let _ = events.try_send(BuildEvent::Message(message));
                });
                let request = PullRequest {
                    reference: reference.clone(),
                    auth,
                    platform: None,
                };
                pier_distribution::pull::pull(&client, images, &request, &sink)
                    .await
                    .map_err(|e| pull_error(e, &reference).message)?;
                let name = reference.familiar();
                bus.bus().publish(Event::image(&name, "pull", Some(&name)));
                Ok(())
            })
        },
    )
}

async fn build(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params(params);
    let opts = options(&params)?;
    let puller = puller(&state, registry_configs(&headers));
    let engine = state.engine.clone();
    let prepared = match params.get("remote").filter(|r| !r.is_empty()) {
        // A remote context: the body (empty from clients) is not read.
        Some(url) => {
            let context = engine.remote_context(url, &opts.dockerfile).await?;
            tokio::task::spawn_blocking(move || engine.prepare_build(context, opts)).await?
        }
        None => {
            let (reader, pump) = pump_body(body);
            let tmp = engine.build_tmp();
            let prepared = tokio::task::spawn_blocking(move || {
                let context = BuildContext::receive(reader, &tmp)?;
                engine.prepare_build(context, opts)
            })
            .await?;
            let _ = pump.await;
            prepared
        }
    };
    let build = prepared?.with_puller(puller);
    let registered = params
        .get("buildid")
        .filter(|id| !id.is_empty())
        .map(|id| RunningBuild::register(id, build.canceller()));
    let (tx, mut rx) = mpsc::channel::<BuildEvent>(64);
    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let _registered = registered;
        let run = tokio::spawn(build.run(tx));
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                // The client went away while nothing was being written.
                _ = body_tx.closed() => None,
            };
            let Some(event) = event else {
                break;
            };
            let bytes = match event {
                BuildEvent::Stream(s) => line(&json!({ "stream": s })),
                BuildEvent::Aux(v) => line(&json!({ "aux": v })),
                BuildEvent::Message(v) => line(&v),
            };
            if body_tx.send(Ok(bytes)).await.is_err() {
                // The client went away: dropping the receiver cancels the build.
                drop(rx);
                let _ = run.await;
                return;
            }
        }
        // Dropping the receiver cancels a build still running.
        drop(rx);
        let outcome = run
            .await
            .unwrap_or_else(|e| Err(BuildError::internal("the build", e)));
        if let Err(e) = outcome {
            let message = e.to_string();
            let detail = match &e {
                BuildError::Failed { code, .. } => json!({ "code": code, "message": message }),
                _ => json!({ "message": message }),
            };
            let _ = body_tx
                .send(Ok(line(
                    &json!({ "errorDetail": detail, "error": message }),
                )))
                .await;
        }
    });
    let stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
