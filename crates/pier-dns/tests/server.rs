//! The server over real sockets on 127.0.0.1, with a test resolver and fake upstreams.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pier_dns::message::{
    build_query, parse_message, Header, Message, RData, RCODE_FORMERR, RCODE_NOERROR,
    RCODE_SERVFAIL, TYPE_A, TYPE_AAAA, TYPE_PTR,
};
use pier_dns::{Resolution, Resolver, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
const TYPE_MX: u16 = 15;

/// Knows a few names; everything else is forwarded.
struct TestResolver;

impl Resolver for TestResolver {
    fn resolve(&self, name: &str, _qtype: u16) -> Resolution {
        match name {
            "web" | "web.pier" => Resolution::Addresses(vec![
                "10.0.0.2".parse().unwrap(),
                "fd00::2".parse().unwrap(),
                "10.0.0.22".parse().unwrap(),
            ]),
            "v4only" => Resolution::Addresses(vec!["10.0.0.3".parse().unwrap()]),
            "many" => Resolution::Addresses(
                (0..200u8)
                    .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)))
                    .collect(),
            ),
            "2.0.0.10.in-addr.arpa" => Resolution::Names(vec!["web".into(), "web.pier".into()]),
            _ => Resolution::Forward,
        }
    }
}

/// A running server on random ports: (udp, tcp) addresses and the tasks.
struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn start(upstreams: Vec<SocketAddr>) -> Running {
    let server = Server::new(Arc::new(TestResolver), upstreams);
    let udp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let tcp = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let tasks = vec![
        tokio::spawn(Arc::clone(&server).serve_udp(udp)),
        tokio::spawn(server.serve_tcp(tcp)),
    ];
    Running {
        udp: udp_addr,
        tcp: tcp_addr,
        tasks,
    }
}

/// Sends `query` over UDP, returns the raw reply.
async fn udp_raw(server: SocketAddr, query: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    socket.send_to(query, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (len, from) = timeout(Duration::from_secs(8), socket.recv_from(&mut buf))
        .await
        .expect("no UDP reply")
        .unwrap();
    assert_eq!(from, server);
    buf.truncate(len);
    buf
}

async fn udp(server: SocketAddr, id: u16, name: &str, qtype: u16) -> Message {
    let reply = udp_raw(server, &build_query(id, name, qtype).unwrap()).await;
    let message = parse_message(&reply).unwrap();
    assert_eq!(message.header.id, id);
    message
}

async fn tcp_send(stream: &mut TcpStream, query: &[u8]) {
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.unwrap();
}

async fn tcp_recv(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut reply).await?;
        std::io::Result::Ok(reply)
    };
    timeout(Duration::from_secs(8), read)
        .await
        .expect("no TCP reply")
        .unwrap()
}

async fn tcp(server: SocketAddr, id: u16, name: &str, qtype: u16) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    tcp_send(&mut stream, &build_query(id, name, qtype).unwrap()).await;
    let message = parse_message(&tcp_recv(&mut stream).await).unwrap();
    assert_eq!(message.header.id, id);
    message
}

fn data(message: &Message) -> Vec<RData> {
    message.answers.iter().map(|r| r.data.clone()).collect()
}

fn a(s: &str) -> RData {
    RData::A(s.parse().unwrap())
}

fn aaaa(s: &str) -> RData {
    RData::Aaaa(s.parse().unwrap())
}

fn assert_ours(message: &Message, rcode: u8) {
    let h = &message.header;
    assert!(h.is_response());
    assert!(!h.authoritative());
    assert!(h.recursion_available());
    assert!(h.recursion_desired());
    assert_eq!(h.rcode(), rcode);
    assert_eq!(message.questions.len(), 1);
    for r in &message.answers {
        assert_eq!(r.ttl, 600);
        assert_eq!(r.name, message.questions[0].0);
    }
}

/// The answer a fake upstream gives: the query's id, question echoed, one odd record
/// (TTL 1234, a TXT record) and unusual flags, so "unchanged" is checkable.
fn upstream_answer(query: &[u8], tag: u8) -> Vec<u8> {
    let q = pier_dns::message::Query::parse(query).unwrap();
    let question_end = 12
        + pier_dns::message::encode_name(&q.question.name)
            .unwrap()
            .len()
        + 4;
    let mut out = query[..question_end].to_vec();
    out[2] = 0x81; // QR, RD
    out[3] = 0x83; // RA, NXDOMAIN (odd on purpose: with an answer)
    out[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&[0xC0, 0x0C, 0, 16, 0, 1, 0, 0, 0x04, 0xD2, 0, 2, 1, tag]);
    out
}

