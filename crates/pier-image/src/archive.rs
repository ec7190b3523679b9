//! Docker image archives: what `docker save` writes and `docker load` reads.
//!
//! [`save_docker_archive`] writes one tar that both old (≤24) and new (≥25) Docker
//! load:
//!
//! ```text
//! blobs/sha256/<hex>   configs, manifests and UNCOMPRESSED layer tars (hex = diffID)
//! manifest.json        [{"Config":"blobs/sha256/<hex>","RepoTags":["busybox:latest"],
//!                        "Layers":["blobs/sha256/<diffID hex>", …]}]
//! repositories         legacy {"busybox":{"latest":"<top layer hex>"}}
//! index.json           OCI index, entries named as containerd / Docker 25 name them
//! oci-layout           {"imageLayoutVersion":"1.0.0"}
//! ```
//!
//! [`load_archive`] reads three kinds of tar: old `docker save` output (only
//! `manifest.json`, with `<id>/layer.tar` and `<hex>.json`), Docker ≥25 output
//! (`manifest.json` plus an OCI layout) and plain OCI layout tars (skopeo's
//! `oci-archive:`). Entries come in any order, so every file is streamed into the
//! content store as it is read (hashed on the way, under a lease) and the images are
//! assembled from the metadata at the end; names are recorded last, all at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::content::{self, ContentStore};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::{
    invalid_data, media_types, parse_manifest_or_index, select_platform, walk_index, Compression,
    Descriptor, ImageConfig, ImageStore, Index, LoadedImage, Manifest, ManifestKind, Platform,
};
use crate::reference::Reference;

const MANIFEST_FILE: &str = "manifest.json";
const REPOSITORIES_FILE: &str = "repositories";
const INDEX_FILE: &str = "index.json";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_VERSION: &str = "1.0.0";
/// Largest metadata file (`manifest.json`, `index.json`, …) read into memory.
const MAX_METADATA_SIZE: u64 = 32 << 20;
/// How long a load's lease protects its blobs if the process dies mid-load.
const LOAD_LEASE_TTL: Duration = Duration::from_secs(60 * 60);
const BUF_SIZE: usize = 64 * 1024;

/// One entry of `manifest.json`, field names as Docker writes them.
#[derive(Debug, Serialize, Deserialize)]
struct ArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

// ---------------------------------------------------------------------------
// Save.

/// One layer as it goes into the archive.
struct SaveLayer {
    source: Descriptor,
    compression: Compression,
    diff_id: Digest,
    /// Uncompressed size.
    size: u64,
}

/// One image (manifest) of the archive, with every name it is saved under.
struct SaveImage {
    /// The stored manifest the image was prepared from.
    source: Digest,
    /// The manifest written to the OCI layout (rewritten if layers were compressed).
    manifest: Descriptor,
    manifest_bytes: Vec<u8>,
    config: Descriptor,
    layers: Vec<SaveLayer>,
    names: Vec<Reference>,
}

/// Writes the images named by `refs` as a `docker save` archive to `out`.
///
/// Single platform: for an index, the host platform's manifest is saved (chosen as
/// [`select_platform`] does). Layers are stored uncompressed (Docker's archive
/// format: a layer file's sha256 is its diffID); gzip and zstd layers are
/// decompressed on the fly, twice (once to learn the size the tar header needs and
/// to check the diffID, once to write), so no layer is held in memory or spooled.
/// When a layer had to be decompressed, the OCI layout gets a new manifest that
/// references the uncompressed layers (as Docker does); otherwise the stored
/// manifest is written as is. The image ID (config digest) never changes.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown name or a missing blob (also: no manifest
/// for the host platform); [`Error::Mismatch`] when a layer does not match its
/// diffID; I/O errors of the store or of `out`. On error, `out` holds a partial
/// archive that must be discarded.
pub fn save_docker_archive(store: &ImageStore, refs: &[Reference], out: impl Write) -> Result<()> {
    let mut targets = Vec::with_capacity(refs.len());
    for reference in refs {
        let image = store.get(reference)?;
        targets.push((Some(image.name), image.target));
    }
    save_targets(store, &targets, out)
}

