//! The server loops (UDP and TCP) and the relay to upstream resolvers.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};

use crate::message::{
    self, Header, Query, RData, CLASS_ANY, CLASS_IN, MAX_TCP_LEN, MAX_UDP_LEN, RCODE_FORMERR,
    RCODE_NOTIMP, RCODE_REFUSED, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA, TYPE_PTR,
};

/// How long one upstream has to answer before the next one is tried.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a TCP connection may stay without a new query.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Queries being answered at once (over both transports); beyond, SERVFAIL at once.
pub const MAX_CONCURRENT_QUERIES: usize = 1024;

/// Largest UDP datagram read (from clients and upstreams).
const UDP_BUFFER_LEN: usize = 65535;

/// What the resolver says of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A name of ours: these addresses (of the asked family; empty: the name exists
    /// but has none of that family, NOERROR without answers).
    Addresses(Vec<IpAddr>),
    /// A reverse name of ours: these names (PTR).
    Names(Vec<String>),
    /// Not ours: relay to the upstream resolvers.
    Forward,
    /// Not ours, and not to be relayed (a container on internal networks only):
    /// REFUSED.
    Refuse,
}

/// Looks names up for one requester (a container): implemented by the daemon.
pub trait Resolver: Send + Sync + 'static {
    /// `name` is lower-case without the trailing dot; `qtype` is the question's type
    /// (A, AAAA, PTR, or another type, for which a known name answers empty).
    fn resolve(&self, name: &str, qtype: u16) -> Resolution;
}

/// One container's DNS server.
pub struct Server {
    resolver: Arc<dyn Resolver>,
    upstreams: Vec<SocketAddr>,
    in_flight: Semaphore,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

/// The transport a query came on (answers size limit, relay transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Server {
    /// `upstreams`: where names that are not ours go (the host's resolvers, or the
    /// container's `--dns`), tried in order.
    pub fn new(resolver: Arc<dyn Resolver>, upstreams: Vec<SocketAddr>) -> Arc<Server> {
        Arc::new(Server {
            resolver,
            upstreams,
            in_flight: Semaphore::new(MAX_CONCURRENT_QUERIES),
        })
    }

