//! Containers in user namespaces: which mapping a container gets at create
//! (`HostConfig.UsernsMode` against the daemon's `--userns-remap`), and its rootfs and
//! files seen through that mapping at start.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use super::{internal, Container, Engine, EngineError, Entry};
use crate::userns::{self, IdMapping};

/// What `HostConfig.UsernsMode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UsernsChoice {
    /// The host's user namespace: no remap configured, or `--userns host`.
    Host,
    /// The daemon's remap (slot 0), dockerd's behaviour.
    Remap,
    /// Pier's `--userns auto`: a range of its own.
    Auto,
}

impl Engine {
    /// Checks `UsernsMode` as dockerd does (`""` and `host`), plus Pier's `auto`.
    pub(super) fn userns_choice(&self, hc: &Value) -> Result<UsernsChoice, EngineError> {
        let mode = hc["UsernsMode"].as_str().unwrap_or_default();
        let privileged = hc["Privileged"].as_bool() == Some(true);
        let choice = match (mode, &self.remap) {
            ("host", _) | ("", None) => UsernsChoice::Host,
            ("", Some(_)) => UsernsChoice::Remap,
            ("auto", Some(_)) => UsernsChoice::Auto,
            ("auto", None) => {
                return Err(EngineError::InvalidParameter(
                    "--userns auto: the daemon has no user namespace ranges: start pierd with --userns-remap"
                        .into(),
                ))
            }
            (other, _) => {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid --userns: {other}"
                )))
            }
        };
        if privileged && choice != UsernsChoice::Host {
            // dockerd's words, two spaces included.
            return Err(EngineError::InvalidParameter(
                "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode".into(),
            ));
        }
        Ok(choice)
    }

    /// The mapping for `choice`, given the existing containers (an `auto` range is one
    /// none of them has). Called under the containers' lock, so two creates never get
    /// one range.
    pub(super) fn userns_mapping<'a>(
        &self,
        choice: UsernsChoice,
        existing: impl Iterator<Item = &'a Entry>,
    ) -> Result<Option<IdMapping>, EngineError> {
        let Some(remap) = &self.remap else {
            return Ok(None);
        };
        Ok(match choice {
            UsernsChoice::Host => None,
            UsernsChoice::Remap => Some(remap.default_mapping()),
            UsernsChoice::Auto => Some(
                remap
                    .auto_mapping(existing.filter_map(|e| e.c.userns.as_ref()))
                    .map_err(|e| EngineError::Conflict(e.to_string()))?,
            ),
        })
    }

    /// The container's directory: root's only, or, for a container in a user
    /// namespace, entered by its mapped root's group too (the runtime mounts its rootfs
    /// from inside the namespace).
    pub(super) fn make_container_dir(&self, c: &Container) -> Result<(), EngineError> {
        let dir = self.data_dir(&c.id);
        fs::create_dir_all(&dir).map_err(|e| internal("create container dir", e))?;
        let mode = match &c.userns {
            Some(mapping) => {
                std::os::unix::fs::chown(&dir, Some(0), Some(mapping.root().1))
                    .map_err(|e| internal("chown container dir", e))?;
                0o710
            }
            None => 0o700,
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| internal("chmod container dir", e))
    }

    /// Mounts the container's snapshot on `rootfs`, through its mapping if it has one.
    pub(super) fn mount_rootfs(&self, c: &Container, rootfs: &Path) -> pier_image::Result<()> {
        let snapshots = self.images.snapshots();
        match &c.userns {
            None => snapshots.mount(&c.snapshot_key, rootfs),
            Some(mapping) => {
                let ns = userns::namespace_fd(mapping)
                    .map_err(|e| pier_image::Error::InvalidArgument(e.to_string()))?;
                let (root_uid, root_gid) = mapping.root();
                let idmap = pier_image::snapshot::IdMap {
                    userns: std::os::fd::AsFd::as_fd(&ns),
                    root_uid,
                    root_gid,
                };
                snapshots.mount_idmapped(&c.snapshot_key, rootfs, idmap)
            }
        }
    }

    /// The files pierd bind-mounts into the container belong to its root, as in
    /// Docker: the container's root may rewrite its `/etc/hosts`.
    pub(super) fn own_files(&self, c: &Container, files: &[(String, std::path::PathBuf)]) {
        if let Some(mapping) = &c.userns {
            for (_, path) in files {
                let _ = userns::chown_to_root(path, mapping);
            }
        }
    }
}

/// The daemon's remap user, from `--userns-remap`; refused on a kernel that cannot
/// mount idmapped layers.
pub(super) fn load_remap(
    config: &crate::config::DaemonConfig,
) -> Result<Option<userns::Remap>, EngineError> {
    let Some(flag) = config.userns_remap.as_deref() else {
        return Ok(None);
    };
    if !userns::kernel_supports_idmapped_layers() {
        return Err(EngineError::InvalidParameter(
            "--userns-remap needs idmapped overlayfs layers (Linux 5.19 or later)".into(),
        ));
    }
    userns::Remap::load(flag)
        .map(Some)
        .map_err(|e| EngineError::InvalidParameter(e.to_string()))
}
