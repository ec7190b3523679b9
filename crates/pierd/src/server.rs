//! Process set-up: state directories, the PID file, the API sockets, the tokio runtime
//! and an orderly shutdown (containers keep running: each has its own monitor).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pier_image::service::ImageService;
use rustix::fs::FlockOperation;

use crate::config::DaemonConfig;
use crate::Daemon;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: DaemonConfig) -> Result<()> {
    let sockets = config.socket_paths().map_err(anyhow::Error::msg)?;
    make_dir(&config.data_root, 0o711)?;
    make_dir(&config.exec_root, 0o700)?;
    let pidfile = config.pidfile();
    let _pid_lock = lock_pidfile(&pidfile)?;
    for socket in &sockets {
        claim_socket(socket)?;
    }
    let images = ImageService::open(&config.data_root.join("image"))
        .with_context(|| format!("opening the image store in {}", config.data_root.display()))?;
    let id = engine_id(&config.data_root)?;
    let images = Arc::new(images);
    let engine = crate::engine::Engine::open(&config, images.clone())
        .map_err(|e| anyhow::anyhow!("opening the container state: {e}"))?;
    let daemon = Arc::new(Daemon {
        config,
        images,
        engine,
        id,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pierd")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(daemon, &sockets));
    for socket in &sockets {
        let _ = fs::remove_file(socket);
    }
    let _ = fs::remove_file(&pidfile);
    result
}

async fn serve(daemon: Arc<Daemon>, sockets: &[PathBuf]) -> Result<()> {
    daemon.engine.restore();
    let app = crate::api::service(daemon);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for path in sockets {
        let listener = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("listening on {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o660))
            .with_context(|| format!("chmod {}", path.display()))?;
        let app = app.clone();
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    eprintln!(
        "pierd: API listening on {}",
        sockets
            .iter()
            .map(|p| format!("unix://{}", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = stop_tx.send(true);
    for server in servers {
        // Hijacked streams (attach) may outlive the grace period; do not wait forever.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Takes an exclusive lock on the PID file and writes our PID: a second daemon with
/// the same exec root is refused while the first one lives.
fn lock_pidfile(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        make_dir(dir, 0o700)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("opening pid file {}", path.display()))?;
    if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        bail!(
            "pid file found, ensure pierd is not running or delete {} (process {} holds it)",
            path.display(),
            pid.trim()
        );
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Refuses a socket another live daemon answers on; removes a stale one.
fn claim_socket(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        make_dir(dir, 0o755)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    Ok(())
}

/// The engine's ID (`/info` `ID`), made once per data root.
fn engine_id(data_root: &Path) -> Result<String> {
    let path = data_root.join("engine-id");
    if let Ok(id) = fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}
