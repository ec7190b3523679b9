//! The network API: create, remove, prune, connect, disconnect, and the JSON
//! shapes of networks and of a container's network settings.

use super::*;

impl Engine {
    // ------------------------------------------------------------------------------
    // The network API.

    /// `POST /networks/create`.
    pub async fn network_create(
        self: &Arc<Self>,
        body: Value,
    ) -> Result<(String, String), EngineError> {
        let engine = self.clone();
        let (id, warning) =
            tokio::task::spawn_blocking(move || engine.network_create_blocking(&body))
                .await
                .map_err(|e| internal("network create", e))??;
        let n = self.net.find(&id)?;
        self.network_event(&n, "create", &[]);
        Ok((id, warning))
    }

    pub(super) fn network_create_blocking(
        &self,
        body: &Value,
    ) -> Result<(String, String), EngineError> {
        let name = body["Name"].as_str().unwrap_or("").to_string();
        // As Docker: any name but a blank one or a predefined network's.
        if name.trim().is_empty() {
            return Err(EngineError::InvalidParameter(format!(
                "invalid name: {name}"
            )));
        }
        if matches!(name.as_str(), "bridge" | "host" | "none" | "default") {
            return Err(EngineError::Forbidden(format!(
                "operation is not permitted on predefined {name} network "
            )));
        }
        let driver = body["Driver"]
            .as_str()
            .filter(|d| !d.is_empty())
            .unwrap_or("bridge");
        match driver {
            "bridge" => {}
            "host" | "null" => {
                return Err(EngineError::Forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )))
            }
            other => {
                return Err(EngineError::NotFound(format!(
                    "plugin \"{other}\" not found"
                )))
            }
        }
        if body["IPAM"]["Driver"]
            .as_str()
            .is_some_and(|d| !d.is_empty() && d != "default")
        {
            return Err(EngineError::NotFound(format!(
                "plugin \"{}\" not found",
                body["IPAM"]["Driver"].as_str().unwrap_or_default()
            )));
        }
        let options: BTreeMap<String, String> = body["Options"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let labels: BTreeMap<String, String> = body["Labels"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let enable_ipv6 = body["EnableIPv6"].as_bool() == Some(true);
        let internal_net = body["Internal"].as_bool() == Some(true);
        let id = random_id();
        let device = match options.get("com.docker.network.bridge.name") {
            Some(d) if !valid_device_name(d) => {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid bridge name {d:?}"
                )))
            }
            Some(d) => d.clone(),
            None => format!("pbr-{}", &id[..11]),
        };
        let mtu = match options.get("com.docker.network.driver.mtu") {
            Some(m) => Some(m.parse::<u32>().map_err(|_| {
                EngineError::InvalidParameter(format!(
                    "invalid value for com.docker.network.driver.mtu: {m}"
                ))
            })?),
            None => self.net.settings.mtu,
        };
        let masquerade = options
            .get("com.docker.network.bridge.enable_ip_masquerade")
            .is_none_or(|v| v != "false");

        // The whole check, and the record, under the networks' lock: two creates can
        // not take the same name or subnet.
        let mut subnets = Vec::new();
        for cfg in body["IPAM"]["Config"].as_array().into_iter().flatten() {
            subnets.push(parse_subnet_config(cfg)?);
        }
        if enable_ipv6 && !subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
            let subnet = ipam::random_ula_subnet();
            subnets.push(SubnetConfig {
                subnet,
                gateway: ipam::default_gateway(&subnet),
                ip_range: None,
                aux: BTreeMap::new(),
            });
        }
        if !enable_ipv6 && subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
            return Err(EngineError::InvalidParameter(
                "IPv6 subnet given but IPv6 is not enabled (--ipv6)".into(),
            ));
        }
        let host_networks = link::Netlink::open()
            .and_then(|nl| nl.host_networks())
            .map_err(net_err)?;
        let links = link::Netlink::open()
            .and_then(|nl| nl.links())
            .map_err(net_err)?;
        let n = {
            let mut nets = self.net.networks();
            if nets.values().any(|n| n.name == name) {
                return Err(EngineError::Conflict(format!(
                    "network with name {name} already exists"
                )));
            }
            if nets.values().any(|n| n.device == device) || links.iter().any(|l| l.name == device) {
                return Err(EngineError::Forbidden(format!(
                    "bridge name {device} is already in use"
                )));
            }
            let existing: Vec<IpNet> = nets
                .values()
                .flat_map(|n| n.subnets.iter().map(|s| s.subnet))
                .collect();
            for s in &subnets {
                if existing.iter().any(|e| overlaps(e, &s.subnet)) {
                    return Err(ipam_err(ipam::IpamError::Overlap));
                }
            }
            if !subnets.iter().any(|s| s.subnet.addr().is_ipv4()) {
                let mut taken = host_networks.clone();
                taken.extend(existing.iter().copied());
                let subnet =
                    ipam::choose_subnet(&self.net.settings.pools, &taken).map_err(ipam_err)?;
                subnets.insert(
                    0,
                    SubnetConfig {
                        subnet,
                        gateway: ipam::default_gateway(&subnet),
                        ip_range: None,
                        aux: BTreeMap::new(),
                    },
                );
            }
            let n = Network {
                id: id.clone(),
                name: name.clone(),
                driver: "bridge".into(),
                created: pier_image::time::now_rfc3339(),
                internal: internal_net,
                attachable: body["Attachable"].as_bool() == Some(true),
                enable_ipv6,
                subnets,
                ipam_options: body["IPAM"]["Options"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                options,
                labels,
                device,
                mtu,
                masquerade,
                owned_device: true,
            };
            nets.insert(id.clone(), n.clone());
            n
        };
        let made = (|| -> Result<(), EngineError> {
            let nl = link::Netlink::open().map_err(net_err)?;
            self.ensure_device(&nl, &n)?;
            self.firewall_sync(false)?;
            self.store.put_network(&n)
        })();
        if let Err(e) = made {
            self.net.networks().remove(&id);
            if let Ok(nl) = link::Netlink::open() {
                let _ = nl.delete_link(&n.device);
            }
            let _ = self.firewall_sync(false);
            return Err(e);
        }
        Ok((id, String::new()))
    }

    /// Containers with an active endpoint on network `id` (running ones).
    pub(super) fn network_users(&self, id: &str) -> Vec<Container> {
        self.lock()
            .values()
            .filter(|e| e.c.state.running && e.c.networks.values().any(|ep| ep.network_id == id))
            .map(|e| e.c.clone())
            .collect()
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_remove(self: &Arc<Self>, input: &str) -> Result<(), EngineError> {
        let n = self.net.find(input)?;
        if n.predefined() {
            return Err(EngineError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        let users = self.network_users(&n.id);
        if let Some(c) = users.first() {
            return Err(EngineError::Forbidden(format!(
                "error while removing network: network {} has active endpoints (name:\"{}\" id:\"{}\")",
                n.name,
                c.name,
                c.short_id()
            )));
        }
        let engine = self.clone();
        let n2 = n.clone();
        tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
            engine.net.networks().remove(&n2.id);
            engine.store.delete_network(&n2.id)?;
            if let Ok(nl) = link::Netlink::open() {
                let _ = nl.delete_link(&n2.device);
            }
            engine.net.in_use().remove(&n2.id);
            engine.firewall_sync(false)
        })
        .await
        .map_err(|e| internal("network remove", e))??;
        self.network_event(&n, "destroy", &[]);
        Ok(())
    }

    /// `POST /networks/prune`: removes the user networks no container uses; returns
    /// their names.
    pub async fn network_prune(
        self: &Arc<Self>,
        keep: impl Fn(&Network) -> bool,
    ) -> Result<Vec<String>, EngineError> {
        let mut removed = Vec::new();
        let used: HashSet<String> = self
            .lock()
            .values()
            .flat_map(|e| {
                e.c.networks
                    .values()
                    .map(|ep| ep.network_id.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        for n in self.net.list() {
            if n.predefined() || used.contains(&n.id) || keep(&n) {
                continue;
            }
            if self.network_remove(&n.id).await.is_ok() {
                removed.push(n.name.clone());
            }
        }
        Ok(removed)
    }

    /// `POST /networks/{id}/connect`.
    pub async fn network_connect(
        self: &Arc<Self>,
        network: &str,
        container: &str,
        config: &Value,
    ) -> Result<(), EngineError> {
        let n = self.net.find(network)?;
        let c = self.get(container)?;
        let mode = c.host_config["NetworkMode"].as_str().unwrap_or("");
        if mode == HOST || n.name == HOST {
            return Err(EngineError::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if mode == NONE || mode.starts_with("container:") || n.name == NONE {
            return Err(EngineError::Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        if c.networks.contains_key(&n.name) {
            return Err(EngineError::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name, n.name
            )));
        }
        let mut ep = self.endpoint_from_config(&n, config)?;
        if c.state.running {
            let engine = self.clone();
            let c2 = c.clone();
            let n2 = n.clone();
            ep = tokio::task::spawn_blocking(move || -> Result<Endpoint, EngineError> {
                let nl = link::Netlink::open().map_err(net_err)?;
                let index = (0..)
                    .find(|i| !c2.networks.values().any(|e| e.ifname == format!("eth{i}")))
                    .unwrap_or(0);
                let path = PathBuf::from(&c2.sandbox_key);
                let mut ep = ep;
                if let Err(e) = engine.attach_endpoint(&nl, &c2, &n2, &mut ep, &path, index, false)
                {
                    engine.undo_endpoints(&c2.id, &BTreeMap::from([(n2.name.clone(), ep)]));
                    return Err(e);
                }
                let needs_dns = n2.user_defined()
                    && !c2.networks.values().any(|e| {
                        engine
                            .net
                            .find(&e.network_id)
                            .is_ok_and(|n| n.user_defined())
                    });
                if needs_dns {
                    let mut live = engine.net.live().remove(&c2.id).unwrap_or_default();
                    let started = engine.start_dns(&c2, &path, &mut live);
                    engine.net.live().insert(c2.id.clone(), live);
                    if let Err(e) = started {
                        eprintln!("pierd: container {}: embedded DNS: {e}", c2.short_id());
                    }
                }
                Ok(ep)
            })
            .await
            .map_err(|e| internal("network connect", e))??;
        }
        let name = n.name.clone();
        let added = self.update(&c.id, |c| {
            c.networks.insert(name, ep.clone());
        });
        if let Err(e) = added {
            self.undo_endpoints(&c.id, &BTreeMap::from([(n.name.clone(), ep)]));
            return Err(e);
        }
        self.refresh_etc_files(&c.id);
        self.network_event(&n, "connect", &[("container", c.id.clone())]);
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(
        self: &Arc<Self>,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<(), EngineError> {
        let n = self.net.find(network)?;
        let c = match self.get(container) {
            Ok(c) => c,
            Err(e) if force => {
                let _ = e;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if n.name == HOST || c.host_config["NetworkMode"].as_str() == Some(HOST) {
            return Err(EngineError::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let Some((key, ep)) = c
            .networks
            .iter()
            .find(|(_, ep)| ep.network_id == n.id)
            .map(|(k, v)| (k.clone(), v.clone()))
        else {
            return Err(EngineError::Forbidden(format!(
                "container {} is not connected to network {}",
                c.id, n.name
            )));
        };
        if c.state.running {
            let engine = self.clone();
            let id = c.id.clone();
            let ep2 = ep.clone();
            let key2 = key.clone();
            tokio::task::spawn_blocking(move || {
                engine.undo_endpoints(&id, &BTreeMap::from([(key2, ep2)]));
            })
            .await
            .map_err(|e| internal("network disconnect", e))?;
        }
        self.update(&c.id, |c| {
            c.networks.remove(&key);
        })?;
        if !c.published.is_empty() {
            let engine = self.clone();
            tokio::task::spawn_blocking(move || engine.firewall_sync(false))
                .await
                .map_err(|e| internal("network disconnect", e))??;
        }
        self.refresh_etc_files(&c.id);
        self.network_event(&n, "disconnect", &[("container", c.id.clone())]);
        Ok(())
    }

    pub(super) fn network_event(&self, n: &Network, action: &str, extra: &[(&str, String)]) {
        let mut event = events::Event::new("network", action, n.id.clone())
            .with("name", n.name.clone())
            .with("type", n.driver.clone());
        for (k, v) in extra {
            event = event.with(k, v.clone());
        }
        self.bus.publish(event);
    }

    // ------------------------------------------------------------------------------
    // JSON.

    /// A network in the API's shape; with `containers`, its active endpoints.
    pub fn network_json(&self, n: &Network, containers: bool) -> Value {
        let config: Vec<Value> = n
            .subnets
            .iter()
            .map(|s| {
                let mut v = json!({
                    "Subnet": s.subnet.to_string(),
                    "Gateway": s.gateway.to_string(),
                });
                if let Some(r) = s.ip_range {
                    v["IPRange"] = json!(r.to_string());
                }
                if !s.aux.is_empty() {
                    v["AuxiliaryAddresses"] = json!(s
                        .aux
                        .iter()
                        .map(|(k, a)| (k.clone(), json!(a.to_string())))
                        .collect::<serde_json::Map<_, _>>());
                }
                v
            })
            .collect();
        let mut v = json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv4": n.driver == "bridge",
            "EnableIPv6": n.enable_ipv6,
            "IPAM": {
                "Driver": "default",
                "Options": if n.ipam_options.is_empty() { Value::Null } else { json!(n.ipam_options) },
                "Config": config,
            },
            "Internal": n.internal,
            "Attachable": n.attachable,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Options": n.options,
            "Labels": n.labels,
        });
        if containers {
            let mut map = serde_json::Map::new();
            for c in self.network_users(&n.id) {
                if let Some(ep) = c.networks.values().find(|ep| ep.network_id == n.id) {
                    map.insert(
                        c.id.clone(),
                        json!({
                            "Name": c.name,
                            "EndpointID": ep.endpoint_id,
                            "MacAddress": ep.mac,
                            "IPv4Address": ep.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                            "IPv6Address": ep.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                        }),
                    );
                }
            }
            v["Containers"] = Value::Object(map);
        }
        v
    }

    /// A container's `NetworkSettings`.
    pub fn network_settings_json(&self, c: &Container) -> Value {
        let mut networks = serde_json::Map::new();
        for (name, ep) in &c.networks {
            let running = c.state.running && !ep.endpoint_id.is_empty();
            let ipam = if ep.ipv4_requested.is_some()
                || ep.ipv6_requested.is_some()
                || !ep.link_local_requested.is_empty()
            {
                let mut ipam = json!({
                    "IPv4Address": ep.ipv4_requested.map(|a| a.to_string()).unwrap_or_default(),
                    "IPv6Address": ep.ipv6_requested.map(|a| a.to_string()).unwrap_or_default(),
                });
                // Docker leaves an empty list out.
                if !ep.link_local_requested.is_empty() {
                    ipam["LinkLocalIPs"] = json!(ep.link_local_requested);
                }
                ipam
            } else {
                Value::Null
            };
            let user_defined = self
                .net
                .find(&ep.network_id)
                .is_ok_and(|n| n.user_defined());
            let dns_names = if user_defined {
                let mut names = vec![c.name.clone()];
                names.extend(ep.aliases.iter().cloned());
                names.push(c.short_id().to_string());
                if c.hostname != c.short_id() {
                    names.push(c.hostname.clone());
                }
                json!(names)
            } else {
                Value::Null
            };
            networks.insert(
                name.clone(),
                json!({
                    "IPAMConfig": ipam,
                    "Links": if ep.links.is_empty() { Value::Null } else { json!(ep.links) },
                    "Aliases": if ep.aliases.is_empty() { Value::Null } else { json!(ep.aliases) },
                    "MacAddress": if running { ep.mac.clone() } else { ep.mac_requested.clone() },
                    "DriverOpts": if ep.driver_opts.is_empty() { Value::Null } else { json!(ep.driver_opts) },
                    "GwPriority": 0,
                    "NetworkID": ep.network_id,
                    "EndpointID": ep.endpoint_id,
                    "Gateway": ep.gateway4.map(|a| a.to_string()).unwrap_or_default(),
                    "IPAddress": ep.ipv4.map(|a| a.addr().to_string()).unwrap_or_default(),
                    "IPPrefixLen": ep.ipv4.map_or(0, |a| a.prefix_len()),
                    "IPv6Gateway": ep.gateway6.map(|a| a.to_string()).unwrap_or_default(),
                    "GlobalIPv6Address": ep.ipv6.map(|a| a.addr().to_string()).unwrap_or_default(),
                    "GlobalIPv6PrefixLen": ep.ipv6.map_or(0, |a| a.prefix_len()),
                    "DNSNames": dns_names,
                }),
            );
        }
        let mode = c.host_config["NetworkMode"].as_str().unwrap_or("");
        if networks.is_empty() && (mode == HOST || mode == NONE) {
            if let Ok(n) = self.net.find(mode) {
                networks.insert(
                    n.name.clone(),
                    json!({
                        "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                        "DriverOpts": null, "GwPriority": 0, "NetworkID": n.id,
                        "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                        "DNSNames": null,
                    }),
                );
            }
        }
        json!({
            "SandboxID": if c.sandbox_key.is_empty() { String::new() } else { c.id.clone() },
            "SandboxKey": c.sandbox_key,
            "Ports": self.ports_json(c),
            "Networks": networks,
        })
    }

    /// `NetworkSettings` for an API version: before 1.52 with the deprecated
    /// top-level fields (the default `bridge` network's endpoint, as dockerd fills
    /// them; `{{.NetworkSettings.IPAddress}}` templates read them), before 1.44 also
    /// those that version dropped.
    pub fn network_settings_versioned(
        &self,
        c: &Container,
        version: crate::api::ApiVersion,
    ) -> Value {
        let mut v = self.network_settings_json(c);
        if version >= crate::api::ApiVersion(1, 52) {
            return v;
        }
        let ep = c
            .networks
            .get(BRIDGE)
            .filter(|ep| !ep.endpoint_id.is_empty());
        let text = |f: &dyn Fn(&Endpoint) -> Option<String>| ep.and_then(f).unwrap_or_default();
        let legacy = json!({
            "EndpointID": text(&|ep| Some(ep.endpoint_id.clone())),
            "Gateway": text(&|ep| ep.gateway4.map(|a| a.to_string())),
            "GlobalIPv6Address": text(&|ep| ep.ipv6.map(|a| a.addr().to_string())),
            "GlobalIPv6PrefixLen": ep.and_then(|ep| ep.ipv6).map_or(0, |a| a.prefix_len()),
            "IPAddress": text(&|ep| ep.ipv4.map(|a| a.addr().to_string())),
            "IPPrefixLen": ep.and_then(|ep| ep.ipv4).map_or(0, |a| a.prefix_len()),
            "IPv6Gateway": text(&|ep| ep.gateway6.map(|a| a.to_string())),
            "MacAddress": text(&|ep| Some(ep.mac.clone())),
        });
        let older = json!({
            "Bridge": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
        });
        let mut extra = vec![legacy];
        if version < crate::api::ApiVersion(1, 44) {
            extra.push(older);
        }
        if let Some(map) = v.as_object_mut() {
            for e in extra {
                if let Value::Object(fields) = e {
                    map.extend(fields);
                }
            }
        }
        v
    }

    /// `NetworkSettings.Ports`: every exposed port, with its host bindings while it
    /// runs (`null` for exposed ports that are not published).
    pub fn ports_json(&self, c: &Container) -> Value {
        let mut map = serde_json::Map::new();
        if !c.state.running {
            return Value::Object(map);
        }
        for key in c.config["ExposedPorts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            map.insert(key.clone(), Value::Null);
        }
        for p in &c.published {
            let key = format!("{}/{}", p.container_port, p.protocol);
            let entry = map.entry(key).or_insert_with(|| json!([]));
            if entry.is_null() {
                *entry = json!([]);
            }
            let host_ips: Vec<String> = match p.host_ip {
                Some(ip) => vec![ip.to_string()],
                None => vec!["0.0.0.0".into()],
            };
            if let Some(list) = entry.as_array_mut() {
                for ip in host_ips {
                    list.push(json!({"HostIp": ip, "HostPort": p.host_port.to_string()}));
                }
            }
        }
        Value::Object(map)
    }

    /// The list API's `Ports`.
    pub fn ports_list_json(&self, c: &Container) -> Value {
        let mut out = Vec::new();
        let mut published: HashSet<(u16, String)> = HashSet::new();
        if c.state.running {
            for p in &c.published {
                published.insert((p.container_port, p.protocol.clone()));
                out.push(json!({
                    "IP": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
                    "PrivatePort": p.container_port,
                    "PublicPort": p.host_port,
                    "Type": p.protocol,
                }));
            }
        }
        for key in c.config["ExposedPorts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if let Ok((port, proto)) = port_key(key) {
                if !published.contains(&(port, proto.clone())) {
                    out.push(json!({"PrivatePort": port, "Type": proto}));
                }
            }
        }
        Value::Array(out)
    }
}

/// One `IPAM.Config` entry of a network create, checked as Docker does.
pub(super) fn parse_subnet_config(cfg: &Value) -> Result<SubnetConfig, EngineError> {
    let text = |k: &str| cfg[k].as_str().filter(|s| !s.is_empty());
    let Some(subnet_text) = text("Subnet") else {
        return Err(EngineError::InvalidParameter(
            "invalid pool request: subnet is required when giving a gateway, ip-range or aux-address".into(),
        ));
    };
    let subnet: IpNet = subnet_text.parse().map_err(|_| {
        EngineError::InvalidParameter(format!("invalid CIDR address: {subnet_text}"))
    })?;
    if subnet.trunc() != subnet {
        return Err(EngineError::InvalidParameter(format!(
            "invalid subnet {subnet_text}: it should be {}",
            subnet.trunc()
        )));
    }
    let ip_range = match text("IPRange") {
        Some(r) => {
            let range: IpNet = r
                .parse()
                .map_err(|_| EngineError::InvalidParameter(format!("invalid CIDR address: {r}")))?;
            if !subnet.contains(&range) {
                return Err(EngineError::InvalidParameter(format!(
                    "no matching subnet for range {r}"
                )));
            }
            Some(range.trunc())
        }
        None => None,
    };
    let gateway = match text("Gateway") {
        Some(g) => {
            let ip: IpAddr = g.parse().map_err(|_| {
                EngineError::InvalidParameter(format!("invalid gateway address: {g}"))
            })?;
            if !subnet.contains(&ip) {
                return Err(EngineError::InvalidParameter(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
            ip
        }
        None => ipam::default_gateway(&subnet),
    };
    let mut aux = BTreeMap::new();
    for (k, v) in cfg["AuxiliaryAddresses"].as_object().into_iter().flatten() {
        let s = v.as_str().unwrap_or_default();
        let ip: IpAddr = s.parse().map_err(|_| {
            EngineError::InvalidParameter(format!("invalid auxiliary address {k}: {s}"))
        })?;
        if !subnet.contains(&ip) {
            return Err(EngineError::InvalidParameter(format!(
                "no matching subnet for aux-address {ip}"
            )));
        }
        aux.insert(k.clone(), ip);
    }
    Ok(SubnetConfig {
        subnet,
        gateway,
        ip_range,
        aux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_configs_are_checked_like_docker() {
        let ok = parse_subnet_config(
            &json!({"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.254", "IPRange": "10.1.0.128/25"}),
        )
        .unwrap();
        assert_eq!(ok.gateway, "10.1.0.254".parse::<IpAddr>().unwrap());
        let e = parse_subnet_config(&json!({"Subnet": "10.1.0.5/24"})).unwrap_err();
        assert!(e.to_string().contains("it should be 10.1.0.0/24"), "{e}");
        let e = parse_subnet_config(&json!({"Subnet": "10.1.0.0/24", "Gateway": "10.2.0.1"}))
            .unwrap_err();
        assert_eq!(e.to_string(), "no matching subnet for gateway 10.2.0.1");
        let e = parse_subnet_config(&json!({"Subnet": "10.1.0.0/24", "IPRange": "10.2.0.0/25"}))
            .unwrap_err();
        assert_eq!(e.to_string(), "no matching subnet for range 10.2.0.0/25");
    }
}
