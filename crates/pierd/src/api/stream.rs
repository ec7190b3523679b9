//! Response bodies written by blocking code: a [`Write`] whose bytes go, in chunks,
//! through a bounded channel that the response body reads (never the whole body in
//! memory; a slow client slows the writer down).

use std::io::{self, Write};

use axum::body::Bytes;
use tokio::sync::mpsc;

/// Chunks between blocking writers (and readers) and HTTP bodies.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A blocking [`Write`] feeding a channel in [`CHUNK`]-sized pieces.
pub(crate) struct ChannelWriter {
    pub(crate) tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    /// Whether anything went out (the response has started).
    pub(crate) sent: bool,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            sent: false,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.sent = true;
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