/// [`save_docker_archive`] of images given as targets, each with the name to record
/// in the archive, or none (`docker save <image ID>` writes no `RepoTags`).
pub fn save_targets(
    store: &ImageStore,
    targets: &[(Option<Reference>, Descriptor)],
    out: impl Write,
) -> Result<()> {
    let mut images: Vec<SaveImage> = Vec::new();
    for (name, target) in targets {
        let shown = name
            .as_ref()
            .map_or_else(|| target.digest.to_string(), Reference::familiar);
        let manifest = platform_manifest(store, target, &shown)?;
        if let Some(existing) = images.iter_mut().find(|i| {
            i.source == manifest.digest || name.as_ref().is_some_and(|n| i.names.contains(n))
        }) {
            if let Some(name) = name {
                if !existing.names.contains(name) {
                    existing.names.push(name.clone());
                }
            }
            continue;
        }
        let mut prepared = prepare_image(store, &manifest)?;
        prepared.names.extend(name.clone());
        images.push(prepared);
    }

    let content = store.content();
    let mut tar = tar::Builder::new(out);
    let mut written: HashSet<Digest> = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut index_entries = Vec::new();
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

    for image in &images {
        if written.insert(image.config.digest.clone()) {
            let bytes = content.read(&image.config.digest)?;
            append_blob(&mut tar, &mut dirs, &image.config.digest, &bytes)?;
        }
        for layer in &image.layers {
            if !written.insert(layer.diff_id.clone()) {
                continue;
            }
            let path = blob_path(&layer.diff_id);
            ensure_dirs(&mut tar, &mut dirs, &path)?;
            let reader = open_layer(content, &layer.source, layer.compression)?;
            let mut checked = Checked::new(reader, layer.size);
            let mut header = file_header(layer.size);
            tar.append_data(&mut header, &path, &mut checked)
                .map_err(|e| Error::io(format!("write {path} to the archive"), e))?;
            let digest = checked.finish();
            if digest != layer.diff_id {
                return Err(Error::Mismatch {
                    what: format!("layer {} (uncompressed)", layer.source.digest),
                    expected: layer.diff_id.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        if written.insert(image.manifest.digest.clone()) {
            append_blob(
                &mut tar,
                &mut dirs,
                &image.manifest.digest,
                &image.manifest_bytes,
            )?;
        }

        let mut repo_tags = Vec::new();
        for name in &image.names {
            let mut entry = image.manifest.clone();
            // A digest name of another document (an index, or the manifest before
            // its layers were decompressed) would not match what the archive holds.
            if name.digest().is_some_and(|d| d != &image.manifest.digest) {
                if !index_entries
                    .iter()
                    .any(|e: &Descriptor| e.digest == entry.digest)
                {
                    index_entries.push(entry);
                }
                continue;
            }
            let mut annotations = BTreeMap::new();
            annotations.insert(
                media_types::ANNOTATION_CONTAINERD_IMAGE_NAME.to_string(),
                name.to_string(),
            );
            if let Some(tag) = name.tag() {
                annotations.insert(
                    media_types::ANNOTATION_REF_NAME.to_string(),
                    tag.to_string(),
                );
                let familiar = name.familiar();
                if let (Some(top), Some(repo)) = (
                    image.layers.last(),
                    familiar.strip_suffix(&format!(":{tag}")),
                ) {
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string(), top.diff_id.hex().to_string());
                }
                repo_tags.push(familiar);
            }
            entry.annotations = Some(annotations);
            index_entries.push(entry);
        }
        manifest_json.push(ArchiveEntry {
            config: blob_path(&image.config.digest),
            repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
            layers: image.layers.iter().map(|l| blob_path(&l.diff_id)).collect(),
        });
    }

    let index = Index {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests: index_entries,
        subject: None,
        annotations: None,
        extra: BTreeMap::new(),
    };
    append_file(&mut tar, INDEX_FILE, &to_json(&index, INDEX_FILE)?)?;
    append_file(
        &mut tar,
        MANIFEST_FILE,
        &to_json(&manifest_json, MANIFEST_FILE)?,
    )?;
    if !repositories.is_empty() {
        append_file(
            &mut tar,
            REPOSITORIES_FILE,
            &to_json(&repositories, REPOSITORIES_FILE)?,
        )?;
    }
    append_file(
        &mut tar,
        LAYOUT_FILE,
        format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}").as_bytes(),
    )?;
    let mut out = tar
        .into_inner()
        .map_err(|e| Error::io("finish the archive", e))?;
    out.flush().map_err(|e| Error::io("flush the archive", e))
}

/// The manifest to save for `target`: itself, or for an index the host platform's.
fn platform_manifest(store: &ImageStore, target: &Descriptor, name: &str) -> Result<Descriptor> {
    let mut desc = target.clone();
    for _ in 0..8 {
        if media_types::is_manifest(&desc.media_type) {
            return Ok(desc.plain());
        }
        let index = match store.read_manifest(&desc)? {
            ManifestKind::Manifest(_) => return Ok(desc.plain()),
            ManifestKind::Index(i) => i,
        };
        let host = Platform::host();
        let child = select_platform(&index, &host).ok_or_else(|| {
            Error::NotFound(format!(
                "image {} has no manifest for platform {}",
                name,
                host.to_short_string()
            ))
        })?;
        if !store.content().exists(&child.digest) {
            return Err(Error::NotFound(format!(
                "image {}: manifest {} for platform {} is not in the store",
                name,
                child.digest,
                host.to_short_string()
            )));
        }
        desc = child.plain();
    }
    Err(invalid_data(format!(
        "image {}: indexes nested too deeply",
        name
    )))
}

/// Reads a manifest and its config and measures its layers.
fn prepare_image(store: &ImageStore, manifest_desc: &Descriptor) -> Result<SaveImage> {
    let content = store.content();
    let manifest = match store.read_manifest(manifest_desc)? {
        ManifestKind::Manifest(m) => m,
        ManifestKind::Index(_) => {
            return Err(invalid_data(format!(
                "{} is an index, not a manifest",
                manifest_desc.digest
            )))
        }
    };
    let config_bytes = content.read(&manifest.config.digest)?;
    if config_bytes.len() as u64 != manifest.config.size {
        return Err(Error::Mismatch {
            what: format!("config {}", manifest.config.digest),
            expected: format!("size {}", manifest.config.size),
            actual: config_bytes.len().to_string(),
        });
    }
    let config = ImageConfig::parse(&config_bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(invalid_data(format!(
            "image config {} lists {} diffIDs but manifest {} has {} layers",
            manifest.config.digest,
            config.rootfs.diff_ids.len(),
            manifest_desc.digest,
            manifest.layers.len()
        )));
    }
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let compression = media_types::layer_compression(&desc.media_type).ok_or_else(|| {
            invalid_data(format!(
                "layer {} has unsupported media type {:?}",
                desc.digest, desc.media_type
            ))
        })?;
        let size = if compression == Compression::Uncompressed {
            if &desc.digest != diff_id {
                return Err(Error::Mismatch {
                    what: format!("uncompressed layer {}", desc.digest),
                    expected: format!("diffID {diff_id}"),
                    actual: desc.digest.to_string(),
                });
            }
            desc.size
        } else {
            let (digest, size) = hash_reader(
                open_layer(content, desc, compression)?,
                &format!("decompress layer {}", desc.digest),
            )?;
            if &digest != diff_id {
                return Err(Error::Mismatch {
                    what: format!("layer {} (uncompressed)", desc.digest),
                    expected: diff_id.to_string(),
                    actual: digest.to_string(),
                });
            }
            size
        };
        layers.push(SaveLayer {
            source: desc.plain(),
            compression,
            diff_id: diff_id.clone(),
            size,
        });
    }

    let all_uncompressed = layers
        .iter()
        .all(|l| l.compression == Compression::Uncompressed);
    let (manifest_out, manifest_bytes) = if all_uncompressed {
        (manifest_desc.plain(), content.read(&manifest_desc.digest)?)
    } else {
        let docker = manifest_desc.media_type == media_types::DOCKER_MANIFEST;
        let (mt, layer_mt) = if docker {
            (media_types::DOCKER_MANIFEST, media_types::DOCKER_LAYER)
        } else {
            (media_types::OCI_MANIFEST, media_types::OCI_LAYER)
        };
        let rewritten = Manifest {
            schema_version: 2,
            media_type: Some(mt.to_string()),
            artifact_type: None,
            config: manifest.config.plain(),
            layers: layers
                .iter()
                .map(|l| Descriptor::new(layer_mt, l.diff_id.clone(), l.size))
                .collect(),
            subject: None,
            annotations: manifest.annotations.clone(),
            extra: BTreeMap::new(),
        };
        let bytes = to_json(&rewritten, "manifest")?;
        (
            Descriptor::new(mt, Digest::sha256(&bytes), bytes.len() as u64),
            bytes,
        )
    };
    Ok(SaveImage {
        source: manifest_desc.digest.clone(),
        manifest: manifest_out,
        manifest_bytes,
        config: manifest.config.plain(),
        layers,
        names: Vec::new(),
    })
}

fn open_layer(
    content: &ContentStore,
    desc: &Descriptor,
    compression: Compression,
) -> Result<Box<dyn Read>> {
    let file = content.open_verified(&desc.content())?;
    let reader = io::BufReader::with_capacity(BUF_SIZE, file);
    Ok(match compression {
        Compression::Uncompressed => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| Error::io(format!("decompress layer {}", desc.digest), e))?,
        ),
    })
}

