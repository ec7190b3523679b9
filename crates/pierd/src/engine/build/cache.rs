//! The build cache: which image a step made, keyed by what the step depends on.
//!
//! A key is the SHA-256 of the parent image's ID, the instruction with its arguments
//! expanded, the run environment and, for `COPY`/`ADD`, a hash of the files copied
//! (names, contents, modes and owners; not times, as BuildKit). The record under
//! `<data-root>/builder/cache/<key>` names the step image's manifest, and a content
//! lease of the same name holds its blobs, so the cache survives restarts, `kill -9`
//! included (records are written to a temporary file and renamed), and image GC.
//! `builder prune` drops records and leases.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pier_image::digest::{Algorithm, Hasher};
use pier_image::image::Descriptor;
use pier_image::service::build_step::StepImage;
use pier_image::service::ImageService;
use serde::{Deserialize, Serialize};

/// One record: the step image's manifest, and when the record was written.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    target: Descriptor,
    /// Seconds since the epoch.
    created: i64,
    /// The step, for `--explain` and `system df -v`.
    description: String,
}

/// A cache entry as `system df` and `builder prune` see it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub created: i64,
    pub description: String,
    pub target: Descriptor,
}

/// The cache under one data root.
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
}

/// The lease that holds a cache entry's blobs.
pub fn lease_name(key: &str) -> String {
    format!("build-cache-{key}")
}

/// The key of a step: the SHA-256 of its parts, each length-prefixed.
pub fn key(parts: &[&str]) -> String {
    let mut h = Hasher::new(Algorithm::Sha256);
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finish().hex().to_string()
}

impl BuildCache {
    pub fn open(data_root: &Path) -> BuildCache {
        BuildCache {
            dir: data_root.join("builder").join("cache"),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The step image recorded under `key`, if its blobs are all still there.
    pub fn lookup(&self, images: &ImageService, key: &str) -> Option<StepImage> {
        let bytes = fs::read(self.path(key)).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        let image = images.step_image_at(&record.target).ok()?;
        let content = images.content();
        image
            .layers
            .iter()
            .all(|l| content.exists(&l.digest))
            .then_some(image)
    }

    /// Records `image` under `key` (its blobs are already under the key's lease).
    pub fn store(&self, key: &str, image: &StepImage, description: &str) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let record = Record {
            target: image.target.clone(),
            created: now(),
            description: description.to_string(),
        };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.path(key)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let key = e.file_name().to_string_lossy().into_owned();
            if key.starts_with('.') {
                continue;
            }
            let Ok(bytes) = fs::read(e.path()) else {
                continue;
            };
            if let Ok(r) = serde_json::from_slice::<Record>(&bytes) {
                out.push(Entry {
                    key,
                    created: r.created,
                    description: r.description,
                    target: r.target,
                });
            }
        }
        out
    }

    /// Drops an entry: its record, then its lease (the blobs go at the next GC unless
    /// an image holds them).
    pub fn remove(&self, images: &ImageService, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = images.content().delete_lease(&lease_name(key));
        Ok(())
    }

    /// The entries as `system df` shows them, with the size of the layer each step
    /// added (0 for a config-only step), and the `RUN --mount=type=cache` directories.
    pub fn usage(&self, images: &ImageService, data_root: &Path) -> Vec<Usage> {
        let mut out = Vec::new();
        for e in self.entries() {
            let size = images
                .step_image_at(&e.target)
                .ok()
                .filter(|i| {
                    i.config
                        .history
                        .last()
                        .is_some_and(|h| h.empty_layer != Some(true))
                })
                .and_then(|i| i.layers.last().map(|l| l.size))
                .unwrap_or(0);
            out.push(Usage {
                id: e.key,
                kind: "regular",
                description: e.description,
                size,
                created: e.created,
            });
        }
        let mounts = data_root.join("builder").join("cache-mounts");
        for d in fs::read_dir(&mounts).into_iter().flatten().flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let created = d
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |t| t.as_secs() as i64);
            out.push(Usage {
                id: name,
                kind: "exec.cachemount",
                description: "cached mount (RUN --mount=type=cache)".into(),
                size: dir_size(&d.path()),
                created,
            });
        }
        out
    }

    /// `builder prune`: every entry (and cache mount) created before `until`, or all.
    /// The IDs removed; the caller collects the garbage.
    pub fn prune(
        &self,
        images: &ImageService,
        data_root: &Path,
        until: Option<i64>,
    ) -> io::Result<Vec<String>> {
        let mut removed = Vec::new();
        for u in self.usage(images, data_root) {
            if until.is_some_and(|t| u.created >= t) {
                continue;
            }
            if u.kind == "exec.cachemount" {
                fs::remove_dir_all(data_root.join("builder").join("cache-mounts").join(&u.id))?;
            } else {
                self.remove(images, &u.id)?;
            }
            removed.push(u.id);
        }
        Ok(removed)
    }
}

/// A build cache entry for `system df` and `builder prune`.
#[derive(Debug, Clone)]
pub struct Usage {
    pub id: String,
    /// BuildKit's record types: `regular` (a step) or `exec.cachemount`.
    pub kind: &'static str,
    pub description: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub created: i64,
}

/// The bytes of the regular files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += dir_size(&e.path()),
            Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
            _ => {}
        }
    }
    total
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a `COPY --from` of a stage or image reads, remembered by the source image's
/// ID and the copy (an image's files never change): the kind (`file`, `dir`,
/// `multi`) and hash of its history text, so that a cached step mounts no source.
/// Kept under `<data-root>/builder/source-hashes/<key>` as `kind:hash`; a missing or
/// unreadable record is computed again.
#[derive(Debug, Clone)]
pub struct SourceHashes {
    dir: PathBuf,
}

impl SourceHashes {
    pub fn open(data_root: &Path) -> SourceHashes {
        SourceHashes {
            dir: data_root.join("builder").join("source-hashes"),
        }
    }

    /// The (kind, hash) remembered under `key`.
    pub fn get(&self, key: &str) -> Option<(String, String)> {
        let text = fs::read_to_string(self.dir.join(key)).ok()?;
        let (kind, hash) = text.split_once(':')?;
        Some((kind.to_string(), hash.to_string()))
    }

    /// Remembers (kind, hash) under `key`; a failure only costs a later recomputation.
    pub fn put(&self, key: &str, kind: &str, hash: &str) {
        let write = || -> io::Result<()> {
            fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(format!("{kind}:{hash}").as_bytes())?;
            tmp.persist(self.dir.join(key)).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }
}
