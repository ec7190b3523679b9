//! `docker run` options of issue 12, each run with the real docker CLI against pierd
//! and against a real, isolated dockerd in the same test, asserting the effect inside
//! the container (and, where dockerd has it too, the same exit code and output).

mod common;

use common::{shell_words, Engine, Pierd};
use pier_testsupport::{IsolatedDockerd, Out};

struct Engines {
    pierd: Pierd,
    dockerd: IsolatedDockerd,
    _work: tempfile::TempDir,
}

/// pierd and dockerd, each with the same busybox image; None when the host lacks one.
fn engines(test: &str) -> Option<Engines> {
    let (pierd, dockerd, work) = common::pierd_and_dockerd_with_busybox(test)?;
    Some(Engines {
        pierd,
        dockerd,
        _work: work,
    })
}

impl Engines {
    /// `docker <line>` on both engines.
    fn run(&self, line: &str) -> [Out; 2] {
        let args = shell_words(line);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        [
            self.pierd.docker(&args),
            Engine::docker(&self.dockerd, &args),
        ]
    }

    /// `docker <line>` on both: the same exit code and stdout; pierd's answer.
    fn same(&self, line: &str) -> Out {
        let [ours, theirs] = self.run(line);
        assert_eq!(
            (ours.code, &ours.stdout),
            (theirs.code, &theirs.stdout),
            "docker {line}\n  pierd:   {ours:?}\n  dockerd: {theirs:?}"
        );
        ours
    }

    /// `docker <line>` on both: the same exit code, and `words` in both stderrs.
    fn same_refusal(&self, line: &str, code: i32, words: &str) {
        for (label, out) in ["pierd", "dockerd"].iter().zip(self.run(line)) {
            assert_eq!(out.code, Some(code), "{label}: docker {line}: {out:?}");
            assert!(
                out.stderr.contains(words),
                "{label}: docker {line}: no {words:?} in {out:?}"
            );
        }
    }
}

fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn entrypoint_workdir_and_exit_codes_as_dockerd() {
    let Some(e) = engines("run_options_entrypoint") else {
        return;
    };
    // `--entrypoint ""` clears the entrypoint; the command runs.
    let out = e.same("run --rm --network none --entrypoint '' busybox echo hi");
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "hi\n"));
    // ... and with no command left there is nothing to run.
    e.same_refusal(
        "run --rm --network none --entrypoint '' busybox",
        125,
        "No command specified",
    );
    // `-w` of a directory the image lacks: made, owned by root, as by dockerd.
    let out = e.same("run --rm --network none -w /work busybox sh -c 'pwd; stat -c %u:%g /work'");
    assert_eq!(out.stdout, "/work\n0:0\n");
    let out = e.same(
        "run --rm --network none -u 1000 -w /work/a/b busybox sh -c 'pwd; stat -c %u:%g /work/a /work/a/b'",
    );
    assert_eq!(out.stdout, "/work/a/b\n0:0\n0:0\n");
    // The CLI's exit codes from the daemon's words: 127 not found, 126 not executable.
    e.same_refusal(
        "run --rm --network none busybox /no/such/binary",
        127,
        "stat /no/such/binary: no such file or directory",
    );
    e.same_refusal(
        "run --rm --network none busybox nosuchcmd",
        127,
        "executable file not found in $PATH",
    );
    e.same_refusal(
        "run --rm --network none busybox /etc/passwd",
        126,
        "permission denied",
    );
    e.same_refusal("run --rm --network none busybox /etc", 126, "");
    assert!(
        e.pierd.docker_ok(&["ps", "-aq"]).is_empty(),
        "--rm containers that could not start are gone"
    );
}

#[test]
fn uts_and_host_network_keep_the_hosts_name() {
    let Some(e) = engines("run_options_uts") else {
        return;
    };
    let host = format!("{}\n", host_name());
    // The host's UTS namespace: the host's name, none set.
    let out = e.same("run --rm --network none --uts host busybox hostname");
    assert_eq!(out.stdout, host);
    // The host's network: the container is named as the host.
    let out = e.same("run --rm --network host busybox sh -c 'hostname; cat /etc/hostname'");
    assert_eq!(out.stdout, format!("{host}{host}"));
    e.same_refusal(
        "run --rm --network none --uts host -h other busybox true",
        125,
        "conflicting options: hostname and the UTS mode",
    );
    // A name given still wins on the host network.
    let out = e.same("run --rm --network host -h named busybox cat /etc/hostname");
    assert_eq!(out.stdout, "named\n");
}