/// An upstream on UDP and TCP (same port number not needed: two addresses) answering
/// every query with [`upstream_answer`]; records the queries it got.
struct FakeUpstream {
    udp: SocketAddr,
    tcp: SocketAddr,
    queries: Arc<Mutex<Vec<Vec<u8>>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn fake_upstream(tag: u8) -> FakeUpstream {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let udp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let tcp = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let seen = Arc::clone(&queries);
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let (len, peer) = udp.recv_from(&mut buf).await.unwrap();
            seen.lock().unwrap().push(buf[..len].to_vec());
            let reply = upstream_answer(&buf[..len], tag);
            udp.send_to(&reply, peer).await.unwrap();
        }
    });
    let seen = Arc::clone(&queries);
    let tcp_task = tokio::spawn(async move {
        loop {
            let (mut stream, _) = tcp.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut prefix = [0u8; 2];
                if stream.read_exact(&mut prefix).await.is_err() {
                    return;
                }
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
                stream.read_exact(&mut query).await.unwrap();
                seen.lock().unwrap().push(query.clone());
                tcp_send(&mut stream, &upstream_answer(&query, tag)).await;
            });
        }
    });
    FakeUpstream {
        udp: udp_addr,
        tcp: tcp_addr,
        queries,
        tasks: vec![udp_task, tcp_task],
    }
}

/// Upstreams that never answer: a bound UDP socket nobody reads, and a TCP listener
/// whose connections are accepted (by the kernel) but never read.
struct Silent {
    udp: SocketAddr,
    tcp: SocketAddr,
    _udp: UdpSocket,
    _tcp: TcpListener,
}

async fn silent_upstream() -> Silent {
    let udp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let tcp = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    Silent {
        udp: udp.local_addr().unwrap(),
        tcp: tcp.local_addr().unwrap(),
        _udp: udp,
        _tcp: tcp,
    }
}

#[tokio::test]
async fn a_and_aaaa_over_udp() {
    let s = start(vec![]).await;
    let m = udp(s.udp, 1, "web", TYPE_A).await;
    assert_ours(&m, RCODE_NOERROR);
    assert_eq!(data(&m), vec![a("10.0.0.2"), a("10.0.0.22")]);
    assert_eq!(m.questions[0], ("web".into(), TYPE_A, 1));

    let m = udp(s.udp, 2, "web.pier.", TYPE_AAAA).await;
    assert_ours(&m, RCODE_NOERROR);
    assert_eq!(data(&m), vec![aaaa("fd00::2")]);
}

