//! pier-runtime: an OCI runtime with runc's command line.
//!
//! The library does the work; `main.rs` only parses runc's command line and reports.
//! Every path that forks a container process runs single-threaded (no async runtime).

pub mod caps;
pub mod cgroups;
pub mod error;
pub mod mounts;
pub mod passwd;
pub mod process;
pub mod rootpath;
pub mod seccomp;
pub mod seccomp_cache;
pub mod spec;

pub use error::{Error, Result};
pub mod channel;
pub mod console;
pub mod container;
pub mod hooks;
pub mod init;
pub mod log;
pub mod selfexe;
pub mod state;
