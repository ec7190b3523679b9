//! Registry endpoints: pull (`POST /images/create?fromImage=`), push
//! (`POST /images/{name}/push`), `POST /auth` and `GET /distribution/{name}/json`.
//!
//! The work is pier-distribution's; this module reads the parameters and the
//! `X-Registry-Auth` header, and turns progress into Docker's JSON message stream.
//! As dockerd, an error before the first message is an ordinary error answer (the
//! docker CLI prints `Error response from daemon: ...`), a later one is the stream's
//! last message (`{"errorDetail":{"message":..},"error":..}`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pier_distribution::client::DOCKER_HUB_DOMAIN;
use pier_distribution::pull::{PullRequest, Pulled};
use pier_distribution::push::PushRequest;
use pier_distribution::{
    parse_platform, AuthConfig, Client, Progress, ProgressSink, RegistryConfig,
};
use pier_image::reference::Reference;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{ApiError, AppState};
use crate::engine::events::Event;

type Result<T, E = ApiError> = std::result::Result<T, E>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth", post(auth))
        .route("/distribution/{*rest}", get(distribution_inspect))
}

/// The daemon's registry client, made from its flags on first use.
pub(super) fn registry_client(state: &AppState) -> Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Client::new(RegistryConfig {
                insecure: state.config.insecure_registries.clone(),
                mirrors: state.config.registry_mirrors.clone(),
            })
        })
        .clone()
}

/// The registry client's error classes, each to one status.
pub(super) fn registry_error(e: pier_distribution::Error) -> ApiError {
    use pier_distribution::Error as E;
    match e {
        E::Store(e) => e.into(),
        e => {
            let status = match &e {
                E::NotFound(_) => StatusCode::NOT_FOUND,
                E::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                E::Denied(_) => StatusCode::FORBIDDEN,
                E::InvalidArgument(_) | E::InvalidContent(_) | E::Unsupported(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError::new(status, e.to_string())
        }
    }
}

fn registry_auth(headers: &HeaderMap) -> AuthConfig {
    headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .map(AuthConfig::from_header)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The JSON message stream

/// One message of Docker's progress stream (`jsonmessage.JSONMessage`).
#[derive(Debug, Default, Serialize)]
struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aux: Option<PushResult>,
}

#[derive(Debug, Default, Serialize)]
struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

/// `aux` of a push's stream (`types.PushResult`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PushResult {
    tag: String,
    digest: String,
    size: u64,
}

fn message_of(progress: Progress) -> JsonMessage {
    match progress {
        Progress::Status { id, text } => JsonMessage {
            status: Some(text),
            id,
            ..JsonMessage::default()
        },
        Progress::Layer { id, state } => {
            let (detail, bar) = match state.bytes() {
                Some((current, total)) => (
                    ProgressDetail {
                        current: Some(current),
                        total: Some(total),
                    },
                    Some(progress_bar(current, total)),
                ),
                None => (ProgressDetail::default(), None),
            };
            JsonMessage {
                status: Some(state.text()),
                progress_detail: Some(detail),
                progress: bar,
                id: Some(id),
                aux: None,
            }
        }
        Progress::Pushed { tag, digest, size } => JsonMessage {
            progress_detail: Some(ProgressDetail::default()),
            aux: Some(PushResult { tag, digest, size }),
            ..JsonMessage::default()
        },
    }
}

fn line(message: &JsonMessage) -> Bytes {
    let mut text = serde_json::to_string(message).unwrap_or_default();
    text.push_str("\r\n");
    Bytes::from(text)
}

fn error_message(message: &str) -> Bytes {
    let mut text = json!({ "errorDetail": { "message": message }, "error": message }).to_string();
    text.push_str("\r\n");
    Bytes::from(text)
}

/// Docker's `progress` text: a 50-column bar and human sizes (`[==>  ] 1.2MB/3.4MB`).
fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0);
    let mut bar = "=".repeat(filled as usize);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat((WIDTH - filled - 1) as usize));
    }
    format!("[{bar}] {}/{}", human_size(current), human_size(total))
}

