//! Process set-up: state directories, the PID file, the API listeners (unix sockets,
//! TCP with optional TLS as dockerd's `--tls`/`--tlsverify`), the tokio runtime and an
//! orderly shutdown (containers keep running: each has its own monitor).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pier_image::service::ImageService;
use rustix::fs::FlockOperation;

use crate::config::{DaemonConfig, ListenAddr};
use crate::Daemon;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: DaemonConfig) -> Result<()> {
    let addrs = config.listen_addrs()?;
    config.check_tcp_listeners()?;
    let sockets: Vec<PathBuf> = addrs
        .iter()
        .filter_map(|a| match a {
            ListenAddr::Unix(p) => Some(p.clone()),
            ListenAddr::Tcp(_) => None,
        })
        .collect();
    let tls = match config.tls_settings() {
        Some(settings) => Some(tls::server_config(&settings)?),
        None => None,
    };
    // As dockerd since CVE-2021-41091: no host user but root may enter the data root
    // (containers' files, upper dirs, logs, state) or the exec root (mounted rootfs).
    // Modes are set on existing directories too, made by an older, laxer pierd.
    // With user namespaces, the containers' mapped roots must pass through to their
    // own directories (each 0710, group the mapped root's): 0711 for the two above.
    let pass_through = if config.userns_remap.is_some() {
        0o711
    } else {
        0o710
    };
    make_private_dir(&config.data_root, pass_through)?;
    make_private_dir(&config.exec_root, 0o700)?;
    make_private_dir(&config.data_root.join("containers"), pass_through)?;
    make_private_dir(&config.data_root.join("image"), 0o700)?;
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
    let result = runtime.block_on(serve(daemon, &addrs, tls));
    for socket in &sockets {
        let _ = fs::remove_file(socket);
    }
    let _ = fs::remove_file(&pidfile);
    result
}

/// One API listener served with axum until `stop` turns true.
fn spawn_server<L>(
    listener: L,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    })
}

async fn serve(daemon: Arc<Daemon>, addrs: &[ListenAddr], tls: Option<tls::Server>) -> Result<()> {
    daemon.engine.restore();
    let daemon_engine = daemon.engine.clone();
    let app = crate::api::service(daemon);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let mut listening = Vec::new();
    for addr in addrs {
        match addr {
            ListenAddr::Unix(path) => {
                let listener = tokio::net::UnixListener::bind(path)
                    .with_context(|| format!("listening on {}", path.display()))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o660))
                    .with_context(|| format!("chmod {}", path.display()))?;
                servers.push(spawn_server(listener, app.clone(), stop_rx.clone()));
            }
            ListenAddr::Tcp(hostport) => {
                if !tls.as_ref().is_some_and(|t| t.verifies_clients) {
                    // dockerd's words (it also pauses a second; Pier does not).
                    for warning in [
                        "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.",
                        "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Be safe out there!",
                    ] {
                        eprintln!("pierd: warning: {warning} host=\"{addr}\"");
                    }
                }
                let listener = tokio::net::TcpListener::bind(hostport.as_str())
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                match &tls {
                    Some(server) => {
                        let listener = tls::Listener::new(listener, server.acceptor.clone());
                        servers.push(spawn_server(listener, app.clone(), stop_rx.clone()));
                    }
                    None => {
                        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                            let _ = tcp.set_nodelay(true);
                        });
                        servers.push(spawn_server(listener, app.clone(), stop_rx.clone()));
                    }
                }
            }
        }
        listening.push(addr.to_string());
    }
    eprintln!("pierd: API listening on {}", listening.join(", "));
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
    let engine = daemon_engine.clone();
    let _ = tokio::task::spawn_blocking(move || engine.net_shutdown()).await;
    Ok(())
}

