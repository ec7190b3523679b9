//! Docker Engine API objects as typed Rust structs, following the contract's swagger
//! (`docker-engine-api.yaml`).
//!
//! This crate is the start of Pier's shared typed API model (issue 12): pierd answers
//! with these types and the `pier` CLI decodes into them, so both sides agree on one
//! definition. Every object keeps the fields it does not know in an `extra` map
//! (`#[serde(flatten)]`), so a newer client's or daemon's fields pass through unharmed.
//! It stays dependency-light (serde, serde_json) so that any crate can use it.
//!
//! - [`mount`]: `HostConfig.Mounts` entries (`--mount`);
//! - [`volume`]: volumes (`/volumes/...`).

pub mod mount;
pub mod volume;
