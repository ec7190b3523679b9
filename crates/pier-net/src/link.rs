//! Links, addresses and routes over a synchronous rtnetlink socket.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// What went wrong talking to the kernel about links.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// netlink {op} failed: {message}
    #[error("netlink {op} failed: {message}")]
    Netlink {
        op: String,
        message: String,
        errno: i32,
    },
    /// {context}: {source}
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// no such network interface: {0}
    #[error("no such network interface: {0}")]
    NoSuchLink(String),
}

impl LinkError {
    /// The errno of a kernel refusal (or of an I/O error), if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Netlink { errno, .. } if *errno != 0 => Some(*errno),
            LinkError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    fn io(context: impl Into<String>, source: std::io::Error) -> LinkError {
        LinkError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A link as [`Netlink::links`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, … (IFLA_INFO_KIND), if any.
    pub kind: Option<String>,
    /// Index of the bridge it is enslaved to.
    pub master: Option<u32>,
}

/// A link with its state and addresses, as [`Netlink::link_details`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDetails {
    pub info: LinkInfo,
    /// Hardware address (IFLA_ADDRESS), if it is a 6-byte one.
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Its IPv4 and IPv6 addresses with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// A route of the main table, as [`Netlink::routes`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Destination network (`0.0.0.0/0` or `::/0` for a default route).
    pub destination: ipnet::IpNet,
    pub gateway: Option<IpAddr>,
    /// Index of the output interface.
    pub oif: Option<u32>,
}

/// One end of a container's connection to a bridge network.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    /// The bridge the host end joins.
    pub bridge: String,
    /// Name of the host end (≤ 15 bytes, Pier's prefix).
    pub host_ifname: String,
    /// Name inside the container (`eth0`, `eth1`, …).
    pub container_ifname: String,
    pub mac: [u8; 6],
    /// Address and prefix length inside the container.
    pub ipv4: Option<(std::net::Ipv4Addr, u8)>,
    pub ipv6: Option<(std::net::Ipv6Addr, u8)>,
    /// More addresses (`--link-local-ip`), with their prefix lengths.
    pub link_local: Vec<(IpAddr, u8)>,
    /// Default routes via these gateways (only for the container's first network).
    pub gateway4: Option<std::net::Ipv4Addr>,
    pub gateway6: Option<std::net::Ipv6Addr>,
    pub mtu: Option<u32>,
}

/// A route or address of the host, as a network (for subnet collision checks).
pub type HostNetwork = ipnet::IpNet;

/// An rtnetlink socket bound to the network namespace it was opened in.
///
/// Requests are serialized (one exchange at a time), so a `Netlink` can be shared
/// between threads.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: AtomicU32,
    exchange: Mutex<()>,
}

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

