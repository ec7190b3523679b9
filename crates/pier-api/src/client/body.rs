//! Request bodies: none, bytes held in memory (JSON), or a stream fed through a
//! channel and sent chunked (build contexts, `load`, `cp` uploads).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// A request body.
#[derive(Debug, Default)]
pub struct Body(Kind);

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<io::Result<Bytes>>),
}

impl Body {
    pub fn empty() -> Body {
        Body(Kind::Empty)
    }

    /// A body sent with a `Content-Length`.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body(Kind::Full(Some(bytes.into())))
    }

    /// A streamed body (chunked transfer encoding) and the sender that feeds it;
    /// dropping the sender ends the body, sending an error aborts the request.
    pub fn channel(capacity: usize) -> (BodySender, Body) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (BodySender(tx), Body(Kind::Channel(rx)))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::full(v)
    }
}

impl From<Bytes> for Body {
    fn from(v: Bytes) -> Body {
        Body::full(v)
    }
}

/// Feeds a [`Body::channel`].
#[derive(Debug, Clone)]
pub struct BodySender(mpsc::Sender<io::Result<Bytes>>);

impl BodySender {
    /// Sends a chunk; `Err` once the request is gone (the daemon answered or the
    /// connection broke), so a producer can stop.
    pub async fn send(&self, chunk: io::Result<Bytes>) -> Result<(), BodyClosed> {
        self.0.send(chunk).await.map_err(|_| BodyClosed)
    }

    /// [`send`](Self::send) from a thread outside the runtime.
    pub fn blocking_send(&self, chunk: io::Result<Bytes>) -> Result<(), BodyClosed> {
        self.0.blocking_send(chunk).map_err(|_| BodyClosed)
    }
}

/// The request a [`BodySender`] fed is gone.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body is no longer read")]
pub struct BodyClosed;

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Channel(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Channel(_) => SizeHint::default(),
        }
    }
}
