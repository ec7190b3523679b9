//! `pier events`, `pier system df`, `pier system prune` (and `system events`/
//! `system info`), through pierd's Engine API, printed as the docker CLI prints them.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::Client;
use crate::container_ops::{confirm, filters_json, human_size4, prune_containers, write_deleted};
use crate::containers::enc;
use crate::output::{ago, human_size, render_all, Template};

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information
    Info,
    /// Remove unused data
    Prune(SystemPruneArgs),
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
}

pub fn system(client: &Client, command: SystemCommand) -> Result<ExitCode> {
    match command {
        SystemCommand::Df(a) => df(client, a),
        SystemCommand::Events(a) => events(client, a),
        SystemCommand::Info => crate::containers::info(client),
        SystemCommand::Prune(a) => prune(client, a),
    }
}

// ---------------------------------------------------------------------------------
// events

/// Docker's `timetypes.GetTimestamp`: a Unix time (`1700000000[.nnn]`) as is, a
/// duration as that long before `now`, an RFC 3339 time (or a date) as seconds.
pub fn timestamp(value: &str, now: SystemTime) -> Result<String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    // As Go's `time.ParseDuration`, where docker leaves "0" to the Unix time below.
    if let Some(d) = pier_image::time::parse_go_duration(value).filter(|_| value != "0") {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i128;
        let t = now - i128::from(d);
        return Ok(format!(
            "{}.{:09}",
            t.div_euclid(1_000_000_000),
            t.rem_euclid(1_000_000_000)
        ));
    }
    if value
        .split_once('.')
        .map_or(value, |(s, _)| s)
        .chars()
        .all(|c| c.is_ascii_digit())
        && value.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return Ok(value.to_string());
    }
    let full = if value.len() == 10 {
        format!("{value}T00:00:00Z")
    } else if !value.ends_with('Z') && !value.contains('+') && value.len() == 19 {
        format!("{value}Z")
    } else {
        value.to_string()
    };
    match pier_image::time::parse_rfc3339(&full) {
        Some((s, n)) => Ok(format!("{s}.{n:09}")),
        None => bail!("failed to parse value as time or duration: \"{value}\""),
    }
}

/// Go's `jsonmessage.RFC3339NanoFixed` in UTC: nine fraction digits, always.
pub fn rfc3339_nano_fixed(time_nano: i128) -> String {
    let secs = time_nano.div_euclid(1_000_000_000) as i64;
    let nanos = time_nano.rem_euclid(1_000_000_000);
    let base = pier_image::time::format_rfc3339(secs, 0);
    format!("{}.{nanos:09}Z", base.trim_end_matches('Z'))
}

/// docker's default event line: `TIME TYPE ACTION ID (k=v, ...)`, attributes sorted.
pub fn event_line(e: &Value) -> String {
    let mut out = String::new();
    let nano = e["timeNano"].as_i64().map(i128::from).unwrap_or(0);
    let secs = e["time"].as_i64().unwrap_or(0);
    if nano != 0 {
        out.push_str(&rfc3339_nano_fixed(nano));
        out.push(' ');
    } else if secs != 0 {
        out.push_str(&rfc3339_nano_fixed(i128::from(secs) * 1_000_000_000));
        out.push(' ');
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    out.push_str(&format!(
        "{} {} {}",
        s(&e["Type"]),
        s(&e["Action"]),
        s(&e["Actor"]["ID"])
    ));
    if let Some(attrs) = e["Actor"]["Attributes"].as_object() {
        if !attrs.is_empty() {
            let mut pairs: Vec<(&String, String)> = attrs.iter().map(|(k, v)| (k, s(v))).collect();
            pairs.sort();
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(" ({})", joined.join(", ")));
        }
    }
    out
}

