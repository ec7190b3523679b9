//! Docker's volume plugin protocol (legacy plugins): finding a plugin by name, activating
//! it, and a [`VolumeDriver`] that forwards each call to it.
//!
//! **Discovery** (as Docker's `pkg/plugins` does): in each directory, in order, the
//! first of `<name>.sock`, `<name>/<name>.sock` (a unix socket the plugin listens on),
//! `<name>.spec`, `<name>/<name>.spec` (a file holding a URL, `unix:///path` or
//! `tcp://host:port`) and `<name>.json`, `<name>/<name>.json` (`{"Name", "Addr",
//! "TLSConfig"}`). The directories are [`default_dirs`] plus Pier's own, a parameter so
//! that tests use their own. TLS is not supported: a spec with an `https://` address or
//! TLS files is refused with a message saying so, never downgraded to plain HTTP.
//!
//! **Calls**: `POST /Plugin.Activate` once (its `Implements` must list `VolumeDriver`),
//! then `POST /VolumeDriver.<Method>` with Docker's JSON bodies and answers, header
//! `Accept: application/vnd.docker.plugins.v1.2+json`. A plugin's error comes back in
//! dockerd's words: its `Err` alone when it answered success with an `Err`, and
//! `VolumeDriver.<Method>: <its Err>` when it answered an error status (the
//! `volume_plugins` test compares both with dockerd's); one that is down or does not
//! answer in time gives an error naming the plugin and its address. Calls are not
//! retried (Docker retries a refused connection for 30 s; a quick, clear failure serves
//! better, and the caller may try again).
//!
//! **Why hyper, not a hand-written HTTP client over `UnixStream`**: plugins are mostly
//! Go `net/http` servers, which answer bigger bodies (a `List` of many volumes) with
//! chunked encoding, may keep connections alive, and may speak over TCP as well as unix
//! sockets. hyper (already in the tree for pierd) gets HTTP/1.1 framing right for both
//! transports, and running each call under one `tokio::time::timeout` bounds the whole
//! exchange (connect, request, the full answer), where socket read timeouts would bound
//! only each read and let a trickling plugin hang a call for ever. The price is a
//! small current-thread runtime per call, made in the calling thread (or, when that
//! thread belongs to a runtime already, where none can be started, on a thread of its
//! own that the caller waits for).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::driver::{DriverVolume, Scope, VolumeDriver, VolumeError};

/// The media type of the protocol's version Pier speaks.
const ACCEPT: &str = "application/vnd.docker.plugins.v1.2+json";

