//! A container's endpoints: checked at create, made at start, undone at exit; its
//! published ports and its DNS server.

use super::resolve::ContainerResolver;
use super::*;

/// The one place a userland proxy is needed: IPv6 loopback (`[::1]:port`). The
/// kernel never routes a `::1` source out of the host (IPv6 has no `route_localnet`),
/// so DNAT cannot serve it; everything else is DNAT.
pub(super) fn loopback6_proxy(
    socket: std::net::TcpListener,
    target: SocketAddr,
) -> std::io::Result<tokio::task::AbortHandle> {
    socket.set_nonblocking(true)?;
    let handle = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let _guard = handle.enter();
    let listener = tokio::net::TcpListener::from_std(socket)?;
    let task = handle.spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                // Out of descriptors or the like: not a busy loop.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(task.abort_handle())
}

/// Starts the IPv6 loopback proxies of a container's published TCP ports: for ports
/// published on every address a listener on `[::1]` (best effort: it may be taken),
/// for ports published on `[::1]` itself the reservation becomes the listener.
pub(super) fn start_loopback6_proxies(
    published: &[Published],
    target: Option<IpAddr>,
    live: &mut Live,
) {
    let Some(ip) = target else {
        return;
    };
    let loopback = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    for p in published.iter().filter(|p| p.protocol == "tcp") {
        let socket = match p.host_ip {
            None => std::net::TcpListener::bind((loopback, p.host_port)).ok(),
            Some(addr) if addr == loopback => live
                .reservations
                .iter()
                .position(|r| r.host_ip == Some(loopback) && r.port == p.host_port)
                .and_then(|at| live.reservations.swap_remove(at).into_listener().ok()),
            Some(_) => None,
        };
        if let Some(socket) = socket {
            if let Ok(task) = loopback6_proxy(socket, SocketAddr::new(ip, p.container_port)) {
                live.tasks.push(task);
            }
        }
    }
}

impl Engine {
    // ------------------------------------------------------------------------------
    // Create: the container's network settings.

