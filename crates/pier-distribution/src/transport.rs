//! HTTP/1.1 to registries, plain or over rustls, with a small connection pool.
//!
//! Connections are hyper's `client::conn::http1` over tokio sockets. A sender goes
//! back to the pool as soon as its request is sent; it becomes ready again once the
//! response body has been read, and the next request takes a ready one or opens a new
//! connection. Trust roots are the system bundle plus Docker's per-registry CA files
//! (`/etc/docker/certs.d/<host:port>/*.crt`).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Where the system's CA bundle lives (Debian's ca-certificates).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Docker's per-registry certificate directories.
const CERTS_D: &str = "/etc/docker/certs.d";

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A registry's address: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Host name or IP address, without brackets.
    pub host: String,
    pub port: u16,
    /// An insecure registry's `https`: its certificate is not verified (as dockerd
    /// does for `--insecure-registry`).
    pub skip_verify: bool,
}

impl Endpoint {
    /// `host[:port]` as the `Host` header and URLs carry it (IPv6 in brackets, the
    /// scheme's default port left out).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The absolute URL of `path_and_query` on this endpoint.
    /// Whether `other` is the same scheme, host and port.
    pub fn same_origin(&self, other: &Endpoint) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}://{}{path_and_query}",
            self.scheme.as_str(),
            self.authority()
        )
    }

    /// Parses `scheme://host[:port]` (anything after the authority is ignored) into
    /// the endpoint and the path-and-query.
    pub fn parse_url(url: &str) -> Option<(Endpoint, String)> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        Some((
            Endpoint {
                scheme,
                host,
                port,
                skip_verify: false,
            },
            path,
        ))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` for a bad port.
pub fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), Some(port.parse().ok()?))),
        None => Some((authority.to_string(), None)),
    }
}

/// A request body: empty, bytes in memory, or a stream of chunks fed by a task
/// (blob uploads read from the content store on a blocking thread).
pub enum RequestBody {
    Empty,
    Full(Option<Bytes>),
    Channel {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        len: u64,
    },
}

impl RequestBody {
    pub fn full(bytes: impl Into<Bytes>) -> RequestBody {
        RequestBody::Full(Some(bytes.into()))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Channel { rx, .. } => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RequestBody::Channel { len, .. } => SizeHint::with_exact(*len),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Full(b) => b.is_none(),
            RequestBody::Channel { .. } => false,
        }
    }
}

/// Connections to registries, pooled per endpoint.
pub struct Transport {
    pool: Mutex<HashMap<Endpoint, Vec<SendRequest<RequestBody>>>>,
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Default for Transport {
    fn default() -> Self {
        Transport::new()
    }
}

impl Transport {
    pub fn new() -> Transport {
        Transport {
            pool: Mutex::new(HashMap::new()),
            tls: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` (its URI is the path and query) to `endpoint`.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>> {
        let authority = endpoint.authority();
        let value = hyper::header::HeaderValue::from_str(&authority)
            .map_err(|_| Error::InvalidArgument(format!("invalid registry host {authority}")))?;
        request.headers_mut().insert(hyper::header::HOST, value);
        request
            .headers_mut()
            .entry(hyper::header::USER_AGENT)
            .or_insert(hyper::header::HeaderValue::from_static(concat!(
                "pier/",
                env!("CARGO_PKG_VERSION")
            )));
        let method = request.method().clone();
        let url = endpoint.url(request.uri().path_and_query().map_or("/", |p| p.as_str()));
        let mut sender = match self.take_ready(endpoint) {
            Some(s) => s,
            None => self
                .connect(endpoint)
                .await
                .map_err(|e| Error::Transport(format!("{} \"{url}\": {e}", go_method(&method))))?,
        };
        let sent = sender.send_request(request);
        self.give_back(endpoint, sender);
        sent.await
            .map_err(|e| Error::Transport(format!("{} \"{url}\": {e}", go_method(&method))))
    }

    fn take_ready(&self, endpoint: &Endpoint) -> Option<SendRequest<RequestBody>> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let senders = pool.get_mut(endpoint)?;
        senders.retain(|s| !s.is_closed());
        let i = senders.iter().position(|s| s.is_ready())?;
        Some(senders.swap_remove(i))
    }

    fn give_back(&self, endpoint: &Endpoint, sender: SendRequest<RequestBody>) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let senders = pool.entry(endpoint.clone()).or_default();
        // A bound on idle connections per registry; the rest close when dropped.
        if senders.len() < 16 {
            senders.push(sender);
        }
    }

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<SendRequest<RequestBody>> {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "dial tcp {}:{}: connect: {}",
                        endpoint.host,
                        endpoint.port,
                        go_errno_text(&e)
                    ),
                )
            })?;
        let _ = tcp.set_nodelay(true);
        match endpoint.scheme {
            Scheme::Http => handshake(TokioIo::new(tcp)).await,
            Scheme::Https => {
                let config = if endpoint.skip_verify {
                    unverified_tls_config()?
                } else {
                    self.tls_config(&endpoint.authority())?
                };
                let name = ServerName::try_from(endpoint.host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                handshake(TokioIo::new(tls)).await
            }
        }
    }

    fn tls_config(&self, authority: &str) -> io::Result<Arc<rustls::ClientConfig>> {
        let mut cache = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(authority) {
            return Ok(Arc::clone(c));
        }
        let mut roots = rustls::RootCertStore::empty();
        let mut add = |path: &Path| {
            if let Ok(iter) = CertificateDer::pem_file_iter(path) {
                for cert in iter.flatten() {
                    let _ = roots.add(cert);
                }
            }
        };
        add(Path::new(SYSTEM_CA_BUNDLE));
        if let Ok(entries) = std::fs::read_dir(Path::new(CERTS_D).join(authority)) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "crt") {
                    add(&entry.path());
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let config = Arc::new(config);
        cache.insert(authority.to_string(), Arc::clone(&config));
        Ok(config)
    }
}

/// TLS without certificate verification, for insecure registries' `https`. Handshake
/// signatures are still checked, so the peer holds the key of the certificate it sent.
fn unverified_tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn handshake<T>(io: TokioIo<T>) -> io::Result<SendRequest<RequestBody>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        // The connection ends when the registry or the pool drops it.
        let _ = conn.await;
    });
    Ok(sender)
}

/// An OS error as Go prints it: `connection refused`, not `Connection refused (os
/// error 111)`.
fn go_errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Go's spelling of a method in its HTTP errors (`Get "url": ...`).
fn go_method(method: &hyper::Method) -> String {
    let m = method.as_str();
    let mut out = m[..1].to_string();
    out.push_str(&m[1..].to_lowercase());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_go_prints_them() {
        // 111: ECONNREFUSED on Linux.
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(go_errno_text(&e), "connection refused");
    }

    #[test]
    fn urls_parse_into_endpoint_and_path() {
        let (e, p) =
            Endpoint::parse_url("http://127.0.0.1:5000/v2/x/blobs/uploads/abc?_state=1").unwrap();
        assert_eq!(e.scheme, Scheme::Http);
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.port, 5000);
        assert_eq!(p, "/v2/x/blobs/uploads/abc?_state=1");
        let (e, p) = Endpoint::parse_url("https://[::1]/token").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, p.as_str()),
            ("::1", 443, "/token")
        );
        assert_eq!(e.authority(), "[::1]");
        assert!(Endpoint::parse_url("ftp://x/").is_none());
    }
}
