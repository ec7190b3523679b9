//! The daemon's command line, with dockerd's flag names.

use std::path::PathBuf;

use clap::Parser;

/// dockerd's port for `tcp://` hosts without TLS.
pub const DEFAULT_HTTP_PORT: u16 = 2375;
/// dockerd's port for `tcp://` hosts with TLS.
pub const DEFAULT_TLS_HTTP_PORT: u16 = 2376;
/// dockerd's host for `tcp://` addresses without one (`tcp://:2376`).
pub const DEFAULT_HTTP_HOST: &str = "localhost";

/// Pier's engine daemon: serves the Docker Engine API.
#[derive(Debug, Clone, Parser)]
#[command(name = "pierd", version, about)]
pub struct DaemonConfig {
    /// Daemon socket(s) to connect to: unix://PATH or tcp://[HOST]:[PORT] (repeatable)
    #[arg(
        short = 'H',
        long = "host",
        value_name = "HOST",
        default_value = "unix:///run/pier/pier.sock"
    )]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long, default_value = "/var/lib/pier", value_name = "DIR")]
    pub data_root: PathBuf,
    /// Root directory of execution state
    #[arg(long, default_value = "/run/pier", value_name = "DIR")]
    pub exec_root: PathBuf,
    /// Path of the daemon's PID file [default: EXEC_ROOT/pierd.pid]
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Register an OCI runtime: NAME=PATH
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    pub add_runtime: Vec<String>,
    /// Default OCI runtime for containers
    #[arg(long, default_value = "pier-runtime", value_name = "NAME")]
    pub default_runtime: String,
    /// Set the logging level (debug, info, warn, error, fatal)
    #[arg(short = 'l', long, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Attach containers to this bridge device by default (`none`: no default bridge
    /// network; containers then default to `--network none`)
    #[arg(
        short = 'b',
        long = "bridge",
        default_value = "pier0",
        value_name = "NAME"
    )]
    pub bridge: String,
    /// Address and prefix length of the default bridge, e.g. 10.20.0.1/24 (default:
    /// chosen at first start from the address pools, avoiding the host's networks)
    #[arg(long, value_name = "CIDR")]
    pub bip: Option<String>,
    /// Where subnets of new networks come from (base=CIDR,size=PREFIXLEN; repeatable)
    #[arg(long = "default-address-pool", value_name = "base=CIDR,size=N")]
    pub default_address_pools: Vec<String>,
    /// Default host address published ports bind to
    #[arg(long = "ip", default_value = "0.0.0.0", value_name = "IP")]
    pub default_ip: String,
    /// DNS servers for containers (default: the host's resolvers)
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Manage the firewall (Pier's own nftables table): NAT, published ports, isolation
    #[arg(
        long = "iptables",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub iptables: bool,
    /// MTU of container interfaces (default: the kernel's, 1500)
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u32>,
    /// Keep containers running while the daemon is down (always on in Pier: every
    /// container has its own monitor process)
    #[arg(long)]
    pub live_restore: bool,
    /// User/Group setting for user namespaces: `default` (Pier's own `pierremap` user,
    /// made when missing), `USER`, `USER:GROUP`, `UID` or `UID:GID`; container root
    /// then maps to that user's subordinate IDs
    #[arg(long = "userns-remap", value_name = "USER[:GROUP]")]
    pub userns_remap: Option<String>,
    /// Run an init inside containers (as `docker run --init`) unless a container says
    /// otherwise
    #[arg(long = "init")]
    pub init: bool,
    /// The init `--init` runs, bind-mounted at /sbin/docker-init [default: Pier's own,
    /// written to EXEC_ROOT/pier-init]
    #[arg(long = "init-path", value_name = "PATH")]
    pub init_path: Option<PathBuf>,
    /// A directory of CDI spec files (`.json`) for `--device vendor.com/class=name`
    /// and `--gpus`; repeatable [default: /etc/cdi and /var/run/cdi]
    #[arg(long = "cdi-spec-dir", value_name = "DIR")]
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// Use TLS; implied by --tlsverify
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tls: Option<bool>,
    /// Use TLS and verify the remote (clients need a certificate signed by --tlscacert)
    #[arg(
        long = "tlsverify",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tls_verify: Option<bool>,
    /// Trust certs signed only by this CA [default: ~/.docker/ca.pem]
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub tls_ca_cert: Option<PathBuf>,
    /// Path to TLS certificate file [default: ~/.docker/cert.pem]
    #[arg(long = "tlscert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Path to TLS key file [default: ~/.docker/key.pem]
    #[arg(long = "tlskey", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Registry (host[:port] or CIDR) spoken to over plain HTTP (repeatable);
    /// loopback registries always are
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    pub insecure_registries: Vec<String>,
    /// Mirror (URL) tried before Docker Hub for its images (repeatable)
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
}

