//! Parity with runc found by running another project's runtime tests (issue 11), and
//! two hardening leftovers: unknown capabilities, HOME from the container's passwd,
//! the hooks' environment, UTS sysctls, exec into a user namespace joined to a named
//! network namespace, the init not dumpable while it sets up, and the sealed copy
//! decided by the kernel rather than by the exe's name.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Writes a process JSON for `exec --process` next to the bundle.
fn process_file(b: &Bundle, name: &str, process: &serde_json::Value) -> String {
    let path = b.path().join(name);
    std::fs::write(&path, process.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---- 1. unknown capabilities ---------------------------------------------------------

#[test]
fn unknown_capabilities_are_skipped_with_a_warning() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&["sh", "-c", "grep CapEff /proc/self/status"]);
        let caps = json!(["CAP_CHOWN", "CAP_UNKNOWN", "CAP_KILL", "CAP_UNKNOWN2"]);
        b.edit(|c| {
            c["process"]["capabilities"] = json!({
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": caps, "ambient": caps
            });
        });
        let log = b.path().join("runtime.log");
        let log_arg = log.to_str().unwrap();
        let id = unique_id("unkcap");
        let out = rt.output(&["--log", log_arg, "run", "--bundle", b.path_str(), &id]);
        let text = log_of(&log);
        assert!(
            out.status.success(),
            "{}: an unknown capability must not be fatal: {} {text}",
            rt.name,
            stderr(&out)
        );
        // CAP_CHOWN (0) and CAP_KILL (5) only.
        assert_eq!(
            stdout(&out).trim(),
            "CapEff:\t0000000000000021",
            "{}",
            rt.name
        );
        let warning = text
            .lines()
            .find(|l| l.contains("ignoring unknown or unavailable capabilities"))
            .unwrap_or_else(|| panic!("{}: no warning in the log: {text}", rt.name));
        assert!(
            warning.contains("level=warning")
                && warning.contains("capabilities: [CAP_UNKNOWN CAP_UNKNOWN2]"),
            "{}: {warning}",
            rt.name
        );

        // exec with an unknown capability of its own: the same warning, and it runs.
        b.edit(|c| c["process"]["args"] = json!(["sleep", "300"]));
        let id = unique_id("unkcapx");
        rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
        let _ = std::fs::remove_file(&log);
        let mut process = b.config["process"].clone();
        process["args"] = json!(["sh", "-c", "grep CapEff /proc/self/status"]);
        let caps = json!(["CAP_KILL", "CAP_NOT_A_CAP"]);
        process["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps
        });
        let pf = process_file(&b, "exec-caps.json", &process);
        let out = rt.output(&["--log", log_arg, "exec", "--process", &pf, &id]);
        rt.ok(&["delete", "--force", &id]);
        let text = log_of(&log);
        assert!(out.status.success(), "{}: {} {text}", rt.name, stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            "CapEff:\t0000000000000020",
            "{}",
            rt.name
        );
        assert!(
            text.contains("ignoring unknown or unavailable capabilities: [CAP_NOT_A_CAP]"),
            "{}: {text}",
            rt.name
        );
    }
}

// ---- 2. HOME from the container's passwd ---------------------------------------------

fn add_passwd_user(rootfs: &Path) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(rootfs.join("etc/passwd"))
        .unwrap();
    writeln!(f, "app:x:1000:1000:App:/home/app:/bin/sh").unwrap();
}

