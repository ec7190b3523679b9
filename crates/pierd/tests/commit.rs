//! `docker commit`, `docker system df` and `docker system prune` against pierd, with
//! the real docker CLI; the commit script is also run against a real dockerd and the
//! outputs compared.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use common::{busybox_rootfs_tar, pierd_with_busybox, Engine, Pierd};
use pier_testsupport::{DockerdOptions, IsolatedDockerd};
use serde_json::Value;

/// One raw HTTP request on pierd's socket: status and body.
fn api(pierd: &Pierd, method: &str, path: &str) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(pierd.socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: pierd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let status: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// The entry names of the top layer of `image`, from `docker save`.
fn top_layer_entries(engine: &dyn Engine, image: &str, dir: &Path) -> Vec<String> {
    let archive = dir.join("saved.tar");
    let archive_arg = archive.display().to_string();
    engine.docker_ok(&["save", "-o", &archive_arg, image]);
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).expect("open"));
    for entry in tar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        files.insert(name, data);
    }
    let manifest = json(&String::from_utf8_lossy(&files["manifest.json"]));
    let top = manifest[0]["Layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(Value::as_str)
        .expect("layers")
        .to_string();
    let mut layer = tar::Archive::new(files[&top].as_slice());
    let mut names: Vec<String> = layer
        .entries()
        .expect("layer entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// A container that made, removed and added: `/newfile`, `/etc/group` (from the
/// image), `/d`.
const CHANGES: &str = "echo hi > /newfile; rm /etc/group; mkdir /d";

#[test]
fn commit_makes_an_image_of_the_changes_that_runs() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["run", "--name", "c1", "busybox", "sh", "-c", CHANGES]);
    let id = pierd.docker_ok(&[
        "commit",
        "-a",
        "me",
        "-m",
        "my comment",
        "-c",
        "ENV A=1",
        "-c",
        r#"CMD ["cat", "/newfile"]"#,
        "-c",
        "LABEL x=y",
        "c1",
        "snap:1",
    ]);
    let id = id.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "commit prints the image ID: {id:?}"
    );
    assert_eq!(
        pierd
            .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "snap:1"])
            .trim(),
        id
    );

    // The image runs, with the new CMD and the container's changes.
    assert_eq!(pierd.docker_ok(&["run", "--rm", "snap:1"]), "hi\n");
    let probe = "test -e /etc/group && echo group || echo no-group; test -d /d && echo d; true";
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "snap:1", "sh", "-c", probe]),
        "no-group\nd\n"
    );
    // The base image is untouched.
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "busybox", "sh", "-c", probe]),
        "group\n"
    );

    let config = pierd.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Env}}|{{json .Config.Cmd}}|{{json .Config.Labels}}|{{.Author}}|{{.Comment}}|{{len .RootFS.Layers}}",
        "snap:1",
    ]);
    assert_eq!(
        config.trim(),
        r#"["A=1"]|["cat","/newfile"]|{"x":"y"}|me|my comment|2"#
    );
    let history = pierd.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "snap:1",
    ]);
    assert_eq!(
        history,
        format!("sh -c {CHANGES}|my comment\n|Imported from -\n")
    );

    // The layer: the changes and a whiteout, not the mount points pierd made for
    // /etc/hostname, /etc/hosts and /etc/resolv.conf.
    let entries = top_layer_entries(&pierd, "snap:1", work.path());
    assert_eq!(
        entries,
        ["d", "etc", "etc/.wh.group", "newfile"],
        "{entries:?}"
    );

    // Without a name the image is dangling; with a tag of its own it is that tag.
    let dangling = pierd.docker_ok(&["commit", "c1"]);
    let listed = pierd.docker_ok(&[
        "images",
        "--filter",
        "dangling=true",
        "--no-trunc",
        "--format",
        "{{.ID}}",
    ]);
    assert_eq!(listed.trim(), dangling.trim());
    pierd.docker_ok(&["commit", "c1", "localhost:5000/a/snap:2"]);
    assert_eq!(
        pierd
            .docker_ok(&[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "localhost:5000/a/snap"
            ])
            .trim(),
        "localhost:5000/a/snap:2"
    );
}

