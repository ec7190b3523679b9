//! OCI image layout export and import (the OCI half of `docker save` / `docker load`).
//!
//! A layout is a directory:
//!
//! ```text
//! oci-layout            {"imageLayoutVersion":"1.0.0"}
//! index.json            an OCI index; each entry is one image, named by annotations
//! blobs/<alg>/<hex>     every manifest, index, config and layer, by digest
//! ```
//!
//! Names are written as containerd, BuildKit and Docker 25+ write them:
//! `org.opencontainers.image.ref.name` holds the tag (what `skopeo … oci:<dir>:<tag>`
//! looks up) and `io.containerd.image.name` the full reference.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::store::write_atomic;
use super::{
    invalid_data, media_types, parse_manifest_or_index, Descriptor, ImageStore, Index, ManifestKind,
};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::reference::Reference;

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";
const BUF_SIZE: usize = 64 * 1024;
/// How long an import's lease protects its blobs if the process dies mid-import.
const IMPORT_LEASE_TTL: Duration = Duration::from_secs(60 * 60);

/// One image found in a layout's `index.json` by [`import_oci_layout`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    /// The name it was tagged as; `None` when the entry carries no full image name
    /// (only a bare tag, or nothing). Such images are kept as dangling images
    /// (Docker's `<none>:<none>`).
    pub name: Option<Reference>,
    /// The image's manifest or index.
    pub target: Descriptor,
}

/// Writes the images named by `refs` as an OCI image layout in `dir` (created if
/// missing; existing blobs there are reused after verification).
///
/// Every reachable blob present in the store is copied and re-hashed on the way.
/// Children of an index that are not in the store (platforms never pulled) are
/// skipped, as containerd does; a manifest's missing config or layer is an error,
/// except for non-distributable layers. `index.json` and `oci-layout` are written
/// last, atomically, so a failed export never looks like a complete layout.
///
/// # Errors
///
/// [`Error::NotFound`] (`No such image: …`) for an unknown name, or for a blob an
/// image needs that the store lacks; I/O and verification errors otherwise.
pub fn export_oci_layout(store: &ImageStore, refs: &[Reference], dir: &Path) -> Result<Index> {
    let blobs_dir = dir.join("blobs");
    create_dirs(&blobs_dir)?;
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for reference in refs {
        let image = store.get(reference)?;
        let content = store.content();
        store.walk(&image.target, &mut seen, &mut |desc| {
            if !content.exists(&desc.digest) {
                let is_doc = media_types::is_manifest(&desc.media_type)
                    || media_types::is_index(&desc.media_type);
                if desc.digest != image.target.digest
                    && (is_doc || media_types::is_non_distributable(&desc.media_type))
                {
                    return Ok(());
                }
                return Err(Error::NotFound(format!(
                    "blob {} ({}) of image {} not found",
                    desc.digest,
                    desc.media_type,
                    image.name.familiar()
                )));
            }
            let src = content.open_verified(&desc.content())?;
            copy_verified(src, desc, &blob_path(dir, &desc.digest))
        })?;
        let mut entry = image.target.clone();
        let mut annotations = BTreeMap::new();
        annotations.insert(
            media_types::ANNOTATION_CONTAINERD_IMAGE_NAME.to_string(),
            image.name.to_string(),
        );
        if let Some(tag) = image.name.tag() {
            annotations.insert(
                media_types::ANNOTATION_REF_NAME.to_string(),
                tag.to_string(),
            );
        }
        entry.annotations = Some(annotations);
        entries.push(entry);
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests: entries,
        subject: None,
        annotations: None,
        extra: BTreeMap::new(),
    };
    let index_bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::io("serialize index.json", io::Error::other(e)))?;
    write_atomic(&dir.join(INDEX_FILE), &index_bytes)?;
    write_atomic(
        &dir.join(LAYOUT_FILE),
        format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}").as_bytes(),
    )?;
    Ok(index)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

