//! `pier compose` against pierd, with docker compose v2 (the real plugin) as the
//! oracle on the same daemon: the same project brought up by both tools gives the
//! same containers, networks, volumes and labels (inspect compared, with the project
//! name, IDs, times and addresses masked); each tool sees the other's project as up
//! to date (equal config hashes: nothing recreated) and can take it down; `--wait`
//! names a failing service; attached `up` streams logs and `--exit-code-from` exits
//! with the service's code.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{pierd_with_busybox, Engine, Pierd};
use pier_testsupport::Out;
use serde_json::Value;

const COMPOSE_PLUGIN: &str = "/usr/local/lib/docker/cli-plugins/docker-compose";
const TIMEOUT: Duration = Duration::from_secs(120);

/// The `pier` binary built next to pierd.
fn pier_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_pierd")).with_file_name("pier");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build -p pier-cli)",
        bin.display()
    );
    bin
}

/// One tool's view of one project in `dir` on `pierd`; `down -v` when dropped.
struct Tool<'a> {
    pierd: &'a Pierd,
    dir: &'a Path,
    project: &'a str,
    /// `docker compose` when true, `pier compose` otherwise.
    docker: bool,
}

impl<'a> Tool<'a> {
    fn pier(pierd: &'a Pierd, dir: &'a Path, project: &'a str) -> Tool<'a> {
        Tool {
            pierd,
            dir,
            project,
            docker: false,
        }
    }

    fn docker(pierd: &'a Pierd, dir: &'a Path, project: &'a str) -> Tool<'a> {
        Tool {
            pierd,
            dir,
            project,
            docker: true,
        }
    }

    fn name(&self) -> &'static str {
        if self.docker {
            "docker compose"
        } else {
            "pier compose"
        }
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = if self.docker {
            self.pierd.command()
        } else {
            Command::new(pier_bin())
        };
        cmd.current_dir(self.dir)
            .env("DOCKER_HOST", self.pierd.host())
            .env_remove("PIER_HOST")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROFILES")
            .args(["compose", "-p", self.project])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        pier_testsupport::run(&mut cmd, TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, Some(0), "{} {args:?}: {out:?}", self.name());
        out
    }

    /// IDs of the engine's `kind` objects labelled with this project.
    fn labelled(&self, kind: &str) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let args: Vec<&str> = match kind {
            "container" => vec!["ps", "-aq", "--no-trunc", "--filter", &filter],
            "volume" => vec!["volume", "ls", "-q", "--filter", &filter],
            _ => vec!["network", "ls", "-q", "--no-trunc", "--filter", &filter],
        };
        let mut ids: Vec<String> = self
            .pierd
            .docker_ok(&args)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Tool<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

fn compose_available(test: &str) -> bool {
    if !Path::new(COMPOSE_PLUGIN).is_file() {
        pier_testsupport::skip(
            test,
            &format!("{COMPOSE_PLUGIN} is missing (scripts/setup.sh installs it)"),
        );
        return false;
    }
    true
}

fn inspect(pierd: &Pierd, kind: &str, name: &str) -> Value {
    let out = pierd.docker_ok(&[kind, "inspect", name]);
    let list: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    list[0].clone()
}

/// An object's JSON with the project's name replaced by `P`.
fn masked(v: &Value, project: &str) -> Value {
    let text = v
        .to_string()
        .replace(&format!("{project}-"), "P-")
        .replace(&format!("{project}_"), "P_")
        .replace(&format!("\"{project}\""), "\"P\"");
    serde_json::from_str(&text).expect("json")
}

/// What must be equal between the two tools' containers of one service: config and
/// host config (less what the engine assigns), endpoints' aliases and mounts. Go
/// map order makes compose's `Env` and `depends_on` label order vary: both sorted.
fn container_view(pierd: &Pierd, project: &str, service: &str) -> Value {
    let c = masked(
        &inspect(pierd, "container", &format!("{project}-{service}-1")),
        project,
    );
    // compose orders HostConfig.Mounts by Go map iteration: sorted here.
    let mut host = c["HostConfig"].clone();
    if let Some(m) = host["Mounts"].as_array_mut() {
        m.sort_by_key(|m| m["Target"].to_string());
    }
    let mut config = c["Config"].clone();
    config.as_object_mut().expect("config").remove("Hostname");
    if let Some(env) = config["Env"].as_array_mut() {
        env.sort_by_key(|v| v.to_string());
    }
    if let Some(dep) = config["Labels"]["com.docker.compose.depends_on"].as_str() {
        let mut parts: Vec<&str> = dep.split(',').collect();
        parts.sort();
        config["Labels"]["com.docker.compose.depends_on"] = Value::from(parts.join(","));
    }
    let networks: Value = c["NetworkSettings"]["Networks"]
        .as_object()
        .expect("networks")
        .iter()
        .map(|(k, v)| (k.clone(), v["Aliases"].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let mut mounts: Vec<Value> = c["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| {
            let mut m = m.clone();
            // An anonymous volume's name is random.
            if m["Name"].as_str().is_some_and(|n| !n.starts_with("P_")) {
                m["Name"] = Value::Null;
                m["Source"] = Value::Null;
            }
            if m["Type"] == "volume" && !m["Name"].is_null() {
                m["Source"] = Value::Null;
            }
            m
        })
        .collect();
    mounts.sort_by_key(|m| m["Destination"].to_string());
    serde_json::json!({
        "Config": config,
        "HostConfig": host,
        "Networks": networks,
        "Mounts": mounts,
    })
}

fn resource_view(pierd: &Pierd, kind: &str, name: &str, project: &str) -> Value {
    let v = masked(&inspect(pierd, kind, name), project);
    serde_json::json!({ "Name": v["Name"], "Labels": v["Labels"], "Driver": v["Driver"], "Internal": v["Internal"] })
}

const RICH: &str = r#"
services:
  app:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    environment:
      MODE: ${MODE:-one}
      EMPTY: ""
    ports: ["127.0.0.1::8080", "9090/udp"]
    expose: ["7000"]
    volumes:
      - cache:/cache
      - ./data:/data:ro
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 1048576}
      - type: volume
        target: /anon
    tmpfs: ["/run/t:size=65536"]
    networks:
      back:
        aliases: [api]
      default: {}
    depends_on:
      db: {condition: service_healthy}
      init: {condition: service_completed_successfully}
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 300ms
      timeout: 2s
      retries: 3
    labels: {tier: front}
    ulimits:
      nofile: {soft: 1024, hard: 2048}
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    extra_hosts: ["somehost=10.0.0.1"]
    dns_search: [example.test]
    init: true
    user: "0:0"
    working_dir: /tmp
    hostname: apphost
    stop_signal: SIGTERM
    stop_grace_period: 5s
    restart: unless-stopped
    shm_size: 64m
    logging: {driver: json-file, options: {max-size: 1m}}
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 64M, pids: 100}
        reservations: {memory: 32M}
    secrets: [token]
    configs:
      - source: appconf
        target: /etc/app.conf
  db:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    healthcheck: {test: ["CMD", "true"], interval: 300ms}
    networks: [back]
    env_file: [db.env]
    x-note: kept in the hash
  init:
    image: busybox
    pull_policy: never
    command: ["true"]
volumes:
  cache:
    labels: {kind: cache}
networks:
  back:
    labels: {kind: back}
secrets:
  token: {file: ./secret.txt}
configs:
  appconf: {file: ./app.conf}
"#;

fn write_project(dir: &Path, compose: &str) {
    std::fs::write(dir.join("compose.yaml"), compose).expect("compose.yaml");
    std::fs::write(dir.join("secret.txt"), "s3cret\n").expect("secret");
    std::fs::write(dir.join("app.conf"), "cfg\n").expect("config");
    std::fs::write(dir.join("db.env"), "DB_MODE=fast\n").expect("env file");
    std::fs::create_dir_all(dir.join("data")).expect("data");
}

/// Container IDs by name, for the project.
fn ids(tool: &Tool<'_>) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={}", tool.project);
    let mut v: Vec<String> = tool
        .pierd
        .docker_ok(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.ID}}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn pier_compose_makes_what_docker_compose_makes() {
    if !compose_available("pier_compose_makes_what_docker_compose_makes") {
        return;
    }
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    write_project(dir.path(), RICH);
    let theirs = Tool::docker(&pierd, dir.path(), "dc");
    let ours = Tool::pier(&pierd, dir.path(), "pc");
    theirs.ok(&["up", "-d", "--wait"]);
    ours.ok(&["up", "-d", "--wait"]);

    for service in ["app", "db", "init"] {
        assert_eq!(
            container_view(&pierd, "pc", service),
            container_view(&pierd, "dc", service),
            "{service}: pier compose (left) and docker compose (right) made different containers"
        );
    }
    for (kind, key) in [
        ("network", "default"),
        ("network", "back"),
        ("volume", "cache"),
    ] {
        assert_eq!(
            resource_view(&pierd, kind, &format!("pc_{key}"), "pc"),
            resource_view(&pierd, kind, &format!("dc_{key}"), "dc"),
            "{kind} {key}"
        );
    }
    // The same project on either tool: the same ps rows (names, services, states).
    let rows = |tool: &Tool<'_>| -> Vec<String> {
        let out = tool.ok(&["ps", "-a", "--format", "json"]).stdout;
        let mut rows: Vec<String> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let r: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                // docker compose joins the networks in Go's map order, which varies.
                let mut networks: Vec<&str> = r["Networks"]
                    .as_str()
                    .unwrap_or_default()
                    .split(',')
                    .collect();
                networks.sort_unstable();
                format!(
                    "{} {} {} {} {}",
                    r["Name"],
                    r["Service"],
                    r["State"],
                    r["Health"],
                    networks.join(",")
                )
            })
            .collect();
        rows.sort();
        rows
    };
    // The other tool on each project (each also takes its project down if dropped).
    let other_on_pc = Tool::docker(&pierd, dir.path(), "pc");
    let other_on_dc = Tool::pier(&pierd, dir.path(), "dc");
    assert_eq!(rows(&ours), rows(&other_on_pc));
    assert_eq!(rows(&theirs), rows(&other_on_dc));

    // No change: neither tool recreates the other's containers (equal config hashes).
    let before_dc = ids(&theirs);
    let before_pc = ids(&ours);
    let out = other_on_pc.ok(&["up", "-d", "--wait"]);
    assert!(
        !out.stderr.contains("Recreate"),
        "docker compose recreated pier's containers: {out:?}"
    );
    let out = other_on_dc.ok(&["up", "-d", "--wait"]);
    assert!(
        !out.stderr.contains("Recreate"),
        "pier compose recreated docker's containers: {out:?}"
    );
    let out = ours.ok(&["up", "-d"]);
    assert!(!out.stderr.contains("Recreate"), "{out:?}");
    assert_eq!(ids(&theirs), before_dc);
    assert_eq!(ids(&ours), before_pc);

    // A changed service is recreated, the others are not.
    let changed = ours.run_env(&["up", "-d", "--wait"], &[("MODE", "two")]);
    assert_eq!(changed.code, Some(0), "{changed:?}");
    let after = ids(&ours);
    let app_id = |list: &[String]| list.iter().find(|l| l.starts_with("pc-app-1 ")).cloned();
    let db_id = |list: &[String]| list.iter().find(|l| l.starts_with("pc-db-1 ")).cloned();
    assert_ne!(app_id(&after), app_id(&before_pc), "app was not recreated");
    assert_eq!(db_id(&after), db_id(&before_pc), "db was recreated");
    let env = pierd.docker_ok(&["inspect", "-f", "{{json .Config.Env}}", "pc-app-1"]);
    assert!(env.contains("MODE=two"), "{env}");

    // Down across tools: docker compose takes pier's project down and the reverse,
    // volumes included; nothing labelled stays.
    other_on_pc.ok(&["down", "-v", "-t", "1"]);
    other_on_dc.ok(&["down", "-v", "-t", "1"]);
    for tool in [&ours, &theirs] {
        for kind in ["container", "volume", "network"] {
            assert_eq!(
                tool.labelled(kind),
                Vec::<String>::new(),
                "{} {kind}s left",
                tool.project
            );
        }
    }
}

