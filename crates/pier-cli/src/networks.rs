//! `pier network`: create, ls, inspect, rm, prune, connect and disconnect, through
//! pierd's `/networks` endpoints, with the docker CLI's requests and output.

use std::cmp::Ordering;
use std::io::{self, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::container_ops::{confirm, filters_json};
use crate::containers::enc;
use crate::output::{print_inspect, render_all, Template};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    aux_address: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    ipam_opt: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long)]
    ingress: bool,
    /// Create a configuration only network
    #[arg(long = "config-only")]
    config_only: bool,
    /// The network from which to copy the configuration
    #[arg(long = "config-from")]
    config_from: Option<String>,
    /// Control the network's scope
    #[arg(long)]
    scope: Option<String>,
    /// Enable or disable IPv4 address assignment
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_name = "BOOL")]
    ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_name = "BOOL")]
    ipv6: Option<bool>,
    /// Set metadata on a network
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    verbose: bool,
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    /// Add link to another container
    #[arg(long)]
    link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip")]
    link_local_ip: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt")]
    driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway
    #[arg(long = "gw-priority", default_value_t = 0, allow_hyphen_values = true)]
    gw_priority: i64,
    network: String,
    container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    force: bool,
    network: String,
    container: String,
}

pub fn dispatch(client: &Client, cmd: NetworkCommand) -> Result<ExitCode> {
    match cmd {
        NetworkCommand::Create(a) => create(client, a),
        NetworkCommand::Ls(a) => ls(client, a),
        NetworkCommand::Inspect(a) => inspect(client, a),
        NetworkCommand::Rm(a) => rm(client, a),
        NetworkCommand::Prune(a) => prune(client, a),
        NetworkCommand::Connect(a) => connect(client, a),
        NetworkCommand::Disconnect(a) => disconnect(client, a),
    }
}

/// `KEY=VALUE` options as a map (docker's `MapOpts`: no `=` is an empty value).
fn kv_map(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), json!(v)),
            None => (i.clone(), json!("")),
        })
        .collect()
}

/// Go's `net.ParseIP`.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    if s.contains('%') {
        return None;
    }
    s.parse().ok()
}

/// Go's `net.ParseCIDR`: the address and the network (address, prefix length).
fn parse_cidr(s: &str) -> Option<(IpAddr, IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip = parse_ip(ip)?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) || bits.len() > 3 {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let network = match ip {
        IpAddr::V4(v4) => {
            if bits > 32 {
                return None;
            }
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            if bits > 128 {
                return None;
            }
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    Some((ip, network, bits))
}

/// Whether the network `net`/`bits` holds `ip` (Go's `IPNet.Contains`, IPv4-mapped
/// addresses counting as IPv4).
fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(i) & mask == u32::from(n)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(i) & mask == u128::from(n)
        }
        _ => false,
    }
}

/// docker's `subnetMatches`: whether `data` (an address or a CIDR) is in `subnet`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool> {
    let (_, net, bits) = parse_cidr(subnet)
        .ok_or_else(|| anyhow!("invalid subnet: invalid CIDR address: {subnet}"))?;
    let ip = if data.contains('/') {
        parse_cidr(data)
            .ok_or_else(|| anyhow!("invalid CIDR address: {data}"))?
            .0
    } else {
        match parse_ip(data) {
            Some(ip) => ip,
            None => return Ok(false),
        }
    };
    Ok(contains(net, bits, ip))
}

/// docker's `createIPAMConfig`: subnets with their ranges, gateways and auxiliary
/// addresses (in the order the subnets were given).
pub(crate) fn ipam_config(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &[String],
) -> Result<Vec<Value>> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let mut configs: Vec<(String, Map<String, Value>)> = Vec::new();
    for s in subnets {
        for (k, _) in &configs {
            if subnet_matches(s, k)? || subnet_matches(k, s)? {
                bail!("multiple overlapping subnet configuration is not supported");
            }
        }
        let mut m = Map::new();
        m.insert("Subnet".into(), json!(s));
        configs.push((s.clone(), m));
    }
    for (list, key, what) in [
        (ranges, "IPRange", "range"),
        (gateways, "Gateway", "gateway"),
    ] {
        for r in list {
            let mut matched = false;
            for (s, m) in &mut configs {
                if !subnet_matches(s, r)? {
                    continue;
                }
                if let Some(old) = m.get(key).and_then(Value::as_str) {
                    if key == "IPRange" {
                        bail!("cannot configure multiple ranges ({r}, {old}) on the same subnet ({s})");
                    }
                    bail!(
                        "cannot configure multiple gateways ({r}, {old}) for the same subnet ({s})"
                    );
                }
                m.insert(key.into(), json!(r));
                matched = true;
            }
            if !matched {
                bail!("no matching subnet for {what} {r}");
            }
        }
    }
    for (name, addr) in kv_map(aux) {
        let addr = addr.as_str().unwrap_or_default().to_string();
        let mut matched = false;
        for (s, m) in &mut configs {
            if !subnet_matches(s, &addr)? {
                continue;
            }
            m.entry("AuxiliaryAddresses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|a| a.insert(name.clone(), json!(addr)));
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for aux-address {addr}");
        }
    }
    Ok(configs.into_iter().map(|(_, m)| Value::Object(m)).collect())
}

