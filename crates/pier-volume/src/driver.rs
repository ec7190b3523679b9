//! The driver interface: what pierd asks of a volume driver.
//!
//! It mirrors Docker's volume plugin protocol (`VolumeDriver.Create|Remove|Mount|
//! Unmount|Path|Get|List|Capabilities`), so that the local driver and plugins are
//! interchangeable behind it. Calls block: pierd makes them off its async runtime
//! (`spawn_blocking`), since a plugin may take its time.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A driver's error classes; pierd maps each to one API status.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// 404: no such volume (or no such driver).
    #[error("{0}")]
    NotFound(String),
    /// 409: the volume is in use, or exists with another driver.
    #[error("{0}")]
    Conflict(String),
    /// 400: bad name, bad options.
    #[error("{0}")]
    InvalidParameter(String),
    /// 500: the driver (or plugin) failed; the text says which and why.
    #[error("{0}")]
    Driver(String),
    /// 500: a host I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl VolumeError {
    /// An I/O error with what was being done when it happened.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        VolumeError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Docker's `Scope` of a volume: `local` to this host, or `global` to a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Local,
    Global,
}

/// What a driver knows of one volume (the plugin protocol's `Volume` object).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriverVolume {
    pub name: String,
    /// Where it is (or would be) mounted on the host; empty when the driver has no path
    /// until mounted.
    pub mountpoint: Option<PathBuf>,
    /// The driver's own `Status` map, shown as-is in `docker volume inspect`.
    pub status: Option<BTreeMap<String, serde_json::Value>>,
    /// The driver's own creation time (RFC 3339), when it reports one.
    pub created_at: Option<String>,
}

/// A volume driver. `mount_id` identifies one use (pierd passes the container ID), so a
/// driver can count its users: Docker's Mount/Unmount contract.
pub trait VolumeDriver: Send + Sync + std::fmt::Debug {
    /// The name users give with `--driver`/`-d` (`local`, or the plugin's name).
    fn name(&self) -> &str;
    /// `VolumeDriver.Capabilities`: the driver's scope.
    fn scope(&self) -> Scope;
    /// `VolumeDriver.Create`. Options are the user's `--opt`s, unparsed.
    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<(), VolumeError>;
    /// `VolumeDriver.Remove`.
    fn remove(&self, name: &str) -> Result<(), VolumeError>;
    /// `VolumeDriver.Path`: the host path, if mounted (or always, for `local`).
    fn path(&self, name: &str) -> Result<Option<PathBuf>, VolumeError>;
    /// `VolumeDriver.Mount`: make it available and answer its host path.
    fn mount(&self, name: &str, mount_id: &str) -> Result<PathBuf, VolumeError>;
    /// `VolumeDriver.Unmount`: this use is over.
    fn unmount(&self, name: &str, mount_id: &str) -> Result<(), VolumeError>;
    /// `VolumeDriver.Get`.
    fn get(&self, name: &str) -> Result<DriverVolume, VolumeError>;
    /// `VolumeDriver.List`.
    fn list(&self) -> Result<Vec<DriverVolume>, VolumeError>;
}
