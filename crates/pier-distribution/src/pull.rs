//! Pulling an image into pier-image's stores.
//!
//! 1. Resolve the reference to a manifest (or an index, then the wanted platform's
//!    manifest), verifying each document's digest.
//! 2. Lease every digest the image needs, so a concurrent GC keeps what is written.
//! 3. Fetch the config, then the missing layers, [`CONCURRENT_DOWNLOADS`] at a time.
//!    Each layer streams into a content-store writer on a blocking thread, which
//!    hashes as it writes and commits only if size and digest match: nothing
//!    unverified ever becomes visible. A broken transfer is resumed with a `Range`
//!    request from the last byte received.
//! 4. Store the manifest(s), unpack the layers into snapshots, and record the name
//!    (and `repo@digest`, Docker's `RepoDigests`); then drop the lease.
//!
//! A failure anywhere removes partial downloads and the lease: nothing is left
//! visible, and blobs already committed are collected by the next GC.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use pier_image::content::ContentStore;
use pier_image::digest::Digest;
use pier_image::image::{
    media_types, parse_manifest_or_index, select_platform, Descriptor, ImageConfig, Manifest,
    ManifestKind, Platform,
};
use pier_image::reference::Reference;
use pier_image::service::ImageService;
use tokio::sync::{mpsc, Semaphore};

use crate::client::{Access, Client, FetchedManifest, Repository};
use crate::error::{Error, Result};
use crate::{short_id, AuthConfig, LayerState, Progress, ProgressSink};

/// Layers downloaded at once (dockerd's `max-concurrent-downloads` default).
pub const CONCURRENT_DOWNLOADS: usize = 3;
/// Attempts per blob before a broken transfer fails the pull.
const ATTEMPTS: u32 = 5;
/// How often a layer's byte count is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Chunks in flight between the network and a layer's writer.
const WRITE_QUEUE: usize = 32;
/// How long a pull's lease protects its blobs if pierd dies mid-pull.
const LEASE_TTL: Duration = Duration::from_secs(24 * 3600);

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// A tagged or digested reference.
    pub reference: Reference,
    pub auth: AuthConfig,
    /// The platform wanted from an index; the host's when `None`.
    pub platform: Option<Platform>,
}

/// A pulled image.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The manifest or index recorded for the name.
    pub target: Descriptor,
    /// The digest the registry knows the image by (Docker's `Digest:` line).
    pub digest: Digest,
    /// The image ID (config digest).
    pub id: Digest,
    /// Whether the name moved (Docker's `Downloaded newer image` vs `up to date`).
    pub updated: bool,
}

