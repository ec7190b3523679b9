//! A container's files: `docker cp` (`/containers/{id}/archive`), `docker export`
//! (`/containers/{id}/export`) and `docker diff` (`/containers/{id}/changes`).
//!
//! The container's root is its rootfs mount in pierd's mount namespace while it runs
//! (`<data-root>/containers/<id>/rootfs`), else its snapshot mounted for the request on
//! a temporary directory. Every path is resolved with `openat2(RESOLVE_IN_ROOT)` from
//! the root's fd, and every file is created or opened with `*at` calls under such a
//! parent and `O_NOFOLLOW`, so neither the request's path, the uploaded tar's names,
//! nor symlinks inside the container can reach outside it. A path inside one of the
//! container's volumes or binds is served from that mount's host directory instead
//! (the deepest mount holding it), resolved the same way inside it, as Docker mounts
//! them for `cp`; the `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` pierd
//! writes are served from pierd's copies when asked for by exactly those paths.

use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::stream::ChannelWriter;
use super::{ApiError, AppState};
use crate::engine::Container;
use crate::rootfs_tar::{clean, extract, in_root, ExtractError, ExtractOptions};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(get_archive).head(head_archive).put(put_archive),
        )
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    matches!(
        q.get(key).map(String::as_str),
        Some("1" | "true" | "True" | "TRUE")
    )
}

fn errno_err(context: &str, e: Errno) -> ApiError {
    ApiError::internal(format!("{context}: {}", io::Error::from(e)))
}

/// A path the kernel refuses to resolve as given (a NUL byte in it, a name too long)
/// is the client's error; other failures are the daemon's.
fn resolve_err(path: &str, e: Errno) -> ApiError {
    match e {
        Errno::INVAL | Errno::NAMETOOLONG => {
            ApiError::bad_request(format!("invalid path {path:?}: {}", io::Error::from(e)))
        }
        e => errno_err("resolving path", e),
    }
}

// ---------------------------------------------------------------------------------
// The container's root.

/// The container's merged filesystem, mounted for as long as this lives.
struct Root {
    fd: OwnedFd,
    /// The stopped container's snapshot mount this request uses, if it is one.
    _mounted: Option<Lease>,
    /// The mapping the root is seen through (a running container in a user
    /// namespace): host owners are the container's owners shifted.
    mapping: Option<crate::userns::IdMapping>,
}

/// Stopped containers' snapshots mounted for requests, by container ID: one mount
/// shared by concurrent requests (overlayfs refuses a second mount of one upper dir),
/// undone when the last of them ends.
static SNAPSHOT_MOUNTS: std::sync::LazyLock<Mutex<HashMap<String, SharedMount>>> =
    std::sync::LazyLock::new(Default::default);

struct SharedMount {
    users: usize,
    /// The mount point; removed after the unmount.
    dir: tempfile::TempDir,
}

fn snapshot_mounts() -> std::sync::MutexGuard<'static, HashMap<String, SharedMount>> {
    SNAPSHOT_MOUNTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Containers an archive is being extracted into: one extraction at a time in a
/// container, so that two into one directory do not race on its names.
static EXTRACTING: (Mutex<Vec<String>>, std::sync::Condvar) =
    (Mutex::new(Vec::new()), std::sync::Condvar::new());

/// An extraction into a container, until dropped (blocking).
struct Extracting(String);

impl Extracting {
    fn begin(id: &str) -> Extracting {
        let (busy, turn) = &EXTRACTING;
        let mut busy = busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.iter().any(|b| b == id) {
            busy = turn.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.push(id.to_string());
        Extracting(id.to_string())
    }
}

impl Drop for Extracting {
    fn drop(&mut self) {
        let (busy, turn) = &EXTRACTING;
        busy.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|b| *b != self.0);
        turn.notify_all();
    }
}