#[test]
fn home_comes_from_the_containers_passwd_when_the_env_has_none() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&["sh", "-c", "echo HOME=$HOME; exec sleep 300"]);
        add_passwd_user(&b.rootfs());
        b.edit(|c| c["process"]["env"] = json!(["PATH=/usr/bin:/bin"]));
        let id = unique_id("home");
        rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
        let exec_home = |extra: &[&str]| {
            let mut args = vec!["exec"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&[&id, "sh", "-c", "echo $HOME"]);
            let out = rt.output(&args);
            assert!(out.status.success(), "{}: {}", rt.name, stderr(&out));
            stdout(&out).trim().to_string()
        };
        let root = exec_home(&[]);
        let app = exec_home(&["--user", "1000:1000"]);
        let nobody = exec_home(&["--user", "65534:65534"]);
        let unknown = exec_home(&["--user", "4242:4242"]);
        let given = exec_home(&["--env", "HOME=/custom"]);
        let empty = exec_home(&["--env", "HOME="]);
        rt.ok(&["delete", "--force", &id]);
        assert_eq!(
            [&*root, &*app, &*nobody, &*unknown, &*given, &*empty],
            [
                "/root",
                "/home/app",
                "/nonexistent",
                "/",
                "/custom",
                "/root"
            ],
            "{}: exec as root, app, nobody, an unlisted uid, with HOME given, with HOME empty",
            rt.name
        );

        // The container's init too.
        let mut b = Bundle::new(&["sh", "-c", "echo $HOME"]);
        add_passwd_user(&b.rootfs());
        b.edit(|c| {
            c["process"]["env"] = json!(["PATH=/usr/bin:/bin"]);
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        });
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("homei")]);
        assert!(out.status.success(), "{}: {}", rt.name, stderr(&out));
        assert_eq!(stdout(&out).trim(), "/home/app", "{}: init", rt.name);
    }
}

/// The passwd file belongs to the image: it is read inside the container's root, and
/// one that is not a regular file (a FIFO nobody writes) neither blocks nor is used.
#[test]
fn home_lookup_stays_inside_the_root_and_does_not_block() {
    require_root();
    let rt = pier();
    let mut b = Bundle::new(&["sleep", "300"]);
    b.edit(|c| c["process"]["env"] = json!(["PATH=/usr/bin:/bin"]));
    let passwd = b.rootfs().join("etc/passwd");
    // A link that leaves the root on the host leads to the rootfs' own file.
    std::fs::create_dir_all(b.rootfs().join("elsewhere")).unwrap();
    std::fs::write(
        b.rootfs().join("elsewhere/passwd"),
        "root:x:0:0:root:/inside-the-root:/bin/sh\n",
    )
    .unwrap();
    std::fs::remove_file(&passwd).unwrap();
    std::os::unix::fs::symlink("../../../../../../../elsewhere/passwd", &passwd).unwrap();
    let id = unique_id("homeroot");
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let through_link = rt.output(&["exec", &id, "sh", "-c", "echo $HOME"]);
    std::fs::remove_file(&passwd).unwrap();
    let made = Command::new("mkfifo").arg(&passwd).status().unwrap();
    assert!(made.success());
    let mut cmd = rt.cmd();
    cmd.args(["exec", &id, "sh", "-c", "echo $HOME"]);
    let fifo = pier_testsupport::run(&mut cmd, Duration::from_secs(20));
    rt.ok(&["delete", "--force", &id]);
    assert!(through_link.status.success(), "{}", stderr(&through_link));
    assert_eq!(stdout(&through_link).trim(), "/inside-the-root");
    let fifo = fifo.expect("exec must not block on a FIFO /etc/passwd");
    assert_eq!(fifo.code, Some(0), "{}", fifo.stderr);
    assert_eq!(fifo.stdout.trim(), "/");
}

// ---- 3. hooks' environment -----------------------------------------------------------

/// A hook that copies the environment it was started with to `dir/name`: busybox,
/// started directly, reads its own /proc/self/environ (no shell adds PWD, no exec
/// drops the memory the file reads, and /proc/self works from a pid namespace).
fn env_hook(dir: &Path, name: &str, env: serde_json::Value) -> serde_json::Value {
    json!({
        "path": BUSYBOX,
        "args": ["cp", "/proc/self/environ", dir.join(name)],
        "env": env
    })
}

/// What [`env_hook`] wrote, one variable a line.
fn hook_env(dir: &Path, name: &str) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(dir.join(name))?.replace('\0', "\n"))
}