    /// Answers queries on `socket` until it fails or the task is aborted.
    pub async fn serve_udp(self: Arc<Self>, socket: UdpSocket) {
        let local = socket.local_addr().ok();
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; UDP_BUFFER_LEN];
        loop {
            let (len, peer) = match socket.recv_from(&mut buf).await {
                Ok(received) => received,
                // Errors about one datagram or peer (ICMP reports, signals): go on.
                Err(e) if transient(&e) => continue,
                Err(_) => return,
            };
            let packet = buf[..len].to_vec();
            let server = Arc::clone(&self);
            let socket = Arc::clone(&socket);
            tokio::spawn(async move {
                if let Some(reply) = server.handle(&packet, Transport::Udp, local).await {
                    let _ = socket.send_to(&reply, peer).await;
                }
            });
        }
    }

    /// Answers queries on connections to `listener` (RFC 1035 length-prefixed) until
    /// the task is aborted.
    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener) {
        let local = listener.local_addr().ok();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(Arc::clone(&self).serve_connection(stream, local));
                }
                // Out of descriptors and the like: let it pass rather than spin.
                Err(e) if !transient(&e) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => {}
            }
        }
    }

    /// Reads queries off one connection until it closes, fails or stays idle; each is
    /// answered in its own task, answers written in the order they are ready.
    async fn serve_connection(self: Arc<Self>, stream: TcpStream, local: Option<SocketAddr>) {
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let (replies, mut ready) = mpsc::channel::<Vec<u8>>(16);
        let write_loop = tokio::spawn(async move {
            while let Some(reply) = ready.recv().await {
                if write_framed(&mut writer, &reply).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
        loop {
            let deadline = Instant::now() + TCP_IDLE_TIMEOUT;
            let mut prefix = [0u8; 2];
            match timeout_at(deadline, reader.read_exact(&mut prefix)).await {
                Ok(Ok(_)) => {}
                _ => break,
            }
            let len = usize::from(u16::from_be_bytes(prefix));
            let mut packet = vec![0u8; len];
            // The rest of a started query gets the same idle budget.
            match timeout_at(deadline, reader.read_exact(&mut packet)).await {
                Ok(Ok(_)) => {}
                _ => break,
            }
            let server = Arc::clone(&self);
            let replies = replies.clone();
            tokio::spawn(async move {
                if let Some(reply) = server.handle(&packet, Transport::Tcp, local).await {
                    let _ = replies.send(reply).await;
                }
            });
        }
        // The writer ends once the queries in flight are answered.
        drop(replies);
        let _ = write_loop.await;
    }

    /// The reply to one query (`None`: drop it). `local`: the address the query came
    /// to, never used as an upstream (that would loop).
    async fn handle(
        &self,
        packet: &[u8],
        transport: Transport,
        local: Option<SocketAddr>,
    ) -> Option<Vec<u8>> {
        let header = Header::parse(packet).ok()?;
        if header.is_response() {
            return None;
        }
        if header.opcode() != 0 {
            return message::header_error(packet, RCODE_NOTIMP);
        }
        let query = match Query::parse(packet) {
            Ok(query) => query,
            Err(_) => return message::header_error(packet, RCODE_FORMERR),
        };
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Some(query.error(RCODE_SERVFAIL));
        };
        let question = &query.question;
        let resolution = if matches!(question.qclass, CLASS_IN | CLASS_ANY) {
            // The resolver may take locks the daemon also holds across disk writes:
            // off the async workers.
            let resolver = self.resolver.clone();
            let (name, qtype) = (question.name.clone(), question.qtype);
            tokio::task::spawn_blocking(move || resolver.resolve(&name, qtype))
                .await
                .unwrap_or(Resolution::Forward)
        } else {
            Resolution::Forward
        };
        let max_len = match transport {
            Transport::Udp => MAX_UDP_LEN,
            Transport::Tcp => MAX_TCP_LEN,
        };
        let records: Vec<RData> = match resolution {
            Resolution::Addresses(addresses) => match question.qtype {
                TYPE_A => addresses
                    .iter()
                    .filter_map(|ip| match ip {
                        IpAddr::V4(v4) => Some(RData::A(*v4)),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
                TYPE_AAAA => addresses
                    .iter()
                    .filter_map(|ip| match ip {
                        IpAddr::V6(v6) => Some(RData::Aaaa(*v6)),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
            Resolution::Names(names) if question.qtype == TYPE_PTR => {
                names.into_iter().map(RData::Ptr).collect()
            }
            Resolution::Names(_) => Vec::new(),
            Resolution::Refuse => return Some(query.error(RCODE_REFUSED)),
            Resolution::Forward => {
                return Some(
                    match self.forward(packet, header.id, transport, local).await {
                        Some(reply) => reply,
                        None => query.error(RCODE_SERVFAIL),
                    },
                );
            }
        };
        Some(query.answer(&records, max_len))
    }

    /// Relays `packet` to the upstreams in order; the first answer.
    async fn forward(
        &self,
        packet: &[u8],
        id: u16,
        transport: Transport,
        local: Option<SocketAddr>,
    ) -> Option<Vec<u8>> {
        for &upstream in &self.upstreams {
            if Some(upstream) == local {
                continue;
            }
            let reply = match transport {
                Transport::Udp => forward_udp(packet, id, upstream).await,
                Transport::Tcp => forward_tcp(packet, id, upstream).await,
            };
            if let Ok(reply) = reply {
                return Some(reply);
            }
        }
        None
    }
}

/// Why an upstream gave no answer.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("upstream timed out")]
    Timeout,
    #[error("upstream I/O: {0}")]
    Io(#[from] io::Error),
    #[error("upstream reply does not match the query")]
    Mismatch,
    #[error("query too long for TCP")]
    TooLong,
}

/// One UDP exchange with `upstream`: replies that are not from it, not a response or
/// not for `id` are ignored until the timeout.
async fn forward_udp(
    packet: &[u8],
    id: u16,
    upstream: SocketAddr,
) -> Result<Vec<u8>, UpstreamError> {
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let exchange = async {
        let socket = UdpSocket::bind(local).await?;
        // Connected: the kernel only delivers datagrams from the upstream, and a closed
        // port shows as an error instead of a timeout.
        socket.connect(upstream).await?;
        socket.send(packet).await?;
        let mut buf = vec![0u8; UDP_BUFFER_LEN];
        loop {
            let (len, from) = socket.recv_from(&mut buf).await?;
            if from != upstream {
                continue;
            }
            let reply = &buf[..len];
            match Header::parse(reply) {
                Ok(h) if h.id == id && h.is_response() => return Ok(reply.to_vec()),
                _ => continue,
            }
        }
    };
    timeout_at(deadline, exchange)
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

/// One TCP exchange with `upstream`.
async fn forward_tcp(
    packet: &[u8],
    id: u16,
    upstream: SocketAddr,
) -> Result<Vec<u8>, UpstreamError> {
    if packet.len() > MAX_TCP_LEN {
        return Err(UpstreamError::TooLong);
    }
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        let _ = stream.set_nodelay(true);
        write_framed(&mut stream, packet).await?;
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut reply).await?;
        match Header::parse(&reply) {
            Ok(h) if h.id == id && h.is_response() => Ok(reply),
            _ => Err(UpstreamError::Mismatch),
        }
    };
    timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

/// Writes `message` with its 2-byte length prefix, in one write.
async fn write_framed<W: AsyncWriteExt + Unpin>(writer: &mut W, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long for TCP"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    writer.write_all(&framed).await
}

/// Errors that concern one datagram or connection, not the socket.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
