//! Every field of a container create: its row in docs/HOSTCONFIG.md, checked against
//! the swagger; wrong JSON types refused as dockerd refuses them; and the fields whose
//! answer is tested nowhere else, on pierd and an isolated dockerd side by side.

mod common;

use common::{api, Engine, Pierd};
use pier_testsupport::{DockerdOptions, IsolatedDockerd};
use serde_json::Value;

/// Create bodies with one field of a wrong type each, and the field's name as the
/// message must give it.
const WRONG_CREATES: &[(&str, &str)] = &[
    (r#""Labels":{"a":1}"#, "Labels"),
    (r#""Env":"a""#, "Env"),
    (r#""Env":[1]"#, "Env"),
    (r#""Cmd":5"#, "Cmd"),
    (r#""Entrypoint":{"a":"b"}"#, "Entrypoint"),
    (r#""Tty":"yes""#, "Tty"),
    (r#""Hostname":5"#, "Hostname"),
    (r#""ExposedPorts":["80/tcp"]"#, "ExposedPorts"),
    (r#""Volumes":"x""#, "Volumes"),
    (r#""Healthcheck":{"Interval":"1s"}"#, "Interval"),
    (r#""StopTimeout":"10""#, "StopTimeout"),
    (r#""OpenStdin":1"#, "OpenStdin"),
    (r#""HostConfig":{"Memory":"x"}"#, "Memory"),
    (r#""HostConfig":{"Binds":7}"#, "Binds"),
    (r#""HostConfig":{"Binds":[7]}"#, "Binds"),
    (r#""HostConfig":{"Privileged":"true"}"#, "Privileged"),
    (
        r#""HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":80}]}}"#,
        "HostPort",
    ),
    (r#""HostConfig":{"RestartPolicy":{"Name":1}}"#, "Name"),
    (
        r#""HostConfig":{"Ulimits":[{"Name":"nofile","Soft":"1"}]}"#,
        "Soft",
    ),
    (r#""HostConfig":{"Devices":"/dev/null"}"#, "Devices"),
    (r#""HostConfig":{"CpuShares":1.5}"#, "CpuShares"),
    (r#""HostConfig":{"LogConfig":{"Type":1}}"#, "Type"),
    (r#""HostConfig":{"Sysctls":{"a":1}}"#, "Sysctls"),
    (
        r#""HostConfig":{"DeviceRequests":[{"Count":"all"}]}"#,
        "Count",
    ),
    (r#""HostConfig":{"BlkioWeight":-1}"#, "BlkioWeight"),
    (r#""HostConfig":{"ShmSize":"64m"}"#, "ShmSize"),
    (r#""HostConfig":{"CapAdd":[1]}"#, "CapAdd"),
    (
        r#""HostConfig":{"Mounts":[{"Type":"bind","ReadOnly":"yes"}]}"#,
        "ReadOnly",
    ),
    (
        r#""NetworkingConfig":{"EndpointsConfig":{"bridge":{"Aliases":"a"}}}"#,
        "Aliases",
    ),
    (
        r#""NetworkingConfig":{"EndpointsConfig":{"bridge":{"IPAMConfig":{"IPv4Address":1}}}}"#,
        "IPv4Address",
    ),
];

/// Create bodies wrong as a whole or in a whole section.
const WRONG_SECTIONS: &[(&str, &str)] = &[
    ("[1]", "Config"),
    (r#"{"Image":"busybox","HostConfig":"x"}"#, "HostConfig"),
    (
        r#"{"Image":"busybox","NetworkingConfig":"x"}"#,
        "NetworkingConfig",
    ),
    (r#"{"Image":"busybox","Healthcheck":"x"}"#, "Healthcheck"),
    (
        r#"{"Image":"busybox","HostConfig":{"RestartPolicy":"always"}}"#,
        "RestartPolicy",
    ),
    (
        r#"{"Image":"busybox","HostConfig":{"BlkioWeight":70000}}"#,
        "BlkioWeight",
    ),
    (
        r#"{"Image":"busybox","HostConfig":{"ConsoleSize":[-1,2]}}"#,
        "ConsoleSize",
    ),
    (r#"{"Image":"busybox","MacAddress":1}"#, "MacAddress"),
    (
        r#"{"Image":"busybox","HostConfig":{"KernelMemory":"1g"}}"#,
        "KernelMemory",
    ),
    (
        r#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"bridge":"x"}}}"#,
        "EndpointsConfig",
    ),
];

/// Update bodies of a wrong type (the body is read before the container is looked up).
const WRONG_UPDATES: &[(&str, &str)] = &[
    (r#"{"Memory":"x"}"#, "Memory"),
    (r#"{"CpuShares":"1"}"#, "CpuShares"),
    (r#"{"RestartPolicy":"always"}"#, "RestartPolicy"),
    (
        r#"{"RestartPolicy":{"MaximumRetryCount":"3"}}"#,
        "MaximumRetryCount",
    ),
    (r#"{"PidsLimit":true}"#, "PidsLimit"),
];

fn message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"))
        .to_string()
}

#[test]
fn wrong_types_are_refused_as_dockerd_refuses_them_and_nothing_is_stored() {
    let Some(dockerd) = IsolatedDockerd::start_or_skip("wrong_types", DockerdOptions::default())
    else {
        return;
    };
    let pierd = Pierd::start();
    let mut differences = Vec::new();
    let requests = WRONG_CREATES
        .iter()
        .map(|(field, name)| {
            (
                "/containers/create".to_string(),
                format!(r#"{{"Image":"busybox",{field}}}"#),
                *name,
            )
        })
        .chain(
            WRONG_SECTIONS
                .iter()
                .map(|(body, name)| ("/containers/create".to_string(), body.to_string(), *name)),
        )
        .chain(WRONG_UPDATES.iter().map(|(body, name)| {
            (
                "/containers/nosuch/update".to_string(),
                body.to_string(),
                *name,
            )
        }));
    for (path, body, field) in requests {
        let (ours, our_body) = api(&pierd.socket(), "POST", &path, Some(&body));
        let (theirs, their_body) = api(&dockerd.socket(), "POST", &path, Some(&body));
        let (our_message, their_message) = (message(&our_body), message(&their_body));
        assert_eq!(ours, 400, "pierd, POST {path} {body}: {our_body}");
        // dockerd 20.10 answers a decoding error with 500; Docker 23 on, with 400.
        assert!(
            [400, 500].contains(&theirs),
            "dockerd, POST {path} {body}: {their_body}"
        );
        assert!(
            our_message.starts_with("json: cannot unmarshal") && our_message.contains(field),
            "pierd does not name {field}: {our_message}"
        );
        if our_message != their_message {
            differences.push(format!(
                "POST {path} {body}\n  pierd:   {our_message}\n  dockerd: {their_message}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "messages differ from dockerd's:\n{}",
        differences.join("\n")
    );
    // Nothing was stored, and listing works.
    for e in [&pierd as &dyn Engine, &dockerd] {
        assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
    }
}

/// Whether `prop` is a named field of `T`: sent as `null`, it is not kept in an
/// `extra` map (and so is not written back).
fn named<T: serde::Serialize + serde::de::DeserializeOwned>(prop: &str) -> bool {
    let sent = serde_json::json!({ prop: null });
    let typed: T = serde_json::from_value(sent).unwrap_or_else(|e| panic!("{prop}: {e}"));
    serde_json::to_value(&typed)
        .expect("serializes")
        .get(prop)
        .is_none()
}

/// The rows of docs/HOSTCONFIG.md's tables: each field named in a row's first cell
/// (`` `HostConfig.Memory` ``) with that row's answer.
fn table_answers(doc: &str) -> Vec<(String, String)> {
    let mut answers = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(names), Some(answer)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        for quoted in names.split('`').skip(1).step_by(2) {
            let is_field = ["Config.", "HostConfig.", "EndpointSettings."]
                .iter()
                .any(|p| quoted.starts_with(p))
                && quoted
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.');
            if is_field {
                answers.push((quoted.to_string(), answer.to_string()));
            }
        }
    }
    answers
}

#[test]
fn every_swagger_field_is_typed_and_answered_once_in_the_table() {
    use pier_api::container::{
        ContainerConfig, DeviceMapping, DeviceRequest, HealthConfig, HostConfig, PortBinding,
        RestartPolicy, ThrottleDevice,
    };
    use pier_api::network::{EndpointIpamConfig, EndpointSettings, NetworkingConfig};
    use pier_testsupport::swagger::definition_properties;

    let Some(contract) = pier_testsupport::swagger::contract() else {
        println!("skipped: the Engine API contract (docker-engine-api.yaml) is not here");
        return;
    };
    let properties = |name: &str| {
        definition_properties(&contract, name)
            .unwrap_or_else(|| panic!("no definition {name} in the contract"))
    };
    // (a) Every property is a named field of its struct.
    type IsNamed = fn(&str) -> bool;
    let typed: [(&str, IsNamed); 11] = [
        ("ContainerConfig", named::<ContainerConfig>),
        ("HostConfig", named::<HostConfig>),
        ("RestartPolicy", named::<RestartPolicy>),
        ("DeviceMapping", named::<DeviceMapping>),
        ("DeviceRequest", named::<DeviceRequest>),
        ("ThrottleDevice", named::<ThrottleDevice>),
        ("HealthConfig", named::<HealthConfig>),
        ("PortBinding", named::<PortBinding>),
        ("NetworkingConfig", named::<NetworkingConfig>),
        ("EndpointSettings", named::<EndpointSettings>),
        ("EndpointIPAMConfig", named::<EndpointIpamConfig>),
    ];
    let mut unnamed = Vec::new();
    for (definition, is_named) in typed {
        let props = properties(definition);
        assert!(!props.is_empty(), "{definition} has no properties");
        unnamed.extend(
            props
                .iter()
                .filter(|p| !is_named(p))
                .map(|p| format!("{definition}.{p}")),
        );
    }
    assert!(unnamed.is_empty(), "not typed fields: {unnamed:?}");

    // (b) Every property of the create's three parts has one row with one answer.
    let doc_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/HOSTCONFIG.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    let answers = table_answers(&doc);
    let mut problems = Vec::new();
    for (definition, prefix) in [
        ("ContainerConfig", "Config"),
        ("HostConfig", "HostConfig"),
        ("EndpointSettings", "EndpointSettings"),
    ] {
        for prop in properties(definition) {
            let name = format!("{prefix}.{prop}");
            let rows: Vec<&String> = answers
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, a)| a)
                .collect();
            match rows.as_slice() {
                [answer] if ["honoured", "refused", "ignored"].contains(&answer.as_str()) => {}
                [] => problems.push(format!("{name}: no row")),
                [answer] => problems.push(format!("{name}: answer {answer:?} is not one of three")),
                _ => problems.push(format!("{name}: {} rows", rows.len())),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/HOSTCONFIG.md:\n{}",
        problems.join("\n")
    );
}

/// `(status, message or warnings)` of a create: the warnings when it was made (201),
/// else the error's message.
fn create_answer(socket: &std::path::Path, body: &str) -> (u16, String) {
    let (status, answer) = api(socket, "POST", "/containers/create", Some(body));
    let v: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    if status == 201 {
        (status, v["Warnings"].to_string())
    } else {
        (status, message(&answer))
    }
}

/// Removes every container of `e` (the test's own daemons).
fn remove_all(e: &dyn Engine) {
    for id in e.docker_ok(&["ps", "-aq"]).lines() {
        e.docker(&["rm", "-f", id]);
    }
}

#[test]
fn linux_only_fields_as_dockerd() {
    let Some((pierd, dockerd, _work)) = common::pierd_and_dockerd_with_busybox("linux_only_fields")
    else {
        return;
    };
    // Refused, discarded with a warning, or accepted and kept: the same answer from both
    // (dockerd 20.10 answers its refusals with 500, Docker 23 on and pierd with 400).
    for host_config in [
        r#""Isolation":"hyperv""#,
        r#""Isolation":"default""#,
        r#""IOMaximumIOps":5"#,
        r#""IOMaximumBandwidth":5"#,
        r#""CpuPercent":50"#,
        r#""CpuCount":2"#,
        r#""BlkioWeight":300"#,
        r#""BlkioWeight":5"#,
        r#""Cgroup":"x""#,
        r#""ContainerIDFile":"/nonexistent/id""#,
    ] {
        let body =
            format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{{host_config}}}}}"#);
        let (ours, theirs) = (
            create_answer(&pierd.socket(), &body),
            create_answer(&dockerd.socket(), &body),
        );
        if theirs.0 == 201 {
            assert_eq!(ours, theirs, "{host_config}");
        } else {
            assert_eq!((ours.0, &ours.1), (400, &theirs.1), "{host_config}");
            assert!([400, 500].contains(&theirs.0), "{host_config}: {theirs:?}");
        }
    }
    for config in [r#""ArgsEscaped":true"#, r#""OnBuild":["RUN true"]"#] {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],{config}}}"#);
        assert_eq!(
            create_answer(&pierd.socket(), &body),
            create_answer(&dockerd.socket(), &body),
            "{config}"
        );
    }
    // Fields dockerd 20.10 does not have or words otherwise.
    let refused = [
        (
            r#""HostConfig":{"Runtime":"nosuch"}"#,
            "unknown or invalid runtime name: nosuch",
        ),
        (
            r#""NetworkingConfig":{"EndpointsConfig":{"bridge":{"GwPriority":1}}}"#,
            "network bridge: a gateway priority (GwPriority) is not supported by Pier",
        ),
    ];
    for (part, words) in refused {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],{part}}}"#);
        let (status, answer) = create_answer(&pierd.socket(), &body);
        assert_eq!((status, answer.as_str()), (400, words), "{part}");
    }
    remove_all(&pierd);
    remove_all(&dockerd);

    for (e, socket) in [
        (&pierd as &dyn Engine, pierd.socket()),
        (&dockerd, dockerd.socket()),
    ] {
        // NetworkDisabled: only the loopback.
        let body = r#"{"Image":"busybox","Cmd":["cat","/proc/net/dev"],"NetworkDisabled":true}"#;
        let (status, answer) = api(&socket, "POST", "/containers/create?name=nonet", Some(body));
        assert_eq!(status, 201, "{answer}");
        let out = e.docker_ok(&["start", "-a", "nonet"]);
        let interfaces: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
            .filter(|name| !name.contains('|'))
            .collect();
        assert_eq!(interfaces, ["lo"], "{out}");
        // systempaths=unconfined sends empty MaskedPaths and ReadonlyPaths.
        let read = |extra: &[&str]| {
            let mut args = vec!["run", "--rm"];
            args.extend_from_slice(extra);
            args.extend(["busybox", "sh", "-c", "wc -c < /proc/timer_list"]);
            e.docker_ok(&args)
                .trim()
                .parse::<u64>()
                .expect("a byte count")
        };
        assert_eq!(read(&[]), 0, "masked by default");
        assert!(read(&["--security-opt", "systempaths=unconfined"]) > 0);
        remove_all(e);
    }
}

#[test]
fn run_options_take_effect_as_dockerd() {
    let Some((pierd, dockerd, _work)) =
        common::pierd_and_dockerd_with_busybox("run_options_take_effect")
    else {
        return;
    };
    let script = "touch /x 2>/dev/null && echo rw || echo ro; grep CapEff /proc/self/status; \
        cat /proc/sys/net/ipv4/ip_forward; ulimit -Sn; ulimit -Hn; cat /proc/self/oom_score_adj; \
        df -k /dev/shm | tail -1 | awk '{print $2}'; \
        if [ -d /sys/fs/cgroup/memory ]; then cd /sys/fs/cgroup; \
        cat memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes cpu/cpu.shares \
        cpu/cpu.cfs_quota_us cpuset/cpuset.cpus cpuset/cpuset.mems; \
        else cd /sys/fs/cgroup; cat memory.max memory.low cpu.max cpuset.cpus cpuset.mems; fi";
    let args = [
        "run",
        "--rm",
        "--read-only",
        "--cap-drop",
        "CHOWN",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--ulimit",
        "nofile=100:200",
        "--oom-score-adj",
        "100",
        "--shm-size",
        "8m",
        "--memory",
        "64m",
        "--memory-reservation",
        "32m",
        "--cpu-shares",
        "512",
        "--cpus",
        "0.5",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "busybox",
        "sh",
        "-c",
        script,
    ];
    let ours = pierd.docker_ok(&args);
    let theirs = (&dockerd as &dyn Engine).docker_ok(&args);
    assert_eq!(ours, theirs, "pierd vs dockerd");
    let lines: Vec<&str> = ours.lines().collect();
    assert_eq!(lines[0], "ro");
    assert_eq!(lines[2..7], ["1", "100", "200", "100", "8192"], "{ours}");
}

#[test]
fn stop_signal_timeout_health_shell_and_console_size() {
    let Some((pierd, dockerd, _work)) = common::pierd_and_dockerd_with_busybox("stop_signal")
    else {
        return;
    };
    for (e, socket) in [
        (&pierd as &dyn Engine, pierd.socket()),
        (&dockerd, dockerd.socket()),
    ] {
        // StopSignal: the trap's exit code is the container's.
        e.docker_ok(&[
            "run",
            "-d",
            "--name",
            "sig",
            "--stop-signal",
            "USR1",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' USR1; while true; do sleep 0.1; done",
        ]);
        e.docker_ok(&["stop", "sig"]);
        assert_eq!(
            e.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "sig"])
                .trim(),
            "7"
        );
        // StopTimeout: SIGKILL after 1 s, not the default 10.
        e.docker_ok(&[
            "run",
            "-d",
            "--name",
            "tmo",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; while true; do sleep 0.1; done",
        ]);
        let started = std::time::Instant::now();
        e.docker_ok(&["stop", "tmo"]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            e.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "tmo"])
                .trim(),
            "137"
        );
        // Shell: a CMD-SHELL probe runs in it (here one that fails whatever the command).
        let body = r#"{"Image":"busybox","Cmd":["sleep","30"],"Shell":["/bin/sh","-c","exit 3"],
            "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":200000000,"Retries":1}}"#;
        let (status, answer) = api(&socket, "POST", "/containers/create?name=hc", Some(body));
        assert_eq!(status, 201, "{answer}");
        e.docker_ok(&["start", "hc"]);
        let health = || e.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
        assert!(
            common::wait_until(std::time::Duration::from_secs(20), || health().trim()
                != "starting"),
            "no health status"
        );
        assert_eq!(health().trim(), "unhealthy");
        remove_all(e);
    }
    // ConsoleSize (API 1.42; dockerd 20.10 has none): the terminal's size at start.
    let body = r#"{"Image":"busybox","Tty":true,"Cmd":["stty","size"],"HostConfig":{"ConsoleSize":[30,100]}}"#;
    let (status, answer) = api(
        &pierd.socket(),
        "POST",
        "/containers/create?name=tty",
        Some(body),
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(pierd.docker_ok(&["start", "-a", "tty"]).trim(), "30 100");
    remove_all(&pierd);
}

#[test]
fn annotations_reach_the_runtime() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let body = r#"{"Image":"busybox","Cmd":["sleep","30"],"HostConfig":{"Annotations":{"org.example.pier":"yes"}}}"#;
    let (status, answer) = api(&pierd.socket(), "POST", "/containers/create", Some(body));
    assert_eq!(status, 201, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    pierd.docker_ok(&["start", &id]);
    let spec_path = pierd
        .exec_root()
        .join("c")
        .join(&id[..16])
        .join("config.json");
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(&spec_path)
            .unwrap_or_else(|e| panic!("{}: {e}", spec_path.display())),
    )
    .expect("spec JSON");
    assert_eq!(
        spec["annotations"]["org.example.pier"], "yes",
        "{}",
        spec["annotations"]
    );
    remove_all(&pierd);
}
