//! `exec` and `run`: a command in a service's container, or in a new one-off
//! container of the service. The interactive session itself (stdin, a raw terminal
//! with its size followed, detach keys, the exit code) is `pier exec` / `pier start
//! -a -i`'s: pier compose runs the `pier` binary it is part of for it, rather than
//! keeping a second copy of that machinery.

use std::io::{IsTerminal, Read};
use std::process::{Command, ExitCode};
use std::sync::Arc;

use clap::Args;

use super::{connect, load, project_name, CommandResult, Failure};
use crate::engine::converge::{self, UpOptions};
use crate::engine::create::{create_request, image_reference, ContainerSpec};
use crate::engine::{labels, Progress};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Disable pseudo-TTY allocation. By default `exec` allocates a TTY when its input is a terminal
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Run the command as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    pub service: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run as specified username or uid
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Disable pseudo-TTY allocation (default: a TTY when the input is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(long)]
    pub service_ports: bool,
    /// Add or override a label
    #[arg(short = 'l', long = "label", value_name = "KEY=VAL")]
    pub labels: Vec<String>,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `pier <args>`: the binary this command runs in.
fn pier(args: &[String]) -> Result<ExitCode, Failure> {
    let exe = std::env::current_exe()?;
    let status = Command::new(exe).args(args).status()?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

fn wants_tty(no_tty: bool) -> bool {
    !no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

pub async fn run_exec(args: &crate::cli::ComposeArgs, e: &ExecArgs) -> CommandResult {
    let project = project_name(args)?;
    let engine = connect()?;
    let containers = converge::service_containers(&engine, &project, &e.service).await?;
    let Some(c) = containers
        .iter()
        .find(|c| c.label(labels::CONTAINER_NUMBER) == e.index.to_string())
    else {
        return Err(format!("service {:?} is not running", e.service).into());
    };
    if c.state != "running" {
        return Err(format!("service {:?} is not running", e.service).into());
    }
    let mut argv: Vec<String> = vec!["exec".into()];
    if e.detach {
        argv.push("-d".into());
    } else {
        argv.push("-i".into());
    }
    if wants_tty(e.no_tty) && !e.detach {
        argv.push("-t".into());
    }
    for env in &e.env {
        argv.extend(["-e".into(), env.clone()]);
    }
    if e.privileged {
        argv.push("--privileged".into());
    }
    if let Some(u) = &e.user {
        argv.extend(["-u".into(), u.clone()]);
    }
    if let Some(w) = &e.workdir {
        argv.extend(["-w".into(), w.clone()]);
    }
    argv.push(c.id.clone());
    argv.extend(e.command.iter().cloned());
    pier(&argv)
}

/// 64 random hex digits, as compose's one-off slug.
fn slug() -> Result<String, Failure> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub async fn run_run(args: &crate::cli::ComposeArgs, r: &RunArgs) -> CommandResult {
    let project = Arc::new(load(args)?);
    let engine = connect()?;
    let progress = Progress::default();
    let Some(base) = project.services.get(&r.service) else {
        return Err(format!("no such service: {}", r.service).into());
    };
    // Dependencies first, as `up` would start them.
    let deps: Vec<String> = base
        .depends_on
        .keys()
        .filter(|d| project.services.contains_key(*d))
        .cloned()
        .collect();
    if !r.no_deps && !deps.is_empty() {
        let options = UpOptions {
            services: deps,
            ..UpOptions::default()
        };
        converge::up(&engine, project.clone(), &options, &progress).await?;
    }
    let mut service = base.clone();
    if !r.command.is_empty() {
        service.command = Some(r.command.clone());
    }
    if let Some(ep) = &r.entrypoint {
        service.entrypoint = Some(
            shlex::split(ep)
                .ok_or_else(|| Failure::from(format!("invalid --entrypoint {ep:?}")))?,
        );
    }
    for e in &r.env {
        match e.split_once('=') {
            Some((k, v)) => service.environment.insert(k.into(), Some(v.into())),
            None => service.environment.insert(e.clone(), std::env::var(e).ok()),
        };
    }
    for l in &r.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        service.labels.insert(k.into(), v.into());
    }
    if let Some(u) = &r.user {
        service.user = u.clone();
    }
    if let Some(w) = &r.workdir {
        service.working_dir = w.clone();
    }
    if !r.service_ports {
        service.ports.clear();
    }
    // A one-off container is not restarted, and keeps its input open.
    service.restart.clear();
    if let Some(d) = service.deploy.as_mut() {
        d.restart_policy = None;
    }
    service.stdin_open = true;
    service.tty = wants_tty(r.no_tty) && !r.detach;
    let slug = slug()?;
    let name = r
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{}", project.name, r.service, &slug[..12]));
    let reference = image_reference(&project, &service);
    let image = engine
        .image(&reference)
        .await?
        .ok_or_else(|| Failure::from(format!("No such image: {reference}")))?;
    let spec = ContainerSpec {
        project: &project,
        service: &service,
        number: 1,
        name: name.clone(),
        image_id: image.id,
        oneoff: true,
    };
    let mut body = create_request(&spec)?;
    if let Some(labels_map) = body.config.labels.as_mut() {
        labels_map.insert(labels::SLUG.into(), slug);
    }
    body.config.attach_stdin = Some(true);
    let id = engine.create_container(&name, &body).await?;
    if r.detach {
        engine.start(&id).await?;
        println!("{name}");
        return Ok(ExitCode::SUCCESS);
    }
    let code = pier(&["start".into(), "-a".into(), "-i".into(), id.clone()]);
    if r.rm {
        let _ = engine.remove_container(&id, true, true).await;
    }
    code
}
