//! Registry endpoints for image names, and authenticated sessions on one repository.
//!
//! [`Client`] knows the daemon's registry settings: which registries may be spoken to
//! over plain HTTP (loopback always, as Docker; plus `--insecure-registry` hosts and
//! CIDRs) and the mirrors tried first for Docker Hub names. [`Client::repository`]
//! opens a [`Repository`]: an endpoint that answered the `/v2/` ping, with the
//! authorization the operation needs already obtained.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pier_image::digest::{Digest, Hasher};
use pier_image::image::media_types;
use pier_image::reference::Reference;

use crate::auth::{AuthConfig, Challenge, TokenResponse};
use crate::error::{Error, ErrorBody, Result};
use crate::transport::{split_host_port, Endpoint, RequestBody, Scheme, Transport};

/// Docker Hub's name in references.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
/// Where Docker Hub's registry API lives.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// The server address `docker login` uses for Docker Hub.
pub const DOCKER_HUB_INDEX: &str = "https://index.docker.io/v1/";
/// The most a manifest, index or token answer may be.
const MAX_DOCUMENT: usize = 8 * 1024 * 1024;
/// Redirects followed for one blob request.
const MAX_REDIRECTS: usize = 5;

/// Query-string escaping: everything but unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Every manifest type this client understands, as the `Accept` header.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The daemon's registry settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `--insecure-registry`: `host[:port]` or a CIDR.
    pub insecure: Vec<String>,
    /// `--registry-mirror`: URLs tried, in order, before Docker Hub.
    pub mirrors: Vec<String>,
}

/// The registry client: settings and a shared connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<RegistryConfig>,
    transport: Arc<Transport>,
}

