//! Basic authentication against an htpasswd file of bcrypt hashes (`htpasswd -B`), as
//! distribution's `htpasswd` auth does: a request without valid credentials gets 401
//! with a `WWW-Authenticate: Basic realm=...` challenge, before anything is stored.

use std::collections::HashMap;
use std::path::Path;

use axum::http::{header, HeaderMap};
use base64::Engine as _;

use crate::error::{RegistryError, Result};

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}:{line}: not a `user:bcrypt-hash` line")]
    Syntax { path: String, line: usize },
}

#[derive(Debug)]
pub struct Auth {
    realm: String,
    /// user → bcrypt hash.
    users: HashMap<String, String>,
}

impl Auth {
    /// Loads an htpasswd file; only bcrypt (`$2a$`, `$2b$`, `$2y$`) entries are valid.
    pub fn from_htpasswd(path: &Path, realm: &str) -> Result<Auth, HtpasswdError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| HtpasswdError::Read {
            path: p.clone(),
            cause,
        })?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = || HtpasswdError::Syntax {
                path: p.clone(),
                line: i + 1,
            };
            let (user, hash) = line.split_once(':').ok_or_else(syntax)?;
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(syntax());
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Auth {
            realm: realm.to_string(),
            users,
        })
    }

    fn challenge(&self) -> RegistryError {
        RegistryError::Unauthorized {
            challenge: format!("Basic realm=\"{}\"", self.realm),
        }
    }

    /// Accepts a request whose `Authorization: Basic` names a user with that password.
    pub fn check(&self, headers: &HeaderMap) -> Result<()> {
        let credentials = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        let Some(credentials) = credentials else {
            return Err(self.challenge());
        };
        let (user, password) = credentials.split_once(':').unwrap_or((&credentials, ""));
        match self.users.get(user) {
            Some(hash) if bcrypt::verify(password, hash).unwrap_or(false) => Ok(()),
            _ => Err(self.challenge()),
        }
    }
}
