//! Volumes: data that outlives its containers.
//!
//! This crate is the plumbing under pierd's volume service, kept free of the daemon's
//! state and API so that each piece is testable on its own:
//! - [`driver`]: the [`VolumeDriver`] interface every driver implements, and its errors;
//! - [`local`]: Docker's `local` driver (a directory, or a filesystem mounted from
//!   `type=`/`o=`/`device=` options);
//! - [`plugin`]: Docker's volume plugin protocol (`/Plugin.Activate`, `VolumeDriver.*`
//!   over HTTP on a unix socket), and plugin discovery;
//! - [`copyup`]: filling a new, empty volume from the image content it is mounted over;
//! - [`archive`]: export, import and clone of a volume's content as a tar stream.
//!
//! pierd records volumes in its store and decides policy (names, in-use protection,
//! reference counting per container); the drivers only do what they are told.

pub mod archive;
pub mod copyup;
pub mod driver;
pub mod local;
pub mod plugin;

pub use driver::{DriverVolume, Scope, VolumeDriver, VolumeError};