#[test]
fn group_add_gives_supplementary_groups() {
    let Some(e) = engines("run_options_group_add") else {
        return;
    };
    // By number and by name (the image's /etc/group has tty:x:5).
    let out = e.same(
        "run --rm --network none --group-add 10 --group-add tty busybox grep Groups /proc/self/status",
    );
    let groups: Vec<&str> = out
        .stdout
        .trim()
        .trim_start_matches("Groups:")
        .split_whitespace()
        .collect();
    assert_eq!(groups, ["0", "5", "10"], "{out:?}");
    // The primary group is a supplementary one too, as with dockerd.
    let out = e.same("run --rm --network none -u 1000:5 busybox grep Groups /proc/self/status");
    assert_eq!(out.stdout, "Groups:\t5 \n");
    let out = e.same("run --rm --network none -u 1000 --group-add 10 --group-add 1234 busybox id");
    assert_eq!(out.stdout, "uid=1000 gid=0(root) groups=0(root),10,1234\n");
    // An exec gets the container's groups too, as with dockerd.
    for engine in [&e.pierd as &dyn Engine, &e.dockerd] {
        engine.docker_ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--group-add",
            "10",
            "--name",
            "grouped",
            "busybox",
            "sleep",
            "100",
        ]);
    }
    let out = e.same("exec grouped grep Groups /proc/self/status");
    assert_eq!(out.stdout, "Groups:\t0 10 \n");
    let out = e.same("exec -u 1000 grouped grep Groups /proc/self/status");
    assert_eq!(out.stdout, "Groups:\t0 10 \n");
    e.same("rm -f grouped");
    e.same_refusal(
        "run --rm --network none --group-add nosuchgroup busybox true",
        125,
        "Unable to find group nosuchgroup: no matching entries in group file",
    );
}

#[test]
fn init_is_pid_1_reaps_forwards_signals_and_passes_the_exit_code() {
    let Some(e) = engines("run_options_init") else {
        return;
    };
    // PID 1 is the init; the command is its child.
    for (label, engine) in [("pierd", &e.pierd as &dyn Engine), ("dockerd", &e.dockerd)] {
        let out = engine.docker_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--init",
            "busybox",
            "ps",
            "-o",
            "pid,ppid,comm",
        ]);
        let rows: Vec<Vec<&str>> = out
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["1", "0", "docker-init"], "{label}: {out}");
        let ps = rows
            .iter()
            .find(|r| r[2] == "ps")
            .unwrap_or_else(|| panic!("{label}: {out}"));
        assert_eq!(ps[1], "1", "{label}: ps is the init's child: {out}");
    }
    // The exit code goes through; so does a signal's (128+N).
    e.same_refusal(
        "run --rm --network none --init busybox sh -c 'exit 7'",
        7,
        "",
    );
    e.same_refusal(
        "run --rm --network none --init busybox sh -c 'kill -USR1 $$'",
        138,
        "",
    );
    // An orphan that exits is re-parented to PID 1: the init reaps it. Without an
    // init, `sleep` as PID 1 leaves it a zombie (what --init is for).
    for (label, engine) in [("pierd", &e.pierd as &dyn Engine), ("dockerd", &e.dockerd)] {
        for (init, zombies) in [("--init", "0"), ("--init=false", "1")] {
            engine.docker_ok(&[
                "run",
                "-d",
                "--network",
                "none",
                init,
                "--name",
                "orphans",
                "busybox",
                "sh",
                "-c",
                "sh -c 'sleep 0.2 &'; exec sleep 30",
            ]);
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let out = engine.docker(&[
                "exec",
                "orphans",
                "sh",
                "-c",
                "ps -o stat,comm | grep -c ^Z",
            ]);
            assert_eq!(
                out.stdout,
                format!("{zombies}\n"),
                "{label} {init}: {out:?}"
            );
            engine.docker_ok(&["rm", "-f", "orphans"]);
        }
    }
    // `docker stop`'s SIGTERM reaches the command (sleep as PID 1 would ignore it).
    for (label, engine) in [("pierd", &e.pierd as &dyn Engine), ("dockerd", &e.dockerd)] {
        engine.docker_ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--init",
            "--name",
            "stopped",
            "busybox",
            "sleep",
            "1000",
        ]);
        let started = std::time::Instant::now();
        engine.docker_ok(&["stop", "-t", "20", "stopped"]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{label}: the stop waited for its timeout: the signal was not forwarded"
        );
        let state = engine.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.HostConfig.Init}}",
            "stopped",
        ]);
        assert_eq!(state.trim(), "143 true", "{label}");
        engine.docker_ok(&["rm", "stopped"]);
    }
}

