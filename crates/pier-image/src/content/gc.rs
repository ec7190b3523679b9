//! Garbage collection and disk usage, both by one reachability rule.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{unix_now, ContentStore, Descriptor, Lease};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// How long an ingest file may go unmodified before GC treats its writer as dead.
/// Active writers touch their file with every buffer flushed, so this bounds a stall,
/// not a download.
pub const DEFAULT_INGEST_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs removed, sorted by digest.
    pub removed: Vec<Descriptor>,
    /// Sum of the removed blobs' sizes; equals the `reclaimable_bytes` that
    /// [`ContentStore::usage`] reported for the same roots just before.
    pub bytes_freed: u64,
    /// Names of expired leases deleted.
    pub expired_leases: Vec<String>,
    /// Stale ingest files (abandoned writes, crashed temp files) removed.
    pub ingest_files_removed: usize,
    /// Their total size, not included in `bytes_freed`.
    pub ingest_bytes_freed: u64,
}

/// Disk usage of the store, for `system df`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Total size of committed blobs.
    pub total_bytes: u64,
    /// Size of the blobs [`ContentStore::gc`] with the same roots would remove.
    pub reclaimable_bytes: u64,
    /// Number of committed blobs.
    pub blob_count: usize,
    /// Number of blobs GC would remove.
    pub reclaimable_count: usize,
    /// Size of in-progress (or abandoned) writes under `ingest/`.
    pub ingest_bytes: u64,
}

impl ContentStore {
    /// Removes every blob that is neither in `roots` nor held by a live lease, deletes
    /// expired leases, and removes ingest files untouched for
    /// [`DEFAULT_INGEST_MAX_AGE`].
    ///
    /// `roots` must contain every blob that images and containers reference —
    /// manifests, indexes, configs and layers. The store does not parse manifests;
    /// walking them is the image layer's job. Anything missing from `roots` and from
    /// every lease is deleted.
    pub fn gc(&self, roots: &HashSet<Digest>) -> Result<GcReport> {
        self.gc_with(roots, DEFAULT_INGEST_MAX_AGE)
    }

    /// [`gc`](Self::gc) with a custom age after which ingest files count as abandoned.
    pub fn gc_with(&self, roots: &HashSet<Digest>, ingest_max_age: Duration) -> Result<GcReport> {
        // Exclusive: no commit or lease addition can interleave with the
        // read-leases / list / delete sequence below.
        let _gc = self.gc_lock(true)?;
        let now = unix_now();
        let leases = self.leases()?;
        let mut report = GcReport::default();
        for lease in leases.iter().filter(|l| l.is_expired_at(now)) {
            match self.delete_lease(&lease.name) {
                Ok(()) | Err(Error::NotFound(_)) => report.expired_leases.push(lease.name.clone()),
                Err(e) => return Err(e),
            }
        }
        let held = held(roots, &leases, now);
        for desc in self.list()? {
            if held.contains(&desc.digest) {
                continue;
            }
            let path = self.blob_path(&desc.digest);
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.bytes_freed += desc.size;
                    report.removed.push(desc);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
            }
        }
        self.collect_ingest(ingest_max_age, &mut report)?;
        Ok(report)
    }

    /// Disk usage by the same rule as [`gc`](Self::gc): a blob is reclaimable iff it is
    /// in neither `roots` nor a live lease.
    pub fn usage(&self, roots: &HashSet<Digest>) -> Result<Usage> {
        // Shared: a consistent view against a concurrent GC.
        let _gc = self.gc_lock(false)?;
        let leases = self.leases()?;
        let held = held(roots, &leases, unix_now());
        let mut usage = Usage::default();
        for desc in self.list()? {
            usage.total_bytes += desc.size;
            usage.blob_count += 1;
            if !held.contains(&desc.digest) {
                usage.reclaimable_bytes += desc.size;
                usage.reclaimable_count += 1;
            }
        }
        usage.ingest_bytes = self.ingest_files()?.iter().map(|(_, size, _)| size).sum();
        Ok(usage)
    }

    fn collect_ingest(&self, max_age: Duration, report: &mut GcReport) -> Result<()> {
        let now = SystemTime::now();
        for (path, size, modified) in self.ingest_files()? {
            // A timestamp in the future (clock step) counts as fresh.
            let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
            if age < max_age {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.ingest_files_removed += 1;
                    report.ingest_bytes_freed += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
            }
        }
        Ok(())
    }

    /// Regular files under `ingest/` with their sizes and modification times.
    fn ingest_files(&self) -> Result<Vec<(std::path::PathBuf, u64, SystemTime)>> {
        let dir = self.ingest_dir();
        let entries =
            fs::read_dir(&dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Committed (renamed away) or removed since readdir.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("stat {}", entry.path().display()), e)),
            };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((entry.path(), meta.len(), modified));
        }
        Ok(out)
    }
}

/// The reachability rule shared by GC and usage: roots plus live leases.
fn held(roots: &HashSet<Digest>, leases: &[Lease], now: u64) -> HashSet<Digest> {
    let mut held = roots.clone();
    for lease in leases.iter().filter(|l| !l.is_expired_at(now)) {
        held.extend(lease.digests.iter().cloned());
    }
    held
}
