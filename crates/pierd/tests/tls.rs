//! pierd on TCP, as dockerd: `-H tcp://…` next to the unix socket, mutual TLS with
//! `--tlsverify --tlscacert --tlscert --tlskey` (or server-only `--tls`), plain TCP
//! with dockerd's warning. Driven with the real docker CLI; certificates are made
//! with the `openssl` CLI at test time. Only 127.0.0.1 is used.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pierd_with_busybox_args, run_with_stdin, wait_until, Engine, Pierd, CMD_TIMEOUT};
use pier_testsupport::Out;

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn openssl(dir: &Path, args: &[&str]) {
    pier_testsupport::run_ok(
        Command::new("openssl").current_dir(dir).args(args),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The files of a test PKI, as Docker's "Protect the Docker daemon socket" makes them.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// CA, server certificate (SAN IP:127.0.0.1, serverAuth), client certificate
    /// (clientAuth), and a second CA with a client certificate of its own.
    fn make() -> Option<Pki> {
        if Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            pier_testsupport::skip("TLS", "the openssl CLI is missing");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pierd-pki-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-keyout",
                    &format!("{ca}-key.pem"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-subj",
                    &format!("/CN=pier test {ca}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        // (name, key type, CA, extensions, serial)
        for (name, key, ca, ext, serial) in [
            ("server", "rsa:2048", "ca", "server.ext", "1001"),
            ("client", "ec", "ca", "client.ext", "1002"),
            ("other-client", "ec", "other-ca", "client.ext", "2001"),
        ] {
            let mut req = vec!["req", "-new", "-newkey", key];
            if key == "ec" {
                req.extend(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
            }
            let keyout = format!("{name}-key.pem");
            let csr = format!("{name}.csr");
            let subj = format!("/CN={name}");
            req.extend(["-nodes", "-keyout", &keyout, "-out", &csr, "-subj", &subj]);
            openssl(d, &req);
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}-key.pem"),
                    "-set_serial",
                    serial,
                    "-extfile",
                    ext,
                    "-out",
                    &format!("{name}-cert.pem"),
                ],
            );
        }
        Some(Pki { dir })
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// pierd's flags for `--tlsverify` on `port` (besides its unix socket).
    fn daemon_args(&self, port: u16, mode: &str) -> Vec<String> {
        vec![
            "-H".into(),
            format!("tcp://127.0.0.1:{port}"),
            mode.into(),
            "--tlscacert".into(),
            self.file("ca.pem"),
            "--tlscert".into(),
            self.file("server-cert.pem"),
            "--tlskey".into(),
            self.file("server-key.pem"),
        ]
    }

    /// The docker CLI's flags for mutual TLS with the client certificate `client`.
    fn client_args(&self, port: u16, client: &str) -> Vec<String> {
        vec![
            "--tlsverify".into(),
            "--tlscacert".into(),
            self.file("ca.pem"),
            "--tlscert".into(),
            self.file(&format!("{client}-cert.pem")),
            "--tlskey".into(),
            self.file(&format!("{client}-key.pem")),
            "-H".into(),
            format!("tcp://127.0.0.1:{port}"),
        ]
    }
}

/// `docker <global> <args>` against `pierd` but through the given global flags
/// (`-H tcp://…` and TLS), not its unix socket.
fn docker_via(pierd: &Pierd, global: &[String], args: &[&str], stdin: Option<&Path>) -> Out {
    let mut cmd = pierd.command();
    cmd.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .args(global)
        .args(args);
    match stdin {
        Some(file) => run_with_stdin(&mut cmd, Stdio::from(std::fs::File::open(file).unwrap())),
        None => pier_testsupport::run(cmd.stdin(Stdio::null()), CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}")),
    }
}

fn wait_for_port(pierd: &Pierd, port: u16) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "pierd does not listen on 127.0.0.1:{port}\n{}",
        pierd.log_tail(20)
    );
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn stdin_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("stdin.txt");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn tlsverify_serves_the_docker_cli_and_refuses_strangers() {
    let Some(pki) = Pki::make() else {
        return;
    };
    let port = free_port();
    let Some((pierd, work)) = pierd_with_busybox_args(&strs(&pki.daemon_args(port, "--tlsverify")))
    else {
        return;
    };
    wait_for_port(&pierd, port);
    let tls = pki.client_args(port, "client");

    let out = docker_via(
        &pierd,
        &tls,
        &["version", "--format", "{{.Server.Os}}"],
        None,
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "linux\n"),
        "{out:?}"
    );

    let out = docker_via(
        &pierd,
        &tls,
        &["run", "--rm", "busybox", "echo", "hi"],
        None,
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "hi\n"),
        "{out:?}"
    );

    // Hijacked attach over TLS, stdin to its end, output after it.
    let input = stdin_file(work.path(), "hello over tls\nsecond line\n");
    let out = docker_via(
        &pierd,
        &tls,
        &["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"],
        Some(&input),
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "hello over tls\nsecond line\ndone\n"),
        "{out:?}\n{}",
        pierd.log_tail(20)
    );

    // exec start is hijacked too.
    let id = docker_via(&pierd, &tls, &["run", "-d", "busybox", "sleep", "60"], None);
    assert_eq!(id.code, Some(0), "{id:?}");
    let id = id.stdout.trim().to_string();
    let out = docker_via(&pierd, &tls, &["exec", "-i", &id, "wc", "-l"], Some(&input));
    assert_eq!(
        (out.code, out.stdout.trim()),
        (Some(0), "2"),
        "{out:?}\n{}",
        pierd.log_tail(20)
    );
    let out = docker_via(&pierd, &tls, &["rm", "-f", &id], None);
    assert_eq!(out.code, Some(0), "{out:?}");

    // TLS, the server verified, but no client certificate: refused.
    let no_cert = vec![
        "--tlsverify".to_string(),
        "--tlscacert".into(),
        pki.file("ca.pem"),
        "-H".into(),
        format!("tcp://127.0.0.1:{port}"),
    ];
    let out = docker_via(&pierd, &no_cert, &["version"], None);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains("Server:"), "{out:?}");

    // A client certificate from another CA: refused.
    let other = pki.client_args(port, "other-client");
    let out = docker_via(&pierd, &other, &["ps"], None);
    assert_ne!(out.code, Some(0), "{out:?}");

    // Plain HTTP to the TLS port: refused.
    let plain = vec!["-H".to_string(), format!("tcp://127.0.0.1:{port}")];
    let out = docker_via(&pierd, &plain, &["ps"], None);
    assert_ne!(out.code, Some(0), "{out:?}");

    // The refusals are logged, and the daemon still serves.
    assert!(
        pierd.log_tail(50).contains("TLS handshake error"),
        "{}",
        pierd.log_tail(50)
    );
    assert!(!pierd
        .log_tail(50)
        .contains("without --tlsverify is insecure"));
    let out = docker_via(&pierd, &tls, &["ps", "-q"], None);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""), "{out:?}");
    // The unix socket still answers as before.
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]), "");
}