/// How long one call may take, as Docker's plugin client allows.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Docker looks for legacy plugins: sockets, then spec files.
pub fn default_dirs() -> Vec<PathBuf> {
    [
        "/run/docker/plugins",
        "/etc/docker/plugins",
        "/usr/lib/docker/plugins",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// Where a plugin listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// `error looking up volume plugin NAME: plugin "NAME" not found`, Docker's words.
fn not_found(name: &str) -> VolumeError {
    VolumeError::NotFound(format!(
        "error looking up volume plugin {name}: plugin \"{name}\" not found"
    ))
}

fn lookup_error(name: &str, why: impl std::fmt::Display) -> VolumeError {
    VolumeError::Driver(format!("error looking up volume plugin {name}: {why}"))
}

/// A legacy plugin name: one path component, nothing a directory lookup could escape with.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Finds where plugin `name` listens, looking in `dirs` in order.
pub fn discover(name: &str, dirs: &[PathBuf]) -> Result<Endpoint, VolumeError> {
    use std::os::unix::fs::FileTypeExt;
    if !valid_name(name) {
        return Err(not_found(name));
    }
    for dir in dirs {
        for socket in [
            dir.join(format!("{name}.sock")),
            dir.join(name).join(format!("{name}.sock")),
        ] {
            if std::fs::metadata(&socket).is_ok_and(|m| m.file_type().is_socket()) {
                return Ok(Endpoint::Unix(socket));
            }
        }
        for spec in [
            dir.join(format!("{name}.spec")),
            dir.join(name).join(format!("{name}.spec")),
        ] {
            if spec.is_file() {
                let text = std::fs::read_to_string(&spec)
                    .map_err(|e| lookup_error(name, format!("reading {}: {e}", spec.display())))?;
                return parse_address(name, text.trim(), &spec);
            }
        }
        for json in [
            dir.join(format!("{name}.json")),
            dir.join(name).join(format!("{name}.json")),
        ] {
            if json.is_file() {
                return read_json_spec(name, &json);
            }
        }
    }
    Err(not_found(name))
}

/// A `<name>.json` spec file, Docker's `plugins.Plugin` shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonSpec {
    #[serde(default)]
    addr: String,
    #[serde(default, rename = "TLSConfig")]
    tls_config: Option<TlsConfig>,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct TlsConfig {
    #[serde(default, rename = "InsecureSkipVerify")]
    insecure_skip_verify: bool,
    #[serde(default, rename = "CAFile")]
    ca_file: String,
    #[serde(default, rename = "CertFile")]
    cert_file: String,
    #[serde(default, rename = "KeyFile")]
    key_file: String,
}

fn read_json_spec(name: &str, path: &Path) -> Result<Endpoint, VolumeError> {
    let text = std::fs::read(path)
        .map_err(|e| lookup_error(name, format!("reading {}: {e}", path.display())))?;
    let spec: JsonSpec = serde_json::from_slice(&text)
        .map_err(|e| lookup_error(name, format!("{}: {e}", path.display())))?;
    if let Some(tls) = &spec.tls_config {
        if tls.insecure_skip_verify
            || !tls.ca_file.is_empty()
            || !tls.cert_file.is_empty()
            || !tls.key_file.is_empty()
        {
            return Err(lookup_error(
                name,
                format!(
                    "{}: TLSConfig is not supported by Pier (plugins are reached over a unix \
                     socket or plain TCP)",
                    path.display()
                ),
            ));
        }
    }
    parse_address(name, &spec.addr, path)
}

/// `unix:///path` or `tcp://host:port` (plain HTTP); anything else is refused.
fn parse_address(name: &str, addr: &str, spec: &Path) -> Result<Endpoint, VolumeError> {
    if let Some(path) = addr.strip_prefix("unix://") {
        if path.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
    } else if let Some(host_port) = addr
        .strip_prefix("tcp://")
        .or_else(|| addr.strip_prefix("http://"))
    {
        let host_port = host_port.trim_end_matches('/');
        if !host_port.is_empty() && !host_port.contains('/') {
            return Ok(Endpoint::Tcp(host_port.to_string()));
        }
    } else if addr.starts_with("https://") {
        return Err(lookup_error(
            name,
            format!(
                "{}: address {addr:?} needs TLS, which Pier does not support for plugins",
                spec.display()
            ),
        ));
    }
    Err(lookup_error(
        name,
        format!(
            "{}: address {addr:?} is not unix:///path or tcp://host:port",
            spec.display()
        ),
    ))
}

/// Finds, activates and returns plugin `name` (no caching: see [`PluginRegistry`]).
pub fn find(name: &str, dirs: &[PathBuf]) -> Result<Arc<dyn VolumeDriver>, VolumeError> {
    Ok(PluginDriver::activate(
        name,
        discover(name, dirs)?,
        DEFAULT_TIMEOUT,
    )?)
}

/// Plugins found and activated, by name: each is activated once, as Docker does, and
/// found again if its socket went away (a plugin restarted elsewhere).
#[derive(Debug)]
pub struct PluginRegistry {
    dirs: Vec<PathBuf>,
    timeout: Duration,
    active: Mutex<HashMap<String, Arc<PluginDriver>>>,
}

impl PluginRegistry {
    /// A registry looking in `dirs` (usually [`default_dirs`] plus Pier's own).
    pub fn new(dirs: Vec<PathBuf>) -> PluginRegistry {
        PluginRegistry {
            dirs,
            timeout: DEFAULT_TIMEOUT,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// How long each call to a plugin may take.
    pub fn with_timeout(mut self, timeout: Duration) -> PluginRegistry {
        self.timeout = timeout;
        self
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The names of the plugins activated so far (sorted).
    pub fn active_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.active.lock().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    /// The driver of plugin `name`, activating it on first use.
    pub fn get(&self, name: &str) -> Result<Arc<dyn VolumeDriver>, VolumeError> {
        if let Some(driver) = self.active.lock().unwrap().get(name) {
            let gone = matches!(&driver.endpoint, Endpoint::Unix(p) if !p.exists());
            if !gone {
                return Ok(driver.clone());
            }
        }
        let endpoint = discover(name, &self.dirs)?;
        let driver = PluginDriver::activate(name, endpoint, self.timeout)?;
        self.active
            .lock()
            .unwrap()
            .insert(name.to_string(), driver.clone());
        Ok(driver)
    }
}

/// A volume driver served by a plugin.
#[derive(Debug)]
pub struct PluginDriver {
    name: String,
    endpoint: Endpoint,
    timeout: Duration,
    scope: Scope,
}

// The protocol's bodies and answers, in Docker's field names. Unknown fields of answers
// are kept (and ignored), so newer plugins still parse.

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NameRequest<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateRequest<'a> {
    name: &'a str,
    opts: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct MountRequest<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "ID")]
    id: &'a str,
}

#[derive(Serialize)]
struct EmptyRequest {}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ActivateAnswer {
    #[serde(default)]
    implements: Vec<String>,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrAnswer {
    #[serde(default)]
    err: String,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MountpointAnswer {
    #[serde(default)]
    mountpoint: String,
    #[serde(default)]
    err: String,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireVolume {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mountpoint: String,
    #[serde(default)]
    status: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    created_at: String,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

impl From<WireVolume> for DriverVolume {
    fn from(v: WireVolume) -> DriverVolume {
        DriverVolume {
            name: v.name,
            mountpoint: non_empty_path(v.mountpoint),
            status: v.status,
            created_at: (!v.created_at.is_empty()).then_some(v.created_at),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetAnswer {
    #[serde(default)]
    volume: Option<WireVolume>,
    #[serde(default)]
    err: String,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAnswer {
    #[serde(default)]
    volumes: Vec<WireVolume>,
    #[serde(default)]
    err: String,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CapabilitiesAnswer {
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Capabilities {
    #[serde(default)]
    scope: String,
    #[serde(flatten)]
    _extra: BTreeMap<String, serde_json::Value>,
}

fn non_empty_path(path: String) -> Option<PathBuf> {
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Why a call failed, before it is worded for the caller.
enum CallError {
    /// The plugin could not be reached, or did not answer in time, or not in HTTP.
    Transport(String),
    /// The plugin answered an error (non-2xx status or an `Err`).
    Plugin(String),
}

impl PluginDriver {
    /// Activates the plugin at `endpoint` and asks its capabilities.
    pub fn activate(
        name: &str,
        endpoint: Endpoint,
        timeout: Duration,
    ) -> Result<Arc<PluginDriver>, VolumeError> {
        let mut driver = PluginDriver {
            name: name.to_string(),
            endpoint,
            timeout,
            scope: Scope::Local,
        };
        let answer: ActivateAnswer = driver
            .call("Plugin.Activate", &EmptyRequest {})
            .map_err(|e| lookup_error(name, driver.describe("Plugin.Activate", e)))?;
        if !answer.implements.iter().any(|i| i == "VolumeDriver") {
            return Err(VolumeError::NotFound(format!(
                "error looking up volume plugin {name}: plugin {name:?} does not implement \
                 VolumeDriver (it implements {:?})",
                answer.implements
            )));
        }
        // `Capabilities` is optional: on any failure the driver is local, as in Docker.
        if let Ok(caps) =
            driver.call::<_, CapabilitiesAnswer>("VolumeDriver.Capabilities", &EmptyRequest {})
        {
            if caps.capabilities.scope.eq_ignore_ascii_case("global") {
                driver.scope = Scope::Global;
            }
        }
        Ok(Arc::new(driver))
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `METHOD: why`, naming the plugin when it could not be reached.
    fn describe(&self, method: &str, error: CallError) -> String {
        match error {
            CallError::Plugin(err) => format!("{method}: {err}"),
            CallError::Transport(why) => format!(
                "{method}: plugin {:?} at {}: {why}",
                self.name, self.endpoint
            ),
        }
    }

    /// Calls `method` and reads its answer; an `Err` in the answer is the plugin's error.
    fn call_checked<A: for<'de> Deserialize<'de> + Default>(
        &self,
        method: &str,
        request: &impl Serialize,
        err_of: impl FnOnce(&A) -> &str,
    ) -> Result<A, VolumeError> {
        let answer = self
            .call::<_, A>(method, request)
            .map_err(|e| VolumeError::Driver(self.describe(method, e)))?;
        // An `Err` in a success answer is the plugin's text alone, as dockerd shows it
        // (an error status gets the method in front, as dockerd's plugin client does).
        let err = err_of(&answer);
        if !err.is_empty() {
            return Err(VolumeError::Driver(err.to_string()));
        }
        Ok(answer)
    }

    /// One `POST /<method>` with a JSON body, its answer parsed.
    fn call<R: Serialize, A: for<'de> Deserialize<'de> + Default>(
        &self,
        method: &str,
        request: &R,
    ) -> Result<A, CallError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| CallError::Transport(format!("encoding the request: {e}")))?;
        let (status, bytes) =
            http::post(&self.endpoint, method, body, self.timeout).map_err(CallError::Transport)?;
        if !(200..300).contains(&status) {
            // Plugins answer errors as {"Err": "..."}, usually with status 500.
            let err = serde_json::from_slice::<ErrAnswer>(&bytes)
                .ok()
                .map(|e| e.err)
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| {
                    let text = String::from_utf8_lossy(&bytes).trim().to_string();
                    if text.is_empty() {
                        format!("status {status}")
                    } else {
                        text
                    }
                });
            return Err(CallError::Plugin(err));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(A::default());
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            CallError::Transport(format!("its answer is not the protocol's JSON: {e}"))
        })
    }
}

impl VolumeDriver for PluginDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
        self.call_checked::<ErrAnswer>(
            "VolumeDriver.Create",
            &CreateRequest { name, opts },
            |a| &a.err,
        )?;
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), VolumeError> {
        self.call_checked::<ErrAnswer>("VolumeDriver.Remove", &NameRequest { name }, |a| &a.err)?;
        Ok(())
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>, VolumeError> {
        let answer = self.call_checked::<MountpointAnswer>(
            "VolumeDriver.Path",
            &NameRequest { name },
            |a| &a.err,
        )?;
        Ok(non_empty_path(answer.mountpoint))
    }

    fn mount(&self, name: &str, mount_id: &str) -> Result<PathBuf, VolumeError> {
        let answer = self.call_checked::<MountpointAnswer>(
            "VolumeDriver.Mount",
            &MountRequest { name, id: mount_id },
            |a| &a.err,
        )?;
        let path = PathBuf::from(&answer.mountpoint);
        if !path.is_absolute() {
            return Err(VolumeError::Driver(format!(
                "VolumeDriver.Mount: plugin {:?} answered mountpoint {:?}, not an absolute path",
                self.name, answer.mountpoint
            )));
        }
        Ok(path)
    }

    fn unmount(&self, name: &str, mount_id: &str) -> Result<(), VolumeError> {
        self.call_checked::<ErrAnswer>(
            "VolumeDriver.Unmount",
            &MountRequest { name, id: mount_id },
            |a| &a.err,
        )?;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<DriverVolume, VolumeError> {
        let method = "VolumeDriver.Get";
        // A plugin's error to Get means it has no such volume.
        let answer = self
            .call::<_, GetAnswer>(method, &NameRequest { name })
            .map_err(|e| match e {
                CallError::Plugin(err) => VolumeError::NotFound(format!("{method}: {err}")),
                transport => VolumeError::Driver(self.describe(method, transport)),
            })?;
        if !answer.err.is_empty() {
            return Err(VolumeError::NotFound(answer.err));
        }
        match answer.volume {
            Some(v) => {
                let mut v = DriverVolume::from(v);
                if v.name.is_empty() {
                    v.name = name.to_string();
                }
                Ok(v)
            }
            None => Err(VolumeError::NotFound(format!(
                "{method}: plugin {:?} has no volume {name:?}",
                self.name
            ))),
        }
    }

    fn list(&self) -> Result<Vec<DriverVolume>, VolumeError> {
        let answer =
            self.call_checked::<ListAnswer>("VolumeDriver.List", &EmptyRequest {}, |a| &a.err)?;
        Ok(answer.volumes.into_iter().map(DriverVolume::from).collect())
    }
}

/// The HTTP exchange: one POST on a fresh connection, under one deadline.
mod http {
    use std::time::Duration;

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncRead, AsyncWrite};

    use super::{Endpoint, ACCEPT};

    /// POSTs `body` to `/<method>`; answers the status and the whole body, or why not.
    pub(super) fn post(
        endpoint: &Endpoint,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), String> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from a thread that belongs to a runtime (an async task, or one
            // entered into it): no runtime can be started there, so the call gets a
            // thread of its own. The caller still waits for it: the trait is blocking.
            return std::thread::scope(|scope| {
                scope
                    .spawn(|| post_here(endpoint, method, body, timeout))
                    .join()
                    .unwrap_or_else(|_| Err("the call panicked".into()))
            });
        }
        post_here(endpoint, method, body, timeout)
    }

    fn post_here(
        endpoint: &Endpoint,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("starting the call: {e}"))?;
        runtime.block_on(async {
            let exchange = async {
                match endpoint {
                    Endpoint::Unix(path) => {
                        let stream = tokio::net::UnixStream::connect(path)
                            .await
                            .map_err(|e| e.to_string())?;
                        exchange(stream, method, body).await
                    }
                    Endpoint::Tcp(addr) => {
                        let stream = tokio::net::TcpStream::connect(addr.as_str())
                            .await
                            .map_err(|e| e.to_string())?;
                        exchange(stream, method, body).await
                    }
                }
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        })
    }

    async fn exchange<S>(stream: S, method: &str, body: Vec<u8>) -> Result<(u16, Bytes), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        // The connection is driven beside the request; it ends with this call's runtime.
        tokio::spawn(connection);
        let request = hyper::Request::post(format!("/{method}"))
            .header(hyper::header::HOST, "plugin")
            .header(hyper::header::ACCEPT, ACCEPT)
            .header(hyper::header::CONTENT_TYPE, ACCEPT)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading its answer: {e}"))?
            .to_bytes();
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests;
