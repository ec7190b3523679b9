//! No request can take pierd down. A create whose `HostConfig` was a string panicked
//! the daemon (and, with `panic = "abort"`, ended it with 134): bodies of the wrong JSON
//! types are refused with 400 in Docker's words, a panic in a handler answers 500 and
//! ends nothing, an oversized body gets a JSON error. And a bounded schema-driven fuzz
//! run (schemathesis against Docker's own `docker-engine-api.yaml`, through a loopback
//! TCP bridge to the daemon's unix socket) must end with pierd alive and no 5xx on
//! any route pierd implements.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Engine, Pierd};

/// The schemathesis release the fuzz run is pinned to (also in `scripts/setup.sh`).
const SCHEMATHESIS: &str = "4.32.5";

/// Operations of the Engine API left out of the fuzz run, each with why.
const EXCLUDED: &[(&str, &str)] = &[
    // Would touch the host outside the test daemon.
    (
        "ContainerStart",
        "runs a container with the fuzzer's HostConfig (binds of host paths, devices, privileged)",
    ),
    ("ContainerRestart", "starts a container, as ContainerStart"),
    (
        "NetworkCreate",
        "makes host bridges and routes with fuzzed subnets and bridge names (could take a host interface or route)",
    ),
    (
        "ImageCreate",
        "pulls from registries the fuzzer names, or imports from a URL (network beyond loopback)",
    ),
    ("ImagePush", "pushes to registries the fuzzer names (network beyond loopback)"),
    ("SystemAuth", "logs in to registries the fuzzer names (network beyond loopback)"),
    (
        "DistributionInspect",
        "asks registries the fuzzer names (network beyond loopback)",
    ),
    (
        "ImageBuild",
        "runs containers (RUN) as ContainerStart does, and pulls base images the fuzzer names",
    ),
    // Not request/response: the connection becomes a stream.
    ("ContainerAttach", "hijacks the connection into a raw stream"),
    ("ContainerAttachWebsocket", "a WebSocket upgrade"),
    ("ExecStart", "hijacks the connection into a raw stream"),
    ("SystemEvents", "streams until its `until`, by design"),
    // Answer 501 Not Implemented by design.
    ("ImageSearch", "not implemented: 501"),
    // Not implemented at all (404).
    ("ImageAttestations", "not implemented"),
    ("Session", "not implemented (BuildKit sessions)"),
    // The local driver mounts what its options name (`type`, `device`): fuzzed ones
    // could mount host devices. The volume endpoints have their own tests.
    ("VolumeCreate", "mounts what fuzzed driver options name"),
    ("VolumeList", "left out with VolumeCreate (tests/volumes.rs covers it)"),
    ("VolumeInspect", "left out with VolumeCreate (tests/volumes.rs covers it)"),
    ("VolumeUpdate", "not implemented (swarm cluster volumes only)"),
    ("VolumeDelete", "left out with VolumeCreate (tests/volumes.rs covers it)"),
];

/// Whole groups of operations pierd does not implement (swarm mode and plugins): they
/// answer as a dockerd outside a swarm and without plugins does (503 by design,
/// `tests/probe_endpoints.rs`), which this "no 5xx" fuzzing would count as faults.
const EXCLUDED_TAGS: &[(&str, &str)] = &[
    ("Plugin", "not implemented (plugins)"),
    ("Node", "not in a swarm: 503, as dockerd"),
    ("Swarm", "not in a swarm: 503, as dockerd"),
    ("Service", "not in a swarm: 503, as dockerd"),
    ("Task", "not in a swarm: 503, as dockerd"),
    ("Secret", "not in a swarm: 503, as dockerd"),
    ("Config", "not in a swarm: 503, as dockerd"),
];

/// A raw API call over the unix socket with curl, the body from a file: (status, body).
fn api(pierd: &Pierd, method: &str, path: &str, body: Option<&Path>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "60",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ])
    .arg("--unix-socket")
    .arg(pierd.socket());
    if let Some(file) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", file.display()));
    }
    cmd.arg(format!("http://localhost{path}"));
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// [`api`] with a body given as text.
fn post(pierd: &Pierd, path: &str, body: &str) -> (u16, String) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), body).expect("write body");
    api(pierd, "POST", path, Some(file.path()))
}

