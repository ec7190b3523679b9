//! Extracting a tar inside a root directory without ever leaving it: `docker cp` into a
//! container (`PUT /containers/{id}/archive`) and the builder's `COPY`/`ADD` use it.
//!
//! Every parent is resolved with `openat2(RESOLVE_IN_ROOT)` from the root's fd and every
//! file is created with `*at` calls under such a parent and `O_NOFOLLOW`, so neither an
//! entry's name nor a symlink already inside the root can lead outside it.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

/// Why an extraction failed: the archive's fault, or the host's.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The archive asks for something that cannot be done (a breakout, a directory
    /// replaced by a file against the caller's wish): the client's error.
    #[error("{0}")]
    Invalid(String),
    /// Reading the archive or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: &str, e: impl Into<io::Error>) -> ExtractError {
    ExtractError::Io {
        context: context.to_string(),
        source: e.into(),
    }
}

/// `a/./b/../c/` → `["a", "c"]`; `..` above the root stays at the root (as a path
/// inside a container does). The trailing-separator flag is returned too.
pub fn clean(path: &str) -> (Vec<String>, bool) {
    let mut out: Vec<String> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    let follow = path.ends_with('/') || path.ends_with("/.") || path == ".";
    (out, follow)
}

/// `rel` opened inside the container's root, through the runtime's in-root resolver.
pub fn in_root(root: BorrowedFd<'_>, rel: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    pier_runtime::rootpath::open_in_root(root, std::path::Path::new(rel), flags)
}

/// How [`extract`] writes what it extracts.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory and the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Keep the archive's owners (else everything is root's).
    pub copy_uid_gid: bool,
    /// Owners written through this mapping (a user-namespaced root).
    pub mapping: Option<crate::userns::IdMapping>,
}

/// Normalises an archive name; `None` when it climbs above the archive's root.
pub fn archive_path(raw: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(raw);
    let mut out: Vec<String> = Vec::new();
    for comp in text.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c.to_string()),
        }
    }
    Some(out)
}

/// Makes `root/rel` (and its missing parents) a directory; returns it.
pub fn ensure_dir(root: BorrowedFd<'_>, comps: &[String]) -> Result<OwnedFd, Errno> {
    match in_root(root, &comps.join("/"), OFlags::PATH | OFlags::DIRECTORY) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) if !comps.is_empty() => {
            let (name, parent) = comps.split_last().unwrap_or((&comps[0], &[]));
            let pfd = ensure_dir(root, parent)?;
            match rustix::fs::mkdirat(&pfd, name.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            in_root(root, &comps.join("/"), OFlags::PATH | OFlags::DIRECTORY)
        }
        Err(e) => Err(e),
    }
}

