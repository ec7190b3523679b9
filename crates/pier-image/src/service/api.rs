//! The Engine API's image JSON shapes (API 1.41 and up), as pierd serves them and the
//! `pier` CLI reads them. Field names and nullability follow Docker's, so clients
//! written against Docker decode them unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::ContainerConfig;

/// `GET /images/json` entry (`ImageSummary`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created: i64,
    pub size: i64,
    /// -1 unless computed (`system df`).
    pub shared_size: i64,
    pub labels: BTreeMap<String, String>,
    /// -1 unless computed (`system df`).
    pub containers: i64,
}

/// `GET /images/{name}/json` (`ImageInspect`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub descriptor: OciDescriptor,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Always empty: Pier keeps no parent-image chain (as Docker's containerd store).
    pub parent: String,
    pub comment: String,
    /// RFC 3339 with nanoseconds, as in the image config; absent when the config has
    /// none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub author: String,
    pub config: ImageConfigView,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub size: i64,
    pub graph_driver: DriverData,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsView,
    pub metadata: ImageMetadata,
}

/// An OCI descriptor as the Engine API embeds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// The image's run configuration (`ImageConfig` of the API): the config's own
/// fields, with Docker's always-present ones filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfigView {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::image::HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

impl ImageConfigView {
    pub fn from_config(c: Option<&ContainerConfig>) -> ImageConfigView {
        let d = ContainerConfig::default();
        let c = c.unwrap_or(&d);
        ImageConfigView {
            user: c.user.clone().unwrap_or_default(),
            exposed_ports: c.exposed_ports.clone(),
            env: c.env.clone(),
            cmd: c.cmd.clone(),
            healthcheck: c.healthcheck.clone(),
            args_escaped: c.args_escaped,
            volumes: c.volumes.clone(),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            entrypoint: c.entrypoint.clone(),
            on_build: c.on_build.clone(),
            labels: c.labels.clone(),
            stop_signal: c.stop_signal.clone(),
            shell: c.shell.clone(),
        }
    }
}

/// `GraphDriver` of image inspect: Pier's overlay snapshots in Docker's overlay2 terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DriverData {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsView {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    pub last_tag_time: String,
}

/// `GET /images/{name}/history` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
    pub created_by: String,
    pub tags: Option<Vec<String>>,
    pub size: i64,
    pub comment: String,
}

/// One line of `DELETE /images/{name}`'s answer: either `Untagged` or `Deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

impl DeleteItem {
    pub fn untagged(name: String) -> DeleteItem {
        DeleteItem {
            untagged: Some(name),
            deleted: None,
        }
    }

    pub fn deleted(id: String) -> DeleteItem {
        DeleteItem {
            untagged: None,
            deleted: Some(id),
        }
    }
}

/// `POST /images/prune`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    pub images_deleted: Vec<DeleteItem>,
    pub space_reclaimed: u64,
}
