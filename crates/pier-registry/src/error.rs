//! Typed errors of the registry. Each class maps to one OCI distribution error code and
//! one HTTP status ([`RegistryError::code`], [`RegistryError::status`]); the response
//! body is the spec's `{"errors":[{"code","message","detail"}]}`.

use std::io;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(String),
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk that does not continue the upload, or a blob range outside the blob.
    /// `range` is the header to answer with (`Range` for uploads, `Content-Range` for
    /// blob reads).
    #[error("invalid content range")]
    RangeInvalid {
        header: &'static str,
        range: String,
        location: Option<String>,
    },
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest blob unknown: {0}")]
    ManifestBlobUnknown(String),
    #[error("manifest too large: {0} bytes, the limit is 4 MiB")]
    ManifestTooLarge(u64),
    #[error("invalid repository name: {0:?}")]
    NameInvalid(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("invalid tag: {0:?}")]
    TagInvalid(String),
    #[error("invalid number of results requested: {0:?}")]
    PaginationNumberInvalid(String),
    #[error("provided length did not match content length")]
    SizeInvalid,
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("not found")]
    RouteUnknown,
    #[error("authentication required")]
    Unauthorized { challenge: String },
    #[error("requested access to the resource is denied")]
    Denied,
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
}

impl RegistryError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> RegistryError {
        let context = context.into();
        move |cause| RegistryError::Io { context, cause }
    }

    /// The OCI distribution error code of this class.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::BlobUnknown(_) => "BLOB_UNKNOWN",
            RegistryError::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            RegistryError::BlobUploadInvalid(_) => "BLOB_UPLOAD_INVALID",
            RegistryError::RangeInvalid { .. } => "RANGE_INVALID",
            RegistryError::DigestInvalid(_) => "DIGEST_INVALID",
            RegistryError::ManifestUnknown(_) => "MANIFEST_UNKNOWN",
            RegistryError::ManifestInvalid(_) => "MANIFEST_INVALID",
            RegistryError::ManifestBlobUnknown(_) => "MANIFEST_BLOB_UNKNOWN",
            RegistryError::ManifestTooLarge(_) | RegistryError::SizeInvalid => "SIZE_INVALID",
            RegistryError::NameInvalid(_) => "NAME_INVALID",
            RegistryError::NameUnknown(_) => "NAME_UNKNOWN",
            RegistryError::TagInvalid(_) => "TAG_INVALID",
            RegistryError::PaginationNumberInvalid(_) => "PAGINATION_NUMBER_INVALID",
            RegistryError::Unsupported(_) | RegistryError::RouteUnknown => "UNSUPPORTED",
            RegistryError::Unauthorized { .. } => "UNAUTHORIZED",
            RegistryError::Denied => "DENIED",
            RegistryError::Io { .. } => "UNKNOWN",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RegistryError::BlobUnknown(_)
            | RegistryError::BlobUploadUnknown
            | RegistryError::ManifestUnknown(_)
            | RegistryError::NameUnknown(_)
            | RegistryError::RouteUnknown => StatusCode::NOT_FOUND,
            RegistryError::BlobUploadInvalid(_)
            | RegistryError::DigestInvalid(_)
            | RegistryError::ManifestInvalid(_)
            | RegistryError::ManifestBlobUnknown(_)
            | RegistryError::NameInvalid(_)
            | RegistryError::TagInvalid(_)
            | RegistryError::PaginationNumberInvalid(_)
            | RegistryError::SizeInvalid => StatusCode::BAD_REQUEST,
            RegistryError::RangeInvalid { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            RegistryError::ManifestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RegistryError::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            RegistryError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            RegistryError::Denied => StatusCode::FORBIDDEN,
            RegistryError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code(), "message": self.to_string(), "detail": null }]
        });
        let mut response = (self.status(), body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self {
            RegistryError::RangeInvalid {
                header,
                range,
                location,
            } => {
                if let Ok(v) = HeaderValue::from_str(range) {
                    headers.insert(*header, v);
                }
                if let Some(Ok(v)) = location.as_deref().map(HeaderValue::from_str) {
                    headers.insert(axum::http::header::LOCATION, v);
                }
            }
            RegistryError::Unauthorized { challenge } => {
                if let Ok(v) = HeaderValue::from_str(challenge) {
                    headers.insert(axum::http::header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        response
    }
}
