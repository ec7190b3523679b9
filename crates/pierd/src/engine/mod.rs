//! The container engine: containers' records and lifecycle.
//!
//! A container is a record in the [`store`] plus, while it runs, a monitor process
//! ([`crate::monitor`]) that pierd starts and that outlives pierd. pierd keeps the
//! records in memory behind one lock, writes every change through to the store, and
//! learns about exits from each monitor (or, if it was down, from the exit file the
//! monitor leaves).

pub mod build;
pub mod cdi;
pub mod commit;
mod devices;
pub mod events;
pub mod exec;
pub mod health;
pub mod init;
mod kernel_limits;
mod lifecycle;
mod links;
pub mod mounts;
mod namespaces;
pub mod network;
mod ops;
mod remap;
pub mod spec;
pub mod store;
mod typed;
pub mod usage;
pub mod volume_archive;
pub mod volumes;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pier_image::service::{ImageService, ImageUser};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::monitor::{CreatedReport, ExitStatus, MonitorConfig};
use lifecycle::startable;

/// The engine's error classes; each maps to one API status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    InvalidParameter(String),
    /// 403: refused by policy (a pre-defined network, active endpoints, an overlap).
    #[error("{0}")]
    Forbidden(String),
    /// 304: nothing to do (start of a running container, stop of a stopped one).
    #[error("not modified")]
    NotModified,
    /// 500.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Image(#[from] pier_image::Error),
}

fn internal(context: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(format!("{context}: {e}"))
}

/// A container's state, in Docker's terms.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// created, running, paused, restarting, removing, exited, dead.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// `State.Health`: set once a run with a healthcheck started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<health::Health>,
}

/// A container's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image ID (`sha256:…`).
    pub image_id: String,
    /// The image as the user named it.
    pub image_name: String,
    /// Docker's `Config`, with the image's defaults merged in.
    pub config: Value,
    pub host_config: Value,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: u32,
    pub snapshot_key: String,
    pub hostname: String,
    /// The runtime that runs it (a name of the daemon's runtimes).
    pub runtime: String,
    /// `started_at` of the run the user stopped or killed (Docker's
    /// `HasBeenManuallyStopped`, which the next start clears): `unless-stopped` does not
    /// restart it.
    #[serde(default)]
    pub manual_stop_run: String,
    /// `started_at` of the run a stop (or a kill with SIGKILL or the stop signal) ends
    /// (Docker's `ExitOnNext`): no policy restarts it.
    #[serde(default)]
    pub exit_on_next_run: String,
    /// The current run was started by the restart policy (not by the user).
    #[serde(default)]
    pub policy_start: bool,
    /// The restart policy's back-off, in milliseconds (memory only, as in Docker).
    #[serde(skip)]
    pub restart_backoff_ms: u64,
    /// Generation of the pending policy restart; a stop or kill bumps it to cancel.
    #[serde(skip)]
    pub restart_gen: u64,
    /// Its endpoints, by network name.
    #[serde(default)]
    pub networks: std::collections::BTreeMap<String, network::Endpoint>,
    /// The ports it publishes while it runs.
    #[serde(default)]
    pub published: Vec<network::Published>,
    /// Its network namespace's path while it runs (bridge networks).
    #[serde(default)]
    pub sandbox_key: String,
    /// Its user namespace mapping (`--userns-remap`, `--userns auto`); none: the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<crate::userns::IdMapping>,
    /// Its mounts as planned at create, with its volumes named ([`volumes`]); None in
    /// records older than volumes (planned from the config at start then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<mounts::MountPlan>>,
    /// The anonymous volumes it uses (made for it, or taken with `--volumes-from`):
    /// `rm -v` and `--rm` remove them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<String>,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// What waiters watch.
#[derive(Debug, Clone, Default)]
pub struct Events {
    pub exits: u64,
    pub last_exit: i32,
    pub running: bool,
    pub removed: bool,
}

/// Handed to an attach that arrived before start: the monitor's control socket, and
/// a sender to say "connected" so start can proceed without losing output.
pub type AttachReady = (PathBuf, oneshot::Sender<()>);

/// Where an attach connects.
pub enum AttachTarget {
    Now(PathBuf),
    AtStart(oneshot::Receiver<AttachReady>),
}

struct Entry {
    c: Container,
    events: watch::Sender<Events>,
    pending_attach: Vec<oneshot::Sender<AttachReady>>,
    /// Serializes start, stop and remove of this container (see [`lifecycle`]).
    lifecycle: lifecycle::Lock,
}

impl Entry {
    fn new(c: Container, events: watch::Sender<Events>) -> Entry {
        Entry {
            c,
            events,
            pending_attach: Vec::new(),
            lifecycle: lifecycle::Lock::default(),
        }
    }
}