/// Extracts `reader` (a tar) into the directory `dest` (a path inside the root).
pub fn extract(
    root: BorrowedFd<'_>,
    dest: &str,
    reader: impl Read,
    opts: &ExtractOptions,
) -> Result<(), ExtractError> {
    let base = clean(dest).0;
    let mut archive = tar::Archive::new(reader);
    let mut dir_times: Vec<(Vec<String>, i64)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| io_err("reading archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_err("reading archive", e))?;
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = archive_path(&raw) else {
            return Err(ExtractError::Invalid(format!(
                "invalid archive entry {:?}: it points outside the destination (breakout)",
                String::from_utf8_lossy(&raw)
            )));
        };
        let h = entry.header().clone();
        let kind = h.entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let Some((name, parent_rel)) = rel.split_last() else {
            continue; // the destination itself
        };
        let mut full: Vec<String> = base.clone();
        full.extend(parent_rel.iter().cloned());
        let parent = ensure_dir(root, &full).map_err(|e| io_err("creating parent", e))?;
        let is_dir = kind == tar::EntryType::Directory;
        let shown = format!("/{}/{}", full.join("/"), name).replace("//", "/");
        match rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let was_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if opts.no_overwrite_dir_non_dir && was_dir && !is_dir {
                    return Err(ExtractError::Invalid(format!(
                        "cannot overwrite directory \"{shown}\" with non-directory \"{}\"",
                        String::from_utf8_lossy(&raw)
                    )));
                }
                if opts.no_overwrite_dir_non_dir && !was_dir && is_dir {
                    return Err(ExtractError::Invalid(format!(
                        "cannot overwrite non-directory \"{shown}\" with directory \"{}\"",
                        String::from_utf8_lossy(&raw)
                    )));
                }
                if !(was_dir && is_dir) {
                    pier_image::layer::remove_all_at(parent.as_fd(), OsStr::new(name))
                        .map_err(|e| io_err(&format!("replacing {shown}"), e))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(&format!("stat {shown}"), e)),
        }
        let ctx = format!("extracting {shown}");
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err(&ctx, e)),
                }
                let mut p = full.clone();
                p.push(name.clone());
                dir_times.push((p, h.mtime().map_or(0, |t| t as i64)));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err(&ctx, e))?;
                let mut f = std::fs::File::from(fd);
                io::copy(&mut entry, &mut f).map_err(|e| io_err(&ctx, e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name.as_str())
                    .map_err(|e| io_err(&ctx, e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let Some(mut t) = archive_path(&target) else {
                    return Err(ExtractError::Invalid(format!(
                        "invalid hardlink {:?} (breakout)",
                        String::from_utf8_lossy(&target)
                    )));
                };
                let Some(tname) = t.pop() else {
                    return Err(ExtractError::Invalid(
                        "invalid hardlink to the destination".into(),
                    ));
                };
                let mut tfull = base.clone();
                tfull.extend(t);
                let tparent = in_root(root, &tfull.join("/"), OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(|e| io_err(&ctx, e))?;
                rustix::fs::linkat(
                    &tparent,
                    tname.as_str(),
                    &parent,
                    name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| io_err(&ctx, e))?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&parent, name.as_str(), ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| io_err(&ctx, e))?;
            }
            _ => continue,
        }
        set_meta(&parent, name, &h, opts).map_err(|e| io_err(&ctx, e))?;
    }
    for (comps, mtime) in dir_times.iter().rev() {
        if let Some((name, parent)) = comps.split_last() {
            if let Ok(pfd) = in_root(root, &parent.join("/"), OFlags::PATH | OFlags::DIRECTORY) {
                let t = rustix::fs::Timespec {
                    tv_sec: *mtime,
                    tv_nsec: 0,
                };
                let times = Timestamps {
                    last_access: t,
                    last_modification: t,
                };
                let _ =
                    rustix::fs::utimensat(&pfd, name.as_str(), &times, AtFlags::SYMLINK_NOFOLLOW);
            }
        }
    }
    Ok(())
}

/// Ownership (the archive's with `copyUIDGID`, else root's, as Docker), mode and
/// mtime of the just-created `parent/name`, never following a final symlink.
fn set_meta(
    parent: &OwnedFd,
    name: &str,
    h: &tar::Header,
    opts: &ExtractOptions,
) -> io::Result<()> {
    let (uid, gid) = if opts.copy_uid_gid {
        (
            u32::try_from(h.uid()?).unwrap_or(0),
            u32::try_from(h.gid()?).unwrap_or(0),
        )
    } else {
        (0, 0)
    };
    // Through an idmapped rootfs, the container's IDs are named by their host IDs.
    let (uid, gid) = match &opts.mapping {
        Some(m) => {
            let unmapped =
                |id| io::Error::other(format!("Container ID {id} cannot be mapped to a host ID"));
            (
                m.host_uid(uid).ok_or_else(|| unmapped(uid))?,
                m.host_gid(gid).ok_or_else(|| unmapped(gid))?,
            )
        }
        None => (uid, gid),
    };
    rustix::fs::chownat(
        parent,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::Symlink {
        rustix::fs::chmod(
            format!("/proc/self/fd/{}", fd.as_raw_fd()),
            Mode::from_raw_mode(h.mode()? & 0o7777),
        )?;
    }
    if kind != FileType::Directory {
        let t = rustix::fs::Timespec {
            tv_sec: h.mtime().map_or(0, |t| t as i64),
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_inside_the_root() {
        assert_eq!(clean("/a/./b/../c/").0, vec!["a", "c"]);
        assert!(clean("/a/").1);
        assert!(clean("/a/.").1);
        assert!(!clean("/a").1);
        assert!(clean("/../../..").0.is_empty());
        assert_eq!(archive_path(b"./x/../y").unwrap(), vec!["y"]);
        assert!(archive_path(b"../../x").is_none());
        assert!(archive_path(b"a/../../x").is_none());
    }
}