#[tokio::test]
async fn nodata_for_missing_family_and_other_types() {
    let s = start(vec![]).await;
    let m = udp(s.udp, 3, "v4only", TYPE_AAAA).await;
    assert_ours(&m, RCODE_NOERROR);
    assert!(m.answers.is_empty());
    let m = udp(s.udp, 4, "web", TYPE_MX).await;
    assert_ours(&m, RCODE_NOERROR);
    assert!(m.answers.is_empty());
    let m = tcp(s.tcp, 5, "v4only", TYPE_AAAA).await;
    assert_ours(&m, RCODE_NOERROR);
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn ptr_over_udp_and_tcp() {
    let s = start(vec![]).await;
    for m in [
        udp(s.udp, 6, "2.0.0.10.in-addr.arpa", TYPE_PTR).await,
        tcp(s.tcp, 7, "2.0.0.10.in-addr.arpa", TYPE_PTR).await,
    ] {
        assert_ours(&m, RCODE_NOERROR);
        assert_eq!(
            data(&m),
            vec![RData::Ptr("web".into()), RData::Ptr("web.pier".into())]
        );
    }
}

#[tokio::test]
async fn names_are_case_insensitive_and_echoed_as_asked() {
    let s = start(vec![]).await;
    let query = build_query(8, "WeB.PiEr", TYPE_A).unwrap();
    let reply = udp_raw(s.udp, &query).await;
    // The question comes back byte for byte (case kept).
    assert_eq!(&reply[12..query.len()], &query[12..]);
    let m = parse_message(&reply).unwrap();
    assert_ours(&m, RCODE_NOERROR);
    assert_eq!(data(&m), vec![a("10.0.0.2"), a("10.0.0.22")]);

    let m = tcp(s.tcp, 9, "WEB", TYPE_AAAA).await;
    assert_eq!(data(&m), vec![aaaa("fd00::2")]);
}

#[tokio::test]
async fn a_and_aaaa_over_tcp_several_per_connection() {
    let s = start(vec![]).await;
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    for (id, name, qtype, expected) in [
        (10, "web", TYPE_A, vec![a("10.0.0.2"), a("10.0.0.22")]),
        (11, "web", TYPE_AAAA, vec![aaaa("fd00::2")]),
        (12, "v4only", TYPE_A, vec![a("10.0.0.3")]),
    ] {
        tcp_send(&mut stream, &build_query(id, name, qtype).unwrap()).await;
        let m = parse_message(&tcp_recv(&mut stream).await).unwrap();
        assert_eq!(m.header.id, id);
        assert_ours(&m, RCODE_NOERROR);
        assert_eq!(data(&m), expected);
    }
    // Pipelined: two queries in one write, two answers.
    let mut both = Vec::new();
    for id in [13u16, 14] {
        let q = build_query(id, "v4only", TYPE_A).unwrap();
        both.extend_from_slice(&(q.len() as u16).to_be_bytes());
        both.extend_from_slice(&q);
    }
    stream.write_all(&both).await.unwrap();
    let mut ids = vec![
        Header::parse(&tcp_recv(&mut stream).await).unwrap().id,
        Header::parse(&tcp_recv(&mut stream).await).unwrap().id,
    ];
    ids.sort();
    assert_eq!(ids, vec![13, 14]);
}

#[tokio::test]
async fn udp_answers_fit_512_bytes_with_tc_tcp_has_all() {
    let s = start(vec![]).await;
    let reply = udp_raw(s.udp, &build_query(15, "many", TYPE_A).unwrap()).await;
    assert!(reply.len() <= 512, "{} bytes", reply.len());
    let m = parse_message(&reply).unwrap();
    assert!(m.header.truncated());
    assert!(!m.answers.is_empty());

    let m = tcp(s.tcp, 16, "many", TYPE_A).await;
    assert!(!m.header.truncated());
    assert_eq!(m.answers.len(), 200);
}

#[tokio::test]
async fn malformed_queries() {
    let s = start(vec![]).await;
    // Readable header, broken question: FORMERR with the id.
    let mut query = build_query(0x4242, "web", TYPE_A).unwrap();
    query.truncate(14);
    let reply = udp_raw(s.udp, &query).await;
    let h = Header::parse(&reply).unwrap();
    assert_eq!(h.id, 0x4242);
    assert!(h.is_response());
    assert_eq!(h.rcode(), RCODE_FORMERR);

    // Over TCP too, and the connection stays usable.
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    tcp_send(&mut stream, &query).await;
    assert_eq!(
        Header::parse(&tcp_recv(&mut stream).await).unwrap().rcode(),
        RCODE_FORMERR
    );
    tcp_send(&mut stream, &build_query(17, "web", TYPE_A).unwrap()).await;
    assert_eq!(Header::parse(&tcp_recv(&mut stream).await).unwrap().id, 17);

    // No header: dropped; the server still answers afterwards.
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    socket.send_to(&[1, 2, 3], s.udp).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(
        timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
            .await
            .is_err()
    );
    let m = udp(s.udp, 18, "web", TYPE_A).await;
    assert_eq!(m.answers.len(), 2);
}

#[tokio::test]
async fn forwarded_over_udp_unchanged() {
    let up = fake_upstream(7).await;
    let s = start(vec![up.udp]).await;
    let query = build_query(0x5151, "Example.COM", TYPE_A).unwrap();
    let reply = udp_raw(s.udp, &query).await;
    assert_eq!(reply, upstream_answer(&query, 7));
    // The upstream got the client's bytes.
    assert_eq!(*up.queries.lock().unwrap(), vec![query]);
}

#[tokio::test]
async fn forwarded_over_tcp_unchanged() {
    let up = fake_upstream(8).await;
    // TCP queries go to the upstream over TCP: the TCP address only.
    let s = start(vec![up.tcp]).await;
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    let query = build_query(0x6161, "example.org", TYPE_AAAA).unwrap();
    tcp_send(&mut stream, &query).await;
    assert_eq!(tcp_recv(&mut stream).await, upstream_answer(&query, 8));
    // And a local name on the same connection afterwards.
    tcp_send(&mut stream, &build_query(3, "web", TYPE_A).unwrap()).await;
    let m = parse_message(&tcp_recv(&mut stream).await).unwrap();
    assert_eq!(m.answers.len(), 2);
    assert_eq!(*up.queries.lock().unwrap(), vec![query]);
}

#[tokio::test]
async fn fallback_after_a_silent_upstream() {
    let silent = silent_upstream().await;
    let up = fake_upstream(9).await;
    let s = start(vec![silent.udp, up.udp]).await;
    let query = build_query(0x7171, "example.net", TYPE_A).unwrap();
    let started = Instant::now();
    let reply = udp_raw(s.udp, &query).await;
    assert_eq!(reply, upstream_answer(&query, 9));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    drop(s);

    let s = start(vec![silent.tcp, up.tcp]).await;
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    tcp_send(&mut stream, &query).await;
    assert_eq!(tcp_recv(&mut stream).await, upstream_answer(&query, 9));
}

#[tokio::test]
async fn fallback_after_a_closed_port_is_quick() {
    // A port that was just free: UDP gets ICMP port unreachable, TCP a reset.
    let closed = UdpSocket::bind((LOCALHOST, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let up = fake_upstream(10).await;
    let s = start(vec![closed, up.udp]).await;
    let query = build_query(0x7272, "example.net", TYPE_A).unwrap();
    let started = Instant::now();
    assert_eq!(udp_raw(s.udp, &query).await, upstream_answer(&query, 10));
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn servfail_without_upstreams() {
    let s = start(vec![]).await;
    let m = udp(s.udp, 19, "example.com", TYPE_A).await;
    assert_eq!(m.header.rcode(), RCODE_SERVFAIL);
    assert!(m.header.is_response());
    assert_eq!(m.questions[0].0, "example.com");
    assert!(m.answers.is_empty());
    let m = tcp(s.tcp, 20, "example.com", TYPE_A).await;
    assert_eq!(m.header.rcode(), RCODE_SERVFAIL);
}

#[tokio::test]
async fn servfail_when_no_upstream_answers() {
    let silent = silent_upstream().await;
    let s = start(vec![silent.udp]).await;
    let m = udp(s.udp, 21, "example.com", TYPE_A).await;
    assert_eq!(m.header.rcode(), RCODE_SERVFAIL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_upstream_blocks_no_one_else() {
    let silent = silent_upstream().await;
    let s = start(vec![silent.udp]).await;
    let server = s.udp;
    // Slow: forwarded to the silent upstream.
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let m = udp(server, 22, "example.com", TYPE_A).await;
        (m.header.rcode(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Meanwhile local names answer at once, over both transports.
    let started = Instant::now();
    for id in 23..33 {
        assert_eq!(udp(s.udp, id, "web", TYPE_A).await.answers.len(), 2);
    }
    assert_eq!(tcp(s.tcp, 33, "web", TYPE_A).await.answers.len(), 2);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let (rcode, elapsed) = slow.await.unwrap();
    assert_eq!(rcode, RCODE_SERVFAIL);
    assert!(elapsed >= Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_forwards_fall_back_in_parallel() {
    let silent = silent_upstream().await;
    let up = fake_upstream(11).await;
    let s = start(vec![silent.udp, up.udp]).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..8u16 {
        let server = s.udp;
        tasks.push(tokio::spawn(async move {
            let query = build_query(1000 + id, &format!("host{id}.example"), TYPE_A).unwrap();
            assert_eq!(udp_raw(server, &query).await, upstream_answer(&query, 11));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // One timeout's worth, not eight.
    assert!(started.elapsed() < Duration::from_millis(4000));
    assert_eq!(up.queries.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn idle_tcp_connections_are_closed() {
    let s = start(vec![]).await;
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    tcp_send(&mut stream, &build_query(40, "web", TYPE_A).unwrap()).await;
    tcp_recv(&mut stream).await;
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = timeout(Duration::from_secs(15), stream.read(&mut buf))
        .await
        .expect("connection not closed");
    assert_eq!(read.unwrap(), 0);
    assert!(started.elapsed() >= Duration::from_secs(8));
}

#[tokio::test]
async fn the_server_itself_is_never_an_upstream() {
    // Bind first to know the address, then list it as the only upstream.
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let server = Server::new(Arc::new(TestResolver), vec![addr]);
    let task = tokio::spawn(server.serve_udp(socket));
    let started = Instant::now();
    let m = udp(addr, 41, "example.com", TYPE_A).await;
    assert_eq!(m.header.rcode(), RCODE_SERVFAIL);
    assert!(started.elapsed() < Duration::from_millis(1500));
    task.abort();
}
