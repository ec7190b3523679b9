//! pier-registry: a registry server implementing the OCI distribution spec 1.1 (the
//! Docker Registry HTTP API v2) over a content-addressed filesystem store.
//!
//! [`http`] answers the API, [`storage`] keeps blobs, manifests, tags and uploads under
//! the root, [`manifest`] parses and checks pushed manifests, [`auth`] does htpasswd
//! basic auth and [`token`] bearer tokens, [`tls`] the TLS listener, [`metrics`] the Prometheus endpoint, [`gc`] garbage collection, [`config`] the settings from flags
//! and the config file.

pub mod auth;
pub mod config;
pub mod error;
pub mod gc;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod storage;
pub mod tls;
pub mod token;

use std::sync::Arc;

pub use config::Settings;
pub use error::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] RegistryError),
    #[error(transparent)]
    Htpasswd(#[from] auth::HtpasswdError),
    #[error(transparent)]
    Token(#[from] token::TokenSetupError),
    #[error("listening on {addr}: {cause}")]
    Bind { addr: String, cause: std::io::Error },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Serves the registry described by `settings` until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let store = storage::Store::open(&settings.root)?;
    store.clear_tmp()?;
    let users = match &settings.htpasswd {
        Some(path) => Some(auth::Htpasswd::load(path)?),
        None => None,
    };
    let auth = match (&settings.token, users) {
        (Some(t), users) => Some(auth::Auth::Token(token::TokenAuth::new(
            &t.access,
            &t.key,
            users,
            t.expiry_secs,
        )?)),
        (None, Some(users)) => Some(auth::Auth::Basic {
            realm: "pier-registry".into(),
            users,
        }),
        (None, None) => None,
    };
    let acceptor = match &settings.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let app = Arc::new(http::App::new(
        store,
        settings.read_only,
        auth,
        acceptor.is_some(),
    ));
    let listener = tokio::net::TcpListener::bind(&settings.addr)
        .await
        .map_err(|cause| ServeError::Bind {
            addr: settings.addr.clone(),
            cause,
        })?;
    eprintln!(
        "{}",
        serde_json::json!({
            "msg": "listening",
            "addr": listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "root": settings.root,
            "tls": acceptor.is_some(),
        })
    );
    if let Some(interval) = settings.gc_interval {
        tokio::spawn(collect_garbage(app.clone(), interval, settings.gc_grace));
    }
    let router = http::router(app).into_make_service_with_connect_info::<http::RemoteAddr>();
    match acceptor {
        Some(acceptor) => {
            let listener = tls::Listener::new(listener, acceptor).map_err(ServeError::Serve)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown())
                .await
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown())
                .await
        }
    }
    .map_err(ServeError::Serve)
}

/// Online garbage collection every `interval`, while the server keeps serving.
async fn collect_garbage(
    app: Arc<http::App>,
    interval: std::time::Duration,
    grace: std::time::Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let app = app.clone();
        let run = tokio::task::spawn_blocking(move || {
            let mut report = gc::collect(&app.store, Some(&app.gc_lock), grace, false)?;
            report.uploads = app.purge_uploads(gc::UPLOAD_EXPIRY)?;
            Ok::<_, RegistryError>(report)
        })
        .await;
        match run {
            Ok(Ok(report)) => eprintln!("{}", report.to_json(false)),
            Ok(Err(e)) => eprintln!(
                "{}",
                serde_json::json!({"msg": "gc failed", "error": e.to_string()})
            ),
            Err(e) => eprintln!(
                "{}",
                serde_json::json!({"msg": "gc failed", "error": e.to_string()})
            ),
        }
    }
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
