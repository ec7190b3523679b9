//! Docker-style bearer tokens, issued by pier-registry itself.
//!
//! A request without a token gets 401 and `WWW-Authenticate: Bearer realm="<origin>/token",
//! service="pier-registry",scope="repository:<name>:<actions>"`. The client asks the
//! realm for a token (`GET /token?service=...&scope=...`, with basic credentials from the
//! htpasswd file, or none for anonymous access); the token grants the requested actions
//! the access file allows. Tokens are JWTs signed with an Ed25519 key (`EdDSA`), with
//! `iss`, `sub`, `aud`, `iat`, `nbf`, `exp`, `jti` and Docker's `access` claim. A missing
//! or invalid/expired token is 401; a valid token without the action is 403 `DENIED`.
//!
//! The access file (JSON) lists rules; a rule's `account` is a user, `*` (any
//! authenticated user) or `""` (anonymous); `repository` is a name, a `prefix/*` or `*`;
//! `actions` are `pull`, `push`, `delete` or `*`:
//! `{"rules": [{"account": "alice", "repository": "team/*", "actions": ["pull", "push"]}]}`
//! The catalog and `/metrics` need `{"account": ..., "repository": "registry:catalog", ...}`
//! with any action.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use crate::auth::{basic_credentials, Access, Htpasswd, Need};
use crate::error::{RegistryError, Result};

pub const SERVICE: &str = "pier-registry";
const ISSUER: &str = "pier-registry";
const CATALOG: &str = "registry:catalog";

