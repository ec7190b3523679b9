//! Firewall integration tests. They need root, `ip` and `nft`, and never touch the
//! host's network namespace: everything happens in namespaces made here (`ip netns add
//! pierfw…`, deleted by a guard, also on panic). Without root they are skipped.
//!
//! Run with `cargo test -p pier-net --test firewall -- --test-threads=1`.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pier_net::firewall::{
    bridge_sysctls, forwarding_sysctls, reserve_port, FirewallError, NetworkRules, Nft,
    PortMapping, Protocol, Ruleset,
};

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(prefix: &str) -> Netns {
        let mut random = [0u8; 4];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .expect("reading /dev/urandom");
        let name = format!(
            "{prefix}{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn nft(&self) -> Nft {
        Nft {
            netns: Some(self.path()),
            ..Nft::default()
        }
    }

    /// `ip -n <ns> args…`.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip netns exec <ns> program args…`.
    fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    fn write_sysctl(&self, path: &str, value: &str) {
        self.exec("sh", &["-c", &format!("echo {value} > {path}")]);
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = File::open(self.path()).expect("opening the netns");
        std::thread::spawn(move || {
            // SAFETY: setns on a file descriptor we own, for this thread only
            // (CLONE_NEWNET is per-thread); no memory is involved.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            drop(file);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn usable() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    for program in ["ip", "nft"] {
        if Command::new(program).arg("-V").output().is_err() {
            eprintln!("skipped: {program} not installed");
            return false;
        }
    }
    true
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mapping(
    protocol: Protocol,
    host_ip: Option<&str>,
    host_port: u16,
    container: &str,
    container_port: u16,
    bridge: &str,
) -> PortMapping {
    PortMapping {
        protocol,
        host_ip: host_ip.map(ip),
        host_port,
        container_ip: ip(container),
        container_port,
        bridge: bridge.to_string(),
    }
}

fn normalized(listing: &str) -> Vec<String> {
    listing.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn apply_replace_delete() {
    if !usable() {
        return;
    }
    let ns = Netns::new("pierfw");
    let nft = ns.nft();
    let table = "pierfwtest";

    // Someone else's table, which must survive everything we do.
    ns.exec("nft", &["add", "table", "inet", "other"]);
    ns.exec(
        "nft",
        &["add chain inet other input { type filter hook input priority 0; policy accept; }"],
    );

    let first = Ruleset {
        table: table.to_string(),
        networks: vec![
            NetworkRules {
                bridge: "pierbr0".to_string(),
                subnets: vec![net("10.1.0.0/24"), net("fd00:1::/64")],
                internal: false,
                masquerade: true,
            },
            NetworkRules {
                bridge: "pierbr1".to_string(),
                subnets: vec![net("10.2.0.0/24")],
                internal: false,
                masquerade: true,
            },
            NetworkRules {
                bridge: "pierint".to_string(),
                subnets: vec![net("10.3.0.0/24")],
                internal: true,
                masquerade: false,
            },
        ],
        ports: vec![
            mapping(Protocol::Tcp, None, 8080, "10.1.0.2", 80, "pierbr0"),
            mapping(Protocol::Tcp, None, 8080, "fd00:1::2", 80, "pierbr0"),
            mapping(
                Protocol::Udp,
                Some("127.0.0.1"),
                5353,
                "10.1.0.2",
                53,
                "pierbr0",
            ),
            mapping(
                Protocol::Tcp,
                Some("::1"),
                9000,
                "fd00:1::2",
                9001,
                "pierbr0",
            ),
        ],
    };
    nft.apply(&first).expect("applying the first ruleset");
    // Applying twice is fine (the table exists now).
    nft.apply(&first).expect("re-applying the first ruleset");

    let listing = ns.exec("nft", &["list", "table", "inet", table]);
    let lines = normalized(&listing);
    for expected in [
        "type nat hook prerouting priority dstnat; policy accept;",
        "type nat hook output priority -100; policy accept;",
        "type nat hook postrouting priority srcnat; policy accept;",
        "type filter hook forward priority filter; policy accept;",
        "fib daddr type local jump published",
        "meta nfproto ipv4 tcp dport 8080 dnat ip to 10.1.0.2:80",
        "meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd00:1::2]:80",
        "ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.1.0.2:53",
        "ip6 daddr ::1 tcp dport 9000 dnat ip6 to [fd00:1::2]:9001",
        "ip saddr 10.1.0.0/24 oifname != \"pierbr0\" masquerade",
        "ip6 saddr fd00:1::/64 oifname != \"pierbr0\" masquerade",
        "ip saddr 10.2.0.0/24 oifname != \"pierbr1\" masquerade",
        "oifname \"pierbr0\" ct status dnat ip saddr 10.1.0.0/24 masquerade",
        "oifname \"pierbr0\" ip saddr 127.0.0.0/8 masquerade",
        "iifname \"pierint\" oifname != \"pierint\" drop",
        "oifname \"pierint\" iifname != \"pierint\" drop",
        // nft prints a one-element anonymous set as the element itself.
        "iifname \"pierbr0\" oifname \"pierbr1\" ct status ! dnat drop",
        "iifname \"pierbr1\" oifname \"pierbr0\" ct status ! dnat drop",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "missing {expected:?} in\n{listing}"
        );
    }
    assert!(!listing.contains("10.3.0.0/24 oifname !="), "{listing}");

    // A different ruleset replaces it completely.
    let second = Ruleset {
        table: table.to_string(),
        networks: vec![NetworkRules {
            bridge: "pierbr9".to_string(),
            subnets: vec![net("10.9.0.0/24")],
            internal: false,
            masquerade: true,
        }],
        ports: vec![mapping(
            Protocol::Tcp,
            Some("127.0.0.1"),
            1234,
            "10.9.0.2",
            4321,
            "pierbr9",
        )],
    };
    nft.apply(&second).expect("applying the second ruleset");
    let listing = ns.exec("nft", &["list", "table", "inet", table]);
    assert!(
        listing.contains("ip daddr 127.0.0.1 tcp dport 1234 dnat ip to 10.9.0.2:4321"),
        "{listing}"
    );
    assert!(
        listing.contains("ip saddr 10.9.0.0/24 oifname != \"pierbr9\" masquerade"),
        "{listing}"
    );
    for gone in [
        "pierbr0", "pierbr1", "pierint", "8080", "5353", "9000", "fd00:1::",
    ] {
        assert!(!listing.contains(gone), "{gone} still in\n{listing}");
    }
    assert_eq!(listing.matches("chain prerouting").count(), 1, "{listing}");
    let ruleset = ns.exec("nft", &["list", "ruleset"]);
    assert!(ruleset.contains("table inet other"), "{ruleset}");

    // Deleting removes our table only; deleting again is not an error.
    nft.delete_table(table).expect("deleting the table");
    nft.delete_table(table).expect("deleting the absent table");
    let ruleset = ns.exec("nft", &["list", "ruleset"]);
    assert!(!ruleset.contains(table), "{ruleset}");
    assert!(ruleset.contains("table inet other"), "{ruleset}");
    ns.exec("nft", &["delete", "table", "inet", "other"]);
    let ruleset = ns.exec("nft", &["list", "ruleset"]);
    assert!(ruleset.trim().is_empty(), "not empty:\n{ruleset}");

    // nft's failures come back as Nft(stderr); bad names never reach nft.
    let failing = Nft {
        program: PathBuf::from("false"),
        netns: Some(ns.path()),
    };
    assert!(matches!(failing.apply(&second), Err(FirewallError::Nft(_))));
    let bad = Ruleset {
        table: "bad name; flush ruleset".to_string(),
        ..Ruleset::default()
    };
    assert!(matches!(nft.apply(&bad), Err(FirewallError::Nft(_))));
    // A namespace that does not exist.
    let missing = Nft {
        netns: Some(PathBuf::from("/run/netns/pierfw-does-not-exist")),
        ..Nft::default()
    };
    assert!(matches!(
        missing.delete_table(table),
        Err(FirewallError::Io { .. })
    ));
}

/// Accepts connections forever on a thread; each gets back `"<peer> <its line>"`.
fn serve(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let peer = stream
                .peer_addr()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while let Ok(1) = stream.read(&mut byte) {
                if byte[0] == b'\n' {
                    break;
                }
                line.push(byte[0]);
            }
            let _ = write!(stream, "{peer} {}", String::from_utf8_lossy(&line));
        }
    });
}

