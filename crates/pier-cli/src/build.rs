//! `pier build`: docker's `build` command, over pierd's `POST /build`.
//!
//! The context directory is walked with the `.dockerignore` that applies to the
//! Dockerfile (`<Dockerfile>.dockerignore` first, as docker does) and streamed to the
//! daemon as a tar while it is read; a Dockerfile outside the context (or `-f -`) is
//! added to the tar under a name of its own, as the docker CLI does. The daemon's
//! progress stream is printed as docker prints it, followed on stderr by a summary:
//! the time taken and how many steps came from the cache.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use pier_dockerfile::ignore::{ignore_file_candidates, DockerIgnore};
use serde_json::Value;

use crate::client::Client;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile'); '-' reads it from stdin
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    network: String,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    add_hosts: Vec<String>,
    /// Size of /dev/shm (bytes, or with a unit: 64m)
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long = "ulimit")]
    ulimits: Vec<String>,
    /// Memory limit of the RUN containers
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// CPU shares (relative weight) of the RUN containers
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    force_rm: bool,
    /// Type of progress output (auto, plain, tty): the classic builder's step lines in
    /// every mode
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    progress: String,
    /// Say, for each step that runs, why it missed the cache (Pier's own flag)
    #[arg(long)]
    explain: bool,
    /// Secrets (BuildKit's --secret): refused, the classic protocol carries none
    #[arg(long)]
    secret: Vec<String>,
    /// Build context: a directory, or '-' for a tar on stdin
    path: String,
}

fn q(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `--shm-size 64m` → bytes (docker's RAMInBytes: binary units).
fn ram_in_bytes(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size: '{text}'"))?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0_f64.powi(4),
        _ => bail!("invalid size: '{text}'"),
    };
    Ok((n * mult) as i64)
}

/// The query string of the request.
fn query(args: &BuildArgs, dockerfile_name: &str) -> Result<String> {
    if !args.secret.is_empty() {
        bail!("--secret needs BuildKit's session protocol, which Pier's classic builder endpoint does not carry");
    }
    let mut p = vec![format!("dockerfile={}", q(dockerfile_name))];
    for t in &args.tags {
        p.push(format!("t={}", q(t)));
    }
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), Value::String(v.to_string()));
            }
            // `--build-arg NAME`: the value from the environment, as docker does.
            None => {
                let v = std::env::var(a).map(Value::String).unwrap_or(Value::Null);
                build_args.insert(a.clone(), v);
            }
        }
    }
    p.push(format!(
        "buildargs={}",
        q(&serde_json::to_string(&build_args)?)
    ));
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    p.push(format!("labels={}", q(&serde_json::to_string(&labels)?)));
    if let Some(t) = &args.target {
        p.push(format!("target={}", q(t)));
    }
    if args.no_cache {
        p.push("nocache=1".into());
    }
    if args.pull {
        p.push("pull=1".into());
    }
    if args.quiet {
        p.push("q=1".into());
    }
    p.push(format!("rm={}", u8::from(args.rm)));
    if args.force_rm {
        p.push("forcerm=1".into());
    }
    if args.explain {
        p.push("explain=1".into());
    }
    p.push(format!("networkmode={}", q(&args.network)));
    if !args.add_hosts.is_empty() {
        p.push(format!(
            "extrahosts={}",
            q(&serde_json::to_string(&args.add_hosts)?)
        ));
    }
    if let Some(s) = &args.shm_size {
        p.push(format!("shmsize={}", ram_in_bytes(s)?));
    }
    if let Some(m) = &args.memory {
        p.push(format!("memory={}", ram_in_bytes(m)?));
    }
    if let Some(c) = args.cpu_shares {
        p.push(format!("cpushares={c}"));
    }
    if !args.ulimits.is_empty() {
        let mut list = Vec::new();
        for u in &args.ulimits {
            let (name, limits) = u
                .split_once('=')
                .with_context(|| format!("invalid ulimit argument: {u}"))?;
            let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
            let soft: i64 = soft
                .parse()
                .with_context(|| format!("invalid ulimit argument: {u}"))?;
            let hard: i64 = hard
                .parse()
                .with_context(|| format!("invalid ulimit argument: {u}"))?;
            list.push(serde_json::json!({ "Name": name, "Soft": soft, "Hard": hard }));
        }
        p.push(format!("ulimits={}", q(&serde_json::to_string(&list)?)));
    }
    if let Some(pl) = &args.platform {
        p.push(format!("platform={}", q(pl)));
    }
    Ok(p.join("&"))
}

