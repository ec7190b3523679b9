//! `docker build` (the classic builder, `DOCKER_BUILDKIT=0`) against pierd, and the
//! same Dockerfiles against a real, isolated dockerd in the same test: the images'
//! configs and files must match, and the progress stream must read the same.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{mounts_under, with_busybox_engines, Engine};
use pier_testsupport::http_server::HttpServer;
use pier_testsupport::Out;
use serde_json::Value;

/// `DOCKER_BUILDKIT=0 docker build <args>` on `e`.
fn build(e: &dyn Engine, args: &[&str]) -> Out {
    let mut cmd: Command = e.command();
    cmd.env("DOCKER_BUILDKIT", "0").arg("build").args(args);
    pier_testsupport::run(&mut cmd, common::CMD_TIMEOUT).unwrap_or_else(|err| panic!("{err}"))
}

fn build_ok(e: &dyn Engine, args: &[&str]) -> String {
    let out = build(e, args);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

fn inspect(e: &dyn Engine, image: &str) -> Value {
    let text = e.docker_ok(&["image", "inspect", image]);
    let v: Value = serde_json::from_str(&text).expect("inspect json");
    v[0].clone()
}

/// The config fields a Dockerfile sets.
fn config_of(e: &dyn Engine, image: &str) -> Value {
    let c = &inspect(e, image)["Config"];
    serde_json::json!({
        "Env": c["Env"],
        "Cmd": c["Cmd"],
        "Entrypoint": c["Entrypoint"],
        "WorkingDir": c["WorkingDir"],
        "User": c["User"],
        "ExposedPorts": c["ExposedPorts"],
        "Volumes": c["Volumes"],
        "Labels": c["Labels"],
        "StopSignal": c["StopSignal"],
        "Healthcheck": c["Healthcheck"],
        "OnBuild": c["OnBuild"],
        "Shell": c["Shell"],
    })
}

/// The build's stream with IDs blanked: `Step` lines and markers, comparable across
/// engines.
fn steps(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| !l.contains("legacy builder is deprecated") && !l.trim().is_empty())
        .filter(|l| {
            !l.starts_with("DEPRECATED") && !l.contains("BuildKit") && !l.contains("buildx")
        })
        .filter(|l| !l.contains("Sending build context"))
        .map(|l| {
            let l = l.trim_end();
            if let Some(rest) = l.strip_prefix(" ---> ") {
                if rest.len() == 12 && rest.chars().all(|c| c.is_ascii_hexdigit()) {
                    return " ---> ID".to_string();
                }
                if let Some(id) = rest.strip_prefix("Running in ") {
                    if id.len() == 12 {
                        return " ---> Running in ID".to_string();
                    }
                }
            }
            for prefix in ["Successfully built ", "Removing intermediate container "] {
                if l.starts_with(prefix) {
                    return format!("{prefix}ID");
                }
            }
            l.to_string()
        })
        .collect()
}

/// `file:<64 hex>` → `file:HASH`.
fn blank_hashes(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(':') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        if rest.len() >= 64 && rest[..64].chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str("HASH");
            rest = &rest[64..];
        }
    }
    out.push_str(rest);
    out
}

const APP_DOCKERFILE: &str = r#"FROM busybox
ARG GREETING=hello
ENV APP=/app OTHER="two words"
LABEL a=b "c d"=e
WORKDIR /app
COPY hello.txt ./
COPY dir/ /data/
RUN echo "$GREETING from $APP" > /app/greeting && chmod 604 /app/greeting
USER 1000:1000
EXPOSE 8080/udp 9090
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD true
ENTRYPOINT ["cat"]
CMD ["/app/greeting"]
"#;

fn app_context(dir: &Path) {
    write(dir, "Dockerfile", APP_DOCKERFILE);
    write(dir, "hello.txt", "hi\n");
    write(dir, "dir/a.txt", "a\n");
    write(dir, "dir/sub/b.txt", "b\n");
}

#[test]
fn a_dockerfile_builds_the_same_image_on_pierd_and_dockerd() {
    let mut results = Vec::new();
    with_busybox_engines("build", |name, e, _| {
        let ctx = tempfile::tempdir().expect("ctx");
        app_context(ctx.path());
        let out = build_ok(e, &["-t", "app:1", ctx.path().to_str().expect("utf8")]);
        let config = config_of(e, "app:1");
        let run = e.docker_ok(&["run", "--rm", "app:1"]);
        assert_eq!(run, "hello from /app\n", "{name}");
        let files = e.docker_ok(&[
            "run",
            "--rm",
            "--user",
            "0",
            "--entrypoint",
            "sh",
            "app:1",
            "-c",
            "ls -ln /app /data /data/sub | sed 's/ [A-Z][a-z][a-z] .* / /'",
        ]);
        // The COPY lines' hashes are each builder's own (dockerd's tarsum).
        let history: Vec<String> = {
            let text = e.docker_ok(&[
                "history",
                "--no-trunc",
                "--format",
                "{{.CreatedBy}}",
                "app:1",
            ]);
            text.lines().map(blank_hashes).collect()
        };
        results.push((name.to_string(), steps(&out), config, files, history));
    });
    if let [(_, d_steps, d_config, d_files, d_history), (_, p_steps, p_config, p_files, p_history)] =
        &results[..]
    {
        assert_eq!(p_config, d_config, "image configs differ");
        assert_eq!(p_files, d_files, "files differ");
        // The step lines and their markers, IDs aside.
        let filtered = |s: &Vec<String>| -> Vec<String> {
            s.iter()
                .filter(|l| l.starts_with("Step ") || l.starts_with("Successfully"))
                .cloned()
                .collect()
        };
        assert_eq!(filtered(p_steps), filtered(d_steps));
        // History: the steps this Dockerfile added, newest first.
        let n = APP_DOCKERFILE.lines().count() - 1;
        assert_eq!(p_history[..n], d_history[..n], "history differs");
    }
}

