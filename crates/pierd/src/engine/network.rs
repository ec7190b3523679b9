//! Networks: Docker's network model — the `bridge`, `host` and `none` networks, user
//! bridge networks, endpoints, published ports and the embedded DNS — on pier-net's
//! devices, IPAM and firewall, and pier-dns.
//!
//! A container on a bridge network gets a network namespace of its own, bound on a file
//! under the exec root before the runtime starts it (the spec names that path), so the
//! container's first instruction already sees its interfaces. Addresses are allocated
//! at start and released at exit, as in Docker; static addresses (`--ip`) are kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use ipnet::IpNet;
use pier_net::{firewall, ipam, link, netns};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{events, internal, random_id, Container, Engine, EngineError};

pub const BRIDGE: &str = "bridge";
pub const HOST: &str = "host";
pub const NONE: &str = "none";

/// Where the embedded DNS server answers inside a container.
const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// The daemon's networking flags.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// Device of the default `bridge` network; `None` with `--bridge none`.
    pub bridge: Option<String>,
    /// `--bip`: the default bridge's address with its prefix length.
    pub bip: Option<IpNet>,
    pub pools: Vec<ipam::Pool>,
    /// `--ip`: where published ports bind when the user names no address.
    pub default_bind_ip: Option<IpAddr>,
    /// `--dns`: containers' resolvers instead of the host's.
    pub dns: Vec<IpAddr>,
    /// `--iptables`: whether pierd manages its firewall table.
    pub firewall: bool,
    pub mtu: Option<u32>,
}

impl NetSettings {
    pub fn from_config(config: &crate::config::DaemonConfig) -> Result<NetSettings, EngineError> {
        let bad = |flag: &str, value: &str, e: &dyn std::fmt::Display| {
            EngineError::InvalidParameter(format!("invalid {flag} {value:?}: {e}"))
        };
        let bridge = match config.bridge.as_str() {
            "none" | "" => None,
            name if name.len() > 15 => {
                return Err(bad("--bridge", name, &"longer than 15 bytes"));
            }
            name => Some(name.to_string()),
        };
        let bip = match &config.bip {
            Some(b) => Some(b.parse::<IpNet>().map_err(|e| bad("--bip", b, &e))?),
            None => None,
        };
        let mut pools = Vec::new();
        for p in &config.default_address_pools {
            pools.push(ipam::parse_pool(p).map_err(|e| bad("--default-address-pool", p, &e))?);
        }
        if pools.is_empty() {
            pools = ipam::default_pools();
        }
        let default_bind_ip = match config.default_ip.as_str() {
            "" | "0.0.0.0" => None,
            ip => Some(ip.parse().map_err(|e| bad("--ip", ip, &e))?),
        };
        let mut dns = Vec::new();
        for d in &config.dns {
            dns.push(d.parse().map_err(|e| bad("--dns", d, &e))?);
        }
        Ok(NetSettings {
            bridge,
            bip,
            pools,
            default_bind_ip,
            dns,
            firewall: config.iptables,
            mtu: config.mtu,
        })
    }
}

/// One subnet of a network's IPAM configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubnetConfig {
    pub subnet: IpNet,
    pub gateway: IpAddr,
    #[serde(default)]
    pub ip_range: Option<IpNet>,
    #[serde(default)]
    pub aux: BTreeMap<String, IpAddr>,
}

/// A network, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub subnets: Vec<SubnetConfig>,
    #[serde(default)]
    pub ipam_options: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The bridge device (bridge networks only).
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default = "yes")]
    pub masquerade: bool,
}

fn yes() -> bool {
    true
}

impl Network {
    fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// User-defined networks have the embedded DNS; the default `bridge` does not.
    fn user_defined(&self) -> bool {
        self.is_bridge() && self.name != BRIDGE
    }

    fn predefined(&self) -> bool {
        matches!(self.name.as_str(), BRIDGE | HOST | NONE)
    }
}

/// A container's endpoint on a network: what the user asked for, and while the
/// container runs, what it got.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    pub network_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default)]
    pub ipv4_requested: Option<IpAddr>,
    #[serde(default)]
    pub ipv6_requested: Option<IpAddr>,
    #[serde(default)]
    pub mac_requested: String,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    // While the container runs.
    #[serde(default)]
    pub endpoint_id: String,
    #[serde(default)]
    pub ipv4: Option<IpNet>,
    #[serde(default)]
    pub ipv6: Option<IpNet>,
    #[serde(default)]
    pub gateway4: Option<IpAddr>,
    #[serde(default)]
    pub gateway6: Option<IpAddr>,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub host_ifname: String,
    #[serde(default)]
    pub ifname: String,
}

