//! The image model: OCI and Docker schema2 manifests, indexes and configs, platform
//! selection, the image metadata store, and OCI image layout export/import.
//!
//! - Types ([`Descriptor`], [`Manifest`], [`Index`], [`ImageConfig`]) follow the OCI
//!   image spec and accept Docker schema2 documents (which are shape-compatible).
//!   Unknown fields are kept in `extra` maps so that a parse/serialize cycle does not
//!   drop them, but **stored manifests are always the exact bytes received**: a
//!   manifest's digest is over those bytes, so nothing here re-serializes a manifest
//!   for storage.
//! - [`parse_manifest_or_index`] detects the document kind by its `mediaType`
//!   field, the transport's media type hint, or its shape.
//! - [`select_platform`] picks an index entry the way containerd's default platform
//!   matcher (`platforms.Only`) does.
//! - [`ImageStore`] maps image references to target descriptors.
//! - [`export_oci_layout`] / [`import_oci_layout`] write and read OCI image layouts.

pub(crate) mod layout;
mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};

pub(crate) use layout::walk_index;
pub use layout::{export_oci_layout, import_oci_layout, LoadedImage};
pub(crate) use store::write_atomic;
pub use store::{Image, ImageStore, ResolvedImage, StoredImage};

/// Media type strings of OCI and Docker schema2 documents and blobs.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI uncompressed layer.
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI gzip layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI zstd layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable layer (deprecated in the spec, still found in the wild).
    pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    /// OCI non-distributable gzip layer.
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// OCI non-distributable zstd layer.
    pub const OCI_LAYER_NONDIST_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    /// OCI empty JSON descriptor (`{}`), used as config of artifacts.
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// The OCI layout's `index.json` annotation carrying the tag (or full name).
    pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// containerd's `index.json` annotation carrying the full image name.
    pub const ANNOTATION_CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker uncompressed layer.
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker zstd layer (non-standard, produced by some builders).
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    /// Docker foreign layer (e.g. Windows base layers), fetched from its `urls`.
    pub const DOCKER_LAYER_FOREIGN: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// Docker schema 1 manifest (unsupported, recognised to reject it clearly).
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// Signed Docker schema 1 manifest (unsupported).
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// Whether `mt` is an image manifest (OCI or Docker schema2).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// Whether `mt` is an index / manifest list.
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    /// Whether `mt` is an image config.
    pub fn is_config(mt: &str) -> bool {
        mt == OCI_CONFIG || mt == DOCKER_CONFIG
    }

    /// Whether `mt` is a layer type this crate knows.
    pub fn is_layer(mt: &str) -> bool {
        layer_compression(mt).is_some()
    }

    /// Whether a layer may legitimately be absent from registries and archives
    /// (Docker foreign and OCI non-distributable layers).
    pub fn is_non_distributable(mt: &str) -> bool {
        mt == DOCKER_LAYER_FOREIGN
            || mt == OCI_LAYER_NONDIST
            || mt == OCI_LAYER_NONDIST_GZIP
            || mt == OCI_LAYER_NONDIST_ZSTD
    }

    /// The compression of a known layer media type, `None` if `mt` is not a layer.
    pub fn layer_compression(mt: &str) -> Option<super::Compression> {
        use super::Compression::*;
        match mt {
            OCI_LAYER | OCI_LAYER_NONDIST | DOCKER_LAYER => Some(Uncompressed),
            OCI_LAYER_GZIP | OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN => {
                Some(Gzip)
            }
            OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD | DOCKER_LAYER_ZSTD => Some(Zstd),
            _ => None,
        }
    }
}

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    Zstd,
}

/// The platform an image (or index entry) is built for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Unknown fields (e.g. Docker's legacy `features`), kept for round trips.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A content descriptor: what a manifest or index says about a blob it references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Unknown fields (e.g. `data`), kept for round trips.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Descriptor {
    /// A plain descriptor: media type, digest and size only.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            extra: BTreeMap::new(),
        }
    }

    /// The content store's view of this descriptor (digest and size).
    pub fn content(&self) -> crate::content::Descriptor {
        crate::content::Descriptor {
            digest: self.digest.clone(),
            size: self.size,
        }
    }

    /// A copy without annotations, platform, urls and extras: what the image store
    /// records as an image's target.
    pub fn plain(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI `application/vnd.oci.image.manifest.v1+json` or Docker
/// schema2). `mediaType` is optional, as in the OCI spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A parsed manifest or index.
// Values are short-lived parse results, never stored in bulk: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestKind {
    Manifest(Manifest),
    Index(Index),
}