/// Which access an operation needs on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Client {
    pub fn new(config: RegistryConfig) -> Client {
        Client {
            config: Arc::new(config),
            transport: Arc::new(Transport::new()),
        }
    }

    /// Whether `domain` may be spoken to over plain HTTP.
    pub fn is_insecure(&self, domain: &str) -> bool {
        let Some((host, _)) = split_host_port(domain) else {
            return false;
        };
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.config.insecure.iter().any(|entry| {
            let entry = entry
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if entry.eq_ignore_ascii_case(domain) {
                return true;
            }
            match (entry.split_once('/'), ip) {
                (Some((net, bits)), Some(ip)) => cidr_contains(net, bits, ip),
                _ => false,
            }
        })
    }

    /// The endpoints to try for a registry domain, in order.
    fn endpoints(&self, domain: &str) -> Result<Vec<Endpoint>> {
        let mut out = Vec::new();
        if domain == DOCKER_HUB_DOMAIN {
            for mirror in &self.config.mirrors {
                if let Some((endpoint, _)) = Endpoint::parse_url(mirror) {
                    out.push(endpoint);
                }
            }
            out.push(Endpoint {
                scheme: Scheme::Https,
                host: DOCKER_HUB_REGISTRY.to_string(),
                port: 443,
                skip_verify: false,
            });
            return Ok(out);
        }
        let (host, port) = split_host_port(domain)
            .ok_or_else(|| Error::InvalidArgument(format!("invalid registry {domain}")))?;
        let insecure = self.is_insecure(domain);
        out.push(Endpoint {
            scheme: Scheme::Https,
            host: host.clone(),
            port: port.unwrap_or(443),
            skip_verify: insecure,
        });
        if insecure {
            out.push(Endpoint {
                scheme: Scheme::Http,
                host,
                port: port.unwrap_or(80),
                skip_verify: false,
            });
        }
        Ok(out)
    }

    /// Opens a session on repository `path` of registry `domain` with `access`
    /// (and pull access on `mount_from` repositories, for cross-repository mounts).
    pub async fn repository(
        &self,
        domain: &str,
        path: &str,
        auth: &AuthConfig,
        access: Access,
        mount_from: &[String],
    ) -> Result<Repository> {
        let mut scopes = vec![format!(
            "repository:{path}:{}",
            match access {
                Access::Pull => "pull",
                Access::Push => "pull,push",
            }
        )];
        scopes.extend(
            mount_from
                .iter()
                .filter(|from| from.as_str() != path)
                .map(|from| format!("repository:{from}:pull")),
        );
        let (endpoint, challenge) = self.ping(domain).await?;
        let authorization = self
            .authorize(&endpoint, challenge.as_ref(), auth, &scopes)
            .await?;
        Ok(Repository {
            client: self.clone(),
            endpoint,
            path: path.to_string(),
            authorization,
            anonymous: auth.is_anonymous(),
        })
    }

    /// Checks credentials as `docker login` does: ping, then authenticate without a
    /// repository scope. Returns the endpoint that answered.
    pub async fn login(&self, domain: &str, auth: &AuthConfig) -> Result<Endpoint> {
        let (endpoint, challenge) = self.ping(domain).await?;
        let Some(challenge) = challenge else {
            return Ok(endpoint);
        };
        let authorization = self
            .authorize(&endpoint, Some(&challenge), auth, &[])
            .await?;
        if challenge == Challenge::Basic {
            // Basic auth is only checked by a request that carries it.
            let mut request = Request::get("/v2/")
                .body(RequestBody::Empty)
                .map_err(http)?;
            if let Some(a) = &authorization {
                request
                    .headers_mut()
                    .insert(header::AUTHORIZATION, header_value(a)?);
            }
            let response = self.transport.send(&endpoint, request).await?;
            if response.status() != StatusCode::OK {
                return Err(Error::Unauthorized(format!(
                    "login attempt to {} failed with status: {}",
                    endpoint.url("/v2/"),
                    status_text(response.status())
                )));
            }
        }
        Ok(endpoint)
    }

    /// `GET /v2/` on each endpoint until one answers; the answer's challenge, if 401.
    async fn ping(&self, domain: &str) -> Result<(Endpoint, Option<Challenge>)> {
        let mut last = None;
        for endpoint in self.endpoints(domain)? {
            let request = Request::get("/v2/")
                .body(RequestBody::Empty)
                .map_err(http)?;
            let response = match self.transport.send(&endpoint, request).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let status = response.status();
            let challenge = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(Challenge::parse);
            drain(response).await;
            match status {
                StatusCode::OK => return Ok((endpoint, None)),
                StatusCode::UNAUTHORIZED => return Ok((endpoint, challenge)),
                status => {
                    last = Some(Error::Registry(format!(
                        "error pinging registry {}: unexpected status {}",
                        endpoint.url("/v2/"),
                        status_text(status)
                    )));
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Transport(format!("no endpoint for registry {domain}"))))
    }

    /// The `Authorization` value for a challenge and the scopes wanted.
    async fn authorize(
        &self,
        endpoint: &Endpoint,
        challenge: Option<&Challenge>,
        auth: &AuthConfig,
        scopes: &[String],
    ) -> Result<Option<String>> {
        if !auth.registrytoken.is_empty() {
            return Ok(Some(format!("Bearer {}", auth.registrytoken)));
        }
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(auth.basic_header()),
            Some(Challenge::Bearer { realm, service }) => {
                let mut query = Vec::new();
                if let Some(service) = service {
                    query.push(format!("service={}", escape(service)));
                }
                for scope in scopes {
                    query.push(format!("scope={}", escape(scope)));
                }
                if !auth.username.is_empty() {
                    query.push(format!("account={}", escape(&auth.username)));
                }
                let separator = if realm.contains('?') { '&' } else { '?' };
                let url = if query.is_empty() {
                    realm.clone()
                } else {
                    format!("{realm}{separator}{}", query.join("&"))
                };
                let (token_endpoint, path) = Endpoint::parse_url(&url).ok_or_else(|| {
                    Error::Registry(format!("invalid token realm {realm:?} of {endpoint}"))
                })?;
                let mut request = Request::get(path).body(RequestBody::Empty).map_err(http)?;
                if let Some(basic) = auth.basic_header() {
                    request
                        .headers_mut()
                        .insert(header::AUTHORIZATION, header_value(&basic)?);
                }
                let response = self.transport.send(&token_endpoint, request).await?;
                let status = response.status();
                let body = read_limited(response, MAX_DOCUMENT).await?;
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    let text = ErrorBody::parse(&body)
                        .text()
                        .unwrap_or_else(|| "unauthorized: authentication required".into());
                    return Err(Error::Unauthorized(format!(
                        "Get \"{}\": {text}",
                        token_endpoint.url("/")
                    )));
                }
                if !status.is_success() {
                    return Err(Error::Registry(format!(
                        "token request to {realm} failed with status: {}",
                        status_text(status)
                    )));
                }
                let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                    Error::InvalidContent(format!("invalid token answer from {realm}: {e}"))
                })?;
                let token = token
                    .into_token()
                    .ok_or_else(|| Error::InvalidContent(format!("no token from {realm}")))?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }
}