impl Endpoint {
    fn clear_runtime(&mut self) {
        self.endpoint_id.clear();
        self.ipv4 = None;
        self.ipv6 = None;
        self.gateway4 = None;
        self.gateway6 = None;
        self.mac.clear();
        self.host_ifname.clear();
        self.ifname.clear();
    }

    fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ipv4.iter().chain(self.ipv6.iter()).map(IpNet::addr)
    }
}

/// A port a running container publishes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    /// `tcp` or `udp`.
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl Published {
    fn protocol(&self) -> firewall::Protocol {
        if self.protocol == "udp" {
            firewall::Protocol::Udp
        } else {
            firewall::Protocol::Tcp
        }
    }
}

/// What a running container holds in pierd's memory: its host port reservations, and
/// its tasks (DNS servers, IPv6 loopback proxies).
#[derive(Default)]
struct Live {
    reservations: Vec<firewall::PortReservation>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The one place a userland proxy is needed: `[::1]:port` of a port published on every
/// address. The kernel never routes an IPv6 loopback source out of the host (IPv6 has
/// no `route_localnet`), so DNAT cannot serve it; everything else is DNAT.
fn loopback6_proxy(port: u16, target: SocketAddr) -> std::io::Result<tokio::task::AbortHandle> {
    let socket = std::net::TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, port))?;
    socket.set_nonblocking(true)?;
    let handle = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let _guard = handle.enter();
    let listener = tokio::net::TcpListener::from_std(socket)?;
    let task = handle.spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
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

/// Starts the IPv6 loopback proxies of a container's TCP ports published on every
/// address (best effort: `::1` may be taken or absent).
fn start_loopback6_proxies(published: &[Published], target: Option<IpAddr>, live: &mut Live) {
    let Some(ip) = target else {
        return;
    };
    for p in published {
        if p.protocol == "tcp" && p.host_ip.is_none() {
            if let Ok(task) = loopback6_proxy(p.host_port, SocketAddr::new(ip, p.container_port)) {
                live.tasks.push(task);
            }
        }
    }
}

/// A port to publish: container port, protocol, host address, host port range.
type PortRequest = (u16, String, Option<IpAddr>, (u16, u16));

/// The engine's networking state.
pub struct NetState {
    pub settings: NetSettings,
    /// Pier's nftables table (one per daemon: named after its default bridge).
    table: String,
    netns_dir: PathBuf,
    networks: Mutex<BTreeMap<String, Network>>,
    /// Addresses in use per network ID (of running containers and starts under way).
    in_use: Mutex<HashMap<String, HashSet<IpAddr>>>,
    live: Mutex<HashMap<String, Live>>,
    /// The ruleset last applied; its lock also serializes applies.
    applied: Mutex<Option<firewall::Ruleset>>,
}

impl std::fmt::Debug for NetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetState")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl NetState {
    pub fn new(settings: NetSettings, exec_root: &Path) -> NetState {
        let table = format!(
            "pier_{}",
            settings
                .bridge
                .as_deref()
                .unwrap_or("none")
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        NetState {
            settings,
            table,
            netns_dir: exec_root.join("netns"),
            networks: Mutex::new(BTreeMap::new()),
            in_use: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            applied: Mutex::new(None),
        }
    }

    fn networks(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Network>> {
        self.networks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_use(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<IpAddr>>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds a network by ID, name or unique ID prefix (Docker's order).
    pub fn find(&self, input: &str) -> Result<Network, EngineError> {
        let nets = self.networks();
        find_in(&nets, input).cloned()
    }

    pub fn list(&self) -> Vec<Network> {
        self.networks().values().cloned().collect()
    }

    /// The network mode containers get when they ask for `default`.
    pub fn default_mode(&self) -> &'static str {
        if self.settings.bridge.is_some() {
            BRIDGE
        } else {
            NONE
        }
    }
}

fn find_in<'a>(
    nets: &'a BTreeMap<String, Network>,
    input: &str,
) -> Result<&'a Network, EngineError> {
    if let Some(n) = nets.get(input) {
        return Ok(n);
    }
    if let Some(n) = nets.values().find(|n| n.name == input) {
        return Ok(n);
    }
    let matches: Vec<&Network> = nets
        .values()
        .filter(|n| !input.is_empty() && n.id.starts_with(input))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(EngineError::NotFound(format!("network {input} not found"))),
        _ => Err(EngineError::InvalidParameter(format!(
            "network {input} is ambiguous ({} matches found based on ID prefix)",
            matches.len()
        ))),
    }
}

