//! Images as a build makes them, one step at a time, without recording each step.
//!
//! A builder step produces a new config (and perhaps a layer) on top of the previous
//! step's image. Recording every step as an image would fill `docker images` with
//! `<none>` entries, so a [`StepImage`] lives only in the content store: its layer,
//! config and manifest blobs are written under the caller's lease (the build cache's
//! hold on them) and nothing else. The builder records a step as an image only when a
//! container must run on it ([`ImageService::record_step`]) and for the build's result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ImageService;
use crate::digest::Digest;
use crate::error::Result;
use crate::image::{media_types, ContainerConfig, Descriptor, History, ImageConfig, RootFs};
use crate::reference::Reference;
use crate::snapshot::chain_ids;

use super::commit::{paired_history, write_layer, EMPTY_LAYER_DIFF_ID};
use crate::diff::write_image;

/// One step's image: its config, its layers and the manifest that holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct StepImage {
    /// The image ID (the config's digest).
    pub id: Digest,
    /// The manifest's descriptor.
    pub target: Descriptor,
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
}

impl StepImage {
    /// The run config (`config.config`), empty when the image has none.
    pub fn run_config(&self) -> ContainerConfig {
        self.config.config.clone().unwrap_or_default()
    }

    /// The layers' chain IDs (snapshot names), bottom first.
    pub fn chain(&self) -> Vec<Digest> {
        chain_ids(&self.config.rootfs.diff_ids)
    }
}

/// What [`ImageService::commit_step`] makes.
#[derive(Debug, Clone)]
pub struct StepCommit<'a> {
    /// The image the step builds on; None for `FROM scratch`.
    pub base: Option<&'a StepImage>,
    /// The changes (an overlay upper dir) and the paths in it to leave out; None for a
    /// step that changes no file.
    pub upper: Option<(&'a Path, &'a [PathBuf])>,
    /// The new run config.
    pub config: ContainerConfig,
    /// The history step's `created_by`.
    pub created_by: String,
    /// The image's (and the history step's) author: `MAINTAINER`.
    pub author: Option<String>,
    /// RFC 3339 creation time of the image and of its history step.
    pub created: String,
    /// The lease the new blobs are written under.
    pub lease: &'a str,
    /// The latest mtime the layer's files get (`SOURCE_DATE_EPOCH`), if any.
    pub clamp_mtime: Option<u64>,
}

impl ImageService {
    /// A step's image from an image in the store (a `FROM` base).
    pub fn step_image(&self, name_or_id: &str) -> Result<StepImage> {
        let d = self.details(name_or_id)?;
        Ok(StepImage {
            id: d.id,
            target: d.target,
            config: d.config,
            layers: d.manifest.layers,
        })
    }

    /// A step's image read back from its manifest (a build cache hit).
    pub fn step_image_at(&self, target: &Descriptor) -> Result<StepImage> {
        let (id, manifest, config) = self.resolve_manifest(target)?;
        Ok(StepImage {
            id,
            target: target.clone(),
            config,
            layers: manifest.layers,
        })
    }

    /// Writes a step's image: the layer of `upper` (when it has changes), the config
    /// with one more history entry, and an OCI manifest, all under `step.lease`.
    /// Nothing is recorded as an image.
    pub fn commit_step(&self, step: &StepCommit<'_>) -> Result<StepImage> {
        let layer = match step.upper {
            Some((upper, exclude)) => {
                write_layer(self, upper, exclude, step.lease, step.clamp_mtime)?
            }
            None => None,
        };
        let layer = layer.filter(|(d, _)| d.to_string() != EMPTY_LAYER_DIFF_ID);
        let base_config = step.base.map(|b| b.config.clone()).unwrap_or_else(|| {
            let native = crate::image::Platform::host();
            ImageConfig {
                architecture: native.architecture,
                os: native.os,
                ..ImageConfig::default()
            }
        });
        let mut history = paired_history(&base_config);
        history.push(History {
            created: Some(step.created.clone()),
            created_by: Some(step.created_by.clone()),
            author: step.author.clone().filter(|a| !a.is_empty()),
            comment: None,
            empty_layer: layer.is_none().then_some(true),
            extra: BTreeMap::new(),
        });
        let mut diff_ids = base_config.rootfs.diff_ids.clone();
        let mut layers = step.base.map(|b| b.layers.clone()).unwrap_or_default();
        if let Some((diff_id, size)) = &layer {
            diff_ids.push(diff_id.clone());
            layers.push(Descriptor::new(
                media_types::OCI_LAYER,
                diff_id.clone(),
                *size,
            ));
        }
        let config = ImageConfig {
            created: Some(step.created.clone()),
            author: step.author.clone().filter(|a| !a.is_empty()),
            config: Some(step.config.clone()),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids,
            },
            history,
            ..base_config
        };
        let (target, id) = write_image(&self.store, &config, layers.clone(), step.lease)?;
        Ok(StepImage {
            id,
            target,
            config,
            layers,
        })
    }

    /// Makes a step's image a recorded image (tagged `reference`, or dangling) and
    /// unpacks its layers, so that a container can run on it.
    pub fn record_step(&self, image: &StepImage, reference: Option<&Reference>) -> Result<()> {
        match reference {
            Some(r) => {
                self.store.tag(r, &image.target)?;
            }
            None => {
                if self.store.resolve(&image.id.to_string()).is_err() {
                    self.store
                        .add_dangling(std::slice::from_ref(&image.target))?;
                }
            }
        }
        self.unpack(&image.target)?;
        Ok(())
    }

    /// Unpacks a step's layers into snapshots without recording it (a `COPY --from`
    /// source, a step's snapshot parent).
    pub fn unpack_step(&self, image: &StepImage) -> Result<Vec<Digest>> {
        self.unpack(&image.target)
    }

    /// Removes a step image's record if it is dangling (a build's intermediate image),
    /// leaving its blobs (held by the build cache's leases) and snapshots.
    pub fn forget_step(&self, image: &StepImage) -> Result<()> {
        if let Ok(resolved) = self.store.resolve(&image.id.to_string()) {
            if resolved
                .names
                .iter()
                .all(|n| n.tag().is_none() && n.digest().is_none())
            {
                self.store.remove_target(&resolved.target.digest)?;
            }
        }
        Ok(())
    }
}
