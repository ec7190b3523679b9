//! `pier volume export|import|clone`: Pier's volume backup commands (beyond Docker),
//! through pierd's `/volumes/{name}/export|import|clone` extension endpoints.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use pier_api::volume::Volume;

use crate::client::Client;
use crate::containers::enc;
use crate::stream_output::{refuse_terminal_stdout, write_stream};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    /// Export even while running containers use the volume (it may change meanwhile)
    #[arg(short, long)]
    force: bool,
    volume: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Read from a tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// The volume to fill (made if missing; else it must be empty)
    volume: String,
}

#[derive(Debug, Args)]
pub struct CloneArgs {
    /// Read the source even while running containers use it
    #[arg(short, long)]
    force: bool,
    /// The volume to copy
    source: String,
    /// The new (or empty) volume to copy into
    target: String,
}

/// `pier volume export NAME > backup.tar` (or `-o backup.tar`).
pub fn export(client: &Client, a: ExportArgs) -> Result<ExitCode> {
    refuse_terminal_stdout(a.output.as_deref())?;
    let force = if a.force { "?force=1" } else { "" };
    let mut r = client
        .request(
            "GET",
            &format!("/volumes/{}/export{force}", enc(&a.volume)),
            None,
        )?
        .check()?;
    write_stream(&mut r.body, a.output.as_deref(), "failed to export volume")?;
    Ok(ExitCode::SUCCESS)
}

/// `pier volume import NAME < backup.tar` (or `-i backup.tar`); prints the name.
pub fn import(client: &Client, a: ImportArgs) -> Result<ExitCode> {
    let input: Box<dyn Read + Send> = match &a.input {
        Some(path) => {
            Box::new(File::open(path).with_context(|| format!("failed to import volume: {path}"))?)
        }
        None => {
            if io::stdin().is_terminal() {
                bail!("requested import from a terminal. Use the -i flag or redirect");
            }
            Box::new(io::stdin())
        }
    };
    let volume: Volume = serde_json::from_value(
        client
            .request_streaming(
                "POST",
                &format!("/volumes/{}/import", enc(&a.volume)),
                "application/x-tar",
                input,
            )?
            .json()?,
    )
    .context("reading the daemon's answer")?;
    println!("{}", volume.name);
    Ok(ExitCode::SUCCESS)
}

/// `pier volume clone SRC DST`; prints the new volume's name.
pub fn clone(client: &Client, a: CloneArgs) -> Result<ExitCode> {
    let force = if a.force { "&force=1" } else { "" };
    let volume: Volume = serde_json::from_value(client.post_json(
        &format!(
            "/volumes/{}/clone?target={}{force}",
            enc(&a.source),
            enc(&a.target)
        ),
        None,
    )?)
    .context("reading the daemon's answer")?;
    println!("{}", volume.name);
    Ok(ExitCode::SUCCESS)
}
