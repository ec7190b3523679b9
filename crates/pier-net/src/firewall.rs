//! NAT, port publishing and network isolation in Pier's own nftables table, and host
//! port reservations. Nothing outside the table is ever touched.
//!
//! # What the table does
//!
//! Pier does what Docker does with `--userland-proxy=false`, in one nftables table of
//! family `inet` ([`Ruleset::table`]), replaced as a whole in one transaction on every
//! change ([`Ruleset::render`], [`Nft::apply`]):
//!
//! - `prerouting` (nat, `dstnat`) and `output` (nat, -100): traffic to any local
//!   address (`fib daddr type local`, so the host's addresses, the bridges' gateways
//!   and 127.0.0.1) jumps to `published`, one DNAT rule per [`PortMapping`]. Like
//!   Docker without its proxy, `[::1]:port` is not published (the kernel will not
//!   route a `::1` source out of a bridge).
//! - `postrouting` (nat, `srcnat`): masquerade a network's subnets leaving through any
//!   other interface than its bridge; masquerade DNATed traffic from a bridge's subnet
//!   going back out that bridge (hairpin: a container reaching its own or a
//!   neighbour's published port through a host address — without it the reply would
//!   bypass the host's conntrack); masquerade 127.0.0.0/8 sources going out a bridge
//!   (the host reaching `127.0.0.1:hostport`, which also needs the sysctls of
//!   [`bridge_sysctls`]).
//! - `forward` (filter, `filter`, policy accept): an `internal` network's bridge only
//!   forwards to itself; traffic between two different Pier bridges is dropped unless
//!   it was DNATed by a published port (a container may reach another network's
//!   published ports through the host, like with Docker's default userland proxy,
//!   but never its containers directly).
//!
//! Hairpin also needs hairpin mode on each container's bridge port (`ip link set
//! <veth> type bridge_slave hairpin on`, netlink `IFLA_BRPORT_MODE`), as Docker sets
//! it with `--userland-proxy=false`: when `br_netfilter` is loaded (it is wherever
//! Docker ran), a DNAT to a container on the bridge the packet came in from is
//! *bridged* back, out of the port it arrived on. The daemon also sets
//! [`bridge_sysctls`] per bridge and [`forwarding_sysctls`] once.
//!
//! # Coexisting with the host's firewall
//!
//! The table only ever *drops* or *rewrites*; it never accepts anything explicitly,
//! and its base chains have policy accept. In nftables every base chain attached to a
//! hook gets its say: an accept in one table does not override a drop in another
//! (ufw's or firewalld's tables, iptables-nft's `filter FORWARD`), whereas a drop
//! anywhere is final. So the host's own firewall keeps the last word on what reaches
//! containers (a `FORWARD` policy of drop — as ufw sets — blocks published ports until
//! the administrator allows them), and Pier never flushes, reorders or edits anything
//! it did not create.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ipnet::IpNet;

/// What went wrong with the firewall or a host port.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// nft failed: {0}
    #[error("nft failed: {0}")]
    Nft(String),
    /// Bind for {address} failed: port is already allocated
    #[error("Bind for {0} failed: port is already allocated")]
    PortInUse(String),
    /// {context}: {source}
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as nft (and Docker's port specs) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One bridge network's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    /// The network's subnets (v4 and v6).
    pub subnets: Vec<IpNet>,
    /// `--internal`: no traffic in or out of the bridge except among its members.
    pub internal: bool,
    /// Masquerade traffic leaving the host from the subnets (true unless internal or
    /// `com.docker.network.bridge.enable_ip_masquerade=false`).
    pub masquerade: bool,
}

/// A published port: host `host_ip:host_port` → `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub protocol: Protocol,
    /// `None`: every host address (0.0.0.0 / ::).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
    /// The bridge the container is reached through.
    pub bridge: String,
}

/// Everything Pier's table holds; rendered and applied as one atomic nft transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// nftables table name (family `inet`), e.g. `pier_pier0`.
    pub table: String,
    pub networks: Vec<NetworkRules>,
    pub ports: Vec<PortMapping>,
}