#[test]
fn hooks_get_exactly_the_environment_the_spec_gives_them() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&["true"]);
        let dir = b.path().join("hook-env");
        std::fs::create_dir(&dir).unwrap();
        let env = json!(["A=1", "B=two words"]);
        b.edit(|c| {
            c["hooks"] = json!({
                "prestart": [env_hook(&dir, "prestart", env.clone())],
                "createRuntime": [env_hook(&dir, "createRuntime", env.clone())],
                "createContainer": [env_hook(&dir, "createContainer", env.clone())],
                "poststart": [env_hook(&dir, "poststart", env.clone())],
                "poststop": [env_hook(&dir, "poststop", env.clone())]
            });
        });
        let out = rt
            .cmd()
            .args(["run", "--bundle", b.path_str(), &unique_id("hookenv")])
            .env("PIER_TEST_LEAK", "from-the-runtime")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", rt.name, stderr(&out));
        for name in [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop",
        ] {
            let got = hook_env(&dir, name)
                .unwrap_or_else(|e| panic!("{}: {name} hook did not run: {e}", rt.name));
            assert_eq!(got, "A=1\nB=two words\n", "{}: {name}", rt.name);
        }
    }
}

/// Nothing of the runtime's environment reaches a hook: not with an empty `env`, and
/// not its PATH either — a bare hook path is the bundle's file, as runc's exec of it
/// (relative to the bundle), never a program found through the runtime's PATH.
#[test]
fn hooks_inherit_nothing_from_the_runtime() {
    require_root();
    let rt = pier();
    let mut b = Bundle::new(&["true"]);
    let dir = b.path().join("hook-env");
    std::fs::create_dir(&dir).unwrap();
    b.edit(|c| c["hooks"] = json!({"prestart": [env_hook(&dir, "empty", json!([]))]}));
    let out = rt
        .cmd()
        .args(["run", "--bundle", b.path_str(), &unique_id("hookempty")])
        .env("PIER_TEST_LEAK", "from-the-runtime")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(hook_env(&dir, "empty").unwrap(), "");

    // `sh` is in the runtime's PATH, not in the bundle: the hook cannot start.
    let marker = dir.join("ran");
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{
            "path": "sh",
            "args": ["sh", "-c", format!("touch {}", marker.display())]
        }]})
    });
    let id = unique_id("hookpath");
    let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
    assert!(!out.status.success(), "a hook found through PATH ran");
    assert!(
        stderr(&out).contains("error running hook"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    assert!(!rt.root.path().join(&id).exists(), "state left behind");

    // The same bare name as a file of the bundle runs.
    std::fs::copy("/bin/sh", b.path().join("sh")).unwrap();
    let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("hookpath")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(marker.exists(), "the bundle's own hook did not run");
}

// ---- 4. UTS sysctls ------------------------------------------------------------------

fn host_domainname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap()
}

#[test]
fn uts_sysctls_apply_with_a_new_uts_namespace() {
    require_root();
    let host = host_domainname();
    for rt in runtimes() {
        let mut b = Bundle::new(&["cat", "/proc/sys/kernel/domainname"]);
        b.edit(|c| c["linux"]["sysctl"] = json!({"kernel.domainname": "parity.example"}));
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("utsdom")]);
        assert!(out.status.success(), "{}: {}", rt.name, stderr(&out));
        assert_eq!(stdout(&out).trim(), "parity.example", "{}", rt.name);

        // Without a UTS namespace of its own, the container would change the host's.
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            c["linux"]["sysctl"] = json!({"kernel.domainname": "host.example"});
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "uts");
            c.as_object_mut().unwrap().remove("hostname");
        });
        let id = unique_id("utsnone");
        let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
        assert!(!out.status.success(), "{}: accepted", rt.name);
        assert!(
            stderr(&out).contains("kernel.domainname"),
            "{}: {}",
            rt.name,
            stderr(&out)
        );
        assert!(
            !rt.root.path().join(&id).exists(),
            "{}: state left",
            rt.name
        );
        assert_eq!(host_domainname(), host, "{}", rt.name);
    }
    // kernel.hostname too (runc refuses it beside the spec's hostname field).
    let rt = pier();
    let mut b = Bundle::new(&["hostname"]);
    b.edit(|c| {
        c["linux"]["sysctl"] = json!({"kernel.hostname": "from-sysctl"});
        c.as_object_mut().unwrap().remove("hostname");
    });
    let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("utshost")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "from-sysctl");
}

