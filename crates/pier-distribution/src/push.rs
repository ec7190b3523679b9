//! Pushing an image from pier-image's stores to a registry.
//!
//! The image's manifest (for an index: the host platform's) is pushed as stored, so
//! its digest — and the image ID a puller computes — is the same as here. Layers go
//! [`CONCURRENT_UPLOADS`] at a time: a `HEAD` first (the registry has it: skipped), then
//! a cross-repository mount from another repository of the same registry this image
//! is known under, else a monolithic upload streamed from the content store. The
//! config follows, the manifest last, so the registry never holds a manifest whose
//! blobs are missing. The pushed `repo@digest` is recorded locally (`RepoDigests`).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pier_image::content::ContentStore;
use pier_image::digest::Digest;
use pier_image::image::{select_platform, Descriptor, ImageConfig, ManifestKind, Platform};
use pier_image::reference::Reference;
use pier_image::service::ImageService;
use tokio::sync::{mpsc, Semaphore};

use crate::client::{Access, Client, Repository};
use crate::error::{Error, Result};
use crate::pull::blocking;
use crate::transport::RequestBody;
use crate::{short_id, AuthConfig, LayerState, Progress, ProgressSink};

/// Layers uploaded at once (dockerd's `max-concurrent-uploads` default).
pub const CONCURRENT_UPLOADS: usize = 5;
/// Bytes per chunk read from the content store.
const CHUNK: usize = 256 * 1024;
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What to push.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// A tagged reference.
    pub reference: Reference,
    pub auth: AuthConfig,
}

/// The pushed manifest.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

/// What a push sends: the manifest's bytes and the blobs it references.
struct Plan {
    manifest_bytes: Bytes,
    media_type: String,
    /// The image's own target, when that is the manifest pushed.
    target: Option<Descriptor>,
    config: Descriptor,
    /// Layers with the diff ID Docker shows for them, bottom first.
    layers: Vec<(Descriptor, Digest)>,
    /// Other repositories of the same registry this image is known under.
    mount_from: Vec<String>,
}

