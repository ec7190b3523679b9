//! Lifecycle races on one container name (issue 11): parallel create/start/remove of
//! one name, concurrent starts of one container, and a pierd killed in the middle of
//! such a race. Nothing may be left behind: no namespace, veth, directory, mount,
//! process, runtime state or record that the API does not list, and the name is free
//! again at the end.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::{mounts_under, pierd_with_busybox, wait_until, Pierd};

const WORKERS: usize = 50;
const ROUNDS: usize = 4;
const NAME: &str = "race-x";
/// Default bridge network and a long-running command, so that veths are made and
/// the kill path of a forced remove runs.
const BODY: &str = r#"{"Image":"busybox","Cmd":["sleep","100"]}"#;

/// One HTTP/1.1 request over the daemon's socket: the status (0 when the daemon did
/// not answer) and the body.
fn api(sock: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return (0, "connect failed".into());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(180)));
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: pierd\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(request.as_bytes()).is_err() {
        return (0, "write failed".into());
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// What one API call answered, for the report of a failure.
#[derive(Debug, Clone)]
struct Answer {
    op: &'static str,
    status: u16,
    body: String,
}

/// `WORKERS` threads × `ROUNDS` of create `NAME`, start it, force-remove it. Returns
/// every answer and the IDs created; `progress` counts the answers as they come.
fn race(sock: &Path, progress: &Arc<AtomicUsize>) -> (Vec<Answer>, HashSet<String>) {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let ids = Arc::new(Mutex::new(HashSet::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let sock = sock.to_path_buf();
            let answers = answers.clone();
            let ids = ids.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let create = format!("/containers/create?name={NAME}");
                    let start = format!("/containers/{NAME}/start");
                    let remove = format!("/containers/{NAME}?force=1");
                    let mut mine = Vec::new();
                    for (op, method, path, body) in [
                        ("create", "POST", create.as_str(), Some(BODY)),
                        ("start", "POST", start.as_str(), None),
                        ("remove", "DELETE", remove.as_str(), None),
                    ] {
                        let (status, body) = api(&sock, method, path, body);
                        if op == "create" && status == 201 {
                            if let Some(id) = serde_json::from_str::<Value>(&body)
                                .ok()
                                .and_then(|v| v["Id"].as_str().map(str::to_string))
                            {
                                ids.lock().unwrap().insert(id);
                            }
                        }
                        mine.push(Answer { op, status, body });
                        progress.fetch_add(1, Ordering::SeqCst);
                        if status == 0 {
                            // The daemon is gone (the crash variant): stop here.
                            answers.lock().unwrap().extend(mine);
                            return;
                        }
                    }
                    answers.lock().unwrap().extend(mine);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let answers = answers.lock().unwrap().clone();
    let ids = ids.lock().unwrap().clone();
    (answers, ids)
}

/// Answers outside Docker's set for the operation: internal errors and bad requests
/// are the race showing through.
fn unexpected(answers: &[Answer]) -> Vec<&Answer> {
    answers
        .iter()
        .filter(|a| {
            let allowed: &[u16] = match a.op {
                "create" => &[201, 409],
                "start" => &[204, 304, 404, 409],
                _ => &[204, 404, 409],
            };
            !allowed.contains(&a.status)
        })
        .collect()
}

/// The containers the API lists: (ID, running).
fn listed(sock: &Path) -> Vec<(String, bool, String)> {
    let (status, body) = api(sock, "GET", "/containers/json?all=1", None);
    assert_eq!(status, 200, "list: {body}");
    let v: Value = serde_json::from_str(&body).expect("list JSON");
    v.as_array()
        .expect("list array")
        .iter()
        .map(|c| {
            let state = c["State"].as_str().unwrap_or_default().to_string();
            (
                c["Id"].as_str().unwrap_or_default().to_string(),
                state == "running",
                state,
            )
        })
        .collect()
}

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Command lines of processes other than pierd that name this daemon's exec root
/// (monitors, runtime calls, a container init still waiting on its FIFO).
fn daemon_processes(pierd: &Pierd) -> Vec<String> {
    let needle = pierd.exec_root().display().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == pierd.pid() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(&needle) {
            out.push(format!("{pid}: {text}"));
        }
    }
    out
}

/// Processes inside the cgroup of one of `ids`.
fn container_processes(ids: &HashSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if let Some(id) = ids
            .iter()
            .find(|id| cgroup.contains(&format!("/pier/{id}")))
        {
            out.push(format!("{pid} in container {}", &id[..12]));
        }
    }
    out
}

/// Host veths on the daemon's default bridge.
fn bridge_veths(pierd: &Pierd) -> Vec<String> {
    let bridge = pierd.bridge().expect("test pierd has its own bridge");
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", &bridge])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What the daemon holds that the containers the API lists do not explain. With
/// nothing listed, anything at all is a leak.
fn leftovers(pierd: &Pierd, created: &HashSet<String>) -> Vec<String> {
    let sock = pierd.socket();
    let containers = listed(&sock);
    let ids: HashSet<String> = containers.iter().map(|c| c.0.clone()).collect();
    let short: HashSet<String> = ids.iter().map(|id| id[..16].to_string()).collect();
    let running = containers.iter().filter(|c| c.1).count();
    let mut problems = Vec::new();
    for (id, _, state) in &containers {
        if state == "removing" {
            problems.push(format!("container {id} stuck in removal"));
        }
    }
    let exec = pierd.exec_root();
    let data = pierd.data_root();
    let netns = dir_names(&exec.join("netns"));
    if netns.len() > running || netns.iter().any(|n| !short.contains(n)) {
        problems.push(format!(
            "namespaces {netns:?} for {running} running containers"
        ));
    }
    let veths = bridge_veths(pierd);
    if veths.len() > running {
        problems.push(format!("veths for {running} running containers: {veths:?}"));
    }
    for name in dir_names(&data.join("containers")) {
        if !ids.contains(&name) {
            problems.push(format!("container dir {name} not listed"));
        }
    }
    for name in dir_names(&exec.join("c")) {
        if !short.contains(&name) {
            problems.push(format!("exec dir {name} not listed"));
        }
    }
    for runtime in dir_names(&exec.join("runtime")) {
        for name in dir_names(&exec.join("runtime").join(&runtime)) {
            // The runtime's cache of compiled seccomp filters is no container's.
            if !ids.contains(&name) && name != pier_runtime::seccomp_cache::DIR_NAME {
                problems.push(format!("{runtime} state {name} not listed"));
            }
        }
    }
    // A running container holds its rootfs and its namespace's bind mount.
    let mounts = mounts_under(pierd.dir());
    if mounts.len() > 2 * running {
        problems.push(format!(
            "{} mounts for {running} running containers: {mounts:#?}",
            mounts.len()
        ));
    }
    let monitors = pierd.monitor_pids();
    if monitors.len() > running {
        problems.push(format!(
            "{} monitors for {running} running containers: {:?}",
            monitors.len(),
            daemon_processes(pierd)
        ));
    }
    if running == 0 {
        let procs = daemon_processes(pierd);
        if !procs.is_empty() {
            problems.push(format!("processes of the daemon left: {procs:#?}"));
        }
    }
    let gone: HashSet<String> = created.difference(&ids).cloned().collect();
    let procs = container_processes(&gone);
    if !procs.is_empty() {
        problems.push(format!("processes of removed containers: {procs:?}"));
    }
    // Their cgroups, in every hierarchy (v1 controllers and a v2 mount below
    // /sys/fs/cgroup, or a v2 root on it: "").
    for hierarchy in std::iter::once(String::new()).chain(dir_names(Path::new("/sys/fs/cgroup"))) {
        for id in &gone {
            let dir = Path::new("/sys/fs/cgroup")
                .join(&hierarchy)
                .join("pier")
                .join(id);
            if dir.exists() {
                problems.push(format!("cgroup {} left", dir.display()));
            }
        }
    }
    problems
}

/// Waits (briefly) for the daemon's state to settle, then asserts nothing leaked.
fn assert_no_leftovers(pierd: &Pierd, created: &HashSet<String>, when: &str) {
    let mut problems = Vec::new();
    let settled = wait_until(Duration::from_secs(20), || {
        problems = leftovers(pierd, created);
        problems.is_empty()
    });
    assert!(
        settled,
        "{when}: leftovers:\n{}\n--- pierd log:\n{}",
        problems.join("\n"),
        pierd.log_tail(40)
    );
}

/// Removes every container, checks that nothing at all is left, and that the name
/// can be created, started and removed again.
fn assert_clean_and_name_free(pierd: &Pierd, created: &HashSet<String>, when: &str) {
    let sock = pierd.socket();
    for (id, _, _) in listed(&sock) {
        let (status, body) = api(&sock, "DELETE", &format!("/containers/{id}?force=1"), None);
        assert_eq!(status, 204, "{when}: remove {id}: {body}");
    }
    assert!(listed(&sock).is_empty(), "{when}: containers still listed");
    assert_no_leftovers(pierd, created, when);
    let (status, body) = api(
        &sock,
        "POST",
        &format!("/containers/create?name={NAME}"),
        Some(BODY),
    );
    assert_eq!(status, 201, "{when}: the name is not free: {body}");
    let (status, body) = api(&sock, "POST", &format!("/containers/{NAME}/start"), None);
    assert_eq!(status, 204, "{when}: start: {body}");
    let (status, body) = api(
        &sock,
        "DELETE",
        &format!("/containers/{NAME}?force=1"),
        None,
    );
    assert_eq!(status, 204, "{when}: remove: {body}");
    assert_no_leftovers(pierd, created, when);
}

/// How many answers of each operation had each status, for the test's output.
fn tally(answers: &[Answer]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for a in answers {
        *counts.entry((a.op, a.status)).or_insert(0) += 1;
    }
    counts
        .iter()
        .map(|((op, status), n)| format!("{op} {status}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(answers: &[Answer]) -> String {
    let bad = unexpected(answers);
    bad.iter()
        .take(10)
        .map(|a| format!("{} → {} {}", a.op, a.status, a.body.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn create_start_remove_of_one_name_leaves_nothing() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let sock = pierd.socket();
    let (answers, mut created) = race(&sock, &Arc::default());
    eprintln!("race: {}", tally(&answers));
    assert!(
        unexpected(&answers).is_empty(),
        "answers outside Docker's:\n{}",
        report(&answers)
    );
    assert!(
        answers.iter().any(|a| a.op == "start" && a.status == 204),
        "no start succeeded: the race ran nothing"
    );
    assert_no_leftovers(&pierd, &created, "after the race");
    assert_clean_and_name_free(&pierd, &created, "after the race");

    // The same again, then a restart: what recovery finds must be consistent too.
    let (answers, more) = race(&sock, &Arc::default());
    eprintln!("race: {}", tally(&answers));
    created.extend(more);
    assert!(unexpected(&answers).is_empty(), "{}", report(&answers));
    pierd.crash_and_restart(Duration::from_millis(100));
    assert_no_leftovers(&pierd, &created, "after a restart");
    assert_clean_and_name_free(&pierd, &created, "after a restart");

    // And pierds killed in the middle of the race, at moments spread around a start
    // and a removal: recovery finishes or rolls back whatever it finds (a removal
    // under way is finished, a start under way undone).
    let total = WORKERS * ROUNDS * 3;
    for cut in [total / 20, total / 8, total / 4, total / 2] {
        let progress = Arc::new(AtomicUsize::new(0));
        let racing = {
            let sock = sock.clone();
            let progress = progress.clone();
            std::thread::spawn(move || race(&sock, &progress))
        };
        while progress.load(Ordering::SeqCst) < cut && !racing.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        pierd.crash_and_restart_with(Duration::from_millis(100), || {
            let (answers, more) = racing.join().expect("race thread");
            eprintln!(
                "race cut by a crash after {cut} answers: {}",
                tally(&answers)
            );
            created.extend(more);
        });
        let when = format!("after a crash mid-race (after {cut} answers)");
        assert_no_leftovers(&pierd, &created, &when);
        assert_clean_and_name_free(&pierd, &created, &when);
    }
}

#[test]
fn concurrent_starts_of_one_container_answer_one_204_and_304s() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let sock = pierd.socket();
    let (status, body) = api(&sock, "POST", "/containers/create?name=starts", Some(BODY));
    assert_eq!(status, 201, "{body}");
    let starts: Vec<_> = (0..10)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || api(&sock, "POST", "/containers/starts/start", None))
        })
        .collect();
    let answers: Vec<(u16, String)> = starts
        .into_iter()
        .map(|t| t.join().expect("start thread"))
        .collect();
    let ok = answers.iter().filter(|a| a.0 == 204).count();
    let not_modified = answers.iter().filter(|a| a.0 == 304).count();
    assert!(
        ok == 1 && not_modified == 9,
        "want one 204 and nine 304: {answers:?}"
    );
    let created: HashSet<String> = listed(&sock).into_iter().map(|c| c.0).collect();
    assert_no_leftovers(&pierd, &created, "after concurrent starts");
    assert_clean_and_name_free(&pierd, &created, "after concurrent starts");
}

/// Deletes a runtime container the test made, also when the test fails.
struct RuntimeContainer {
    runtime: std::path::PathBuf,
    root: std::path::PathBuf,
    id: String,
}

impl Drop for RuntimeContainer {
    fn drop(&mut self) {
        let _ = pier_testsupport::run(
            Command::new(&self.runtime)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "--force", &self.id]),
            Duration::from_secs(30),
        );
    }
}

