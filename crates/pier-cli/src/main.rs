//! `pier`: Docker's command line for Pier.
//!
//! Every command goes through pierd's Engine API (`-H`, `PIER_HOST`), as the docker
//! CLI's do (`DOCKER_HOST` when neither is given; `tcp://` hosts with TLS as docker's
//! `--tls`/`--tlsverify` flags and `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH` ask); with the
//! default socket and no daemon answering, `pier` starts `pierd` itself, on `--data-root`.

mod autostart;
mod build;
mod client;
mod container_ops;
mod containers;
mod copy;
mod images;
mod interactive;
mod networks;
mod output;
mod registry;
mod stream_output;
mod system;
mod terminal;
mod volume_archive;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pier",
    about = "Pier: build, ship and run containers",
    version,
    disable_help_subcommand = true
)]
struct Cli {
    /// Root of Pier's persistent state (images, layers).
    #[arg(
        long,
        global = true,
        env = "PIER_DATA_ROOT",
        default_value = "/var/lib/pier",
        value_name = "DIR"
    )]
    data_root: PathBuf,
    /// Daemon socket to connect to (unix://PATH or tcp://HOST:PORT; default
    /// DOCKER_HOST, else unix:///run/pier/pier.sock)
    #[arg(short = 'H', long = "host", env = "PIER_HOST", value_name = "HOST")]
    host: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long)]
    tls: bool,
    /// Use TLS and verify the remote
    #[arg(long)]
    tlsverify: bool,
    /// Trust certs signed only by this CA (default ca.pem in DOCKER_CERT_PATH or ~/.docker)
    #[arg(long, value_name = "FILE")]
    tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default cert.pem there)
    #[arg(long, value_name = "FILE")]
    tlscert: Option<PathBuf>,
    /// Path to TLS key file (default key.pem there)
    #[arg(long, value_name = "FILE")]
    tlskey: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage images
    Image {
        #[command(subcommand)]
        command: images::ImageCommand,
    },
    /// List images
    Images(images::ListArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RemoveArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Import the contents from a tarball or directory to create a filesystem image
    Import(images::ImportArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Log in to a registry
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Create and run a new container from an image
    Run(containers::RunArgs),
    /// Create a new container
    Create(containers::CreateArgs),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Execute a command in a running container
    Exec(interactive::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(interactive::AttachArgs),
    /// List containers
    Ps(containers::PsArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::NamesArgs),
    /// Return low-level information on containers or images
    Inspect(containers::InspectArgs),
    #[command(flatten)]
    Ops(container_ops::OpsCommand),
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: networks::NetworkCommand,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: volumes::VolumeCommand,
    },
    /// Define and run multi-container applications (Compose)
    Compose(pier_compose::cli::ComposeArgs),
    /// Show the Pier version information
    Version,
    /// Display system-wide information
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let host = client::Target {
        host: cli.host,
        tls: cli.tls,
        tlsverify: cli.tlsverify,
        tlscacert: cli.tlscacert,
        tlscert: cli.tlscert,
        tlskey: cli.tlskey,
    };
    let data_root = cli.data_root;
    let command = match cli.command {
        Command::Compose(a) => return pier_compose::cli::run(a),
        Command::Build(a) => return with_daemon(&host, &data_root, |c| build::build(c, a)),
        Command::Run(a) => return with_daemon(&host, &data_root, |c| containers::run(c, a)),
        Command::Create(a) => return with_daemon(&host, &data_root, |c| containers::create(c, a)),
        Command::Start(a) => return with_daemon(&host, &data_root, |c| containers::start(c, a)),
        Command::Exec(a) => return with_daemon(&host, &data_root, |c| interactive::exec(c, a)),
        Command::Attach(a) => return with_daemon(&host, &data_root, |c| interactive::attach(c, a)),
        Command::Ps(a) => return with_daemon(&host, &data_root, |c| containers::ps(c, a)),
        Command::Logs(a) => return with_daemon(&host, &data_root, |c| containers::logs(c, a)),
        Command::Stop(a) => return with_daemon(&host, &data_root, |c| containers::stop(c, a)),
        Command::Kill(a) => return with_daemon(&host, &data_root, |c| containers::kill(c, a)),
        Command::Rm(a) => return with_daemon(&host, &data_root, |c| containers::rm(c, a)),
        Command::Wait(a) => return with_daemon(&host, &data_root, |c| containers::wait(c, a)),
        Command::Inspect(a) => {
            return with_daemon(&host, &data_root, |c| containers::inspect(c, a))
        }
        Command::Ops(cmd) => {
            return with_daemon(&host, &data_root, |c| container_ops::dispatch(c, cmd))
        }
        Command::Network { command } => {
            return with_daemon(&host, &data_root, |c| networks::dispatch(c, command))
        }
        Command::Volume { command } => {
            return with_daemon(&host, &data_root, |c| volumes::dispatch(c, command))
        }
        Command::Pull(a) => return with_daemon(&host, &data_root, |c| registry::pull(c, a)),
        Command::Push(a) => return with_daemon(&host, &data_root, |c| registry::push(c, a)),
        Command::Login(a) => return with_daemon(&host, &data_root, |c| registry::login(c, a)),
        Command::Logout(a) => {
            return match registry::logout(a) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Version => return with_daemon(&host, &data_root, containers::version),
        Command::Info => return with_daemon(&host, &data_root, containers::info),
        Command::Image { command } => command,
        Command::Images(a) => images::ImageCommand::Ls(a),
        Command::Tag(a) => images::ImageCommand::Tag(a),
        Command::Rmi(a) => images::ImageCommand::Rm(a),
        Command::History(a) => images::ImageCommand::History(a),
        Command::Save(a) => images::ImageCommand::Save(a),
        Command::Load(a) => images::ImageCommand::Load(a),
        Command::Import(a) => images::ImageCommand::Import(a),
    };
    with_daemon(&host, &data_root, |c| images::run(c, command))
}

/// Runs a command against the daemon (started if needed); errors print as docker's.
fn with_daemon(
    host: &client::Target,
    data_root: &std::path::Path,
    f: impl FnOnce(&client::Client) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    match autostart::connect(host, data_root).and_then(|c| f(&c)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (e.g. a short flag used twice) over every command.
    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