    /// Checks the network settings of a container to be created and returns its
    /// endpoints. `host_config.NetworkMode` is normalized (`default` → `bridge`).
    pub(crate) fn net_prepare(
        &self,
        host_config: &mut Value,
        networking: &Value,
    ) -> Result<BTreeMap<String, Endpoint>, EngineError> {
        let mode = host_config["NetworkMode"]
            .as_str()
            .filter(|m| !m.is_empty() && *m != "default")
            .unwrap_or(self.net.default_mode())
            .to_string();
        host_config["NetworkMode"] = json!(mode);
        // The docker CLI names the default network `default` here too.
        let endpoints_config: serde_json::Map<String, Value> = networking["EndpointsConfig"]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                if k == "default" {
                    (mode.clone(), v)
                } else {
                    (k, v)
                }
            })
            .collect();
        let mut endpoints = BTreeMap::new();
        let shared = mode == HOST || mode == NONE || mode.starts_with("container:");
        if shared {
            if mode.starts_with("container:")
                && host_config["PortBindings"]
                    .as_object()
                    .is_some_and(|p| !p.is_empty())
            {
                return Err(EngineError::InvalidParameter(
                    "conflicting options: port publishing and the container type network mode"
                        .into(),
                ));
            }
            for (name, ep) in &endpoints_config {
                let asks_ip = !ep["IPAMConfig"]["IPv4Address"]
                    .as_str()
                    .unwrap_or("")
                    .is_empty()
                    || !ep["IPAMConfig"]["IPv6Address"]
                        .as_str()
                        .unwrap_or("")
                        .is_empty();
                if asks_ip {
                    return Err(EngineError::InvalidParameter(
                        "user specified IP address is supported on user defined networks only"
                            .into(),
                    ));
                }
                if !ep["Aliases"].as_array().is_none_or(|a| a.is_empty()) && name != &mode {
                    return Err(EngineError::InvalidParameter(
                        "network-scoped alias is supported only for containers in user defined networks".into(),
                    ));
                }
            }
            return Ok(endpoints);
        }
        // A bridge network: the default one or a user-defined one.
        let primary = self.net.find(&mode)?;
        if !primary.is_bridge() {
            return Err(EngineError::InvalidParameter(format!(
                "network {} cannot be used as a container network mode",
                primary.name
            )));
        }
        host_config["NetworkMode"] = json!(if mode == primary.id {
            primary.name.clone()
        } else {
            mode.clone()
        });
        let mut wanted: Vec<(Network, Value)> = Vec::new();
        let own = endpoints_config
            .iter()
            .find(|(k, _)| self.net.find(k).is_ok_and(|n| n.id == primary.id))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        wanted.push((primary.clone(), own));
        for (k, v) in &endpoints_config {
            let n = self.net.find(k)?;
            if n.id != primary.id {
                wanted.push((n, v.clone()));
            }
        }
        for (n, ep) in wanted {
            let endpoint = self.endpoint_from_config(&n, &ep)?;
            endpoints.insert(n.name.clone(), endpoint);
        }
        Ok(endpoints)
    }

    /// An endpoint's settings from the API's `EndpointSettings`, checked against the
    /// network.
    pub(super) fn endpoint_from_config(
        &self,
        n: &Network,
        ep: &Value,
    ) -> Result<Endpoint, EngineError> {
        let parse_ip = |key: &str| -> Result<Option<IpAddr>, EngineError> {
            match ep["IPAMConfig"][key].as_str().filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => s.parse().map(Some).map_err(|_| {
                    EngineError::InvalidParameter(format!(
                        "invalid endpoint settings:\ninvalid IPv{} address: {s}",
                        if key == "IPv4Address" { 4 } else { 6 }
                    ))
                }),
            }
        };
        let v4 = parse_ip("IPv4Address")?;
        let v6 = parse_ip("IPv6Address")?;
        if (v4.is_some() || v6.is_some()) && !n.user_defined() {
            return Err(EngineError::InvalidParameter(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        let aliases = str_list(&ep["Aliases"]);
        if !aliases.is_empty() && !n.user_defined() {
            return Err(EngineError::InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        for ip in v4.iter().chain(v6.iter()) {
            let fits = n.subnets.iter().any(|s| s.subnet.contains(ip));
            if !fits {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid endpoint settings:\nno configured subnet or ip-range contain the IP address {ip}"
                )));
            }
        }
        let mut link_local = Vec::new();
        for text in str_list(&ep["IPAMConfig"]["LinkLocalIPs"]) {
            match text.parse::<IpAddr>() {
                Ok(ip) if !ip.is_unspecified() => link_local.push(ip),
                _ => {
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid endpoint settings:\ninvalid link-local IP address: {text}"
                    )))
                }
            }
        }
        let mac = ep["MacAddress"].as_str().unwrap_or("").to_string();
        if !mac.is_empty() && parse_mac(&mac).is_none() {
            return Err(EngineError::InvalidParameter(format!(
                "invalid MAC address: {mac}"
            )));
        }
        Ok(Endpoint {
            network_id: n.id.clone(),
            aliases,
            links: str_list(&ep["Links"]),
            ipv4_requested: v4,
            ipv6_requested: v6,
            mac_requested: mac,
            link_local_requested: link_local,
            driver_opts: ep["DriverOpts"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            ..Endpoint::default()
        })
    }

    // ------------------------------------------------------------------------------
    // Start and exit.

    pub(super) fn netns_path(&self, id: &str) -> PathBuf {
        self.net.netns_dir.join(&id[..16])
    }

    /// Connects a container that is being started to its networks: a namespace with
    /// one interface per network, its published ports and its DNS server. Returns the
    /// namespace's path (`None`: the container has no bridge networks). Blocking.
    /// On error nothing is left.
    pub(crate) fn net_setup(
        self: &Arc<Self>,
        c: &Container,
    ) -> Result<Option<PathBuf>, EngineError> {
        if c.networks.is_empty() {
            return Ok(None);
        }
        let path = self.netns_path(&c.id);
        let _ = netns::remove(&path);
        netns::create(&path).map_err(net_err)?;
        let mut endpoints = c.networks.clone();
        let result = self.net_setup_in(c, &path, &mut endpoints);
        match result {
            Ok(published) => {
                let key = path.to_string_lossy().into_owned();
                // Written with the start's `running` state (a crash before that leaves a
                // stopped record, whose devices pierd's next start collects).
                self.update_unsaved(&c.id, |c| {
                    c.networks = endpoints;
                    c.published = published;
                    c.sandbox_key = key;
                })?;
                if let Err(e) = self.firewall_sync(false) {
                    self.net_teardown(&c.id);
                    return Err(e);
                }
                // As dockerd: a `network connect` event per network the start joins.
                for ep in c.networks.values() {
                    if let Ok(n) = self.net.find(&ep.network_id) {
                        self.network_event(&n, "connect", &[("container", c.id.clone())]);
                    }
                }
                Ok(Some(path))
            }
            Err(e) => {
                self.undo_endpoints(&c.id, &endpoints);
                self.net.live().remove(&c.id);
                let _ = netns::remove(&path);
                Err(e)
            }
        }
    }

    pub(super) fn net_setup_in(
        self: &Arc<Self>,
        c: &Container,
        path: &Path,
        endpoints: &mut BTreeMap<String, Endpoint>,
    ) -> Result<Vec<Published>, EngineError> {
        let nl = link::Netlink::open().map_err(net_err)?;
        let order: Vec<String> = primary_order(c).into_iter().map(|(k, _)| k).collect();
        let mut user_defined = false;
        for (index, name) in order.iter().enumerate() {
            let n = self
                .net
                .find(&endpoints[name].network_id)
                .map_err(|_| EngineError::NotFound(format!("network {name} not found")))?;
            user_defined |= n.user_defined();
            let ep = endpoints
                .get_mut(name)
                .ok_or_else(|| internal("endpoint", name))?;
            self.attach_endpoint(&nl, c, &n, ep, path, index, index == 0)?;
        }
        let mut live = Live::default();
        let published = self.reserve_ports(c, &mut live)?;
        let target = order
            .first()
            .and_then(|k| endpoints.get(k))
            .and_then(|ep| ep.ipv4.or(ep.ipv6))
            .map(|a| a.addr());
        start_loopback6_proxies(&published, target, &mut live);
        if user_defined {
            self.start_dns(c, path, &mut live)?;
        }
        self.net.live().insert(c.id.clone(), live);
        Ok(published)
    }

    /// Allocates the endpoint's addresses and makes its interface. Fills in `ep`'s
    /// runtime fields (also on error, so the caller can undo what was made).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attach_endpoint(
        &self,
        nl: &link::Netlink,
        c: &Container,
        n: &Network,
        ep: &mut Endpoint,
        netns_path: &Path,
        index: usize,
        primary: bool,
    ) -> Result<(), EngineError> {
        {
            let mut in_use = self.net.in_use();
            let used = in_use.entry(n.id.clone()).or_default();
            // One address per family: the requested one from the subnet that holds
            // it, else the first free one of the family's subnets in order.
            for v6 in [false, true] {
                let family: Vec<&SubnetConfig> = n
                    .subnets
                    .iter()
                    .filter(|s| s.subnet.addr().is_ipv6() == v6)
                    .collect();
                if family.is_empty() {
                    continue;
                }
                let requested = if v6 {
                    ep.ipv6_requested
                } else {
                    ep.ipv4_requested
                };
                let taken_in = |s: &SubnetConfig| -> HashSet<IpAddr> {
                    let mut taken: HashSet<IpAddr> = used.clone();
                    taken.insert(s.gateway);
                    taken.extend(s.aux.values().copied());
                    taken
                };
                let (subnet, address) = match requested {
                    Some(ip) => {
                        let s = family
                            .iter()
                            .find(|s| s.subnet.contains(&ip))
                            .ok_or_else(|| ipam_err(ipam::IpamError::OutOfRange(ip)))?;
                        ipam::check_static(&s.subnet, ip, &taken_in(s)).map_err(ipam_err)?;
                        (*s, ip)
                    }
                    None => {
                        let mut found = Err(ipam::IpamError::NoAddress);
                        for s in &family {
                            found = ipam::allocate(&s.subnet, s.ip_range.as_ref(), &taken_in(s))
                                .map(|a| (*s, a));
                            if found.is_ok() {
                                break;
                            }
                        }
                        found.map_err(ipam_err)?
                    }
                };
                used.insert(address);
                let net = IpNet::new(address, subnet.subnet.prefix_len()).map_err(net_err)?;
                if v6 {
                    ep.ipv6 = Some(net);
                    ep.gateway6 = Some(subnet.gateway);
                } else {
                    ep.ipv4 = Some(net);
                    ep.gateway4 = Some(subnet.gateway);
                }
            }
        }
        ep.endpoint_id = random_id();
        ep.mac = if ep.mac_requested.is_empty() {
            mac_for(ep.ipv4.map(|a| a.addr()))
        } else {
            ep.mac_requested.clone()
        };
        ep.ifname = format!("eth{index}");
        ep.host_ifname = format!("{VETH_PREFIX}{}", &ep.endpoint_id[..12]);
        let _ = c;
        let spec = link::EndpointSpec {
            bridge: n.device.clone(),
            host_ifname: ep.host_ifname.clone(),
            container_ifname: ep.ifname.clone(),
            mac: parse_mac(&ep.mac).unwrap_or([2, 0x42, 0, 0, 0, 1]),
            ipv4: ep.ipv4.and_then(|a| match a.addr() {
                IpAddr::V4(v4) => Some((v4, a.prefix_len())),
                IpAddr::V6(_) => None,
            }),
            ipv6: ep.ipv6.and_then(|a| match a.addr() {
                IpAddr::V6(v6) => Some((v6, a.prefix_len())),
                IpAddr::V4(_) => None,
            }),
            // As libnetwork: link-local addresses with the link-local prefixes.
            link_local: ep
                .link_local_requested
                .iter()
                .map(|&ip| (ip, if ip.is_ipv4() { 16 } else { 64 }))
                .collect(),
            gateway4: match ep.gateway4 {
                Some(IpAddr::V4(g)) if primary && !n.internal => Some(g),
                _ => None,
            },
            gateway6: match ep.gateway6 {
                Some(IpAddr::V6(g)) if primary && !n.internal => Some(g),
                _ => None,
            },
            mtu: n.mtu.or(self.net.settings.mtu),
        };
        let result = nl.attach(netns_path, &spec).map_err(|e| {
            // The bridge may be gone (deleted by hand): make it again next time.
            net_err(e)
        });
        if result.is_err() {
            // No interface was made: nothing to delete later.
            ep.host_ifname.clear();
        }
        result
    }

    /// Releases the addresses and deletes the host ends of `endpoints`.
    pub(super) fn undo_endpoints(&self, _id: &str, endpoints: &BTreeMap<String, Endpoint>) {
        // Deleting a veth waits for the kernel (an RCU grace period): not under the
        // lock other starts allocate under. The addresses go after their device.
        if let Ok(nl) = link::Netlink::open() {
            for ep in endpoints.values().filter(|ep| !ep.host_ifname.is_empty()) {
                let _ = nl.delete_link(&ep.host_ifname);
            }
        }
        let mut in_use = self.net.in_use();
        for ep in endpoints.values() {
            if let Some(used) = in_use.get_mut(&ep.network_id) {
                for a in ep.addresses() {
                    used.remove(&a);
                }
            }
        }
    }

    /// Reserves the host ports of `HostConfig.PortBindings` (and, with
    /// `PublishAllPorts`, of every exposed port) for a container being started.
    pub(super) fn reserve_ports(
        &self,
        c: &Container,
        live: &mut Live,
    ) -> Result<Vec<Published>, EngineError> {
        // (container port, protocol, host address, host port range)
        let mut wanted: Vec<PortRequest> = Vec::new();
        let bindings = c.host_config["PortBindings"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, list) in &bindings {
            let (port, proto) = port_key(key)?;
            let list = list.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                wanted.push((port, proto.clone(), None, (0, 0)));
            }
            for b in list {
                let host_ip = match b["HostIp"].as_str().filter(|s| !s.is_empty()) {
                    None => None,
                    Some(s) => {
                        let ip: IpAddr = s.trim_matches(['[', ']']).parse().map_err(|_| {
                            EngineError::InvalidParameter(format!("invalid IP address: {s}"))
                        })?;
                        (!ip.is_unspecified() || ip.is_ipv6()).then_some(ip)
                    }
                };
                let range = host_port_range(b["HostPort"].as_str().unwrap_or(""))?;
                wanted.push((port, proto.clone(), host_ip, range));
            }
        }
        if c.host_config["PublishAllPorts"].as_bool() == Some(true) {
            for key in c.config["ExposedPorts"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                let (port, proto) = port_key(key)?;
                if !wanted.iter().any(|w| w.0 == port && w.1 == proto) {
                    wanted.push((port, proto, None, (0, 0)));
                }
            }
        }
        let mut published = Vec::new();
        for (container_port, proto, host_ip, (low, high)) in wanted {
            if proto == "sctp" {
                return Err(EngineError::InvalidParameter(
                    "sctp port publishing is not supported".into(),
                ));
            }
            let protocol = if proto == "udp" {
                firewall::Protocol::Udp
            } else {
                firewall::Protocol::Tcp
            };
            let host_ip = host_ip.or(self.net.settings.default_bind_ip);
            let mut last_error = None;
            let mut reserved = None;
            for port in low..=high {
                match firewall::reserve_port(protocol, host_ip, port) {
                    Ok(r) => {
                        reserved = Some(r);
                        break;
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            let r = match (reserved, last_error) {
                (Some(r), _) => r,
                (None, Some(e)) => {
                    return Err(EngineError::Internal(format!(
                        "driver failed programming external connectivity on endpoint {} ({}): {e}",
                        c.name, c.id
                    )))
                }
                (None, None) => return Err(internal("port", "empty range")),
            };
            published.push(Published {
                protocol: proto,
                host_ip,
                host_port: r.port,
                container_port,
            });
            live.reservations.push(r);
        }
        Ok(published)
    }

    /// The embedded DNS server of a container on user networks: sockets on
    /// 127.0.0.11:53 inside its namespace, served by pierd.
    pub(super) fn start_dns(
        self: &Arc<Self>,
        c: &Container,
        path: &Path,
        live: &mut Live,
    ) -> Result<(), EngineError> {
        let bind = SocketAddr::new(IpAddr::V4(DNS_ADDRESS), 53);
        let (udp, tcp) = netns::run_in(path, move || {
            let udp = std::net::UdpSocket::bind(bind)?;
            let tcp = std::net::TcpListener::bind(bind)?;
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            Ok::<_, std::io::Error>((udp, tcp))
        })
        .map_err(net_err)?
        .map_err(|e| internal("open the embedded DNS sockets", e))?;
        let handle =
            tokio::runtime::Handle::try_current().map_err(|e| internal("embedded DNS", e))?;
        let _guard = handle.enter();
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(|e| internal("dns socket", e))?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(|e| internal("dns socket", e))?;
        let resolver = Arc::new(ContainerResolver {
            engine: Arc::downgrade(self),
            id: c.id.clone(),
        });
        let server = pier_dns::Server::new(resolver, self.upstreams(c));
        live.tasks
            .push(handle.spawn(server.clone().serve_udp(udp)).abort_handle());
        live.tasks
            .push(handle.spawn(server.serve_tcp(tcp)).abort_handle());
        Ok(())
    }

    /// Where the embedded DNS relays names that are not Pier's: the container's
    /// `--dns`, else the daemon's, else the host's resolvers (reached from the host's
    /// namespace, so a loopback resolver of the host works too).
    pub(super) fn upstreams(&self, c: &Container) -> Vec<SocketAddr> {
        let own: Vec<IpAddr> = str_list(&c.host_config["Dns"])
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let servers = if !own.is_empty() {
            own
        } else if !self.net.settings.dns.is_empty() {
            self.net.settings.dns.clone()
        } else {
            host_resolv().0
        };
        servers
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .collect()
    }

    /// Disconnects an exited container: deletes its interfaces and namespace, releases
    /// its addresses and ports, stops its DNS server, rewrites the firewall. Blocking.
    pub(crate) fn net_teardown(&self, id: &str) {
        let had_ports = self.net_release(id);
        let _ = self.update(id, clear_net_runtime);
        if had_ports {
            self.net_firewall_after_release();
        }
    }

    /// The firewall after a release that freed published ports.
    pub(crate) fn net_firewall_after_release(&self) {
        if let Err(e) = self.firewall_sync(false) {
            eprintln!("pierd: firewall: {e}");
        }
    }

    /// [`net_teardown`](Self::net_teardown) without the record: the devices,
    /// namespace, addresses, ports and tasks go; the caller clears the record with
    /// [`clear_net_runtime`] (in the update it makes anyway) and then, if this
    /// returns true (ports were published), calls `net_firewall_after_release`.
    pub(crate) fn net_release(&self, id: &str) -> bool {
        // Taken from the record in one step: of two releases (an exit reported while a
        // removal tears down) only one frees the addresses, which another container
        // may hold again by the time the second would run.
        let c = {
            let mut inner = self.lock();
            let Some(entry) = inner.get_mut(id) else {
                return false;
            };
            let c = entry.c.clone();
            clear_net_runtime(&mut entry.c);
            c
        };
        self.net.live().remove(id);
        self.undo_endpoints(id, &c.networks);
        if !c.sandbox_key.is_empty() {
            let _ = netns::remove(Path::new(&c.sandbox_key));
        }
        let had_ports = !c.published.is_empty();
        if !c.sandbox_key.is_empty() {
            for ep in c.networks.values() {
                if let Ok(n) = self.net.find(&ep.network_id) {
                    self.network_event(&n, "disconnect", &[("container", c.id.clone())]);
                }
            }
        }
        had_ports
    }

    /// After a restart of pierd: the running containers' DNS servers and port
    /// reservations come back.
    pub(crate) fn net_restore(self: &Arc<Self>) {
        let running: Vec<Container> = self
            .lock()
            .values()
            .filter(|e| e.c.state.running && !e.c.sandbox_key.is_empty())
            .map(|e| e.c.clone())
            .collect();
        for c in running {
            let mut live = Live::default();
            for p in &c.published {
                match firewall::reserve_port(p.protocol(), p.host_ip, p.host_port) {
                    Ok(r) => live.reservations.push(r),
                    Err(e) => eprintln!("pierd: container {}: {e}", c.short_id()),
                }
            }
            let target = primary_order(&c)
                .first()
                .and_then(|(_, ep)| ep.ipv4.or(ep.ipv6))
                .map(|a| a.addr());
            start_loopback6_proxies(&c.published, target, &mut live);
            let user_defined = c.networks.values().any(|ep| {
                self.net
                    .find(&ep.network_id)
                    .is_ok_and(|n| n.user_defined())
            });
            if user_defined {
                if let Err(e) = self.start_dns(&c, Path::new(&c.sandbox_key), &mut live) {
                    eprintln!("pierd: container {}: embedded DNS: {e}", c.short_id());
                }
            }
            self.net.live().insert(c.id.clone(), live);
        }
    }
}

/// Clears what a run's network left in a container's record.
pub(crate) fn clear_net_runtime(c: &mut Container) {
    for ep in c.networks.values_mut() {
        ep.clear_runtime();
    }
    c.published.clear();
    c.sandbox_key.clear();
}