fn net_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

fn ipam_err(e: ipam::IpamError) -> EngineError {
    match e {
        ipam::IpamError::Overlap | ipam::IpamError::AddressInUse => {
            EngineError::Forbidden(e.to_string())
        }
        ipam::IpamError::PoolsExhausted | ipam::IpamError::NoAddress => {
            EngineError::Forbidden(e.to_string())
        }
        _ => EngineError::InvalidParameter(e.to_string()),
    }
}

fn random_mac() -> String {
    let id = random_id();
    // Locally administered, unicast.
    format!(
        "02:42:{}:{}:{}:{}",
        &id[0..2],
        &id[2..4],
        &id[4..6],
        &id[6..8]
    )
}

fn mac_for(address: Option<IpAddr>) -> String {
    match address {
        Some(IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
        }
        _ => random_mac(),
    }
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut out {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The host's resolvers, from its `/etc/resolv.conf`.
fn host_resolv() -> (Vec<IpAddr>, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (mut servers, mut search, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                    servers.push(ip);
                }
            }
            Some("search" | "domain") => {
                search = words.map(str::to_string).collect();
            }
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    (servers, search, options)
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses Docker's `"80/tcp"` port keys.
fn port_key(key: &str) -> Result<(u16, String), EngineError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(EngineError::InvalidParameter(format!(
            "invalid proto: {proto}"
        )));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| EngineError::InvalidParameter(format!("invalid port: {port}")))?;
    Ok((port, proto))
}

/// A host port spec: `""` (any), `"8080"`, or a range `"8000-8010"`.
fn host_port_range(text: &str) -> Result<(u16, u16), EngineError> {
    let bad = || EngineError::InvalidParameter(format!("invalid hostPort: {text}"));
    if text.is_empty() {
        return Ok((0, 0));
    }
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let p = text.parse::<u16>().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}

impl Engine {
    pub(crate) fn net(&self) -> &NetState {
        &self.net
    }

    // ------------------------------------------------------------------------------
    // Start-up and shutdown.

    /// Loads the networks, makes the predefined ones, recreates missing bridges,
    /// removes what a crash left (veths, namespaces) and rewrites the firewall table.
    pub(crate) fn net_init(&self) -> Result<(), EngineError> {
        std::fs::create_dir_all(&self.net.netns_dir)
            .map_err(|e| internal("create netns dir", e))?;
        let stored = self.store.load_networks()?;
        {
            let mut nets = self.net.networks();
            for n in stored {
                nets.insert(n.id.clone(), n);
            }
        }
        for (name, driver) in [(HOST, "host"), (NONE, "null")] {
            if self.net.find(name).is_err() {
                let n = Network {
                    id: random_id(),
                    name: name.into(),
                    driver: driver.into(),
                    created: pier_image::time::now_rfc3339(),
                    internal: false,
                    attachable: false,
                    enable_ipv6: false,
                    subnets: Vec::new(),
                    ipam_options: BTreeMap::new(),
                    options: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    device: String::new(),
                    mtu: None,
                    masquerade: false,
                };
                self.store.put_network(&n)?;
                self.net.networks().insert(n.id.clone(), n);
            }
        }
        self.init_default_bridge()?;
        let nl = link::Netlink::open().map_err(net_err)?;
        for n in self.net.list() {
            if n.is_bridge() {
                self.ensure_device(&nl, &n)?;
            }
        }
        // Addresses in use, and what running containers expect to exist.
        let mut expected_links = HashSet::new();
        let mut expected_netns = HashSet::new();
        {
            let inner = self.lock();
            let mut in_use = self.net.in_use();
            for e in inner.values() {
                if !e.c.state.running {
                    continue;
                }
                if !e.c.sandbox_key.is_empty() {
                    expected_netns.insert(PathBuf::from(&e.c.sandbox_key));
                }
                for ep in e.c.networks.values() {
                    if !ep.host_ifname.is_empty() {
                        expected_links.insert(ep.host_ifname.clone());
                    }
                    in_use
                        .entry(ep.network_id.clone())
                        .or_default()
                        .extend(ep.addresses());
                }
            }
        }
        // Veths on Pier's bridges that no running container owns are a crash's leftovers.
        let bridges: HashSet<u32> = {
            let names: HashSet<String> = self.net.list().into_iter().map(|n| n.device).collect();
            nl.links()
                .map_err(net_err)?
                .into_iter()
                .filter(|l| names.contains(&l.name))
                .map(|l| l.index)
                .collect()
        };
        for l in nl.links().map_err(net_err)? {
            let ours = l.master.is_some_and(|m| bridges.contains(&m));
            if ours && l.kind.as_deref() == Some("veth") && !expected_links.contains(&l.name) {
                let _ = nl.delete_link(&l.name);
            }
        }
        for entry in std::fs::read_dir(&self.net.netns_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            if !expected_netns.contains(&entry.path()) {
                let _ = netns::remove(&entry.path());
            }
        }
        self.firewall_sync(true)
    }

