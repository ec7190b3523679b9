//! Pier's init for `docker run --init` ([`init.rs`](init)), as a static executable.
//!
//! `build.rs` compiles `src/init.rs` on its own, statically linked (the containers
//! that run it may have no C library), and this crate hands pierd its bytes: pierd
//! writes them out once and bind-mounts the file at `/sbin/docker-init`.

/// The static executable of `src/init.rs`.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pier-init"));

// Compiled into the tests too, so its unit tests run and the lints see it.
#[cfg(test)]
#[allow(dead_code)]
#[path = "init.rs"]
mod init;
