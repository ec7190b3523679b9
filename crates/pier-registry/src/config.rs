//! The server's settings: command-line flags over an optional JSON config file.
//!
//! The file holds the same settings as the flags, e.g.
//! `{"addr": "0.0.0.0:5000", "root": "/var/lib/pier-registry", "htpasswd": "/etc/pier-registry/htpasswd",
//!   "tlsCert": "cert.pem", "tlsKey": "key.pem", "readOnly": false,
//!   "tokenAccess": "access.json", "tokenKey": "token-key.pem", "tokenExpiry": 300,
//!   "gcInterval": 3600, "gcGrace": 3600}`;
//! a flag given on the command line wins over the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<String>,
    pub root: Option<PathBuf>,
    pub htpasswd: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub read_only: Option<bool>,
    pub token_access: Option<PathBuf>,
    pub token_key: Option<PathBuf>,
    pub token_expiry: Option<u64>,
    pub gc_interval: Option<u64>,
    pub gc_grace: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: {cause}")]
    Parse {
        path: String,
        cause: serde_json::Error,
    },
    #[error("--tls-cert and --tls-key go together")]
    TlsHalf,
    #[error("--token-key and --token-expiry need --token-access")]
    TokenWithoutAccess,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read(path).map_err(|cause| ConfigError::Read {
            path: p.clone(),
            cause,
        })?;
        serde_json::from_slice(&text).map_err(|cause| ConfigError::Parse { path: p, cause })
    }

    /// These settings with `over`'s set fields taking precedence.
    pub fn merged(self, over: FileConfig) -> FileConfig {
        FileConfig {
            addr: over.addr.or(self.addr),
            root: over.root.or(self.root),
            htpasswd: over.htpasswd.or(self.htpasswd),
            tls_cert: over.tls_cert.or(self.tls_cert),
            tls_key: over.tls_key.or(self.tls_key),
            read_only: over.read_only.or(self.read_only),
            token_access: over.token_access.or(self.token_access),
            token_key: over.token_key.or(self.token_key),
            token_expiry: over.token_expiry.or(self.token_expiry),
            gc_interval: over.gc_interval.or(self.gc_interval),
            gc_grace: over.gc_grace.or(self.gc_grace),
        }
    }
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: String,
    pub root: PathBuf,
    pub htpasswd: Option<PathBuf>,
    /// Certificate chain and key (PEM) when serving TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub read_only: bool,
    pub token: Option<TokenSettings>,
    /// Online garbage collection every this often (off when `None`).
    pub gc_interval: Option<std::time::Duration>,
    /// Unreferenced blobs younger than this are kept.
    pub gc_grace: std::time::Duration,
}

pub const DEFAULT_GC_GRACE: u64 = 3600;

/// Bearer-token auth: the access rules, the signing key (made if absent) and how long
/// tokens live.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub access: PathBuf,
    pub key: PathBuf,
    pub expiry_secs: u64,
}

pub const DEFAULT_TOKEN_EXPIRY: u64 = 300;

pub const DEFAULT_ADDR: &str = "0.0.0.0:5000";
pub const DEFAULT_ROOT: &str = "/var/lib/pier-registry";

impl TryFrom<FileConfig> for Settings {
    type Error = ConfigError;

    fn try_from(c: FileConfig) -> Result<Settings, ConfigError> {
        let tls = match (c.tls_cert, c.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(ConfigError::TlsHalf),
        };
        let root = c.root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        let token = match c.token_access {
            Some(access) => Some(TokenSettings {
                access,
                key: c.token_key.unwrap_or_else(|| root.join("token-key.pem")),
                expiry_secs: c.token_expiry.unwrap_or(DEFAULT_TOKEN_EXPIRY),
            }),
            None if c.token_key.is_some() || c.token_expiry.is_some() => {
                return Err(ConfigError::TokenWithoutAccess)
            }
            None => None,
        };
        Ok(Settings {
            addr: c.addr.unwrap_or_else(|| DEFAULT_ADDR.to_string()),
            root,
            htpasswd: c.htpasswd,
            tls,
            read_only: c.read_only.unwrap_or(false),
            token,
            gc_interval: c
                .gc_interval
                .filter(|s| *s > 0)
                .map(std::time::Duration::from_secs),
            gc_grace: std::time::Duration::from_secs(c.gc_grace.unwrap_or(DEFAULT_GC_GRACE)),
        })
    }
}
