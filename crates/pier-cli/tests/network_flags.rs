//! Request parity of the network flags: the real docker CLI and `pier`, pointed at a
//! small recording Engine API server on a temporary unix socket, must send the same
//! JSON bodies for `create` (ports, networks, DNS, hosts, links), `network create`
//! and `network connect`. Needs no daemon; skipped without docker on the host.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::Value;

const DOCKER: &str = "/usr/local/bin/docker";

/// A recorded request: method, path (without the API version), body.
type Request = (String, String, Vec<u8>);

/// An Engine API stand-in that records every request and answers the few the
/// commands under test need.
struct Server {
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("api.sock")).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let log = log.clone();
                thread::spawn(move || serve(stream, &log));
            }
        });
        Server { dir, requests }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("api.sock").display())
    }

    /// The JSON body of the last `POST` whose path ends with `suffix`, and clears
    /// the log.
    fn take_body(&self, suffix: &str) -> Value {
        let mut requests = self.requests.lock().unwrap();
        let found = requests
            .iter()
            .rev()
            .find(|(m, p, _)| m == "POST" && p.split('?').next().unwrap().ends_with(suffix))
            .map(|(_, _, b)| serde_json::from_slice(b).unwrap());
        let paths: Vec<String> = requests
            .iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect();
        requests.clear();
        found.unwrap_or_else(|| panic!("no POST …{suffix} among {paths:?}"))
    }
}

/// Answers requests on one (keep-alive) connection until the client closes it.
fn serve(stream: UnixStream, log: &Mutex<Vec<Request>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
        }
        // Paths without their `/v1.xx` prefix.
        let short = match path.strip_prefix("/v") {
            Some(rest) => rest
                .find('/')
                .map_or(path.clone(), |i| rest[i..].to_string()),
            None => path.clone(),
        };
        log.lock()
            .unwrap()
            .push((method.clone(), short.clone(), body));
        let (status, answer) = if short.starts_with("/_ping") {
            ("200 OK", "OK".to_string())
        } else if short.starts_with("/containers/create") || short.starts_with("/networks/create") {
            (
                "201 Created",
                format!("{{\"Id\":\"{}\",\"Warnings\":[]}}", "ab".repeat(32)),
            )
        } else {
            ("200 OK", "{}".to_string())
        };
        let content_type = if short.starts_with("/_ping") {
            "text/plain"
        } else {
            "application/json"
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nApi-Version: 1.51\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n",
            answer.len()
        );
        let mut out = head.into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(answer.as_bytes());
        }
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn docker(server: &Server, args: &[&str]) -> Output {
    let mut c = Command::new(DOCKER);
    c.args(args)
        .env("DOCKER_HOST", server.host())
        .env("DOCKER_CONFIG", server.dir.path().join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION");
    run(c)
}

fn pier(server: &Server, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
    c.arg("-H")
        .arg(server.host())
        .args(args)
        .env_remove("PIER_HOST")
        .env_remove("PIER_AUTOSTART");
    run(c)
}

/// Go's zero values, which the daemon reads as absent (also `{"Type":""}`).
fn zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(zero),
        Value::Object(o) => o.values().all(zero),
    }
}

/// The fields this parity is about: pier must send them whenever docker does.
const NETWORK_FIELDS: &[&str] = &[
    ".Hostname",
    ".Domainname",
    ".ExposedPorts",
    ".HostConfig.NetworkMode",
    ".HostConfig.PortBindings",
    ".HostConfig.PublishAllPorts",
    ".HostConfig.Dns",
    ".HostConfig.DnsSearch",
    ".HostConfig.DnsOptions",
    ".HostConfig.ExtraHosts",
    ".HostConfig.Links",
    ".NetworkingConfig",
    ".Name",
    ".Driver",
    ".IPAM",
    ".Internal",
    ".Attachable",
    ".EnableIPv6",
    ".Options",
    ".Labels",
    ".Container",
    ".EndpointConfig",
    ".Force",
];

/// Compares the fields both bodies send. Different values land in `diffs`; fields
/// only docker sends land in `missing` (with whether docker's value is a zero
/// value, which the daemon reads as absent).
fn compare(
    path: &str,
    d: &Value,
    p: &Value,
    diffs: &mut Vec<String>,
    missing: &mut Vec<(String, bool)>,
) {
    match (d, p) {
        (Value::Object(dm), Value::Object(pm)) => {
            for (k, dv) in dm {
                let sub = format!("{path}.{k}");
                match pm.get(k) {
                    Some(pv) => compare(&sub, dv, pv, diffs, missing),
                    None => missing.push((sub, zero(dv))),
                }
            }
            for (k, pv) in pm {
                if !dm.contains_key(k) && !zero(pv) {
                    diffs.push(format!("{path}.{k}: only pier sends {pv}"));
                }
            }
        }
        // Docker builds the IPAM configs from a Go map: any order.
        (Value::Array(da), Value::Array(pa)) if path.ends_with(".IPAM.Config") => {
            let sorted = |a: &Vec<Value>| {
                let mut v: Vec<String> = a.iter().map(|x| x.to_string()).collect();
                v.sort();
                v
            };
            if sorted(da) != sorted(pa) {
                diffs.push(format!("{path}: docker {d}, pier {p}"));
            }
        }
        _ if zero(d) && zero(p) => {}
        _ if d != p => diffs.push(format!("{path}: docker {d}, pier {p}")),
        _ => {}
    }
}