/// One repository on one registry endpoint, authorized.
#[derive(Debug, Clone)]
pub struct Repository {
    client: Client,
    endpoint: Endpoint,
    path: String,
    authorization: Option<String>,
    anonymous: bool,
}

/// A manifest or index as fetched: exact bytes, media type and verified digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl Repository {
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sends a request to this repository's endpoint with its authorization.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: RequestBody,
    ) -> Result<Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(body)
            .map_err(http)?;
        if let Some(a) = &self.authorization {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, header_value(a)?);
        }
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(name.clone(), header_value(value)?);
        }
        self.client.transport.send(&self.endpoint, request).await
    }

    /// The error for a failed answer: 401/403/404 by class, with the registry's
    /// error text (`manifest unknown: manifest unknown`).
    async fn failure(&self, response: Response<Incoming>, what: &str) -> Error {
        let status = response.status();
        let body = read_limited(response, MAX_DOCUMENT)
            .await
            .unwrap_or_default();
        let errors = ErrorBody::parse(&body);
        let text = errors
            .text()
            .unwrap_or_else(|| format!("unexpected status {} from {what}", status_text(status)));
        match status {
            StatusCode::UNAUTHORIZED if self.authorization.is_none() && self.anonymous => {
                Error::Unauthorized("no basic auth credentials".to_string())
            }
            StatusCode::UNAUTHORIZED => Error::Unauthorized(text),
            StatusCode::FORBIDDEN => Error::Denied(text),
            StatusCode::NOT_FOUND => Error::NotFound(text),
            _ if errors.has_code("DENIED") => Error::Denied(text),
            _ => Error::Registry(text),
        }
    }

    /// Fetches a manifest or index by tag or digest, verifying its digest (against
    /// the reference's digest, else the registry's `Docker-Content-Digest`).
    pub async fn manifest(&self, reference: &Reference) -> Result<FetchedManifest> {
        let target = match (reference.digest(), reference.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        let response = self
            .send(
                Method::GET,
                &format!("/v2/{}/manifests/{target}", self.path),
                &[(header::ACCEPT, MANIFEST_ACCEPT.to_string())],
                RequestBody::Empty,
            )
            .await?;
        if !response.status().is_success() {
            return Err(match self.failure(response, "manifest").await {
                Error::NotFound(text) => Error::NotFound(format!(
                    "manifest for {} not found: {text}",
                    reference.familiar()
                )),
                other => other,
            });
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let bytes = read_limited(response, MAX_DOCUMENT).await?;
        let expected = reference.digest().cloned().or(header_digest);
        let digest = match expected {
            Some(expected) => {
                let actual = hash(&bytes, &expected);
                if actual != expected {
                    return Err(Error::InvalidContent(format!(
                        "manifest verification failed for digest {expected}"
                    )));
                }
                expected
            }
            None => Digest::sha256(&bytes),
        };
        if content_type == media_types::DOCKER_SCHEMA1
            || content_type == media_types::DOCKER_SCHEMA1_SIGNED
        {
            return Err(Error::Unsupported(format!(
                "pulling schema 1 manifests is not supported: {}",
                reference.familiar()
            )));
        }
        Ok(FetchedManifest {
            bytes,
            media_type: content_type,
            digest,
        })
    }

    /// Starts a blob download at byte `offset`, following redirects. Answers with
    /// `206` when the range was honoured, `200` (whole blob) otherwise.
    pub async fn blob(&self, digest: &Digest, offset: u64) -> Result<Response<Incoming>> {
        let headers: Vec<(header::HeaderName, String)> = if offset > 0 {
            vec![(header::RANGE, format!("bytes={offset}-"))]
        } else {
            Vec::new()
        };
        let mut response = self
            .send(
                Method::GET,
                &format!("/v2/{}/blobs/{digest}", self.path),
                &headers,
                RequestBody::Empty,
            )
            .await?;
        let mut hops = 0;
        while response.status().is_redirection() && hops < MAX_REDIRECTS {
            hops += 1;
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::Registry(format!("redirect without location for {digest}"))
                })?;
            drain(response).await;
            let (endpoint, path) = self.resolve_location(&location)?;
            let mut request = Request::get(path).body(RequestBody::Empty).map_err(http)?;
            for (name, value) in &headers {
                request
                    .headers_mut()
                    .insert(name.clone(), header_value(value)?);
            }
            // Credentials stay with the registry: storage backends get presigned URLs.
            if endpoint == self.endpoint {
                if let Some(a) = &self.authorization {
                    request
                        .headers_mut()
                        .insert(header::AUTHORIZATION, header_value(a)?);
                }
            }
            response = self.client.transport.send(&endpoint, request).await?;
        }
        if !response.status().is_success() {
            return Err(self.failure(response, "blob").await);
        }
        Ok(response)
    }

    /// A small blob (a config) in memory, verified.
    pub async fn blob_bytes(&self, digest: &Digest, size: u64) -> Result<Bytes> {
        let response = self.blob(digest, 0).await?;
        let bytes = read_limited(response, MAX_DOCUMENT.max(size as usize)).await?;
        if bytes.len() as u64 != size || hash(&bytes, digest) != *digest {
            return Err(Error::InvalidContent(format!(
                "filesystem layer verification failed for digest {digest}"
            )));
        }
        Ok(bytes)
    }

    /// Whether the registry has a blob (`HEAD`).
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let response = self
            .send(
                Method::HEAD,
                &format!("/v2/{}/blobs/{digest}", self.path),
                &[],
                RequestBody::Empty,
            )
            .await?;
        match response.status() {
            s if s.is_success() => {
                drain(response).await;
                Ok(true)
            }
            StatusCode::NOT_FOUND => {
                drain(response).await;
                Ok(false)
            }
            _ => Err(self.failure(response, "blob").await),
        }
    }

    /// Tries a cross-repository mount of `digest` from repository `from`; `false`
    /// when the registry started an ordinary upload instead (which is cancelled).
    pub async fn mount(&self, digest: &Digest, from: &str) -> Result<bool> {
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={}&from={}",
            self.path,
            escape(&digest.to_string()),
            escape(from)
        );
        let response = self
            .send(Method::POST, &path, &[], RequestBody::Empty)
            .await?;
        match response.status() {
            StatusCode::CREATED => {
                drain(response).await;
                Ok(true)
            }
            StatusCode::ACCEPTED => {
                let location = location(&response);
                drain(response).await;
                if let Some(location) = location {
                    if let Ok((endpoint, path)) = self.resolve_location(&location) {
                        if endpoint == self.endpoint {
                            if let Ok(r) = self
                                .send(Method::DELETE, &path, &[], RequestBody::Empty)
                                .await
                            {
                                drain(r).await;
                            }
                        }
                    }
                }
                Ok(false)
            }
            _ => Err(self.failure(response, "blob mount").await),
        }
    }

    /// Uploads a blob monolithically: `POST` for an upload URL, then one `PUT` with
    /// the content and its digest.
    pub async fn upload(&self, digest: &Digest, body: RequestBody, size: u64) -> Result<()> {
        let response = self
            .send(
                Method::POST,
                &format!("/v2/{}/blobs/uploads/", self.path),
                &[],
                RequestBody::Empty,
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.failure(response, "blob upload").await);
        }
        let location = location(&response)
            .ok_or_else(|| Error::Registry("blob upload without a location".into()))?;
        drain(response).await;
        let (endpoint, path) = self.resolve_location(&location)?;
        if endpoint != self.endpoint {
            return Err(Error::Registry(format!(
                "blob upload location {location} is on another host"
            )));
        }
        let separator = if path.contains('?') { '&' } else { '?' };
        let path = format!("{path}{separator}digest={}", escape(&digest.to_string()));
        let response = self
            .send(
                Method::PUT,
                &path,
                &[
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_LENGTH, size.to_string()),
                ],
                body,
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.failure(response, "blob upload").await);
        }
        drain(response).await;
        Ok(())
    }

    /// Puts a manifest under a tag (or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        target: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let digest = Digest::sha256(&bytes);
        let response = self
            .send(
                Method::PUT,
                &format!("/v2/{}/manifests/{target}", self.path),
                &[
                    (header::CONTENT_TYPE, media_type.to_string()),
                    (header::CONTENT_LENGTH, bytes.len().to_string()),
                ],
                RequestBody::full(bytes),
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.failure(response, "manifest upload").await);
        }
        drain(response).await;
        Ok(digest)
    }

    /// Every tag of the repository (following `Link` pagination).
    pub async fn tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut path = format!("/v2/{}/tags/list", self.path);
        loop {
            let response = self
                .send(Method::GET, &path, &[], RequestBody::Empty)
                .await?;
            if !response.status().is_success() {
                return Err(self.failure(response, "tags").await);
            }
            let next = response
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(link, _)| link.to_string());
            let body = read_limited(response, MAX_DOCUMENT).await?;
            let list: TagList = serde_json::from_slice(&body)
                .map_err(|e| Error::InvalidContent(format!("invalid tag list: {e}")))?;
            out.extend(list.tags.unwrap_or_default());
            match next {
                Some(link) => {
                    let (_, p) = self.resolve_location(&link)?;
                    path = p;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// A `Location` (absolute, or relative to this endpoint) as endpoint and path.
    fn resolve_location(&self, location: &str) -> Result<(Endpoint, String)> {
        if location.starts_with('/') {
            return Ok((self.endpoint.clone(), location.to_string()));
        }
        let (endpoint, path) = Endpoint::parse_url(location)
            .ok_or_else(|| Error::Registry(format!("invalid location {location:?}")))?;
        if endpoint.same_origin(&self.endpoint) {
            // The registry itself: keep its TLS settings.
            return Ok((self.endpoint.clone(), path));
        }
        Ok((endpoint, path))
    }
}

fn location(response: &Response<Incoming>) -> Option<String> {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads a whole answer, refusing more than `limit` bytes.
pub(crate) async fn read_limited(response: Response<Incoming>, limit: usize) -> Result<Bytes> {
    Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Transport(format!("reading registry answer: {e}")))
}

/// Reads and discards an answer's body, so its connection can be reused.
pub(crate) async fn drain(response: Response<Incoming>) {
    let _ = read_limited(response, MAX_DOCUMENT).await;
}

fn hash(bytes: &[u8], like: &Digest) -> Digest {
    let mut hasher = Hasher::new(like.algorithm());
    hasher.update(bytes);
    hasher.finish()
}

fn escape(text: &str) -> String {
    utf8_percent_encode(text, QUERY).to_string()
}

fn header_value(text: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|_| Error::InvalidArgument("invalid characters in a request header".into()))
}