/// An event as Go's `json.Marshal` writes `events.Message`: fields in the struct's
/// order, `status`/`id`/`from` left out when empty.
pub fn event_json(e: &Value) -> String {
    let mut parts = Vec::new();
    for key in ["status", "id", "from"] {
        if let Some(v) = e[key].as_str().filter(|v| !v.is_empty()) {
            parts.push(format!("{}:{}", json!(key), json!(v)));
        }
    }
    let actor = format!(
        "{{\"ID\":{},\"Attributes\":{}}}",
        json!(e["Actor"]["ID"].as_str().unwrap_or_default()),
        if e["Actor"]["Attributes"].is_object() {
            e["Actor"]["Attributes"].to_string()
        } else {
            "null".to_string()
        }
    );
    parts.push(format!(
        "\"Type\":{}",
        json!(e["Type"].as_str().unwrap_or_default())
    ));
    parts.push(format!(
        "\"Action\":{}",
        json!(e["Action"].as_str().unwrap_or_default())
    ));
    parts.push(format!("\"Actor\":{actor}"));
    parts.push(format!(
        "\"scope\":{}",
        json!(e["scope"].as_str().unwrap_or_default())
    ));
    parts.push(format!("\"time\":{}", e["time"].as_i64().unwrap_or(0)));
    parts.push(format!(
        "\"timeNano\":{}",
        e["timeNano"].as_i64().unwrap_or(0)
    ));
    format!("{{{}}}", parts.join(","))
}

/// An event with the Go field names templates use (`.Type`, `.Actor.ID`, ...).
fn event_fields(e: &Value) -> Value {
    json!({
        "Status": e["status"], "ID": e["id"], "From": e["from"],
        "Type": e["Type"], "Action": e["Action"], "Actor": e["Actor"],
        "Scope": e["scope"], "Time": e["time"], "TimeNano": e["timeNano"],
    })
}

pub fn events(client: &Client, a: EventsArgs) -> Result<ExitCode> {
    let now = SystemTime::now();
    let mut q = vec![format!("filters={}", enc(&filters_json(&a.filter)?))];
    if let Some(s) = &a.since {
        q.push(format!("since={}", enc(&timestamp(s, now)?)));
    }
    if let Some(u) = &a.until {
        q.push(format!("until={}", enc(&timestamp(u, now)?)));
    }
    let format = a.format.as_deref().map(|f| match f {
        "json" => "{{json .}}",
        other => other,
    });
    let template = match format {
        None | Some("") | Some("{{json .}}") => None,
        Some(f) => Some(Template::parse(f).map_err(|e| anyhow!(e))?),
    };
    let raw_json = format == Some("{{json .}}");
    let r = client
        .request("GET", &format!("/events?{}", q.join("&")), None)?
        .check()?;
    for event in serde_json::Deserializer::from_reader(r.body).into_iter::<Value>() {
        let Ok(event) = event else { break };
        let line = if raw_json {
            event_json(&event)
        } else if let Some(t) = &template {
            t.render(&event_fields(&event))
        } else {
            event_line(&event)
        };
        let mut out = io::stdout().lock();
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------
// system df

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `Reclaimable` with its percentage of the total, as docker prints it.
fn reclaimable(reclaim: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            human_size4(reclaim as f64),
            reclaim * 100 / total
        )
    } else {
        human_size4(reclaim as f64)
    }
}

