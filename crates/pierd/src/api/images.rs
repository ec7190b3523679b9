//! The image endpoints (`/images/...`), over the image service.
//!
//! The service is blocking code, so every call runs under `spawn_blocking`. Archives
//! stream both ways without being held in memory: `save` writes into a bounded channel
//! that becomes the response body, and `load`/`import` read the request body through a
//! bounded channel as a blocking [`Read`].
//!
//! Image names contain slashes and colons (`localhost:5000/a/b:1`), so everything below
//! `/images/` that is not one of the fixed endpoints goes to one wildcard route and the
//! trailing action (`json`, `history`, `tag`, `get`, `push`) is split off here, as
//! Docker's router effectively does.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use pier_image::reference::Reference;
use pier_image::service::api::DeleteItem;
use pier_image::service::{parse_until, ImageDetails, ImageService, ListFilters, PruneFilters};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::params::Params;
use super::stream::{ChannelWriter, CHUNK};
use super::{ApiError, ApiVersion, AppState};
use crate::engine::events::Event;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/images/search", get(search))
        .route(
            "/images/{*rest}",
            get(image_get).post(image_post).delete(image_delete),
        )
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Chunks in flight per transfer: bounds the memory an archive takes.
const CHANNEL_DEPTH: usize = 8;

// ---------------------------------------------------------------------------------------
// Query parameters

impl Params {
    fn filters(&self) -> Result<Filters> {
        Filters::parse(self.string("filters"))
    }
}

/// The `filters` parameter: `{"key":{"value":true}}` or the legacy
/// `{"key":["value"]}`, as Docker's `filters.FromJSON` takes them.
#[derive(Debug, Default)]
struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    fn parse(text: &str) -> Result<Filters> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Filters::default());
        }
        let invalid = || ApiError::bad_request("invalid filter");
        let value: Value = serde_json::from_str(text).map_err(|_| invalid())?;
        let Value::Object(map) = value else {
            return Err(invalid());
        };
        let mut out = BTreeMap::new();
        for (key, values) in map {
            let list: Vec<String> = match values {
                Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(v, _)| v)
                    .collect(),
                Value::Array(a) => a
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(invalid()),
                    })
                    .collect::<Result<_>>()?,
                _ => return Err(invalid()),
            };
            out.insert(key, list);
        }
        Ok(Filters(out))
    }

    /// `invalid filter 'x'` for a key not in `accepted`.
    fn validate(&self, accepted: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// A boolean filter (`dangling`): None when absent; Docker's message when the value
    /// is neither true nor false.
    fn boolean(&self, key: &str) -> Result<Option<bool>> {
        let values = self.values(key);
        if values.is_empty() {
            return Ok(None);
        }
        if values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("true") || v == "1")
        {
            return Ok(Some(true));
        }
        if values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("false") || v == "0")
        {
            return Ok(Some(false));
        }
        Err(ApiError::bad_request(format!(
            "invalid filter '{key}={}'",
            values.join(",")
        )))
    }

    /// A filter that takes one value; the last given wins.
    fn single(&self, key: &str) -> Option<String> {
        self.values(key).last().cloned()
    }
}

// ---------------------------------------------------------------------------------------
// Blocking calls

/// Runs `f` on the image service in the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&ImageService) -> Result<T, pier_image::Error> + Send + 'static,
) -> Result<T> {
    let service = Arc::clone(&state.images);
    Ok(tokio::task::spawn_blocking(move || f(&service)).await??)
}

// ---------------------------------------------------------------------------------------
// GET /images/json

async fn list(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>> {
    let params = Params(params);
    let filters = params.filters()?;
    filters.validate(&["dangling", "label", "before", "since", "reference", "until"])?;
    let list_filters = ListFilters {
        dangling: filters.boolean("dangling")?,
        reference: filters.values("reference").to_vec(),
        label: filters.values("label").to_vec(),
        before: filters.single("before"),
        since: filters.single("since"),
    };
    let until = filters
        .single("until")
        .map(|u| parse_until(&u, now()))
        .transpose()?;
    // `all` only matters for intermediate build images, which Pier does not keep;
    // `digests` is a display option of the client (RepoDigests are always sent).
    let shared_size = params.bool("shared-size");
    let users = state.image_users();
    let images = blocking(&state, move |svc| {
        svc.list(&list_filters, shared_size.then_some(users.as_slice()))
    })
    .await?;
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        if until.is_some_and(|u| image.created >= u) {
            continue;
        }
        let mut v = serde_json::to_value(&image).map_err(internal)?;
        if version < ApiVersion(1, 44) {
            // Removed in API 1.44; older clients read it.
            v["VirtualSize"] = json!(image.size);
        }
        out.push(v);
    }
    Ok(Json(Value::Array(out)))
}

