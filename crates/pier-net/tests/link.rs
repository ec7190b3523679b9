//! Integration tests against the real kernel (run as root, one at a time:
//! `cargo test -p pier-net --test link -- --test-threads=1`).
//!
//! Every link a test makes carries a random tag in its name and is deleted by a Drop
//! guard, even on panic; the traffic goes only to addresses of namespaces and bridges
//! the test created (198.18.0.0/15 is the benchmark range, fdXX:: is ULA).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pier_net::link::{set_sysctl, EndpointSpec, LinkError, Netlink};
use pier_net::netns;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `index: name` of every link, from `ip -o link` (the tool, not our code).
fn ip_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("running ip -o link");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ": ");
            let index = parts.next()?;
            let name = parts.next()?.split('@').next()?;
            Some(format!("{index}: {name}"))
        })
        .collect()
}

/// Deletes a link of ours on drop.
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Ok(nl) = Netlink::open() {
            let _ = nl.delete_link(&self.0);
        }
    }
}

/// Removes a namespace file of ours on drop.
struct NetnsGuard(PathBuf);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0);
    }
}

/// A test's names, tagged with random hex so they collide with nothing.
struct Names {
    tag: String,
    bridge: String,
    octet: u8,
}

impl Names {
    fn new() -> Names {
        let bytes = random_bytes::<5>();
        let tag = hex(&bytes[..4]);
        Names {
            bridge: format!("ptb{tag}"),
            tag,
            octet: bytes[4],
        }
    }

    fn veth(&self, n: u8) -> String {
        format!("ptv{}{n}", self.tag)
    }

    /// Asserts that no link of this test is left, comparing with `ip -o link` before.
    fn assert_nothing_left(&self, before: &BTreeSet<String>) {
        let after = ip_links();
        let new: Vec<_> = after.difference(before).collect();
        let ours: Vec<_> = after.iter().filter(|l| l.contains(&self.tag)).collect();
        assert!(ours.is_empty(), "links left behind: {ours:?}");
        if !new.is_empty() {
            // Other processes may create links concurrently; ours carry the tag.
            eprintln!("note: links that appeared meanwhile (not ours): {new:?}");
        }
    }
}

fn spec(names: &Names, n: u8, ifname: &str) -> EndpointSpec {
    EndpointSpec {
        bridge: names.bridge.clone(),
        host_ifname: names.veth(n),
        container_ifname: ifname.to_string(),
        mac: [0x02, 0x42, 0xc6, 0x12, names.octet, n],
        ipv4: Some((Ipv4Addr::new(198, 18, names.octet, 2 + n), 24)),
        ipv6: None,
        link_local: Vec::new(),
        gateway4: Some(Ipv4Addr::new(198, 18, names.octet, 1)),
        gateway6: None,
        mtu: Some(1400),
    }
}

fn ula(names: &Names, host: u16) -> Ipv6Addr {
    let tag = u32::from_str_radix(&names.tag, 16).unwrap();
    Ipv6Addr::new(
        0xfd42,
        (tag >> 16) as u16,
        tag as u16,
        u16::from(names.octet),
        0,
        0,
        0,
        host,
    )
}

/// Accepts one connection on `listener`, echoes what it reads with a prefix.
fn echo_once(listener: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).expect("read");
        conn.write_all(b"echo:").unwrap();
        conn.write_all(&buf).unwrap();
    })
}

fn exchange(addr: SocketAddr) {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"hello").unwrap();
    let mut reply = [0u8; 10];
    conn.read_exact(&mut reply).expect("reading the echo");
    assert_eq!(&reply, b"echo:hello");
}

