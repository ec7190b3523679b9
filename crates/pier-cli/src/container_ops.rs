//! More container commands through pierd's Engine API: `restart`, `pause`,
//! `unpause`, `rename`, `top`, `port`, `diff`, `export`, `update`, `stats`, `commit`,
//! `container prune`, and the `container` command group that names every container
//! command (`pier container ls`, `pier container run`, ...).

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::containers::{self, enc};
use crate::output::{human_size, render_all, Template};
use crate::stream_output::{refuse_terminal_stdout, write_stream};

/// The commands beside the original container commands, at the top level.
// Parsed once per run: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Manage containers
    Container {
        #[command(subcommand)]
        command: ContainerCommand,
    },
    #[command(flatten)]
    Op(OpCommand),
    /// Get real time events from the server
    Events(crate::system::EventsArgs),
    /// Manage Pier
    System {
        #[command(subcommand)]
        command: crate::system::SystemCommand,
    },
}

/// The commands on containers that `pier` has both at the top level and under
/// `pier container`.
#[derive(Debug, Subcommand)]
pub enum OpCommand {
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Pause all processes within one or more containers
    Pause(PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(PauseArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::copy::CpArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
}

/// `pier container ...`: every container command under one group, as docker's.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(containers::RunArgs),
    /// Create a new container
    Create(containers::CreateArgs),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Execute a command in a running container
    Exec(crate::interactive::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(crate::interactive::AttachArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(containers::PsArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(containers::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::NamesArgs),
    /// Display detailed information on one or more containers
    Inspect(containers::InspectArgs),
    #[command(flatten)]
    Op(OpCommand),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

/// Runs one of the commands above.
pub fn dispatch(client: &Client, command: OpsCommand) -> Result<ExitCode> {
    match command {
        OpsCommand::Container { command } => container(client, command),
        OpsCommand::Op(command) => op(client, command),
        OpsCommand::Events(a) => crate::system::events(client, a),
        OpsCommand::System { command } => crate::system::system(client, command),
    }
}

fn op(client: &Client, command: OpCommand) -> Result<ExitCode> {
    match command {
        OpCommand::Restart(a) => restart(client, a),
        OpCommand::Pause(a) => pause(client, a, "pause"),
        OpCommand::Unpause(a) => pause(client, a, "unpause"),
        OpCommand::Rename(a) => rename(client, a),
        OpCommand::Top(a) => top(client, a),
        OpCommand::Port(a) => port(client, a),
        OpCommand::Diff(a) => diff(client, a),
        OpCommand::Export(a) => export(client, a),
        OpCommand::Cp(a) => crate::copy::cp(client, a),
        OpCommand::Update(a) => update(client, a),
        OpCommand::Stats(a) => stats(client, a),
        OpCommand::Commit(a) => commit(client, a),
    }
}

fn container(client: &Client, command: ContainerCommand) -> Result<ExitCode> {
    match command {
        ContainerCommand::Run(a) => containers::run(client, a),
        ContainerCommand::Create(a) => containers::create(client, a),
        ContainerCommand::Start(a) => containers::start(client, a),
        ContainerCommand::Exec(a) => crate::interactive::exec(client, a),
        ContainerCommand::Attach(a) => crate::interactive::attach(client, a),
        ContainerCommand::Ls(a) => containers::ps(client, a),
        ContainerCommand::Logs(a) => containers::logs(client, a),
        ContainerCommand::Stop(a) => containers::stop(client, a),
        ContainerCommand::Kill(a) => containers::kill(client, a),
        ContainerCommand::Rm(a) => containers::rm(client, a),
        ContainerCommand::Wait(a) => containers::wait(client, a),
        ContainerCommand::Inspect(a) => containers::inspect(client, a),
        ContainerCommand::Op(command) => op(client, command),
        ContainerCommand::Prune(a) => prune(client, a),
    }
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    container: String,
    /// Options for ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    container: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    container: String,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pause: bool,
    container: String,
    reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

fn post_empty(client: &Client, path: &str) -> Result<()> {
    client.request("POST", path, None)?.check().map(|_| ())
}

/// `restart` takes `stop`'s flags.
pub fn restart(client: &Client, a: containers::StopArgs) -> Result<ExitCode> {
    let q = containers::stop_query(a.time, a.signal.as_deref());
    containers::each(&a.containers, |c| {
        post_empty(client, &format!("/containers/{}/restart{q}", enc(c)))
    })
}

pub fn pause(client: &Client, a: PauseArgs, what: &str) -> Result<ExitCode> {
    containers::each(&a.containers, |c| {
        post_empty(client, &format!("/containers/{}/{what}", enc(c)))
    })
}

pub fn rename(client: &Client, a: RenameArgs) -> Result<ExitCode> {
    let old = a.container.trim();
    let new = a.new_name.trim();
    if old.is_empty() || new.is_empty() {
        bail!("Error: Neither old nor new names may be empty");
    }
    if let Err(e) = post_empty(
        client,
        &format!("/containers/{}/rename?name={}", enc(old), enc(new)),
    ) {
        eprintln!("{e:#}");
        bail!("Error: failed to rename container named {old}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Go's `tabwriter` with docker's `top` settings: each cell but a line's last is
/// padded to its column's widest cell plus `padding`, at least `min_width`.
pub fn tabwrite(rows: &[Vec<String>], min_width: usize, padding: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let width = (widths[i] + padding).max(min_width);
                out.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

pub fn top(client: &Client, a: TopArgs) -> Result<ExitCode> {
    let mut path = format!("/containers/{}/top", enc(&a.container));
    if !a.ps_args.is_empty() {
        path.push_str(&format!("?ps_args={}", enc(&a.ps_args.join(" "))));
    }
    let v = client.get_json(&path)?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
            .collect()
    };
    let mut rows = vec![strings(&v["Titles"])];
    rows.extend(v["Processes"].as_array().into_iter().flatten().map(strings));
    io::stdout()
        .lock()
        .write_all(tabwrite(&rows, 20, 3).as_bytes())?;
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

pub fn port(client: &Client, a: PortArgs) -> Result<ExitCode> {
    let info = client.get_json(&format!("/containers/{}/json", enc(&a.container)))?;
    let ports = info["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let bindings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                join_host_port(
                    b["HostIp"].as_str().unwrap_or_default(),
                    b["HostPort"].as_str().unwrap_or_default(),
                )
            })
            .collect()
    };
    let mut out = Vec::new();
    if let Some(p) = &a.port {
        let (number, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        let proto = if proto.is_empty() { "tcp" } else { proto };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            bail!("Error: invalid port ({number}): strconv.ParseUint: parsing \"{number}\": invalid syntax");
        }
        if number.parse::<u16>().is_err() {
            bail!("Error: invalid port ({number}): strconv.ParseUint: parsing \"{number}\": value out of range");
        }
        match ports.get(&format!("{number}/{proto}")) {
            Some(v) if v.as_array().is_some_and(|l| !l.is_empty()) => out.extend(bindings(v)),
            _ => bail!("Error: No public port '{p}' published for {}", a.container),
        }
    } else {
        for (from, v) in &ports {
            for b in bindings(v) {
                out.push(format!("{from} -> {b}"));
            }
        }
    }
    // docker's order: sortorder.NaturalLess (80/tcp before 443/tcp).
    out.sort_by(|x, y| crate::networks::natural_cmp(x, y));
    for line in out {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn diff(client: &Client, a: DiffArgs) -> Result<ExitCode> {
    let v = client.get_json(&format!("/containers/{}/changes", enc(&a.container)))?;
    let mut out = io::stdout().lock();
    for change in v.as_array().into_iter().flatten() {
        let kind = match change["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        writeln!(
            out,
            "{kind} {}",
            change["Path"].as_str().unwrap_or_default()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(client: &Client, a: ExportArgs) -> Result<ExitCode> {
    refuse_terminal_stdout(a.output.as_deref())?;
    let mut r = client
        .request(
            "GET",
            &format!("/containers/{}/export", enc(&a.container)),
            None,
        )?
        .check()?;
    write_stream(
        &mut r.body,
        a.output.as_deref(),
        "failed to export container",
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Docker's `units.RAMInBytes`: `64m`, `1.5g`, `1024`, binary multiples.
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, suffix) = lower.split_at(num_end);
    let suffix = suffix.trim_start_matches(' ');
    let number: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    let suffix = suffix.trim_end_matches('b').trim_end_matches('i');
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size: '{s}'")),
    };
    Ok((number * mult) as i64)
}

fn size_flag(value: &str, flag: &str) -> Result<i64> {
    ram_in_bytes(value)
        .map_err(|e| anyhow!("invalid argument \"{value}\" for \"{flag}\" flag: {e}"))
}

fn restart_policy(s: &str) -> Result<Value> {
    let (name, count) = match s.split_once(':') {
        Some((name, n)) => (
            name,
            n.parse::<i64>().map_err(|_| {
                anyhow!("invalid restart policy format: maximum retry count must be an integer")
            })?,
        ),
        None => (s, 0),
    };
    if !matches!(name, "" | "no" | "always" | "unless-stopped" | "on-failure") {
        bail!("invalid restart policy format: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'");
    }
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// The body of `POST /containers/{id}/update` from `update`'s flags; `None` when no
/// flag was given.
fn update_body(a: &UpdateArgs) -> Result<Option<Value>> {
    let mut body = Map::new();
    if let Some(v) = a.blkio_weight {
        body.insert("BlkioWeight".into(), json!(v));
    }
    if let Some(v) = a.cpu_period {
        body.insert("CpuPeriod".into(), json!(v));
    }
    if let Some(v) = a.cpu_quota {
        body.insert("CpuQuota".into(), json!(v));
    }
    if let Some(v) = a.cpu_rt_period {
        body.insert("CpuRealtimePeriod".into(), json!(v));
    }
    if let Some(v) = a.cpu_rt_runtime {
        body.insert("CpuRealtimeRuntime".into(), json!(v));
    }
    if let Some(v) = a.cpu_shares {
        body.insert("CpuShares".into(), json!(v));
    }
    if let Some(v) = &a.cpus {
        let cpus: f64 = v
            .parse()
            .ok()
            .filter(|c: &f64| c.is_finite() && *c >= 0.0)
            .ok_or_else(|| anyhow!("invalid argument \"{v}\" for \"--cpus\" flag: failed to parse {v} as a rational number"))?;
        body.insert("NanoCpus".into(), json!((cpus * 1e9).round() as i64));
    }
    if let Some(v) = &a.cpuset_cpus {
        body.insert("CpusetCpus".into(), json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        body.insert("CpusetMems".into(), json!(v));
    }
    if let Some(v) = &a.memory {
        body.insert("Memory".into(), json!(size_flag(v, "-m, --memory")?));
    }
    if let Some(v) = &a.memory_reservation {
        body.insert(
            "MemoryReservation".into(),
            json!(size_flag(v, "--memory-reservation")?),
        );
    }
    if let Some(v) = &a.memory_swap {
        let n = if v == "-1" {
            -1
        } else {
            size_flag(v, "--memory-swap")?
        };
        body.insert("MemorySwap".into(), json!(n));
    }
    if let Some(v) = a.pids_limit {
        body.insert("PidsLimit".into(), json!(v));
    }
    if let Some(v) = &a.restart {
        body.insert("RestartPolicy".into(), restart_policy(v)?);
    }
    Ok(if body.is_empty() {
        None
    } else {
        Some(Value::Object(body))
    })
}

pub fn update(client: &Client, a: UpdateArgs) -> Result<ExitCode> {
    let body = update_body(&a)?
        .ok_or_else(|| anyhow!("you must provide one or more flags when using this command"))?;
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for c in &a.containers {
        match client.post_json(&format!("/containers/{}/update", enc(c)), Some(&body)) {
            Ok(v) => {
                println!("{c}");
                for w in v["Warnings"].as_array().into_iter().flatten() {
                    if let Some(w) = w.as_str() {
                        warnings.push(w.to_string());
                    }
                }
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !warnings.is_empty() {
        println!("{}", warnings.join("\n"));
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------
// stats

/// Go's `%.Ng`: `digits` significant digits, trailing zeros dropped (values here are
/// below 10000, so no exponent form).
fn go_g(value: f64, digits: i32) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    // Rounding may have added a digit (999.95 → 1000.0): recount.
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    text
}

/// `units.BytesSize`: binary units, 4 significant digits (`1.5MiB`, `7.653GiB`).
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut value = size;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", go_g(value, 4), UNITS[unit])
}

/// One row of `stats`, computed as the docker CLI does.
#[derive(Debug, Clone, Default)]
pub struct StatsEntry {
    pub container: String,
    pub id: String,
    pub name: String,
    pub cpu: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
    /// No sample yet, or the container is gone: the row shows `--`.
    pub invalid: bool,
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

impl StatsEntry {
    /// From one `GET /containers/{id}/stats` sample (with `precpu_stats`).
    pub fn from_sample(container: &str, v: &Value) -> StatsEntry {
        let cpu_stats = &v["cpu_stats"];
        let precpu = &v["precpu_stats"];
        let cpu_delta =
            num(&cpu_stats["cpu_usage"]["total_usage"]) - num(&precpu["cpu_usage"]["total_usage"]);
        let system_delta = num(&cpu_stats["system_cpu_usage"]) - num(&precpu["system_cpu_usage"]);
        let mut online = num(&cpu_stats["online_cpus"]);
        if online == 0.0 {
            online = cpu_stats["cpu_usage"]["percpu_usage"]
                .as_array()
                .map_or(0, Vec::len) as f64;
        }
        let cpu = if system_delta > 0.0 && cpu_delta > 0.0 {
            cpu_delta / system_delta * online * 100.0
        } else {
            0.0
        };
        let mem = &v["memory_stats"];
        let usage = num(&mem["usage"]);
        let stats = &mem["stats"];
        let memory = match stats.get("total_inactive_file") {
            Some(x) if num(x) < usage => usage - num(x),
            Some(_) => usage,
            None => {
                let inactive = num(&stats["inactive_file"]);
                if inactive < usage {
                    usage - inactive
                } else {
                    usage
                }
            }
        };
        let limit = num(&mem["limit"]);
        let memory_percent = if limit != 0.0 {
            memory / limit * 100.0
        } else {
            0.0
        };
        let (mut rx, mut tx) = (0.0, 0.0);
        for n in v["networks"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            rx += num(&n["rx_bytes"]);
            tx += num(&n["tx_bytes"]);
        }
        let (mut read, mut write) = (0.0, 0.0);
        for e in v["blkio_stats"]["io_service_bytes_recursive"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => read += num(&e["value"]),
                Some("write") => write += num(&e["value"]),
                _ => {}
            }
        }
        StatsEntry {
            container: container.to_string(),
            id: v["id"].as_str().unwrap_or_default().to_string(),
            name: v["name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            cpu,
            memory,
            memory_limit: limit,
            memory_percent,
            net_rx: rx,
            net_tx: tx,
            block_read: read,
            block_write: write,
            pids: v["pids_stats"]["current"].as_u64().unwrap_or(0),
            invalid: false,
        }
    }

    /// The template fields, as docker's stats formatter names them.
    pub fn fields(&self, no_trunc: bool) -> Value {
        let id = if no_trunc {
            self.id.clone()
        } else {
            self.id.chars().take(12).collect()
        };
        if self.invalid {
            return json!({
                "Container": self.container, "ID": id, "Name": "--",
                "CPUPerc": "--", "MemUsage": "-- / --", "MemPerc": "--",
                "NetIO": "--", "BlockIO": "--", "PIDs": "--",
            });
        }
        json!({
            "Container": self.container,
            "ID": id,
            "Name": if self.name.is_empty() { "--".to_string() } else { self.name.clone() },
            "CPUPerc": format!("{:.2}%", self.cpu),
            "MemUsage": format!("{} / {}", bytes_size(self.memory), bytes_size(self.memory_limit)),
            "MemPerc": format!("{:.2}%", self.memory_percent),
            "NetIO": format!("{} / {}", human_size(self.net_rx as i64), human_size(self.net_tx as i64)),
            "BlockIO": format!("{} / {}", human_size(self.block_read as i64), human_size(self.block_write as i64)),
            "PIDs": self.pids.to_string(),
        })
    }
}

fn stats_header(field: &str) -> String {
    match field {
        "Container" => "CONTAINER",
        "ID" => "CONTAINER ID",
        "Name" => "NAME",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

const STATS_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn stats_format(format: Option<&str>) -> Result<Template> {
    let f = match format {
        None | Some("") | Some("table") => STATS_TABLE.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    Template::parse(&f).map_err(|e| anyhow!(e))
}

/// The containers `stats` shows: the named ones, else the running (or all) ones.
fn stats_targets(client: &Client, a: &StatsArgs) -> Result<Vec<String>> {
    if !a.containers.is_empty() {
        return Ok(a.containers.clone());
    }
    let list = client.get_json(&format!("/containers/json?all={}", u8::from(a.all)))?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c["Id"]
                .as_str()
                .map(|id| id[..12.min(id.len())].to_string())
        })
        .collect())
}

pub fn stats(client: &Client, a: StatsArgs) -> Result<ExitCode> {
    let template = stats_format(a.format.as_deref())?;
    let targets = stats_targets(client, &a)?;
    if a.no_stream {
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        // One request per container, in parallel: each takes about a second.
        let handles: Vec<_> = targets
            .iter()
            .map(|c| {
                let client = client.clone();
                let c = c.clone();
                std::thread::spawn(move || {
                    client
                        .get_json(&format!("/containers/{}/stats?stream=0", enc(&c)))
                        .map(|v| StatsEntry::from_sample(&c, &v))
                })
            })
            .collect();
        for h in handles {
            match h.join().map_err(|_| anyhow!("stats thread panicked"))? {
                Ok(e) => rows.push(e.fields(a.no_trunc)),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() && !a.containers.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        let text = render_all(&template, &rows, &stats_header);
        io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    // Streaming: one reader per container keeps the latest row; the screen is
    // redrawn every second until interrupted.
    let entries: Arc<Mutex<Vec<StatsEntry>>> = Arc::new(Mutex::new(
        targets
            .iter()
            .map(|c| StatsEntry {
                container: c.clone(),
                id: c.clone(),
                invalid: true,
                ..StatsEntry::default()
            })
            .collect(),
    ));
    for (i, c) in targets.iter().enumerate() {
        let client = client.clone();
        let c = c.clone();
        let entries = entries.clone();
        std::thread::spawn(move || {
            let Ok(r) = client
                .request(
                    "GET",
                    &format!("/containers/{}/stats?stream=1", enc(&c)),
                    None,
                )
                .and_then(|r| r.check())
            else {
                return;
            };
            let samples = serde_json::Deserializer::from_reader(r.body).into_iter::<Value>();
            for v in samples {
                let Ok(v) = v else { break };
                let e = StatsEntry::from_sample(&c, &v);
                if let Ok(mut all) = entries.lock() {
                    all[i] = e;
                }
            }
        });
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let rows: Vec<Value> = entries
            .lock()
            .map_err(|_| anyhow!("stats lock poisoned"))?
            .iter()
            .map(|e| e.fields(a.no_trunc))
            .collect();
        let frame = stats_frame(&render_all(&template, &rows, &stats_header));
        let mut out = io::stdout().lock();
        match out.write_all(frame.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e.into()),
        }
        if rows.is_empty() && !a.all {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// One redraw of streaming `stats`, byte for byte as the docker CLI writes it: the
/// cursor home and the table, then the same again with every line erased to its
/// end, then the rest of the screen cleared.
fn stats_frame(table: &str) -> String {
    let first = format!("\x1b[H{table}");
    let mut frame = first.clone();
    for line in first.split('\n') {
        frame.push_str(line);
        frame.push_str(" \x1b[K\n");
    }
    frame.push_str("\x1b[J");
    frame
}

// ---------------------------------------------------------------------------------
// commit and prune

/// `REPO[:TAG]` as the docker client splits it for `POST /commit`: the familiar
/// repository name and the tag (`latest` when none).
fn commit_reference(reference: &str) -> Result<(String, String)> {
    let r = pier_image::reference::Reference::parse(reference).map_err(|e| anyhow!("{e}"))?;
    if r.digest().is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let tag = r.tag().unwrap_or("latest").to_string();
    let familiar = r.familiar();
    let repo = match r.tag() {
        Some(t) => familiar
            .strip_suffix(&format!(":{t}"))
            .unwrap_or(&familiar)
            .to_string(),
        None => familiar,
    };
    Ok((repo, tag))
}

pub fn commit(client: &Client, a: CommitArgs) -> Result<ExitCode> {
    let mut q = vec![
        format!("container={}", enc(&a.container)),
        format!("pause={}", a.pause),
    ];
    if let Some(r) = &a.reference {
        let (repo, tag) = commit_reference(r)?;
        q.push(format!("repo={}", enc(&repo)));
        q.push(format!("tag={}", enc(&tag)));
    }
    if let Some(m) = &a.message {
        q.push(format!("comment={}", enc(m)));
    }
    if let Some(au) = &a.author {
        q.push(format!("author={}", enc(au)));
    }
    for c in &a.change {
        q.push(format!("changes={}", enc(c)));
    }
    let v = client.post_json(&format!("/commit?{}", q.join("&")), None)?;
    println!(
        "{}",
        v["Id"]
            .as_str()
            .ok_or_else(|| anyhow!("the daemon answered no image ID"))?
    );
    Ok(ExitCode::SUCCESS)
}

/// Filters (`key=value`) as the API's JSON map of sets.
pub fn filters_json(filters: &[String]) -> Result<String> {
    let mut map: Map<String, Value> = Map::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        if let Some(m) = map
            .entry(k.trim().to_ascii_lowercase())
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            m.insert(v.to_string(), json!(true));
        }
    }
    Ok(serde_json::to_string(&map)?)
}

/// Asks `[y/N]` on the terminal; only `y`/`yes` confirm.
pub fn confirm(warning: &str) -> Result<bool> {
    let mut out = io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

/// Runs `POST /containers/prune`: the deleted IDs and the space reclaimed.
pub fn prune_containers(client: &Client, filters: &[String]) -> Result<(Vec<String>, u64)> {
    let v = client.post_json(
        &format!("/containers/prune?filters={}", enc(&filters_json(filters)?)),
        None,
    )?;
    let deleted = v["ContainersDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    Ok((deleted, v["SpaceReclaimed"].as_u64().unwrap_or(0)))
}

/// `units.HumanSize`: decimal units, 4 significant digits.
pub fn human_size4(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g(value, 4), UNITS[unit])
}

pub fn prune(client: &Client, a: PruneArgs) -> Result<ExitCode> {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(ExitCode::SUCCESS);
    }
    let (deleted, space) = prune_containers(client, &a.filter)?;
    let mut out = io::stdout().lock();
    write_deleted(&mut out, "Deleted Containers:", &deleted)?;
    writeln!(out, "Total reclaimed space: {}", human_size4(space as f64))?;
    Ok(ExitCode::SUCCESS)
}

/// A prune's list of what it removed, as Docker prints it: the heading, one line each,
/// a blank line; nothing when the list is empty.
pub fn write_deleted(
    out: &mut impl Write,
    heading: &str,
    items: &[impl std::fmt::Display],
) -> io::Result<()> {
    if !items.is_empty() {
        writeln!(out, "{heading}")?;
        for item in items {
            writeln!(out, "{item}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes_like_go_units() {
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(8_217_000_000.0), "7.653GiB");
        assert_eq!(bytes_size(1_048_576.0), "1MiB");
        assert_eq!(human_size4(4_261_234.0), "4.261MB");
        assert_eq!(human_size4(0.0), "0B");
    }

    #[test]
    fn cpu_and_memory_like_the_docker_cli() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 3_145_728u64, "limit": 1_073_741_824u64, "stats": {"inactive_file": 1_048_576u64}},
            "pids_stats": {"current": 3},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "read", "value": 1500},
                {"major": 8, "minor": 0, "op": "write", "value": 2_000_000}]},
        });
        let e = StatsEntry::from_sample("web", &v);
        let f = e.fields(false);
        assert_eq!(f["CPUPerc"], "40.00%");
        assert_eq!(f["MemUsage"], "2MiB / 1GiB");
        assert_eq!(f["MemPerc"], "0.20%");
        assert_eq!(f["BlockIO"], "1.5kB / 2MB");
        assert_eq!(f["NetIO"], "0B / 0B");
        assert_eq!(f["PIDs"], "3");
        assert_eq!(f["ID"], "0123456789ab");
        assert_eq!(f["Name"], "web");
    }

    #[test]
    fn update_flags() {
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("1024"), Ok(1024));
        assert_eq!(ram_in_bytes("10MiB"), Ok(10 << 20));
        assert!(ram_in_bytes("lots").is_err());
        assert_eq!(
            commit_reference("busybox").unwrap(),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            commit_reference("example.com:5000/a/b:v1").unwrap(),
            ("example.com:5000/a/b".into(), "v1".into())
        );
    }

    #[test]
    fn top_table_like_tabwriter() {
        let rows = vec![
            vec!["UID".into(), "PID".into(), "CMD".into()],
            vec!["root".into(), "12345".into(), "sleep 1000".into()],
        ];
        assert_eq!(
            tabwrite(&rows, 20, 3),
            "UID                 PID                 CMD\nroot                12345               sleep 1000\n"
        );
    }
}