#[test]
fn an_unchanged_rebuild_is_all_cache_and_a_changed_file_rebuilds_from_its_copy() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    app_context(ctx.path());
    let dir = ctx.path().to_str().expect("utf8");
    build_ok(&pierd, &["-t", "app:1", dir]);
    let first = inspect(&pierd, "app:1")["Id"].clone();
    let again = build_ok(&pierd, &["-t", "app:1", dir]);
    assert_eq!(inspect(&pierd, "app:1")["Id"], first, "{again}");
    let used = again.matches("Using cache").count();
    assert_eq!(used, APP_DOCKERFILE.lines().count() - 1, "{again}");
    // Only the steps from the changed file's COPY on run again.
    write(ctx.path(), "dir/sub/b.txt", "changed\n");
    let third = build_ok(&pierd, &["-t", "app:1", dir]);
    assert_eq!(third.matches("Using cache").count(), 5, "{third}");
    assert_ne!(inspect(&pierd, "app:1")["Id"], first);
    let b = pierd.docker_ok(&["run", "--rm", "app:1", "/data/sub/b.txt"]);
    assert_eq!(b, "changed\n");
    // `--no-cache` runs every step.
    let fresh = build_ok(&pierd, &["--no-cache", "-t", "app:2", dir]);
    assert_eq!(fresh.matches("Using cache").count(), 0, "{fresh}");
    // Intermediate steps are not images: besides the tags, only the first app:1,
    // untagged by the third build, is there.
    let images = pierd.docker_ok(&[
        "images",
        "-a",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    let mut names: Vec<&str> = images.lines().collect();
    names.sort();
    assert_eq!(names.len(), 4, "{images}");
    assert_eq!(
        names[0],
        format!("<none>:<none> {}", first.as_str().expect("id")),
        "{images}"
    );
}

#[test]
fn a_failing_run_reports_dockerds_error_and_leaves_nothing_behind() {
    let mut outs = Vec::new();
    with_busybox_engines("build-fail", |name, e, _| {
        let ctx = tempfile::tempdir().expect("ctx");
        write(
            ctx.path(),
            "Dockerfile",
            "FROM busybox\nRUN echo out; echo err >&2; exit 3\n",
        );
        let out = build(e, &[ctx.path().to_str().expect("utf8")]);
        // The docker CLI exits with the step's code.
        assert_eq!(out.code, Some(3), "{name}: {out:?}");
        let ps = e.docker_ok(&["ps", "-aq"]);
        outs.push((name.to_string(), out, ps));
    });
    for (name, out, ps) in &outs {
        assert!(
            out.stderr.contains("The command '/bin/sh -c echo out; echo err >&2; exit 3' returned a non-zero code: 3"),
            "{name}: {out:?}"
        );
        // stderr in red, as dockerd shows it.
        assert!(
            out.stdout.contains("out\n") && out.stdout.contains("\u{1b}[91merr\n\u{1b}[0m"),
            "{name}: {out:?}"
        );
        // dockerd keeps the failed step's container unless --force-rm; Pier removes it
        // too (rm defaults to true and a failed step has nothing to inspect later).
        if name == "pierd" {
            assert_eq!(ps.trim(), "", "{name}: a container was left");
        }
    }
}

#[test]
fn a_parse_error_names_the_line_and_runs_nothing() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN true\nFROBNICATE x\n",
    );
    let out = build(&pierd, &[ctx.path().to_str().expect("utf8")]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("line 3"), "{out:?}");
    assert!(
        out.stderr.to_lowercase().contains("unknown instruction"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("Step 1"), "{out:?}");
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]).trim(), "");
    // A missing base image (named on a loopback port nothing listens on: a build
    // pulls what the store lacks, and no test reaches beyond loopback).
    write(
        ctx.path(),
        "Dockerfile",
        "FROM 127.0.0.1:9/nosuchimage:1\nRUN true\n",
    );
    let out = build(&pierd, &[ctx.path().to_str().expect("utf8")]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("127.0.0.1:9"), "{out:?}");
}

#[test]
fn multi_stage_builds_copy_from_earlier_stages_and_stop_at_the_target() {
    let mut results = Vec::new();
    with_busybox_engines("build-stages", |name, e, _| {
        let ctx = tempfile::tempdir().expect("ctx");
        write(
            ctx.path(),
            "Dockerfile",
            "FROM busybox AS builder\nRUN mkdir /out && echo built > /out/artifact && ln -s artifact /out/link\n\
             FROM busybox AS unused\nRUN exit 1\n\
             FROM scratch AS final\nCOPY --from=builder /out/ /\nCOPY --from=0 /bin/busybox /bin/busybox\nCMD [\"/bin/busybox\", \"cat\", \"/artifact\"]\n",
        );
        write(ctx.path(), ".dockerignore", "secret\n");
        write(ctx.path(), "secret", "nope\n");
        let dir = ctx.path().to_str().expect("utf8");
        let out = build(e, &["-t", "staged", "--target", "final", dir]);
        // The classic builder builds every stage before the target (and so fails on
        // `unused`); Pier builds only the stages the target needs.
        if name == "pierd" {
            assert_eq!(out.code, Some(0), "{out:?}");
            assert_eq!(e.docker_ok(&["run", "--rm", "staged"]), "built\n");
            let link = e.docker_ok(&["run", "--rm", "staged", "/bin/busybox", "readlink", "/link"]);
            assert_eq!(link, "artifact\n");
            assert!(!out.stdout.contains("exit 1"), "{out:?}");
        }
        // `--target builder` stops there.
        build_ok(e, &["-t", "builder-only", "--target", "builder", dir]);
        let art = e.docker_ok(&["run", "--rm", "builder-only", "cat", "/out/artifact"]);
        results.push((name.to_string(), art));
    });
    for (name, art) in results {
        assert_eq!(art, "built\n", "{name}");
    }
}

/// The numbers of the `Step N/M` lines of a build's output, in order.
fn step_numbers(stdout: &str) -> Vec<usize> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Step ")?.split_once('/')?.0.parse().ok())
        .collect()
}

