//! The container commands, through pierd's Engine API: `run`, `create`, `start`,
//! `ps`, `logs`, `stop`, `kill`, `rm`, `wait`, `inspect`, plus `version` and `info`.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::{demux, Client};
use crate::interactive::{detach_keys_query, exit_status, session, End, Session};
use crate::output::{ago, ellipsis, print_inspect, render_all, Template};
use crate::terminal;

/// Flags shared by `run` and `create` (`-h` is `--hostname`, as docker's).
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Set meta data on a container
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount a volume (/host:/container[:ro])
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Mount a tmpfs directory (/path[:options])
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    network: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]"
    )]
    publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    expose: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    network_alias: Vec<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    link_local_ip: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_host: Vec<String>,
    /// Add link to another container
    #[arg(long)]
    link: Vec<String>,
    /// Container NIS domain name
    #[arg(long)]
    domainname: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    mac_address: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// User namespace to use: `host`, or Pier's `auto` (a range of its own, from the
    /// daemon's --userns-remap user)
    #[arg(long)]
    userns: Option<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Security options
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    /// Memory limit (e.g. 64m)
    #[arg(short, long)]
    memory: Option<String>,
    /// Tune container pids limit
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Runtime to use for this container
    #[arg(long)]
    runtime: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, value_enum, default_value = "missing")]
    pull: crate::registry::PullPolicy,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    sig_proxy: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a template
    #[arg(long)]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show logs since timestamp or relative (e.g. 42m)
    #[arg(long)]
    since: Option<String>,
    container: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short, long)]
    pub(crate) time: Option<i64>,
    /// Signal to send to the container
    #[arg(short, long)]
    pub(crate) signal: Option<String>,
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    detach_keys: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

/// Path segment encoding for names and IDs in URLs.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn parse_env_file(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            if l.contains('=') {
                l.to_string()
            } else {
                format!("{l}={}", std::env::var(l).unwrap_or_default())
            }
        })
        .collect())
}

fn parse_memory(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<i64>()
        .map(|n| n * mult)
        .map_err(|_| anyhow!("invalid argument {s:?} for \"-m, --memory\" flag"))
}

fn restart_policy(s: &str) -> Value {
    match s.split_once(':') {
        Some((name, n)) => {
            json!({"Name": name, "MaximumRetryCount": n.parse::<i64>().unwrap_or(0)})
        }
        None => json!({"Name": s, "MaximumRetryCount": 0}),
    }
}

/// A bad `run`/`create` flag, printed as the docker CLI prints it (status 125).
#[derive(Debug, PartialEq)]
pub(crate) enum FlagError {
    /// A flag's value failed its validation: value, flag, message.
    Value(String, &'static str, String),
    /// The flags do not make a container configuration.
    Parse(String),
}

impl FlagError {
    /// The message as docker prints it for `pier <cmd>`.
    pub(crate) fn text(&self, cmd: &str) -> String {
        match self {
            FlagError::Value(value, flag, message) => format!(
                "invalid argument \"{value}\" for \"{flag}\" flag: {message}\n\n\
                 Usage:  pier {cmd} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
                 Run 'pier {cmd} --help' for more information"
            ),
            FlagError::Parse(message) => {
                format!("pier: {message}\n\nRun 'pier {cmd} --help' for more information")
            }
        }
    }
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagError::Value(value, flag, message) => {
                write!(
                    f,
                    "invalid argument \"{value}\" for \"{flag}\" flag: {message}"
                )
            }
            FlagError::Parse(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for FlagError {}

/// Go's `%q` for the plain strings flags hold.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error text.
fn parse_u16(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= u64::from(u16::MAX) => Ok(n),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )),
    }
}

/// `nat.ParsePortRange`: `80` or `8000-8002`.
pub(crate) fn parse_port_range(ports: &str) -> Result<(u64, u64), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    if !ports.contains('-') {
        let n = parse_u16(ports)?;
        return Ok((n, n));
    }
    let mut parts = ports.split('-');
    let start = parse_u16(parts.next().unwrap_or_default())?;
    let end = parse_u16(parts.next().unwrap_or_default())?;
    if end < start {
        return Err(format!("invalid range specified for port: {ports}"));
    }
    Ok((start, end))
}

/// `nat.SplitProtoPort`: (`proto`, `port`), `tcp` by default.
fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 {
        return ("tcp".into(), raw.into());
    }
    if parts[1].is_empty() {
        return ("tcp".into(), parts[0].into());
    }
    (parts[1].into(), parts[0].into())
}

/// Go's `net.SplitHostPort(ip + ":")` for a bracketed address: the address inside.
fn unbracket(ip: &str) -> Result<String, String> {
    let hostport = format!("{ip}:");
    let err = |what: &str| Err(format!("address {hostport}: {what}"));
    let Some(end) = hostport.find(']') else {
        return err("missing ']' in address");
    };
    let colon = hostport.len() - 1;
    if end + 1 == hostport.len() {
        return err("missing port in address");
    }
    if end + 1 != colon {
        if hostport.as_bytes()[end + 1] == b':' {
            return err("too many colons in address");
        }
        return err("missing port in address");
    }
    let host = &hostport[1..end];
    if hostport[1..].contains('[') {
        return err("unexpected '[' in address");
    }
    if hostport[end + 1..].contains(']') {
        return err("unexpected ']' in address");
    }
    Ok(host.to_string())
}