#[test]
fn commit_without_changes_adds_no_layer() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["run", "--name", "quiet", "busybox", "true"]);
    pierd.docker_ok(&["commit", "-m", "nothing", "quiet", "same:1"]);
    let layers = |image: &str| {
        pierd
            .docker_ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", image])
            .trim()
            .to_string()
    };
    assert_eq!(layers("same:1"), layers("busybox"));
    let history = pierd.docker_ok(&[
        "history",
        "--format",
        "{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
        "same:1",
    ]);
    let first = history.lines().next().unwrap_or_default();
    assert_eq!(first, "true|0B|nothing", "{history}");
    assert_eq!(history.lines().count(), 2, "{history}");
    // The config still says what the container ran.
    assert_eq!(
        pierd
            .docker_ok(&["image", "inspect", "-f", "{{json .Config.Cmd}}", "same:1"])
            .trim(),
        r#"["true"]"#
    );
}

#[test]
fn commit_of_a_running_container_pauses_it_and_leaves_it_running() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo x > /f; sleep 300",
    ]);
    assert!(common::wait_until(Duration::from_secs(10), || {
        pierd.docker(&["exec", "live", "cat", "/f"]).stdout == "x\n"
    }));
    pierd.docker_ok(&["commit", "live", "live:1"]);
    pierd.docker_ok(&["commit", "--pause=false", "live", "live:2"]);
    let state = pierd.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Paused}}",
        "live",
    ]);
    assert_eq!(state.trim(), "running false");
    for image in ["live:1", "live:2"] {
        assert_eq!(pierd.docker_ok(&["run", "--rm", image, "cat", "/f"]), "x\n");
    }
    // The container still works after being paused and resumed.
    assert_eq!(pierd.docker_ok(&["exec", "live", "echo", "ok"]), "ok\n");
}

