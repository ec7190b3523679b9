//! The client for synchronous callers: each call runs the async client on a
//! current-thread tokio runtime that the client (and every body and stream it hands
//! out) shares. Bodies are `std::io::Read`, hijacked streams `Read` and `Write`.
//!
//! Several threads may use one client at once (an attach stream read on one thread,
//! stdin written on another, a resize from a signal handler's thread): tokio lets
//! them all `block_on` the same current-thread runtime, and the connections' tasks
//! run on whichever thread is inside it. Building the runtime costs an epoll and an
//! eventfd, no threads, so short commands stay quick.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::runtime::Runtime;

use super::{ApiVersion, Body, Config, Error, Host, Ping, Request, Result};

/// How much of a streamed upload is read from its reader at a time.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// The blocking Engine API client; clones share the runtime and the version.
#[derive(Clone)]
pub struct Client {
    rt: Arc<Runtime>,
    inner: super::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl Client {
    pub fn new(config: Config) -> Result<Client> {
        // I/O only: the client sets no timers, and a time driver is work at start.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        Ok(Client {
            rt: Arc::new(rt),
            inner: super::Client::new(config)?,
        })
    }

    /// The async client underneath (to be used on this client's runtime, through
    /// [`block_on`](Self::block_on)).
    pub fn inner(&self) -> &super::Client {
        &self.inner
    }

    /// Runs `f` on the client's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn host(&self) -> &Host {
        self.inner.host()
    }

    /// A copy that sends `name: value` with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        Client {
            rt: self.rt.clone(),
            inner: self.inner.with_header(name, value),
        }
    }

    pub fn api_version(&self) -> Option<ApiVersion> {
        self.inner.api_version()
    }

    pub fn ping(&self) -> Result<Ping> {
        self.rt.block_on(self.inner.ping())
    }

    /// See [`super::Client::negotiate`].
    pub fn negotiate(&self) -> Result<ApiVersion> {
        self.rt.block_on(self.inner.negotiate())
    }

    /// See [`super::Client::settle`].
    pub fn settle(&self, ping: &Ping) -> ApiVersion {
        self.inner.settle(ping)
    }

    /// Sends `req`; the answer once its head has arrived.
    pub fn send(&self, req: Request) -> Result<Response> {
        let r = self.rt.block_on(self.inner.send(req))?;
        let (status, headers, body) = r.into_parts();
        Ok(Response {
            status: status.as_u16(),
            headers,
            body: BodyReader {
                rt: self.rt.clone(),
                body,
                chunk: Bytes::new(),
                done: false,
            },
        })
    }

    /// Sends `req` with `body` streamed (chunked) as its content. `body` is read on
    /// a thread of its own, so it needs to be `Send` but not `'static`; the call
    /// returns once the answer's head is in and `body` is no longer read.
    pub fn send_reader(
        &self,
        req: Request,
        content_type: &str,
        body: impl Read + Send,
    ) -> Result<Response> {
        let (tx, stream) = Body::channel(4);
        let req = req.body(content_type, stream);
        std::thread::scope(|scope| {
            scope.spawn(move || pump(body, &tx));
            self.send(req)
        })
    }

    /// Sends `req` asking for a raw stream (attach, exec start): the stream after the
    /// daemon's 101; an error status is [`Error::Daemon`].
    pub fn upgrade(&self, req: Request) -> Result<Upgraded> {
        let io = self.rt.block_on(self.inner.upgrade(req))?;
        Ok(Upgraded {
            rt: self.rt.clone(),
            io,
        })
    }
}

/// Reads `body` into the request's channel until it ends, fails, or the request
/// is gone (the daemon answered early, the connection broke).
fn pump(mut body: impl Read, tx: &super::BodySender) {
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let chunk = match body.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || failed {
            return;
        }
    }
}

/// An answer: status, headers, and the body as a reader.
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: HeaderMap,
    body: BodyReader,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.body.read_to_end(&mut out)?;
        Ok(out)
    }

    /// `self`, or [`Error::Daemon`] with the daemon's message for an error status.
    pub fn error_for_status(self) -> Result<Response> {
        if self.status < 400 {
            return Ok(self);
        }
        let status = self.status;
        let body = self.bytes()?;
        Err(Error::from_answer(status, &body))
    }

    /// The body as JSON (an empty body reads as `null`); an error status is
    /// [`Error::Daemon`].
    pub fn json<T: DeserializeOwned>(self) -> Result<T> {
        let body = self.error_for_status()?.bytes()?;
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        Ok(serde_json::from_slice(body)?)
    }

    /// The values of a JSON-lines body (progress, events) as they arrive; an error
    /// status is [`Error::Daemon`].
    pub fn json_lines<T: DeserializeOwned>(
        self,
    ) -> Result<impl Iterator<Item = serde_json::Result<T>>> {
        Ok(super::stream::json_lines(self.error_for_status()?.body))
    }

    pub fn into_reader(self) -> BodyReader {
        self.body
    }

    pub fn into_parts(self) -> (u16, HeaderMap, BodyReader) {
        (self.status, self.headers, self.body)
    }
}

/// An answer's body as a `std::io::Read`.
#[derive(Debug)]
pub struct BodyReader {
    rt: Arc<Runtime>,
    body: Incoming,
    /// What is left of the last frame.
    chunk: Bytes,
    done: bool,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.rt.block_on(self.body.frame()) {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk = data;
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    // The daemon went away mid-body: as a truncated read.
                    let kind = if e.is_incomplete_message() {
                        io::ErrorKind::UnexpectedEof
                    } else {
                        io::ErrorKind::Other
                    };
                    return Err(io::Error::new(kind, e));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// A hijacked stream (attach, exec start), blocking. [`split`](Self::split) gives a
/// reader and a writer for two threads; the writer's [`shutdown`](UpgradedWriter::shutdown)
/// closes the write side only (the process sees its stdin end), and the reader goes
/// on until the daemon closes.
pub struct Upgraded {
    rt: Arc<Runtime>,
    io: super::Upgraded,
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded").finish_non_exhaustive()
    }
}

impl Upgraded {
    pub fn split(self) -> (UpgradedReader, UpgradedWriter) {
        let (r, w) = tokio::io::split(self.io);
        (
            UpgradedReader {
                rt: self.rt.clone(),
                half: r,
            },
            UpgradedWriter {
                rt: self.rt,
                half: w,
            },
        )
    }

    /// Closes the write side.
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.rt.block_on(self.io.shutdown())
    }
}

impl Read for Upgraded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rt.block_on(self.io.read(buf))
    }
}

impl Write for Upgraded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.rt.block_on(self.io.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.rt.block_on(self.io.flush())
    }
}

/// The read half of an [`Upgraded`].
pub struct UpgradedReader {
    rt: Arc<Runtime>,
    half: ReadHalf<super::Upgraded>,
}

impl std::fmt::Debug for UpgradedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradedReader").finish_non_exhaustive()
    }
}

impl Read for UpgradedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rt.block_on(self.half.read(buf))
    }
}

/// The write half of an [`Upgraded`].
pub struct UpgradedWriter {
    rt: Arc<Runtime>,
    half: WriteHalf<super::Upgraded>,
}

impl std::fmt::Debug for UpgradedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradedWriter").finish_non_exhaustive()
    }
}

impl UpgradedWriter {
    /// Closes the write side (stdin ended); reading goes on.
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.rt.block_on(self.half.shutdown())
    }
}

impl Write for UpgradedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.rt.block_on(self.half.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.rt.block_on(self.half.flush())
    }
}
