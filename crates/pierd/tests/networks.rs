//! Container networking through pierd, on the real kernel, driven by the real docker
//! CLI: user networks with DNS, port publishing (from the host, from containers,
//! hairpin), the network modes, connect/disconnect, daemon restarts, 100 containers,
//! bad input, and a teardown that leaves the host's links and firewall as they were.
//!
//! Traffic goes only to loopback and to addresses on Pier's bridges and in its
//! containers' namespaces. Names no container knows are relayed to 127.0.0.1 (the
//! harness's `--dns`), where nothing answers, or to the test's own resolver.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{pierd_with_busybox, pierd_with_busybox_args, wait_until, Engine, Pierd};

/// An HTTP GET of `/` (busybox httpd): the body, or why not.
fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read {addr}: {e}"))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!("{addr}: {head}"));
    }
    Ok(body.to_string())
}

/// A port nothing listens on now (the kernel's pick).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names of the host's links, sorted.
fn host_links() -> Vec<String> {
    let mut names: Vec<String> = sh("ip -o link show")
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

/// veths enslaved to `bridge`.
fn ports_of(bridge: &str) -> usize {
    sh(&format!("ip -o link show master {bridge}"))
        .lines()
        .count()
}

fn inspect_format(pierd: &Pierd, what: &str, format: &str) -> String {
    pierd
        .docker_ok(&["inspect", "-f", format, what])
        .trim()
        .to_string()
}

fn network_format(pierd: &Pierd, net: &str, format: &str) -> String {
    pierd
        .docker_ok(&["network", "inspect", "-f", format, net])
        .trim()
        .to_string()
}

fn gateway(pierd: &Pierd, net: &str) -> String {
    network_format(pierd, net, "{{range .IPAM.Config}}{{.Gateway}}{{end}}")
}

/// The bridge device of a network: named in its options, else Pier's `pbr-<ID>`.
fn bridge_of(pierd: &Pierd, net: &str) -> String {
    let named = network_format(
        pierd,
        net,
        "{{index .Options \"com.docker.network.bridge.name\"}}",
    );
    if !named.is_empty() && named != "<no value>" {
        return named;
    }
    format!("pbr-{}", &network_format(pierd, net, "{{.Id}}")[..11])
}

fn ip_of(pierd: &Pierd, container: &str, net: &str) -> String {
    inspect_format(
        pierd,
        container,
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
    )
}

/// A web server container serving `text` at `/index.html`.
fn web(pierd: &Pierd, args: &[&str], text: &str) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let script = format!("echo {text} > /tmp/index.html; exec httpd -f -p 80 -h /tmp");
    all.extend_from_slice(&["busybox", "sh", "-c", &script]);
    pierd.docker_ok(&all).trim().to_string()
}

#[test]
fn user_networks_resolve_names_and_aliases_only_within_the_network() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["network", "create", "n1"]);
    pierd.docker_ok(&["network", "create", "n2"]);
    web(
        &pierd,
        &[
            "--name",
            "web",
            "--network",
            "n1",
            "--network-alias",
            "www",
            "--hostname",
            "webhost",
        ],
        "hello-web",
    );
    let web_ip = ip_of(&pierd, "web", "n1");
    assert!(!web_ip.is_empty());

    // By name, alias, hostname and name.network, from a neighbour on n1.
    let out = pierd.docker_ok(&[
        "run", "--rm", "--network", "n1", "busybox", "sh", "-c",
        "for h in web www webhost web.n1; do wget -qO- http://$h/index.html || echo FAIL $h; done; cat /etc/resolv.conf",
    ]);
    assert_eq!(out.matches("hello-web").count(), 4, "{out}");
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert!(out.contains("options ndots:0"), "{out}");

    // Reverse lookup: name.network.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "n1",
        "busybox",
        "nslookup",
        &web_ip,
    ]);
    assert!(out.contains("web.n1"), "{out}");

    // Not from another network: neither the name nor the address.
    let out = pierd.docker(&[
        "run",
        "--rm",
        "--network",
        "n2",
        "busybox",
        "nslookup",
        "web",
    ]);
    assert_ne!(out.code, Some(0), "{out:?}");
    let out = pierd.docker(&[
        "run",
        "--rm",
        "--network",
        "n2",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &web_ip,
    ]);
    assert_ne!(out.code, Some(0), "n2 reached n1's container: {out:?}");
    // Nor from the default bridge, which has no embedded DNS.
    let out = pierd.docker(&["run", "--rm", "busybox", "nslookup", "web"]);
    assert_ne!(out.code, Some(0), "{out:?}");
}