#[test]
fn independent_stages_run_in_parallel_and_the_stream_reads_in_order() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    // Each stage marks its start in a cache mount both share, then waits for the
    // other's mark: stages built one after the other would wait in vain and fail.
    let meet = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=meeting,target=/m,sharing=shared touch /m/{me} && \
             i=0; while [ ! -e /m/{other} ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; \
             test -e /m/{other} && echo '{me} saw {other}' | tee /{me}\n"
        )
    };
    let ctx = tempfile::tempdir().expect("ctx");
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM busybox AS a\n{}FROM busybox AS b\n{}FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCMD [\"cat\", \"/a\", \"/b\"]\n",
            meet("a", "b"),
            meet("b", "a")
        ),
    );
    let dir = ctx.path().to_str().expect("utf8");
    let out = build(&pierd, &["-t", "met", dir]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "met"]),
        "a saw b\nb saw a\n"
    );
    // The stream reads as a serial build: steps counted up, each RUN's output under
    // its own step.
    assert_eq!(
        step_numbers(&out.stdout),
        (1..=8).collect::<Vec<_>>(),
        "{out:?}"
    );
    let at = |needle: &str| {
        out.stdout
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {out:?}"))
    };
    assert!(
        at("Step 2/8") < at("a saw b") && at("a saw b") < at("Step 3/8"),
        "{out:?}"
    );
    assert!(
        at("Step 4/8") < at("b saw a") && at("b saw a") < at("Step 5/8"),
        "{out:?}"
    );

    // A failing stage stops the others: the slow stage's container is killed (the
    // build ends long before its sleep would) and nothing stays behind.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS slow\nRUN --mount=type=cache,id=slow,target=/m,sharing=shared touch /m/started && sleep 300\n\
         FROM busybox AS bad\nRUN --mount=type=cache,id=slow,target=/m,sharing=shared \\\n\
         i=0; while [ ! -e /m/started ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 3\n\
         FROM busybox\nCOPY --from=slow /etc/hostname /s\nCOPY --from=bad /etc/hostname /b\n",
    );
    let mut cmd: Command = pierd.command();
    cmd.env("DOCKER_BUILDKIT", "0").args(["build", dir]);
    let out = pier_testsupport::run(&mut cmd, std::time::Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("the slow stage was not cancelled: {e}"));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("returned a non-zero code: 3"),
        "{out:?}"
    );
    assert_eq!(step_numbers(&out.stdout), vec![1, 2, 3, 4], "{out:?}");
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || {
            pierd.docker_ok(&["ps", "-aq"]).trim().is_empty()
        }),
        "a stage's container stayed"
    );
    let data = pierd.data_root();
    assert!(
        mounts_under(&data).iter().all(|m| !m.contains("builder")),
        "{:?}",
        mounts_under(&data)
    );
}

/// The names in a directory, sorted (empty when it is missing).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The directories under `parent` in every cgroup hierarchy (v1 and v2).
fn cgroups_under(parent: &str) -> Vec<String> {
    let mut found = names_in(&Path::new("/sys/fs/cgroup").join(parent))
        .into_iter()
        .filter(|n| Path::new("/sys/fs/cgroup").join(parent).join(n).is_dir())
        .collect::<Vec<_>>();
    for h in names_in(Path::new("/sys/fs/cgroup")) {
        let dir = Path::new("/sys/fs/cgroup").join(h).join(parent);
        found.extend(
            names_in(&dir)
                .into_iter()
                .filter(|n| dir.join(n).is_dir())
                .map(|n| dir.join(n).display().to_string()),
        );
    }
    found
}

#[test]
fn a_cancelled_build_leaves_no_container_mount_cgroup_snapshot_or_lease() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let data = pierd.data_root();
    let snapshots = || names_in(&data.join("image/snapshots/snapshots"));
    let leases = || names_in(&data.join("image/content/leases"));
    let ctx = tempfile::tempdir().expect("ctx");
    write(ctx.path(), "app/file", "f\n");
    write(
        ctx.path(),
        "Dockerfile.copy",
        "FROM busybox\nCOPY app /ctx\n",
    );
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY app /ctx\nRUN sleep 60\n",
    );
    let dir = ctx.path().to_str().expect("utf8");
    // The COPY step is built first: what the cancelled build could leave is its RUN's.
    let copy_only = ctx.path().join("Dockerfile.copy");
    build_ok(&pierd, &["-f", copy_only.to_str().expect("utf8"), dir]);
    let (snapshots_before, leases_before) = (snapshots(), leases());
    let cgroup = common::CgroupParent::new("pier-build-cancel");
    let parent = format!("/{}", cgroup.0);
    let mut cmd = pierd.command();
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--cgroup-parent", &parent, dir])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("docker build");
    // Wait for the RUN's container, in its cgroup, then kill the client.
    let started = common::wait_until(std::time::Duration::from_secs(60), || {
        !pierd.docker_ok(&["ps", "-q"]).trim().is_empty() && !cgroups_under(&cgroup.0).is_empty()
    });
    if !started {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the RUN step never started: {:?}",
            pierd.docker_ok(&["ps", "-a"])
        );
    }
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(
        common::wait_until(std::time::Duration::from_secs(30), || {
            pierd.docker_ok(&["ps", "-aq"]).trim().is_empty()
        }),
        "the build's container stayed"
    );
    assert!(
        common::wait_until(std::time::Duration::from_secs(10), || mounts_under(&data)
            .iter()
            .all(|m| !m.contains("builder") && !m.contains("snapshots"))),
        "{:?}",
        mounts_under(&data)
    );
    assert!(
        common::wait_until(std::time::Duration::from_secs(10), || cgroups_under(
            &cgroup.0
        )
        .is_empty()),
        "{:?}",
        cgroups_under(&cgroup.0)
    );
    assert_eq!(names_in(&data.join("builder/tmp")), Vec::<String>::new());
    assert_eq!(snapshots(), snapshots_before, "a snapshot stayed");
    assert_eq!(leases(), leases_before, "a lease stayed");
}