#[test]
fn commit_errors_are_dockers() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["run", "--name", "c1", "busybox", "true"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["commit", "nosuch", "x"],
            "Error response from daemon: No such container: nosuch",
        ),
        (
            &["commit", "-c", "RUN echo", "c1"],
            "Error response from daemon: run is not a valid change command",
        ),
        (
            &["commit", "-c", "STOPSIGNAL SIGKILL", "c1"],
            "Error response from daemon: stopsignal is not a valid change command",
        ),
        (
            &["commit", "-c", "ENV A", "c1"],
            "Error response from daemon: ENV must have two arguments",
        ),
        (
            &["commit", "-c", "WORKDIR", "c1"],
            "Error response from daemon: WORKDIR requires exactly one argument",
        ),
        (
            &["commit", "c1", "Bad"],
            "invalid reference format: repository name (library/Bad) must be lowercase",
        ),
    ];
    for (args, message) in cases {
        let out = pierd.docker(args);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stderr.trim(), *message, "{args:?}");
    }
    // Nothing was made by the failed commits.
    assert_eq!(
        pierd.docker_ok(&["images", "-q"]).lines().count(),
        1,
        "only busybox"
    );

    // The API itself: statuses and messages.
    let (status, body) = api(&pierd, "POST", "/v1.50/commit?container=nosuch");
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body)["message"], "No such container: nosuch");
    let (status, body) = api(&pierd, "POST", "/v1.50/commit?container=c1&repo=Bad");
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        json(&body)["message"],
        "invalid reference format: repository name (library/Bad) must be lowercase"
    );
    let zeros = "0".repeat(64);
    let (status, body) = api(
        &pierd,
        "POST",
        &format!("/v1.50/commit?container=c1&repo=a@sha256:{zeros}"),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = api(
        &pierd,
        "POST",
        "/v1.50/commit?container=c1&changes=bogus%20x",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        json(&body)["message"],
        "bogus is not a valid change command"
    );
    let (status, body) = api(
        &pierd,
        "POST",
        "/v1.50/commit?container=c1&repo=api&tag=t1&comment=c&author=a&changes=CMD%20%5B%22x%22%5D",
    );
    assert_eq!(status, 201, "{body}");
    let id = json(&body)["Id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("sha256:"), "{body}");
    assert_eq!(
        pierd
            .docker_ok(&[
                "image",
                "inspect",
                "-f",
                "{{.Id}} {{json .Config.Cmd}} {{.Author}}",
                "api:t1"
            ])
            .trim(),
        format!(r#"{id} ["x"] a"#)
    );
}

/// Sum of the committed snapshots' sizes in the snapshotter's metadata: what the
/// store holds as layers.
fn stored_layers_size(pierd: &Pierd) -> u64 {
    let path = pierd.data_root().join("image/snapshots/metadata.json");
    let meta = json(&std::fs::read_to_string(&path).expect("snapshot metadata"));
    meta["snapshots"]
        .as_object()
        .expect("snapshots")
        .values()
        .filter(|s| s["kind"] == "committed")
        .map(|s| s["size"].as_u64().expect("size"))
        .sum()
}

#[test]
fn system_df_reports_what_the_store_holds() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "--name",
        "big",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1024",
        "count=300",
    ]);
    pierd.docker_ok(&["run", "--name", "idle", "busybox", "true"]);
    pierd.docker_ok(&["commit", "big", "big:1"]);
    pierd.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "300"]);

    let (status, body) = api(&pierd, "GET", "/v1.50/system/df");
    assert_eq!(status, 200, "{body}");
    let df = json(&body);
    assert_eq!(df["LayersSize"].as_u64(), Some(stored_layers_size(&pierd)));
    assert!(df["LayersSize"].as_u64().unwrap_or(0) > 300 * 1024, "{df}");
    assert_eq!(df["Volumes"], serde_json::json!([]));
    assert_eq!(df["BuildCache"], serde_json::json!([]));

    let images = df["Images"].as_array().expect("images");
    assert_eq!(images.len(), 2, "{df}");
    let image = |tag: &str| {
        images
            .iter()
            .find(|i| i["RepoTags"][0] == tag)
            .unwrap_or_else(|| panic!("{tag} in {df}"))
    };
    let busybox = image("busybox:latest");
    let big = image("big:1");
    assert_eq!(busybox["Containers"], 3);
    assert_eq!(big["Containers"], 0);
    // big:1 is busybox's layer plus ~300 KiB; the busybox layer is shared.
    let (bs, gs) = (
        busybox["Size"].as_i64().unwrap_or(0),
        big["Size"].as_i64().unwrap_or(0),
    );
    assert!(
        gs - bs >= 300 * 1024 && gs - bs < 300 * 1024 + 64 * 1024,
        "{df}"
    );
    assert_eq!(busybox["SharedSize"].as_i64(), Some(bs));
    assert_eq!(big["SharedSize"].as_i64(), Some(bs));
    assert_eq!(
        df["LayersSize"].as_i64(),
        Some(gs),
        "two images, one shared layer: {df}"
    );

    let containers = df["Containers"].as_array().expect("containers");
    let container = |name: &str| {
        containers
            .iter()
            .find(|c| c["Names"][0] == format!("/{name}"))
            .unwrap_or_else(|| panic!("{name} in {df}"))
    };
    let size_rw = |name: &str| container(name)["SizeRw"].as_i64().unwrap_or(-1);
    assert!(
        size_rw("big") >= 300 * 1024 && size_rw("big") < 300 * 1024 + 64 * 1024,
        "{df}"
    );
    assert_eq!(size_rw("idle"), 0, "nothing written: {df}");
    assert_eq!(size_rw("up"), 0, "nothing written: {df}");
    assert_eq!(
        container("big")["SizeRootFs"].as_i64(),
        Some(size_rw("big") + bs)
    );
    assert_eq!(container("up")["State"], "running");

    // `type=` (API 1.42 and up) narrows the answer; unknown types are refused.
    let (_, body) = api(&pierd, "GET", "/v1.50/system/df?type=container");
    let only = json(&body);
    assert_eq!(only["Images"], Value::Null, "{only}");
    assert_eq!(only["Containers"].as_array().map(Vec::len), Some(3));
    let (status, body) = api(&pierd, "GET", "/v1.50/system/df?type=bogus");
    assert_eq!(status, 400, "{body}");

    // The CLI's summary table counts the same things.
    let table = pierd.docker_ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}",
    ]);
    assert_eq!(
        table,
        "Images|2|1\nContainers|3|1\nLocal Volumes|0|0\nBuild Cache|0|0\n"
    );
    let verbose = pierd.docker_ok(&["system", "df", "-v"]);
    for needle in ["big ", "busybox ", "idle", " up"] {
        assert!(verbose.contains(needle), "{needle:?} in:\n{verbose}");
    }
    assert!(
        verbose.contains("Exited (0)") && verbose.contains("Up "),
        "{verbose}"
    );
}