/// One request's use of a [`SharedMount`].
struct Lease {
    id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut mounts = snapshot_mounts();
        let Some(m) = mounts.get_mut(&self.id) else {
            return;
        };
        m.users -= 1;
        if m.users == 0 {
            if let Some(m) = mounts.remove(&self.id) {
                let _ = pier_image::snapshot::unmount(m.dir.path());
            }
        }
    }
}

fn open_dir(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the container's root: its rootfs mount when it runs, else its snapshot
/// mounted on a temporary directory (blocking).
fn open_root(d: &AppState, c: &Container) -> Result<Root, ApiError> {
    let dir = d.config.data_root.join("containers").join(&c.id);
    if c.state.running {
        let rootfs = dir.join("rootfs");
        let fd = open_dir(&rootfs).map_err(|e| errno_err("opening container rootfs", e))?;
        return Ok(Root {
            fd,
            _mounted: None,
            mapping: c.userns.clone(),
        });
    }
    let mut mounts = snapshot_mounts();
    if !mounts.contains_key(&c.id) {
        let tmp = tempfile::Builder::new()
            .prefix("mnt-")
            .tempdir_in(&dir)
            .map_err(|e| ApiError::internal(format!("creating mount point: {e}")))?;
        d.images.snapshots().mount(&c.snapshot_key, tmp.path())?;
        let shared = SharedMount { users: 0, dir: tmp };
        mounts.insert(c.id.clone(), shared);
    }
    let Some(shared) = mounts.get_mut(&c.id) else {
        return Err(ApiError::internal("snapshot mount vanished"));
    };
    shared.users += 1;
    let lease = Lease { id: c.id.clone() };
    let fd = open_dir(shared.dir.path());
    drop(mounts);
    Ok(Root {
        fd: fd.map_err(|e| errno_err("opening container root", e))?,
        _mounted: Some(lease),
        mapping: None,
    })
}

/// The root and path of `path` when it lies in one of the container's volumes or
/// binds: the deepest such mount's host directory, and the rest of the path in it
/// (its trailing `/` or `/.` kept). None when no mount holds it (blocking).
fn mount_root(d: &AppState, c: &Container, path: &str) -> Result<Option<(Root, String)>, ApiError> {
    let (comps, _) = clean(path);
    let mut best: Option<(usize, String)> = None;
    for m in d.engine.mount_points(c) {
        let (Some(kind), Some(source), Some(dest)) = (
            m["Type"].as_str(),
            m["Source"].as_str(),
            m["Destination"].as_str(),
        ) else {
            continue;
        };
        if !matches!(kind, "volume" | "bind") || source.is_empty() {
            continue;
        }
        let target = clean(dest).0;
        if comps.starts_with(&target) && best.as_ref().is_none_or(|(n, _)| target.len() > *n) {
            best = Some((target.len(), source.to_string()));
        }
    }
    let Some((depth, source)) = best else {
        return Ok(None);
    };
    let fd = open_dir(std::path::Path::new(&source))
        .map_err(|e| errno_err("opening the mount's directory", e))?;
    let mut rest = format!("/{}", comps[depth..].join("/"));
    if path.ends_with("/.") {
        rest.push_str(if rest == "/" { "." } else { "/." });
    } else if path.ends_with('/') && rest != "/" {
        rest.push('/');
    }
    let root = Root {
        fd,
        _mounted: None,
        // The container sees a volume's files with their owners as stored: shifted,
        // in a user namespace.
        mapping: c.userns.clone(),
    };
    Ok(Some((root, rest)))
}

/// The root a request's `path` is resolved in, and the path in it (blocking).
fn open_root_for(d: &AppState, c: &Container, path: &str) -> Result<(Root, String), ApiError> {
    match mount_root(d, c, path)? {
        Some(found) => Ok(found),
        None => Ok((open_root(d, c)?, path.to_string())),
    }
}

/// A path resolved in the root: its parent dir, its name in it, its lstat.
struct Resolved {
    parent: OwnedFd,
    name: OsString,
    stat: rustix::fs::Stat,
    /// Where it really is, inside the container (`/etc/passwd`).
    abs: String,
}

/// The container path an fd (below the root) stands for.
fn path_in_root(root: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Option<String> {
    let r = std::fs::read_link(format!("/proc/self/fd/{}", root.as_raw_fd())).ok()?;
    let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let rel = p.strip_prefix(&r).ok()?;
    Some(format!("/{}", rel.display()))
}

/// Resolves `path` inside the root; the final symlink is followed only when the path
/// ends with `/` or `/.` (Docker's rule).
fn resolve(root: BorrowedFd<'_>, path: &str) -> Result<Resolved, Errno> {
    let (mut comps, follow) = clean(path);
    if follow && !comps.is_empty() {
        let fd = in_root(root, &comps.join("/"), OFlags::PATH)?;
        let abs = path_in_root(root, fd.as_fd()).ok_or(Errno::NOENT)?;
        comps = clean(&abs).0;
    }
    let Some(name) = comps.pop() else {
        let parent = in_root(root, ".", OFlags::PATH | OFlags::DIRECTORY)?;
        let stat = rustix::fs::fstat(&parent)?;
        return Ok(Resolved {
            parent,
            name: OsString::from("."),
            stat,
            abs: "/".into(),
        });
    };
    let parent = in_root(root, &comps.join("/"), OFlags::PATH | OFlags::DIRECTORY)?;
    let stat = rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
    let dir = path_in_root(root, parent.as_fd()).unwrap_or_else(|| "/".into());
    let abs = if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    };
    Ok(Resolved {
        parent,
        name: OsString::from(name),
        stat,
        abs,
    })
}

/// Go's `os.FileMode` bits for a stat.
fn go_mode(st: &rustix::fs::Stat) -> u32 {
    let raw = st.st_mode;
    let mut m = raw & 0o777;
    if raw & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if raw & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if raw & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m |= match FileType::from_raw_mode(raw) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        _ => 0,
    };
    m
}

