//! The `pier compose` command line: docker compose's global flags and its commands.
//! `pier`'s main hands `pier compose ...` to [`run`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::output::{render, Format};
use crate::{LoadOptions, Project};

/// `pier compose [OPTIONS] COMMAND`.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files (before the command, as docker compose takes it:
    /// after it, `-f` is `logs -f`, `rm -f`)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name", global = true, value_name = "NAME")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first Compose file)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(
        long = "profile",
        id = "compose_profiles",
        global = true,
        value_name = "PROFILE"
    )]
    pub profiles: Vec<String>,
    /// Control when to print ANSI control characters ("never"|"always"|"auto")
    #[arg(long, global = true, default_value = "auto", value_parser = ["never", "always", "auto"])]
    pub ansi: String,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Parse, resolve and render compose file in canonical format
    #[command(alias = "convert")]
    Config(ConfigArgs),
    /// up, down, ps, logs, ... (crate::commands).
    #[command(flatten)]
    Engine(crate::commands::EngineCommand),
}

/// `pier compose config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Format the output. Values: [yaml | json]
    #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
    pub format: String,
    /// Print the service names, one per line.
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    pub volumes: bool,
    /// Print the image names, one per line.
    #[arg(long)]
    pub images: bool,
    /// Print the profile names, one per line.
    #[arg(long)]
    pub profiles: bool,
    /// Only validate the configuration, don't print anything.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't interpolate environment variables.
    #[arg(long)]
    pub no_interpolate: bool,
    /// Pin image tags to digests (needs a registry; refused).
    #[arg(long)]
    pub resolve_image_digests: bool,
    /// Print the service config hash, one per line (`*` or a comma-separated list).
    #[arg(long, value_name = "SERVICES")]
    pub hash: Option<String>,
    /// Save to file (default to stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Services to render (and what they depend on).
    pub service_names: Vec<String>,
}

impl ComposeArgs {
    /// The load options these flags describe, over the process environment.
    pub fn load_options(&self) -> std::io::Result<LoadOptions> {
        let mut options = LoadOptions::from_cwd()?;
        options.files = self.files.clone();
        options.project_name = self.project_name.clone();
        options.project_directory = self.project_directory.clone();
        options.env_files = self.env_files.clone();
        options.profiles = self.profiles.clone();
        Ok(options)
    }
}

/// Runs `pier compose`.
pub fn run(args: ComposeArgs) -> ExitCode {
    match &args.command {
        ComposeCommand::Config(config) => match run_config(&args, config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::from(15)
            }
        },
        ComposeCommand::Engine(command) => crate::commands::run(&args, command),
    }
}

fn warn(message: &str) {
    eprintln!("WARN[0000] {message}");
}

fn run_config(args: &ComposeArgs, config: &ConfigArgs) -> Result<(), String> {
    if config.resolve_image_digests {
        return Err("pier compose config: --resolve-image-digests is not supported: it needs registry access, which pier compose config does not do".into());
    }
    let mut options = args.load_options().map_err(|e| e.to_string())?;
    options.interpolate = !config.no_interpolate;
    let listing = config.services || config.volumes || config.images || config.profiles;
    if config.no_interpolate && !listing && config.hash.is_none() {
        // compose prints the untyped model here: values may still hold `${VAR}`.
        let (model, warnings) = crate::loader::load_model(&options).map_err(|e| e.to_string())?;
        for w in &warnings.0 {
            warn(w);
        }
        let format = if config.format == "json" {
            Format::Json
        } else {
            Format::Yaml
        };
        return emit(config, &crate::output::render_model(&model, format));
    }
    let (mut project, warnings) =
        crate::loader::load_with_warnings(&options).map_err(|e| e.to_string())?;
    for w in &warnings.0 {
        warn(w);
    }
    if !config.service_names.is_empty() {
        select_services(&mut project, &config.service_names)?;
    }
    let text = if let Some(names) = &config.hash {
        // `*` or a comma-separated list: `service hash` lines, docker compose's hash.
        let mut out = String::new();
        for (name, service) in &project.services {
            if names == "*" || names.split(',').any(|n| n.trim() == name) {
                out.push_str(&format!(
                    "{name} {}\n",
                    crate::engine::labels::config_hash(service)
                ));
            }
        }
        out
    } else if config.services {
        lines(project.services.keys())
    } else if config.volumes {
        lines(project.volumes.keys())
    } else if config.images {
        lines(project.services.iter().map(|(name, s)| {
            if s.image.is_empty() {
                format!("{}-{name}", project.name)
            } else {
                s.image.clone()
            }
        }))
    } else if config.profiles {
        let mut all: Vec<&String> = project
            .services
            .values()
            .chain(project.disabled_services.values())
            .flat_map(|s| &s.profiles)
            .collect();
        all.sort();
        all.dedup();
        lines(all)
    } else {
        let format = if config.format == "json" {
            Format::Json
        } else {
            Format::Yaml
        };
        // compose ends YAML with a newline and JSON without one.
        render(&project, format, !config.no_interpolate)
    };
    emit(config, &text)
}

/// Writes `config`'s output to `-o FILE` or stdout, or nothing with `-q`.
fn emit(config: &ConfigArgs, text: &str) -> Result<(), String> {
    if config.quiet {
        return Ok(());
    }
    match &config.output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| e.to_string())
        }
    }
}

fn lines<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: std::fmt::Display,
{
    items.into_iter().map(|i| format!("{i}\n")).collect()
}

/// Keeps `names` and the services they depend on.
fn select_services(project: &mut Project, names: &[String]) -> Result<(), String> {
    let mut keep: Vec<String> = Vec::new();
    let mut queue: Vec<String> = names.to_vec();
    while let Some(name) = queue.pop() {
        if keep.contains(&name) {
            continue;
        }
        let service = project
            .services
            .get(&name)
            .or_else(|| project.disabled_services.get(&name))
            .ok_or_else(|| format!("no such service: {name}"))?;
        queue.extend(service.depends_on.keys().cloned());
        keep.push(name);
    }
    for name in &keep {
        if let Some(s) = project.disabled_services.remove(name) {
            project.services.insert(name.clone(), s);
        }
    }
    project.services.retain(|k, _| keep.contains(k));
    Ok(())
}
