//! Converging the engine to a project, as `docker compose up` and `down` do:
//! networks and volumes first, then each service's containers created (or recreated
//! when their config hash changed) and started in dependency order, independent
//! services in parallel, `depends_on` conditions awaited before a dependent starts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::api::{ContainerSummary, Engine, NetworkCreate};
use super::create::{create_request, image_reference, ContainerSpec};
use super::labels;
use super::Progress;
use crate::model::{Project, Service};

/// Why `up` or `down` failed; the message names the object and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Engine(#[from] super::api::ApiError),
    #[error(transparent)]
    Unsupported(#[from] super::create::Unsupported),
    #[error("{0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, ConvergeError>;

fn failed(message: impl Into<String>) -> ConvergeError {
    ConvergeError::Failed(message.into())
}

/// `up`'s flags.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub services: Vec<String>,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    pub no_deps: bool,
    pub no_start: bool,
    pub scale: BTreeMap<String, u32>,
    pub wait: bool,
    pub wait_timeout: Option<Duration>,
}

/// `down`'s flags.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    pub volumes: bool,
    pub remove_orphans: bool,
    /// `local` or `all`.
    pub rmi: Option<String>,
    pub timeout: Option<i64>,
}

/// The services `names` name plus what they depend on (all of them when empty;
/// only them with `no_deps`).
pub fn select_services(
    project: &Project,
    names: &[String],
    no_deps: bool,
) -> Result<BTreeSet<String>> {
    if names.is_empty() {
        return Ok(project.services.keys().cloned().collect());
    }
    let mut keep = BTreeSet::new();
    let mut queue: Vec<String> = names.to_vec();
    while let Some(name) = queue.pop() {
        let Some(s) = project.services.get(&name) else {
            return Err(failed(format!("no such service: {name}")));
        };
        if keep.insert(name.clone()) && !no_deps {
            queue.extend(
                s.depends_on
                    .keys()
                    .filter(|d| project.services.contains_key(*d))
                    .cloned(),
            );
        }
    }
    Ok(keep)
}

/// The selected services in dependency levels: each level depends only on earlier ones.
pub fn dependency_levels(project: &Project, selected: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut levels = Vec::new();
    while done.len() < selected.len() {
        let level: Vec<String> = selected
            .iter()
            .filter(|s| !done.contains(*s))
            .filter(|s| {
                project.services[*s]
                    .depends_on
                    .keys()
                    .all(|d| done.contains(d) || !selected.contains(d))
            })
            .cloned()
            .collect();
        if level.is_empty() {
            // A cycle (the loader refuses them): take the rest as one level.
            levels.push(
                selected
                    .iter()
                    .filter(|s| !done.contains(*s))
                    .cloned()
                    .collect(),
            );
            break;
        }
        done.extend(level.iter().cloned());
        levels.push(level);
    }
    levels
}

/// How many containers a service should have.
fn desired_scale(service: &Service, options: &UpOptions) -> u32 {
    if let Some(n) = options.scale.get(&service.name) {
        return *n;
    }
    if let Some(n) = service.scale {
        return n.max(0) as u32;
    }
    if let Some(n) = service.deploy.as_ref().and_then(|d| d.replicas) {
        return n.max(0) as u32;
    }
    1
}

fn number_of(c: &ContainerSummary) -> u32 {
    c.label(labels::CONTAINER_NUMBER).parse().unwrap_or(0)
}

/// The project's non-oneoff containers.
pub async fn project_containers(
    engine: &Engine,
    project: &str,
    all: bool,
) -> Result<Vec<ContainerSummary>> {
    let filter = vec![
        format!("{}={project}", labels::PROJECT),
        format!("{}=False", labels::ONEOFF),
    ];
    let mut list = engine.containers(&filter, all).await?;
    list.sort_by_key(|c| (c.label(labels::SERVICE).to_string(), number_of(c)));
    Ok(list)
}