fn http(e: hyper::http::Error) -> Error {
    Error::InvalidArgument(format!("invalid request: {e}"))
}

/// `401 Unauthorized`, as Go prints a status.
fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

/// Whether `ip` is in `net/bits`.
fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let c = Client::new(RegistryConfig {
            insecure: vec!["10.1.0.0/16".into(), "reg.example:5000".into()],
            mirrors: vec![],
        });
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(c.is_insecure("10.1.2.3:5000"));
        assert!(c.is_insecure("reg.example:5000"));
        assert!(!c.is_insecure("reg.example"));
        assert!(!c.is_insecure("10.2.0.1"));
        assert!(!c.is_insecure("docker.io"));
    }

    #[test]
    fn hub_names_try_mirrors_first() {
        let c = Client::new(RegistryConfig {
            insecure: vec![],
            mirrors: vec!["http://127.0.0.1:5001".into()],
        });
        let e = c.endpoints("docker.io").unwrap();
        assert_eq!(e[0].url("/v2/"), "http://127.0.0.1:5001/v2/");
        assert_eq!(e[1].url("/v2/"), "https://registry-1.docker.io/v2/");
        let e = c.endpoints("127.0.0.1:5000").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].url("/v2/"), "http://127.0.0.1:5000/v2/");
    }
}
