//! Where the daemon is (`unix:///path`, `tcp://host:port`) and the byte stream to it:
//! a unix socket, TCP, or TCP with rustls (as the docker CLI's `--tls`/`--tlsverify`
//! with `ca.pem`, `cert.pem` and `key.pem`).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::error::{Error, Result};

/// The system's CA bundle (Debian's ca-certificates), for `--tlsverify` without a CA
/// file.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `unix:///path/to/socket`
    Unix(PathBuf),
    /// `tcp://host[:port]`; without a port, 2376 with TLS and 2375 without, as the
    /// docker CLI.
    Tcp { host: String, port: Option<u16> },
}

impl Host {
    /// Parses `unix:///path` or `tcp://host[:port]` (a path after the authority is
    /// refused: the Engine API lives at the root).
    pub fn parse(text: &str) -> Result<Host> {
        let invalid = |why| Error::InvalidHost {
            host: text.to_string(),
            why,
        };
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("no socket path"));
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        let Some(rest) = text.strip_prefix("tcp://") else {
            return Err(invalid("use unix:///path or tcp://host:port"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(invalid("a tcp host takes no path"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, tail) = v6.split_once(']').ok_or_else(|| invalid("unclosed ["))?;
            (host, tail.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host name"));
        }
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| invalid("bad port")))
            .transpose()?;
        Ok(Host::Tcp {
            host: host.to_string(),
            port,
        })
    }

    /// The `Host` header for requests to this daemon.
    pub(crate) fn authority(&self, tls: bool) -> String {
        match self {
            // What the docker CLI sends over a socket (any valid name does).
            Host::Unix(_) => "api.moby.localhost".to_string(),
            Host::Tcp { host, .. } if host.contains(':') => {
                format!("[{host}]:{}", self.port(tls))
            }
            Host::Tcp { host, .. } => format!("{host}:{}", self.port(tls)),
        }
    }

    fn port(&self, tls: bool) -> u16 {
        match self {
            Host::Tcp { port: Some(p), .. } => *p,
            _ if tls => 2376,
            _ => 2375,
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp { host, port } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                match port {
                    Some(p) => write!(f, "tcp://{host}:{p}"),
                    None => write!(f, "tcp://{host}"),
                }
            }
        }
    }
}

/// TLS for a `tcp://` host, as the docker CLI's flags give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tlscacert`: the CA the daemon's certificate must chain to (with `verify`;
    /// the system's bundle when absent).
    pub ca: Option<PathBuf>,
    /// `--tlscert` and `--tlskey`: the client certificate (mutual TLS).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `--tlsverify`: check the daemon's certificate and name. Without it (`--tls`
    /// alone), any certificate is taken, as docker's `InsecureSkipVerify`.
    pub verify: bool,
}

impl TlsOptions {
    /// `ca.pem`, `cert.pem` and `key.pem` of `dir`, those that exist (docker's
    /// `DOCKER_CERT_PATH`, `~/.docker` by default).
    pub fn from_dir(dir: &Path, verify: bool) -> TlsOptions {
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
        TlsOptions {
            ca: file("ca.pem"),
            cert: file("cert.pem"),
            key: file("key.pem"),
            verify,
        }
    }

    /// The rustls configuration (files read now).
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.verify {
            let mut roots = RootCertStore::empty();
            let ca = self
                .ca
                .clone()
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
            for cert in certs("CA certificate", &ca)? {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        };
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = certs("certificate", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::TlsFiles {
                    what: "key",
                    path: key.clone(),
                    reason: e.to_string(),
                })?;
                Ok(builder.with_client_auth_cert(chain, key)?)
            }
            (Some(path), None) | (None, Some(path)) => Err(Error::TlsFiles {
                what: "client certificate",
                path: path.clone(),
                reason: "a certificate needs its key and the key its certificate".into(),
            }),
            (None, None) => Ok(builder.with_no_client_auth()),
        }
    }
}

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |reason: String| Error::TlsFiles {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(certs)
}

/// `--tls` without `--tlsverify`: the daemon's certificate is not checked (the
/// handshake's signatures still are), as docker's `InsecureSkipVerify`.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How the client reaches the daemon: the address and, for TCP with TLS, the
/// connector (built once, when the client is made).
#[derive(Clone)]
pub(crate) struct Transport {
    pub host: Host,
    tls: Option<TlsConnector>,
}

impl Transport {
    /// TLS applies to `tcp://` hosts only (the docker CLI ignores it for sockets), so
    /// a unix socket never reads certificate files.
    pub fn new(host: Host, tls: Option<&TlsOptions>) -> Result<Transport> {
        let tls = match (&host, tls) {
            (Host::Tcp { .. }, Some(options)) => {
                Some(TlsConnector::from(Arc::new(options.client_config()?)))
            }
            _ => None,
        };
        Ok(Transport { host, tls })
    }

    pub fn authority(&self) -> String {
        self.host.authority(self.tls.is_some())
    }

    /// A new connection.
    pub async fn connect(&self) -> Result<Stream> {
        let connect_error = |source| Error::Connect {
            host: self.host.to_string(),
            source,
        };
        match &self.host {
            Host::Unix(path) => Ok(Stream::Unix(
                UnixStream::connect(path).await.map_err(connect_error)?,
            )),
            Host::Tcp { host, .. } => {
                let port = self.host.port(self.tls.is_some());
                let tcp = TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(connect_error)?;
                tcp.set_nodelay(true)?;
                let Some(tls) = &self.tls else {
                    return Ok(Stream::Tcp(tcp));
                };
                let name = ServerName::try_from(host.clone()).map_err(|_| Error::InvalidHost {
                    host: self.host.to_string(),
                    why: "not a valid TLS server name",
                })?;
                let stream =
                    tls.connect(name, tcp)
                        .await
                        .map_err(|source| Error::TlsHandshake {
                            host: self.host.to_string(),
                            source,
                        })?;
                Ok(Stream::Tls(Box::new(stream)))
            }
        }
    }
}

/// A connection to the daemon.
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    /// Closes the write side only (TLS: `close_notify`, then the TCP write side), so
    /// a hijacked stream's reader goes on after stdin ends.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            Host::parse("unix:///run/pier/pier.sock").unwrap(),
            Host::Unix("/run/pier/pier.sock".into())
        );
        let tcp = Host::parse("tcp://127.0.0.1:2376").unwrap();
        assert_eq!(tcp.authority(true), "127.0.0.1:2376");
        assert_eq!(tcp.to_string(), "tcp://127.0.0.1:2376");
        let bare = Host::parse("tcp://example.test").unwrap();
        assert_eq!(bare.authority(true), "example.test:2376");
        assert_eq!(bare.authority(false), "example.test:2375");
        let v6 = Host::parse("tcp://[::1]:99").unwrap();
        assert_eq!(v6.authority(false), "[::1]:99");
        assert_eq!(v6.to_string(), "tcp://[::1]:99");
        for bad in [
            "unix://",
            "http://x",
            "tcp://:1",
            "tcp://h:port",
            "tcp://h:1/x",
            "ssh://h",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }
}