/// Go's `units.HumanSize`: decimal units, four significant digits.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let digits = if size >= 100.0 {
        1
    } else if size >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{size:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

/// Runs `work` with a progress sink and answers with its stream. `work` returns the
/// closing messages. An error before anything was sent is the answer's status.
async fn stream_work<F, Fut>(work: F) -> Result<Response>
where
    F: FnOnce(ProgressSink) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<Progress>>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let sent = Arc::new(AtomicBool::new(false));
    let sink_tx = tx.clone();
    let sink_sent = Arc::clone(&sent);
    let sink: ProgressSink = Arc::new(move |p| {
        sink_sent.store(true, Ordering::SeqCst);
        let _ = sink_tx.send(line(&message_of(p)));
    });
    let task = tokio::spawn(async move {
        match work(sink).await {
            Ok(closing) => {
                for p in closing {
                    let _ = tx.send(line(&message_of(p)));
                }
                Ok(())
            }
            Err(e) if sent.load(Ordering::SeqCst) => {
                let _ = tx.send(error_message(&e.message));
                Ok(())
            }
            Err(e) => Err(e),
        }
    });
    let Some(first) = rx.recv().await else {
        task.await??;
        return Ok(json_stream(Body::empty()));
    };
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        match first {
            Some(chunk) => Some((Ok::<_, std::io::Error>(chunk), (None, rx))),
            None => rx.recv().await.map(|chunk| (Ok(chunk), (None, rx))),
        }
    });
    Ok(json_stream(Body::from_stream(stream)))
}

fn json_stream(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Pull

/// `docker pull`: `fromImage` (with `tag`, which may be a digest; neither means every
/// tag), `platform`, `X-Registry-Auth`.
pub(super) async fn pull(
    state: AppState,
    image: &str,
    tag: &str,
    platform: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let named = Reference::parse(image)?;
    let all_tags = named.tag().is_none() && named.digest().is_none() && tag.is_empty();
    let reference = if named.tag().is_some() || named.digest().is_some() || tag.is_empty() {
        named.clone()
    } else if tag.contains(':') {
        Reference::parse(&format!("{image}@{tag}"))?
    } else {
        named.with_tag(tag)?
    };
    let platform = match platform.trim() {
        "" => None,
        p => Some(parse_platform(p).map_err(registry_error)?),
    };
    let auth = registry_auth(headers);
    let client = registry_client(&state);
    stream_work(move |sink| async move {
        let references = if all_tags {
            let repo = client
                .repository(
                    reference.domain(),
                    reference.path(),
                    &auth,
                    pier_distribution::Access::Pull,
                    &[],
                )
                .await
                .map_err(registry_error)?;
            let mut tags = repo.tags().await.map_err(registry_error)?;
            tags.sort();
            tags.iter()
                .map(|t| reference.with_tag(t).map_err(ApiError::from))
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![reference.clone()]
        };
        let mut updated = false;
        let mut last: Option<Pulled> = None;
        for r in &references {
            let request = PullRequest {
                reference: r.clone(),
                auth: auth.clone(),
                platform: platform.clone(),
            };
            let pulled =
                pier_distribution::pull::pull(&client, Arc::clone(&state.images), &request, &sink)
                    .await
                    .map_err(|e| pull_error(e, r))?;
            publish_event(&state, r, "pull");
            updated |= pulled.updated;
            if all_tags {
                sink(Progress::Status {
                    id: None,
                    text: format!("Digest: {}", pulled.digest),
                });
            }
            last = Some(pulled);
        }
        let mut closing = Vec::new();
        if let (false, Some(pulled)) = (all_tags, &last) {
            closing.push(Progress::Status {
                id: None,
                text: format!("Digest: {}", pulled.digest),
            });
        }
        let shown = reference.familiar();
        closing.push(Progress::Status {
            id: None,
            text: if updated {
                format!("Status: Downloaded newer image for {shown}")
            } else {
                format!("Status: Image is up to date for {shown}")
            },
        });
        Ok(closing)
    })
    .await
}

/// dockerd's `pull`/`push` event: the reference as its ID, the repository as `name`.
fn publish_event(state: &AppState, reference: &Reference, action: &str) {
    let repository = Reference::parse(&reference.repository())
        .map_or_else(|_| reference.familiar(), |r| r.familiar());
    state.engine.bus().publish(Event::image(
        &reference.familiar(),
        action,
        Some(&repository),
    ));
}

/// dockerd's wording for a pull that the registry refused.
pub(super) fn pull_error(e: pier_distribution::Error, reference: &Reference) -> ApiError {
    match e {
        pier_distribution::Error::Unauthorized(text) | pier_distribution::Error::Denied(text)
            if reference.domain() == DOCKER_HUB_DOMAIN =>
        {
            let repo = Reference::parse(&reference.repository())
                .map_or_else(|_| reference.familiar(), |r| r.familiar());
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("pull access denied for {repo}, repository does not exist or may require 'docker login': {text}"),
            )
        }
        e => registry_error(e),
    }
}