/// Networks the selected services use (the project's keys).
fn used_networks(project: &Project, selected: &BTreeSet<String>) -> BTreeSet<String> {
    selected
        .iter()
        .flat_map(|s| project.services[s].networks.keys().cloned())
        .collect()
}

fn used_volumes(project: &Project, selected: &BTreeSet<String>) -> BTreeSet<String> {
    selected
        .iter()
        .flat_map(|s| project.services[s].volumes.iter())
        .filter(|v| v.kind == "volume" && project.volumes.contains_key(&v.source))
        .map(|v| v.source.clone())
        .collect()
}

async fn ensure_networks(
    engine: &Engine,
    project: &Project,
    keys: &BTreeSet<String>,
    progress: &Progress,
) -> Result<()> {
    for key in keys {
        let Some(net) = project.networks.get(key) else {
            continue;
        };
        let name = labels::network_name(project, key);
        if engine.network(&name).await?.is_some() {
            continue;
        }
        if net.external {
            return Err(failed(format!(
                "network {name} declared as external, but could not be found"
            )));
        }
        let ipam = (!net.ipam.driver.is_empty() || !net.ipam.config.is_empty()).then(|| {
            super::api::Ipam {
                driver: net.ipam.driver.clone(),
                config: net
                    .ipam
                    .config
                    .iter()
                    .map(|p| super::api::IpamPool {
                        subnet: p.subnet.clone(),
                        ip_range: p.ip_range.clone(),
                        gateway: p.gateway.clone(),
                        aux_address: p.aux_addresses.clone(),
                    })
                    .collect(),
            }
        });
        let body = NetworkCreate {
            name: name.clone(),
            driver: net.driver.clone(),
            internal: net.internal,
            attachable: net.attachable,
            enable_ipv6: net.enable_ipv6,
            ipam,
            options: net.driver_opts.clone(),
            labels: labels::resource_labels(project, labels::NETWORK, key, &net.labels),
        };
        progress.event("Network", &name, "Creating");
        engine.create_network(&body).await?;
        progress.event("Network", &name, "Created");
    }
    Ok(())
}

async fn ensure_volumes(
    engine: &Engine,
    project: &Project,
    keys: &BTreeSet<String>,
    progress: &Progress,
) -> Result<()> {
    for key in keys {
        let vol = &project.volumes[key];
        let name = labels::volume_name(project, key);
        if engine.volume(&name).await?.is_some() {
            continue;
        }
        if vol.external {
            return Err(failed(format!("external volume \"{name}\" not found")));
        }
        let body = pier_api::volume::VolumeCreateOptions {
            name: Some(name.clone()),
            driver: (!vol.driver.is_empty()).then(|| vol.driver.clone()),
            driver_opts: (!vol.driver_opts.is_empty()).then(|| vol.driver_opts.clone()),
            labels: Some(labels::resource_labels(
                project,
                labels::VOLUME,
                key,
                &vol.labels,
            )),
            ..Default::default()
        };
        progress.event("Volume", &format!("\"{name}\""), "Creating");
        engine.create_volume(&body).await?;
        progress.event("Volume", &format!("\"{name}\""), "Created");
    }
    Ok(())
}

/// The image ID each selected service runs, pulling as `pull_policy` says.
async fn ensure_images(
    engine: &Engine,
    project: &Project,
    selected: &BTreeSet<String>,
    progress: &Progress,
) -> Result<BTreeMap<String, String>> {
    let mut ids = BTreeMap::new();
    for name in selected {
        let s = &project.services[name];
        let reference = image_reference(project, s);
        let policy = s.pull_policy.as_str();
        let mut image = if policy == "always" {
            None
        } else {
            engine.image(&reference).await?
        };
        if image.is_none() {
            if s.build.is_some()
                && (policy == "build"
                    || s.image.is_empty()
                    || policy.is_empty()
                    || policy == "missing")
            {
                return Err(failed(format!(
                    "service {name:?} has a build section: pier compose up does not build images yet (build it with `pier build -t {reference}` first)"
                )));
            }
            if policy == "never" {
                return Err(failed(format!(
                    "Error response from daemon: No such image: {reference}"
                )));
            }
            progress.event("Image", &reference, "Pulling");
            engine.pull(&reference).await?;
            progress.event("Image", &reference, "Pulled");
            image = engine.image(&reference).await?;
        }
        let image = image.ok_or_else(|| failed(format!("No such image: {reference}")))?;
        ids.insert(name.clone(), image.id);
    }
    Ok(ids)
}

