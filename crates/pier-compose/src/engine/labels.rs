//! docker compose v2's engine contract: the names it gives containers, networks and
//! volumes, the labels it puts on them, and the service config hash that decides
//! whether a container is up to date. Found by running docker compose 2.29.7 against
//! pierd and reading what it created (see `tests/engine_compose.rs`).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::model::{Project, Service};

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const SLUG: &str = "com.docker.compose.slug";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const IMAGE: &str = "com.docker.compose.image";
pub const VERSION: &str = "com.docker.compose.version";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const ENVIRONMENT_FILE: &str = "com.docker.compose.project.environment_file";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
pub const REPLACE: &str = "com.docker.compose.replace";

/// The `com.docker.compose.version` pier compose writes: the docker compose release
/// whose engine contract it follows (docker compose reads the label but does not act
/// on it, so the two tools see each other's projects as their own).
pub const CONTRACT_VERSION: &str = "2.29.7";

/// `project-service-n`, or the service's `container_name`.
pub fn container_name(project: &str, service: &Service, number: u32) -> String {
    if !service.container_name.is_empty() {
        return service.container_name.clone();
    }
    format!("{project}-{}-{number}", service.name)
}

/// The engine name of the project's network `key` (its `name:`, set by the loader).
pub fn network_name(project: &Project, key: &str) -> String {
    match project.networks.get(key) {
        Some(n) if !n.name.is_empty() => n.name.clone(),
        _ => format!("{}_{key}", project.name),
    }
}

/// The engine name of the project's volume `key`.
pub fn volume_name(project: &Project, key: &str) -> String {
    match project.volumes.get(key) {
        Some(v) if !v.name.is_empty() => v.name.clone(),
        _ => format!("{}_{key}", project.name),
    }
}

/// The labels that mark a container of `service` as the project's.
pub fn container_labels(
    project: &Project,
    service: &Service,
    number: u32,
    image_id: &str,
    oneoff: bool,
) -> BTreeMap<String, String> {
    let mut labels = service.labels.clone();
    let mut set = |k: &str, v: String| {
        labels.insert(k.to_string(), v);
    };
    set(PROJECT, project.name.clone());
    set(SERVICE, service.name.clone());
    set(CONFIG_HASH, config_hash(service));
    set(CONTAINER_NUMBER, number.to_string());
    set(ONEOFF, if oneoff { "True" } else { "False" }.into());
    set(DEPENDS_ON, depends_on_label(service));
    set(IMAGE, image_id.to_string());
    set(VERSION, CONTRACT_VERSION.into());
    set(WORKING_DIR, project.working_dir.display().to_string());
    let files: Vec<String> = project
        .compose_files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    set(CONFIG_FILES, files.join(","));
    labels
}

/// The labels of a network or volume the project made (`kind_label` is [`NETWORK`]
/// or [`VOLUME`]), over the ones the file gives it.
pub fn resource_labels(
    project: &Project,
    kind_label: &str,
    key: &str,
    own: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = own.clone();
    labels.insert(kind_label.into(), key.into());
    labels.insert(PROJECT.into(), project.name.clone());
    labels.insert(VERSION.into(), CONTRACT_VERSION.into());
    labels
}

/// `dep:condition:restart` for each dependency, comma-separated, by name.
pub fn depends_on_label(service: &Service) -> String {
    service
        .depends_on
        .iter()
        .map(|(name, d)| format!("{name}:{}:{}", d.condition, d.restart))
        .collect::<Vec<_>>()
        .join(",")
}

/// docker compose's config hash: SHA-256 of the service's JSON (as `config --format
/// json` prints it, compact, HTML characters escaped as Go does) without the keys
/// that do not change a container: `build`, `pull_policy`, `scale`,
/// `deploy.replicas`, `depends_on` and `profiles`. Equal to the label docker compose
/// sets, so either tool sees the other's containers as up to date.
pub fn config_hash(service: &Service) -> String {
    let mut s = service.clone();
    s.build = None;
    s.pull_policy.clear();
    s.scale = None;
    s.depends_on.clear();
    s.profiles.clear();
    if let Some(deploy) = s.deploy.as_mut() {
        deploy.replicas = None;
    }
    let json = crate::output::with_flavour(true, || serde_json::to_string(&s)).unwrap_or_default();
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let digest = Sha256::digest(json.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
