//! Snapshots mounted through an ID mapping, for containers in a user namespace
//! (`pierd --userns-remap`): the layers stay on disk as the image has them (owned by
//! root), are shared by every container whatever its range, and appear inside the
//! container owned by its mapped root.
//!
//! overlayfs itself cannot be idmapped, but its layers can (Linux ≥ 5.19): each lower
//! dir and the upper snapshot's directory become detached idmapped mounts
//! (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_IDMAP)`), named to the
//! overlay as `/proc/self/fd/N`, so nothing is attached anywhere but the overlay.
//! overlayfs performs copy-ups and creations with the credentials of whoever mounted
//! it, and an idmapped upper dir refuses writes by IDs outside the mapping (host root
//! is outside it). So the overlay is mounted from a short-lived thread whose
//! filesystem IDs are the mapped root's, keeping its capabilities
//! (`SECBIT_NO_SETUID_FIXUP`): writes by the mapped root are stored as root on disk.
//! Credentials are per thread in Linux; the thread ends with the mount.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::{MountSpec, Snapshotter};
use crate::error::{Error, Result};

/// The mapping a snapshot is mounted through: a user namespace (its uid/gid maps are
/// the mapping) and the host IDs that container root maps to.
#[derive(Debug, Clone, Copy)]
pub struct IdMap<'a> {
    pub userns: BorrowedFd<'a>,
    pub root_uid: u32,
    pub root_gid: u32,
}

impl Snapshotter {
    /// Mounts the active snapshot `key` on `target` through `idmap` (see the module
    /// docs). Files stored as root on disk appear owned by `idmap.root_uid`.
    pub fn mount_idmapped(&self, key: &str, target: &Path, idmap: IdMap<'_>) -> Result<()> {
        match self.mounts(key)? {
            MountSpec::Bind { source, readonly } => {
                let tree = idmapped_tree(&source, idmap.userns, readonly)?;
                attach(&tree, target)
            }
            MountSpec::Overlay {
                lowerdirs,
                upperdir,
                workdir,
            } => {
                let lowers = lowerdirs
                    .iter()
                    .map(|l| idmapped_tree(l, idmap.userns, true))
                    .collect::<Result<Vec<_>>>()?;
                // The upper and work dirs must be on one mount: idmap their parent.
                let upper = match (&upperdir, &workdir) {
                    (Some(u), Some(w)) if u.parent() == w.parent() => {
                        let parent = u.parent().unwrap_or(Path::new("/"));
                        let tree = idmapped_tree(parent, idmap.userns, false)?;
                        let name =
                            |p: &PathBuf| fd_path(&tree).join(p.file_name().unwrap_or_default());
                        Some((name(u), name(w), tree))
                    }
                    (None, None) => None,
                    _ => {
                        return Err(Error::Conflict(format!(
                            "snapshot {key}: upper and work dirs must share a directory"
                        )))
                    }
                };
                let lower_paths: Vec<PathBuf> = lowers.iter().map(fd_path).collect();
                let upper_paths = upper.as_ref().map(|(u, w, _)| (u.as_path(), w.as_path()));
                as_mapped_root(idmap.root_uid, idmap.root_gid, || {
                    mount_overlay(&lower_paths, upper_paths, target)
                })
                .map_err(|e| Error::io(format!("mount on {}", target.display()), e))?
            }
        }
    }
}

/// `/proc/self/fd/N` for a detached mount: overlayfs takes layers by path only.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A detached copy of the mount at `path`, ID-mapped through `userns`.
fn idmapped_tree(path: &Path, userns: BorrowedFd<'_>, readonly: bool) -> Result<OwnedFd> {
    let ctx = || format!("idmapped mount of {}", path.display());
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| Error::io(ctx(), e.into()))?;
    let mut attr_set = MountAttrFlags::MOUNT_ATTR_IDMAP.bits() as u64;
    if readonly {
        attr_set |= MountAttrFlags::MOUNT_ATTR_RDONLY.bits() as u64;
    }
    let attr = libc::mount_attr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: `tree` is an open mount fd; `empty` is a NUL-terminated string and `attr`
    // a properly sized mount_attr, both outliving the call, which keeps neither.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        return Err(Error::io(ctx(), std::io::Error::last_os_error()));
    }
    Ok(tree)
}

fn attach(tree: &OwnedFd, target: &Path) -> Result<()> {
    rustix::mount::move_mount(
        tree.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Error::io(format!("mount on {}", target.display()), e.into()))
}

/// The overlay, with the new mount API (`lowerdir+` per layer, Linux ≥ 6.8), else one
/// colon-separated `lowerdir` (the `/proc/self/fd/N` names are short).
fn mount_overlay(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, target: &Path) -> Result<()> {
    let ctx = format!("mount idmapped overlay on {}", target.display());
    let err = |e: rustix::io::Errno| Error::io(ctx.clone(), e.into());
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err)?;
    let each = lowers
        .iter()
        .try_for_each(|l| rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l));
    if each.is_err() {
        let joined: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
        rustix::mount::fsconfig_set_string(&fs, "lowerdir", joined.join(":")).map_err(err)?;
    }
    if let Some((u, w)) = upper {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", u).map_err(err)?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", w).map_err(err)?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(err)?;
    let attr = if upper.is_none() {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attr).map_err(err)?;
    attach(&mnt, target)
}

/// Runs `f` on a new thread whose filesystem IDs are `uid`/`gid` (a mapped root),
/// with every capability kept: what it creates through an idmapped mount of a
/// container's is stored as that container's root would store it. The thread, and
/// with it those credentials, ends with `f`.
pub fn as_mapped_root<T: Send>(
    uid: u32,
    gid: u32,
    f: impl FnOnce() -> T + Send,
) -> std::io::Result<T> {
    const PR_SET_SECUREBITS: libc::c_int = 28;
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: prctl and setfs[ug]id change only this thread's credentials
                // (Linux credentials are per task); no pointers are passed.
                let switched = unsafe {
                    libc::prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) == 0 && {
                        libc::syscall(libc::SYS_setfsgid, gid);
                        libc::syscall(libc::SYS_setfsuid, uid);
                        // setfs[ug]id answer the previous ID; -1 reads it back.
                        libc::syscall(libc::SYS_setfsuid, u32::MAX) == uid as libc::c_long
                            && libc::syscall(libc::SYS_setfsgid, u32::MAX) == gid as libc::c_long
                    }
                };
                if !switched {
                    return Err(std::io::Error::other(format!(
                        "cannot act as the mapped root {uid}:{gid}: {}",
                        std::io::Error::last_os_error()
                    )));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("mapped-root thread panicked")))
    })
}