/// The `message` of a Docker error body; panics when the body is not one.
fn message(body: &str) -> String {
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {body:?}"));
    v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"))
        .to_string()
}

/// The daemon's process is there and `/_ping` answers `OK`.
fn assert_alive(pierd: &Pierd, after: &str) {
    assert!(
        Path::new(&format!("/proc/{}", pierd.pid())).exists(),
        "pierd died after {after}; its log:\n{}",
        pierd.log_tail(40)
    );
    let (code, body) = api(pierd, "GET", "/_ping", None);
    assert_eq!(
        (code, body.as_str()),
        (200, "OK"),
        "pierd does not answer /_ping after {after}; its log:\n{}",
        pierd.log_tail(40)
    );
}

#[test]
fn malformed_bodies_get_400_and_nothing_is_stored() {
    let pierd = Pierd::start();
    // The create that killed the daemon, then one wrong type of each kind pierd reads.
    let cases: &[(&str, &str, &str)] = &[
        (
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":"x"}"#,
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","Labels":{"a":1}}"#,
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Labels of type string",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","Env":"A=1"}"#,
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","Env":[1]}"#,
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Env of type string",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","Cmd":5}"#,
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","Healthcheck":"x"}"#,
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Healthcheck of type container.HealthConfig",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","ExposedPorts":["80/tcp"]}"#,
            "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.ExposedPorts of type nat.PortSet",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"Memory":"1g"}}"#,
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"RestartPolicy":"always"}}"#,
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.RestartPolicy of type container.RestartPolicy",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"bridge":"x"}}}"#,
            "json: cannot unmarshal string into Go struct field NetworkingConfig.NetworkingConfig.EndpointsConfig of type network.EndpointSettings",
        ),
        (
            "/containers/create",
            "[1]",
            "json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper",
        ),
        (
            "/networks/create",
            r#"{"Name":"n","Labels":{"a":true}}"#,
            "json: cannot unmarshal bool into Go struct field CreateRequest.Labels of type string",
        ),
        (
            "/networks/bridge/connect",
            r#"{"Container":"x","EndpointConfig":{"Aliases":"a"}}"#,
            "json: cannot unmarshal string into Go struct field EndpointSettings.EndpointConfig.Aliases of type []string",
        ),
        (
            "/networks/bridge/disconnect",
            r#"{"Container":["x"]}"#,
            "json: cannot unmarshal array into Go struct field DisconnectOptions.Container of type string",
        ),
    ];
    for (path, body, want) in cases {
        let (code, answer) = post(&pierd, path, body);
        assert_eq!(code, 400, "POST {path} {body}: {answer}");
        assert_eq!(message(&answer), *want, "POST {path} {body}");
        assert_alive(&pierd, &format!("POST {path} {body}"));
    }
    // Nothing of those was stored.
    let (code, list) = api(&pierd, "GET", "/containers/json?all=1", None);
    assert_eq!((code, list.trim()), (200, "[]"));
    let (_, networks) = api(&pierd, "GET", "/networks", None);
    assert!(!networks.contains("\"Name\":\"n\""), "{networks}");
}