/// The engine; see the [module docs](self).
pub struct Engine {
    data_root: PathBuf,
    exec_root: PathBuf,
    images: Arc<ImageService>,
    store: store::Store,
    inner: Mutex<HashMap<String, Entry>>,
    runtimes: HashMap<String, PathBuf>,
    default_runtime: String,
    /// `docker exec` instances (memory only).
    execs: exec::ExecStore,
    /// Healthcheck monitors of running containers (memory only).
    health: health::Monitors,
    /// What `GET /events` serves.
    bus: events::EventBus,
    /// Networks, endpoints, ports, DNS.
    net: network::NetState,
    /// Names taken by creates under way (before their record exists), with the ID
    /// the create will give its container.
    reserved_names: Mutex<HashMap<String, String>>,
    /// The remap user and its ranges (`--userns-remap`).
    remap: Option<crate::userns::Remap>,
    /// `--init` and the init it runs.
    init: init::InitSettings,
    /// `--cdi-spec-dir`s: CDI devices.
    cdi: cdi::Registry,
    /// Volumes and their drivers.
    volumes: volumes::VolumeService,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_root", &self.data_root)
            .finish_non_exhaustive()
    }
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Engine {
    /// Opens the engine's state and picks up containers that ran while pierd was away.
    pub fn open(
        config: &crate::config::DaemonConfig,
        images: Arc<ImageService>,
    ) -> Result<Arc<Engine>, EngineError> {
        let containers_dir = config.data_root.join("containers");
        fs::create_dir_all(&containers_dir).map_err(|e| internal("create containers dir", e))?;
        fs::create_dir_all(config.exec_root.join("c"))
            .map_err(|e| internal("create exec dir", e))?;
        let store = store::Store::open(&config.data_root.join("state.redb"))?;
        // Docker's plugin directories, then Pier's own (per daemon, under its exec root).
        let mut plugin_dirs = pier_volume::plugin::default_dirs();
        plugin_dirs.push(config.exec_root.join("plugins"));
        let volumes = volumes::VolumeService::open(&store, &config.data_root, plugin_dirs)?;
        let mut runtimes = HashMap::new();
        runtimes.insert("pier-runtime".to_string(), find_runtime("pier-runtime"));
        for name in ["runc", "crun"] {
            runtimes.insert(name.to_string(), find_runtime(name));
        }
        for entry in &config.add_runtime {
            let (name, path) = entry.split_once('=').ok_or_else(|| {
                EngineError::InvalidParameter(format!("--add-runtime {entry:?}: want NAME=PATH"))
            })?;
            runtimes.insert(name.to_string(), PathBuf::from(path));
        }
        if !runtimes.contains_key(&config.default_runtime) {
            return Err(EngineError::InvalidParameter(format!(
                "default runtime {:?} is not a known runtime",
                config.default_runtime
            )));
        }
        let engine = Arc::new(Engine {
            data_root: config.data_root.clone(),
            exec_root: config.exec_root.clone(),
            images,
            store,
            inner: Mutex::new(HashMap::new()),
            runtimes,
            default_runtime: config.default_runtime.clone(),
            execs: exec::ExecStore::default(),
            health: health::Monitors::default(),
            bus: events::EventBus::default(),
            net: network::NetState::new(
                network::NetSettings::from_config(config)?,
                &config.exec_root,
            ),
            reserved_names: Mutex::new(HashMap::new()),
            remap: remap::load_remap(config)?,
            init: init::InitSettings::from_config(config)?,
            cdi: cdi::Registry::from_config(config),
            volumes,
        });
        let records = engine.store.load_all()?;
        {
            let mut inner = engine.lock();
            for c in records {
                let (events, _) = watch::channel(Events {
                    running: c.state.running,
                    ..Events::default()
                });
                inner.insert(c.id.clone(), Entry::new(c, events));
            }
        }
        // Restart recovery: removals are finished, what cannot be adopted is ended, and
        // what no record names goes (the network's leftovers in `net_init`).
        engine.finish_removals();
        engine.end_unadoptable();
        engine.unmount_stopped();
        engine.volumes_load_users();
        let running = engine.adoptable();
        engine.volumes_restore(&running);
        engine.remove_orphans();
        engine.remove_build_leftovers();
        engine.net_init()?;
        Ok(engine)
    }

    /// Removes what a create interrupted by a crash left before its record was written:
    /// container snapshots and directories no record names.
    fn remove_orphans(&self) {
        let known: std::collections::HashSet<String> = self.lock().keys().cloned().collect();
        if let Ok(snapshots) = self.images.snapshots().list() {
            for info in snapshots {
                // A build's step snapshot: no build outlives the daemon.
                if info.name.starts_with("build-") {
                    let _ = self.images.snapshots().remove(&info.name);
                    continue;
                }
                let owner = info
                    .name
                    .strip_prefix("container-")
                    .or_else(|| mounts::image_view_owner(&info.name));
                if let Some(id) = owner {
                    if !known.contains(id) {
                        let _ = self.images.snapshots().remove(&info.name);
                    }
                }
            }
        }
        let dir = self.data_root.join("containers");
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                let rootfs = entry.path().join("rootfs");
                let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Reconnects to the monitors of containers that were running (live restore), and
    /// records the exits that happened while pierd was down. Needs the tokio runtime.
    pub fn restore(self: &Arc<Self>) {
        // Ports and DNS servers of the containers that ran come back first: an exit
        // seen by the watchers below then undoes them, not the other way round.
        self.net_restore();
        // Decided first: the watchers below may record exits (and plan policy
        // restarts) at once, on other threads; those containers are theirs.
        let boot = self.restarts_on_boot();
        for id in self.adoptable() {
            let socket = self.exec_dir(&id).join("control.sock");
            self.health_start(&id, true);
            let engine = self.clone();
            tokio::spawn(async move { engine.watch_exit(id, socket).await });
        }
        // Restart policies: what should run again is started (after the live ones).
        self.start_on_boot(boot);
    }

    /// The event log.
    pub fn bus(&self) -> &events::EventBus {
        &self.bus
    }

    /// Publishes a container's event (by ID, so a record that is gone publishes none).
    pub(crate) fn container_event(&self, id: &str, action: &str, extra: &[(&str, String)]) {
        let Some(c) = self.lock().get(id).map(|e| e.c.clone()) else {
            return;
        };
        let mut event = events::Event::container(&c, action);
        for (k, v) in extra {
            event = event.with(k, v.clone());
        }
        self.bus.publish(event);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn exec_dir(&self, id: &str) -> PathBuf {
        // Short: unix socket paths are limited to 108 bytes.
        self.exec_root.join("c").join(&id[..16])
    }

    fn data_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.data_dir(id).join(format!("{id}-json.log"))
    }

    fn runtime_root(&self, runtime: &str) -> PathBuf {
        self.exec_root.join("runtime").join(runtime)
    }

    // ------------------------------------------------------------------------------
    // Looking up.

    /// Full ID of a container given by ID, unique ID prefix or name.
    pub fn resolve(&self, input: &str) -> Result<String, EngineError> {
        let inner = self.lock();
        resolve_in(&inner, input)
    }

    pub fn get(&self, input: &str) -> Result<Container, EngineError> {
        let inner = self.lock();
        let id = resolve_in(&inner, input)?;
        Ok(inner[&id].c.clone())
    }

    pub fn list(&self) -> Vec<Container> {
        let mut out: Vec<Container> = self.lock().values().map(|e| e.c.clone()).collect();
        out.sort_by(|a, b| b.created.cmp(&a.created));
        out
    }

    pub fn events(&self, id: &str) -> Option<watch::Receiver<Events>> {
        self.lock().get(id).map(|e| e.events.subscribe())
    }

    /// Which containers hold which images.
    pub fn image_users(&self) -> Vec<ImageUser> {
        self.lock()
            .values()
            .filter_map(|e| {
                Some(ImageUser {
                    container: e.c.id.clone(),
                    image: e.c.image_id.parse().ok()?,
                    running: e.c.state.running,
                })
            })
            .collect()
    }

    /// [`update`](Self::update) in memory only: for what the next update writes anyway
    /// (a start's network, written with its `running` state).
    fn update_unsaved(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<(), EngineError> {
        let mut inner = self.lock();
        let entry = inner
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {id}")))?;
        f(&mut entry.c);
        Ok(())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container, EngineError> {
        let mut inner = self.lock();
        let entry = inner
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {id}")))?;
        f(&mut entry.c);
        self.store.put(&entry.c)?;
        let running = entry.c.state.running;
        entry.events.send_modify(|e| e.running = running);
        Ok(entry.c.clone())
    }

    // ------------------------------------------------------------------------------
    // Create.

    /// `POST /containers/create`. Returns the ID and warnings.
    pub async fn create(
        self: &Arc<Self>,
        name: Option<String>,
        config: Value,
        host_config: Value,
        networking: Value,
    ) -> Result<(String, Vec<String>), EngineError> {
        // In a task of its own: a client that goes away mid-create does not cut it
        // short between preparing the snapshot and writing the record (a leak).
        let engine = self.clone();
        tokio::spawn(async move {
            engine
                .create_container(name, config, host_config, networking)
                .await
        })
        .await
        .map_err(|e| internal("create", e))?
    }

    async fn create_container(
        self: &Arc<Self>,
        name: Option<String>,
        mut config: Value,
        mut host_config: Value,
        networking: Value,
    ) -> Result<(String, Vec<String>), EngineError> {
        let image_name = config["Image"].as_str().unwrap_or_default().to_string();
        if image_name.is_empty() {
            return Err(EngineError::InvalidParameter(
                "Config cannot be empty in order to create a container".into(),
            ));
        }
        let name = name.filter(|n| !n.is_empty());
        let name = match name {
            Some(n) => {
                let n = n.trim_start_matches('/').to_string();
                if !valid_name(&n) {
                    return Err(EngineError::InvalidParameter(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                Some(n)
            }
            None => None,
        };
        let runtime = host_config["Runtime"]
            .as_str()
            .filter(|r| !r.is_empty())
            .unwrap_or(&self.default_runtime)
            .to_string();
        if !self.runtimes.contains_key(&runtime) {
            return Err(EngineError::InvalidParameter(format!(
                "unknown or invalid runtime name: {runtime}"
            )));
        }
        // A missing network is a bad parameter here, not a 404: the docker CLI takes a
        // 404 of create for a missing image and would try to pull it.
        let endpoints = self
            .net_prepare(&mut host_config, &networking)
            .map_err(|e| match e {
                EngineError::NotFound(m) => EngineError::InvalidParameter(m),
                other => other,
            })?;
        // Validate what the spec will need now, not at start.
        spec::capabilities(&host_config)?;
        let mut warnings = self
            .cdi
            .check_create(&mut host_config, devices::check_create)?;
        warnings.extend(kernel_limits::check_create(&mut host_config)?);
        // Pier's overlay snapshots have no size quota (dockerd: only overlay on xfs
        // with `pquota`), so a size cannot be honoured.
        if host_config["StorageOpt"]
            .as_object()
            .is_some_and(|o| !o.is_empty())
        {
            return Err(EngineError::InvalidParameter(
                "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
                    .into(),
            ));
        }
        // The cgroup namespace mode as dockerd records it: the default made explicit.
        let private_cgroupns = spec::private_cgroupns(&host_config)?;
        if host_config["CgroupnsMode"]
            .as_str()
            .unwrap_or("")
            .is_empty()
        {
            host_config["CgroupnsMode"] = json!(if private_cgroupns { "private" } else { "host" });
        }
        let mount_plans = mounts::plan(&config, &host_config, None)?;
        ops::validate_restart_policy(&host_config)?;
        namespaces::validate(&host_config)?;
        crate::logdriver::validate(&host_config)?;
        let userns_choice = self.userns_choice(&host_config)?;

        let images = self.images.clone();
        let lookup = image_name.clone();
        let details = tokio::task::spawn_blocking(move || -> Result<_, EngineError> {
            let d = images.details(&lookup)?;
            images.unpack(&d.target)?;
            Ok(d)
        })
        .await
        .map_err(|e| internal("create", e))??;
        let image_config = details.config.config.clone().unwrap_or_default();
        let id = random_id();
        // Taken now, after the checks and the image as dockerd reserves it, so that
        // concurrent creates of one name fail before preparing a snapshot each; given
        // back when this create fails (the guard's drop).
        let reservation = self.reserve_name(name, &id)?;
        let name = reservation.name.clone();

        // Docker's merge of the image's defaults into the container's config.
        let mut env: Vec<String> = image_config.env.clone().unwrap_or_default();
        for e in config["Env"].as_array().into_iter().flatten() {
            if let Some(s) = e.as_str() {
                let key = s.split('=').next().unwrap_or(s);
                env.retain(|x| x.split('=').next() != Some(key));
                env.push(s.to_string());
            }
        }
        // `--entrypoint ""` sends `[""]`: the entrypoint is cleared, as by dockerd.
        let given_entrypoint = config["Entrypoint"]
            .as_array()
            .map(|a| strings(a))
            .map(|e| if e == [""] { Vec::new() } else { e });
        let given_cmd = config["Cmd"]
            .as_array()
            .map(|a| strings(a))
            .filter(|c| !c.is_empty());
        let entrypoint = match &given_entrypoint {
            Some(e) => e.clone(),
            None => image_config.entrypoint.clone().unwrap_or_default(),
        };
        let cmd = match (&given_cmd, &given_entrypoint) {
            (Some(c), _) => c.clone(),
            // A new entrypoint resets the image's CMD, as in Docker.
            (None, Some(_)) => Vec::new(),
            (None, None) => image_config.cmd.clone().unwrap_or_default(),
        };
        let argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(EngineError::InvalidParameter("No command specified".into()));
        }
        let given_hostname = config["Hostname"].as_str().filter(|h| !h.is_empty());
        let uts_host = host_config["UTSMode"].as_str() == Some("host");
        if uts_host && given_hostname.is_some() {
            return Err(EngineError::InvalidParameter(
                "conflicting options: hostname and the UTS mode".into(),
            ));
        }
        // As dockerd: a container on the host's network is named as the host is.
        let host_network = host_config["NetworkMode"].as_str() == Some(network::HOST);
        let hostname = match given_hostname {
            Some(h) => h.to_string(),
            None if host_network => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            None => id[..12].to_string(),
        };
        config["Hostname"] = json!(hostname);
        config["Env"] = json!(env);
        config["Cmd"] = json!(cmd);
        config["Entrypoint"] = if entrypoint.is_empty() {
            Value::Null
        } else {
            json!(entrypoint)
        };
        if config["WorkingDir"].as_str().unwrap_or_default().is_empty() {
            config["WorkingDir"] = json!(image_config.working_dir.clone().unwrap_or_default());
        }
        if config["User"].as_str().unwrap_or_default().is_empty() {
            config["User"] = json!(image_config.user.clone().unwrap_or_default());
        }
        // As dockerd's merge: each image label the container does not set is added
        // (compose finds its `com.docker.compose.image.builder` label this way).
        if !config["Labels"].is_object() {
            config["Labels"] = json!({});
        }
        if let Some(labels) = config["Labels"].as_object_mut() {
            for (key, value) in image_config.labels.iter().flatten() {
                labels.entry(key.clone()).or_insert_with(|| json!(value));
            }
        }
        if config["StopSignal"].is_null() {
            if let Some(s) = &image_config.stop_signal {
                config["StopSignal"] = json!(s);
            }
        }
        health::merge_image_healthcheck(&mut config, image_config.healthcheck.as_ref());
        // The image's VOLUMEs join the container's, as dockerd merges them.
        if let Some(volumes) = image_config.volumes.as_ref().filter(|v| !v.is_empty()) {
            if !config["Volumes"].is_object() {
                config["Volumes"] = json!({});
            }
            for dest in volumes.keys() {
                config["Volumes"][dest] = json!({});
            }
        }
        if let Some(exposed) = &image_config.exposed_ports {
            if !config["ExposedPorts"].is_object() {
                config["ExposedPorts"] = json!({});
            }
            for port in exposed.keys() {
                let key = if port.contains('/') {
                    port.clone()
                } else {
                    format!("{port}/tcp")
                };
                config["ExposedPorts"][key] = json!({});
            }
        }

        let snapshot_key = format!("container-{id}");
        let parent = details.chain.last().map(ToString::to_string);
        let images = self.images.clone();
        let key = snapshot_key.clone();
        tokio::task::spawn_blocking(move || images.snapshots().prepare(&key, parent.as_deref()))
            .await
            .map_err(|e| internal("create", e))??;
        let engine = self.clone();
        let owner = id.clone();
        let prepared =
            tokio::task::spawn_blocking(move || engine.prepare_image_mounts(&owner, &mount_plans))
                .await
                .map_err(|e| internal("create", e))
                .and_then(|r| r);
        if let Err(e) = prepared {
            let _ = self.images.snapshots().remove(&snapshot_key);
            return Err(e);
        }
        // Volumes: named ones found or made, anonymous ones made (the image's VOLUMEs
        // are in the config by now), `--volumes-from`'s mounts added.
        let engine = self.clone();
        let owner = id.clone();
        let (cfg, hc) = (config.clone(), host_config.clone());
        let claimed =
            tokio::task::spawn_blocking(move || engine.volumes_prepare(&owner, &cfg, &hc))
                .await
                .map_err(|e| internal("create", e))
                .and_then(|r| r);
        let (planned_mounts, claim) = match claimed {
            Ok(v) => v,
            Err(e) => {
                let _ = self.images.snapshots().remove(&snapshot_key);
                mounts::release_image_mounts(&self.images, &id);
                return Err(e);
            }
        };

        let mut container = Container {
            id: id.clone(),
            name: name.clone(),
            created: pier_image::time::now_rfc3339(),
            image_id: details.id.to_string(),
            image_name,
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config,
            state: State {
                status: "created".into(),
                started_at: "0001-01-01T00:00:00Z".into(),
                finished_at: "0001-01-01T00:00:00Z".into(),
                ..State::default()
            },
            restart_count: 0,
            snapshot_key: snapshot_key.clone(),
            hostname,
            runtime,
            manual_stop_run: String::new(),
            exit_on_next_run: String::new(),
            policy_start: false,
            restart_backoff_ms: 0,
            restart_gen: 0,
            networks: endpoints,
            published: Vec::new(),
            sandbox_key: String::new(),
            userns: None,
            mounts: Some(planned_mounts),
            anonymous_volumes: claim.anonymous.clone(),
        };
        let result = (|| -> Result<(), EngineError> {
            let mut inner = self.lock();
            container.userns = self.userns_mapping(userns_choice, inner.values())?;
            self.make_container_dir(&container)?;
            if let Some(other) = inner.values().find(|e| e.c.name == container.name) {
                return Err(EngineError::Conflict(lifecycle::name_in_use(
                    &container.name,
                    &other.c.id,
                )));
            }
            self.store.put(&container)?;
            let (events, _) = watch::channel(Events::default());
            inner.insert(id.clone(), Entry::new(container, events));
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.images.snapshots().remove(&snapshot_key);
            mounts::release_image_mounts(&self.images, &id);
            self.volumes_unclaim(&id, &claim);
            let _ = fs::remove_dir_all(self.data_dir(&id));
            return Err(e);
        }
        self.container_event(&id, "create", &[]);
        Ok((id, warnings))
    }

    // ------------------------------------------------------------------------------
    // Start.

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, input: &str) -> Result<(), EngineError> {
        self.start_run(input, None).await
    }

    /// A start by the user (`policy` None) or by the restart policy (the generation
    /// of the restart it carries out, which a stop meanwhile cancels). Starts of one
    /// container are serialized with its other starts, stops and removal: of
    /// concurrent starts one starts it, the others find it running (304).
    pub(super) async fn start_run(
        self: &Arc<Self>,
        input: &str,
        policy: Option<u64>,
    ) -> Result<(), EngineError> {
        // Checked before waiting for the lock too: a removal holds it for long.
        startable(&self.get(input)?)?;
        let (id, lock) = self.lifecycle_lock(input)?;
        let guard = lock.lock_owned().await;
        // Again under the lock: a start before us may have run it, a remove taken it.
        let c = self.get(&id)?;
        startable(&c)?;
        if policy.is_some_and(|g| g != c.restart_gen || !c.state.restarting) {
            return Err(EngineError::Conflict(
                "the restart was cancelled by a stop".into(),
            ));
        }
        let auto_remove = c.host_config["AutoRemove"].as_bool() == Some(true);
        let result = self.start_locked(c).await;
        drop(guard);
        // As in Docker: an auto-remove container that cannot start is removed.
        if result.is_err() && auto_remove {
            let _ = self.remove_with_volumes(&id, true, true).await;
        }
        result
    }

    async fn start_locked(self: &Arc<Self>, c: Container) -> Result<(), EngineError> {
        let id = c.id.clone();
        // Started by the restart policy (see the cancellation below).
        let policy_run = c.policy_start && c.state.restarting;
        let engine = self.clone();
        let launched = tokio::task::spawn_blocking(move || engine.launch(&c))
            .await
            .map_err(|e| internal("start", e))?;
        let (pid, socket) = match launched {
            Ok(v) => v,
            Err(e) => {
                // Attaches waiting for this start end (their senders drop).
                if let Some(entry) = self.lock().get_mut(&id) {
                    entry.pending_attach.clear();
                }
                let message = e.to_string();
                let code = if message.contains("executable file not found")
                    || message.contains("no such file or directory")
                {
                    127
                } else if message.contains("permission denied") {
                    126
                } else {
                    128
                };
                let _ = self.update(&id, |c| {
                    c.state.error = message.clone();
                    c.state.exit_code = code;
                });
                if let Some(entry) = self.lock().get(&id) {
                    entry.events.send_modify(|e| {
                        e.exits += 1;
                        e.last_exit = code;
                    });
                }
                return Err(match e {
                    // Networking's own failures keep dockerd's words and status (500).
                    EngineError::Internal(m) if m.starts_with("driver failed programming") => {
                        EngineError::Internal(m)
                    }
                    // dockerd's shape (containerd's `: unknown` at the end); the docker
                    // CLI reads its exit code (127, 126) from the words.
                    EngineError::Internal(m) => EngineError::InvalidParameter(format!(
                        "failed to create task for container: {m}: unknown"
                    )),
                    other => other,
                });
            }
        };

        // Attaches that came before start connect now, so no output is missed.
        let pending: Vec<_> = self
            .lock()
            .get_mut(&id)
            .map(|e| std::mem::take(&mut e.pending_attach))
            .unwrap_or_default();
        let mut acks = Vec::new();
        for p in pending {
            let (tx, rx) = oneshot::channel();
            if p.send((socket.clone(), tx)).is_ok() {
                acks.push(rx);
            }
        }
        for ack in acks {
            let _ = tokio::time::timeout(Duration::from_secs(5), ack).await;
        }

        let answer = monitor_request(&socket, &json!({"op": "start"})).await;
        match answer {
            Ok(line) if line.trim() == "ok" => {}
            other => {
                let message = match other {
                    Ok(line) => line.trim().trim_start_matches("error: ").to_string(),
                    Err(e) => e,
                };
                // The monitor reaps the half-made container and cleans up; pierd
                // undoes its network, and waits for the monitor to be done (it
                // unmounts the rootfs, which must not hit the next start's).
                let c = self.get(&id)?;
                let _ = self.runtime_command(&c, &["delete", "--force", &id]).await;
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    monitor_request(&socket, &json!({"op": "wait"})),
                )
                .await;
                let engine = self.clone();
                let owned = id.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    engine.net_teardown(&owned);
                    engine.volumes_unmount(&owned);
                })
                .await;
                let _ = self.update(&id, |c| {
                    c.state.error = message.clone();
                    c.state.exit_code = 128;
                });
                return Err(EngineError::InvalidParameter(format!(
                    "failed to start container: {message}"
                )));
            }
        }
        // A stop between two policy runs cancels the restart (it clears
        // `restarting`): a run that was being launched meanwhile is not recorded as
        // running; it is killed, and its exit (a stopped run: no policy) recorded.
        let mut cancelled = false;
        self.update(&id, |c| {
            if policy_run && !c.state.restarting {
                cancelled = true;
                return;
            }
            c.state.status = "running".into();
            c.state.running = true;
            c.state.pid = pid;
            c.state.exit_code = 0;
            c.state.error = String::new();
            c.state.started_at = pier_image::time::now_rfc3339();
            c.state.finished_at = "0001-01-01T00:00:00Z".into();
        })?;
        if cancelled {
            let c = self.get(&id)?;
            let _ = self.runtime_command(&c, &["kill", &id, "9"]).await;
            let engine = self.clone();
            tokio::spawn(async move { engine.watch_exit(id, socket).await });
            return Err(EngineError::Conflict(
                "the restart was cancelled by a stop".into(),
            ));
        }
        self.health_start(&id, false);
        self.container_event(&id, "start", &[]);
        let engine = self.clone();
        tokio::spawn(async move { engine.watch_exit(id, socket).await });
        Ok(())
    }

    /// Mounts the rootfs, writes the bundle and starts the monitor, which creates the
    /// container. Blocking.
    fn launch(self: &Arc<Self>, c: &Container) -> Result<(i32, PathBuf), EngineError> {
        let exec_dir = self.exec_dir(&c.id);
        let data_dir = self.data_dir(&c.id);
        let _ = fs::remove_dir_all(&exec_dir);
        fs::create_dir_all(&exec_dir).map_err(|e| internal("create bundle", e))?;
        let rootfs = data_dir.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(|e| internal("create rootfs dir", e))?;
        // A stale mount from a crash is replaced.
        let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        // Right after the previous run's lazy unmount, overlay may still hold the work
        // dir ("in use", EBUSY) until its last reference goes: retry briefly.
        let mut attempt = 0;
        loop {
            match self.mount_rootfs(c, &rootfs) {
                Ok(()) => break,
                Err(pier_image::Error::Io { cause, .. })
                    if cause.raw_os_error() == Some(libc::EBUSY) && attempt < 30 =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // net_setup cleans up after itself; after it succeeded, a failure undoes it.
        let result = self.net_setup(c).and_then(|netns| {
            let launched = self.launch_mounted(c, netns, &exec_dir, &data_dir, &rootfs);
            if launched.is_err() {
                self.net_teardown(&c.id);
            }
            launched
        });
        if result.is_err() {
            self.release_shm(&c.id);
            self.volumes_unmount(&c.id);
            let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        }
        result
    }

    fn launch_mounted(
        &self,
        c: &Container,
        netns: Option<PathBuf>,
        exec_dir: &Path,
        data_dir: &Path,
        rootfs: &Path,
    ) -> Result<(i32, PathBuf), EngineError> {
        // As dockerd: a container in another's network namespace takes that one's
        // host and domain name at each start (compose's `network_mode: service:x`).
        if let Some(donor) = c.host_config["NetworkMode"]
            .as_str()
            .and_then(|m| m.strip_prefix("container:"))
            .and_then(|d| self.get(d).ok())
        {
            self.update_unsaved(&c.id, |c| {
                c.hostname = donor.hostname.clone();
                c.config["Hostname"] = donor.config["Hostname"].clone();
                c.config["Domainname"] = donor.config["Domainname"].clone();
            })?;
        }
        // The record as net_setup left it (addresses, ports).
        let c = &self.get(&c.id)?;
        let etc_files = self.write_etc_files(c, data_dir)?;
        self.own_files(c, &etc_files);
        let user = c.config["User"].as_str().unwrap_or_default();
        let (uid, gid, additional_gids) = process_user(rootfs, user, &c.host_config)?;
        let mut env: Vec<String> = strings(c.config["Env"].as_array().map_or(&[][..], |v| v));
        // As dockerd: the default PATH is the process's, not part of `Config.Env`.
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={}", c.hostname));
        }
        // Legacy links' variables; the container's own of the same name win.
        for var in self.link_env(c) {
            let key = var.split('=').next().unwrap_or_default();
            if !env.iter().any(|e| e.split('=').next() == Some(key)) {
                env.push(var);
            }
        }
        if c.config["Tty"].as_bool() == Some(true) && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let mut host_config = c.host_config.clone();
        if let Some(other) = host_config["NetworkMode"]
            .as_str()
            .and_then(|m| m.strip_prefix("container:"))
            .map(str::to_string)
        {
            let target = self.get(&other)?;
            if !target.state.running {
                return Err(EngineError::Conflict(format!(
                    "cannot join network namespace of a non running container: container {} is not running",
                    target.id
                )));
            }
            host_config["NetworkMode"] =
                json!(format!("container:/proc/{}/ns/net", target.state.pid));
        }
        match &netns {
            Some(path) => {
                host_config["NetworkMode"] = json!(format!("container:{}", path.display()));
            }
            // Disconnected from every network: a namespace with loopback only, as Docker.
            None if !matches!(
                host_config["NetworkMode"].as_str().unwrap_or(""),
                network::HOST | network::NONE
            ) && !host_config["NetworkMode"]
                .as_str()
                .unwrap_or("")
                .starts_with("container:") =>
            {
                host_config["NetworkMode"] = json!(network::NONE);
            }
            None => {}
        }
        let mut args = vec![c.path.clone()];
        args.extend(c.args.iter().cloned());
        let cwd = c.config["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        make_working_dir(c, rootfs, &cwd);
        let plans = self.container_plans(c)?;
        // Volumes are mounted through their drivers (unmounted by `launch` on failure).
        let volume_paths = self.volumes_mount(c, &plans, rootfs)?;
        let mut resolved = self.resolve_mounts(c, &plans)?;
        for r in &mut resolved {
            if let Some(path) = volume_paths.get(&r.plan.target) {
                r.host_path = Some(path.clone());
            }
        }
        // Held to the end: its staged subpaths are unmounted when it goes.
        let user_mounts = mounts::oci_mounts(&resolved, &self.subpath_staging_dir(&c.id))?;
        let shared = self.shared_namespaces(c)?;
        let mut spec = spec::build(&spec::SpecInput {
            config: &c.config,
            host_config: &host_config,
            args,
            env,
            cwd,
            uid,
            gid,
            additional_gids,
            hostname: c.hostname.clone(),
            rootfs,
            etc_files: &etc_files,
            cgroups_path: namespaces::cgroups_path(&c.host_config, &c.id)?,
            userns: c.userns.as_ref(),
            user_mounts: &user_mounts,
        })?;
        if self.init.wanted(&c.host_config) {
            self.init.apply(&mut spec)?;
        }
        devices::apply(&c.host_config, &mut spec)?;
        shared.apply(&mut spec);
        kernel_limits::apply(&c.host_config, &mut spec)?;
        namespaces::set_domainname(&c.config, &mut spec)?;
        self.cdi.apply(&c.host_config, &mut spec)?;
        fs::write(
            exec_dir.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap_or_default(),
        )
        .map_err(|e| internal("write config.json", e))?;

        let log = crate::logdriver::settings(&c.host_config, &self.log_path(&c.id))?;
        let socket = exec_dir.join("control.sock");
        let monitor = MonitorConfig {
            id: c.id.clone(),
            bundle: exec_dir.to_path_buf(),
            runtime: self.runtimes[&c.runtime].clone(),
            runtime_root: self.runtime_root(&c.runtime),
            log_path: log.path,
            log_max_size: log.max_size,
            log_max_files: log.max_files,
            log_compress: log.compress,
            exit_file: exec_dir.join("exit.json"),
            control_socket: socket.clone(),
            rootfs: Some(rootfs.to_path_buf()),
            stdin: c.config["OpenStdin"].as_bool() == Some(true),
            stdin_once: c.config["StdinOnce"].as_bool() == Some(true),
            tty: c.config["Tty"].as_bool() == Some(true),
            console_size: c.host_config["ConsoleSize"].as_array().and_then(|a| {
                Some((
                    u16::try_from(a.first()?.as_u64()?).ok()?,
                    u16::try_from(a.get(1)?.as_u64()?).ok()?,
                ))
            }),
            start_timeout: None,
        };
        let monitor_file = exec_dir.join("monitor.json");
        fs::write(
            &monitor_file,
            serde_json::to_vec(&monitor).unwrap_or_default(),
        )
        .map_err(|e| internal("write monitor.json", e))?;
        // /proc/self/exe, not the path: still runs when the binary was replaced on
        // disk (an upgrade) while pierd runs.
        let mut child = Command::new("/proc/self/exe")
            .arg("monitor")
            .arg(&monitor_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| internal("start the container monitor", e))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        // The monitor lives on (its own session); reap it in the background so it
        // leaves no zombie while pierd runs.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let report: CreatedReport = serde_json::from_str(line.trim()).map_err(|_| {
            EngineError::Internal("the container monitor exited without a report".into())
        })?;
        match (report.pid, report.error) {
            (Some(pid), None) => Ok((pid, socket)),
            (_, Some(e)) => Err(EngineError::Internal(e)),
            _ => Err(EngineError::Internal("bad monitor report".into())),
        }
    }

    /// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` for the container, as Docker
    /// writes them.
    fn write_etc_files(
        &self,
        c: &Container,
        dir: &Path,
    ) -> Result<Vec<(String, PathBuf)>, EngineError> {
        let mode = c.host_config["NetworkMode"].as_str().unwrap_or("");
        let hostname = dir.join("hostname");
        fs::write(&hostname, format!("{}\n", c.hostname))
            .map_err(|e| internal("write hostname", e))?;
        let mut hosts_text = if mode == network::HOST {
            fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            String::from(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
            )
        };
        for extra in c.host_config["ExtraHosts"].as_array().into_iter().flatten() {
            let Some(text) = extra.as_str() else { continue };
            // `name:ip` and `name=ip`; the address may be IPv6 (colons).
            let split = text.find('=').or_else(|| text.find(':'));
            if let Some(at) = split {
                let (name, ip) = (&text[..at], &text[at + 1..]);
                let ip = if ip == "host-gateway" {
                    match self.host_gateway() {
                        Some(gw) => gw.to_string(),
                        None => continue,
                    }
                } else {
                    ip.trim_matches(['[', ']']).to_string()
                };
                hosts_text.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        // A container in another's namespace names what that one names.
        let shared = mode
            .strip_prefix("container:")
            .and_then(|target| self.get(target).ok());
        let names_of = shared.as_ref().unwrap_or(c);
        hosts_text.push_str(&self.hosts_entries(names_of));
        let hosts = dir.join("hosts");
        fs::write(&hosts, hosts_text).map_err(|e| internal("write hosts", e))?;
        let resolv_path = dir.join("resolv.conf");
        fs::write(&resolv_path, self.resolv_conf(names_of))
            .map_err(|e| internal("write resolv.conf", e))?;
        Ok(vec![
            ("hostname".into(), hostname),
            ("hosts".into(), hosts),
            ("resolv.conf".into(), resolv_path),
        ])
    }

    /// Rewrites a running container's `/etc/hosts` and `/etc/resolv.conf` in place (the
    /// bind mounts keep the inodes) after its networks changed.
    pub(crate) fn refresh_etc_files(&self, id: &str) {
        if let Ok(c) = self.get(id) {
            if c.state.running {
                let _ = self.write_etc_files(&c, &self.data_dir(id));
            }
        }
    }

    /// Waits for the container's exit through its monitor (or its exit file).
    async fn watch_exit(self: Arc<Self>, id: String, socket: PathBuf) {
        let status = match monitor_request(&socket, &json!({"op": "wait"})).await {
            Ok(line) => serde_json::from_str::<ExitStatus>(line.trim()).ok(),
            Err(_) => None,
        };
        let status = match status {
            Some(s) => s,
            None => {
                // The monitor is gone: it left the status, or it died with the
                // container — or without it, which then must not run on unwatched.
                if let Ok(c) = self.get(&id) {
                    let _ = self.runtime_command(&c, &["delete", "--force", &id]).await;
                }
                let file = self.exec_dir(&id).join("exit.json");
                match fs::read(&file)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                {
                    Some(s) => s,
                    None => ExitStatus {
                        exit_code: 255,
                        finished_at: pier_image::time::now_rfc3339(),
                        oom_killed: false,
                        error: Some("container monitor disappeared".into()),
                    },
                }
            }
        };
        self.on_exit(&id, status).await;
    }

    async fn on_exit(self: &Arc<Self>, id: &str, status: ExitStatus) {
        // The network goes before the exit is reported (a restart may follow at once);
        // the record is cleared in the update below, one write for both.
        let engine = self.clone();
        let owned = id.to_string();
        let had_ports = tokio::task::spawn_blocking(move || engine.net_release(&owned))
            .await
            .unwrap_or(false);
        let rootfs = self.data_dir(id).join("rootfs");
        let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        let engine = self.clone();
        let owned = id.to_string();
        let _ = tokio::task::spawn_blocking(move || engine.volumes_unmount(&owned)).await;
        self.release_shm(id);
        let mut restart = None;
        let updated = self.update(id, |c| {
            network::clear_net_runtime(c);
            // A container being removed stays so (and is not restarted): a restart
            // of pierd must find the removal to finish it.
            let removing = c.state.status == "removing";
            c.state.status = if removing { "removing" } else { "exited" }.into();
            c.state.running = false;
            c.state.paused = false;
            c.state.pid = 0;
            c.state.exit_code = status.exit_code;
            c.state.oom_killed = status.oom_killed;
            c.state.finished_at = status.finished_at.clone();
            if let Some(e) = &status.error {
                c.state.error = e.clone();
            }
            // The restart policy: `restarting` (running, as Docker counts it) until the
            // back-off has passed.
            if !removing {
                restart = ops::plan_restart(c, status.exit_code);
            }
        });
        if had_ports {
            // The ruleset is computed from the records: after the update above.
            let engine = self.clone();
            let _ = tokio::task::spawn_blocking(move || engine.net_firewall_after_release()).await;
        }
        self.health_stop(id);
        if let Ok(c) = &updated {
            if status.oom_killed {
                self.container_event(id, "oom", &[]);
            }
            let ran_for = pier_image::time::parse_rfc3339(&c.state.finished_at)
                .zip(pier_image::time::parse_rfc3339(&c.state.started_at))
                .map_or(0, |(end, start)| (end.0 - start.0).max(0));
            self.container_event(
                id,
                "die",
                &[
                    ("exitCode", status.exit_code.to_string()),
                    ("execDuration", ran_for.to_string()),
                ],
            );
        }
        if let Some(entry) = self.lock().get(id) {
            entry.events.send_modify(|e| {
                e.exits += 1;
                e.last_exit = status.exit_code;
                e.running = false;
            });
        }
        if let (Some((generation, delay)), Ok(_)) = (restart, &updated) {
            self.schedule_restart(id.to_string(), generation, delay);
            return;
        }
        if let Ok(c) = updated {
            if c.host_config["AutoRemove"].as_bool() == Some(true) {
                let _ = self.remove_with_volumes(id, true, true).await;
            }
        }
    }

    // ------------------------------------------------------------------------------
    // Signals, stop, wait, remove.

    async fn runtime_command(&self, c: &Container, args: &[&str]) -> Result<String, EngineError> {
        let out = tokio::process::Command::new(&self.runtimes[&c.runtime])
            .arg("--root")
            .arg(self.runtime_root(&c.runtime))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| internal("run the runtime", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(EngineError::Internal(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, input: &str, signal: Option<&str>) -> Result<(), EngineError> {
        let c = self.get(input)?;
        let signal = parse_signal(signal.unwrap_or("SIGKILL"))?;
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "cannot kill container: {input}: container {} is not running",
                c.id
            )));
        }
        // A user's kill: no `unless-stopped` restart; with SIGKILL or the stop signal
        // no restart at all (a pending one is cancelled).
        if self.mark_user_stop(&c, signal) {
            return Ok(());
        }
        self.runtime_command(&c, &["kill", &c.id, &signal.to_string()])
            .await
            .map(|_| ())?;
        self.container_event(&c.id, "kill", &[("signal", signal.to_string())]);
        // As in Docker: the signal is delivered once the container is thawed.
        self.thaw_after_signal(&c).await;
        // As dockerd: after SIGKILL the answer waits (up to 10 s) until the container
        // is down, so the next command sees it stopped.
        if signal == 9 {
            if let Some(mut events) = self.events(&c.id) {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), events.wait_for(|e| !e.running))
                        .await;
            }
        }
        Ok(())
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
    /// `signal` overrides the container's stop signal (`docker stop -s`).
    pub async fn stop(
        &self,
        input: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        // Serialized with starts and removal: a stop never overlaps a start under way.
        let (id, lock) = self.lifecycle_lock(input)?;
        let _guard = lock.lock_owned().await;
        self.stop_locked(&id, timeout, signal).await
    }

    async fn stop_locked(
        &self,
        input: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        let c = self.get(input)?;
        // A bad signal is refused before anything happens, as in dockerd.
        if let Some(s) = signal.filter(|s| !s.is_empty()) {
            parse_signal(s)?;
        }
        // A container between policy runs (its restart under way) is stopped too.
        if !c.state.running && !c.state.restarting {
            return Err(EngineError::NotModified);
        }
        let mut events = self
            .events(&c.id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {input}")))?;
        let signal = signal
            .filter(|s| !s.is_empty())
            .or_else(|| c.config["StopSignal"].as_str().filter(|s| !s.is_empty()))
            .unwrap_or("SIGTERM")
            .to_string();
        let timeout = timeout
            .or_else(|| c.config["StopTimeout"].as_i64())
            .unwrap_or(10);
        let signal = parse_signal(&signal)?;
        if self.mark_user_stop(&c, 9) {
            return Ok(());
        }
        if self
            .runtime_command(&c, &["kill", &c.id, &signal.to_string()])
            .await
            .is_ok()
        {
            self.container_event(&c.id, "kill", &[("signal", signal.to_string())]);
        }
        self.thaw_after_signal(&c).await;
        let stopped = if timeout < 0 {
            events.wait_for(|e| !e.running).await.is_ok()
        } else {
            tokio::time::timeout(
                Duration::from_secs(timeout.unsigned_abs()),
                events.wait_for(|e| !e.running),
            )
            .await
            .is_ok()
        };
        if !stopped {
            if self
                .runtime_command(&c, &["kill", &c.id, "9"])
                .await
                .is_ok()
            {
                self.container_event(&c.id, "kill", &[("signal", "9".into())]);
            }
            let _ = events.wait_for(|e| !e.running).await;
        }
        self.container_event(&c.id, "stop", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/wait`: `not-running` (default), `next-exit`, `removed`.
    /// The wait is registered when this returns (so the API can answer the headers
    /// before the client starts the container); the future gives the exit code.
    pub fn wait(
        &self,
        input: &str,
        condition: &str,
    ) -> Result<std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>>, EngineError> {
        let c = self.get(input)?;
        let mut events = self
            .events(&c.id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {input}")))?;
        let start = events.borrow().clone();
        let exit_code = c.state.exit_code;
        match condition {
            "" | "not-running" => {
                if !c.state.running {
                    return Ok(Box::pin(async move { exit_code }));
                }
                Ok(Box::pin(async move {
                    let _ = events.wait_for(|e| !e.running).await;
                    let code = events.borrow().last_exit;
                    code
                }))
            }
            "next-exit" => Ok(Box::pin(async move {
                let _ = events.wait_for(|e| e.exits > start.exits).await;
                let code = events.borrow().last_exit;
                code
            })),
            "removed" => Ok(Box::pin(async move {
                let _ = events.wait_for(|e| e.removed).await;
                let code = events.borrow().last_exit;
                code
            })),
            other => Err(EngineError::InvalidParameter(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }

    /// `DELETE /containers/{id}` without `v`: its volumes stay.
    pub async fn remove(self: &Arc<Self>, input: &str, force: bool) -> Result<(), EngineError> {
        self.remove_with_volumes(input, force, false).await
    }

    /// `DELETE /containers/{id}`; `volumes` (`v`, `rm -v`, `--rm`) removes its
    /// anonymous volumes too.
    pub async fn remove_with_volumes(
        self: &Arc<Self>,
        input: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), EngineError> {
        // In a task of its own: a client that goes away mid-remove does not leave the
        // removal half done.
        let engine = self.clone();
        let input = input.to_string();
        tokio::spawn(async move { engine.remove_container(&input, force, volumes).await })
            .await
            .map_err(|e| internal("remove", e))?
    }

    async fn remove_container(
        self: &Arc<Self>,
        input: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), EngineError> {
        let (id, lock) = self.lifecycle_lock(input)?;
        // As dockerd: a removal under way is a conflict at once (not a wait). One
        // that failed half-way (the lock is free) is finished by this one.
        if self.get(&id)?.state.status == "removing" && lock.try_lock().is_err() {
            return Err(EngineError::Conflict(format!(
                "removal of container {input} is already in progress"
            )));
        }
        let _guard = lock.lock_owned().await;
        let c = self.get(&id)?;
        if c.state.running && !force {
            return Err(EngineError::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                c.name
            )));
        }
        // Recorded before anything is undone: a pierd restart finishes the removal.
        // A pending policy restart is cancelled (there is no process to kill).
        let c = self.update(&id, |c| {
            c.state.status = "removing".into();
            if c.state.restarting {
                c.restart_gen += 1;
                c.state.restarting = false;
                c.state.running = false;
            }
        })?;
        if c.state.running {
            let mut events = self
                .events(&c.id)
                .ok_or_else(|| EngineError::NotFound(format!("No such container: {input}")))?;
            if self
                .runtime_command(&c, &["kill", &c.id, "9"])
                .await
                .is_ok()
            {
                self.container_event(&c.id, "kill", &[("signal", "9".into())]);
            }
            // A paused container gets the signal once thawed (cgroup v1 freezer).
            self.thaw_after_signal(&c).await;
            if !stopped_within(&mut events, Duration::from_secs(10)).await {
                // Not down in time: the runtime deletes it (its monitor then reports).
                let _ = self
                    .runtime_command(&c, &["delete", "--force", &c.id])
                    .await;
                let _ = stopped_within(&mut events, Duration::from_secs(10)).await;
            }
        }
        // Whatever network it still holds (an interrupted start, an exit not seen in
        // time) goes with it; the release takes it from the record, so an exit
        // reported later does not release it twice.
        if self.get(&c.id).is_ok_and(|c| !c.sandbox_key.is_empty()) {
            tokio::task::block_in_place(|| self.net_teardown(&c.id));
        }
        let images = self.images.clone();
        let key = c.snapshot_key.clone();
        let rootfs = self.data_dir(&c.id).join("rootfs");
        let data_dir = self.data_dir(&c.id);
        let exec_dir = self.exec_dir(&c.id);
        let runtime = self.runtimes[&c.runtime].clone();
        let runtime_root = self.runtime_root(&c.runtime);
        let owned = c.id.clone();
        tokio::task::spawn_blocking(move || {
            // A container the runtime still has (created, never started) goes first.
            if runtime_root.join(&owned).exists() {
                let _ = lifecycle::delete_in_runtime(&runtime, &runtime_root, &owned);
            }
            let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
            let _ = images.snapshots().remove(&key);
            mounts::release_image_mounts(&images, &owned);
            namespaces::release_shm_in(&data_dir);
            let _ = fs::remove_dir_all(&data_dir);
            let _ = fs::remove_dir_all(&exec_dir);
        })
        .await
        .map_err(|e| internal("remove", e))?;
        self.store.delete(&c.id)?;
        self.container_event(&c.id, "destroy", &[]);
        if let Some(entry) = self.lock().remove(&c.id) {
            entry.events.send_modify(|e| e.removed = true);
        }
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            engine.volumes_unmount(&c.id);
            engine.volumes_release(&c, volumes);
        })
        .await
        .map_err(|e| internal("remove", e))?;
        Ok(())
    }

    /// Where an attach connects: the monitor now, or at start.
    pub fn attach_target(&self, input: &str) -> Result<AttachTarget, EngineError> {
        let mut inner = self.lock();
        let id = resolve_in(&inner, input)?;
        let entry = inner
            .get_mut(&id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {input}")))?;
        if entry.c.state.running {
            return Ok(AttachTarget::Now(self.exec_dir(&id).join("control.sock")));
        }
        if entry.c.state.status != "created" && entry.c.state.status != "exited" {
            return Err(EngineError::Conflict(
                "You cannot attach to a stopped container, start it first".into(),
            ));
        }
        let (tx, rx) = oneshot::channel();
        entry.pending_attach.push(tx);
        Ok(AttachTarget::AtStart(rx))
    }

    /// The monitor's control socket of a running container.
    pub fn control_socket(&self, id: &str) -> PathBuf {
        self.exec_dir(id).join("control.sock")
    }

    /// Container IDs by state, for `/info`.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let inner = self.lock();
        let total = inner.len();
        let running = inner
            .values()
            .filter(|e| e.c.state.running && !e.c.state.paused)
            .count();
        let paused = inner.values().filter(|e| e.c.state.paused).count();
        (total, running, paused, total - running - paused)
    }
}

fn resolve_in(inner: &HashMap<String, Entry>, input: &str) -> Result<String, EngineError> {
    if inner.contains_key(input) {
        return Ok(input.to_string());
    }
    let name = input.trim_start_matches('/');
    if let Some(e) = inner.values().find(|e| e.c.name == name) {
        return Ok(e.c.id.clone());
    }
    if !input.is_empty() && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        let matches: Vec<&String> = inner.keys().filter(|k| k.starts_with(input)).collect();
        match matches.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "multiple IDs found with provided prefix: {input}"
                )))
            }
        }
    }
    Err(EngineError::NotFound(format!("No such container: {input}")))
}

/// Whether the container is (or gets) down within `limit`.
async fn stopped_within(events: &mut watch::Receiver<Events>, limit: Duration) -> bool {
    tokio::time::timeout(limit, events.wait_for(|e| !e.running))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// One request line to a monitor, one answer line back.
async fn monitor_request(socket: &Path, request: &Value) -> Result<String, String> {
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("container monitor: {e}"))?;
    let mut line = serde_json::to_vec(request).unwrap_or_default();
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(|e| format!("container monitor: {e}"))?;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .await
        .map_err(|e| format!("container monitor: {e}"))?;
    if answer.is_empty() {
        return Err("container monitor closed the connection".into());
    }
    Ok(answer)
}

fn strings(a: &[Value]) -> Vec<String> {
    a.iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `pier-runtime` next to pierd's own binary, else the name (looked up in PATH).
fn find_runtime(name: &str) -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let beside = dir.join(name);
            if beside.is_file() {
                return beside;
            }
        }
    }
    PathBuf::from(name)
}

/// A signal by name (`SIGTERM`, `TERM`) or number; 0 is refused.
pub fn parse_signal(text: &str) -> Result<i32, EngineError> {
    pier_runtime::process::signal_number(text)
        .filter(|n| *n > 0)
        .ok_or_else(|| EngineError::InvalidParameter(format!("Invalid signal: {text}")))
}

/// Reads a file of the container's rootfs, resolving the path inside it (the runtime's
/// resolver: no escape through `..`, absolute or looping symlinks, or magic links).
fn read_in_root(root: &Path, path: &str) -> Option<String> {
    pier_runtime::rootpath::Root::open(root)
        .ok()?
        .read_to_string(Path::new(path))
        .ok()
}

/// `User` (`name`, `uid`, `name:group`, `uid:gid`) → uid, gid, supplementary gids,
/// looked up in the container's `/etc/passwd` and `/etc/group`.
pub(crate) fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), EngineError> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && (f[0] == u || f[2] == u)).then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
            )
        })
    });
    let (user_name, uid, mut gid) = match (entry, u.parse::<u32>()) {
        (Some((name, Some(uid), gid)), _) => (Some(name), uid, gid.unwrap_or(0)),
        (_, Ok(uid)) => (None, uid, 0),
        _ => {
            return Err(EngineError::InvalidParameter(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_gid(&group, g).ok_or_else(|| {
                EngineError::InvalidParameter(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
    }
    let mut additional = Vec::new();
    if let Some(name) = user_name {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid {
                        additional.push(n);
                    }
                }
            }
        }
    }
    Ok((uid, gid, additional))
}

/// As dockerd: a working directory the image lacks is made before the start, owned
/// by root (not by the container's user). With a user namespace the runtime makes it.
/// A failure is left to the runtime, which then reports it.
fn make_working_dir(c: &Container, rootfs: &Path, cwd: &str) {
    if c.userns.is_some() || cwd == "/" {
        return;
    }
    if let Ok(root) = pier_runtime::rootpath::Root::open(rootfs) {
        let _ = root.resolve_or_create(
            Path::new(cwd),
            pier_runtime::rootpath::Missing::Dirs {
                mode: 0o755,
                owner: None,
            },
        );
    }
}

/// The ID of the group `name` in the text of a group file.
fn group_gid(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse::<u32>().ok())?
    })
}

/// The uid, gid and supplementary groups of a container's process (its own, or an
/// exec's) running as `user`: as dockerd, the primary group is among the
/// supplementary ones too, then the user's groups and `--group-add`'s.
pub(crate) fn process_user(
    rootfs: &Path,
    user: &str,
    host_config: &Value,
) -> Result<(u32, u32, Vec<u32>), EngineError> {
    let (uid, gid, user_gids) = resolve_user(rootfs, user)?;
    let mut additional_gids = vec![gid];
    for group in user_gids
        .into_iter()
        .chain(group_add_gids(rootfs, &host_config["GroupAdd"])?)
    {
        if !additional_gids.contains(&group) {
            additional_gids.push(group);
        }
    }
    Ok((uid, gid, additional_gids))
}

/// `HostConfig.GroupAdd` (`--group-add`): group IDs, or names looked up in the
/// container's `/etc/group`, with dockerd's message for a name it lacks.
fn group_add_gids(rootfs: &Path, groups: &Value) -> Result<Vec<u32>, EngineError> {
    let wanted = spec::str_list(groups);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let group_file = read_in_root(rootfs, "etc/group").unwrap_or_default();
    wanted
        .iter()
        .map(|g| {
            if let Ok(n) = g.parse::<u32>() {
                return Ok(n);
            }
            group_gid(&group_file, g).ok_or_else(|| {
                EngineError::InvalidParameter(format!(
                    "Unable to find group {g}: no matching entries in group file"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn users_from_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:nobody\n",
        )
        .unwrap();
        assert_eq!(resolve_user(dir.path(), "").unwrap(), (0, 0, vec![]));
        assert_eq!(
            resolve_user(dir.path(), "nobody").unwrap(),
            (65534, 65534, vec![10])
        );
        assert_eq!(
            resolve_user(dir.path(), "1000:wheel").unwrap(),
            (1000, 10, vec![])
        );
        assert!(resolve_user(dir.path(), "ghost").is_err());
    }
}
