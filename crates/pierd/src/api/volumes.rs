//! The volume endpoints (`/volumes/...`), in Docker's shapes ([`pier_api::volume`]).
//! The work is the engine's volume service ([`crate::engine::volumes`]); its calls
//! block (drivers may be plugins), so they run on the blocking pool.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use pier_api::volume::{Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse};

use super::{ApiError, ApiVersion, AppState};
use crate::engine::volumes::{ListFilters, PruneFilters};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

/// Runs a blocking engine call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::engine::EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

fn flag_value(key: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid filter '{key}={value}'"
        ))),
    }
}

/// The filters of `GET /volumes`; unknown keys are refused as dockerd refuses them.
fn list_filters(q: &HashMap<String, String>) -> Result<ListFilters, ApiError> {
    let raw = super::containers::parse_filters(q.get("filters"))?;
    let mut filters = ListFilters::default();
    for (key, values) in raw {
        match key.as_str() {
            "dangling" => {
                for v in &values {
                    filters.dangling = Some(flag_value(&key, v)?);
                }
            }
            "driver" => filters.drivers = values,
            "label" => filters.labels = values,
            "name" => filters.names = values,
            _ => return Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
        }
    }
    Ok(filters)
}

async fn list(
    State(d): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<VolumeListResponse>, ApiError> {
    let filters = list_filters(&q)?;
    let engine = d.engine.clone();
    let (volumes, warnings) =
        tokio::task::spawn_blocking(move || engine.volumes().list(&filters)).await?;
    Ok(Json(VolumeListResponse {
        volumes,
        warnings: (!warnings.is_empty()).then_some(warnings),
        extra: serde_json::Map::new(),
    }))
}

async fn create(
    State(d): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Volume>), ApiError> {
    // An empty body is an empty request, as dockerd takes it.
    let opts: VolumeCreateOptions = if body.iter().all(u8::is_ascii_whitespace) {
        VolumeCreateOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let engine = d.engine.clone();
    let volume = blocking(move || engine.volume_create(&opts)).await?;
    Ok((StatusCode::CREATED, Json(volume)))
}

async fn inspect(
    State(d): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Volume>, ApiError> {
    let engine = d.engine.clone();
    Ok(Json(
        blocking(move || engine.volumes().inspect(&name)).await?,
    ))
}

async fn remove(
    State(d): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let force = matches!(
        q.get("force").map(String::as_str),
        Some("1" | "true" | "True")
    );
    let engine = d.engine.clone();
    blocking(move || engine.volume_remove(&name, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: unused anonymous volumes; with `all=true` (API ≥ 1.42) named
/// ones too. Before API 1.42 every unused volume goes, as dockerd did then.
async fn prune(
    State(d): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<VolumePruneResponse>, ApiError> {
    let raw = super::containers::parse_filters(q.get("filters"))?;
    let mut filters = PruneFilters {
        all: v < ApiVersion(1, 42),
        ..PruneFilters::default()
    };
    for (key, values) in raw {
        match key.as_str() {
            "label" => filters.labels = values,
            "label!" => filters.not_labels = values,
            "all" if v >= ApiVersion(1, 42) => {
                for value in &values {
                    filters.all = flag_value(&key, value)?;
                }
            }
            _ => return Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
        }
    }
    let engine = d.engine.clone();
    let answer = tokio::task::spawn_blocking(move || engine.volume_prune(&filters)).await?;
    Ok(Json(answer))
}