/// A `-H` address the daemon listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `unix://PATH`
    Unix(PathBuf),
    /// `tcp://HOST:PORT`, as `HOST:PORT` (IPv6 hosts in brackets).
    Tcp(String),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// The TLS set-up of the daemon's TCP listeners (`--tls`, `--tlsverify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA client certificates must chain to; `Some` exactly with `--tlsverify`.
    pub client_ca: Option<PathBuf>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A daemon flag that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unsupported host {0:?}: pierd listens on unix://PATH and tcp://HOST:PORT")]
    UnsupportedHost(String),
    #[error("invalid bind address format: {0}")]
    InvalidTcpAddr(String),
    #[error(
        "refusing to listen on {0} without TLS: anyone who can reach it gets root on this \
         machine. Use --tlsverify with client certificates, or give --tls=false to accept the risk"
    )]
    PlainTcpRefused(String),
}

impl DaemonConfig {
    /// The PID file path: `--pidfile`, or `pierd.pid` in the exec root.
    pub fn pidfile(&self) -> PathBuf {
        self.pidfile
            .clone()
            .unwrap_or_else(|| self.exec_root.join("pierd.pid"))
    }

    /// The unix socket paths of `-H unix://PATH` (tcp hosts are left out; other
    /// schemes are refused).
    pub fn socket_paths(&self) -> Result<Vec<PathBuf>, String> {
        Ok(self
            .listen_addrs()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|a| match a {
                ListenAddr::Unix(p) => Some(p),
                ListenAddr::Tcp(_) => None,
            })
            .collect())
    }

    /// Every `-H` as dockerd parses it: `unix://PATH`, `tcp://[HOST][:PORT]` (host
    /// `localhost` and port 2375, or 2376 with TLS, when left out) and `HOST:PORT`
    /// without a scheme (tcp).
    pub fn listen_addrs(&self) -> Result<Vec<ListenAddr>, ConfigError> {
        let default_port = if self.tls_enabled() {
            DEFAULT_TLS_HTTP_PORT
        } else {
            DEFAULT_HTTP_PORT
        };
        self.hosts
            .iter()
            .map(|h| parse_host(h.trim(), default_port))
            .collect()
    }

    /// Docker 27's rule for TCP listeners: plain HTTP (no TLS at all) only when the
    /// operator asked for it with an explicit `--tls=false`. An unauthenticated TCP
    /// socket is root for anyone who can reach it, loopback included (browsers).
    pub fn check_tcp_listeners(&self) -> Result<(), ConfigError> {
        if self.tls_enabled() || self.tls == Some(false) {
            return Ok(());
        }
        match self
            .listen_addrs()?
            .into_iter()
            .find(|a| matches!(a, ListenAddr::Tcp(_)))
        {
            Some(tcp) => Err(ConfigError::PlainTcpRefused(tcp.to_string())),
            None => Ok(()),
        }
    }

    /// Whether TCP listeners use TLS: `--tls`, or `--tlsverify` given at all (dockerd
    /// turns TLS on even for `--tlsverify=false`).
    pub fn tls_enabled(&self) -> bool {
        self.tls_verify.is_some() || self.tls == Some(true)
    }

    /// The TLS files, with dockerd's defaults (`$DOCKER_CERT_PATH` or `~/.docker`,
    /// `ca.pem`, `cert.pem`, `key.pem`); None without TLS. The CA is only used (and
    /// client certificates only required) with `--tlsverify`.
    pub fn tls_settings(&self) -> Option<TlsSettings> {
        if !self.tls_enabled() {
            return None;
        }
        let dir = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".docker")
            });
        let file = |given: &Option<PathBuf>, name: &str| given.clone().unwrap_or(dir.join(name));
        Some(TlsSettings {
            client_ca: (self.tls_verify == Some(true)).then(|| file(&self.tls_ca_cert, "ca.pem")),
            cert: file(&self.tls_cert, "cert.pem"),
            key: file(&self.tls_key, "key.pem"),
        })
    }
}

