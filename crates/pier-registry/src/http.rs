//! The HTTP API: one handler that parses the `/v2/...` path (repository names have
//! several components, so axum's router cannot split them) and answers each endpoint
//! of the distribution spec.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use pier_image::digest::{Algorithm, Digest, Hasher};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::auth::{Access, Auth, Need};
use crate::error::{RegistryError, Result};
use crate::manifest::{self, MAX_MANIFEST};
use crate::metrics::Metrics;
use crate::names::{parse_digest, Reference, RepoName, Route};
use crate::storage::{self, Store};

/// An upload in progress as the server tracks it between requests. The hasher runs
/// over the data as it streams in (sha256); after a restart, or when a write failed
/// half-way, it is gone and the data is hashed from disk at the end. `gone` is set when
/// garbage collection removed the upload while a request waited for it.
#[derive(Debug)]
struct Upload {
    size: u64,
    hasher: Option<Hasher>,
    gone: bool,
}

type UploadGuard = tokio::sync::OwnedMutexGuard<Upload>;

/// An upload's repository and its state, one request at a time.
type UploadSlot = (RepoName, Arc<tokio::sync::Mutex<Upload>>);

#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub read_only: bool,
    pub auth: Option<Auth>,
    /// Served over TLS (the scheme of the token realm).
    pub tls: bool,
    pub metrics: Metrics,
    /// Held (read) by blob commits, mounts and manifest pushes, (write) by the GC sweep.
    pub gc_lock: std::sync::RwLock<()>,
    uploads: Mutex<HashMap<String, UploadSlot>>,
}

impl App {
    pub fn new(store: Store, read_only: bool, auth: Option<Auth>, tls: bool) -> App {
        App {
            store,
            read_only,
            auth,
            tls,
            metrics: Metrics::default(),
            gc_lock: std::sync::RwLock::new(()),
            uploads: Mutex::new(HashMap::new()),
        }
    }

    /// The upload `id` of repository `name`, from memory or (after a restart) disk,
    /// locked for this request.
    async fn upload(&self, name: &RepoName, id: &str) -> Result<UploadGuard> {
        let state = {
            let mut map = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
            let (repo, state) = match map.get(id) {
                Some(slot) => slot.clone(),
                None => {
                    let (repo, size) = self
                        .store
                        .upload_on_disk(id)
                        .ok_or(RegistryError::BlobUploadUnknown)?;
                    let state = Arc::new(tokio::sync::Mutex::new(Upload {
                        size,
                        hasher: (size == 0).then(|| Hasher::new(Algorithm::Sha256)),
                        gone: false,
                    }));
                    map.insert(id.to_string(), (repo.clone(), state.clone()));
                    (repo, state)
                }
            };
            if &repo != name {
                return Err(RegistryError::BlobUploadUnknown);
            }
            state
        };
        let guard = state.lock_owned().await;
        if guard.gone {
            return Err(RegistryError::BlobUploadUnknown);
        }
        Ok(guard)
    }

    fn forget_upload(&self, id: &str) {
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Removes uploads untouched for longer than `max_age` (abandoned by their client),
    /// skipping any a request is working on; their ids.
    pub fn purge_uploads(&self, max_age: std::time::Duration) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for id in crate::gc::stale_uploads(&self.store, max_age) {
            // Under the map's lock no request can pick the upload up meanwhile.
            let mut map = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
            let guard = match map.get(&id) {
                Some((_, state)) => match state.clone().try_lock_owned() {
                    Ok(guard) => Some(guard),
                    Err(_) => continue,
                },
                None => None,
            };
            self.store.remove_upload(&id)?;
            map.remove(&id);
            if let Some(mut guard) = guard {
                guard.gone = true;
            }
            removed.push(id);
        }
        Ok(removed)
    }
}

/// The peer of a connection, plain or TLS, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for RemoteAddr
{
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>,
    ) -> RemoteAddr {
        RemoteAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::Listener>>
    for RemoteAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::Listener>) -> RemoteAddr {
        RemoteAddr(*stream.remote_addr())
    }
}