/// The body of `POST /networks/create`, as the docker CLI sends it.
pub(crate) fn create_body(a: &CreateArgs) -> Result<Value> {
    let config = ipam_config(&a.subnet, &a.ip_range, &a.gateway, &a.aux_address)?;
    let mut body = json!({
        "Driver": a.driver,
        "Scope": a.scope.clone().unwrap_or_default(),
        "IPAM": {
            "Driver": a.ipam_driver,
            "Options": kv_map(&a.ipam_opt),
            "Config": config,
        },
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Ingress": a.ingress,
        "ConfigOnly": a.config_only,
        "ConfigFrom": a.config_from.as_ref().map(|n| json!({"Network": n})),
        "Options": kv_map(&a.opt),
        "Labels": kv_map(&a.label),
        "Name": a.name,
    });
    if let Some(v) = a.ipv4 {
        body["EnableIPv4"] = json!(v);
    }
    if let Some(v) = a.ipv6 {
        body["EnableIPv6"] = json!(v);
    }
    Ok(body)
}

/// A flag value docker's flag parsing refuses: its message, status 125.
fn bad_flag(value: &str, flag: &str, message: &str, usage: &str) -> ExitCode {
    let cmd = usage.split(" [").next().unwrap_or(usage);
    eprintln!(
        "invalid argument \"{value}\" for \"{flag}\" flag: {message}\n\n\
         Usage:  pier {usage}\n\n\
         Run 'pier {cmd} --help' for more information"
    );
    ExitCode::from(125)
}

pub fn create(client: &Client, a: CreateArgs) -> Result<ExitCode> {
    for l in &a.label {
        let key = l.split_once('=').map_or(l.as_str(), |(k, _)| k);
        if key.trim().is_empty() {
            return Ok(bad_flag(
                l,
                "--label",
                &format!("invalid label '{l}': empty name"),
                "network create [OPTIONS] NETWORK",
            ));
        }
    }
    let body = create_body(&a)?;
    let v = client.post_json("/networks/create", Some(&body))?;
    for w in v["Warning"].as_str().into_iter().filter(|w| !w.is_empty()) {
        eprintln!("WARNING: {w}");
    }
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// `sortorder.NaturalLess`: digit runs compare as numbers.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz_a, nz_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (la, lb) = (i - nz_a, j - nz_b);
        if la != lb {
            return la.cmp(&lb);
        }
        if a[nz_a..i] != b[nz_b..j] {
            return a[nz_a..i].cmp(&b[nz_b..j]);
        }
        if nz_a != nz_b {
            return nz_a.cmp(&nz_b);
        }
    }
    a.len().cmp(&b.len())
}

/// Go's `time.Time.String()` of an RFC 3339 timestamp in UTC
/// (`2024-01-02 03:04:05.123456789 +0000 UTC`).
fn go_time_string(rfc3339: &str) -> String {
    let Some((date, rest)) = rfc3339.split_once('T') else {
        return rfc3339.to_string();
    };
    let (time, zone) = if let Some(t) = rest.strip_suffix('Z') {
        (t, "+0000 UTC".to_string())
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(pos);
        (t, format!("{} {}", z.replace(':', ""), z.replace(':', "")))
    } else {
        (rest, "+0000 UTC".to_string())
    };
    let time = match time.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_string()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => time.to_string(),
    };
    format!("{date} {time} {zone}")
}

fn header_name(field: &str) -> String {
    match field {
        "ID" => "NETWORK ID".into(),
        "CreatedAt" => "CREATED AT".into(),
        "IPv6" => "IPV6".into(),
        "IPv4" => "IPV4".into(),
        other => other.to_uppercase(),
    }
}

/// A network as `network ls`'s template fields.
fn row(n: &Value, no_trunc: bool) -> Value {
    let id = n["Id"].as_str().unwrap_or_default();
    let id: String = if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    };
    let mut labels: Vec<String> = n["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    labels.sort();
    json!({
        "ID": id,
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n["Scope"],
        "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
        "IPv4": n["EnableIPv4"].as_bool().unwrap_or(false).to_string(),
        "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
        "Labels": labels.join(","),
        "CreatedAt": go_time_string(n["Created"].as_str().unwrap_or_default()),
    })
}

