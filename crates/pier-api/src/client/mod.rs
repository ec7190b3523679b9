//! The Engine API client, on hyper (HTTP/1.1) over tokio.
//!
//! - Hosts: `unix:///path` and `tcp://host:port`, the latter with rustls when asked
//!   ([`TlsOptions`]; [`Config::from_env`] reads `DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
//!   `DOCKER_TLS` and `DOCKER_CERT_PATH` as the docker CLI does).
//! - API version negotiation as the docker CLI's: `GET /_ping`, the lower of the
//!   client's maximum and the daemon's `API-Version` (1.24 when the daemon sends
//!   none); requests then go to `/vX.Y/...`. `DOCKER_API_VERSION` (or
//!   [`Config::api_version`]) pins the version and skips negotiation.
//! - Request bodies: JSON from typed values, bytes, or a stream sent chunked
//!   ([`Body::channel`]).
//! - Answers: typed JSON, an error status as [`Error::Daemon`] with the daemon's
//!   message, streamed bodies ([`stream`]: the multiplexed log/attach stream and
//!   JSON lines).
//! - Hijacked streams (attach, exec start): `Connection: Upgrade` / `Upgrade: tcp`,
//!   and after the 101 a duplex byte stream whose write side can be shut down while
//!   the output is still read.
//! - [`blocking`]: the same over a current-thread runtime for synchronous callers
//!   (the `pier` CLI), with `std::io` readers and writers.
//!
//! Each request opens its own connection, as the old hand-written client did: on a
//! unix socket that costs a `connect(2)`, and it keeps concurrent requests (an
//! attach, a wait, a start) independent without a pool.
//!
//! This replaced the CLI's hand-written HTTP/1.1 (and its chunked decoder); the
//! CLI's and pierd's own base64 went to the `base64` crate and pierd's SHA-1 (the
//! WebSocket accept key) to ring's. One hand-rolled piece is kept: the RFC 6455
//! framing of pierd's `/attach/ws` (`api/websocket.rs`), because the crate that would
//! do it (tokio-tungstenite, via axum's `ws`) brings 6 new crates and 6 second
//! versions of crates already in the tree; the measure is in that module's docs.

pub mod blocking;
mod body;
mod error;
pub mod stream;
mod transport;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, UPGRADE, USER_AGENT};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use body::{Body, BodyClosed, BodySender};
pub use error::{Error, Result};
pub use http::{HeaderMap, Method, StatusCode};
pub use transport::{Host, TlsOptions};

use transport::Transport;

/// An Engine API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// The version clients assume of a daemon whose ping names none (docker's).
    pub const FALLBACK: ApiVersion = ApiVersion::new(1, 24);
}

impl std::str::FromStr for ApiVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<ApiVersion> {
        let bad = || Error::InvalidVersion(s.to_string());
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        Ok(ApiVersion {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// How to reach the daemon and which API version to speak.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: Host,
    /// TLS for a `tcp://` host (ignored for sockets, as the docker CLI does).
    pub tls: Option<TlsOptions>,
    /// A pinned version: no negotiation (`DOCKER_API_VERSION`).
    pub api_version: Option<ApiVersion>,
    /// The newest version this client speaks; negotiation never goes above it.
    pub max_api_version: ApiVersion,
    pub user_agent: String,
}

impl Config {
    /// The newest API version the client speaks unless told otherwise.
    pub const DEFAULT_MAX_API_VERSION: ApiVersion = ApiVersion::new(1, 50);

    /// A plain configuration for `host`.
    pub fn new(host: &str) -> Result<Config> {
        Ok(Config {
            host: Host::parse(host)?,
            tls: None,
            api_version: None,
            max_api_version: Config::DEFAULT_MAX_API_VERSION,
            user_agent: concat!("pier-api/", env!("CARGO_PKG_VERSION")).to_string(),
        })
    }

    /// As the docker CLI reads its environment: `DOCKER_HOST` (else `default_host`);
    /// TLS when `DOCKER_TLS_VERIFY` or `DOCKER_TLS` is non-empty, verified with the
    /// former, from `ca.pem`, `cert.pem` and `key.pem` in `DOCKER_CERT_PATH`
    /// (`~/.docker` by default); `DOCKER_API_VERSION` pins the version.
    pub fn from_env(default_host: &str) -> Result<Config> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = Config::new(&var("DOCKER_HOST").unwrap_or_else(|| default_host.into()))?;
        config.tls = tls_from_env(false, false);
        if let Some(v) = var("DOCKER_API_VERSION") {
            config.api_version = Some(v.parse()?);
        }
        Ok(config)
    }
}

/// TLS as `DOCKER_TLS_VERIFY`, `DOCKER_TLS` and `DOCKER_CERT_PATH` ask for it, or as
/// the flags `--tls` / `--tlsverify` (`tls`, `verify`) do; `None` without TLS.
pub fn tls_from_env(tls: bool, verify: bool) -> Option<TlsOptions> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let verify = verify || var("DOCKER_TLS_VERIFY").is_some();
    if !(tls || verify || var("DOCKER_TLS").is_some()) {
        return None;
    }
    let dir = var("DOCKER_CERT_PATH")
        .map(std::path::PathBuf::from)
        .or_else(|| var("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")))
        .unwrap_or_default();
    Some(TlsOptions::from_dir(&dir, verify))
}

