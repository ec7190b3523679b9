//! A small blocking Engine API client over a unix socket: HTTP/1.1 with one
//! connection per request (`Connection: close`), chunked and sized bodies, and
//! hijacked streams for attach. Also starts `pierd` when the default socket has no
//! daemon.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// The default daemon socket.
pub const DEFAULT_HOST: &str = "unix:///run/pier/pier.sock";

/// The API version the CLI speaks (the daemon may serve newer ones).
const CLIENT_API: &str = "1.50";

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    /// Headers sent with every request of this client (`X-Registry-Auth`).
    extra_headers: Vec<(String, String)>,
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
        serde_json::from_slice(&bytes).context("reading the daemon's answer")
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
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let message = if message.is_empty() {
        format!("status {status}")
    } else {
        message
    };
    anyhow!(DaemonError { message })
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

impl Client {
    /// A client for `host` (`unix://PATH`). With the default host (or any host when
    /// `PIER_AUTOSTART=1`) and no daemon answering, starts `pierd` first, on
    /// `data_root`, with the socket's directory as its exec root.
    pub fn connect(host: &str, data_root: &Path) -> Result<Client> {
        let path = host
            .strip_prefix("unix://")
            .ok_or_else(|| anyhow!("unsupported host {host:?}: use unix://PATH"))?;
        let client = Client {
            socket: PathBuf::from(path),
            extra_headers: Vec::new(),
        };
        if client.ping().is_ok() {
            return Ok(client);
        }
        let autostart = std::env::var("PIER_AUTOSTART").is_ok_and(|v| v == "1");
        if host != DEFAULT_HOST && !autostart {
            bail!("Cannot connect to the Pier daemon at {host}. Is the pier daemon running?");
        }
        start_daemon(&client.socket, data_root)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client.ping().is_ok() {
                return Ok(client);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "started pierd, but it does not answer on {host}: see {}",
            client.socket.with_file_name("pierd.log").display()
        )
    }

    /// A copy that sends `name: value` with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut c = self.clone();
        c.extra_headers.push((name.to_string(), value.to_string()));
        c
    }

    fn ping(&self) -> Result<()> {
        let r = self.request("GET", "/_ping", None)?;
        if r.status == 200 {
            Ok(())
        } else {
            bail!("ping: status {}", r.status)
        }
    }

    fn open(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        upgrade: bool,
    ) -> Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.socket)
            .with_context(|| format!("connecting to {}", self.socket.display()))?;
        let path = if path == "/_ping" {
            path.to_string()
        } else {
            format!("/v{CLIENT_API}{path}")
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: pier\r\nUser-Agent: pier/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in &self.extra_headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        } else {
            head.push_str("Connection: close\r\n");
        }
        match body {
            Some((content_type, bytes)) => {
                head.push_str(&format!(
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    bytes.len()
                ));
                stream.write_all(head.as_bytes())?;
                stream.write_all(bytes)?;
            }
            None => {
                head.push_str("Content-Length: 0\r\n\r\n");
                stream.write_all(head.as_bytes())?;
            }
        }
        Ok(stream)
    }

    /// A request with an optional body (content type, bytes).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Response> {
        let stream = self.open(method, path, body, false)?;
        read_response(stream)
    }

    /// A request without a body, answered with its status, headers (names in lower
    /// case) and body (not to be read for `HEAD`).
    pub fn request_full(&self, method: &str, path: &str) -> Result<FullResponse> {
        let stream = self.open(method, path, None, false)?;
        read_response_full(stream)
    }

    /// A request whose body is streamed from `body` (chunked transfer encoding),
    /// for uploads too big to hold in memory (`cp` into a container).
    pub fn request_streaming(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        mut body: impl Read,
    ) -> Result<Response> {
        let mut stream = UnixStream::connect(&self.socket)
            .with_context(|| format!("connecting to {}", self.socket.display()))?;
        let head = format!(
            "{method} /v{CLIENT_API}{path} HTTP/1.1\r\nHost: pier\r\nUser-Agent: pier/{}\r\n\
             Connection: close\r\nContent-Type: {content_type}\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        stream.write_all(head.as_bytes())?;
        let mut buf = vec![0u8; 64 * 1024];
        let sent: io::Result<()> = (|| {
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                stream.write_all(format!("{n:x}\r\n").as_bytes())?;
                stream.write_all(&buf[..n])?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\n\r\n")
        })();
        match sent {
            Ok(()) => read_response(stream),
            // The daemon may answer (an error) before reading everything.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                read_response(stream).map_err(|_| anyhow!(e))
            }
            Err(e) => Err(e.into()),
        }
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
    pub fn hijack(&self, path: &str) -> Result<UnixStream> {
        self.hijack_with(path, None)
    }

    /// A hijacked stream with a JSON body (`exec start`). The answer's head is read
    /// a byte at a time, so output the daemon sends right after it stays in the
    /// connection.
    pub fn hijack_with(&self, path: &str, body: Option<&Value>) -> Result<UnixStream> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let stream = self.open(
            "POST",
            path,
            bytes.as_deref().map(|b| ("application/json", b)),
            true,
        )?;
        let mut reader = BufReader::with_capacity(1, stream.try_clone()?);
        let (status, _headers) = read_head(&mut reader)?;
        if status != 101 && status != 200 {
            let mut body = Vec::new();
            let _ = reader.read_to_end(&mut body);
            return Err(daemon_error(status, &body));
        }
        if !reader.buffer().is_empty() {
            bail!("unexpected data after the upgrade answer");
        }
        Ok(stream)
    }
}