#[test]
fn daemon_init_and_init_path_are_honoured() {
    let work = tempfile::tempdir().expect("temp dir");
    // An init of the user's own: it says so, then runs the command after `--`.
    let custom = work.path().join("my-init");
    std::fs::write(
        &custom,
        "#!/bin/sh\necho custom init \"$1\"\nshift\nexec \"$@\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&custom, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let custom_path = custom.display().to_string();
    let Some((pierd, _busybox)) =
        common::pierd_with_busybox_args(&["--init", "--init-path", &custom_path])
    else {
        return;
    };
    // The daemon's --init: containers that do not say run under the init.
    let out = pierd.docker_ok(&["run", "--rm", "--network", "none", "busybox", "echo", "hi"]);
    assert_eq!(out, "custom init --\nhi\n");
    // A container that says no runs without.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--init=false",
        "busybox",
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n");
}

/// Whether the host has cgroup v1's `file` under the `controller` hierarchy.
fn cgroup_v1_file(controller: &str, file: &str) -> bool {
    std::path::Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(file)
        .exists()
}

#[test]
fn devices_and_device_cgroup_rules_as_dockerd() {
    let Some(e) = engines("run_options_devices") else {
        return;
    };
    // A device the host has: its node in the container, with the host's numbers.
    let out = e.same(
        "run --rm --network none --device /dev/net/tun busybox stat -c '%F %t:%T %a' /dev/net/tun",
    );
    assert_eq!(out.stdout, "character special file a:c8 600\n");
    // A directory brings every device below it, under the container path.
    let out = e.same(
        "run --rm --network none --device /dev/net:/dev/xnet busybox stat -c '%F %t:%T' /dev/xnet/tun",
    );
    assert_eq!(out.stdout, "character special file a:c8\n");
    // Under another path, with a mode: the node there, and the cgroup rule the mode.
    if !std::path::Path::new("/dev/loop0").exists() {
        pier_testsupport::skip(
            "devices: --device with a mode",
            "the host has no /dev/loop0",
        );
    } else {
        let out = e.same("run --rm --network none --device /dev/loop0:/dev/xloop:r busybox sh -c 'stat -c \"%F %t:%T\" /dev/xloop; head -c 1 /dev/xloop >/dev/null && echo read; echo x > /dev/xloop || echo no write'");
        assert_eq!(
            out.stdout, "block special file 7:0\nread\nno write\n",
            "{out:?}"
        );
        if cgroup_v1_file("devices", "devices.list") {
            let out = e.same("run --rm --network none --device /dev/loop0:/dev/xloop:r busybox grep '^b 7:0 ' /sys/fs/cgroup/devices/devices.list");
            assert_eq!(out.stdout, "b 7:0 r\n");
        }
    }
    // A rule of the user's own.
    if cgroup_v1_file("devices", "devices.list") {
        let out = e.same("run --rm --network none --device-cgroup-rule 'c 42:* rmw' busybox grep -c '^c 42:\\* rwm$' /sys/fs/cgroup/devices/devices.list");
        assert_eq!(out.stdout, "1\n");
    } else {
        pier_testsupport::skip(
            "devices: --device-cgroup-rule",
            "no cgroup v1 devices.list (v2: an eBPF program)",
        );
    }
    // A device the host lacks (refused at start; the CLI reads 127 from the words).
    e.same_refusal(
        "run --rm --network none --device /dev/nonexist busybox true",
        127,
        "error gathering device information while adding custom device \"/dev/nonexist\": no such file or directory",
    );
    // GPUs: no driver (no NVIDIA hook, no CDI spec) can honour them.
    e.same_refusal(
        "run --rm --network none --gpus all busybox true",
        125,
        "could not select device driver \"\" with capabilities: [[gpu]]",
    );
    // A size for the writable layer needs overlay on xfs with pquota.
    e.same_refusal(
        "run --rm --network none --storage-opt size=1G busybox true",
        125,
        "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
    );
    assert!(
        e.pierd.docker_ok(&["ps", "-aq"]).is_empty(),
        "refused creates left nothing"
    );
}

#[test]
fn blkio_throttles_as_dockerd() {
    if !cgroup_v1_file("blkio", "blkio.throttle.read_bps_device") {
        pier_testsupport::skip(
            "blkio throttles",
            "no cgroup v1 blkio throttle files on this host",
        );
        return;
    }
    if !std::path::Path::new("/dev/loop0").exists() {
        pier_testsupport::skip("blkio throttles", "the host has no /dev/loop0");
        return;
    }
    let Some(e) = engines("run_options_blkio") else {
        return;
    };
    let out = e.same(
        "run --rm --network none --device-read-bps /dev/loop0:1mb --device-write-bps /dev/loop0:2mb --device-read-iops /dev/loop0:100 --device-write-iops /dev/loop0:200 busybox sh -c 'cd /sys/fs/cgroup/blkio; cat blkio.throttle.read_bps_device blkio.throttle.write_bps_device blkio.throttle.read_iops_device blkio.throttle.write_iops_device'",
    );
    assert_eq!(out.stdout, "7:0 1048576\n7:0 2097152\n7:0 100\n7:0 200\n");
    if cgroup_v1_file("blkio", "blkio.weight_device") {
        let out = e.same("run --rm --network none --blkio-weight-device /dev/loop0:300 busybox cat /sys/fs/cgroup/blkio/blkio.weight_device");
        assert!(out.stdout.contains("7:0 300"), "{out:?}");
    } else {
        // No per-device weight in this kernel: discarded with dockerd's warning.
        e.same_refusal(
            "run --rm --network none --blkio-weight-device /dev/loop0:300 busybox true",
            0,
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.",
        );
    }
}

#[test]
fn cgroup_namespace_modes_as_dockerd() {
    let Some(e) = engines("run_options_cgroupns") else {
        return;
    };
    // A namespace of its own: its cgroup is its root.
    let out = e.same("run --rm --network none --cgroupns private busybox cat /proc/self/cgroup");
    assert!(
        !out.stdout.is_empty() && out.stdout.lines().all(|l| l.ends_with(":/")),
        "{out:?}"
    );
    // The host's: the container's cgroup path shows.
    for (label, engine) in [("pierd", &e.pierd as &dyn Engine), ("dockerd", &e.dockerd)] {
        let out = engine.docker_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroupns",
            "host",
            "busybox",
            "cat",
            "/proc/self/cgroup",
        ]);
        assert!(out.lines().all(|l| !l.ends_with(":/")), "{label}: {out}");
    }
    // The default is the host's on cgroup v1, private on v2; inspect says which.
    let expected = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "private"
    } else {
        "host"
    };
    for engine in [&e.pierd as &dyn Engine, &e.dockerd] {
        let id = engine.docker_ok(&["create", "--network", "none", "busybox", "true"]);
        let mode = engine.docker_ok(&["inspect", "-f", "{{.HostConfig.CgroupnsMode}}", id.trim()]);
        assert_eq!(mode.trim(), expected);
        engine.docker_ok(&["rm", id.trim()]);
    }
}