impl Ruleset {
    /// The nft script that replaces the table with this ruleset atomically.
    ///
    /// `table inet T {}` (creates it if missing) then `delete table inet T` then the
    /// new table: `nft -f -` runs the whole script as one transaction, so the old rules
    /// are never half-replaced and the table never missing in between.
    ///
    /// A mapping whose host address and container address are of different families
    /// renders nothing; a wildcard mapping (`host_ip` `None`, `0.0.0.0` or `::`) maps
    /// the host addresses of its container address's family.
    pub fn render(&self) -> String {
        let table = &self.table;
        let mut out = String::new();
        let _ = writeln!(out, "# Pier's firewall table, replaced as a whole.");
        let _ = writeln!(out, "table inet {table} {{}}");
        let _ = writeln!(out, "delete table inet {table}");
        let _ = writeln!(out, "table inet {table} {{");

        // DNAT of published ports.
        for (chain, hook, priority) in [
            ("prerouting", "prerouting", "dstnat"),
            ("output", "output", "-100"),
        ] {
            let _ = writeln!(out, "\tchain {chain} {{");
            let _ = writeln!(
                out,
                "\t\ttype nat hook {hook} priority {priority}; policy accept;"
            );
            if hook == "output" {
                // The kernel never lets a ::1 source leave through a bridge (there is
                // no IPv6 route_localnet): leave [::1]:port alone, so it is refused
                // rather than black-holed.
                let _ = writeln!(out, "\t\tip6 daddr ::1 return");
            }
            let _ = writeln!(out, "\t\tfib daddr type local jump published");
            let _ = writeln!(out, "\t}}");
        }
        let _ = writeln!(out, "\tchain published {{");
        for mapping in &self.ports {
            if let Some(rule) = dnat_rule(mapping) {
                let _ = writeln!(out, "\t\t{rule}");
            }
        }
        let _ = writeln!(out, "\t}}");

        // Source NAT.
        let networks = self.unique_networks();
        let _ = writeln!(out, "\tchain postrouting {{");
        let _ = writeln!(
            out,
            "\t\ttype nat hook postrouting priority srcnat; policy accept;"
        );
        for network in &networks {
            let bridge = &network.bridge;
            if network.masquerade && !network.internal {
                for subnet in &network.subnets {
                    let family = family_keyword(subnet);
                    let subnet = subnet.trunc();
                    let _ = writeln!(
                        out,
                        "\t\t{family} saddr {subnet} oifname != \"{bridge}\" masquerade"
                    );
                }
            }
            for subnet in &network.subnets {
                let family = family_keyword(subnet);
                let subnet = subnet.trunc();
                let _ = writeln!(
                    out,
                    "\t\toifname \"{bridge}\" ct status dnat {family} saddr {subnet} masquerade"
                );
            }
            let _ = writeln!(
                out,
                "\t\toifname \"{bridge}\" ip saddr 127.0.0.0/8 masquerade"
            );
        }
        let _ = writeln!(out, "\t}}");

        // Isolation.
        let _ = writeln!(out, "\tchain forward {{");
        let _ = writeln!(
            out,
            "\t\ttype filter hook forward priority filter; policy accept;"
        );
        for network in networks.iter().filter(|n| n.internal) {
            let bridge = &network.bridge;
            let _ = writeln!(out, "\t\tiifname \"{bridge}\" oifname != \"{bridge}\" drop");
            let _ = writeln!(out, "\t\toifname \"{bridge}\" iifname != \"{bridge}\" drop");
        }
        let mut open: Vec<&str> = networks
            .iter()
            .filter(|n| !n.internal)
            .map(|n| n.bridge.as_str())
            .collect();
        open.sort_unstable();
        for bridge in &open {
            let others: Vec<String> = open
                .iter()
                .filter(|other| *other != bridge)
                .map(|other| format!("\"{other}\""))
                .collect();
            if others.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\t\tiifname \"{bridge}\" oifname {{ {} }} ct status & dnat == 0 drop",
                others.join(", ")
            );
        }
        // Only published ports (DNAT) open a container to the outside: a new
        // connection from another interface straight to a container's address is
        // dropped (otherwise any neighbour routing the subnet via this host reaches
        // every port of every container).
        for network in networks.iter().filter(|n| !n.internal) {
            let bridge = &network.bridge;
            let _ = writeln!(
                out,
                "\t\toifname \"{bridge}\" iifname != \"{bridge}\" ct state new ct status & dnat == 0 drop"
            );
        }
        let _ = writeln!(out, "\t}}");