#[test]
fn pier_compose_wait_names_the_failing_service_and_refuses_what_it_cannot_map() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    write_project(
        dir.path(),
        r#"
services:
  ok:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
  crash:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "sleep 0.3; exit 4"]
    # Not healthy before it exits: --wait sees the exit (a running container
    # without a healthcheck counts as ready at once, as with docker compose).
    healthcheck: {test: ["CMD", "true"], interval: 30s}
  sick:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    healthcheck: {test: ["CMD", "false"], interval: 200ms, retries: 1}
volumes:
  keep: {}
"#,
    );
    let ours = Tool::pier(&pierd, dir.path(), "pw");
    let out = ours.run(&["up", "-d", "--wait", "crash"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("container pw-crash-1 exited (4)"),
        "{out:?}"
    );
    let out = ours.run(&["up", "-d", "--wait", "sick"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("container pw-sick-1 is unhealthy"),
        "{out:?}"
    );
    ours.ok(&["up", "-d", "--wait", "ok"]);
    let names = ours.ok(&["ps", "--services"]).stdout;
    assert_eq!(names, "ok\nsick\n", "running services");
    ours.ok(&["down", "-t", "1"]);
    assert_eq!(ours.labelled("container"), Vec::<String>::new());

    // A key pier cannot turn into a container is refused by name, before anything
    // is made.
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  hooked:\n    image: busybox\n    post_start:\n      - command: [\"true\"]\n",
    )
    .expect("write");
    let hooked = Tool::pier(&pierd, dir.path(), "ph");
    let out = hooked.run(&["up", "-d"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("post_start"), "{out:?}");
    assert_eq!(
        hooked.labelled("network"),
        Vec::<String>::new(),
        "a network was made"
    );
}

#[test]
fn pier_compose_attached_up_streams_logs_and_exits_with_the_service_code() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    write_project(
        dir.path(),
        r#"
services:
  job:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "echo job says hello; sleep 0.5; exit 3"]
  web:
    image: busybox
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; echo web up; while :; do sleep 1; done"]
"#,
    );
    let ours = Tool::pier(&pierd, dir.path(), "pa");
    let out = ours.run(&["up", "--exit-code-from", "job", "-t", "1"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stdout.contains("pa-job-1  | job says hello"), "{out:?}");
    assert!(out.stdout.contains("| web up"), "{out:?}");
    // The project was stopped, not removed.
    let states = ours.ok(&["ps", "-a", "--format", "json"]).stdout;
    assert!(!states.contains("\"running\""), "{states}");
    let logs = ours.ok(&["logs", "--no-log-prefix", "job"]).stdout;
    assert_eq!(logs, "job says hello\n");

    // exec in a service's container: output and exit code.
    ours.ok(&["up", "-d", "web"]);
    let top = ours.ok(&["top", "web"]).stdout;
    assert!(
        top.starts_with("pa-web-1\nUID ") && top.contains("while :"),
        "{top}"
    );
    let images = ours.ok(&["images"]).stdout;
    assert!(
        images.contains("pa-web-1") && images.contains("busybox"),
        "{images}"
    );
    let out = ours.run(&["exec", "-T", "web", "sh", "-c", "echo in $HOSTNAME; exit 5"]);
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(out.stdout.starts_with("in "), "{out:?}");
    // run: a one-off container with the service's config, removed with --rm.
    let out = ours.run(&[
        "run",
        "--rm",
        "-T",
        "-e",
        "X=1",
        "job",
        "sh",
        "-c",
        "echo run $X; exit 2",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stdout, "run 1\n", "{out:?}");
    let oneoff = pierd.docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        "label=com.docker.compose.oneoff=True",
    ]);
    assert_eq!(oneoff.trim(), "", "run --rm left its container");
    let name = ours.ok(&["run", "-d", "job", "true"]).stdout;
    let labels = pierd.docker_ok(&["inspect", "-f", "{{json .Config.Labels}}", name.trim()]);
    let labels: Value = serde_json::from_str(&labels).expect("labels");
    assert_eq!(labels["com.docker.compose.oneoff"], "True", "{labels}");
    assert_eq!(
        labels["com.docker.compose.slug"].as_str().map(str::len),
        Some(64),
        "{labels}"
    );
    assert!(name.starts_with("pa-job-run-"), "{name}");

    // config --hash: the label docker compose computes.
    if compose_available("config --hash") {
        let theirs = Tool::docker(&pierd, dir.path(), "pa");
        let hashes = theirs.ok(&["config", "--hash", "*"]).stdout;
        assert_eq!(ours.ok(&["config", "--hash", "*"]).stdout, hashes);
        // docker compose sees the one-off container pier made.
        let ps = theirs.ok(&["ps", "-a", "--format", "{{.Name}}"]).stdout;
        assert!(ps.contains(name.trim()), "{ps}");
    }
}
