//! The client's one error type.

use std::io;
use std::path::PathBuf;

/// Why a request to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon answered an error status; `message` is its `{"message": ...}` (or
    /// the body's text when it is not JSON).
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    /// No connection to the daemon's address.
    #[error("Cannot connect to the daemon at {host}: {source}")]
    Connect { host: String, source: io::Error },
    /// The TLS handshake with the daemon failed (a certificate refused either way).
    #[error("TLS handshake with {host}: {source}")]
    TlsHandshake { host: String, source: io::Error },
    /// A host the client cannot use (`unix:///path` and `tcp://host:port` only).
    #[error("invalid host {host:?}: {why}")]
    InvalidHost { host: String, why: &'static str },
    /// An `X.Y` API version that is not one.
    #[error("invalid API version {0:?}")]
    InvalidVersion(String),
    /// The TLS set-up could not be made from the certificate files.
    #[error("TLS: {what} {}: {reason}", path.display())]
    TlsFiles {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The TLS handshake or configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A request that cannot be put on the wire (a header value with a newline).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An attach or exec start was answered without switching protocols.
    #[error("the daemon did not switch protocols (status {0})")]
    NotUpgraded(u16),
    /// HTTP-level failure (the connection closed mid-answer, a malformed answer).
    #[error("talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The answer is not the JSON expected.
    #[error("reading the daemon's answer: {0}")]
    Decode(#[from] serde_json::Error),
}

impl Error {
    /// The daemon's status, for [`Error::Daemon`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is a failure to reach the daemon at all (nothing listens).
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }

    /// The typed error for an error answer's status and body.
    pub fn from_answer(status: u16, body: &[u8]) -> Error {
        let message = match serde_json::from_slice::<crate::error_response::ErrorResponse>(body) {
            Ok(b) => b.message,
            Err(_) => String::from_utf8_lossy(body).trim().to_string(),
        };
        let message = if message.is_empty() {
            format!("status {status}")
        } else {
            message
        };
        Error::Daemon { status, message }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