/// Runs filesystem work off the async workers' hot path.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The entry point of every request: dispatch, error bodies, the API version header,
/// the access log and the metrics.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let bytes_in = content_length(req.headers()).unwrap_or(0);
    let remote = req
        .extensions()
        .get::<axum::extract::ConnectInfo<RemoteAddr>>()
        .map(|c| c.0 .0.to_string());
    let mut response = respond(&app, req)
        .await
        .unwrap_or_else(|e| e.into_response());
    response.headers_mut().insert(
        HeaderName::from_static("docker-distribution-api-version"),
        HeaderValue::from_static("registry/2.0"),
    );
    let bytes_out = if method == Method::HEAD {
        0
    } else {
        content_length(response.headers()).unwrap_or(0)
    };
    let status = response.status().as_u16();
    app.metrics
        .record(method.as_str(), status, bytes_in, bytes_out);
    eprintln!(
        "{}",
        serde_json::json!({
            "msg": "request",
            "remote": remote,
            "method": method.as_str(),
            "path": path,
            "status": status,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
        })
    );
    response
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `key=value` pairs of a query, in order (keys may repeat).
pub fn query_list(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn query_pairs(query: Option<&str>) -> HashMap<String, String> {
    query_list(query).into_iter().collect()
}

/// Percent-encodes a query value (everything but unreserved characters).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn response(status: StatusCode, headers: Vec<(HeaderName, String)>, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn location() -> HeaderName {
    header::LOCATION
}

fn docker_content_digest() -> HeaderName {
    HeaderName::from_static("docker-content-digest")
}

fn upload_uuid() -> HeaderName {
    HeaderName::from_static("docker-upload-uuid")
}

fn json_response(
    status: StatusCode,
    value: &serde_json::Value,
    mut headers: Vec<(HeaderName, String)>,
    content_type: &str,
) -> Response {
    let body = value.to_string();
    headers.push((header::CONTENT_TYPE, content_type.to_string()));
    headers.push((header::CONTENT_LENGTH, body.len().to_string()));
    response(status, headers, Body::from(body))
}

fn method_not_allowed() -> RegistryError {
    RegistryError::Unsupported("the method is not supported on this endpoint")
}

/// What a route needs from the client's credentials.
fn need_of<'a>(route: &'a Route, method: &Method) -> Need<'a> {
    const PULL: &[&str] = &["pull"];
    const PUSH: &[&str] = &["pull", "push"];
    const DELETE: &[&str] = &["delete"];
    let reading = *method == Method::GET || *method == Method::HEAD;
    match route {
        Route::Base => Need::Any,
        Route::Catalog => Need::Catalog,
        Route::Tags(name) | Route::Referrers(name, _) => Need::Repository(name.as_str(), PULL),
        Route::Manifest(name, _) | Route::Blob(name, _) => Need::Repository(
            name.as_str(),
            if reading {
                PULL
            } else if *method == Method::DELETE {
                DELETE
            } else {
                PUSH
            },
        ),
        Route::UploadStart(name) | Route::Upload(name, _) => Need::Repository(name.as_str(), PUSH),
    }
}

fn authorize(app: &App, headers: &HeaderMap, need: Need<'_>) -> Result<Access> {
    let Some(auth) = &app.auth else {
        return Ok(Access::All);
    };
    // The realm names this server as the client reached it; a Host that is no
    // host[:port] must not shape the challenge.
    let host = header_str(headers, header::HOST)
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let origin = format!("{}://{host}", if app.tls { "https" } else { "http" });
    auth.authorize(headers, need, &origin)
}

/// Authorizes and answers one request.
async fn respond(app: &Arc<App>, req: Request) -> Result<Response> {
    let path = req.uri().path().to_string();
    if path == "/token" {
        return match &app.auth {
            Some(Auth::Token(token)) if req.method() == Method::GET => {
                blocking(|| token.issue(req.headers(), req.uri().query()))
            }
            _ => Err(RegistryError::RouteUnknown),
        };
    }
    if path == "/metrics" && req.method() == Method::GET {
        authorize(app, req.headers(), Need::Catalog)?;
        return Ok(blocking(|| app.metrics.render(&app.store)));
    }
    let route = Route::parse(&path).ok_or(RegistryError::RouteUnknown)??;
    let access = authorize(app, req.headers(), need_of(&route, req.method()))?;
    dispatch(app, route, access, req).await
}