/// Pushes `request.reference` from `images`. See the [module docs](self).
pub async fn push(
    client: &Client,
    images: Arc<ImageService>,
    request: &PushRequest,
    progress: &ProgressSink,
) -> Result<Pushed> {
    let reference = request.reference.clone();
    let tag = reference.tag().unwrap_or("latest").to_string();
    // First, as dockerd: even a missing image's error comes after this line.
    progress(Progress::Status {
        id: None,
        text: format!("The push refers to repository [{}]", reference.repository()),
    });
    let service = Arc::clone(&images);
    let lookup = reference.clone();
    let plan = blocking(move || plan(&service, &lookup)).await?;
    let repo = client
        .repository(
            reference.domain(),
            reference.path(),
            &request.auth,
            Access::Push,
            &plan.mount_from,
        )
        .await?;

    let content = images.content().clone();
    for (_, diff_id) in plan.layers.iter().rev() {
        progress(Progress::Layer {
            id: short_id(diff_id),
            state: LayerState::Preparing,
        });
    }
    let slots = Arc::new(Semaphore::new(CONCURRENT_UPLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    let mut done_digests = std::collections::HashSet::new();
    for (n, (layer, diff_id)) in plan.layers.iter().rev().enumerate() {
        if !done_digests.insert(layer.digest.clone()) {
            continue;
        }
        if n >= CONCURRENT_UPLOADS {
            progress(Progress::Layer {
                id: short_id(diff_id),
                state: LayerState::Waiting,
            });
        }
        let (repo, content, layer, id, progress, slots, mount_from) = (
            repo.clone(),
            content.clone(),
            layer.clone(),
            short_id(diff_id),
            Arc::clone(progress),
            Arc::clone(&slots),
            plan.mount_from.clone(),
        );
        tasks.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .map_err(|_| Error::Transport("upload slots closed".into()))?;
            let state =
                push_blob(&repo, &content, &layer, &mount_from, Some((&id, &progress))).await?;
            progress(Progress::Layer { id, state });
            Ok::<(), Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::Transport(format!("upload task failed: {e}")))??;
    }
    push_blob(&repo, &content, &plan.config, &[], None).await?;

    let size = plan.manifest_bytes.len() as u64;
    let digest = repo
        .put_manifest(&tag, &plan.media_type, plan.manifest_bytes.clone())
        .await?;
    if let Some(target) = plan.target.filter(|t| t.digest == digest) {
        let store = images.store().clone();
        let name = Reference::parse(&reference.repository())?.with_digest(digest.clone());
        blocking(move || store.tag(&name, &target).map(|_| ()).map_err(Error::from)).await?;
    }
    progress(Progress::Status {
        id: None,
        text: format!("{tag}: digest: {digest} size: {size}"),
    });
    progress(Progress::Pushed {
        tag: tag.clone(),
        digest: digest.to_string(),
        size,
    });
    Ok(Pushed { tag, digest, size })
}

/// Finds what to push for a local name.
fn plan(images: &ImageService, reference: &Reference) -> Result<Plan> {
    let store = images.store();
    let image = match store.get(reference) {
        Ok(image) => image,
        // dockerd's two messages: the repository has other tags, or none at all.
        Err(pier_image::Error::NotFound(_)) => {
            let repository = reference.repository();
            let known = store
                .list()?
                .iter()
                .any(|i| i.name.repository() == repository);
            return Err(Error::NotFound(if known {
                format!("tag does not exist: {}", reference.familiar())
            } else {
                format!(
                    "An image does not exist locally with the tag: {}",
                    Reference::parse(&repository)
                        .map_or_else(|_| reference.familiar(), |r| r.familiar())
                )
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let mut desc = image.target.clone();
    let mut own_target = Some(image.target.clone());
    let manifest = loop {
        match store.read_manifest(&desc)? {
            ManifestKind::Manifest(m) => break m,
            ManifestKind::Index(index) => {
                let child = select_platform(&index, &Platform::host()).ok_or_else(|| {
                    Error::NotFound(format!(
                        "image {} has no manifest for this platform",
                        reference.familiar()
                    ))
                })?;
                desc = child.plain();
                own_target = None;
            }
        }
    };
    let manifest_bytes = Bytes::from(store.content().read(&desc.digest)?);
    let config = ImageConfig::parse(&store.content().read(&manifest.config.digest)?)?;
    let diff_ids = &config.rootfs.diff_ids;
    let layers = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                l.clone(),
                diff_ids.get(i).cloned().unwrap_or(l.digest.clone()),
            )
        })
        .collect();
    let resolved = store.resolve(&image.target.digest.to_string())?;
    let mut mount_from: Vec<String> = resolved
        .names
        .iter()
        .filter(|n| n.domain() == reference.domain() && n.path() != reference.path())
        .map(|n| n.path().to_string())
        .collect();
    mount_from.dedup();
    Ok(Plan {
        manifest_bytes,
        media_type: desc.media_type.clone(),
        target: own_target,
        config: manifest.config.clone(),
        layers,
        mount_from,
    })
}

/// Makes sure the registry has one blob; returns how (for Docker's layer status).
async fn push_blob(
    repo: &Repository,
    content: &ContentStore,
    blob: &Descriptor,
    mount_from: &[String],
    progress: Option<(&str, &ProgressSink)>,
) -> Result<LayerState> {
    if repo.has_blob(&blob.digest).await? {
        return Ok(LayerState::LayerAlreadyExists);
    }
    for from in mount_from {
        if repo.mount(&blob.digest, from).await? {
            return Ok(LayerState::MountedFrom(from.clone()));
        }
    }
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let body = RequestBody::Channel { rx, len: blob.size };
    let file = content.open_verified(&blob.content())?;
    let reporter = progress.map(|(id, sink)| (id.to_string(), Arc::clone(sink)));
    let total = blob.size;
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = std::io::BufReader::with_capacity(CHUNK, file);
        let mut sent = 0u64;
        let mut last = Instant::now() - PROGRESS_INTERVAL;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            buf.truncate(n);
            sent += n as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
            if let Some((id, sink)) = &reporter {
                if last.elapsed() >= PROGRESS_INTERVAL || sent == total {
                    last = Instant::now();
                    sink(Progress::Layer {
                        id: id.clone(),
                        state: LayerState::Pushing {
                            current: sent,
                            total,
                        },
                    });
                }
            }
        }
    });
    let result = repo.upload(&blob.digest, body, blob.size).await;
    reader.abort();
    result.map(|()| LayerState::Pushed)
}
