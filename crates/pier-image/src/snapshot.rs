//! The overlayfs snapshotter (modelled on containerd's).
//!
//! Every image layer is unpacked once into a *committed* snapshot named by its ChainID,
//! so images sharing a base share its snapshots; each container gets an *active*
//! read-write snapshot on top of its image's top chain id; *views* are read-only
//! mounts of a committed chain.
//!
//! Layout under `root`:
//! - `snapshots/<id>/fs`: the snapshot's contents (a layer's extracted tree, or a
//!   container's overlay upper dir); `<id>` is a short decimal number, so that the
//!   legacy `mount(2)` fallback can name 100+ lower dirs within one page of options.
//! - `snapshots/<id>/work`: the overlay work dir of an active snapshot (same filesystem
//!   as its upper dir, as overlayfs requires).
//! - `metadata.json`: the records (key/name → id, kind, parent), rewritten atomically
//!   (temp file + fsync + rename + directory fsync) while holding an exclusive `flock` on
//!   `metadata.lock`, so several processes may share one root.
//!
//! Keys of active snapshots/views and names of committed snapshots share one namespace.
//!
//! Mounting uses the new mount API (`fsopen("overlay")`, one `fsconfig lowerdir+` per
//! layer, which has no length limit; Linux ≥ 6.8), falling back to `mount(2)` with short
//! relative lower dir names (`1/fs:2/fs:...`) resolved from the snapshots directory (the
//! fallback runs on a helper thread that unshares its cwd, so the process's cwd is never
//! touched).

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::digest::Digest;
use crate::error::{Error, Result};

mod idmap;
pub use idmap::{as_mapped_root, IdMap};

/// The OCI ChainID of a stack of layers given their DiffIDs (bottom first):
/// `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
///
/// # Panics
/// Never; an empty slice yields the sha256 of the empty string (there is no chain).
pub fn chain_id(diff_ids: &[Digest]) -> Digest {
    let mut iter = diff_ids.iter();
    let Some(first) = iter.next() else {
        return Digest::sha256(b"");
    };
    let mut chain = first.clone();
    for diff in iter {
        chain = Digest::sha256(format!("{chain} {diff}").as_bytes());
    }
    chain
}

/// The ChainIDs of every prefix of `diff_ids` (bottom first); `chain_ids(d)[i]` is the
/// committed snapshot name of layer `i`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(prev) => Digest::sha256(format!("{prev} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The state of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Read-write, being extracted into or used as a container's upper dir.
    Active,
    /// Read-only view of a committed parent chain.
    View,
    /// Immutable; may be the parent of other snapshots.
    Committed,
}

/// What [`Snapshotter::stat`] and [`Snapshotter::list`] report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (active/view) or name (committed).
    pub name: String,
    pub kind: Kind,
    /// The committed parent's name.
    pub parent: Option<String>,
    /// The numeric directory id under `snapshots/`.
    pub id: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Disk usage of the snapshot's own dir, for committed snapshots (measured at
    /// commit).
    pub size: Option<u64>,
}

/// How to mount a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A bind mount of `source` (a snapshot without parents, or a view of one layer).
    Bind { source: PathBuf, readonly: bool },
    /// An overlay mount; `lowerdirs` top-most first. Without an upper dir it is read-only.
    Overlay {
        lowerdirs: Vec<PathBuf>,
        upperdir: Option<PathBuf>,
        workdir: Option<PathBuf>,
    },
}

impl MountSpec {
    /// Whether the mount is read-only.
    pub fn readonly(&self) -> bool {
        match self {
            MountSpec::Bind { readonly, .. } => *readonly,
            MountSpec::Overlay { upperdir, .. } => upperdir.is_none(),
        }
    }
}

/// Which kernel interface [`Snapshotter::mount_with`] uses for overlays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountApi {
    /// The new mount API, falling back to `mount(2)` when `fsopen`/`lowerdir+` fails.
    Auto,
    /// Only the new mount API (`fsopen`, `fsconfig lowerdir+`, `fsmount`, `move_mount`).
    New,
    /// Only `mount(2)` with short relative lower dir names.
    Legacy,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    id: u64,
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    created: u64,
    /// Disk usage of the `fs` dir, measured once at commit (committed snapshots never
    /// change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Metadata {
    next_id: u64,
    snapshots: BTreeMap<String, Record>,
}

impl Metadata {
    fn get(&self, key: &str) -> Result<&Record> {
        self.snapshots
            .get(key)
            .ok_or_else(|| Error::NotFound(format!("snapshot {key} does not exist")))
    }

