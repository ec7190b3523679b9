//! `RUN --mount=…` as the engine's `HostConfig.Mounts` for the step's container.
//!
//! - `bind`: a path of the context (or of a stage's or image's files, `from=`),
//!   read-only unless `rw`; a writable one is a private copy, so what the step writes
//!   there is dropped, as in BuildKit. Its files are part of the step's cache key.
//! - `cache`: a directory under `<data-root>/builder/cache-mounts`, by `id` (else the
//!   target), kept across builds and made with `mode`/`uid`/`gid`. `sharing=locked`
//!   and `private` steps take the directory one at a time (private is not a second
//!   copy here); `shared`, the default, lets them share it. Not in the cache key.
//! - `tmpfs`: a tmpfs of `size`.
//! - `secret` and `ssh`: the classic `POST /build` carries no secrets and no agent, so
//!   a `required` one fails the step and an optional one is left out (BuildKit skips a
//!   missing optional secret too).
//!
//! Mount points the engine had to make in the rootfs are left out of the step's layer
//! (BuildKit removes such stubs too).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use pier_dockerfile::{CacheSharing, MountType, RunMount};
use serde_json::{json, Value};

use super::copy::{self, CopyPlan};
use super::BuildError;
use crate::rootfs_tar::{clean, in_root};

/// What a step's mounts need for as long as its container runs.
#[derive(Default)]
pub struct RunMounts {
    /// `HostConfig.Mounts` entries.
    pub mounts: Vec<Value>,
    /// Parts of the step's cache key (bind mounts' sources).
    pub key: Vec<String>,
    /// The mount targets, absolute, for leaving their stubs out of the layer.
    pub targets: Vec<String>,
    /// Temporary copies (writable binds, heredoc scripts), removed when dropped.
    pub temp: Vec<tempfile::TempDir>,
    /// Held locks of `locked`/`private` cache mounts.
    pub locks: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for RunMounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMounts")
            .field("mounts", &self.mounts)
            .finish()
    }
}

/// Cache mounts being used one step at a time, by directory.
static CACHE_LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

fn cache_lock(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    CACHE_LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(dir.to_path_buf())
        .or_default()
        .clone()
}

/// An absolute target: a relative one is below the working directory, as BuildKit.
pub fn absolute_target(target: &str, workdir: &str) -> String {
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!(
            "{}/{target}",
            if workdir.is_empty() { "/" } else { workdir }
        )
    };
    format!("/{}", clean(&joined).0.join("/"))
}

/// The host path of `source` inside the root `root_fd` (resolved in the root).
fn host_path(root_fd: std::os::fd::BorrowedFd<'_>, source: &str) -> Result<PathBuf, BuildError> {
    let rel = clean(source).0.join("/");
    let fd = in_root(
        root_fd,
        if rel.is_empty() { "." } else { &rel },
        rustix::fs::OFlags::PATH,
    )
    .map_err(|_| BuildError::Failed {
        message: format!("failed to compute cache key: \"/{rel}\": not found"),
        code: 1,
    })?;
    std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(|e| BuildError::internal("resolving a bind mount's source", e))
}

/// A bind mount from `root` (the context, a stage's or an image's files).
pub fn bind(
    out: &mut RunMounts,
    m: &RunMount,
    target: &str,
    root: std::os::fd::BorrowedFd<'_>,
    tmp: &Path,
) -> Result<(), BuildError> {
    let source = m.source.clone().unwrap_or_else(|| "/".to_string());
    let plan = CopyPlan {
        add: false,
        sources: vec![source.clone()],
        dest: "/".into(),
        owner: None,
        chmod: None,
        excludes: None,
        parents: false,
        instruction: "RUN --mount",
    };
    out.key.push(format!(
        "bind {target} {} {}",
        m.is_readonly(),
        copy::content_hash(root, &plan, m.from.is_none())?
    ));
    let mut path = host_path(root, &source)?;
    if !m.is_readonly() {
        // A private copy: the step's writes there do not outlive it.
        std::fs::create_dir_all(tmp)
            .map_err(|e| BuildError::internal("copying a bind mount", e))?;
        let dir = tempfile::Builder::new()
            .prefix("bind-")
            .tempdir_in(tmp)
            .map_err(|e| BuildError::internal("copying a bind mount", e))?;
        let dest = rustix::fs::open(
            dir.path(),
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| BuildError::internal("copying a bind mount", e))?;
        let is_dir = path.is_dir();
        let copy_plan = CopyPlan {
            dest: if is_dir { "/".into() } else { "/file".into() },
            ..plan
        };
        copy::copy(
            root,
            std::os::fd::AsFd::as_fd(&dest),
            &copy_plan,
            m.from.is_none(),
        )?;
        path = if is_dir {
            dir.path().to_path_buf()
        } else {
            dir.path().join("file")
        };
        out.temp.push(dir);
    }
    out.mounts.push(json!({
        "Type": "bind",
        "Source": path.to_string_lossy(),
        "Target": target,
        "ReadOnly": m.is_readonly(),
    }));
    out.targets.push(target.to_string());
    Ok(())
}

