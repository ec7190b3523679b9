//! pier-distribution: a client for OCI distribution registries (pull, push, auth).
//!
//! - [`transport`]: HTTP/1.1 over plain TCP or rustls, pooled per registry.
//! - [`auth`]: Docker's `AuthConfig`, `WWW-Authenticate` challenges, bearer tokens.
//! - [`client`]: registry endpoints for names (insecure registries, Hub mirrors) and
//!   authorized sessions on one repository (manifests, blobs, uploads, mounts, tags).
//! - [`pull`]: resolve, choose a platform, fetch blobs verified into the content
//!   store, unpack, record the image with its `RepoDigests`.
//! - [`push`]: skip what the registry has, mount across repositories, upload the
//!   rest, put the manifest.
//!
//! Progress is reported as [`Progress`] events; pierd turns them into Docker's JSON
//! progress stream.

pub mod auth;
pub mod client;
pub mod error;
pub mod pull;
pub mod push;
pub mod transport;

use std::sync::Arc;

use pier_image::image::Platform;

pub use auth::AuthConfig;
pub use client::{Access, Client, RegistryConfig, Repository};
pub use error::{Error, Result};

/// One step of a pull or push, as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A status line without a layer (`Pulling from x` carries the tag as `id`).
    Status { id: Option<String>, text: String },
    /// A layer's state changed (`id`: 12 hex of the layer's digest).
    Layer { id: String, state: LayerState },
    /// The push's result (`aux` of Docker's stream).
    Pushed {
        tag: String,
        digest: String,
        size: u64,
    },
}

/// What happens to one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    AlreadyExists,
    PullingFsLayer,
    Waiting,
    Downloading { current: u64, total: u64 },
    VerifyingChecksum,
    DownloadComplete,
    Extracting { current: u64, total: u64 },
    PullComplete,
    Preparing,
    Pushing { current: u64, total: u64 },
    Pushed,
    LayerAlreadyExists,
    MountedFrom(String),
}

impl LayerState {
    /// Docker's words for the state.
    pub fn text(&self) -> String {
        match self {
            LayerState::AlreadyExists => "Already exists".into(),
            LayerState::PullingFsLayer => "Pulling fs layer".into(),
            LayerState::Waiting => "Waiting".into(),
            LayerState::Downloading { .. } => "Downloading".into(),
            LayerState::VerifyingChecksum => "Verifying Checksum".into(),
            LayerState::DownloadComplete => "Download complete".into(),
            LayerState::Extracting { .. } => "Extracting".into(),
            LayerState::PullComplete => "Pull complete".into(),
            LayerState::Preparing => "Preparing".into(),
            LayerState::Pushing { .. } => "Pushing".into(),
            LayerState::Pushed => "Pushed".into(),
            LayerState::LayerAlreadyExists => "Layer already exists".into(),
            LayerState::MountedFrom(from) => format!("Mounted from {from}"),
        }
    }

    /// `(current, total)` for the states that carry a byte count.
    pub fn bytes(&self) -> Option<(u64, u64)> {
        match self {
            LayerState::Downloading { current, total }
            | LayerState::Extracting { current, total }
            | LayerState::Pushing { current, total } => Some((*current, *total)),
            _ => None,
        }
    }
}

/// Where progress goes. Called from async tasks and blocking threads alike.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Docker's short ID of a digest (12 hex).
pub fn short_id(digest: &pier_image::digest::Digest) -> String {
    digest.hex().chars().take(12).collect()
}

/// Parses `os[/arch[/variant]]` (`linux/amd64`, `linux/arm/v7`), normalized.
pub fn parse_platform(text: &str) -> Result<Platform> {
    let parts: Vec<&str> = text.trim().split('/').collect();
    let bad = || {
        Error::InvalidArgument(format!(
            "\"{text}\": unknown operating system or architecture: invalid argument"
        ))
    };
    let platform = match parts.as_slice() {
        [os] if !os.is_empty() => Platform::new(os, &Platform::host().architecture, None),
        [os, arch] if !os.is_empty() && !arch.is_empty() => Platform::new(os, arch, None),
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
            Platform::new(os, arch, Some(variant))
        }
        _ => return Err(bad()),
    };
    if platform.os != "linux" && platform.os != "windows" && platform.os != "darwin" {
        return Err(bad());
    }
    Ok(platform.normalize())
}
