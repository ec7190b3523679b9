//! A service's container create request, as docker compose v2 builds it: every
//! container key of the Compose model goes to its Engine API field; a key pier
//! compose cannot map is refused by name ([`Unsupported`]), never dropped.

use std::collections::BTreeMap;

use pier_api::container::{
    ContainerConfig, ContainerCreateRequest, DeviceMapping, DeviceRequest, HealthConfig,
    HostConfig, LogConfig, PortBinding, PortMap, Resources, RestartPolicy, ThrottleDevice, Ulimit,
    WeightDevice,
};
use pier_api::mount::{BindOptions, Mount, MountType, TmpfsOptions, VolumeOptions};
use pier_api::network::{EndpointIpamConfig, EndpointSettings, NetworkingConfig};
use serde_json::Value;

use super::labels;
use crate::model::{Duration, FileMount, Project, Service, ServiceVolume};

/// A service key pier compose does not turn into a container (yet).
#[derive(Debug, Clone, thiserror::Error)]
#[error("service {service:?}: {key} is not supported by pier compose: {why}")]
pub struct Unsupported {
    pub service: String,
    pub key: String,
    pub why: String,
}

/// What one container of a service is made from.
pub struct ContainerSpec<'a> {
    pub project: &'a Project,
    pub service: &'a Service,
    pub number: u32,
    /// The container's name.
    pub name: String,
    /// The image's ID (for the `image` label).
    pub image_id: String,
    /// A `run` container (no network aliases, the oneoff label).
    pub oneoff: bool,
}

fn nanos(d: &Option<Duration>) -> Option<i64> {
    d.map(|d| d.0.as_nanos() as i64)
}

