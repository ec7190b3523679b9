//! The networking scenario: one script of `docker network` (and `run --network …`)
//! commands run against pierd and against a real, isolated dockerd. Each step's exit
//! code and (normalized) output must be the same on both.
//!
//! The isolated dockerd runs with `--bridge=none --iptables=false`: it has no default
//! `bridge` network and changes no firewall, but it does create a bridge device for each
//! user network. So every network the script creates names its device with Pier's test
//! prefix (`pt` + 8 random hex digits, a fresh name per engine), and a guard removes
//! those networks and devices after each engine's run, also when the test fails.
//!
//! The engines run one after the other (pierd's script, its cleanup, then dockerd's):
//! both use the same subnet, and two host bridges on one subnet at once would confuse
//! the host's routing.
//!
//! Networks without a subnet get one from `--default-address-pool 10.231.128.0/17` on
//! both engines (dockerd 20.10 would take 172.17.0.0/16 even where the host routes it),
//! and names the embedded DNS does not know go to 127.0.0.1 (`--dns`) on both: nothing
//! leaves the machine. The embedded DNS does work on this dockerd (`--iptables=false`
//! notwithstanding), so name resolution is compared too.
//!
//! Normalized: network and container IDs, the generated bridge device names. Steps whose
//! output legitimately differs between dockerd 20.10 (with `--bridge=none`) and the
//! Docker 28 behaviour pierd follows compare less, each with a reason.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{busybox_rootfs_tar, shell_words, Engine, Pierd};
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
    /// Nothing: the engines' setups differ (see `pierd_stderr` for what pierd must say).
    Nothing,
}

struct Step {
    args: Vec<String>,
    check: Check,
    /// Applied to the normalized stdout before it is compared: keeps the stable part.
    keep: Option<fn(&str) -> String>,
    /// What pierd's stderr must contain: Docker 28's wording, where dockerd 20.10's
    /// differs (then the step compares less).
    pierd_stderr: Option<&'static str>,
    /// A command line run with `sh -c` on the host (retried for up to 20 s until it
    /// exits 0: it waits for a server in a container), not a docker command.
    host: bool,
    /// Whether pierd's stdout must contain (true) or lack (false) a text: Docker 28's
    /// behaviour, where dockerd 20.10's differs (then the step compares less).
    pierd_stdout: Option<(bool, &'static str)>,
    /// False for a KNOWN DIFFERENCE (a pierd bug, see the comment at the step): the
    /// step still runs and its difference is printed, but it does not fail the test.
    expect_same: bool,
}

fn step(args: &str, check: Check) -> Step {
    Step {
        args: shell_words(args),
        check,
        keep: None,
        pierd_stderr: None,
        pierd_stdout: None,
        host: false,
        expect_same: true,
    }
}

fn step_keep(args: &str, check: Check, keep: fn(&str) -> String) -> Step {
    Step {
        keep: Some(keep),
        ..step(args, check)
    }
}

/// A command on the host (see [`Step::host`]).
fn host_step(line: &str, check: Check) -> Step {
    Step {
        args: vec![line.to_string()],
        host: true,
        ..step("", check)
    }
}

impl Step {
    /// Pierd's stderr must contain `text`.
    fn pierd_says(self, text: &'static str) -> Step {
        Step {
            pierd_stderr: Some(text),
            ..self
        }
    }

    /// Pierd's stdout must not contain `text`.
    fn pierd_lacks(self, text: &'static str) -> Step {
        Step {
            pierd_stdout: Some((false, text)),
            ..self
        }
    }