#[test]
fn names_of_others_are_relayed_to_the_upstream_resolver() {
    // A resolver of the test on a loopback address of the host: the embedded DNS
    // relays from the host's namespace, so the container reaches it.
    struct Upstream;
    impl pier_dns::Resolver for Upstream {
        fn resolve(&self, name: &str, _qtype: u16) -> pier_dns::Resolution {
            if name == "outside.test" {
                pier_dns::Resolution::Addresses(vec!["10.77.0.7".parse().unwrap()])
            } else {
                pier_dns::Resolution::Forward
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let socket = rt
        .block_on(tokio::net::UdpSocket::bind("127.0.0.53:53"))
        .or_else(|_| rt.block_on(tokio::net::UdpSocket::bind("127.0.0.54:53")))
        .expect("a loopback port 53 for the test resolver");
    let upstream_ip = socket.local_addr().unwrap().ip().to_string();
    let server = pier_dns::Server::new(std::sync::Arc::new(Upstream), Vec::new());
    rt.spawn(server.serve_udp(socket));

    let Some((pierd, _work)) = pierd_with_busybox_args(&["--dns", &upstream_ip]) else {
        return;
    };
    pierd.docker_ok(&["network", "create", "up1"]);
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "up1",
        "busybox",
        "nslookup",
        "outside.test",
    ]);
    assert!(out.contains("10.77.0.7"), "{out}");
    // The container's own --dns wins over the daemon's.
    let out = pierd.docker(&[
        "run",
        "--rm",
        "--network",
        "up1",
        "--dns",
        "127.0.0.1",
        "busybox",
        "nslookup",
        "outside.test",
    ]);
    assert_ne!(out.code, Some(0), "{out:?}");
}

#[test]
fn published_ports_answer_from_the_host_and_from_containers() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let port = free_port();
    let mapping = format!("{port}:80");
    let v6_port = free_port();
    let v6_mapping = format!("[::1]:{v6_port}:80");
    let id = web(
        &pierd,
        &[
            "--name",
            "pub",
            "-p",
            &v6_mapping,
            "-p",
            &mapping,
            "-p",
            "127.0.0.1::80",
            "--expose",
            "9999",
        ],
        "hello-pub",
    );
    let gw = gateway(&pierd, "bridge");
    let bridge = bridge_of(&pierd, "bridge");
    // The deprecated top-level fields still read (API < 1.52, as the docker CLI 28
    // negotiates): the default bridge's address.
    assert_eq!(
        inspect_format(&pierd, "pub", "{{.NetworkSettings.IPAddress}}"),
        ip_of(&pierd, "pub", "bridge")
    );

    // From the host: loopback and the bridge's address.
    let body = http_get(&format!("127.0.0.1:{port}"), "/index.html").unwrap();
    assert_eq!(body.trim(), "hello-pub");
    let body = http_get(&format!("{gw}:{port}"), "/index.html").unwrap();
    assert_eq!(body.trim(), "hello-pub");
    // IPv6 loopback: the one address DNAT cannot serve (pierd's userland proxy).
    let body = http_get(&format!("[::1]:{port}"), "/index.html").unwrap();
    assert_eq!(body.trim(), "hello-pub");
    let body = http_get(&format!("[::1]:{v6_port}"), "/index.html").unwrap();
    assert_eq!(body.trim(), "hello-pub");
    let out = pierd.docker_ok(&["port", "pub"]);
    assert!(out.contains(&format!("80/tcp -> [::1]:{v6_port}")), "{out}");

    // The ephemeral one, as `docker port` and inspect report it.
    let out = pierd.docker_ok(&["port", "pub"]);
    let ephemeral = out
        .lines()
        .find_map(|l| l.strip_prefix("80/tcp -> 127.0.0.1:"))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_string();
    assert!(out.contains(&format!("80/tcp -> 0.0.0.0:{port}")), "{out}");
    let body = http_get(&format!("127.0.0.1:{ephemeral}"), "/index.html").unwrap();
    assert_eq!(body.trim(), "hello-pub");
    let ports = inspect_format(&pierd, "pub", "{{json .NetworkSettings.Ports}}");
    assert!(
        ports.contains(&format!("\"HostPort\":\"{port}\"")),
        "{ports}"
    );
    assert!(ports.contains("\"9999/tcp\":null"), "{ports}");
    let ps = pierd.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    assert!(ps.contains("9999/tcp"), "{ps}");

    // From another container through the host's address, and hairpin (itself).
    let url = format!("http://{gw}:{port}/index.html");
    let out = pierd.docker_ok(&["run", "--rm", "busybox", "wget", "-qO-", &url]);
    assert_eq!(out.trim(), "hello-pub");
    let out = pierd.docker_ok(&["exec", "pub", "wget", "-qO-", &url]);
    assert_eq!(out.trim(), "hello-pub");

    // A taken port: Docker's error, and nothing of the second container's network.
    assert_eq!(ports_of(&bridge), 1);
    let out = pierd.docker(&[
        "run", "-d", "--name", "second", "-p", &mapping, "busybox", "sleep", "60",
    ]);
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "Bind for 0.0.0.0:{port} failed: port is already allocated"
        )),
        "{out:?}"
    );
    assert_eq!(ports_of(&bridge), 1, "a veth of the failed start was left");
    assert_eq!(
        inspect_format(&pierd, "second", "{{.State.Status}}"),
        "created"
    );

    // Gone with the container: the port refuses, the rule is gone.
    pierd.docker_ok(&["rm", "-f", &id]);
    assert!(http_get(&format!("127.0.0.1:{port}"), "/index.html").is_err());
    assert!(http_get(&format!("[::1]:{port}"), "/index.html").is_err());
    let table = sh(&format!("nft list table inet pier_{bridge}"));
    assert!(!table.contains(&format!("dport {port}")), "{table}");
    assert_eq!(ports_of(&bridge), 0);
    // Now the second one can have it.
    pierd.docker_ok(&["start", "second"]);
    assert_eq!(
        inspect_format(&pierd, "second", "{{.State.Running}}"),
        "true"
    );
}

