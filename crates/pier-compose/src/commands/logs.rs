//! `logs` and `up`'s attached mode: each container's output, line by line, prefixed
//! with its name (`p-web-1  | ...`), the containers' streams interleaved as they come.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::{connect, project_name, CommandResult, Failure};
use crate::engine::api::{ContainerSummary, Engine};
use crate::engine::converge::{self, UpOptions};
use crate::engine::{labels, Progress};
use crate::Project;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    pub services: Vec<String>,
}

/// What a container's stream task reports.
enum Event {
    Line(String),
    /// The stream ended (the container stopped, when following).
    Ended(String),
}

/// Streams one container's logs into `tx`, one prefixed line per message.
async fn stream(
    engine: Engine,
    c: ContainerSummary,
    prefix: String,
    follow: bool,
    tail: String,
    timestamps: bool,
    tx: mpsc::UnboundedSender<Event>,
) {
    let tty = engine
        .inspect_container(&c.id)
        .await
        .ok()
        .and_then(|i| {
            i.config
                .extra
                .get("Tty")
                .and_then(serde_json::Value::as_bool)
        })
        .unwrap_or(false);
    let Ok(response) = engine.logs(&c.id, follow, &tail, timestamps).await else {
        let _ = tx.send(Event::Ended(c.id.clone()));
        return;
    };
    let mut body = response.into_body();
    let mut raw: Vec<u8> = Vec::new();
    let mut text: Vec<u8> = Vec::new();
    let flush_lines = |text: &mut Vec<u8>, all: bool| {
        while let Some(pos) = text.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = text.drain(..=pos).collect();
            let _ = tx.send(Event::Line(format!(
                "{prefix}{}",
                String::from_utf8_lossy(&line[..line.len() - 1])
            )));
        }
        if all && !text.is_empty() {
            let _ = tx.send(Event::Line(format!(
                "{prefix}{}",
                String::from_utf8_lossy(text)
            )));
            text.clear();
        }
    };
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if tty {
            text.extend_from_slice(&data);
        } else {
            raw.extend_from_slice(&data);
            // Docker's multiplexed frames: 8-byte header (stream, 0, 0, 0, length).
            while raw.len() >= 8 {
                let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
                if raw.len() < 8 + len {
                    break;
                }
                text.extend_from_slice(&raw[8..8 + len]);
                raw.drain(..8 + len);
            }
        }
        flush_lines(&mut text, false);
    }
    flush_lines(&mut text, true);
    let _ = tx.send(Event::Ended(c.id.clone()));
}

fn prefixes(containers: &[ContainerSummary], plain: bool) -> Vec<String> {
    let width = containers.iter().map(|c| c.name().len()).max().unwrap_or(0);
    containers
        .iter()
        .map(|c| {
            if plain {
                String::new()
            } else {
                format!("{:width$}  | ", c.name())
            }
        })
        .collect()
}

pub async fn run_logs(args: &crate::cli::ComposeArgs, l: &LogsArgs) -> CommandResult {
    let project = project_name(args)?;
    let engine = connect()?;
    let containers: Vec<ContainerSummary> = converge::project_containers(&engine, &project, true)
        .await?
        .into_iter()
        .filter(|c| {
            l.services.is_empty() || l.services.iter().any(|s| s == c.label(labels::SERVICE))
        })
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (c, prefix) in containers
        .iter()
        .zip(prefixes(&containers, l.no_log_prefix))
    {
        tokio::spawn(stream(
            engine.clone(),
            c.clone(),
            prefix,
            l.follow,
            l.tail.clone(),
            l.timestamps,
            tx.clone(),
        ));
    }
    drop(tx);
    while let Some(event) = rx.recv().await {
        if let Event::Line(line) = event {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `up` without `-d`: prints every container's output until all have stopped; Ctrl-C
/// stops the project's containers. With `abort`, the first container to stop stops
/// the others; the exit code is that container's (or `exit_code_from`'s service's).
pub async fn attached(
    engine: &Engine,
    project: &Arc<Project>,
    options: &UpOptions,
    exit_code_from: Option<&str>,
    abort: bool,
    timeout: Option<i64>,
    progress: &Progress,
) -> CommandResult {
    let selected = converge::select_services(project, &options.services, options.no_deps)?;
    let containers: Vec<ContainerSummary> =
        converge::project_containers(engine, &project.name, true)
            .await?
            .into_iter()
            .filter(|c| selected.contains(c.label(labels::SERVICE)))
            .collect();
    if let Some(s) = exit_code_from {
        if !selected.contains(s) {
            return Err(format!("no such service: {s}").into());
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (c, prefix) in containers.iter().zip(prefixes(&containers, false)) {
        tokio::spawn(stream(
            engine.clone(),
            c.clone(),
            prefix,
            true,
            "all".into(),
            false,
            tx.clone(),
        ));
    }
    drop(tx);
    eprintln!(
        "Attaching to {}",
        containers
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut running = containers.len();
    let mut exit_code: i64 = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Line(line)) => println!("{line}"),
                Some(Event::Ended(id)) => {
                    running -= 1;
                    let code = engine.wait(&id).await.unwrap_or(0);
                    let c = containers.iter().find(|c| c.id == id);
                    let name = c.map(|c| c.name()).unwrap_or_default();
                    eprintln!("{name} exited with code {code}");
                    let service = c.map(|c| c.label(labels::SERVICE)).unwrap_or_default();
                    match exit_code_from {
                        Some(s) if s == service => exit_code = code,
                        None if abort => exit_code = code,
                        _ => {}
                    }
                    if abort && exit_code_from.is_none_or(|s| s == service) {
                        eprintln!("Aborting on container exit...");
                        break;
                    }
                    if running == 0 {
                        break;
                    }
                }
                None => break,
            },
            _ = &mut ctrl_c => {
                interrupted = true;
                eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                break;
            }
        }
    }
    if interrupted || abort {
        for c in &containers {
            progress.event("Container", c.name(), "Stopping");
            engine.stop(&c.id, timeout).await.map_err(Failure::from)?;
            progress.event("Container", c.name(), "Stopped");
        }
    }
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::from(exit_code.clamp(0, 255) as u8))
}
