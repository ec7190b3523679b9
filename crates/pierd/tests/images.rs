//! The image endpoints through the real docker CLI: a scripted scenario against
//! pierd, and the same script against a real (isolated) dockerd with the outputs
//! compared after normalizing IDs, sizes and times.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{busybox_rootfs_tar, run_with_stdin, Engine, Pierd, CMD_TIMEOUT};
use pier_testsupport::{wait_deadline, DockerdOptions, IsolatedDockerd, Out};

// ---------------------------------------------------------------------------------------
// Normalizing outputs

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `2.04MB`, `0B`, `4.175kB`.
fn is_size(s: &str) -> bool {
    let num = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[num.len()..];
    !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && matches!(unit, "B" | "kB" | "MB" | "GB")
}

/// One word: IDs and sizes become placeholders.
fn normalize_word(w: &str) -> String {
    if let Some(hex) = w.strip_prefix("sha256:") {
        if is_hex(hex, 64) {
            return "sha256:<ID>".into();
        }
    }
    if is_hex(w, 12) || is_hex(w, 64) {
        return "<ID>".into();
    }
    if is_size(w) {
        return "<SIZE>".into();
    }
    w.to_string()
}

/// One table cell or free-text line: times (`5 seconds ago`) and words normalized.
fn normalize_text(s: &str) -> String {
    let s = s.trim();
    if s.ends_with(" ago") {
        return "<TIME>".into();
    }
    s.split(' ')
        .map(normalize_word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A docker table: the header as is, every row's cells (split at 2+ spaces)
/// normalized, rows sorted (images created in the same second have no stable order).
fn normalize_table(out: &str) -> String {
    let mut lines = out.lines();
    let Some(header) = lines.next() else {
        return String::new();
    };
    let header = split_cells(header).join(" | ");
    let mut rows: Vec<String> = lines
        .map(|l| {
            split_cells(l)
                .iter()
                .map(|c| normalize_text(c))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    rows.sort();
    std::iter::once(header)
        .chain(rows)
        .collect::<Vec<_>>()
        .join("\n")
}

fn split_cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// Lines normalized and sorted.
fn normalize_lines(out: &str) -> String {
    let mut lines: Vec<String> = out.lines().map(normalize_text).collect();
    lines.sort();
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------
// The script

/// How a step's output is compared between pierd and dockerd.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Exit code, normalized stdout and stderr.
    All,
    /// Exit code and stdout only (stderr carries daemon-specific detail).
    Stdout,
    /// Only the exit code: the output legitimately differs (reason in the script).
    Code,
}

struct Step {
    name: String,
    compare: Compare,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    raw: String,
}

struct Transcript {
    steps: Vec<Step>,
}

impl Transcript {
    fn get(&self, name: &str) -> &Step {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step {name}"))
    }
}

struct Recorder<'a> {
    engine: &'a dyn Engine,
    steps: Vec<Step>,
}

impl Recorder<'_> {
    fn record(&mut self, name: &str, compare: Compare, out: Out, norm: fn(&str) -> String) {
        let step = Step {
            name: name.to_string(),
            compare,
            code: out.code,
            stdout: norm(&out.stdout),
            stderr: normalize_lines(&out.stderr),
            raw: out.explain("ran"),
        };
        self.steps.push(step);
    }

    fn run(&mut self, name: &str, compare: Compare, args: &[&str], norm: fn(&str) -> String) {
        let out = self.engine.docker(args);
        self.record(name, compare, out, norm);
    }

    fn run_stdin(&mut self, name: &str, args: &[&str], stdin: &Path, norm: fn(&str) -> String) {
        let out = self.engine.docker_with_stdin(args, stdin);
        self.record(name, Compare::All, out, norm);
    }
}

/// Keys of the image's inspect JSON, and a projection of values both engines agree on.
fn inspect_summary(engine: &dyn Engine, name: &str) -> (BTreeSet<String>, String) {
    let text = engine.docker_ok(&["image", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("inspect JSON");
    let image = &v[0];
    let keys = image
        .as_object()
        .expect("inspect object")
        .keys()
        .cloned()
        .collect();
    let projection = serde_json::json!({
        "RepoTags": image["RepoTags"],
        "Os": image["Os"],
        "Architecture": image["Architecture"],
        "RootFS.Type": image["RootFS"]["Type"],
        "layers": image["RootFS"]["Layers"].as_array().map(Vec::len),
        "Cmd": image["Config"]["Cmd"],
        "Entrypoint": image["Config"]["Entrypoint"],
        "Comment": image["Comment"],
        "Id is sha256": image["Id"].as_str().is_some_and(|s| s.starts_with("sha256:")),
    });
    (keys, projection.to_string())
}

/// `manifest.json` of a `docker save` archive, normalized: each entry's `RepoTags`.
fn saved_repo_tags(tar: &Path) -> String {
    let out = pier_testsupport::run_ok(
        Command::new("tar")
            .arg("-xOf")
            .arg(tar)
            .arg("manifest.json"),
        CMD_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&out).expect("manifest.json");
    let tags: Vec<&serde_json::Value> = v
        .as_array()
        .expect("manifest.json is a list")
        .iter()
        .map(|e| &e["RepoTags"])
        .collect();
    serde_json::to_string(&tags).unwrap_or_default()
}

/// The scripted image session; the same on every engine. `work` is a scratch dir.
fn script(engine: &dyn Engine, rootfs_tar: &Path, work: &Path) -> Transcript {
    let mut r = Recorder {
        engine,
        steps: Vec::new(),
    };
    let fmt = "{{.Repository}}:{{.Tag}}";
    r.run("version", Compare::Code, &["version"], |_| String::new());
    r.run("info", Compare::Code, &["info"], |_| String::new());
    r.run("images empty", Compare::All, &["images"], normalize_table);

    r.run_stdin(
        "import busybox",
        &["import", "-c", r#"CMD ["sh"]"#, "-", "busybox:latest"],
        rootfs_tar,
        normalize_lines,
    );
    r.run_stdin(
        "import dangling",
        &["import", "-"],
        rootfs_tar,
        normalize_lines,
    );
    r.run("images", Compare::All, &["images"], normalize_table);
    r.run(
        "images -q",
        Compare::All,
        &["images", "-q"],
        normalize_lines,
    );
    r.run(
        "images --format",
        Compare::All,
        &["images", "--format", fmt],
        normalize_lines,
    );
    r.run(
        "images dangling",
        Compare::All,
        &["images", "--filter", "dangling=true"],
        normalize_table,
    );
    r.run(
        "images not dangling",
        Compare::All,
        &["images", "--filter", "dangling=false", "--format", fmt],
        normalize_lines,
    );
    r.run(
        "images bad filter",
        Compare::All,
        &["images", "--filter", "foo=bar"],
        normalize_lines,
    );

    r.run(
        "tag",
        Compare::All,
        &["tag", "busybox", "localhost:5000/a/b:1"],
        normalize_lines,
    );
    r.run(
        "tag 2",
        Compare::All,
        &["tag", "busybox:latest", "busybox:2"],
        normalize_lines,
    );
    r.run(
        "tag missing",
        Compare::All,
        &["tag", "nothere", "x:1"],
        normalize_lines,
    );
    r.run(
        "images tagged",
        Compare::All,
        &["images", "--format", fmt],
        normalize_lines,
    );
    r.run(
        "images reference",
        Compare::All,
        &["images", "--filter", "reference=busybox", "--format", fmt],
        normalize_lines,
    );
    r.run(
        "images reference glob",
        Compare::All,
        &[
            "images",
            "--filter",
            "reference=localhost:5000/*/*",
            "--format",
            fmt,
        ],
        normalize_lines,
    );
    r.run(
        "images repo arg",
        Compare::All,
        &["images", "busybox", "--format", fmt],
        normalize_lines,
    );

    r.run(
        "inspect cmd",
        Compare::All,
        &["image", "inspect", "-f", "{{.Config.Cmd}}", "busybox"],
        normalize_lines,
    );
    r.run(
        "inspect by registry name",
        Compare::All,
        &[
            "image",
            "inspect",
            "-f",
            "{{.RepoTags}}",
            "localhost:5000/a/b:1",
        ],
        normalize_lines,
    );
    r.run(
        "inspect missing",
        Compare::All,
        &["image", "inspect", "nothere"],
        normalize_lines,
    );
    r.run(
        "history",
        Compare::All,
        &["history", "busybox"],
        normalize_table,
    );
    r.run(
        "history missing",
        Compare::All,
        &["history", "nothere"],
        normalize_lines,
    );

    let saved = work.join("saved.tar");
    let saved_arg = saved.to_string_lossy().into_owned();
    r.run(
        "save -o",
        Compare::All,
        &["save", "-o", &saved_arg, "busybox:latest"],
        normalize_lines,
    );
    r.steps.push(Step {
        name: "saved manifest.json".into(),
        compare: Compare::All,
        code: Some(0),
        stdout: saved_repo_tags(&saved),
        stderr: String::new(),
        raw: String::new(),
    });
    r.run(
        "save missing",
        Compare::Stdout,
        &["save", "-o", &saved_arg, "nothere"],
        normalize_lines,
    );

    r.run(
        "rmi untag",
        Compare::All,
        &["rmi", "localhost:5000/a/b:1"],
        normalize_lines,
    );
    r.run(
        "rmi untag 2",
        Compare::All,
        &["rmi", "busybox:2"],
        normalize_lines,
    );
    r.run(
        "rmi missing",
        Compare::All,
        &["rmi", "nothere"],
        normalize_lines,
    );
    // The last name: the image and its layer go.
    r.run(
        "rmi delete",
        Compare::All,
        &["rmi", "busybox"],
        normalize_lines,
    );
    r.run(
        "images after rmi",
        Compare::All,
        &["images", "--format", fmt],
        normalize_lines,
    );
    r.run_stdin("load", &["load"], &saved, normalize_lines);
    r.run(
        "load -i",
        Compare::All,
        &["load", "-i", &saved_arg],
        normalize_lines,
    );
    r.run(
        "images after load",
        Compare::All,
        &["images", "--format", fmt],
        normalize_lines,
    );
    r.run(
        "inspect loaded cmd",
        Compare::All,
        &["image", "inspect", "-f", "{{.Config.Cmd}}", "busybox"],
        normalize_lines,
    );

    r.run(
        "prune dangling",
        Compare::All,
        &["image", "prune", "-f"],
        normalize_lines,
    );
    r.run(
        "images after prune",
        Compare::All,
        &["images", "--format", fmt],
        normalize_lines,
    );
    r.run(
        "prune bad filter",
        Compare::All,
        &["image", "prune", "-f", "--filter", "foo=1"],
        normalize_lines,
    );
    r.run(
        "prune label kept",
        Compare::All,
        &["image", "prune", "-a", "-f", "--filter", "label=nothere"],
        normalize_lines,
    );
    r.run(
        "prune all",
        Compare::All,
        &["image", "prune", "-a", "-f"],
        normalize_lines,
    );
    r.run(
        "images at the end",
        Compare::All,
        &["images", "-q"],
        normalize_lines,
    );
    Transcript { steps: r.steps }
}

fn check(step: &Step, code: i32) {
    assert_eq!(step.code, Some(code), "{}: {}", step.name, step.raw);
}

// ---------------------------------------------------------------------------------------
// Tests

/// The script against pierd, checked on its own terms; plus `docker save | docker
/// load` into a second pierd.
#[test]
fn image_commands_against_pierd() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let pierd = Pierd::start();
    let t = script(&pierd, &rootfs, work.path());
    let out = |name: &str| t.get(name).stdout.clone();
    let err = |name: &str| t.get(name).stderr.clone();

    for s in &t.steps {
        let expect_fail = s.name.contains("missing") || s.name.contains("bad filter");
        check(s, if expect_fail { 1 } else { 0 });
    }
    assert_eq!(out("import busybox"), "sha256:<ID>");
    assert_eq!(
        out("images empty"),
        "REPOSITORY | TAG | IMAGE ID | CREATED | SIZE"
    );
    assert_eq!(
        out("images"),
        "REPOSITORY | TAG | IMAGE ID | CREATED | SIZE\n\
         <none> | <none> | <ID> | <TIME> | <SIZE>\n\
         busybox | latest | <ID> | <TIME> | <SIZE>"
    );
    assert_eq!(out("images -q"), "<ID>\n<ID>");
    assert_eq!(out("images --format"), "<none>:<none>\nbusybox:latest");
    assert_eq!(
        out("images dangling"),
        "REPOSITORY | TAG | IMAGE ID | CREATED | SIZE\n<none> | <none> | <ID> | <TIME> | <SIZE>"
    );
    assert_eq!(out("images not dangling"), "busybox:latest");
    assert_eq!(
        err("images bad filter"),
        "Error response from daemon: invalid filter 'foo'"
    );
    assert_eq!(
        out("images tagged"),
        "<none>:<none>\nbusybox:2\nbusybox:latest\nlocalhost:5000/a/b:1"
    );
    assert_eq!(out("images reference"), "busybox:2\nbusybox:latest");
    assert_eq!(out("images reference glob"), "localhost:5000/a/b:1");
    assert_eq!(out("images repo arg"), "busybox:2\nbusybox:latest");
    assert_eq!(
        err("tag missing"),
        "Error response from daemon: No such image: nothere:latest"
    );
    assert_eq!(out("inspect cmd"), "[sh]");
    assert_eq!(
        out("inspect by registry name"),
        "[busybox:2 busybox:latest localhost:5000/a/b:1]"
    );
    assert!(
        err("inspect missing").contains("No such image: nothere"),
        "{}",
        err("inspect missing")
    );
    assert_eq!(
        out("history"),
        "IMAGE | CREATED | CREATED BY | SIZE | COMMENT\n<ID> | <TIME> | <SIZE> | Imported from -"
    );
    assert_eq!(out("saved manifest.json"), r#"[["busybox:latest"]]"#);
    assert_eq!(
        err("save missing"),
        "Error response from daemon: No such image: nothere:latest"
    );
    assert_eq!(out("rmi untag"), "Untagged: localhost:5000/a/b:1");
    assert_eq!(out("rmi untag 2"), "Untagged: busybox:2");
    assert_eq!(
        err("rmi missing"),
        "Error response from daemon: No such image: nothere:latest"
    );
    // The dangling image shares the layer: only the image goes.
    assert_eq!(
        out("rmi delete"),
        "Deleted: sha256:<ID>\nUntagged: busybox:latest"
    );
    assert_eq!(out("images after rmi"), "<none>:<none>");
    assert_eq!(out("load"), "Loaded image: busybox:latest");
    assert_eq!(out("load -i"), "Loaded image: busybox:latest");
    assert_eq!(out("images after load"), "<none>:<none>\nbusybox:latest");
    assert_eq!(out("inspect loaded cmd"), "[sh]");
    assert_eq!(
        out("prune dangling"),
        "\nDeleted Images:\nTotal reclaimed space: <SIZE>\ndeleted: sha256:<ID>"
    );
    assert_eq!(out("images after prune"), "busybox:latest");
    assert_eq!(
        err("prune bad filter"),
        "Error response from daemon: invalid filter 'foo'"
    );
    assert_eq!(out("prune label kept"), "Total reclaimed space: <SIZE>");
    assert_eq!(
        out("prune all"),
        "\nDeleted Images:\nTotal reclaimed space: <SIZE>\ndeleted: sha256:<ID>\ndeleted: sha256:<ID>\nuntagged: busybox:latest"
    );
    assert_eq!(out("images at the end"), "");
    let reclaimed = &t.get("prune all").raw;
    assert!(
        !reclaimed.contains("Total reclaimed space: 0B"),
        "the layer's space is reclaimed: {reclaimed}"
    );
}

/// `docker save | docker load` between two pierds, through a real pipe; names with a
/// registry port and path; errors for pull and bad references.
#[test]
fn save_load_round_trip_between_two_pierds() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let a = Pierd::start();
    let b = Pierd::start();
    a.docker_with_stdin(
        &[
            "import",
            "-c",
            r#"CMD ["sh"]"#,
            "-c",
            "LABEL x=1",
            "-",
            "localhost:5000/a/b:1",
        ],
        &rootfs,
    )
    .ok()
    .unwrap_or_else(|e| panic!("{e}"));
    let id_a = a.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "localhost:5000/a/b:1"]);
    a.docker_ok(&["tag", "localhost:5000/a/b:1", "busybox"]);

    let mut save = a.command();
    save.args(["save", "localhost:5000/a/b:1", "busybox"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut saver = save.spawn().expect("docker save");
    let pipe = saver.stdout.take().expect("stdout");
    let mut load = b.command();
    load.arg("load");
    let loaded = run_with_stdin(&mut load, Stdio::from(pipe));
    let status = wait_deadline(&mut saver, CMD_TIMEOUT).expect("docker save finished");
    assert!(status.success(), "docker save failed: {status}");
    let loaded = loaded.ok().unwrap_or_else(|e| panic!("{e}"));
    let mut lines: Vec<&str> = loaded.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "Loaded image: busybox:latest",
            "Loaded image: localhost:5000/a/b:1"
        ]
    );
    let id_b = b.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "localhost:5000/a/b:1"]);
    assert_eq!(id_a, id_b, "the image ID survives the round trip");
    assert_eq!(
        b.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.Labels.x}} {{.Config.Cmd}}",
            "busybox"
        ]),
        "1 [sh]\n"
    );
    // Filters of prune: label! keeps the labelled image, label=x=1 removes it.
    assert!(b
        .docker_ok(&["image", "prune", "-a", "-f", "--filter", "label!=x"])
        .contains("Total reclaimed space: 0B"));
    let pruned = b.docker_ok(&["image", "prune", "-a", "-f", "--filter", "label=x=1"]);
    assert!(
        pruned.contains("untagged: localhost:5000/a/b:1"),
        "{pruned}"
    );
    assert_eq!(b.docker_ok(&["images", "-q"]), "");

    // By ID: refused while the image has names in two repositories, unless forced.
    let short = id_a.trim().trim_start_matches("sha256:")[..12].to_string();
    let refused = a.docker(&["rmi", &short]);
    assert_eq!(refused.code, Some(1), "{}", refused.explain("rmi by id"));
    assert_eq!(
        refused.stderr.trim(),
        format!("Error response from daemon: conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
    );
    let forced = a.docker_ok(&["rmi", "-f", &short]);
    assert!(
        forced.contains(&format!("Deleted: {}", id_a.trim())),
        "{forced}"
    );

    let bad = a.docker(&["tag", "nothere", "Bad:1"]);
    assert_eq!(bad.code, Some(1));
    let garbage = work.path().join("garbage");
    std::fs::write(&garbage, b"not a tar").expect("write");
    let failed_load = a.docker_with_stdin(&["load"], &garbage);
    assert_eq!(
        failed_load.code,
        Some(1),
        "{}",
        failed_load.explain("load garbage")
    );
    let failed_import = a.docker_with_stdin(&["import", "-c", "BOGUS x", "-"], &rootfs);
    assert_eq!(
        failed_import.code,
        Some(1),
        "{}",
        failed_import.explain("import")
    );
    assert!(
        failed_import.stderr.contains("Error response from daemon:"),
        "{}",
        failed_import.explain("import")
    );
}