    /// The default `bridge` network: its subnet is `--bip`, or the one chosen at the
    /// first start (from the pools, avoiding every route and address of the host).
    fn init_default_bridge(&self) -> Result<(), EngineError> {
        let Some(device) = self.net.settings.bridge.clone() else {
            return Ok(());
        };
        let existing = self.net.find(BRIDGE).ok();
        let wanted: Option<SubnetConfig> = self.net.settings.bip.map(|bip| SubnetConfig {
            subnet: bip.trunc(),
            gateway: bip.addr(),
            ip_range: None,
            aux: BTreeMap::new(),
        });
        let subnets = match (&existing, wanted) {
            (_, Some(w)) => vec![w],
            (Some(n), None) if !n.subnets.is_empty() => n.subnets.clone(),
            _ => {
                let subnet = self.free_subnet(&self.net.settings.pools)?;
                vec![SubnetConfig {
                    subnet,
                    gateway: ipam::default_gateway(&subnet),
                    ip_range: None,
                    aux: BTreeMap::new(),
                }]
            }
        };
        let mut n = existing.unwrap_or_else(|| Network {
            id: random_id(),
            name: BRIDGE.into(),
            driver: "bridge".into(),
            created: pier_image::time::now_rfc3339(),
            internal: false,
            attachable: false,
            enable_ipv6: false,
            subnets: Vec::new(),
            ipam_options: BTreeMap::new(),
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            device: device.clone(),
            mtu: self.net.settings.mtu,
            masquerade: true,
        });
        if n.device != device || n.subnets != subnets {
            // A different bridge or subnet than last time: the old device goes.
            if n.device != device && !n.device.is_empty() {
                if let Ok(nl) = link::Netlink::open() {
                    let _ = nl.delete_link(&n.device);
                }
            }
            n.device = device;
            n.subnets = subnets;
        }
        n.options = BTreeMap::from([
            (
                "com.docker.network.bridge.default_bridge".into(),
                "true".into(),
            ),
            ("com.docker.network.bridge.enable_icc".into(), "true".into()),
            (
                "com.docker.network.bridge.enable_ip_masquerade".into(),
                "true".into(),
            ),
            (
                "com.docker.network.bridge.host_binding_ipv4".into(),
                "0.0.0.0".into(),
            ),
            ("com.docker.network.bridge.name".into(), n.device.clone()),
            (
                "com.docker.network.driver.mtu".into(),
                self.net.settings.mtu.unwrap_or(1500).to_string(),
            ),
        ]);
        self.store.put_network(&n)?;
        self.net.networks().insert(n.id.clone(), n);
        Ok(())
    }

    /// A subnet from `pools` that collides with no host route or address and no
    /// network of this daemon.
    fn free_subnet(&self, pools: &[ipam::Pool]) -> Result<IpNet, EngineError> {
        let mut taken = link::Netlink::open()
            .and_then(|nl| nl.host_networks())
            .map_err(net_err)?;
        for n in self.net.list() {
            taken.extend(n.subnets.iter().map(|s| s.subnet));
        }
        ipam::choose_subnet(pools, &taken).map_err(ipam_err)
    }

