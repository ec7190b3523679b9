//! CDI devices: `--device vendor.com/class=name` and `--gpus` resolved from the CDI
//! spec files of `pierd --cdi-spec-dir` (a temp dir here), their containerEdits seen
//! inside the container; unknown devices refused with Docker 28's words. (dockerd
//! 20.10 has no CDI, so there is nothing to compare with.)

mod common;

use common::{Engine, Pierd};

/// A spec of kind `pier.test/dev`: `one` brings /dev/null as /dev/pier-one, an
/// environment variable and a bind of `shared`; the spec's own edit sets SPEC=1.
fn write_specs(dir: &std::path::Path, shared: &std::path::Path) {
    let test_spec = serde_json::json!({
        "cdiVersion": "0.6.0",
        "kind": "pier.test/dev",
        "containerEdits": {"env": ["SPEC=1"]},
        "devices": [{
            "name": "one",
            "containerEdits": {
                "env": ["CDI_ONE=yes"],
                "deviceNodes": [{"path": "/dev/pier-one", "hostPath": "/dev/null"}],
                "mounts": [{"hostPath": shared, "containerPath": "/cdi", "options": ["rbind", "ro"]}],
            },
        }],
    });
    let gpu_spec = serde_json::json!({
        "cdiVersion": "0.6.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {"name": "0", "containerEdits": {"env": ["GPU0=on"]}},
            {"name": "1", "containerEdits": {"env": ["GPU1=on"]}},
        ],
    });
    std::fs::write(dir.join("pier-test.json"), test_spec.to_string()).unwrap();
    std::fs::write(dir.join("gpu.json"), gpu_spec.to_string()).unwrap();
    // Not a spec: skipped, as the CDI registry skips it.
    std::fs::write(dir.join("broken.json"), "{").unwrap();
}

/// `docker run --rm --network none <args>` on pierd.
fn run(pierd: &Pierd, args: &[&str]) -> pier_testsupport::Out {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(args);
    pierd.docker(&all)
}

#[test]
fn cdi_devices_and_gpus_are_resolved_from_spec_files() {
    let work = tempfile::tempdir().unwrap();
    let Some(tar) = common::busybox_rootfs_tar(work.path()) else {
        return;
    };
    let specs = work.path().join("cdi");
    let shared = work.path().join("shared");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("file"), "from the host\n").unwrap();
    write_specs(&specs, &shared);
    let pierd = Pierd::start_with_args(&["--cdi-spec-dir", specs.to_str().unwrap()]);
    let out = pierd.docker_with_stdin(&["import", "-c", "CMD [\"sh\"]", "-", "busybox"], &tar);
    assert_eq!(out.code, Some(0), "{out:?}");

    let out = run(&pierd, &["--device",
        "pier.test/dev=one",
        "busybox",
        "sh",
        "-c",
        "echo $SPEC $CDI_ONE; stat -c '%t:%T' /dev/pier-one; echo x > /dev/pier-one && cat /cdi/file",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "1 yes\n1:3\nfrom the host\n");

    // `--gpus all`: every nvidia.com/gpu device; `device=1`: that one.
    let out = run(
        &pierd,
        &["--gpus", "all", "busybox", "sh", "-c", "echo $GPU0 $GPU1"],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "on on\n"),
        "{out:?}"
    );
    let out = run(
        &pierd,
        &[
            "--gpus",
            "device=1",
            "busybox",
            "sh",
            "-c",
            "echo ${GPU0:-off} $GPU1",
        ],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "off on\n"),
        "{out:?}"
    );

    // Unknown devices: Docker 28's words, and nothing stored.
    let out = run(
        &pierd,
        &["--device", "pier.test/dev=two", "busybox", "true"],
    );
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(
        out.stderr
            .contains("CDI device injection failed: unresolvable CDI devices pier.test/dev=two"),
        "{out:?}"
    );
    assert!(pierd.docker_ok(&["ps", "-aq"]).is_empty());

    // Without an nvidia.com/gpu spec, `--gpus` is refused as before.
    std::fs::remove_file(specs.join("gpu.json")).unwrap();
    let out = run(&pierd, &["--gpus", "all", "busybox", "true"]);
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(
        out.stderr
            .contains("could not select device driver \"\" with capabilities: [[gpu]]"),
        "{out:?}"
    );
}
