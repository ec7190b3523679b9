//! Garbage collection: deletes blobs no manifest of any repository references.
//!
//! Mark: every manifest revision of every repository is live (tags point at revisions;
//! a tag delete leaves the manifest, a manifest delete removes the revision), with its
//! config, layers and, for an index, its children and theirs. Sweep: every stored blob
//! not marked and older than the grace period is removed with its repository links.
//!
//! Online, the server keeps serving throughout: marking reads without a lock; the sweep
//! takes the write side of the store's GC lock, which every blob commit, mount and
//! manifest push holds the read side of, marks the manifests that arrived meanwhile,
//! and only then deletes. A blob pushed or mounted for a manifest still to come is
//! younger than the grace period (linking renews its modification time), and uploads in
//! progress live apart from the blobs, so neither is ever touched.
//!
//! Uploads abandoned by their clients (data untouched for [`UPLOAD_EXPIRY`]) are
//! removed too; online, never one a request is working on.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use pier_image::digest::Digest;

use crate::error::Result;
use crate::manifest;
use crate::names::RepoName;
use crate::storage::Store;

/// How long an upload may sit untouched before it counts as abandoned.
pub const UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Uploads whose data was last written more than `max_age` ago.
pub fn stale_uploads(store: &Store, max_age: Duration) -> Vec<String> {
    let now = SystemTime::now();
    store
        .uploads()
        .into_iter()
        .filter(|(_, modified)| now.duration_since(*modified).unwrap_or_default() > max_age)
        .map(|(id, _)| id)
        .collect()
}

#[derive(Debug, Default)]
pub struct Report {
    /// Blobs kept because something references them.
    pub live: usize,
    /// Unreferenced blobs kept because they are younger than the grace period.
    pub young: usize,
    /// Blobs deleted (or, dry, that would be), with their sizes.
    pub deleted: Vec<(Digest, u64)>,
    /// Abandoned uploads removed (or, dry, that would be).
    pub uploads: Vec<String>,
}

/// Every (repository, manifest) pair in the store.
fn all_revisions(store: &Store) -> Result<HashSet<(String, Digest)>> {
    let mut out = HashSet::new();
    for repo in store.repositories()? {
        if let Ok(name) = RepoName::parse(&repo) {
            for d in store.revisions(&name) {
                out.insert((repo.clone(), d));
            }
        }
    }
    Ok(out)
}

/// Marks a manifest, the blobs it references and (an index) its children.
fn mark(store: &Store, repo: &RepoName, digest: &Digest, live: &mut HashSet<Digest>) -> Result<()> {
    if !live.insert(digest.clone()) {
        return Ok(());
    }
    let media_type = store.manifest_media_type(repo, digest)?;
    let Some(bytes) = store.read_blob(digest)? else {
        return Ok(());
    };
    let Ok(parsed) = manifest::parse(media_type.as_deref(), &bytes) else {
        return Ok(());
    };
    let m = &parsed.manifest;
    for d in m.config.iter().chain(&m.layers) {
        live.insert(d.digest.clone());
    }
    for child in &m.manifests {
        mark(store, repo, &child.digest, live)?;
    }
    Ok(())
}

/// Runs one collection. `lock` is the store's GC lock when the server is running;
/// `dry_run` reports without deleting.
pub fn collect(
    store: &Store,
    lock: Option<&RwLock<()>>,
    grace: Duration,
    dry_run: bool,
) -> Result<Report> {
    let mut live = HashSet::new();
    let seen = all_revisions(store)?;
    for (repo, d) in &seen {
        if let Ok(name) = RepoName::parse(repo) {
            mark(store, &name, d, &mut live)?;
        }
    }
    let _guard = lock.map(|l| l.write().unwrap_or_else(|e| e.into_inner()));
    // Manifests pushed while marking.
    for (repo, d) in all_revisions(store)?.difference(&seen) {
        if let Ok(name) = RepoName::parse(repo) {
            mark(store, &name, d, &mut live)?;
        }
    }
    let now = SystemTime::now();
    let mut report = Report::default();
    for (digest, size, modified) in store.blobs() {
        if live.contains(&digest) {
            report.live += 1;
            continue;
        }
        if now.duration_since(modified).unwrap_or_default() < grace {
            report.young += 1;
            continue;
        }
        if !dry_run {
            store.remove_blob(&digest)?;
        }
        report.deleted.push((digest, size));
    }
    Ok(report)
}

impl Report {
    /// The report as one JSON log line.
    pub fn to_json(&self, dry_run: bool) -> serde_json::Value {
        serde_json::json!({
            "msg": "gc",
            "dry_run": dry_run,
            "live": self.live,
            "young": self.young,
            "deleted": self.deleted.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>(),
            "bytes_freed": self.deleted.iter().map(|(_, s)| s).sum::<u64>(),
            "uploads_removed": self.uploads,
        })
    }
}
