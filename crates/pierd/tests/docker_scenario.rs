//! The acceptance scenario: one script of `docker` CLI commands — every container
//! command a user reaches for — run against pierd and against a real, isolated dockerd.
//! Each step's exit code and (normalized) output must be the same on both.
//!
//! Normalized: container and image IDs, sizes, and host paths of the per-engine work
//! directory. Steps whose output legitimately differs between dockerd 20.10 and the
//! Docker 28 behaviour pierd follows compare less (see [`Check`]), each with a reason.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{busybox_rootfs_tar, run_with_stdin, shell_words, wait_until, Engine, Pierd};
use pier_testsupport::{DockerdOptions, IsolatedDockerd, Out};

/// What of a step's result must match.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// Exit code, stdout and stderr.
    All,
    /// Exit code and stdout; stderr differs in wording between dockerd versions.
    Stdout,
    /// Exit code and stdout's lines as a set (order is not specified).
    SortedStdout,
    /// Only the exit code.
    Code,
}

struct Step {
    args: Vec<String>,
    stdin: Option<&'static str>,
    check: Check,
}

fn step(args: &str, check: Check) -> Step {
    Step {
        args: shell_words(args),
        stdin: None,
        check,
    }
}

fn step_in(args: &str, stdin: &'static str, check: Check) -> Step {
    Step {
        args: shell_words(args),
        stdin: Some(stdin),
        check,
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// IDs, sizes and the engine's work directory become placeholders.
fn normalize(text: &str, work: &Path) -> String {
    let text = text.replace(&work.display().to_string(), "<WORK>");
    text.lines()
        .map(|line| {
            line.split(' ')
                .map(|w| {
                    let (core, tail) = w.split_at(w.trim_end_matches([',', ')', '"']).len());
                    let core = core.trim_start_matches('"');
                    let normal = if let Some(hex) = core.strip_prefix("sha256:") {
                        is_hex(hex, 64).then(|| "sha256:<ID>".to_string())
                    } else if is_hex(core, 12) || is_hex(core, 64) {
                        Some("<ID>".to_string())
                    } else if is_size(core) {
                        Some("<SIZE>".to_string())
                    } else {
                        None
                    };
                    match normal {
                        Some(n) => format!("{n}{tail}"),
                        None => w.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `2.04MB`, `0B`, `4.175kB`.
fn is_size(s: &str) -> bool {
    let num = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[num.len()..];
    !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && matches!(unit, "B" | "kB" | "MB" | "GB")
}

fn run_step(e: &dyn Engine, work: &Path, s: &Step) -> Out {
    let args: Vec<String> = s
        .args
        .iter()
        .map(|a| a.replace("{work}", &work.display().to_string()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match s.stdin {
        None => e.docker(&args),
        Some(text) => {
            let input = work.join("stdin");
            std::fs::write(&input, text).expect("write stdin");
            let file = std::fs::File::open(&input).expect("open stdin");
            let mut cmd = e.command();
            cmd.args(&args);
            run_with_stdin(&mut cmd, Stdio::from(file))
        }
    }
}

/// What is compared of one result.
fn view(out: &Out, work: &Path, check: Check) -> String {
    let stdout = normalize(&out.stdout, work);
    let stdout = if check == Check::SortedStdout {
        let mut lines: Vec<&str> = stdout.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    } else {
        stdout
    };
    match check {
        Check::All => format!(
            "exit {:?}\n{stdout}\n--- stderr\n{}",
            out.code,
            normalize(&out.stderr, work)
        ),
        Check::Stdout | Check::SortedStdout => format!("exit {:?}\n{stdout}", out.code),
        Check::Code => format!("exit {:?}", out.code),
    }
}

/// Output of a detached container's first lines is written asynchronously: wait for it
/// on both engines before comparing logs.
fn wait_for_logs(e: &dyn Engine, name: &str, needle: &str) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            let out = e.docker(&["logs", name]);
            out.stdout.contains(needle) || out.stderr.contains(needle)
        }),
        "{name}: no {needle:?} in the logs"
    );
}

fn script() -> Vec<Step> {
    use Check::*;
    vec![
        // run, foreground and detached; ps; logs.
        step("run --rm --network none busybox echo hello", All),
        step_in("run -i --rm --network none busybox cat", "from stdin\n", All),
        step("run --network none --name gone busybox sh -c 'exit 3'", All),
        step("inspect -f '{{.State.Status}} {{.State.ExitCode}}' gone", All),
        step("rm gone", All),
        step(
            "run -d --network none --name c1 -e A=1 -w /tmp -l tier=web busybox sh -c 'echo out; echo err >&2; exec sleep 1000'",
            All,
        ),
        step("ps --format '{{.Names}}|{{.Image}}|{{.Command}}|{{.Labels}}|{{.Status}}'", Code),
        step("ps --format '{{.Names}}|{{.Image}}|{{.Command}}|{{.Labels}}'", All),
        step("ps -a --filter label=tier=web --format '{{.Names}}'", All),
        step("ps -q --no-trunc --filter name=c1", All),
        // (logs are waited for before this step)
        step("logs c1", All),
        // Two streams written at once: which line is last differs from run to run (on
        // dockerd too), so the tail takes both.
        step("logs --tail 2 c1", All),
        // exec.
        step("exec c1 sh -c 'echo $A; pwd'", All),
        step("exec -u 1000 c1 id -u", All),
        step("exec -e B=2 -w / c1 sh -c 'echo $B; pwd'", All),
        step("exec c1 sh -c 'exit 4'", All),
        step_in("exec -i c1 cat", "piped\n", All),
        // top, stats, pause, rename, update, port.
        step("top c1 -o comm", All),
        step("stats --no-stream --format '{{.Name}}' c1", All),
        step("pause c1", All),
        step("inspect -f '{{.State.Status}} {{.State.Paused}}' c1", All),
        step("unpause c1", All),
        step("inspect -f '{{.State.Status}}' c1", All),
        step("rename c1 c2", All),
        step("ps --format '{{.Names}}'", All),
        step("update --memory 64m --memory-swap 128m --cpu-shares 512 c2", All),
        step(
            "inspect -f '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}}' c2",
            All,
        ),
        step("port c2", All),
        // cp both ways, diff, export.
        step("cp {work}/host.txt c2:/tmp/copied.txt", All),
        step("exec c2 cat /tmp/copied.txt", All),
        step("cp c2:/tmp/copied.txt {work}/back.txt", All),
        step("exec c2 rm /bin/true", All),
        step("diff c2", SortedStdout),
        step("export -o {work}/c2.tar c2", All),
        // commit, and run the result.
        step("commit -c 'ENV COMMITTED=yes' -m note c2 snap:1", Code),
        step("run --rm --network none snap:1 sh -c 'cat /tmp/copied.txt; echo $COMMITTED; ls /bin/true'", Stdout),
        step("history --format '{{.Comment}}' snap:1", All),
        // stop, start, restart, kill, wait.
        step("stop -t 1 c2", All),
        step("wait c2", All),
        step("inspect -f '{{.State.Status}} {{.State.ExitCode}}' c2", All),
        step("start c2", All),
        step("restart -t 1 c2", All),
        step("inspect -f '{{.State.Running}} {{.RestartCount}}' c2", All),
        step("kill -s KILL c2", All),
        step("wait c2", All),
        // create + start -a; errors.
        step("create --network none --name c3 busybox echo created", All),
        step("start -a c3", All),
        step("start c3", Code),
        step("wait c3", All),
        step("rm c2 c3", All),
        step("rm no-such-container", All),
        step("stop no-such-container", All),
        step("run --network none --name c4 -d busybox sleep 1000", All),
        step("rm c4", Stdout),
        step("rm -f c4", All),
        // prune, df, images.
        step("create --network none --name left busybox true", All),
        step("container prune -f", Code),
        step("ps -a --format '{{.Names}}'", All),
        step("system df --format '{{.Type}} {{.TotalCount}} {{.Active}}'", All),
        step("images --format '{{.Repository}}:{{.Tag}}'", SortedStdout),
        step("rmi snap:1", Stdout),
        step("info --format '{{.Containers}} {{.ContainersRunning}} {{.Images}}'", All),
    ]
}

#[test]
fn same_results_as_real_dockerd() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let Some(dockerd) =
        IsolatedDockerd::start_or_skip("docker_scenario", DockerdOptions::default())
    else {
        return;
    };
    let pierd = Pierd::start();
    let engines: [(&str, &dyn Engine); 2] = [("pierd", &pierd), ("dockerd", &dockerd)];
    let steps = script();
    let mut results: Vec<Vec<String>> = Vec::new();
    for (label, e) in engines {
        let dir = work.path().join(label);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("host.txt"), "from the host\n").expect("write");
        e.docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &rootfs)
            .ok()
            .unwrap_or_else(|err| panic!("{err}"));
        let mut views = Vec::new();
        for s in &steps {
            if s.args.first().map(String::as_str) == Some("logs") {
                wait_for_logs(e, "c1", "err");
            }
            let out = run_step(e, &dir, s);
            views.push(view(&out, &dir, s.check));
        }
        if label == "pierd" {
            assert_eq!(
                std::fs::read_to_string(dir.join("back.txt"))
                    .ok()
                    .as_deref(),
                Some("from the host\n"),
                "docker cp out of pierd"
            );
        }
        results.push(views);
    }
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
