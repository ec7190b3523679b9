//! The engine operations compose needs, typed, over [`pier_api::client::Client`]:
//! containers listed by label, created, started, stopped, removed, inspected;
//! networks and volumes looked up, created and removed; images inspected and pulled.

use std::collections::BTreeMap;

use pier_api::client::{Client, Request};
use pier_api::container::ContainerCreateRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use pier_api::client::Error as ApiError;

/// A row of `GET /containers/json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub state: String,
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortSummary>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContainerSummary {
    /// The name without its leading `/`.
    pub fn name(&self) -> &str {
        self.names
            .first()
            .map(|n| n.trim_start_matches('/'))
            .unwrap_or_default()
    }

    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or_default()
    }
}

/// A published or exposed port of a listed container.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PortSummary {
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    #[serde(rename = "PublicPort", skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// The parts of `GET /containers/{id}/json` compose acts on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub config: InspectConfig,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct InspectConfig {
    pub labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerState {
    pub status: String,
    pub running: bool,
    pub exit_code: i64,
    pub health: Option<Health>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The parts of a network's inspect compose reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /networks/create`'s body.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreate {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    #[serde(rename = "EnableIPv6", skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM", skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub config: Vec<IpamPool>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamPool {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_address: BTreeMap<String, String>,
}

/// The parts of an image's inspect compose reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageInfo {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub size: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What `GET /containers/{id}/top` answers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Created {
    id: String,
}

