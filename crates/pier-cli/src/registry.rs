//! The registry commands: `pull`, `push`, `login`, `logout`, and the pull that `run`
//! and `create` do for a missing image.
//!
//! Credentials live where the docker CLI keeps them, `$DOCKER_CONFIG/config.json`
//! (default `~/.docker/config.json`): `auths` entries with `user:password` in base64,
//! or a credential helper (`credsStore`, per registry `credHelpers`) spoken to with
//! the `docker-credential-*` protocol (`get`/`store`/`erase`, JSON on stdin/stdout).
//! The daemon gets them per request in `X-Registry-Auth`, as from the docker CLI.
//!
//! Progress is Docker's JSON message stream: on a terminal one line per layer,
//! redrawn in place with a bar, bytes, speed and time left; otherwise the plain
//! status lines docker prints (byte-count updates left out).

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use pier_image::reference::Reference;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::containers::enc;

/// Docker Hub's key in `config.json` (what `docker login` without a server uses).
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    name: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "NAME[:TAG]")]
    name: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    #[arg(value_name = "SERVER")]
    server: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[arg(value_name = "SERVER")]
    server: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Credentials

/// `config.json`, the parts read here; everything else is kept as is.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DockerConfig {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    auths: Map<String, Value>,
    #[serde(
        rename = "credsStore",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    creds_store: Option<String>,
    #[serde(
        rename = "credHelpers",
        default,
        skip_serializing_if = "HashMap::is_empty"
    )]
    cred_helpers: HashMap<String, String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".docker")
}

fn load_config() -> Result<DockerConfig> {
    let path = config_dir().join("config.json");
    match fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(DockerConfig::default()),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("loading config file {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DockerConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `config.json` atomically (temp file, rename), private to the user.
fn save_config(config: &DockerConfig) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = config_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("config.json");
    let temp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(config)?)?;
    f.sync_all()?;
    fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The `config.json` key of the registry an image name lives on.
fn server_key(domain: &str) -> String {
    if domain == "docker.io" {
        DOCKER_HUB_SERVER.to_string()
    } else {
        domain.to_string()
    }
}

/// What a login stores and `X-Registry-Auth` carries.
#[derive(Debug, Default, Serialize)]
struct AuthConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    serveraddress: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    identitytoken: String,
}

/// A credential helper's `get` answer.
#[derive(Debug, Deserialize)]
struct HelperCredentials {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

fn helper_for<'a>(config: &'a DockerConfig, server: &str) -> Option<&'a str> {
    config
        .cred_helpers
        .get(server)
        .or(config.creds_store.as_ref())
        .map(String::as_str)
        .filter(|h| !h.is_empty())
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, input: &str) -> Result<String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("error getting credentials - err: exec: \"{program}\": executable file not found in $PATH"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        bail!("{program} {action}: {stdout}");
    }
    Ok(stdout)
}

/// The stored credentials for a registry (anonymous if none).
fn credentials(server: &str) -> Result<AuthConfig> {
    let config = load_config()?;
    let mut auth = AuthConfig {
        serveraddress: server.to_string(),
        ..AuthConfig::default()
    };
    if let Some(helper) = helper_for(&config, server) {
        let Ok(answer) = run_helper(helper, "get", server) else {
            // Not stored: anonymous, as docker.
            return Ok(auth);
        };
        let creds: HelperCredentials =
            serde_json::from_str(&answer).context("reading the credential helper's answer")?;
        if creds.username == "<token>" {
            auth.identitytoken = creds.secret;
        } else {
            auth.username = creds.username;
            auth.password = creds.secret;
        }
        return Ok(auth);
    }
    if let Some(entry) = config.auths.get(server) {
        if let Some(encoded) = entry["auth"].as_str() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .context("invalid auth configuration file")?;
            let text = String::from_utf8_lossy(&decoded).to_string();
            if let Some((user, pass)) = text.split_once(':') {
                auth.username = user.to_string();
                auth.password = pass.trim_end_matches('\n').to_string();
            }
        }
        if let Some(token) = entry["identitytoken"].as_str() {
            auth.identitytoken = token.to_string();
        }
    }
    Ok(auth)
}

/// The `X-Registry-Auth` value for an image name's registry.
fn registry_auth_header(reference: &Reference) -> Result<String> {
    let auth = credentials(&server_key(reference.domain()))?;
    Ok(base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&auth)?))
}

/// A client that sends the credentials for `reference`'s registry.
fn authed(client: &Client, reference: &Reference) -> Result<Client> {
    Ok(client.with_header("X-Registry-Auth", &registry_auth_header(reference)?))
}

// ---------------------------------------------------------------------------------------
// login / logout

/// A `login` server argument as the key docker stores it under.
fn login_server(server: Option<&str>) -> String {
    match server {
        None | Some("") => DOCKER_HUB_SERVER.to_string(),
        Some(s) => {
            let bare = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"))
                .unwrap_or(s);
            let host = bare.split('/').next().unwrap_or(bare);
            if matches!(
                host,
                "docker.io" | "index.docker.io" | "registry-1.docker.io"
            ) {
                DOCKER_HUB_SERVER.to_string()
            } else {
                host.to_string()
            }
        }
    }
}