/// Imports every image of the OCI image layout in `dir` into `store`.
///
/// Each blob is streamed into the content store and verified against its descriptor
/// (size and digest) on the way in. Missing children of an index are tolerated
/// (partial multi-platform exports); a missing manifest, config or layer, or any
/// blob whose content does not match its digest, fails the import. Names are
/// recorded only after every blob is in, in one database write, so a failed import
/// adds no names. The blobs are held by a lease for the duration of the import.
///
/// Naming: `io.containerd.image.name` if present, else
/// `org.opencontainers.image.ref.name` when it is a full reference (contains `/` or
/// `:`); a bare tag gives no name ([`LoadedImage::name`] is `None`).
///
/// # Errors
///
/// [`Error::NotFound`] for a missing `oci-layout`, `index.json` or blob;
/// [`Error::Mismatch`] for a corrupt blob; invalid-data [`Error::Io`] for an
/// unsupported layout version or malformed documents.
pub fn import_oci_layout(store: &ImageStore, dir: &Path) -> Result<Vec<LoadedImage>> {
    let layout_bytes = read_file(&dir.join(LAYOUT_FILE))?;
    let layout: LayoutFile = serde_json::from_slice(&layout_bytes)
        .map_err(|e| invalid_data(format!("parse {}: {e}", dir.join(LAYOUT_FILE).display())))?;
    if !layout.image_layout_version.starts_with("1.") {
        return Err(invalid_data(format!(
            "unsupported OCI image layout version {:?}",
            layout.image_layout_version
        )));
    }
    let index_bytes = read_file(&dir.join(INDEX_FILE))?;
    let index = match parse_manifest_or_index(&index_bytes, Some(media_types::OCI_INDEX))? {
        ManifestKind::Index(i) => i,
        ManifestKind::Manifest(_) => {
            return Err(invalid_data("index.json is not an image index".to_string()))
        }
    };

    let content = store.content();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let lease = format!("import-oci-{}-{nanos}", std::process::id());
    content.create_lease_expiring(&lease, IMPORT_LEASE_TTL)?;
    let result = import_blobs(store, dir, &index, &lease);
    let result = result.and_then(|loaded| record_loaded(store, &loaded).map(|()| loaded));
    // Recorded images are now roots; the lease has done its job.
    let _ = content.delete_lease(&lease);
    result
}

/// Names the loaded images and records the nameless ones as dangling, in one
/// database write (a failed load names nothing).
pub(crate) fn record_loaded(store: &ImageStore, loaded: &[LoadedImage]) -> Result<()> {
    let named: Vec<(Reference, Descriptor)> = loaded
        .iter()
        .filter_map(|l| l.name.clone().map(|n| (n, l.target.clone())))
        .collect();
    let nameless: Vec<Descriptor> = loaded
        .iter()
        .filter(|l| l.name.is_none())
        .map(|l| l.target.clone())
        .collect();
    store.record(&named, &nameless).map(|_| ())
}