async fn dispatch(app: &Arc<App>, route: Route, access: Access, req: Request) -> Result<Response> {
    let method = req.method().clone();
    let writes = !(method == Method::GET || method == Method::HEAD);
    if writes && app.read_only {
        return Err(RegistryError::Unsupported(
            "the registry is in read-only mode",
        ));
    }
    let query = query_pairs(req.uri().query());
    match route {
        Route::Base => match method {
            Method::GET | Method::HEAD => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({}),
                Vec::new(),
                "application/json",
            )),
            _ => Err(method_not_allowed()),
        },
        Route::Catalog => match method {
            Method::GET => catalog(app, &query),
            _ => Err(method_not_allowed()),
        },
        Route::Tags(name) => match method {
            Method::GET => tags_list(app, &name, &query),
            _ => Err(method_not_allowed()),
        },
        Route::Manifest(name, reference) => {
            let reference = Reference::parse(&reference)?;
            match method {
                Method::GET | Method::HEAD => {
                    get_manifest(app, &name, &reference, method == Method::HEAD)
                }
                Method::PUT => put_manifest(app, &name, &reference, req).await,
                Method::DELETE => delete_manifest(app, &name, &reference),
                _ => Err(method_not_allowed()),
            }
        }
        Route::Blob(name, digest) => {
            let digest = parse_digest(&digest)?;
            match method {
                Method::GET | Method::HEAD => {
                    get_blob(app, &name, &digest, req.headers(), method == Method::HEAD).await
                }
                Method::DELETE => {
                    if blocking(|| app.store.unlink_blob(&name, &digest))? {
                        Ok(response(
                            StatusCode::ACCEPTED,
                            vec![(header::CONTENT_LENGTH, "0".into())],
                            Body::empty(),
                        ))
                    } else {
                        Err(RegistryError::BlobUnknown(digest.to_string()))
                    }
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::UploadStart(name) => match method {
            Method::POST => start_upload(app, &name, &query, &access, req).await,
            _ => Err(method_not_allowed()),
        },
        Route::Upload(name, id) => match method {
            Method::GET => {
                let upload = app.upload(&name, &id).await?;
                Ok(upload_progress(
                    StatusCode::NO_CONTENT,
                    &name,
                    &id,
                    upload.size,
                ))
            }
            Method::PATCH => patch_upload(app, &name, &id, req).await,
            Method::PUT => put_upload(app, &name, &id, &query, req).await,
            Method::DELETE => {
                let _upload = app.upload(&name, &id).await?;
                blocking(|| app.store.remove_upload(&id))?;
                app.forget_upload(&id);
                Ok(response(StatusCode::NO_CONTENT, Vec::new(), Body::empty()))
            }
            _ => Err(method_not_allowed()),
        },
        Route::Referrers(name, digest) => match method {
            Method::GET => referrers(app, &name, &digest, &query),
            _ => Err(method_not_allowed()),
        },
    }
}

/// `n` and `last` of a paginated list: the page, and the `Link` to the next one.
fn paginate(
    items: Vec<String>,
    query: &HashMap<String, String>,
    path: &str,
) -> Result<(Vec<String>, Option<String>)> {
    let n = match query.get("n") {
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| RegistryError::PaginationNumberInvalid(n.clone()))?,
        ),
        None => None,
    };
    let mut rest: Vec<String> = match query.get("last") {
        Some(last) => items.into_iter().filter(|t| t > last).collect(),
        None => items,
    };
    let Some(n) = n else {
        return Ok((rest, None));
    };
    if rest.len() <= n {
        return Ok((rest, None));
    }
    rest.truncate(n);
    let link = rest
        .last()
        .map(|last| format!("<{path}?last={}&n={n}>; rel=\"next\"", query_escape(last)));
    Ok((rest, link))
}

fn catalog(app: &App, query: &HashMap<String, String>) -> Result<Response> {
    let repos = blocking(|| app.store.repositories())?;
    let (page, link) = paginate(repos, query, "/v2/_catalog")?;
    let headers = link.map(|l| (header::LINK, l)).into_iter().collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "repositories": page }),
        headers,
        "application/json",
    ))
}

fn tags_list(app: &App, name: &RepoName, query: &HashMap<String, String>) -> Result<Response> {
    let tags = blocking(|| app.store.tags(name))?
        .ok_or_else(|| RegistryError::NameUnknown(name.to_string()))?;
    let (page, link) = paginate(tags, query, &format!("/v2/{name}/tags/list"))?;
    let headers = link.map(|l| (header::LINK, l)).into_iter().collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "name": name.as_str(), "tags": page }),
        headers,
        "application/json",
    ))
}

fn resolve(app: &App, name: &RepoName, reference: &Reference) -> Result<(Digest, String)> {
    let unknown = || {
        RegistryError::ManifestUnknown(format!(
            "{name}: {}",
            match reference {
                Reference::Tag(t) => t.clone(),
                Reference::Digest(d) => d.to_string(),
            }
        ))
    };
    let digest = match reference {
        Reference::Tag(tag) => {
            blocking(|| app.store.resolve_tag(name, tag))?.ok_or_else(unknown)?
        }
        Reference::Digest(d) => d.clone(),
    };
    let media_type =
        blocking(|| app.store.manifest_media_type(name, &digest))?.ok_or_else(unknown)?;
    Ok((digest, media_type))
}

