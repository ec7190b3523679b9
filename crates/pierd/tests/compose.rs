//! docker compose v2 (the Go CLI plugin, unchanged) against pierd and against a real,
//! isolated dockerd: the same projects, the same commands, the same expectations on
//! both, and the normalized `ps` of both compared.
//!
//! The images are local (busybox imported, or built from it with the classic builder:
//! `DOCKER_BUILDKIT=0`), every service says `pull_policy: never` or `build`, so no
//! registry is involved. Services trap SIGTERM so that `stop` and `down` are quick.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{with_busybox_engines, Engine};
use pier_testsupport::Out;
use serde_json::Value;

/// Where `scripts/setup.sh` installs the plugin; the docker CLI looks there whatever
/// `DOCKER_CONFIG` says.
const COMPOSE_PLUGIN: &str = "/usr/local/lib/docker/cli-plugins/docker-compose";

/// How long one compose command may take (`up --wait` included).
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(120);

/// A service's command that exits 0 at SIGTERM (at most a second later).
const IDLE: &str = r#"["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]"#;

/// Whether `docker compose` (v2) is installed; prints why not (a failure under CI).
fn compose_available(test: &str) -> bool {
    if !Path::new(COMPOSE_PLUGIN).is_file() {
        pier_testsupport::skip(
            test,
            &format!("{COMPOSE_PLUGIN} is missing (scripts/setup.sh installs docker compose v2)"),
        );
        return false;
    }
    true
}

/// One compose project (its files in `dir`) on one engine; taken down (`down -v
/// --rmi local`) when dropped, also after a failed assertion.
struct Project<'a> {
    engine: &'a dyn Engine,
    engine_name: &'a str,
    dir: &'a Path,
    name: &'a str,
}

impl<'a> Project<'a> {
    fn new(engine_name: &'a str, engine: &'a dyn Engine, dir: &'a Path, name: &'a str) -> Self {
        Project {
            engine,
            engine_name,
            dir,
            name,
        }
    }

    /// `docker compose -p NAME <args>` in the project's directory, with the classic
    /// builder.
    fn compose(&self, args: &[&str]) -> Out {
        let mut cmd: Command = self.engine.command();
        cmd.current_dir(self.dir)
            .env("DOCKER_BUILDKIT", "0")
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .env_remove("COMPOSE_PROFILES")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .args(["compose", "-p", self.name])
            .args(args);
        pier_testsupport::run(&mut cmd, COMPOSE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`compose`](Self::compose), which must exit 0; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        match self.compose(args).ok() {
            Ok(out) => out.stdout,
            Err(e) => panic!("{}: {e}", self.engine_name),
        }
    }

    /// `ps -a --format json`: one object per container, sorted by name.
    fn ps(&self) -> Vec<Value> {
        let out = self.ok(&["ps", "-a", "--format", "json"]);
        let mut rows: Vec<Value> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        rows.sort_by_key(|r| r["Name"].as_str().unwrap_or_default().to_string());
        rows
    }

    /// The containers' names and states, as `name state` lines.
    fn states(&self) -> Vec<String> {
        self.ps()
            .iter()
            .map(|r| format!("{} {}", str_of(&r["Name"]), str_of(&r["State"])))
            .collect()
    }

    /// Ids of the engine's objects of `kind` (container, volume, network) that carry
    /// this project's label.
    fn labelled(&self, kind: &str) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let args: Vec<&str> = match kind {
            "container" => vec!["ps", "-aq", "--filter", &filter],
            "volume" => vec!["volume", "ls", "-q", "--filter", &filter],
            _ => vec!["network", "ls", "-q", "--filter", &filter],
        };
        self.engine
            .docker_ok(&args)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        let _ = self.compose(&[
            "--profile",
            "*",
            "down",
            "-v",
            "--rmi",
            "local",
            "--remove-orphans",
            "-t",
            "1",
        ]);
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A `ps --format json` row with what legitimately differs between engines masked:
/// IDs, times, the image ID label, host ports, and dockerd's IPv6 publishers (pierd
/// publishes on IPv4 only).
fn normalized_ps_row(row: &Value) -> Value {
    let mut labels: Vec<String> = str_of(&row["Labels"])
        .split(',')
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some(("com.docker.compose.image", _)) => "com.docker.compose.image=<ID>".into(),
            _ => l.to_string(),
        })
        .collect();
    labels.sort();
    let publishers: Vec<Value> = row["Publishers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["URL"] != "::")
        .map(|p| {
            serde_json::json!({
                "URL": p["URL"],
                "TargetPort": p["TargetPort"],
                "Protocol": p["Protocol"],
                "Published": p["PublishedPort"].as_u64().unwrap_or(0) != 0,
            })
        })
        .collect();
    serde_json::json!({
        "Name": row["Name"],
        "Service": row["Service"],
        "Project": row["Project"],
        "Image": row["Image"],
        "Command": row["Command"],
        "State": row["State"],
        "Health": row["Health"],
        "ExitCode": row["ExitCode"],
        "Networks": row["Networks"],
        "Mounts": row["Mounts"],
        "LocalVolumes": row["LocalVolumes"],
        "Labels": labels,
        "Publishers": publishers,
    })
}

