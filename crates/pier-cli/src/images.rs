//! The image commands: `images`, `image inspect/tag/rm/history/prune`, `save`,
//! `load`, `import`, with Docker's flags and output, through pierd's Engine API.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use pier_image::reference::Reference;
use pier_image::service::api::{DeleteItem, HistoryItem, ImageSummary, PruneReport};
use pier_image::time::format_rfc3339;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::containers::enc;
use crate::output::{ago, ellipsis, human_size, print_inspect, render_all, Template};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RemoveArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball or directory to create a filesystem image
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Format output using a template
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show images whose repository matches
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    target: String,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Format output using a template
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "IMAGE")]
    image: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "until=<timestamp>", "label=<key>=<value>")
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "CHANGE")]
    changes: Vec<String>,
    /// A rootfs tarball (plain, gzip or zstd), a directory, or - for STDIN
    #[arg(value_name = "file|-")]
    source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

/// Runs one image command against the daemon behind `client`.
pub fn run(client: &Client, command: ImageCommand) -> Result<ExitCode> {
    match command {
        ImageCommand::Ls(a) => list(client, a),
        ImageCommand::Inspect(a) => inspect(client, a),
        ImageCommand::Tag(a) => tag(client, a),
        ImageCommand::Rm(a) => remove(client, a),
        ImageCommand::History(a) => history(client, a),
        ImageCommand::Prune(a) => prune(client, a),
        ImageCommand::Save(a) => save(client, a),
        ImageCommand::Load(a) => load(client, a),
        ImageCommand::Import(a) => import(client, a),
    }
}

// ---------------------------------------------------------------------------------

/// A query-string value, percent-encoded.
fn q(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A GET answered with JSON, read into `T`.
fn get<T: DeserializeOwned>(client: &Client, path: &str) -> Result<T> {
    serde_json::from_value(client.get_json(path)?).context("reading the daemon's answer")
}

/// Adds `value` under `key` in the API's `filters` JSON (`{"key":{"value":true}}`).
fn add_filter(filters: &mut Map<String, Value>, key: &str, value: &str) {
    let entry = filters
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = entry {
        m.insert(value.to_string(), Value::Bool(true));
    }
}

/// `-f key=value` flags as the API's `filters` JSON.
fn filters_json(filters: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for filter in filters {
        let (key, value) = filter
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        add_filter(&mut out, key, value);
    }
    Ok(out)
}

/// `filters=...` for a query string, or nothing.
fn filters_query(filters: &Map<String, Value>) -> String {
    if filters.is_empty() {
        String::new()
    } else {
        format!("filters={}", q(&Value::Object(filters.clone()).to_string()))
    }
}

/// One row of `docker images`: an image under one of its names.
fn image_rows(image: &ImageSummary, digests: bool, no_trunc: bool) -> Vec<Value> {
    let id = if no_trunc {
        image.id.clone()
    } else {
        image
            .id
            .strip_prefix("sha256:")
            .unwrap_or(&image.id)
            .chars()
            .take(12)
            .collect()
    };
    let digest_of = |repo: &str| {
        image
            .repo_digests
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, d)| d)
            })
            .unwrap_or("<none>")
            .to_string()
    };
    let row = |repo: &str, tag: &str, digest: String| {
        json!({
            "ID": id,
            "Repository": repo,
            "Tag": tag,
            "Digest": digest,
            "CreatedSince": ago(image.created),
            "CreatedAt": created_at(image.created),
            "Size": human_size(image.size),
            "VirtualSize": human_size(image.size),
            "SharedSize": if image.shared_size < 0 { "N/A".to_string() } else { human_size(image.shared_size) },
            "UniqueSize": if image.shared_size < 0 { "N/A".to_string() } else { human_size(image.size - image.shared_size) },
            "Containers": if image.containers < 0 { "N/A".to_string() } else { image.containers.to_string() },
        })
    };
    let mut rows = Vec::new();
    for tagged in &image.repo_tags {
        let (repo, tag) = split_tag(tagged);
        rows.push(row(repo, tag, digest_of(repo)));
    }
    if rows.is_empty() {
        for d in &image.repo_digests {
            let (repo, digest) = d.split_once('@').unwrap_or((d, "<none>"));
            rows.push(row(repo, "<none>", digest.to_string()));
        }
    }
    if rows.is_empty() {
        rows.push(row("<none>", "<none>", "<none>".to_string()));
    }
    if !digests {
        // Without --digests Docker shows one row per tag only.
        rows.dedup_by(|a, b| a["Repository"] == b["Repository"] && a["Tag"] == b["Tag"]);
    }
    rows
}

/// `repo:tag` → (`repo`, `tag`), minding a registry port (`host:5000/app:1`).
fn split_tag(name: &str) -> (&str, &str) {
    match name.rfind(':') {
        Some(i) if !name[i + 1..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "<none>"),
    }
}

/// Go's default time format, in UTC: `2024-01-02 03:04:05 +0000 UTC`.
pub(crate) fn created_at(unix: i64) -> String {
    let text = format_rfc3339(unix, 0);
    format!("{} {} +0000 UTC", &text[..10], &text[11..19])
}

