//! The exec endpoints (`docker exec`): create, start (hijacked like attach), inspect,
//! resize. The work is in [`crate::engine::exec`].

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    Ok(if v.is_null() { json!({}) } else { v })
}

/// `POST /containers/{id}/exec`.
async fn create(
    State(d): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut body = json_body(&body)?;
    super::body_types::exec_create(&mut body)?;
    let exec_id = d.engine.exec_create(&id, &body)?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

/// `POST /exec/{id}/start`: detached, 204 and the process runs on its own; else the
/// connection is hijacked (101, `Upgrade: tcp`) and carries the process's stdio.
async fn start(
    State(d): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut body = json_body(&body)?;
    super::body_types::exec_start(&mut body)?;
    let mut config = d.engine.exec_begin(&id)?;
    // As in Docker, the start's `Tty` says whether the stream is raw or multiplexed
    // (a terminal exec started without it gets its terminal's output in frames).
    config.raw_stream = body["Tty"].as_bool() == Some(true);
    let engine = d.engine.clone();
    if body["Detach"].as_bool() == Some(true) {
        tokio::spawn(engine.exec_run::<TokioIo<hyper::upgrade::Upgraded>>(id, config, None));
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let tty = config.raw_stream;
    tokio::spawn(async move {
        // A client that does not upgrade still gets the process run (as detached).
        let client = on_upgrade.await.ok().map(TokioIo::new);
        engine.exec_run(id, config, client).await;
    });
    super::hijack_response(tty)
}

/// `GET /exec/{id}/json`.
async fn inspect(
    State(d): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(d.engine.exec_inspect(&id)?))
}

/// `POST /exec/{id}/resize?h=&w=`.
async fn resize(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        let v = q.get(k).map(String::as_str).unwrap_or_default();
        v.parse::<u16>().map_err(|_| {
            ApiError::bad_request(format!("invalid resize value {k}={v:?}: want 0..65535"))
        })
    };
    let (h, w) = (dim("h")?, dim("w")?);
    d.engine.exec_resize(&id, h, w)?;
    Ok(StatusCode::OK)
}