pub fn ls(client: &Client, a: LsArgs) -> Result<ExitCode> {
    let mut path = "/networks".to_string();
    if !a.filter.is_empty() {
        path.push_str(&format!("?filters={}", enc(&filters_json(&a.filter)?)));
    }
    let list = client.get_json(&path)?;
    let mut list = list.as_array().cloned().unwrap_or_default();
    list.sort_by(|x, y| {
        natural_cmp(
            x["Name"].as_str().unwrap_or_default(),
            y["Name"].as_str().unwrap_or_default(),
        )
    });
    let format = match a.format.as_deref() {
        Some(f) if !f.is_empty() => f,
        _ if a.quiet => "{{.ID}}",
        _ => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    };
    let format = match format {
        "table" if a.quiet => "{{.ID}}",
        "table" => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        "raw" if a.quiet => "network_id: {{.ID}}",
        "raw" => {
            "network_id: {{.ID}}\\nname: {{.Name}}\\ndriver: {{.Driver}}\\nscope: {{.Scope}}\\n"
        }
        f => f,
    };
    let template = Template::parse(format).map_err(|e| anyhow!(e))?;
    let rows: Vec<Value> = list.iter().map(|n| row(n, a.no_trunc)).collect();
    let text = render_all(&template, &rows, &header_name);
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Go's `json.Indent(dst, src, "", "    ")`: the daemon's JSON re-indented, its
/// key order and escapes kept.
pub(crate) fn indent_raw(src: &[u8]) -> String {
    let mut out = Vec::with_capacity(src.len() * 2);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(b"    ");
        }
    };
    let (mut in_string, mut escaped, mut need_indent) = (false, false, false);
    let mut depth = 0usize;
    for &c in src {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != b'}' && c != b']' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                need_indent = true;
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'}' | b']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `json.Compact`: the daemon's JSON on one line, its key order kept.
pub(crate) fn compact_raw(src: &[u8]) -> String {
    let mut out = Vec::with_capacity(src.len());
    let (mut in_string, mut escaped) = (false, false);
    for &c in src {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c.is_ascii_whitespace() {
            continue;
        } else if c == b'"' {
            in_string = true;
        }
        out.push(c);
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn inspect(client: &Client, a: InspectArgs) -> Result<ExitCode> {
    let query = if a.verbose { "?verbose=true" } else { "" };
    let paths: Vec<String> = a
        .networks
        .iter()
        .map(|n| format!("/networks/{}{query}", enc(n)))
        .collect();
    inspect_objects(client, &paths, a.format.as_deref())
}

/// `inspect` of daemon objects (networks, volumes) at `paths`: the daemon's JSON as it
/// came (indented, or on one line with `--format json`), or a template per object;
/// errors after, exit 1.
pub(crate) fn inspect_objects(
    client: &Client,
    paths: &[String],
    format: Option<&str>,
) -> Result<ExitCode> {
    let template = format
        .map(Template::parse_raw)
        .transpose()
        .map_err(|e| anyhow!("template parsing error: {e}"))?;
    let mut found = Vec::new();
    let mut raw: Vec<Vec<u8>> = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let r = client.request("GET", path, None)?;
        let status = r.status;
        let bytes = r.bytes()?;
        if status >= 400 {
            errors.push(format!("{:#}", crate::client::daemon_error(status, &bytes)));
            continue;
        }
        found.push(serde_json::from_slice::<Value>(&bytes)?);
        raw.push(bytes);
    }
    match &template {
        // docker prints the daemon's JSON as it came: indented, or on one line.
        Some(_) if format == Some("json") => {
            let parts: Vec<String> = raw.iter().map(|r| compact_raw(r)).collect();
            println!("[{}]", parts.join(","));
        }
        None => {
            let mut all = b"[".to_vec();
            for (i, r) in raw.iter().enumerate() {
                if i > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(r);
            }
            all.push(b']');
            println!("{}", indent_raw(&all));
        }
        Some(_) if found.is_empty() => println!(),
        Some(t) => print_inspect(&found, Some(t))?,
    }
    if errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{}", errors.join("\n"));
    Ok(ExitCode::FAILURE)
}

pub fn rm(client: &Client, a: RmArgs) -> Result<ExitCode> {
    let mut failed = false;
    for n in &a.networks {
        let r = client.request("DELETE", &format!("/networks/{}", enc(n)), None)?;
        let status = r.status;
        match r.check() {
            Ok(_) => println!("{n}"),
            Err(_) if a.force && status == 404 => {}
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    if failed {
        // docker's StatusError without a message.
        eprintln!("exit status 1");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn prune(client: &Client, a: PruneArgs) -> Result<ExitCode> {
    let filters = filters_json(&a.filter)?;
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(ExitCode::SUCCESS);
    }
    let v = client.post_json(&format!("/networks/prune?filters={}", enc(&filters)), None)?;
    let deleted: Vec<&str> = v["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Networks:\n");
        for d in deleted {
            out.push_str(d);
            out.push('\n');
        }
        println!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

/// An endpoint's settings as the docker CLI sends them (`network connect`, and the
/// create body's `NetworkingConfig`).
pub(crate) struct Endpoint<'a> {
    pub ip: &'a str,
    pub ip6: &'a str,
    pub link_local: &'a [String],
    pub aliases: Option<&'a [String]>,
    pub links: Option<&'a [String]>,
    pub mac: &'a str,
    pub driver_opts: Option<Map<String, Value>>,
    pub gw_priority: i64,
}

impl Endpoint<'_> {
    pub(crate) fn json(self) -> Value {
        let mut ipam = Map::new();
        if !self.ip.is_empty() {
            ipam.insert("IPv4Address".into(), json!(self.ip));
        }
        if !self.ip6.is_empty() {
            ipam.insert("IPv6Address".into(), json!(self.ip6));
        }
        if !self.link_local.is_empty() {
            ipam.insert("LinkLocalIPs".into(), json!(self.link_local));
        }
        json!({
            "IPAMConfig": if ipam.is_empty() { Value::Null } else { Value::Object(ipam) },
            "Links": self.links,
            "Aliases": self.aliases,
            "MacAddress": self.mac,
            "DriverOpts": self.driver_opts,
            "GwPriority": self.gw_priority,
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": null,
        })
    }
}

pub(crate) fn connect_body(a: &ConnectArgs) -> Value {
    json!({
        "Container": a.container,
        "EndpointConfig": Endpoint {
            ip: a.ip.as_deref().unwrap_or_default(),
            ip6: a.ip6.as_deref().unwrap_or_default(),
            link_local: &a.link_local_ip,
            aliases: Some(&a.alias),
            links: (!a.link.is_empty()).then_some(&a.link[..]),
            mac: "",
            driver_opts: Some(kv_map(&a.driver_opt)),
            gw_priority: a.gw_priority,
        }
        .json(),
    })
}

pub fn connect(client: &Client, a: ConnectArgs) -> Result<ExitCode> {
    for l in &a.link {
        if let Err(e) = crate::containers::validate_link(l) {
            return Ok(bad_flag(
                l,
                "--link",
                &e,
                "network connect [OPTIONS] NETWORK CONTAINER",
            ));
        }
    }
    let body = connect_body(&a);
    client
        .request(
            "POST",
            &format!("/networks/{}/connect", enc(&a.network)),
            Some(("application/json", &serde_json::to_vec(&body)?)),
        )?
        .check()?;
    Ok(ExitCode::SUCCESS)
}

pub fn disconnect(client: &Client, a: DisconnectArgs) -> Result<ExitCode> {
    let body = json!({"Container": a.container, "Force": a.force});
    client
        .request(
            "POST",
            &format!("/networks/{}/disconnect", enc(&a.network)),
            Some(("application/json", &serde_json::to_vec(&body)?)),
        )?
        .check()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ipam_like_docker() {
        let c = ipam_config(
            &s(&["10.1.0.0/16", "fd00::/64"]),
            &s(&["10.1.2.0/24"]),
            &s(&["fd00::1", "10.1.0.1"]),
            &s(&["a=10.1.0.3"]),
        )
        .unwrap();
        assert_eq!(
            Value::Array(c),
            json!([
                {"Subnet": "10.1.0.0/16", "IPRange": "10.1.2.0/24", "Gateway": "10.1.0.1",
                 "AuxiliaryAddresses": {"a": "10.1.0.3"}},
                {"Subnet": "fd00::/64", "Gateway": "fd00::1"}
            ])
        );
        let e = |r: Result<Vec<Value>>| r.unwrap_err().to_string();
        assert_eq!(
            e(ipam_config(&[], &[], &s(&["1.2.3.4"]), &[])),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            e(ipam_config(&s(&["10.0.0.0/8"]), &[], &s(&["1.2.3.4"]), &[])),
            "no matching subnet for gateway 1.2.3.4"
        );
        assert_eq!(
            e(ipam_config(
                &s(&["10.0.0.0/8", "10.1.0.0/16"]),
                &[],
                &[],
                &[]
            )),
            "multiple overlapping subnet configuration is not supported"
        );
        // One subnet alone is not checked (docker sends it as given).
        assert!(ipam_config(&s(&["bad"]), &[], &[], &[]).is_ok());
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["n10", "n9", "bridge", "n1", "80/tcp", "443/tcp"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["80/tcp", "443/tcp", "bridge", "n1", "n9", "n10"]);
    }

    #[test]
    fn go_time() {
        assert_eq!(
            go_time_string("2024-01-02T03:04:05.120000000Z"),
            "2024-01-02 03:04:05.12 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2024-01-02T03:04:05Z"),
            "2024-01-02 03:04:05 +0000 UTC"
        );
    }
}