fn hash_reader(mut reader: impl Read, context: &str) -> Result<(Digest, u64)> {
    let mut hasher = Hasher::new(crate::digest::Algorithm::Sha256);
    let mut size = 0u64;
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok((hasher.finish(), size)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(context.to_string(), e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// A reader that yields exactly `remaining` bytes of `inner` (failing if it ends
/// early) and hashes them.
struct Checked<R> {
    inner: R,
    hasher: Hasher,
    remaining: u64,
}

impl<R: Read> Checked<R> {
    fn new(inner: R, size: u64) -> Checked<R> {
        Checked {
            inner,
            hasher: Hasher::new(crate::digest::Algorithm::Sha256),
            remaining: size,
        }
    }

    fn finish(self) -> Digest {
        self.hasher.finish()
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "layer is shorter than when it was measured",
            ));
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Adds directory entries for every parent of `path` not added yet.
fn ensure_dirs<W: Write>(
    tar: &mut tar::Builder<W>,
    dirs: &mut HashSet<String>,
    path: &str,
) -> Result<()> {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        prefix.push_str(part);
        prefix.push('/');
        if dirs.insert(prefix.clone()) {
            let mut header = file_header(0);
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            tar.append_data(&mut header, &prefix, io::empty())
                .map_err(|e| Error::io(format!("write {prefix} to the archive"), e))?;
        }
    }
    Ok(())
}

fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    dirs: &mut HashSet<String>,
    digest: &Digest,
    bytes: &[u8],
) -> Result<()> {
    let path = blob_path(digest);
    ensure_dirs(tar, dirs, &path)?;
    append_file(tar, &path, bytes)
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut header = file_header(bytes.len() as u64);
    tar.append_data(&mut header, path, bytes)
        .map_err(|e| Error::io(format!("write {path} to the archive"), e))
}

fn to_json(value: &impl Serialize, what: &str) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| Error::io(format!("serialize {what}"), io::Error::other(e)))
}

