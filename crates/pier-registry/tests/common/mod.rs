//! Test support for pier-registry: a registry process (pier-registry or Debian's
//! `docker-registry`, i.e. distribution 2.8) on a free loopback port with its own temp
//! root, killed by PID when dropped; a small blocking HTTP/1.1 client; push helpers.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pier_image::digest::{Algorithm, Hasher};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Pier,
    Distribution,
}

pub struct Registry {
    pub kind: Impl,
    pub addr: SocketAddr,
    child: Child,
    pub dir: tempfile::TempDir,
    /// `Authorization` header value sent with every request, if set.
    pub authorization: Option<String>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub const DISTRIBUTION: &str = "/usr/bin/docker-registry";

impl Registry {
    /// pier-registry with `args` (besides `--addr` and `--root`).
    pub fn pier(args: &[&str]) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        Registry::pier_in(dir, args)
    }

    /// pier-registry over an existing root directory (for restarts).
    pub fn pier_in(dir: tempfile::TempDir, args: &[&str]) -> Registry {
        let port = free_port();
        let root = dir.path().join("root");
        let log = std::fs::File::create(dir.path().join("pier-registry.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_pier-registry"))
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn pier-registry");
        let r = Registry {
            kind: Impl::Pier,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
            authorization: None,
        };
        r.wait_ready();
        r
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Debian's distribution 2.8 with deletes enabled, or `None` (with the reason
    /// printed) when it is not installed.
    pub fn distribution(test: &str) -> Option<Registry> {
        Registry::distribution_with(test, "", "")
    }

    /// Distribution with `storage` lines added under `storage:` (indented two spaces)
    /// and `extra` top-level YAML appended to its config.
    pub fn distribution_with(test: &str, storage: &str, extra: &str) -> Option<Registry> {
        if !Path::new(DISTRIBUTION).exists() {
            pier_testsupport::skip(
                test,
                &format!("the distribution run: {DISTRIBUTION} is not installed (package docker-registry)"),
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{storage}http:\n  addr: 127.0.0.1:{port}\n{extra}",
                dir.path().join("root").display()
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(DISTRIBUTION)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let r = Registry {
            kind: Impl::Distribution,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
            authorization: None,
        };
        r.wait_ready();
        Some(r)
    }

    /// pier-registry, then distribution when installed.
    pub fn both(test: &str) -> Vec<Registry> {
        let mut v = vec![Registry::pier(&[])];
        v.extend(Registry::distribution(test));
        v
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Takes the temp dir out (to restart over the same root), killing the process.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.kill();
        let placeholder = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{:?} did not listen on {} in 20s", self.kind, self.addr);
    }

    pub fn url(&self) -> String {
        format!("{}", self.addr)
    }

    /// One request; `path` may be a path or an absolute `http://` URL.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.send(method, path, headers, Payload::Whole(body))
    }

    /// A request whose body goes out with chunked transfer encoding (no length).
    pub fn call_chunked(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        chunks: &[&[u8]],
    ) -> Resp {
        self.send(method, path, headers, Payload::Chunked(chunks))
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Payload) -> Resp {
        let path = path_of(path);
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(a) = &self.authorization {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                head.push_str(&format!("Authorization: {a}\r\n"));
            }
        }
        let mut bytes = Vec::new();
        match body {
            Payload::Whole(b) => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                {
                    head.push_str(&format!("Content-Length: {}\r\n", b.len()));
                }
                bytes.extend_from_slice(head.as_bytes());
                bytes.extend_from_slice(b"\r\n");
                bytes.extend_from_slice(b);
            }
            Payload::Chunked(chunks) => {
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                bytes.extend_from_slice(head.as_bytes());
                for c in chunks {
                    bytes.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    bytes.extend_from_slice(c);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
        }
        // A server may answer (e.g. 401, 416) without reading the body; ignore a reset.
        let _ = stream.write_all(&bytes);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Resp::parse(&raw, method == "HEAD").unwrap_or_else(|| {
            panic!(
                "{method} {path}: unparseable response {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
    }
}

enum Payload<'a> {
    Whole(&'a [u8]),
    Chunked(&'a [&'a [u8]]),
}

/// The path and query of a `Location` (which distribution makes absolute).
pub fn path_of(location: &str) -> String {
    match location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
    {
        Some(rest) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".into()),
        None => location.to_string(),
    }
}

/// Appends a query parameter to a location that may already have a query.
pub fn with_query(location: &str, param: &str) -> String {
    let p = path_of(location);
    if p.contains('?') {
        format!("{p}&{param}")
    } else {
        format!("{p}?{param}")
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    fn parse(raw: &[u8], head: bool) -> Option<Resp> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = std::str::from_utf8(&raw[..split]).ok()?;
        let mut lines = text.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = &raw[split + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if head {
            Vec::new()
        } else if chunked {
            dechunk(rest)?
        } else {
            rest.to_vec()
        };
        Some(Resp {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `code`s of an OCI error body.
    pub fn error_codes(&self) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["code"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts the status and, when given, the first error code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Resp {
        assert_eq!(
            self.status,
            status,
            "status; response {:?} {:?}",
            self.headers,
            String::from_utf8_lossy(&self.body)
        );
        if let Some(code) = code {
            assert_eq!(
                self.error_codes().first().map(String::as_str),
                Some(code),
                "error code; body {:?}",
                String::from_utf8_lossy(&self.body)
            );
        }
        self
    }
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    digest_of(Algorithm::Sha256, bytes)
}

pub fn sha512(bytes: &[u8]) -> String {
    digest_of(Algorithm::Sha512, bytes)
}

fn digest_of(a: Algorithm, bytes: &[u8]) -> String {
    let mut h = Hasher::new(a);
    h.update(bytes);
    h.finish().to_string()
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

impl Registry {
    /// Pushes a blob the common way (POST, then PUT with the whole body); its digest.
    #[track_caller]
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let start = self.call("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        start.expect(202, None);
        let location = start.header("location").expect("Location");
        self.call(
            "PUT",
            &with_query(location, &format!("digest={digest}")),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )
        .expect(201, None);
        digest
    }

    /// Pushes a manifest document; the response.
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.call(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        )
    }

    /// Pushes a config and one layer and an OCI image manifest naming them, tagged
    /// `tag`; the manifest bytes and digest.
    #[track_caller]
    pub fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Vec<u8>, String) {
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
        let layer = format!("layer of {seed}");
        let config_digest = self.push_blob(repo, config.as_bytes());
        let layer_digest = self.push_blob(repo, layer.as_bytes());
        let manifest = image_manifest(
            OCI_MANIFEST,
            OCI_CONFIG,
            (&config_digest, config.len()),
            &[(&layer_digest, layer.len())],
            None,
        );
        self.put_manifest(repo, tag, OCI_MANIFEST, &manifest)
            .expect(201, None);
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

/// An image manifest document (OCI or Docker schema2 per `media_type`).
pub fn image_manifest(
    media_type: &str,
    config_media_type: &str,
    config: (&str, usize),
    layers: &[(&str, usize)],
    extra: Option<serde_json::Value>,
) -> Vec<u8> {
    let layer_type = if media_type == DOCKER_MANIFEST {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        OCI_LAYER
    };
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_media_type, "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({"mediaType": layer_type, "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    if let Some(serde_json::Value::Object(extra)) = extra {
        for (k, v) in extra {
            m[k] = v;
        }
    }
    serde_json::to_vec(&m).expect("json")
}

/// An `Authorization: Basic` header value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
