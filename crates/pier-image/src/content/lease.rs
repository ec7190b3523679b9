//! Leases: named, persistent sets of digests that garbage collection must keep.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{unix_now, ContentStore};
use crate::digest::Digest;
use crate::error::{Error, Result};

const MAX_NAME_LEN: usize = 128;

/// A named set of digests protected from garbage collection.
///
/// An in-flight operation (pull, import, build) creates a lease first, adds each blob
/// to it as it goes (ideally through [`Writer::set_lease`](super::Writer::set_lease),
/// which does so atomically with the commit), and deletes the lease once the blobs
/// are reachable from an image. A digest may be leased before its blob exists.
///
/// Stored as `leases/<name>.json`, rewritten atomically on every change. A lease with
/// an expiry stops protecting anything once it expires and is deleted by the next GC,
/// so an operation that crashed does not pin its blobs forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Expiry time, seconds since the Unix epoch; `None` lives until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    pub digests: BTreeSet<Digest>,
}

impl Lease {
    /// Whether the lease has expired at `now` (seconds since the Unix epoch).
    pub fn is_expired_at(&self, now: u64) -> bool {
        self.expires.is_some_and(|t| now >= t)
    }
}

impl ContentStore {
    /// Creates an empty lease that lives until deleted. `Err(Conflict)` if it exists.
    pub fn create_lease(&self, name: &str) -> Result<Lease> {
        self.new_lease(name, None)
    }

    /// Creates an empty lease that stops protecting its blobs after `ttl`.
    pub fn create_lease_expiring(&self, name: &str, ttl: Duration) -> Result<Lease> {
        self.new_lease(name, Some(ttl))
    }

    /// Adds `digest` to lease `name`. Once this returns, GC will not remove that blob
    /// while the lease lives. A GC that ran just before may already have removed it,
    /// so callers lease first and check [`exists`](Self::exists) afterwards.
    pub fn add_to_lease(&self, name: &str, digest: &Digest) -> Result<()> {
        let _gc = self.gc_lock(false)?;
        let _leases = self.leases_lock()?;
        let mut lease = self.load_lease(name)?;
        if lease.digests.insert(digest.clone()) {
            self.save_lease(&lease)?;
        }
        Ok(())
    }

    /// Removes `digest` from lease `name` (no error if it was not in it).
    pub fn remove_from_lease(&self, name: &str, digest: &Digest) -> Result<()> {
        let _leases = self.leases_lock()?;
        let mut lease = self.load_lease(name)?;
        if lease.digests.remove(digest) {
            self.save_lease(&lease)?;
        }
        Ok(())
    }

    /// Deletes a lease; its blobs become collectable unless otherwise held.
    pub fn delete_lease(&self, name: &str) -> Result<()> {
        let _leases = self.leases_lock()?;
        let path = self.lease_path(name)?;
        fs::remove_file(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => lease_not_found(name),
            _ => Error::io(format!("remove {}", path.display()), e),
        })
    }

    /// One lease by name.
    pub fn lease(&self, name: &str) -> Result<Lease> {
        self.load_lease(name)
    }

    /// All leases, expired ones included, sorted by name.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        let dir = self.leases_dir();
        let entries =
            fs::read_dir(&dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if validate_name(name).is_err() {
                continue;
            }
            match self.load_lease(name) {
                Ok(lease) => out.push(lease),
                // Deleted between readdir and read.
                Err(Error::NotFound(_)) => continue,
                // Anything else must stop GC: an unreadable lease may hold blobs.
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn new_lease(&self, name: &str, ttl: Option<Duration>) -> Result<Lease> {
        let _leases = self.leases_lock()?;
        let path = self.lease_path(name)?;
        if path.exists() {
            return Err(Error::Conflict(format!("lease {name} already exists")));
        }
        let created = unix_now();
        let lease = Lease {
            name: name.to_string(),
            created,
            expires: ttl.map(|t| created.saturating_add(t.as_secs())),
            digests: BTreeSet::new(),
        };
        self.save_lease(&lease)?;
        Ok(lease)
    }

    pub(super) fn load_lease(&self, name: &str) -> Result<Lease> {
        let path = self.lease_path(name)?;
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => lease_not_found(name),
            _ => Error::io(format!("read {}", path.display()), e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::io(
                format!("parse {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Callers hold the leases lock.
    pub(super) fn save_lease(&self, lease: &Lease) -> Result<()> {
        let path = self.lease_path(&lease.name)?;
        let bytes = serde_json::to_vec_pretty(lease).map_err(|e| {
            Error::io(
                format!("encode {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        self.write_atomic(&path, &bytes)
    }

    fn lease_path(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(self.leases_dir().join(format!("{name}.json")))
    }
}

/// Lease names become file names: keep them to a safe alphabet.
fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid lease name {name:?}: use 1-{MAX_NAME_LEN} of [A-Za-z0-9._-], not starting with '.'"
        )))
    }
}

fn lease_not_found(name: &str) -> Error {
    Error::NotFound(format!("lease {name} not found"))
}