// ---------------------------------------------------------------------------
// Load.

/// What the tar held, once read.
#[derive(Default)]
struct Spooled {
    /// Regular files streamed into the content store, by normalized path.
    files: HashMap<String, content::Descriptor>,
    /// Symlinks and hard links, by normalized path, to the normalized target path.
    links: HashMap<String, String>,
    /// Small metadata files read into memory.
    metadata: HashMap<&'static str, Vec<u8>>,
}

impl Spooled {
    fn lookup(&self, path: &str) -> Result<&content::Descriptor> {
        let mut path = normalize(path);
        for _ in 0..16 {
            if let Some(desc) = self.files.get(&path) {
                return Ok(desc);
            }
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        Err(Error::NotFound(format!(
            "archive: file {path} referenced by manifest.json is missing"
        )))
    }
}

/// Loads every image of a `docker save` archive or an OCI layout tar from `input`.
///
/// Accepts old `docker save` archives (`manifest.json` with `<id>/layer.tar` and
/// `<hex>.json`), Docker ≥25 archives (`manifest.json` plus an OCI layout) and OCI
/// layout tars. Every file is streamed into the content store as it is read, under a
/// lease; files named `blobs/<alg>/<hex>` are verified against that digest. Then:
///
/// - with an OCI layout (`oci-layout` + `index.json`), its images are imported as
///   stored (manifest digests kept), named by the entries' annotations
///   (`io.containerd.image.name`, or `org.opencontainers.image.ref.name` when it is
///   a full reference); `manifest.json`'s `RepoTags` add names to the image with
///   the same config;
/// - `manifest.json` entries not covered by the layout become Docker schema2
///   manifests over the config and layer blobs; each layer must match the config's
///   `rootfs.diff_ids[i]` (uncompressed, or — as Docker accepts — gzip/zstd whose
///   content does).
///
/// Names are recorded only after everything is in, in one database write: a failed
/// load tags nothing.
///
/// # Errors
///
/// [`Error::Mismatch`] for a corrupt blob or a layer not matching its diffID,
/// [`Error::NotFound`] for a missing file, invalid-data [`Error::Io`] for a tar that
/// is neither format or malformed metadata.
pub fn load_archive(store: &ImageStore, input: impl Read) -> Result<Vec<LoadedImage>> {
    let content = store.content();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let lease = format!("load-archive-{}-{nanos}", std::process::id());
    content.create_lease_expiring(&lease, LOAD_LEASE_TTL)?;
    let result = load_inner(store, input, &lease)
        .and_then(|loaded| crate::image::layout::record_loaded(store, &loaded).map(|()| loaded));
    // Tagged blobs are now roots; anything else becomes collectable.
    let _ = content.delete_lease(&lease);
    result
}

fn load_inner(store: &ImageStore, input: impl Read, lease: &str) -> Result<Vec<LoadedImage>> {
    let spooled = spool(store.content(), input, lease)?;
    let has_layout =
        spooled.metadata.contains_key(INDEX_FILE) && spooled.metadata.contains_key(LAYOUT_FILE);
    let entries: Vec<ArchiveEntry> = match spooled.metadata.get(MANIFEST_FILE) {
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| invalid_data(format!("archive: parse {MANIFEST_FILE}: {e}")))?,
        None if has_layout => Vec::new(),
        None => {
            return Err(invalid_data(format!(
                "archive contains neither {MANIFEST_FILE} nor an OCI layout ({LAYOUT_FILE}, {INDEX_FILE})"
            )))
        }
    };

