//! Volume backup, beyond Docker: export a volume as a tar stream, import one into a new
//! or empty volume, clone a volume into a new one ([`pier_volume::archive`] does the
//! tree work; this module decides policy).
//!
//! - **Consistency.** A volume is read or filled only while no running container uses
//!   it: otherwise 409, naming those containers. Export (and clone's source) take
//!   `force` to read it anyway; import never does, since a container could see, or
//!   race with, a half-written tree.
//! - **Access.** The volume is mounted through its driver for the operation, with a
//!   mount ID of its own (`pier-archive-…`), and unmounted after: plugin volumes work
//!   like local ones, and the driver's count of users stays right. Meanwhile the
//!   volume is held (in use under that ID): `volume rm` and `prune` leave it.
//! - **Import** fills a volume that is missing (made with the `local` driver) or empty;
//!   a volume with content is refused (409), so nothing is ever merged or overwritten.
//!   A failed import leaves the volume empty, and removes it if the import made it.
//! - **Clone** makes the target with the source's driver and driver options (not its
//!   labels), or fills an existing empty target; same rules for failures.
//!
//! Everything here blocks: callers use `spawn_blocking`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pier_api::volume::{Volume, VolumeCreateOptions};
use pier_volume::VolumeDriver;

use super::volumes::op_error;
use super::{Engine, EngineError};

/// A volume mounted for an export, import or clone; unmounted when dropped. While it
/// lives the volume counts as in use (`volume rm` answers 409).
pub struct VolumeAccess {
    driver: Arc<dyn VolumeDriver>,
    /// Dropped after the unmount (fields drop after `Drop::drop`), so the volume
    /// cannot be removed while still mounted.
    _hold: super::volumes::VolumeHold,
    name: String,
    mount_id: String,
    /// The volume's content on the host.
    pub path: PathBuf,
}

impl Drop for VolumeAccess {
    fn drop(&mut self) {
        if let Err(e) = self.driver.unmount(&self.name, &self.mount_id) {
            eprintln!(
                "pierd: unmounting volume {} after {}: {e}",
                self.name, self.mount_id
            );
        }
    }
}