#[test]
fn bzip2_and_xz_contexts_are_refused_by_name() {
    let pierd = common::Pierd::start();
    let ctx = tempfile::tempdir().expect("ctx");
    write(ctx.path(), "Dockerfile", "FROM scratch\nENV A=1\n");
    for (kind, flag) in [("bzip2", "--bzip2"), ("xz", "--xz")] {
        let tar = ctx.path().join(format!("context.tar.{kind}"));
        let out = pier_testsupport::run(
            Command::new("tar")
                .arg("-C")
                .arg(ctx.path())
                .args([flag, "-cf"])
                .arg(&tar)
                .arg("Dockerfile"),
            std::time::Duration::from_secs(30),
        )
        .expect("tar");
        if out.code != Some(0) {
            println!("skipping {kind}: tar cannot write it: {out:?}");
            continue;
        }
        let out = pier_testsupport::run(
            Command::new("curl")
                .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
                .arg(pierd.socket())
                .args(["-X", "POST", "--data-binary"])
                .arg(format!("@{}", tar.display()))
                .arg("http://docker/v1.41/build"),
            std::time::Duration::from_secs(60),
        )
        .expect("curl");
        let (body, status) = out.stdout.rsplit_once('\n').expect("status");
        assert_eq!(status, "400", "{out:?}");
        assert!(
            body.contains(&format!("the build context is {kind}-compressed")),
            "{out:?}"
        );
    }
    assert_eq!(
        names_in(&pierd.data_root().join("builder/tmp")),
        Vec::<String>::new()
    );
}

#[test]
fn build_cancel_stops_the_build_started_with_that_buildid() {
    // The endpoint's answers without a running build, as dockerd's (whose classic
    // builder ignores `buildid`).
    let engines: Vec<(String, std::path::PathBuf, Box<dyn std::any::Any>)> = {
        let mut v: Vec<(String, std::path::PathBuf, Box<dyn std::any::Any>)> = Vec::new();
        if let Some(d) = pier_testsupport::IsolatedDockerd::start_or_skip(
            "build_cancel",
            pier_testsupport::DockerdOptions::default(),
        ) {
            v.push(("dockerd".into(), d.socket(), Box::new(d)));
        }
        v
    };
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let mut answers = Vec::new();
    for (name, socket) in engines
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.clone()))
        .chain([("pierd", pierd.socket())])
    {
        answers.push((
            name.to_string(),
            common::api(&socket, "POST", "/build/cancel", None),
            common::api(&socket, "POST", "/build/cancel?id=nothing-runs", None),
        ));
    }
    let pier_answers = &answers.last().expect("pierd").1;
    assert_eq!(pier_answers.0, 500, "{answers:?}");
    assert!(
        pier_answers.1.contains("build ID not provided"),
        "{answers:?}"
    );
    for (name, without_id, unknown) in &answers {
        assert_eq!(without_id, &answers[0].1, "{name}: {answers:?}");
        assert_eq!(unknown.0, 200, "{name}: {answers:?}");
    }

    // A build given a buildid stops when cancelled, leaving no container.
    let ctx = tempfile::tempdir().expect("ctx");
    write(ctx.path(), "Dockerfile", "FROM busybox\nRUN sleep 60\n");
    let tar = ctx.path().join("context.tar");
    let out = pier_testsupport::run(
        Command::new("tar")
            .arg("-C")
            .arg(ctx.path())
            .args(["-cf"])
            .arg(&tar)
            .arg("Dockerfile"),
        std::time::Duration::from_secs(30),
    )
    .expect("tar");
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut curl = Command::new("curl")
        .args(["-s", "--max-time", "90", "--unix-socket"])
        .arg(pierd.socket())
        .args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-tar",
            "--data-binary",
        ])
        .arg(format!("@{}", tar.display()))
        .arg("http://docker/v1.41/build?buildid=cancel-me")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    let started = common::wait_until(std::time::Duration::from_secs(60), || {
        !pierd.docker_ok(&["ps", "-q"]).trim().is_empty()
    });
    if !started {
        let _ = curl.kill();
        let _ = curl.wait();
        panic!("the RUN step never started");
    }
    assert_eq!(
        common::api(&pierd.socket(), "POST", "/build/cancel?id=cancel-me", None),
        (200, String::new())
    );
    let done = curl.wait_with_output().expect("curl output");
    let stream = String::from_utf8_lossy(&done.stdout);
    assert!(
        stream.contains("\"error\":\"the build was cancelled\""),
        "{stream}"
    );
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || {
            pierd.docker_ok(&["ps", "-aq"]).trim().is_empty()
        }),
        "the build's container stayed"
    );
}

#[test]
fn a_base_image_missing_from_the_store_is_pulled_and_pull_refreshes_it() {
    let Some(registry) =
        pier_testsupport::registry::DockerRegistry::start_or_skip("build-pull", None)
    else {
        return;
    };
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let base = format!("{}/base/busybox:1", registry.host());
    pierd.docker_ok(&["tag", "busybox", &base]);
    pierd.docker_ok(&["push", &base]);
    pierd.docker_ok(&["rmi", &base]);
    let ctx = tempfile::tempdir().expect("ctx");
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {base}\nRUN echo pulled > /mark\n"),
    );
    let out = build_ok(
        &pierd,
        &["-t", "from-registry", ctx.path().to_str().expect("utf8")],
    );
    assert!(
        out.contains("Pulling from base/busybox")
            || out.contains("Pull complete")
            || out.contains("Already exists"),
        "{out}"
    );
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "from-registry", "cat", "/mark"]),
        "pulled\n"
    );
    assert!(
        !pierd.docker_ok(&["images", "-q", &base]).trim().is_empty(),
        "the base is stored"
    );
    // `--pull` asks the registry again even though the store has it.
    let again = build_ok(
        &pierd,
        &[
            "--pull",
            "-t",
            "from-registry",
            ctx.path().to_str().expect("utf8"),
        ],
    );
    assert!(
        again.contains("Image is up to date")
            || again.contains("Digest:")
            || again.contains("Pulling from"),
        "{again}"
    );
    // A base the registry lacks: the registry's answer, and nothing built.
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {}/nothing/here:1\nRUN true\n", registry.host()),
    );
    let out = build(&pierd, &[ctx.path().to_str().expect("utf8")]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("not found") || out.stderr.contains("unknown"),
        "{out:?}"
    );
}

