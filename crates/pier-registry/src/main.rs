//! pier-registry: flags in, the library's server (or GC) out.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pier_registry::config::{FileConfig, Settings};

#[derive(Parser)]
#[command(
    name = "pier-registry",
    about = "Pier's registry server (OCI distribution spec 1.1)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on [default: 0.0.0.0:5000]
    #[arg(long)]
    addr: Option<String>,
    /// Storage root [default: /var/lib/pier-registry]
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// htpasswd file of bcrypt hashes: require basic auth
    #[arg(long)]
    htpasswd: Option<PathBuf>,
    /// TLS certificate chain (PEM)
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Refuse every write (405 UNSUPPORTED)
    #[arg(long)]
    read_only: bool,
    /// Bearer-token auth: JSON access rules (see docs/REGISTRY.md); users from --htpasswd
    #[arg(long)]
    token_access: Option<PathBuf>,
    /// Token signing key, PEM PKCS#8 Ed25519, made if absent [default: ROOT/token-key.pem]
    #[arg(long)]
    token_key: Option<PathBuf>,
    /// Token lifetime in seconds [default: 300]
    #[arg(long)]
    token_expiry: Option<u64>,
    /// Online garbage collection every SECS seconds (0: off, the default)
    #[arg(long, value_name = "SECS")]
    gc_interval: Option<u64>,
    /// Garbage collection keeps unreferenced blobs younger than SECS [default: 3600]
    #[arg(long, value_name = "SECS", global = true)]
    gc_grace: Option<u64>,
    /// JSON config file with the same settings (flags win)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (the default)
    Serve,
    /// Collect garbage offline: delete blobs no manifest references (stop the server
    /// first, or use --gc-interval for online collection)
    Gc {
        /// List what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let flags = FileConfig {
        addr: cli.addr,
        root: cli.root,
        htpasswd: cli.htpasswd,
        tls_cert: cli.tls_cert,
        tls_key: cli.tls_key,
        read_only: cli.read_only.then_some(true),
        token_access: cli.token_access,
        token_key: cli.token_key,
        token_expiry: cli.token_expiry,
        gc_interval: cli.gc_interval,
        gc_grace: cli.gc_grace,
    };
    let settings = Settings::try_from(file.merged(flags))?;
    match cli.command {
        None | Some(Command::Serve) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(pier_registry::serve(settings))?;
        }
        Some(Command::Gc { dry_run }) => {
            let verb = if dry_run { "would delete" } else { "deleted" };
            let store = pier_registry::storage::Store::open(&settings.root)
                .with_context(|| format!("opening {}", settings.root.display()))?;
            let mut report = pier_registry::gc::collect(&store, None, settings.gc_grace, dry_run)?;
            report.uploads =
                pier_registry::gc::stale_uploads(&store, pier_registry::gc::UPLOAD_EXPIRY);
            for id in &report.uploads {
                if !dry_run {
                    store.remove_upload(id)?;
                }
                println!("{verb} abandoned upload {id}");
            }
            for (digest, size) in &report.deleted {
                println!("{verb} {digest} ({size} bytes)");
            }
            let freed: u64 = report.deleted.iter().map(|(_, s)| s).sum();
            println!(
                "{verb} {} blobs ({freed} bytes); kept {} referenced, {} unreferenced within the grace period",
                report.deleted.len(),
                report.live,
                report.young
            );
        }
    }
    Ok(())
}