/// Pulls `request.reference` into `images`. See the [module docs](self).
pub async fn pull(
    client: &Client,
    images: Arc<ImageService>,
    request: &PullRequest,
    progress: &ProgressSink,
) -> Result<Pulled> {
    let reference = &request.reference;
    let repo = client
        .repository(
            reference.domain(),
            reference.path(),
            &request.auth,
            Access::Pull,
            &[],
        )
        .await?;
    let top = repo.manifest(reference).await?;
    let id = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    progress(Progress::Status {
        id: Some(id),
        text: format!("Pulling from {}", reference.path()),
    });

    let wanted = request.platform.clone().unwrap_or_else(Platform::host);
    let (index, manifest_doc) = match parse_manifest_or_index(&top.bytes, Some(&top.media_type))? {
        ManifestKind::Manifest(m) => (None, (top.clone(), m)),
        ManifestKind::Index(index) => {
            let child = select_platform(&index, &wanted).ok_or_else(|| {
                Error::NotFound(format!(
                    "no matching manifest for {} in the manifest list entries",
                    wanted.to_short_string()
                ))
            })?;
            let child_ref = reference.with_digest(child.digest.clone());
            let fetched = repo.manifest(&child_ref).await?;
            match parse_manifest_or_index(&fetched.bytes, Some(&fetched.media_type))? {
                ManifestKind::Manifest(m) => (Some(top.clone()), (fetched, m)),
                ManifestKind::Index(_) => {
                    return Err(Error::Unsupported(format!(
                        "nested image indexes are not supported: {}",
                        reference.familiar()
                    )))
                }
            }
        }
    };
    let (fetched, manifest) = manifest_doc;
    check_layers(&manifest)?;

    let content = images.content().clone();
    let lease = LeaseGuard::create(&content, &manifest, &fetched, index.as_ref()).await?;

    // The config first: small, and needed to unpack.
    if !content.exists(&manifest.config.digest) {
        let bytes = repo
            .blob_bytes(&manifest.config.digest, manifest.config.size)
            .await?;
        let store = content.clone();
        let digest = manifest.config.digest.clone();
        blocking(move || Ok(store.put(&bytes, Some(&digest)).map(|_| ())?)).await?;
    }

    let new_layers = download_layers(&repo, &content, &manifest, progress).await?;

    // Store the documents, unpack, name.
    let service = Arc::clone(&images);
    let reference = reference.clone();
    let sink = Arc::clone(progress);
    let host_platform = wanted == Platform::host().normalize() || request.platform.is_none();
    let pulled = blocking(move || {
        let store = service.store();
        let (manifest_desc, _) = store.put_manifest(&fetched.bytes, Some(&fetched.media_type))?;
        // An index is recorded only for the host's platform: the image store resolves
        // indexes to the host's manifest.
        let (target, digest) = match index.filter(|_| host_platform) {
            Some(index) => (
                store.put_manifest(&index.bytes, Some(&index.media_type))?.0,
                index.digest.clone(),
            ),
            None => (manifest_desc.clone(), manifest_desc.digest.clone()),
        };
        for (layer, _) in &new_layers {
            sink(Progress::Layer {
                id: short_id(&layer.digest),
                state: LayerState::Extracting {
                    current: layer.size,
                    total: layer.size,
                },
            });
        }
        service.unpack(&target)?;
        for (layer, _) in &new_layers {
            sink(Progress::Layer {
                id: short_id(&layer.digest),
                state: LayerState::PullComplete,
            });
        }
        let previous = store.get(&reference).ok().map(|i| i.target.digest);
        let repository = Reference::parse(&reference.repository())?;
        let mut names = vec![(repository.with_digest(digest.clone()), target.clone())];
        if reference.digest().is_none() {
            names.push((reference.clone(), target.clone()));
        }
        store.tag_all(&names)?;
        let updated = previous.as_ref() != Some(&target.digest);
        Ok(Pulled {
            id: manifest.config.digest.clone(),
            target,
            digest,
            updated,
        })
    })
    .await;
    lease.release().await;
    pulled
}

/// Refuses layers this client cannot fetch (foreign layers, unknown types).
fn check_layers(manifest: &Manifest) -> Result<()> {
    if !media_types::is_config(&manifest.config.media_type) {
        return Err(Error::Unsupported(format!(
            "unsupported image config media type {:?}: not an image",
            manifest.config.media_type
        )));
    }
    for layer in &manifest.layers {
        if !media_types::is_layer(&layer.media_type) {
            return Err(Error::Unsupported(format!(
                "unsupported layer media type {:?}",
                layer.media_type
            )));
        }
        if media_types::is_non_distributable(&layer.media_type) {
            return Err(Error::Unsupported(format!(
                "foreign layer {} is not supported",
                layer.digest
            )));
        }
    }
    Ok(())
}