/// The four summary rows of `system df` from a `GET /system/df` answer.
pub fn df_rows(v: &Value) -> Vec<Value> {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let images = list("Images");
    let containers = list("Containers");
    let volumes = list("Volumes");
    let cache = list("BuildCache");

    let layers = i(&v["LayersSize"]);
    let mut used = 0;
    let mut active_images = 0;
    for img in &images {
        if i(&img["Containers"]) > 0 {
            active_images += 1;
            let (size, shared) = (i(&img["Size"]), i(&img["SharedSize"]));
            if size != -1 && shared != -1 {
                used += size - shared;
            }
        }
    }
    let (mut c_size, mut c_reclaim, mut c_active) = (0, 0, 0);
    for c in &containers {
        let size = i(&c["SizeRw"]);
        c_size += size;
        if matches!(
            c["State"].as_str(),
            Some("running" | "paused" | "restarting")
        ) {
            c_active += 1;
        } else {
            c_reclaim += size;
        }
    }
    let (mut v_size, mut v_reclaim, mut v_active) = (0, 0, 0);
    for vol in &volumes {
        let size = i(&vol["UsageData"]["Size"]);
        let refs = i(&vol["UsageData"]["RefCount"]);
        if refs > 0 {
            v_active += 1;
        }
        if size != -1 {
            v_size += size;
            if refs == 0 {
                v_reclaim += size;
            }
        }
    }
    let (mut b_size, mut b_reclaim, mut b_active) = (0, 0, 0);
    for b in &cache {
        let in_use = b["InUse"].as_bool() == Some(true);
        let shared = b["Shared"].as_bool() == Some(true);
        if in_use {
            b_active += 1;
        }
        if !shared {
            b_size += i(&b["Size"]);
            if !in_use {
                b_reclaim += i(&b["Size"]);
            }
        }
    }
    vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": active_images.to_string(),
               "Size": human_size4(layers as f64), "Reclaimable": reclaimable(layers - used, layers)}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": c_active.to_string(),
               "Size": human_size4(c_size as f64), "Reclaimable": reclaimable(c_reclaim, c_size)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": v_active.to_string(),
               "Size": human_size4(v_size as f64), "Reclaimable": reclaimable(v_reclaim, v_size)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(), "Active": b_active.to_string(),
               "Size": human_size4(b_size as f64), "Reclaimable": human_size4(b_reclaim as f64)}),
    ]
}