// ---------------------------------------------------------------------------------------
// /images/{name}/{action}

/// Splits `name/action` at the last `/` when the action is one of `actions`.
fn split_action<'a>(rest: &'a str, actions: &[&str]) -> Option<(&'a str, &'a str)> {
    let (name, action) = rest.rsplit_once('/')?;
    actions.contains(&action).then_some((name, action))
}

fn no_route(method: &str, rest: &str) -> ApiError {
    ApiError::not_found(format!("page not found: {method} /images/{rest}"))
}

async fn image_get(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(rest): Path<String>,
) -> Result<Response> {
    match split_action(&rest, &["json", "history", "get"]) {
        Some((name, "json")) => inspect(state, version, name.to_string()).await,
        Some((name, "history")) => {
            let name = name.to_string();
            let items = blocking(&state, move |svc| svc.history(&name)).await?;
            Ok(Json(items).into_response())
        }
        Some((name, _)) => save(state, vec![name.to_string()]).await,
        None => Err(no_route("GET", &rest)),
    }
}

async fn inspect(state: AppState, version: ApiVersion, name: String) -> Result<Response> {
    let image = blocking(&state, move |svc| svc.inspect(&name)).await?;
    let mut v = serde_json::to_value(&image).map_err(internal)?;
    if version < ApiVersion(1, 44) {
        v["VirtualSize"] = json!(image.size);
    }
    Ok(Json(v).into_response())
}

async fn image_post(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response> {
    let params = Params(params);
    match split_action(&rest, &["tag", "push"]) {
        Some((name, "tag")) => {
            let target = repo_tag(params.string("repo"), params.string("tag"))?;
            if target.path() == "sha256" && target.domain() == "docker.io" {
                return Err(ApiError::bad_request(
                    "refusing to create an ambiguous tag using digest algorithm as name",
                ));
            }
            let source = name.to_string();
            let tagged = target.to_string();
            let id = blocking(&state, move |svc| {
                svc.tag(&source, &tagged)?;
                Ok(svc.inspect(&source)?.id)
            })
            .await?;
            publish(&state, Event::image(&id, "tag", Some(&target.familiar())));
            Ok(StatusCode::CREATED.into_response())
        }
        Some((name, _)) => {
            super::distribution::push(state, name, params.string("tag"), &headers).await
        }
        None => Err(no_route("POST", &rest)),
    }
}

async fn image_delete(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let params = Params(params);
    let force = params.bool("force");
    let no_prune = params.bool("noprune");
    let users = state.image_users();
    let (id, items) = blocking(&state, move |svc| {
        let id = svc.inspect(&rest)?.id;
        Ok((id, svc.remove(&rest, force, no_prune, &users)?))
    })
    .await?;
    image_removal_events(&state, &id, &items);
    Ok(Json(items).into_response())
}

/// Docker's `RepoTagReference`: `repo` (which may carry a tag) with `tag` if given,
/// else `latest` when it has neither tag nor digest.
fn repo_tag(repo: &str, tag: &str) -> Result<Reference> {
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "invalid reference format: repository name must have at least one component",
        ));
    }
    let reference = Reference::parse(repo)?;
    if reference.digest().is_some() {
        return Err(ApiError::bad_request(format!(
            "refusing to create a tag with a digest reference: {repo}"
        )));
    }
    if !tag.is_empty() {
        return Ok(reference.with_tag(tag)?);
    }
    Ok(Reference::parse_with_default_tag(repo)?)
}

// ---------------------------------------------------------------------------------------
// save

async fn save_many(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    save(state, Params(params).all("names")).await
}

/// Streams `docker save`'s archive: the service writes into a bounded channel from the
/// blocking pool, and the channel is the response body. An error before the first
/// byte is an ordinary error answer; a later one cuts the body short (the client sees
/// a truncated archive, as with Docker).
async fn save(state: AppState, names: Vec<String>) -> Result<Response> {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let service = Arc::clone(&state.images);
    let task = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter::new(tx);
        let result = service
            .save(&names, &mut writer)
            .and_then(|()| writer.flush().map_err(|e| pier_image::Error::io("save", e)));
        match result {
            Ok(()) => Ok(()),
            Err(e) if writer.sent => {
                // Headers are gone: all we can do is break the body.
                let _ = writer
                    .tx
                    .blocking_send(Err(io::Error::other(e.to_string())));
                Ok(())
            }
            Err(e) => Err(e),
        }
    });
    let Some(first) = rx.recv().await else {
        // Nothing was sent: the task ended, with an error or an empty archive.
        task.await??;
        return Ok(tar_response(Body::empty()));
    };
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        match first {
            Some(chunk) => Some((chunk, (None, rx))),
            None => rx.recv().await.map(|chunk| (chunk, (None, rx))),
        }
    });
    Ok(tar_response(Body::from_stream(stream)))
}