/// In a new user namespace the container's root is not the host's root, so /proc/sys
/// refuses it the UTS files (runc and crun fail here); the UTS namespace is its own,
/// and sethostname/setdomainname are what the sysctls mean.
#[test]
fn uts_sysctls_apply_in_a_new_user_namespace() {
    require_root();
    let rt = pier();
    let mut b = Bundle::new(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"]);
    b.with_user_namespace();
    b.edit(|c| {
        c["linux"]["sysctl"] =
            json!({"kernel.domainname": "userns.example", "kernel.hostname": "userns-host"});
        c.as_object_mut().unwrap().remove("hostname");
    });
    let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("utsuserns")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "userns-host\nuserns.example\n");
}

// ---- 5. exec: a new user namespace and a network namespace joined by path -------------

/// A named network namespace (`ip netns add`), deleted when dropped.
struct NamedNetns(String);

impl NamedNetns {
    fn new(test: &str) -> Option<NamedNetns> {
        if !pier_testsupport::require_tools(test, &["ip"]) {
            return None;
        }
        let name = pier_testsupport::unique_name("piertest-ns-");
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        if !status.success() {
            pier_testsupport::skip(test, "`ip netns add` fails on this host");
            return None;
        }
        Some(NamedNetns(name))
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn ns_inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

const TEST_USERNS_NETNS: &str = "exec_joins_a_named_netns_of_a_user_namespace_container";

#[test]
fn exec_joins_a_named_netns_of_a_user_namespace_container() {
    require_root();
    let Some(netns) = NamedNetns::new(TEST_USERNS_NETNS) else {
        return;
    };
    let rt = pier();
    let mut b = Bundle::new(&["sleep", "300"]);
    b.with_user_namespace();
    let hook_dir = b.path().join("hook-ns");
    std::fs::create_dir(&hook_dir).unwrap();
    let ns_hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("stat -L -c %i /proc/self/ns/net > {}/{name}", hook_dir.display())]})
    };
    let netns_path = netns.path();
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(netns_path);
            }
        }
        c["hooks"] = json!({
            "prestart": [ns_hook("prestart")],
            "createRuntime": [ns_hook("createRuntime")],
        });
    });
    let id = unique_id("usernsnet");
    let created = rt.output(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let exec = rt.output(&[
        "exec",
        &id,
        "sh",
        "-c",
        "stat -L -c %i /proc/self/ns/net; cat /proc/self/uid_map; id -u",
    ]);
    let _ = rt.output(&["delete", "--force", &id]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(exec.status.success(), "{}", stderr(&exec));
    let text = stdout(&exec);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(ns_inode(&netns.path()).to_string().as_str()),
        "exec is not in the named netns: {text}"
    );
    assert_eq!(
        lines
            .get(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["0", "100000", "65536"]),
        "{text}"
    );
    assert_eq!(lines.get(2).copied(), Some("0"), "{text}");
    // The OCI spec: prestart and createRuntime hooks run in the runtime's namespace,
    // not in the container's network namespace the runtime joined for the clone.
    let own = ns_inode(Path::new("/proc/self/ns/net")).to_string();
    for name in ["prestart", "createRuntime"] {
        let got = std::fs::read_to_string(hook_dir.join(name)).unwrap();
        assert_eq!(got.trim(), own, "{name} hook ran in another netns");
    }
}

// ---- 6. the init is not dumpable while it sets up ------------------------------------

const TEST_DUMPABLE: &str = "the_init_is_not_dumpable_until_its_final_exec";

/// `readlink /proc/PID/fd/0` by a process as another container of the same kind
/// would be: uid 0 with exactly `caps` (no CAP_SYS_PTRACE). The kernel lets it
/// through while the target is dumpable and holds no capability it lacks.
fn peer_reads_fds(pid: i64, caps: &[String]) -> bool {
    let keep: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.to_ascii_lowercase().trim_start_matches("cap_")))
        .collect();
    let out = Command::new("setpriv")
        .arg(format!("--bounding-set=-all,{}", keep.join(",")))
        .arg("--inh-caps=-all")
        .args(["readlink", &format!("/proc/{pid}/fd/0")])
        .output()
        .unwrap();
    out.status.success()
}