/// One published port: container port (`80/tcp`), host IP and host port.
pub(crate) type PortMapping = (String, String, String);

/// `nat.ParsePortSpec`: `[ip:][hostPort:]containerPort[/proto]`, with ranges.
pub(crate) fn parse_port_spec(raw: &str) -> Result<Vec<PortMapping>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host_port, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (proto, container) = split_proto_port(container);
    let mut ip = ip;
    if ip.starts_with('[') {
        ip = unbracket(&ip).map_err(|e| format!("invalid IP address {ip}: {e}"))?;
    }
    if !ip.is_empty() && crate::networks::parse_ip(&ip).is_none() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) =
        parse_port_range(&container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let (mut host_start, mut host_end) = (0, 0);
    if !host_port.is_empty() {
        (host_start, host_end) =
            parse_port_range(host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?;
        if end - start != host_end - host_start && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host_port}"
            ));
        }
    }
    let proto = proto.to_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("invalid proto: {proto}"));
    }
    let count = end - start + 1;
    Ok((0..count)
        .map(|i| {
            let mut hp = String::new();
            if !host_port.is_empty() {
                hp = (host_start + i).to_string();
                if count == 1 && host_start != host_end {
                    hp.push_str(&format!("-{host_end}"));
                }
            }
            (format!("{}/{proto}", start + i), ip.clone(), hp)
        })
        .collect())
}

/// docker's `convertToStandardNotation`: `published=8080,target=80[,protocol=udp]`
/// as `8080:80/udp`; other specs as given.
fn standard_publish(spec: &str) -> Result<String, String> {
    if !spec.contains('=') {
        return Ok(spec.to_string());
    }
    let mut params: Map<String, Value> = Map::new();
    params.insert("protocol".into(), json!("tcp"));
    for param in spec.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k.into(), json!(v));
            }
            _ => {
                return Err(format!(
                    "invalid publish opts format (should be name=value but got '{param}')"
                ))
            }
        }
    }
    let get = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or_default();
    Ok(format!(
        "{}:{}/{}",
        get("published"),
        get("target"),
        get("protocol")
    ))
}

/// A create body's `ExposedPorts` and `PortBindings`.
pub(crate) type PortMaps = (Map<String, Value>, Map<String, Value>);

/// `-p` and `--expose` as the create body's `ExposedPorts` and `PortBindings`.
pub(crate) fn ports(publish: &[String], expose: &[String]) -> Result<PortMaps, String> {
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    for p in publish {
        for (port, ip, host) in parse_port_spec(&standard_publish(p)?)? {
            exposed.insert(port.clone(), json!({}));
            if let Some(list) = bindings
                .entry(port)
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                list.push(json!({"HostIp": ip, "HostPort": host}));
            }
        }
    }
    for e in expose {
        if e.contains(':') {
            return Err(format!("invalid port format for --expose: {e}"));
        }
        let (proto, port) = split_proto_port(e);
        let (start, end) = parse_port_range(&port)
            .map_err(|err| format!("invalid range format for --expose: {e}, error: {err}"))?;
        for i in start..=end {
            exposed.entry(format!("{i}/{proto}")).or_insert(json!({}));
        }
    }
    Ok((exposed, bindings))
}

/// Go's `net.IP.String()` of a parsed address (IPv4-mapped addresses as IPv4).
fn go_ip_string(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    }
}

/// `opts.ValidateExtraHost`: `host:ip`, `host=ip`, `host:[v6]` or
/// `host:host-gateway`, as the API's `host:ip`.
pub(crate) fn validate_extra_host(val: &str) -> Result<String, String> {
    let (k, v) = match val.split_once('=').or_else(|| val.split_once(':')) {
        Some((k, v)) if !k.is_empty() && !k.contains(':') => (k, v),
        _ => return Err(format!("bad format for add-host: {}", go_quote(val))),
    };
    let mut v = v;
    if v != "host-gateway" {
        if v.len() > 2 && v.starts_with('[') && v.ends_with(']') {
            v = &v[1..v.len() - 1];
        }
        if crate::networks::parse_ip(v.trim()).is_none() {
            return Err(format!("invalid IP address in add-host: {}", go_quote(v)));
        }
    }
    Ok(format!("{k}:{v}"))
}

/// `opts.ValidateLink`: `name` or `name:alias`.
pub(crate) fn validate_link(val: &str) -> Result<(), String> {
    if val.is_empty() {
        return Err("empty string specified for links".into());
    }
    if val.splitn(3, ':').count() > 2 {
        return Err(format!("bad format for links: {val}"));
    }
    Ok(())
}

/// `opts.ValidateDNSSearch`: a domain (without its final dot) or `.`.
fn validate_dns_search(val: &str) -> Result<String, String> {
    let val = val.trim_matches(' ');
    if val == "." {
        return Ok(val.to_string());
    }
    let bad = || format!("{val} is not a valid domain");
    if !val.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let domain = val.trim_end_matches(char::is_whitespace);
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.split('.').all(label_ok) && domain.len() < 255 {
        Ok(domain.to_string())
    } else {
        Err(bad())
    }
}

/// `net.ParseMAC` for the usual forms: 6, 8 or 20 hex pairs split by `:` or `-`,
/// or dotted groups of four.
fn valid_mac(mac: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    for sep in [':', '-'] {
        let parts: Vec<&str> = mac.split(sep).collect();
        if [6, 8, 20].contains(&parts.len()) && parts.iter().all(|p| hex(p, 2)) {
            return true;
        }
    }
    let parts: Vec<&str> = mac.split('.').collect();
    [3, 4, 10].contains(&parts.len()) && parts.iter().all(|p| hex(p, 4))
}

