//! A load generator for registry benchmarks (bench/registry-server.sh), std only.
//!
//! `registry_load push ADDR REPO LAYERS MIB` pushes an image of LAYERS random layers of
//! MIB MiB each (POST + PUT per blob, then the manifest as `REPO:latest`).
//! `registry_load pull ADDR REPO CLIENTS SECONDS` runs CLIENTS concurrent clients, each
//! pulling `REPO:latest` (manifest, config, every layer) over and over on a keep-alive
//! connection for SECONDS; prints one JSON line: requests, bytes, errors, seconds.
//! `registry_load manifests ADDR REPO CLIENTS SECONDS` does the same with the manifest
//! only (the request rate rather than the bandwidth).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pier_image::digest::Digest;

struct Conn {
    addr: String,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: &str) -> Conn {
        Conn {
            addr: addr.to_string(),
            reader: None,
        }
    }

    /// One request on the kept-alive connection (reconnecting when needed); the status
    /// and, with `keep_body`, the body (else its length only).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
        keep_body: bool,
    ) -> std::io::Result<(u16, Vec<u8>, u64)> {
        if self.reader.is_none() {
            self.reader = Some(BufReader::with_capacity(
                1 << 16,
                TcpStream::connect(&self.addr)?,
            ));
        }
        let reader = self.reader.as_mut().expect("connected");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let stream = reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = None;
        let mut close = false;
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<u64>().ok();
            }
            close |= lower.starts_with("connection: close");
        }
        let length = if method == "HEAD" {
            0
        } else {
            length.ok_or_else(|| std::io::Error::other("no Content-Length"))?
        };
        let mut kept = Vec::new();
        if keep_body {
            reader.take(length).read_to_end(&mut kept)?;
        } else {
            std::io::copy(&mut reader.take(length), &mut std::io::sink())?;
        }
        if close {
            self.reader = None;
        }
        Ok((status, kept, length))
    }
}

fn push_blob(addr: &str, repo: &str, data: &[u8]) -> String {
    let digest = Digest::sha256(data).to_string();
    // Raw request to read Location.
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let location = answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .map(|l| l.trim().to_string())
        .expect("Location");
    // distribution answers with an absolute URL.
    let location = match location.strip_prefix("http://") {
        Some(rest) => rest[rest.find('/').unwrap_or(0)..].to_string(),
        None => location,
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, _, _) = Conn::new(addr)
        .request(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            "Connection: close\r\n",
            data,
            false,
        )
        .expect("PUT");
    assert_eq!(status, 201, "blob upload");
    digest
}

fn push(addr: &str, repo: &str, layers: usize, mib: usize) {
    let mut urandom = std::fs::File::open("/dev/urandom").expect("urandom");
    let mut descriptors = Vec::new();
    for _ in 0..layers {
        let mut data = vec![0u8; mib << 20];
        urandom.read_exact(&mut data).expect("random");
        let d = push_blob(addr, repo, &data);
        descriptors.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": data.len()}));
    }
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = push_blob(addr, repo, config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    })
    .to_string();
    let (status, _, _) = Conn::new(addr)
        .request(
            "PUT",
            &format!("/v2/{repo}/manifests/latest"),
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n",
            manifest.as_bytes(),
            false,
        )
        .expect("PUT manifest");
    assert_eq!(status, 201, "manifest push");
}

fn pull(addr: &str, repo: &str, clients: usize, seconds: u64, blobs_too: bool) {
    let requests = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, repo) = (addr.to_string(), repo.to_string());
            let (requests, bytes, errors, stop) = (
                requests.clone(),
                bytes.clone(),
                errors.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut conn = Conn::new(&addr);
                let accept = "Accept: application/vnd.oci.image.manifest.v1+json\r\n";
                while !stop.load(Ordering::Relaxed) {
                    let manifest = match conn.request(
                        "GET",
                        &format!("/v2/{repo}/manifests/latest"),
                        accept,
                        b"",
                        true,
                    ) {
                        Ok((200, body, n)) => {
                            requests.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(n, Ordering::Relaxed);
                            body
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            conn.reader = None;
                            continue;
                        }
                    };
                    if !blobs_too {
                        continue;
                    }
                    let m: serde_json::Value =
                        serde_json::from_slice(&manifest).unwrap_or_default();
                    let blobs = m["config"].get("digest").into_iter().chain(
                        m["layers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|l| l.get("digest")),
                    );
                    for d in blobs.filter_map(|d| d.as_str()) {
                        match conn.request("GET", &format!("/v2/{repo}/blobs/{d}"), "", b"", false)
                        {
                            Ok((200, _, n)) => {
                                requests.fetch_add(1, Ordering::Relaxed);
                                bytes.fetch_add(n, Ordering::Relaxed);
                            }
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                conn.reader = None;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "seconds": elapsed,
            "requests": requests.load(Ordering::Relaxed),
            "bytes": bytes.load(Ordering::Relaxed),
            "errors": errors.load(Ordering::Relaxed),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: registry_load push ADDR REPO LAYERS MIB | pull|manifests ADDR REPO CLIENTS SECONDS";
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{usage}"))
    };
    match args.get(1).map(String::as_str) {
        Some("push") => push(&args[2], &args[3], num(4) as usize, num(5) as usize),
        Some("pull") => pull(&args[2], &args[3], num(4) as usize, num(5), true),
        Some("manifests") => pull(&args[2], &args[3], num(4) as usize, num(5), false),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
