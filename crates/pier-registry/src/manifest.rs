//! Manifests as the registry sees them: the four media types it accepts (OCI image
//! manifest and index, Docker schema2 manifest and manifest list), the descriptors they
//! reference (which must exist before the push is accepted), and the `subject` that
//! makes a manifest a referrer.

use std::collections::BTreeMap;

use pier_image::digest::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's "foreign" (non-distributable) layers live elsewhere, so their blobs need
/// not exist in the registry.
const FOREIGN_LAYERS: [&str; 2] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

/// The largest manifest accepted; the spec asks registries to take at least 4 MiB.
pub const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An image manifest or an index; which fields are set depends on the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: Option<u32>,
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Index,
}

/// A parsed manifest with its effective media type.
#[derive(Debug)]
pub struct Parsed {
    pub media_type: String,
    pub kind: Kind,
    pub manifest: Manifest,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        OCI_INDEX | DOCKER_LIST => Some(Kind::Index),
        _ => None,
    }
}

/// Parses a pushed manifest. The media type is the `Content-Type` of the push, else
/// the document's own `mediaType`; when both are given they must agree.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Parsed> {
    let manifest: Manifest = serde_json::from_slice(body)
        .map_err(|e| RegistryError::ManifestInvalid(format!("not a manifest: {e}")))?;
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| kind_of(c).is_some());
    let media_type = match (content_type, manifest.media_type.as_deref()) {
        (Some(c), Some(m)) if c != m => {
            return Err(RegistryError::ManifestInvalid(format!(
                "mediaType {m:?} does not match Content-Type {c:?}"
            )))
        }
        (Some(c), _) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) if manifest.config.is_some() => OCI_MANIFEST.to_string(),
        (None, None) if !manifest.manifests.is_empty() => OCI_INDEX.to_string(),
        (None, None) => {
            return Err(RegistryError::ManifestInvalid(
                "no media type in Content-Type or document".into(),
            ))
        }
    };
    let kind = kind_of(&media_type).ok_or_else(|| {
        RegistryError::ManifestInvalid(format!("unsupported manifest media type {media_type:?}"))
    })?;
    if manifest.schema_version != Some(2) {
        return Err(RegistryError::ManifestInvalid(
            "schemaVersion must be 2".into(),
        ));
    }
    if kind == Kind::Image && manifest.config.is_none() {
        return Err(RegistryError::ManifestInvalid(
            "an image manifest needs a config".into(),
        ));
    }
    Ok(Parsed {
        media_type,
        kind,
        manifest,
    })
}

impl Parsed {
    /// The blobs that must exist in the repository (config and distributable layers).
    pub fn required_blobs(&self) -> Vec<&Digest> {
        if self.kind != Kind::Image {
            return Vec::new();
        }
        let layers = self
            .manifest
            .layers
            .iter()
            .filter(|l| l.urls.is_empty() && !FOREIGN_LAYERS.contains(&l.media_type.as_str()));
        self.manifest
            .config
            .iter()
            .chain(layers)
            .map(|d| &d.digest)
            .collect()
    }

    /// The manifests an index lists, which must exist in the repository.
    pub fn required_manifests(&self) -> Vec<&Digest> {
        match self.kind {
            Kind::Index => self.manifest.manifests.iter().map(|d| &d.digest).collect(),
            Kind::Image => Vec::new(),
        }
    }

    /// The descriptor the referrers API lists for this manifest: its `artifactType`,
    /// else (image manifests) its config's media type.
    pub fn referrer_descriptor(&self, digest: &Digest, size: u64) -> Descriptor {
        let artifact_type = self.manifest.artifact_type.clone().or_else(|| {
            (self.kind == Kind::Image)
                .then(|| self.manifest.config.as_ref().map(|c| c.media_type.clone()))
                .flatten()
        });
        Descriptor {
            media_type: self.media_type.clone(),
            digest: digest.clone(),
            size,
            urls: Vec::new(),
            artifact_type,
            annotations: self.manifest.annotations.clone(),
            extra: Default::default(),
        }
    }
}