/// Network modes the daemon defines (not user networks).
fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

/// One `--network` value: a name, or docker's `name=N,alias=A,ip=…` form.
#[derive(Debug, Default)]
struct Attachment {
    target: String,
    aliases: Vec<String>,
    links: Vec<String>,
    ip: String,
    ip6: String,
    link_local: Vec<String>,
    mac: String,
    driver_opts: Map<String, Value>,
    gw_priority: i64,
}

fn parse_attachment(value: &str) -> Result<Attachment, FlagError> {
    // docker's test: the (unanchored) regexp `\w+=\w+(,\w+=\w+)*`.
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = value.as_bytes();
    let long = (1..bytes.len().saturating_sub(1))
        .any(|i| bytes[i] == b'=' && word(bytes[i - 1]) && word(bytes[i + 1]));
    if !long {
        return Ok(Attachment {
            target: value.to_string(),
            ..Attachment::default()
        });
    }
    let mut a = Attachment::default();
    let bad = |m: String| FlagError::Value(value.to_string(), "--network", m);
    for field in value.split(',') {
        let (key, val) = field.split_once('=').unwrap_or((field, ""));
        match key.to_lowercase().as_str() {
            "name" => a.target = val.to_string(),
            "alias" => a.aliases.push(val.to_string()),
            "ip" => a.ip = val.to_string(),
            "ip6" => a.ip6 = val.to_string(),
            "mac-address" => a.mac = val.to_string(),
            "link-local-ip" => a.link_local.push(val.to_string()),
            "driver-opt" => match val.split_once('=') {
                Some((k, v)) => {
                    a.driver_opts.insert(k.to_string(), json!(v));
                }
                None => return Err(bad("invalid key value pair format in driver options".into())),
            },
            "gw-priority" => {
                a.gw_priority = val
                    .parse()
                    .map_err(|_| bad(format!("invalid gw-priority: {val}")))?
            }
            k => return Err(bad(format!("invalid field key {k}"))),
        }
    }
    Ok(a)
}

/// The networking part of the create body, as docker's `parseNetworkOpts`:
/// `HostConfig.NetworkMode`, the endpoints, and the checks on them.
fn networking(a: &CreateArgs) -> Result<(String, Map<String, Value>), FlagError> {
    let mut attachments = a
        .network
        .iter()
        .map(|n| parse_attachment(n))
        .collect::<Result<Vec<_>, _>>()?;
    let single = attachments.len() == 1;
    let default = attachments.is_empty();
    if default {
        attachments.push(Attachment {
            target: "default".into(),
            ..Attachment::default()
        });
    }
    let mode = attachments[0].target.clone();
    let conflict = |m: &str| Err(FlagError::Parse(format!("conflicting options: {m}")));
    {
        let first = &mut attachments[0];
        if !first.aliases.is_empty() && !a.network_alias.is_empty() {
            return conflict("cannot specify both --network-alias and per-network alias");
        }
        if !first.ip.is_empty() && a.ip.is_some() {
            return conflict("cannot specify both --ip and per-network IPv4 address");
        }
        if !first.ip6.is_empty() && a.ip6.is_some() {
            return conflict("cannot specify both --ip6 and per-network IPv6 address");
        }
        if !first.mac.is_empty() && a.mac_address.is_some() {
            return conflict("cannot specify both --mac-address and per-network MAC address");
        }
        if !first.link_local.is_empty() && !a.link_local_ip.is_empty() {
            return conflict(
                "cannot specify both --link-local-ip and per-network link-local IP addresses",
            );
        }
        if !a.network_alias.is_empty() {
            first.aliases = a.network_alias.clone();
        }
        if is_user_defined(&first.target) && !a.link.is_empty() {
            first.links = a.link.clone();
        }
        if let Some(ip) = &a.ip {
            first.ip = ip.clone();
        }
        if let Some(ip) = &a.ip6 {
            first.ip6 = ip.clone();
        }
        if let Some(mac) = &a.mac_address {
            first.mac = mac.clone();
        }
        if !a.link_local_ip.is_empty() {
            first.link_local = a.link_local_ip.clone();
        }
    }
    let mut endpoints = Map::new();
    let (mut user, mut builtin) = (false, false);
    for (i, n) in attachments.iter().enumerate() {
        if n.target.trim().is_empty() {
            return Err(FlagError::Parse("no name set for network".into()));
        }
        if is_user_defined(&n.target) {
            user = true;
        } else {
            builtin = true;
            if !n.aliases.is_empty() {
                return Err(FlagError::Parse(
                    "network-scoped aliases are only supported for user-defined networks".into(),
                ));
            }
            if !n.links.is_empty() {
                return Err(FlagError::Parse(
                    "links are only supported for user-defined networks".into(),
                ));
            }
        }
        if !n.mac.is_empty() && !valid_mac(&n.mac) {
            return Err(FlagError::Parse(format!(
                "{} is not a valid mac address",
                n.mac
            )));
        }
        if endpoints.contains_key(&n.target) {
            return Err(FlagError::Parse(format!(
                "network {} is specified multiple times",
                go_quote(&n.target)
            )));
        }
        let empty = n.aliases.is_empty()
            && n.links.is_empty()
            && n.ip.is_empty()
            && n.ip6.is_empty()
            && n.link_local.is_empty()
            && n.mac.is_empty()
            && n.driver_opts.is_empty()
            && n.gw_priority == 0;
        if i == 0 && single && empty {
            continue;
        }
        let ep = crate::networks::Endpoint {
            ip: &n.ip,
            ip6: &n.ip6,
            link_local: &n.link_local,
            aliases: (!n.aliases.is_empty()).then_some(&n.aliases[..]),
            links: (!n.links.is_empty()).then_some(&n.links[..]),
            mac: &n.mac,
            driver_opts: (!n.driver_opts.is_empty()).then(|| n.driver_opts.clone()),
            gw_priority: n.gw_priority,
        }
        .json();
        endpoints.insert(n.target.clone(), ep);
    }
    if user && builtin {
        return conflict("cannot attach both user-defined and non-user-defined network-modes");
    }
    Ok((mode, endpoints))
}