#[test]
fn tls_without_verify_accepts_clients_without_certificates() {
    let Some(pki) = Pki::make() else {
        return;
    };
    let port = free_port();
    let pierd = Pierd::start_with_args(&strs(&pki.daemon_args(port, "--tls")));
    wait_for_port(&pierd, port);
    // The client verifies the server, but has no certificate of its own.
    let global = vec![
        "--tlsverify".to_string(),
        "--tlscacert".into(),
        pki.file("ca.pem"),
        "-H".into(),
        format!("tcp://127.0.0.1:{port}"),
    ];
    let out = docker_via(
        &pierd,
        &global,
        &["version", "--format", "{{.Server.Os}}"],
        None,
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "linux\n"),
        "{out:?}"
    );
    // Without client verification, dockerd warns as for plain TCP.
    assert!(
        pierd
            .log_tail(50)
            .contains("Binding to IP address without --tlsverify is insecure"),
        "{}",
        pierd.log_tail(50)
    );
}

#[test]
fn plain_tcp_without_explicit_tls_false_is_refused() {
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("pier.sock");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pierd"));
    cmd.arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["-H", &host, "--bridge", "none"]);
    let out = pier_testsupport::run(&mut cmd, std::time::Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "refusing to listen on {host} without TLS: anyone who can reach it gets root"
        )) && out.stderr.contains("--tls=false"),
        "{out:?}"
    );
    // Nothing was left listening or made: no socket, no TCP port, no state.
    assert!(!socket.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(
        !dir.path().join("data").exists(),
        "state made before the refusal"
    );
}

#[test]
fn plain_tcp_works_with_explicit_tls_false_and_dockerds_warning() {
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let Some((pierd, work)) = pierd_with_busybox_args(&["-H", &host, "--tls=false"]) else {
        return;
    };
    wait_for_port(&pierd, port);
    let log = pierd.log_tail(50);
    assert!(
        log.contains(&format!(
            "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network. host=\"{host}\""
        )),
        "{log}"
    );
    let plain = vec!["-H".to_string(), host.clone()];
    let out = docker_via(
        &pierd,
        &plain,
        &["version", "--format", "{{.Server.Os}}"],
        None,
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "linux\n"),
        "{out:?}"
    );
    let input = stdin_file(work.path(), "plain\n");
    let out = docker_via(
        &pierd,
        &plain,
        &["run", "--rm", "-i", "busybox", "cat"],
        Some(&input),
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "plain\n"),
        "{out:?}"
    );
}