/// What `GET /_ping` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ping {
    /// `API-Version`: the newest version the daemon serves.
    pub api_version: Option<ApiVersion>,
    /// `OSType`.
    pub os_type: Option<String>,
    /// `Docker-Experimental`.
    pub experimental: bool,
    /// `Builder-Version`.
    pub builder_version: Option<String>,
}

/// A request: method, path (with query, without the version prefix), headers and
/// body.
#[derive(Debug)]
pub struct Request {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Body,
    versioned: bool,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Body::empty(),
            versioned: true,
        }
    }

    pub fn get(path: impl Into<String>) -> Request {
        Request::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Request {
        Request::new(Method::POST, path)
    }

    pub fn put(path: impl Into<String>) -> Request {
        Request::new(Method::PUT, path)
    }

    pub fn delete(path: impl Into<String>) -> Request {
        Request::new(Method::DELETE, path)
    }

    pub fn head(path: impl Into<String>) -> Request {
        Request::new(Method::HEAD, path)
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `value` as the JSON body.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Request> {
        Ok(self.body("application/json", Body::full(serde_json::to_vec(value)?)))
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Body>) -> Request {
        self.headers
            .push((CONTENT_TYPE.as_str().to_string(), content_type.to_string()));
        self.body = body.into();
        self
    }

    /// Sent without the `/vX.Y` prefix (`/_ping`, as clients send it).
    pub fn unversioned(mut self) -> Request {
        self.versioned = false;
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// An answer: status, headers and the body, read as it arrives.
#[derive(Debug)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes> {
        Ok(self.body.collect().await?.to_bytes())
    }

    /// `self`, or [`Error::Daemon`] with the daemon's message for an error status.
    pub async fn error_for_status(self) -> Result<Response> {
        if self.status.as_u16() < 400 {
            return Ok(self);
        }
        let status = self.status.as_u16();
        let body = self.bytes().await?;
        Err(Error::from_answer(status, &body))
    }

    /// The body as JSON (an empty body reads as `null`); an error status is
    /// [`Error::Daemon`].
    pub async fn json<T: DeserializeOwned>(self) -> Result<T> {
        let body = self.error_for_status().await?.bytes().await?;
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        Ok(serde_json::from_slice(body)?)
    }

    /// The values of a JSON-lines body (progress, events) as they arrive; an error
    /// status is [`Error::Daemon`].
    pub async fn json_lines<T: DeserializeOwned>(self) -> Result<stream::JsonLines<T>> {
        Ok(stream::JsonLines::new(self.error_for_status().await?.body))
    }

    /// The body, to read frame by frame.
    pub fn into_body(self) -> Incoming {
        self.body
    }

    pub fn into_parts(self) -> (StatusCode, HeaderMap, Incoming) {
        (self.status, self.headers, self.body)
    }
}

/// A hijacked connection (attach, exec start): tokio's `AsyncRead` and `AsyncWrite`;
/// `shutdown` closes the write side only.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// The Engine API client; cheap to clone (clones share the negotiated version).
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    /// The version in use: pinned, negotiated, or not known yet.
    version: Arc<Mutex<Option<ApiVersion>>>,
    pinned: bool,
    max_version: ApiVersion,
    user_agent: String,
    headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.transport.host)
            .field("version", &self.api_version())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config` (TLS files are read now; nothing is connected yet).
    pub fn new(config: Config) -> Result<Client> {
        Ok(Client {
            transport: Transport::new(config.host, config.tls.as_ref())?,
            version: Arc::new(Mutex::new(config.api_version)),
            pinned: config.api_version.is_some(),
            max_version: config.max_api_version,
            user_agent: config.user_agent,
            headers: Vec::new(),
        })
    }

    pub fn host(&self) -> &Host {
        &self.transport.host
    }

    /// A copy that sends `name: value` with every request (`X-Registry-Auth`).
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut c = self.clone();
        c.headers.push((name.to_string(), value.to_string()));
        c
    }

    /// The version requests use, once pinned or negotiated.
    pub fn api_version(&self) -> Option<ApiVersion> {
        *self.version.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `GET /_ping`.
    pub async fn ping(&self) -> Result<Ping> {
        // Straight to the wire: the version is what the ping is for.
        let (parts, body) = self
            .exchange(Request::get("/_ping"), "/_ping".into(), false)
            .await?
            .into_parts();
        let r = Response {
            status: parts.status,
            headers: parts.headers,
            body,
        }
        .error_for_status()
        .await?;
        let header = |name| r.header(name).map(str::to_string);
        let ping = Ping {
            api_version: header("api-version").and_then(|v| v.parse().ok()),
            os_type: header("ostype"),
            experimental: header("docker-experimental").is_some_and(|v| v == "true"),
            builder_version: header("builder-version"),
        };
        let _ = r.bytes().await;
        Ok(ping)
    }

    /// Pings the daemon and settles the version (the lower of ours and the
    /// daemon's), unless pinned; the version in use.
    pub async fn negotiate(&self) -> Result<ApiVersion> {
        if self.pinned {
            if let Some(v) = self.api_version() {
                return Ok(v);
            }
        }
        let ping = self.ping().await?;
        Ok(self.settle(&ping))
    }

    /// The version from a ping's answer (kept; a pinned one wins).
    pub fn settle(&self, ping: &Ping) -> ApiVersion {
        let mut version = self.version.lock().unwrap_or_else(|e| e.into_inner());
        if self.pinned {
            if let Some(v) = *version {
                return v;
            }
        }
        let v = ping
            .api_version
            .unwrap_or(ApiVersion::FALLBACK)
            .min(self.max_version);
        *version = Some(v);
        v
    }

    /// Sends `req`; the answer comes once its head has arrived.
    pub async fn send(&self, req: Request) -> Result<Response> {
        let (parts, body) = self.send_http(req, false).await?.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends `req` asking to switch to a raw stream (attach, exec start); after the
    /// daemon's 101, the connection. An error status is [`Error::Daemon`].
    pub async fn upgrade(&self, req: Request) -> Result<Upgraded> {
        let response = self.send_http(req, true).await?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let body = response.into_body().collect().await?.to_bytes();
            if status.as_u16() >= 400 {
                return Err(Error::from_answer(status.as_u16(), &body));
            }
            return Err(Error::NotUpgraded(status.as_u16()));
        }
        Ok(TokioIo::new(hyper::upgrade::on(response).await?))
    }

    async fn send_http(&self, req: Request, upgrade: bool) -> Result<http::Response<Incoming>> {
        let path = if req.versioned {
            let v = match self.api_version() {
                Some(v) => v,
                None => self.negotiate().await?,
            };
            format!("/v{v}{}", req.path)
        } else {
            req.path.clone()
        };
        self.exchange(req, path, upgrade).await
    }

    /// One request on a new connection, to `path` as given.
    async fn exchange(
        &self,
        req: Request,
        path: String,
        upgrade: bool,
    ) -> Result<http::Response<Incoming>> {
        let mut builder = http::Request::builder()
            .method(req.method)
            .uri(path)
            .header(HOST, self.transport.authority())
            .header(USER_AGENT, &self.user_agent);
        if upgrade {
            builder = builder.header(CONNECTION, "Upgrade").header(UPGRADE, "tcp");
        }
        let mut request = builder
            .body(req.body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        for (name, value) in self.headers.iter().chain(&req.headers) {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::InvalidRequest(format!("header {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| Error::InvalidRequest(format!("header {name}: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        let io = self.transport.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        // The connection is driven by its own task (the runtime's), so the answer's
        // body can be read after this returns; it ends with the body (or the
        // hijacked stream).
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender.send_request(request).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_and_parse() {
        let v: ApiVersion = "1.41".parse().unwrap();
        assert_eq!(v, ApiVersion::new(1, 41));
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 41));
        assert_eq!(v.to_string(), "1.41");
        assert!("1".parse::<ApiVersion>().is_err());
        assert!("v1.2".parse::<ApiVersion>().is_err());
    }

    #[test]
    fn daemon_message_from_error_body() {
        let e = Error::from_answer(404, br#"{"message":"No such container: x"}"#);
        assert_eq!(e.status(), Some(404));
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such container: x"
        );
        let plain = Error::from_answer(502, b"bad gateway\n");
        assert_eq!(plain.to_string(), "Error response from daemon: bad gateway");
        let empty = Error::from_answer(500, b"");
        assert_eq!(empty.to_string(), "Error response from daemon: status 500");
    }
}