/// Downloads every layer not in the store; returns the downloaded ones with their
/// index in the manifest.
async fn download_layers(
    repo: &Repository,
    content: &ContentStore,
    manifest: &Manifest,
    progress: &ProgressSink,
) -> Result<Vec<(Descriptor, usize)>> {
    let mut missing = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let id = short_id(&layer.digest);
        if content.exists(&layer.digest) || !seen.insert(layer.digest.clone()) {
            progress(Progress::Layer {
                id,
                state: LayerState::AlreadyExists,
            });
        } else {
            progress(Progress::Layer {
                id,
                state: LayerState::PullingFsLayer,
            });
            missing.push((layer.clone(), i));
        }
    }
    let slots = Arc::new(Semaphore::new(CONCURRENT_DOWNLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, (layer, _)) in missing.iter().enumerate() {
        if n >= CONCURRENT_DOWNLOADS {
            progress(Progress::Layer {
                id: short_id(&layer.digest),
                state: LayerState::Waiting,
            });
        }
        let (repo, content, layer, progress, slots) = (
            repo.clone(),
            content.clone(),
            layer.clone(),
            Arc::clone(progress),
            Arc::clone(&slots),
        );
        tasks.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .map_err(|_| Error::Transport("download slots closed".into()))?;
            download_layer(&repo, &content, &layer, &progress).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        // The first failure ends the pull; dropping the set aborts the others.
        done.map_err(|e| Error::Transport(format!("download task failed: {e}")))??;
    }
    Ok(missing)
}

/// What the network side tells a layer's writer.
enum WriteMsg {
    Data(Bytes),
    /// The registry ignored a `Range`: start over.
    Restart,
    Commit,
}

/// Downloads one layer into the content store, verified, resuming broken transfers.
async fn download_layer(
    repo: &Repository,
    content: &ContentStore,
    layer: &Descriptor,
    progress: &ProgressSink,
) -> Result<()> {
    let id = short_id(&layer.digest);
    let (tx, mut rx) = mpsc::channel::<WriteMsg>(WRITE_QUEUE);
    let store = content.clone();
    let (digest, size) = (layer.digest.clone(), layer.size);
    let writer_task = tokio::task::spawn_blocking(move || -> Result<bool> {
        let mut writer = store.writer(Some((&digest, size)))?;
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                WriteMsg::Data(bytes) => writer
                    .write_all(&bytes)
                    .map_err(|e| pier_image::Error::io(format!("write layer {digest}"), e))?,
                WriteMsg::Restart => {
                    writer = store.writer(Some((&digest, size)))?;
                }
                WriteMsg::Commit => {
                    writer.commit().map_err(|e| match e {
                        pier_image::Error::Mismatch { .. } => Error::InvalidContent(format!(
                            "filesystem layer verification failed for digest {digest}"
                        )),
                        e => e.into(),
                    })?;
                    return Ok(true);
                }
            }
        }
        // The sender went away: the download failed; the writer's temp file goes.
        Ok(false)
    });

    let result = fetch_into(repo, layer, &id, &tx, progress).await;
    match result {
        Ok(()) => {
            progress(Progress::Layer {
                id: id.clone(),
                state: LayerState::VerifyingChecksum,
            });
            let _ = tx.send(WriteMsg::Commit).await;
            drop(tx);
            let committed = writer_task
                .await
                .map_err(|e| Error::Transport(format!("layer writer failed: {e}")))??;
            if !committed {
                return Err(Error::Transport(format!(
                    "layer {} not written",
                    layer.digest
                )));
            }
            progress(Progress::Layer {
                id,
                state: LayerState::DownloadComplete,
            });
            Ok(())
        }
        Err(e) => {
            drop(tx);
            // A writer error (disk full, overflow) explains more than the send failure.
            match writer_task.await {
                Ok(Err(writer_error)) => Err(writer_error),
                _ => Err(e),
            }
        }
    }
}