pub fn login(client: &Client, args: LoginArgs) -> Result<ExitCode> {
    let server = login_server(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let password = if args.password_stdin {
        if args.username.is_none() {
            bail!("Must provide --username with --password-stdin");
        }
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        bail!("Error: Cannot perform an interactive login from a non TTY device");
    };
    let username = args.username.ok_or_else(|| {
        anyhow!("Error: Cannot perform an interactive login from a non TTY device")
    })?;
    let body = json!({
        "username": username,
        "password": password,
        "serveraddress": server,
    });
    let answer = client.post_json("/auth", Some(&body))?;
    let mut config = load_config()?;
    if let Some(helper) = helper_for(&config, &server).map(str::to_string) {
        let input = json!({ "ServerURL": server, "Username": username, "Secret": password });
        run_helper(&helper, "store", &input.to_string())
            .with_context(|| format!("Error saving credentials: {helper}"))?;
    } else {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        config
            .auths
            .insert(server.clone(), json!({ "auth": encoded }));
        save_config(&config)?;
        eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.",
            config_dir().join("config.json").display()
        );
    }
    println!("{}", answer["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(ExitCode::SUCCESS)
}

pub fn logout(args: LogoutArgs) -> Result<ExitCode> {
    let server = login_server(args.server.as_deref());
    let mut config = load_config()?;
    let helper = helper_for(&config, &server).map(str::to_string);
    let stored = config.auths.contains_key(&server);
    if helper.is_none() && !stored {
        println!("Not logged in to {server}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Removing login credentials for {server}");
    if let Some(helper) = helper {
        if let Err(e) = run_helper(&helper, "erase", &server) {
            eprintln!("WARNING: could not erase credentials: {e:#}");
        }
    }
    if config.auths.remove(&server).is_some() {
        save_config(&config)?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// pull / push

pub fn pull(client: &Client, args: PullArgs) -> Result<ExitCode> {
    let reference = Reference::parse(&args.name)?;
    if args.all_tags && (reference.tag().is_some() || reference.digest().is_some()) {
        bail!("tag can't be used with --all-tags/-a");
    }
    let reference = if args.all_tags || reference.digest().is_some() {
        reference
    } else {
        Reference::parse_with_default_tag(&args.name)?
    };
    if !args.all_tags
        && !args.quiet
        && reference.tag() == Some("latest")
        && !args.name.contains(':')
    {
        println!("Using default tag: latest");
    }
    let mut out = io::stdout().lock();
    pull_reference(
        client,
        &reference,
        args.platform.as_deref(),
        args.quiet,
        &mut out,
    )?;
    // As docker, quiet or not: the full name pulled.
    writeln!(out, "{reference}")?;
    Ok(ExitCode::SUCCESS)
}

/// Pulls `reference` (no tag: every tag), rendering progress to `out` unless quiet.
pub fn pull_reference(
    client: &Client,
    reference: &Reference,
    platform: Option<&str>,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let repository = reference.repository();
    let tag = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => String::new(),
    };
    let mut path = format!(
        "/images/create?fromImage={}&tag={}",
        enc(&repository),
        enc(&tag)
    );
    if let Some(p) = platform {
        path.push_str(&format!("&platform={}", enc(p)));
    }
    let response = authed(client, reference)?
        .request("POST", &path, None)?
        .check()?;
    let terminal = !quiet && io::stdout().is_terminal();
    render_progress(response.body, out, quiet, terminal)
}

pub fn push(client: &Client, args: PushArgs) -> Result<ExitCode> {
    let reference = Reference::parse(&args.name)?;
    if args.all_tags && reference.tag().is_some() {
        bail!("tag can't be used with --all-tags/-a");
    }
    let reference = if args.all_tags {
        reference
    } else {
        if reference.tag().is_none() && !args.quiet {
            println!("Using default tag: latest");
        }
        Reference::parse_with_default_tag(&args.name)?
    };
    let path = format!(
        "/images/{}/push?tag={}",
        reference.repository(),
        enc(reference.tag().unwrap_or(""))
    );
    let response = authed(client, &reference)?
        .request("POST", &path, None)?
        .check()?;
    let mut out = io::stdout().lock();
    let terminal = !args.quiet && io::stdout().is_terminal();
    render_progress(response.body, &mut out, args.quiet, terminal)?;
    if args.quiet {
        writeln!(out, "{}", reference.familiar())?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// Progress

/// One message of the stream, the fields shown.
#[derive(Debug, Default, Deserialize)]
struct Message {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "progressDetail", default)]
    detail: Option<Detail>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(rename = "errorDetail", default)]
    error_detail: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Detail {
    #[serde(default)]
    current: Option<u64>,
    #[serde(default)]
    total: Option<u64>,
}

/// A layer line on a terminal: its row, and when (and at which byte count) its current
/// status (`Downloading`, `Extracting`) started, for speed and time left.
struct Row {
    index: usize,
    started: Option<(String, Instant, u64)>,
}

/// Renders Docker's JSON message stream; the stream's error is returned as the error.
fn render_progress(
    body: impl Read,
    out: &mut dyn Write,
    quiet: bool,
    terminal: bool,
) -> Result<()> {
    let mut rows: HashMap<String, Row> = HashMap::new();
    let mut count = 0usize;
    for line in BufReader::new(body).lines() {
        let line = line.context("reading the daemon's answer")?;
        if line.trim().is_empty() {
            continue;
        }
        let m: Message =
            serde_json::from_str(line.trim()).context("reading the daemon's answer")?;
        if let Some(e) = m
            .error
            .as_ref()
            .or(m.error_detail.as_ref().map(|d| &d["message"]))
        {
            out.flush()?;
            bail!(e.as_str().map_or_else(|| e.to_string(), str::to_string));
        }
        if quiet {
            continue;
        }
        let Some(status) = m.status.as_deref() else {
            continue;
        };
        let bytes = m
            .detail
            .as_ref()
            .and_then(|d| Some((d.current?, d.total.unwrap_or(0))));
        let Some(id) = m.id.as_deref().filter(|_| m.detail.is_some()) else {
            // A line of its own (`Pulling from`, `Digest:`, `Status:`).
            match m.id.as_deref() {
                Some(id) => writeln!(out, "{id}: {status}")?,
                None => writeln!(out, "{status}")?,
            }
            if terminal {
                // Later layer lines go below this one.
                rows.clear();
                count = 0;
            }
            continue;
        };
        if !terminal {
            if bytes.is_none() {
                writeln!(out, "{id}: {status}")?;
            }
            continue;
        }
        let text = match bytes {
            Some((current, total)) => {
                let row = rows.get_mut(id);
                let started = match row.as_ref().and_then(|r| r.started.clone()) {
                    Some((s, at, from)) if s == status => (at, from),
                    _ => (Instant::now(), current),
                };
                if let Some(r) = row {
                    r.started = Some((status.to_string(), started.0, started.1));
                }
                format!("{id}: {status} {}", bar_text(current, total, started))
            }
            None => format!("{id}: {status}"),
        };
        match rows.get(id) {
            Some(row) => {
                // Up to the layer's line, rewrite it, back down.
                let up = count - row.index;
                write!(out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")?;
            }
            None => {
                rows.insert(
                    id.to_string(),
                    Row {
                        index: count,
                        started: None,
                    },
                );
                count += 1;
                writeln!(out, "{text}")?;
            }
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(())
}

/// `[=====>     ]  12.3MB/45.6MB  4.1MB/s  8s`.
fn bar_text(current: u64, total: u64, started: (Instant, u64)) -> String {
    const WIDTH: u64 = 40;
    if total == 0 {
        return crate::output::human_size(current as i64);
    }
    let filled = (current.min(total) * WIDTH) / total;
    let mut bar = "=".repeat(filled as usize);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat((WIDTH - filled - 1) as usize));
    }
    let elapsed = started.0.elapsed().as_secs_f64();
    let moved = current.saturating_sub(started.1) as f64;
    let speed = if elapsed > 0.2 { moved / elapsed } else { 0.0 };
    let rate = if speed > 0.0 {
        let left = total.saturating_sub(current) as f64 / speed;
        format!(
            "  {}/s  {}s",
            crate::output::human_size(speed as i64),
            left.ceil() as u64
        )
    } else {
        String::new()
    };
    format!(
        "[{bar}] {}/{}{rate}",
        crate::output::human_size(current as i64),
        crate::output::human_size(total as i64)
    )
}

// ---------------------------------------------------------------------------------------
// run / create

/// `--pull` of `run` and `create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
}

/// Pulls `image` for `run`/`create` as the docker CLI does: progress on stderr,
/// after "Unable to find image ... locally" when it was missing.
pub fn pull_for_create(
    client: &Client,
    image: &str,
    platform: Option<&str>,
    missing: bool,
) -> Result<()> {
    let reference = Reference::parse_with_default_tag(image)?;
    let mut err = io::stderr().lock();
    if missing {
        writeln!(
            err,
            "Unable to find image '{}' locally",
            reference.familiar()
        )?;
    }
    pull_reference(client, &reference, platform, false, &mut err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_servers_as_docker_keys_them() {
        assert_eq!(login_server(None), DOCKER_HUB_SERVER);
        assert_eq!(login_server(Some("docker.io")), DOCKER_HUB_SERVER);
        assert_eq!(
            login_server(Some("http://127.0.0.1:5000/v2/")),
            "127.0.0.1:5000"
        );
        assert_eq!(server_key("docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(server_key("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn plain_output_skips_byte_counts() {
        let stream = concat!(
            "{\"status\":\"Pulling from x\",\"id\":\"1\"}\r\n",
            "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"abc\"}\r\n",
            "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2},\"id\":\"abc\"}\r\n",
            "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"abc\"}\r\n",
            "{\"status\":\"Digest: sha256:1\"}\r\n",
        );
        let mut out = Vec::new();
        render_progress(stream.as_bytes(), &mut out, false, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1: Pulling from x\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:1\n"
        );
        let failing = "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n";
        let err = render_progress(failing.as_bytes(), &mut Vec::new(), false, false).unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }
}
