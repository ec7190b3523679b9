//! The volume service: named and anonymous volumes, their records, and their use by
//! containers.
//!
//! **Records.** Each volume is one record in the store's `volumes` table (name, driver,
//! labels, options, creation time), kept in memory too. Drivers are found by name
//! ([`Drivers`]): `local` is [`pier_volume::local::LocalDriver`] over
//! `<data-root>/volumes`; any other name is a Docker volume plugin
//! ([`pier_volume::plugin::PluginRegistry`]). `volume ls` and `inspect` also show the
//! volumes a plugin reports that have no record here (made through the plugin or
//! another daemon), asking only plugins already activated, as dockerd does.
//!
//! **Crash safety.** A create writes its record in state `creating` before it asks the
//! driver, and `ready` after; a remove writes `removing` before it asks the driver and
//! deletes the record after. At startup ([`VolumeService::open`]) a `creating` record
//! is undone (the driver removes what it made, the record goes), a `removing` one is
//! finished, and a directory under `<data-root>/volumes` that no record names (made by
//! hand, or by a create whose record write failed) is removed. So a `kill -9` between
//! making a volume's directory and recording it leaves nothing behind.
//!
//! **Use by containers.** At container create every volume entry of the container's
//! mount plan ([`super::mounts`]) is resolved: named volumes are found or created,
//! anonymous ones are created under a random 64-hex name with Docker's
//! `com.docker.volume.anonymous` label, and the container is recorded as a user of
//! each (the in-use check of `volume rm` and `prune`). At start each is mounted through
//! its driver with the container ID as mount ID (copy-up fills a new, empty volume from
//! the image), at exit unmounted; `rm -v` and `--rm` remove the container's anonymous
//! volumes. Events `create`, `mount`, `unmount`, `destroy` go on the event bus.
//!
//! Everything here blocks (drivers may be plugins): callers use `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use pier_api::volume::{UsageData, Volume, VolumeCreateOptions, VolumePruneResponse};
use pier_volume::local::LocalDriver;
use pier_volume::plugin::PluginRegistry;
use pier_volume::{VolumeDriver, VolumeError};
use serde::{Deserialize, Serialize};

use super::events::Event;
use super::mounts::{MountOrigin, MountPlan, MountSource};
use super::store::Store;
use super::{Container, Engine, EngineError};

/// The label Docker (23+) gives anonymous volumes; `volume prune` removes only those
/// unless asked for all.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// The default driver.
pub const DEFAULT_DRIVER: &str = pier_volume::local::NAME;

/// Where a record is in its life (see the [module docs](self) on crash safety).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Recorded, the driver not yet done creating it.
    Creating,
    #[default]
    Ready,
    /// Being removed.
    Removing,
}

/// A volume's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    /// RFC 3339, seconds (as dockerd shows it).
    pub created_at: String,
    /// None when created without (Docker answers `null`, not `{}`).
    pub labels: Option<BTreeMap<String, String>>,
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub state: RecordState,
}

impl VolumeRecord {
    pub fn is_anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }
}

/// Drivers by name: `local`, else a plugin. Plugins plug in through the registry.
#[derive(Debug)]
pub struct Drivers {
    local: Arc<LocalDriver>,
    plugins: PluginRegistry,
}

impl Drivers {
    pub fn new(local: LocalDriver, plugin_dirs: Vec<PathBuf>) -> Drivers {
        Drivers {
            local: Arc::new(local),
            plugins: PluginRegistry::new(plugin_dirs),
        }
    }

    /// The driver called `name` (empty: `local`).
    pub fn get(&self, name: &str) -> Result<Arc<dyn VolumeDriver>, VolumeError> {
        if name.is_empty() || name == DEFAULT_DRIVER {
            return Ok(self.local.clone());
        }
        self.plugins.get(name)
    }

    pub fn local(&self) -> &LocalDriver {
        &self.local
    }

    /// The plugins activated so far, and those `recorded` volumes use (activated on
    /// their first call): the drivers whose own volumes `volume ls` and `inspect`
    /// show, as dockerd asks the drivers it has activated. Plugins merely present in
    /// a plugin directory are not woken for a listing.
    fn known_plugins<'a>(&self, recorded: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut names: BTreeSet<String> = self.plugins.active_names().into_iter().collect();
        names.extend(
            recorded
                .filter(|d| !d.is_empty() && *d != DEFAULT_DRIVER)
                .map(str::to_string),
        );
        names.into_iter().collect()
    }
}

/// A volume a container has mounted (for its unmount).
#[derive(Debug, Clone)]
struct Mounted {
    name: String,
    driver: String,
}

#[derive(Debug, Default)]
struct Tables {
    records: BTreeMap<String, VolumeRecord>,
    /// Containers using each volume (also stopped ones, as in Docker).
    users: HashMap<String, BTreeSet<String>>,
    /// What each running container has mounted.
    mounted: HashMap<String, Vec<Mounted>>,
    /// Where each plugin volume was last mounted (the plugin's `Mount` answer), shown
    /// in containers' `Mounts` without asking the plugin again.
    mountpoints: HashMap<String, PathBuf>,
}

/// A use of a volume that is not a container's (an export, import or clone in
/// progress): while held, `volume rm` and `prune` see the volume in use. Released when
/// dropped.
#[derive(Debug)]
pub struct VolumeHold {
    tables: Arc<Mutex<Tables>>,
    name: String,
    holder: String,
}