    fn has_children(&self, name: &str) -> bool {
        self.snapshots
            .values()
            .any(|r| r.parent.as_deref() == Some(name))
    }

    /// Ids of the committed chain starting at `parent` (nearest first).
    fn chain(&self, parent: Option<&str>) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut cur = parent.map(str::to_string);
        while let Some(name) = cur {
            let rec = self.get(&name)?;
            out.push(rec.id);
            if out.len() > self.snapshots.len() {
                return Err(Error::Conflict(format!("snapshot {name}: parent cycle")));
            }
            cur = rec.parent.clone();
        }
        Ok(out)
    }
}

/// The overlayfs snapshotter; see the [module docs](self).
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
}

/// An exclusive `flock` on `metadata.lock`, released on drop (when the file closes).
struct Lock(#[allow(dead_code)] File);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |e| Error::io(context, e)
}

fn errno(context: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> Error {
    let context = context.into();
    move |e| Error::io(context, e.into())
}

impl Snapshotter {
    /// Opens (creating if needed) a snapshotter rooted at `root`, and removes snapshot
    /// directories that no record names (left by a crash).
    pub fn open(root: &Path) -> Result<Snapshotter> {
        let snapshots = root.join("snapshots");
        fs::create_dir_all(&snapshots)
            .map_err(io_err(format!("create {}", snapshots.display())))?;
        // Running containers' upper dirs live below: a setuid file made in a container
        // must not be reachable by host users (CVE-2021-41091), also in a store made
        // before this mode was set.
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("chmod {}", root.display())))?;
        let root = fs::canonicalize(root).map_err(io_err(format!("resolve {}", root.display())))?;
        let s = Snapshotter { root };
        let _lock = s.lock()?;
        let meta = s.load()?;
        let ids: HashSet<String> = meta.snapshots.values().map(|r| r.id.to_string()).collect();
        let dir = s.snapshots_dir();
        for entry in fs::read_dir(&dir).map_err(io_err(format!("read {}", dir.display())))? {
            let entry = entry.map_err(io_err(format!("read {}", dir.display())))?;
            let name = entry.file_name();
            if !ids.contains(name.to_string_lossy().as_ref()) {
                remove_tree(&entry.path())?;
            }
        }
        Ok(s)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.snapshots_dir().join(id.to_string())
    }

    fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    fn work_dir(&self, id: u64) -> PathBuf {
        self.dir(id).join("work")
    }

    fn lock(&self) -> Result<Lock> {
        let path = self.root.join("metadata.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("open {}", path.display())))?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(errno(format!("lock {}", path.display())))?;
        Ok(Lock(file))
    }

    fn load(&self) -> Result<Metadata> {
        let path = self.root.join("metadata.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::io(
                    format!("parse {}", path.display()),
                    io::Error::new(io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Metadata {
                next_id: 1,
                ..Metadata::default()
            }),
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    fn store(&self, meta: &Metadata) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(meta)
            .map_err(|e| Error::io("serialize snapshot metadata", io::Error::other(e)))?;
        crate::image::write_atomic(&self.root.join("metadata.json"), &bytes)
    }

    fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<(u64, Metadata)> {
        if key.is_empty() {
            return Err(Error::Conflict("snapshot key must not be empty".into()));
        }
        let _lock = self.lock()?;
        let mut meta = self.load()?;
        if meta.snapshots.contains_key(key) {
            return Err(Error::Conflict(format!("snapshot {key} already exists")));
        }
        if let Some(p) = parent {
            let rec = meta.get(p)?;
            if rec.kind != Kind::Committed {
                return Err(Error::Conflict(format!(
                    "parent snapshot {p} is not committed"
                )));
            }
        }
        let id = meta.next_id.max(1);
        meta.next_id = id + 1;
        let dir = self.dir(id);
        // A stale directory of this id cannot be named by a record; clear it.
        remove_tree(&dir)?;
        let fs_dir = self.fs_dir(id);
        fs::create_dir_all(&fs_dir).map_err(io_err(format!("create {}", fs_dir.display())))?;
        if kind == Kind::Active {
            let work = self.work_dir(id);
            fs::create_dir(&work).map_err(io_err(format!("create {}", work.display())))?;
        }
        meta.snapshots.insert(
            key.to_string(),
            Record {
                id,
                kind,
                parent: parent.map(str::to_string),
                created: now(),
                size: None,
            },
        );
        if let Err(e) = self.store(&meta) {
            let _ = remove_tree(&dir);
            return Err(e);
        }
        Ok((id, meta))
    }

    /// Creates an active snapshot `key` on top of the committed `parent` (a chain id) or
    /// on nothing, and returns its (empty) `fs` dir: extract a layer into it, or use it
    /// as a container's upper dir (see [`mounts`](Self::mounts)).
    pub fn prepare(&self, key: &str, parent: Option<&str>) -> Result<PathBuf> {
        let (id, _) = self.create(key, parent, Kind::Active)?;
        Ok(self.fs_dir(id))
    }

    /// Creates a read-only view `key` of the committed chain `parent` and returns its
    /// mount spec. Remove it with [`remove`](Self::remove) when done.
    pub fn view(&self, key: &str, parent: Option<&str>) -> Result<MountSpec> {
        let (id, meta) = self.create(key, parent, Kind::View)?;
        self.spec(&meta, id, Kind::View, parent)
    }

    /// Commits the active snapshot `key` as `name` (read-only from now on). If `name` is
    /// already committed (another pull won the race), `key` is discarded and this
    /// succeeds.
    pub fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.commit_inner(name, key, None)
    }

    /// [`commit`](Self::commit) that also sets the committed snapshot's parent to the
    /// committed `parent` (or none). Lets layers be extracted in parallel into
    /// parentless active snapshots and chained in order afterwards: a layer's contents
    /// (whiteouts included) do not depend on the layers below it.
    pub fn commit_onto(&self, name: &str, key: &str, parent: Option<&str>) -> Result<()> {
        self.commit_inner(name, key, Some(parent))
    }

    fn commit_inner(&self, name: &str, key: &str, parent: Option<Option<&str>>) -> Result<()> {
        if name.is_empty() {
            return Err(Error::Conflict("snapshot name must not be empty".into()));
        }
        // Measured before taking the lock: the active snapshot belongs to the caller.
        let size = {
            let id = {
                let _lock = self.lock()?;
                self.load()?.get(key)?.id
            };
            du(&self.fs_dir(id), &mut HashSet::new())?
        };
        let _lock = self.lock()?;
        let mut meta = self.load()?;
        let mut rec = meta.get(key)?.clone();
        if rec.kind != Kind::Active {
            return Err(Error::Conflict(format!("snapshot {key} is not active")));
        }
        if meta.has_children(key) {
            return Err(Error::Conflict(format!("snapshot {key} has children")));
        }
        if let Some(parent) = parent {
            if let Some(p) = parent {
                if meta.get(p)?.kind != Kind::Committed {
                    return Err(Error::Conflict(format!(
                        "parent snapshot {p} is not committed"
                    )));
                }
            }
            rec.parent = parent.map(str::to_string);
        }
        rec.size = Some(size);
        if let Some(existing) = meta.snapshots.get(name) {
            if existing.kind != Kind::Committed || name == key {
                return Err(Error::Conflict(format!("snapshot {name} already exists")));
            }
            // Lost the race: drop the duplicate.
            meta.snapshots.remove(key);
            self.store(&meta)?;
            return remove_tree(&self.dir(rec.id));
        }
        meta.snapshots.remove(key);
        meta.snapshots.insert(
            name.to_string(),
            Record {
                kind: Kind::Committed,
                created: now(),
                ..rec.clone()
            },
        );
        // Lower dirs need no work dir.
        remove_tree(&self.work_dir(rec.id))?;
        self.store(&meta)
    }

    /// The snapshot `name` (key or committed name), if any.
    pub fn stat(&self, name: &str) -> Result<Option<Info>> {
        let _lock = self.lock()?;
        let meta = self.load()?;
        Ok(meta.snapshots.get(name).map(|r| info(name, r)))
    }

    /// Whether a snapshot (of any kind) named `name` exists; errors count as absent.
    pub fn exists(&self, name: &str) -> bool {
        matches!(self.stat(name), Ok(Some(_)))
    }

    /// All snapshots, sorted by name.
    pub fn list(&self) -> Result<Vec<Info>> {
        let _lock = self.lock()?;
        let meta = self.load()?;
        Ok(meta.snapshots.iter().map(|(k, r)| info(k, r)).collect())
    }

    /// The disk usage of the snapshot's own `fs` dir in bytes (allocated blocks; hard
    /// links counted once; parents not included).
    pub fn usage(&self, name: &str) -> Result<u64> {
        let rec = {
            let _lock = self.lock()?;
            self.load()?.get(name)?.clone()
        };
        match rec.size {
            Some(size) if rec.kind == Kind::Committed => Ok(size),
            _ => du(&self.fs_dir(rec.id), &mut HashSet::new()),
        }
    }

    /// The `fs` dir of a snapshot (its contents; for an active snapshot with parents,
    /// the overlay upper dir).
    pub fn fs_path(&self, name: &str) -> Result<PathBuf> {
        let _lock = self.lock()?;
        Ok(self.fs_dir(self.load()?.get(name)?.id))
    }

    /// How to mount the active snapshot or view `key`.
    pub fn mounts(&self, key: &str) -> Result<MountSpec> {
        let _lock = self.lock()?;
        let meta = self.load()?;
        let rec = meta.get(key)?;
        self.spec(&meta, rec.id, rec.kind, rec.parent.as_deref())
    }

    fn spec(
        &self,
        meta: &Metadata,
        id: u64,
        kind: Kind,
        parent: Option<&str>,
    ) -> Result<MountSpec> {
        let lowers: Vec<PathBuf> = meta
            .chain(parent)?
            .into_iter()
            .map(|i| self.fs_dir(i))
            .collect();
        Ok(match kind {
            Kind::Committed => {
                return Err(Error::Conflict(
                    "a committed snapshot cannot be mounted; create a view".into(),
                ))
            }
            Kind::Active if lowers.is_empty() => MountSpec::Bind {
                source: self.fs_dir(id),
                readonly: false,
            },
            Kind::Active => MountSpec::Overlay {
                lowerdirs: lowers,
                upperdir: Some(self.fs_dir(id)),
                workdir: Some(self.work_dir(id)),
            },
            Kind::View if lowers.len() <= 1 => MountSpec::Bind {
                source: lowers.into_iter().next().unwrap_or_else(|| self.fs_dir(id)),
                readonly: true,
            },
            Kind::View => MountSpec::Overlay {
                lowerdirs: lowers,
                upperdir: None,
                workdir: None,
            },
        })
    }

    /// Mounts the active snapshot or view `key` on `target` (an existing directory).
    pub fn mount(&self, key: &str, target: &Path) -> Result<()> {
        self.mount_with(key, target, MountApi::Auto)
    }

    /// [`mount`](Self::mount) with a choice of kernel interface.
    pub fn mount_with(&self, key: &str, target: &Path, api: MountApi) -> Result<()> {
        let spec = self.mounts(key)?;
        match &spec {
            MountSpec::Bind { source, readonly } => mount_bind(source, target, *readonly),
            MountSpec::Overlay {
                lowerdirs,
                upperdir,
                workdir,
            } => {
                let (upper, work) = (upperdir.as_deref(), workdir.as_deref());
                match api {
                    MountApi::New => {
                        mount_overlay_new(lowerdirs, upper, work, target).map_err(|(_, e)| e)
                    }
                    MountApi::Legacy => self.mount_overlay_legacy(lowerdirs, upper, work, target),
                    MountApi::Auto => match mount_overlay_new(lowerdirs, upper, work, target) {
                        Ok(()) => Ok(()),
                        Err((Stage::Setup, _)) => {
                            self.mount_overlay_legacy(lowerdirs, upper, work, target)
                        }
                        Err((Stage::Mount, e)) => Err(e),
                    },
                }
            }
        }
    }

    /// `mount(2)` with lower/upper/work dirs relative to `snapshots/` (`12/fs`), from a
    /// helper thread that has its own cwd (`unshare(CLONE_FS)` + `chdir`).
    fn mount_overlay_legacy(
        &self,
        lowers: &[PathBuf],
        upper: Option<&Path>,
        work: Option<&Path>,
        target: &Path,
    ) -> Result<()> {
        let base = self.snapshots_dir();
        let rel = |p: &Path| -> Result<String> {
            p.strip_prefix(&base)
                .map(|r| r.to_string_lossy().into_owned())
                .map_err(|_| Error::Conflict(format!("{} is outside the snapshotter", p.display())))
        };
        let mut lowerdir = String::new();
        for (i, l) in lowers.iter().enumerate() {
            if i > 0 {
                lowerdir.push(':');
            }
            lowerdir.push_str(&rel(l)?);
        }
        let mut data = format!("lowerdir={lowerdir}");
        if let (Some(u), Some(w)) = (upper, work) {
            data.push_str(&format!(",upperdir={},workdir={}", rel(u)?, rel(w)?));
        }
        // mount(2) copies at most one page of options; 4 KiB is the smallest page.
        let page = 4096;
        if data.len() >= page {
            return Err(Error::Conflict(format!(
                "overlay mount options of {} layers exceed one page ({} >= {page} bytes)",
                lowers.len(),
                data.len()
            )));
        }
        let target = if target.is_absolute() {
            target.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(io_err("current dir"))?
                .join(target)
        };
        let flags = if upper.is_none() {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
        let data = std::ffi::CString::new(data)
            .map_err(|e| Error::io("overlay options", io::Error::other(e)))?;
        let ctx = format!("mount overlay on {}", target.display());
        std::thread::scope(|s| {
            s.spawn(|| -> Result<()> {
                // SAFETY: CLONE_FS only gives this short-lived helper thread its own
                // cwd/root/umask; no file descriptor table is unshared, so no other
                // thread can observe a different set of fds.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                    .map_err(errno("unshare(CLONE_FS)"))?;
                rustix::process::chdir(&base)
                    .map_err(errno(format!("chdir {}", base.display())))?;
                rustix::mount::mount("overlay", &target, "overlay", flags, data.as_c_str())
                    .map_err(errno(ctx.clone()))
            })
            .join()
            .map_err(|_| Error::io(ctx.clone(), io::Error::other("mount thread panicked")))?
        })
    }
}

/// Unmounts `target` (lazily, `MNT_DETACH`).
pub fn unmount(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, UnmountFlags::DETACH)
        .map_err(errno(format!("unmount {}", target.display())))
}

