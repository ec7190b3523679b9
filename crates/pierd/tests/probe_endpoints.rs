//! What clients probe and what they get wrong, asked of pierd and of a real, isolated
//! dockerd in the same test: the swarm and plugin endpoints of a node outside a swarm,
//! invalid image references, and out-of-range or wrongly typed values at create and
//! update (refused with dockerd's status and message, nothing stored).

mod common;

use std::path::Path;

use common::{api, Engine, Pierd};
use pier_testsupport::IsolatedDockerd;

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("not an error body: {body:?}"))
}

struct Engines {
    pierd: Pierd,
    dockerd: IsolatedDockerd,
    _work: tempfile::TempDir,
}

/// pierd and dockerd, each with the same busybox image; None when the host lacks one.
fn engines(test: &str) -> Option<Engines> {
    let (pierd, dockerd, work) = common::pierd_and_dockerd_with_busybox(test)?;
    Some(Engines {
        pierd,
        dockerd,
        _work: work,
    })
}

#[test]
fn swarm_and_plugin_endpoints_answer_as_a_node_outside_a_swarm() {
    let Some(e) = engines("swarm_and_plugin_endpoints") else {
        return;
    };
    let requests = [
        ("GET", "/swarm"),
        ("POST", "/swarm/leave?force=1"),
        ("POST", "/swarm/leave"),
        ("GET", "/swarm/unlockkey"),
        ("POST", "/swarm/update?version=1"),
        ("GET", "/services"),
        ("GET", "/services/web"),
        ("DELETE", "/services/web"),
        ("GET", "/nodes"),
        ("GET", "/nodes/abc"),
        ("GET", "/tasks"),
        ("GET", "/tasks/abc/logs?stdout=1"),
        ("GET", "/secrets"),
        ("POST", "/secrets/create"),
        ("GET", "/configs"),
        ("DELETE", "/configs/abc"),
        ("GET", "/plugins"),
    ];
    for (method, path) in requests {
        let body = (method == "POST").then_some("{}");
        let ours = api(&e.pierd.socket(), method, path, body);
        let theirs = api(&e.dockerd.socket(), method, path, body);
        assert_eq!(ours, theirs, "{method} {path}: pierd vs dockerd");
        assert_ne!(ours.0, 404, "{method} {path}");
    }
    assert_eq!(
        api(&e.pierd.socket(), "POST", "/swarm/leave?force=1", None),
        (
            503,
            r#"{"message":"This node is not part of a swarm"}"#.to_string()
        )
    );
    assert_eq!(e.pierd.docker_ok(&["plugin", "ls", "-q"]), "");
}

