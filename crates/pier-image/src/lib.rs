//! pier-image: the storage layer under Pier's images and containers.
//!
//! - [`reference`](mod@reference): Docker-style image references (`busybox` →
//!   `docker.io/library/busybox:latest`), validated with Docker's messages.
//! - [`content`](mod@content): the content store, blobs by digest, written atomically and verified.

pub mod content;
pub mod digest;
pub mod error;
pub mod image;
pub mod layer;
pub mod reference;

pub use error::{Error, Result};