/// The `X-Docker-Container-Path-Stat` value: base64 of Docker's `PathStat`.
fn stat_header(root: BorrowedFd<'_>, requested: &str, r: &Resolved) -> String {
    let (comps, _) = clean(requested);
    let name = comps.last().cloned().unwrap_or_else(|| "/".into());
    let mut link_target = String::new();
    if FileType::from_raw_mode(r.stat.st_mode) == FileType::Symlink {
        if let Ok(fd) = in_root(root, &r.abs, OFlags::PATH) {
            link_target = path_in_root(root, fd.as_fd()).unwrap_or_default();
        }
    }
    let stat = json!({
        "name": name,
        "size": r.stat.st_size,
        "mode": go_mode(&r.stat),
        "mtime": pier_image::time::format_rfc3339(
            r.stat.st_mtime,
            u32::try_from(r.stat.st_mtime_nsec).unwrap_or(0),
        ),
        "linkTarget": link_target,
    });
    base64::engine::general_purpose::STANDARD.encode(stat.to_string().as_bytes())
}

fn not_found_in(path: &str, c: &Container) -> ApiError {
    ApiError::not_found(format!(
        "Could not find the file {path} in container {}",
        c.name
    ))
}

/// The file pierd writes for `/etc/hostname|hosts|resolv.conf` (a bind mount inside
/// the container), when `path` names one of them and the container has run.
fn etc_file(d: &AppState, c: &Container, path: &str) -> Option<PathBuf> {
    let (comps, _) = clean(path);
    match comps
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["etc", name @ ("hostname" | "hosts" | "resolv.conf")] => {
            let p = d.config.data_root.join("containers").join(&c.id).join(name);
            p.is_file().then_some(p)
        }
        _ => None,
    }
}

/// What GET/HEAD work on: the root, and the path resolved in it.
struct Source {
    root: Root,
    /// The path (for pierd's etc files, resolved in the container's data dir).
    resolved: Resolved,
    header: String,
}

