//! The volume scenario: one script of `docker volume` (and `run -v`, `rm -v`, `system
//! df`) commands run against pierd and against a real, isolated dockerd. Each step's exit
//! code and (normalized) output must be the same on both.
//!
//! Normalized: 12- and 64-hex IDs (container IDs, anonymous volume names) and each
//! engine's data root (in `Mountpoint`s).
//!
//! Where dockerd 20.10 and Docker 23+ (which pierd follows) differ the script stays out
//! of the way rather than comparing less: anonymous volumes are not inspected (23+ labels
//! them `com.docker.volume.anonymous`), and the prune runs while every named volume is
//! in use (20.10 prunes unused named volumes too, 23+ only with `--all`).

mod common;

use std::path::Path;

use common::{busybox_rootfs_tar, shell_words, Engine, Pierd};
use pier_testsupport::{DockerdOptions, IsolatedDockerd, Out};

/// What of a step's result must match.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// Exit code, stdout and stderr.
    All,
    /// Exit code and stdout's lines as a set.
    SortedStdout,
}

struct Step {
    args: Vec<String>,
    check: Check,
}

fn step(args: &str, check: Check) -> Step {
    Step {
        args: shell_words(args),
        check,
    }
}

fn is_hex(s: &str) -> bool {
    (s.len() == 12 || s.len() == 64)
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// IDs and the engine's data root become placeholders.
fn normalize(text: &str, data_root: &Path) -> String {
    let text = text.replace(&data_root.display().to_string(), "<ROOT>");
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(if is_hex(word) { "<ID>" } else { word });
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn view(out: &Out, data_root: &Path, check: Check) -> String {
    let stdout = normalize(&out.stdout, data_root);
    match check {
        Check::All => format!(
            "exit {:?}\n{stdout}\n--- stderr\n{}",
            out.code,
            normalize(&out.stderr, data_root)
        ),
        Check::SortedStdout => {
            let mut lines: Vec<&str> = stdout.lines().collect();
            lines.sort_unstable();
            format!("exit {:?}\n{}", out.code, lines.join("\n"))
        }
    }
}

fn script() -> Vec<Step> {
    use Check::*;
    vec![
        // create, and again (the same volume answers), and refusals.
        step("volume create sc1", All),
        step("volume create sc1", All),
        step(
            "volume create --label team=a -o type=tmpfs -o device=tmpfs -o o=size=2m sc2",
            All,
        ),
        step("volume create a", All),
        step("volume create a@b", All),
        step("volume create -o bogus=1 bad", All),
        step("volume create -o type=tmpfs bad", All),
        step("volume create -o o=size=1m bad", All),
        // inspect and ls, with filters.
        step(
            "volume inspect -f '{{.Name}} {{.Driver}} {{.Scope}} {{.Mountpoint}} {{json .Labels}} {{json .Options}}' sc1 sc2",
            All,
        ),
        step("volume inspect nope", All),
        step("volume ls", All),
        step("volume ls -q -f label=team=a", All),
        step("volume ls -q -f label=team", All),
        step("volume ls -q -f dangling=true", All),
        step("volume ls -q -f name=sc", All),
        step("volume ls -q -f driver=local", All),
        step(
            "volume ls --format '{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{.Mountpoint}}'",
            All,
        ),
        // Data written by one container, read by another; read-only; the tmpfs size.
        step(
            "run --rm --network none -v sc1:/d busybox sh -c 'echo hi > /d/f'",
            All,
        ),
        step("run --rm --network none -v sc1:/d:ro busybox cat /d/f", All),
        step(
            "run --rm --network none -v sc1:/d:ro busybox touch /d/g",
            All,
        ),
        step(
            "run --rm --network none -v sc2:/m busybox sh -c 'df -k /m | tail -1 | tr -s \" \" | cut -d\" \" -f2'",
            All,
        ),
        // In use: refused, with -f too; dangling follows.
        step(
            "run -d --network none --name user -v sc1:/d busybox sleep 1000",
            All,
        ),
        step("volume rm sc1", All),
        step("volume rm -f sc1", All),
        step("volume ls -q -f dangling=false", All),
        step(
            "inspect -f '{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.Destination}} {{.Driver}} {{.Mode}} {{.RW}}{{end}}' user",
            All,
        ),
        step("rm -f user", All),
        // Anonymous volumes: rm -v removes them, named ones stay.
        step("create --network none --name anon -v /data -v sc1:/named busybox true", All),
        step(
            "inspect -f '{{range .Mounts}}{{.Type}} {{.Destination}} {{.Driver}} {{.RW}} {{.Mode}};{{end}}' anon",
            SortedStdout,
        ),
        step("rm -v anon", All),
        step("volume ls -q", All),
        // Prune while the named volumes are in use: the left-over anonymous one goes.
        step("create --network none --name anon2 -v /data busybox true", All),
        step("rm anon2", All),
        step("create --network none --name holder -v sc1:/a -v sc2:/b busybox true", All),
        step("system df --format '{{.Type}} {{.TotalCount}} {{.Active}}'", All),
        step("volume prune -f", All),
        step("volume ls -q", All),
        step("rm holder", All),
        step("volume rm sc1 sc2 nope", All),
        step("volume rm -f nope", All),
        step("volume ls -q", All),
    ]
}

#[test]
fn same_volume_results_as_real_dockerd() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let Some(dockerd) =
        IsolatedDockerd::start_or_skip("volume_scenario", DockerdOptions::default())
    else {
        return;
    };
    let pierd = Pierd::start();
    let engines: [(&str, &dyn Engine, std::path::PathBuf); 2] = [
        ("pierd", &pierd, pierd.data_root()),
        ("dockerd", &dockerd, dockerd.dir().join("data")),
    ];
    let steps = script();
    let mut results: Vec<Vec<String>> = Vec::new();
    for (_, e, data_root) in &engines {
        e.docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &rootfs)
            .ok()
            .unwrap_or_else(|err| panic!("{err}"));
        let views = steps
            .iter()
            .map(|s| {
                let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
                view(&e.docker(&args), data_root, s.check)
            })
            .collect();
        results.push(views);
    }
    // Nothing of pierd's is left mounted under its volumes.
    let left = common::mounts_under(&pierd.data_root().join("volumes"));
    assert!(left.is_empty(), "{left:#?}");
    let mut differences = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if results[0][i] != results[1][i] {
            differences.push(format!(
                "step {i}: docker {}\n  pierd:   {:?}\n  dockerd: {:?}",
                s.args.join(" "),
                results[0][i],
                results[1][i]
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n")
    );
}

/// Every `CreatedAt` (at any depth) becomes a placeholder.
fn untimed(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "CreatedAt" {
                    *x = "<TIME>".into();
                } else {
                    untimed(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(untimed),
        _ => {}
    }
}

/// The same Engine API requests (API 1.41) to pierd and dockerd: statuses and bodies,
/// paths, `CreatedAt` and anonymous names normalized.
#[test]
fn same_volume_api_answers_as_real_dockerd() {
    let Some((pierd, dockerd, _work)) =
        common::pierd_and_dockerd_with_busybox("volume_scenario api")
    else {
        return;
    };
    type Request = (&'static str, &'static str, Option<&'static str>);
    let requests: [Request; 14] = [
        ("POST", "/volumes/create", Some(r#"{"Name":"api1"}"#)),
        (
            "POST",
            "/volumes/create",
            Some(r#"{"Name":"api1","Labels":{"x":"y"}}"#),
        ),
        (
            "POST",
            "/volumes/create",
            Some(r#"{"Name":"api2","Labels":{"k":"v"},"DriverOpts":{}}"#),
        ),
        ("POST", "/volumes/create", Some(r#"{"Name":"x/y"}"#)),
        (
            "POST",
            "/volumes/create",
            Some(r#"{"Name":"api3","DriverOpts":{"bogus":"1"}}"#),
        ),
        ("GET", "/volumes/api2", None),
        ("GET", "/volumes/nope", None),
        ("DELETE", "/volumes/nope", None),
        ("DELETE", "/volumes/nope?force=1", None),
        (
            "GET",
            "/volumes?filters=%7B%22label%22%3A%5B%22k%3Dv%22%5D%7D",
            None,
        ),
        ("DELETE", "/volumes/api2", None),
        // Before API 1.42 a prune takes named volumes too, on both.
        ("POST", "/volumes/prune", None),
        ("GET", "/volumes", None),
        ("POST", "/volumes/prune", None),
    ];
    let answer = |socket: &Path, root: &Path, r: &Request| {
        let (status, body) = common::api(socket, r.0, r.1, r.2);
        let mut v: serde_json::Value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"))
        };
        untimed(&mut v);
        format!("{status} {}", normalize(&v.to_string(), root))
    };
    let mut differences = Vec::new();
    for r in &requests {
        let p = answer(&pierd.socket(), &pierd.data_root(), r);
        let d = answer(&dockerd.socket(), &dockerd.dir().join("data"), r);
        if p != d {
            differences.push(format!("{} {}\n  pierd:   {p}\n  dockerd: {d}", r.0, r.1));
        }
    }
    // An anonymous create: 201 and a 64-hex name on both (the labels differ: Docker
    // 23+ marks anonymous volumes, 20.10 does not).
    for socket in [pierd.socket(), dockerd.socket()] {
        let (status, body) = common::api(&socket, "POST", "/volumes/create", Some("{}"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status, 201, "{body}");
        assert!(is_hex(v["Name"].as_str().unwrap_or_default()), "{body}");
        let name = v["Name"].as_str().unwrap_or_default();
        assert_eq!(
            common::api(&socket, "DELETE", &format!("/volumes/{name}"), None).0,
            204
        );
    }
    assert!(
        differences.is_empty(),
        "{} of {} requests differ:\n{}",
        differences.len(),
        requests.len(),
        differences.join("\n")
    );
}