/// Streams a blob into `tx`, retrying with `Range` from the last byte received.
async fn fetch_into(
    repo: &Repository,
    layer: &Descriptor,
    id: &str,
    tx: &mpsc::Sender<WriteMsg>,
    progress: &ProgressSink,
) -> Result<()> {
    let mut received: u64 = 0;
    let mut last_report = Instant::now() - PROGRESS_INTERVAL;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome: Result<()> = async {
            let response = repo.blob(&layer.digest, received).await?;
            if received > 0 && response.status() != StatusCode::PARTIAL_CONTENT {
                received = 0;
                tx.send(WriteMsg::Restart).await.map_err(writer_gone)?;
            }
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    Error::Transport(format!("reading layer {}: {e}", layer.digest))
                })?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                tx.send(WriteMsg::Data(data)).await.map_err(writer_gone)?;
                if last_report.elapsed() >= PROGRESS_INTERVAL {
                    last_report = Instant::now();
                    progress(Progress::Layer {
                        id: id.to_string(),
                        state: LayerState::Downloading {
                            current: received,
                            total: layer.size,
                        },
                    });
                }
            }
            if received < layer.size {
                return Err(Error::Transport(format!(
                    "layer {}: connection closed after {received} of {} bytes",
                    layer.digest, layer.size
                )));
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(Error::Transport(message)) if attempt < ATTEMPTS && !tx.is_closed() => {
                let _ = message;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn writer_gone<T>(_: mpsc::error::SendError<T>) -> Error {
    Error::Transport("layer writer stopped".into())
}

/// The pull's lease on its blobs; deleted when the pull ends, whichever way.
struct LeaseGuard {
    content: ContentStore,
    name: Option<String>,
}

impl LeaseGuard {
    async fn create(
        content: &ContentStore,
        manifest: &Manifest,
        fetched: &FetchedManifest,
        index: Option<&FetchedManifest>,
    ) -> Result<LeaseGuard> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("pull-{}-{nanos}", std::process::id());
        let mut digests = vec![fetched.digest.clone(), manifest.config.digest.clone()];
        digests.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        if let Some(index) = index {
            digests.push(index.digest.clone());
        }
        let store = content.clone();
        let lease_name = name.clone();
        blocking(move || {
            store.create_lease_expiring(&lease_name, LEASE_TTL)?;
            for d in &digests {
                store.add_to_lease(&lease_name, d)?;
            }
            Ok(())
        })
        .await?;
        Ok(LeaseGuard {
            content: content.clone(),
            name: Some(name),
        })
    }

    async fn release(mut self) {
        if let Some(name) = self.name.take() {
            let store = self.content.clone();
            let _ = tokio::task::spawn_blocking(move || store.delete_lease(&name)).await;
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        // A pull that failed or was cancelled: the lease goes (a small file removal).
        if let Some(name) = self.name.take() {
            let _ = self.content.delete_lease(&name);
        }
    }
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Transport(format!("internal error: {e}")))?
}

/// Reads a config from the registry (for `GET /distribution/{name}/json`).
pub(crate) fn platform_of(config: &[u8]) -> Result<Platform> {
    Ok(ImageConfig::parse(config)?.platform())
}

/// `GET /distribution/{name}/json`: the registry's descriptor for a name and the
/// platforms it offers.
#[derive(Debug, Clone)]
pub struct DistributionInfo {
    pub descriptor: Descriptor,
    pub platforms: Vec<Platform>,
}

/// Resolves a name on its registry without pulling anything.
pub async fn inspect(
    client: &Client,
    reference: &Reference,
    auth: &AuthConfig,
) -> Result<DistributionInfo> {
    let repo = client
        .repository(
            reference.domain(),
            reference.path(),
            auth,
            Access::Pull,
            &[],
        )
        .await?;
    let top = repo.manifest(reference).await?;
    let parsed = parse_manifest_or_index(&top.bytes, Some(&top.media_type))?;
    let descriptor = Descriptor::new(
        parsed.media_type().to_string(),
        top.digest.clone(),
        top.bytes.len() as u64,
    );
    let platforms = match parsed {
        ManifestKind::Index(index) => index
            .manifests
            .iter()
            .filter_map(|m| m.platform.clone())
            .collect(),
        ManifestKind::Manifest(m) => {
            let bytes = repo.blob_bytes(&m.config.digest, m.config.size).await?;
            vec![platform_of(&bytes)?]
        }
    };
    Ok(DistributionInfo {
        descriptor,
        platforms,
    })
}