        // route_localnet on the bridges lets the host reach published ports through
        // 127.0.0.1; it must not let a container reach what the host serves on
        // loopback by sending packets for 127.0.0.0/8 to its gateway (CVE-2020-8558).
        let _ = writeln!(out, "\tchain input {{");
        let _ = writeln!(
            out,
            "\t\ttype filter hook input priority filter; policy accept;"
        );
        for network in &networks {
            let bridge = &network.bridge;
            let _ = writeln!(
                out,
                "\t\tiifname \"{bridge}\" ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop"
            );
        }
        let _ = writeln!(out, "\t}}");
        let _ = writeln!(out, "}}");
        out
    }

    /// The networks, first occurrence of each bridge only; a bridge listed twice keeps
    /// the union of its subnets and the stricter settings.
    fn unique_networks(&self) -> Vec<NetworkRules> {
        let mut unique: Vec<NetworkRules> = Vec::new();
        for network in &self.networks {
            if let Some(existing) = unique.iter_mut().find(|n| n.bridge == network.bridge) {
                for subnet in &network.subnets {
                    if !existing.subnets.contains(subnet) {
                        existing.subnets.push(*subnet);
                    }
                }
                existing.internal |= network.internal;
                existing.masquerade &= network.masquerade;
            } else {
                unique.push(network.clone());
            }
        }
        unique
    }

    /// Rejects names nft would misparse (or that would inject rules).
    fn validate(&self) -> Result<(), FirewallError> {
        validate_table(&self.table)?;
        for bridge in self
            .networks
            .iter()
            .map(|n| &n.bridge)
            .chain(self.ports.iter().map(|p| &p.bridge))
        {
            validate_ifname(bridge)?;
        }
        Ok(())
    }
}

fn family_keyword(subnet: &IpNet) -> &'static str {
    match subnet {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// The DNAT rule of one mapping, `None` when its host and container addresses are of
/// different families.
fn dnat_rule(mapping: &PortMapping) -> Option<String> {
    let proto = mapping.protocol.as_str();
    let hport = mapping.host_port;
    let cport = mapping.container_port;
    let container = mapping.container_ip.to_canonical();
    let host = mapping.host_ip.map(|ip| ip.to_canonical());
    let matcher = match (host, container) {
        (Some(IpAddr::V4(_)), IpAddr::V6(_)) | (Some(IpAddr::V6(_)), IpAddr::V4(_)) => return None,
        (Some(IpAddr::V4(h)), IpAddr::V4(_)) if !h.is_unspecified() => format!("ip daddr {h}"),
        (Some(IpAddr::V6(h)), IpAddr::V6(_)) if !h.is_unspecified() => format!("ip6 daddr {h}"),
        (_, IpAddr::V4(_)) => "meta nfproto ipv4".to_string(),
        (_, IpAddr::V6(_)) => "meta nfproto ipv6".to_string(),
    };
    let target = match container {
        IpAddr::V4(c) => format!("dnat ip to {c}:{cport}"),
        IpAddr::V6(c) => format!("dnat ip6 to [{c}]:{cport}"),
    };
    Some(format!("{matcher} {proto} dport {hport} {target}"))
}

fn validate_table(table: &str) -> Result<(), FirewallError> {
    let mut chars = table.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok && table.len() <= 255 {
        Ok(())
    } else {
        Err(FirewallError::Nft(format!("invalid table name {table:?}")))
    }
}

fn validate_ifname(name: &str) -> Result<(), FirewallError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            // No nft wildcards (`*`) or quoting: a name must match itself only.
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(FirewallError::Nft(format!(
            "invalid interface name {name:?}"
        )))
    }
}

/// The sysctls the daemon must set for each bridge before publishing ports on it:
/// `(path under /proc/sys, value)` pairs, e.g.
/// `("/proc/sys/net/ipv4/conf/pier0/route_localnet", "1")` so that the host can reach
/// published ports at `127.0.0.1` (the DNATed packets leave through the bridge with
/// their 127.0.0.1 source until `postrouting` masquerades them). Paths rather than
/// dotted names because interface names may contain dots. Write them inside the
/// namespace the bridge lives in.
pub fn bridge_sysctls(bridge: &str) -> Vec<(String, String)> {
    vec![(
        format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1".to_string(),
    )]
}