fn some_vec<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn some_str(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn some_map(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then(|| m.clone())
}

fn positive(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

/// The networks a service joins, the primary one (highest priority, then name) first.
pub fn service_networks(service: &Service) -> Vec<String> {
    let mut nets: Vec<(i64, &String)> = service
        .networks
        .iter()
        .map(|(k, v)| (v.as_ref().map(|n| n.priority).unwrap_or(0), k))
        .collect();
    nets.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    nets.into_iter().map(|(_, k)| k.clone()).collect()
}

/// `service:x`'s container (its first), for `network_mode`, `ipc`, `pid` and `volumes_from`.
fn service_container(project: &Project, name: &str) -> String {
    match project.services.get(name) {
        Some(s) => labels::container_name(&project.name, s, 1),
        None => format!("{}-{name}-1", project.name),
    }
}

fn resolve_mode(project: &Project, mode: &str) -> String {
    match mode.strip_prefix("service:") {
        Some(svc) => format!("container:{}", service_container(project, svc)),
        None => mode.to_string(),
    }
}

/// The create request for one container of a service.
pub fn create_request(spec: &ContainerSpec<'_>) -> Result<ContainerCreateRequest, Unsupported> {
    let s = spec.service;
    let project = spec.project;
    let refuse = |key: &str, why: &str| Unsupported {
        service: s.name.clone(),
        key: key.to_string(),
        why: why.to_string(),
    };
    if s.credential_spec.is_some() {
        return Err(refuse(
            "credential_spec",
            "it is a Windows container option",
        ));
    }
    if !s.post_start.is_empty() || !s.pre_stop.is_empty() {
        return Err(refuse(
            "post_start/pre_stop",
            "lifecycle hooks are not run yet",
        ));
    }
    if !s.platform.is_empty() {
        return Err(refuse(
            "platform",
            "containers run on the engine's own platform",
        ));
    }

    let mut config = ContainerConfig {
        hostname: some_str(&s.hostname),
        domainname: some_str(&s.domainname),
        user: some_str(&s.user),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(s.tty),
        open_stdin: Some(s.stdin_open),
        stdin_once: Some(false),
        cmd: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        image: Some(image_reference(project, s)),
        working_dir: some_str(&s.working_dir),
        stop_signal: some_str(&s.stop_signal),
        stop_timeout: s.stop_grace_period.map(|d| d.0.as_secs() as i64),
        labels: Some(labels::container_labels(
            project,
            s,
            spec.number,
            &spec.image_id,
            spec.oneoff,
        )),
        ..ContainerConfig::default()
    };
    let env: Vec<String> = s
        .environment
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    config.env = some_vec(&env);
    if let Some(h) = &s.healthcheck {
        config.healthcheck = Some(if h.disable {
            HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..HealthConfig::default()
            }
        } else {
            HealthConfig {
                test: some_vec(&h.test),
                interval: nanos(&h.interval),
                timeout: nanos(&h.timeout),
                retries: h.retries.map(|r| r as i64),
                start_period: nanos(&h.start_period),
                start_interval: nanos(&h.start_interval),
                ..HealthConfig::default()
            }
        });
    }

    // Ports: exposed (from `ports` and `expose`) and published.
    let mut exposed: BTreeMap<String, Option<pier_api::container::Extra>> = BTreeMap::new();
    let mut bindings: PortMap = BTreeMap::new();
    for p in &s.ports {
        if p.mode == "host" && !p.published.is_empty() {
            // compose publishes host-mode ports like ingress ones on a single engine.
        }
        let proto = if p.protocol.is_empty() {
            "tcp"
        } else {
            &p.protocol
        };
        let key = format!("{}/{proto}", p.target);
        exposed.insert(key.clone(), Some(Default::default()));
        bindings
            .entry(key)
            .or_insert(Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.published.clone()),
                ..PortBinding::default()
            });
    }
    for e in &s.expose {
        // compose hands `expose` entries to the engine as written (`7000`, not `7000/tcp`).
        exposed.insert(e.clone(), Some(Default::default()));
    }
    if !exposed.is_empty() {
        config.exposed_ports = Some(exposed);
    }
    config.legacy.mac_address = None;

    // Mounts.
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for v in &s.volumes {
        volume_mount(project, s, v, &mut binds, &mut mounts)
            .map_err(|why| refuse("volumes", &why))?;
    }
    for (secret, kind) in s
        .secrets
        .iter()
        .map(|m| (m, "secrets"))
        .chain(s.configs.iter().map(|m| (m, "configs")))
    {
        mounts.push(file_mount(project, secret, kind).map_err(|why| refuse(kind, &why))?);
    }
    let mut tmpfs = BTreeMap::new();
    for t in &s.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(path.to_string(), opts.to_string());
    }

    let limits = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.limits.clone())
        .unwrap_or_default();
    let reservations = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.reservations.clone())
        .unwrap_or_default();
    if !limits.devices.is_empty()
        || !limits.generic_resources.is_empty()
        || !reservations.generic_resources.is_empty()
    {
        return Err(refuse(
            "deploy.resources",
            "devices as limits and generic_resources are Swarm's",
        ));
    }
    let memory = if limits.memory.0 != 0 {
        limits.memory.0
    } else {
        s.mem_limit.0
    };
    let cpus = if limits.cpus != 0.0 {
        limits.cpus
    } else {
        s.cpus
    };
    let pids = if limits.pids != 0 {
        limits.pids
    } else {
        s.pids_limit
    };
    let mem_reservation = if reservations.memory.0 != 0 {
        reservations.memory.0
    } else {
        s.mem_reservation.0
    };
    let device_requests: Vec<DeviceRequest> = reservations
        .devices
        .iter()
        .map(|d| DeviceRequest {
            driver: some_str(&d.driver),
            count: d.count.as_ref().map(|c| match c {
                Value::String(s) if s == "all" => -1,
                Value::Number(n) => n.as_i64().unwrap_or(0),
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            }),
            device_ids: some_vec(&d.device_ids),
            capabilities: (!d.capabilities.is_empty()).then(|| vec![d.capabilities.clone()]),
            options: some_map(&d.options),
            ..DeviceRequest::default()
        })
        .collect();
    let blkio = s.blkio_config.clone().unwrap_or_default();
    let throttle = |list: &[crate::model::ThrottleDevice]| {
        some_vec(
            &list
                .iter()
                .map(|t| ThrottleDevice {
                    path: Some(t.path.clone()),
                    rate: Some(t.rate.0 as u64),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        )
    };
    let resources = Resources {
        cpu_shares: positive(s.cpu_shares),
        memory: positive(memory),
        nano_cpus: positive((cpus as f64 * 1e9).round() as i64),
        cgroup_parent: some_str(&s.cgroup_parent),
        blkio_weight: (blkio.weight != 0).then_some(blkio.weight as u16),
        blkio_weight_device: some_vec(
            &blkio
                .weight_device
                .iter()
                .map(|w| WeightDevice {
                    path: Some(w.path.clone()),
                    weight: Some(w.weight as u16),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        ),
        blkio_device_read_bps: throttle(&blkio.device_read_bps),
        blkio_device_write_bps: throttle(&blkio.device_write_bps),
        blkio_device_read_iops: throttle(&blkio.device_read_iops),
        blkio_device_write_iops: throttle(&blkio.device_write_iops),
        cpu_period: positive(s.cpu_period),
        cpu_quota: positive(s.cpu_quota),
        cpu_realtime_period: positive(s.cpu_rt_period),
        cpu_realtime_runtime: positive(s.cpu_rt_runtime),
        cpuset_cpus: some_str(&s.cpuset),
        devices: some_vec(
            &s.devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.source.clone()),
                    path_in_container: Some(if d.target.is_empty() {
                        d.source.clone()
                    } else {
                        d.target.clone()
                    }),
                    cgroup_permissions: Some(if d.permissions.is_empty() {
                        "rwm".into()
                    } else {
                        d.permissions.clone()
                    }),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        ),
        device_cgroup_rules: some_vec(&s.device_cgroup_rules),
        device_requests: some_vec(&device_requests),
        memory_reservation: positive(mem_reservation),
        memory_swap: positive(s.memswap_limit.0),
        memory_swappiness: (s.mem_swappiness.0 != 0).then_some(s.mem_swappiness.0),
        oom_kill_disable: s.oom_kill_disable.then_some(true),
        init: s.init,
        pids_limit: positive(pids),
        ulimits: some_vec(
            &s.ulimits
                .iter()
                .map(|(name, u)| Ulimit {
                    name: Some(name.clone()),
                    soft: Some(u.single.unwrap_or(u.soft)),
                    hard: Some(u.single.unwrap_or(u.hard)),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        ),
        cpu_count: positive(s.cpu_count),
        cpu_percent: positive(s.cpu_percent as i64),
        ..Resources::default()
    };

    let restart = restart_policy(s);
    let extra_hosts: Vec<String> = s
        .extra_hosts
        .iter()
        .map(|h| h.replacen('=', ":", 1))
        .collect();
    let mut links: Vec<String> = Vec::new();
    for l in &s.links {
        let (svc, alias) = l.split_once(':').unwrap_or((l, l));
        let target = service_container(project, svc);
        links.push(format!("{target}:{alias}"));
    }
    links.extend(s.external_links.iter().map(|l| {
        if l.contains(':') {
            l.clone()
        } else {
            format!("{l}:{l}")
        }
    }));
    let volumes_from: Vec<String> = s
        .volumes_from
        .iter()
        .map(|v| match v.strip_prefix("container:") {
            Some(c) => c.to_string(),
            None => {
                let (svc, mode) = v
                    .split_once(':')
                    .map(|(a, b)| (a, Some(b)))
                    .unwrap_or((v, None));
                let c = service_container(project, svc);
                match mode {
                    Some(m) => format!("{c}:{m}"),
                    None => c,
                }
            }
        })
        .collect();

    let networks = service_networks(s);
    let network_mode = if !s.network_mode.is_empty() {
        resolve_mode(project, &s.network_mode)
    } else {
        networks
            .first()
            .map(|n| labels::network_name(project, n))
            .unwrap_or_else(|| "none".into())
    };
    let mut endpoints = BTreeMap::new();
    if s.network_mode.is_empty() {
        for (i, key) in networks.iter().enumerate() {
            let opts = s.networks.get(key).cloned().flatten().unwrap_or_default();
            let mut aliases = Vec::new();
            // A one-off container is known by its own name only.
            aliases.push(spec.name.clone());
            if !spec.oneoff {
                aliases.push(s.name.clone());
            }
            aliases.extend(opts.aliases.iter().cloned());
            let ipam = (!opts.ipv4_address.is_empty()
                || !opts.ipv6_address.is_empty()
                || !opts.link_local_ips.is_empty())
            .then(|| EndpointIpamConfig {
                ipv4_address: some_str(&opts.ipv4_address),
                ipv6_address: some_str(&opts.ipv6_address),
                link_local_ips: some_vec(&opts.link_local_ips),
                ..Default::default()
            });
            let mac = if !opts.mac_address.is_empty() {
                some_str(&opts.mac_address)
            } else if i == 0 {
                some_str(&s.mac_address)
            } else {
                None
            };
            endpoints.insert(
                labels::network_name(project, key),
                EndpointSettings {
                    ipam_config: ipam,
                    aliases: some_vec(&aliases),
                    mac_address: mac,
                    driver_opts: some_map(&opts.driver_opts),
                    gw_priority: positive(opts.priority),
                    ..EndpointSettings::default()
                },
            );
        }
    }

    let host_config = HostConfig {
        binds: some_vec(&binds),
        // compose sends the zero values of the log config, IPC mode and shm size
        // (the engine then stores them as given rather than its defaults).
        log_config: Some(LogConfig {
            r#type: Some(
                s.logging
                    .as_ref()
                    .map(|l| l.driver.clone())
                    .unwrap_or_default(),
            ),
            config: s.logging.as_ref().and_then(|l| some_map(&l.options)),
            // No options is an explicit `null`, as compose sends it.
            extra: match s.logging.as_ref().is_some_and(|l| !l.options.is_empty()) {
                true => Default::default(),
                false => [("Config".to_string(), Value::Null)].into_iter().collect(),
            },
        }),
        network_mode: Some(network_mode),
        port_bindings: Some(bindings),
        restart_policy: Some(restart),
        volume_driver: some_str(&s.volume_driver),
        volumes_from: some_vec(&volumes_from),
        mounts: some_vec(&mounts),
        annotations: some_map(&s.annotations),
        cap_add: some_vec(&s.cap_add),
        cap_drop: some_vec(&s.cap_drop),
        dns: some_vec(&s.dns),
        dns_options: some_vec(&s.dns_opt),
        dns_search: some_vec(&s.dns_search),
        extra_hosts: Some(extra_hosts),
        group_add: some_vec(&s.group_add),
        ipc_mode: Some(resolve_mode(project, &s.ipc)),
        cgroup: some_str(&s.cgroup),
        links: some_vec(&links),
        oom_score_adj: positive(s.oom_score_adj),
        pid_mode: some_str(&resolve_mode(project, &s.pid)),
        privileged: Some(s.privileged),
        readonly_rootfs: Some(s.read_only),
        security_opt: some_vec(&s.security_opt),
        storage_opt: some_map(&s.storage_opt),
        tmpfs: some_map(&tmpfs),
        uts_mode: some_str(&s.uts),
        userns_mode: some_str(&s.userns_mode),
        shm_size: Some(s.shm_size.0),
        sysctls: some_map(&s.sysctls),
        runtime: some_str(&s.runtime),
        isolation: some_str(&s.isolation),
        resources,
        ..HostConfig::default()
    };
    Ok(ContainerCreateRequest {
        config,
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
            ..NetworkingConfig::default()
        }),
    })
}

/// The image a service runs: its `image`, else the name compose gives a built one.
pub fn image_reference(project: &Project, s: &Service) -> String {
    if s.image.is_empty() {
        format!("{}-{}", project.name, s.name)
    } else {
        s.image.clone()
    }
}

/// `restart:` (or `deploy.restart_policy`) as the engine's restart policy.
fn restart_policy(s: &Service) -> RestartPolicy {
    let (name, count) = if !s.restart.is_empty() {
        match s.restart.split_once(':') {
            Some((n, c)) => (n.to_string(), c.parse().unwrap_or(0)),
            None => (s.restart.clone(), 0),
        }
    } else if let Some(p) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let name = match p.condition.as_str() {
            "none" => "no",
            "on-failure" => "on-failure",
            _ => "always",
        };
        (name.to_string(), p.max_attempts.unwrap_or(0) as i64)
    } else {
        (String::new(), 0)
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: Some(count),
        ..RestartPolicy::default()
    }
}

