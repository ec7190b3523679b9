//! The registry's filesystem store under `--root`.
//!
//! ```text
//! blobs/<alg>/<hex>                         content, shared by all repositories
//! repos/<name>/_layers/<alg>/<hex>          empty: the blob belongs to the repository
//! repos/<name>/_manifests/revisions/<alg>/<hex>   the manifest's media type
//! repos/<name>/_manifests/tags/<tag>        the digest the tag points at
//! repos/<name>/_referrers/<alg>/<hex>/<alg>-<hex> a referrer's descriptor (JSON)
//! uploads/<id>/{data,repo}                  an upload in progress
//! tmp/                                      files being written, renamed into place
//! ```
//!
//! Every file that becomes visible is written beside its place (in `tmp/` or the upload
//! directory), fsynced and renamed, so a crash never exposes a partial blob, manifest
//! or record. Name components cannot start with `_`, so the `_` directories never
//! collide with repository names.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use pier_image::digest::{Algorithm, Digest, Hasher};

use crate::error::{RegistryError, Result};
use crate::manifest::Descriptor;
use crate::names::RepoName;

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RegistryError {
    RegistryError::io(context)
}

/// `Ok(None)` for a missing file, the error otherwise.
fn not_found_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file; `false` when there was none.
fn remove_if_exists(path: &Path) -> Result<bool> {
    not_found_none(fs::remove_file(path))
        .map(|r| r.is_some())
        .map_err(io_err(format!("removing {}", path.display())))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn digest_rel(d: &Digest) -> PathBuf {
    Path::new(d.algorithm().name()).join(d.hex())
}

/// A fresh random identifier, in UUID form (the `Docker-Upload-UUID`).
pub fn random_id() -> Result<String> {
    let mut b = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io_err("reading /dev/urandom"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// Hashes a file from disk with `algorithm`.
pub fn hash_file(path: &Path, algorithm: Algorithm) -> Result<Digest> {
    let mut f = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io_err(format!("reading {}", path.display())))?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        for d in ["blobs", "repos", "uploads", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Removes what a crash left in `tmp/` (files never renamed into place). Only for the
    /// server at start: an offline `gc` must not touch a running server's files.
    pub fn clear_tmp(&self) -> Result<()> {
        let dir = self.root.join("tmp");
        let entries = fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))?;
        for e in entries.filter_map(|e| e.ok()) {
            remove_if_exists(&e.path())?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn repo_dir(&self, name: &RepoName) -> PathBuf {
        self.root.join("repos").join(name.as_str())
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest_rel(d))
    }

    fn layer_link(&self, name: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(name).join("_layers").join(digest_rel(d))
    }

    fn revision_link(&self, name: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_manifests/revisions")
            .join(digest_rel(d))
    }

    fn tags_dir(&self, name: &RepoName) -> PathBuf {
        self.repo_dir(name).join("_manifests/tags")
    }

    fn referrers_dir(&self, name: &RepoName, subject: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_referrers")
            .join(digest_rel(subject))
    }

    pub fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// Writes `bytes` to `dest` atomically: a synced temp file renamed into place.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.root.join("tmp").join(random_id()?);
        let ctx = || format!("writing {}", dest.display());
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            self.commit_file(&tmp, dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err(ctx()))
    }

    /// Renames a synced file into place, creating the parent and syncing it after.
    pub fn commit_file(&self, from: &Path, dest: &Path) -> io::Result<()> {
        let parent = dest.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(parent)?;
        fs::rename(from, dest)?;
        sync_dir(parent)
    }

    /// The size of a stored blob, `None` if absent.
    pub fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        let p = self.blob_path(d);
        not_found_none(fs::metadata(&p).map(|m| m.len()))
            .map_err(io_err(format!("reading {}", p.display())))
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Option<Vec<u8>>> {
        let p = self.blob_path(d);
        not_found_none(fs::read(&p)).map_err(io_err(format!("reading {}", p.display())))
    }

    pub fn repo_exists(&self, name: &RepoName) -> bool {
        self.repo_dir(name).is_dir()
    }

    /// The size of a blob linked into `name`, `None` if it is not in that repository.
    pub fn repo_blob_size(&self, name: &RepoName, d: &Digest) -> Result<Option<u64>> {
        if !self.layer_link(name, d).exists() {
            return Ok(None);
        }
        self.blob_size(d)
    }

    /// Links a stored blob into `name` and renews its modification time, which starts
    /// the garbage collector's grace period again: a blob just pushed or mounted is
    /// about to be referenced by a manifest.
    pub fn link_blob(&self, name: &RepoName, d: &Digest) -> Result<()> {
        let blob = self.blob_path(d);
        File::options()
            .write(true)
            .open(&blob)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .map_err(io_err(format!("touching {}", blob.display())))?;
        let link = self.layer_link(name, d);
        if link.exists() {
            return Ok(());
        }
        self.write_atomic(&link, b"")
    }

    /// The manifests of a repository (its revisions).
    pub fn revisions(&self, name: &RepoName) -> Vec<Digest> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self
                .repo_dir(name)
                .join("_manifests/revisions")
                .join(alg.name());
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let hex = e.file_name().to_string_lossy().into_owned();
                if let Ok(d) = format!("{}:{hex}", alg.name()).parse() {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Removes a blob's content and its links in every repository.
    pub fn remove_blob(&self, d: &Digest) -> Result<()> {
        for repo in self.repositories()? {
            if let Ok(name) = RepoName::parse(&repo) {
                self.unlink_blob(&name, d)?;
            }
        }
        remove_if_exists(&self.blob_path(d)).map(|_| ())
    }

    pub fn unlink_blob(&self, name: &RepoName, d: &Digest) -> Result<bool> {
        remove_if_exists(&self.layer_link(name, d))
    }

    /// Moves a finished upload's data into the blob store (a no-op when the content is
    /// there already) and links it into `name`.
    pub fn commit_blob(&self, name: &RepoName, data: &Path, d: &Digest) -> Result<()> {
        let dest = self.blob_path(d);
        if !dest.exists() {
            File::open(data)
                .and_then(|f| f.sync_all())
                .and_then(|()| self.commit_file(data, &dest))
                .map_err(io_err(format!("storing blob {d}")))?;
        }
        self.link_blob(name, d)
    }

    /// Stores a manifest's bytes as a blob, links it into the repository with its
    /// media type, records it as a referrer of its subject and points `tag` at it.
    pub fn put_manifest(
        &self,
        name: &RepoName,
        d: &Digest,
        media_type: &str,
        bytes: &[u8],
        tag: Option<&str>,
        referrer_of: Option<(&Digest, &Descriptor)>,
    ) -> Result<()> {
        if self.blob_size(d)?.is_none() {
            self.write_atomic(&self.blob_path(d), bytes)?;
        }
        self.write_atomic(&self.revision_link(name, d), media_type.as_bytes())?;
        if let Some((subject, descriptor)) = referrer_of {
            let record = self.referrers_dir(name, subject).join(format!(
                "{}-{}",
                d.algorithm().name(),
                d.hex()
            ));
            let json = serde_json::to_vec(descriptor).unwrap_or_default();
            self.write_atomic(&record, &json)?;
        }
        if let Some(tag) = tag {
            self.write_atomic(&self.tags_dir(name).join(tag), d.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// The media type of a manifest in `name`, `None` if it is not there.
    pub fn manifest_media_type(&self, name: &RepoName, d: &Digest) -> Result<Option<String>> {
        let p = self.revision_link(name, d);
        not_found_none(fs::read_to_string(&p)).map_err(io_err(format!("reading {}", p.display())))
    }

    pub fn resolve_tag(&self, name: &RepoName, tag: &str) -> Result<Option<Digest>> {
        let p = self.tags_dir(name).join(tag);
        let text = not_found_none(fs::read_to_string(&p))
            .map_err(io_err(format!("reading {}", p.display())))?;
        Ok(text.and_then(|t| t.trim().parse().ok()))
    }

    pub fn delete_tag(&self, name: &RepoName, tag: &str) -> Result<bool> {
        remove_if_exists(&self.tags_dir(name).join(tag))
    }

    /// Removes a manifest from the repository: its revision, the tags pointing at it
    /// and its referrer record (`subject` is the one it named).
    pub fn delete_manifest(
        &self,
        name: &RepoName,
        d: &Digest,
        subject: Option<&Digest>,
    ) -> Result<bool> {
        if !remove_if_exists(&self.revision_link(name, d))? {
            return Ok(false);
        }
        for tag in self.tags(name)?.unwrap_or_default() {
            if self.resolve_tag(name, &tag)?.as_ref() == Some(d) {
                self.delete_tag(name, &tag)?;
            }
        }
        if let Some(subject) = subject {
            let record = self.referrers_dir(name, subject).join(format!(
                "{}-{}",
                d.algorithm().name(),
                d.hex()
            ));
            remove_if_exists(&record)?;
        }
        Ok(true)
    }

    /// The repository's tags, sorted; `None` if the repository does not exist.
    pub fn tags(&self, name: &RepoName) -> Result<Option<Vec<String>>> {
        if !self.repo_exists(name) {
            return Ok(None);
        }
        let dir = self.tags_dir(name);
        let entries = match not_found_none(fs::read_dir(&dir))
            .map_err(io_err(format!("listing {}", dir.display())))?
        {
            Some(e) => e,
            None => return Ok(Some(Vec::new())),
        };
        let mut tags: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        tags.sort();
        Ok(Some(tags))
    }

    /// The descriptors of the manifests in `name` whose subject is `subject`.
    pub fn referrers(&self, name: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let dir = self.referrers_dir(name, subject);
        let Some(entries) = not_found_none(fs::read_dir(&dir))
            .map_err(io_err(format!("listing {}", dir.display())))?
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let bytes = fs::read(&p).map_err(io_err(format!("reading {}", p.display())))?;
            if let Ok(d) = serde_json::from_slice(&bytes) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// All repository names, sorted: directories under `repos/` holding `_layers` or
    /// `_manifests`.
    pub fn repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.root.join("repos");
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            let entries =
                fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))?;
            let mut is_repo = false;
            for e in entries.filter_map(|e| e.ok()) {
                let file_name = e.file_name();
                let fname = file_name.to_string_lossy();
                if fname.starts_with('_') {
                    is_repo |= fname == "_layers" || fname == "_manifests";
                } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
            if is_repo {
                if let Ok(rel) = dir.strip_prefix(&base) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every stored blob with its size and modification time.
    pub fn blobs(&self) -> Vec<(Digest, u64, std::time::SystemTime)> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.name());
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                let (Ok(d), Ok(meta)) = (format!("{}:{name}", alg.name()).parse(), e.metadata())
                else {
                    continue;
                };
                let mtime = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                out.push((d, meta.len(), mtime));
            }
        }
        out
    }

    /// How many blobs are stored and their total size.
    pub fn blob_usage(&self) -> (usize, u64) {
        let blobs = self.blobs();
        (blobs.len(), blobs.iter().map(|b| b.1).sum())
    }

    /// Starts an upload for `name`: its directory with an empty data file.
    pub fn create_upload(&self, name: &RepoName) -> Result<String> {
        let id = random_id()?;
        let dir = self.upload_dir(&id);
        (|| {
            fs::create_dir_all(&dir)?;
            File::create(dir.join("data"))?;
            fs::write(dir.join("repo"), name.as_str())
        })()
        .map_err(io_err(format!("creating upload {}", dir.display())))?;
        Ok(id)
    }

    /// The repository and current size of an upload on disk, `None` if unknown.
    pub fn upload_on_disk(&self, id: &str) -> Option<(RepoName, u64)> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return None;
        }
        let dir = self.upload_dir(id);
        let repo = fs::read_to_string(dir.join("repo")).ok()?;
        let size = fs::metadata(dir.join("data")).ok()?.len();
        Some((RepoName::parse(&repo).ok()?, size))
    }

    /// Every upload on disk with the last modification of its data.
    pub fn uploads(&self) -> Vec<(String, std::time::SystemTime)> {
        let Ok(entries) = fs::read_dir(self.root.join("uploads")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let id = e.file_name().into_string().ok()?;
                let modified = fs::metadata(e.path().join("data"))
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                Some((id, modified))
            })
            .collect()
    }

    pub fn remove_upload(&self, id: &str) -> Result<()> {
        let dir = self.upload_dir(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }
}