#[test]
fn modern_syntax_heredocs_and_run_mounts_work_through_the_classic_endpoint() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    write(ctx.path(), "input/data.txt", "from the context\n");
    write(
        ctx.path(),
        "Dockerfile",
        r#"# syntax=docker/dockerfile:1
FROM busybox
ARG NAME=pier
RUN <<EOF
echo "lone $NAME" > /lone
EOF
RUN cat > /fed <<'END'
kept $NAME as written
END
RUN <<EOF
#!/bin/sh
echo "script $0" > /script
EOF
COPY <<EOF /etc/greeting
hello ${NAME}
EOF
COPY --chmod=750 <<'EOF' /usr/local/bin/tool
#!/bin/sh
echo "$1"
EOF
RUN --mount=type=bind,source=input,target=/in cat /in/data.txt > /from-bind
RUN --mount=type=cache,target=/cache,id=counter sh -c 'echo x >> /cache/count; wc -l < /cache/count > /cache-seen'
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && test -f /scratch/t && mount | grep -q " /scratch type tmpfs"'
RUN --mount=type=secret,id=optional sh -c 'test ! -e /run/secrets/optional'
"#,
    );
    let dir = ctx.path().to_str().expect("utf8");
    build_ok(&pierd, &["-t", "modern", dir]);
    let show = |cmd: &str| pierd.docker_ok(&["run", "--rm", "modern", "sh", "-c", cmd]);
    assert_eq!(show("cat /lone"), "lone pier\n");
    assert_eq!(show("cat /fed"), "kept $NAME as written\n");
    assert_eq!(show("cat /script"), "script /dev/pipes/EOF\n");
    assert_eq!(show("cat /etc/greeting"), "hello pier\n");
    assert_eq!(show("stat -c %a /usr/local/bin/tool; tool hi"), "750\nhi\n");
    assert_eq!(show("cat /from-bind"), "from the context\n");
    assert_eq!(show("cat /cache-seen"), "1\n");
    // Mount points are not in the layers; the cache mount's files neither.
    assert_eq!(
        show("ls -d /in /cache /scratch 2>&1 | grep -c 'No such file'"),
        "3\n"
    );
    // The cache mount outlives the build: a --no-cache rebuild sees the count go up.
    build_ok(&pierd, &["--no-cache", "-t", "modern", dir]);
    assert_eq!(show("cat /cache-seen"), "2\n");
    // A required secret the classic endpoint cannot carry fails the step, naming it.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=token,required=true cat /run/secrets/token\n",
    );
    let out = build(&pierd, &[dir]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("secret token not found"), "{out:?}");
    // A bind mount's files are in the step's cache key: change one, the step reruns.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=bind,source=input,target=/in cat /in/data.txt > /copied\n",
    );
    build_ok(&pierd, &["-t", "bound", dir]);
    let again = build_ok(&pierd, &["-t", "bound", dir]);
    assert!(again.contains("Using cache"), "{again}");
    write(ctx.path(), "input/data.txt", "changed\n");
    let changed = build_ok(&pierd, &["-t", "bound", dir]);
    assert!(!changed.contains("Using cache"), "{changed}");
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "bound", "cat", "/copied"]),
        "changed\n"
    );
}

#[test]
fn the_build_cache_shows_in_system_df_and_builder_prune_empties_it() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    write(ctx.path(), "Dockerfile", "FROM busybox\nRUN --mount=type=cache,target=/c echo x > /c/x && head -c 100000 /dev/zero > /blob\nCMD [\"true\"]\n");
    let dir = ctx.path().to_str().expect("utf8");
    build_ok(&pierd, &["-t", "cached", dir]);
    let df = pierd.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    let count = df
        .lines()
        .find_map(|l| l.strip_prefix("Build Cache "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(count >= 3, "{df}");
    let verbose = pierd.docker_ok(&["system", "df", "-v"]);
    assert!(
        verbose.contains("exec.cachemount") && verbose.contains("regular"),
        "{verbose}"
    );
    // An `until` in the future keeps nothing back; keep-storage is refused.
    let refused = pierd.docker(&["builder", "prune", "-f", "--keep-storage", "1mb"]);
    assert_ne!(refused.code, Some(0), "{refused:?}");
    let pruned = pierd.docker_ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let df = pierd.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Build Cache 0"), "{df}");
    // The image stays, and a rebuild runs every step again.
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "cached", "wc", "-c", "/blob"]),
        "100000 /blob\n"
    );
    let again = build_ok(&pierd, &["-t", "cached", dir]);
    assert!(!again.contains("Using cache"), "{again}");
}

