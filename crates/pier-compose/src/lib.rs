//! `pier compose`: the Compose Specification, read as docker compose v2 reads it.
//!
//! The entry point is [`load`]: it finds the compose files ([`LoadOptions`] mirrors
//! docker compose's global flags), parses them ([`yaml`]), interpolates variables
//! ([`interpolate`]), applies `extends`, `include` and multi-file merging ([`merge`]),
//! validates keys ([`schema`]), normalizes short syntax to long syntax and resolves
//! paths ([`canonical`]), applies profiles and checks consistency, and returns a typed
//! [`model::Project`]. [`output`] prints a project as `docker compose config` does, and
//! [`cli`] holds the `pier compose` command line.
//!
//! ```no_run
//! let options = pier_compose::LoadOptions::from_cwd().unwrap();
//! let project = pier_compose::load(&options).unwrap();
//! for (name, service) in &project.services {
//!     println!("{name}: {}", service.image);
//! }
//! ```

pub mod canonical;
pub mod cli;
pub mod commands;
pub mod dotenv;
pub mod engine;
pub mod interpolate;
pub mod loader;
pub mod merge;
pub mod model;
pub mod output;
pub mod schema;
mod schema_keys;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use loader::load;
pub use model::Project;

/// What to load: docker compose's global flags plus the process environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f`: compose files, in merge order. Empty: `COMPOSE_FILE`, else discovery.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--env-file`, in order. Empty: `<project dir>/.env` if it exists.
    pub env_files: Vec<PathBuf>,
    /// `--profile`. Empty: `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// `false` for `--no-interpolate`.
    pub interpolate: bool,
    /// The directory relative `-f`/`--env-file`/`--project-directory` are read from.
    pub cwd: PathBuf,
    /// The process environment (it wins over `.env`).
    pub environment: BTreeMap<String, String>,
}

impl LoadOptions {
    /// Options for the current directory and process environment.
    pub fn from_cwd() -> std::io::Result<LoadOptions> {
        Ok(LoadOptions {
            interpolate: true,
            cwd: std::env::current_dir()?,
            environment: std::env::vars().collect(),
            ..LoadOptions::default()
        })
    }
}

/// Why a project could not be loaded. Each names the file, the line where known and
/// the key path (`services.web.ports`).
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("no configuration file provided: not found")]
    NoConfigFile,
    #[error("open {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: yaml: line {line}: {message}", file.display())]
    Yaml {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// A key or value the Compose Specification does not allow.
    #[error("validating {}: {key}{} {message}", file.display(), line_suffix(*line))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
    #[error("error while interpolating {key}{}: required variable {variable} is missing a value{}",
        file_suffix(file), if message.is_empty() { String::new() } else { format!(": {message}") })]
    RequiredVariable {
        file: PathBuf,
        key: String,
        variable: String,
        message: String,
    },
    #[error("invalid interpolation format for {key}{}.\nYou may need to escape any $ with another $.\n{text}", file_suffix(file))]
    InterpolationFormat {
        file: PathBuf,
        key: String,
        text: String,
    },
    #[error("env file {} not found: stat {}: no such file or directory", path.display(), path.display())]
    EnvFileNotFound { path: PathBuf },
    #[error("dependency cycle detected: {}", cycle.join(" -> "))]
    DependencyCycle { cycle: Vec<String> },
    #[error(
        "service {service:?} depends on undefined service {dependency:?}: invalid compose project"
    )]
    UndefinedDependency { service: String, dependency: String },
    #[error("service {service:?} refers to undefined {kind} {name}: invalid compose project")]
    UndefinedResource {
        service: String,
        kind: &'static str,
        name: String,
    },
    #[error("invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number")]
    InvalidProjectName { name: String },
    #[error("{}: services.{service}.extends: {message}", file.display())]
    Extends {
        file: PathBuf,
        service: String,
        message: String,
    },
    #[error("{}: include: {message}", file.display())]
    Include { file: PathBuf, message: String },
    /// Any other invalid project (the message says which key and why).
    #[error("{message}")]
    Project { message: String },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

fn file_suffix(file: &std::path::Path) -> String {
    if file.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" in {}", file.display())
    }
}