/// Writes `files` (relative path, content) under `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// `GET /` on 127.0.0.1:`port`: the response's body.
fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_else(|| panic!("no HTTP answer on port {port}: {answer:?}"))
}

/// A web service (busybox httpd, healthchecked, a published port, a named volume) and
/// a client that waits for it to be healthy, on a user network, with resource limits.
fn lifecycle_compose_file() -> String {
    format!(
        r#"services:
  web:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && echo kept > /data/kept && httpd -p 8080 -h /www && trap 'exit 0' TERM && while :; do sleep 1; done"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 30
    ports:
      - "8080"
    volumes:
      - data:/data
    networks: [back]
  client:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "echo got $$(wget -q -O- http://web:8080/); trap 'exit 0' TERM; while :; do sleep 1; done"]
    depends_on:
      web:
        condition: service_healthy
    networks: [back]
    deploy:
      resources:
        limits:
          memory: 64M
          cpus: "0.5"
        reservations:
          memory: 32M
  idle:
    image: busybox
    pull_policy: never
    command: {IDLE}
    profiles: [never-started]
volumes:
  data: {{}}
networks:
  back: {{}}
"#
    )
}

/// `config`, `up -d --wait` with a `service_healthy` dependency, `ps`, `logs`, `exec`,
/// service-name DNS on the user network, `run --rm`, `cp` both ways, `top`, `port`
/// (and the published port answering), `pause`/`unpause`, `restart`, `stop`/`start`,
/// `deploy.resources` on the containers, and `down -v` leaving nothing labelled.
#[test]
fn compose_lifecycle_against_pierd_and_dockerd() {
    const TEST: &str = "compose_lifecycle_against_pierd_and_dockerd";
    if !compose_available(TEST) {
        return;
    }
    let files = tempfile::tempdir().expect("temp dir");
    write_files(
        files.path(),
        &[
            ("compose.yaml", &lifecycle_compose_file()),
            ("to-web.txt", "copied in\n"),
        ],
    );
    let mut configs = Vec::new();
    let mut ps_rows = Vec::new();
    with_busybox_engines(TEST, |name, engine, _socket| {
        let p = Project::new(name, engine, files.path(), "lifecycle");
        let config = p.ok(&["config"]);
        assert!(config.contains("name: lifecycle_back"), "{name}: {config}");
        configs.push(config);
        assert_eq!(p.ok(&["config", "--services"]), "web\nclient\n", "{name}");

        // Both services' containers are in `state`.
        let both_are = |state: &str| {
            let want = [
                format!("lifecycle-client-1 {state}"),
                format!("lifecycle-web-1 {state}"),
            ];
            assert_eq!(p.states(), want, "{name}");
        };
        p.ok(&["up", "-d", "--wait"]);
        let rows = p.ps();
        assert_eq!(
            p.states(),
            ["lifecycle-client-1 running", "lifecycle-web-1 running"],
            "{name}: {rows:?}"
        );
        assert_eq!(rows[1]["Health"], "healthy", "{name}: {rows:?}");
        ps_rows.push(rows.iter().map(normalized_ps_row).collect::<Vec<_>>());

        // Label filters are ANDed: this is how compose finds one service's containers.
        let web_only = engine.docker_ok(&[
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            "label=com.docker.compose.project=lifecycle",
            "--filter",
            "label=com.docker.compose.service=web",
        ]);
        assert_eq!(web_only, "lifecycle-web-1\n", "{name}");
        // The client resolved `web` on the project network before it started.
        assert_eq!(
            p.ok(&["logs", "--no-log-prefix", "client"]),
            "got hello\n",
            "{name}"
        );
        assert_eq!(
            p.ok(&["exec", "-T", "web", "cat", "/www/index.html", "/data/kept"]),
            "hello\nkept\n",
            "{name}"
        );
        assert_eq!(
            p.ok(&[
                "exec",
                "-T",
                "client",
                "wget",
                "-q",
                "-O-",
                "http://web:8080/"
            ]),
            "hello\n",
            "{name}"
        );
        let ping = p.ok(&[
            "exec",
            "-T",
            "client",
            "ping",
            "-c1",
            "-W5",
            "lifecycle-web-1",
        ]);
        assert!(ping.contains("1 packets received"), "{name}: {ping}");

        // A one-off container: its output, and nothing left after --rm.
        let run = p.ok(&["run", "--rm", "-T", "client", "echo", "one-off"]);
        assert_eq!(run, "one-off\n", "{name}");
        let oneoff = engine.docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.oneoff=True",
        ]);
        assert_eq!(oneoff.trim(), "", "{name}: a one-off container is left");

        // cp into the service's container and back out.
        p.ok(&["cp", "to-web.txt", "web:/tmp/in.txt"]);
        assert_eq!(
            p.ok(&["exec", "-T", "web", "cat", "/tmp/in.txt"]),
            "copied in\n",
            "{name}"
        );
        let back = files.path().join(format!("from-web-{name}.html"));
        p.ok(&["cp", "web:/www/index.html", back.to_str().expect("utf-8")]);
        assert_eq!(std::fs::read_to_string(&back).expect("copied"), "hello\n");

        let top = p.ok(&["top", "web"]);
        assert!(top.contains("httpd -p 8080"), "{name}: {top}");
        assert!(top.contains("lifecycle-web-1"), "{name}: {top}");

        let port = p.ok(&["port", "web", "8080"]);
        let host_port: u16 = port
            .trim()
            .strip_prefix("0.0.0.0:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{name}: port said {port:?}"));
        assert_eq!(http_get(host_port), "hello\n", "{name}");

        let limits = engine.docker_ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.MemoryReservation}}",
            "lifecycle-client-1",
        ]);
        assert_eq!(limits.trim(), "67108864 500000000 33554432", "{name}");

        p.ok(&["pause"]);
        both_are("paused");
        p.ok(&["unpause"]);
        both_are("running");

        p.ok(&["restart", "-t", "5", "client"]);
        both_are("running");

        p.ok(&["stop", "-t", "5"]);
        let rows = p.ps();
        both_are("exited");
        // Both trapped SIGTERM and exited 0.
        assert!(rows.iter().all(|r| r["ExitCode"] == 0), "{name}: {rows:?}");
        p.ok(&["start"]);
        both_are("running");

        p.ok(&["down", "-v", "-t", "5"]);
        for kind in ["container", "volume", "network"] {
            assert_eq!(
                p.labelled(kind),
                Vec::<String>::new(),
                "{name}: {kind}s left"
            );
        }
    });
    assert!(
        configs.windows(2).all(|w| w[0] == w[1]),
        "config differs: {configs:#?}"
    );
    assert!(
        ps_rows.windows(2).all(|w| w[0] == w[1]),
        "ps differs between engines: {ps_rows:#?}"
    );
}

