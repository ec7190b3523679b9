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

/// Flags shared by `run` and `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
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
    /// Connect a container to a network (none, host, container:<name|id>)
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Container host name
    #[arg(long)]
    hostname: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
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

/// The create request body of `run`/`create`.
fn create_body(a: &CreateArgs, auto_remove: bool, attach: bool) -> Result<Value> {
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
        "NetworkMode": a.network.clone().unwrap_or_else(|| "default".into()),
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
        "HostConfig": host_config,
    });
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
    let answer = client.post_json(&path, Some(&body))?;
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

pub fn create(client: &Client, a: CreateArgs) -> Result<ExitCode> {
    let id = create_container(client, &a, false, false)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// Exit status of `run` when the daemon refused to start the command, as docker's.
fn start_failure_code(message: &str) -> u8 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
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
        Err(e) => {
            eprintln!("pier: {e:#}");
            return Ok(ExitCode::from(125));
        }
    };
    if a.detach {
        if let Err(e) = client
            .request("POST", &format!("/containers/{id}/start"), None)?
            .check()
        {
            eprintln!("pier: {e:#}");
            return Ok(ExitCode::from(start_failure_code(&e.to_string())));
        }
        println!("{id}");
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
        eprintln!("pier: {e:#}");
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
    let mut failed = false;
    for n in &a.names {
        let container = client.request("GET", &format!("/containers/{}/json", enc(n)), None)?;
        let v = if container.status == 404 {
            let _ = container.bytes();
            match client.get_json(&format!("/images/{}/json", enc(n))) {
                Ok(v) => v,
                Err(_) => {
                    eprintln!("Error: No such object: {n}");
                    failed = true;
                    continue;
                }
            }
        } else {
            container.json()?
        };
        found.push(v);
    }
    print_inspect(&found, template.as_ref())?;
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
                "Ports": "",
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