fn df_header(field: &str) -> String {
    match field {
        "TotalCount" => "TOTAL".to_string(),
        "Reclaimable" => "RECLAIMABLE".to_string(),
        other => other.to_uppercase(),
    }
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `system df -v`: one table per kind.
fn df_verbose(v: &Value) -> String {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let names = |f: &str| match f {
        "ID" => "IMAGE ID".to_string(),
        "CreatedSince" => "CREATED".to_string(),
        "SharedSize" => "SHARED SIZE".to_string(),
        "UniqueSize" => "UNIQUE SIZE".to_string(),
        other => other.to_uppercase(),
    };
    let mut out = String::from("Images space usage:\n\n");
    let images: Vec<Value> = list("Images")
        .iter()
        .map(|img| {
            let tag = img["RepoTags"]
                .as_array()
                .and_then(|t| t.first())
                .and_then(Value::as_str)
                .filter(|t| *t != "<none>:<none>");
            let (repo, tag) = match tag.and_then(|t| t.rsplit_once(':')) {
                Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                _ => ("<none>".to_string(), "<none>".to_string()),
            };
            let size = i(&img["Size"]);
            let shared = i(&img["SharedSize"]);
            json!({
                "Repository": repo, "Tag": tag,
                "ID": short_id(img["Id"].as_str().unwrap_or_default()),
                "CreatedSince": ago(i(&img["Created"])),
                "Size": human_size(size),
                "SharedSize": if shared == -1 { "N/A".to_string() } else { human_size4(shared as f64) },
                "UniqueSize": if shared == -1 { "N/A".to_string() } else { human_size4((size - shared) as f64) },
                "Containers": i(&img["Containers"]).to_string(),
            })
        })
        .collect();
    let t = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
    out.push_str(&render(t, &images, &names));

    out.push_str("\nContainers space usage:\n\n");
    let cnames = |f: &str| match f {
        "ID" => "CONTAINER ID".to_string(),
        "LocalVolumes" => "LOCAL VOLUMES".to_string(),
        "RunningFor" => "CREATED".to_string(),
        other => other.to_uppercase(),
    };
    let containers: Vec<Value> = list("Containers")
        .iter()
        .map(|c| {
            let names = crate::containers::names(c);
            let volumes = c["Mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["Type"] == "volume")
                .count();
            json!({
                "ID": short_id(c["Id"].as_str().unwrap_or_default()),
                "Image": c["Image"],
                "Command": format!("\"{}\"", crate::output::ellipsis(c["Command"].as_str().unwrap_or_default(), 20)),
                "LocalVolumes": volumes.to_string(),
                "Size": human_size(i(&c["SizeRw"])),
                "RunningFor": ago(i(&c["Created"])),
                "Status": c["Status"],
                "Names": names.join(","),
            })
        })
        .collect();
    let t = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
    out.push_str(&render(t, &containers, &cnames));

    out.push_str("\nLocal Volumes space usage:\n\n");
    let volumes: Vec<Value> = list("Volumes")
        .iter()
        .map(|v| {
            let size = i(&v["UsageData"]["Size"]);
            json!({
                "Name": v["Name"],
                "Links": i(&v["UsageData"]["RefCount"]).to_string(),
                "Size": if size == -1 { "N/A".to_string() } else { human_size4(size as f64) },
            })
        })
        .collect();
    let vnames = |f: &str| match f {
        "Name" => "VOLUME NAME".to_string(),
        other => other.to_uppercase(),
    };
    out.push_str(&render(
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &volumes,
        &vnames,
    ));

    let cache = list("BuildCache");
    let total: i64 = cache
        .iter()
        .filter(|b| b["Shared"].as_bool() != Some(true))
        .map(|b| i(&b["Size"]))
        .sum();
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size4(total as f64)
    ));
    let rows: Vec<Value> = cache
        .iter()
        .map(|b| {
            json!({
                "ID": b["ID"].as_str().unwrap_or_default().chars().take(12).collect::<String>(),
                "CacheType": b["Type"],
                "Size": human_size(i(&b["Size"])),
                "CreatedSince": b["CreatedAt"].as_str().and_then(pier_image::time::parse_rfc3339).map_or(String::new(), |(s, _)| ago(s)),
                "LastUsedSince": b["LastUsedAt"].as_str().and_then(pier_image::time::parse_rfc3339).map_or(String::new(), |(s, _)| ago(s)),
                "UsageCount": i(&b["UsageCount"]).to_string(),
                "Shared": b["Shared"].as_bool().unwrap_or(false).to_string(),
            })
        })
        .collect();
    let bnames = |f: &str| match f {
        "ID" => "CACHE ID".to_string(),
        "CacheType" => "CACHE TYPE".to_string(),
        "CreatedSince" => "CREATED".to_string(),
        "LastUsedSince" => "LAST USED".to_string(),
        "UsageCount" => "USAGE".to_string(),
        other => other.to_uppercase(),
    };
    out.push_str(&render(
        "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &rows,
        &bnames,
    ));
    out
}

fn render(template: &str, rows: &[Value], names: &dyn Fn(&str) -> String) -> String {
    match Template::parse(template) {
        Ok(t) => render_all(&t, rows, names),
        Err(e) => e,
    }
}