/// `build` with the classic builder (build args, a context file), `up --build
/// --scale`, file secrets and configs in place, profiles, and `down`.
#[test]
fn compose_build_scale_secrets_profiles_against_pierd_and_dockerd() {
    const TEST: &str = "compose_build_scale_secrets_profiles_against_pierd_and_dockerd";
    if !compose_available(TEST) {
        return;
    }
    let files = tempfile::tempdir().expect("temp dir");
    let compose = format!(
        r#"services:
  app:
    build:
      context: ./app
      args:
        GREETING: hi-there
    pull_policy: build
    secrets: [token]
    configs:
      - source: appconf
        target: /etc/app.conf
  worker:
    image: busybox
    pull_policy: never
    command: {IDLE}
  debug:
    image: busybox
    pull_policy: never
    profiles: [debug]
    command: {IDLE}
secrets:
  token:
    file: ./secret.txt
configs:
  appconf:
    file: ./app.conf
"#
    );
    write_files(
        files.path(),
        &[
            ("compose.yaml", &compose),
            (
                "app/Dockerfile",
                "FROM busybox\nARG GREETING=unset\nCOPY message.txt /message.txt\n\
                 RUN echo \"$GREETING\" > /greeting.txt\n\
                 CMD [\"sh\", \"-c\", \"cat /greeting.txt /message.txt; trap 'exit 0' TERM; while :; do sleep 1; done\"]\n",
            ),
            ("app/message.txt", "from the context\n"),
            ("secret.txt", "s3cret\n"),
            ("app.conf", "conf-value\n"),
        ],
    );
    let mut ps_rows = Vec::new();
    with_busybox_engines(TEST, |name, engine, _socket| {
        let p = Project::new(name, engine, files.path(), "bsp");
        let built = p.ok(&["build"]);
        assert!(
            built.contains("Successfully tagged bsp-app:latest"),
            "{name}: {built}"
        );
        let cmd = engine.docker_ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}}",
            "bsp-app",
        ]);
        assert!(cmd.contains("/greeting.txt"), "{name}: {cmd}");

        p.ok(&["up", "-d", "--build", "--scale", "worker=3", "--wait"]);
        assert_eq!(
            p.states(),
            [
                "bsp-app-1 running",
                "bsp-worker-1 running",
                "bsp-worker-2 running",
                "bsp-worker-3 running"
            ],
            "{name}"
        );
        ps_rows.push(p.ps().iter().map(normalized_ps_row).collect::<Vec<_>>());
        // The image's labels are merged into the container's.
        let builder = engine.docker_ok(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"com.docker.compose.image.builder\"}}",
            "bsp-app-1",
        ]);
        assert_eq!(builder.trim(), "classic", "{name}");
        assert_eq!(
            p.ok(&["logs", "--no-log-prefix", "app"]),
            "hi-there\nfrom the context\n",
            "{name}"
        );
        assert_eq!(
            p.ok(&[
                "exec",
                "-T",
                "app",
                "cat",
                "/run/secrets/token",
                "/etc/app.conf"
            ]),
            "s3cret\nconf-value\n",
            "{name}"
        );

        // The profile's service joins; the scale goes back to the file's (one worker).
        p.ok(&["--profile", "debug", "up", "-d", "--wait", "-t", "5"]);
        assert_eq!(
            p.states(),
            [
                "bsp-app-1 running",
                "bsp-debug-1 running",
                "bsp-worker-1 running"
            ],
            "{name}"
        );

        p.ok(&[
            "--profile",
            "debug",
            "down",
            "-v",
            "--rmi",
            "local",
            "-t",
            "5",
        ]);
        assert_eq!(p.labelled("container"), Vec::<String>::new(), "{name}");
    });
    assert!(
        ps_rows.windows(2).all(|w| w[0] == w[1]),
        "ps differs between engines: {ps_rows:#?}"
    );
}