impl Drop for VolumeHold {
    fn drop(&mut self) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = t.users.get_mut(&self.name) {
            set.remove(&self.holder);
            if set.is_empty() {
                t.users.remove(&self.name);
            }
        }
    }
}

/// The service; see the [module docs](self).
#[derive(Debug)]
pub struct VolumeService {
    drivers: Drivers,
    tables: Arc<Mutex<Tables>>,
    /// Serializes creates, removes and claims, so that a volume checked unused is not
    /// claimed before it is gone, and one name is not created twice.
    ops: Mutex<()>,
}

/// A `VolumeError` as the engine's error class, with Docker's `<op> <name>: ` prefix.
pub(super) fn op_error(op: &str, name: &str, e: VolumeError) -> EngineError {
    let text = format!("{op} {name}: {e}");
    match e {
        VolumeError::NotFound(_) => EngineError::NotFound(text),
        VolumeError::Conflict(_) => EngineError::Conflict(text),
        VolumeError::InvalidParameter(_) => EngineError::InvalidParameter(text),
        VolumeError::Driver(_) | VolumeError::Io { .. } => EngineError::Internal(text),
    }
}

fn no_such_volume(name: &str) -> EngineError {
    EngineError::NotFound(format!("get {name}: no such volume"))
}

/// Docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with its messages.
pub fn validate_name(name: &str) -> Result<(), EngineError> {
    let bytes = name.as_bytes();
    let ok_first = bytes.first().is_some_and(u8::is_ascii_alphanumeric);
    let ok_rest = bytes
        .iter()
        .skip(1)
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok_first && ok_rest && bytes.len() == 1 {
        return Err(EngineError::InvalidParameter(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    if !(ok_first && ok_rest) {
        return Err(EngineError::InvalidParameter(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    Ok(())
}

/// Now, RFC 3339 to the second (as dockerd shows `CreatedAt`).
fn now_seconds_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    pier_image::time::format_rfc3339(secs, 0)
}

/// The apparent size of the files under `dir`, hard links once, directories not
/// counted: what dockerd reports as a volume's size.
pub fn content_size(dir: &Path) -> i64 {
    let mut seen = BTreeSet::new();
    let mut total: u64 = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let Ok(md) = entry.metadata() else { continue };
            if md.is_dir() {
                pending.push(entry.path());
            } else if md.len() > 0 && (md.nlink() <= 1 || seen.insert((md.dev(), md.ino()))) {
                total += md.len();
            }
        }
    }
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// Docker's `Volume` of what a driver reports (no record: no labels, options or
/// creation time but the driver's own).
fn driver_volume_to_api(driver: &dyn VolumeDriver, found: pier_volume::DriverVolume) -> Volume {
    Volume {
        name: found.name,
        driver: driver.name().to_string(),
        mountpoint: found
            .mountpoint
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        created_at: found.created_at,
        status: found.status,
        labels: None,
        scope: match driver.scope() {
            pier_volume::Scope::Local => "local".into(),
            pier_volume::Scope::Global => "global".into(),
        },
        options: None,
        usage_data: None,
        extra: serde_json::Map::new(),
    }
}

/// `volume ls` filters (`dangling`, `driver`, `label`, `name`), checked as dockerd.
#[derive(Debug, Clone, Default)]
pub struct ListFilters {
    pub dangling: Option<bool>,
    pub drivers: Vec<String>,
    pub labels: Vec<String>,
    pub names: Vec<String>,
}

/// Docker's `name` filter, a regular expression searched in the name; the subset
/// supported here: literals, `.`, `*` after an atom, `^` and `$` anchors, `\` escapes
/// (Rob Pike's matcher). Other metacharacters match themselves.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    if let Some(rest) = p.strip_prefix(&['^']) {
        return match_here(rest, &t);
    }
    (0..=t.len()).any(|i| match_here(&p, &t[i..]))
}

/// One atom of a pattern: a char (escaped or not) or `.`, and its length in `p`.
fn atom(p: &[char]) -> Option<(Option<char>, usize)> {
    match p {
        ['\\', c, ..] => Some((Some(*c), 2)),
        ['.', ..] => Some((None, 1)),
        [c, ..] => Some((Some(*c), 1)),
        [] => None,
    }
}

fn match_here(p: &[char], t: &[char]) -> bool {
    let Some((want, len)) = atom(p) else {
        return true;
    };
    let fits = |c: &char| want.is_none_or(|w| w == *c);
    if p.get(len) == Some(&'*') {
        let rest = &p[len + 1..];
        let mut i = 0;
        loop {
            if match_here(rest, &t[i..]) {
                return true;
            }
            if i < t.len() && fits(&t[i]) {
                i += 1;
            } else {
                return false;
            }
        }
    }
    if p == ['$'] {
        return t.is_empty();
    }
    match t.first() {
        Some(c) if fits(c) => match_here(&p[len..], &t[1..]),
        _ => false,
    }
}

/// `volume prune` filters (`label`, `label!`, `all`).
#[derive(Debug, Clone, Default)]
pub struct PruneFilters {
    pub labels: Vec<String>,
    pub not_labels: Vec<String>,
    /// Named volumes too (API ≥ 1.42 `all=true`; API < 1.42 always).
    pub all: bool,
}

/// Docker's `label` filter: `k` (present) or `k=v` (equal), all of them.
fn labels_match(filters: &[String], labels: Option<&BTreeMap<String, String>>) -> bool {
    filters.iter().all(|f| {
        let labels = labels.cloned().unwrap_or_default();
        match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(f.as_str()),
        }
    })
}

impl VolumeService {
    /// Opens the service over `<data-root>/volumes`: loads the records, finishes or
    /// undoes what a crash interrupted, removes directories no record names.
    pub fn open(
        store: &Store,
        data_root: &Path,
        plugin_dirs: Vec<PathBuf>,
    ) -> Result<VolumeService, EngineError> {
        let local = LocalDriver::new(data_root.join("volumes"))
            .map_err(|e| EngineError::Internal(format!("volumes: {e}")))?;
        let service = VolumeService {
            drivers: Drivers::new(local, plugin_dirs),
            tables: Arc::new(Mutex::new(Tables::default())),
            ops: Mutex::new(()),
        };
        let mut records = BTreeMap::new();
        for rec in store.load_volumes()? {
            match rec.state {
                RecordState::Ready => {
                    records.insert(rec.name.clone(), rec);
                }
                RecordState::Creating | RecordState::Removing => {
                    // Undone or finished alike: the driver removes it, the record goes.
                    let removed = service
                        .drivers
                        .get(&rec.driver)
                        .and_then(|d| d.remove(&rec.name));
                    match removed {
                        Ok(()) | Err(VolumeError::NotFound(_)) => {
                            store.delete_volume(&rec.name)?;
                            eprintln!(
                                "pierd: volume {}: {} interrupted by a crash, removed",
                                rec.name,
                                if rec.state == RecordState::Creating {
                                    "create"
                                } else {
                                    "remove"
                                }
                            );
                        }
                        // A plugin that is not up yet: left for the next start.
                        Err(e) => eprintln!("pierd: volume {}: {e}", rec.name),
                    }
                }
            }
        }
        let local = service.drivers.local();
        for name in local.names() {
            let recorded = records
                .get(&name)
                .is_some_and(|r| r.driver == DEFAULT_DRIVER);
            if !recorded {
                match local.remove(&name) {
                    Ok(()) => eprintln!("pierd: volume directory {name} had no record: removed"),
                    Err(e) => eprintln!("pierd: volume directory {name} has no record: {e}"),
                }
            }
        }
        service.lock().records = records;
        Ok(service)
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ops(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn drivers(&self) -> &Drivers {
        &self.drivers
    }

    /// The record of `name`, if any.
    pub fn record(&self, name: &str) -> Option<VolumeRecord> {
        self.lock().records.get(name).cloned()
    }

    /// The containers using `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.lock()
            .users
            .get(name)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Marks volume `name` in use by `holder` (an operation's ID, shown in the 409 of
    /// `volume rm`) until the hold is dropped. Serialized with removes: a volume held
    /// is not half-removed, and one being removed is not held. 404 if it does not exist.
    pub fn hold(&self, name: &str, holder: &str) -> Result<VolumeHold, EngineError> {
        let _ops = self.ops();
        let mut t = self.lock();
        if !t.records.contains_key(name) {
            return Err(no_such_volume(name));
        }
        t.users
            .entry(name.to_string())
            .or_default()
            .insert(holder.to_string());
        Ok(VolumeHold {
            tables: self.tables.clone(),
            name: name.to_string(),
            holder: holder.to_string(),
        })
    }

    /// Drops what is kept in memory of a removed volume.
    fn forget(&self, name: &str) {
        let mut t = self.lock();
        t.records.remove(name);
        t.mountpoints.remove(name);
    }

    /// Notes where a plugin volume was mounted (for containers' `Mounts`).
    fn note_mountpoint(&self, rec_driver: &str, name: &str, path: &Path) {
        if rec_driver != DEFAULT_DRIVER {
            self.lock()
                .mountpoints
                .insert(name.to_string(), path.to_path_buf());
        }
    }

    /// Records `container` as a user of each of `names` (at load: from the records).
    fn add_users(&self, container: &str, names: &[String]) {
        let mut t = self.lock();
        for n in names {
            t.users
                .entry(n.clone())
                .or_default()
                .insert(container.to_string());
        }
    }

    /// `container` no longer uses any volume.
    fn drop_user(&self, container: &str) {
        let mut t = self.lock();
        for set in t.users.values_mut() {
            set.remove(container);
        }
        t.users.retain(|_, s| !s.is_empty());
    }

    /// Docker's `Volume` of a record (`Mountpoint` and `CreatedAt` from the driver
    /// where it knows them).
    fn to_api(&self, rec: &VolumeRecord) -> Result<Volume, VolumeError> {
        let driver = self.drivers.get(&rec.driver)?;
        let found = driver.get(&rec.name)?;
        let mut volume = driver_volume_to_api(&*driver, found);
        volume.name = rec.name.clone();
        volume.created_at = Some(rec.created_at.clone());
        volume.labels = rec.labels.clone();
        volume.options = rec.options.clone();
        Ok(volume)
    }

    /// The volumes the known plugins ([`Drivers::known_plugins`]) report through
    /// `VolumeDriver.List` that have no record here (made by the plugin itself, or
    /// through another daemon), those `keep` selects; a warning for each plugin that
    /// could not answer.
    fn unrecorded_volumes(&self, keep: impl Fn(&str, &str) -> bool) -> (Vec<Volume>, Vec<String>) {
        let (recorded, drivers): (BTreeSet<String>, Vec<String>) = {
            let t = self.lock();
            (
                t.records.keys().cloned().collect(),
                t.records.values().map(|r| r.driver.clone()).collect(),
            )
        };
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for plugin in self
            .drivers
            .known_plugins(drivers.iter().map(String::as_str))
        {
            if !keep(&plugin, "") {
                continue;
            }
            let listed = self.drivers.get(&plugin).and_then(|d| Ok((d.list()?, d)));
            match listed {
                Ok((volumes, driver)) => out.extend(
                    volumes
                        .into_iter()
                        .filter(|v| !recorded.contains(&v.name) && keep(&plugin, &v.name))
                        .map(|v| driver_volume_to_api(&*driver, v)),
                ),
                Err(e) => warnings.push(format!("{plugin}: {e}")),
            }
        }
        (out, warnings)
    }

    /// A volume no record names, from the first known plugin that has it
    /// (`VolumeDriver.Get`), as dockerd finds a plugin's own volumes.
    fn unrecorded_volume(&self, name: &str) -> Option<Volume> {
        let drivers: Vec<String> = self
            .lock()
            .records
            .values()
            .map(|r| r.driver.clone())
            .collect();
        self.drivers
            .known_plugins(drivers.iter().map(String::as_str))
            .into_iter()
            .find_map(|plugin| {
                let driver = self.drivers.get(&plugin).ok()?;
                let found = driver.get(name).ok()?;
                let mut volume = driver_volume_to_api(&*driver, found);
                volume.name = name.to_string();
                Some(volume)
            })
    }

    /// Creates a volume, or answers the existing one of that name (and driver). The
    /// bool says whether it was made now.
    pub fn create(
        &self,
        store: &Store,
        opts: &VolumeCreateOptions,
    ) -> Result<(VolumeRecord, bool), EngineError> {
        let _ops = self.ops();
        self.create_locked(store, opts)
    }

    fn create_locked(
        &self,
        store: &Store,
        opts: &VolumeCreateOptions,
    ) -> Result<(VolumeRecord, bool), EngineError> {
        let mut labels = opts.labels.clone();
        let name = match opts.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => {
                labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ANONYMOUS_LABEL.into(), String::new());
                super::random_id()
            }
        };
        validate_name(&name)?;
        let driver_name = opts
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DRIVER.to_string());
        if let Some(existing) = self.record(&name) {
            if existing.driver != driver_name {
                // As dockerd: the driver asked for is looked up first (an unknown one
                // is its 404), then the names conflict.
                self.drivers
                    .get(&driver_name)
                    .map_err(|e| op_error("create", &name, e))?;
                return Err(EngineError::Conflict(format!(
                    "create {name}: driver '{}' already has volume '{name}': volume name must be unique",
                    existing.driver
                )));
            }
            return Ok((existing, false));
        }
        let driver = self
            .drivers
            .get(&driver_name)
            .map_err(|e| op_error("create", &name, e))?;
        let mut rec = VolumeRecord {
            name: name.clone(),
            driver: driver_name,
            created_at: now_seconds_rfc3339(),
            labels,
            options: opts.driver_opts.clone(),
            state: RecordState::Creating,
        };
        store.put_volume(&rec)?;
        let empty = BTreeMap::new();
        if let Err(e) = driver.create(&name, rec.options.as_ref().unwrap_or(&empty)) {
            let _ = store.delete_volume(&name);
            return Err(op_error("create", &name, e));
        }
        rec.state = RecordState::Ready;
        if let Err(e) = store.put_volume(&rec) {
            let _ = driver.remove(&name);
            let _ = store.delete_volume(&name);
            return Err(e);
        }
        self.lock().records.insert(name, rec.clone());
        Ok((rec, true))
    }

    /// `GET /volumes/{name}`: a recorded volume, else one a known plugin has.
    pub fn inspect(&self, name: &str) -> Result<Volume, EngineError> {
        match self.record(name) {
            Some(rec) => self.to_api(&rec).map_err(|e| op_error("get", name, e)),
            None => self
                .unrecorded_volume(name)
                .ok_or_else(|| no_such_volume(name)),
        }
    }

    /// `GET /volumes`: the volumes, and a warning for each the driver could not answer.
    pub fn list(&self, filters: &ListFilters) -> (Vec<Volume>, Vec<String>) {
        let records: Vec<VolumeRecord> = self.lock().records.values().cloned().collect();
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for rec in records {
            let users = self.users(&rec.name);
            if filters.dangling.is_some_and(|d| d != users.is_empty()) {
                continue;
            }
            if !filters.drivers.is_empty() && !filters.drivers.contains(&rec.driver) {
                continue;
            }
            if !filters.names.is_empty()
                && !filters.names.iter().any(|n| pattern_matches(n, &rec.name))
            {
                continue;
            }
            if !labels_match(&filters.labels, rec.labels.as_ref()) {
                continue;
            }
            match self.to_api(&rec) {
                Ok(v) => out.push(v),
                Err(e) => warnings.push(format!("{}: {e}", rec.name)),
            }
        }
        // A plugin's own volumes: unused here (dangling), without labels.
        if filters.dangling != Some(false) && filters.labels.is_empty() {
            let (more, more_warnings) = self.unrecorded_volumes(|driver, name| {
                (filters.drivers.is_empty() || filters.drivers.iter().any(|d| d == driver))
                    && (name.is_empty()
                        || filters.names.is_empty()
                        || filters.names.iter().any(|n| pattern_matches(n, name)))
            });
            out.extend(more);
            warnings.extend(more_warnings);
        }
        (out, warnings)
    }

    /// `DELETE /volumes/{name}`. In use: Docker's 409, also with `force`; missing:
    /// 404, or nothing with `force`; a driver failure with `force` drops the record
    /// all the same (Docker's purge on error).
    pub fn remove(
        &self,
        store: &Store,
        name: &str,
        force: bool,
    ) -> Result<VolumeRecord, EngineError> {
        let _ops = self.ops();
        self.remove_locked(store, name, force)
    }

    fn remove_locked(
        &self,
        store: &Store,
        name: &str,
        force: bool,
    ) -> Result<VolumeRecord, EngineError> {
        let Some(mut rec) = self.record(name) else {
            return Err(no_such_volume(name));
        };
        let users = self.users(name);
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        rec.state = RecordState::Removing;
        store.put_volume(&rec)?;
        let removed = self.drivers.get(&rec.driver).and_then(|d| d.remove(name));
        match removed {
            Ok(()) | Err(VolumeError::NotFound(_)) => {}
            Err(e) => {
                if force {
                    store.delete_volume(name)?;
                    self.forget(name);
                } else {
                    rec.state = RecordState::Ready;
                    store.put_volume(&rec)?;
                }
                return Err(op_error("remove", name, e));
            }
        }
        store.delete_volume(name)?;
        self.forget(name);
        Ok(rec)
    }

    /// `POST /volumes/prune`: the unused volumes the filters select (anonymous ones
    /// only unless `all`), with the space their content took.
    pub fn prune(
        &self,
        store: &Store,
        filters: &PruneFilters,
    ) -> (VolumePruneResponse, Vec<VolumeRecord>) {
        let _ops = self.ops();
        let candidates: Vec<VolumeRecord> = {
            let t = self.lock();
            t.records
                .values()
                .filter(|r| t.users.get(&r.name).is_none_or(BTreeSet::is_empty))
                .filter(|r| filters.all || r.is_anonymous())
                .filter(|r| labels_match(&filters.labels, r.labels.as_ref()))
                .filter(|r| {
                    filters.not_labels.is_empty()
                        || !labels_match(&filters.not_labels, r.labels.as_ref())
                })
                .cloned()
                .collect()
        };
        let mut answer = VolumePruneResponse::default();
        let mut removed = Vec::new();
        for rec in candidates {
            let size = self.local_size(&rec);
            if self.remove_locked(store, &rec.name, false).is_ok() {
                answer.volumes_deleted.push(rec.name.clone());
                answer.space_reclaimed += u64::try_from(size.max(0)).unwrap_or(0);
                removed.push(rec);
            }
        }
        (answer, removed)
    }

    /// The content size of a local volume; -1 for other drivers (not computed).
    fn local_size(&self, rec: &VolumeRecord) -> i64 {
        if rec.driver != DEFAULT_DRIVER {
            return -1;
        }
        match self.drivers.local().path(&rec.name) {
            Ok(Some(path)) => content_size(&path),
            _ => -1,
        }
    }

    /// The local volumes without options (as dockerd counts them: a mounted filesystem
    /// is not sized), each with its `UsageData` (`system df`).
    pub fn usage(&self) -> Vec<Volume> {
        let filters = ListFilters {
            drivers: vec![DEFAULT_DRIVER.to_string()],
            ..ListFilters::default()
        };
        let (volumes, _) = self.list(&filters);
        volumes
            .into_iter()
            .filter(|v| v.options.as_ref().is_none_or(BTreeMap::is_empty))
            .map(|mut v| {
                let refs = self.users(&v.name).len();
                let size = self.record(&v.name).map_or(-1, |r| self.local_size(&r));
                v.usage_data = Some(UsageData {
                    size,
                    ref_count: i64::try_from(refs).unwrap_or(i64::MAX),
                });
                v
            })
            .collect()
    }
}

/// What a container create claimed, to give back if the create fails.
#[derive(Debug, Default)]
pub struct Claim {
    /// Volumes this create made (named or anonymous).
    pub made: Vec<String>,
    /// Every volume the container uses.
    pub used: Vec<String>,
    /// The anonymous ones (removed by `rm -v` and `--rm`).
    pub anonymous: Vec<String>,
}

impl Engine {
    pub fn volumes(&self) -> &VolumeService {
        &self.volumes
    }

    fn volume_event(&self, action: &str, name: &str, attrs: &[(&str, String)]) {
        let mut event = Event::new("volume", action, name);
        for (k, v) in attrs {
            event = event.with(k, v.clone());
        }
        self.bus.publish(event);
    }

    /// `POST /volumes/create`. Blocking.
    pub fn volume_create(&self, opts: &VolumeCreateOptions) -> Result<Volume, EngineError> {
        let (rec, made) = self.volumes.create(&self.store, opts)?;
        if made {
            self.volume_event("create", &rec.name, &[("driver", rec.driver.clone())]);
        }
        self.volumes.inspect(&rec.name)
    }

    /// `DELETE /volumes/{name}`. Blocking.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<(), EngineError> {
        match self.volumes.remove(&self.store, name, force) {
            Ok(rec) => {
                self.volume_event("destroy", name, &[("driver", rec.driver)]);
                Ok(())
            }
            Err(EngineError::NotFound(_)) if force => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /volumes/prune`. Blocking.
    pub fn volume_prune(&self, filters: &PruneFilters) -> VolumePruneResponse {
        let (answer, removed) = self.volumes.prune(&self.store, filters);
        for rec in removed {
            self.volume_event("destroy", &rec.name, &[("driver", rec.driver)]);
        }
        self.volume_event(
            "prune",
            "",
            &[("reclaimed", answer.space_reclaimed.to_string())],
        );
        answer
    }

    /// The users of volumes, from the container records (at startup).
    pub(super) fn volumes_load_users(&self) {
        let containers: Vec<Container> = self.lock().values().map(|e| e.c.clone()).collect();
        for c in containers {
            self.volumes.add_users(&c.id, &c.volume_names());
        }
    }

    /// Resolves the volume entries of a new container's plan: named volumes found or
    /// created, anonymous ones created and named; the container becomes their user.
    /// On error, what this made is removed again. Blocking.
    pub(super) fn volumes_claim(
        &self,
        container: &str,
        plans: &mut [MountPlan],
    ) -> Result<Claim, EngineError> {
        let _ops = self.volumes.ops();
        let mut claim = Claim::default();
        let result = (|| {
            for plan in plans.iter_mut() {
                let MountSource::Volume {
                    name,
                    driver,
                    driver_opts,
                    labels,
                    ..
                } = &mut plan.source
                else {
                    continue;
                };
                let anonymous = name.is_none();
                let existing = name.as_deref().and_then(|n| self.volumes.record(n));
                let rec = match existing {
                    // An existing volume is used as it is (its driver: Docker's
                    // `volume-driver` applies to new ones), unless another is asked.
                    Some(rec) if driver.as_deref().is_none_or(|d| d == rec.driver) => rec,
                    _ => {
                        let opts = VolumeCreateOptions {
                            name: name.clone(),
                            driver: driver.clone(),
                            driver_opts: (!driver_opts.is_empty()).then(|| driver_opts.clone()),
                            labels: (!labels.is_empty()).then(|| labels.clone()),
                            ..VolumeCreateOptions::default()
                        };
                        let (rec, made) = self.volumes.create_locked(&self.store, &opts)?;
                        if made {
                            claim.made.push(rec.name.clone());
                            self.volume_event(
                                "create",
                                &rec.name,
                                &[("driver", rec.driver.clone())],
                            );
                        }
                        rec
                    }
                };
                *name = Some(rec.name.clone());
                *driver = Some(rec.driver.clone());
                if anonymous {
                    claim.anonymous.push(rec.name.clone());
                }
                claim.used.push(rec.name);
            }
            Ok(())
        })();
        if let Err(e) = result {
            for made in &claim.made {
                if let Ok(rec) = self.volumes.remove_locked(&self.store, made, true) {
                    self.volume_event("destroy", made, &[("driver", rec.driver)]);
                }
            }
            return Err(e);
        }
        self.volumes.add_users(container, &claim.used);
        Ok(claim)
    }

    /// At container create: the container's mount plan (its own mounts, then those of
    /// `--volumes-from` it does not override), its volumes resolved and claimed.
    /// Blocking.
    pub(super) fn volumes_prepare(
        &self,
        container: &str,
        config: &serde_json::Value,
        host_config: &serde_json::Value,
    ) -> Result<(Vec<MountPlan>, Claim), EngineError> {
        let mut plans = super::mounts::plan(config, host_config, None)?;
        let (inherited, inherited_anonymous) = self.volumes_from(host_config, &plans)?;
        plans.extend(inherited);
        let mut claim = self.volumes_claim(container, &mut plans)?;
        claim.anonymous.extend(inherited_anonymous);
        Ok((plans, claim))
    }

    /// Gives back a failed create's claim. Blocking.
    pub(super) fn volumes_unclaim(&self, container: &str, claim: &Claim) {
        self.volumes.drop_user(container);
        for name in &claim.made {
            let _ = self.volume_remove(name, true);
        }
    }

    /// A removed container's volumes: it no longer uses them; with `remove_anonymous`
    /// (`rm -v`, `--rm`) its anonymous ones go, unless another container uses them.
    /// Blocking.
    pub(super) fn volumes_release(&self, c: &Container, remove_anonymous: bool) {
        self.volumes.drop_user(&c.id);
        if remove_anonymous {
            for name in &c.anonymous_volumes {
                match self.volume_remove(name, false) {
                    Ok(()) | Err(EngineError::Conflict(_)) | Err(EngineError::NotFound(_)) => {}
                    Err(e) => eprintln!(
                        "pierd: removing volume {name} of container {}: {e}",
                        c.short_id()
                    ),
                }
            }
        }
    }

    /// Mounts the container's volumes through their drivers (mount ID: the container
    /// ID), fills new, empty ones from the image (copy-up), and answers each volume
    /// plan's host path by target. On error, what was mounted is unmounted. Blocking.
    pub(super) fn volumes_mount(
        &self,
        c: &Container,
        plans: &[MountPlan],
        rootfs: &Path,
    ) -> Result<HashMap<String, PathBuf>, EngineError> {
        let mut paths = HashMap::new();
        let mut mounted = Vec::new();
        let result = (|| {
            for plan in plans {
                let MountSource::Volume {
                    name: Some(name),
                    nocopy,
                    subpath,
                    ..
                } = &plan.source
                else {
                    continue;
                };
                let rec = self
                    .volumes
                    .record(name)
                    .ok_or_else(|| no_such_volume(name))?;
                let driver = self
                    .volumes
                    .drivers
                    .get(&rec.driver)
                    .map_err(|e| op_error("mount", name, e))?;
                let path = driver
                    .mount(name, &c.id)
                    .map_err(|e| op_error("mount", name, e))?;
                self.volumes.note_mountpoint(&rec.driver, name, &path);
                mounted.push(Mounted {
                    name: name.clone(),
                    driver: rec.driver.clone(),
                });
                if !nocopy && subpath.is_none() {
                    self.volume_copy_up(rootfs, &plan.target, &path)?;
                }
                paths.insert(plan.target.clone(), path);
                self.volume_event(
                    "mount",
                    name,
                    &[
                        ("container", c.id.clone()),
                        ("destination", plan.target.clone()),
                        ("driver", rec.driver.clone()),
                        ("propagation", String::new()),
                        ("read/write", (!plan.readonly).to_string()),
                    ],
                );
            }
            Ok(())
        })();
        self.volumes.lock().mounted.insert(c.id.clone(), mounted);
        if let Err(e) = result {
            self.volumes_unmount(&c.id);
            return Err(e);
        }
        Ok(paths)
    }

    /// Fills an empty volume from what the image has at `target` (Docker's copy-up):
    /// only when the volume is empty and the image has a directory there.
    fn volume_copy_up(
        &self,
        rootfs: &Path,
        target: &str,
        volume: &Path,
    ) -> Result<(), EngineError> {
        let empty = std::fs::read_dir(volume).map_or(true, |mut d| d.next().is_none());
        if !empty {
            return Ok(());
        }
        let Ok(root) = pier_runtime::rootpath::Root::open(rootfs) else {
            return Ok(());
        };
        let Ok(resolved) = root.resolve(Path::new(target.trim_start_matches('/'))) else {
            return Ok(());
        };
        // Through the resolved descriptor: nothing in the image leads the copy out.
        pier_volume::copyup::copy_up(&resolved.proc_path(), volume)
            .map(|_| ())
            .map_err(|e| EngineError::Internal(format!("copy up into volume at {target}: {e}")))
    }

    /// Unmounts what the container has mounted (idempotent). Blocking.
    pub(super) fn volumes_unmount(&self, container: &str) {
        let mounted = self
            .volumes
            .lock()
            .mounted
            .remove(container)
            .unwrap_or_default();
        for m in mounted {
            let unmounted = self
                .volumes
                .drivers
                .get(&m.driver)
                .and_then(|d| d.unmount(&m.name, container));
            if let Err(e) = unmounted {
                eprintln!("pierd: unmount volume {}: {e}", m.name);
            }
            self.volume_event(
                "unmount",
                &m.name,
                &[("container", container.to_string()), ("driver", m.driver)],
            );
        }
    }

    /// After a restart: the running containers' volumes are mounted again (the
    /// drivers count their users anew), then what no one uses is unmounted. Blocking.
    pub(super) fn volumes_restore(&self, running: &[String]) {
        for id in running {
            let Ok(c) = self.get(id) else { continue };
            let mut mounted = Vec::new();
            for (name, _) in c.volume_mounts() {
                let Some(rec) = self.volumes.record(&name) else {
                    continue;
                };
                let again = self
                    .volumes
                    .drivers
                    .get(&rec.driver)
                    .and_then(|d| d.mount(&name, id));
                match again {
                    Ok(path) => {
                        self.volumes.note_mountpoint(&rec.driver, &name, &path);
                        mounted.push(Mounted {
                            name,
                            driver: rec.driver,
                        });
                    }
                    Err(e) => eprintln!("pierd: volume {name} of {}: {e}", c.short_id()),
                }
            }
            self.volumes.lock().mounted.insert(id.clone(), mounted);
        }
        self.volumes.drivers.local().unmount_unused();
    }

    /// A volume's host path for `Mounts`: a local volume's directory; a plugin
    /// volume's path at its last Mount (empty before any), so that inspecting a
    /// container never waits on a plugin (this runs on async workers).
    fn volume_source(&self, name: &str) -> String {
        let Some(rec) = self.volumes.record(name) else {
            return String::new();
        };
        if rec.driver == DEFAULT_DRIVER {
            return self
                .volumes
                .to_api(&rec)
                .map(|v| v.mountpoint)
                .unwrap_or_default();
        }
        self.volumes
            .lock()
            .mountpoints
            .get(name)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Docker's `Mounts` of a container (inspect and list), from its mount plan.
    pub fn mount_points(&self, c: &Container) -> Vec<serde_json::Value> {
        use serde_json::json;
        let plans = self.container_plans(c).unwrap_or_default();
        let mut out = Vec::new();
        for plan in &plans {
            let rw = !plan.readonly;
            match &plan.source {
                MountSource::Bind {
                    source,
                    propagation,
                    ..
                } => out.push(json!({
                    "Type": "bind", "Source": source, "Destination": plan.target,
                    "Mode": plan.mode, "RW": rw, "Propagation": propagation.as_str(),
                })),
                MountSource::Volume { name, driver, .. } => {
                    let name = name.clone().unwrap_or_default();
                    let source = self.volume_source(&name);
                    // dockerd shows a named `-v` volume's empty mode as `z`, a
                    // `--mount` one's too; an anonymous `-v /path` or VOLUME's as empty.
                    let named = !c.anonymous_volumes.contains(&name);
                    let mode = match plan.origin {
                        MountOrigin::Binds | MountOrigin::Mounts
                            if named && plan.mode.is_empty() =>
                        {
                            "z".to_string()
                        }
                        _ => plan.mode.clone(),
                    };
                    out.push(json!({
                        "Type": "volume", "Name": name, "Source": source,
                        "Destination": plan.target,
                        "Driver": driver.clone().unwrap_or_else(|| DEFAULT_DRIVER.into()),
                        "Mode": mode, "RW": rw, "Propagation": "",
                    }));
                }
                // `--tmpfs` is only in HostConfig.Tmpfs, as in dockerd.
                MountSource::Tmpfs { .. } if plan.origin == MountOrigin::Tmpfs => {}
                MountSource::Tmpfs { .. } => out.push(json!({
                    "Type": "tmpfs", "Source": "", "Destination": plan.target,
                    "Mode": plan.mode, "RW": rw, "Propagation": "",
                })),
                MountSource::Image { reference, .. } => out.push(json!({
                    "Type": "image", "Source": reference, "Destination": plan.target,
                    "Mode": plan.mode, "RW": false, "Propagation": "",
                })),
            }
        }
        out
    }

    /// The container's mount plan: as recorded at create (volumes named), or planned
    /// from its config for a record older than that.
    pub(super) fn container_plans(&self, c: &Container) -> Result<Vec<MountPlan>, EngineError> {
        match &c.mounts {
            Some(plans) => Ok(plans.clone()),
            None => super::mounts::plan(&c.config, &c.host_config, None),
        }
    }

    /// `--volumes-from`: the mounts of the containers named (`name[:ro|:rw]`), those
    /// whose target the container's own plan does not have. Docker's order: the
    /// container's own mounts win.
    pub(super) fn volumes_from(
        &self,
        host_config: &serde_json::Value,
        own: &[MountPlan],
    ) -> Result<(Vec<MountPlan>, Vec<String>), EngineError> {
        let mut out: Vec<MountPlan> = Vec::new();
        let mut anonymous = Vec::new();
        for spec in super::spec::str_list(&host_config["VolumesFrom"]) {
            let (source, mode) = match spec.rsplit_once(':') {
                Some((s, m)) => (s.to_string(), Some(m.to_string())),
                None => (spec.clone(), None),
            };
            let force_ro = match mode.as_deref() {
                None | Some("") => None,
                Some("ro") => Some(true),
                Some("rw") => Some(false),
                Some(m) => {
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid mode for volumes-from: {m}"
                    )))
                }
            };
            let other = self.get(&source)?;
            for mut plan in self.container_plans(&other)? {
                if plan.origin == MountOrigin::Tmpfs
                    || matches!(plan.source, MountSource::Tmpfs { .. })
                {
                    continue;
                }
                if own
                    .iter()
                    .chain(out.iter())
                    .any(|p| p.target == plan.target)
                {
                    continue;
                }
                if let Some(ro) = force_ro {
                    plan.readonly = ro;
                }
                if let MountSource::Volume { name: Some(n), .. } = &plan.source {
                    if other.anonymous_volumes.contains(n) {
                        anonymous.push(n.clone());
                    }
                }
                out.push(plan);
            }
        }
        Ok((out, anonymous))
    }
}

impl Container {
    /// The volumes (name, target) of its recorded plan.
    pub fn volume_mounts(&self) -> Vec<(String, String)> {
        self.mounts
            .iter()
            .flatten()
            .filter_map(|p| match &p.source {
                MountSource::Volume { name: Some(n), .. } => Some((n.clone(), p.target.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.volume_mounts().into_iter().map(|(n, _)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_docker_checks_them() {
        assert!(validate_name("ab").is_ok());
        assert!(validate_name("a.b_c-d").is_ok());
        let msg = |n: &str| validate_name(n).unwrap_err().to_string();
        assert_eq!(
            msg("a"),
            "create a: volume name is too short, names should be at least two alphanumeric characters"
        );
        assert!(msg("a/b").contains("includes invalid characters for a local volume name"));
        assert!(msg("-ab").contains("includes invalid characters"));
        assert!(msg("").contains("includes invalid characters"));
    }

    #[test]
    fn name_patterns() {
        assert!(pattern_matches("ab", "xaby"));
        assert!(pattern_matches("^a.c$", "abc"));
        assert!(!pattern_matches("^a.c$", "abcd"));
        assert!(pattern_matches("^a.*z$", "abcz"));
        assert!(!pattern_matches("a\\.c", "abc"));
        assert!(pattern_matches("a\\.c", "a.c"));
        assert!(pattern_matches("", "anything"));
    }

    #[test]
    fn label_filters() {
        let labels: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert!(labels_match(&["a".into()], Some(&labels)));
        assert!(labels_match(&["a=1".into()], Some(&labels)));
        assert!(!labels_match(&["a=2".into()], Some(&labels)));
        assert!(!labels_match(&["b".into()], None));
        assert!(labels_match(&[], None));
    }

    #[test]
    fn content_size_counts_files_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), vec![0u8; 24]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("d/a2")).unwrap();
        assert_eq!(content_size(dir.path()), 1024);
    }

    #[test]
    fn a_crash_mid_create_leaves_nothing_after_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let service = VolumeService::open(&store, dir.path(), Vec::new()).unwrap();
        let opts = VolumeCreateOptions {
            name: Some("kept".into()),
            ..VolumeCreateOptions::default()
        };
        service.create(&store, &opts).unwrap();
        // A create cut short after its record (creating) and directory...
        let rec = VolumeRecord {
            name: "cut".into(),
            driver: DEFAULT_DRIVER.into(),
            created_at: String::new(),
            labels: None,
            options: None,
            state: RecordState::Creating,
        };
        store.put_volume(&rec).unwrap();
        service
            .drivers()
            .local()
            .create("cut", &BTreeMap::new())
            .unwrap();
        // ...and a directory no record names.
        service
            .drivers()
            .local()
            .create("stray", &BTreeMap::new())
            .unwrap();
        drop(service);
        let service = VolumeService::open(&store, dir.path(), Vec::new()).unwrap();
        assert_eq!(service.drivers().local().names(), vec!["kept".to_string()]);
        let names: Vec<String> = store
            .load_volumes()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, vec!["kept".to_string()]);
        assert!(service.record("kept").is_some());
    }
}
