//! `pier_api::client` against real daemons: a pierd of the test's own (unix socket,
//! and TCP with mutual TLS when the `openssl` CLI can make certificates) and the
//! isolated dockerd 20.10. Covers version negotiation (and a pinned version), typed
//! JSON, error answers as `Error::Daemon`, a chunked upload (an image import, with
//! its JSON-lines progress), and hijacked attach and exec streams whose stdin is
//! half-closed while their output is still read.
//!
//! The daemons are the workspace's debug builds (`target/debug/pierd`, beside this
//! test's own directory): `cargo build -p pierd -p pier-runtime` first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pier_api::client::blocking::Client;
use pier_api::client::stream::Demuxer;
use pier_api::client::{ApiVersion, Config, Error, Request, TlsOptions};
use serde::Deserialize;
use serde_json::json;

/// A binary of the workspace, from the target directory this test runs in.
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/client-<hash>
    let bin = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        bin.is_file(),
        "{} is missing: cargo build -p pierd -p pier-runtime first",
        bin.display()
    );
    bin
}

/// A pierd with its own root, bridge and socket; containers, pierd, its bridge and
/// firewall table go when dropped (also after a panic).
struct TestPierd {
    dir: tempfile::TempDir,
    daemon: pier_testsupport::Daemon,
    bridge: String,
}

impl TestPierd {
    fn start(extra_args: &[String]) -> TestPierd {
        workspace_bin("pier-runtime");
        let dir = tempfile::Builder::new()
            .prefix("pier-api-client-")
            .tempdir()
            .unwrap();
        let bridge = pier_testsupport::unique_name("pa");
        let mut cmd = Command::new(workspace_bin("pierd"));
        cmd.arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.path().join("pier.sock").display()))
            .args(["--bridge", &bridge, "--dns", "127.0.0.1"])
            .args(extra_args);
        let mut daemon =
            pier_testsupport::Daemon::spawn("pierd", cmd, dir.path().join("pierd.log"))
                .unwrap_or_else(|e| panic!("{e}"));
        let sock = dir.path().join("pier.sock");
        let host = format!("unix://{}", sock.display());
        daemon
            .wait_ready(Duration::from_secs(30), || {
                sock.exists() && connect_to(&host).negotiate().is_ok()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        TestPierd {
            dir,
            daemon,
            bridge,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("pier.sock").display())
    }

    fn client(&self) -> Client {
        connect_to(&self.host())
    }

    /// Imports the busybox rootfs as `busybox` through a chunked upload; the import's
    /// JSON-lines progress names the image.
    fn import_busybox(&self, client: &Client) {
        let rootfs = self.dir.path().join("rootfs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let made = Command::new("bash")
            .arg(&script)
            .arg(&rootfs)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "{} failed", script.display());
        // tar writes the archive to a pipe: the upload's length is not known up front.
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-cf", "-", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let archive = tar.stdout.take().unwrap();
        let answer = client
            .send_reader(
                Request::post("/images/create?fromSrc=-&repo=busybox&tag=latest"),
                "application/x-tar",
                archive,
            )
            .unwrap();
        assert!(tar.wait().unwrap().success());
        let statuses: Vec<serde_json::Value> = answer
            .json_lines()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let id = statuses
            .iter()
            .find_map(|s| s["status"].as_str().filter(|s| s.starts_with("sha256:")))
            .unwrap_or_else(|| panic!("no image ID in the import's progress: {statuses:?}"));
        let image: serde_json::Value = client
            .send(Request::get("/images/busybox/json"))
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(image["Id"], id);
    }
}

impl Drop for TestPierd {
    fn drop(&mut self) {
        if !self.daemon.stopped() {
            let c = self.client();
            let listed = c
                .send(Request::get("/containers/json?all=1"))
                .and_then(|r| r.json::<Vec<serde_json::Value>>());
            for container in listed.unwrap_or_default() {
                if let Some(id) = container["Id"].as_str() {
                    let _ = c.send(Request::delete(format!("/containers/{id}?force=1")));
                }
            }
        }
        if let Some(note) = self.daemon.stop() {
            eprintln!("warning: {note}");
        }
        pier_testsupport::remove_bridge_and_table(&self.bridge);
    }
}

