//! `pier compose config` against docker compose v2 (the oracle), over the corpus in
//! crates/pier-compose/tests/corpus: for every project both tools print the config as
//! JSON and YAML and list services, volumes, images and profiles, and pier must print
//! the same. Bad projects (tests/corpus-errors) must fail with both tools, and pier's
//! message must name what its EXPECT file lists.
//!
//! A corpus directory holds compose files plus optional metadata: ARGS (global flags,
//! one per line), ENV (`KEY=VALUE` lines for the process environment; the tools run
//! with an otherwise clean environment) and CWD (the subdirectory to run in).
//! Skipped, with a printed reason, when `docker compose` is not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pier-compose/tests")
        .join(name)
}

/// Whether the oracle is installed; says so when it is not (the test then skips).
fn docker_compose_available() -> bool {
    let found = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: `docker compose` is not installed (scripts/setup.sh installs it)");
    }
    found
}

struct Case {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn cases(root: &Path) -> Vec<Case> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .expect("corpus directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let base = root.join(&name);
            let dir = match read_lines(&base.join("CWD")).first() {
                Some(sub) => base.join(sub),
                None => base.clone(),
            };
            let env = read_lines(&base.join("ENV"))
                .into_iter()
                .filter_map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            Case {
                args: read_lines(&base.join("ARGS")),
                dir,
                env,
                name,
            }
        })
        .collect()
}

/// Runs `docker compose` (`pier == false`) or `pier compose` with the case's flags.
fn run(case: &Case, pier: bool, command: &[&str]) -> Output {
    let mut c = if pier {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
        c.arg("compose");
        c
    } else {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    };
    c.args(&case.args)
        .args(command)
        .current_dir(&case.dir)
        .env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            c.env(key, v);
        }
    }
    c.envs(case.env.iter().map(|(k, v)| (k, v)));
    c.output().expect("run compose")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// Compares one case; returns the differences found.
fn compare(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let queries: [&[&str]; 6] = [
        &["config", "--format", "json"],
        &["config"],
        &["config", "--services"],
        &["config", "--volumes"],
        &["config", "--images"],
        &["config", "--profiles"],
    ];
    for query in queries {
        let docker = run(case, false, query);
        let pier = run(case, true, query);
        let what = format!("{}: {}", case.name, query.join(" "));
        if !docker.status.success() {
            problems.push(format!(
                "{what}: docker compose failed: {}",
                text(&docker.stderr)
            ));
            continue;
        }
        if !pier.status.success() {
            problems.push(format!("{what}: pier failed: {}", text(&pier.stderr)));
            continue;
        }
        if query.contains(&"json") {
            let d: serde_json::Value = serde_json::from_slice(&docker.stdout).expect("docker json");
            let p: serde_json::Value = match serde_json::from_slice(&pier.stdout) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{what}: pier printed invalid JSON: {e}"));
                    continue;
                }
            };
            if d != p {
                problems.push(format!(
                    "{what}: JSON differs\n--- docker\n{}\n--- pier\n{}",
                    text(&docker.stdout),
                    text(&pier.stdout)
                ));
                continue;
            }
        }
        // compose lists services, volumes and images in Go map order, which changes from
        // run to run: those lists are compared sorted. Everything else byte for byte.
        let unordered = ["--services", "--volumes", "--images"]
            .iter()
            .any(|f| query.contains(f));
        if unordered {
            let sorted = |b: &[u8]| {
                let mut lines: Vec<String> = text(b).lines().map(str::to_string).collect();
                lines.sort();
                lines
            };
            if sorted(&docker.stdout) != sorted(&pier.stdout) {
                problems.push(format!(
                    "{what}: lists differ\n--- docker\n{}\n--- pier\n{}",
                    text(&docker.stdout),
                    text(&pier.stdout)
                ));
            }
            continue;
        }
        if docker.stdout != pier.stdout {
            problems.push(format!(
                "{what}: output differs\n--- docker\n{}\n--- pier\n{}",
                text(&docker.stdout),
                text(&pier.stdout)
            ));
        }
    }
    problems
}

/// Runs `f` over `items` on a few threads (docker compose takes ~50 ms a call).
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = 4;
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