fn info(name: &str, r: &Record) -> Info {
    Info {
        name: name.to_string(),
        kind: r.kind,
        parent: r.parent.clone(),
        id: r.id,
        created: r.created,
        size: r.size,
    }
}

fn mount_bind(source: &Path, target: &Path, readonly: bool) -> Result<()> {
    let ctx = format!("bind {} on {}", source.display(), target.display());
    rustix::mount::mount_bind(source, target).map_err(errno(ctx.clone()))?;
    if readonly {
        let r = rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "");
        if let Err(e) = r {
            let _ = unmount(target);
            return Err(errno(ctx)(e));
        }
    }
    Ok(())
}

/// Where the new mount API failed: before the superblock exists (fall back to `mount(2)`)
/// or after (a real error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Setup,
    Mount,
}

fn mount_overlay_new(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    target: &Path,
) -> std::result::Result<(), (Stage, Error)> {
    let setup = |ctx: &str| {
        let ctx = ctx.to_string();
        move |e: rustix::io::Errno| (Stage::Setup, Error::io(ctx, e.into()))
    };
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(setup("fsopen(overlay)"))?;
    for l in lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l)
            .map_err(setup(&format!("fsconfig lowerdir+ {}", l.display())))?;
    }
    let ctx = format!("mount overlay on {}", target.display());
    let fail = |e: rustix::io::Errno| (Stage::Mount, Error::io(ctx.clone(), e.into()));
    if let (Some(u), Some(w)) = (upper, work) {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", u).map_err(fail)?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", w).map_err(fail)?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(fail)?;
    let attr = if upper.is_none() {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attr).map_err(fail)?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(fail)
}