fn connect_to(host: &str) -> Client {
    Client::new(Config::new(host).unwrap()).unwrap()
}

#[derive(Debug, Deserialize)]
struct Version {
    #[serde(rename = "ApiVersion")]
    api_version: String,
    #[serde(rename = "MinAPIVersion")]
    min_api_version: String,
}

/// The same missing container on any engine: 404 with Docker's message, typed.
fn assert_no_such_container(client: &Client) {
    let err = client
        .send(Request::get("/containers/pier-api-no-such/json"))
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap_err();
    match err {
        Error::Daemon { status, message } => {
            assert_eq!(status, 404);
            assert_eq!(message, "No such container: pier-api-no-such");
        }
        other => panic!("expected a daemon error, got {other:?}"),
    }
}

#[test]
fn unix_socket_negotiation_json_and_errors() {
    let pierd = TestPierd::start(&[]);
    let client = pierd.client();
    // pierd serves newer versions than the client speaks: the client's maximum wins.
    let ping = client.ping().unwrap();
    let served = ping
        .api_version
        .expect("pierd's ping names its API-Version");
    assert!(served >= Config::DEFAULT_MAX_API_VERSION, "{served}");
    assert_eq!(client.negotiate().unwrap(), Config::DEFAULT_MAX_API_VERSION);
    // A client that speaks newer versions than pierd takes pierd's.
    let mut newer = Config::new(&pierd.host()).unwrap();
    newer.max_api_version = ApiVersion::new(1, 99);
    let newer = Client::new(newer).unwrap();
    assert_eq!(newer.negotiate().unwrap(), served);
    let version: Version = newer
        .send(Request::get("/version"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(version.api_version, served.to_string());

    assert_no_such_container(&client);

    // A pinned version is used as given, without a ping: pierd refuses one this old
    // with dockerd's 400 and message, which the client hands back typed.
    let mut pinned = Config::new(&pierd.host()).unwrap();
    pinned.api_version = Some(ApiVersion::new(1, 12));
    let pinned = Client::new(pinned).unwrap();
    assert_eq!(pinned.negotiate().unwrap(), ApiVersion::new(1, 12));
    let err = pinned
        .send(Request::get("/version"))
        .unwrap()
        .json::<Version>()
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "client version 1.12 is too old. Minimum supported API version is {}",
            version.min_api_version
        )),
        "{err}"
    );

    // Nothing listening: a connect error, not a daemon answer.
    let gone = connect_to(&format!(
        "unix://{}",
        pierd.dir.path().join("none.sock").display()
    ));
    let err = gone.negotiate().unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[test]
fn negotiates_down_to_dockerd_20_10() {
    let Some(dockerd) = pier_testsupport::IsolatedDockerd::start_or_skip(
        "negotiates_down_to_dockerd_20_10",
        Default::default(),
    ) else {
        return;
    };
    let client = connect_to(&dockerd.host());
    assert_eq!(client.negotiate().unwrap(), ApiVersion::new(1, 41));
    let version: Version = client
        .send(Request::get("/version"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(version.api_version, "1.41");
    assert_no_such_container(&client);
}

/// Creates a container running `sh -c script` with stdin open, not started.
fn create(client: &Client, script: &str) -> String {
    let created: serde_json::Value = client
        .send(
            Request::post("/containers/create")
                .json(&json!({
                    "Image": "busybox",
                    "Cmd": ["sh", "-c", script],
                    "OpenStdin": true,
                    "StdinOnce": true,
                    "AttachStdin": true,
                    "AttachStdout": true,
                    "AttachStderr": true,
                    "HostConfig": {"NetworkMode": "none"},
                }))
                .unwrap(),
        )
        .unwrap()
        .json()
        .unwrap();
    created["Id"].as_str().unwrap().to_string()
}

/// Writes `input` to a hijacked stream, closes its write side, and reads the
/// demultiplexed output to the end: (stdout, stderr).
fn converse(stream: pier_api::client::blocking::Upgraded, input: &[u8]) -> (String, String) {
    let (reader, mut writer) = stream.split();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read = Demuxer::new(reader).copy_to(&mut out, &mut err);
        let _ = tx.send(read.map(|()| {
            (
                String::from_utf8_lossy(&out).into_owned(),
                String::from_utf8_lossy(&err).into_owned(),
            )
        }));
    });
    writer.write_all(input).unwrap();
    writer.flush().unwrap();
    // The process sees its stdin end only from the half-close: without it `cat`
    // never returns and the output never ends.
    writer.shutdown().unwrap();
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the output did not end after stdin was closed")
        .unwrap()
}

