//! Typed errors of the image store. Each class maps to one Docker API status when the
//! daemon serves them: `InvalidReference`/`InvalidDigest`/`InvalidArgument`/
//! `InvalidContent` → 400, `NotFound` → 404, `Conflict` → 409, the rest → 500.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that does not parse; the text is Docker's message.
    #[error("{0}")]
    InvalidReference(String),
    /// A caller-supplied value that is not acceptable (a lease name, an `--change`
    /// instruction); the text is the whole message, as Docker prints it.
    #[error("{0}")]
    InvalidArgument(String),
    /// A document or archive that does not parse as what it claims to be (a manifest,
    /// a config, an image archive).
    #[error("{0}")]
    InvalidContent(String),
    /// A digest string that is malformed or uses an unsupported algorithm.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// Content whose digest or size is not what was expected.
    #[error("{what}: expected {expected}, got {actual}")]
    Mismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// No blob, image or snapshot of that name.
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the store's state (in use, exists).
    #[error("{0}")]
    Conflict(String),
    /// A filesystem operation failed.
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
}

impl Error {
    pub fn io(context: impl Into<String>, cause: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause,
        }
    }
}