fn header_name(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "CreatedBy" => "CREATED BY".into(),
        "VirtualSize" => "VIRTUAL SIZE".into(),
        "SharedSize" => "SHARED SIZE".into(),
        "UniqueSize" => "UNIQUE SIZE".into(),
        other => other.to_uppercase(),
    }
}

fn list(client: &Client, args: ListArgs) -> Result<ExitCode> {
    let mut filters = filters_json(&args.filters)?;
    if let Some(r) = &args.reference {
        add_filter(&mut filters, "reference", r);
    }
    let mut query = vec![filters_query(&filters)];
    if args.all {
        query.push("all=1".to_string());
    }
    if args.digests {
        query.push("digests=1".to_string());
    }
    query.retain(|p| !p.is_empty());
    let images: Vec<ImageSummary> = get(client, &format!("/images/json?{}", query.join("&")))?;
    let mut out = io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for image in &images {
            let id = if args.no_trunc {
                image.id.clone()
            } else {
                image
                    .id
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect()
            };
            if !seen.contains(&id) {
                writeln!(out, "{id}")?;
                seen.push(id);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let default = if args.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let template =
        Template::parse(args.format.as_deref().unwrap_or(default)).map_err(|e| anyhow!(e))?;
    let rows: Vec<Value> = images
        .iter()
        .flat_map(|i| image_rows(i, args.digests, args.no_trunc))
        .collect();
    out.write_all(render_all(&template, &rows, &header_name).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn inspect(client: &Client, args: InspectArgs) -> Result<ExitCode> {
    let template = args
        .format
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.images {
        match client.get_json(&format!("/images/{}/json", enc(name))) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    print_inspect(&found, template.as_ref())?;
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn tag(client: &Client, args: TagArgs) -> Result<ExitCode> {
    // The daemon splits `repo` into name and tag (and defaults the tag to `latest`).
    client
        .request(
            "POST",
            &format!(
                "/images/{}/tag?repo={}&tag=",
                enc(&args.source),
                q(&args.target)
            ),
            None,
        )?
        .check()?;
    Ok(ExitCode::SUCCESS)
}

fn remove(client: &Client, args: RemoveArgs) -> Result<ExitCode> {
    let mut failed = false;
    let mut out = io::stdout().lock();
    for name in &args.images {
        let path = format!(
            "/images/{}?force={}&noprune={}",
            enc(name),
            u8::from(args.force),
            u8::from(args.no_prune)
        );
        let answer = client
            .request("DELETE", &path, None)
            .and_then(|r| r.json())
            .and_then(|v| {
                serde_json::from_value::<Vec<DeleteItem>>(v).context("reading the daemon's answer")
            });
        match answer {
            Ok(items) => {
                for item in items {
                    if let Some(u) = item.untagged {
                        writeln!(out, "Untagged: {u}")?;
                    }
                    if let Some(d) = item.deleted {
                        writeln!(out, "Deleted: {d}")?;
                    }
                }
            }
            Err(e) => {
                out.flush()?;
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn history(client: &Client, args: HistoryArgs) -> Result<ExitCode> {
    let items: Vec<HistoryItem> = get(client, &format!("/images/{}/history", enc(&args.image)))?;
    let mut out = io::stdout().lock();
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let id = if h.id == "<missing>" || args.no_trunc {
                h.id.clone()
            } else {
                h.id.trim_start_matches("sha256:").chars().take(12).collect()
            };
            let created_by = h.created_by.replace('\t', " ");
            json!({
                "ID": id,
                "CreatedSince": if args.human { ago(h.created) } else { format_rfc3339(h.created, 0) },
                "CreatedAt": format_rfc3339(h.created, 0),
                "CreatedBy": if args.no_trunc { created_by } else { ellipsis(&created_by, 45) },
                "Size": if args.human { human_size(h.size) } else { h.size.to_string() },
                "Comment": h.comment,
            })
        })
        .collect();
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let default = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    let template =
        Template::parse(args.format.as_deref().unwrap_or(default)).map_err(|e| anyhow!(e))?;
    let names = |f: &str| match f {
        "ID" => "IMAGE".to_string(),
        other => header_name(other),
    };
    out.write_all(render_all(&template, &rows, &names).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn prune(client: &Client, args: PruneArgs) -> Result<ExitCode> {
    let mut filters = filters_json(&args.filters)?;
    if args.all {
        add_filter(&mut filters, "dangling", "false");
    }
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        print!("{warning}\nAre you sure you want to continue? [y/N] ");
        io::stdout().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let answer = client.post_json(&format!("/images/prune?{}", filters_query(&filters)), None)?;
    let report: PruneReport =
        serde_json::from_value(answer).context("reading the daemon's answer")?;
    let mut out = io::stdout().lock();
    if !report.images_deleted.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for item in &report.images_deleted {
            if let Some(u) = &item.untagged {
                writeln!(out, "untagged: {u}")?;
            }
            if let Some(d) = &item.deleted {
                writeln!(out, "deleted: {d}")?;
            }
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(report.space_reclaimed as i64)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Copies the archive `GET /images/get` answers into `writer`.
fn save_into(client: &Client, images: &[String], writer: &mut impl Write) -> Result<()> {
    let query: Vec<String> = images.iter().map(|n| format!("names={}", q(n))).collect();
    let mut body = client
        .request("GET", &format!("/images/get?{}", query.join("&")), None)?
        .check()?
        .body;
    io::copy(&mut body, writer).context("failed to save image")?;
    Ok(())
}

fn save(client: &Client, args: SaveArgs) -> Result<ExitCode> {
    match &args.output {
        Some(path) => {
            // Written beside the destination and renamed: a failed save leaves nothing.
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let temp = tempfile::Builder::new()
                .prefix(".pier-save-")
                .tempfile_in(dir)
                .with_context(|| format!("failed to save image: creating {}", path.display()))?;
            let mut writer = BufWriter::with_capacity(1 << 20, temp);
            save_into(client, &args.images, &mut writer)?;
            let temp = writer.into_inner().map_err(|e| e.into_error())?;
            temp.as_file().sync_all()?;
            // What a plain create would give (tempfile makes 0600).
            fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))?;
            temp.persist(path)
                .with_context(|| format!("failed to save image: writing {}", path.display()))?;
        }
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut writer = BufWriter::with_capacity(1 << 20, stdout.lock());
            save_into(client, &args.images, &mut writer)?;
            writer.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads Docker's JSON message stream: `stream` texts go to stdout, `status` texts
/// are returned, an `error` fails with its message.
fn json_messages(body: impl Read) -> Result<Vec<String>> {
    let mut statuses = Vec::new();
    let mut out = io::stdout().lock();
    for line in BufReader::new(body).lines() {
        let line = line.context("reading the daemon's answer")?;
        if line.trim().is_empty() {
            continue;
        }
        let message: Value =
            serde_json::from_str(line.trim()).context("reading the daemon's answer")?;
        if let Some(e) = message.get("error") {
            out.flush()?;
            let text = e.as_str().map_or_else(|| e.to_string(), str::to_string);
            bail!(text);
        }
        if let Some(text) = message["stream"].as_str() {
            out.write_all(text.as_bytes())?;
        }
        if let Some(status) = message["status"].as_str() {
            statuses.push(status.to_string());
        }
    }
    out.flush()?;
    Ok(statuses)
}

fn load(client: &Client, args: LoadArgs) -> Result<ExitCode> {
    let path = format!("/images/load?quiet={}", u8::from(args.quiet));
    let response = match &args.input {
        Some(file) => {
            let f = File::open(file).with_context(|| format!("open {}", file.display()))?;
            client.request_streaming("POST", &path, "application/x-tar", f)?
        }
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            client.request_streaming("POST", &path, "application/x-tar", stdin)?
        }
    };
    json_messages(response.check()?.body)?;
    Ok(ExitCode::SUCCESS)
}

fn import(client: &Client, args: ImportArgs) -> Result<ExitCode> {
    if let Some(r) = &args.reference {
        // As the docker CLI: a bad name fails before anything is sent.
        Reference::parse_with_default_tag(r)?;
    }
    if args.source.contains("://") {
        bail!("importing from a URL is not supported: {}", args.source);
    }
    let mut path = format!(
        "/images/create?fromSrc=-&repo={}&tag=",
        q(args.reference.as_deref().unwrap_or(""))
    );
    for change in &args.changes {
        path.push_str(&format!("&changes={}", q(change)));
    }
    let response = if args.source == "-" {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            bail!("requested import from stdin, but stdin is a terminal");
        }
        client.request_streaming("POST", &path, "application/x-tar", stdin)?
    } else {
        let source = Path::new(&args.source);
        let meta = fs::metadata(source).with_context(|| format!("open {}", source.display()))?;
        let file = if meta.is_dir() {
            // The temp file is unlinked when `tarball` drops; the open handle stays.
            let tarball = tar_directory(source)?;
            tarball.reopen()?
        } else {
            File::open(source).with_context(|| format!("open {}", source.display()))?
        };
        client.request_streaming("POST", &path, "application/x-tar", file)?
    };
    let statuses = json_messages(response.check()?.body)?;
    let mut out = io::stdout().lock();
    for status in statuses {
        writeln!(out, "{status}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A directory as a tar in a temp file: symlinks kept as links, ownership, modes and
/// xattrs kept.
fn tar_directory(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let temp = tempfile::NamedTempFile::new().context("creating a temp file for the import")?;
    let mut builder = tar::Builder::new(BufWriter::new(temp.reopen()?));
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    builder
        .append_dir_all(".", dir)
        .with_context(|| format!("reading {}", dir.display()))?;
    let mut writer = builder.into_inner()?;
    writer.flush()?;
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_past_registry_ports() {
        assert_eq!(split_tag("busybox:latest"), ("busybox", "latest"));
        assert_eq!(split_tag("host:5000/app:1"), ("host:5000/app", "1"));
        assert_eq!(split_tag("host:5000/app"), ("host:5000/app", "<none>"));
    }

    #[test]
    fn created_at_like_go() {
        assert_eq!(created_at(0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