fn get_manifest(app: &App, name: &RepoName, reference: &Reference, head: bool) -> Result<Response> {
    let (digest, media_type) = resolve(app, name, reference)?;
    let bytes = blocking(|| app.store.read_blob(&digest))?
        .ok_or_else(|| RegistryError::ManifestUnknown(digest.to_string()))?;
    let headers = vec![
        (header::CONTENT_TYPE, media_type),
        (header::CONTENT_LENGTH, bytes.len().to_string()),
        (docker_content_digest(), digest.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
    ];
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Ok(response(StatusCode::OK, headers, body))
}

async fn put_manifest(
    app: &App,
    name: &RepoName,
    reference: &Reference,
    req: Request,
) -> Result<Response> {
    if let Some(len) = content_length(req.headers()) {
        if len > MAX_MANIFEST {
            return Err(RegistryError::ManifestTooLarge(len));
        }
    }
    let content_type = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_string);
    let bytes = axum::body::to_bytes(req.into_body(), MAX_MANIFEST as usize)
        .await
        .map_err(|_| RegistryError::ManifestTooLarge(MAX_MANIFEST + 1))?;
    let parsed = manifest::parse(content_type.as_deref(), &bytes)?;
    let algorithm = match reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let mut hasher = Hasher::new(algorithm);
    hasher.update(&bytes);
    let digest = hasher.finish();
    if let Reference::Digest(d) = reference {
        if *d != digest {
            return Err(RegistryError::DigestInvalid(format!(
                "manifest digest is {digest}, not {d}"
            )));
        }
    }
    blocking(|| -> Result<()> {
        let _gc = app.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        for blob in parsed.required_blobs() {
            if app.store.repo_blob_size(name, blob)?.is_none() {
                return Err(RegistryError::ManifestBlobUnknown(blob.to_string()));
            }
        }
        for child in parsed.required_manifests() {
            if app.store.manifest_media_type(name, child)?.is_none() {
                return Err(RegistryError::ManifestBlobUnknown(child.to_string()));
            }
        }
        let descriptor = parsed.referrer_descriptor(&digest, bytes.len() as u64);
        let subject = parsed
            .manifest
            .subject
            .as_ref()
            .map(|s| (&s.digest, &descriptor));
        let tag = match reference {
            Reference::Tag(t) => Some(t.as_str()),
            Reference::Digest(_) => None,
        };
        app.store
            .put_manifest(name, &digest, &parsed.media_type, &bytes, tag, subject)
    })?;
    let mut headers = vec![
        (location(), format!("/v2/{name}/manifests/{digest}")),
        (docker_content_digest(), digest.to_string()),
        (header::CONTENT_LENGTH, "0".into()),
    ];
    if let Some(subject) = &parsed.manifest.subject {
        headers.push((
            HeaderName::from_static("oci-subject"),
            subject.digest.to_string(),
        ));
    }
    Ok(response(StatusCode::CREATED, headers, Body::empty()))
}