/// `docker compose up`: converges the engine to `project`; with `wait`, until every
/// started container is running (healthy when it has a healthcheck).
pub async fn up(
    engine: &Engine,
    project: Arc<Project>,
    options: &UpOptions,
    progress: &Progress,
) -> Result<()> {
    let selected = select_services(&project, &options.services, options.no_deps)?;
    for name in &selected {
        let s = &project.services[name];
        if !s.container_name.is_empty() && desired_scale(s, options) > 1 {
            return Err(failed(format!(
                "services.{name}: can't set container_name and {name} as container name must be unique: invalid compose project"
            )));
        }
        // Refuse a service pier cannot create before anything is made.
        let spec = ContainerSpec {
            project: &project,
            service: s,
            number: 1,
            name: labels::container_name(&project.name, s, 1),
            image_id: String::new(),
            oneoff: false,
        };
        create_request(&spec)?;
    }
    let existing = project_containers(engine, &project.name, true).await?;
    let orphans: Vec<&ContainerSummary> = existing
        .iter()
        .filter(|c| !project.services.contains_key(c.label(labels::SERVICE)))
        .collect();
    if !orphans.is_empty() {
        if options.remove_orphans {
            for c in &orphans {
                progress.event("Container", c.name(), "Removing");
                engine.remove_container(&c.id, true, false).await?;
                progress.event("Container", c.name(), "Removed");
            }
        } else {
            let services: BTreeSet<&str> =
                orphans.iter().map(|c| c.label(labels::SERVICE)).collect();
            progress.warn(&format!(
                "Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                orphans.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
            ));
            let _ = services;
        }
    }
    ensure_networks(
        engine,
        &project,
        &used_networks(&project, &selected),
        progress,
    )
    .await?;
    ensure_volumes(
        engine,
        &project,
        &used_volumes(&project, &selected),
        progress,
    )
    .await?;
    let images = Arc::new(ensure_images(engine, &project, &selected, progress).await?);

    let levels = dependency_levels(&project, &selected);
    let existing = Arc::new(existing);
    // Create (or recreate) level by level, each level's services in parallel.
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    for level in &levels {
        let mut tasks = JoinSet::new();
        for name in level {
            let (engine, project, images, existing) = (
                engine.clone(),
                project.clone(),
                images.clone(),
                existing.clone(),
            );
            let (name, options, progress) = (name.clone(), options.clone(), progress.clone());
            // A dependency that was recreated with `restart: true` recreates this one.
            let dep_changed = project.services[&name]
                .depends_on
                .iter()
                .any(|(d, dep)| dep.restart && recreated.contains(d));
            tasks.spawn(async move {
                let changed = converge_service(
                    &engine,
                    &project,
                    &name,
                    &images[&name],
                    &existing,
                    &options,
                    dep_changed,
                    &progress,
                )
                .await?;
                Ok::<_, ConvergeError>((name, changed))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (name, changed) = joined.map_err(|e| failed(e.to_string()))??;
            if changed {
                recreated.insert(name);
            }
        }
    }
    if options.no_start {
        return Ok(());
    }
    start_services(engine, &project, &selected, &levels, progress).await?;
    if options.wait {
        let deadline = options.wait_timeout.map(|t| Instant::now() + t);
        wait_services(engine, &project, &selected, deadline, progress).await?;
    }
    Ok(())
}

/// Makes one service's containers match the plan; whether any was (re)created.
#[allow(clippy::too_many_arguments)]
async fn converge_service(
    engine: &Engine,
    project: &Project,
    name: &str,
    image_id: &str,
    existing: &[ContainerSummary],
    options: &UpOptions,
    dep_changed: bool,
    progress: &Progress,
) -> Result<bool> {
    let service = &project.services[name];
    let hash = labels::config_hash(service);
    let scale = desired_scale(service, options);
    let mine: Vec<&ContainerSummary> = existing
        .iter()
        .filter(|c| c.label(labels::SERVICE) == name)
        .collect();
    let mut changed = false;
    let mut numbers: BTreeSet<u32> = BTreeSet::new();
    let timeout = service.stop_grace_period.map(|d| d.0.as_secs() as i64);
    for (i, c) in mine.iter().enumerate() {
        let number = number_of(c);
        if i as u32 >= scale {
            progress.event("Container", c.name(), "Stopping");
            engine.stop(&c.id, timeout).await?;
            engine.remove_container(&c.id, false, false).await?;
            progress.event("Container", c.name(), "Removed");
            continue;
        }
        numbers.insert(number);
        let outdated = c.label(labels::CONFIG_HASH) != hash
            || c.label(labels::IMAGE) != image_id
            || dep_changed;
        if options.force_recreate || (outdated && !options.no_recreate) {
            progress.event("Container", c.name(), "Recreate");
            engine.stop(&c.id, timeout).await?;
            let short = &c.id[..12.min(c.id.len())];
            engine
                .rename(&c.id, &format!("{short}_{}", c.name()))
                .await?;
            let new_name = labels::container_name(&project.name, service, number);
            create_one(engine, project, service, number, &new_name, image_id).await?;
            engine.remove_container(&c.id, false, false).await?;
            progress.event("Container", &new_name, "Recreated");
            changed = true;
        } else {
            progress.event("Container", c.name(), "Running");
        }
    }
    let mut next = 1;
    while (numbers.len() as u32) < scale {
        while numbers.contains(&next) {
            next += 1;
        }
        let cname = labels::container_name(&project.name, service, next);
        progress.event("Container", &cname, "Creating");
        create_one(engine, project, service, next, &cname, image_id).await?;
        progress.event("Container", &cname, "Created");
        numbers.insert(next);
        changed = true;
    }
    Ok(changed)
}

async fn create_one(
    engine: &Engine,
    project: &Project,
    service: &Service,
    number: u32,
    name: &str,
    image_id: &str,
) -> Result<String> {
    let spec = ContainerSpec {
        project,
        service,
        number,
        name: name.to_string(),
        image_id: image_id.to_string(),
        oneoff: false,
    };
    let body = create_request(&spec)?;
    Ok(engine.create_container(name, &body).await?)
}

/// Starts the selected services level by level, waiting for each dependency's
/// condition before starting its dependents.
async fn start_services(
    engine: &Engine,
    project: &Arc<Project>,
    selected: &BTreeSet<String>,
    levels: &[Vec<String>],
    progress: &Progress,
) -> Result<()> {
    for level in levels {
        let mut tasks = JoinSet::new();
        for name in level {
            let (engine, project, progress, name) = (
                engine.clone(),
                project.clone(),
                progress.clone(),
                name.clone(),
            );
            let selected = selected.clone();
            tasks.spawn(async move {
                let service = &project.services[&name];
                for (dep, d) in &service.depends_on {
                    if !selected.contains(dep) {
                        continue;
                    }
                    if let Err(e) =
                        await_condition(&engine, &project.name, dep, &d.condition, &progress).await
                    {
                        if d.required {
                            return Err(e);
                        }
                        progress.warn(&format!("optional dependency {dep:?} failed: {e}"));
                    }
                }
                start_service(&engine, &project.name, &name, &progress).await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| failed(e.to_string()))??;
        }
    }
    Ok(())
}

/// Starts every container of a service that is not running.
pub async fn start_service(
    engine: &Engine,
    project: &str,
    service: &str,
    progress: &Progress,
) -> Result<()> {
    for c in service_containers(engine, project, service).await? {
        if c.state == "running" {
            continue;
        }
        progress.event("Container", c.name(), "Starting");
        engine.start(&c.id).await?;
        progress.event("Container", c.name(), "Started");
    }
    Ok(())
}

pub async fn service_containers(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<Vec<ContainerSummary>> {
    let filter = vec![
        format!("{}={project}", labels::PROJECT),
        format!("{}={service}", labels::SERVICE),
        format!("{}=False", labels::ONEOFF),
    ];
    let mut list = engine.containers(&filter, true).await?;
    list.sort_by_key(number_of);
    Ok(list)
}

/// Waits until `service`'s containers meet `condition`.
async fn await_condition(
    engine: &Engine,
    project: &str,
    service: &str,
    condition: &str,
    progress: &Progress,
) -> Result<()> {
    if condition != "service_healthy" && condition != "service_completed_successfully" {
        return Ok(());
    }
    for c in service_containers(engine, project, service).await? {
        progress.event("Container", c.name(), "Waiting");
        loop {
            let info = engine.inspect_container(&c.id).await?;
            let state = &info.state;
            if condition == "service_healthy" {
                match state.health.as_ref().map(|h| h.status.as_str()) {
                    None => {
                        return Err(failed(format!(
                            "container {} has no healthcheck configured",
                            c.name()
                        )));
                    }
                    Some("healthy") => {
                        progress.event("Container", c.name(), "Healthy");
                        break;
                    }
                    Some("unhealthy") => {
                        return Err(failed(format!(
                            "dependency failed to start: container {} is unhealthy",
                            c.name()
                        )));
                    }
                    _ => {}
                }
                if !state.running && state.status == "exited" {
                    return Err(failed(format!(
                        "dependency failed to start: container {} exited ({})",
                        c.name(),
                        state.exit_code
                    )));
                }
            } else if state.status == "exited" || state.status == "dead" {
                if state.exit_code != 0 {
                    return Err(failed(format!(
                        "service {service:?} didn't complete successfully: exit {}",
                        state.exit_code
                    )));
                }
                progress.event("Container", c.name(), "Exited");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// `--wait`: every container running, and healthy when it has a healthcheck.
async fn wait_services(
    engine: &Engine,
    project: &Project,
    selected: &BTreeSet<String>,
    deadline: Option<Instant>,
    progress: &Progress,
) -> Result<()> {
    let mut tasks = JoinSet::new();
    for name in selected {
        for c in service_containers(engine, &project.name, name).await? {
            let (engine, progress) = (engine.clone(), progress.clone());
            // A dependency that is meant to run to completion may exit 0.
            let completes = project.services.values().any(|s| {
                s.depends_on
                    .get(name)
                    .is_some_and(|d| d.condition == "service_completed_successfully")
            });
            tasks.spawn(async move {
                progress.event("Container", c.name(), "Waiting");
                loop {
                    let info = engine.inspect_container(&c.id).await?;
                    let state = &info.state;
                    if state.status == "exited" || state.status == "dead" {
                        if completes && state.exit_code == 0 {
                            progress.event("Container", c.name(), "Exited");
                            return Ok(());
                        }
                        return Err(failed(format!(
                            "container {} exited ({})",
                            c.name(),
                            state.exit_code
                        )));
                    }
                    match state.health.as_ref().map(|h| h.status.as_str()) {
                        Some("healthy") => {
                            progress.event("Container", c.name(), "Healthy");
                            return Ok(());
                        }
                        Some("unhealthy") => {
                            return Err(failed(format!("container {} is unhealthy", c.name())));
                        }
                        None if state.running => {
                            progress.event("Container", c.name(), "Running");
                            return Ok(());
                        }
                        _ => {}
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(failed(format!(
                            "timeout waiting for container {}",
                            c.name()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(|e| failed(e.to_string())).and_then(|r| r) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `docker compose down`.
pub async fn down(
    engine: &Engine,
    project: &Project,
    options: &DownOptions,
    progress: &Progress,
) -> Result<()> {
    let filter = vec![format!("{}={}", labels::PROJECT, project.name)];
    let containers = engine.containers(&filter, true).await?;
    let known = |c: &ContainerSummary| {
        project.services.contains_key(c.label(labels::SERVICE))
            || project
                .disabled_services
                .contains_key(c.label(labels::SERVICE))
    };
    let (mine, orphans): (Vec<ContainerSummary>, Vec<ContainerSummary>) =
        containers.into_iter().partition(|c| known(c));
    let mut to_remove = mine;
    if options.remove_orphans {
        to_remove.extend(orphans);
    } else if !orphans.is_empty() {
        progress.warn(&format!(
            "Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
            orphans.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
        ));
    }
    // Dependents first: reverse dependency levels, each in parallel.
    let all: BTreeSet<String> = project.services.keys().cloned().collect();
    let mut levels = dependency_levels(project, &all);
    levels.reverse();
    let service_rank = |service: &str| {
        levels
            .iter()
            .position(|l| l.iter().any(|s| s == service))
            .unwrap_or(0)
    };
    let mut by_rank: BTreeMap<usize, Vec<ContainerSummary>> = BTreeMap::new();
    for c in to_remove {
        by_rank
            .entry(service_rank(c.label(labels::SERVICE)))
            .or_default()
            .push(c);
    }
    for (_, group) in by_rank {
        let mut tasks = JoinSet::new();
        for c in group {
            let (engine, progress) = (engine.clone(), progress.clone());
            let timeout = options.timeout.or_else(|| {
                project
                    .services
                    .get(c.label(labels::SERVICE))
                    .and_then(|s| s.stop_grace_period)
                    .map(|d| d.0.as_secs() as i64)
            });
            let volumes = options.volumes;
            tasks.spawn(async move {
                progress.event("Container", c.name(), "Stopping");
                engine.stop(&c.id, timeout).await?;
                progress.event("Container", c.name(), "Stopped");
                progress.event("Container", c.name(), "Removing");
                engine.remove_container(&c.id, true, volumes).await?;
                progress.event("Container", c.name(), "Removed");
                Ok::<_, ConvergeError>(())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| failed(e.to_string()))??;
        }
    }
    if options.volumes {
        for (key, v) in &project.volumes {
            if v.external {
                continue;
            }
            let name = labels::volume_name(project, key);
            if engine.volume(&name).await?.is_some() {
                progress.event("Volume", &name, "Removing");
                engine.remove_volume(&name).await?;
                progress.event("Volume", &name, "Removed");
            }
        }
    }
    for (key, n) in &project.networks {
        if n.external {
            continue;
        }
        let name = labels::network_name(project, key);
        if let Some(info) = engine.network(&name).await? {
            if info
                .labels
                .get(labels::PROJECT)
                .is_some_and(|p| p != &project.name)
            {
                continue;
            }
            progress.event("Network", &name, "Removing");
            engine.remove_network(&info.id).await?;
            progress.event("Network", &name, "Removed");
        }
    }
    if let Some(rmi) = &options.rmi {
        let mut images: BTreeSet<String> = BTreeSet::new();
        for s in project.services.values() {
            if rmi == "all" || s.image.is_empty() {
                images.insert(image_reference(project, s));
            }
        }
        for image in images {
            match engine.remove_image(&image).await {
                Ok(()) => progress.event("Image", &image, "Removed"),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