/// `depends_on: service_completed_successfully` (a one-shot setup service filling a
/// shared volume first), `network_mode: service:…`, and `up --wait` failing as compose reports it: a healthcheck
/// that never passes, a service that exits.
#[test]
fn compose_wait_conditions_and_failures_against_pierd_and_dockerd() {
    const TEST: &str = "compose_wait_conditions_and_failures_against_pierd_and_dockerd";
    if !compose_available(TEST) {
        return;
    }
    let files = tempfile::tempdir().expect("temp dir");
    let compose = format!(
        r#"services:
  setup:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "echo prepared > /shared/ready"]
    volumes: [shared:/shared]
  app:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "cat /shared/ready; trap 'exit 0' TERM; while :; do sleep 1; done"]
    volumes: [shared:/shared]
    hostname: apphost
    domainname: example.test
    depends_on:
      setup:
        condition: service_completed_successfully
  sidecar:
    image: busybox
    pull_policy: never
    command: {IDLE}
    network_mode: service:app
  sick:
    image: busybox
    pull_policy: never
    profiles: [sick]
    command: {IDLE}
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 2
  crashing:
    image: busybox
    pull_policy: never
    profiles: [crash]
    command: ["sh", "-c", "exit 3"]
volumes:
  shared: {{}}
"#
    );
    write_files(files.path(), &[("compose.yaml", &compose)]);
    with_busybox_engines(TEST, |name, engine, _socket| {
        let p = Project::new(name, engine, files.path(), "waits");
        p.ok(&["up", "-d", "--wait"]);
        assert_eq!(
            p.states(),
            [
                "waits-app-1 running",
                "waits-setup-1 exited",
                "waits-sidecar-1 running"
            ],
            "{name}"
        );
        // In the app's network namespace, the sidecar is named as the app is.
        assert_eq!(
            p.ok(&[
                "exec",
                "-T",
                "sidecar",
                "sh",
                "-c",
                "hostname; echo $HOSTNAME"
            ]),
            "apphost\napphost\n",
            "{name}"
        );
        let names = engine.docker_ok(&[
            "inspect",
            "--format",
            "{{.Config.Hostname}} {{.Config.Domainname}}",
            "waits-sidecar-1",
        ]);
        assert_eq!(names, "apphost example.test\n", "{name}");
        // What compose leaves empty reads as the daemon's defaults.
        let ipc = engine.docker_ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.IpcMode}} {{.HostConfig.ShmSize}}",
            "waits-app-1",
        ]);
        assert_eq!(ipc, "private 67108864\n", "{name}");
        assert_eq!(
            p.ok(&["logs", "--no-log-prefix", "app"]),
            "prepared\n",
            "{name}"
        );

        let sick = p.compose(&["--profile", "sick", "up", "-d", "--wait", "sick"]);
        assert_eq!(sick.code, Some(1), "{name}: {sick:?}");
        assert!(
            sick.stderr.contains("container waits-sick-1 is unhealthy"),
            "{name}: {sick:?}"
        );

        let crashing = p.compose(&["--profile", "crash", "up", "-d", "--wait", "crashing"]);
        assert_eq!(crashing.code, Some(1), "{name}: {crashing:?}");
        assert!(
            crashing
                .stderr
                .contains("container waits-crashing-1 exited (3)"),
            "{name}: {crashing:?}"
        );
    });
}

