//! `ps` and `ls`: the project's containers and the projects on the engine, in
//! docker compose's table and JSON forms.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::{connect, filtered, project_name, CommandResult, LsArgs};
use crate::cli::ComposeArgs;
use crate::engine::api::{ContainerSummary, PortSummary};
use crate::engine::labels;

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all stopped containers (including those created by the run command)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Format the output. Values: [table | json]
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Filter services by a property (supported filters: status)
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited]
    #[arg(long)]
    pub status: Vec<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    pub service_names: Vec<String>,
}

/// One row of `ps --format json`, with docker compose's field names and order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PsRow {
    command: String,
    created_at: String,
    exit_code: i64,
    health: String,
    #[serde(rename = "ID")]
    id: String,
    image: String,
    labels: String,
    local_volumes: String,
    mounts: String,
    name: String,
    names: String,
    networks: String,
    ports: String,
    project: String,
    publishers: Vec<Publisher>,
    running_for: String,
    service: String,
    size: String,
    state: String,
    status: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Publisher {
    #[serde(rename = "URL")]
    url: String,
    target_port: u16,
    published_port: u16,
    protocol: String,
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

/// `0.0.0.0:8080->80/tcp, 443/tcp`, as docker prints ports.
fn ports_text(ports: &[PortSummary]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_by_key(|p| (p.private_port, p.ip.clone()));
    sorted
        .iter()
        .map(|p| match p.public_port {
            Some(pub_port) => format!("{}:{pub_port}->{}/{}", p.ip, p.private_port, p.kind),
            None => format!("{}/{}", p.private_port, p.kind),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn health_of(status: &str) -> &'static str {
    if status.contains("(healthy)") {
        "healthy"
    } else if status.contains("(unhealthy)") {
        "unhealthy"
    } else if status.contains("(health: starting)") {
        "starting"
    } else {
        ""
    }
}

fn exit_code_of(status: &str) -> i64 {
    status
        .strip_prefix("Exited (")
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn row(c: &ContainerSummary) -> PsRow {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let created = pier_time::format_rfc3339(c.created, 0);
    let created_at = format!("{} {} +0000 UTC", &created[..10], &created[11..19]);
    let mounts: Vec<String> = c
        .extra
        .get("Mounts")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|m| {
                    let name = m.get("Name").and_then(Value::as_str).unwrap_or_default();
                    let src = m.get("Source").and_then(Value::as_str).unwrap_or_default();
                    truncate(if name.is_empty() { src } else { name }, 15)
                })
                .collect()
        })
        .unwrap_or_default();
    let local_volumes = c
        .extra
        .get("Mounts")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter(|m| m.get("Driver").and_then(Value::as_str) == Some("local"))
                .count()
        })
        .unwrap_or(0);
    let networks: Vec<String> = c
        .extra
        .get("NetworkSettings")
        .and_then(|n| n.get("Networks"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut sorted_ports = c.ports.clone();
    sorted_ports.sort_by_key(|p| (p.private_port, p.ip.clone()));
    PsRow {
        command: format!("\"{}\"", truncate(&c.command, 20)),
        created_at,
        exit_code: exit_code_of(&c.status),
        health: health_of(&c.status).into(),
        id: c.id.chars().take(12).collect(),
        image: c.image.clone(),
        labels: c
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        local_volumes: local_volumes.to_string(),
        mounts: mounts.join(","),
        name: c.name().into(),
        names: c.name().into(),
        networks: networks.join(","),
        ports: ports_text(&c.ports),
        project: c.label(labels::PROJECT).into(),
        publishers: sorted_ports
            .iter()
            .map(|p| Publisher {
                url: p.ip.clone(),
                target_port: p.private_port,
                published_port: p.public_port.unwrap_or(0),
                protocol: p.kind.clone(),
            })
            .collect(),
        running_for: format!("{} ago", pier_time::human_duration(now - c.created)),
        service: c.label(labels::SERVICE).into(),
        size: "0B".into(),
        state: c.state.clone(),
        status: c.status.clone(),
    }
}

pub async fn run(args: &ComposeArgs, p: &PsArgs) -> CommandResult {
    let project = project_name(args)?;
    let engine = connect()?;
    let mut filters = vec![format!("{}={project}", labels::PROJECT)];
    if !p.all {
        filters.push(format!("{}=False", labels::ONEOFF));
    }
    let mut list = engine
        .containers(&filters, p.all || !p.status.is_empty())
        .await?;
    list.retain(|c| {
        p.service_names.is_empty()
            || p.service_names
                .iter()
                .any(|s| s == c.label(labels::SERVICE))
    });
    let mut statuses = p.status.clone();
    if let Some(f) = &p.filter {
        match f.split_once('=') {
            Some(("status", v)) => statuses.push(v.to_string()),
            _ => return Err(format!("invalid filter {f:?}: only status= is supported").into()),
        }
    }
    if !statuses.is_empty() {
        list.retain(|c| statuses.contains(&c.state));
    }
    list.sort_by(|a, b| a.name().cmp(b.name()));
    if p.services {
        let mut services: Vec<&str> = list.iter().map(|c| c.label(labels::SERVICE)).collect();
        services.dedup();
        for s in services {
            println!("{s}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if p.quiet {
        for c in &list {
            println!(
                "{}",
                if p.no_trunc {
                    c.id.clone()
                } else {
                    c.id.chars().take(12).collect()
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<PsRow> = list.iter().map(row).collect();
    match p.format.as_str() {
        "json" => {
            for r in &rows {
                println!("{}", go_json(&serde_json::to_string(r)?));
            }
        }
        "table" => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.image.clone(),
                        r.command.clone(),
                        r.service.clone(),
                        r.running_for.clone(),
                        r.status.clone(),
                        r.ports.clone(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
                ],
                &table,
            );
        }
        other => return Err(format!("unsupported format {other:?}: table or json").into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Go's JSON escapes `<`, `>` and `&`.
fn go_json(text: &str) -> String {
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Columns padded to the widest cell plus three spaces, as docker's tabwriter.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i >= widths.len() {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        println!("{out}");
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub async fn run_ls(l: &LsArgs) -> CommandResult {
    let engine = connect()?;
    let list = engine
        .containers(&[labels::PROJECT.to_string()], true)
        .await?;
    #[derive(Default)]
    struct Entry {
        states: BTreeMap<String, usize>,
        files: String,
    }
    let mut projects: BTreeMap<String, Entry> = BTreeMap::new();
    for c in &list {
        let e = projects
            .entry(c.label(labels::PROJECT).to_string())
            .or_default();
        *e.states.entry(c.state.clone()).or_default() += 1;
        if e.files.is_empty() {
            e.files = c.label(labels::CONFIG_FILES).to_string();
        }
    }
    if !l.all {
        projects.retain(|_, e| e.states.contains_key("running"));
    }
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct LsRow {
        name: String,
        status: String,
        config_files: String,
    }
    let rows: Vec<LsRow> = projects
        .into_iter()
        .map(|(name, e)| LsRow {
            name,
            status: e
                .states
                .iter()
                .map(|(s, n)| format!("{s}({n})"))
                .collect::<Vec<_>>()
                .join(", "),
            config_files: e.files,
        })
        .collect();
    if l.quiet {
        for r in &rows {
            println!("{}", r.name);
        }
    } else if l.format == "json" {
        println!("{}", go_json(&serde_json::to_string(&rows)?));
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| vec![r.name.clone(), r.status.clone(), r.config_files.clone()])
            .collect();
        print_table(&["NAME", "STATUS", "CONFIG FILES"], &table);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    pub private_port: u16,
}

/// `port`: the host address a container port is published on.
pub async fn run_port(args: &ComposeArgs, p: &PortArgs) -> CommandResult {
    let project = project_name(args)?;
    let engine = connect()?;
    let containers = filtered(&engine, &project, std::slice::from_ref(&p.service)).await?;
    let Some(c) = containers
        .iter()
        .find(|c| c.label(labels::CONTAINER_NUMBER) == p.index.to_string())
    else {
        return Err(format!("service {:?} is not running", p.service).into());
    };
    let published = c.ports.iter().find(|port| {
        port.private_port == p.private_port && port.kind == p.protocol && port.public_port.is_some()
    });
    match published {
        Some(port) => {
            println!("{}:{}", port.ip, port.public_port.unwrap_or(0));
            Ok(ExitCode::SUCCESS)
        }
        None => Err(format!(
            "no port {}/{} for container {}",
            p.private_port,
            p.protocol,
            c.name()
        )
        .into()),
    }
}

/// `top`: each running container's processes, under its name.
pub async fn run_top(args: &ComposeArgs, services: &[String]) -> CommandResult {
    let project = project_name(args)?;
    let engine = connect()?;
    let mut containers = filtered(&engine, &project, services).await?;
    containers.retain(|c| c.state == "running");
    containers.sort_by(|a, b| a.name().cmp(b.name()));
    for (i, c) in containers.iter().enumerate() {
        let top = engine.top(&c.id).await?;
        if i > 0 {
            println!();
        }
        println!("{}", c.name());
        let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
        print_table(&titles, &top.processes);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format the output. Values: [table | json]
    #[arg(long, default_value = "table")]
    pub format: String,
    pub services: Vec<String>,
}

/// `images`: the image of each container.
pub async fn run_images(args: &ComposeArgs, i: &ImagesArgs) -> CommandResult {
    let project = project_name(args)?;
    let engine = connect()?;
    let mut containers = filtered(&engine, &project, &i.services).await?;
    containers.sort_by(|a, b| a.name().cmp(b.name()));
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct ImageRow {
        #[serde(rename = "ID")]
        id: String,
        container_name: String,
        repository: String,
        tag: String,
        size: i64,
    }
    let mut rows = Vec::new();
    for c in &containers {
        let info = engine.image(&c.image_id).await?.unwrap_or_default();
        let (repository, tag) = match c.image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (c.image.clone(), "latest".to_string()),
        };
        rows.push(ImageRow {
            id: c.image_id.clone(),
            container_name: c.name().to_string(),
            repository,
            tag,
            size: info.size,
        });
    }
    if i.quiet {
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        ids.dedup();
        for id in ids {
            println!("{id}");
        }
    } else if i.format == "json" {
        println!("{}", go_json(&serde_json::to_string(&rows)?));
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let short =
                    r.id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>();
                vec![
                    r.container_name.clone(),
                    r.repository.clone(),
                    r.tag.clone(),
                    short,
                    human_size(r.size),
                ]
            })
            .collect();
        print_table(
            &["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
            &table,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// docker's `units.HumanSize` (decimal units, 3 significant digits).
fn human_size(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < units.len() {
        size /= 1000.0;
        unit += 1;
    }
    let digits = if size >= 100.0 {
        0
    } else if size >= 10.0 {
        1
    } else {
        2
    };
    let rounded = format!("{size:.digits$}");
    let trimmed = if rounded.contains('.') {
        rounded
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        rounded
    };
    format!("{trimmed}{}", units[unit])
}
