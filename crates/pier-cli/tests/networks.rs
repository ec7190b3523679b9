//! `pier network` and the network flags of `run` against a pierd that `pier` starts:
//! output compared byte for byte with the real docker CLI pointed at the same daemon.
//! Every network a test creates is removed before its daemon stops.

use std::process::{Command, Output};

mod common;

use common::{finish, text, Setup};

const DOCKER: &str = "/usr/local/bin/docker";

/// A daemon root without images (network commands need none), or `None` (skipped)
/// without docker on the host.
fn setup() -> Option<Net> {
    if !common::host_has(DOCKER, "docker") {
        return None;
    }
    Some(Net {
        s: Setup::new(),
        networks: Vec::new(),
    })
}

/// As [`setup`], with busybox imported (`None` without busybox either).
fn setup_with_busybox() -> Option<Net> {
    if !common::host_has(DOCKER, "docker") {
        return None;
    }
    Some(Net {
        s: Setup::with_busybox()?,
        networks: Vec::new(),
    })
}

/// A [`Setup`] that removes the networks it created (before the daemon stops).
struct Net {
    s: Setup,
    networks: Vec<String>,
}

impl Drop for Net {
    fn drop(&mut self) {
        if self.s.daemon_pid().is_none() {
            return;
        }
        let ids = self.s.run(&["ps", "-aq"], b"");
        let ids = String::from_utf8_lossy(&ids.stdout).to_string();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.s.run(&args, b"");
        }
        for n in &self.networks {
            let _ = self.s.run(&["network", "rm", n], b"");
        }
    }
}

impl Net {
    fn docker(&self, args: &[&str]) -> Output {
        let mut c = Command::new(DOCKER);
        c.args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.s.socket().display()),
            )
            .env("DOCKER_CONFIG", self.s.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT");
        finish(c, b"")
    }

    /// `pier network create ARGS NAME`, remembered for removal; the ID it printed.
    fn create(&mut self, args: &[&str], name: &str) -> String {
        self.networks.push(name.to_string());
        let mut all = vec!["network", "create"];
        all.extend_from_slice(args);
        all.push(name);
        let id = self.s.ok(&all).trim().to_string();
        assert_eq!(id.len(), 64, "network create printed {id:?}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
        id
    }

    /// Runs `args` with pier and with docker: same status, stdout and stderr (with
    /// `docker` → `pier` where docker names itself).
    fn same(&self, args: &[&str]) -> String {
        let p = self.s.run(args, b"");
        let d = self.docker(args);
        let (po, pe) = text(&p);
        let (d_out, de) = text(&d);
        assert_eq!(
            p.status.code(),
            d.status.code(),
            "{args:?}: pier {p:?} docker {d:?}"
        );
        assert_eq!(po, d_out, "stdout of {args:?}");
        assert_eq!(pe, de.replace("docker", "pier"), "stderr of {args:?}");
        po
    }
}

#[test]
fn network_create_ls_inspect_rm() {
    let Some(mut n) = setup() else { return };
    let id = n.create(
        &[
            "--subnet",
            "10.231.0.0/16",
            "--gateway",
            "10.231.0.1",
            "--label",
            "k=v",
        ],
        "pier-test-n1",
    );
    n.create(&["--internal"], "pier-test-n2");

    let ls = n.same(&["network", "ls"]);
    assert!(
        ls.starts_with("NETWORK ID     NAME           DRIVER    SCOPE\n"),
        "{ls}"
    );
    assert!(
        ls.contains(&format!("{}   pier-test-n1   bridge    local\n", &id[..12])),
        "{ls}"
    );
    n.same(&["network", "ls", "-q"]);
    n.same(&["network", "list", "--no-trunc"]);
    n.same(&["network", "ls", "--filter", "name=pier-test-n1"]);
    n.same(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.IPv6}} {{.Labels}}",
    ]);
    n.same(&["network", "ls", "--format", "json"]);

    n.same(&["network", "inspect", "pier-test-n1"]);
    n.same(&["network", "inspect", "pier-test-n1", "pier-test-n2"]);
    let f = n.same(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Internal}}",
        "pier-test-n1",
        "pier-test-n2",
    ]);
    assert!(
        f.starts_with("pier-test-n1 bridge 10.231.0.0/16 10.231.0.1 false\n"),
        "{f}"
    );
    n.same(&["network", "inspect", "pier-test-none"]);
    n.same(&["network", "inspect", "pier-test-n1", "pier-test-none"]);

    assert_eq!(
        n.s.ok(&["network", "rm", "pier-test-n1", "pier-test-n2"]),
        "pier-test-n1\npier-test-n2\n"
    );
    n.networks.clear();
    n.same(&["network", "rm", "pier-test-none"]);
    n.same(&["network", "rm", "-f", "pier-test-none"]);
}

