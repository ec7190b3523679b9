//! Fields that only some Engine API versions carry, kept here in one place rather than
//! among the current swagger's fields. Each is a named field, so a client of an older
//! version is read as it meant, and each says which versions send it.

use serde::{Deserialize, Serialize};

/// `ContainerConfig` fields of older API versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct LegacyConfig {
    /// The container's MAC address on its first network. Deprecated at API 1.44, which
    /// moved it to `EndpointSettings.MacAddress`; the docker CLI 28 still sends it at
    /// lower versions, and dockerd 20.10 reads it only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// `Resources` fields of older API versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct LegacyResources {
    /// Kernel memory limit (`--kernel-memory`), dropped at API 1.42: Docker 28 accepts
    /// and ignores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_memory: Option<i64>,
    /// Kernel TCP buffer limit, dropped from later swaggers with `KernelMemory`.
    #[serde(rename = "KernelMemoryTCP", skip_serializing_if = "Option::is_none")]
    pub kernel_memory_tcp: Option<i64>,
}
