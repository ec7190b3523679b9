//! `docker commit`: a container's changes (its snapshot's overlay upper dir) as a new
//! layer on top of its image, with a new config and history entry.
//!
//! The layer is stored uncompressed (its digest is its diff ID, as Docker's layer
//! store keeps committed layers), every blob under a lease until the image is
//! recorded, and the new layer is then unpacked like any other, so the image runs at
//! once. A container without changes gives an image without a new layer (an
//! `empty_layer` history step), as in Docker.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::ImageService;
use crate::diff::diff_upper_clamped;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{media_types, ContainerConfig, Descriptor, History, ImageConfig, RootFs};
use crate::reference::Reference;

/// The diff ID of a layer without entries (a tar of only its end blocks): Docker
/// commits such a change as an empty history step, without a layer.
pub const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// What [`ImageService::commit`] makes an image of.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The container's upper dir (its changes).
    pub upper: PathBuf,
    /// Tar paths of the upper dir that are not the container's changes (mount points
    /// the engine made), left out.
    pub exclude: Vec<PathBuf>,
    /// The image the container was made from (ID or name).
    pub parent: String,
    /// The new image's run config (changes applied and merged by the caller).
    pub config: ContainerConfig,
    /// The history step's `created_by` (Docker: the container's `Cmd` joined by
    /// spaces).
    pub created_by: String,
    pub author: Option<String>,
    pub comment: Option<String>,
    /// The name to give the image; without one it is recorded dangling.
    pub reference: Option<Reference>,
}

static COMMIT_SEQ: AtomicU64 = AtomicU64::new(0);
const LEASE_TTL: Duration = Duration::from_secs(3600);

impl ImageService {
    /// `docker commit`: see the [module docs](self). Returns the new image's ID.
    pub fn commit(&self, req: &CommitRequest) -> Result<Digest> {
        let parent = self.details(&req.parent)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let lease = format!(
            "commit-{}-{}-{}",
            std::process::id(),
            now.as_nanos(),
            COMMIT_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let content = self.content();
        content.create_lease_expiring(&lease, LEASE_TTL)?;
        let result = self.commit_leased(req, &parent, &lease);
        let target = match result {
            Ok(t) => t,
            Err(e) => {
                let _ = content.delete_lease(&lease);
                return Err(e);
            }
        };
        // Recorded: the image holds its blobs now. Unpack the new layer before the
        // lease goes (nothing collects a recorded image's blobs anyway).
        let unpacked = self.unpack(&target);
        let _ = content.delete_lease(&lease);
        unpacked?;
        Ok(self.store.image_id(&target))
    }

    fn commit_leased(
        &self,
        req: &CommitRequest,
        parent: &super::ImageDetails,
        lease: &str,
    ) -> Result<Descriptor> {
        let layer = write_layer(self, &req.upper, &req.exclude, lease, None)?;
        let empty = layer
            .as_ref()
            .is_none_or(|(d, _)| d.to_string() == EMPTY_LAYER_DIFF_ID);

        let base = &parent.config;
        let created = crate::time::now_rfc3339();
        let mut history = paired_history(base);
        history.push(History {
            created: Some(created.clone()),
            created_by: Some(req.created_by.clone()),
            author: req.author.clone().filter(|a| !a.is_empty()),
            comment: req.comment.clone().filter(|c| !c.is_empty()),
            empty_layer: empty.then_some(true),
            extra: BTreeMap::new(),
        });
        let mut diff_ids = base.rootfs.diff_ids.clone();
        let mut layers: Vec<Descriptor> = parent.manifest.layers.iter().map(oci_layer).collect();
        if let (false, Some((diff_id, size))) = (empty, &layer) {
            diff_ids.push(diff_id.clone());
            layers.push(Descriptor::new(
                media_types::OCI_LAYER,
                diff_id.clone(),
                *size,
            ));
        }
        let config = ImageConfig {
            created: Some(created),
            author: req.author.clone().filter(|a| !a.is_empty()),
            architecture: base.architecture.clone(),
            os: base.os.clone(),
            variant: base.variant.clone(),
            os_version: base.os_version.clone(),
            os_features: base.os_features.clone(),
            config: Some(req.config.clone()),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids,
            },
            history,
            extra: BTreeMap::new(),
        };
        crate::diff::store_image(&self.store, &config, layers, req.reference.as_ref(), lease)
    }
}

/// `base`'s history, to be extended by one step: when it has none recorded, one empty
/// entry per layer, which keeps steps and layers paired.
pub(super) fn paired_history(base: &ImageConfig) -> Vec<History> {
    if base.history.is_empty() && !base.rootfs.diff_ids.is_empty() {
        return base
            .rootfs
            .diff_ids
            .iter()
            .map(|_| History::default())
            .collect();
    }
    base.history.clone()
}

/// Stores the diff of `upper` as an uncompressed layer blob; its digest and size (the
/// digest is the diff ID). None when the diff has no entries (nothing is stored).
pub(super) fn write_layer(
    svc: &ImageService,
    upper: &Path,
    exclude: &[PathBuf],
    lease: &str,
    clamp_mtime: Option<u64>,
) -> Result<Option<(Digest, u64)>> {
    let content = svc.content();
    let mut writer = content.writer(None)?;
    writer.set_lease(lease);
    let stats = {
        let mut buffered = BufWriter::with_capacity(256 * 1024, &mut writer);
        let stats = diff_upper_clamped(upper, &mut buffered, exclude, clamp_mtime)?;
        buffered
            .flush()
            .map_err(|e| Error::io("writing layer", e))?;
        stats
    };
    if stats.files == 0 {
        writer.abort()?;
        return Ok(None);
    }
    let blob = writer.commit()?;
    if blob.digest != stats.diff_id {
        return Err(Error::Mismatch {
            what: "committed layer".to_string(),
            expected: stats.diff_id.to_string(),
            actual: blob.digest.to_string(),
        });
    }
    Ok(Some((blob.digest, blob.size)))
}

/// A parent layer's descriptor with Docker media types turned into their OCI
/// equivalents (the new manifest is an OCI one).
fn oci_layer(d: &Descriptor) -> Descriptor {
    let media_type = match d.media_type.as_str() {
        media_types::DOCKER_LAYER => media_types::OCI_LAYER,
        media_types::DOCKER_LAYER_GZIP => media_types::OCI_LAYER_GZIP,
        media_types::DOCKER_LAYER_ZSTD => media_types::OCI_LAYER_ZSTD,
        media_types::DOCKER_LAYER_FOREIGN => media_types::OCI_LAYER_NONDIST_GZIP,
        other => other,
    };
    let mut out = d.clone();
    out.media_type = media_type.to_string();
    out
}