    /// Creates the network's bridge if missing, with its gateways, and the sysctls
    /// published ports need.
    fn ensure_device(&self, nl: &link::Netlink, n: &Network) -> Result<bool, EngineError> {
        let addresses: Vec<(IpAddr, u8)> = n
            .subnets
            .iter()
            .map(|s| (s.gateway, s.subnet.prefix_len()))
            .collect();
        let created = nl
            .ensure_bridge(&n.device, n.mtu, &addresses)
            .map_err(net_err)?;
        for (path, value) in firewall::bridge_sysctls(&n.device) {
            let _ = std::fs::write(path, value);
        }
        if self.net.settings.firewall {
            // As Docker: routing between the bridges and the host's interfaces.
            for (path, value) in firewall::forwarding_sysctls(n.enable_ipv6) {
                let _ = std::fs::write(path, value);
            }
        }
        Ok(created)
    }

    /// On an orderly shutdown with no container running, pierd takes down what it made
    /// in the kernel (bridges, its firewall table); the next start makes them again.
    /// With containers running everything stays, for them (live restore).
    pub fn net_shutdown(&self) {
        let any_running = self.lock().values().any(|e| e.c.state.running);
        if any_running {
            return;
        }
        if let Ok(nl) = link::Netlink::open() {
            for n in self.net.list() {
                if n.is_bridge() {
                    let _ = nl.delete_link(&n.device);
                }
            }
        }
        if self.net.settings.firewall {
            let _ = firewall::Nft::default().delete_table(&self.net.table);
        }
    }

    // ------------------------------------------------------------------------------
    // Firewall.

    /// Pier's table as the current state says it should be.
    fn ruleset(&self) -> firewall::Ruleset {
        let nets = self.net.list();
        let mut rules = firewall::Ruleset {
            table: self.net.table.clone(),
            networks: Vec::new(),
            ports: Vec::new(),
        };
        for n in nets.iter().filter(|n| n.is_bridge()) {
            rules.networks.push(firewall::NetworkRules {
                bridge: n.device.clone(),
                subnets: n.subnets.iter().map(|s| s.subnet).collect(),
                internal: n.internal,
                masquerade: n.masquerade && !n.internal,
            });
        }
        let by_id: HashMap<&str, &Network> = nets.iter().map(|n| (n.id.as_str(), n)).collect();
        let inner = self.lock();
        let mut containers: Vec<&Container> = inner
            .values()
            .map(|e| &e.c)
            .filter(|c| !c.published.is_empty())
            .collect();
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        for c in containers {
            for p in &c.published {
                // Each family of host address goes to the first endpoint that has one.
                for want_v6 in [false, true] {
                    if p.host_ip.is_some_and(|ip| ip.is_ipv6() != want_v6) {
                        continue;
                    }
                    let target = primary_order(c).into_iter().find_map(|(_, ep)| {
                        let n = by_id.get(ep.network_id.as_str())?;
                        let addr = if want_v6 { ep.ipv6 } else { ep.ipv4 }?;
                        Some((n.device.clone(), addr.addr()))
                    });
                    if let Some((bridge, container_ip)) = target {
                        rules.ports.push(firewall::PortMapping {
                            protocol: p.protocol(),
                            host_ip: p.host_ip,
                            host_port: p.host_port,
                            container_ip,
                            container_port: p.container_port,
                            bridge,
                        });
                    }
                }
            }
        }
        rules
    }

