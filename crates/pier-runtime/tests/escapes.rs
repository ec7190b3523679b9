//! Ways out of the container through the runtime itself (issue 11): a leaked host
//! directory descriptor as the working directory (CVE-2024-21626 class), symlink chains
//! and loops in the rootfs that used to resolve on the host, and running without the
//! sealed copy of the runtime binary. Each asserts on the host what was reachable or
//! created, not only the exit code.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;
use serde_json::json;

/// The descriptor number the "leaked" host directory gets in the runtime.
const LEAKED_FD: i32 = 7;

/// A host directory with a secret in it, that nothing in a container may reach.
struct HostDir {
    dir: tempfile::TempDir,
    secret: String,
}

impl HostDir {
    fn new() -> HostDir {
        let dir = tempfile::Builder::new()
            .prefix("pier-host-secret")
            .tempdir()
            .unwrap();
        let secret = format!("host-secret-{}", std::process::id());
        std::fs::write(dir.path().join("secret"), &secret).unwrap();
        HostDir { dir, secret }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Everything in the directory but the secret: what a container made there.
    fn intruders(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "secret")
            .collect();
        names.sort();
        names
    }
}

/// Runs the runtime with `dir` open as descriptor [`LEAKED_FD`], inherited without
/// close-on-exec, as a careless parent (or a leaky daemon) would hand it over.
fn output_holding(rt: &Runtime, args: &[&str], dir: &Path) -> Output {
    let held = std::fs::File::open(dir).unwrap();
    let raw = held.as_raw_fd();
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut cmd = rt.cmd();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    // SAFETY: dup2 is async-signal-safe; the copy it makes has no close-on-exec flag.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, LEAKED_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    drop(held);
    Output {
        status,
        stdout: read_file(out),
        stderr: read_file(err),
    }
}

fn read_file(mut f: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}

/// What a process would do with a cwd on the host: read the secret, plant a file.
const RAID: &str = "cat secret; cat ../../../../../../etc/shadow; touch planted; pwd";

#[test]
fn a_cwd_through_a_leaked_directory_descriptor_is_refused() {
    require_root();
    let rt = pier();
    let host = HostDir::new();
    for cwd in [
        format!("/proc/self/fd/{LEAKED_FD}"),
        format!("/proc/self/fd/{LEAKED_FD}/"),
        format!("/proc/self/fd/{LEAKED_FD}/sub"),
        format!("/proc/1/fd/{LEAKED_FD}"),
    ] {
        let mut b = Bundle::new(&["sh", "-c", RAID]);
        b.edit(|c| c["process"]["cwd"] = json!(cwd));
        let id = unique_id("leakcwd");
        let out = output_holding(&rt, &["run", "--bundle", b.path_str(), &id], host.path());
        let _ = rt.output(&["delete", "--force", &id]);
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(
            !o.contains(&host.secret),
            "cwd {cwd}: the host secret was read: {o}"
        );
        assert!(
            !o.contains("root:"),
            "cwd {cwd}: host /etc/shadow was read: {o}"
        );
        assert_eq!(host.intruders(), Vec::<String>::new(), "cwd {cwd}: {o} {e}");
        assert!(!out.status.success(), "cwd {cwd} must be refused: {o} {e}");
    }
}

#[test]
fn exec_with_a_cwd_through_a_leaked_directory_descriptor_is_refused() {
    require_root();
    let rt = pier();
    let host = HostDir::new();
    let b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("leakexec");
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    for cwd in [
        format!("/proc/self/fd/{LEAKED_FD}"),
        format!("/proc/self/fd/{LEAKED_FD}/sub"),
    ] {
        let out = output_holding(
            &rt,
            &["exec", "--cwd", &cwd, &id, "sh", "-c", RAID],
            host.path(),
        );
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(
            !o.contains(&host.secret),
            "cwd {cwd}: the host secret was read: {o}"
        );
        assert_eq!(host.intruders(), Vec::<String>::new(), "cwd {cwd}: {o} {e}");
        assert!(!out.status.success(), "cwd {cwd} must be refused: {o} {e}");
    }
    // A plain exec still works, with the descriptor leaked to the runtime: the
    // process inside sees none of it.
    let out = output_holding(
        &rt,
        &["exec", &id, "sh", "-c", "ls /proc/self/fd; pwd"],
        host.path(),
    );
    let o = stdout(&out);
    assert!(out.status.success(), "{o} {}", stderr(&out));
    let fds: Vec<&str> = o.lines().filter(|l| l.parse::<i32>().is_ok()).collect();
    assert!(
        !fds.contains(&LEAKED_FD.to_string().as_str()),
        "the leaked descriptor reached the exec'd process: {fds:?}"
    );
    rt.ok(&["delete", "--force", &id]);
}