/// Connects to `to` from inside `ns`, sends a line and returns the answer. Retries
/// briefly while the links settle.
fn exchange(ns: &Netns, to: SocketAddr, message: &str) -> std::io::Result<String> {
    let message = message.to_string();
    ns.run(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let attempt: std::io::Result<String> = (|| {
                let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                stream.write_all(format!("{message}\n").as_bytes())?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer)
            })();
            match attempt {
                Err(e) if Instant::now() < deadline && e.kind() != ErrorKind::ConnectionRefused => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    })
}

/// Asserts that `to` cannot be reached from inside `ns` (refused, or dropped: no
/// answer within a second).
fn assert_blocked(ns: &Netns, to: SocketAddr) {
    let result = ns.run(move || {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"blocked?\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok::<_, std::io::Error>(answer)
    });
    assert!(result.is_err(), "{to} reachable: {result:?}");
}

fn peer_ip(answer: &str) -> IpAddr {
    let peer: SocketAddr = answer
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bad answer {answer:?}"));
    peer.ip()
}

#[test]
fn dnat_localhost_bridge_and_hairpin() {
    if !usable() {
        return;
    }
    let host = Netns::new("pierfw");
    let ctr = Netns::new("pierfwc");

    // The "host": a bridge, and an address on lo standing for its outside address.
    host.ip(&["link", "add", "pfbr0", "type", "bridge"]);
    host.ip(&["addr", "add", "10.99.0.1/24", "dev", "pfbr0"]);
    host.ip(&["addr", "add", "fd00:99::1/64", "dev", "pfbr0", "nodad"]);
    host.ip(&["link", "set", "pfbr0", "up"]);
    host.ip(&["addr", "add", "10.98.0.1/32", "dev", "lo"]);
    // The "container", joined by a veth.
    host.ip(&[
        "link", "add", "pfveth0", "type", "veth", "peer", "name", "eth0", "netns", &ctr.name,
    ]);
    host.ip(&["link", "set", "pfveth0", "master", "pfbr0"]);
    // As Docker does with --userland-proxy=false: with br_netfilter active, a DNAT
    // back to the port a frame came from is bridged out of that same port.
    host.ip(&[
        "link",
        "set",
        "pfveth0",
        "type",
        "bridge_slave",
        "hairpin",
        "on",
    ]);
    host.ip(&["link", "set", "pfveth0", "up"]);
    ctr.ip(&["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
    ctr.ip(&["addr", "add", "fd00:99::2/64", "dev", "eth0", "nodad"]);
    ctr.ip(&["link", "set", "eth0", "up"]);
    ctr.ip(&["route", "add", "default", "via", "10.99.0.1"]);
    ctr.ip(&["-6", "route", "add", "default", "via", "fd00:99::1"]);
    for (path, value) in bridge_sysctls("pfbr0")
        .into_iter()
        .chain(forwarding_sysctls(true))
    {
        host.write_sysctl(&path, &value);
    }

    let listener_v4 = ctr
        .run(|| TcpListener::bind("10.99.0.2:80"))
        .expect("binding the v4 server");
    let listener_v6 = ctr
        .run(|| TcpListener::bind("[fd00:99::2]:80"))
        .expect("binding the v6 server");
    serve(listener_v4);
    serve(listener_v6);

    let localhost: SocketAddr = "127.0.0.1:18080".parse().unwrap();
    let bridge: SocketAddr = "10.99.0.1:18080".parse().unwrap();
    let outside: SocketAddr = "10.98.0.1:18080".parse().unwrap();
    let bridge_v6: SocketAddr = "[fd00:99::1]:18080".parse().unwrap();

    // Nothing published yet: refused.
    let before = exchange(&host, localhost, "early");
    assert!(before.is_err(), "{before:?}");
    // The container is reachable directly.
    let direct = exchange(&host, "10.99.0.2:80".parse().unwrap(), "direct").unwrap();
    assert!(direct.ends_with(" direct"), "{direct}");

    let nft = host.nft();
    let rules = Ruleset {
        table: "pierfwdnat".to_string(),
        networks: vec![NetworkRules {
            bridge: "pfbr0".to_string(),
            subnets: vec![net("10.99.0.0/24"), net("fd00:99::/64")],
            internal: false,
            masquerade: true,
        }],
        ports: vec![
            mapping(Protocol::Tcp, None, 18080, "10.99.0.2", 80, "pfbr0"),
            mapping(Protocol::Tcp, None, 18080, "fd00:99::2", 80, "pfbr0"),
        ],
    };
    nft.apply(&rules).expect("applying");

    // Host → 127.0.0.1:port: DNAT in output, then masqueraded to the bridge address.
    let answer = exchange(&host, localhost, "via localhost").expect("via 127.0.0.1");
    assert!(answer.ends_with(" via localhost"), "{answer}");
    assert_eq!(peer_ip(&answer), ip("10.99.0.1"), "{answer}");

    // Host → its bridge address and its "outside" address.
    let answer = exchange(&host, bridge, "via bridge").expect("via the bridge address");
    assert!(answer.ends_with(" via bridge"), "{answer}");
    let answer = exchange(&host, outside, "via outside").expect("via the outside address");
    assert!(answer.ends_with(" via outside"), "{answer}");

    // IPv6: host → [bridge]:port.
    let answer = exchange(&host, bridge_v6, "via v6").expect("via the v6 bridge address");
    assert!(answer.ends_with(" via v6"), "{answer}");
    // [::1] cannot be published without a proxy: refused, not black-holed.
    assert_blocked(&host, "[::1]:18080".parse().unwrap());

    // Hairpin: the container reaches its own published port through host addresses,
    // and sees the connection come from the bridge (masqueraded), not from itself.
    for to in [bridge, outside] {
        let answer = exchange(&ctr, to, "hairpin").expect("hairpin");
        assert!(answer.ends_with(" hairpin"), "{answer}");
        assert_eq!(peer_ip(&answer), ip("10.99.0.1"), "{answer}");
    }
    let answer = exchange(&ctr, bridge_v6, "hairpin6").expect("v6 hairpin");
    assert!(answer.ends_with(" hairpin6"), "{answer}");
    assert_eq!(peer_ip(&answer), ip("fd00:99::1"), "{answer}");

    // Same without br_netfilter (when it is loaded at all): the hairpin is routed.
    let bridge_nf = host
        .exec("sh", &["-c", "ls /proc/sys/net/bridge 2>/dev/null || true"])
        .contains("bridge-nf-call-iptables");
    if bridge_nf {
        for family in ["iptables", "ip6tables"] {
            host.write_sysctl(
                &format!("/proc/sys/net/bridge/bridge-nf-call-{family}"),
                "0",
            );
        }
        for to in [bridge, outside] {
            let answer = exchange(&ctr, to, "routed hairpin").expect("routed hairpin");
            assert!(answer.ends_with(" routed hairpin"), "{answer}");
            assert_eq!(peer_ip(&answer), ip("10.99.0.1"), "{answer}");
        }
        let answer = exchange(&ctr, bridge_v6, "routed hairpin6").expect("routed v6 hairpin");
        assert_eq!(peer_ip(&answer), ip("fd00:99::1"), "{answer}");
        let answer = exchange(&host, localhost, "localhost again").expect("via 127.0.0.1");
        assert!(answer.ends_with(" localhost again"), "{answer}");
    }

    // A mapping bound to one host address only answers there.
    let only_outside = Ruleset {
        ports: vec![mapping(
            Protocol::Tcp,
            Some("10.98.0.1"),
            18080,
            "10.99.0.2",
            80,
            "pfbr0",
        )],
        ..rules.clone()
    };
    nft.apply(&only_outside).expect("re-applying");
    let answer = exchange(&host, outside, "only outside").expect("via outside");
    assert!(answer.ends_with(" only outside"), "{answer}");
    assert_blocked(&host, localhost);
    assert_blocked(&host, bridge);

    // Deleted: refused again.
    nft.delete_table("pierfwdnat").expect("deleting");
    assert_blocked(&host, localhost);
    assert_blocked(&host, outside);
}

#[test]
fn isolation_between_bridges() {
    if !usable() {
        return;
    }
    // host with two bridges, one container on each.
    let host = Netns::new("pierfw");
    let a = Netns::new("pierfwa");
    let b = Netns::new("pierfwb");
    for (i, (bridge, ctr)) in [("pfbra", &a), ("pfbrb", &b)].into_iter().enumerate() {
        let subnet = 10 + i;
        host.ip(&["link", "add", bridge, "type", "bridge"]);
        host.ip(&["addr", "add", &format!("10.{subnet}.0.1/24"), "dev", bridge]);
        host.ip(&["link", "set", bridge, "up"]);
        let veth = format!("{bridge}v");
        host.ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ctr.name,
        ]);
        host.ip(&["link", "set", &veth, "master", bridge]);
        host.ip(&["link", "set", &veth, "up"]);
        ctr.ip(&["addr", "add", &format!("10.{subnet}.0.2/24"), "dev", "eth0"]);
        ctr.ip(&["link", "set", "eth0", "up"]);
        ctr.ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("10.{subnet}.0.1"),
        ]);
    }
    for (path, value) in forwarding_sysctls(false) {
        host.write_sysctl(&path, &value);
    }
    let listener = b
        .run(|| TcpListener::bind("10.11.0.2:80"))
        .expect("binding the server");
    serve(listener);
    let target: SocketAddr = "10.11.0.2:80".parse().unwrap();
    let published: SocketAddr = "10.10.0.1:18081".parse().unwrap();

    // No rules: routed between the bridges.
    let answer = exchange(&a, target, "open").expect("routed");
    assert!(answer.ends_with(" open"), "{answer}");

    let networks = vec![
        NetworkRules {
            bridge: "pfbra".to_string(),
            subnets: vec![net("10.10.0.0/24")],
            internal: false,
            masquerade: true,
        },
        NetworkRules {
            bridge: "pfbrb".to_string(),
            subnets: vec![net("10.11.0.0/24")],
            internal: false,
            masquerade: true,
        },
    ];
    let rules = Ruleset {
        table: "pierfwiso".to_string(),
        networks: networks.clone(),
        ports: vec![mapping(
            Protocol::Tcp,
            None,
            18081,
            "10.11.0.2",
            80,
            "pfbrb",
        )],
    };
    let nft = host.nft();
    nft.apply(&rules).expect("applying");
    // Directly: dropped (times out rather than refused).
    assert_blocked(&a, target);
    // Through a published port on a host address: allowed, like Docker's proxy.
    let answer = exchange(&a, published, "published").expect("published port");
    assert!(answer.ends_with(" published"), "{answer}");

    // Internal network: nothing in or out, published ports neither.
    let mut internal = networks.clone();
    internal[1].internal = true;
    internal[1].masquerade = false;
    nft.apply(&Ruleset {
        networks: internal,
        ..rules.clone()
    })
    .expect("applying");
    assert_blocked(&a, target);
    assert_blocked(&a, published);
    nft.delete_table("pierfwiso").expect("deleting");
}