/// One `volumes:` entry: a bind made with the short syntax goes to `Binds` (the
/// engine creates a missing host path, as compose asks), everything else to `Mounts`.
fn volume_mount(
    project: &Project,
    s: &Service,
    v: &ServiceVolume,
    binds: &mut Vec<String>,
    mounts: &mut Vec<Mount>,
) -> Result<(), String> {
    match v.kind.as_str() {
        "bind" => {
            let opts = v.bind.clone().unwrap_or_default();
            if opts.create_host_path {
                let mut flags = Vec::new();
                if v.read_only {
                    flags.push("ro".to_string());
                }
                if !opts.selinux.is_empty() {
                    flags.push(opts.selinux.clone());
                }
                if !opts.propagation.is_empty() {
                    flags.push(opts.propagation.clone());
                }
                let mut bind = format!("{}:{}", v.source, v.target);
                if !flags.is_empty() {
                    bind = format!("{bind}:{}", flags.join(","));
                }
                binds.push(bind);
            } else {
                mounts.push(Mount {
                    r#type: MountType::Bind,
                    source: v.source.clone(),
                    target: v.target.clone(),
                    read_only: v.read_only,
                    bind_options: (!opts.propagation.is_empty()).then(|| BindOptions {
                        propagation: opts.propagation.clone(),
                        ..BindOptions::default()
                    }),
                    ..Mount::default()
                });
            }
        }
        "volume" => {
            let opts = v.volume.clone().unwrap_or_default();
            let source: String = if v.source.is_empty() {
                String::new()
            } else if project.volumes.contains_key(&v.source) {
                labels::volume_name(project, &v.source)
            } else {
                v.source.clone()
            };
            let _ = s;
            let with_options = !source.is_empty() || opts.nocopy || !opts.subpath.is_empty();
            mounts.push(Mount {
                r#type: MountType::Volume,
                source,
                target: v.target.clone(),
                read_only: v.read_only,
                // compose gives named volumes options (empty ones too), anonymous ones none.
                volume_options: with_options.then(|| VolumeOptions {
                    no_copy: opts.nocopy,
                    subpath: opts.subpath.clone(),
                    ..VolumeOptions::default()
                }),
                ..Mount::default()
            });
        }
        "tmpfs" => {
            let opts = v.tmpfs.clone().unwrap_or_default();
            mounts.push(Mount {
                r#type: MountType::Tmpfs,
                target: v.target.clone(),
                read_only: v.read_only,
                tmpfs_options: (opts.size.0 != 0 || opts.mode != 0).then(|| TmpfsOptions {
                    size_bytes: opts.size.0,
                    mode: opts.mode,
                    ..TmpfsOptions::default()
                }),
                ..Mount::default()
            });
        }
        other => {
            return Err(format!(
                "mount type {other:?} (only bind, volume and tmpfs on Linux)"
            ))
        }
    }
    Ok(())
}

/// A file secret (at `/run/secrets/<target>`) or config (at `/<target>`) bound
/// read-only, as compose v2 places them on a single engine.
fn file_mount(project: &Project, m: &FileMount, kind: &str) -> Result<Mount, String> {
    let objects = if kind == "secrets" {
        &project.secrets
    } else {
        &project.configs
    };
    let Some(object) = objects.get(&m.source) else {
        return Err(format!("{} is not defined", m.source));
    };
    if object.external {
        return Err(format!("{} is external (a Swarm object)", m.source));
    }
    if object.file.is_empty() {
        return Err(format!(
            "{} comes from `environment` or `content`: only file-based {kind} are placed yet",
            m.source
        ));
    }
    let target = if m.target.is_empty() {
        m.source.clone()
    } else {
        m.target.clone()
    };
    let target = if kind == "secrets" && !target.starts_with('/') {
        format!("/run/secrets/{target}")
    } else if !target.starts_with('/') {
        format!("/{target}")
    } else {
        target
    };
    Ok(Mount {
        r#type: MountType::Bind,
        source: object.file.clone(),
        target,
        read_only: true,
        ..Mount::default()
    })
}