#[test]
fn config_matches_docker_compose_over_the_corpus() {
    if !docker_compose_available() {
        return;
    }
    let cases = cases(&corpus("corpus"));
    assert!(cases.len() >= 40, "the corpus has {} projects", cases.len());
    let problems: Vec<String> = in_parallel(&cases, compare).into_iter().flatten().collect();
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn bad_projects_fail_with_both_tools_and_pier_names_the_problem() {
    if !docker_compose_available() {
        return;
    }
    let cases = cases(&corpus("corpus-errors"));
    let problems: Vec<String> = in_parallel(&cases, |case| {
        let mut problems = Vec::new();
        let docker = run(case, false, &["config"]);
        let pier = run(case, true, &["config"]);
        if docker.status.success() {
            problems.push(format!("{}: docker compose accepted it", case.name));
        }
        if pier.status.success() {
            problems.push(format!(
                "{}: pier accepted it:\n{}",
                case.name,
                text(&pier.stdout)
            ));
            return problems;
        }
        let message = text(&pier.stderr);
        for expected in read_lines(&case.dir.join("EXPECT")) {
            if !message.contains(&expected) {
                problems.push(format!(
                    "{}: pier's message lacks {expected:?}: {message}",
                    case.name
                ));
            }
        }
        problems
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Corpus projects whose `config --no-interpolate` pier prints as compose does. With
/// that flag compose prints its untyped model, where some short syntaxes (ports,
/// volumes, env_file, depends_on, build) are already long and others not; pier prints
/// the merged files as written plus names and the default network, which is the same
/// for these.
const NO_INTERPOLATE_CASES: &[&str] = &[
    "Dir_Name.Normalize",
    "anchors_merge",
    "blkio",
    "command_entrypoint",
    "deploy_resources",
    "dns",
    "docker_compose_yml",
    "env_file_flag",
    "extensions",
    "extra_hosts",
    "healthcheck",
    "interpolation",
    "labels",
    "logging",
    "minimal",
    "profiles",
    "profiles_all",
    "reset_override",
    "sysctls",
    "tmpfs",
    "ulimits",
    "yaml_scalars",
];

#[test]
fn no_interpolate_matches_docker_compose() {
    if !docker_compose_available() {
        return;
    }
    let cases: Vec<Case> = cases(&corpus("corpus"))
        .into_iter()
        .filter(|c| NO_INTERPOLATE_CASES.contains(&c.name.as_str()))
        .collect();
    assert_eq!(cases.len(), NO_INTERPOLATE_CASES.len());
    let problems: Vec<String> = in_parallel(&cases, |case| {
        let mut problems = Vec::new();
        for query in [
            &["config", "--no-interpolate"][..],
            &["config", "--no-interpolate", "--format", "json"][..],
        ] {
            let docker = run(case, false, query);
            let pier = run(case, true, query);
            if !docker.status.success() || docker.stdout != pier.stdout {
                problems.push(format!(
                    "{}: {}\n--- docker\n{}{}\n--- pier\n{}{}",
                    case.name,
                    query.join(" "),
                    text(&docker.stdout),
                    text(&docker.stderr),
                    text(&pier.stdout),
                    text(&pier.stderr)
                ));
            }
        }
        problems
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn resolving_image_digests_is_refused_with_the_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["compose", "config", "--resolve-image-digests"])
        .current_dir(corpus("corpus").join("minimal"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--resolve-image-digests was accepted"
    );
    let message = text(&out.stderr);
    assert!(
        message.contains("--resolve-image-digests") && message.contains("not supported"),
        "{message}"
    );
}

#[test]
fn named_services_and_quiet_match_docker_compose() {
    if !docker_compose_available() {
        return;
    }
    let all = cases(&corpus("corpus"));
    let case = |name: &str| all.iter().find(|c| c.name == name).expect("corpus case");
    // A named service brings what it depends on; one of an inactive profile is enabled.
    for (name, query) in [
        ("depends_on_conditions", &["config", "migrate"][..]),
        ("profiles", &["config", "debug"][..]),
        ("multi_file", &["config", "-q"][..]),
    ] {
        let docker = run(case(name), false, query);
        let pier = run(case(name), true, query);
        assert!(docker.status.success(), "{name}: {}", text(&docker.stderr));
        assert!(pier.status.success(), "{name}: {}", text(&pier.stderr));
        assert_eq!(
            text(&pier.stdout),
            text(&docker.stdout),
            "{name}: {query:?}"
        );
    }
}