/// Runs `args` with docker and pier; the bodies of their `POST …suffix` must agree.
fn same_body(args: &[&str], suffix: &str) {
    if !Path::new(DOCKER).exists() {
        assert!(std::env::var_os("CI").is_none(), "docker is missing");
        eprintln!("skipped: {DOCKER} is missing");
        return;
    }
    let server = Server::start();
    let d_out = docker(&server, args);
    let d = server.take_body(suffix);
    let p_out = pier(&server, args);
    let p = server.take_body(suffix);
    assert_eq!(
        String::from_utf8_lossy(&p_out.stdout),
        String::from_utf8_lossy(&d_out.stdout),
        "stdout of {args:?}"
    );
    let mut diffs = Vec::new();
    let mut missing = Vec::new();
    compare("", &d, &p, &mut diffs, &mut missing);
    let mut others = Vec::new();
    for (f, zero) in missing {
        if !zero && NETWORK_FIELDS.iter().any(|n| f.starts_with(n)) {
            diffs.push(format!("{f}: only docker sends it"));
        } else {
            others.push(f);
        }
    }
    eprintln!("{args:?}: fields only docker sends (not network flags, or zero): {others:?}");
    assert!(
        diffs.is_empty(),
        "{args:?}: bodies differ:\n{}\ndocker: {d}\npier:   {p}",
        diffs.join("\n")
    );
}

#[test]
fn create_with_network_flags() {
    same_body(
        &[
            "create",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1::53/udp",
            "-P",
            "--expose",
            "9000-9001",
            "--network",
            "n1",
            "--ip",
            "10.1.0.5",
            "--network-alias",
            "web",
            "--dns",
            "10.0.0.9",
            "--dns-search",
            "example.test",
            "--add-host",
            "db:10.0.0.2",
            "--add-host",
            "gw:host-gateway",
            "--link",
            "other:o",
            "busybox",
        ],
        "/containers/create",
    );
}

#[test]
fn create_with_more_port_and_host_forms() {
    same_body(
        &[
            "create",
            "-p",
            "80",
            "-p",
            "[::1]:80:80",
            "-p",
            "8000-8002:80-82",
            "-p",
            "0.0.0.0:9000-9001:9000-9001/sctp",
            "-p",
            "7000-7005:70",
            "-p",
            "published=8443,target=443,protocol=udp",
            "--expose",
            "7000",
            "-h",
            "hh",
            "--domainname",
            "dd",
            "--mac-address",
            "02:42:ac:11:00:02",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "a=1.2.3.4",
            "--add-host",
            "v6:[::1]",
            "--link",
            "other",
            "busybox",
            "sh",
            "-c",
            "true",
        ],
        "/containers/create",
    );
}

#[test]
fn create_on_user_network_with_ip6() {
    same_body(
        &[
            "create",
            "--net",
            "n2",
            "--ip6",
            "fd00::5",
            "--net-alias",
            "x",
            "--net-alias",
            "y",
            "busybox",
        ],
        "/containers/create",
    );
    same_body(
        &["create", "--network", "host", "busybox"],
        "/containers/create",
    );
    same_body(
        &["create", "--network", "n5", "busybox"],
        "/containers/create",
    );
    same_body(
        &[
            "create",
            "--network",
            "name=n1,alias=x,ip=10.1.0.9,driver-opt=k=v",
            "--network",
            "n2",
            "--link",
            "a:b",
            "--mac-address",
            "02:42:ac:11:00:03",
            "-p",
            "1.2.3.4::80",
            "-p",
            "8000-8002:80",
            "--dns",
            "::ffff:1.2.3.4",
            "--dns-search",
            "example.test.",
            "busybox",
        ],
        "/containers/create",
    );
}

#[test]
fn network_create() {
    same_body(
        &[
            "network",
            "create",
            "--subnet",
            "10.1.0.0/16",
            "--gateway",
            "10.1.0.1",
            "--ip-range",
            "10.1.2.0/24",
            "--aux-address",
            "a=10.1.0.3",
            "--internal",
            "--label",
            "k=v",
            "-o",
            "com.docker.network.bridge.name=xyz",
            "n1",
        ],
        "/networks/create",
    );
    same_body(&["network", "create", "n0"], "/networks/create");
    same_body(
        &[
            "network",
            "create",
            "--ipv6",
            "--attachable",
            "--ipam-driver",
            "foo",
            "-d",
            "macvlan",
            "--subnet",
            "fd00::/64",
            "--subnet",
            "10.2.0.0/16",
            "--gateway",
            "10.2.0.1",
            "n3",
        ],
        "/networks/create",
    );
}

#[test]
fn network_connect_and_disconnect() {
    same_body(
        &[
            "network", "connect", "--ip", "10.1.0.7", "--alias", "al", "n1", "c1",
        ],
        "/networks/n1/connect",
    );
    same_body(
        &[
            "network", "connect", "--ip6", "fd00::9", "--link", "a:b", "n1", "c1",
        ],
        "/networks/n1/connect",
    );
    same_body(
        &["network", "disconnect", "-f", "n1", "c1"],
        "/networks/n1/disconnect",
    );
}
