//! Who may do what. Two modes:
//! - htpasswd basic auth (bcrypt entries, `htpasswd -B`), as distribution's `htpasswd`
//!   auth: valid credentials allow everything, anything else is 401 with a
//!   `WWW-Authenticate: Basic realm=...` challenge;
//! - Docker-style bearer tokens ([`crate::token`]): a 401 challenge names the token
//!   endpoint and the scope needed; tokens carry per-repository actions.
//!
//! Either way the check runs before the request is handled, so a refused request
//! stores nothing.

use std::collections::HashMap;
use std::path::Path;

use axum::http::{header, HeaderMap};
use base64::Engine as _;

use crate::error::{RegistryError, Result};
use crate::token::TokenAuth;

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}:{line}: not a `user:bcrypt-hash` line")]
    Syntax { path: String, line: usize },
}

/// The users of an htpasswd file: user → bcrypt hash.
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    /// Loads an htpasswd file; only bcrypt (`$2a$`, `$2b$`, `$2y$`) entries are valid.
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
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
        Ok(Htpasswd { users })
    }

    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }
}

/// The user and password of an `Authorization: Basic` header; `None` without one,
/// `Some(Err)` for one that does not decode.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(match decoded {
        Some(text) => match text.split_once(':') {
            Some((u, p)) => Ok((u.to_string(), p.to_string())),
            None => Err(()),
        },
        None => Err(()),
    })
}

/// What a request needs.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// `/v2/`: any authenticated client.
    Any,
    /// `/v2/_catalog` and `/metrics`: `registry:catalog:*`.
    Catalog,
    /// A repository action (`pull`, `push`, `delete`).
    Repository(&'a str, &'a [&'static str]),
}

/// What an authorized request may do.
#[derive(Debug, Clone)]
pub enum Access {
    All,
    /// repository → actions, from a bearer token.
    Granted(Vec<(String, Vec<String>)>),
}

impl Access {
    pub fn allows(&self, repository: &str, action: &str) -> bool {
        match self {
            Access::All => true,
            Access::Granted(grants) => grants.iter().any(|(r, actions)| {
                r == repository && actions.iter().any(|a| a == action || a == "*")
            }),
        }
    }
}

#[derive(Debug)]
pub enum Auth {
    Basic { realm: String, users: Htpasswd },
    Token(TokenAuth),
}

impl Auth {
    /// Authorizes a request needing `need`; `origin` is `scheme://host` of the request,
    /// for the token realm.
    pub fn authorize(&self, headers: &HeaderMap, need: Need<'_>, origin: &str) -> Result<Access> {
        match self {
            Auth::Basic { realm, users } => match basic_credentials(headers) {
                Some(Ok((user, password))) if users.verify(&user, &password) => Ok(Access::All),
                _ => Err(RegistryError::Unauthorized {
                    challenge: format!("Basic realm=\"{realm}\""),
                }),
            },
            Auth::Token(token) => token.authorize(headers, need, origin),
        }
    }
}