/// Step outputs that legitimately differ between pierd and dockerd 20.10, with why.
/// For these steps exit codes and stdout must still agree; only stderr may differ.
const ALLOWED_DIFFERENCES: &[(&str, &str)] = &[
    (
        "images bad filter",
        "dockerd 20.10 says `Invalid filter 'foo'`; current Docker (moby's filters package \
         since v23) says `invalid filter 'foo'`, which pierd follows",
    ),
    (
        "prune bad filter",
        "as `images bad filter`: the message's capital letter changed after Docker 20.10",
    ),
    (
        "inspect missing",
        "dockerd 20.10 wraps the message (`no such image: nothere: No such image: \
         nothere:latest`); current Docker and pierd answer `No such image: nothere:latest`",
    ),
];

/// Top-level `image inspect` keys that legitimately differ, with why.
const INSPECT_ONLY_DOCKER: &[(&str, &str)] = &[
    (
        "Container",
        "dropped from the API in 1.45; dockerd 20.10 still sends it",
    ),
    (
        "ContainerConfig",
        "dropped from the API in 1.45; dockerd 20.10 still sends it",
    ),
    (
        "DockerVersion",
        "dropped from the API in 1.45; dockerd 20.10 still sends it",
    ),
    (
        "VirtualSize",
        "dropped from the API in 1.44; dockerd 20.10 (API 1.41) sends it",
    ),
];
const INSPECT_ONLY_PIER: &[(&str, &str)] = &[(
    "Descriptor",
    "added in API 1.48 (containerd image store); dockerd 20.10 predates it",
)];