fn next_mount_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "pier-archive-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Engine {
    /// The names of the running (or paused, or restarting) containers using volume
    /// `name`.
    pub fn volume_running_users(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .volumes()
            .users(name)
            .iter()
            .filter_map(|id| self.get(id).ok())
            .filter(|c| c.state.running || c.state.paused || c.state.restarting)
            .map(|c| c.name)
            .collect();
        names.sort();
        names
    }

    /// 409 when running containers use the volume.
    fn volume_quiet(&self, op: &str, name: &str, force_hint: bool) -> Result<(), EngineError> {
        let users = self.volume_running_users(name);
        if users.is_empty() {
            return Ok(());
        }
        Err(EngineError::Conflict(format!(
            "{op} {name}: volume is in use by running container(s) {}: stop {}{}",
            users.join(", "),
            if users.len() == 1 { "it" } else { "them" },
            if force_hint {
                ", or force it (--force, force=1) to read it while it may change"
            } else {
                " first"
            }
        )))
    }

    /// Mounts volume `name` for `op`.
    fn volume_access(&self, op: &str, name: &str) -> Result<VolumeAccess, EngineError> {
        let Some(record) = self.volumes().record(name) else {
            return Err(EngineError::NotFound(format!("get {name}: no such volume")));
        };
        let driver = self
            .volumes()
            .drivers()
            .get(&record.driver)
            .map_err(|e| op_error(op, name, e))?;
        let mount_id = next_mount_id();
        let hold = self.volumes().hold(name, &mount_id)?;
        let path = driver
            .mount(name, &mount_id)
            .map_err(|e| op_error(op, name, e))?;
        Ok(VolumeAccess {
            driver,
            _hold: hold,
            name: name.to_string(),
            mount_id,
            path,
        })
    }

    /// Opens volume `name` for an export: 404 if missing, 409 if running containers use
    /// it (unless `force`). The caller writes [`pier_volume::archive::export`] of the
    /// access's path, then drops it.
    pub fn volume_export_open(&self, name: &str, force: bool) -> Result<VolumeAccess, EngineError> {
        if self.volumes().record(name).is_none() {
            return Err(EngineError::NotFound(format!("get {name}: no such volume")));
        }
        if !force {
            self.volume_quiet("export", name, true)?;
        }
        self.volume_access("export", name)
    }

    /// Exports volume `name` to `out` (the whole operation, for callers that have a
    /// writer at hand).
    pub fn volume_export(
        &self,
        name: &str,
        force: bool,
        out: impl Write,
    ) -> Result<(), EngineError> {
        let access = self.volume_export_open(name, force)?;
        pier_volume::archive::export(&access.path, out).map_err(|e| op_error("export", name, e))
    }

    /// Makes volume `name` (as `like` says, else `local`) unless it exists; answers
    /// whether it was made now.
    fn volume_ensure(
        &self,
        name: &str,
        like: Option<VolumeCreateOptions>,
    ) -> Result<bool, EngineError> {
        if self.volumes().record(name).is_some() {
            return Ok(false);
        }
        super::volumes::validate_name(name)?;
        let mut opts = like.unwrap_or_default();
        opts.name = Some(name.to_string());
        self.volume_create(&opts)?;
        Ok(true)
    }

    /// Fills volume `name` from `fill`, which gets the volume's (empty) directory. The
    /// volume is made first if missing; on failure it is left empty, or removed if it
    /// was made here.
    fn volume_fill(
        &self,
        op: &str,
        name: &str,
        like: Option<VolumeCreateOptions>,
        fill: impl FnOnce(&std::path::Path) -> Result<(), EngineError>,
    ) -> Result<bool, EngineError> {
        let made = self.volume_ensure(name, like)?;
        let result = (|| {
            self.volume_quiet(op, name, false)?;
            let access = self.volume_access(op, name)?;
            let empty =
                pier_volume::archive::is_empty(&access.path).map_err(|e| op_error(op, name, e))?;
            if !empty {
                return Err(EngineError::Conflict(format!(
                    "{op} {name}: volume is not empty: {op} fills a new or empty volume only"
                )));
            }
            fill(&access.path)
        })();
        if let Err(e) = result {
            if made {
                if let Err(undo) = self.volume_remove(name, true) {
                    eprintln!("pierd: removing volume {name} after a failed {op}: {undo}");
                }
            }
            return Err(e);
        }
        Ok(made)
    }

    /// Imports the tar stream `input` into volume `name` (made if missing, else it must
    /// be empty). Answers whether the volume was made now.
    pub fn volume_import(&self, name: &str, input: impl Read) -> Result<bool, EngineError> {
        self.volume_fill("import", name, None, |path| {
            pier_volume::archive::import(path, input).map_err(|e| op_error("import", name, e))
        })
    }

    /// Copies volume `source` into `target` (made with the source's driver and options if
    /// missing, else it must be empty).
    pub fn volume_clone(
        &self,
        source: &str,
        target: &str,
        force: bool,
    ) -> Result<Volume, EngineError> {
        if source == target {
            return Err(EngineError::InvalidParameter(format!(
                "clone {source}: the target is the source"
            )));
        }
        let Some(record) = self.volumes().record(source) else {
            return Err(EngineError::NotFound(format!(
                "get {source}: no such volume"
            )));
        };
        let from = self.volume_export_open(source, force)?;
        let like = VolumeCreateOptions {
            driver: Some(record.driver.clone()),
            driver_opts: record.options.clone(),
            ..Default::default()
        };
        self.volume_fill("clone", target, Some(like), |path| {
            pier_volume::archive::clone_tree(&from.path, path)
                .map_err(|e| op_error("clone", target, e))
        })?;
        drop(from);
        self.volumes().inspect(target)
    }
}