#[test]
fn a_created_container_keeps_bodies_of_the_right_types_only() {
    let Some((pierd, _work)) = crate::common::pierd_with_busybox() else {
        return;
    };
    // A single-string Cmd is a one-element list, as Docker's StrSlice makes it.
    let (code, answer) = post(
        &pierd,
        "/containers/create?name=fz",
        r#"{"Image":"busybox","Cmd":"true","HostConfig":null}"#,
    );
    assert_eq!(code, 201, "{answer}");
    let cmd = pierd.docker_ok(&["inspect", "-f", "{{json .Config.Cmd}}", "fz"]);
    assert_eq!(cmd.trim(), r#"["true"]"#);
    // Update and exec bodies of the wrong types change nothing.
    for (path, body) in [
        ("/containers/fz/update", r#"{"Memory":"1g"}"#),
        ("/containers/fz/update", r#"{"RestartPolicy":"always"}"#),
        ("/containers/fz/exec", r#"{"Cmd":"sh"}"#),
        ("/containers/fz/exec", r#"{"Cmd":["sh"],"Env":{"A":"1"}}"#),
        ("/commit?container=fz", r#"{"Labels":["a"]}"#),
    ] {
        let (code, answer) = post(&pierd, path, body);
        assert_eq!(code, 400, "POST {path} {body}: {answer}");
        assert!(
            message(&answer).starts_with("json: cannot unmarshal "),
            "{answer}"
        );
    }
    let policy = pierd.docker_ok(&["inspect", "-f", "{{json .HostConfig.RestartPolicy}}", "fz"]);
    assert!(!policy.contains("always"), "{policy}");
    let (_, images) = api(&pierd, "GET", "/images/json", None);
    assert_eq!(
        serde_json::from_str::<Value>(&images)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len)),
        Some(1),
        "a refused commit made an image: {images}"
    );
    assert_alive(&pierd, "the refused bodies");
}

#[test]
fn oversized_and_unparsable_requests_get_json_errors() {
    let pierd = Pierd::start();
    // A create body past the daemon's limit (a 4 MiB label).
    let big = tempfile::NamedTempFile::new().expect("temp file");
    let label = "x".repeat(4 << 20);
    std::fs::write(
        big.path(),
        format!(r#"{{"Image":"busybox","Labels":{{"a":"{label}"}}}}"#),
    )
    .expect("write body");
    let (code, answer) = api(&pierd, "POST", "/containers/create", Some(big.path()));
    assert_eq!(code, 413, "{answer:.200}");
    assert!(message(&answer).contains("length limit"), "{answer:.200}");
    // A method a route does not take, answered by axum itself: JSON too.
    let (code, answer) = api(&pierd, "PUT", "/containers/json", None);
    assert_eq!(code, 405, "{answer}");
    message(&answer);
    assert_alive(&pierd, "the oversized body");
}

/// A loopback TCP port whose connections are relayed to a unix socket, for clients
/// that speak only TCP. Stops accepting when dropped.
struct Bridge {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bridge {
    fn start(socket: PathBuf) -> Bridge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let socket = socket.clone();
                        std::thread::spawn(move || relay(tcp, &socket));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Bridge {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways between a TCP connection and a new connection to `socket`.
fn relay(tcp: TcpStream, socket: &Path) {
    let _ = tcp.set_nonblocking(false);
    let Ok(unix) = UnixStream::connect(socket) else {
        return;
    };
    let (Ok(mut tcp_in), Ok(mut unix_out)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut tcp_in, &mut unix_out);
        let _ = unix_out.shutdown(Shutdown::Write);
    });
    let (mut unix_in, mut tcp_out) = (unix, tcp);
    let mut buf = [0u8; 64 * 1024];
    loop {
        match unix_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tcp_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = tcp_out.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// `st`, at the pinned version: installed with pip when missing. None (after a skip)
/// when it cannot be.
fn schemathesis(test: &str) -> Option<PathBuf> {
    let version = |st: &Path| {
        Command::new(st)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS))
            .unwrap_or(false)
    };
    // In PATH, or beside the python3 that pip installs for.
    let scripts = || {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            .ok()?;
        Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("st"))
    };
    let find = || {
        pier_testsupport::which("st")
            .filter(|st| version(st))
            .or_else(|| scripts().filter(|st| version(st)))
    };
    if let Some(st) = find() {
        return Some(st);
    }
    let pin = format!("schemathesis=={SCHEMATHESIS}");
    let installed = pier_testsupport::run(
        Command::new("python3").args(["-m", "pip", "install", "-q", &pin]),
        Duration::from_secs(300),
    );
    match (installed, find()) {
        (_, Some(st)) => Some(st),
        (Ok(out), None) => {
            pier_testsupport::skip(test, &out.explain("pip install schemathesis"));
            None
        }
        (Err(e), None) => {
            pier_testsupport::skip(test, &format!("pip install schemathesis: {e}"));
            None
        }
    }
}

/// Operations left out of the targeted run (against a real container, exec, network
/// and image) besides [`EXCLUDED`], each with why.
const TARGET_EXCLUDED: &[(&str, &str)] = &[
    (
        "ContainerDelete",
        "would remove the target (fuzzed with random names in the first run)",
    ),
    (
        "ContainerPrune",
        "would remove the target once it is stopped (first run)",
    ),
    ("ImageDelete", "would remove the target image (first run)"),
    (
        "ImagePrune",
        "would remove the target image once unused (first run)",
    ),
    (
        "NetworkDelete",
        "would remove the target network (first run)",
    ),
    (
        "NetworkPrune",
        "would remove the target network (first run)",
    ),
    ("ContainerWait", "waits for the target's exit, by design"),
    (
        "ContainerLogs",
        "`follow` streams until the target exits, by design",
    ),
    (
        "ContainerStats",
        "`stream` streams until the target exits, by design",
    ),
];

/// Lets schemathesis send fuzzed bytes as tar bodies (`/images/load`, archive PUT).
const HOOKS: &str = r#"import schemathesis
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
"#;

/// What every fuzz run of one test shares.
struct Fuzzer<'a> {
    st: &'a Path,
    spec: &'a Path,
    /// Its working directory (hooks, config).
    work: &'a Path,
    pierd: &'a Pierd,
    bridge: &'a Bridge,
    seed: u64,
}

/// One bounded schemathesis run against the daemon behind `bridge`; panics on any
/// failure (a 5xx) or error, or when pierd is gone after it.
fn fuzz(f: &Fuzzer, config: Option<&str>, excluded: &[&[(&str, &str)]], only: Option<&str>) {
    let Fuzzer {
        st,
        spec,
        work,
        pierd,
        bridge,
        seed,
    } = *f;
    std::fs::write(work.join("pier_fuzz_hooks.py"), HOOKS).expect("write hooks");
    let mut cmd = Command::new(st);
    cmd.current_dir(work)
        .env("SCHEMATHESIS_HOOKS", "pier_fuzz_hooks")
        .env("PYTHONPATH", work)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY");
    if let Some(config) = config {
        let file = work.join("schemathesis.toml");
        std::fs::write(&file, config).expect("write config");
        cmd.arg("--config-file").arg(file);
    }
    // One worker: Hypothesis parses its lambdas' source with `ast`, which CPython 3.11
    // does not make thread-safe ("AST constructor recursion depth mismatch").
    cmd.arg("run")
        .arg(spec)
        .arg("--url")
        .arg(format!("http://127.0.0.1:{}/v1.56", bridge.port))
        .args(["--checks", "not_a_server_error"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "20", "--max-time", "70"])
        .args(["--workers", "1", "--request-timeout", "20"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--seed", &seed.to_string()]);
    for (operation, _why) in excluded.iter().copied().flatten() {
        cmd.args(["--exclude-operation-id", operation]);
    }
    for (tag, _why) in EXCLUDED_TAGS {
        cmd.args(["--exclude-tag", tag]);
    }
    if let Some(operation) = only {
        cmd.args(["--include-operation-id", operation]);
    }
    let out =
        pier_testsupport::run(&mut cmd, Duration::from_secs(150)).unwrap_or_else(|e| panic!("{e}"));
    assert_alive(pierd, "the fuzz run");
    // The failures and errors are listed before the summary: all of it, bounded.
    let report: String = out.stdout.chars().take(30_000).collect();
    assert_eq!(
        out.code,
        Some(0),
        "schemathesis found failures (seed {seed}, config {config:?}):\n{report}\n{}\npierd's log:\n{}",
        out.stderr,
        pierd.log_tail(40)
    );
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let summary = &lines[lines.len().saturating_sub(3)..];
    eprintln!("schemathesis: {}", summary.join(" | "));
    // It did test something: the summary counts the cases that passed.
    assert!(
        out.stdout.contains(" passed"),
        "schemathesis ran no test:\n{report}"
    );
}

#[test]
fn schema_driven_fuzzing_finds_no_crash_and_no_5xx() {
    const TEST: &str = "schema_driven_fuzzing_finds_no_crash_and_no_5xx";
    // `shared/` lies beside the repository (here and in CI's clone).
    let spec = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/docker-engine-api.yaml");
    if !spec.is_file() {
        pier_testsupport::skip(TEST, &format!("{} is missing", spec.display()));
        return;
    }
    let Some(st) = schemathesis(TEST) else {
        return;
    };
    let Some((pierd, images)) = crate::common::pierd_with_busybox() else {
        return;
    };
    let bridge = Bridge::start(pierd.socket());
    let work = tempfile::tempdir().expect("temp dir");
    let seed = std::env::var("PIER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    eprintln!("{TEST}: seed {seed} (PIER_FUZZ_SEED={seed} repeats this run)");

    // First, every operation with what the fuzzer makes up (names that do not exist:
    // no container yet, so waits and streams on one answer at once): bodies, queries
    // and paths of every shape.
    let fuzzer = Fuzzer {
        st: &st,
        spec: &spec,
        work: work.path(),
        pierd: &pierd,
        bridge: &bridge,
        seed,
    };
    fuzz(&fuzzer, None, &[EXCLUDED], None);

    // Then the operations on one thing of each kind, with the real identifiers (the
    // first run may have removed the image and the container it found).
    if pierd.docker(&["image", "inspect", "busybox"]).code != Some(0) {
        let tar = images.path().join("busybox-rootfs.tar");
        let out = pierd.docker_with_stdin(&["import", "-", "busybox"], &tar);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let container = pierd
        .docker_ok(&["run", "-d", "busybox", "sleep", "600"])
        .trim()
        .to_string();
    let network = pier_testsupport::unique_name("fuzz");
    pierd.docker_ok(&["network", "create", &network]);
    let (code, exec) = post(
        &pierd,
        &format!("/containers/{container}/exec"),
        r#"{"Cmd":["true"]}"#,
    );
    assert_eq!(code, 201, "{exec}");
    let exec: Value = serde_json::from_str(&exec).expect("exec create answer");
    let exec = exec["Id"].as_str().expect("exec id");
    // Which operations get which real identifier (schemathesis.toml); creates of an
    // image that exists, so that fuzzed configs get past the image lookup and are
    // stored (never started: ContainerStart is excluded).
    let targets = [
        (
            r#"include-operation-id = "ContainerCreate""#,
            "body.Image",
            "busybox",
        ),
        (
            r#"include-path-regex = "^/containers/\\{id\\}""#,
            "path.id",
            container.as_str(),
        ),
        (r#"include-path-regex = "^/exec/""#, "path.id", exec),
        (
            r#"include-path-regex = "^/networks/\\{id\\}""#,
            "path.id",
            network.as_str(),
        ),
        (
            r#"include-path-regex = "^/images/\\{name\\}""#,
            "path.name",
            "busybox",
        ),
        (
            r#"include-operation-id = "ImageCommit""#,
            "query.container",
            container.as_str(),
        ),
    ];
    let config: String = targets
        .iter()
        .map(|(which, param, value)| {
            format!("[[operations]]\n{which}\nparameters = {{ \"{param}\" = \"{value}\" }}\n\n")
        })
        .collect();
    let containers = || pierd.docker_ok(&["ps", "-aq"]).lines().count();
    let before = containers();
    fuzz(&fuzzer, Some(&config), &[EXCLUDED, TARGET_EXCLUDED], None);
    // Creates alone too: the pass above is bounded in time, and under load it may end
    // before it reaches them.
    fuzz(
        &fuzzer,
        Some(&config),
        &[EXCLUDED, TARGET_EXCLUDED],
        Some("ContainerCreate"),
    );
    // The targets took: fuzzed creates got past the image lookup and were stored.
    let after = containers();
    assert!(
        after > before,
        "no fuzzed create was stored ({after} containers)"
    );
    drop(bridge);
    let _ = pierd.docker(&["network", "rm", &network]);
}