#[test]
fn publish_all_maps_every_exposed_port_to_an_ephemeral_one() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    web(
        &pierd,
        &[
            "--name", "all", "-P", "--expose", "80", "--expose", "81/udp",
        ],
        "hello-all",
    );
    let out = pierd.docker_ok(&["port", "all", "80/tcp"]);
    let port = out
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .unwrap()
        .trim()
        .to_string();
    let n: u16 = port.parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(n >= 1024, "{out}");
    let body = http_get(&format!("127.0.0.1:{port}"), "/index.html").unwrap();
    assert_eq!(body.trim(), "hello-all");
    let out = pierd.docker_ok(&["port", "all"]);
    assert!(out.contains("81/udp -> 0.0.0.0:"), "{out}");
}

#[test]
fn network_modes_and_connect_disconnect_while_running() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    // none: loopback only.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("lo:"), "{out}");
    // host: the host's links.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(out.lines().count(), host_links().len(), "{out}");

    pierd.docker_ok(&["network", "create", "front"]);
    pierd.docker_ok(&["network", "create", "back"]);
    web(
        &pierd,
        &["--name", "app", "--network", "front"],
        "hello-app",
    );
    // container:<name>: the same interfaces and address.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:app",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains(&ip_of(&pierd, "app", "front")), "{out}");
    // … and its names: the embedded DNS of `app`'s network.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:app",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; wget -qO- http://app/index.html",
    ]);
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert!(out.contains("hello-app"), "{out}");

    // A default-bridge container connected to a user network gets its DNS at once.
    pierd.docker_ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"]);
    pierd.docker_ok(&["network", "connect", "front", "plain"]);
    let out = pierd.docker_ok(&[
        "exec",
        "plain",
        "sh",
        "-c",
        "cat /etc/resolv.conf; wget -qO- http://app/index.html",
    ]);
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert!(out.contains("hello-app"), "{out}");
    pierd.docker_ok(&["rm", "-f", "plain"]);

    // Connect to `back` while running: eth1 appears, `back` neighbours reach it.
    pierd.docker_ok(&["network", "connect", "--alias", "api", "back", "app"]);
    let out = pierd.docker_ok(&["exec", "app", "ip", "-o", "link"]);
    assert!(out.contains("eth1"), "{out}");
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "wget",
        "-qO-",
        "http://api/index.html",
    ]);
    assert_eq!(out.trim(), "hello-app");
    let nets = inspect_format(
        &pierd,
        "app",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
    );
    assert_eq!(nets, "back front");
    let members = network_format(&pierd, "back", "{{range .Containers}}{{.Name}}{{end}}");
    assert_eq!(members, "app");

    // Disconnect: eth1 goes, the name no longer resolves there.
    pierd.docker_ok(&["network", "disconnect", "back", "app"]);
    let out = pierd.docker_ok(&["exec", "app", "ip", "-o", "link"]);
    assert!(!out.contains("eth1"), "{out}");
    assert_eq!(ports_of(&bridge_of(&pierd, "back")), 0);
    let out = pierd.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "nslookup",
        "api",
    ]);
    assert_ne!(out.code, Some(0), "{out:?}");
    // A network with a running member cannot go.
    let out = pierd.docker(&["network", "rm", "front"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("has active endpoints"), "{out:?}");
    let out = pierd.docker_ok(&["network", "prune", "-f"]);
    assert!(out.contains("back") && !out.contains("front"), "{out}");
}