fn import_blobs(
    store: &ImageStore,
    dir: &Path,
    index: &Index,
    lease: &str,
) -> Result<Vec<LoadedImage>> {
    let content = store.content();
    let source = format!("OCI layout {}", dir.display());
    walk_index(store, index, &source, |desc| {
        let path = blob_path(dir, &desc.digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        let mut writer = content.writer(Some((&desc.digest, desc.size)))?;
        writer.set_lease(lease);
        copy_stream(file, &mut writer, &path, desc)?;
        writer.commit().map_err(|e| match e {
            Error::Mismatch {
                expected, actual, ..
            } => Error::Mismatch {
                what: format!("OCI layout {}: blob {}", dir.display(), desc.digest),
                expected,
                actual,
            },
            other => other,
        })?;
        Ok(true)
    })
}

/// Walks every `index.json` entry down to configs and layers (each blob once), asking
/// `ingest` to bring each one into the content store: `Ok(false)` means it is missing,
/// which is fine for optional index children and non-distributable layers only.
/// Returns the entries with the names their annotations carry. Shared by the OCI
/// layout importer and the archive loader, which differ only in where blobs come from.
pub(crate) fn walk_index(
    store: &ImageStore,
    index: &Index,
    source: &str,
    mut ingest: impl FnMut(&Descriptor) -> Result<bool>,
) -> Result<Vec<LoadedImage>> {
    let mut seen = HashSet::new();
    let mut loaded = Vec::new();
    for entry in &index.manifests {
        if !media_types::is_manifest(&entry.media_type) && !media_types::is_index(&entry.media_type)
        {
            return Err(invalid_data(format!(
                "{source}: index.json entry {} has media type {:?}, not a manifest or index",
                entry.digest, entry.media_type
            )));
        }
        let mut stack = vec![(entry.plain(), false)];
        while let Some((desc, optional)) = stack.pop() {
            if !seen.insert(desc.digest.clone()) {
                continue;
            }
            if !ingest(&desc)? {
                if optional || media_types::is_non_distributable(&desc.media_type) {
                    continue;
                }
                return Err(Error::NotFound(format!(
                    "{source}: blob {} ({}) is missing",
                    desc.digest, desc.media_type
                )));
            }
            if media_types::is_manifest(&desc.media_type) || media_types::is_index(&desc.media_type)
            {
                match store.read_manifest(&desc)? {
                    ManifestKind::Manifest(m) => {
                        stack.push((m.config, false));
                        stack.extend(m.layers.into_iter().map(|l| (l, false)));
                    }
                    ManifestKind::Index(i) => {
                        stack.extend(i.manifests.into_iter().map(|d| (d, true)));
                    }
                }
            }
        }
        loaded.push(LoadedImage {
            name: entry_name(entry)?,
            target: entry.plain(),
        });
    }
    Ok(loaded)
}

/// The full image name an `index.json` entry carries, if any.
pub(crate) fn entry_name(entry: &Descriptor) -> Result<Option<Reference>> {
    let name = match entry.annotation(media_types::ANNOTATION_CONTAINERD_IMAGE_NAME) {
        Some(n) => n,
        None => match entry.annotation(media_types::ANNOTATION_REF_NAME) {
            Some(n) if n.contains('/') || n.contains(':') => n,
            _ => return Ok(None),
        },
    };
    Reference::parse_with_default_tag(name).map(Some)
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    // The hex is validated by `Digest`, so it is a safe file name.
    dir.join("blobs")
        .join(digest.algorithm().name())
        .join(digest.hex())
}

fn create_dirs(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound(format!("{} not found", path.display())),
        _ => Error::io(format!("read {}", path.display()), e),
    })
}

/// Copies `src` to `dest` (via a temp file and rename), hashing on the way; fails
/// without leaving `dest` behind if the bytes do not match `desc`. An existing
/// `dest` that verifies is kept.
fn copy_verified(src: File, desc: &Descriptor, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        create_dirs(parent)?;
    }
    if let Ok(existing) = File::open(dest) {
        if hash_file(existing, desc.digest.algorithm(), dest)
            .is_ok_and(|(d, n)| d == desc.digest && n == desc.size)
        {
            return Ok(());
        }
    }
    let temp = dest.with_extension("tmp");
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp)
            .map_err(|e| Error::io(format!("create {}", temp.display()), e))?;
        let mut hasher = Hasher::new(desc.digest.algorithm());
        let mut size = 0u64;
        let mut src = src;
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("read blob {}", desc.digest), e)),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(format!("write {}", temp.display()), e))?;
        }
        let digest = hasher.finish();
        if digest != desc.digest || size != desc.size {
            return Err(Error::Mismatch {
                what: format!("blob {}", desc.digest),
                expected: format!("digest {} size {}", desc.digest, desc.size),
                actual: format!("digest {digest} size {size}"),
            });
        }
        out.sync_all()
            .map_err(|e| Error::io(format!("sync {}", temp.display()), e))?;
        fs::rename(&temp, dest).map_err(|e| {
            Error::io(
                format!("rename {} to {}", temp.display(), dest.display()),
                e,
            )
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn hash_file(mut file: File, alg: crate::digest::Algorithm, path: &Path) -> Result<(Digest, u64)> {
    let mut hasher = Hasher::new(alg);
    let mut size = 0u64;
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finish(), size))
}

fn copy_stream(mut src: File, dst: &mut impl Write, path: &Path, desc: &Descriptor) -> Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        total += n as u64;
        if total > desc.size {
            return Err(Error::Mismatch {
                what: format!("blob {} at {}", desc.digest, path.display()),
                expected: format!("size {}", desc.size),
                actual: format!("more than {}", desc.size),
            });
        }
        dst.write_all(&buf[..n])
            .map_err(|e| Error::io(format!("copy {} into the content store", path.display()), e))?;
    }
}
