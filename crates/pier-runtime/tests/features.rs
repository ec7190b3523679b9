//! Runtime features checked from inside the container, against pier-runtime and the
//! reference runtimes: seccomp, terminals, joining namespaces, --no-pivot,
//! --preserve-fds, sysctls, oom score.

mod common;

use std::io::Read;
use std::os::fd::AsFd;

use common::*;
use serde_json::json;

const DOCKER_PROFILE: &str = include_str!("fixtures/seccomp/docker-default.json");

fn docker_default_caps() -> Vec<String> {
    pier_runtime::caps::DOCKER_DEFAULT
        .map(String::from)
        .to_vec()
}

#[test]
fn docker_default_seccomp_profile_blocks_what_docker_blocks() {
    require_root();
    let caps = docker_default_caps();
    let profile =
        pier_runtime::seccomp::docker_profile_to_oci(DOCKER_PROFILE.as_bytes(), &caps).unwrap();
    for rt in runtimes() {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?; \
             mkdir /tmp/d && echo mkdir=ok",
        ]);
        b.edit(|c| {
            c["linux"]["seccomp"] = serde_json::to_value(&profile).unwrap();
            c["process"]["capabilities"] = json!({
                "bounding": caps, "effective": caps, "permitted": caps
            });
            c["root"]["readonly"] = json!(false);
        });
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("seccomp")]);
        let text = stdout(&out);
        assert!(out.status.success(), "{}: {text} {}", rt.name, stderr(&out));
        assert!(text.contains("Seccomp:\t2"), "{}: {text}", rt.name);
        assert!(
            !text.contains("unshare=0"),
            "{}: unshare must be blocked: {text}",
            rt.name
        );
        assert!(text.contains("mkdir=ok"), "{}: {text}", rt.name);
    }
}

#[test]
fn custom_seccomp_errno_and_argument_conditions() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "kill -0 $$ 2>&1; echo a=$?; kill -CONT $$; echo b=$?",
        ]);
        b.edit(|c| {
            c["root"]["readonly"] = json!(false);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 122,
                    "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]
                }]
            });
        });
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("scmp")]);
        let text = stdout(&out);
        // errno 122 is EDQUOT; only signal 0 is refused.
        assert!(
            text.contains("Disk quota exceeded") || text.contains("quota"),
            "{}: {text}",
            rt.name
        );
        assert!(
            text.contains("a=1\n") && text.contains("b=0\n"),
            "{}: {text}",
            rt.name
        );
    }
}

#[test]
fn terminal_master_goes_to_the_console_socket() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&["sh", "-c", "tty; stty size; echo done"]);
        b.edit(|c| {
            c["process"]["terminal"] = json!(true);
            c["process"]["consoleSize"] = json!({"height": 33, "width": 111});
        });
        let sock_dir = tempfile::tempdir().unwrap();
        let sock = sock_dir.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let id = unique_id("tty");
        let sock_str = sock.to_str().unwrap().to_string();
        let receiver = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            pier_runtime::channel::recv_fd(stream.as_fd()).unwrap()
        });
        rt.ok(&[
            "create",
            "--bundle",
            b.path_str(),
            "--console-socket",
            &sock_str,
            &id,
        ]);
        let master = receiver.join().unwrap();
        rt.ok(&["start", &id]);
        let mut file = std::fs::File::from(master);
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        // Read until the container closes its side (EIO on a pty master).
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("done") {
                break;
            }
        }
        assert!(text.contains("/dev/pts/0"), "{}: {text:?}", rt.name);
        assert!(text.contains("33 111"), "{}: {text:?}", rt.name);
        rt.wait_status(&id, "stopped");
        rt.ok(&["delete", &id]);
    }
}

#[test]
fn joins_namespaces_by_path() {
    require_root();
    for rt in runtimes() {
        let mut a = Bundle::new(&["sleep", "100"]);
        a.edit(|c| c["hostname"] = json!("shared-uts"));
        let first = unique_id("nsa");
        rt.ok(&["run", "-d", "--bundle", a.path_str(), &first]);
        let pid = rt.state(&first)["pid"].as_i64().unwrap();
        let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
        let mut b = Bundle::new(&["sh", "-c", "hostname; readlink /proc/self/ns/net"]);
        b.edit(|c| {
            c.as_object_mut().unwrap().remove("hostname");
            for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
                if ns["type"] == "network" {
                    ns["path"] = json!(format!("/proc/{pid}/ns/net"));
                }
                if ns["type"] == "uts" {
                    ns["path"] = json!(format!("/proc/{pid}/ns/uts"));
                }
            }
        });
        let out = rt.output(&["run", "--bundle", b.path_str(), &unique_id("nsb")]);
        let text = stdout(&out);
        assert!(out.status.success(), "{}: {}", rt.name, stderr(&out));
        assert_eq!(
            text,
            format!("shared-uts\n{}\n", net.display()),
            "{}",
            rt.name
        );
        rt.ok(&["delete", "--force", &first]);
    }
}

#[test]
fn no_pivot_preserve_fds_sysctl_and_oom_score() {
    require_root();
    for rt in runtimes() {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "cat <&3; cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/oom_score_adj",
        ]);
        b.edit(|c| {
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            c["process"]["oomScoreAdj"] = json!(100);
        });
        let input = b.path().join("input");
        std::fs::write(&input, "from fd 3\n").unwrap();
        let cmd = format!(
            "exec 3<{}; exec {} --root {} run --no-pivot --preserve-fds 1 --bundle {} {}",
            input.display(),
            rt.bin.display(),
            rt.root.path().display(),
            b.path_str(),
            unique_id("misc")
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", rt.name, stderr(&out));
        assert_eq!(stdout(&out), "from fd 3\n1\n100\n", "{}", rt.name);
    }
}