/// A chain of `links` symlinks starting at `rootfs/<name>`, the last one naming
/// `target` (absolute: a host path, were it resolved on the host).
fn link_chain(rootfs: &Path, name: &str, links: usize, target: &Path) {
    let chain = rootfs.join("chain");
    std::fs::create_dir_all(&chain).unwrap();
    let _ = std::fs::remove_dir_all(rootfs.join(name));
    std::os::unix::fs::symlink("chain/1", rootfs.join(name)).unwrap();
    for i in 1..links {
        std::os::unix::fs::symlink((i + 1).to_string(), chain.join(i.to_string())).unwrap();
    }
    std::os::unix::fs::symlink(target, chain.join(links.to_string())).unwrap();
}

fn bind_file(dest: &str, source: &Path) -> serde_json::Value {
    json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind", "ro"]})
}

#[test]
fn symlink_chains_and_loops_in_the_rootfs_create_nothing_on_the_host() {
    require_root();
    let rt = pier();
    let host = HostDir::new();
    let hosts_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(hosts_file.path(), "127.0.0.1 localhost\n").unwrap();
    let source_dir = tempfile::tempdir().unwrap();
    // (how /etc is made, the mounts asked for)
    type Setup = Box<dyn Fn(&Path)>;
    let chain_to_host: Setup = {
        let target = host.path().to_path_buf();
        // Longer than the old resolver's 255 links, ending a few links further on at
        // a host directory: the kernel would have followed the rest on the host.
        Box::new(move |rootfs| link_chain(rootfs, "etc", 261, &target))
    };
    let loop_: Setup = Box::new(|rootfs| {
        std::fs::remove_dir_all(rootfs.join("etc")).unwrap();
        std::os::unix::fs::symlink("loop", rootfs.join("etc")).unwrap();
        std::os::unix::fs::symlink("etc", rootfs.join("loop")).unwrap();
    });
    let mounts = [
        vec![bind_file("/etc/hosts", hosts_file.path())],
        vec![
            json!({"destination": "/etc/sub", "type": "bind", "source": source_dir.path(),
                    "options": ["rbind"]}),
        ],
        vec![json!({"destination": "/etc/tmp", "type": "tmpfs", "source": "tmpfs"})],
    ];
    for (name, setup) in [("chain", &chain_to_host), ("loop", &loop_)] {
        for extra in &mounts {
            let mut b = Bundle::new(&["true"]);
            setup(&b.rootfs());
            b.edit(|c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .extend(extra.iter().cloned());
            });
            let id = unique_id("loop");
            let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
            let _ = rt.output(&["delete", "--force", &id]);
            let e = stderr(&out);
            assert_eq!(
                host.intruders(),
                Vec::<String>::new(),
                "{name} {extra:?}: {e}"
            );
            assert!(!out.status.success(), "{name} {extra:?} must fail");
            assert!(
                e.contains("symlink loop") && e.contains("/etc/"),
                "{name} {extra:?}: the error should name the path and the loop: {e}"
            );
        }
    }
    // A device node through the loop: the same refusal, nothing on the host.
    let mut b = Bundle::new(&["true"]);
    chain_to_host(&b.rootfs());
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/etc/null2", "type": "c", "major": 1, "minor": 3}]);
    });
    let id = unique_id("loopdev");
    let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
    let _ = rt.output(&["delete", "--force", &id]);
    assert!(!out.status.success());
    assert_eq!(host.intruders(), Vec::<String>::new(), "{}", stderr(&out));
}