#[test]
fn port_reservations() {
    if !usable() {
        return;
    }
    let ns = Netns::new("pierfw");
    let has_v6 = ns.ip(&["-6", "addr", "show", "dev", "lo"]).contains("::1");
    ns.run(move || {
        let localhost = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

        // Port 0: the kernel picks one.
        let held = reserve_port(Protocol::Tcp, localhost, 0).expect("reserving");
        let port = held.port;
        assert_ne!(port, 0);
        assert_eq!(held.protocol, Protocol::Tcp);
        assert_eq!(held.host_ip, localhost);

        // Taken: Docker's error.
        let err = reserve_port(Protocol::Tcp, localhost, port).unwrap_err();
        assert!(matches!(err, FirewallError::PortInUse(_)), "{err}");
        assert_eq!(
            err.to_string(),
            format!("Bind for 127.0.0.1:{port} failed: port is already allocated")
        );
        // Others cannot bind it either, and it does not accept connections.
        assert!(TcpListener::bind(("127.0.0.1", port)).is_err());
        let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
        // UDP on the same number is a different port.
        let udp = reserve_port(Protocol::Udp, localhost, port).expect("udp");
        assert!(matches!(
            reserve_port(Protocol::Udp, localhost, port),
            Err(FirewallError::PortInUse(_))
        ));
        assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_err());
        drop(udp);

        // Dropping frees it.
        drop(held);
        let again = reserve_port(Protocol::Tcp, localhost, port).expect("freed");
        assert_eq!(again.port, port);
        drop(again);

        // Wildcard: 0.0.0.0, which also holds the port on every v4 address.
        let wild = reserve_port(Protocol::Tcp, None, 0).expect("wildcard");
        let err = reserve_port(Protocol::Tcp, None, wild.port).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Bind for 0.0.0.0:{} failed: port is already allocated",
                wild.port
            )
        );
        assert!(matches!(
            reserve_port(Protocol::Tcp, localhost, wild.port),
            Err(FirewallError::PortInUse(_))
        ));

        if has_v6 {
            let v6 = reserve_port(Protocol::Tcp, Some("::1".parse().unwrap()), 0).expect("v6");
            let err =
                reserve_port(Protocol::Tcp, Some("::1".parse().unwrap()), v6.port).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "Bind for [::1]:{} failed: port is already allocated",
                    v6.port
                )
            );
            // V6ONLY: the v4 side of the same number stays free.
            let v4 = reserve_port(Protocol::Tcp, localhost, v6.port).expect("v4 alongside v6");
            assert_eq!(v4.port, v6.port);
        }
    });
}