/// The network flags' part of the body: validated as docker validates them.
fn network_fields(
    a: &CreateArgs,
    host_config: &mut Value,
    body: &mut Value,
) -> Result<(), FlagError> {
    let mut extra_hosts = Vec::new();
    for h in &a.add_host {
        extra_hosts.push(
            validate_extra_host(h).map_err(|e| FlagError::Value(h.clone(), "--add-host", e))?,
        );
    }
    for l in &a.link {
        validate_link(l).map_err(|e| FlagError::Value(l.clone(), "--link", e))?;
    }
    let mut dns = Vec::new();
    for d in &a.dns {
        match crate::networks::parse_ip(d.trim()) {
            Some(ip) => dns.push(go_ip_string(ip)),
            None => {
                return Err(FlagError::Value(
                    d.clone(),
                    "--dns",
                    format!("IP address is not correctly formatted: {d}"),
                ))
            }
        }
    }
    let mut search = Vec::new();
    for d in &a.dns_search {
        search.push(
            validate_dns_search(d).map_err(|e| FlagError::Value(d.clone(), "--dns-search", e))?,
        );
    }
    let (exposed, bindings) = ports(&a.publish, &a.expose).map_err(FlagError::Parse)?;
    let (mode, endpoints) = networking(a)?;
    host_config["NetworkMode"] = json!(mode);
    host_config["PortBindings"] = Value::Object(bindings);
    host_config["PublishAllPorts"] = json!(a.publish_all);
    host_config["Dns"] = json!(dns);
    host_config["DnsSearch"] = json!(search);
    host_config["DnsOptions"] = json!(a.dns_option);
    if !extra_hosts.is_empty() {
        host_config["ExtraHosts"] = json!(extra_hosts);
    }
    if !a.link.is_empty() {
        host_config["Links"] = json!(a.link);
    }
    if !exposed.is_empty() {
        body["ExposedPorts"] = Value::Object(exposed);
    }
    body["NetworkingConfig"] = json!({ "EndpointsConfig": endpoints });
    if let Some(d) = &a.domainname {
        body["Domainname"] = json!(d);
    }
    Ok(())
}

/// The create request body of `run`/`create`.
pub(crate) fn create_body(a: &CreateArgs, auto_remove: bool, attach: bool) -> Result<Value> {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(parse_env_file(f)?);
    }
    for e in &a.env {
        env.push(if e.contains('=') {
            e.clone()
        } else {
            format!("{e}={}", std::env::var(e).unwrap_or_default())
        });
    }
    let labels: Map<String, Value> = a
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), json!(v)),
            None => (l.clone(), json!("")),
        })
        .collect();
    let tmpfs: Map<String, Value> = a
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((p, o)) => (p.to_string(), json!(o)),
            None => (t.clone(), json!("")),
        })
        .collect();
    let mut host_config = json!({
        "AutoRemove": auto_remove,
        "Binds": a.volume,
        "Privileged": a.privileged,
        "CapAdd": a.cap_add,
        "CapDrop": a.cap_drop,
        "SecurityOpt": a.security_opt,
        "ReadonlyRootfs": a.read_only,
        "Tmpfs": tmpfs,
    });
    if let Some(r) = &a.restart {
        host_config["RestartPolicy"] = restart_policy(r);
    }
    if let Some(m) = &a.memory {
        host_config["Memory"] = json!(parse_memory(m)?);
    }
    if let Some(p) = a.pids_limit {
        host_config["PidsLimit"] = json!(p);
    }
    if let Some(r) = &a.runtime {
        host_config["Runtime"] = json!(r);
    }
    if let Some(mode) = &a.userns {
        // docker's check, with Pier's `auto` besides `host`.
        if !matches!(mode.as_str(), "" | "host" | "auto") {
            anyhow::bail!("--userns: invalid USER mode");
        }
        host_config["UsernsMode"] = json!(mode);
    }
    let mut body = json!({
        "Image": a.image,
        "Env": env,
        "Labels": labels,
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive && attach,
        "AttachStdin": a.interactive && attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
    });
    network_fields(a, &mut host_config, &mut body)?;
    body["HostConfig"] = host_config;
    if !a.command.is_empty() {
        body["Cmd"] = json!(a.command);
    }
    if let Some(e) = &a.entrypoint {
        body["Entrypoint"] = if e.is_empty() { json!([]) } else { json!([e]) };
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(h) = &a.hostname {
        body["Hostname"] = json!(h);
    }
    if let Some(s) = &a.stop_signal {
        body["StopSignal"] = json!(s);
    }
    Ok(body)
}