fn read_head(reader: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad answer from the daemon: {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

/// Status, headers (lower-case names) and body of an answer.
pub type FullResponse = (u16, Vec<(String, String)>, Box<dyn Read + Send>);

fn read_response(stream: UnixStream) -> Result<Response> {
    let (status, _, body) = read_response_full(stream)?;
    Ok(Response { status, body })
}

fn read_response_full(stream: UnixStream) -> Result<FullResponse> {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let (status, headers) = read_head(&mut reader)?;
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let body: Box<dyn Read + Send> = if chunked {
        Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        })
    } else if let Some(n) = length {
        Box::new(reader.take(n))
    } else {
        Box::new(reader)
    };
    Ok((status, headers, body))
}

/// A chunked transfer-encoding decoder.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF after the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated chunk",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Starts `pierd` (beside this binary, else from PATH), detached, logging to
/// `pierd.log` beside the socket.
fn start_daemon(socket: &Path, data_root: &Path) -> Result<()> {
    let exe = std::env::current_exe().ok();
    let beside = exe
        .as_ref()
        .and_then(|e| e.parent())
        .map(|d| d.join("pierd"))
        .filter(|p| p.is_file());
    let program = beside.unwrap_or_else(|| PathBuf::from("pierd"));
    let run_dir = socket.parent().unwrap_or(Path::new("/run/pier"));
    std::fs::create_dir_all(run_dir).with_context(|| {
        format!(
            "creating {} (pier needs root to start pierd)",
            run_dir.display()
        )
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("pierd.log"))
        .context("opening the pierd log")?;
    let mut cmd = Command::new(&program);
    cmd.arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(run_dir);
    // More flags for the daemon pier starts (e.g. `--bridge pier1 --dns 10.0.0.2`).
    if let Ok(flags) = std::env::var("PIERD_FLAGS") {
        cmd.args(flags.split_whitespace());
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid and close_range are async-signal-safe. setsid detaches pierd from
    // this terminal's session so it outlives the command; close_range marks every
    // descriptor above stdio close-on-exec, so that pierd inherits none of ours (std's
    // own exec-error pipe is close-on-exec already and keeps working).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let _ = rustix::process::setsid();
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(())
}

/// Splits Docker's multiplexed stream (`[stream,0,0,0,len_be32]` frames) to stdout
/// and stderr; for a tty container, copies raw bytes to stdout.
pub fn demux(mut input: impl Read, tty: bool) -> io::Result<()> {
    let stdout = io::stdout();
    let stderr = io::stderr();
    if tty {
        let mut out = stdout.lock();
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
    let mut header = [0u8; 8];
    loop {
        match input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::ConnectionReset =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len];
        input.read_exact(&mut data)?;
        if header[0] == 2 {
            let mut e = stderr.lock();
            e.write_all(&data)?;
            e.flush()?;
        } else {
            let mut o = stdout.lock();
            o.write_all(&data)?;
            o.flush()?;
        }
    }
}