async fn open_source(d: &AppState, id: &str, path: Option<String>) -> Result<Source, ApiError> {
    let c = d.engine.get(id)?;
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad_request("path cannot be empty"));
    };
    let d = d.clone();
    tokio::task::spawn_blocking(move || -> Result<Source, ApiError> {
        let (root, inner) = open_root_for(&d, &c, &path)?;
        let resolved = match etc_file(&d, &c, &path) {
            Some(file) => {
                let parent = file.parent().map(PathBuf::from).unwrap_or_default();
                let parent = open_dir(&parent).map_err(|e| errno_err("open", e))?;
                let name = OsString::from(file.file_name().unwrap_or_default());
                let stat = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno_err("stat", e))?;
                Resolved {
                    parent,
                    name,
                    stat,
                    abs: path.clone(),
                }
            }
            None => match resolve(root.fd.as_fd(), &inner) {
                Ok(r) => r,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {
                    return Err(not_found_in(&path, &c))
                }
                Err(e) => return Err(resolve_err(&path, e)),
            },
        };
        let header = stat_header(root.fd.as_fd(), &path, &resolved);
        Ok(Source {
            root,
            resolved,
            header,
        })
    })
    .await?
}

async fn head_archive(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let src = open_source(&d, &id, q.get("path").cloned()).await?;
    Ok((StatusCode::OK, [(STAT_HEADER, src.header.clone())]).into_response())
}

async fn get_archive(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let src = open_source(&d, &id, q.get("path").cloned()).await?;
    let header = src.header.clone();
    let requested = q.get("path").map_or("", String::as_str);
    let (comps, _) = clean(requested);
    // `dir/.` means the directory's contents.
    let base = match comps.last() {
        Some(last) if !requested.ends_with("/.") => last.clone(),
        _ => ".".into(),
    };
    let body = stream_tar(move |w| {
        let Source { root, resolved, .. } = src;
        let mut b = tar::Builder::new(w);
        let mut walk = TarWalk::new(root.mapping.clone());
        append(
            &mut b,
            resolved.parent.as_fd(),
            &resolved.name,
            &base,
            &mut walk,
        )?;
        b.into_inner()?.flush()?;
        drop(root);
        Ok(())
    });
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE.as_str(),
                "application/x-tar".to_string(),
            ),
            (STAT_HEADER, header),
        ],
        body,
    )
        .into_response())
}