#[test]
fn source_date_epoch_makes_two_clean_builds_give_the_same_image() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    // A RUN writes a file (its mtime the build's time) and a COPY copies one whose
    // mtime changes between the builds: both are clamped to the epoch.
    write(ctx.path(), "Dockerfile", "FROM busybox\nCOPY app/ /app/\nRUN echo made > /made\nENV MODE=prod\nLABEL org.example=1\nWORKDIR /app\nCMD [\"cat\", \"/app/a\"]\n");
    write(ctx.path(), "app/a", "a\n");
    write(ctx.path(), "app/b/c", "c\n");
    let dir = ctx.path().to_str().expect("utf8");
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let id = |tag: &str| inspect(&pierd, tag)["Id"].as_str().expect("id").to_string();
    build_ok(
        &pierd,
        &[&["--no-cache", "-t", "r1"][..], &epoch[..], &[dir][..]].concat(),
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    fs::File::options()
        .write(true)
        .open(ctx.path().join("app/a"))
        .and_then(|f| f.set_modified(later))
        .expect("touch");
    build_ok(
        &pierd,
        &[&["--no-cache", "-t", "r2"][..], &epoch[..], &[dir][..]].concat(),
    );
    assert_eq!(id("r1"), id("r2"));
    assert_eq!(inspect(&pierd, "r1")["Created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "r2", "stat", "-c", "%Y", "/made", "/app/a"]),
        "1700000000\n1700000000\n"
    );
    // Without it, each build has its own time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build_ok(&pierd, &["--no-cache", "-t", "r3", dir]);
    assert_ne!(id("r3"), id("r1"));
    // The epoch is part of each step's cache key: after the build without it, a cached
    // build with it reuses r1's steps, never r3's.
    let cached = build_ok(
        &pierd,
        &[&["-t", "r4"][..], &epoch[..], &[dir][..]].concat(),
    );
    assert_eq!(id("r4"), id("r1"), "{cached}");
}

/// One Dockerfile of the corpus: its text and its context files (path, contents).
struct Case {
    name: &'static str,
    dockerfile: &'static str,
    files: &'static [(&'static str, &'static str)],
}

/// Dockerfiles the classic builder takes, each exercising a corner: built by dockerd
/// and by pierd, the configs and the files under /t must match.
const CORPUS: &[Case] = &[
    Case { name: "continuations", dockerfile: "FROM busybox\nRUN mkdir /t && \\\n    echo one > /t/a && \\\n\n    echo two >> /t/a\nENV A=1 \\\n    B=2\n", files: &[] },
    Case { name: "escape-backtick", dockerfile: "# escape=`\nFROM busybox\nRUN mkdir /t && `\n    echo 'back\\slash' > /t/a\nENV P=C:\\dir\n", files: &[] },
    Case { name: "env-expansion", dockerfile: "FROM busybox\nENV BASE=/t NAME=x\nENV FULL=${BASE}/${NAME}.txt DEF=${UNSET:-dflt} ALT=${NAME:+set} ESC=\\$BASE\nRUN mkdir -p $BASE && echo \"$FULL $DEF $ALT $ESC\" > $FULL\nWORKDIR ${BASE}/sub\nLABEL path=${FULL} \"quoted key\"=\"v a l\"\n", files: &[] },
    Case { name: "arg-scoping", dockerfile: "ARG TAG=latest\nARG UNUSED_GLOBAL=g\nFROM busybox:${TAG}\nARG TAG\nARG LOCAL=default\nARG LATE\nENV SEEN_TAG=$TAG SEEN_LOCAL=$LOCAL SEEN_GLOBAL=${UNUSED_GLOBAL:-none}\nRUN mkdir /t && echo \"$TAG $LOCAL $LATE\" > /t/args\n", files: &[] },
    Case { name: "env-overrides-arg", dockerfile: "FROM busybox\nARG V=from-arg\nENV V=from-env\nRUN mkdir /t && echo $V > /t/v\n", files: &[] },
    Case { name: "onbuild", dockerfile: "FROM busybox\nONBUILD RUN echo triggered > /t-trigger\nONBUILD ENV FROM_TRIGGER=1\nRUN mkdir /t\n", files: &[] },
    Case { name: "copy-forms", dockerfile: "FROM busybox\nCOPY a.txt /t/single\nCOPY a.txt b.txt /t/multi/\nCOPY dir /t/dircontents/\nCOPY [\"sp ace.txt\", \"/t/json form/\"]\nCOPY *.md /t/glob/\nWORKDIR /t/rel\nCOPY a.txt .\nCOPY a.txt ./renamed\n", files: &[("a.txt", "a\n"), ("b.txt", "b\n"), ("dir/x", "x\n"), ("dir/y/z", "z\n"), ("sp ace.txt", "s\n"), ("r1.md", "1\n"), ("r2.md", "2\n")] },
    Case { name: "copy-chown", dockerfile: "FROM busybox\nRUN echo 'svc:x:1234:4321::/home/svc:/bin/sh' >> /etc/passwd && echo 'svcgrp:x:4321:' >> /etc/group && echo 'svc:x:4444:' >> /etc/group\nCOPY --chown=svc:svcgrp a.txt /t/named\nCOPY --chown=55:66 dir /t/numeric/\nCOPY --chown=svc dir /t/useronly/\nCOPY --chown=77 a.txt /t/uidonly\n", files: &[("a.txt", "a\n"), ("dir/x", "x\n")] },
    Case { name: "whiteouts", dockerfile: "FROM busybox\nRUN mkdir -p /t/keep /t/gone && touch /t/keep/f /t/gone/f /t/file\nRUN rm -rf /t/gone /t/file && touch /t/keep/new\nRUN rm /bin/yes\n", files: &[] },
    Case { name: "links-in-context", dockerfile: "FROM busybox\nCOPY tree /t/tree/\n", files: &[("tree/real", "r\n"), ("tree/@link", "real"), ("tree/sub/deep", "d\n")] },
    Case { name: "unicode", dockerfile: "FROM busybox\nCOPY ünïcødé /t/ünïcødé/\nENV GRÜSSE=hällo\nLABEL 名前=値\n", files: &[("ünïcødé/файл.txt", "ф\n"), ("ünïcødé/日本.txt", "日\n")] },
    Case { name: "user-and-workdir", dockerfile: "FROM busybox\nRUN mkdir /t && chmod 777 /t\nUSER 1001:1002\nWORKDIR /t/made/by/workdir\nRUN id > /t/id-numeric\nUSER nobody\nRUN id > /t/id-named\n", files: &[] },
    Case { name: "shell-and-cmd", dockerfile: "FROM busybox\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN mkdir /t && echo $0 > /t/shell\nCMD echo shell form\nENTRYPOINT [\"/bin/echo\"]\n", files: &[] },
    Case { name: "cmd-after-entrypoint", dockerfile: "FROM busybox\nCMD [\"base\"]\nENTRYPOINT [\"/bin/echo\"]\nCMD [\"kept\"]\nRUN mkdir /t\n", files: &[] },
    Case { name: "metadata", dockerfile: "FROM busybox\nMAINTAINER someone <s@example.com>\nEXPOSE 80 8000-8002/tcp 53/udp\nVOLUME [\"/t/v1\", \"/t/v2\"]\nVOLUME /t/v3 /t/v4\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=4 CMD [\"true\"]\nHEALTHCHECK NONE\nRUN mkdir -p /t\n", files: &[] },
    Case { name: "volume-discards", dockerfile: "FROM busybox\nRUN mkdir -p /t/data && echo before > /t/data/f\nVOLUME /t/data\nRUN echo after > /t/data/f && echo outside > /t/outside\n", files: &[] },
    Case { name: "add-local-tar", dockerfile: "FROM busybox\nADD plain.txt /t/plain.txt\nADD dir /t/added/\n", files: &[("plain.txt", "p\n"), ("dir/q", "q\n")] },
    Case { name: "dockerignore", dockerfile: "FROM busybox\nCOPY . /t/ctx/\n", files: &[(".dockerignore", "*.log\nbuild/\n!build/keep.txt\n**/secret*\n"), ("app.c", "c\n"), ("x.log", "l\n"), ("build/out.o", "o\n"), ("build/keep.txt", "k\n"), ("deep/er/secret.key", "s\n"), ("deep/er/ok", "ok\n")] },
    Case { name: "multi-stage-copy-from", dockerfile: "FROM busybox AS one\nRUN mkdir /o && echo 1 > /o/f && ln -s f /o/l\nFROM busybox AS two\nRUN mkdir /o && echo 2 > /o/g\nFROM busybox\nCOPY --from=one /o /t/one/\nCOPY --from=1 /o/g /t/two\nCOPY --from=busybox /bin/busybox /t/bb\n", files: &[] },
    Case { name: "empty-scratch", dockerfile: "FROM scratch\nENV ONLY=config\nCMD [\"nothing\"]\n", files: &[] },
];

/// The files under /t of an image, with modes, owners, sizes and link targets (no
/// times), or the config alone for an image without a shell.
fn tree_of(e: &dyn Engine, image: &str) -> String {
    let script = "test -d /t || exit 0; cd /t && find . | sort | while read -r f; do \
                  printf '%s %s\\n' \"$f\" \"$(stat -c '%A %u %g %s' \"$f\" | sed 's/^d[^ ]* [^ ]* [^ ]* [0-9]*$/&/')\"; \
                  [ -L \"$f\" ] && readlink \"$f\"; [ -f \"$f\" ] && [ ! -L \"$f\" ] && cat \"$f\"; done; true";
    let has_shell = inspect(e, image)["RootFS"]["Layers"]
        .as_array()
        .is_some_and(|l| !l.is_empty());
    if !has_shell {
        return String::new();
    }
    e.docker_ok(&[
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        image,
        "-c",
        script,
    ])
    .lines()
    // Directory sizes are the filesystem's, not the image's.
    .map(|l| {
        if l.contains(" d") {
            l.rsplit_once(' ').map_or(l, |(a, _)| a).to_string()
        } else {
            l.to_string()
        }
    })
    .collect::<Vec<_>>()
    .join("\n")
}

/// A case's name, image config and files, on one engine.
type CaseResult = (String, Value, String);

#[test]
fn a_corpus_of_dockerfiles_builds_the_same_on_pierd_and_dockerd() {
    let mut seen: Vec<(String, Vec<CaseResult>)> = Vec::new();
    with_busybox_engines("build-corpus", |name, e, _| {
        let mut results = Vec::new();
        for case in CORPUS {
            let ctx = tempfile::tempdir().expect("ctx");
            write(ctx.path(), "Dockerfile", case.dockerfile);
            for (path, content) in case.files {
                match path.strip_prefix('@') {
                    _ if path.contains("/@") => {
                        let (dir, link) = path.split_once("/@").expect("link");
                        fs::create_dir_all(ctx.path().join(dir)).expect("mkdir");
                        std::os::unix::fs::symlink(content, ctx.path().join(dir).join(link))
                            .expect("symlink");
                    }
                    _ => write(ctx.path(), path, content),
                }
            }
            let tag = format!("corpus-{}", case.name);
            let out = build(e, &["-t", &tag, ctx.path().to_str().expect("utf8")]);
            assert_eq!(out.code, Some(0), "{name} {}: {out:?}", case.name);
            // A trigger runs when the image is a base.
            if case.name == "onbuild" {
                let child = tempfile::tempdir().expect("ctx");
                write(
                    child.path(),
                    "Dockerfile",
                    &format!("FROM {tag}\nRUN cp /t-trigger /t/\n"),
                );
                build_ok(e, &["-t", &tag, child.path().to_str().expect("utf8")]);
            }
            let mut config = config_of(e, &tag);
            config["Author"] = inspect(e, &tag)["Author"].clone();
            results.push((case.name.to_string(), config, tree_of(e, &tag)));
        }
        seen.push((name.to_string(), results));
    });
    if let [(_, dockerd), (_, pierd)] = &seen[..] {
        for ((name, d_config, d_tree), (_, p_config, p_tree)) in dockerd.iter().zip(pierd) {
            assert_eq!(p_config, d_config, "{name}: configs differ");
            assert_eq!(p_tree, d_tree, "{name}: files differ");
        }
    }
}

#[test]
fn docker_py_builds_through_pierd() {
    let probe = Command::new("python3")
        .args(["-c", "import docker"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        pier_testsupport::skip(
            "docker-py build",
            "python3 cannot import docker (pip install docker)",
        );
        return;
    }
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    write(ctx.path(), "Dockerfile", "FROM busybox\nARG WHO\nCOPY hello.txt /\nRUN echo \"by $WHO\" >> /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n");
    write(ctx.path(), "hello.txt", "hello\n");
    let script = r#"
import sys, docker
client = docker.DockerClient(base_url="unix://" + sys.argv[1], version="1.41")
image, logs = client.images.build(path=sys.argv[2], tag="py-built:1", buildargs={"WHO": "docker-py"}, rm=True)
steps = [l["stream"] for l in logs if "stream" in l and l["stream"].startswith("Step ")]
print(image.id)
print(len(steps))
print(client.containers.run("py-built:1", remove=True).decode(), end="")
try:
    client.images.build(path=sys.argv[2], dockerfile="Missing.Dockerfile")
except docker.errors.APIError as e:
    print("error:", e.explanation)
"#;
    let out = pier_testsupport::run(
        Command::new("python3")
            .args(["-c", script])
            .arg(pierd.socket())
            .arg(ctx.path()),
        common::CMD_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("sha256:"), "{out:?}");
    assert_eq!(lines[1], "5", "{out:?}");
    assert_eq!(lines[2..4], ["hello", "by docker-py"], "{out:?}");
    assert!(
        lines[4].contains("Cannot locate specified Dockerfile: Missing.Dockerfile"),
        "{out:?}"
    );
}

#[test]
fn add_fetches_urls_and_checks_their_checksum() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    // A web server on loopback, serving one file.
    let www = tempfile::tempdir().expect("www");
    write(www.path(), "files/tool.sh", "#!/bin/sh\necho fetched\n");
    let server = HttpServer::start(www.path());
    let port = server.port;
    let url = format!("http://127.0.0.1:{port}/files/tool.sh");
    // sha256 of the file's contents.
    let sum = "sha256:df3f283be34a7614226644e1a725254933d9e4874dfb69ee634b72248bc6a029";
    let ctx = tempfile::tempdir().expect("ctx");
    let dir = ctx.path().to_str().expect("utf8");
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD --checksum={sum} {url} /opt/\nADD {url} /opt/renamed.sh\n"),
    );
    build_ok(&pierd, &["-t", "fetched", dir]);
    let listing = pierd.docker_ok(&[
        "run",
        "--rm",
        "fetched",
        "sh",
        "-c",
        "stat -c '%n %a %u' /opt/tool.sh /opt/renamed.sh; sh /opt/tool.sh",
    ]);
    assert_eq!(
        listing,
        "/opt/tool.sh 600 0\n/opt/renamed.sh 600 0\nfetched\n"
    );
    // A wrong checksum fails the step and names both digests.
    let wrong = format!("sha256:{}", "0".repeat(64));
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD --checksum={wrong} {url} /opt/\n"),
    );
    let out = build(&pierd, &[dir]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("digest mismatch") && out.stderr.contains(sum),
        "{out:?}"
    );
    // COPY takes no URL; a missing file is the server's 404.
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM busybox\nCOPY {url} /opt/\n"),
    );
    let out = build(&pierd, &[dir]);
    assert!(
        out.stderr.contains("source can't be a URL for COPY"),
        "{out:?}"
    );
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD http://127.0.0.1:{port}/missing /opt/\n"),
    );
    let out = build(&pierd, &[dir]);
    assert!(out.stderr.contains("404"), "{out:?}");
}