/// Percent-encodes a query value.
pub fn query_escape(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `filters=` value: `label` filters (`key` or `key=value`), ANDed.
pub fn label_filter(labels: &[String]) -> String {
    let labels: BTreeMap<&str, bool> = labels.iter().map(|l| (l.as_str(), true)).collect();
    let filters = serde_json::json!({ "label": labels });
    query_escape(&filters.to_string())
}

/// The engine, as compose uses it.
#[derive(Clone, Debug)]
pub struct Engine {
    pub client: Client,
}

type Result<T> = std::result::Result<T, ApiError>;

impl Engine {
    pub fn new(client: Client) -> Engine {
        Engine { client }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T> {
        self.client.send(req).await?.json().await
    }

    /// The answer as JSON, or `None` for a 404 (no such object).
    async fn optional<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<Option<T>> {
        match self.json(req).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn empty(&self, req: Request) -> Result<()> {
        let r = self.client.send(req).await?.error_for_status().await?;
        r.bytes().await?;
        Ok(())
    }

    /// Containers carrying every label of `labels`; stopped ones too when `all`.
    pub async fn containers(&self, labels: &[String], all: bool) -> Result<Vec<ContainerSummary>> {
        let path = format!(
            "/containers/json?all={}&filters={}",
            all as u8,
            label_filter(labels)
        );
        self.json(Request::get(path)).await
    }

    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInspect> {
        self.json(Request::get(format!(
            "/containers/{}/json",
            query_escape(id)
        )))
        .await
    }

    /// The raw inspect (for `ps --format json`'s fields).
    pub async fn inspect_container_value(&self, id: &str) -> Result<Value> {
        self.json(Request::get(format!(
            "/containers/{}/json",
            query_escape(id)
        )))
        .await
    }

    pub async fn create_container(
        &self,
        name: &str,
        body: &ContainerCreateRequest,
    ) -> Result<String> {
        let req =
            Request::post(format!("/containers/create?name={}", query_escape(name))).json(body)?;
        let created: Created = self.json(req).await?;
        Ok(created.id)
    }

    /// A request whose 304 (already in that state) counts as done, as compose
    /// treats it.
    async fn idempotent(&self, req: Request) -> Result<()> {
        let r = self.client.send(req).await?;
        if r.status().as_u16() == 304 {
            return Ok(());
        }
        r.error_for_status().await?.bytes().await?;
        Ok(())
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.idempotent(Request::post(format!("/containers/{id}/start")))
            .await
    }

    pub async fn stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        self.idempotent(Request::post(with_timeout(
            format!("/containers/{id}/stop"),
            timeout,
        )))
        .await
    }

    pub async fn restart(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        self.idempotent(Request::post(with_timeout(
            format!("/containers/{id}/restart"),
            timeout,
        )))
        .await
    }

    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        self.empty(Request::post(format!(
            "/containers/{id}/kill?signal={}",
            query_escape(signal)
        )))
        .await
    }

    pub async fn pause(&self, id: &str) -> Result<()> {
        self.empty(Request::post(format!("/containers/{id}/pause")))
            .await
    }

    pub async fn unpause(&self, id: &str) -> Result<()> {
        self.empty(Request::post(format!("/containers/{id}/unpause")))
            .await
    }

    pub async fn rename(&self, id: &str, name: &str) -> Result<()> {
        self.empty(Request::post(format!(
            "/containers/{id}/rename?name={}",
            query_escape(name)
        )))
        .await
    }

    /// Removes a container (`force` kills it first; `volumes` drops its anonymous volumes).
    pub async fn remove_container(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let path = format!("/containers/{id}?force={}&v={}", force as u8, volumes as u8);
        self.empty(Request::delete(path)).await
    }

    /// `GET /containers/{id}/top`.
    pub async fn top(&self, id: &str) -> Result<Top> {
        self.json(Request::get(format!("/containers/{id}/top")))
            .await
    }

    /// Waits for a container to stop; its exit code.
    pub async fn wait(&self, id: &str) -> Result<i64> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Waited {
            status_code: i64,
        }
        let w: Waited = self
            .json(Request::post(format!("/containers/{id}/wait")))
            .await?;
        Ok(w.status_code)
    }

    /// The container's log stream (multiplexed unless it has a TTY).
    pub async fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: &str,
        timestamps: bool,
    ) -> Result<pier_api::client::Response> {
        let path = format!(
            "/containers/{id}/logs?stdout=1&stderr=1&follow={}&tail={}&timestamps={}",
            follow as u8,
            query_escape(tail),
            timestamps as u8
        );
        self.client
            .send(Request::get(path))
            .await?
            .error_for_status()
            .await
    }

    /// `None` when the network does not exist.
    pub async fn network(&self, name: &str) -> Result<Option<NetworkInfo>> {
        self.optional(Request::get(format!("/networks/{}", query_escape(name))))
            .await
    }

    pub async fn networks(&self, labels: &[String]) -> Result<Vec<NetworkInfo>> {
        self.json(Request::get(format!(
            "/networks?filters={}",
            label_filter(labels)
        )))
        .await
    }

    pub async fn create_network(&self, body: &NetworkCreate) -> Result<String> {
        let created: Created = self
            .json(Request::post("/networks/create").json(body)?)
            .await?;
        Ok(created.id)
    }

    pub async fn remove_network(&self, id: &str) -> Result<()> {
        self.empty(Request::delete(format!("/networks/{}", query_escape(id))))
            .await
    }

    /// `None` when the volume does not exist.
    pub async fn volume(&self, name: &str) -> Result<Option<pier_api::volume::Volume>> {
        self.optional(Request::get(format!("/volumes/{}", query_escape(name))))
            .await
    }

    pub async fn volumes(&self, labels: &[String]) -> Result<Vec<pier_api::volume::Volume>> {
        let list: pier_api::volume::VolumeListResponse = self
            .json(Request::get(format!(
                "/volumes?filters={}",
                label_filter(labels)
            )))
            .await?;
        Ok(list.volumes)
    }

    pub async fn create_volume(&self, body: &pier_api::volume::VolumeCreateOptions) -> Result<()> {
        let _: Value = self
            .json(Request::post("/volumes/create").json(body)?)
            .await?;
        Ok(())
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.empty(Request::delete(format!("/volumes/{}", query_escape(name))))
            .await
    }

    /// `None` when the image is not there.
    pub async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        self.optional(Request::get(format!("/images/{reference}/json")))
            .await
    }

    pub async fn remove_image(&self, reference: &str) -> Result<()> {
        let _: Value = self
            .json(Request::delete(format!("/images/{reference}")))
            .await?;
        Ok(())
    }

    /// Pulls `reference`; an error the progress stream reports is returned.
    pub async fn pull(&self, reference: &str) -> Result<()> {
        let (name, tag) = split_reference(reference);
        let path = format!(
            "/images/create?fromImage={}&tag={}",
            query_escape(name),
            query_escape(tag)
        );
        let body = self
            .client
            .send(Request::post(path))
            .await?
            .error_for_status()
            .await?
            .bytes()
            .await?;
        for line in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
            let line = line?;
            if let Some(message) = line.get("error").and_then(Value::as_str) {
                return Err(ApiError::Daemon {
                    status: 500,
                    message: message.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `path?t=N` when a timeout is given.
fn with_timeout(path: String, timeout: Option<i64>) -> String {
    match timeout {
        Some(t) => format!("{path}?t={t}"),
        None => path,
    }
}

/// `name[:tag]` (a digest stays in the name); the tag defaults to `latest`.
fn split_reference(reference: &str) -> (&str, &str) {
    if reference.contains('@') {
        return (reference, "");
    }
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(
            split_reference("localhost:5000/a:1"),
            ("localhost:5000/a", "1")
        );
        assert_eq!(
            split_reference("localhost:5000/a"),
            ("localhost:5000/a", "latest")
        );
    }

    #[test]
    fn label_filters_are_json_escaped() {
        let f = label_filter(&["com.docker.compose.project=p".into()]);
        assert_eq!(
            f,
            "%7B%22label%22%3A%7B%22com.docker.compose.project%3Dp%22%3Atrue%7D%7D"
        );
    }
}