/// Between create and start the init waits with the container's capabilities and
/// user already applied, holding the exec fifo: a peer (a process of another
/// container sharing its pid namespace, same uid and capabilities, no CAP_SYS_PTRACE)
/// must not read its descriptors or ptrace it. It becomes an ordinary process at its
/// final execve, where the same peer reaches it (the probe works). What the runtime
/// writes to the init's /proc (id maps, oom_score_adj) is still written.
#[test]
fn the_init_is_not_dumpable_until_its_final_exec() {
    require_root();
    if !pier_testsupport::require_tools(TEST_DUMPABLE, &["setpriv", "readlink"]) {
        return;
    }
    let rt = pier();
    let b = Bundle::new(&["sleep", "300"]);
    let caps: Vec<String> =
        serde_json::from_value(b.config["process"]["capabilities"]["permitted"].clone()).unwrap();
    assert!(!caps.iter().any(|c| c == "CAP_SYS_PTRACE"), "{caps:?}");
    let id = unique_id("dumpable");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let while_created = peer_reads_fds(pid, &caps);
    let started = rt.output(&["start", &id]);
    // `sleep` is running once the init's cmdline says so.
    let running = (0..500).any(|_| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        cmdline.starts_with(b"sleep\0") || {
            std::thread::sleep(Duration::from_millis(10));
            false
        }
    });
    let after_exec = running && peer_reads_fds(pid, &caps);
    let _ = rt.output(&["delete", "--force", &id]);
    assert!(started.status.success(), "{}", stderr(&started));
    assert!(running, "the container's program never ran");
    assert!(
        !while_created,
        "a peer read the descriptors of the init waiting for start"
    );
    assert!(
        after_exec,
        "the probe cannot reach even the running program"
    );

    // In a user namespace, what the runtime writes to the init's /proc took.
    let id = unique_id("dumpable2");
    let mut b2 = Bundle::new(&["sh", "-c", "cat /proc/self/oom_score_adj; id -u"]);
    b2.with_user_namespace();
    b2.edit(|c| c["process"]["oomScoreAdj"] = json!(321));
    let out = rt.output(&["run", "--bundle", b2.path_str(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "321\n0\n");
}

// ---- 7. the sealed copy, decided by the kernel ---------------------------------------

/// A directory at the host's root, removed when dropped.
struct RootDir(PathBuf);

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime installed below a host directory named like its own memfd
/// (`/memfd:pier-runtime…`) is still re-executed from a sealed copy: while it sets a
/// container up, its /proc/<pid>/exe is not the file on disk.
#[test]
fn a_runtime_under_a_memfd_like_path_still_runs_from_a_sealed_copy() {
    require_root();
    let dir = RootDir(PathBuf::from(format!(
        "/{}",
        pier_testsupport::unique_name("memfd:pier-runtime-parity-")
    )));
    std::fs::create_dir(&dir.0).unwrap();
    let bin = dir.0.join("pier-runtime");
    std::fs::copy(env!("CARGO_BIN_EXE_pier-runtime"), &bin).unwrap();
    let rt = Runtime {
        name: "pier-runtime under /memfd:".into(),
        bin: bin.clone(),
        root: tempfile::tempdir().unwrap(),
    };
    let mut b = Bundle::new(&["true"]);
    let report = b.path().join("exe");
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("stat -L -c %d:%i /proc/$PPID/exe > {r}; readlink /proc/$PPID/exe >> {r}",
                r = report.display())]}]})
    });
    let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("memfdname")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::metadata(&bin).unwrap();
    let on_disk = format!(
        "{}:{}",
        std::os::unix::fs::MetadataExt::dev(&meta),
        std::os::unix::fs::MetadataExt::ino(&meta)
    );
    let got = std::fs::read_to_string(&report).unwrap();
    let mut lines = got.lines();
    assert_ne!(
        lines.next(),
        Some(on_disk.as_str()),
        "the runtime ran from its binary on disk, unsealed: {got}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("/memfd:pier-runtime (deleted)")),
        "{got}"
    );
}
