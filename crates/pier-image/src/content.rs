//! The content store: immutable blobs addressed by digest.
//!
//! Modelled on containerd's content store. On disk, under the store's root:
//!
//! ```text
//! blobs/sha256/<hex>     committed blobs (mode 0444), named by their digest
//! blobs/sha512/<hex>
//! ingest/                in-progress writes and other temp files (same filesystem,
//!                        so the final rename is atomic)
//! leases/<name>.json     leases: named sets of digests that GC must keep
//! gc.lock, leases.lock   flock(2) files serialising GC against commits and leases
//! ```
//!
//! Directories are created `0700`, temp and lease files `0600`.
//!
//! **Writing.** [`ContentStore::writer`] streams into a temp file under `ingest/` while
//! hashing and counting. [`Writer::commit`] checks size and digest against what the
//! caller expected, fsyncs, and renames into `blobs/` — so a blob file either does not
//! exist or holds exactly the bytes its name promises. Anything that fails
//! verification is removed; a dropped writer removes its temp file. Two writers of the
//! same blob both succeed: the second finds the blob present and discards its own
//! (already verified) copy.
//!
//! **Reading.** Blobs are not trusted blindly: [`ContentStore::open_verified`] checks
//! the on-disk size against the descriptor the caller holds (cheap, catches
//! truncation), [`ContentStore::read`] re-hashes the small blobs it returns whole
//! (manifests, configs), and [`ContentStore::verify`] re-hashes any blob on demand.
//!
//! **Garbage collection.** [`ContentStore::gc`] removes every blob that is neither in
//! the caller's `roots` nor held by a live [`Lease`]. The store does not understand
//! images: computing `roots` — every manifest, index, config and layer that some
//! image or container references — is the image layer's job. In-flight operations
//! (a pull, an import) hold a lease for their whole duration so that blobs they have
//! written, but not yet linked into an image, survive a concurrent GC.
//! [`ContentStore::usage`] applies exactly the same rule, so what `system df` reports
//! as reclaimable is what GC would free.

mod gc;
mod lease;
mod writer;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};

pub use gc::{GcReport, Usage, DEFAULT_INGEST_MAX_AGE};
pub use lease::Lease;
pub use writer::Writer;

/// Mode of the store's directories: the store is private to the daemon.
const DIR_MODE: u32 = 0o700;
/// Mode of committed blobs: content-addressed data is never modified in place.
const BLOB_MODE: u32 = 0o444;
/// Mode of temp, lease and lock files.
const FILE_MODE: u32 = 0o600;
/// Read/hash buffer size.
const BUF_SIZE: usize = 64 * 1024;

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// A blob's identity: its digest and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Descriptor {
    pub digest: Digest,
    pub size: u64,
}