#[test]
fn etc_files_dns_options_extra_hosts_and_links() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let gw = gateway(&pierd, "bridge");
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--hostname",
        "h1",
        "--dns",
        "10.0.0.9",
        "--dns-search",
        "example.test",
        "--dns-option",
        "timeout:2",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf /etc/hosts /etc/hostname; ip -4 -o addr show eth0",
    ]);
    for want in [
        "nameserver 10.0.0.9",
        "search example.test",
        "options timeout:2",
        "10.1.2.3\tdb",
        &format!("{gw}\tgw"),
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    let own = out
        .lines()
        .find_map(|l| l.split_whitespace().nth(3).filter(|_| l.contains("eth0")))
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(out.contains(&format!("{own}\th1")), "{out}");

    // Legacy links on the default bridge: the alias is in /etc/hosts and answers.
    web(&pierd, &["--name", "target"], "hello-link");
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--link",
        "target:t",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; wget -qO- http://t/index.html",
    ]);
    assert!(out.contains("hello-link"), "{out}");
}

#[test]
fn static_addresses_ranges_internal_networks_and_ipv6() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.0.0/24",
        "--ip-range",
        "10.231.0.128/25",
        "--aux-address",
        "r=10.231.0.129",
        "--gateway",
        "10.231.0.254",
        "st",
    ]);
    // Dynamic addresses come from the range, skipping the aux address.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "st",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(
        out.contains("10.231.0.128/24") || out.contains("10.231.0.130/24"),
        "{out}"
    );
    let out = pierd.docker_ok(&["run", "--rm", "--network", "st", "busybox", "ip", "route"]);
    assert!(out.contains("default via 10.231.0.254"), "{out}");
    // A static one.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        "st",
        "--ip",
        "10.231.0.7",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(ip_of(&pierd, "fixed", "st"), "10.231.0.7");
    assert_eq!(
        inspect_format(
            &pierd,
            "fixed",
            "{{(index .NetworkSettings.Networks \"st\").IPAMConfig.IPv4Address}}"
        ),
        "10.231.0.7"
    );
    // Taken: Docker's error, nothing left of the failed start.
    let bridge = bridge_of(&pierd, "st");
    let out = pierd.docker(&[
        "run",
        "-d",
        "--network",
        "st",
        "--ip",
        "10.231.0.7",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(out.stderr.contains("Address already in use"), "{out:?}");
    assert_eq!(ports_of(&bridge), 1);

    // Two subnets of one family: addresses come from the first, then the second;
    // a static address of the second is taken from the second.
    pierd.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.236.1.0/30",
        "--subnet",
        "10.236.2.0/24",
        "two",
    ]);
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "t1",
        "--network",
        "two",
        "busybox",
        "sleep",
        "60",
    ]);
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "t2",
        "--network",
        "two",
        "busybox",
        "sleep",
        "60",
    ]);
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "t3",
        "--network",
        "two",
        "--ip",
        "10.236.2.9",
        "busybox",
        "sleep",
        "60",
    ]);
    // The docker CLI sends the subnets in no fixed order (a Go map): the network's
    // first subnet is the one addresses come from first.
    let first = network_format(&pierd, "two", "{{(index .IPAM.Config 0).Subnet}}");
    let (t1, t2) = if first == "10.236.1.0/30" {
        // The /30 has one free address; the next comes from the second subnet.
        ("10.236.1.2", "10.236.2.2")
    } else {
        ("10.236.2.2", "10.236.2.3")
    };
    assert_eq!(ip_of(&pierd, "t1", "two"), t1);
    assert_eq!(ip_of(&pierd, "t2", "two"), t2);
    assert_eq!(ip_of(&pierd, "t3", "two"), "10.236.2.9");
    pierd.docker_ok(&["rm", "-f", "t1", "t2", "t3"]);
    // Released at exit: the same first address again.
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "t4",
        "--network",
        "two",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(ip_of(&pierd, "t4", "two"), t1);

    // Internal: no default route.
    pierd.docker_ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.232.5.0/24",
        "int",
    ]);
    let out = pierd.docker_ok(&["run", "--rm", "--network", "int", "busybox", "ip", "route"]);
    assert!(!out.contains("default"), "{out}");
    // And no names from outside: refused at once, never relayed.
    let refused = pierd.docker(&[
        "run",
        "--rm",
        "--network",
        "int",
        "busybox",
        "nslookup",
        "example.test",
    ]);
    assert_ne!(refused.code, Some(0), "{refused:?}");
    assert!(
        refused.stdout.contains("REFUSED")
            || refused.stderr.contains("REFUSED")
            || refused.stdout.contains("can't resolve"),
        "{refused:?}"
    );
    assert!(out.contains("10.232.5.0/24"), "{out}");

    // Dual stack: an IPv6 address, and AAAA answers for names.
    pierd.docker_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:c0de:1::/64",
        "--subnet",
        "10.233.7.0/24",
        "six",
    ]);
    web(&pierd, &["--name", "six1", "--network", "six"], "hello-six");
    let v6 = inspect_format(
        &pierd,
        "six1",
        "{{(index .NetworkSettings.Networks \"six\").GlobalIPv6Address}}",
    );
    assert!(v6.starts_with("fd00:c0de:1::"), "{v6}");
    let out = pierd.docker_ok(&[
        "run", "--rm", "--network", "six", "busybox", "sh", "-c",
        "nslookup -type=AAAA six1; wget -qO- http://[$(nslookup -type=AAAA six1 | awk '/Address: fd/ {print $2}')]/index.html",
    ]);
    assert!(out.contains(&v6), "{out}");
    assert!(out.contains("hello-six"), "{out}");
}