fn tar_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-tar")], body).into_response()
}

// ---------------------------------------------------------------------------------------
// Request bodies as blocking readers

/// A blocking [`Read`] over a request body, fed by [`pump_body`].
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Feeds `body` into a bounded channel from a task of its own; the reader side is
/// for the blocking pool. The task ends when the body does (or fails); the caller
/// waits for it before answering.
pub(crate) fn pump_body(body: Body) -> (ChannelReader, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let task = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut reading = true;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(io::Error::other);
            if chunk.is_err() {
                let _ = tx.send(chunk).await;
                break;
            }
            // Once the reader is gone (done, or failed early) the rest of the body is
            // drained: a client still writing would otherwise get EPIPE instead of
            // the answer (the docker CLI then prints "broken pipe", not the error).
            if reading && tx.send(chunk).await.is_err() {
                reading = false;
            }
        }
    });
    (
        ChannelReader {
            rx,
            current: Bytes::new(),
        },
        task,
    )
}

/// Runs `f` on the service with the request body as its input.
async fn with_body<T: Send + 'static>(
    state: &AppState,
    body: Body,
    f: impl FnOnce(&ImageService, ChannelReader) -> Result<T, pier_image::Error> + Send + 'static,
) -> Result<T> {
    let (reader, pump) = pump_body(body);
    let result = blocking(state, move |svc| f(svc, reader)).await;
    let _ = pump.await;
    result
}

/// One message of Docker's JSON stream (`{"stream":...}`, `{"status":...}`), with
/// Docker's `\r\n`.
fn json_line(v: &Value) -> String {
    format!("{v}\r\n")
}

fn json_stream_response(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

// ---------------------------------------------------------------------------------------
// POST /images/load

/// `docker load`: the body is streamed into the service. As Docker does, the answer
/// is always 200 with a JSON message stream; a failure is the stream's error message.
async fn load(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    body: Body,
) -> Response {
    // Progress bars are not produced; `quiet` changes nothing else.
    let _quiet = Params(params).bool_or("quiet", true);
    let result = with_body(&state, body, |svc, reader| {
        let loaded = svc.load(io::BufReader::with_capacity(CHUNK, reader))?;
        let mut lines = Vec::new();
        let mut events = Vec::new();
        for image in loaded {
            let id = svc.store().image_id(&image.target).to_string();
            lines.push(match &image.name {
                Some(name) => format!("Loaded image: {}\n", name.familiar()),
                None => format!("Loaded image ID: {id}\n"),
            });
            // As dockerd: the image ID is also the event's name.
            events.push(Event::image(&id, "load", Some(&id)));
        }
        Ok((lines, events))
    })
    .await;
    let text = match result {
        Ok((lines, events)) => {
            for event in events {
                publish(&state, event);
            }
            lines
                .iter()
                .map(|l| json_line(&json!({ "stream": l })))
                .collect()
        }
        Err(e) => error_line(&e.message),
    };
    json_stream_response(StatusCode::OK, text)
}

/// Docker's error message inside a JSON stream.
fn error_line(message: &str) -> String {
    json_line(&json!({ "errorDetail": { "message": message }, "error": message }))
}

// ---------------------------------------------------------------------------------------
// POST /images/create

/// `docker import` (`fromSrc`) and `docker pull` (`fromImage`, in [`super::distribution`]).
async fn create(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let params = Params(params);
    if let Some(image) = params.get("fromImage").filter(|s| !s.is_empty()) {
        return super::distribution::pull(
            state,
            image,
            params.string("tag"),
            params.string("platform"),
            &headers,
        )
        .await;
    }
    let source = params.string("fromSrc");
    if source.is_empty() {
        return Err(ApiError::bad_request(
            "either fromImage or fromSrc must be given",
        ));
    }
    if source != "-" {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("importing from a URL is not supported by Pier yet: {source}"),
        ));
    }
    let repo = params.string("repo");
    let reference = if repo.is_empty() {
        None
    } else {
        Some(repo_tag(repo, params.string("tag"))?)
    };
    // `message` (the history comment) is not recorded by the image service yet.
    let changes = params.all("changes");
    let id = with_body(&state, body, move |svc, reader| {
        svc.import(
            io::BufReader::with_capacity(CHUNK, reader),
            &changes,
            reference.as_ref(),
        )
    })
    .await?;
    let id_text = id.to_string();
    publish(&state, Event::image(&id_text, "import", Some(&id_text)));
    Ok(json_stream_response(
        StatusCode::OK,
        json_line(&json!({ "status": id.to_string() })),
    ))
}