/// A content store rooted at a directory. Cheap to clone; clones share the directory
/// and coordinate with each other (and with other processes) through file locks.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens the store at `root`, creating it and its subdirectories if missing.
    pub fn open(root: &Path) -> Result<ContentStore> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)
            .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let store = ContentStore {
            root: root.to_path_buf(),
        };
        let mut dirs = vec![
            store.root.join("blobs"),
            store.ingest_dir(),
            store.leases_dir(),
        ];
        dirs.extend(ALGORITHMS.iter().map(|&a| store.blobs_dir(a)));
        for dir in dirs {
            create_dir(&dir)?;
        }
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts writing a blob. With `expected = Some((digest, size))` the content is
    /// hashed with the digest's algorithm and [`Writer::commit`] rejects anything that
    /// differs (writes past `size` fail at once). Without it the blob is hashed with
    /// sha256 and stored under whatever digest it turns out to have.
    pub fn writer(&self, expected: Option<(&Digest, u64)>) -> Result<Writer> {
        Writer::new(self.clone(), expected)
    }

    /// Writes `bytes` as one blob, verified against `expected` if given.
    pub fn put(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Descriptor> {
        let mut w = self.writer(expected.map(|d| (d, bytes.len() as u64)))?;
        io::Write::write_all(&mut w, bytes).map_err(|e| w.write_error(e))?;
        w.commit()
    }

    /// Opens a committed blob for reading, without any verification. Prefer
    /// [`open_verified`](Self::open_verified) when the expected size is known.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => not_found(digest),
            _ => Error::io(format!("open {}", path.display()), e),
        })
    }

    /// Opens a blob after checking its on-disk size against `desc.size`: a cheap check
    /// that catches truncated or replaced files before anyone streams them.
    pub fn open_verified(&self, desc: &Descriptor) -> Result<File> {
        let file = self.open_blob(&desc.digest)?;
        let size = file
            .metadata()
            .map_err(|e| {
                Error::io(
                    format!("stat {}", self.blob_path(&desc.digest).display()),
                    e,
                )
            })?
            .len();
        if size != desc.size {
            return Err(size_mismatch(&desc.digest, desc.size, size));
        }
        Ok(file)
    }

    /// Reads a whole blob into memory and re-hashes it, so a blob corrupted on disk is
    /// never returned. Meant for small blobs (manifests, indexes, configs): it holds
    /// the entire blob in memory.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut file = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("read {}", self.blob_path(digest).display()), e))?;
        let mut hasher = Hasher::new(digest.algorithm());
        hasher.update(&bytes);
        check_digest(digest, &hasher.finish())?;
        Ok(bytes)
    }

    /// The descriptor of a committed blob, its size taken from the filesystem.
    pub fn info(&self, digest: &Digest) -> Result<Descriptor> {
        let path = self.blob_path(digest);
        let meta = fs::metadata(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => not_found(digest),
            _ => Error::io(format!("stat {}", path.display()), e),
        })?;
        Ok(Descriptor {
            digest: digest.clone(),
            size: meta.len(),
        })
    }

    /// Whether a blob with this digest is committed. Says nothing about its integrity.
    pub fn exists(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Re-hashes a blob in full, streaming; `Err(Mismatch)` if its content no longer
    /// matches its digest. A corrupt blob is left in place for the caller to
    /// [`delete`](Self::delete) and fetch again.
    pub fn verify(&self, digest: &Digest) -> Result<()> {
        let mut file = self.open_blob(digest)?;
        let mut hasher = Hasher::new(digest.algorithm());
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let path = self.blob_path(digest);
                    return Err(Error::io(format!("read {}", path.display()), e));
                }
            };
            hasher.update(&buf[..n]);
        }
        check_digest(digest, &hasher.finish())
    }

    /// Every committed blob, sorted by digest. Stray files whose names are not digests
    /// are ignored.
    pub fn list(&self) -> Result<Vec<Descriptor>> {
        let mut out = Vec::new();
        for alg in ALGORITHMS {
            let dir = self.blobs_dir(alg);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(digest) = format!("{}:{name}", alg.name()).parse::<Digest>() else {
                    continue;
                };
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    // Removed by a concurrent GC between readdir and stat.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(format!("stat {}", entry.path().display()), e)),
                };
                if meta.is_file() {
                    out.push(Descriptor {
                        digest,
                        size: meta.len(),
                    });
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes one blob regardless of roots and leases. Meant for discarding a blob
    /// that failed [`verify`](Self::verify) so it can be fetched again; ordinary
    /// removal goes through [`gc`](Self::gc).
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        fs::remove_file(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => not_found(digest),
            _ => Error::io(format!("remove {}", path.display()), e),
        })
    }

    fn blobs_dir(&self, alg: Algorithm) -> PathBuf {
        self.root.join("blobs").join(alg.name())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        // The hex is validated by `Digest`, so it is always a safe file name.
        self.blobs_dir(digest.algorithm()).join(digest.hex())
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    fn leases_dir(&self) -> PathBuf {
        self.root.join("leases")
    }

    /// Creates a new, uniquely named temp file under `ingest/`.
    fn create_temp(&self, prefix: &str) -> Result<(File, PathBuf)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{prefix}-{}-{nanos}-{n}.tmp", std::process::id());
            let path = self.ingest_dir().join(name);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
            {
                Ok(file) => return Ok((file, path)),
                // Another process with a recycled pid picked the same name: try again.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("create {}", path.display()), e)),
            }
        }
    }

    /// Writes a small file atomically: temp file, fsync, rename, fsync of the directory.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let (mut file, temp) = self.create_temp("file")?;
        let result = (|| {
            io::Write::write_all(&mut file, bytes)
                .map_err(|e| Error::io(format!("write {}", temp.display()), e))?;
            file.sync_all()
                .map_err(|e| Error::io(format!("sync {}", temp.display()), e))?;
            fs::rename(&temp, dest).map_err(|e| {
                Error::io(
                    format!("rename {} to {}", temp.display(), dest.display()),
                    e,
                )
            })?;
            sync_parent(dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Takes a flock(2) on `<root>/<name>`, held until the returned file is dropped.
    /// flock locks belong to the open file description, so this serialises threads of
    /// one process as well as separate processes.
    fn lock(&self, name: &str, exclusive: bool) -> Result<File> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        loop {
            match rustix::fs::flock(&file, op) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io(format!("lock {}", path.display()), e.into())),
            }
        }
    }

    /// Held shared by commits and lease changes, exclusively by GC: GC sees a stable
    /// set of blobs and leases, and never deletes a blob between its commit and its
    /// registration in a lease.
    fn gc_lock(&self, exclusive: bool) -> Result<File> {
        self.lock("gc.lock", exclusive)
    }

    /// Serialises read-modify-write of lease files.
    fn leases_lock(&self) -> Result<File> {
        self.lock("leases.lock", true)
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::io(format!("create {}", dir.display()), e)),
    }
}

/// fsyncs the directory containing `path`, making a rename or create in it durable.
fn sync_parent(path: &Path) -> Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("sync {}", dir.display()), e))
}

fn not_found(digest: &Digest) -> Error {
    Error::NotFound(format!("blob {digest} not found"))
}

fn size_mismatch(digest: &Digest, expected: u64, actual: impl std::fmt::Display) -> Error {
    Error::Mismatch {
        what: format!("blob {digest}"),
        expected: format!("size {expected}"),
        actual: actual.to_string(),
    }
}

fn check_digest(expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(Error::Mismatch {
        what: format!("blob {expected}"),
        expected: format!("digest {expected}"),
        actual: actual.to_string(),
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