/// The host-wide sysctls bridge networking needs (as Docker sets them): IPv4
/// forwarding, and IPv6 forwarding when a network has IPv6. Same form as
/// [`bridge_sysctls`].
pub fn forwarding_sysctls(ipv6: bool) -> Vec<(String, String)> {
    let mut sysctls = vec![("/proc/sys/net/ipv4/ip_forward".to_string(), "1".to_string())];
    if ipv6 {
        sysctls.push((
            "/proc/sys/net/ipv6/conf/all/forwarding".to_string(),
            "1".to_string(),
        ));
        sysctls.push((
            "/proc/sys/net/ipv6/conf/default/forwarding".to_string(),
            "1".to_string(),
        ));
    }
    sysctls
}

/// Runs `nft`, optionally inside a network namespace (for tests).
#[derive(Debug, Clone)]
pub struct Nft {
    pub program: PathBuf,
    /// Enter this network namespace (an nsfs path) before running nft.
    pub netns: Option<PathBuf>,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            program: PathBuf::from("nft"),
            netns: None,
        }
    }
}

impl Nft {
    /// Replaces Pier's table with `rules`, atomically.
    pub fn apply(&self, rules: &Ruleset) -> Result<(), FirewallError> {
        rules.validate()?;
        self.run_script(&rules.render())
    }

    /// Deletes table `table` if it exists.
    pub fn delete_table(&self, table: &str) -> Result<(), FirewallError> {
        validate_table(table)?;
        // Declaring it first makes the delete succeed when it is absent, in one
        // transaction (`destroy table` needs nft 1.0.8 and Linux 6.3).
        self.run_script(&format!(
            "table inet {table} {{}}\ndelete table inet {table}\n"
        ))
    }

