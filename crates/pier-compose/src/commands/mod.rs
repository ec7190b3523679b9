//! `pier compose` commands that act on an engine: `up`, `create`, `down`, `ps`,
//! `logs`, `start`, `stop`, `restart`, `kill`, `rm`, `pause`, `unpause`, `ls`,
//! `version`. Each loads the project (as `config` does), connects to the engine
//! (`PIER_HOST`, else `DOCKER_HOST`, else pier's socket) and runs on a
//! current-thread runtime; independent services are handled concurrently.

mod exec;
mod logs;
mod ps;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::cli::ComposeArgs;
use crate::engine::api::Engine;
use crate::engine::converge::{self, DownOptions, UpOptions};
use crate::engine::{labels, Progress};
use crate::Project;

/// The socket `pier` talks to unless told otherwise.
const DEFAULT_HOST: &str = "unix:///run/pier/pier.sock";

/// The engine commands (flattened into `pier compose`'s subcommands).
#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Create and start containers
    Up(UpArgs),
    /// Creates containers for a service
    Create(CreateArgs),
    /// Stop and remove containers, networks
    Down(DownArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// View output from containers
    Logs(logs::LogsArgs),
    /// Start services
    Start(ServicesArgs),
    /// Stop services
    Stop(StopArgs),
    /// Restart service containers
    Restart(StopArgs),
    /// Force stop service containers
    Kill(KillArgs),
    /// Removes stopped service containers
    Rm(RmArgs),
    /// Pause services
    Pause(ServicesArgs),
    /// Unpause services
    Unpause(ServicesArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Run a one-off command on a service
    Run(exec::RunArgs),
    /// List running compose projects
    Ls(LsArgs),
    /// Print the public port for a port binding
    Port(ps::PortArgs),
    /// Display the running processes
    Top(ServicesArgs),
    /// List images used by the created containers
    Images(ps::ImagesArgs),
    /// Show the Docker Compose version information
    Version(VersionArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detached mode: Run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Wait for services to be running|healthy. Implies detached mode.
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration to wait for the project to be running|healthy (seconds)
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    #[command(flatten)]
    pub create: ConvergeArgs,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long)]
    pub no_start: bool,
    /// Stops all containers if any container was stopped
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Return the exit code of the selected service container. Implies --abort-on-container-exit
    #[arg(long, value_name = "SERVICE")]
    pub exit_code_from: Option<String>,
    /// Build images before starting containers (refused: see the message)
    #[arg(long)]
    pub build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long)]
    pub no_build: bool,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Pull without printing progress information
    #[arg(long)]
    pub quiet_pull: bool,
    /// Use this timeout in seconds for container shutdown when attached or when containers are already running
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

/// The flags `up` and `create` share.
#[derive(Debug, Args)]
pub struct ConvergeArgs {
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long, conflicts_with = "force_recreate")]
    pub no_recreate: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub create: ConvergeArgs,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file and anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")
    #[arg(long, value_parser = ["local", "all"])]
    pub rmi: Option<String>,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    #[arg(long)]
    pub remove_orphans: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal (pier compose never asks)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format the output. Values: [table | json]
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Shows only Compose's version number
    #[arg(long)]
    pub short: bool,
    /// Format the output. Values: [pretty | json]
    #[arg(short = 'f', long, default_value = "pretty")]
    pub format: String,
}

/// What a command failed with, and the exit code to leave with.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

type CommandResult = Result<ExitCode, Failure>;

/// Runs an engine command.
pub fn run(args: &ComposeArgs, command: &EngineCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(args, command)) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn connect() -> Result<Engine, Failure> {
    let host = std::env::var("PIER_HOST").ok().filter(|h| !h.is_empty());
    let mut config = pier_api::client::Config::from_env(DEFAULT_HOST)?;
    if let Some(h) = host {
        config.host = pier_api::client::Host::parse(&h)?;
    }
    Ok(Engine::new(pier_api::client::Client::new(config)?))
}

fn load(args: &ComposeArgs) -> Result<Project, Failure> {
    let options = args.load_options()?;
    let (project, warnings) = crate::loader::load_with_warnings(&options)?;
    for w in &warnings.0 {
        eprintln!("WARN[0000] {w}");
    }
    Ok(project)
}

