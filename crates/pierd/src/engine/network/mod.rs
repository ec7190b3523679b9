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

use super::spec::str_list;
use super::{events, internal, random_id, Container, Engine, EngineError};

mod api;
mod endpoints;
pub(crate) use endpoints::clear_net_runtime;
mod resolve;

pub const BRIDGE: &str = "bridge";
pub const HOST: &str = "host";
pub const NONE: &str = "none";

/// The prefix of the host ends of Pier's veths.
const VETH_PREFIX: &str = "pv";

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
            name if !valid_device_name(name) => {
                return Err(bad(
                    "--bridge",
                    name,
                    &"an interface name is 1 to 15 of [A-Za-z0-9_.-]",
                ));
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
    /// Pier made the bridge device (and so may delete it); false for a bridge of the
    /// host that `--bridge` named.
    #[serde(default)]
    pub owned_device: bool,
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
    /// `IPAMConfig.LinkLocalIPs`: more addresses on the interface.
    #[serde(default)]
    pub link_local_requested: Vec<IpAddr>,
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

/// A bridge name Pier accepts: 1 to 15 of `[A-Za-z0-9_.-]` (nothing nft or the
/// kernel would read as a pattern or a path).
fn valid_device_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
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
                    owned_device: false,
                };
                self.store.put_network(&n)?;
                self.net.networks().insert(n.id.clone(), n);
            }
        }
        self.init_default_bridge()?;
        let nl = link::Netlink::open().map_err(net_err)?;
        for mut n in self.net.list() {
            if n.is_bridge() && self.ensure_device(&nl, &n)? && !n.owned_device {
                n.owned_device = true;
                self.store.put_network(&n)?;
                self.net.networks().insert(n.id.clone(), n);
            }
        }
        // Addresses in use, and what running containers expect to exist.
        let mut expected_links = HashSet::new();
        let mut expected_netns = HashSet::new();
        {
            let mut inner = self.lock();
            let mut in_use = self.net.in_use();
            for e in inner.values_mut() {
                if !e.c.state.running {
                    // What a crash left in the record of a stopped container (its
                    // devices are collected below) must not free addresses later.
                    let stale = !e.c.sandbox_key.is_empty()
                        || e.c.networks.values().any(|ep| !ep.endpoint_id.is_empty());
                    if stale {
                        for ep in e.c.networks.values_mut() {
                            ep.clear_runtime();
                        }
                        e.c.published.clear();
                        e.c.sandbox_key.clear();
                        let _ = self.store.put(&e.c);
                    }
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
        // Pier's veths on its bridges that no running container owns are a crash's
        // leftovers (others' veths on a bridge of the host stay).
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
            let pier_veth = l.kind.as_deref() == Some("veth") && l.name.starts_with(VETH_PREFIX);
            if ours && pier_veth && !expected_links.contains(&l.name) {
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
            owned_device: false,
        });
        if n.device != device || n.subnets != subnets {
            // A different bridge or subnet than last time: the old device goes.
            if n.device != device && !n.device.is_empty() && n.owned_device {
                if let Ok(nl) = link::Netlink::open() {
                    let _ = nl.delete_link(&n.device);
                }
            }
            if n.device != device {
                n.owned_device = false;
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
                if n.is_bridge() && n.owned_device {
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
pub(crate) fn parse_link(link: &str) -> (String, String) {
    let (target, alias) = link.split_once(':').unwrap_or((link, link));
    let target = target.trim_start_matches('/').to_string();
    let alias = alias.rsplit('/').next().unwrap_or(alias).to_string();
    (target, alias)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_as_given_and_as_stored() {
        assert_eq!(parse_link("db:d"), ("db".into(), "d".into()));
        assert_eq!(parse_link("/db:/web/d"), ("db".into(), "d".into()));
        assert_eq!(parse_link("db"), ("db".into(), "db".into()));
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