#[test]
fn attach_connects_a_namespace_to_a_bridge() {
    let names = Names::new();
    let before = ip_links();
    let dir = tempfile::tempdir().unwrap();
    let ns_path = dir.path().join("ns");
    {
        let nl = Netlink::open().unwrap();
        let _bridge = LinkGuard(names.bridge.clone());
        let _veth = LinkGuard(names.veth(0));
        netns::create(&ns_path).unwrap();
        let _ns = NetnsGuard(ns_path.clone());

        let bridge4 = Ipv4Addr::new(198, 18, names.octet, 1);
        // A second host address, outside the container's subnet: reachable from the
        // namespace only through its default route.
        let far4 = Ipv4Addr::new(198, 19, names.octet, 1);
        let bridge6 = ula(&names, 1);
        let addresses = [
            (IpAddr::V4(bridge4), 24),
            (IpAddr::V4(far4), 32),
            (IpAddr::V6(bridge6), 64),
        ];
        assert!(nl
            .ensure_bridge(&names.bridge, Some(1400), &addresses)
            .unwrap());
        // Again: nothing to create, the addresses it has are fine.
        assert!(!nl
            .ensure_bridge(&names.bridge, Some(1400), &addresses)
            .unwrap());
        let bridge = nl.link_details(&names.bridge).unwrap().unwrap();
        assert_eq!(bridge.info.kind.as_deref(), Some("bridge"));
        assert_eq!(bridge.mtu, Some(1400));
        assert!(bridge.up);
        for a in &addresses {
            assert!(bridge.addresses.contains(a), "{:?}", bridge.addresses);
        }

        let mut spec = spec(&names, 0, "eth0");
        spec.ipv6 = Some((ula(&names, 2), 64));
        spec.gateway6 = Some(bridge6);
        let started = Instant::now();
        nl.attach(&ns_path, &spec).unwrap();
        eprintln!("attach took {:?}", started.elapsed());

        // The host end: a veth in the bridge.
        let bridge_index = nl.link_index(&names.bridge).unwrap().unwrap();
        let host = nl
            .links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == spec.host_ifname)
            .expect("host end listed");
        assert_eq!(host.kind.as_deref(), Some("veth"));
        assert_eq!(host.master, Some(bridge_index));
        // Hairpin is on for the bridge port (published ports reached from the
        // container itself through a host address need it).
        let hairpin =
            std::fs::read_to_string(format!("/sys/class/net/{}/brport/hairpin_mode", host.name))
                .unwrap();
        assert_eq!(hairpin.trim(), "1");
        assert!(nl.link_details(&spec.host_ifname).unwrap().unwrap().up);

        // The container end, as seen from inside.
        let inside = Netlink::open_in(&ns_path).unwrap();
        let links = inside.links().unwrap();
        let mut link_names: Vec<_> = links.iter().map(|l| l.name.as_str()).collect();
        link_names.sort();
        assert_eq!(link_names, ["eth0", "lo"]);
        let eth0 = inside.link_details("eth0").unwrap().unwrap();
        assert_eq!(eth0.mac, Some(spec.mac));
        assert_eq!(eth0.mtu, Some(1400));
        assert!(eth0.up);
        assert!(eth0
            .addresses
            .contains(&(IpAddr::V4(spec.ipv4.unwrap().0), 24)));
        assert!(eth0
            .addresses
            .contains(&(IpAddr::V6(spec.ipv6.unwrap().0), 64)));
        assert!(inside.link_details("lo").unwrap().unwrap().up);
        let routes = inside.routes().unwrap();
        let default4 = routes
            .iter()
            .find(|r| r.destination.to_string() == "0.0.0.0/0")
            .expect("IPv4 default route");
        assert_eq!(default4.gateway, Some(IpAddr::V4(bridge4)));
        assert_eq!(default4.oif, Some(eth0.info.index));
        let default6 = routes
            .iter()
            .find(|r| r.destination.to_string() == "::/0")
            .expect("IPv6 default route");
        assert_eq!(default6.gateway, Some(IpAddr::V6(bridge6)));

        // Host to container, IPv4 and IPv6, with real sockets.
        let ip4 = spec.ipv4.unwrap().0;
        let ip6 = spec.ipv6.unwrap().0;
        let (l4, l6) = netns::run_in(&ns_path, move || {
            (
                TcpListener::bind((ip4, 0)).unwrap(),
                TcpListener::bind((ip6, 0)).unwrap(),
            )
        })
        .unwrap();
        for listener in [l4, l6] {
            let addr = listener.local_addr().unwrap();
            let server = echo_once(listener);
            exchange(addr);
            server.join().unwrap();
        }

        // Container to host through the default route.
        let listener = TcpListener::bind((far4, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(listener);
        netns::run_in(&ns_path, move || exchange(addr)).unwrap();
        server.join().unwrap();

        // The host's networks include the bridge's subnet, not default routes.
        let networks = nl.host_networks().unwrap();
        let subnet: ipnet::IpNet = format!("198.18.{}.0/24", names.octet).parse().unwrap();
        assert!(networks.contains(&subnet), "{networks:?}");
        assert!(networks.iter().all(|n| n.prefix_len() != 0));
        let inside_networks = inside.host_networks().unwrap();
        assert!(inside_networks.contains(&subnet));
        assert!(inside_networks.contains(&"127.0.0.0/8".parse().unwrap()));

        // Deleting the host end deletes the container end too.
        nl.delete_link(&spec.host_ifname).unwrap();
        assert_eq!(nl.link_index(&spec.host_ifname).unwrap(), None);
        assert_eq!(inside.link_index("eth0").unwrap(), None);
        // Deleting again is fine.
        nl.delete_link(&spec.host_ifname).unwrap();

        nl.delete_link(&names.bridge).unwrap();
        assert_eq!(nl.link_index(&names.bridge).unwrap(), None);
    }
    assert!(!ns_path.exists());
    names.assert_nothing_left(&before);
}

#[test]
fn attach_errors_leave_nothing_behind() {
    let names = Names::new();
    let before = ip_links();
    let dir = tempfile::tempdir().unwrap();
    let ns_path = dir.path().join("ns");
    {
        let nl = Netlink::open().unwrap();
        let _bridge = LinkGuard(names.bridge.clone());
        let _veths = [0, 1, 2].map(|n| LinkGuard(names.veth(n)));
        netns::create(&ns_path).unwrap();
        let _ns = NetnsGuard(ns_path.clone());

        // A missing bridge: a clear error, no veth.
        let err = nl.attach(&ns_path, &spec(&names, 0, "eth0")).unwrap_err();
        assert!(
            matches!(err, LinkError::NoSuchLink(ref n) if *n == names.bridge),
            "{err}"
        );
        assert!(err.to_string().contains(&names.bridge), "{err}");
        assert_eq!(nl.link_index(&names.veth(0)).unwrap(), None);

        let gateway = IpAddr::V4(Ipv4Addr::new(198, 18, names.octet, 1));
        nl.ensure_bridge(&names.bridge, None, &[(gateway, 24)])
            .unwrap();

        // Failing inside the namespace (a gateway off the subnet): the pair is deleted.
        let mut bad = spec(&names, 1, "eth0");
        bad.gateway4 = Some(Ipv4Addr::new(198, 19, names.octet, 254));
        let err = nl.attach(&ns_path, &bad).unwrap_err();
        eprintln!("expected error: {err}");
        let LinkError::Netlink { ref op, errno, .. } = err else {
            panic!("unexpected error {err:?}");
        };
        assert!(op.contains("default route") && op.contains("eth0"), "{err}");
        assert_ne!(errno, 0);
        assert_eq!(nl.link_index(&names.veth(1)).unwrap(), None);
        let inside = Netlink::open_in(&ns_path).unwrap();
        assert_eq!(inside.link_index("eth0").unwrap(), None);

        // A host name already taken: the error names it, and the existing link stays.
        nl.attach(&ns_path, &spec(&names, 2, "eth0")).unwrap();
        let err = nl.attach(&ns_path, &spec(&names, 2, "eth1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("netlink create veth {} failed: File exists", names.veth(2)),
        );
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert!(nl.link_index(&names.veth(2)).unwrap().is_some());
        assert!(inside.link_index("eth0").unwrap().is_some());
        assert_eq!(inside.link_index("eth1").unwrap(), None);

        // A container name already taken in the namespace: no pair left.
        let err = nl.attach(&ns_path, &spec(&names, 1, "eth0")).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
        assert!(err.to_string().contains("File exists (eth0 in "), "{err}");
        assert_eq!(nl.link_index(&names.veth(1)).unwrap(), None);

        // Invalid names are refused before asking the kernel.
        let mut long = spec(&names, 1, "eth0");
        long.host_ifname = "ptv0123456789abcdef".into();
        assert!(nl.attach(&ns_path, &long).is_err());

        // Removing the namespace takes the container end, and so the pair, along.
        drop(inside);
        netns::remove(&ns_path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while nl.link_index(&names.veth(2)).unwrap().is_some() {
            assert!(Instant::now() < deadline, "veth outlived its namespace");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    names.assert_nothing_left(&before);
}

#[test]
fn namespaces_are_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    netns::create(&path).unwrap();
    let _ns = NetnsGuard(path.clone());
    assert!(path.exists());
    // Creating it again fails; the namespace stays.
    let err = netns::create(&path).unwrap_err();
    assert!(err.to_string().contains("already a namespace"), "{err}");

    // A different namespace from ours, with only a loopback that is up.
    let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let (theirs, lo_up) = netns::run_in(&path, || {
        let ns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let nl = Netlink::open().unwrap();
        let names: Vec<_> = nl.links().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo"]);
        let lo = nl.link_details("lo").unwrap().unwrap();
        // Loopback works at once.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(listener);
        exchange(addr);
        server.join().unwrap();
        (ns, lo.up)
    })
    .unwrap();
    assert_ne!(ours, theirs);
    assert!(lo_up);
    // The calling thread never moved.
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        ours
    );

    // A panic inside is the caller's panic.
    let panicked = std::panic::catch_unwind(|| netns::run_in(&path, || panic!("inside")));
    assert!(panicked.is_err());

    netns::remove(&path).unwrap();
    assert!(!path.exists());
    netns::remove(&path).unwrap();
    assert!(netns::run_in(&path, || ()).is_err());
    assert!(netns::create(Path::new("/nonexistent-pier-dir/ns")).is_err());
}

#[test]
fn sysctls_are_written() {
    // Only inside a namespace of ours: a sysctl of its loopback.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    netns::create(&path).unwrap();
    let _ns = NetnsGuard(path.clone());
    let key = "net/ipv4/conf/lo/route_localnet";
    let read = move || std::fs::read_to_string(format!("/proc/sys/{key}")).unwrap();
    let host_before = read();
    let (initial, value) = netns::run_in(&path, move || {
        // /proc/sys/net follows the namespace of the thread that opens it.
        let initial = read();
        set_sysctl(key, "1").unwrap();
        (initial, read())
    })
    .unwrap();
    assert_eq!(initial.trim(), "0");
    assert_eq!(value.trim(), "1");
    // The host's own setting did not change.
    assert_eq!(read(), host_before);
    assert!(set_sysctl("net/ipv4/no_such_sysctl_pier", "1").is_err());
}