/// The acceptance check: the same script against a real dockerd; outputs compared
/// after normalization.
#[test]
fn same_script_as_real_dockerd() {
    if !pier_testsupport::require_tools("same_script_as_real_dockerd", &["dockerd"]) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let Some(dockerd) =
        IsolatedDockerd::start_or_skip("same_script_as_real_dockerd", DockerdOptions::default())
    else {
        return;
    };
    let pierd = Pierd::start();
    let pier_work = work.path().join("pier");
    let docker_work = work.path().join("docker");
    std::fs::create_dir_all(&pier_work).expect("mkdir");
    std::fs::create_dir_all(&docker_work).expect("mkdir");

    // Inspect keys and values, on an image of each.
    for e in [&pierd as &dyn Engine, &dockerd as &dyn Engine] {
        e.docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "probe:1"], &rootfs)
            .ok()
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (pier_keys, pier_values) = inspect_summary(&pierd, "probe:1");
    let (docker_keys, docker_values) = inspect_summary(&dockerd, "probe:1");
    assert_eq!(pier_values, docker_values, "image inspect values");
    let only_docker: BTreeSet<&str> = docker_keys
        .difference(&pier_keys)
        .map(String::as_str)
        .collect();
    let only_pier: BTreeSet<&str> = pier_keys
        .difference(&docker_keys)
        .map(String::as_str)
        .collect();
    let allowed_docker: BTreeSet<&str> = INSPECT_ONLY_DOCKER.iter().map(|(k, _)| *k).collect();
    let allowed_pier: BTreeSet<&str> = INSPECT_ONLY_PIER.iter().map(|(k, _)| *k).collect();
    assert!(
        only_docker.is_subset(&allowed_docker),
        "inspect keys only dockerd sends: {only_docker:?}"
    );
    assert!(
        only_pier.is_subset(&allowed_pier),
        "inspect keys only pierd sends: {only_pier:?}"
    );
    for e in [&pierd as &dyn Engine, &dockerd as &dyn Engine] {
        e.docker_ok(&["rmi", "probe:1"]);
    }

    let pier = script(&pierd, &rootfs, &pier_work);
    let docker = script(&dockerd, &rootfs, &docker_work);
    let allowed: BTreeMap<&str, &str> = ALLOWED_DIFFERENCES.iter().copied().collect();
    let mut diffs = Vec::new();
    for (p, d) in pier.steps.iter().zip(&docker.steps) {
        assert_eq!(p.name, d.name);
        let mut same = p.code == d.code;
        if p.compare != Compare::Code {
            same &= p.stdout == d.stdout;
        }
        if p.compare == Compare::All && !allowed.contains_key(p.name.as_str()) {
            same &= p.stderr == d.stderr;
        }
        if !same {
            diffs.push(format!(
                "step {:?}:\n  pierd  (exit {:?}) stdout: {:?} stderr: {:?}\n  dockerd (exit {:?}) stdout: {:?} stderr: {:?}",
                p.name, p.code, p.stdout, p.stderr, d.code, d.stdout, d.stderr
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "pierd and dockerd differ:\n{}",
        diffs.join("\n")
    );
}