    let mut loaded: Vec<LoadedImage> = Vec::new();
    if has_layout {
        loaded = load_layout(store, &spooled, lease)?;
    }
    for entry in &entries {
        let config = spooled.lookup(&entry.config)?;
        // The layout already holds this image: only add manifest.json's names.
        let target = loaded
            .iter()
            .map(|l| l.target.clone())
            .find(|t| store.image_id(t) == config.digest);
        let target = match target {
            Some(t) => t,
            None => assemble_docker_manifest(store, &spooled, entry, lease)?,
        };
        let mut names = Vec::new();
        for tag in entry.repo_tags.iter().flatten() {
            let name = Reference::parse_with_default_tag(tag)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.is_empty() && !loaded.iter().any(|l| l.target.digest == target.digest) {
            loaded.push(LoadedImage { name: None, target });
            continue;
        }
        for name in names {
            if loaded
                .iter()
                .any(|l| l.name.as_ref() == Some(&name) && l.target.digest == target.digest)
            {
                continue;
            }
            // A nameless entry for this target is superseded by a named one.
            loaded.retain(|l| l.name.is_some() || l.target.digest != target.digest);
            loaded.push(LoadedImage {
                name: Some(name),
                target: target.clone(),
            });
        }
    }
    Ok(loaded)
}

/// Reads the whole tar: regular files into the content store (leased), metadata
/// into memory, links into a table.
fn spool(content: &ContentStore, input: impl Read, lease: &str) -> Result<Spooled> {
    let mut spooled = Spooled::default();
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| Error::io("read archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io("read archive", e))?;
        let raw_path = entry
            .path()
            .map_err(|e| Error::io("read archive entry name", e))?
            .to_string_lossy()
            .into_owned();
        let path = normalize(&raw_path);
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| Error::io(format!("read archive link {path}"), e))?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let resolved = if kind.is_symlink() && !target.starts_with('/') {
                let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                normalize(&format!("{parent}/{target}"))
            } else {
                normalize(&target)
            };
            spooled.links.insert(path, resolved);
            continue;
        }
        if !kind.is_file() && kind != tar::EntryType::Continuous {
            continue;
        }
        if let Some(name) = [MANIFEST_FILE, INDEX_FILE, LAYOUT_FILE, REPOSITORIES_FILE]
            .into_iter()
            .find(|n| *n == path)
        {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_METADATA_SIZE + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(format!("read archive file {path}"), e))?;
            if bytes.len() as u64 > MAX_METADATA_SIZE {
                return Err(invalid_data(format!(
                    "archive: {path} is larger than {MAX_METADATA_SIZE} bytes"
                )));
            }
            spooled.metadata.insert(name, bytes);
            continue;
        }
        // Old archives' per-layer `json` and `VERSION` files are never referenced.
        let file_name = path.rsplit('/').next().unwrap_or_default();
        if path.contains('/') && (file_name == "json" || file_name == "VERSION") {
            continue;
        }
        let size = entry.size();
        let expected = blob_digest(&path);
        let mut writer = content.writer(expected.as_ref().map(|d| (d, size)))?;
        writer.set_lease(lease);
        io::copy(&mut entry, &mut writer)
            .map_err(|e| Error::io(format!("archive: store {path}"), e))?;
        let desc = writer.commit().map_err(|e| match e {
            Error::Mismatch {
                expected, actual, ..
            } => Error::Mismatch {
                what: format!("archive: {path}"),
                expected,
                actual,
            },
            other => other,
        })?;
        spooled.files.insert(path, desc);
    }
    Ok(spooled)
}