/// Appends `dir` (the context path `rel`) to `tar`, minus what `ignore` excludes.
fn append_dir(
    tar: &mut tar::Builder<impl Write>,
    dir: &Path,
    rel: &str,
    ignore: Option<&DockerIgnore>,
    skip_dockerignore: bool,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(entry.path())?;
        if skip_dockerignore && child_rel == ".dockerignore" {
            continue;
        }
        let excluded = ignore.is_some_and(|i| i.excludes(&child_rel));
        if excluded && (!meta.is_dir() || ignore.is_some_and(|i| i.can_skip_dir(&child_rel))) {
            continue;
        }
        if !excluded {
            tar.append_path_with_name(entry.path(), &child_rel)?;
        }
        if meta.is_dir() {
            append_dir(tar, &entry.path(), &child_rel, ignore, false)?;
        }
    }
    Ok(())
}

/// Writes the context tar of `dir` into `out`, with `extra` (a Dockerfile kept
/// outside the context) added under its name.
/// As the docker CLI, the added Dockerfile is also listed in the context's
/// `.dockerignore` (with `.dockerignore` itself), so the daemon drops both once read
/// and `COPY . …` does not copy them.
fn write_context(
    out: impl Write,
    dir: &Path,
    ignore: Option<&DockerIgnore>,
    extra: Option<(&str, &[u8])>,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    append_dir(&mut tar, dir, "", ignore, extra.is_some())?;
    if let Some((name, bytes)) = extra {
        let mut ignore_text = fs::read(dir.join(".dockerignore")).unwrap_or_default();
        ignore_text.extend_from_slice(format!("\n{name}\n.dockerignore\n").as_bytes());
        for (entry_name, data) in [(".dockerignore", ignore_text.as_slice()), (name, bytes)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            tar.append_data(&mut h, entry_name, data)?;
        }
    }
    tar.into_inner()?.flush()
}

pub fn build(client: &Client, args: BuildArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // A URL context is the daemon's to fetch (`remote=`), as dockerd does for API
    // clients.
    let remote = ["http://", "https://", "git://", "git@"]
        .iter()
        .any(|p| args.path.starts_with(p));
    if remote {
        let path = format!(
            "/build?{}&remote={}",
            query(&args, args.file.as_deref().unwrap_or("Dockerfile"))?,
            q(&args.path)
        );
        let response = client.request_streaming("POST", &path, "application/x-tar", io::empty())?;
        return print_progress(&args, response.check()?.body, started);
    }
    let stdin_context = args.path == "-";
    // Which Dockerfile, and whether it travels inside the context.
    let mut extra: Option<(String, Vec<u8>)> = None;
    let mut dockerfile_name = "Dockerfile".to_string();
    let context_dir = PathBuf::from(&args.path);
    if !stdin_context {
        let meta = fs::metadata(&context_dir).with_context(|| {
            format!(
                "unable to prepare context: path \"{}\" not found",
                args.path
            )
        })?;
        if !meta.is_dir() {
            bail!(
                "unable to prepare context: context must be a directory: {}",
                args.path
            );
        }
    }
    match args.file.as_deref() {
        Some("-") => {
            if stdin_context {
                bail!("invalid argument: can't use stdin for both build context and dockerfile");
            }
            let mut bytes = Vec::new();
            io::stdin().read_to_end(&mut bytes)?;
            dockerfile_name = format!(".dockerfile.{:x}", std::process::id());
            extra = Some((dockerfile_name.clone(), bytes));
        }
        Some(f) if !stdin_context => {
            let path = Path::new(f);
            let abs = if path.is_absolute() {
                path.to_path_buf()
            } else {
                std::env::current_dir()?.join(path)
            };
            let ctx_abs = fs::canonicalize(&context_dir)?;
            let file_abs = fs::canonicalize(&abs)
                .with_context(|| format!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {f}: no such file or directory"))?;
            match file_abs.strip_prefix(&ctx_abs) {
                Ok(rel) => dockerfile_name = rel.to_string_lossy().into_owned(),
                Err(_) => {
                    dockerfile_name = format!(".dockerfile.{:x}", std::process::id());
                    extra = Some((dockerfile_name.clone(), fs::read(&file_abs)?));
                }
            }
        }
        Some(f) => dockerfile_name = f.to_string(),
        None => {}
    }
    let path = format!("/build?{}", query(&args, &dockerfile_name)?);
    let response = if stdin_context {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            bail!("requested build context from stdin, but stdin is a terminal");
        }
        client.request_streaming("POST", &path, "application/x-tar", stdin)?
    } else {
        let mut ignore = None;
        for candidate in ignore_file_candidates(&dockerfile_name) {
            if let Ok(text) = fs::read_to_string(context_dir.join(&candidate)) {
                // The Dockerfile and the ignore file are always sent (the daemon drops
                // them after reading if the patterns exclude them), as by the docker CLI.
                let parsed = DockerIgnore::parse(&text)
                    .map_err(|e| anyhow::anyhow!("failed to parse {candidate}: {}", e.message))?;
                let dockerfile = extra.is_none().then_some(dockerfile_name.as_str());
                ignore = Some(parsed.keeping_build_files(dockerfile));
                break;
            }
        }
        let (reader, writer) = rustix::pipe::pipe().context("making a pipe")?;
        let dir = context_dir.clone();
        let producer = std::thread::spawn(move || {
            let out = io::BufWriter::with_capacity(256 * 1024, File::from(writer));
            let extra_ref = extra.as_ref().map(|(n, b)| (n.as_str(), b.as_slice()));
            write_context(out, &dir, ignore.as_ref(), extra_ref)
        });
        let response =
            client.request_streaming("POST", &path, "application/x-tar", File::from(reader));
        match producer.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Ok(Err(e)) => return Err(anyhow::Error::from(e).context("reading the build context")),
            Err(_) => bail!("reading the build context failed"),
        }
        response?
    };
    print_progress(&args, response.check()?.body, started)
}

