//! Typed errors of the registry client. Each class maps to one Engine API status in
//! pierd: `NotFound` → 404, `Unauthorized` → 401, `Denied` → 403, `InvalidArgument` /
//! `InvalidContent` / `Unsupported` → 400, the rest → 500. The texts are dockerd's.

use std::fmt;

use serde::Deserialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest, blob, repository or local image that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Credentials missing or refused.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Denied(String),
    /// A caller-supplied value that is not acceptable (platform, reference).
    #[error("{0}")]
    InvalidArgument(String),
    /// What the registry sent is not what it should be (bad JSON, wrong digest).
    #[error("{0}")]
    InvalidContent(String),
    /// A document kind this client does not handle (schema 1 manifests).
    #[error("{0}")]
    Unsupported(String),
    /// The registry answered with an error that has no class above.
    #[error("{0}")]
    Registry(String),
    /// Connecting or talking to the registry failed.
    #[error("{0}")]
    Transport(String),
    /// The local image store failed.
    #[error(transparent)]
    Store(#[from] pier_image::Error),
}

/// A registry's error body (`{"errors":[{"code":..,"message":..,"detail":..}]}`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ErrorEntry {
    /// As distribution's `errcode.Error`: the code in words, lower case, then the
    /// message (`manifest unknown: manifest unknown`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = self.code.replace('_', " ").to_lowercase();
        write!(f, "{words}: {}", self.message)
    }
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> ErrorBody {
        serde_json::from_slice(body).unwrap_or_default()
    }

    pub(crate) fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    /// The errors joined as distribution's `errcode.Errors` prints them, or `None`.
    pub(crate) fn text(&self) -> Option<String> {
        match self.errors.as_slice() {
            [] => None,
            [one] => Some(one.to_string()),
            many => Some(format!(
                "errors:\n{}",
                many.iter().map(|e| format!("{e}\n")).collect::<String>()
            )),
        }
    }
}