#[test]
fn invalid_image_references_are_bad_requests() {
    let Some(e) = engines("invalid_image_references") else {
        return;
    };
    for reference in ["UPPER", "busybox:", "a..b"] {
        let create = format!(r#"{{"Image":"{reference}"}}"#);
        for socket in [e.pierd.socket(), e.dockerd.socket()] {
            let (status, body) = api(&socket, "POST", "/containers/create", Some(&create));
            assert_eq!(status, 400, "create {reference} on {socket:?}: {body}");
            assert!(
                message(&body).starts_with("invalid reference format"),
                "create {reference} on {socket:?}: {body}"
            );
            let (status, body) = api(&socket, "GET", &format!("/images/{reference}/json"), None);
            assert_eq!(status, 400, "inspect {reference} on {socket:?}: {body}");
            assert!(
                message(&body).contains("invalid reference format"),
                "{body}"
            );
        }
    }
    // Docker 28's words (20.10 leaves out the name).
    let (_, body) = api(
        &e.pierd.socket(),
        "POST",
        "/containers/create",
        Some(r#"{"Image":"UPPER"}"#),
    );
    assert_eq!(
        message(&body),
        "invalid reference format: repository name (library/UPPER) must be lowercase"
    );
    // The docker CLI refuses the name itself, the same way against both.
    let ours = e.pierd.docker(&["create", "busybox:"]);
    let theirs = Engine::docker(&e.dockerd, &["create", "busybox:"]);
    assert_eq!((ours.code, &ours.stderr), (theirs.code, &theirs.stderr));
    // A valid name that is not there is still a 404.
    let (status, _) = api(
        &e.pierd.socket(),
        "POST",
        "/containers/create",
        Some(r#"{"Image":"nosuch"}"#),
    );
    assert_eq!(status, 404);
}

/// HostConfig fields that dockerd refuses at create, each with its message.
const REFUSED_AT_CREATE: &[&str] = &[
    r#""Memory":-1"#,
    r#""Memory":1000"#,
    r#""NanoCpus":-1"#,
    r#""NanoCpus":999000000000"#,
    r#""ShmSize":-1"#,
    r#""MemorySwappiness":200"#,
    r#""MemorySwappiness":-2"#,
    r#""OomScoreAdj":5000"#,
    r#""OomScoreAdj":-1001"#,
    r#""Memory":10000000,"MemorySwap":5000000"#,
    r#""CpuPeriod":100"#,
    r#""CpuQuota":100"#,
];

fn count_containers(e: &dyn Engine) -> usize {
    e.docker_ok(&["ps", "-aq"]).lines().count()
}

#[test]
fn out_of_range_values_are_refused_at_create_and_update_as_dockerd() {
    let Some(e) = engines("out_of_range_values") else {
        return;
    };
    let create = |socket: &Path, host_config: &str| {
        let body =
            format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{{host_config}}}}}"#);
        api(socket, "POST", "/containers/create", Some(&body))
    };
    for hc in REFUSED_AT_CREATE {
        let ours = create(&e.pierd.socket(), hc);
        let theirs = create(&e.dockerd.socket(), hc);
        assert_eq!(theirs.0, 400, "dockerd {hc}: {theirs:?}");
        assert_eq!(ours, theirs, "{hc}: pierd vs dockerd");
    }
    // dockerd 20.10 stores these and fails at start ("the minimum allowed cpu-shares
    // is 2" from runc): pierd refuses them at once, in the runtime's words.
    for (hc, words) in [
        (r#""CpuShares":1"#, "the minimum allowed cpu-shares is 2"),
        (r#""CpuShares":-5"#, "the minimum allowed cpu-shares is 2"),
        (
            r#""CpuShares":9223372036854775807"#,
            "the maximum allowed cpu-shares is 262144",
        ),
    ] {
        let (status, body) = create(&e.pierd.socket(), hc);
        assert_eq!((status, message(&body).as_str()), (400, words), "{hc}");
    }
    // Wrong types: 400 with Go's decoder message (dockerd 20.10 says 500).
    let (status, body) = api(
        &e.pierd.socket(),
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Labels":{"a":1}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("cannot unmarshal number"), "{body}");
    let (status, body) = create(&e.pierd.socket(), r#""Memory":1.5"#);
    assert_eq!(status, 400, "{body}");
    // Nothing of the refused creates was stored, and listing still works.
    assert_eq!(count_containers(&e.pierd), 0);

    // A negative pids limit means "unlimited": stored as unset, by both.
    for engine in [&e.pierd as &dyn Engine, &e.dockerd] {
        let out = engine.docker_ok(&["create", "--pids-limit", "-5", "busybox", "true"]);
        let id = out.trim();
        let limit = engine.docker_ok(&["inspect", "-f", "{{json .HostConfig.PidsLimit}}", id]);
        assert_eq!(limit.trim(), "null");
        engine.docker_ok(&["rm", id]);
    }

    // Update: the same checks, the same answers.
    let updates = [
        r#"{"Memory":-1}"#,
        r#"{"NanoCpus":-1}"#,
        r#"{"MemorySwappiness":200}"#,
        r#"{"CpuPeriod":100}"#,
    ];
    let mut names = Vec::new();
    for engine in [&e.pierd as &dyn Engine, &e.dockerd] {
        let id = engine.docker_ok(&["create", "--network", "none", "busybox", "sleep", "5"]);
        names.push(id.trim().to_string());
    }
    for body in updates {
        let ours = api(
            &e.pierd.socket(),
            "POST",
            &format!("/containers/{}/update", names[0]),
            Some(body),
        );
        let theirs = api(
            &e.dockerd.socket(),
            "POST",
            &format!("/containers/{}/update", names[1]),
            Some(body),
        );
        assert_eq!(theirs.0, 400, "dockerd {body}: {theirs:?}");
        assert_eq!(ours, theirs, "update {body}: pierd vs dockerd");
    }
    let memory = e
        .pierd
        .docker_ok(&["inspect", "-f", "{{.HostConfig.Memory}}", &names[0]]);
    assert_eq!(memory.trim(), "0", "a refused update changed nothing");
}
