//! `pier`: Docker's command line for Pier.
//!
//! The image commands work directly on the image store under `--data-root` (no
//! daemon needed). Container commands arrive with `pierd`, and the image commands will
//! then go through its Engine API like every other command.

mod images;
mod output;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Image { command } => command,
        Command::Images(a) => images::ImageCommand::Ls(a),
        Command::Tag(a) => images::ImageCommand::Tag(a),
        Command::Rmi(a) => images::ImageCommand::Rm(a),
        Command::History(a) => images::ImageCommand::History(a),
        Command::Save(a) => images::ImageCommand::Save(a),
        Command::Load(a) => images::ImageCommand::Load(a),
        Command::Import(a) => images::ImageCommand::Import(a),
    };
    match images::run(&cli.data_root, command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