fn create_container(
    client: &Client,
    a: &CreateArgs,
    auto_remove: bool,
    attach: bool,
) -> Result<String> {
    let mut body = create_body(a, auto_remove, attach)?;
    // docker run: the terminal's size from the start, before any resize can arrive.
    if attach && a.tty && terminal::stdout_is_terminal() {
        let (h, w) = terminal::size();
        if h > 0 && w > 0 {
            body["HostConfig"]["ConsoleSize"] = json!([h, w]);
        }
    }
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", enc(n)),
        None => "/containers/create".to_string(),
    };
    use crate::registry::{pull_for_create, PullPolicy};
    if a.pull == PullPolicy::Always {
        pull_for_create(client, &a.image, a.platform.as_deref(), false)?;
    }
    let answer = match client.post_json(&path, Some(&body)) {
        // As the docker CLI: a missing image is pulled, then the create is retried.
        Err(e) if a.pull == PullPolicy::Missing && e.to_string().contains("No such image") => {
            pull_for_create(client, &a.image, a.platform.as_deref(), true)?;
            client.post_json(&path, Some(&body))?
        }
        other => other?,
    };
    for w in answer["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    answer["Id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the daemon answered no container ID"))
}

/// Prints a bad flag's error as docker does: status 125.
fn flag_error(e: &anyhow::Error, cmd: &str) -> Option<ExitCode> {
    let f = e.downcast_ref::<FlagError>()?;
    eprintln!("{}", f.text(cmd));
    Some(ExitCode::from(125))
}