/// `blobs/<alg>/<hex>` → the digest it names.
fn blob_digest(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// A tar path as a plain relative path: no `./`, no empty parts, `..` resolved.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Imports the OCI layout of the archive (blobs already in the store).
fn load_layout(store: &ImageStore, spooled: &Spooled, lease: &str) -> Result<Vec<LoadedImage>> {
    let content = store.content();
    let layout_bytes = spooled
        .metadata
        .get(LAYOUT_FILE)
        .map_or(&[][..], Vec::as_slice);
    let layout: LayoutFile = serde_json::from_slice(layout_bytes)
        .map_err(|e| invalid_data(format!("archive: parse {LAYOUT_FILE}: {e}")))?;
    if !layout.image_layout_version.starts_with("1.") {
        return Err(invalid_data(format!(
            "unsupported OCI image layout version {:?}",
            layout.image_layout_version
        )));
    }
    let index_bytes = spooled
        .metadata
        .get(INDEX_FILE)
        .map_or(&[][..], Vec::as_slice);
    let index = match parse_manifest_or_index(index_bytes, Some(media_types::OCI_INDEX))? {
        ManifestKind::Index(i) => i,
        ManifestKind::Manifest(_) => {
            return Err(invalid_data(format!(
                "archive: {INDEX_FILE} is not an image index"
            )))
        }
    };
    let in_archive: HashSet<&Digest> = spooled.files.values().map(|d| &d.digest).collect();
    // Blobs are already spooled into the content store; check sizes and lease the ones
    // the store had before (the spooling lease holds the archive's own).
    walk_index(store, &index, "archive", |desc| {
        if !content.exists(&desc.digest) {
            return Ok(false);
        }
        let info = content.info(&desc.digest)?;
        if info.size != desc.size {
            return Err(Error::Mismatch {
                what: format!("archive: blob {}", desc.digest),
                expected: format!("size {}", desc.size),
                actual: info.size.to_string(),
            });
        }
        if !in_archive.contains(&desc.digest) {
            content.add_to_lease(lease, &desc.digest)?;
        }
        Ok(true)
    })
}

/// Builds and stores a Docker schema2 manifest for one `manifest.json` entry,
/// checking every layer against the config's diffIDs.
fn assemble_docker_manifest(
    store: &ImageStore,
    spooled: &Spooled,
    entry: &ArchiveEntry,
    lease: &str,
) -> Result<Descriptor> {
    let content = store.content();
    let config = spooled.lookup(&entry.config)?;
    let config_bytes = content.read(&config.digest)?;
    let image_config = ImageConfig::parse(&config_bytes)?;
    let diff_ids = &image_config.rootfs.diff_ids;
    if diff_ids.len() != entry.layers.len() {
        return Err(invalid_data(format!(
            "archive: image config {} lists {} diffIDs but manifest.json lists {} layers",
            config.digest,
            diff_ids.len(),
            entry.layers.len()
        )));
    }
    let mut layers = Vec::new();
    for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
        let layer = spooled.lookup(path)?;
        let media_type = if &layer.digest == diff_id {
            media_types::DOCKER_LAYER
        } else {
            // Docker also accepts compressed layer files; check what is inside.
            let (compression, media_type) = match sniff(content, layer)? {
                Some(Compression::Gzip) => (Compression::Gzip, media_types::DOCKER_LAYER_GZIP),
                Some(Compression::Zstd) => (Compression::Zstd, media_types::DOCKER_LAYER_ZSTD),
                _ => {
                    return Err(layer_mismatch(path, diff_id, &layer.digest));
                }
            };
            let desc = Descriptor::new(media_type, layer.digest.clone(), layer.size);
            let (digest, _) = hash_reader(
                open_layer(content, &desc, compression)?,
                &format!("archive: decompress {path}"),
            )
            .map_err(|_| layer_mismatch(path, diff_id, &layer.digest))?;
            if &digest != diff_id {
                return Err(layer_mismatch(path, diff_id, &digest));
            }
            media_type
        };
        layers.push(Descriptor::new(
            media_type,
            layer.digest.clone(),
            layer.size,
        ));
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_types::DOCKER_MANIFEST.to_string()),
        artifact_type: None,
        config: Descriptor::new(
            media_types::DOCKER_CONFIG,
            config.digest.clone(),
            config.size,
        ),
        layers,
        subject: None,
        annotations: None,
        extra: BTreeMap::new(),
    };
    let bytes = to_json(&manifest, "manifest")?;
    let mut writer = content.writer(None)?;
    writer.set_lease(lease);
    writer
        .write_all(&bytes)
        .map_err(|e| Error::io("store manifest", e))?;
    let stored = writer.commit()?;
    Ok(Descriptor::new(
        media_types::DOCKER_MANIFEST,
        stored.digest,
        stored.size,
    ))
}

fn layer_mismatch(path: &str, diff_id: &Digest, actual: &Digest) -> Error {
    Error::Mismatch {
        what: format!("archive: layer {path} does not match its diffID"),
        expected: diff_id.to_string(),
        actual: actual.to_string(),
    }
}

/// The compression of a stored blob, by its magic bytes.
fn sniff(content: &ContentStore, desc: &content::Descriptor) -> Result<Option<Compression>> {
    let mut file = content.open_verified(desc)?;
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("read blob {}", desc.digest), e)),
        }
    }
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd] => Some(Compression::Zstd),
        _ => None,
    })
}