/// Attach and exec over `client`: stdin in, half-closed, the output after it read.
fn attach_and_exec(client: &Client) {
    let id = create(client, "cat; echo stdin-closed >&2");
    let stream = client
        .upgrade(Request::post(format!(
            "/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1"
        )))
        .unwrap();
    client
        .send(Request::post(format!("/containers/{id}/start")))
        .unwrap()
        .error_for_status()
        .unwrap();
    let (out, err) = converse(stream, b"through attach\n");
    assert_eq!(out, "through attach\n");
    assert_eq!(err, "stdin-closed\n");
    let waited: serde_json::Value = client
        .send(Request::post(format!("/containers/{id}/wait")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(waited["StatusCode"], 0);

    // exec start: a JSON body on the upgrade request.
    let id = create(client, "sleep 60");
    client
        .send(Request::post(format!("/containers/{id}/start")))
        .unwrap()
        .error_for_status()
        .unwrap();
    let exec: serde_json::Value = client
        .send(
            Request::post(format!("/containers/{id}/exec"))
                .json(&json!({
                    "Cmd": ["sh", "-c", "wc -c; echo exec-done >&2"],
                    "AttachStdin": true,
                    "AttachStdout": true,
                    "AttachStderr": true,
                }))
                .unwrap(),
        )
        .unwrap()
        .json()
        .unwrap();
    let exec_id = exec["Id"].as_str().unwrap();
    let stream = client
        .upgrade(
            Request::post(format!("/exec/{exec_id}/start"))
                .json(&json!({"Detach": false, "Tty": false}))
                .unwrap(),
        )
        .unwrap();
    let (out, err) = converse(stream, &[b'x'; 100_000]);
    assert_eq!(out.trim(), "100000");
    assert_eq!(err, "exec-done\n");
    let inspect: serde_json::Value = client
        .send(Request::get(format!("/exec/{exec_id}/json")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(inspect["ExitCode"], 0);

    // A hijack the daemon refuses is its typed error, not a stream.
    let err = client
        .upgrade(Request::post(
            "/containers/pier-api-no-such/attach?stream=1&stdout=1",
        ))
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}

#[test]
fn chunked_upload_and_hijacked_streams_over_unix() {
    let pierd = TestPierd::start(&[]);
    let client = pierd.client();
    pierd.import_busybox(&client);
    attach_and_exec(&client);

    // The async client's JSON lines: the events so far (`until` now ends the stream),
    // decoded into typed values as they come.
    #[derive(Debug, Deserialize)]
    struct Event {
        #[serde(rename = "Type")]
        kind: String,
        #[serde(rename = "Action")]
        action: String,
    }
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let api = client.inner().clone();
    let events: Vec<Event> = client.block_on(async move {
        let answer = api
            .send(Request::get(format!("/events?since=0&until={until}")))
            .await
            .unwrap();
        let mut lines = answer.json_lines::<Event>().await.unwrap();
        let mut events = Vec::new();
        while let Some(event) = lines.next().await {
            events.push(event.unwrap());
        }
        events
    });
    let seen =
        |kind: &str, action: &str| events.iter().any(|e| e.kind == kind && e.action == action);
    assert!(
        seen("container", "create") && seen("container", "start") && seen("container", "die"),
        "{events:?}"
    );
}

/// A free port on 127.0.0.1 (a moment ago).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn openssl(dir: &Path, args: &[&str]) {
    pier_testsupport::run_ok(
        Command::new("openssl").current_dir(dir).args(args),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in Docker's
/// file names (`ca.pem`, `cert.pem`, `key.pem` for the client; `server-*.pem`), and
/// a second CA that signed neither.
fn make_pki(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
    for ca in ["ca", "stranger-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}-key.pem"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=pier-api test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    for (key, cert, ext, serial) in [
        ("server-key.pem", "server-cert.pem", "server.ext", "11"),
        ("key.pem", "cert.pem", "client.ext", "12"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                key,
                "-out",
                "req.csr",
                "-subj",
                "/CN=pier-api test",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                "req.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-set_serial",
                serial,
                "-extfile",
                ext,
                "-out",
                cert,
            ],
        );
    }
}

#[test]
fn tcp_with_mutual_tls() {
    if !pier_testsupport::require_tools("tcp_with_mutual_tls", &["openssl"]) {
        return;
    }
    let pki = tempfile::Builder::new()
        .prefix("pier-api-pki-")
        .tempdir()
        .unwrap();
    make_pki(pki.path());
    let file = |name: &str| pki.path().join(name).display().to_string();
    let port = free_port();
    let pierd = TestPierd::start(&[
        "-H".into(),
        format!("tcp://127.0.0.1:{port}"),
        "--tlsverify".into(),
        "--tlscacert".into(),
        file("ca.pem"),
        "--tlscert".into(),
        file("server-cert.pem"),
        "--tlskey".into(),
        file("server-key.pem"),
    ]);
    pier_testsupport::poll(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "pierd does not listen on {port}\n{}",
            pierd.daemon.log_tail(20)
        )
    });
    let host = format!("tcp://127.0.0.1:{port}");
    let tls_client = |tls: TlsOptions| {
        let mut config = Config::new(&host).unwrap();
        config.tls = Some(tls);
        Client::new(config).unwrap()
    };

    // The docker CLI's DOCKER_CERT_PATH layout, verified both ways.
    let client = tls_client(TlsOptions::from_dir(pki.path(), true));
    assert_eq!(client.negotiate().unwrap(), Config::DEFAULT_MAX_API_VERSION);
    assert_no_such_container(&client);
    pierd.import_busybox(&client);
    // Half-closing a TLS stream sends close_notify; the daemon's side still answers.
    attach_and_exec(&client);

    // No client certificate: the daemon (--tlsverify) refuses the handshake.
    let anonymous = tls_client(TlsOptions {
        cert: None,
        key: None,
        ..TlsOptions::from_dir(pki.path(), true)
    });
    let err = anonymous.negotiate().unwrap_err();
    assert!(err.status().is_none(), "{err}");
    // A daemon certificate from a CA we do not trust: our side refuses.
    let suspicious = tls_client(TlsOptions {
        ca: Some(pki.path().join("stranger-ca.pem")),
        ..TlsOptions::from_dir(pki.path(), true)
    });
    let err = suspicious.negotiate().unwrap_err();
    assert!(matches!(err, Error::TlsHandshake { .. }), "{err:?}");
    // Plain HTTP to a TLS port is no answer either.
    assert!(connect_to(&host).negotiate().is_err());

    // The pier CLI on the same client, configured as the docker CLI is: DOCKER_HOST,
    // DOCKER_TLS_VERIFY and DOCKER_CERT_PATH; stdin goes through the hijacked TLS
    // stream and its end reaches the container.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("printf 'over tls\\n' | \"$0\" \"$@\"")
        .arg(workspace_bin("pier"))
        .args(["run", "--rm", "-i", "--network", "none", "busybox"])
        .args(["sh", "-c", "cat; echo end"])
        .env_remove("PIER_HOST")
        .env_remove("DOCKER_API_VERSION")
        .env("DOCKER_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", pki.path());
    let out = pier_testsupport::run(&mut cmd, Duration::from_secs(60)).unwrap();
    assert_eq!(out.code, Some(0), "{}", out.explain("pier run -i over TLS"));
    assert_eq!(out.stdout, "over tls\nend\n");
    // Without the certificate path the CLI cannot pass the daemon's --tlsverify.
    let mut cmd = Command::new(workspace_bin("pier"));
    cmd.args(["-H", &host, "--tlsverify", "ps"])
        .env_remove("PIER_HOST")
        .env("DOCKER_CERT_PATH", pierd.dir.path());
    let out = pier_testsupport::run(&mut cmd, Duration::from_secs(60)).unwrap();
    assert_ne!(
        out.code,
        Some(0),
        "{}",
        out.explain("pier without a certificate")
    );
}