    /// Pierd's stdout must contain `text`.
    fn pierd_prints(self, text: &'static str) -> Step {
        Step {
            pierd_stdout: Some((true, text)),
            ..self
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The bridge device names of one engine's run: `{br1}` … in the script.
struct Names {
    bridges: Vec<String>,
    /// A host port for `-p 127.0.0.1:{port}:80` (40000-59999): `{port}`.
    port: u16,
}

impl Names {
    fn new() -> Names {
        Names {
            bridges: (0..6)
                .map(|_| pier_testsupport::unique_name("pt"))
                .collect(),
            port: 40000
                + (u32::from_str_radix(&pier_testsupport::unique_name("")[..4], 16).expect("hex")
                    as u16)
                    % 20000,
        }
    }

    fn expand(&self, arg: &str) -> String {
        let mut arg = arg.to_string();
        for (i, b) in self.bridges.iter().enumerate() {
            arg = arg.replace(&format!("{{br{}}}", i + 1), b);
        }
        arg.replace("{port}", &self.port.to_string())
    }
}

/// IDs (alone or inside quotes, `id:"…"` and the like) and bridge names become
/// placeholders.
fn normalize(text: &str, names: &Names) -> String {
    let mut text = text.to_string();
    for (i, b) in names.bridges.iter().enumerate() {
        text = text.replace(b, &format!("<BR{}>", i + 1));
    }
    let text = text.replace(&names.port.to_string(), "<PORT>");
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if is_hex(word, 12) || is_hex(word, 64) {
            out.push_str("<ID>");
        } else {
            out.push_str(word);
        }
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

/// What is compared of one result.
fn view(out: &Out, names: &Names, s: &Step) -> String {
    let stdout = normalize(&out.stdout, names);
    let stdout = match s.keep {
        Some(f) => f(&stdout),
        None => stdout,
    };
    let stdout = if s.check == Check::SortedStdout {
        let mut lines: Vec<&str> = stdout.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    } else {
        stdout
    };
    match s.check {
        Check::All => format!(
            "exit {:?}\n{stdout}\n--- stderr\n{}",
            out.code,
            normalize(&out.stderr, names)
        ),
        Check::Stdout | Check::SortedStdout => format!("exit {:?}\n{stdout}", out.code),
        Check::Code => format!("exit {:?}", out.code),
        Check::Nothing => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// What is kept of an output.

/// dockerd runs with `--bridge=none`, so it has no `bridge` network; pierd has its
/// default one. Drops the lines about it.
fn without_default_bridge(s: &str) -> String {
    s.lines()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // `NAME DRIVER`, `NAME`, and the table's `ID NAME DRIVER SCOPE`.
            !(words.first() == Some(&"bridge")
                || words.get(1) == Some(&"bridge") && words.len() == 4)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Whether there is a default route (`ip route`), and the routes on the test's own
/// subnet (other subnets are picked from the engine's pools).
fn routes(s: &str) -> String {
    s.lines()
        .filter(|l| l.starts_with("default") || l.starts_with("10.231."))
        .map(|l| format!("{}\n", l.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

/// The lines that do not start with an address of the test's subnets.
fn without_test_subnet(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("10.231."))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// [`routes`] without the default one.
fn subnet_routes(s: &str) -> String {
    routes(s)
        .lines()
        .filter(|l| !l.starts_with("default"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The number of lines.
fn line_count(s: &str) -> String {
    format!("{} lines", s.lines().count())
}

/// `inet A/N` of `ip -4 -o addr` (the interface index differs).
fn inet(s: &str) -> String {
    s.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "inet")?;
            Some(format!("{} {}\n", words[at - 1], words.get(at + 1)?))
        })
        .collect()
}

/// The interface names of `ip -o link` (`2: eth0@if7: <…>` → `eth0`), one per line;
/// indexes, peers and MACs differ between engines.
fn link_names(s: &str) -> String {
    s.lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(format!("{}\n", name.split('@').next().unwrap_or(name)))
        })
        .collect()
}

/// Of the host's links, whether the container sees `lo` and the host's `eth0` (the
/// other host devices come and go with other tests; the count is checked separately).
fn host_links(s: &str) -> String {
    let names = link_names(s);
    names
        .lines()
        .filter(|n| *n == "lo" || *n == "eth0")
        .map(|n| format!("{n}\n"))
        .collect()
}

/// `.NetworkSettings.Networks` with `Aliases`: dockerd 20.10 adds the container's short
/// ID to a user network's aliases; Docker 28 (API 1.45+) lists only the user's aliases
/// (the ID moved to `DNSNames`). Drops the ID.
fn without_id_alias(s: &str) -> String {
    s.replace(" <ID>]", "]")
        .replace("[<ID> ", "[")
        .replace("[<ID>]", "[]")
}

/// busybox `nslookup` prints "Non-authoritative answer:" before each answer section
/// whose reply lacks the AA flag; the rest is the names and addresses.
/// The lines, sorted (for output whose order depends on timing).
fn sorted_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

fn without_authority_note(s: &str) -> String {
    s.lines()
        .filter(|l| !l.is_empty() && *l != "Non-authoritative answer:")
        .map(|l| format!("{l}\n"))
        .collect()
}

fn script() -> Vec<Step> {
    use Check::*;
    vec![
        // create, with every IPAM option; internal; no subnet.
        step(
            "network create --subnet 10.231.0.0/24 --gateway 10.231.0.254 --ip-range 10.231.0.128/25 --aux-address a=10.231.0.10 --label k=v -o com.docker.network.bridge.name={br1} n1",
            All,
        ),
        step("network create --internal --subnet 10.231.1.0/24 -o com.docker.network.bridge.name={br2} n2", All),
        // The subnet is picked from the engine's pools: compare only that it works.
        step("network create -o com.docker.network.bridge.name={br3} n3", Code),
        step("network inspect -f '{{.Driver}} {{.Scope}} {{.Internal}}' n3", All),
        step("network inspect -f '{{.Driver}} {{.Scope}} {{.Internal}}' n2", All),
        // errors.
        // Docker 27 prefixed the message with "invalid pool request: ".
        step(
            "network create --subnet 10.231.0.0/16 -o com.docker.network.bridge.name={br4} overlap",
            Stdout,
        )
        .pierd_says(
            "Error response from daemon: invalid pool request: Pool overlaps with other one on this address space\n",
        ),
        step(
            "network create --subnet 10.232.0.0/24 --gateway 10.233.0.1 -o com.docker.network.bridge.name={br5} badgw",
            All,
        ),
        step("network create -o com.docker.network.bridge.name={br6} n1", All),
        // dockerd (--bridge=none) has no `bridge` network: "not found" there, "pre-defined"
        // on pierd. Both refuse.
        step("network rm bridge", Code)
            .pierd_says("bridge is a pre-defined network and cannot be removed"),
        step("network rm host", All),
        step("network rm none", All),
        step("network rm missing", All),
        step("network inspect missing", All),
        step("network inspect -f '{{.Name}}' missing", All),
        // ls.
        step_keep("network ls", Stdout, without_default_bridge),
        step_keep("network ls --format '{{.Name}} {{.Driver}}'", Stdout, without_default_bridge),
        // `name=` matches substrings: n1, n2, n3 and none.
        step("network ls -f name=n --format '{{.Name}}'", Stdout),
        step_keep(
            "network ls -f driver=bridge --format '{{.Name}}'",
            Stdout,
            without_default_bridge,
        ),
        step("network ls -f label=k=v --format '{{.Name}}'", Stdout),
        step("network ls -f label=k --format '{{.Name}}'", Stdout),
        step_keep("network ls -q -f name=n", Stdout, line_count),
        // (`network ls -q` counts one more on pierd: its `bridge`.)
        // inspect.
        step("network inspect -f '{{json .IPAM.Config}}' n1", All),
        step("network inspect -f '{{.IPAM.Config}}' n1", All),
        step("network inspect -f '{{json .Options}}' n1", All),
        step("network inspect -f '{{json .Labels}}' n1", All),
        step("network inspect -f '{{.Internal}} {{.Attachable}} {{.EnableIPv6}}' n1", All),
        step("network inspect -f '{{.Name}} {{.Driver}}' n1 n2", All),
        // run errors.
        // The create must not answer 404 for the network (the CLI would take it for a
        // missing image and try to pull busybox): dockerd (20.10 and 28 alike: moby's
        // validateNetworkingConfig ignores a network that does not exist yet) creates the
        // container and fails its start with "network missing not found".
        step("run --rm --name bad1 --network missing busybox true", All),
        // dockerd (--bridge=none) has no default bridge: its container gets no network
        // and the address is ignored (exit 0). Docker 28 with its bridge refuses it.
        step("run --rm --name bad2 --ip 172.17.0.50 busybox true", Nothing).pierd_says(
            "Error response from daemon: user specified IP address is supported on user defined networks only",
        ),
        // Docker 25+ validates the address at create, with other words than 20.10 (Docker
        // 28 says "invalid config for network n1: invalid endpoint settings:\nno configured
        // subnet or ip-range contain the IP address 10.99.0.5").
        step("run --rm --name bad3 --network n1 --ip 10.99.0.5 busybox true", Stdout)
            .pierd_says("no configured subnet or ip-range contain the IP address 10.99.0.5"),
        // Which of them are left behind (created, never started).
        step("ps -a --filter name=bad --format '{{.Names}} {{.State}}'", SortedStdout),
        // containers.
        step_keep(
            "run --rm --network n1 --ip 10.231.0.200 busybox ip -4 -o addr show eth0",
            Stdout,
            inet,
        ),
        step("run -d --name a1 --network n1 --network-alias web busybox sleep 1000", All),
        step_keep(
            "inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}} {{$v.Aliases}}{{end}}' a1",
            All,
            without_id_alias,
        ),
        step("inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.Gateway}} {{$v.IPPrefixLen}}{{end}}' a1", All),
        step_keep("exec a1 ip -o link", SortedStdout, link_names),
        step("network connect n3 a1", All),
        step_keep("exec a1 ip -o link", SortedStdout, link_names),
        step("inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' a1", All),
        step("network connect n3 a1", Code),
        step("network disconnect n3 a1", All),
        step_keep("exec a1 ip -o link", SortedStdout, link_names),
        step("inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' a1", All),
        step("network disconnect n3 a1", Code),
        // Docker 25+ names the containers in the message; 20.10 gives the network's ID.
        step("network rm n1", Stdout)
            .pierd_says("error while removing network: network n1 has active endpoints (name:\"a1\" id:\""),
        step("network ls -f name=n1 --format '{{.Name}}'", All),
        step_keep("run --rm --network none busybox ip -o link", SortedStdout, link_names),
        step_keep("run --rm --network host busybox ip -o link", SortedStdout, host_links),
        step_keep(
            "run --rm --network container:a1 busybox ip -4 -o addr show eth0",
            Stdout,
            inet,
        ),
        step("run --rm --network container:missing busybox true", Code),
        // Name resolution through the embedded DNS (it works on the isolated dockerd
        // too, --iptables=false notwithstanding): aliases and container names, from a
        // new container and from the named one itself.
        step_keep(
            "run --rm --network n1 busybox nslookup web",
            All,
            without_authority_note,
        ),
        step_keep("exec a1 nslookup a1", All, without_authority_note),
        // Like Docker's, the embedded DNS answers as a recursive resolver (RA, not AA:
        // busybox prints "Non-authoritative answer:"); the A and AAAA sections come in
        // the order the answers arrive, so the lines are compared sorted.
        step_keep("exec a1 nslookup web", All, sorted_lines),
        step("exec a1 grep nameserver /etc/resolv.conf", All),
        // Docker 28 adds the container's address and hostname to /etc/hosts on a user
        // network too; dockerd 20.10 (here) does not. The rest is the same.
        step_keep("exec a1 cat /etc/hosts", All, without_test_subnet)
            .pierd_prints("\n10.231.0.128\t"),
        step_keep("exec a1 ip route", All, routes),
        // An internal network has no default route on Docker 26+ (and pierd); dockerd
        // 20.10 still gave its containers one, via the bridge. The rest is the same.
        step_keep("run --rm --network n2 busybox ip route", All, subnet_routes)
            .pierd_lacks("default"),
        // Published ports, reached from the host through loopback and from another
        // container by name.
        step(
            "run -d --name p1 --network n1 -p 127.0.0.1:{port}:80 busybox sh -c 'while true; do echo served | nc -l -p 80; done'",
            All,
        ),
        step("port p1", All),
        step("port p1 80/tcp", All),
        step("inspect -f '{{json .NetworkSettings.Ports}}' p1", All),
        step("inspect -f '{{json .HostConfig.PortBindings}}' p1", All),
        // (busybox's wget crashes here: nc it is. An empty answer is retried: the
        // server may not listen yet.)
        host_step(
            "out=$(timeout 5 /bin/busybox nc 127.0.0.1 {port} </dev/null) && [ -n \"$out\" ] && echo \"$out\"",
            All,
        ),
        step("run --rm --network n1 busybox nc -w 5 p1 80", All),
        // (Listed in the order of the containers' IDs.)
        step(
            "network inspect -f '{{range .Containers}}{{println .Name .IPv4Address}}{{end}}' n1",
            SortedStdout,
        ),
        step("rm -f p1", All),
        // A container without a network cannot join one.
        step("run -d --name c0 --network none busybox sleep 1000", All),
        step("network connect n1 c0", Code),
        step("rm -f c0", All),
        step("network disconnect n2 a1", Code),
        step_keep("network ls -f type=custom --format '{{.Name}}'", Stdout, without_default_bridge),
        step_keep("network ls -f type=builtin --format '{{.Name}}'", Stdout, without_default_bridge),
        step("network create -d nosuchdriver -o com.docker.network.bridge.name={br5} nd", Code)
            .pierd_says("plugin \"nosuchdriver\" not found"),
        // What prune deletes: the networks without containers (n1 has a1).
        step("network prune -f", SortedStdout),
        step_keep("network ls --format '{{.Name}}'", Stdout, without_default_bridge),
        step("rm -f a1", All),
        step("network rm n1", All),
        step_keep("network ls --format '{{.Name}}'", Stdout, without_default_bridge),
    ]
}

/// Removes what one engine's run made: its containers, its networks, and (should the
/// daemon have left them) the bridge devices; runs when dropped, also after a panic.
struct Cleanup<'a> {
    engine: &'a dyn Engine,
    names: &'a Names,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = self.engine.docker(&["ps", "-aq"]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.engine.docker(&args);
        }
        for n in ["n1", "n2", "n3", "overlap", "badgw", "nd"] {
            let _ = self.engine.docker(&["network", "rm", n]);
        }
        for b in &self.names.bridges {
            let gone = Command::new("ip")
                .args(["link", "delete", b])
                .stderr(std::process::Stdio::null())
                .status();
            if gone.is_ok_and(|s| s.success()) {
                eprintln!("warning: bridge {b} was left behind; deleted");
            }
        }
    }
}

/// `sh -c line` on the host, until it exits 0 (up to 20 s).
fn host_command(line: &str) -> Out {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = pier_testsupport::run(
            Command::new("sh").args(["-c", line]),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if out.code == Some(0) || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many links the host has (for `--network host`).
fn host_link_count() -> usize {
    let out = pier_testsupport::run(
        Command::new("ip").args(["-o", "link"]),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out.stdout.lines().count()
}

fn run_script(label: &str, e: &dyn Engine, rootfs: &Path, steps: &[Step]) -> Vec<String> {
    let names = Names::new();
    let _cleanup = Cleanup {
        engine: e,
        names: &names,
    };
    e.docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], rootfs)
        .ok()
        .unwrap_or_else(|err| panic!("{err}"));
    let mut views = Vec::new();
    for s in steps {
        let args: Vec<String> = s.args.iter().map(|a| names.expand(a)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = if s.host {
            host_command(args[0])
        } else {
            e.docker(&args)
        };
        if args.contains(&"host") && args.first() == Some(&"run") {
            // The container sees the host's links: as many as the host has (other
            // tests add and remove devices meanwhile: allow a little drift).
            let inside = out.stdout.lines().count();
            let host = host_link_count();
            assert!(
                inside.abs_diff(host) <= 2,
                "--network host: {inside} links inside, {host} on the host\n{}",
                out.stdout
            );
        }
        if let (Some(text), "pierd") = (s.pierd_stderr, label) {
            assert!(
                out.stderr.contains(text),
                "pierd: docker {}: stderr lacks {text:?}\n{}",
                args.join(" "),
                out.stderr
            );
        }
        if let (Some((present, text)), "pierd") = (s.pierd_stdout, label) {
            assert!(
                out.stdout.contains(text) == present,
                "pierd: docker {}: stdout should {}contain {text:?}\n{}",
                args.join(" "),
                if present { "" } else { "not " },
                out.stdout
            );
        }
        views.push(view(&out, &names, s));
    }
    // The bridges of the user networks are gone with them.
    for b in &names.bridges {
        assert!(
            !Path::new("/sys/class/net").join(b).exists(),
            "bridge {b} still exists after its network was removed"
        );
    }
    views
}

/// Where networks without a subnet get theirs, on both engines: the default pools
/// (172.17.0.0/16, …) are in use on this host, and dockerd 20.10 does not check the
/// host's routes.
const POOL: &str = "base=10.231.128.0/17,size=24";

#[test]
fn same_network_results_as_real_dockerd() {
    let work = tempfile::tempdir().expect("temp dir");
    let Some(rootfs) = busybox_rootfs_tar(work.path()) else {
        return;
    };
    let Some(dockerd) =
        // Names its embedded DNS does not know go to loopback (as on the test's pierd),
        // never to the host's resolver.
        IsolatedDockerd::start_or_skip(
            "network_scenario",
            DockerdOptions {
                extra_args: vec![
                    "--dns".into(),
                    "127.0.0.1".into(),
                    "--default-address-pool".into(),
                    POOL.into(),
                ],
                ..DockerdOptions::default()
            },
        )
    else {
        return;
    };
    let pierd = Pierd::start_with_args(&["--default-address-pool", POOL]);
    let steps = script();
    let engines: [(&str, &dyn Engine); 2] = [("pierd", &pierd), ("dockerd", &dockerd)];
    let results: Vec<Vec<String>> = engines
        .iter()
        .map(|(label, e)| run_script(label, *e, &rootfs, &steps))
        .collect();
    if std::env::var_os("PIER_SCENARIO_VERBOSE").is_some() {
        for (i, s) in steps.iter().enumerate() {
            eprintln!(
                "step {i}: docker {}\n  pierd:   {:?}\n  dockerd: {:?}",
                s.args.join(" "),
                results[0][i],
                results[1][i]
            );
        }
    }
    let mut differences = Vec::new();
    let mut known = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if results[0][i] != results[1][i] {
            let text = format!(
                "step {i}: docker {}\n  pierd:   {:?}\n  dockerd: {:?}",
                s.args.join(" "),
                results[0][i],
                results[1][i]
            );
            if s.expect_same {
                differences.push(text);
            } else {
                known.push(text);
            }
        } else if !s.expect_same {
            known.push(format!(
                "step {i}: docker {}: now the same: make it required",
                s.args.join(" ")
            ));
        }
    }
    if !known.is_empty() {
        eprintln!("known differences:\n{}", known.join("\n"));
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}\npierd log:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n"),
        pierd.log_tail(30)
    );
}
