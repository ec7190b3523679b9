//! Streaming, verifying blob writer.

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::{
    check_digest, size_mismatch, sync_parent, ContentStore, Descriptor, BLOB_MODE, BUF_SIZE,
};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};

/// An in-progress blob write, created by [`ContentStore::writer`].
///
/// Bytes written go to a temp file under `ingest/` and through the hasher. Nothing is
/// visible under `blobs/` until [`commit`](Writer::commit) has verified the content.
/// Dropping the writer (or [`abort`](Writer::abort)) removes the temp file.
#[derive(Debug)]
pub struct Writer {
    store: ContentStore,
    /// `None` once committed or aborted.
    file: Option<BufWriter<File>>,
    /// The temp file, while it is ours to remove.
    temp: Option<PathBuf>,
    /// `None` once committed.
    hasher: Option<Hasher>,
    written: u64,
    expected: Option<Descriptor>,
    /// A write would have gone past the expected size; the blob can never commit.
    overflowed: bool,
    lease: Option<String>,
}

impl Writer {
    pub(super) fn new(store: ContentStore, expected: Option<(&Digest, u64)>) -> Result<Writer> {
        let expected = expected.map(|(digest, size)| Descriptor {
            digest: digest.clone(),
            size,
        });
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, |d| d.digest.algorithm());
        let (file, temp) = store.create_temp("blob")?;
        Ok(Writer {
            store,
            file: Some(BufWriter::with_capacity(BUF_SIZE, file)),
            temp: Some(temp),
            hasher: Some(Hasher::new(algorithm)),
            written: 0,
            expected,
            overflowed: false,
            lease: None,
        })
    }

    /// Adds the blob to lease `name` as part of the commit, atomically with respect to
    /// GC: there is no moment when the blob exists unprotected. The lease must exist
    /// when [`commit`](Writer::commit) runs, or the commit fails and writes nothing.
    pub fn set_lease(&mut self, name: impl Into<String>) {
        self.lease = Some(name.into());
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The descriptor this writer was told to expect, if any.
    pub fn expected(&self) -> Option<&Descriptor> {
        self.expected.as_ref()
    }

    /// Verifies the content and makes it a committed blob.
    ///
    /// Fails with [`Error::Mismatch`] if an expected size or digest was given and the
    /// content differs; nothing is left behind then. If the blob already exists (a
    /// concurrent or earlier writer), this writer's verified copy is discarded and the
    /// commit succeeds. An existing file of the wrong size is treated as damaged and
    /// atomically replaced.
    pub fn commit(mut self) -> Result<Descriptor> {
        let temp = self.temp_path()?;
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::io("commit", io::Error::other("writer already finished")))?;
        let file = file
            .into_inner()
            .map_err(|e| Error::io(format!("write {}", temp.display()), e.into_error()))?;
        let hasher = self
            .hasher
            .take()
            .ok_or_else(|| Error::io("commit", io::Error::other("writer already finished")))?;
        let digest = hasher.finish();
        if let Some(exp) = &self.expected {
            if self.overflowed {
                return Err(size_mismatch(
                    &exp.digest,
                    exp.size,
                    format!("more than {}", exp.size),
                ));
            }
            if self.written != exp.size {
                return Err(size_mismatch(&exp.digest, exp.size, self.written));
            }
            check_digest(&exp.digest, &digest)?;
        }
        let desc = Descriptor {
            digest,
            size: self.written,
        };

        // Data must be on disk before the rename makes it visible under its digest,
        // or a crash could leave a named blob with garbage in it.
        file.sync_all()
            .map_err(|e| Error::io(format!("sync {}", temp.display()), e))?;
        file.set_permissions(Permissions::from_mode(BLOB_MODE))
            .map_err(|e| Error::io(format!("chmod {}", temp.display()), e))?;
        drop(file);

        let _gc = self.store.gc_lock(false)?;
        let leased = match &self.lease {
            Some(name) => {
                let guard = self.store.leases_lock()?;
                // Load first: a missing lease fails the commit before anything is
                // published.
                let lease = self.store.load_lease(name)?;
                Some((guard, lease))
            }
            None => None,
        };

        let target = self.store.blob_path(&desc.digest);
        let present = match fs::symlink_metadata(&target) {
            Ok(meta) => meta.is_file() && meta.len() == desc.size,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(format!("stat {}", target.display()), e)),
        };
        if present {
            // Someone else committed the same digest. Our copy was verified above, so
            // theirs (same digest, same size, written the same way) is kept and ours
            // is dropped; renaming over it would also be correct, just more work.
            self.discard();
        } else {
            fs::rename(&temp, &target).map_err(|e| {
                Error::io(
                    format!("rename {} to {}", temp.display(), target.display()),
                    e,
                )
            })?;
            self.temp = None;
        }
        // Also when discarding: the other writer may not have synced the directory yet,
        // and we are about to report the blob as durable.
        sync_parent(&target)?;

        if let Some((_guard, mut lease)) = leased {
            if lease.digests.insert(desc.digest.clone()) {
                self.store.save_lease(&lease)?;
            }
        }
        Ok(desc)
    }

    /// Abandons the write and removes the temp file. Dropping the writer does the same
    /// but cannot report a failure.
    pub fn abort(mut self) -> Result<()> {
        self.file = None;
        match self.temp.take() {
            Some(temp) => match fs::remove_file(&temp) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("remove {}", temp.display()), e)),
            },
            None => Ok(()),
        }
    }

    /// Turns an error from [`Write`] on this writer into the store's error type: a
    /// size overflow becomes [`Error::Mismatch`], anything else an I/O error naming the
    /// temp file.
    pub(super) fn write_error(&self, e: io::Error) -> Error {
        match (&self.expected, self.overflowed) {
            (Some(exp), true) => {
                size_mismatch(&exp.digest, exp.size, format!("more than {}", exp.size))
            }
            _ => {
                let path = self
                    .temp
                    .as_ref()
                    .map_or_else(|| "blob".to_string(), |p| p.display().to_string());
                Error::io(format!("write {path}"), e)
            }
        }
    }

    fn temp_path(&self) -> Result<PathBuf> {
        self.temp
            .clone()
            .ok_or_else(|| Error::io("commit", io::Error::other("writer already finished")))
    }

    fn discard(&mut self) {
        self.file = None;
        if let Some(temp) = self.temp.take() {
            // Best effort: a leftover is a stale ingest file that GC removes later.
            let _ = fs::remove_file(temp);
        }
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (Some(file), Some(hasher)) = (self.file.as_mut(), self.hasher.as_mut()) else {
            return Err(io::Error::other("blob writer already finished"));
        };
        if let Some(exp) = &self.expected {
            // Fail early: no point streaming gigabytes into a blob that cannot commit.
            if self.written + buf.len() as u64 > exp.size {
                self.overflowed = true;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {}: expected size {}, got more", exp.digest, exp.size),
                ));
            }
        }
        let n = file.write(buf)?;
        hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.discard();
    }
}
