//! The daemon's command line, with dockerd's flag names.

use std::path::PathBuf;

use clap::Parser;

/// Pier's engine daemon: serves the Docker Engine API.
#[derive(Debug, Clone, Parser)]
#[command(name = "pierd", version, about)]
pub struct DaemonConfig {
    /// Daemon socket to listen on (unix://PATH)
    #[arg(
        short = 'H',
        long = "host",
        value_name = "HOST",
        default_value = "unix:///run/pier/pier.sock"
    )]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long, default_value = "/var/lib/pier", value_name = "DIR")]
    pub data_root: PathBuf,
    /// Root directory of execution state
    #[arg(long, default_value = "/run/pier", value_name = "DIR")]
    pub exec_root: PathBuf,
    /// Path of the daemon's PID file [default: EXEC_ROOT/pierd.pid]
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Register an OCI runtime: NAME=PATH
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    pub add_runtime: Vec<String>,
    /// Default OCI runtime for containers
    #[arg(long, default_value = "pier-runtime", value_name = "NAME")]
    pub default_runtime: String,
    /// Set the logging level (debug, info, warn, error, fatal)
    #[arg(short = 'l', long, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Keep containers running while the daemon is down (always on in Pier: every
    /// container has its own monitor process)
    #[arg(long)]
    pub live_restore: bool,
}

impl DaemonConfig {
    /// The PID file path: `--pidfile`, or `pierd.pid` in the exec root.
    pub fn pidfile(&self) -> PathBuf {
        self.pidfile
            .clone()
            .unwrap_or_else(|| self.exec_root.join("pierd.pid"))
    }

    /// The unix socket paths of `-H unix://PATH` (other schemes are refused).
    pub fn socket_paths(&self) -> Result<Vec<PathBuf>, String> {
        self.hosts
            .iter()
            .map(|h| match h.strip_prefix("unix://") {
                Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
                _ => Err(format!(
                    "unsupported host {h:?}: pierd listens on unix://PATH sockets"
                )),
            })
            .collect()
    }
}