fn parse_host(host: &str, default_port: u16) -> Result<ListenAddr, ConfigError> {
    let (scheme, addr) = host.split_once("://").unwrap_or(("tcp", host));
    match scheme {
        "unix" if !addr.is_empty() => Ok(ListenAddr::Unix(PathBuf::from(addr))),
        "tcp" => parse_tcp(addr, default_port).map(ListenAddr::Tcp),
        _ => Err(ConfigError::UnsupportedHost(host.to_string())),
    }
}

/// `[HOST][:PORT]` → `HOST:PORT` (docker's `ParseTCPAddr` for a daemon: no path).
fn parse_tcp(addr: &str, default_port: u16) -> Result<String, ConfigError> {
    let bad = || ConfigError::InvalidTcpAddr(format!("tcp://{addr}"));
    if addr.contains('/') {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or_else(bad)?),
        };
        (format!("[{h}]"), port)
    } else {
        match addr.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(bad()),
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (addr.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
    };
    let host = if host.is_empty() || host == "[]" {
        DEFAULT_HTTP_HOST.to_string()
    } else {
        host
    };
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> DaemonConfig {
        DaemonConfig::try_parse_from(std::iter::once("pierd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn hosts_like_dockerd() {
        let c = config(&[
            "-H",
            "unix:///run/x.sock",
            "-H",
            "tcp://127.0.0.1:2376",
            "-H",
            "tcp://:4000",
            "-H",
            "tcp://",
            "-H",
            "10.0.0.1:5",
            "-H",
            "tcp://[::1]",
        ]);
        assert_eq!(
            c.listen_addrs().unwrap(),
            vec![
                ListenAddr::Unix("/run/x.sock".into()),
                ListenAddr::Tcp("127.0.0.1:2376".into()),
                ListenAddr::Tcp("localhost:4000".into()),
                ListenAddr::Tcp("localhost:2375".into()),
                ListenAddr::Tcp("10.0.0.1:5".into()),
                ListenAddr::Tcp("[::1]:2375".into()),
            ]
        );
        assert_eq!(
            c.socket_paths().unwrap(),
            vec![PathBuf::from("/run/x.sock")]
        );
        assert!(c.tls_settings().is_none());
        let c = config(&["-H", "tcp://0.0.0.0", "--tls"]);
        assert_eq!(
            c.listen_addrs().unwrap(),
            vec![ListenAddr::Tcp("0.0.0.0:2376".into())]
        );
        for bad in [
            "fd://",
            "tcp://a:b",
            "tcp://h:1/path",
            "ssh://x",
            "unix://",
            "::1:4",
        ] {
            assert!(config(&["-H", bad]).listen_addrs().is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_flags_like_dockerd() {
        let c = config(&[
            "--tlsverify",
            "--tlscacert",
            "c",
            "--tlscert",
            "s",
            "--tlskey",
            "k",
        ]);
        assert_eq!(
            c.tls_settings(),
            Some(TlsSettings {
                client_ca: Some("c".into()),
                cert: "s".into(),
                key: "k".into()
            })
        );
        // --tls: no client verification, the CA is ignored.
        let c = config(&[
            "--tls",
            "--tlscacert",
            "c",
            "--tlscert",
            "s",
            "--tlskey",
            "k",
        ]);
        assert_eq!(c.tls_settings().unwrap().client_ca, None);
        // --tlsverify=false still turns TLS on (dockerd), without verification.
        let c = config(&["--tlsverify=false", "--tlscert", "s", "--tlskey", "k"]);
        assert!(c.tls_enabled());
        assert_eq!(c.tls_settings().unwrap().client_ca, None);
        assert!(!config(&["--tls=false"]).tls_enabled());
        assert!(!config(&[]).tls_enabled());
    }

    #[test]
    fn plain_tcp_needs_an_explicit_tls_false() {
        let refused = config(&["-H", "unix:///run/x.sock", "-H", "tcp://127.0.0.1:2375"]);
        assert_eq!(
            refused.check_tcp_listeners(),
            Err(ConfigError::PlainTcpRefused("tcp://127.0.0.1:2375".into()))
        );
        for ok in [
            &["-H", "tcp://127.0.0.1:2375", "--tls=false"][..],
            &["-H", "tcp://127.0.0.1", "--tls"],
            &["-H", "tcp://127.0.0.1", "--tlsverify"],
            &["-H", "tcp://127.0.0.1", "--tlsverify=false"],
            &["-H", "unix:///run/x.sock"],
        ] {
            assert_eq!(config(ok).check_tcp_listeners(), Ok(()), "{ok:?}");
        }
    }
}