// ---------------------------------------------------------------------------------------
// Push

/// `docker push`: `name` with `tag` (none: every local tag of the repository).
pub(super) async fn push(
    state: AppState,
    name: &str,
    tag: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let named = Reference::parse(name)?;
    let references: Vec<Reference> = if named.tag().is_some() {
        vec![named]
    } else if !tag.is_empty() {
        vec![named.with_tag(tag)?]
    } else {
        let repository = named.repository();
        let images = Arc::clone(&state.images);
        let mut tagged: Vec<Reference> = tokio::task::spawn_blocking(move || images.store().list())
            .await??
            .into_iter()
            .map(|i| i.name)
            .filter(|n| n.repository() == repository && n.tag().is_some() && n.digest().is_none())
            .collect();
        tagged.sort();
        if tagged.is_empty() {
            return Err(ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                named.familiar()
            )));
        }
        tagged
    };
    let auth = registry_auth(headers);
    let client = registry_client(&state);
    stream_work(move |sink| async move {
        for r in references {
            let request = PushRequest {
                reference: r.clone(),
                auth: auth.clone(),
            };
            pier_distribution::push::push(&client, Arc::clone(&state.images), &request, &sink)
                .await
                .map_err(registry_error)?;
            publish_event(&state, &r, "push");
        }
        Ok(Vec::new())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// POST /auth

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AuthResponse {
    status: String,
    identity_token: String,
}

/// `docker login`: checks the credentials against the registry. Nothing is stored.
async fn auth(State(state): State<AppState>, body: Bytes) -> Result<Json<AuthResponse>> {
    let mut config: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid authconfig: {e}")))?;
    config.fill_from_auth();
    let domain = registry_domain(&config.serveraddress);
    registry_client(&state)
        .login(&domain, &config)
        .await
        .map_err(registry_error)?;
    Ok(Json(AuthResponse {
        status: "Login Succeeded".to_string(),
        identity_token: String::new(),
    }))
}

/// The registry a login's `serveraddress` names: scheme and path dropped, Docker
/// Hub's index addresses as `docker.io`.
pub(crate) fn registry_domain(server: &str) -> String {
    let server = server.trim();
    let bare = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = bare.split('/').next().unwrap_or_default();
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => {
            DOCKER_HUB_DOMAIN.to_string()
        }
        host => host.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// GET /distribution/{name}/json

async fn distribution_inspect(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found(format!(
            "page not found: GET /distribution/{rest}"
        )));
    };
    let reference = Reference::parse_with_default_tag(name)?;
    let auth = registry_auth(&headers);
    let info = pier_distribution::pull::inspect(&registry_client(&state), &reference, &auth)
        .await
        .map_err(registry_error)?;
    Ok(Json(json!({
        "Descriptor": {
            "mediaType": info.descriptor.media_type,
            "digest": info.descriptor.digest.to_string(),
            "size": info.descriptor.size,
        },
        "Platforms": info.platforms,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_distribution::LayerState;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1234), "1.234kB");
        assert_eq!(human_size(2_340_000), "2.34MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }

    #[test]
    fn login_addresses() {
        assert_eq!(registry_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_domain(""), "docker.io");
        assert_eq!(registry_domain("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            registry_domain("http://localhost:5000/v2/"),
            "localhost:5000"
        );
    }

    #[test]
    fn layer_messages_have_docker_shape() {
        let m = message_of(Progress::Layer {
            id: "abc".into(),
            state: LayerState::PullingFsLayer,
        });
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}"#
        );
        let m = message_of(Progress::Pushed {
            tag: "1".into(),
            digest: "sha256:x".into(),
            size: 5,
        });
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:x","Size":5}}"#
        );
    }
}