async fn export(State(d): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let c = d.engine.get(&id)?;
    let d2 = d.clone();
    let root = tokio::task::spawn_blocking(move || open_root(&d2, &c)).await??;
    let body = stream_tar(move |w| {
        let mut b = tar::Builder::new(w);
        let mut walk = TarWalk::new(root.mapping.clone());
        append_children(&mut b, root.fd.as_fd(), "", &mut walk)?;
        b.into_inner()?.flush()?;
        drop(root);
        Ok(())
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-tar")],
        body,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------
// Writing tars.

/// A body written by `f` on a blocking thread; an error aborts the body.
pub(crate) fn stream_tar<F>(f: F) -> Body
where
    F: FnOnce(&mut ChannelWriter) -> io::Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx.clone());
        if let Err(e) = f(&mut w).and_then(|()| w.flush()) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Appends `parent/name` as `arc_name` (recursively for a directory), never following
/// symlinks. Sockets are skipped; hard links become link entries.
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    arc_name: &str,
    walk: &mut TarWalk,
) -> io::Result<()> {
    let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    let (uid, gid) = walk.owner(&st);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    match kind {
        FileType::Directory => {
            h.set_entry_type(tar::EntryType::Directory);
            let dir_name = if arc_name.is_empty() {
                None
            } else {
                Some(format!("{arc_name}/"))
            };
            if let Some(n) = &dir_name {
                append_entry(b, &mut h, n, None, io::empty())?;
            }
            let fd = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let prefix = if dir_name.is_some() { arc_name } else { "" };
            append_children(b, fd.as_fd(), prefix, walk)?;
        }
        FileType::RegularFile => {
            let key = (st.st_dev, st.st_ino);
            if st.st_nlink > 1 {
                if let Some(first) = walk.links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    append_entry(b, &mut h, arc_name, Some(first.as_bytes()), io::empty())?;
                    return Ok(());
                }
                walk.links.insert(key, arc_name.to_string());
            }
            let fd = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let size = u64::try_from(st.st_size).unwrap_or(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            // Exactly `size` bytes even if the file changes meanwhile.
            let data = std::fs::File::from(fd)
                .take(size)
                .chain(io::repeat(0))
                .take(size);
            append_entry(b, &mut h, arc_name, None, data)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(parent, name, Vec::new())?;
            h.set_entry_type(tar::EntryType::Symlink);
            append_entry(b, &mut h, arc_name, Some(target.as_bytes()), io::empty())?;
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
            h.set_entry_type(match kind {
                FileType::CharacterDevice => tar::EntryType::Char,
                FileType::BlockDevice => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            if kind != FileType::Fifo {
                h.set_device_major(rustix::fs::major(st.st_rdev))?;
                h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
            }
            append_entry(b, &mut h, arc_name, None, io::empty())?;
        }
        _ => {}
    }
    Ok(())
}

/// Appends one entry named exactly `name` (and `link`). The tar crate drops a leading
/// `./`, but `docker cp CTR:dir/. DEST` needs it: the CLI renames entries by replacing
/// their first `.` (Docker's `RebaseArchiveEntries`), so a bare `a.txt` would be
/// mangled. Names too long for the header get GNU long-name entries, as tar does.
fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &str,
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    let dotted = name.starts_with("./") || link.is_some_and(|l| l.starts_with(b"./"));
    if !dotted {
        return match link {
            Some(target) => b.append_link(h, name, OsStr::from_bytes(target)),
            None => b.append_data(h, name, data),
        };
    }
    let field_len = h.as_old().name.len();
    for (value, kind) in [
        (Some(name.as_bytes()), tar::EntryType::GNULongName),
        (link, tar::EntryType::GNULongLink),
    ] {
        let Some(value) = value.filter(|v| v.len() > field_len) else {
            continue;
        };
        let mut long = tar::Header::new_gnu();
        long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        long.set_mode(0o644);
        long.set_entry_type(kind);
        long.set_size(value.len() as u64 + 1);
        long.set_cksum();
        b.append(&long, value.chain(&[0u8][..]))?;
    }
    let fill = |field: &mut [u8], value: &[u8]| {
        let n = value.len().min(field.len());
        field.fill(0);
        field[..n].copy_from_slice(&value[..n]);
    };
    fill(&mut h.as_old_mut().name, name.as_bytes());
    if let Some(target) = link {
        fill(&mut h.as_old_mut().linkname, target);
    }
    h.set_cksum();
    b.append(h, data)
}

fn dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// What a walk that writes a tar carries: the hard links met so far (by device and
/// inode), and the mapping owners are translated back through.
struct TarWalk {
    links: HashMap<(u64, u64), String>,
    mapping: Option<crate::userns::IdMapping>,
}

impl TarWalk {
    fn new(mapping: Option<crate::userns::IdMapping>) -> TarWalk {
        TarWalk {
            links: HashMap::new(),
            mapping,
        }
    }

    /// The owner as the container sees it (an ID outside the mapping stays as is).
    fn owner(&self, st: &rustix::fs::Stat) -> (u32, u32) {
        match &self.mapping {
            Some(m) => (
                m.container_uid(st.st_uid).unwrap_or(st.st_uid),
                m.container_gid(st.st_gid).unwrap_or(st.st_gid),
            ),
            None => (st.st_uid, st.st_gid),
        }
    }
}

fn append_children<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    prefix: &str,
    walk: &mut TarWalk,
) -> io::Result<()> {
    for name in dir_names(dir)? {
        let s = name.to_string_lossy();
        let arc = if prefix.is_empty() {
            s.into_owned()
        } else {
            format!("{prefix}/{s}")
        };
        match append(b, dir, &name, &arc, walk) {
            // Gone meanwhile: a running container changes its files.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => r?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Extracting (PUT).

/// Reads the request body on a blocking thread.
struct ChanReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

async fn put_archive(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let c = d.engine.get(&id)?;
    let Some(path) = q.get("path").cloned().filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad_request("path cannot be empty"));
    };
    if c.host_config["ReadonlyRootfs"].as_bool() == Some(true) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "container rootfs is marked read-only",
        ));
    }
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: flag(&q, "noOverwriteDirNonDir"),
        copy_uid_gid: flag(&q, "copyUIDGID"),
        // A running container in a user namespace has its rootfs mounted through its
        // mapping: written as its root, with owners translated (a stopped one's
        // snapshot is mounted plainly and keeps the archive's IDs as they are).
        mapping: c.userns.clone().filter(|_| c.state.running),
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let mut stream = body.into_data_stream();
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(io::Error::other);
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let d2 = d.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        let _alone = Extracting::begin(&c.id);
        let (root, inner) = open_root_for(&d2, &c, &path)?;
        let dest = match in_root(root.fd.as_fd(), &clean(&inner).0.join("/"), OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => return Err(not_found_in(&path, &c)),
            Err(e) => return Err(resolve_err(&path, e)),
        };
        let st = rustix::fs::fstat(&dest).map_err(|e| errno_err("stat", e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(ApiError::bad_request("extraction point is not a directory"));
        }
        let dest_abs = path_in_root(root.fd.as_fd(), dest.as_fd())
            .ok_or_else(|| ApiError::internal("cannot locate the extraction point"))?;
        let mut reader = ChanReader {
            rx,
            cur: Bytes::new(),
        };
        match &opts.mapping {
            None => extract(root.fd.as_fd(), &dest_abs, &mut reader, &opts)?,
            Some(mapping) => {
                let (uid, gid) = mapping.root();
                pier_image::snapshot::as_mapped_root(uid, gid, || {
                    extract(root.fd.as_fd(), &dest_abs, &mut reader, &opts)
                })
                .map_err(|e| io_err("extracting", e))??
            }
        }
        // The tar may go on after its end marker (padding to a record): read the body
        // to its end, or the answer would cut off a client still sending (EPIPE).
        io::copy(&mut reader, &mut io::sink()).map_err(|e| io_err("reading the archive", e))?;
        Ok(())
    })
    .await??;
    Ok(StatusCode::OK)
}