pub fn create(client: &Client, a: CreateArgs) -> Result<ExitCode> {
    // docker create asks for the streams a later `start -a` attaches, as docker run does.
    let id = match create_container(client, &a, false, true) {
        Ok(id) => id,
        Err(e) => return flag_error(&e, "create").ok_or(e),
    };
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// Exit status of `run` when the daemon refused to start the command, as docker's.
fn start_failure_code(message: &str) -> u8 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

pub fn run(client: &Client, a: RunArgs) -> Result<ExitCode> {
    let attach = !a.detach;
    if attach {
        // As docker: before anything is created, status 1.
        terminal::check_tty(a.create.interactive, a.create.tty)?;
    }
    let id = match create_container(client, &a.create, a.rm, attach) {
        Ok(id) => id,
        Err(e) if e.is::<FlagError>() => return Ok(flag_error(&e, "run").unwrap_or(125.into())),
        Err(e) => {
            eprintln!("{}", FlagError::Parse(format!("{e:#}")).text("run"));
            return Ok(ExitCode::from(125));
        }
    };
    if a.detach {
        // docker prints the ID before starting (also when the start fails).
        println!("{id}");
        if let Err(e) = client
            .request("POST", &format!("/containers/{id}/start"), None)?
            .check()
        {
            eprintln!("{}", FlagError::Parse(format!("{e:#}")).text("run"));
            return Ok(ExitCode::from(start_failure_code(&e.to_string())));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tty = a.create.tty;
    let stdin = a.create.interactive;
    let stream = client.hijack(&format!(
        "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}{}",
        if stdin { "&stdin=1" } else { "" },
        detach_keys_query(a.detach_keys.as_deref())
    ))?;
    let condition = if a.rm { "removed" } else { "next-exit" };
    let waiter = client.request(
        "POST",
        &format!("/containers/{id}/wait?condition={condition}"),
        None,
    )?;
    if let Err(e) = client
        .request("POST", &format!("/containers/{id}/start"), None)?
        .check()
    {
        eprintln!("{}", FlagError::Parse(format!("{e:#}")).text("run"));
        return Ok(ExitCode::from(start_failure_code(&e.to_string())));
    }
    let end = session(
        client,
        stream,
        Session::container(&id, tty, stdin, a.detach_keys.as_deref(), a.sig_proxy),
    )?;
    if end == End::Detached {
        return Ok(ExitCode::SUCCESS);
    }
    let result = waiter.json()?;
    let code = result["StatusCode"].as_i64().unwrap_or(125);
    Ok(exit_status(code))
}

pub fn start(client: &Client, a: StartArgs) -> Result<ExitCode> {
    let mut failed = false;
    if (a.attach || a.interactive) && a.containers.len() > 1 {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    }
    for c in &a.containers {
        if a.attach || a.interactive {
            let info = client.get_json(&format!("/containers/{}/json", enc(c)))?;
            let id = info["Id"].as_str().unwrap_or(c).to_string();
            let tty = info["Config"]["Tty"].as_bool() == Some(true);
            let stdin = a.interactive && info["Config"]["OpenStdin"].as_bool() == Some(true);
            terminal::check_tty(stdin, tty)?;
            let stream = client.hijack(&format!(
                "/containers/{}/attach?stream=1&stdout=1&stderr=1&stdin={}{}",
                enc(&id),
                u8::from(stdin),
                detach_keys_query(a.detach_keys.as_deref())
            ))?;
            let condition = if info["HostConfig"]["AutoRemove"].as_bool() == Some(true) {
                "removed"
            } else {
                "next-exit"
            };
            let waiter = client.request(
                "POST",
                &format!("/containers/{}/wait?condition={condition}", enc(&id)),
                None,
            )?;
            client
                .request("POST", &format!("/containers/{}/start", enc(&id)), None)?
                .check()?;
            let end = session(
                client,
                stream,
                Session::container(&id, tty, stdin, a.detach_keys.as_deref(), true),
            )?;
            if end == End::Detached {
                return Ok(ExitCode::SUCCESS);
            }
            let result = waiter.json()?;
            return Ok(exit_status(result["StatusCode"].as_i64().unwrap_or(1)));
        }
        match client
            .request("POST", &format!("/containers/{}/start", enc(c)), None)?
            .check()
        {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(exit(failed))
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A container's names from the API (`Names`), without the leading `/`.
pub(crate) fn names(c: &Value) -> Vec<String> {
    c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(|s| s.trim_start_matches('/').to_string()))
        .collect()
}

/// Runs `f` for each container, printing the name on success and the error on
/// failure, docker's way.
pub(crate) fn each(
    containers: &[String],
    mut f: impl FnMut(&str) -> Result<()>,
) -> Result<ExitCode> {
    let mut failed = false;
    for c in containers {
        match f(c) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(exit(failed))
}

/// The query of `stop` and `restart`: `?t=SECONDS&signal=SIGNAL`, each if given.
pub fn stop_query(time: Option<i64>, signal: Option<&str>) -> String {
    let mut query = Vec::new();
    if let Some(t) = time {
        query.push(format!("t={t}"));
    }
    if let Some(s) = signal {
        query.push(format!("signal={}", enc(s)));
    }
    if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    }
}

pub fn stop(client: &Client, a: StopArgs) -> Result<ExitCode> {
    let q = stop_query(a.time, a.signal.as_deref());
    each(&a.containers, |c| {
        client
            .request("POST", &format!("/containers/{}/stop{q}", enc(c)), None)?
            .check()
            .map(|_| ())
    })
}

pub fn kill(client: &Client, a: KillArgs) -> Result<ExitCode> {
    let q = a
        .signal
        .as_ref()
        .map(|s| format!("?signal={}", enc(s)))
        .unwrap_or_default();
    each(&a.containers, |c| {
        client
            .request("POST", &format!("/containers/{}/kill{q}", enc(c)), None)?
            .check()
            .map(|_| ())
    })
}

pub fn rm(client: &Client, a: RmArgs) -> Result<ExitCode> {
    let q = format!("?force={}&v={}", u8::from(a.force), u8::from(a.volumes));
    each(&a.containers, |c| {
        client
            .request("DELETE", &format!("/containers/{}{q}", enc(c)), None)?
            .check()
            .map(|_| ())
    })
}

pub fn wait(client: &Client, a: NamesArgs) -> Result<ExitCode> {
    let mut failed = false;
    for c in &a.containers {
        match client.post_json(&format!("/containers/{}/wait", enc(c)), None) {
            Ok(v) => println!("{}", v["StatusCode"].as_i64().unwrap_or(-1)),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(exit(failed))
}

pub fn logs(client: &Client, a: LogsArgs) -> Result<ExitCode> {
    let info = client.get_json(&format!("/containers/{}/json", enc(&a.container)))?;
    let tty = info["Config"]["Tty"].as_bool() == Some(true);
    let mut q = format!(
        "stdout=1&stderr=1&tail={}&timestamps={}&follow={}",
        enc(&a.tail),
        u8::from(a.timestamps),
        u8::from(a.follow)
    );
    if let Some(s) = &a.since {
        q.push_str(&format!("&since={}", enc(s)));
    }
    let r = client
        .request(
            "GET",
            &format!("/containers/{}/logs?{q}", enc(&a.container)),
            None,
        )?
        .check()?;
    demux(r.body, tty)?;
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(client: &Client, a: InspectArgs) -> Result<ExitCode> {
    let template = a
        .format
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let mut found = Vec::new();
    let mut raw = Vec::new();
    let mut failed = false;
    for n in &a.names {
        let container = client.request("GET", &format!("/containers/{}/json", enc(n)), None)?;
        let status = container.status;
        let mut bytes = container.bytes()?;
        if status == 404 {
            let image = client.request("GET", &format!("/images/{}/json", enc(n)), None)?;
            let status = image.status;
            bytes = image.bytes()?;
            if status >= 400 {
                eprintln!("Error: No such object: {n}");
                failed = true;
                continue;
            }
        } else if status >= 400 {
            return Err(crate::client::daemon_error(status, &bytes));
        }
        found.push(serde_json::from_slice::<Value>(&bytes)?);
        raw.push(bytes);
    }
    // docker prints the daemon's JSON as it came (its key order): indented, or on
    // one line for `--format json`.
    match a.format.as_deref() {
        None => {
            let mut all = b"[".to_vec();
            for (i, r) in raw.iter().enumerate() {
                if i > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(r);
            }
            all.push(b']');
            println!("{}", crate::networks::indent_raw(&all));
        }
        Some("json") => {
            let parts: Vec<String> = raw
                .iter()
                .map(|r| crate::networks::compact_raw(r))
                .collect();
            println!("[{}]", parts.join(","));
        }
        Some(_) => print_inspect(&found, template.as_ref())?,
    }
    Ok(exit(failed))
}

pub fn ps(client: &Client, a: PsArgs) -> Result<ExitCode> {
    let mut filters: Map<String, Value> = Map::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        filters
            .entry(k.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(v.to_string(), json!(true)));
    }
    let filters = serde_json::to_string(&filters)?;
    // Docker's -l is -n 1; either shows every state.
    let last = if a.latest { 1 } else { a.last };
    let with_size = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size"));
    let mut query = format!(
        "/containers/json?all={}&filters={}",
        u8::from(a.all || last != -1),
        enc(&filters)
    );
    if last > 0 {
        query.push_str(&format!("&limit={last}"));
    }
    if with_size && !a.quiet {
        query.push_str("&size=1");
    }
    let list = client.get_json(&query)?;
    let list = list.as_array().cloned().unwrap_or_default();
    if a.quiet {
        for c in &list {
            let id = c["Id"].as_str().unwrap_or_default();
            println!(
                "{}",
                if a.no_trunc {
                    id
                } else {
                    &id[..12.min(id.len())]
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|c| {
            let id = c["Id"].as_str().unwrap_or_default();
            let command = c["Command"].as_str().unwrap_or_default();
            let command = if a.no_trunc {
                command.to_string()
            } else {
                ellipsis(command, 20)
            };
            let names = names(c);
            json!({
                "ID": if a.no_trunc { id.to_string() } else { id.chars().take(12).collect() },
                "Image": c["Image"],
                "Command": format!("\"{command}\""),
                "CreatedAt": crate::images::created_at(c["Created"].as_i64().unwrap_or(0)),
                "RunningFor": ago(c["Created"].as_i64().unwrap_or(0)),
                "Status": c["Status"],
                "State": c["State"],
                "Ports": displayable_ports(&c["Ports"]),
                "Names": names.join(","),
                "Labels": c["Labels"],
                "Size": ps_size(c),
            })
        })
        .collect();
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let template =
        Template::parse(a.format.as_deref().unwrap_or(default)).map_err(|e| anyhow!(e))?;
    let names = |f: &str| match f {
        "ID" => "CONTAINER ID".to_string(),
        "RunningFor" => "CREATED".to_string(),
        "CreatedAt" => "CREATED AT".to_string(),
        other => other.to_uppercase(),
    };
    // Docker pads the empty PORTS column too; keep the cells even when empty.
    let text = render_all(&template, &rows, &names);
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// docker's `DisplayablePorts`: `ps`'s PORTS from the API's `Ports` list, with
/// consecutive ports grouped (`0.0.0.0:8080->80/tcp, 9000-9001/tcp`).
pub(crate) fn displayable_ports(ports: &Value) -> String {
    struct Port {
        ip: String,
        private: i64,
        public: i64,
        kind: String,
    }
    let mut list: Vec<Port> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Port {
            ip: p["IP"].as_str().unwrap_or_default().to_string(),
            private: p["PrivatePort"].as_i64().unwrap_or(0),
            public: p["PublicPort"].as_i64().unwrap_or(0),
            kind: p["Type"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    list.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.kind).cmp(&(b.private, &b.ip, b.public, &b.kind))
    });
    let form = |key: &str, first: i64, last: i64| {
        let (ip, kind) = match key.rsplit_once('/') {
            Some((ip, kind)) => (ip, kind),
            None => ("", key),
        };
        let mut group = first.to_string();
        if first != last {
            group = format!("{group}-{last}");
        }
        if !ip.is_empty() {
            group = format!("{}->{group}", join_host_port(ip, &group));
        }
        format!("{group}/{kind}")
    };
    let mut groups: Vec<(String, i64, i64)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in &list {
        let mut key = p.kind.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&p.ip, &p.public.to_string()),
                    p.private,
                    p.kind
                ));
                continue;
            }
            key = format!("{}/{}", p.ip, p.kind);
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2 + 1 => g.2 = p.private,
            Some(g) => {
                result.push(form(&g.0, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    for (k, first, last) in &groups {
        result.push(form(k, *first, *last));
    }
    result.extend(mappings);
    result.join(", ")
}

/// `ps -s`'s SIZE: the writable layer, and the virtual size when known.
fn ps_size(c: &Value) -> String {
    let rw = crate::output::human_size(c["SizeRw"].as_i64().unwrap_or(0));
    match c["SizeRootFs"].as_i64() {
        Some(v) if v > 0 => format!("{rw} (virtual {})", crate::output::human_size(v)),
        _ => rw,
    }
}

pub fn version(client: &Client) -> Result<ExitCode> {
    let v = client.get_json("/version")?;
    println!(
        "Client:\n Version:           {}\n API version:       1.50\n OS/Arch:           linux/{}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    println!(
        "Server: {}\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}\n  Kernel:           {}",
        v["Platform"]["Name"].as_str().unwrap_or("Pier Engine"),
        v["Version"].as_str().unwrap_or_default(),
        v["ApiVersion"].as_str().unwrap_or_default(),
        v["MinAPIVersion"].as_str().unwrap_or_default(),
        v["Os"].as_str().unwrap_or_default(),
        v["Arch"].as_str().unwrap_or_default(),
        v["KernelVersion"].as_str().unwrap_or_default(),
    );
    Ok(ExitCode::SUCCESS)
}

pub fn info(client: &Client) -> Result<ExitCode> {
    let v = client.get_json("/info")?;
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v[k].to_string())
    };
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Logging Driver: {}", s("LoggingDriver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" CPUs: {}", s("NCPU"));
    println!(" Docker Root Dir: {}", s("DockerRootDir"));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn publish_like_docker() {
        let m =
            |ip: &str, host: &str, port: &str| (port.to_string(), ip.to_string(), host.to_string());
        assert_eq!(
            parse_port_spec("8080:80").unwrap(),
            [m("", "8080", "80/tcp")]
        );
        assert_eq!(parse_port_spec("80").unwrap(), [m("", "", "80/tcp")]);
        assert_eq!(
            parse_port_spec("127.0.0.1::53/udp").unwrap(),
            [m("127.0.0.1", "", "53/udp")]
        );
        assert_eq!(
            parse_port_spec("[::1]:80:80").unwrap(),
            [m("::1", "80", "80/tcp")]
        );
        assert_eq!(parse_port_spec("::80").unwrap(), [m("", "", "80/tcp")]);
        assert_eq!(
            parse_port_spec("8000-8001:80-81/SCTP").unwrap(),
            [m("", "8000", "80/sctp"), m("", "8001", "81/sctp")]
        );
        assert_eq!(
            parse_port_spec("8000-8002:80").unwrap(),
            [m("", "8000-8002", "80/tcp")]
        );
        let err = |s: &str| parse_port_spec(s).unwrap_err();
        assert_eq!(err("abc"), "invalid containerPort: abc");
        assert_eq!(err("70000"), "invalid containerPort: 70000");
        assert_eq!(err("80-70"), "invalid containerPort: 80-70");
        assert_eq!(err("x:80:80"), "invalid IP address: x");
        assert_eq!(err("1.2.3.4:80:80:80"), "invalid IP address: 1.2.3.4:80");
        assert_eq!(
            err("[::1]:80"),
            "invalid IP address [:: address [::: missing ']' in address"
        );
        assert_eq!(err("127.0.0.1:80"), "invalid hostPort: 127.0.0.1");
        assert_eq!(err("80/foo"), "invalid proto: foo");
        assert_eq!(err(""), "no port specified: <empty>");
        assert_eq!(
            err("80-82:8000-8001"),
            "invalid ranges specified for container and host Ports: 8000-8001 and 80-82"
        );
        assert_eq!(
            standard_publish("published=8443,target=443,protocol=udp").unwrap(),
            "8443:443/udp"
        );
        assert_eq!(
            standard_publish("published=1,x").unwrap_err(),
            "invalid publish opts format (should be name=value but got 'x')"
        );
    }

    #[test]
    fn expose_like_docker() {
        let (exposed, bindings) =
            ports(&specs(&["8080:80"]), &specs(&["9000-9001", "53/udp", "80"])).unwrap();
        assert_eq!(
            Value::Object(exposed),
            json!({"80/tcp": {}, "9000/tcp": {}, "9001/tcp": {}, "53/udp": {}})
        );
        assert_eq!(
            Value::Object(bindings),
            json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        let err = |e: &str| ports(&[], &specs(&[e])).unwrap_err();
        assert_eq!(err("80:90"), "invalid port format for --expose: 80:90");
        assert_eq!(
            err("abc"),
            "invalid range format for --expose: abc, error: strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            err("5-3"),
            "invalid range format for --expose: 5-3, error: invalid range specified for port: 5-3"
        );
        assert_eq!(
            err("70000"),
            "invalid range format for --expose: 70000, error: strconv.ParseUint: parsing \"70000\": value out of range"
        );
    }

    #[test]
    fn add_host_like_docker() {
        assert_eq!(validate_extra_host("db:10.0.0.2").unwrap(), "db:10.0.0.2");
        assert_eq!(validate_extra_host("db=10.0.0.2").unwrap(), "db:10.0.0.2");
        assert_eq!(
            validate_extra_host("gw:host-gateway").unwrap(),
            "gw:host-gateway"
        );
        assert_eq!(validate_extra_host("v6:[::1]").unwrap(), "v6:::1");
        assert_eq!(validate_extra_host("v6=::1").unwrap(), "v6:::1");
        assert_eq!(
            validate_extra_host("abc").unwrap_err(),
            "bad format for add-host: \"abc\""
        );
        assert_eq!(
            validate_extra_host(":1.2.3.4").unwrap_err(),
            "bad format for add-host: \":1.2.3.4\""
        );
        assert_eq!(
            validate_extra_host("a:b").unwrap_err(),
            "invalid IP address in add-host: \"b\""
        );
        assert_eq!(
            validate_extra_host("a=b=c").unwrap_err(),
            "invalid IP address in add-host: \"b=c\""
        );
        assert_eq!(
            validate_link("a:b:c").unwrap_err(),
            "bad format for links: a:b:c"
        );
        assert!(validate_link("a:b").is_ok() && validate_link("a").is_ok());
    }

    #[test]
    fn ports_column_like_docker() {
        let ports = json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 9000, "Type": "tcp"},
            {"PrivatePort": 9001, "Type": "tcp"},
            {"PrivatePort": 9003, "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"},
            {"IP": "127.0.0.1", "PrivatePort": 7000, "PublicPort": 7000, "Type": "tcp"},
            {"IP": "127.0.0.1", "PrivatePort": 7001, "PublicPort": 7001, "Type": "tcp"},
            {"IP": "::1", "PrivatePort": 7002, "PublicPort": 7002, "Type": "udp"}
        ]);
        // As docker 28's `ps` prints the same list.
        assert_eq!(
            displayable_ports(&ports),
            "9000-9001/tcp, 53/udp, 127.0.0.1:7000-7001->7000-7001/tcp, [::1]:7002->7002/udp, \
             9003/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(displayable_ports(&json!([])), "");
    }
}