/// The project name alone (for commands that work without a compose file: `-p`).
fn project_name(args: &ComposeArgs) -> Result<String, Failure> {
    match load(args) {
        Ok(p) => Ok(p.name),
        Err(e) => match &args.project_name {
            Some(name) => Ok(name.clone()),
            None => Err(e),
        },
    }
}

fn parse_scale(items: &[String]) -> Result<BTreeMap<String, u32>, Failure> {
    let mut scale = BTreeMap::new();
    for item in items {
        let (name, n) = item.split_once('=').ok_or_else(|| {
            Failure::from(format!("invalid --scale {item:?}: expected SERVICE=NUM"))
        })?;
        let n: u32 = n
            .parse()
            .map_err(|_| Failure::from(format!("invalid --scale {item:?}: NUM is not a number")))?;
        scale.insert(name.to_string(), n);
    }
    Ok(scale)
}

async fn dispatch(args: &ComposeArgs, command: &EngineCommand) -> CommandResult {
    let progress = Progress::default();
    match command {
        EngineCommand::Version(v) => {
            let version = format!("v{}", labels::CONTRACT_VERSION);
            if v.short {
                println!("{}", labels::CONTRACT_VERSION);
            } else if v.format == "json" {
                println!("{}", serde_json::json!({ "version": version }));
            } else {
                println!(
                    "Docker Compose version {version} (pier compose {})",
                    env!("CARGO_PKG_VERSION")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Up(up) => run_up(args, up, &progress).await,
        EngineCommand::Create(c) => {
            let project = Arc::new(load(args)?);
            let engine = connect()?;
            let options = UpOptions {
                services: c.services.clone(),
                force_recreate: c.create.force_recreate,
                no_recreate: c.create.no_recreate,
                remove_orphans: c.create.remove_orphans,
                scale: parse_scale(&c.create.scale)?,
                no_start: true,
                ..UpOptions::default()
            };
            converge::up(&engine, project, &options, &progress).await?;
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Down(d) => {
            let project = load(args).or_else(|e| match &args.project_name {
                // Without a file, `down -p NAME` takes down what carries the label.
                Some(name) => Ok(Project {
                    name: name.clone(),
                    ..Project::default()
                }),
                None => Err(e),
            })?;
            let engine = connect()?;
            let remove_orphans = d.remove_orphans || project.services.is_empty();
            let options = DownOptions {
                volumes: d.volumes,
                remove_orphans,
                rmi: d.rmi.clone(),
                timeout: d.timeout,
            };
            converge::down(&engine, &project, &options, &progress).await?;
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Ps(p) => ps::run(args, p).await,
        EngineCommand::Logs(l) => logs::run_logs(args, l).await,
        EngineCommand::Ls(l) => ps::run_ls(l).await,
        EngineCommand::Port(p) => ps::run_port(args, p).await,
        EngineCommand::Top(t) => ps::run_top(args, &t.services).await,
        EngineCommand::Images(i) => ps::run_images(args, i).await,
        EngineCommand::Exec(e) => exec::run_exec(args, e).await,
        EngineCommand::Run(r) => exec::run_run(args, r).await,
        EngineCommand::Start(s) => {
            let project = load(args)?;
            let engine = connect()?;
            let selected = converge::select_services(&project, &s.services, true)?;
            let levels = converge::dependency_levels(&project, &selected);
            for level in levels {
                for name in level {
                    converge::start_service(&engine, &project.name, &name, &progress).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Stop(s) | EngineCommand::Restart(s) => {
            let restart = matches!(command, EngineCommand::Restart(_));
            let name = project_name(args)?;
            let engine = connect()?;
            let containers = filtered(&engine, &name, &s.services).await?;
            let mut tasks = tokio::task::JoinSet::new();
            for c in containers {
                let (engine, progress, timeout) = (engine.clone(), progress.clone(), s.timeout);
                tasks.spawn(async move {
                    if restart {
                        progress.event("Container", c.name(), "Restarting");
                        engine.restart(&c.id, timeout).await?;
                        progress.event("Container", c.name(), "Started");
                    } else {
                        progress.event("Container", c.name(), "Stopping");
                        engine.stop(&c.id, timeout).await?;
                        progress.event("Container", c.name(), "Stopped");
                    }
                    Ok::<_, crate::engine::api::ApiError>(())
                });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Kill(k) => {
            let name = project_name(args)?;
            let engine = connect()?;
            for c in filtered(&engine, &name, &k.services).await? {
                if c.state != "running" {
                    continue;
                }
                progress.event("Container", c.name(), "Killing");
                engine.kill(&c.id, &k.signal).await?;
                progress.event("Container", c.name(), "Killed");
            }
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Pause(s) | EngineCommand::Unpause(s) => {
            let pause = matches!(command, EngineCommand::Pause(_));
            let name = project_name(args)?;
            let engine = connect()?;
            for c in filtered(&engine, &name, &s.services).await? {
                if pause {
                    engine.pause(&c.id).await?;
                    progress.event("Container", c.name(), "Paused");
                } else {
                    engine.unpause(&c.id).await?;
                    progress.event("Container", c.name(), "Unpaused");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EngineCommand::Rm(r) => {
            let name = project_name(args)?;
            let engine = connect()?;
            let mut removed = 0;
            for c in filtered(&engine, &name, &r.services).await? {
                if c.state == "running" {
                    if !r.stop {
                        continue;
                    }
                    engine.stop(&c.id, None).await?;
                }
                progress.event("Container", c.name(), "Removing");
                engine.remove_container(&c.id, true, r.volumes).await?;
                progress.event("Container", c.name(), "Removed");
                removed += 1;
            }
            if removed == 0 {
                eprintln!("No stopped containers");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The project's containers, of `services` only when some are named.
pub(crate) async fn filtered(
    engine: &Engine,
    project: &str,
    services: &[String],
) -> Result<Vec<crate::engine::api::ContainerSummary>, Failure> {
    let all = converge::project_containers(engine, project, true).await?;
    Ok(all
        .into_iter()
        .filter(|c| services.is_empty() || services.iter().any(|s| s == c.label(labels::SERVICE)))
        .collect())
}

async fn run_up(args: &ComposeArgs, up: &UpArgs, progress: &Progress) -> CommandResult {
    if up.build {
        return Err("pier compose up --build: building images is not supported by pier compose yet (build them with `pier build`)".into());
    }
    if let Some(policy) = &up.pull {
        if !["missing", "never", "always"].contains(&policy.as_str()) {
            return Err(format!("invalid --pull option {policy:?}").into());
        }
    }
    let mut project = load(args)?;
    if let Some(policy) = &up.pull {
        for s in project.services.values_mut() {
            s.pull_policy = policy.clone();
        }
    }
    let project = Arc::new(project);
    let engine = connect()?;
    let abort = up.abort_on_container_exit || up.exit_code_from.is_some();
    if (up.detach || up.wait) && abort {
        return Err("--abort-on-container-exit and --exit-code-from are incompatible with --detach and --wait".into());
    }
    let options = UpOptions {
        services: up.services.clone(),
        force_recreate: up.create.force_recreate,
        no_recreate: up.create.no_recreate,
        remove_orphans: up.create.remove_orphans,
        no_deps: up.no_deps,
        no_start: up.no_start,
        scale: parse_scale(&up.create.scale)?,
        wait: up.wait,
        wait_timeout: up.wait_timeout.map(Duration::from_secs),
    };
    converge::up(&engine, project.clone(), &options, progress).await?;
    if up.detach || up.wait || up.no_start {
        return Ok(ExitCode::SUCCESS);
    }
    logs::attached(
        &engine,
        &project,
        &options,
        up.exit_code_from.as_deref(),
        abort,
        up.timeout,
        progress,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Top {
            #[command(flatten)]
            compose: ComposeArgs,
        }
        Top::command().debug_assert();
    }

    #[test]
    fn scale_items_parse() {
        let scale = parse_scale(&["web=3".into()]).ok().unwrap();
        assert_eq!(scale["web"], 3);
        assert!(parse_scale(&["web".into()]).is_err());
    }
}
