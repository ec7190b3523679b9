//! The image metadata store: which images exist, by name.
//!
//! One small JSON database file, `<root>/images.json`, maps normalized reference
//! strings (`docker.io/library/busybox:latest`, `host:5000/a@sha256:…`) to the
//! descriptor of the image's target (a manifest or an index) in the content store.
//! Every change is a read-modify-write under an exclusive `flock(2)` on
//! `<root>/images.lock`, written to a temp file, fsynced, renamed over the database and
//! followed by an fsync of the directory: a crash leaves either the old or the new
//! database, never a torn one.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use super::{
    media_types, parse_manifest_or_index, select_platform, Descriptor, ManifestKind, Platform,
};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;

const DB_FILE: &str = "images.json";
const LOCK_FILE: &str = "images.lock";
const DB_VERSION: u32 = 1;

/// One named image: a reference and the manifest or index it points to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The full normalized reference, e.g. `docker.io/library/busybox:latest`.
    pub name: Reference,
    /// The manifest or index (media type, digest, size).
    pub target: Descriptor,
    /// When the name was first created, seconds since the Unix epoch.
    pub created: u64,
    /// When the name was last pointed at a target, seconds since the Unix epoch.
    pub updated: u64,
}

/// One image of [`ImageStore::images`]: a target with all its names (none for a
/// dangling image).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredImage {
    pub target: Descriptor,
    /// Every reference pointing at the target, sorted; empty when dangling.
    pub names: Vec<Reference>,
    /// When the image was first recorded, seconds since the Unix epoch.
    pub created: u64,
    /// When a name last moved to it, seconds since the Unix epoch.
    pub updated: u64,
}

/// The result of [`ImageStore::resolve`]: one image, with every name it has.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// The image ID Docker shows: the config digest of the (host platform) manifest,
    /// or the target digest when that config is not available locally.
    pub id: Digest,
    /// The manifest or index the image is stored as.
    pub target: Descriptor,
    /// Every reference pointing at this target, sorted.
    pub names: Vec<Reference>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Db {
    version: u32,
    images: BTreeMap<String, Record>,
    /// Images without a name (Docker's `<none>:<none>`), by target digest: imported
    /// or loaded without a tag, or left behind when their last name moved elsewhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    dangling: BTreeMap<String, Record>,
}