/// A Linux bridge of the test's own (the isolated dockerd's default bridge, which its
/// `--bridge=none` otherwise leaves out), deleted when dropped.
struct TestBridge(String);

impl TestBridge {
    fn create(subnet_gateway: &str) -> Option<TestBridge> {
        let name = pier_testsupport::unique_name("pl");
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["link", "add", &name, "type", "bridge"]) {
            pier_testsupport::skip(
                "links against dockerd",
                "cannot make a bridge (ip link add)",
            );
            return None;
        }
        let bridge = TestBridge(name);
        let made = ip(&["addr", "add", subnet_gateway, "dev", &bridge.0])
            && ip(&["link", "set", &bridge.0, "up"]);
        assert!(made, "set up bridge {}", bridge.0);
        Some(bridge)
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.0])
            .status();
    }
}

/// The `MY_DB_*` variables of `env` output, sorted, with the linked container's
/// address as `<IP>`.
fn link_vars(env: &str, ip: &str) -> Vec<String> {
    let mut vars: Vec<String> = env
        .lines()
        .filter(|l| l.starts_with("MY_DB_"))
        .map(|l| l.replace(ip, "<IP>"))
        .collect();
    vars.sort_unstable();
    vars
}

#[test]
fn links_set_dockers_environment() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(tar) = common::busybox_rootfs_tar(work.path()) else {
        return;
    };
    // Declared first, so it goes last (after both daemons).
    let Some(bridge) = TestBridge::create("10.233.77.1/24") else {
        return;
    };
    let options = pier_testsupport::DockerdOptions {
        // The last --bridge wins over the isolated dockerd's --bridge=none.
        extra_args: vec!["--bridge".into(), bridge.0.clone().into()],
        ..pier_testsupport::DockerdOptions::default()
    };
    let Some(dockerd) = IsolatedDockerd::start_or_skip("run_options_links", options) else {
        return;
    };
    let pierd = Pierd::start();
    let mut answers = Vec::new();
    for (label, engine) in [("pierd", &pierd as &dyn Engine), ("dockerd", &dockerd)] {
        let out = engine.docker_with_stdin(&["import", "-c", "CMD [\"sh\"]", "-", "busybox"], &tar);
        assert_eq!(out.code, Some(0), "{out:?}");
        engine.docker_ok(&[
            "run",
            "-d",
            "--name",
            "db",
            "-e",
            "PASS=secret",
            "--expose",
            "5432",
            "--expose",
            "53/udp",
            "busybox",
            "sleep",
            "1000",
        ]);
        let ip = engine.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"]);
        let ip = ip.trim().to_string();
        assert!(
            !ip.is_empty(),
            "{label}: db has no address on the default bridge"
        );
        let env = engine.docker_ok(&[
            "run", "--rm", "--name", "web", "--link", "db:my-db", "busybox", "env",
        ]);
        // The container's own variables win over a link's.
        let own = engine.docker_ok(&[
            "run",
            "--rm",
            "--link",
            "db:my-db",
            "-e",
            "MY_DB_NAME=mine",
            "busybox",
            "sh",
            "-c",
            "echo $MY_DB_NAME",
        ]);
        answers.push((link_vars(&env, &ip), own));
        engine.docker_ok(&["rm", "-f", "db"]);
    }
    assert_eq!(answers[0], answers[1], "pierd vs dockerd");
    let mut expected: Vec<String> = [
        "MY_DB_ENV_PASS=secret",
        "MY_DB_NAME=/web/my-db",
        "MY_DB_PORT=udp://<IP>:53",
        "MY_DB_PORT_5432_TCP=tcp://<IP>:5432",
        "MY_DB_PORT_5432_TCP_ADDR=<IP>",
        "MY_DB_PORT_5432_TCP_PORT=5432",
        "MY_DB_PORT_5432_TCP_PROTO=tcp",
        "MY_DB_PORT_53_UDP=udp://<IP>:53",
        "MY_DB_PORT_53_UDP_ADDR=<IP>",
        "MY_DB_PORT_53_UDP_PORT=53",
        "MY_DB_PORT_53_UDP_PROTO=udp",
    ]
    .map(String::from)
    .to_vec();
    expected.sort_unstable();
    assert_eq!(answers[0], (expected, "mine\n".to_string()));
}