#[test]
fn system_prune_removes_stopped_containers_and_dangling_images_only() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "300"]);
    pierd.docker_ok(&[
        "run",
        "--name",
        "stopped",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /a",
    ]);
    pierd.docker_ok(&["create", "--name", "fresh", "busybox"]);
    let kept = pierd.docker_ok(&["commit", "stopped", "keep:1"]);
    let dangling = pierd.docker_ok(&["commit", "-c", "ENV X=1", "stopped"]);
    let stopped = pierd.docker_ok(&["inspect", "-f", "{{.Id}}", "stopped"]);
    let fresh = pierd.docker_ok(&["inspect", "-f", "{{.Id}}", "fresh"]);

    let out = pierd.docker_ok(&["system", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(
        out.contains(stopped.trim()) && out.contains(fresh.trim()),
        "{out}"
    );
    assert!(
        out.contains(&format!("deleted: {}", dangling.trim())),
        "{out}"
    );
    assert!(!out.contains(kept.trim()), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(
        pierd.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "up\n"
    );
    let mut images: Vec<String> = pierd
        .docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .map(str::to_string)
        .collect();
    images.sort();
    assert_eq!(images, ["busybox:latest", "keep:1"]);
    // What stayed still works.
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "keep:1", "cat", "/a"]),
        "1\n"
    );

    // -a: every image no container uses; busybox is in use by `up`.
    let out = pierd.docker_ok(&["system", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: keep:1"), "{out}");
    assert_eq!(
        pierd.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest\n"
    );
    assert_eq!(
        pierd
            .docker_ok(&["inspect", "-f", "{{.State.Status}}", "up"])
            .trim(),
        "running"
    );
    assert_eq!(
        pierd.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]),
        "ok\n"
    );
    // With --volumes too; nothing of the kind to delete.
    let out = pierd.docker_ok(&["system", "prune", "-f", "--volumes"]);
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");

    // Prunes with nothing to delete answer as dockerd: no networks is null, no volumes
    // an empty list, no build cache null.
    for (path, want) in [
        ("/v1.50/networks/prune", r#"{"NetworksDeleted":null}"#),
        (
            "/v1.50/volumes/prune",
            r#"{"SpaceReclaimed":0,"VolumesDeleted":[]}"#,
        ),
        (
            "/v1.50/build/prune",
            r#"{"CachesDeleted":null,"SpaceReclaimed":0}"#,
        ),
    ] {
        let (status, body) = api(&pierd, "POST", path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(json(&body), json(want), "{path}");
    }
    let (status, _) = api(
        &pierd,
        "POST",
        "/v1.50/networks/prune?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
    );
    assert_eq!(status, 400);
}

/// `container prune`'s `until` and `label` filters and `SpaceReclaimed`.
#[test]
fn container_prune_filters_and_space() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["create", "--name", "aa", "--label", "keep=yes", "busybox"]);
    pierd.docker_ok(&["create", "--name", "bb", "--label", "other", "busybox"]);
    pierd.docker_ok(&[
        "run",
        "--name",
        "cc",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/f",
        "bs=1024",
        "count=100",
    ]);
    // until: all were created just now; none is older than an hour.
    let out = pierd.docker_ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(out.trim(), "Total reclaimed space: 0B");
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]).lines().count(), 3);
    // label: only the one with it.
    pierd.docker_ok(&["container", "prune", "-f", "--filter", "label=other"]);
    let mut names: Vec<String> = pierd
        .docker_ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(names, ["aa", "cc"]);
    // label!: all but the one with it; the space is c's writable layer.
    let (status, body) = api(
        &pierd,
        "POST",
        "/v1.50/containers/prune?filters=%7B%22label!%22%3A%5B%22keep%3Dyes%22%5D%7D",
    );
    assert_eq!(status, 200, "{body}");
    let report = json(&body);
    assert_eq!(
        report["ContainersDeleted"].as_array().map(Vec::len),
        Some(1)
    );
    let space = report["SpaceReclaimed"].as_u64().unwrap_or(0);
    assert!(
        (100 * 1024..100 * 1024 + 64 * 1024).contains(&space),
        "{report}"
    );
    assert_eq!(
        pierd.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "aa\n"
    );
}