// ---------------------------------------------------------------------------------------
// POST /images/prune

async fn prune(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>> {
    let filters = Params(params).filters()?;
    filters.validate(&["dangling", "label", "label!", "until"])?;
    let all = filters.boolean("dangling")? == Some(false);
    let until = filters
        .single("until")
        .map(|u| parse_until(&u, now()))
        .transpose()?;
    let prune_filters = PruneFilters {
        until,
        labels: filters
            .values("label")
            .iter()
            .map(|l| (l.clone(), true))
            .chain(filters.values("label!").iter().map(|l| (l.clone(), false)))
            .collect(),
    };
    let users = state.image_users();
    let report = blocking(&state, move |svc| {
        let keep = |d: &ImageDetails| prune_filters.keeps(d);
        svc.prune(all, &users, &keep)
    })
    .await?;
    for item in &report.images_deleted {
        if let Some(id) = &item.deleted {
            publish(&state, Event::image(id, "delete", None));
        }
    }
    publish(
        &state,
        Event::new("image", "prune", "").with("reclaimed", report.space_reclaimed.to_string()),
    );
    Ok(Json(serde_json::to_value(&report).map_err(internal)?))
}

fn publish(state: &AppState, event: Event) {
    state.engine.bus().publish(event);
}

/// `untag` for each name removed, `delete` for the image if it went.
fn image_removal_events(state: &AppState, id: &str, items: &[DeleteItem]) {
    for item in items {
        if let Some(name) = &item.untagged {
            publish(state, Event::image(id, "untag", Some(name)));
        }
        if let Some(deleted) = &item.deleted {
            publish(state, Event::image(deleted, "delete", None));
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

// ---------------------------------------------------------------------------------------
// GET /images/search

async fn search() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "searching registries is not supported by Pier yet",
    )
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_both_forms() {
        let f = Filters::parse(r#"{"dangling":["true"],"reference":{"busybox":true}}"#).unwrap();
        assert_eq!(f.boolean("dangling").unwrap(), Some(true));
        assert_eq!(f.values("reference"), ["busybox".to_string()]);
        assert!(f.validate(&["dangling", "reference"]).is_ok());
        let e = f.validate(&["dangling"]).unwrap_err();
        assert_eq!(e.message, "invalid filter 'reference'");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let f = Filters::parse(r#"{"dangling":{"maybe":true}}"#).unwrap();
        assert_eq!(
            f.boolean("dangling").unwrap_err().message,
            "invalid filter 'dangling=maybe'"
        );
        assert!(Filters::parse("").unwrap().0.is_empty());
        assert!(Filters::parse("[1]").is_err());
    }

    #[test]
    fn actions_split_off_names_with_slashes_and_ports() {
        assert_eq!(
            split_action("localhost:5000/a/b:1/json", &["json"]),
            Some(("localhost:5000/a/b:1", "json"))
        );
        assert_eq!(split_action("busybox", &["json"]), None);
        assert_eq!(split_action("a/b", &["json"]), None);
    }

    #[test]
    fn repo_and_tag() {
        assert_eq!(
            repo_tag("busybox", "").unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(repo_tag("busybox:1", "").unwrap().familiar(), "busybox:1");
        assert_eq!(
            repo_tag("localhost:5000/a/b", "2").unwrap().familiar(),
            "localhost:5000/a/b:2"
        );
        assert!(repo_tag("", "x").is_err());
        assert!(repo_tag("Busybox", "").is_err());
    }

    #[test]
    fn until_values() {}

    #[test]
    fn docker_bools() {
        let p = Params(vec![
            ("a".into(), "1".into()),
            ("b".into(), "False".into()),
            ("c".into(), "".into()),
        ]);
        assert!(p.bool("a"));
        assert!(!p.bool("b"));
        assert!(!p.bool("c"));
        assert!(p.bool_or("c", true));
        assert!(!p.bool("d"));
        assert!(p.bool_or("d", true));
    }
}
