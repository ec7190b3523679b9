//! `mount.Mount`: an entry of `HostConfig.Mounts` (the CLI's `--mount`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fields of an object that this model does not name, kept as they came.
pub type Extra = BTreeMap<String, Value>;

/// `mount.Type`. Unknown types are kept (with their text) so that the engine can
/// refuse them with Docker's message, which names the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
    Image,
    Npipe,
    Cluster,
    Other(String),
}

impl MountType {
    pub fn as_str(&self) -> &str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
            MountType::Image => "image",
            MountType::Npipe => "npipe",
            MountType::Cluster => "cluster",
            MountType::Other(s) => s,
        }
    }
}

/// Docker's zero value: the empty type.
impl Default for MountType {
    fn default() -> Self {
        MountType::Other(String::new())
    }
}

impl From<String> for MountType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "bind" => MountType::Bind,
            "volume" => MountType::Volume,
            "tmpfs" => MountType::Tmpfs,
            "image" => MountType::Image,
            "npipe" => MountType::Npipe,
            "cluster" => MountType::Cluster,
            _ => MountType::Other(s),
        }
    }
}

impl Serialize for MountType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MountType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `null` is what a client sends for "unset": the same as an empty type.
        Ok(Option::<String>::deserialize(d)?.unwrap_or_default().into())
    }
}

/// `mount.Mount`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    /// Absent in a request means Docker's zero value, the empty type (refused as
    /// "mount type unknown"); the CLI always sends one.
    #[serde(default)]
    pub r#type: MountType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// `default`, `consistent`, `cached`, `delegated`: macOS-only in Docker, accepted
    /// and ignored on Linux.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_options: Option<ImageOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `mount.BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    /// `private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`; empty: rprivate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    /// Submounts of the source are not bound (`bind-nonrecursive`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub non_recursive: bool,
    /// Create the source on the host when missing (API 1.42).
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_mountpoint: bool,
    /// With `ReadOnly`: submounts stay writable (`bind-recursive=writable`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only_non_recursive: bool,
    /// With `ReadOnly`: submounts read-only too, or fail (`bind-recursive=readonly`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only_force_recursive: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mount.VolumeOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    /// Do not fill a new volume from the image (`volume-nocopy`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_copy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// A directory inside the volume to mount instead of its root (API 1.45).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<Driver>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mount.Driver`: the driver of a volume made for the mount, and its options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Driver {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mount.TmpfsOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    /// Size in bytes; 0: the kernel's default (half the memory).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub size_bytes: i64,
    /// Permission bits of the tmpfs root (Go's `os.FileMode`).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// Further options as `[name]` or `[name, value]` pairs (API 1.46): `exec`, `noexec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<Vec<String>>>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// `mount.ImageOptions` (API 1.48, Docker 28).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageOptions {
    /// A directory inside the image to mount instead of its root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_docker_json_and_keeps_unknown_fields() {
        let wire = json!({
            "Type": "bind",
            "Source": "/srv",
            "Target": "/data",
            "ReadOnly": true,
            "BindOptions": {"Propagation": "rslave", "NonRecursive": true, "Future": 1},
            "ClusterOptions": {},
        });
        let m: Mount = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(m.r#type, MountType::Bind);
        assert!(m.read_only);
        let bind = m.bind_options.as_ref().unwrap();
        assert_eq!(bind.propagation, "rslave");
        assert!(bind.non_recursive);
        assert_eq!(bind.extra["Future"], json!(1));
        assert!(m.extra.contains_key("ClusterOptions"));
        assert_eq!(serde_json::to_value(&m).unwrap(), wire);
    }

    #[test]
    fn unknown_and_missing_types_keep_their_text() {
        let m: Mount = serde_json::from_value(json!({"Type": "weird", "Target": "/x"})).unwrap();
        assert_eq!(m.r#type, MountType::Other("weird".into()));
        let m: Mount = serde_json::from_value(json!({"Target": "/x"})).unwrap();
        assert_eq!(m.r#type.as_str(), "");
        let m: Mount = serde_json::from_value(json!({"Type": null, "Target": "/x"})).unwrap();
        assert_eq!(m.r#type.as_str(), "");
    }

    #[test]
    fn tmpfs_options_in_docker_shape() {
        let m: Mount = serde_json::from_value(json!({
            "Type": "tmpfs", "Target": "/t",
            "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448, "Options": [["exec"]]},
        }))
        .unwrap();
        let t = m.tmpfs_options.unwrap();
        assert_eq!((t.size_bytes, t.mode), (1 << 20, 0o700));
        assert_eq!(t.options, Some(vec![vec!["exec".to_string()]]));
    }
}