#[test]
fn a_short_link_to_a_host_path_resolves_inside_the_rootfs() {
    require_root();
    let rt = pier();
    let host = HostDir::new();
    let hosts_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(hosts_file.path(), "10.9.8.7 inside\n").unwrap();
    let mut b = Bundle::new(&["cat", "/data/hosts"]);
    // /data names the host directory; inside the rootfs that path does not exist.
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("data")).unwrap();
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(bind_file("/data/hosts", hosts_file.path()));
    });
    let id = unique_id("shortlink");
    let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
    let _ = rt.output(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "10.9.8.7 inside\n");
    assert_eq!(host.intruders(), Vec::<String>::new());
    let inside: PathBuf = b
        .rootfs()
        .join(host.path().strip_prefix("/").unwrap())
        .join("hosts");
    assert!(
        inside.is_file(),
        "{} should have been made",
        inside.display()
    );
}

#[test]
fn a_missing_cwd_is_created_owned_by_the_user() {
    require_root();
    let rt = pier();
    for readonly in [false, true] {
        let mut b = Bundle::new(&["sh", "-c", "pwd; stat -c %u:%g /work/deep /work"]);
        b.edit(|c| {
            c["process"]["cwd"] = json!("/work/deep");
            c["process"]["user"] = json!({"uid": 1000, "gid": 1001});
            c["root"]["readonly"] = json!(readonly);
        });
        let id = unique_id("mkcwd");
        let out = rt.output(&["run", "--bundle", b.path_str(), &id]);
        let _ = rt.output(&["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "readonly={readonly}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "/work/deep\n1000:1001\n1000:1001\n");
        assert!(b.rootfs().join("work/deep").is_dir());
    }
}

#[test]
fn without_a_sealed_copy_of_itself_the_runtime_refuses_to_run() {
    require_root();
    let rt = pier();
    let b = Bundle::new(&["true"]);
    let id = unique_id("unsealed");
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut cmd = rt.cmd();
    cmd.args(["run", "--bundle", b.path_str(), &id])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    // Room for stdio and one more descriptor only: the binary opens, the memfd for its
    // sealed copy cannot be made.
    // SAFETY: setrlimit is async-signal-safe and takes a pointer to a local.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4,
                rlim_max: 4,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    let e = String::from_utf8_lossy(&read_file(err)).into_owned();
    let _ = rt.output(&["delete", "--force", &id]);
    assert!(!status.success(), "{e}");
    assert!(
        e.contains("refusing to run without a sealed copy of the runtime"),
        "{e}"
    );
    assert!(!e.contains("warning"), "a refusal, not a warning: {e}");
    assert!(!rt.root.path().join(&id).exists(), "state left behind");
}

/// The exec setup is not dumpable (hole 4): its /proc files then belong to the host's
/// root, which a container's user namespace does not map. What the setup writes there
/// (oom_score_adj) must still be written, and a missing cwd is not made for exec.
#[test]
fn exec_into_a_user_namespace_sets_its_oom_score_and_refuses_a_missing_cwd() {
    require_root();
    let rt = pier();
    let mut b = Bundle::new(&["sleep", "300"]);
    b.with_user_namespace();
    let id = unique_id("usernsexec");
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let mut process = b.config["process"].clone();
    process["args"] = json!(["sh", "-c", "cat /proc/self/oom_score_adj; id -u"]);
    process["oomScoreAdj"] = json!(123);
    let process_file = b.path().join("exec-process.json");
    std::fs::write(&process_file, process.to_string()).unwrap();
    let out = rt.output(&["exec", "--process", process_file.to_str().unwrap(), &id]);
    let missing = rt.output(&["exec", "--cwd", "/no/such/dir", &id, "true"]);
    rt.ok(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "123\n0\n");
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/no/such/dir"),
        "{}",
        stderr(&missing)
    );
    assert!(!b.rootfs().join("no").exists(), "exec made its missing cwd");
}