/// The commit script against pierd and a real dockerd: the same outputs (sizes,
/// IDs and times aside).
#[test]
fn commit_same_as_real_dockerd() {
    if !pier_testsupport::require_tools("commit_same_as_real_dockerd", &["dockerd"]) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let Some(dockerd) =
        IsolatedDockerd::start_or_skip("commit_same_as_real_dockerd", DockerdOptions::default())
    else {
        return;
    };
    let pierd = Pierd::start();
    let script = |e: &dyn Engine| -> Vec<(String, Option<i32>, String, String)> {
        let mut steps = Vec::new();
        let mut run = |name: &str, args: &[&str]| {
            let out = e.docker(args);
            steps.push((name.to_string(), out.code, out.stdout, out.stderr));
        };
        let import =
            e.docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &rootfs);
        assert_eq!(import.code, Some(0), "{import:?}");
        run(
            "run",
            &["run", "--name", "c1", "busybox", "sh", "-c", CHANGES],
        );
        run(
            "commit",
            &[
                "commit",
                "-a",
                "me",
                "-m",
                "msg",
                "-c",
                "ENV A=1",
                "-c",
                "EXPOSE 80",
                "-c",
                "USER nobody",
                "-c",
                "WORKDIR /tmp",
                "-c",
                "VOLUME /data",
                "-c",
                r#"ENTRYPOINT ["cat"]"#,
                "-c",
                "LABEL x=y",
                "-c",
                "ONBUILD RUN x",
                "c1",
                "out:1",
            ],
        );
        run(
            "inspect",
            &[
                "image", "inspect", "-f",
                "{{json .Config.Env}} {{json .Config.Cmd}} {{json .Config.Entrypoint}} {{json .Config.ExposedPorts}} {{.Config.User}} {{.Config.WorkingDir}} {{json .Config.Volumes}} {{json .Config.Labels}} {{json .Config.OnBuild}} {{.Author}} {{.Comment}} {{len .RootFS.Layers}}",
                "out:1",
            ],
        );
        run(
            "history",
            &[
                "history",
                "--no-trunc",
                "--format",
                "{{.CreatedBy}}|{{.Comment}}",
                "out:1",
            ],
        );
        run(
            "run committed",
            &["run", "--rm", "-u", "0", "out:1", "/newfile"],
        );
        run(
            "deleted file",
            &[
                "run",
                "--rm",
                "--entrypoint",
                "ls",
                "out:1",
                "/etc/group",
                "/etc/passwd",
            ],
        );
        run(
            "commit -c CMD",
            &["commit", "-c", "CMD cat /newfile", "c1", "out:2"],
        );
        run(
            "inspect CMD",
            &[
                "image",
                "inspect",
                "-f",
                "{{json .Config.Cmd}} {{json .Config.Entrypoint}}",
                "out:2",
            ],
        );
        for (name, change) in [
            ("bad RUN", "RUN x"),
            ("bad STOPSIGNAL", "STOPSIGNAL 9"),
            ("bad ENV", "ENV A"),
            ("bad LABEL", "LABEL a"),
            ("bad USER", "USER"),
            ("bad EXPOSE", "EXPOSE"),
        ] {
            run(name, &["commit", "-c", change, "c1"]);
        }
        run("no such container", &["commit", "nosuch"]);
        run("bad name", &["commit", "c1", "Bad"]);
        steps
    };
    let pier = script(&pierd);
    let docker = script(&dockerd as &dyn Engine);
    let mut diffs = Vec::new();
    for (p, d) in pier.iter().zip(&docker) {
        let ids = |s: &str| -> String {
            s.split_whitespace()
                .map(|w| {
                    if w.starts_with("sha256:") {
                        "sha256:<ID>"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        if p.1 != d.1 || ids(&p.2) != ids(&d.2) || p.3.trim() != d.3.trim() {
            diffs.push(format!("step {:?}:\n  pierd  {p:?}\n  dockerd {d:?}", p.0));
        }
    }
    assert!(
        diffs.is_empty(),
        "pierd and dockerd differ:\n{}",
        diffs.join("\n")
    );
}