const RT_TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;
/// `struct nlmsghdr` size.
const NLMSG_HDRLEN: usize = 16;
/// NLMSGERR_ATTR_MSG: the extended ACK's error string.
const NLMSGERR_ATTR_MSG: u16 = 1;

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, LinkError> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| LinkError::io("opening rtnetlink socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| LinkError::io("binding rtnetlink socket", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| LinkError::io("connecting rtnetlink socket", e))?;
        // Best effort: error strings from the kernel, and short ACKs.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Netlink {
            socket,
            seq: AtomicU32::new(0),
            exchange: Mutex::new(()),
        })
    }

    /// Opens a socket inside the network namespace at `netns`.
    pub fn open_in(netns: &Path) -> Result<Netlink, LinkError> {
        crate::netns::run_in(netns, Netlink::open)?
    }

    /// Every link of the namespace.
    pub fn links(&self) -> Result<Vec<LinkInfo>, LinkError> {
        let replies = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link_info(link)),
                _ => None,
            })
            .collect())
    }

    /// Index of the link named `name`, if there is one.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>, LinkError> {
        Ok(self.get_link(name)?.map(|m| m.header.index))
    }

    /// The link named `name` with its MAC, MTU, state and addresses, if there is one.
    pub fn link_details(&self, name: &str) -> Result<Option<LinkDetails>, LinkError> {
        let Some(link) = self.get_link(name)? else {
            return Ok(None);
        };
        let index = link.header.index;
        let mut details = LinkDetails {
            info: link_info(&link),
            mac: None,
            mtu: None,
            up: link.header.flags.contains(LinkFlags::Up),
            addresses: Vec::new(),
        };
        for attr in &link.attributes {
            match attr {
                LinkAttribute::Address(mac) => details.mac = <[u8; 6]>::try_from(&mac[..]).ok(),
                LinkAttribute::Mtu(mtu) => details.mtu = Some(*mtu),
                _ => {}
            }
        }
        details.addresses = self
            .addresses()?
            .into_iter()
            .filter(|(i, _, _)| *i == index)
            .map(|(_, ip, prefix)| (ip, prefix))
            .collect();
        Ok(Some(details))
    }

    /// Every route of the main table (IPv4 and IPv6).
    pub fn routes(&self) -> Result<Vec<RouteInfo>, LinkError> {
        let replies = self.request(
            "list routes",
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut routes = Vec::new();
        for reply in &replies {
            let RouteNetlinkMessage::NewRoute(route) = reply else {
                continue;
            };
            if let Some(info) = route_info(route) {
                routes.push(info);
            }
        }
        Ok(routes)
    }

    /// Brings link `name` up.
    pub fn set_link_up(&self, name: &str) -> Result<(), LinkError> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request_ack(
            &format!("set {name} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .map_err(|e| no_such_link(e, name))
    }

    /// Creates bridge `name` unless it exists, sets its MTU, gives it `addresses`
    /// (those it has already are kept) and brings it up. Returns whether it was created.
    ///
    /// IPv6 addresses are added without duplicate address detection (usable at once).
    /// An existing link of that name that is not a bridge is an error.
    pub fn ensure_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        addresses: &[(IpAddr, u8)],
    ) -> Result<bool, LinkError> {
        check_ifname(name)?;
        let mut created = false;
        let index = match self.get_link(name)? {
            Some(existing) => {
                let kind = link_info(&existing).kind;
                if kind.as_deref() != Some("bridge") {
                    return Err(LinkError::Netlink {
                        op: format!("create bridge {name}"),
                        message: format!(
                            "a link of kind {} already has that name",
                            kind.as_deref().unwrap_or("none")
                        ),
                        errno: libc::EEXIST,
                    });
                }
                if let Some(mtu) = mtu {
                    let current = existing.attributes.iter().find_map(|a| match a {
                        LinkAttribute::Mtu(m) => Some(*m),
                        _ => None,
                    });
                    if current != Some(mtu) {
                        let mut msg = LinkMessage::default();
                        msg.header.index = existing.header.index;
                        msg.attributes.push(LinkAttribute::Mtu(mtu));
                        self.request_ack(
                            &format!("set mtu {mtu} on {name}"),
                            RouteNetlinkMessage::SetLink(msg),
                            0,
                        )?;
                    }
                }
                existing.header.index
            }
            None => {
                let mut msg = LinkMessage::default();
                msg.attributes.push(LinkAttribute::IfName(name.to_string()));
                if let Some(mtu) = mtu {
                    msg.attributes.push(LinkAttribute::Mtu(mtu));
                }
                msg.attributes
                    .push(LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(
                        InfoKind::Bridge,
                    )]));
                match self.request_ack(
                    &format!("create bridge {name}"),
                    RouteNetlinkMessage::NewLink(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                ) {
                    Ok(()) => created = true,
                    // Lost a race with another creator: use theirs.
                    Err(e) if e.errno() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                self.get_link(name)?
                    .ok_or_else(|| LinkError::NoSuchLink(name.to_string()))?
                    .header
                    .index
            }
        };
        for &(ip, prefix) in addresses {
            match self.add_address(index, name, ip, prefix) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        self.set_index_up(index, name)?;
        Ok(created)
    }

    /// Deletes link `name` (for a veth: both ends). A missing link is not an error.
    pub fn delete_link(&self, name: &str) -> Result<(), LinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request_ack(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ) {
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            other => other,
        }
    }

    /// Every address and route destination of the namespace, as networks.
    ///
    /// Addresses of every link (IPv4 and IPv6) with their prefix, and the
    /// destinations of the main table's routes except default routes; deduplicated.
    pub fn host_networks(&self) -> Result<Vec<HostNetwork>, LinkError> {
        let mut networks: Vec<HostNetwork> = Vec::new();
        for (_, ip, prefix) in self.addresses()? {
            if let Ok(net) = ipnet::IpNet::new(ip, prefix) {
                networks.push(net.trunc());
            }
        }
        for route in self.routes()? {
            if route.destination.prefix_len() != 0 {
                networks.push(route.destination);
            }
        }
        networks.sort();
        networks.dedup();
        Ok(networks)
    }

    /// Connects the namespace at `netns` to `spec.bridge`: a veth pair whose host end
    /// joins the bridge and comes up, whose other end is created inside the namespace
    /// as `spec.container_ifname` with the MAC, addresses, MTU and default routes of
    /// `spec`. On error nothing is left behind (the pair is deleted).
    pub fn attach(&self, netns: &Path, spec: &EndpointSpec) -> Result<(), LinkError> {
        check_ifname(&spec.host_ifname)?;
        check_ifname(&spec.container_ifname)?;
        let bridge = self
            .link_index(&spec.bridge)?
            .ok_or_else(|| LinkError::NoSuchLink(spec.bridge.clone()))?;
        let ns = std::fs::File::open(netns).map_err(|e| {
            LinkError::io(format!("opening network namespace {}", netns.display()), e)
        })?;

        // One request: the host end (in the bridge, up) and its peer, created directly
        // in the namespace with its final name, MAC and MTU.
        // (Not up yet: the kernel refuses IFF_UP on a peer, with ENOTCONN.)
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(spec.container_ifname.clone()));
        peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        peer.attributes
            .push(LinkAttribute::Address(spec.mac.to_vec()));
        let mut host = LinkMessage::default();
        host.header.flags = LinkFlags::Up;
        host.header.change_mask = LinkFlags::Up;
        host.attributes
            .push(LinkAttribute::IfName(spec.host_ifname.clone()));
        host.attributes.push(LinkAttribute::Controller(bridge));
        if let Some(mtu) = spec.mtu {
            host.attributes.push(LinkAttribute::Mtu(mtu));
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        host.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Veth),
            NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let created = self.request_ack(
            &format!("create veth {}", spec.host_ifname),
            RouteNetlinkMessage::NewLink(host),
            NLM_F_CREATE | NLM_F_EXCL,
        );
        drop(ns);
        if let Err(mut e) = created {
            // "File exists" with a free host name: the name taken is the peer's.
            if e.errno() == Some(libc::EEXIST)
                && matches!(self.link_index(&spec.host_ifname), Ok(None))
            {
                if let LinkError::Netlink { message, .. } = &mut e {
                    message.push_str(&format!(
                        " ({} in {})",
                        spec.container_ifname,
                        netns.display()
                    ));
                }
            }
            return Err(e);
        }

        // Hairpin on the bridge port: a container reaching its own published port
        // through a host address gets the answer back out the port it came in by.
        // (Bridge-port settings of a new link are not taken at creation: a second
        // request, to the link by name.)
        let hairpin = self.link_index(&spec.host_ifname).and_then(|index| {
            let mut msg = LinkMessage::default();
            msg.header.index =
                index.ok_or_else(|| LinkError::NoSuchLink(spec.host_ifname.clone()))?;
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                NlLinkInfo::PortKind(InfoPortKind::Bridge),
                NlLinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    true,
                )])),
            ]));
            self.request_ack(
                &format!("set hairpin on {}", spec.host_ifname),
                RouteNetlinkMessage::NewLink(msg),
                0,
            )
        });
        match hairpin.and_then(|()| configure_container_end(netns, spec)) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Deleting the host end deletes the pair.
                let _ = self.delete_link(&spec.host_ifname);
                Err(e)
            }
        }
    }

    /// Brings link `index` (called `name` in errors) up.
    fn set_index_up(&self, index: u32, name: &str) -> Result<(), LinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request_ack(
            &format!("set {name} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    /// Adds `ip/prefix` to link `index` (called `name` in errors). IPv6 addresses
    /// skip duplicate address detection, so they are usable at once.
    fn add_address(&self, index: u32, name: &str, ip: IpAddr, prefix: u8) -> Result<(), LinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.header.scope = AddressScope::Universe;
        match ip {
            IpAddr::V4(_) => {
                msg.header.family = AddressFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(ip));
                msg.attributes.push(AddressAttribute::Address(ip));
            }
            IpAddr::V6(_) => {
                msg.header.family = AddressFamily::Inet6;
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Address(ip));
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        self.request_ack(
            &format!("add address {ip}/{prefix} to {name}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Adds a default route via `gateway` out of link `index` (called `name`).
    fn add_default_route(&self, index: u32, name: &str, gateway: IpAddr) -> Result<(), LinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request_ack(
            &format!("add default route via {gateway} on {name}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Every address of the namespace, as (link index, address, prefix length).
    fn addresses(&self) -> Result<Vec<(u32, IpAddr, u8)>, LinkError> {
        let replies = self.request(
            "list addresses",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for reply in &replies {
            let RouteNetlinkMessage::NewAddress(addr) = reply else {
                continue;
            };
            let mut local = None;
            let mut address = None;
            for attr in &addr.attributes {
                match attr {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    _ => {}
                }
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs from it
            // only on point-to-point links (the peer), where both count.
            for ip in [local, address].into_iter().flatten() {
                let entry = (addr.header.index, ip, addr.header.prefix_len);
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }

    /// The link named `name`, if there is one.
    fn get_link(&self, name: &str) -> Result<Option<LinkMessage>, LinkError> {
        if name.is_empty() || name.len() > MAX_IFNAME_LEN {
            return Ok(None);
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            &format!("get link {name}"),
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_ACK,
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a request with NLM_F_ACK and waits for the ACK.
    fn request_ack(
        &self,
        op: &str,
        payload: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), LinkError> {
        self.request(op, payload, flags | NLM_F_ACK).map(|_| ())
    }

    /// Sends one request and collects the replies, until the ACK (or error) for a
    /// plain request, until NLMSG_DONE for a dump. A dump interrupted by a concurrent
    /// change is retried.
    fn request(
        &self,
        op: &str,
        payload: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, LinkError> {
        let _guard = self
            .exchange
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | flags;
            header.sequence_number = seq;
            let mut msg =
                NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload.clone()));
            msg.finalize();
            let mut buf = vec![0u8; msg.buffer_len()];
            msg.serialize(&mut buf);
            self.socket
                .send(&buf, 0)
                .map_err(|e| LinkError::io(format!("netlink {op}: sending the request"), e))?;
            let (replies, interrupted) = self.receive(op, seq)?;
            if interrupted && attempts < 5 {
                continue;
            }
            return Ok(replies);
        }
    }

    /// Reads the replies to request `seq` (see [`Netlink::request`]).
    fn receive(&self, op: &str, seq: u32) -> Result<(Vec<RouteNetlinkMessage>, bool), LinkError> {
        let mut replies = Vec::new();
        let mut interrupted = false;
        let mut decode_error = None;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            // Peek at the datagram's size first: a dump's datagram can be large.
            buf.clear();
            let size = self
                .socket
                .recv(&mut buf, libc::MSG_PEEK | libc::MSG_TRUNC)
                .map_err(|e| LinkError::io(format!("netlink {op}: reading the reply"), e))?;
            buf.clear();
            if size > buf.capacity() {
                buf.reserve(size);
            }
            let len = self
                .socket
                .recv(&mut buf, 0)
                .map_err(|e| LinkError::io(format!("netlink {op}: reading the reply"), e))?;
            buf.truncate(len);
            for raw in split_messages(&buf) {
                if raw_seq(raw) != seq {
                    continue; // a stale reply to an abandoned request
                }
                let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
                    Ok(msg) => msg,
                    Err(e) => {
                        // Keep reading up to the ACK or DONE, which decode fine.
                        decode_error.get_or_insert_with(|| e.to_string());
                        continue;
                    }
                };
                if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let outer_flags = msg.header.flags;
                match msg.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Done(done) => {
                        if done.code < 0 {
                            return Err(netlink_error(op, -done.code, None));
                        }
                        return finish(op, replies, interrupted, decode_error);
                    }
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => finish(op, replies, interrupted, decode_error),
                            Some(code) => Err(netlink_error(
                                op,
                                -code.get(),
                                extack_message(outer_flags, &err.header),
                            )),
                        };
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(netlink_error(op, libc::ENOBUFS, None));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Configures the container end of a freshly created pair, through a socket opened
/// inside its namespace.
fn configure_container_end(netns: &Path, spec: &EndpointSpec) -> Result<(), LinkError> {
    let nl = Netlink::open_in(netns)?;
    let name = &spec.container_ifname;
    let index = nl
        .link_index(name)?
        .ok_or_else(|| LinkError::NoSuchLink(name.clone()))?;
    nl.set_index_up(index, name)?;
    if let Some((ip, prefix)) = spec.ipv4 {
        nl.add_address(index, name, IpAddr::V4(ip), prefix)?;
    }
    if let Some((ip, prefix)) = spec.ipv6 {
        nl.add_address(index, name, IpAddr::V6(ip), prefix)?;
    }
    for &(ip, prefix) in &spec.link_local {
        nl.add_address(index, name, ip, prefix)?;
    }
    if let Some(gw) = spec.gateway4 {
        nl.add_default_route(index, name, IpAddr::V4(gw))?;
    }
    if let Some(gw) = spec.gateway6 {
        nl.add_default_route(index, name, IpAddr::V6(gw))?;
    }
    Ok(())
}

fn finish(
    op: &str,
    replies: Vec<RouteNetlinkMessage>,
    interrupted: bool,
    decode_error: Option<String>,
) -> Result<(Vec<RouteNetlinkMessage>, bool), LinkError> {
    match decode_error {
        Some(e) if !interrupted => Err(LinkError::io(
            format!("netlink {op}: decoding the reply"),
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )),
        _ => Ok((replies, interrupted)),
    }
}

/// Splits a datagram into its netlink messages (each with its header), stopping at
/// anything malformed.
fn split_messages(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        out.push(&buf[..len]);
        let aligned = (len + 3) & !3;
        buf = &buf[aligned.min(buf.len())..];
    }
    out
}

/// The sequence number of a raw netlink message (at least a header long).
fn raw_seq(raw: &[u8]) -> u32 {
    u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]])
}

/// The kernel's extended ACK message (NLMSGERR_ATTR_MSG) in an error's payload
/// (`payload` is what follows the error code: the request's header, and its body
/// unless capped, then the TLVs).
fn extack_message(outer_flags: u16, payload: &[u8]) -> Option<String> {
    if outer_flags & NLM_F_ACK_TLVS == 0 || payload.len() < NLMSG_HDRLEN {
        return None;
    }
    let mut offset = if outer_flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
    };
    offset = (offset + 3) & !3;
    while offset + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[offset], payload[offset + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[offset + 2], payload[offset + 3]]) & 0x3fff;
        if len < 4 || offset + len > payload.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let value = &payload[offset + 4..offset + len];
            let value = value.split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(value).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        offset += (len + 3) & !3;
    }
    None
}

fn netlink_error(op: &str, errno: i32, extack: Option<String>) -> LinkError {
    let mut message = std::io::Error::from_raw_os_error(errno).to_string();
    // Drop std's " (os error N)" suffix: errno is a field of its own.
    if let Some(cut) = message.find(" (os error") {
        message.truncate(cut);
    }
    if let Some(extack) = extack {
        message = format!("{message} ({extack})");
    }
    LinkError::Netlink {
        op: op.to_string(),
        message,
        errno,
    }
}

/// Maps "no such device" from an operation on link `name` to [`LinkError::NoSuchLink`].
fn no_such_link(e: LinkError, name: &str) -> LinkError {
    if e.errno() == Some(libc::ENODEV) {
        LinkError::NoSuchLink(name.to_string())
    } else {
        e
    }
}

fn check_ifname(name: &str) -> Result<(), LinkError> {
    if name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || name == "."
        || name == ".."
        || name.bytes().any(|b| b == b'/' || b == b':' || b <= b' ')
    {
        return Err(LinkError::Netlink {
            op: format!("check interface name {name:?}"),
            message: format!(
                "not a valid interface name (1 to {MAX_IFNAME_LEN} bytes, no '/', ':' or whitespace)"
            ),
            errno: libc::EINVAL,
        });
    }
    Ok(())
}

fn link_info(link: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: link.header.index,
        name: String::new(),
        kind: None,
        master: None,
    };
    for attr in &link.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name.clone(),
            LinkAttribute::Controller(master) => info.master = Some(*master),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(kind) = i {
                        info.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    info
}

fn route_info(route: &RouteMessage) -> Option<RouteInfo> {
    let mut table = u32::from(route.header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(addr) => destination = route_address(addr),
            RouteAttribute::Gateway(addr) => gateway = route_address(addr),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    let prefix = route.header.destination_prefix_length;
    let destination = match (destination, route.header.address_family) {
        (Some(ip), _) => ipnet::IpNet::new(ip, prefix).ok()?.trunc(),
        (None, AddressFamily::Inet) => {
            ipnet::IpNet::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0).ok()?
        }
        (None, AddressFamily::Inet6) => {
            ipnet::IpNet::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0).ok()?
        }
        _ => return None,
    };
    Some(RouteInfo {
        destination,
        gateway,
        oif,
    })
}

fn route_address(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// Writes a sysctl under `/proc/sys` (e.g. `net/ipv4/conf/pier0/route_localnet`).
///
/// A key without any `/` is taken in dotted form (`net.ipv4.ip_forward`).
pub fn set_sysctl(key: &str, value: &str) -> Result<(), LinkError> {
    let path = sysctl_path(key)?;
    std::fs::write(&path, value.as_bytes())
        .map_err(|e| LinkError::io(format!("writing {value:?} to {}", path.display()), e))
}

fn sysctl_path(key: &str) -> Result<std::path::PathBuf, LinkError> {
    let key = key.trim_start_matches('/');
    let relative = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    if relative.is_empty()
        || relative
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(LinkError::io(
            format!("sysctl key {key:?}"),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a valid sysctl key"),
        ));
    }
    Ok(Path::new("/proc/sys").join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net/ipv4/conf/pier0/route_localnet").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/pier0/route_localnet")
        );
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        // Interface names may hold dots: the slash form keeps them.
        assert_eq!(
            sysctl_path("net/ipv6/conf/eth0.100/disable_ipv6").unwrap(),
            Path::new("/proc/sys/net/ipv6/conf/eth0.100/disable_ipv6")
        );
        assert!(sysctl_path("net/../../etc/passwd").is_err());
        assert!(sysctl_path("").is_err());
    }

    #[test]
    fn ifnames() {
        assert!(check_ifname("pve0123456789ab").is_ok());
        assert!(check_ifname("pve0123456789abc").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
    }

    #[test]
    fn splits_datagrams_and_reads_extack() {
        // Two messages: a 20-byte one (padded to 20) and a 16-byte one.
        let mut buf = Vec::new();
        buf.extend_from_slice(&20u32.to_ne_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&7u32.to_ne_bytes());
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&16u32.to_ne_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&8u32.to_ne_bytes());
        buf.extend_from_slice(&[0; 4]);
        let msgs = split_messages(&buf);
        assert_eq!(msgs.len(), 2);
        assert_eq!(raw_seq(msgs[0]), 7);
        assert_eq!(raw_seq(msgs[1]), 8);
        // Truncated trailing data is ignored.
        assert_eq!(split_messages(&buf[..30]).len(), 1);

        // Capped error payload: the request header, then an NLMSGERR_ATTR_MSG TLV.
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        let text = b"Unknown device type\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(extack_message(0, &payload), None);
    }

    #[test]
    fn error_messages_name_the_operation() {
        let e = netlink_error("create veth pve123", libc::EEXIST, None);
        assert_eq!(
            e.to_string(),
            "netlink create veth pve123 failed: File exists"
        );
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let e = netlink_error(
            "create bridge x",
            libc::EOPNOTSUPP,
            Some("Unknown device type".into()),
        );
        assert!(e.to_string().ends_with("(Unknown device type)"), "{e}");
    }
}