    /// Applies the ruleset if it changed (or always, with `force`).
    fn firewall_sync(&self, force: bool) -> Result<(), EngineError> {
        if !self.net.settings.firewall {
            return Ok(());
        }
        let mut applied = self.net.applied.lock().unwrap_or_else(|p| p.into_inner());
        let rules = self.ruleset();
        if !force && applied.as_ref() == Some(&rules) {
            return Ok(());
        }
        firewall::Nft::default().apply(&rules).map_err(net_err)?;
        *applied = Some(rules);
        Ok(())
    }

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
    fn endpoint_from_config(&self, n: &Network, ep: &Value) -> Result<Endpoint, EngineError> {
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

    fn netns_path(&self, id: &str) -> PathBuf {
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
                self.update(&c.id, |c| {
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

    fn net_setup_in(
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
    fn attach_endpoint(
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
            for s in &n.subnets {
                let v6 = s.subnet.addr().is_ipv6();
                let requested = if v6 {
                    ep.ipv6_requested
                } else {
                    ep.ipv4_requested
                };
                let mut taken: HashSet<IpAddr> = used.clone();
                taken.insert(s.gateway);
                taken.extend(s.aux.values().copied());
                let address = match requested {
                    Some(ip) => {
                        ipam::check_static(&s.subnet, ip, &taken).map_err(ipam_err)?;
                        ip
                    }
                    None => {
                        ipam::allocate(&s.subnet, s.ip_range.as_ref(), &taken).map_err(ipam_err)?
                    }
                };
                used.insert(address);
                let net = IpNet::new(address, s.subnet.prefix_len()).map_err(net_err)?;
                if v6 {
                    ep.ipv6 = Some(net);
                    ep.gateway6 = Some(s.gateway);
                } else {
                    ep.ipv4 = Some(net);
                    ep.gateway4 = Some(s.gateway);
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
        ep.host_ifname = format!("pv{}", &ep.endpoint_id[..12]);
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
        } else {
            // Hairpin: a container reaching its own published port through a host
            // address gets the answer back out the port it came in by (the bridge
            // would not send it there otherwise when br_netfilter is loaded).
            let _ = std::fs::write(
                format!("/sys/class/net/{}/brport/hairpin_mode", ep.host_ifname),
                "1",
            );
        }
        result
    }

    /// Releases the addresses and deletes the host ends of `endpoints`.
    fn undo_endpoints(&self, _id: &str, endpoints: &BTreeMap<String, Endpoint>) {
        let nl = link::Netlink::open().ok();
        let mut in_use = self.net.in_use();
        for ep in endpoints.values() {
            if let (Some(nl), false) = (&nl, ep.host_ifname.is_empty()) {
                let _ = nl.delete_link(&ep.host_ifname);
            }
            if let Some(used) = in_use.get_mut(&ep.network_id) {
                for a in ep.addresses() {
                    used.remove(&a);
                }
            }
        }
    }

    /// Reserves the host ports of `HostConfig.PortBindings` (and, with
    /// `PublishAllPorts`, of every exposed port) for a container being started.
    fn reserve_ports(&self, c: &Container, live: &mut Live) -> Result<Vec<Published>, EngineError> {
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
    fn start_dns(
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
    fn upstreams(&self, c: &Container) -> Vec<SocketAddr> {
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
        let Ok(c) = self.get(id) else {
            return;
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
        let _ = self.update(id, |c| {
            for ep in c.networks.values_mut() {
                ep.clear_runtime();
            }
            c.published.clear();
            c.sandbox_key.clear();
        });
        if had_ports {
            if let Err(e) = self.firewall_sync(false) {
                eprintln!("pierd: firewall: {e}");
            }
        }
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

    // ------------------------------------------------------------------------------
    // /etc files.

    /// `/etc/hosts` lines for the container's own addresses and its links.
    pub(crate) fn hosts_entries(&self, c: &Container) -> String {
        let mut text = String::new();
        let names = if c.config["Domainname"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
        {
            format!(
                "{}.{} {}",
                c.hostname,
                c.config["Domainname"].as_str().unwrap_or_default(),
                c.hostname
            )
        } else {
            c.hostname.clone()
        };
        for link in str_list(&c.host_config["Links"]) {
            let (target, alias) = parse_link(&link);
            if let Ok(t) = self.get(&target) {
                if let Some(ip) = t.networks.values().find_map(|ep| ep.ipv4.map(|a| a.addr())) {
                    text.push_str(&format!("{ip}\t{alias} {} {}\n", t.short_id(), t.name));
                }
            }
        }
        for (_, ep) in primary_order(c) {
            for a in ep.addresses() {
                text.push_str(&format!("{a}\t{names}\n"));
            }
        }
        text
    }

    /// `host-gateway` in `--add-host`: the default bridge's gateway.
    pub(crate) fn host_gateway(&self) -> Option<IpAddr> {
        self.net.find(BRIDGE).ok().and_then(|n| {
            n.subnets
                .iter()
                .find(|s| s.gateway.is_ipv4())
                .map(|s| s.gateway)
        })
    }

    /// `/etc/resolv.conf` as Docker writes it: the embedded DNS on user networks, the
    /// host's resolvers (loopback ones filtered) otherwise.
    pub(crate) fn resolv_conf(&self, c: &Container) -> String {
        let (host_servers, host_search, host_options) = host_resolv();
        let own_dns = str_list(&c.host_config["Dns"]);
        let own_search = str_list(&c.host_config["DnsSearch"]);
        let own_options = str_list(&c.host_config["DnsOptions"]);
        let search = if own_search.is_empty() {
            host_search
        } else {
            own_search
        };
        let embedded = c.networks.values().any(|ep| {
            self.net
                .find(&ep.network_id)
                .is_ok_and(|n| n.user_defined())
        });
        let mode = c.host_config["NetworkMode"].as_str().unwrap_or("");
        let mut text = String::from(
            "# Generated by Pier.\n# This file can be edited; Pier will not make further changes once it\n# has been modified.\n\n",
        );
        let mut options: Vec<String> = Vec::new();
        if embedded {
            text.push_str(&format!("nameserver {DNS_ADDRESS}\n"));
            options.push("ndots:0".into());
        } else {
            let servers: Vec<String> = if !own_dns.is_empty() {
                own_dns.clone()
            } else if !self.net.settings.dns.is_empty() {
                self.net
                    .settings
                    .dns
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            } else {
                host_servers
                    .iter()
                    // The host's loopback resolvers are unreachable from a container
                    // with its own namespace.
                    .filter(|ip| mode == HOST || !ip.is_loopback())
                    .map(ToString::to_string)
                    .collect()
            };
            for s in servers {
                text.push_str(&format!("nameserver {s}\n"));
            }
        }
        if !search.is_empty() {
            text.push_str(&format!("search {}\n", search.join(" ")));
        }
        for o in if own_options.is_empty() {
            host_options
        } else {
            own_options
        } {
            let key = o.split(':').next().unwrap_or_default().to_string();
            options.retain(|x| !x.starts_with(&format!("{key}:")) && *x != key);
            options.push(o);
        }
        if !options.is_empty() {
            text.push_str(&format!("options {}\n", options.join(" ")));
        }
        if embedded {
            let ext: Vec<String> = self
                .upstreams(c)
                .iter()
                .map(|s| s.ip().to_string())
                .collect();
            text.push_str(&format!(
                "\n# Based on host file: '/etc/resolv.conf' (internal resolver)\n# ExtServers: [{}]\n",
                ext.join(" ")
            ));
        }
        text
    }

    // ------------------------------------------------------------------------------
    // DNS.

    /// What the embedded DNS of container `id` answers for `name`.
    fn dns_lookup(&self, id: &str, name: &str, qtype: u16) -> pier_dns::Resolution {
        use pier_dns::Resolution;
        let nets = self.net.list();
        let by_id: HashMap<&str, &Network> = nets.iter().map(|n| (n.id.as_str(), n)).collect();
        let inner = self.lock();
        let Some(me) = inner.get(id).map(|e| &e.c) else {
            return Resolution::Forward;
        };
        // The requester's user networks.
        let mine: Vec<&Network> = me
            .networks
            .values()
            .filter_map(|ep| by_id.get(ep.network_id.as_str()).copied())
            .filter(|n| n.user_defined())
            .collect();
        if qtype == pier_dns::message::TYPE_PTR {
            let Some(ip) = ptr_address(name) else {
                return Resolution::Forward;
            };
            for e in inner.values().filter(|e| e.c.state.running) {
                for ep in e.c.networks.values() {
                    if let Some(n) = mine.iter().find(|n| n.id == ep.network_id) {
                        if ep.addresses().any(|a| a == ip) {
                            return Resolution::Names(vec![format!("{}.{}", e.c.name, n.name)]);
                        }
                    }
                }
            }
            return Resolution::Forward;
        }
        // Links of the requester are names only it resolves.
        let mut lookup = name.to_string();
        for link in str_list(&me.host_config["Links"]) {
            let (target, alias) = parse_link(&link);
            if alias.eq_ignore_ascii_case(name) {
                lookup = target;
            }
        }
        let mut found = Vec::new();
        let mut known = false;
        for e in inner.values().filter(|e| e.c.state.running) {
            for ep in e.c.networks.values() {
                let Some(n) = mine.iter().find(|n| n.id == ep.network_id) else {
                    continue;
                };
                let matches = |candidate: &str| {
                    candidate.eq_ignore_ascii_case(&lookup)
                        || format!("{candidate}.{}", n.name).eq_ignore_ascii_case(&lookup)
                };
                let hit = matches(&e.c.name)
                    || matches(e.c.short_id())
                    || matches(&e.c.hostname)
                    || ep.aliases.iter().any(|a| matches(a));
                if hit {
                    known = true;
                    found.extend(ep.addresses());
                }
            }
        }
        if known {
            found.sort();
            found.dedup();
            Resolution::Addresses(found)
        } else {
            Resolution::Forward
        }
    }

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

    fn network_create_blocking(&self, body: &Value) -> Result<(String, String), EngineError> {
        let name = body["Name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            return Err(EngineError::InvalidParameter(
                "network name is required".into(),
            ));
        }
        let valid = name.as_bytes()[0].is_ascii_alphanumeric()
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !valid {
            return Err(EngineError::InvalidParameter(format!(
                "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
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
            Some(d) if d.is_empty() || d.len() > 15 || d.contains(['/', ' ']) => {
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
    fn network_users(&self, id: &str) -> Vec<Container> {
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
        self.network_event(&n, "disconnect", &[("container", c.id.clone())]);
        Ok(())
    }

    fn network_event(&self, n: &Network, action: &str, extra: &[(&str, String)]) {
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
            let ipam = if ep.ipv4_requested.is_some() || ep.ipv6_requested.is_some() {
                json!({
                    "IPv4Address": ep.ipv4_requested.map(|a| a.to_string()).unwrap_or_default(),
                    "IPv6Address": ep.ipv6_requested.map(|a| a.to_string()).unwrap_or_default(),
                })
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

/// The container's endpoints, its network mode's first.
fn primary_order(c: &Container) -> Vec<(String, &Endpoint)> {
    let mode = c.host_config["NetworkMode"].as_str().unwrap_or("");
    let mut out: Vec<(String, &Endpoint)> = c
        .networks
        .iter()
        .filter(|(k, _)| k.as_str() == mode)
        .map(|(k, v)| (k.clone(), v))
        .collect();
    out.extend(
        c.networks
            .iter()
            .filter(|(k, _)| k.as_str() != mode)
            .map(|(k, v)| (k.clone(), v)),
    );
    out
}

/// `name:alias` (also `/name:/me/alias`, as Docker stores links).
fn parse_link(link: &str) -> (String, String) {
    let (target, alias) = link.split_once(':').unwrap_or((link, link));
    let target = target.trim_start_matches('/').to_string();
    let alias = alias.rsplit('/').next().unwrap_or(alias).to_string();
    (target, alias)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The address of an `in-addr.arpa` / `ip6.arpa` name.
fn ptr_address(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = rest
            .split('.')
            .map(|o| o.parse().ok())
            .collect::<Option<_>>()?;
        if octets.len() != 4 {
            return None;
        }
        octets.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(
            octets[0], octets[1], octets[2], octets[3],
        )));
    }
    if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<&str> = rest.split('.').collect();
        if nibbles.len() != 32 {
            return None;
        }
        let hex: String = nibbles.iter().rev().copied().collect();
        let value = u128::from_str_radix(&hex, 16).ok()?;
        return Some(IpAddr::V6(std::net::Ipv6Addr::from(value)));
    }
    None
}

/// One `IPAM.Config` entry of a network create, checked as Docker does.
fn parse_subnet_config(cfg: &Value) -> Result<SubnetConfig, EngineError> {
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

/// The DNS resolver of one container, looking names up in the engine's state.
struct ContainerResolver {
    engine: Weak<Engine>,
    id: String,
}

impl pier_dns::Resolver for ContainerResolver {
    fn resolve(&self, name: &str, qtype: u16) -> pier_dns::Resolution {
        match self.engine.upgrade() {
            Some(engine) => engine.dns_lookup(&self.id, name, qtype),
            None => pier_dns::Resolution::Forward,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptr_names() {
        assert_eq!(
            ptr_address("2.0.18.172.in-addr.arpa"),
            Some("172.18.0.2".parse().unwrap())
        );
        assert_eq!(ptr_address("example.test"), None);
    }

    #[test]
    fn links_as_given_and_as_stored() {
        assert_eq!(parse_link("db:d"), ("db".into(), "d".into()));
        assert_eq!(parse_link("/db:/web/d"), ("db".into(), "d".into()));
        assert_eq!(parse_link("db"), ("db".into(), "db".into()));
    }

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

    #[test]
    fn port_specs() {
        assert_eq!(port_key("80/tcp").unwrap(), (80, "tcp".into()));
        assert_eq!(port_key("53/UDP").unwrap(), (53, "udp".into()));
        assert!(port_key("0/tcp").is_err());
        assert_eq!(host_port_range("").unwrap(), (0, 0));
        assert_eq!(host_port_range("8000-8002").unwrap(), (8000, 8002));
        assert!(host_port_range("9-1").is_err());
    }
}