#[test]
fn explain_names_why_each_step_missed_the_cache() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nARG LEVEL=1\nCOPY src/ /src/\nRUN cat /src/* > /all\nENV DONE=1\n",
    );
    write(ctx.path(), "src/a.c", "a\n");
    write(ctx.path(), "src/b.c", "b\n");
    let dir = ctx.path().to_str().expect("utf8");
    // The extension through the API itself: the context as a tar, with curl.
    let socket = pierd.socket();
    let explain = |query: &str| -> Vec<String> {
        let script = format!(
            "tar -C {dir} -c . | curl -sS --unix-socket {} -X POST -H 'Content-Type: application/x-tar' \
             --data-binary @- 'http://pier/build?t=explained&explain=1{query}'",
            socket.display()
        );
        let out = pier_testsupport::run(
            Command::new("sh").args(["-c", &script]),
            common::CMD_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(out.stdout.contains("Successfully built"), "{out:?}");
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["stream"].as_str().map(str::to_string))
            .filter_map(|l| {
                l.strip_prefix(" ---> Cache miss: ")
                    .map(|r| r.trim_end().to_string())
            })
            .collect()
    };
    let first = explain("");
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(
        first.iter().all(|r| r.starts_with("no earlier build")),
        "{first:?}"
    );
    assert!(
        explain("").is_empty(),
        "an unchanged rebuild misses nothing"
    );
    write(ctx.path(), "src/b.c", "changed\n");
    write(ctx.path(), "src/new.c", "n\n");
    let changed = explain("");
    assert_eq!(
        changed[0], "files changed: /src/b.c, /src/new.c (new)",
        "{changed:?}"
    );
    assert_eq!(
        changed[1..],
        ["the step before it changed", "the step before it changed"],
        "{changed:?}"
    );
    let arg = explain("&buildargs=%7B%22LEVEL%22%3A%222%22%7D");
    assert!(
        arg[0].contains("build args") || arg[0].contains("instruction"),
        "{arg:?}"
    );
    let none = explain("&nocache=1");
    assert!(none.iter().all(|r| r == "--no-cache"), "{none:?}");
}

#[test]
fn remote_contexts_are_fetched_tarballs_and_lone_dockerfiles() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let www = tempfile::tempdir().expect("www");
    let ctx = www.path().join("ctx");
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n",
    );
    write(&ctx, "msg", "from a tarball\n");
    let tarball = www.path().join("ctx.tar.gz");
    let tarred = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .arg("-czf")
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("tar");
    assert!(tarred.success());
    write(
        www.path(),
        "Lone.Dockerfile",
        "FROM busybox\nRUN echo lone > /msg\nCMD [\"cat\", \"/msg\"]\n",
    );
    let server = HttpServer::start(www.path());
    let socket = pierd.socket();
    let post = |query: &str| -> String {
        let out = pier_testsupport::run(
            Command::new("curl").args([
                "-sS",
                "--unix-socket",
                socket.to_str().expect("utf8"),
                "-X",
                "POST",
                &format!("http://pier/build?{query}"),
            ]),
            common::CMD_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        out.stdout
    };
    let base = format!("http://127.0.0.1:{}", server.port);
    let answer = post(&format!("t=remote1&remote={base}/ctx.tar.gz"));
    assert!(
        answer.contains("Successfully tagged remote1:latest"),
        "{answer}"
    );
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "remote1"]),
        "from a tarball\n"
    );
    let answer = post(&format!("t=remote2&remote={base}/Lone.Dockerfile"));
    assert!(
        answer.contains("Successfully tagged remote2:latest"),
        "{answer}"
    );
    assert_eq!(pierd.docker_ok(&["run", "--rm", "remote2"]), "lone\n");
    // Git repositories are refused by name; a missing URL is the server's 404.
    let answer = post("remote=https%3A%2F%2Fexample.invalid%2Frepo.git");
    assert!(
        answer.contains("git build contexts are not supported"),
        "{answer}"
    );
    let answer = post(&format!("remote={base}/missing.tar"));
    assert!(answer.contains("404"), "{answer}");
}

#[test]
fn a_check_directive_with_error_true_fails_on_a_violation() {
    let Some((pierd, _work)) = common::pierd_with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    let dir = ctx.path().to_str().expect("utf8");
    // MAINTAINER is deprecated (BuildKit's MaintainerDeprecated check).
    write(
        ctx.path(),
        "Dockerfile",
        "# check=error=true\nFROM busybox\nMAINTAINER someone\n",
    );
    let out = build(&pierd, &[dir]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("lint violation found for rules: MaintainerDeprecated"),
        "{out:?}"
    );
    // Skipped, or without error=true, it builds.
    write(
        ctx.path(),
        "Dockerfile",
        "# check=skip=MaintainerDeprecated;error=true\nFROM busybox\nMAINTAINER someone\n",
    );
    build_ok(&pierd, &[dir]);
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nMAINTAINER someone\n",
    );
    build_ok(&pierd, &[dir]);
}
