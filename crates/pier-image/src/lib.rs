//! pier-image: the storage layer under Pier's images and containers.
//!
//! - [`reference`](mod@reference): Docker-style image references (`busybox` →
//!   `docker.io/library/busybox:latest`), validated with Docker's messages.
//! - [`digest`](mod@digest): validated digests and streaming hashers.
//! - [`content`](mod@content): the content store, blobs by digest, written atomically
//!   and verified, with leases, GC and usage.
//! - [`image`](mod@image): manifests, indexes and configs kept as exact bytes, platform
//!   selection, the image metadata store and OCI image layouts.
//! - [`layer`](mod@layer): applying tar/gzip/zstd layers into a snapshot directory,
//!   contained by `openat2(RESOLVE_IN_ROOT)`.
//! - [`snapshot`](mod@snapshot): overlayfs snapshots keyed by chain ID.
//! - [`diff`](mod@diff): a layer from an overlay upper dir, and `docker import`.
//! - [`archive`](mod@archive): `docker save`/`docker load` archives.
//! - [`service`](mod@service): the image operations users run (list, inspect, history,
//!   tag, remove, prune, load, save, import), in the Engine API's JSON shapes.
//! - [`time`](mod@time): RFC 3339 timestamps as Docker writes them.

pub mod archive;
pub mod content;
pub mod diff;
pub mod digest;
pub mod error;
pub mod image;
pub mod layer;
pub mod reference;
pub mod service;
pub mod snapshot;
pub mod time;

pub use error::{Error, Result};
