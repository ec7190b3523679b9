//! Docker Engine API objects as typed Rust structs, following the contract's swagger
//! (`docker-engine-api.yaml`).
//!
//! This crate is the start of Pier's shared typed API model (issue 12): pierd answers
//! with these types and the `pier` CLI decodes into them, so both sides agree on one
//! definition. Every object keeps the fields it does not know in an `extra` map
//! (`#[serde(flatten)]`), so a newer client's or daemon's fields pass through unharmed.
//! It stays dependency-light (serde, serde_json) so that any crate can use it.
//!
//! - [`container`]: the container create and update bodies (`ContainerConfig`,
//!   `HostConfig` with `Resources`) and their parts;
//! - [`network`]: a container's `NetworkingConfig` and `EndpointSettings`;
//! - [`versioned`]: fields that only some API versions carry;
//! - [`error_response`]: the error body;
//! - [`mount`]: `HostConfig.Mounts` entries (`--mount`);
//! - `client` (feature `client`): the Engine API client, on hyper;
//! - [`volume`]: volumes (`/volumes/...`).

#[cfg(feature = "client")]
pub mod client;
pub mod container;
pub mod error_response;
pub mod mount;
pub mod network;
pub mod versioned;
pub mod volume;
