//! The network endpoints: list, inspect, create, remove, prune, connect, disconnect.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::containers::parse_filters;
use super::error::ApiError;
use super::AppState;
use crate::engine::network::Network;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

fn labels_match(n: &Network, wanted: &[String]) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => n.labels.get(k).map(String::as_str) == Some(v),
        None => n.labels.contains_key(w.as_str()),
    })
}

/// `GET /networks` with Docker's filters.
async fn list(
    State(d): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(q.get("filters"))?;
    for key in filters.keys() {
        if !matches!(
            key.as_str(),
            "driver" | "id" | "label" | "name" | "scope" | "type" | "dangling"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    if let Some(types) = filters.get("type") {
        for t in types {
            if t != "custom" && t != "builtin" {
                return Err(ApiError::bad_request(format!(
                    "invalid filter: 'type'='{t}'"
                )));
            }
        }
    }
    let used: std::collections::HashSet<String> = d
        .engine
        .list()
        .iter()
        .flat_map(|c| {
            c.networks
                .values()
                .map(|e| e.network_id.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let any = |key: &str, f: &dyn Fn(&str) -> bool| {
        filters
            .get(key)
            .is_none_or(|vals| vals.is_empty() || vals.iter().any(|v| f(v)))
    };
    let mut out = Vec::new();
    let mut nets = d.engine.net().list();
    nets.sort_by(|a, b| a.name.cmp(&b.name));
    for n in nets {
        let builtin = matches!(n.name.as_str(), "bridge" | "host" | "none");
        let keep = any("driver", &|v| n.driver == v)
            && any("id", &|v| n.id.starts_with(v))
            && any("name", &|v| n.name.contains(v))
            && any("scope", &|v| v == "local")
            && any("type", &|v| (v == "builtin") == builtin)
            && any("dangling", &|v| {
                let dangling = !builtin && !used.contains(&n.id);
                matches!(v, "true" | "1") == dangling
            })
            && labels_match(&n, filters.get("label").map_or(&[][..], |v| v));
        if keep {
            out.push(d.engine.network_json(&n, false));
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn inspect(
    State(d): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let n = d.engine.net().find(&id)?;
    Ok(Json(d.engine.network_json(&n, true)))
}

async fn create(State(d): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let mut body = body_json(&body)?;
    super::body_types::network_create(&mut body)?;
    let (id, warning) = d.engine.network_create(body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warning": warning })),
    )
        .into_response())
}

async fn remove(State(d): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    d.engine.network_remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune` with Docker's filters (`until`, `label`, `label!`).
async fn prune(
    State(d): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(q.get("filters"))?;
    for key in filters.keys() {
        if !matches!(key.as_str(), "until" | "label" | "label!") {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    let until = super::system::until_filter(&filters)?;
    let labels = filters.get("label").cloned().unwrap_or_default();
    let not_labels = filters.get("label!").cloned().unwrap_or_default();
    let removed = d
        .engine
        .network_prune(|n| {
            let created = pier_image::time::parse_rfc3339(&n.created).map_or(0, |t| t.0);
            let too_new = until.is_some_and(|u| created >= u);
            let lacks = !labels_match(n, &labels);
            let excluded = !not_labels.is_empty()
                && not_labels
                    .iter()
                    .any(|l| labels_match(n, std::slice::from_ref(l)));
            too_new || lacks || excluded
        })
        .await?;
    Ok(Json(json!({
        "NetworksDeleted": if removed.is_empty() { Value::Null } else { json!(removed) },
    })))
}

/// The body of a connect or disconnect (type-checked by `check`), and the container it
/// names.
fn container_body(
    body: &Bytes,
    check: fn(&mut Value) -> Result<(), ApiError>,
) -> Result<(Value, String), ApiError> {
    let mut body = body_json(body)?;
    check(&mut body)?;
    let container = body["Container"].as_str().unwrap_or_default().to_string();
    if container.is_empty() {
        return Err(ApiError::bad_request("no container given"));
    }
    Ok((body, container))
}

async fn connect(
    State(d): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (body, container) = container_body(&body, super::body_types::network_connect)?;
    d.engine
        .network_connect(&id, &container, &body["EndpointConfig"])
        .await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(d): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (body, container) = container_body(&body, super::body_types::network_disconnect)?;
    let force = body["Force"].as_bool() == Some(true);
    d.engine.network_disconnect(&id, &container, force).await?;
    Ok(StatusCode::OK)
}