fn delete_manifest(app: &App, name: &RepoName, reference: &Reference) -> Result<Response> {
    let unknown = |r: String| RegistryError::ManifestUnknown(format!("{name}: {r}"));
    let deleted = match reference {
        Reference::Tag(tag) => blocking(|| app.store.delete_tag(name, tag))?
            .then_some(())
            .ok_or_else(|| unknown(tag.clone())),
        Reference::Digest(d) => blocking(|| -> Result<Result<()>> {
            let Some(media_type) = app.store.manifest_media_type(name, d)? else {
                return Ok(Err(unknown(d.to_string())));
            };
            let subject = app
                .store
                .read_blob(d)?
                .and_then(|b| manifest::parse(Some(&media_type), &b).ok())
                .and_then(|p| p.manifest.subject.map(|s| s.digest));
            Ok(app
                .store
                .delete_manifest(name, d, subject.as_ref())?
                .then_some(())
                .ok_or_else(|| unknown(d.to_string())))
        })?,
    };
    deleted?;
    Ok(response(
        StatusCode::ACCEPTED,
        vec![(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}

/// A `Range: bytes=...` request header resolved against a blob of `size` bytes: the
/// inclusive byte range, or the 416 to answer.
fn byte_range(value: &str, size: u64) -> Result<(u64, u64)> {
    let unsatisfiable = || RegistryError::RangeInvalid {
        header: "content-range",
        range: format!("bytes */{size}"),
        location: None,
    };
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        return Err(unsatisfiable());
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| unsatisfiable())?;
            if n == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (start, "") => (
            start.parse().map_err(|_| unsatisfiable())?,
            size.saturating_sub(1),
        ),
        (start, end) => {
            let start: u64 = start.parse().map_err(|_| unsatisfiable())?;
            let end: u64 = end.parse().map_err(|_| unsatisfiable())?;
            (start, end.min(size.saturating_sub(1)))
        }
    };
    if size == 0 || start >= size || start > end {
        return Err(unsatisfiable());
    }
    Ok((start, end))
}

async fn get_blob(
    app: &App,
    name: &RepoName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let size = blocking(|| app.store.repo_blob_size(name, digest))?
        .ok_or_else(|| RegistryError::BlobUnknown(digest.to_string()))?;
    let range = match header_str(headers, header::RANGE) {
        Some(r) if !head => Some(byte_range(r, size)?),
        _ => None,
    };
    let (status, start, len) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut out = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, len.to_string()),
        (docker_content_digest(), digest.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ETAG, format!("\"{digest}\"")),
    ];
    if let Some((start, end)) = range {
        out.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
    }
    if head {
        return Ok(response(status, out, Body::empty()));
    }
    let path = app.store.blob_path(digest);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(RegistryError::io(format!("opening {}", path.display())))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(RegistryError::io(format!("seeking {}", path.display())))?;
    let reader = tokio::io::AsyncReadExt::take(file, len);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 16);
    Ok(response(status, out, Body::from_stream(stream)))
}