    /// Pipes `script` into `nft -f -`; a non-zero exit becomes [`FirewallError::Nft`]
    /// with nft's stderr.
    fn run_script(&self, script: &str) -> Result<(), FirewallError> {
        let program = self.program.display().to_string();
        let mut command = Command::new(&self.program);
        command
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Opened in the parent (CLOEXEC): the child only calls setns on it.
        let netns = match &self.netns {
            Some(path) => Some(
                std::fs::File::open(path).map_err(|source| FirewallError::Io {
                    context: format!("opening network namespace {}", path.display()),
                    source,
                })?,
            ),
            None => None,
        };
        if let Some(netns) = &netns {
            let fd = netns.as_raw_fd();
            // SAFETY: the closure runs in the forked child of a possibly multithreaded
            // process, between fork and exec: it only makes the setns system call and
            // reads errno (both async-signal-safe), allocates nothing and takes no
            // locks. `fd` stays open in the child until exec (the File lives in the
            // parent across spawn, and fork duplicated the descriptor table).
            unsafe {
                command.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().map_err(|source| FirewallError::Io {
            context: match &self.netns {
                Some(path) => format!("running {program} in {}", path.display()),
                None => format!("running {program}"),
            },
            source,
        })?;
        drop(netns);
        let stdin = child.stdin.take();
        // Feed stdin from a thread so a chatty nft cannot deadlock us on a full pipe.
        let output = std::thread::scope(|scope| {
            let writer = scope.spawn(move || match stdin {
                Some(mut stdin) => stdin.write_all(script.as_bytes()),
                None => Ok(()),
            });
            let output = child.wait_with_output();
            let written = writer.join().unwrap_or(Ok(()));
            (output, written)
        });
        let (output, written) = output;
        let output = output.map_err(|source| FirewallError::Io {
            context: format!("waiting for {program}"),
            source,
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(FirewallError::Nft(if stderr.is_empty() {
                format!("{program} exited with {}", output.status)
            } else {
                stderr
            }));
        }
        written.map_err(|source| FirewallError::Io {
            context: format!("writing the ruleset to {program}"),
            source,
        })
    }
}

/// A host port held by a bound (not listening) socket while a container publishes it,
/// so no other process or container can take it. Dropping it frees the port.
#[derive(Debug)]
pub struct PortReservation {
    pub protocol: Protocol,
    pub host_ip: Option<IpAddr>,
    /// The port actually held (the kernel's choice when 0 was asked).
    pub port: u16,
    _socket: OwnedFd,
}

impl PortReservation {
    /// The held TCP port as a listening socket (for a userland proxy that serves
    /// what DNAT cannot): the port stays held by the listener.
    pub fn into_listener(self) -> Result<std::net::TcpListener, FirewallError> {
        rustix::net::listen(&self._socket, 128).map_err(|e| FirewallError::Io {
            context: format!("listen on port {}", self.port),
            source: e.into(),
        })?;
        Ok(std::net::TcpListener::from(self._socket))
    }
}

/// Reserves `host_ip:port` (port 0: a free ephemeral port). For `host_ip` `None` it
/// binds the wildcard address (v4; and v6 when `ipv6`).
///
/// `None` binds `0.0.0.0` only; to hold the v6 wildcard too, reserve `Some(::)` as
/// well (v6 addresses are bound with `IPV6_V6ONLY`, so both can coexist). The socket
/// is close-on-exec, without `SO_REUSEADDR`, and a TCP one is never listened on
/// (connections to the port are refused unless DNATed). In use:
/// [`FirewallError::PortInUse`] (`Bind for 0.0.0.0:8080 failed: port is already
/// allocated`).
pub fn reserve_port(
    protocol: Protocol,
    host_ip: Option<IpAddr>,
    port: u16,
) -> Result<PortReservation, FirewallError> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    let ip = host_ip
        .map(|ip| ip.to_canonical())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let address = SocketAddr::new(ip, port);
    let family = if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let kind = match protocol {
        Protocol::Tcp => SocketType::STREAM,
        Protocol::Udp => SocketType::DGRAM,
    };
    let io = |context: String| {
        move |e: rustix::io::Errno| FirewallError::Io {
            context,
            source: e.into(),
        }
    };
    let socket = rustix::net::socket_with(family, kind, SocketFlags::CLOEXEC, None)
        .map_err(io(format!("creating a {} socket", protocol.as_str())))?;
    if ip.is_ipv6() {
        rustix::net::sockopt::set_ipv6_v6only(&socket, true)
            .map_err(io("setting IPV6_V6ONLY".to_string()))?;
    }
    rustix::net::sockopt::set_socket_reuseaddr(&socket, false)
        .map_err(io("clearing SO_REUSEADDR".to_string()))?;
    match rustix::net::bind(&socket, &address) {
        Ok(()) => {}
        Err(rustix::io::Errno::ADDRINUSE) => {
            return Err(FirewallError::PortInUse(address.to_string()))
        }
        Err(e) => return Err(io(format!("binding {}/{address}", protocol.as_str()))(e)),
    }
    let local = rustix::net::getsockname(&socket)
        .map_err(io(format!("reading the address of {address}")))?;
    let port = SocketAddr::try_from(local)
        .map_err(io(format!("reading the address of {address}")))?
        .port();
    Ok(PortReservation {
        protocol,
        host_ip,
        port,
        _socket: socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn network(bridge: &str, subnets: &[&str], internal: bool) -> NetworkRules {
        NetworkRules {
            bridge: bridge.to_string(),
            subnets: subnets.iter().map(|s| net(s)).collect(),
            internal,
            masquerade: !internal,
        }
    }

    fn port(
        protocol: Protocol,
        host_ip: Option<&str>,
        host_port: u16,
        container: &str,
        container_port: u16,
    ) -> PortMapping {
        PortMapping {
            protocol,
            host_ip: host_ip.map(ip),
            host_port,
            container_ip: ip(container),
            container_port,
            bridge: "pier0".to_string(),
        }
    }

    fn lines(script: &str) -> Vec<String> {
        script.lines().map(|l| l.trim().to_string()).collect()
    }

    fn has(script: &str, line: &str) -> bool {
        lines(script).iter().any(|l| l == line)
    }

    fn sample() -> Ruleset {
        Ruleset {
            table: "pier".to_string(),
            networks: vec![
                network("pier0", &["172.17.0.0/16", "fd00:17::/64"], false),
                network("br-a", &["172.18.0.0/16"], false),
                network("br-int", &["172.19.0.0/16"], true),
            ],
            ports: vec![
                port(Protocol::Tcp, None, 8080, "172.17.0.2", 80),
                port(Protocol::Tcp, None, 8080, "fd00:17::2", 80),
                port(Protocol::Udp, Some("127.0.0.1"), 5353, "172.17.0.2", 53),
                port(Protocol::Tcp, Some("::1"), 9000, "fd00:17::2", 9001),
                // Family mismatches: never rendered.
                port(Protocol::Tcp, Some("127.0.0.1"), 7000, "fd00:17::2", 7000),
                port(Protocol::Tcp, Some("::1"), 7001, "172.17.0.2", 7001),
                // Explicit wildcards are per family.
                port(Protocol::Tcp, Some("0.0.0.0"), 7002, "172.17.0.3", 80),
                port(Protocol::Tcp, Some("0.0.0.0"), 7003, "fd00:17::3", 80),
                port(Protocol::Tcp, Some("::"), 7004, "fd00:17::3", 80),
            ],
        }
    }

    #[test]
    fn replaces_table_atomically() {
        let script = sample().render();
        let l = lines(&script);
        let first = l.iter().position(|l| l == "table inet pier {}").unwrap();
        assert_eq!(l[first + 1], "delete table inet pier");
        assert_eq!(l[first + 2], "table inet pier {");
        assert_eq!(l.last().unwrap(), "}");
        // Nothing but our table is named.
        for line in &l {
            if line.contains("table") {
                assert!(
                    line.contains("table inet pier") || line.starts_with('#'),
                    "{line}"
                );
            }
            assert!(!line.starts_with("flush"), "{line}");
        }
    }

    #[test]
    fn dnat_chains() {
        let script = sample().render();
        assert!(has(
            &script,
            "type nat hook prerouting priority dstnat; policy accept;"
        ));
        assert!(has(
            &script,
            "type nat hook output priority -100; policy accept;"
        ));
        let l = lines(&script);
        assert_eq!(
            l.iter()
                .filter(|l| *l == "fib daddr type local jump published")
                .count(),
            2
        );
        // Only in output, before the jump.
        let output = l.iter().position(|l| l == "chain output {").unwrap();
        assert_eq!(l[output + 2], "ip6 daddr ::1 return");
        assert_eq!(l[output + 3], "fib daddr type local jump published");
        assert_eq!(script.matches("ip6 daddr ::1 return").count(), 1);
        for rule in [
            "meta nfproto ipv4 tcp dport 8080 dnat ip to 172.17.0.2:80",
            "meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd00:17::2]:80",
            "ip daddr 127.0.0.1 udp dport 5353 dnat ip to 172.17.0.2:53",
            "ip6 daddr ::1 tcp dport 9000 dnat ip6 to [fd00:17::2]:9001",
            "meta nfproto ipv4 tcp dport 7002 dnat ip to 172.17.0.3:80",
            "meta nfproto ipv6 tcp dport 7004 dnat ip6 to [fd00:17::3]:80",
        ] {
            assert!(has(&script, rule), "missing {rule:?} in\n{script}");
        }
        for port in ["7000", "7001", "7003"] {
            assert!(
                !script.contains(&format!("dport {port} ")),
                "{port} rendered in\n{script}"
            );
        }
    }

    #[test]
    fn postrouting() {
        let script = sample().render();
        assert!(has(
            &script,
            "type nat hook postrouting priority srcnat; policy accept;"
        ));
        for rule in [
            "ip saddr 172.17.0.0/16 oifname != \"pier0\" masquerade",
            "ip6 saddr fd00:17::/64 oifname != \"pier0\" masquerade",
            "ip saddr 172.18.0.0/16 oifname != \"br-a\" masquerade",
            "oifname \"pier0\" ct status dnat ip saddr 172.17.0.0/16 masquerade",
            "oifname \"pier0\" ct status dnat ip6 saddr fd00:17::/64 masquerade",
            "oifname \"br-a\" ct status dnat ip saddr 172.18.0.0/16 masquerade",
            "oifname \"br-int\" ct status dnat ip saddr 172.19.0.0/16 masquerade",
            "oifname \"pier0\" ip saddr 127.0.0.0/8 masquerade",
            "oifname \"br-a\" ip saddr 127.0.0.0/8 masquerade",
        ] {
            assert!(has(&script, rule), "missing {rule:?} in\n{script}");
        }
        // Internal networks never masquerade out.
        assert!(!script.contains("saddr 172.19.0.0/16 oifname !="));
    }

    #[test]
    fn masquerade_off() {
        let mut rules = sample();
        rules.networks[1].masquerade = false;
        let script = rules.render();
        assert!(!script.contains("ip saddr 172.18.0.0/16 oifname != \"br-a\" masquerade"));
        // Hairpin still works.
        assert!(has(
            &script,
            "oifname \"br-a\" ct status dnat ip saddr 172.18.0.0/16 masquerade"
        ));
    }

    #[test]
    fn forward_isolation() {
        let script = sample().render();
        assert!(has(
            &script,
            "type filter hook forward priority filter; policy accept;"
        ));
        for rule in [
            "iifname \"br-int\" oifname != \"br-int\" drop",
            "oifname \"br-int\" iifname != \"br-int\" drop",
            "iifname \"br-a\" oifname { \"pier0\" } ct status & dnat == 0 drop",
            "iifname \"pier0\" oifname { \"br-a\" } ct status & dnat == 0 drop",
        ] {
            assert!(has(&script, rule), "missing {rule:?} in\n{script}");
        }
        // Never an accept, never a drop policy.
        for line in lines(&script) {
            if line.starts_with("type ") {
                assert!(line.ends_with("policy accept;"), "{line}");
            } else {
                assert!(!line.contains("accept"), "{line}");
            }
        }
    }

    #[test]
    fn isolation_with_three_bridges_and_duplicates() {
        let rules = Ruleset {
            table: "t".to_string(),
            networks: vec![
                network("c", &["10.3.0.0/24"], false),
                network("a", &["10.1.0.0/24"], false),
                network("b", &["10.2.0.0/24"], false),
                network("a", &["fd00:1::/64"], false),
            ],
            ports: vec![],
        };
        let script = rules.render();
        for rule in [
            "iifname \"a\" oifname { \"b\", \"c\" } ct status & dnat == 0 drop",
            "iifname \"b\" oifname { \"a\", \"c\" } ct status & dnat == 0 drop",
            "iifname \"c\" oifname { \"a\", \"b\" } ct status & dnat == 0 drop",
            "ip6 saddr fd00:1::/64 oifname != \"a\" masquerade",
        ] {
            assert!(has(&script, rule), "missing {rule:?} in\n{script}");
        }
        assert_eq!(
            script.matches("oifname \"a\" ip saddr 127.0.0.0/8").count(),
            1
        );
    }

    #[test]
    fn single_network_and_empty() {
        let rules = Ruleset {
            table: "t".to_string(),
            networks: vec![network("pier0", &["172.17.0.5/16"], false)],
            ports: vec![],
        };
        let script = rules.render();
        // Host bits are cut from subnets.
        assert!(has(
            &script,
            "ip saddr 172.17.0.0/16 oifname != \"pier0\" masquerade"
        ));
        // One network: no isolation rule, but only DNAT opens it to the outside, and
        // loopback is not reachable through its bridge.
        assert!(!script.contains("oifname { "));
        assert!(has(
            &script,
            "oifname \"pier0\" iifname != \"pier0\" ct state new ct status & dnat == 0 drop"
        ));
        assert!(has(
            &script,
            "iifname \"pier0\" ip daddr 127.0.0.0/8 ct state != { established, related } drop"
        ));
        let empty = Ruleset {
            table: "t".to_string(),
            ..Default::default()
        }
        .render();
        assert!(has(&empty, "chain published {"));
        assert!(has(&empty, "chain forward {"));
    }

    #[test]
    fn validation() {
        let mut rules = sample();
        rules.table = "bad table".to_string();
        assert!(matches!(rules.validate(), Err(FirewallError::Nft(_))));
        rules.table = "pier_pier0".to_string();
        assert!(rules.validate().is_ok());
        rules.networks[0].bridge = "x\" drop".to_string();
        assert!(rules.validate().is_err());
        rules.networks[0].bridge = "a-very-long-name-too-long".to_string();
        assert!(rules.validate().is_err());
        assert!(validate_table("1abc").is_err());
        assert!(validate_table("").is_err());
        assert!(validate_ifname("br-0123456789ab").is_ok());
    }

    #[test]
    fn sysctls() {
        assert_eq!(
            bridge_sysctls("pier0"),
            vec![(
                "/proc/sys/net/ipv4/conf/pier0/route_localnet".to_string(),
                "1".to_string()
            )]
        );
        assert_eq!(forwarding_sysctls(false).len(), 1);
        assert_eq!(forwarding_sysctls(true).len(), 3);
    }

    #[test]
    fn port_in_use_text() {
        assert_eq!(
            FirewallError::PortInUse("0.0.0.0:8080".to_string()).to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
    }

    #[test]
    fn nft_missing_program() {
        let nft = Nft {
            program: PathBuf::from("/nonexistent/nft"),
            netns: None,
        };
        let err = nft.delete_table("t").unwrap_err();
        assert!(matches!(err, FirewallError::Io { .. }), "{err}");
    }
}
