//! The CLI's face of the Engine API client: `pier_api::client::blocking` (hyper on a
//! current-thread runtime) with the calls the commands make, and errors worded as
//! the docker CLI prints them (`Error response from daemon: …`). Starting `pierd`
//! when nothing answers is [`crate::autostart`]'s.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use pier_api::client::blocking::{self, Upgraded};
use pier_api::client::stream::Demuxer;
use pier_api::client::{ApiVersion, Body, Config, Method, Request, TlsOptions};
use serde_json::Value;

/// The default daemon socket.
pub const DEFAULT_HOST: &str = "unix:///run/pier/pier.sock";

/// The newest API version the CLI speaks (negotiated down for older daemons).
const CLIENT_API: ApiVersion = ApiVersion::new(1, 50);

/// Where the daemon is and how to talk to it, from the global flags and the
/// environment, as the docker CLI takes them.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `-H` (or `PIER_HOST`); else `DOCKER_HOST`; else [`DEFAULT_HOST`].
    pub host: Option<String>,
    /// `--tls`, `--tlsverify` (or `DOCKER_TLS`, `DOCKER_TLS_VERIFY`).
    pub tls: bool,
    pub tlsverify: bool,
    /// `--tlscacert`, `--tlscert`, `--tlskey` (default: `ca.pem`, `cert.pem`,
    /// `key.pem` in `DOCKER_CERT_PATH`, else `~/.docker`).
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
}

impl Target {
    /// The host to use.
    pub fn host(&self) -> String {
        self.host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string())
    }

    /// The client's configuration; `DOCKER_API_VERSION` pins the API version.
    pub fn config(&self) -> Result<Config> {
        let mut config = Config::new(&self.host())?;
        config.max_api_version = CLIENT_API;
        config.user_agent = format!("pier/{}", env!("CARGO_PKG_VERSION"));
        config.tls =
            pier_api::client::tls_from_env(self.tls, self.tlsverify).map(|from_env| TlsOptions {
                ca: self.tlscacert.clone().or(from_env.ca),
                cert: self.tlscert.clone().or(from_env.cert),
                key: self.tlskey.clone().or(from_env.key),
                verify: from_env.verify,
            });
        if let Some(v) = std::env::var("DOCKER_API_VERSION")
            .ok()
            .filter(|v| !v.is_empty())
        {
            config.api_version = Some(v.parse()?);
        }
        Ok(config)
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    api: blocking::Client,
}

/// An answer: status and a body reader.
pub struct Response {
    pub status: u16,
    pub body: Box<dyn Read + Send>,
}

impl Response {
    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.body.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The body as JSON; an error status becomes the daemon's message.
    pub fn json(self) -> Result<Value> {
        let status = self.status;
        let bytes = self.bytes()?;
        if status >= 400 {
            return Err(daemon_error(status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| anyhow!("reading the daemon's answer: {e}"))
    }

    /// Fails with the daemon's message on an error status.
    pub fn check(self) -> Result<Response> {
        if self.status >= 400 {
            let status = self.status;
            let bytes = self.bytes()?;
            return Err(daemon_error(status, &bytes));
        }
        Ok(self)
    }
}

/// `Error response from daemon: <message>`, as the docker CLI prints it.
pub fn daemon_error(status: u16, body: &[u8]) -> anyhow::Error {
    from_api(pier_api::client::Error::from_answer(status, body))
}

/// The client's error for the CLI: the daemon's answers as [`DaemonError`] (which
/// callers look for), the rest as they are.
fn from_api(e: pier_api::client::Error) -> anyhow::Error {
    match e {
        pier_api::client::Error::Daemon { message, .. } => anyhow!(DaemonError { message }),
        e => anyhow!(e),
    }
}

/// An error the daemon answered.
#[derive(Debug)]
pub struct DaemonError {
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for DaemonError {}

/// Status, headers (lower-case names) and body of an answer.
pub type FullResponse = (u16, Vec<(String, String)>, Box<dyn Read + Send>);

fn method(name: &str) -> Result<Method> {
    Method::from_bytes(name.as_bytes()).map_err(|e| anyhow!("method {name:?}: {e}"))
}

impl Client {
    /// A client for `target` (nothing connected yet).
    pub fn new(target: &Target) -> Result<Client> {
        Ok(Client {
            api: blocking::Client::new(target.config()?).map_err(from_api)?,
        })
    }

    /// Pings the daemon and settles the API version with it.
    pub fn negotiate(&self) -> Result<(), pier_api::client::Error> {
        self.api.negotiate().map(|_| ())
    }

    /// A copy that sends `name: value` with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        Client {
            api: self.api.with_header(name, value),
        }
    }

    fn send(&self, req: Request) -> Result<blocking::Response> {
        self.api.send(req).map_err(from_api)
    }

    /// A request with an optional body (content type, bytes).
    pub fn request(
        &self,
        method_name: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Response> {
        let mut req = Request::new(method(method_name)?, path);
        if let Some((content_type, bytes)) = body {
            req = req.body(content_type, Body::full(bytes.to_vec()));
        }
        let (status, _, body) = self.send(req)?.into_parts();
        Ok(Response {
            status,
            body: Box::new(body),
        })
    }

    /// A request without a body, answered with its status, headers (names in lower
    /// case) and body (not to be read for `HEAD`).
    pub fn request_full(&self, method_name: &str, path: &str) -> Result<FullResponse> {
        let (status, headers, body) = self
            .send(Request::new(method(method_name)?, path))?
            .into_parts();
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok((status, headers, Box::new(body)))
    }

    /// A request whose body is streamed from `body` (chunked transfer encoding),
    /// for uploads too big to hold in memory (`cp` into a container).
    pub fn request_streaming(
        &self,
        method_name: &str,
        path: &str,
        content_type: &str,
        body: impl Read + Send,
    ) -> Result<Response> {
        let req = Request::new(method(method_name)?, path);
        let (status, _, body) = self
            .api
            .send_reader(req, content_type, body)
            .map_err(from_api)?
            .into_parts();
        Ok(Response {
            status,
            body: Box::new(body),
        })
    }

    pub fn get_json(&self, path: &str) -> Result<Value> {
        self.request("GET", path, None)?.json()
    }

    pub fn post_json(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        self.request(
            "POST",
            path,
            bytes.as_deref().map(|b| ("application/json", b)),
        )?
        .json()
    }

    /// A hijacked stream (`attach`): after the 101 answer, the raw connection.
    pub fn hijack(&self, path: &str) -> Result<Upgraded> {
        self.hijack_with(path, None)
    }

    /// A hijacked stream with a JSON body (`exec start`). Output the daemon sends
    /// right after the answer's head stays in the stream.
    pub fn hijack_with(&self, path: &str, body: Option<&Value>) -> Result<Upgraded> {
        let mut req = Request::post(path);
        if let Some(body) = body {
            req = req.json(body).map_err(from_api)?;
        }
        self.api.upgrade(req).map_err(from_api)
    }
}

/// Splits Docker's multiplexed stream (`[stream,0,0,0,len_be32]` frames) to stdout
/// and stderr; for a tty container, copies raw bytes to stdout.
pub fn demux(mut input: impl Read, tty: bool) -> io::Result<()> {
    if tty {
        let mut out = io::stdout().lock();
        let mut buf = [0u8; 32 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
    Demuxer::new(input).copy_to(&mut io::stdout(), &mut io::stderr())
}
