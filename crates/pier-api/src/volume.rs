//! Volume objects of the Engine API (`Volume`, `VolumeCreateOptions`,
//! `VolumeListResponse`, `VolumePruneResponse`, and `UsageData`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Docker's `Volume`: what `GET /volumes/{name}` answers and `GET /volumes` lists.
///
/// `Labels` and `Options` are nullable as in dockerd: a volume created without them
/// answers `null`, one created with `{}` answers `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    // Fields in dockerd's order (Go's `volume.Volume`), so that JSON printed as it
    // came reads as docker's.
    /// RFC 3339; omitted when the driver does not know.
    #[serde(rename = "CreatedAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    /// `local` or `global`.
    #[serde(rename = "Scope")]
    pub scope: String,
    /// The driver's own low-level details; omitted when it has none.
    #[serde(rename = "Status", default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BTreeMap<String, Value>>,
    /// Only in `system df`; omitted elsewhere, as dockerd does.
    #[serde(rename = "UsageData", default, skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<UsageData>,
    /// Fields this model does not know (`ClusterVolume`, newer ones).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A volume's `UsageData`: its size and how many containers reference it; `-1` where
/// it was not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageData {
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "RefCount")]
    pub ref_count: i64,
}

impl UsageData {
    /// Docker's "not computed" value for both fields.
    pub const UNKNOWN: UsageData = UsageData {
        size: -1,
        ref_count: -1,
    };
}

/// The body of `POST /volumes/create`. Every field may be missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeCreateOptions {
    /// Empty: a generated (anonymous) name.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Empty: `local`.
    #[serde(rename = "Driver", default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(
        rename = "DriverOpts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Swarm's cluster volume spec; kept as given (Pier has no cluster).
    #[serde(
        rename = "ClusterVolumeSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_volume_spec: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `GET /volumes`. `Warnings` is null when there are none, as dockerd
/// answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeListResponse {
    #[serde(rename = "Volumes", default, deserialize_with = "null_as_empty")]
    pub volumes: Vec<Volume>,
    #[serde(rename = "Warnings", default)]
    pub warnings: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `POST /volumes/prune`: `VolumesDeleted` is `[]`, never null, when
/// nothing was removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumePruneResponse {
    #[serde(rename = "VolumesDeleted", default, deserialize_with = "null_as_empty")]
    pub volumes_deleted: Vec<String>,
    /// Bytes.
    #[serde(rename = "SpaceReclaimed", default)]
    pub space_reclaimed: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A list that a daemon may send as `null`.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_volume_round_trips_with_unknown_fields_kept() {
        let text = json!({
            "Name": "data", "Driver": "local", "Mountpoint": "/v/data/_data",
            "CreatedAt": "2026-01-01T00:00:00Z", "Labels": null, "Scope": "local",
            "Options": {"type": "tmpfs"}, "ClusterVolume": {"ID": "x"},
        });
        let v: Volume = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(v.labels, None);
        assert_eq!(v.options.as_ref().unwrap()["type"], "tmpfs");
        assert_eq!(v.extra["ClusterVolume"], json!({"ID": "x"}));
        assert_eq!(serde_json::to_value(&v).unwrap(), text);
    }

    #[test]
    fn create_options_may_be_empty() {
        let o: VolumeCreateOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o, VolumeCreateOptions::default());
        let o: VolumeCreateOptions =
            serde_json::from_str(r#"{"Name":"a","DriverOpts":{},"Future":1}"#).unwrap();
        assert_eq!(o.name.as_deref(), Some("a"));
        assert_eq!(o.driver_opts, Some(BTreeMap::new()));
        assert_eq!(o.extra["Future"], json!(1));
    }

    #[test]
    fn prune_answers_an_empty_list_not_null() {
        let r = VolumePruneResponse::default();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"VolumesDeleted": [], "SpaceReclaimed": 0})
        );
        let r: VolumePruneResponse =
            serde_json::from_str(r#"{"VolumesDeleted":null,"SpaceReclaimed":0}"#).unwrap();
        assert!(r.volumes_deleted.is_empty());
        let l: VolumeListResponse =
            serde_json::from_str(r#"{"Volumes":null,"Warnings":null}"#).unwrap();
        assert!(l.volumes.is_empty());
    }
}
