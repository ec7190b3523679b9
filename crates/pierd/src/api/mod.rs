//! The Docker Engine API.
//!
//! Requests may carry a version prefix (`/v1.47/containers/json`); it is checked
//! against [`MIN_API_VERSION`]..=[`MAX_API_VERSION`] and stripped before routing, and
//! the version asked for is handed to handlers as [`ApiVersion`] (unprefixed requests
//! get the newest). Errors are Docker's: a status code and `{"message": "..."}`.

pub mod archive;
mod base64;
pub mod commit;
pub mod container_ops;
pub mod containers;
pub mod detach;
pub mod error;
pub mod events;
pub mod exec;
pub mod images;
pub mod logs;
pub mod networks;
mod stream;
pub mod system;
pub mod websocket;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use error::ApiError;

use crate::Daemon;

/// The newest API version served (the contract's `docker-engine-api.yaml`).
pub const MAX_API_VERSION: ApiVersion = ApiVersion(1, 56);
/// The oldest API version served.
pub const MIN_API_VERSION: ApiVersion = ApiVersion(1, 41);

/// An API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl ApiVersion {
    fn parse(text: &str) -> Option<ApiVersion> {
        let (major, minor) = text.split_once('.')?;
        Some(ApiVersion(major.parse().ok()?, minor.parse().ok()?))
    }
}

/// What handlers get as state.
pub type AppState = Arc<Daemon>;

/// The whole API as one service: version handling around the routes.
pub fn service(daemon: Arc<Daemon>) -> Router {
    let routes = Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(archive::routes())
        .merge(commit::routes())
        .merge(container_ops::routes())
        .merge(exec::routes())
        .merge(events::routes())
        .merge(networks::routes())
        .fallback(not_found)
        .with_state(daemon);
    // `Router::layer` would run after routing; the prefix must go before it.
    let versioned = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(strip_version))
        .service(routes);
    Router::new().fallback_service(versioned)
}

/// The answer that hands the connection over to a raw stream (attach, exec start):
/// 101 with `Upgrade: tcp` and Docker's stream content type.
pub(crate) fn hijack_response(tty: bool) -> Result<Response, ApiError> {
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONTENT_TYPE, content_type)
        .header(axum::http::header::CONNECTION, "Upgrade")
        .header(axum::http::header::UPGRADE, "tcp")
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("page not found: {}", uri.path()),
    )
}

/// `/v1.47/x` → `/x` with `ApiVersion(1, 47)`; out-of-range versions get Docker's 400.
async fn strip_version(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut version = MAX_API_VERSION;
    if let Some(rest) = path.strip_prefix("/v") {
        let (text, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some(v) = ApiVersion::parse(text) {
            if v < MIN_API_VERSION {
                return ApiError::bad_request(format!(
                    "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response();
            }
            if v > MAX_API_VERSION {
                return ApiError::bad_request(format!(
                    "client version {v} is too new. Maximum supported API version is {MAX_API_VERSION}"
                ))
                .into_response();
            }
            version = v;
            let tail = if tail.is_empty() { "/" } else { tail };
            let new_uri = match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_string(),
            };
            if let Ok(uri) = new_uri.parse::<Uri>() {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(version);
    next.run(req).await
}
