//! Reading the daemon's streamed answers: Docker's multiplexed stream (8-byte frame
//! headers: stream, three zero bytes, big-endian length) of logs, attach and exec
//! without a tty, and JSON-lines progress (pull, push, load, build, events).

use std::io::{self, Read, Write};

/// Which stream a multiplexed frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin,
    Stdout,
    Stderr,
    /// Anything else: Docker's `systemerr` (3) and unknown numbers, written to stderr.
    Other(u8),
}

impl StreamKind {
    fn from_byte(b: u8) -> StreamKind {
        match b {
            0 => StreamKind::Stdin,
            1 => StreamKind::Stdout,
            2 => StreamKind::Stderr,
            n => StreamKind::Other(n),
        }
    }
}

/// Frames of a multiplexed stream, read from `R`.
#[derive(Debug)]
pub struct Demuxer<R> {
    inner: R,
}

impl<R: Read> Demuxer<R> {
    pub fn new(inner: R) -> Demuxer<R> {
        Demuxer { inner }
    }

    /// The next frame, or `None` at the end of the stream (also when the daemon
    /// closed the connection between frames).
    pub fn next_frame(&mut self) -> io::Result<Option<(StreamKind, Vec<u8>)>> {
        let mut header = [0u8; 8];
        match self.inner.read_exact(&mut header) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::ConnectionReset =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len];
        self.inner.read_exact(&mut data)?;
        Ok(Some((StreamKind::from_byte(header[0]), data)))
    }

    /// Copies every frame to `stdout` or `stderr` (flushed per frame, so interleaving
    /// stays as the process wrote it), until the stream ends.
    pub fn copy_to(&mut self, stdout: &mut impl Write, stderr: &mut impl Write) -> io::Result<()> {
        while let Some((kind, data)) = self.next_frame()? {
            let out: &mut dyn Write = match kind {
                StreamKind::Stdout | StreamKind::Stdin => stdout,
                StreamKind::Stderr | StreamKind::Other(_) => stderr,
            };
            out.write_all(&data)?;
            out.flush()?;
        }
        Ok(())
    }
}

/// The JSON values of a JSON-lines answer, one at a time as they arrive.
pub fn json_lines<T: serde::de::DeserializeOwned, R: Read>(
    reader: R,
) -> impl Iterator<Item = serde_json::Result<T>> {
    serde_json::Deserializer::from_reader(reader).into_iter::<T>()
}

/// The JSON values of a JSON-lines answer body, for async callers:
/// [`next`](Self::next) yields each as soon as it is complete.
#[derive(Debug)]
pub struct JsonLines<T> {
    body: hyper::body::Incoming,
    /// Bytes received and not yet decoded.
    pending: Vec<u8>,
    done: bool,
    _values: std::marker::PhantomData<fn() -> T>,
}

impl<T: serde::de::DeserializeOwned> JsonLines<T> {
    pub(crate) fn new(body: hyper::body::Incoming) -> JsonLines<T> {
        JsonLines {
            body,
            pending: Vec::new(),
            done: false,
            _values: std::marker::PhantomData,
        }
    }

    /// The next value; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<super::Result<T>> {
        use http_body_util::BodyExt;
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.pending).into_iter::<T>();
            match values.next() {
                Some(Ok(value)) => {
                    let used = values.byte_offset();
                    self.pending.drain(..used);
                    return Some(Ok(value));
                }
                // Part of a value: wait for the rest, unless there is no more.
                Some(Err(e)) if e.is_eof() && !self.done => {}
                Some(Err(e)) => {
                    self.pending.clear();
                    self.done = true;
                    return Some(Err(e.into()));
                }
                None => {
                    self.pending.clear();
                    if self.done {
                        return None;
                    }
                }
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_by_stream() {
        let mut wire = vec![1, 0, 0, 0, 0, 0, 0, 3];
        wire.extend_from_slice(b"out");
        wire.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        wire.extend_from_slice(b"er");
        wire.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 1]);
        wire.extend_from_slice(b"!");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        Demuxer::new(&wire[..]).copy_to(&mut out, &mut err).unwrap();
        assert_eq!((out.as_slice(), err.as_slice()), (&b"out"[..], &b"er!"[..]));
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let wire = [1u8, 0, 0, 0, 0, 0, 0, 5, b'a'];
        assert!(Demuxer::new(&wire[..]).next_frame().is_err());
    }

    #[test]
    fn json_lines_as_they_come() {
        let text = b"{\"status\":\"a\"}\r\n{\"status\":\"b\"}\n";
        let got: Vec<serde_json::Value> = json_lines(&text[..]).map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["status"], "b");
    }
}
