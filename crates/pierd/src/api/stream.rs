//! Streams: response bodies written by blocking code — a [`Write`] whose bytes go, in
//! chunks, through a bounded channel that the response body reads (never the whole
//! body in memory; a slow client slows the writer down) — and [`Demux`], which reads
//! Docker's multiplexed stdout/stderr frames back.

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

/// Splits Docker's multiplexed stream (`[stream,0,0,0,len_be32]` + payload) back into
/// (stream, payload) pieces, across reads cut anywhere.
#[derive(Debug, Default)]
pub(crate) struct Demux {
    pending: Vec<u8>,
}

impl Demux {
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.pending.len() < 8 {
                break;
            }
            let len = u32::from_be_bytes([
                self.pending[4],
                self.pending[5],
                self.pending[6],
                self.pending[7],
            ]) as usize;
            if self.pending.len() < 8 + len {
                break;
            }
            let stream = self.pending[0];
            let payload = self.pending[8..8 + len].to_vec();
            self.pending.drain(..8 + len);
            out.push((stream, payload));
        }
        out
    }
}
