//! The Docker Engine API.
//!
//! Requests may carry a version prefix (`/v1.47/containers/json`); it is checked
//! against [`MIN_API_VERSION`]..=[`MAX_API_VERSION`] and stripped before routing, and
//! the version asked for is handed to handlers as [`ApiVersion`] (unprefixed requests
//! get the newest). Errors are Docker's: a status code and `{"message": "..."}`.

pub mod archive;
mod body_types;
pub mod build;
pub mod commit;
pub mod container_ops;
pub mod containers;
mod cpusets;
pub mod detach;
mod distribution;
pub mod error;
pub mod events;
pub mod exec;
pub mod images;
mod linux_fields;
pub mod logs;
pub mod networks;
mod params;
mod resource_limits;
mod stream;
mod swarm;
pub mod system;
mod volume_archive;
pub mod volumes;
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
        .merge(build::routes())
        .merge(distribution::routes())
        .merge(containers::routes())
        .merge(archive::routes())
        .merge(commit::routes())
        .merge(container_ops::routes())
        .merge(exec::routes())
        .merge(events::routes())
        .merge(networks::routes())
        .merge(volumes::routes())
        .merge(volume_archive::routes())
        .merge(swarm::routes())
        .fallback(not_found)
        .with_state(daemon);
    // `Router::layer` would run after routing; the prefix must go before it.
    let versioned = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(strip_version))
        .service(routes);
    guarded(Router::new().fallback_service(versioned))
}

/// `routes` answering every error in Docker's shape ([`json_errors`]), and a panic in
/// a request's handling with 500 ([`panicked`]): it ends that request only.
fn guarded(routes: Router) -> Router {
    routes
        .layer(axum::middleware::from_fn(json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
}

/// The answer to a request whose handler panicked (the panic hook has logged where):
/// 500 in Docker's error shape; the daemon goes on.
fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    eprintln!("pierd: a request handler panicked ({what}); answered 500");
    ApiError::internal(format!("internal error: {what}")).into_response()
}

/// The largest error body made JSON by [`json_errors`]; larger ones are not ours.
const PLAIN_ERROR_MAX: usize = 64 * 1024;

/// Errors that axum answers itself in plain text (a body over the size limit, a query
/// or path it cannot parse, a method a route does not take) get Docker's shape,
/// `{"message": "..."}`, like every other error.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), PLAIN_ERROR_MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_lowercase(),
        text => text.to_string(),
    };
    ApiError::new(status, message).into_response()
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    async fn call(app: &Router, method: &str, uri: &str, body: Body) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_service_goes_on() {
        let routes = Router::new()
            .route(
                "/boom",
                get(|| async {
                    let n = 42;
                    if n == 42 {
                        panic!("boom at {n}");
                    }
                    "unreached"
                }),
            )
            .route("/fine", get(|| async { "fine" }))
            .route("/body", post(|_: axum::body::Bytes| async { "taken" }));
        let app = guarded(routes);
        let (status, body) = call(&app, "GET", "/boom", Body::empty()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, r#"{"message":"internal error: boom at 42"}"#);
        assert_eq!(
            call(&app, "GET", "/fine", Body::empty()).await,
            (StatusCode::OK, "fine".to_string())
        );
        // axum's own plain-text rejections come out in Docker's shape.
        let big = Body::from(vec![b'x'; 3 << 20]);
        let (status, body) = call(&app, "POST", "/body", big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            body.starts_with(r#"{"message":"Failed to buffer the request body"#),
            "{body}"
        );
        let (status, body) = call(&app, "DELETE", "/fine", Body::empty()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body, r#"{"message":"method not allowed"}"#);
    }
}