fn runtime_binary() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pierd")).with_file_name("pier-runtime")
}

/// A bundle in `work` for the container `id`: `sleep 100` in the busybox rootfs
/// that `pierd_with_busybox` left in `work`, in pierd's cgroup parent.
fn sleep_bundle(work: &Path, id: &str) -> std::path::PathBuf {
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle dir");
    pier_testsupport::run_ok(
        Command::new(runtime_binary())
            .arg("spec")
            .current_dir(&bundle),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config_path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("config.json")).expect("json");
    config["root"]["path"] = work.join("rootfs").display().to_string().into();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sleep", "100"]);
    config["linux"]["cgroupsPath"] = format!("/pier/{id}").into();
    std::fs::write(&config_path, config.to_string()).expect("write config.json");
    bundle
}

#[test]
fn restart_ends_a_created_container_no_record_explains() {
    let Some((mut pierd, work)) = pierd_with_busybox() else {
        return;
    };
    // What a crash between a monitor's create and pierd's start leaves: a container
    // in the runtime's state, its init blocked on the FIFO, and no record running it.
    let id = format!("{:064x}", std::process::id());
    let bundle = sleep_bundle(work.path(), &id);
    let root = pierd.exec_root().join("runtime").join("pier-runtime");
    std::fs::create_dir_all(&root).expect("runtime root");
    let stray = RuntimeContainer {
        runtime: runtime_binary(),
        root: root.clone(),
        id: id.clone(),
    };
    pier_testsupport::run_ok(
        Command::new(runtime_binary())
            .arg("--root")
            .arg(&root)
            .args(["create", "--bundle"])
            .arg(&bundle)
            .arg(&id),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let created: HashSet<String> = [id.clone()].into();
    assert!(
        !leftovers(&pierd, &created).is_empty(),
        "the stray container is not seen: this test would prove nothing"
    );
    pierd.crash_and_restart(Duration::from_millis(100));
    assert_no_leftovers(&pierd, &created, "after a restart");
    drop(stray);
}

#[test]
fn a_monitor_whose_start_never_comes_ends_its_container() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    // A monitor as pierd starts one, whose pierd then never sends `start` (it died).
    let id = format!("{:063x}1", std::process::id());
    let bundle = sleep_bundle(work.path(), &id);
    let root = pierd.exec_root().join("runtime").join("pier-runtime");
    let _stray = RuntimeContainer {
        runtime: runtime_binary(),
        root: root.clone(),
        id: id.clone(),
    };
    let exit_file = bundle.join("exit.json");
    let config = serde_json::json!({
        "id": id,
        "bundle": bundle,
        "runtime": runtime_binary(),
        "runtime_root": root,
        "log_path": null,
        "log_max_size": 0,
        "log_max_files": 1,
        "exit_file": exit_file,
        "control_socket": bundle.join("control.sock"),
        "rootfs": null,
        "stdin": false,
        "stdin_once": false,
        "tty": false,
        "start_timeout": 2,
    });
    let config_path = bundle.join("monitor.json");
    std::fs::write(&config_path, config.to_string()).expect("monitor.json");
    let mut monitor = Command::new(env!("CARGO_BIN_EXE_pierd"))
        .arg("monitor")
        .arg(&config_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the monitor");
    let mut report = String::new();
    if let Some(out) = monitor.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut report);
    }
    let report: Value = serde_json::from_str(report.trim()).expect("monitor report");
    let init = report["pid"]
        .as_i64()
        .expect("the monitor created the container");
    assert!(
        Path::new(&format!("/proc/{init}")).exists(),
        "the created init is not there: this test would prove nothing"
    );
    let ended = pier_testsupport::wait_deadline(&mut monitor, Duration::from_secs(30));
    if ended.is_none() {
        let _ = monitor.kill();
        let _ = monitor.wait();
    }
    assert!(
        ended.is_some(),
        "the monitor still waits for a start after 30 s"
    );
    let exit: Value =
        serde_json::from_slice(&std::fs::read(&exit_file).expect("exit.json")).expect("json");
    assert_eq!(exit["exit_code"], 137, "{exit}");
    // The monitor reaps what it ends: no process by that pid is left.
    assert!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "the container's init {init} outlived its monitor"
    );
    assert!(
        !root.join(&id).exists(),
        "the runtime still has the container"
    );
}