impl ManifestKind {
    /// The media type to record for this document: its `mediaType` field, else the
    /// OCI type of its kind.
    pub fn media_type(&self) -> &str {
        match self {
            ManifestKind::Manifest(m) => {
                m.media_type.as_deref().unwrap_or(media_types::OCI_MANIFEST)
            }
            ManifestKind::Index(i) => i.media_type.as_deref().unwrap_or(media_types::OCI_INDEX),
        }
    }
}

/// An image config (OCI `config.json` / Docker image JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Unknown fields (Docker's `container_config`, `docker_version`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig> {
        serde_json::from_slice(bytes).map_err(|e| invalid_data(format!("parse image config: {e}")))
    }

    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            extra: BTreeMap::new(),
        }
    }
}

/// The default run settings of an image (`config` in the image config). Field names
/// are Docker's PascalCase; every field is optional and JSON `null` is accepted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Unknown fields (Docker's `Hostname`, `AttachStdin`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A healthcheck as Docker stores it in image configs (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// The layer chain of an image: `diff_ids` are the digests of the *uncompressed*
/// layer tars, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One entry of an image's build history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `true` for steps that did not produce a layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Just enough of a document to decide what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Value>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    layers: Option<Value>,
}

/// Parses a manifest or an index from its exact bytes.
///
/// The kind is decided by, in order: the document's own `mediaType` field, the
/// `media_type_hint` (e.g. an HTTP `Content-Type` or a parent descriptor's
/// `mediaType`), and finally its shape (`manifests` → index, `config` → manifest).
/// As in containerd, a document that claims one kind but carries the other kind's
/// fields (an index with `config`/`layers`, a manifest with `manifests`) is rejected,
/// as are Docker schema 1 manifests.
///
/// The bytes are only read: callers store exactly the bytes they passed in.
///
/// # Errors
///
/// [`Error::InvalidContent`] for malformed or
/// unsupported documents.
pub fn parse_manifest_or_index(
    bytes: &[u8],
    media_type_hint: Option<&str>,
) -> Result<ManifestKind> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| invalid_data(format!("parse manifest: {e}")))?;
    let claimed = probe.media_type.as_deref().or(media_type_hint);
    if matches!(
        claimed,
        Some(media_types::DOCKER_SCHEMA1 | media_types::DOCKER_SCHEMA1_SIGNED)
    ) || probe.schema_version == Some(1)
    {
        return Err(invalid_data(
            "Docker image manifest schema 1 is not supported".to_string(),
        ));
    }
    if probe.schema_version != Some(2) {
        return Err(invalid_data(format!(
            "unsupported manifest schemaVersion {:?} (expected 2)",
            probe.schema_version
        )));
    }
    let is_index = match claimed {
        Some(mt) if media_types::is_index(mt) => true,
        Some(mt) if media_types::is_manifest(mt) => false,
        // An unknown type (an artifact manifest, say) or none: go by shape.
        _ => {
            if probe.manifests.is_some() {
                true
            } else if probe.config.is_some() {
                false
            } else {
                return Err(invalid_data(format!(
                    "unknown manifest type {:?}: neither `manifests` nor `config`",
                    claimed.unwrap_or("")
                )));
            }
        }
    };
    if is_index {
        if probe.config.is_some() || probe.layers.is_some() {
            return Err(invalid_data(
                "index must not have `config` or `layers`".to_string(),
            ));
        }
        serde_json::from_slice(bytes)
            .map(ManifestKind::Index)
            .map_err(|e| invalid_data(format!("parse index: {e}")))
    } else {
        if probe.manifests.is_some() {
            return Err(invalid_data(
                "manifest must not have `manifests`".to_string(),
            ));
        }
        serde_json::from_slice(bytes)
            .map(ManifestKind::Manifest)
            .map_err(|e| invalid_data(format!("parse manifest: {e}")))
    }
}