/// Prints the daemon's progress stream as docker does, then the summary; the exit code
/// is a failed step's.
fn print_progress(args: &BuildArgs, body: impl io::Read, started: Instant) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    let mut image_id = None;
    let (mut steps, mut cached) = (0usize, 0usize);
    let mut slowest: Option<(f64, String)> = None;
    let mut step_started: Option<(Instant, String)> = None;
    let mut finish_step = |current: &mut Option<(Instant, String)>| {
        if let Some((t, line)) = current.take() {
            let secs = t.elapsed().as_secs_f64();
            if slowest.as_ref().is_none_or(|(s, _)| secs > *s) {
                slowest = Some((secs, line));
            }
        }
    };
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
            eprintln!("{text}");
            let code = message["errorDetail"]["code"].as_i64().unwrap_or(1);
            return Ok(ExitCode::from(
                u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1),
            ));
        }
        if let Some(id) = message["aux"]["ID"].as_str() {
            image_id = Some(id.to_string());
        }
        if let Some(text) = message["stream"].as_str() {
            for l in text.lines() {
                if l.starts_with("Step ") {
                    finish_step(&mut step_started);
                    steps += 1;
                    step_started = Some((Instant::now(), l.to_string()));
                } else if l.contains(" ---> Using cache") {
                    cached += 1;
                }
            }
            if !args.quiet {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
        }
    }
    finish_step(&mut step_started);
    let Some(id) = image_id else {
        bail!("the daemon's answer ended without an image ID");
    };
    if args.quiet {
        writeln!(out, "{id}")?;
    }
    if let Some(file) = &args.iidfile {
        fs::write(file, &id).with_context(|| format!("writing {}", file.display()))?;
        let _ = fs::set_permissions(file, fs::Permissions::from_mode(0o644));
    }
    if !args.quiet {
        let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
        let mut summary = format!(
            "pier: built {short} in {:.2}s: {steps} step{}, {cached} from the cache",
            started.elapsed().as_secs_f64(),
            if steps == 1 { "" } else { "s" }
        );
        if let Some((secs, line)) = slowest.filter(|(s, _)| *s >= 0.5) {
            summary.push_str(&format!("; slowest {line} ({secs:.2}s)"));
        }
        eprintln!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}