impl Db {
    fn is_named(&self, digest: &Digest) -> bool {
        self.images.values().any(|r| &r.target.digest == digest)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    target: Descriptor,
    created: u64,
    updated: u64,
}

/// Image metadata over a [`ContentStore`]. Cheap to clone; clones (and other
/// processes) coordinate through a file lock.
#[derive(Debug, Clone)]
pub struct ImageStore {
    content: ContentStore,
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating if needed) the image database in directory `root`, over
    /// `content`. `root` may be the content store's own root.
    pub fn open(content: ContentStore, root: &Path) -> Result<ImageStore> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        Ok(ImageStore {
            content,
            root: root.to_path_buf(),
        })
    }

    /// The content store holding the images' blobs.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// Stores a manifest or index from its exact bytes (never re-serialized) and
    /// returns its descriptor and parsed form. The media type recorded is the
    /// document's `mediaType`, else `media_type_hint` when it names a manifest or
    /// index type, else the OCI type of the detected kind.
    pub fn put_manifest(
        &self,
        bytes: &[u8],
        media_type_hint: Option<&str>,
    ) -> Result<(Descriptor, ManifestKind)> {
        let parsed = parse_manifest_or_index(bytes, media_type_hint)?;
        let media_type = match (&parsed, media_type_hint) {
            (ManifestKind::Manifest(m), Some(h))
                if m.media_type.is_none() && media_types::is_manifest(h) =>
            {
                h
            }
            (ManifestKind::Index(i), Some(h))
                if i.media_type.is_none() && media_types::is_index(h) =>
            {
                h
            }
            _ => parsed.media_type(),
        }
        .to_string();
        let stored = self.content.put(bytes, None)?;
        Ok((
            Descriptor::new(media_type, stored.digest, stored.size),
            parsed,
        ))
    }

    /// Reads and parses the manifest or index `desc` points to (re-hashed on read).
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<ManifestKind> {
        let bytes = self.content.read(&desc.digest)?;
        parse_manifest_or_index(&bytes, Some(&desc.media_type))
    }

    /// Points `reference` at `target`, creating or moving the name. A reference with
    /// neither tag nor digest gets the tag `latest`. The target blob must exist in the
    /// content store and be a manifest or index; a digest reference must name the
    /// target's own digest.
    pub fn tag(&self, reference: &Reference, target: &Descriptor) -> Result<Image> {
        let mut images = self.tag_all(&[(reference.clone(), target.clone())])?;
        images
            .pop()
            .ok_or_else(|| Error::io("tag", io::Error::other("no image tagged")))
    }

    /// [`tag`](Self::tag) for several names in one database write: either all names
    /// are recorded or none is.
    pub fn tag_all(&self, entries: &[(Reference, Descriptor)]) -> Result<Vec<Image>> {
        self.record(entries, &[])
    }

    /// Records `dangling` as images without a name (targets that have a name are
    /// left as they are).
    pub fn add_dangling(&self, dangling: &[Descriptor]) -> Result<()> {
        self.record(&[], dangling).map(|_| ())
    }

    /// Names `entries` and records `dangling` targets in one database write. A name
    /// that moves away from an image that then has no name left leaves that image
    /// dangling, as Docker does when a tag is reused.
    pub fn record(
        &self,
        entries: &[(Reference, Descriptor)],
        dangling: &[Descriptor],
    ) -> Result<Vec<Image>> {
        let mut checked = Vec::with_capacity(entries.len());
        for (reference, target) in entries {
            let name = with_default_tag(reference);
            if let Some(d) = name.digest() {
                if d != &target.digest {
                    return Err(Error::Conflict(format!(
                        "reference {} does not match target digest {}",
                        name.familiar(),
                        target.digest
                    )));
                }
            }
            self.check_target(target)?;
            checked.push((name, target.plain()));
        }
        let mut unnamed = Vec::with_capacity(dangling.len());
        for target in dangling {
            self.check_target(target)?;
            unnamed.push(target.plain());
        }
        let now = unix_now();
        self.update(|db| {
            let mut out = Vec::new();
            let mut moved_from = Vec::new();
            for (name, target) in checked {
                let key = name.to_string();
                let created = db.images.get(&key).map_or(now, |r| r.created);
                db.dangling.remove(&target.digest.to_string());
                let previous = db.images.insert(
                    key,
                    Record {
                        target: target.clone(),
                        created,
                        updated: now,
                    },
                );
                if let Some(previous) = previous {
                    if previous.target.digest != target.digest {
                        moved_from.push(previous);
                    }
                }
                out.push(Image {
                    name,
                    target,
                    created,
                    updated: now,
                });
            }
            for previous in moved_from {
                if !db.is_named(&previous.target.digest) {
                    db.dangling
                        .insert(previous.target.digest.to_string(), previous);
                }
            }
            for target in unnamed {
                if !db.is_named(&target.digest) {
                    db.dangling
                        .entry(target.digest.to_string())
                        .or_insert(Record {
                            target,
                            created: now,
                            updated: now,
                        });
                }
            }
            Ok(out)
        })
    }

    /// Removes an image entirely: every name pointing at `target` and its dangling
    /// record. Returns the names removed. The blobs stay until the next GC.
    pub fn remove_target(&self, target: &Digest) -> Result<Vec<Reference>> {
        self.update(|db| {
            let keys: Vec<String> = db
                .images
                .iter()
                .filter(|(_, r)| &r.target.digest == target)
                .map(|(k, _)| k.clone())
                .collect();
            let mut names = Vec::with_capacity(keys.len());
            for key in keys {
                db.images.remove(&key);
                names.push(parse_key(&key)?);
            }
            db.dangling.remove(&target.to_string());
            Ok(names)
        })
    }

    /// Every image, named or dangling, one entry per target, sorted by target digest.
    pub fn images(&self) -> Result<Vec<StoredImage>> {
        let db = self.load()?;
        let mut by_target: BTreeMap<String, StoredImage> = BTreeMap::new();
        for (key, record) in &db.images {
            let name = parse_key(key)?;
            let entry = by_target
                .entry(record.target.digest.to_string())
                .or_insert_with(|| StoredImage {
                    target: record.target.clone(),
                    names: Vec::new(),
                    created: record.created,
                    updated: record.updated,
                });
            entry.names.push(name);
            entry.created = entry.created.min(record.created);
            entry.updated = entry.updated.max(record.updated);
        }
        for (key, record) in &db.dangling {
            by_target.entry(key.clone()).or_insert_with(|| StoredImage {
                target: record.target.clone(),
                names: Vec::new(),
                created: record.created,
                updated: record.updated,
            });
        }
        Ok(by_target.into_values().collect())
    }

    fn check_target(&self, target: &Descriptor) -> Result<()> {
        if !media_types::is_manifest(&target.media_type)
            && !media_types::is_index(&target.media_type)
        {
            return Err(Error::Conflict(format!(
                "cannot tag {} of media type {:?}: not a manifest or index",
                target.digest, target.media_type
            )));
        }
        let info = self.content.info(&target.digest)?;
        if info.size != target.size {
            return Err(Error::Mismatch {
                what: format!("blob {}", target.digest),
                expected: format!("size {}", target.size),
                actual: info.size.to_string(),
            });
        }
        Ok(())
    }

    /// Removes a name. The blobs stay until the next GC finds them unreachable.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] with Docker's message `No such image: <familiar name>`.
    pub fn untag(&self, reference: &Reference) -> Result<()> {
        let name = with_default_tag(reference);
        self.update(|db| match db.images.remove(&name.to_string()) {
            Some(_) => Ok(()),
            None => Err(no_such_image(&name.familiar())),
        })
    }

    /// The image a name points to.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] with Docker's message `No such image: <familiar name>`.
    pub fn get(&self, reference: &Reference) -> Result<Image> {
        let name = with_default_tag(reference);
        let db = self.load()?;
        db.images
            .get(&name.to_string())
            .map(|r| to_image(name.clone(), r))
            .ok_or_else(|| no_such_image(&name.familiar()))
    }

    /// Every named image, sorted by name.
    pub fn list(&self) -> Result<Vec<Image>> {
        let db = self.load()?;
        let mut out = Vec::with_capacity(db.images.len());
        for (key, record) in &db.images {
            out.push(to_image(parse_key(key)?, record));
        }
        Ok(out)
    }

    /// The image ID of a target, as Docker shows it: the config digest of the
    /// manifest (for an index: of the host platform's manifest). Falls back to the
    /// target digest when the config cannot be determined from local content.
    pub fn image_id(&self, target: &Descriptor) -> Digest {
        self.config_digest(target, 0)
            .unwrap_or_else(|| target.digest.clone())
    }

    fn config_digest(&self, target: &Descriptor, depth: usize) -> Option<Digest> {
        if depth > 8 {
            return None;
        }
        match self.read_manifest(target).ok()? {
            ManifestKind::Manifest(m) => Some(m.config.digest),
            ManifestKind::Index(i) => {
                let child = select_platform(&i, &Platform::host())?;
                self.config_digest(child, depth + 1)
            }
        }
    }

    /// Finds an image the way `docker image inspect` accepts it: by name
    /// (`busybox`, `busybox:1`, `host/a@sha256:…`), by full image ID or target
    /// digest (`sha256:<64 hex>` or bare 64 hex), or by a unique image ID prefix
    /// (`3f57d9401f8d`, `sha256:3f57`).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (`No such image: <input>`) when nothing matches,
    /// [`Error::InvalidReference`] when the input is neither an ID nor a valid name,
    /// [`Error::Conflict`] when an ID prefix matches several images.
    pub fn resolve(&self, name_or_id: &str) -> Result<ResolvedImage> {
        let db = self.load()?;
        let entries: Vec<(Reference, Descriptor)> = db
            .images
            .iter()
            .map(|(k, r)| Ok((parse_key(k)?, r.target.clone())))
            .collect::<Result<_>>()?;
        let targets: Vec<Descriptor> = entries
            .iter()
            .map(|(_, t)| t.clone())
            .chain(db.dangling.values().map(|r| r.target.clone()))
            .collect();
        let resolved = |target: &Descriptor| ResolvedImage {
            id: self.image_id(target),
            target: target.clone(),
            names: entries
                .iter()
                .filter(|(_, t)| t.digest == target.digest)
                .map(|(n, _)| n.clone())
                .collect(),
        };

        // A full digest, with or without the algorithm.
        let full = name_or_id
            .parse::<Digest>()
            .ok()
            .or_else(|| format!("sha256:{name_or_id}").parse::<Digest>().ok());
        if let Some(digest) = full {
            if let Some(t) = targets.iter().find(|t| t.digest == digest) {
                return Ok(resolved(t));
            }
            if let Some(t) = targets.iter().find(|t| self.image_id(t) == digest) {
                return Ok(resolved(t));
            }
            return Err(no_such_image(name_or_id));
        }

        // A name.
        if let Ok(reference) = Reference::parse_with_default_tag(name_or_id) {
            let key = reference.to_string();
            if let Some((_, t)) = entries.iter().find(|(n, _)| n.to_string() == key) {
                return Ok(resolved(t));
            }
            // `repo@digest` also finds an image of that repository stored by tag.
            if let Some(d) = reference.digest() {
                let repo = reference.repository();
                if let Some((_, t)) = entries
                    .iter()
                    .find(|(n, t)| n.repository() == repo && &t.digest == d)
                {
                    return Ok(resolved(t));
                }
            }
        }

        // An ID prefix.
        let prefix = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        let is_hex = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_hex {
            let mut ids: BTreeMap<Digest, Descriptor> = BTreeMap::new();
            for t in &targets {
                let id = self.image_id(t);
                if id.algorithm() == crate::digest::Algorithm::Sha256
                    && id.hex().starts_with(prefix)
                {
                    ids.entry(id).or_insert_with(|| t.clone());
                }
            }
            let mut found = ids.into_iter();
            match (found.next(), found.next()) {
                (Some((_, t)), None) => return Ok(resolved(&t)),
                (Some(_), Some(_)) => {
                    return Err(Error::Conflict(format!(
                        "multiple IDs found with provided prefix: {prefix}"
                    )))
                }
                _ => {}
            }
        }
        // What is neither an ID nor a valid name is the client's error (400, Docker's
        // `invalid reference format`), not a missing image.
        let reference = Reference::parse_with_default_tag(name_or_id)?;
        Err(no_such_image(&reference.familiar()))
    }

    /// Every blob digest reachable from a named image: targets, nested indexes and
    /// manifests, configs and layers. Pass it to [`ContentStore::gc`] /
    /// [`ContentStore::usage`]. Children that are not present locally (other
    /// platforms of an index) are still listed, which is harmless.
    ///
    /// # Errors
    ///
    /// Fails if the database cannot be read, or a present manifest cannot be read or
    /// parsed — failing is safer than letting GC delete what that manifest references.
    pub fn roots(&self) -> Result<HashSet<Digest>> {
        let db = self.load()?;
        let mut seen = HashSet::new();
        for record in db.images.values().chain(db.dangling.values()) {
            self.walk(&record.target, &mut seen, &mut |_| Ok(()))?;
        }
        Ok(seen)
    }

    /// Visits every descriptor reachable from `root` (itself included) once, adding
    /// digests to `seen`. Absent manifests are skipped; absent configs/layers are
    /// reported to `visit` like any other descriptor.
    pub(crate) fn walk(
        &self,
        root: &Descriptor,
        seen: &mut HashSet<Digest>,
        visit: &mut dyn FnMut(&Descriptor) -> Result<()>,
    ) -> Result<()> {
        let mut stack = vec![root.clone()];
        while let Some(desc) = stack.pop() {
            if !seen.insert(desc.digest.clone()) {
                continue;
            }
            visit(&desc)?;
            let is_doc = media_types::is_manifest(&desc.media_type)
                || media_types::is_index(&desc.media_type);
            if !is_doc || !self.content.exists(&desc.digest) {
                continue;
            }
            match self.read_manifest(&desc)? {
                ManifestKind::Manifest(m) => {
                    stack.push(m.config);
                    stack.extend(m.layers);
                }
                ManifestKind::Index(i) => stack.extend(i.manifests),
            }
        }
        Ok(())
    }

    fn db_path(&self) -> PathBuf {
        self.root.join(DB_FILE)
    }

    fn load(&self) -> Result<Db> {
        let path = self.db_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Db {
                    version: DB_VERSION,
                    ..Db::default()
                })
            }
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::io(
                format!("parse {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Read-modify-write of the database under the exclusive lock. `f`'s error
    /// aborts without writing.
    fn update<T>(&self, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut db = self.load()?;
        let out = f(&mut db)?;
        db.version = DB_VERSION;
        let bytes = serde_json::to_vec_pretty(&db)
            .map_err(|e| Error::io("serialize image database", io::Error::other(e)))?;
        write_atomic(&self.db_path(), &bytes)?;
        Ok(out)
    }

    fn lock(&self) -> Result<File> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        loop {
            match rustix::fs::flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io(format!("lock {}", path.display()), e.into())),
            }
        }
    }
}

/// A name as stored: references without tag or digest get `latest`.
fn with_default_tag(reference: &Reference) -> Reference {
    if reference.tag().is_none() && reference.digest().is_none() {
        if let Ok(r) = reference.with_tag(crate::reference::DEFAULT_TAG) {
            return r;
        }
    }
    reference.clone()
}

fn parse_key(key: &str) -> Result<Reference> {
    Reference::parse(key)
}

fn to_image(name: Reference, record: &Record) -> Image {
    Image {
        name,
        target: record.target.clone(),
        created: record.created,
        updated: record.updated,
    }
}

/// Docker's 404 message for images.
pub(crate) fn no_such_image(name: &str) -> Error {
    Error::NotFound(format!("No such image: {name}"))
}

/// Temp file in the destination's directory, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| Error::io(format!("create {}", temp.display()), e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io(format!("write {}", temp.display()), e))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("sync {}", temp.display()), e))?;
        fs::rename(&temp, dest).map_err(|e| {
            Error::io(
                format!("rename {} to {}", temp.display(), dest.display()),
                e,
            )
        })?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("sync {}", dir.display()), e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
