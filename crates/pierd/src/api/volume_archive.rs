//! Pier's volume backup endpoints (extensions to the Engine API; docs/API-EXTENSIONS.md):
//!
//! - `GET /volumes/{name}/export[?force=1]`: the volume's content as a tar stream
//!   (`application/x-tar`); 409 naming the running containers that use it, unless
//!   `force`.
//! - `POST /volumes/{name}/import`: a tar body fills the volume, made (`local`) if
//!   missing (201) or empty (200); 409 if it has content or running containers use it.
//! - `POST /volumes/{name}/clone?target=NAME[&force=1]`: copies the volume into a new or
//!   empty volume `NAME` (201, its `Volume`).
//!
//! The policy is the engine's ([`crate::engine::volume_archive`]).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pier_api::volume::Volume;

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes/{name}/export", get(export))
        .route("/volumes/{name}/import", post(import))
        .route("/volumes/{name}/clone", post(clone))
}

/// A boolean query flag as Docker reads them (`1`/`true`, `0`/`false`, missing: false).
fn flag(q: &HashMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "0" || v == "false" => Ok(false),
        Some(v) if v == "1" || v == "true" => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "invalid value for {key}: {v:?} (1, true, 0 or false)"
        ))),
    }
}

async fn export(
    State(d): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let force = flag(&q, "force")?;
    let engine = d.engine.clone();
    // Checked and mounted before the answer starts, so that 404 and 409 are statuses.
    let access = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || engine.volume_export_open(&name, force)).await??
    };
    let body = super::archive::stream_tar(move |w| {
        let written = pier_volume::archive::export(&access.path, w)
            .map_err(|e| std::io::Error::other(format!("export {name}: {e}")));
        drop(access);
        written
    });
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

async fn import(
    State(d): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Volume>), ApiError> {
    let engine = d.engine.clone();
    let (reader, pump) = super::images::pump_body(body);
    let result = tokio::task::spawn_blocking(move || {
        let made = engine.volume_import(&name, reader)?;
        Ok::<_, crate::engine::EngineError>((made, engine.volumes().inspect(&name)?))
    })
    .await;
    let _ = pump.await;
    let (made, volume) = result??;
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(volume)))
}

async fn clone(
    State(d): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<(StatusCode, Json<Volume>), ApiError> {
    let force = flag(&q, "force")?;
    let Some(target) = q.get("target").filter(|t| !t.is_empty()).cloned() else {
        return Err(ApiError::bad_request(
            "clone: the target volume's name is missing (target=NAME)",
        ));
    };
    let engine = d.engine.clone();
    let volume =
        tokio::task::spawn_blocking(move || engine.volume_clone(&name, &target, force)).await??;
    Ok((StatusCode::CREATED, Json(volume)))
}
