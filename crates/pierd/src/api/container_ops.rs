//! More container endpoints: pause, unpause, top, stats, rename, update.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/update", post(update))
}

fn bool_param(q: &HashMap<String, String>, key: &str, default: bool) -> bool {
    match q.get(key).map(String::as_str) {
        None | Some("") => default,
        Some(v) => matches!(v, "1" | "true" | "True" | "TRUE"),
    }
}

/// An internal error of an operation on a container that was running when it began
/// (the runtime found no container, the monitor hung up): when the container turns
/// out to have exited meanwhile (a kill racing the request), that is Docker's 409
/// `not running`, the client's to handle, not a 500.
pub(super) async fn unless_exited(d: &AppState, id: &str, error: ApiError) -> ApiError {
    if error.status != StatusCode::INTERNAL_SERVER_ERROR {
        return error;
    }
    let Ok(exit) = d.engine.wait(id, "not-running") else {
        return error;
    };
    // The exit is recorded once the monitor has reported it: moments after.
    match tokio::time::timeout(Duration::from_secs(2), exit).await {
        Ok(_) => ApiError::conflict(format!("Container {id} is not running")),
        Err(_) => error,
    }
}

async fn pause(State(d): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    match d.engine.pause(&id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(unless_exited(&d, &id, e.into()).await),
    }
}

async fn unpause(
    State(d): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match d.engine.unpause(&id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(unless_exited(&d, &id, e.into()).await),
    }
}

async fn top(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let ps_args = q.get("ps_args").map_or("", String::as_str);
    match d.engine.top(&id, ps_args).await {
        Ok(v) => Ok(Json(v)),
        Err(e) => Err(unless_exited(&d, &id, e.into()).await),
    }
}

/// A sample with the previous one's CPU figures as `precpu_stats`.
fn with_previous(mut sample: Value, previous: Option<&Value>) -> Value {
    if let Some(p) = previous {
        sample["precpu_stats"] = p["cpu_stats"].clone();
        sample["preread"] = p["read"].clone();
    }
    sample
}

/// `GET /containers/{id}/stats`: with `stream` (the default) one object a second
/// while the container runs; else one object, primed with a first sample a second
/// earlier (so CPU percentages can be computed) unless `one-shot`.
async fn stats(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let c = d.engine.get(&id)?;
    let stream = bool_param(&q, "stream", true);
    let one_shot = bool_param(&q, "one-shot", false);
    if stream && one_shot {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    if !stream {
        let first = d.engine.stats_sample(&c.id).await?;
        let running = c.state.running && !c.state.restarting;
        if one_shot || !running {
            return Ok(Json(with_previous(first, None)).into_response());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = d.engine.stats_sample(&c.id).await?;
        return Ok(Json(with_previous(second, Some(&first))).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let engine = d.engine.clone();
    let cid = c.id.clone();
    tokio::spawn(async move {
        let mut previous: Option<Value> = None;
        loop {
            let Ok(sample) = engine.stats_sample(&cid).await else {
                return;
            };
            let out = with_previous(sample, previous.as_ref());
            if tx.send(Bytes::from(out.to_string() + "\n")).await.is_err() {
                return;
            }
            let running = engine
                .get(&cid)
                .is_ok_and(|c| c.state.running && !c.state.restarting);
            if !running {
                return;
            }
            previous = Some(out);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = tx.closed() => return,
            }
        }
    });
    let body = futures_util::stream::poll_fn({
        let mut rx = rx;
        move |cx| rx.poll_recv(cx)
    })
    .map(Ok::<_, Infallible>);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

async fn rename(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let name = q.get("name").map_or("", String::as_str);
    if name.trim_start_matches('/').is_empty() || id.is_empty() {
        return Err(ApiError::bad_request(
            "Neither old nor new names may be empty",
        ));
    }
    d.engine.rename(&id, name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update(
    State(d): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let request = super::body_types::parse_container_update(&body)?;
    super::cpusets::check(&request.resources)?;
    body = super::body_types::to_json(&request)?;
    super::resource_limits::check(&body)?;
    match d.engine.update_container(&id, &body).await {
        Ok(warnings) => Ok(Json(json!({ "Warnings": warnings }))),
        Err(e) => Err(unless_exited(&d, &id, e.into()).await),
    }
}