impl Platform {
    /// A platform from OS, architecture and optional variant.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            variant: variant.map(str::to_string),
            ..Platform::default()
        }
    }

    /// The platform of the running host, normalized (`linux/amd64`, `linux/arm64`,
    /// `linux/arm/v7`, ...).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch, None).normalize()
    }

    /// containerd's `platforms.Normalize`: canonical OS and architecture names and
    /// variants (`x86_64` → `amd64`, `aarch64` → `arm64`, `arm64/v8` → `arm64`,
    /// `arm` → `arm/v7`, `armhf` → `arm/v7`, `armel` → `arm/v6`, `amd64/v1` → `amd64`).
    pub fn normalize(&self) -> Platform {
        let mut p = self.clone();
        p.os = p.os.to_ascii_lowercase();
        if p.os == "macos" {
            p.os = "darwin".to_string();
        }
        let arch = p.architecture.to_ascii_lowercase();
        let variant = p.variant.take().unwrap_or_default();
        let (arch, variant) = match arch.as_str() {
            "i386" => ("386".to_string(), String::new()),
            "x86_64" | "x86-64" | "amd64" => {
                let v = if variant == "v1" {
                    String::new()
                } else {
                    variant
                };
                ("amd64".to_string(), v)
            }
            "aarch64" | "arm64" => {
                let v = match variant.as_str() {
                    "8" | "v8" | "v8.0" => String::new(),
                    _ => variant,
                };
                ("arm64".to_string(), v)
            }
            "armhf" => ("arm".to_string(), "v7".to_string()),
            "armel" => ("arm".to_string(), "v6".to_string()),
            "arm" => {
                let v = match variant.as_str() {
                    "" | "7" => "v7".to_string(),
                    "5" | "6" | "8" => format!("v{variant}"),
                    _ => variant,
                };
                ("arm".to_string(), v)
            }
            _ => (arch, variant),
        };
        p.architecture = arch;
        p.variant = (!variant.is_empty()).then_some(variant);
        p
    }

    /// The `os/arch[/variant]` string Docker prints.
    pub fn to_short_string(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Whether `candidate` is exactly this (normalized) platform, as containerd's
    /// matcher decides: same OS, architecture and variant after normalization, and
    /// the candidate's OS features a subset of ours.
    fn matches_exactly(&self, candidate: &Platform) -> bool {
        let c = candidate.normalize();
        if c.os != self.os || c.architecture != self.architecture || c.variant != self.variant {
            return false;
        }
        let wanted = c.os_features.unwrap_or_default();
        let have = self.os_features.clone().unwrap_or_default();
        wanted.iter().all(|f| have.contains(f))
    }

    /// containerd's `platformVector`: this platform followed by the platforms it can
    /// also run, most preferred first (arm/v7 also runs v6, v5; arm64 also runs
    /// arm/v7..v5; amd64/v3 also runs v2, v1, and amd64 runs 386).
    fn compatible(&self) -> Vec<Platform> {
        let p = self.normalize();
        let with = |arch: &str, variant: Option<String>| Platform {
            architecture: arch.to_string(),
            variant,
            ..p.clone()
        };
        let mut out = vec![p.clone()];
        let version = |v: &Option<String>| -> Option<u32> {
            v.as_deref()
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|v| v.parse().ok())
        };
        match p.architecture.as_str() {
            "amd64" => {
                if let Some(n) = version(&p.variant) {
                    for k in (1..n).rev() {
                        out.push(with("amd64", (k > 1).then(|| format!("v{k}"))));
                    }
                }
                out.push(with("386", None));
            }
            "arm" => {
                if let Some(n) = version(&p.variant) {
                    for k in (5..n).rev() {
                        out.push(with("arm", Some(format!("v{k}"))));
                    }
                }
            }
            "arm64" => {
                out.extend(with("arm", Some("v7".to_string())).compatible());
            }
            _ => {}
        }
        out
    }
}

/// Picks the entry of `index` to use on `platform`, as containerd's default matcher
/// (`platforms.Only`) and Docker do: the exact platform (after normalization) first,
/// then compatible ones in order of preference (for `linux/arm64`: `arm/v7`, `v6`,
/// `v5`; for `linux/arm/v7`: `v6`, `v5`; for `linux/amd64`: `386`), then — as a
/// last resort — an entry without any platform. Entries with other platforms
/// (including BuildKit attestations, `unknown/unknown`) are never chosen.
pub fn select_platform<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    for want in platform.compatible() {
        let found = index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| want.matches_exactly(p)));
        if found.is_some() {
            return found;
        }
    }
    index.manifests.iter().find(|d| {
        d.platform.is_none()
            && (media_types::is_manifest(&d.media_type) || media_types::is_index(&d.media_type))
    })
}

/// The error this module uses for malformed documents.
pub(crate) fn invalid_data(message: String) -> Error {
    Error::InvalidContent(message)
}