/// A cache mount: its directory made on first use.
pub async fn cache(
    out: &mut RunMounts,
    m: &RunMount,
    target: &str,
    data_root: &Path,
) -> Result<(), BuildError> {
    if m.from.is_some() {
        return Err(BuildError::Failed {
            message: "RUN --mount=type=cache with from= is not supported by Pier".into(),
            code: 1,
        });
    }
    let id = m.id.clone().unwrap_or_else(|| target.to_string());
    let name = super::cache::key(&["cache-mount", &id]);
    let dir = data_root
        .join("builder")
        .join("cache-mounts")
        .join(&name[..32]);
    if !dir.exists() {
        std::fs::create_dir_all(dir.parent().unwrap_or(data_root))
            .map_err(|e| BuildError::internal("making a cache mount", e))?;
        let fresh = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(dir.parent().unwrap_or(data_root))
            .map_err(|e| BuildError::internal("making a cache mount", e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            fresh.path(),
            std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755)),
        )
        .map_err(|e| BuildError::internal("making a cache mount", e))?;
        std::os::unix::fs::chown(
            fresh.path(),
            Some(m.uid.unwrap_or(0)),
            Some(m.gid.unwrap_or(0)),
        )
        .map_err(|e| BuildError::internal("making a cache mount", e))?;
        let fresh = fresh.keep();
        if std::fs::rename(&fresh, &dir).is_err() {
            // Another build made it first.
            let _ = std::fs::remove_dir_all(&fresh);
        }
    }
    if matches!(
        m.sharing,
        Some(CacheSharing::Locked | CacheSharing::Private)
    ) {
        out.locks.push(cache_lock(&dir).lock_owned().await);
    }
    out.mounts.push(json!({
        "Type": "bind",
        "Source": dir.to_string_lossy(),
        "Target": target,
        "ReadOnly": m.is_readonly(),
    }));
    out.targets.push(target.to_string());
    Ok(())
}

/// A tmpfs mount.
pub fn tmpfs(out: &mut RunMounts, m: &RunMount, target: &str) {
    let mut opts = serde_json::Map::new();
    if let Some(size) = m.size {
        opts.insert("SizeBytes".into(), json!(size));
    }
    out.mounts.push(json!({
        "Type": "tmpfs",
        "Target": target,
        "ReadOnly": m.is_readonly(),
        "TmpfsOptions": Value::Object(opts),
    }));
    out.targets.push(target.to_string());
}

/// A secret or ssh mount: none can be given through the classic endpoint.
pub fn unavailable(m: &RunMount) -> Result<(), BuildError> {
    let id = m.secret_id().unwrap_or_default();
    if m.required.unwrap_or(false) {
        let what = if m.mount_type == MountType::Ssh {
            format!("no SSH agent {id} can reach Pier's builder (the classic build endpoint carries none)")
        } else {
            format!("secret {id} not found: the classic build endpoint carries no secrets")
        };
        return Err(BuildError::Failed {
            message: what,
            code: 1,
        });
    }
    Ok(())
}

/// A heredoc script with a `#!` line, bind-mounted read-only at its path.
pub fn script(
    out: &mut RunMounts,
    path: &str,
    content: &str,
    tmp: &Path,
) -> Result<(), BuildError> {
    std::fs::create_dir_all(tmp).map_err(|e| BuildError::internal("writing a script", e))?;
    let dir = tempfile::Builder::new()
        .prefix("script-")
        .tempdir_in(tmp)
        .map_err(|e| BuildError::internal("writing a script", e))?;
    let file = dir.path().join("script");
    std::fs::write(&file, content).map_err(|e| BuildError::internal("writing a script", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| BuildError::internal("writing a script", e))?;
    out.mounts.push(json!({
        "Type": "bind",
        "Source": file.to_string_lossy(),
        "Target": path,
        "ReadOnly": true,
    }));
    out.targets.push(path.to_string());
    out.temp.push(dir);
    Ok(())
}

/// The mount targets that did not exist in the image (`lowers`) but do in `upper`:
/// stubs the engine made for the mounts, left out of the layer.
pub fn stubs(upper: &Path, lowers: &[PathBuf], targets: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for t in targets {
        let rel = PathBuf::from(clean(t).0.join("/"));
        if rel.as_os_str().is_empty() {
            continue;
        }
        let in_upper = std::fs::symlink_metadata(upper.join(&rel)).is_ok();
        let in_lower = lowers
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(&rel)).is_ok());
        if in_upper && !in_lower {
            out.push(rel);
        }
    }
    out
}