#[test]
fn bad_input_gets_dockers_errors_and_leaves_nothing() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let links_before = host_links();
    pierd.docker_ok(&["network", "create", "--subnet", "10.235.0.0/24", "a"]);
    let with_a = host_links();
    assert_eq!(with_a.len(), links_before.len() + 1);

    let cases: [(&[&str], i32, &str); 9] = [
        (
            &["network", "create", "--subnet", "10.235.0.128/25", "b"],
            1,
            "Pool overlaps with other one on this address space",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.236.0.0/24",
                "--gateway",
                "10.237.0.1",
                "b",
            ],
            1,
            "no matching subnet for gateway 10.237.0.1",
        ),
        (
            &["network", "create", "a"],
            1,
            "network with name a already exists",
        ),
        (
            &["network", "rm", "bridge"],
            1,
            "bridge is a pre-defined network and cannot be removed",
        ),
        (&["network", "rm", "nope"], 1, "network nope not found"),
        (&["network", "inspect", "nope"], 1, "network nope not found"),
        (
            &["run", "--rm", "--network", "nope", "busybox", "true"],
            125,
            "network nope not found",
        ),
        (
            &["run", "--rm", "--ip", "10.1.1.1", "busybox", "true"],
            125,
            "user specified IP address is supported on user defined networks only",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "a",
                "--ip",
                "10.9.9.9",
                "busybox",
                "true",
            ],
            125,
            "no configured subnet or ip-range contain the IP address 10.9.9.9",
        ),
    ];
    for (args, code, message) in cases {
        let out = pierd.docker(args);
        assert_eq!(out.code, Some(code), "{args:?}: {out:?}");
        assert!(out.stderr.contains(message), "{args:?}: {out:?}");
    }
    // Refused creates made no container, no link, no rule.
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(host_links(), with_a);

    // Docker's status codes.
    let status = |method: &str, path: &str, body: &str| -> u16 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .arg("--unix-socket")
            .arg(pierd.socket())
            .args(["-H", "Content-Type: application/json", "-d", body])
            .arg(format!("http://localhost{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let overlap = r#"{"Name":"c","IPAM":{"Config":[{"Subnet":"10.235.0.0/16"}]}}"#;
    assert_eq!(status("POST", "/networks/create", overlap), 403);
    assert_eq!(status("POST", "/networks/create", r#"{"Name":"a"}"#), 409);
    assert_eq!(
        status(
            "POST",
            "/networks/create",
            r#"{"Name":"d","Driver":"overlay"}"#
        ),
        404
    );
    assert_eq!(status("POST", "/networks/create", "{"), 400);
    assert_eq!(status("DELETE", "/networks/host", ""), 403);
    assert_eq!(status("GET", "/networks/nope", ""), 404);
    assert_eq!(host_links(), with_a);
}

#[test]
fn a_daemon_restart_keeps_connectivity() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["network", "create", "keep"]);
    let port = free_port();
    web(
        &pierd,
        &[
            "--name",
            "kweb",
            "--network",
            "keep",
            "-p",
            &format!("127.0.0.1:{port}:80"),
        ],
        "hello-keep",
    );
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "keep",
        "busybox",
        "sleep",
        "600",
    ]);
    let check = |pierd: &Pierd| {
        let body = http_get(&format!("127.0.0.1:{port}"), "/index.html").unwrap();
        assert_eq!(body.trim(), "hello-keep");
        let out = pierd.docker_ok(&["exec", "client", "wget", "-qO-", "http://kweb/index.html"]);
        assert_eq!(out.trim(), "hello-keep");
    };
    check(&pierd);
    pierd.crash_and_restart(Duration::from_millis(500));
    check(&pierd);
    // The port stays held: another container cannot take it.
    let out = pierd.docker(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(out.code, Some(125), "{out:?}");
    // A new member resolves the old ones.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "keep",
        "busybox",
        "wget",
        "-qO-",
        "http://kweb/index.html",
    ]);
    assert_eq!(out.trim(), "hello-keep");
}