/// Debian's docker-compose 1.29 (Python, docker-py) on the lifecycle project: `up -d`
/// (a `service_healthy` dependency), `ps`, `exec`, `logs`, `run --rm`, `down -v`.
#[test]
fn docker_compose_v1_against_pierd_and_dockerd() {
    const TEST: &str = "docker_compose_v1_against_pierd_and_dockerd";
    const V1: &str = "/usr/bin/docker-compose";
    if !Path::new(V1).is_file() {
        pier_testsupport::skip(TEST, &format!("{V1} is missing (package docker-compose)"));
        return;
    }
    let files = tempfile::tempdir().expect("temp dir");
    write_files(
        files.path(),
        &[("docker-compose.yml", &lifecycle_compose_file())],
    );
    with_busybox_engines(TEST, |name, engine, _socket| {
        let v1 = |args: &[&str]| -> Out {
            let mut cmd = Command::new(V1);
            for (key, value) in engine.command().get_envs() {
                match value {
                    Some(v) => cmd.env(key, v),
                    None => cmd.env_remove(key),
                };
            }
            cmd.current_dir(files.path())
                .args(["--no-ansi", "-p", "legacy"])
                .args(args);
            pier_testsupport::run(&mut cmd, COMPOSE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
        };
        let ok = |args: &[&str]| match v1(args).ok() {
            Ok(out) => out.stdout,
            Err(e) => panic!("{name}: {e}"),
        };
        // Taken down also when an assertion fails.
        struct Down<'a>(&'a dyn Fn(&[&str]) -> Out);
        impl Drop for Down<'_> {
            fn drop(&mut self) {
                let _ = (self.0)(&["down", "-v", "-t", "1"]);
            }
        }
        let _down = Down(&v1);

        ok(&["up", "-d"]);
        let ps = ok(&["ps"]);
        assert!(
            ps.contains("legacy_web_1") && ps.contains("Up (healthy)"),
            "{name}: {ps}"
        );
        assert!(ps.contains("legacy_client_1"), "{name}: {ps}");
        assert_eq!(
            ok(&["exec", "-T", "web", "cat", "/www/index.html"]),
            "hello\n",
            "{name}"
        );
        let logs = ok(&["logs", "--no-color", "client"]);
        assert!(logs.contains("got hello"), "{name}: {logs}");
        assert_eq!(
            ok(&["run", "--rm", "-T", "client", "echo", "one-off"]),
            "one-off\n",
            "{name}"
        );
        ok(&["down", "-v", "-t", "1"]);
        let left = engine.docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.project=legacy",
        ]);
        assert_eq!(left.trim(), "", "{name}: containers left");
    });
}