#[test]
fn network_prune_and_errors() {
    let Some(mut n) = setup() else { return };
    n.create(&[], "pier-test-p1");
    n.create(&[], "pier-test-p2");
    let out = n.s.run(&["network", "prune"], b"n\n");
    assert_eq!(
        text(&out).0,
        "WARNING! This will remove all custom networks not used by at least one container.\n\
         Are you sure you want to continue? [y/N] "
    );
    let out = n.s.ok(&["network", "prune", "-f"]);
    assert!(out.starts_with("Deleted Networks:\n"), "{out}");
    assert!(
        out.contains("pier-test-p1\n") && out.ends_with("\n\n"),
        "{out}"
    );
    n.networks.clear();
    // Client-side checks, as docker's.
    n.same(&[
        "network",
        "create",
        "--subnet",
        "10.0.0.0/8",
        "--gateway",
        "1.2.3.4",
        "pier-test-bad",
    ]);
    n.same(&["network", "create", "--gateway", "1.2.3.4", "pier-test-bad"]);
}

#[test]
fn run_publish_and_port() {
    let Some(mut n) = setup_with_busybox() else {
        return;
    };
    let id =
        n.s.ok(&[
            "run",
            "-d",
            "--name",
            "pub",
            "-p",
            "127.0.0.1::80",
            "-p",
            "127.0.0.1:18053:53/udp",
            "--expose",
            "9000",
            "busybox",
            "sleep",
            "60",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    n.same(&["port", "pub"]);
    n.same(&["port", "pub", "53/udp"]);
    n.same(&["port", "pub", "9000"]);
    let f =
        n.s.ok(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", "pub"]);
    assert!(
        f.contains("\"53/udp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"18053\"}]"),
        "{f}"
    );

    n.create(&["--subnet", "10.232.0.0/24"], "pier-test-r1");
    n.s.ok(&[
        "run",
        "-d",
        "--name",
        "onnet",
        "--network",
        "pier-test-r1",
        "--ip",
        "10.232.0.50",
        "--network-alias",
        "web",
        "busybox",
        "sleep",
        "60",
    ]);
    let ip = n.s.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "onnet",
    ]);
    assert_eq!(ip.trim(), "10.232.0.50");
    n.same(&["inspect", "onnet"]);
    n.same(&["inspect", "--format", "json", "onnet"]);
    n.same(&["network", "inspect", "pier-test-r1"]);
    n.same(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert_eq!(
        n.s.ok(&["network", "disconnect", "pier-test-r1", "onnet"]),
        ""
    );
    // Now an error, the daemon's, for both.
    n.same(&["network", "disconnect", "pier-test-r1", "onnet"]);
    let connect = [
        "network",
        "connect",
        "--ip",
        "10.232.0.51",
        "--alias",
        "db",
        "pier-test-r1",
        "onnet",
    ];
    assert_eq!(n.s.ok(&connect), "");
    let ip = n.s.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Aliases}}{{end}}",
        "onnet",
    ]);
    assert!(ip.starts_with("10.232.0.51 "), "{ip}");
    assert!(ip.contains("db"), "{ip}");
    n.same(&connect);
}
