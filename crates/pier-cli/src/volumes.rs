//! `pier volume`: create, ls, inspect, rm and prune, through pierd's `/volumes`
//! endpoints, with the docker CLI's flags, requests and output. Answers are decoded
//! into [`pier_api::volume`]'s types.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use pier_api::volume::{Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse};
use serde_json::{json, Value};

use crate::client::Client;
use crate::container_ops::{confirm, filters_json, human_size4, write_deleted};
use crate::containers::enc;
use crate::networks::natural_cmp;
use crate::output::{render_all, Template};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
    /// Write a volume's content to a tar archive (streamed to STDOUT by default; Pier)
    Export(crate::volume_archive::ExportArgs),
    /// Fill a new or empty volume from a tar archive (STDIN by default; Pier)
    Import(crate::volume_archive::ImportArgs),
    /// Copy a volume into a new or empty one (Pier)
    Clone(crate::volume_archive::CloneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long, hide = true)]
    name: Option<String>,
    volume: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
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
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn dispatch(client: &Client, cmd: VolumeCommand) -> Result<ExitCode> {
    match cmd {
        VolumeCommand::Create(a) => create(client, a),
        VolumeCommand::Ls(a) => ls(client, a),
        VolumeCommand::Inspect(a) => inspect(client, a),
        VolumeCommand::Rm(a) => rm(client, a),
        VolumeCommand::Prune(a) => prune(client, a),
        VolumeCommand::Export(a) => crate::volume_archive::export(client, a),
        VolumeCommand::Import(a) => crate::volume_archive::import(client, a),
        VolumeCommand::Clone(a) => crate::volume_archive::clone(client, a),
    }
}

/// `KEY=VALUE` items as a map (a missing `=` is an empty value, as docker's).
fn kv_map(items: &[String]) -> std::collections::BTreeMap<String, String> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (i.clone(), String::new()),
        })
        .collect()
}

/// The body of `POST /volumes/create`, as the docker CLI sends it.
pub(crate) fn create_body(a: &CreateArgs) -> Result<VolumeCreateOptions> {
    let name = match (&a.name, &a.volume) {
        (Some(flag), Some(arg)) if flag != arg => {
            return Err(anyhow!(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg"
            ))
        }
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    Ok(VolumeCreateOptions {
        name: Some(name),
        driver: Some(a.driver.clone()),
        // None when not given: the volume shows `null` then, as with the docker CLI.
        driver_opts: (!a.opt.is_empty()).then(|| kv_map(&a.opt)),
        labels: (!a.label.is_empty()).then(|| kv_map(&a.label)),
        ..VolumeCreateOptions::default()
    })
}

pub fn create(client: &Client, a: CreateArgs) -> Result<ExitCode> {
    let body = serde_json::to_value(create_body(&a)?)?;
    let v: Volume = serde_json::from_value(client.post_json("/volumes/create", Some(&body))?)?;
    println!("{}", v.name);
    Ok(ExitCode::SUCCESS)
}

fn header_name(field: &str) -> String {
    match field {
        "Name" => "VOLUME NAME".into(),
        other => other.to_uppercase(),
    }
}

/// A volume as `volume ls`'s template fields (docker's volume context).
fn row(v: &Volume) -> Value {
    let labels: Vec<String> = v
        .labels
        .iter()
        .flatten()
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    let (links, size) = match v.usage_data {
        Some(u) if u.ref_count >= 0 => (
            u.ref_count.to_string(),
            if u.size >= 0 {
                crate::output::human_size(u.size)
            } else {
                "N/A".into()
            },
        ),
        _ => ("N/A".into(), "N/A".into()),
    };
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Scope": v.scope,
        "Mountpoint": v.mountpoint,
        "Labels": labels.join(","),
        "Links": links,
        "Size": size,
        "Group": "N/A",
        "Availability": "N/A",
        "Status": "N/A",
    })
}

pub fn ls(client: &Client, a: LsArgs) -> Result<ExitCode> {
    let mut path = "/volumes".to_string();
    if !a.filter.is_empty() {
        path.push_str(&format!("?filters={}", enc(&filters_json(&a.filter)?)));
    }
    let mut list: VolumeListResponse = serde_json::from_value(client.get_json(&path)?)?;
    list.volumes.sort_by(|x, y| natural_cmp(&x.name, &y.name));
    let format = match a.format.as_deref() {
        Some(f) if !f.is_empty() => f,
        _ if a.quiet => "{{.Name}}",
        _ => "table {{.Driver}}\t{{.Name}}",
    };
    let format = match format {
        "table" if a.quiet => "{{.Name}}",
        "table" => "table {{.Driver}}\t{{.Name}}",
        "raw" if a.quiet => "name: {{.Name}}",
        "raw" => "name: {{.Name}}\\ndriver: {{.Driver}}\\n",
        f => f,
    };
    let template = Template::parse(format).map_err(|e| anyhow!(e))?;
    let rows: Vec<Value> = list.volumes.iter().map(row).collect();
    let text = render_all(&template, &rows, &header_name);
    io::stdout().lock().write_all(text.as_bytes())?;
    for w in list.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(client: &Client, a: InspectArgs) -> Result<ExitCode> {
    let paths: Vec<String> = a
        .volumes
        .iter()
        .map(|n| format!("/volumes/{}", enc(n)))
        .collect();
    crate::networks::inspect_objects(client, &paths, a.format.as_deref())
}

pub fn rm(client: &Client, a: RmArgs) -> Result<ExitCode> {
    let query = if a.force { "?force=1" } else { "" };
    let mut errors = Vec::new();
    for n in &a.volumes {
        let r = client.request("DELETE", &format!("/volumes/{}{query}", enc(n)), None)?;
        match r.check() {
            Ok(_) => println!("{n}"),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{}", errors.join("\n"));
    Ok(ExitCode::FAILURE)
}

pub fn prune(client: &Client, a: PruneArgs) -> Result<ExitCode> {
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("all=true".into());
    }
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !a.force && !confirm(warning)? {
        return Ok(ExitCode::SUCCESS);
    }
    let answer: VolumePruneResponse = serde_json::from_value(client.post_json(
        &format!("/volumes/prune?filters={}", enc(&filters_json(&filters)?)),
        None,
    )?)?;
    let mut out = io::stdout().lock();
    write_deleted(&mut out, "Deleted Volumes:", &answer.volumes_deleted)?;
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size4(answer.space_reclaimed as f64)
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_sends_what_docker_sends() {
        let a = CreateArgs {
            driver: "local".into(),
            label: vec!["a=b".into(), "c".into()],
            opt: vec!["type=tmpfs".into()],
            name: None,
            volume: Some("data".into()),
        };
        assert_eq!(
            serde_json::to_value(create_body(&a).unwrap()).unwrap(),
            json!({"Name": "data", "Driver": "local", "DriverOpts": {"type": "tmpfs"},
                   "Labels": {"a": "b", "c": ""}})
        );
        let clash = CreateArgs {
            name: Some("x".into()),
            ..a
        };
        assert!(create_body(&clash).is_err());
    }

    #[test]
    fn rows_show_usage_only_when_known() {
        let mut v = Volume {
            name: "v".into(),
            driver: "local".into(),
            labels: Some([("k".to_string(), "v".to_string())].into()),
            ..Volume::default()
        };
        let r = row(&v);
        assert_eq!(r["Links"], "N/A");
        assert_eq!(r["Labels"], "k=v");
        v.usage_data = Some(pier_api::volume::UsageData {
            size: 0,
            ref_count: 2,
        });
        assert_eq!(row(&v)["Links"], "2");
        assert_eq!(row(&v)["Size"], "0B");
    }
}
