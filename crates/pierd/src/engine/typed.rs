//! A container's stored `Config` and `HostConfig` (kept as JSON in the record) read as
//! `pier_api`'s typed model, for the engine modules that have moved off string keys.
//! The record was written from the typed create body, so a failure here is a damaged
//! record, answered as an invalid parameter naming the part.

use pier_api::container::{ContainerConfig, HostConfig, Resources};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::EngineError;

fn read<T: DeserializeOwned>(part: &str, value: &Value) -> Result<T, EngineError> {
    T::deserialize(value).map_err(|e| EngineError::InvalidParameter(format!("invalid {part}: {e}")))
}

/// `Config`.
pub(super) fn config(config: &Value) -> Result<ContainerConfig, EngineError> {
    read("Config", config)
}

/// `HostConfig`.
pub(super) fn host_config(hc: &Value) -> Result<HostConfig, EngineError> {
    read("HostConfig", hc)
}

/// The `Resources` part of a `HostConfig` alone.
pub(super) fn resources(hc: &Value) -> Result<Resources, EngineError> {
    read("HostConfig", hc)
}