fn upload_progress(status: StatusCode, name: &RepoName, id: &str, size: u64) -> Response {
    response(
        status,
        vec![
            (location(), format!("/v2/{name}/blobs/uploads/{id}")),
            (header::RANGE, format!("0-{}", size.saturating_sub(1))),
            (upload_uuid(), id.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

fn blob_created(name: &RepoName, digest: &Digest) -> Response {
    response(
        StatusCode::CREATED,
        vec![
            (location(), format!("/v2/{name}/blobs/{digest}")),
            (docker_content_digest(), digest.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

async fn start_upload(
    app: &App,
    name: &RepoName,
    query: &HashMap<String, String>,
    access: &Access,
    req: Request,
) -> Result<Response> {
    if let Some(mount) = query.get("mount") {
        let digest = parse_digest(mount)?;
        let mounted = blocking(|| -> Result<bool> {
            let _gc = app.gc_lock.read().unwrap_or_else(|e| e.into_inner());
            let present = match query.get("from") {
                // The client must be allowed to pull from the source.
                Some(from) => match RepoName::parse(from) {
                    Ok(from) if access.allows(from.as_str(), "pull") => {
                        app.store.repo_blob_size(&from, &digest)?.is_some()
                    }
                    _ => false,
                },
                // Without `from` the blob may come from anywhere in the registry (OCI
                // 1.1), for a client that may read everything.
                None => matches!(access, Access::All) && app.store.blob_size(&digest)?.is_some(),
            };
            if present {
                app.store.link_blob(name, &digest)?;
            }
            Ok(present)
        })?;
        if mounted {
            return Ok(blob_created(name, &digest));
        }
    }
    let monolithic = match query.get("digest") {
        Some(d) => Some(parse_digest(d)?),
        None => None,
    };
    let id = blocking(|| app.store.create_upload(name))?;
    let mut upload = app.upload(name, &id).await?;
    match monolithic {
        Some(digest) => {
            let result = async {
                append(app, &id, &mut upload, req.into_body()).await?;
                finish(app, name, &id, &mut upload, &digest)
            }
            .await;
            drop(upload);
            if result.is_err() {
                let _ = blocking(|| app.store.remove_upload(&id));
            }
            app.forget_upload(&id);
            result?;
            Ok(blob_created(name, &digest))
        }
        None => Ok(upload_progress(StatusCode::ACCEPTED, name, &id, 0)),
    }
}

/// Checks a chunk's `Content-Range` (`<start>-<end>`) against the upload: it must
/// continue where the data ends and agree with `Content-Length`.
fn check_chunk(headers: &HeaderMap, name: &RepoName, id: &str, size: u64) -> Result<()> {
    let Some(range) = header_str(headers, header::CONTENT_RANGE) else {
        return Ok(());
    };
    let invalid = || RegistryError::RangeInvalid {
        header: "range",
        range: format!("0-{}", size.saturating_sub(1)),
        location: Some(format!("/v2/{name}/blobs/uploads/{id}")),
    };
    let range = range
        .trim()
        .trim_start_matches("bytes ")
        .trim_start_matches("bytes=");
    let (a, b) = range.split_once('-').ok_or_else(invalid)?;
    let start: u64 = a.parse().map_err(|_| invalid())?;
    let end: u64 = b
        .split('/')
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| invalid())?;
    if start != size || end < start {
        return Err(invalid());
    }
    if content_length(headers).is_some_and(|len| len != end - start + 1) {
        return Err(invalid());
    }
    Ok(())
}

/// Streams a request body onto the end of the upload's data, hashing as it goes.
async fn append(app: &App, id: &str, upload: &mut Upload, body: Body) -> Result<()> {
    let path: PathBuf = app.store.upload_dir(id).join("data");
    let ctx = format!("writing {}", path.display());
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .map_err(RegistryError::io(ctx.clone()))?;
    let mut stream = body.into_data_stream();
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(RegistryError::BlobUploadInvalid(format!(
                    "reading the body: {e}"
                )));
                break;
            }
        };
        if let Err(e) = file.write_all(&chunk).await {
            failure = Some(RegistryError::io(ctx.clone())(e));
            break;
        }
        upload.size += chunk.len() as u64;
        if let Some(h) = upload.hasher.as_mut() {
            h.update(&chunk);
        }
    }
    let flushed = file.flush().await;
    if let Some(e) = failure {
        // What reached the disk is the truth now; the running hash may not match it.
        upload.hasher = None;
        upload.size = tokio::fs::metadata(&path)
            .await
            .map(|m| m.len())
            .unwrap_or(upload.size);
        return Err(e);
    }
    flushed.map_err(RegistryError::io(ctx))
}

/// Verifies the finished upload against `digest` and commits it as a blob of `name`.
fn finish(
    app: &App,
    name: &RepoName,
    id: &str,
    upload: &mut Upload,
    digest: &Digest,
) -> Result<()> {
    let data = app.store.upload_dir(id).join("data");
    let actual = match upload.hasher.take() {
        Some(h) if digest.algorithm() == Algorithm::Sha256 => h.finish(),
        _ => blocking(|| storage::hash_file(&data, digest.algorithm()))?,
    };
    if actual != *digest {
        return Err(RegistryError::DigestInvalid(format!(
            "content is {actual}, not {digest}"
        )));
    }
    blocking(|| {
        let _gc = app.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        app.store.commit_blob(name, &data, digest)?;
        app.store.remove_upload(id)
    })
}

async fn patch_upload(app: &App, name: &RepoName, id: &str, req: Request) -> Result<Response> {
    let mut upload = app.upload(name, id).await?;
    check_chunk(req.headers(), name, id, upload.size)?;
    append(app, id, &mut upload, req.into_body()).await?;
    Ok(upload_progress(StatusCode::ACCEPTED, name, id, upload.size))
}

async fn put_upload(
    app: &App,
    name: &RepoName,
    id: &str,
    query: &HashMap<String, String>,
    req: Request,
) -> Result<Response> {
    let mut upload = app.upload(name, id).await?;
    let digest = parse_digest(query.get("digest").map(String::as_str).unwrap_or(""))?;
    check_chunk(req.headers(), name, id, upload.size)?;
    append(app, id, &mut upload, req.into_body()).await?;
    let result = finish(app, name, id, &mut upload, &digest);
    drop(upload);
    if result.is_err() {
        let _ = blocking(|| app.store.remove_upload(id));
    }
    app.forget_upload(id);
    result?;
    Ok(blob_created(name, &digest))
}

fn referrers(
    app: &App,
    name: &RepoName,
    digest: &str,
    query: &HashMap<String, String>,
) -> Result<Response> {
    let subject = parse_digest(digest)?;
    let mut list = blocking(|| app.store.referrers(name, &subject))?;
    let mut headers = Vec::new();
    if let Some(filter) = query.get("artifactType") {
        list.retain(|d| d.artifact_type.as_deref() == Some(filter.as_str()));
        headers.push((
            HeaderName::from_static("oci-filters-applied"),
            "artifactType".to_string(),
        ));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": list,
    });
    Ok(json_response(
        StatusCode::OK,
        &index,
        headers,
        manifest::OCI_INDEX,
    ))
}

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}
