//! pierd: Pier's engine daemon. It serves the Docker Engine API on a unix socket so
//! that the `docker` CLI, docker-compose, docker-py and testcontainers work against it
//! unchanged.
//!
//! - [`config`]: the daemon's flags (dockerd's names).
//! - [`server`]: sockets, pidfile, the tokio runtime and shutdown.
//! - [`engine`]: containers: records in an embedded store, OCI specs, lifecycle.
//! - [`monitor`]: the per-container monitor process (`pierd monitor`), which owns a
//!   running container's stdio, logs and exit status and outlives pierd.
//! - [`api`]: the Engine API: version negotiation, errors in Docker's shape, and the
//!   endpoints, grouped as Docker groups them (system, images, ...).
//! - [`userns`]: user namespace mappings (`--userns-remap`, `--userns auto`).

#![recursion_limit = "256"]

pub mod api;
pub mod config;
pub mod engine;
pub mod logdriver;
pub mod monitor;
pub mod rootfs_tar;
pub mod server;
pub mod userns;

use std::sync::Arc;

use pier_image::service::{ImageService, ImageUser};

/// What every request handler shares.
#[derive(Debug)]
pub struct Daemon {
    pub config: config::DaemonConfig,
    pub images: Arc<ImageService>,
    pub engine: Arc<engine::Engine>,
    /// A stable ID for `/info`, kept under the data root.
    pub id: String,
}

impl Daemon {
    /// Which containers hold which images (for `rmi` conflicts and `image prune`).
    pub fn image_users(&self) -> Vec<ImageUser> {
        self.engine.image_users()
    }
}