#[test]
fn an_exit_while_the_daemon_is_down_leaves_no_stale_rule() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let bridge = pierd.bridge().unwrap();
    let port = free_port();
    web(
        &pierd,
        &["--name", "gone", "-p", &format!("127.0.0.1:{port}:80")],
        "hello",
    );
    let pid: i32 = inspect_format(&pierd, "gone", "{{.State.Pid}}")
        .parse()
        .unwrap();
    assert!(sh(&format!("nft list table inet pier_{bridge}")).contains(&format!("dport {port}")));
    // pierd goes down; the container dies meanwhile.
    pierd.crash_and_restart_with(Duration::from_millis(200), || {
        // SAFETY: kill(2) on the init of a container this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(500));
    });
    assert!(wait_until(Duration::from_secs(10), || {
        inspect_format(&pierd, "gone", "{{.State.Running}}") == "false"
    }));
    assert!(wait_until(Duration::from_secs(5), || {
        !sh(&format!("nft list table inet pier_{bridge}")).contains(&format!("dport {port}"))
    }));
    assert_eq!(ports_of(&bridge), 0);
    assert!(http_get(&format!("127.0.0.1:{port}"), "/index.html").is_err());
}

#[test]
fn a_hundred_containers_on_one_network() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["network", "create", "--subnet", "10.238.0.0/24", "crowd"]);
    let bridge = bridge_of(&pierd, "crowd");
    let mut ids = Vec::new();
    for i in 0..100 {
        let name = format!("m{i}");
        ids.push(
            pierd
                .docker_ok(&[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--network",
                    "crowd",
                    "busybox",
                    "sleep",
                    "600",
                ])
                .trim()
                .to_string(),
        );
    }
    assert_eq!(ports_of(&bridge), 100);
    let mut args = vec![
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"crowd\").IPAddress}}",
    ];
    args.extend(ids.iter().map(String::as_str));
    let ips = pierd.docker_ok(&args);
    let mut unique: Vec<&str> = ips.lines().collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 100, "{ips}");
    // The last reaches the first by name, and the other way round.
    let out = pierd.docker_ok(&["exec", "m99", "ping", "-c", "1", "-W", "2", "m0"]);
    assert!(out.contains("1 packets received"), "{out}");
    let out = pierd.docker_ok(&["exec", "m0", "ping", "-c", "1", "-W", "2", "m99.crowd"]);
    assert!(out.contains("1 packets received"), "{out}");
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    pierd.docker_ok(&rm);
    assert_eq!(ports_of(&bridge), 0);
}