pub fn df(client: &Client, a: DfArgs) -> Result<ExitCode> {
    let v = client.get_json("/system/df")?;
    let text = if a.verbose && a.format.is_none() {
        df_verbose(&v)
    } else {
        let format = match a.format.as_deref() {
            None | Some("") | Some("table") => {
                "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
            }
            Some("json") => "{{json .}}",
            Some(f) => f,
        };
        let t = Template::parse(format).map_err(|e| anyhow!(e))?;
        render_all(&t, &df_rows(&v), &df_header)
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------
// system prune

fn prune_warning(a: &SystemPruneArgs) -> String {
    let mut lines = vec![
        "WARNING! This will remove:".to_string(),
        "  - all stopped containers".to_string(),
        "  - all networks not used by at least one container".to_string(),
    ];
    if a.volumes {
        lines.push("  - all anonymous volumes not used by at least one container".to_string());
    }
    if a.all {
        lines.push("  - all images without at least one container associated to them".to_string());
        lines.push("  - all build cache".to_string());
    } else {
        lines.push("  - all dangling images".to_string());
        lines.push("  - unused build cache".to_string());
    }
    lines.join("\n") + "\n"
}

pub fn prune(client: &Client, a: SystemPruneArgs) -> Result<ExitCode> {
    if !a.force && !confirm(&prune_warning(&a))? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = io::stdout().lock();
    let mut total: u64 = 0;
    let (deleted, space) = prune_containers(client, &a.filter)?;
    total += space;
    write_deleted(&mut out, "Deleted Containers:", &deleted)?;
    if a.volumes {
        let r = client.request(
            "POST",
            &format!("/volumes/prune?filters={}", enc(&filters_json(&a.filter)?)),
            None,
        )?;
        // No volumes in this daemon yet: a 404 means nothing to prune.
        if r.status != 404 {
            let v = r.json()?;
            let names: Vec<&str> = v["VolumesDeleted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            write_deleted(&mut out, "Deleted Volumes:", &names)?;
            total += v["SpaceReclaimed"].as_u64().unwrap_or(0);
        }
    }
    let mut filters = a.filter.clone();
    filters.push(format!("dangling={}", !a.all));
    let v = client.post_json(
        &format!("/images/prune?filters={}", enc(&filters_json(&filters)?)),
        None,
    )?;
    let deleted: Vec<String> = v["ImagesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| {
            let mut lines = Vec::new();
            if let Some(u) = d["Untagged"].as_str() {
                lines.push(format!("untagged: {u}"));
            }
            if let Some(x) = d["Deleted"].as_str() {
                lines.push(format!("deleted: {x}"));
            }
            lines
        })
        .collect();
    total += v["SpaceReclaimed"].as_u64().unwrap_or(0);
    write_deleted(&mut out, "Deleted Images:", &deleted)?;
    writeln!(out, "Total reclaimed space: {}", human_size4(total as f64))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_like_docker() {
        let e = json!({
            "Type": "container", "Action": "start", "Actor": {"ID": "abc",
            "Attributes": {"name": "x", "image": "busybox"}},
            "time": 1_795_820_400, "timeNano": 1_795_820_400_123_456_789i64,
        });
        assert_eq!(
            event_line(&e),
            "2026-11-27T23:00:00.123456789Z container start abc (image=busybox, name=x)"
        );
        let e = json!({"Type": "image", "Action": "tag", "Actor": {"ID": "sha256:1"}, "time": 1_795_820_400});
        assert_eq!(
            event_line(&e),
            "2026-11-27T23:00:00.000000000Z image tag sha256:1"
        );
    }

    #[test]
    fn timestamps_like_docker() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        assert_eq!(timestamp("10m", now).unwrap(), "999400.000000000");
        assert_eq!(timestamp("1h30m", now).unwrap(), "994600.000000000");
        assert_eq!(timestamp("1700000000", now).unwrap(), "1700000000");
        assert_eq!(timestamp("1700000000.5", now).unwrap(), "1700000000.5");
        assert_eq!(
            timestamp("2023-11-14T22:13:20Z", now).unwrap(),
            "1700000000.000000000"
        );
        assert!(timestamp("yesterday", now).is_err());
    }

    #[test]
    fn df_summary_like_docker() {
        let v = json!({
            "LayersSize": 4_261_234,
            "Images": [{"Id": "sha256:1", "Size": 4_261_234, "SharedSize": 0, "Containers": 1}],
            "Containers": [
                {"Id": "a", "SizeRw": 100, "State": "running"},
                {"Id": "b", "SizeRw": 300, "State": "exited"}],
            "Volumes": [],
            "BuildCache": [],
        });
        let t = Template::parse(
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        )
        .unwrap();
        assert_eq!(
            render_all(&t, &df_rows(&v), &df_header),
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          1         1         4.261MB   0B (0%)\n\
             Containers      2         1         400B      300B (75%)\n\
             Local Volumes   0         0         0B        0B\n\
             Build Cache     0         0         0B        0B\n"
        );
    }
}
