//! Detach keys (`docker attach --detach-keys`, `docker exec -it`): the key sequence
//! in a terminal client's stdin that ends the attach and leaves the container running.
//!
//! Docker's rules (`moby/term.ToBytes`): comma-separated keys, each either one
//! character or `ctrl-<c>` with `<c>` one of `@`, `a`..`z`, `[`, `\`, `]`, `^`, `_`
//! (codes 0..31), or `DEL`; the default is `ctrl-p,ctrl-q`. As in Docker, keys are
//! only looked for when the attach has a terminal; the matched keys (and a partial
//! match still pending when the input ends) are never forwarded.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `ctrl-p,ctrl-q`.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

/// Docker's `term.ToBytes`: the byte sequence of a `--detach-keys` value.
pub fn parse_detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    const CTRL: &str = "@abcdefghijklmnopqrstuvwxyz[\\]^_";
    let mut out = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        if key == "DEL" {
            out.push(127);
            continue;
        }
        let code = key
            .strip_prefix("ctrl-")
            .filter(|c| c.len() == 1)
            .and_then(|c| CTRL.find(c));
        match code {
            Some(code) => out.push(code as u8),
            None => return Err(format!("Unknown character: '{key}'")),
        }
    }
    Ok(out)
}

/// The keys of a request: the given ones, or Docker's default; `Err` is the
/// message of Docker's 400 for invalid keys.
pub fn keys_or_default(given: Option<&str>) -> Result<Vec<u8>, String> {
    match given.filter(|k| !k.is_empty()) {
        None => Ok(DEFAULT_DETACH_KEYS.to_vec()),
        Some(k) => parse_detach_keys(k).map_err(|_| format!("Invalid detach keys ({k}) provided")),
    }
}

/// A byte-wise matcher of the detach sequence over a stream cut anywhere.
#[derive(Debug)]
pub struct DetachFilter {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachFilter {
    pub fn new(keys: Vec<u8>) -> DetachFilter {
        DetachFilter { keys, matched: 0 }
    }

    /// Appends to `out` what of `input` goes on to the container; true when the
    /// sequence was completed (what follows it is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            if self.matched > 0 {
                // Not the sequence after all: what was held back goes through.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    if self.keys.len() == 1 {
                        self.matched = 0;
                        return true;
                    }
                    continue;
                }
            }
            out.push(b);
        }
        false
    }
}

/// How a client's input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEnd {
    /// The client closed its side (or an error).
    Eof,
    /// The detach sequence.
    Detached,
}

/// Copies `r` to `w`, through a [`DetachFilter`] when `keys` is given.
pub async fn copy_detachable<R, W>(r: &mut R, w: &mut W, keys: Option<Vec<u8>>) -> InputEnd
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut filter = keys.map(DetachFilter::new);
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::with_capacity(buf.len());
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return InputEnd::Eof,
            Ok(n) => n,
        };
        out.clear();
        let detached = match &mut filter {
            Some(f) => f.feed(&buf[..n], &mut out),
            None => {
                out.extend_from_slice(&buf[..n]);
                false
            }
        };
        if !out.is_empty() && (w.write_all(&out).await.is_err() || w.flush().await.is_err()) {
            return InputEnd::Eof;
        }
        if detached {
            return InputEnd::Detached;
        }
    }
}

/// A reader that ends (EOF) at the detach sequence and then says so on `on_detach`;
/// without keys it passes everything through.
pub struct DetachReader<R> {
    inner: R,
    filter: Option<DetachFilter>,
    pending: Vec<u8>,
    done: bool,
    on_detach: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<R> DetachReader<R> {
    pub fn new(
        inner: R,
        keys: Option<Vec<u8>>,
        on_detach: tokio::sync::oneshot::Sender<()>,
    ) -> DetachReader<R> {
        DetachReader {
            inner,
            filter: keys.map(DetachFilter::new),
            pending: Vec::new(),
            done: false,
            on_detach: Some(on_detach),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DetachReader<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = buf.remaining().min(this.pending.len());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 8192];
            let mut rb = tokio::io::ReadBuf::new(&mut tmp);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let data = rb.filled();
            if data.is_empty() {
                this.done = true;
                continue;
            }
            match &mut this.filter {
                Some(f) => {
                    let mut out = Vec::new();
                    if f.feed(data, &mut out) {
                        this.done = true;
                        if let Some(tx) = this.on_detach.take() {
                            let _ = tx.send(());
                        }
                    }
                    this.pending = out;
                }
                None => this.pending = data.to_vec(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-_,DEL").unwrap(),
            vec![b'a', 0, 31, 127]
        );
        assert_eq!(parse_detach_keys("ctrl-\\").unwrap(), vec![28]);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
        assert!(parse_detach_keys("ctrl-A").is_err());
        assert_eq!(
            keys_or_default(Some("foo")).unwrap_err(),
            "Invalid detach keys (foo) provided"
        );
        assert_eq!(keys_or_default(Some("")).unwrap(), vec![16, 17]);
        assert_eq!(keys_or_default(None).unwrap(), vec![16, 17]);
    }

    fn run(keys: &[u8], chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut f = DetachFilter::new(keys.to_vec());
        let mut out = Vec::new();
        for c in chunks {
            if f.feed(c, &mut out) {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn filter_matches_across_chunks() {
        assert_eq!(run(&[16, 17], &[b"ab\x10\x11cd"]), (b"ab".to_vec(), true));
        assert_eq!(
            run(&[16, 17], &[b"ab\x10", b"\x11cd"]),
            (b"ab".to_vec(), true)
        );
        assert_eq!(run(&[16, 17], &[b"a\x10b"]), (b"a\x10b".to_vec(), false));
        assert_eq!(run(&[16, 17], &[b"\x10\x10\x11"]), (b"\x10".to_vec(), true));
        assert_eq!(run(&[16, 17], &[b"x\x10"]), (b"x".to_vec(), false));
        assert_eq!(run(b"abc", &[b"ababc"]), (b"ab".to_vec(), true));
        assert_eq!(run(&[], &[b"\x10\x11"]), (b"\x10\x11".to_vec(), false));
        assert_eq!(run(b"q", &[b"xq"]), (b"x".to_vec(), true));
    }

    #[test]
    fn reader_ends_at_the_keys() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let input: &[u8] = b"ls\n\x10\x11after";
        let mut r = DetachReader::new(input, Some(vec![16, 17]), tx);
        let mut got = Vec::new();
        rt.block_on(r.read_to_end(&mut got)).unwrap();
        assert_eq!(got, b"ls\n");
        assert!(rx.try_recv().is_ok());
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let mut r = DetachReader::new(input, None, tx);
        let mut got = Vec::new();
        rt.block_on(r.read_to_end(&mut got)).unwrap();
        assert_eq!(got, input);
        assert!(rx.try_recv().is_err());
    }
}