#[test]
fn teardown_leaves_links_and_firewall_as_before() {
    let links_before = host_links();
    let rules_before = sh("nft list ruleset");
    let netns_before = sh("ls /run/netns 2>/dev/null");
    {
        let Some((pierd, _work)) = pierd_with_busybox() else {
            return;
        };
        pierd.docker_ok(&["network", "create", "--ipv6", "t1"]);
        pierd.docker_ok(&["network", "create", "--internal", "t2"]);
        web(
            &pierd,
            &["--name", "tw", "--network", "t1", "-p", "127.0.0.1::80"],
            "x",
        );
        pierd.docker_ok(&["network", "connect", "t2", "tw"]);
        pierd.docker_ok(&[
            "run", "-d", "-P", "--expose", "80", "busybox", "sleep", "600",
        ]);
        assert_ne!(host_links(), links_before);
        assert_ne!(sh("nft list ruleset"), rules_before);
        // Dropping the harness removes the containers and stops pierd (SIGTERM).
    }
    assert_eq!(host_links(), links_before);
    assert_eq!(sh("nft list ruleset"), rules_before);
    assert_eq!(sh("ls /run/netns 2>/dev/null"), netns_before);
}

/// A neighbour on a link of the host (a namespace and veth the test makes), routing
/// the default bridge's subnet through the host: it reaches a published port, and
/// nothing else of a container.
#[test]
fn only_published_ports_are_reachable_from_outside() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    struct Outside {
        ns: String,
        veth: String,
    }
    impl Drop for Outside {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["link", "delete", &self.veth])
                .status();
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.ns])
                .status();
        }
    }
    let tag = pier_testsupport::unique_name("");
    let out = Outside {
        ns: format!("pierout{tag}"),
        veth: format!("po{tag}"),
    };
    let run = |args: &str| {
        let status = Command::new("sh").arg("-c").arg(args).status().unwrap();
        assert!(status.success(), "{args}");
    };
    let (host_ip, outside_ip) = ("10.239.77.1", "10.239.77.2");
    run(&format!("ip netns add {}", out.ns));
    run(&format!(
        "ip link add {} type veth peer name eth0 netns {}",
        out.veth, out.ns
    ));
    run(&format!(
        "ip addr add {host_ip}/30 dev {} && ip link set {} up",
        out.veth, out.veth
    ));
    run(&format!(
        "ip -n {ns} addr add {outside_ip}/30 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up",
        ns = out.ns
    ));
    let subnet = network_format(&pierd, "bridge", "{{range .IPAM.Config}}{{.Subnet}}{{end}}");
    run(&format!(
        "ip -n {} route add {subnet} via {host_ip}",
        out.ns
    ));

    let port = free_port();
    web(
        &pierd,
        &["--name", "edge", "-p", &format!("{port}:80")],
        "hello-edge",
    );
    let ip = ip_of(&pierd, "edge", "bridge");
    let fetch = |url: &str| {
        Command::new("ip")
            .args(["netns", "exec", &out.ns, "python3", "-c"])
            .arg(format!(
                "import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read().decode())"
            ))
            .output()
            .unwrap()
    };
    let published = fetch(&format!("http://{host_ip}:{port}/index.html"));
    assert!(
        String::from_utf8_lossy(&published.stdout).contains("hello-edge"),
        "{published:?}"
    );
    let direct = fetch(&format!("http://{ip}/index.html"));
    assert!(
        !direct.status.success(),
        "reached {ip}:80 directly: {direct:?}"
    );
}