impl Snapshotter {
    /// Removes the snapshot `key_or_name` and its directory; refuses with
    /// [`Error::Conflict`] while other snapshots have it as parent. The caller must have
    /// unmounted it.
    pub fn remove(&self, key_or_name: &str) -> Result<()> {
        let dir = {
            let _lock = self.lock()?;
            let mut meta = self.load()?;
            let rec = meta.get(key_or_name)?.clone();
            if meta.has_children(key_or_name) {
                return Err(Error::Conflict(format!(
                    "snapshot {key_or_name} has children"
                )));
            }
            meta.snapshots.remove(key_or_name);
            self.store(&meta)?;
            // Rename first so a crash during deletion leaves an unnamed directory that
            // `open` clears; ids are never reused.
            let dir = self.dir(rec.id);
            let doomed = self.snapshots_dir().join(format!("rm-{}", rec.id));
            match fs::rename(&dir, &doomed) {
                Ok(()) => doomed,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io(format!("rename {}", dir.display()), e)),
            }
        };
        remove_tree(&dir)
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

fn du(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64> {
    let md = fs::symlink_metadata(path).map_err(io_err(format!("stat {}", path.display())))?;
    let mut total = 0;
    if md.nlink() <= 1 || seen.insert((md.dev(), md.ino())) {
        total += md.blocks() * 512;
    }
    if md.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err(format!("read {}", path.display())))? {
            let entry = entry.map_err(io_err(format!("read {}", path.display())))?;
            total += du(&entry.path(), seen)?;
        }
    }
    Ok(total)
}