/// [`make_dir`], and `mode` set even when the directory was there already.
fn make_private_dir(path: &Path, mode: u32) -> Result<()> {
    make_dir(path, mode)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
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

/// TLS for the TCP listeners: rustls with the ring provider, certificates and keys
/// in PEM files as dockerd takes them.
mod tls {
    use std::io;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;

    use crate::config::TlsSettings;

    /// How long a client may take to finish the TLS handshake.
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Why the TLS set-up could not be made.
    #[derive(Debug, thiserror::Error)]
    pub enum TlsError {
        #[error("could not read {what} {}: {source}", path.display())]
        Pem {
            what: &'static str,
            path: PathBuf,
            source: rustls_pki_types::pem::Error,
        },
        #[error("no certificate in {}", .0.display())]
        NoCertificate(PathBuf),
        #[error("CA certificate in {}: {source}", path.display())]
        BadCa {
            path: PathBuf,
            source: rustls::Error,
        },
        #[error("client verifier: {0}")]
        Verifier(#[from] rustls::server::VerifierBuilderError),
        #[error("could not load X509 key pair ({}, {}): {source}", cert.display(), key.display())]
        KeyPair {
            cert: PathBuf,
            key: PathBuf,
            source: rustls::Error,
        },
        #[error("TLS protocol versions: {0}")]
        Versions(rustls::Error),
    }

    /// The server side of the daemon's TLS.
    pub struct Server {
        pub acceptor: TlsAcceptor,
        /// `--tlsverify`: clients need a certificate signed by the CA.
        pub verifies_clients: bool,
    }

    fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let pem = |source| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            source,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(pem)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem)?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(path.to_path_buf()));
        }
        Ok(certs)
    }

    /// TLS 1.2 and 1.3 (Docker's minimum is 1.2), the server's certificate chain and
    /// key, and with a client CA, client certificates required and verified.
    pub fn server_config(settings: &TlsSettings) -> Result<Server, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Versions)?;
        let builder = match &settings.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certs("CA certificate", ca)? {
                    roots.add(cert).map_err(|source| TlsError::BadCa {
                        path: ca.clone(),
                        source,
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = certs("certificate", &settings.cert)?;
        let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|source| TlsError::Pem {
            what: "key",
            path: settings.key.clone(),
            source,
        })?;
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|source| TlsError::KeyPair {
                cert: settings.cert.clone(),
                key: settings.key.clone(),
                source,
            })?;
        Ok(Server {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            verifies_clients: settings.client_ca.is_some(),
        })
    }

    /// A TCP listener whose connections come out TLS'd. Handshakes run in their own
    /// tasks (a slow or silent client holds up nobody); failed ones are logged and
    /// dropped, as dockerd's `http: TLS handshake error`.
    pub struct Listener {
        local: io::Result<SocketAddr>,
        ready: tokio::sync::mpsc::Receiver<(Conn, SocketAddr)>,
    }

    impl Listener {
        pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Listener {
            let local = tcp.local_addr();
            let (tx, ready) = tokio::sync::mpsc::channel(16);
            tokio::spawn(async move {
                loop {
                    let (stream, peer) = tokio::select! {
                        // The server is gone: stop accepting.
                        _ = tx.closed() => return,
                        accepted = tcp.accept() => match accepted {
                            Ok(a) => a,
                            Err(e) => {
                                // Out of file descriptors and the like: back off.
                                eprintln!("pierd: accept: {e}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        },
                    };
                    let _ = stream.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => {
                                let _ = tx.send((Conn(tls), peer)).await;
                            }
                            Ok(Err(e)) => eprintln!("pierd: TLS handshake error from {peer}: {e}"),
                            Err(_) => eprintln!("pierd: TLS handshake timeout from {peer}"),
                        }
                    });
                }
            });
            Listener { local, ready }
        }
    }

    impl axum::serve::Listener for Listener {
        type Io = Conn;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Conn, SocketAddr) {
            match self.ready.recv().await {
                Some(conn) => conn,
                // The accept task only ends once this receiver is gone.
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            match &self.local {
                Ok(a) => Ok(*a),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            }
        }
    }

    /// A server-side TLS connection. A peer that closes TCP without TLS's
    /// close_notify reads as end of stream, not as an error: Docker's client ends
    /// a hijacked stream's stdin by shutting down the TCP write side only.
    pub struct Conn(tokio_rustls::server::TlsStream<TcpStream>);

    impl AsyncRead for Conn {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match Pin::new(&mut self.0).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        }
    }

    impl AsyncWrite for Conn {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.0.is_write_vectored()
        }
    }
}