impl From<ExtractError> for ApiError {
    fn from(e: ExtractError) -> ApiError {
        match e {
            ExtractError::Invalid(message) => ApiError::bad_request(message),
            ExtractError::Io { context, source } => io_err(&context, source),
        }
    }
}

fn io_err(context: &str, e: impl Into<io::Error>) -> ApiError {
    let e: io::Error = e.into();
    if e.kind() == io::ErrorKind::InvalidData {
        ApiError::bad_request(format!("{context}: {e}"))
    } else {
        ApiError::internal(format!("{context}: {e}"))
    }
}

// ---------------------------------------------------------------------------------
// Changes.

async fn changes(
    State(d): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = d.engine.get(&id)?;
    let images = d.images.clone();
    let list = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let snaps = images.snapshots();
        let upper = snaps.fs_path(&c.snapshot_key)?;
        let lowers = match snaps.mounts(&c.snapshot_key)? {
            pier_image::snapshot::MountSpec::Overlay { lowerdirs, .. } => lowerdirs,
            pier_image::snapshot::MountSpec::Bind { .. } => Vec::new(),
        };
        let lower_fds: Vec<OwnedFd> = lowers.iter().filter_map(|l| open_dir(l).ok()).collect();
        let upper_fd = open_dir(&upper).map_err(|e| errno_err("opening upper dir", e))?;
        let mut out: BTreeMap<String, u8> = BTreeMap::new();
        walk_changes(upper_fd.as_fd(), &[], &lower_fds, &mut out)
            .map_err(|e| io_err("reading changes", e))?;
        // The mount points of pierd's `/etc/hostname|hosts|resolv.conf` are made in
        // the upper dir (Docker makes them in its init layer, below): not changes.
        for name in ["hostname", "hosts", "resolv.conf"] {
            let path = format!("/etc/{name}");
            if out.get(&path) == Some(&1) {
                out.remove(&path);
            }
        }
        if out.get("/etc") == Some(&0) && !out.keys().any(|k| k.starts_with("/etc/")) {
            out.remove("/etc");
        }
        // Docker lists the parents of changes as modified.
        let paths: Vec<String> = out.keys().cloned().collect();
        for p in paths {
            let mut cur = p.as_str();
            while let Some(i) = cur.rfind('/') {
                cur = &cur[..i];
                if cur.is_empty() {
                    break;
                }
                out.entry(cur.to_string()).or_insert(0);
            }
        }
        Ok(Value::Array(
            out.into_iter()
                .map(|(p, k)| json!({ "Path": p, "Kind": k }))
                .collect(),
        ))
    })
    .await??;
    Ok(Json(list))
}

fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// The path's stat in the lower layers (top-most first), `None` when absent or
/// whited out there.
fn lower_stat(lowers: &[OwnedFd], comps: &[String]) -> Option<rustix::fs::Stat> {
    let (name, parent) = comps.split_last()?;
    for l in lowers {
        let parent_rel = if parent.is_empty() {
            ".".to_string()
        } else {
            parent.join("/")
        };
        let Ok(pfd) = rustix::fs::openat2(
            l,
            parent_rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) else {
            continue;
        };
        if let Ok(st) = rustix::fs::statat(&pfd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            return (!is_whiteout(&st)).then_some(st);
        }
    }
    None
}

fn walk_changes(
    dir: BorrowedFd<'_>,
    prefix: &[String],
    lowers: &[OwnedFd],
    out: &mut BTreeMap<String, u8>,
) -> io::Result<()> {
    for name in dir_names(dir)? {
        let Ok(st) = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let mut comps = prefix.to_vec();
        comps.push(name.to_string_lossy().into_owned());
        let path = format!("/{}", comps.join("/"));
        let below = lower_stat(lowers, &comps);
        if is_whiteout(&st) {
            if below.is_some() {
                out.insert(path, 2);
            }
            continue;
        }
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            out.insert(path, if below.is_some() { 0 } else { 1 });
            continue;
        }
        let fd = rustix::fs::openat(
            dir,
            &name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut buf = [0u8; 4];
        let opaque = matches!(
            rustix::fs::fgetxattr(&fd, "trusted.overlay.opaque", &mut buf[..]),
            Ok(n) if &buf[..n] == b"y"
        );
        match &below {
            None => {
                out.insert(path.clone(), 1);
            }
            Some(l) => {
                let is_dir_below = FileType::from_raw_mode(l.st_mode) == FileType::Directory;
                if !is_dir_below || opaque || l.st_mtime != st.st_mtime {
                    out.insert(path.clone(), 0);
                }
            }
        }
        walk_changes(fd.as_fd(), &comps, lowers, out)?;
        if opaque && below.is_some() {
            // What the lower layers had there is gone.
            deleted_below(lowers, &comps, fd.as_fd(), out);
        }
    }
    Ok(())
}

/// Records the lower entries of the opaque directory `comps` that the upper dir
/// (`upper_dir`) does not have as deleted.
fn deleted_below(
    lowers: &[OwnedFd],
    comps: &[String],
    upper_dir: BorrowedFd<'_>,
    out: &mut BTreeMap<String, u8>,
) {
    let rel = comps.join("/");
    for l in lowers {
        let Ok(fd) = rustix::fs::openat2(
            l,
            rel.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) else {
            continue;
        };
        for name in dir_names(fd.as_fd()).unwrap_or_default() {
            if rustix::fs::statat(upper_dir, &name, AtFlags::SYMLINK_NOFOLLOW).is_err() {
                out.entry(format!("/{rel}/{}", name.to_string_lossy()))
                    .or_insert(2);
            }
        }
    }
}
