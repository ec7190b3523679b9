//! Registry authentication: credentials, `WWW-Authenticate` challenges and Docker's
//! bearer token protocol.
//!
//! A session pings `/v2/` first. An answer of 401 carries a challenge: `Basic` means
//! every request carries the user's credentials; `Bearer realm=..,service=..` means a
//! token is fetched from the realm (with the credentials as Basic auth, if any) for the
//! scopes the operation needs (`repository:NAME:pull[,push]`), and sent as
//! `Authorization: Bearer`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// What a user logs in with, as Docker's `AuthConfig` (`X-Registry-Auth`, `/auth`,
/// `~/.docker/config.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// `user:password` in base64, as config.json stores it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// An OAuth refresh token (from a previous login).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token to send as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

/// A header's base64 JSON (url-safe padded or not, or standard), as Docker's clients
/// encode `X-Registry-Auth` and `X-Registry-Config`.
fn decode_header_json<T: serde::de::DeserializeOwned>(value: &str) -> Option<T> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let engines = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
    ];
    engines
        .into_iter()
        .filter_map(|engine| engine.decode(value).ok())
        .find_map(|bytes| serde_json::from_slice(&bytes).ok())
}

impl AuthConfig {
    /// Decodes an `X-Registry-Auth` header: base64url (padded or not) JSON. An empty
    /// or undecodable header is anonymous, as dockerd treats it.
    pub fn from_header(value: &str) -> AuthConfig {
        let mut config: AuthConfig = decode_header_json(value).unwrap_or_default();
        config.fill_from_auth();
        config
    }

    /// Decodes an `X-Registry-Config` header (a build's credentials): base64 JSON of
    /// registry address → credentials, keyed by the address as the client wrote it. An
    /// empty or undecodable header is no credentials.
    pub fn map_from_header(value: &str) -> std::collections::HashMap<String, AuthConfig> {
        let mut map: std::collections::HashMap<String, AuthConfig> =
            decode_header_json(value).unwrap_or_default();
        for config in map.values_mut() {
            config.fill_from_auth();
        }
        map
    }

    /// Fills `username`/`password` from `auth` when only that is set.
    pub fn fill_from_auth(&mut self) {
        if self.username.is_empty() && !self.auth.is_empty() {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&self.auth) {
                if let Ok(text) = String::from_utf8(bytes) {
                    if let Some((user, pass)) = text.split_once(':') {
                        self.username = user.to_string();
                        self.password = pass.to_string();
                    }
                }
            }
        }
    }

    /// Whether there is anything to authenticate with.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty() && self.registrytoken.is_empty() && self.identitytoken.is_empty()
    }

    /// `Basic <base64(user:password)>`, if a user name is given.
    pub fn basic_header(&self) -> Option<String> {
        if self.username.is_empty() {
            return None;
        }
        let raw = format!("{}:{}", self.username, self.password);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses the first challenge of a `WWW-Authenticate` value; `None` for a scheme
    /// other than Basic and Bearer or a Bearer without a realm.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
        let params = parse_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
            }),
            _ => None,
        }
    }
}

/// `key=value` or `key="quoted \"value\""` pairs, comma separated.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
}

/// A token endpoint's answer; `token` and `access_token` are synonyms.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
}

impl TokenResponse {
    pub(crate) fn into_token(self) -> Option<String> {
        [self.token, self.access_token]
            .into_iter()
            .find(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn registry_auth_header_decodes() {
        let json = r#"{"username":"u","password":"p?>","serveraddress":"h:5000"}"#;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = AuthConfig::from_header(&enc);
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p?>"));
        assert_eq!(
            a.basic_header().unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("u:p?>")
            )
        );
        assert!(AuthConfig::from_header("").is_anonymous());
        assert!(AuthConfig::from_header("e30=").is_anonymous());
    }
}
