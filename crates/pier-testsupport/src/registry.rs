//! A `docker-registry` (Debian's distribution 2.8) of a test's own: config, storage
//! and log in a temp dir, on a free loopback port, stopped by pid when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{skip, Daemon};

/// Where Debian's package installs the registry.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

pub struct DockerRegistry {
    // Drop order: the registry stops before its directory goes.
    daemon: Option<Daemon>,
    dir: tempfile::TempDir,
    port: u16,
}

impl DockerRegistry {
    /// Starts a registry, with htpasswd auth when `htpasswd` (a `user:bcrypt-hash`
    /// line) is given; None (after printing why) when the binary is missing.
    pub fn start_or_skip(test: &str, htpasswd: Option<&str>) -> Option<DockerRegistry> {
        DockerRegistry::start_with(test, htpasswd, false)
    }

    /// A registry serving HTTPS with a self-signed certificate for 127.0.0.1 (made with
    /// `openssl`); None (after printing why) when the registry or openssl is missing.
    pub fn start_tls_or_skip(test: &str) -> Option<DockerRegistry> {
        if crate::which("openssl").is_none() {
            skip(test, "openssl is not installed");
            return None;
        }
        DockerRegistry::start_with(test, None, true)
    }

    fn start_with(test: &str, htpasswd: Option<&str>, tls: bool) -> Option<DockerRegistry> {
        if !Path::new(DOCKER_REGISTRY).exists() {
            skip(
                test,
                "docker-registry is not installed (apt docker-registry, see scripts/setup.sh)",
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pier-registry-test-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(entry) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{entry}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: pier-test\n    path: {}\n",
                file.display()
            ));
        }
        if tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            crate::run_ok(
                Command::new("openssl")
                    .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                    .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
                    .args([
                        "-subj",
                        "/CN=127.0.0.1",
                        "-addext",
                        "subjectAltName=IP:127.0.0.1",
                    ])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&cert),
                Duration::from_secs(30),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).expect("config");
        let mut cmd = Command::new(DOCKER_REGISTRY);
        cmd.arg("serve").arg(dir.path().join("config.yml"));
        let mut daemon = Daemon::spawn("docker-registry", cmd, dir.path().join("registry.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        daemon
            .wait_ready(Duration::from_secs(20), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        Some(DockerRegistry {
            daemon: Some(daemon),
            dir,
            port,
        })
    }

    /// `127.0.0.1:PORT`, the registry part of image names.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding config, storage and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log, last `lines` lines.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon
            .as_ref()
            .map_or_else(String::new, |d| d.log_tail(lines))
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A bcrypt hash of `password` from the C library's crypt (libxcrypt), through
/// python3; None where that is unavailable.
pub fn bcrypt_hash(password: &str) -> Option<String> {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            password,
        ])
        .output()
        .ok()?;
    let hash = String::from_utf8(out.stdout).ok()?.trim().to_string();
    hash.starts_with("$2").then_some(hash)
}