#[derive(Debug, thiserror::Error)]
pub enum TokenSetupError {
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: {cause}")]
    Access {
        path: String,
        cause: serde_json::Error,
    },
    #[error("{path}: not a PEM PKCS#8 Ed25519 private key")]
    Key { path: String },
    #[error("writing the new signing key {path}: {cause}")]
    WriteKey { path: String, cause: std::io::Error },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub account: String,
    pub repository: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResourceAccess {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    access: Vec<ResourceAccess>,
}

pub struct TokenAuth {
    key: Ed25519KeyPair,
    key_id: String,
    users: Option<Htpasswd>,
    rules: Vec<Rule>,
    expiry_secs: u64,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenAuth(key {}, {} rules)",
            self.key_id,
            self.rules.len()
        )
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Loads the signing key (PEM PKCS#8 Ed25519), making a new one there if absent.
fn signing_key(path: &Path) -> Result<Ed25519KeyPair, TokenSetupError> {
    let p = path.display().to_string();
    if !path.exists() {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| TokenSetupError::Key { path: p.clone() })?;
        let body = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(pem.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|cause| TokenSetupError::WriteKey {
                path: p.clone(),
                cause,
            })?;
    }
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(path)
        .map_err(|_| TokenSetupError::Key { path: p.clone() })?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
        .map_err(|_| TokenSetupError::Key { path: p })
}

/// `repository:<name>:<a,b>` → (type, name, actions). Names have no `:`, but a type may
/// carry a class (`repository(plugin)`).
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let kind = kind.split('(').next().unwrap_or(kind);
    Some((
        kind.to_string(),
        name.to_string(),
        actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

fn repository_matches(pattern: &str, name: &str) -> bool {
    pattern == "*"
        || pattern == name
        || pattern.strip_suffix("/*").is_some_and(|prefix| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

impl TokenAuth {
    pub fn new(
        access: &Path,
        key: &Path,
        users: Option<Htpasswd>,
        expiry_secs: u64,
    ) -> Result<TokenAuth, TokenSetupError> {
        let p = access.display().to_string();
        let text = std::fs::read(access).map_err(|cause| TokenSetupError::Read {
            path: p.clone(),
            cause,
        })?;
        let file: AccessFile = serde_json::from_slice(&text)
            .map_err(|cause| TokenSetupError::Access { path: p, cause })?;
        let key = signing_key(key)?;
        let key_id = b64(&key.public_key().as_ref()[..12]);
        Ok(TokenAuth {
            key,
            key_id,
            users,
            rules: file.rules,
            expiry_secs,
        })
    }

    /// The actions on `repository` that `account` (`""` for anonymous) may have.
    fn allowed(&self, account: &str, repository: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for rule in &self.rules {
            let account_ok =
                rule.account == account || (rule.account == "*" && !account.is_empty());
            if account_ok && repository_matches(&rule.repository, repository) {
                for a in &rule.actions {
                    if !out.contains(a) {
                        out.push(a.clone());
                    }
                }
            }
        }
        out
    }

    /// `GET /token`: authenticates the client (basic credentials, or anonymous) and
    /// issues a token for the requested scopes, cut down to what the rules allow.
    pub fn issue(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Response> {
        let account = match basic_credentials(headers) {
            None => String::new(),
            Some(Ok((user, password)))
                if self
                    .users
                    .as_ref()
                    .is_some_and(|u| u.verify(&user, &password)) =>
            {
                user
            }
            Some(_) => {
                return Err(RegistryError::Unauthorized {
                    challenge: format!("Basic realm=\"{SERVICE}\""),
                })
            }
        };
        let mut access = Vec::new();
        for (k, v) in crate::http::query_list(query) {
            if k != "scope" {
                continue;
            }
            for scope in v.split(' ') {
                let Some((kind, name, actions)) = parse_scope(scope) else {
                    continue;
                };
                let key = if kind == "registry" {
                    format!("registry:{name}")
                } else {
                    name.clone()
                };
                let allowed = self.allowed(&account, &key);
                let granted: Vec<String> = actions
                    .into_iter()
                    .filter(|a| allowed.iter().any(|x| x == a || x == "*"))
                    .collect();
                if !granted.is_empty() {
                    access.push(ResourceAccess {
                        kind,
                        name,
                        actions: granted,
                    });
                }
            }
        }
        let iat = now();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: account,
            aud: SERVICE.into(),
            iat,
            nbf: iat.saturating_sub(1),
            exp: iat + self.expiry_secs,
            jti: crate::storage::random_id()?,
            access,
        };
        let token = self.sign(&claims);
        let body = serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": self.expiry_secs,
            "issued_at": pier_time::format_rfc3339(iat as i64, 0),
        });
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response())
    }

    fn sign(&self, claims: &Claims) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.key_id});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(&serde_json::to_vec(claims).unwrap_or_default())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(signature.as_ref()))
    }

    /// The claims of a token this registry signed that is valid now.
    fn verify(&self, token: &str) -> Option<Claims> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .ok()?;
        UnparsedPublicKey::new(&ED25519, self.key.public_key().as_ref())
            .verify(signing_input.as_bytes(), &signature)
            .ok()?;
        let (header, claims) = signing_input.split_once('.')?;
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .ok()?,
        )
        .ok()?;
        if header["alg"] != "EdDSA" {
            return None;
        }
        let claims: Claims = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .ok()?,
        )
        .ok()?;
        let t = now();
        (claims.iss == ISSUER && claims.aud == SERVICE && claims.nbf <= t && t < claims.exp)
            .then_some(claims)
    }

    pub fn authorize(&self, headers: &HeaderMap, need: Need<'_>, origin: &str) -> Result<Access> {
        let scope = match need {
            Need::Any => None,
            Need::Catalog => Some(format!("{CATALOG}:*")),
            Need::Repository(name, actions) => {
                Some(format!("repository:{name}:{}", actions.join(",")))
            }
        };
        let challenge = |error: Option<&str>| {
            let mut c = format!("Bearer realm=\"{origin}/token\",service=\"{SERVICE}\"");
            if let Some(scope) = &scope {
                c.push_str(&format!(",scope=\"{scope}\""));
            }
            if let Some(e) = error {
                c.push_str(&format!(",error=\"{e}\""));
            }
            RegistryError::Unauthorized { challenge: c }
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            return Err(challenge(None));
        };
        let claims = self
            .verify(token.trim())
            .ok_or_else(|| challenge(Some("invalid_token")))?;
        let grants: Vec<(String, Vec<String>)> = claims
            .access
            .into_iter()
            .map(|a| {
                let key = if a.kind == "registry" {
                    format!("registry:{}", a.name)
                } else {
                    a.name
                };
                (key, a.actions)
            })
            .collect();
        let access = Access::Granted(grants);
        let permitted = match need {
            Need::Any => true,
            Need::Catalog => access.allows(CATALOG, "*"),
            Need::Repository(name, actions) => actions.iter().all(|a| access.allows(name, a)),
        };
        if permitted {
            Ok(access)
        } else {
            Err(RegistryError::Denied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_patterns() {
        assert_eq!(
            parse_scope("repository:a/b:pull,push"),
            Some((
                "repository".into(),
                "a/b".into(),
                vec!["pull".into(), "push".into()]
            ))
        );
        assert_eq!(
            parse_scope("registry:catalog:*"),
            Some(("registry".into(), "catalog".into(), vec!["*".into()]))
        );
        assert!(repository_matches("team/*", "team/app"));
        assert!(repository_matches("team/*", "team/a/b"));
        assert!(!repository_matches("team/*", "teamx/app"));
        assert!(!repository_matches("team/*", "team"));
        assert!(repository_matches("*", "anything"));
    }
}
