//! Docker volume plugins through pierd, with the real docker CLI: a test plugin (an
//! HTTP server on a unix socket in pierd's own plugins directory, `<exec-root>/plugins`)
//! receives Create/Mount/Unmount/Remove in order, with each container's ID in
//! Mount/Unmount; the path it answers is what the container sees; a plugin that fails
//! or is down gives a clear error and leaves no volume behind.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{mounts_under, pierd_with_busybox, Engine, Pierd};
use pier_testsupport::volume_plugin::{PluginCall, TestVolumePlugin};
use serde_json::{json, Value};

/// A plugin that keeps its volumes as directories under `base`; each volume's
/// directory holds a `marker` file naming it. Volumes named `fail-*` fail to create.
fn start_plugin(socket: &Path, base: &Path) -> TestVolumePlugin {
    let volumes: Arc<Mutex<BTreeMap<String, PathBuf>>> = Arc::default();
    let base = base.to_path_buf();
    TestVolumePlugin::start(socket, move |method, body| {
        let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let name = request["Name"].as_str().unwrap_or_default().to_string();
        let mut volumes = volumes.lock().unwrap();
        let answer = match method {
            "Plugin.Activate" => json!({"Implements": ["VolumeDriver"]}),
            "VolumeDriver.Capabilities" => json!({"Capabilities": {"Scope": "local"}}),
            "VolumeDriver.Create" if name.starts_with("fail-") => {
                json!({"Err": "the array is full"})
            }
            // An error with an error status, as Docker's plugin helpers answer.
            "VolumeDriver.Create" if name.starts_with("fail500-") => {
                return (500, json!({"Err": "the array is on fire"}).to_string());
            }
            "VolumeDriver.Create" => {
                let dir = base.join(&name);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("marker"), format!("made by testplug for {name}\n"))
                    .unwrap();
                volumes.insert(name, dir);
                json!({"Err": ""})
            }
            "VolumeDriver.Remove" => {
                if let Some(dir) = volumes.remove(&name) {
                    std::fs::remove_dir_all(dir).unwrap();
                }
                json!({"Err": ""})
            }
            "VolumeDriver.Mount" | "VolumeDriver.Path" => match volumes.get(&name) {
                Some(dir) => json!({"Mountpoint": dir, "Err": ""}),
                None => json!({"Err": format!("no volume {name}")}),
            },
            "VolumeDriver.Unmount" => json!({"Err": ""}),
            "VolumeDriver.Get" => match volumes.get(&name) {
                Some(dir) => json!({"Volume": {"Name": name, "Mountpoint": dir}}),
                None => json!({"Err": format!("no volume {name}")}),
            },
            "VolumeDriver.List" => json!({"Volumes": volumes
                .iter()
                .map(|(n, d)| json!({"Name": n, "Mountpoint": d}))
                .collect::<Vec<_>>()}),
            _ => return (404, "404 page not found".into()),
        };
        (200, answer.to_string())
    })
    .unwrap()
}

fn plugins_dir(pierd: &Pierd) -> PathBuf {
    let dir = pierd.exec_root().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `METHOD NAME [ID]` of each state-changing call.
fn changes(plugin: &TestVolumePlugin) -> Vec<String> {
    plugin
        .changes()
        .iter()
        .map(|c: &PluginCall| {
            let body: Value = serde_json::from_str(&c.body).unwrap();
            let mut line = format!(
                "{} {}",
                c.method.trim_start_matches("VolumeDriver."),
                body["Name"].as_str().unwrap_or("?")
            );
            if let Some(id) = body["ID"].as_str() {
                line.push(' ');
                line.push_str(id);
            }
            line
        })
        .collect()
}

fn volume_names(pierd: &Pierd) -> Vec<String> {
    pierd
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_plugin_volume_is_created_mounted_per_container_and_removed() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let plugin = start_plugin(&plugins_dir(&pierd).join("testplug.sock"), data.path());

    assert_eq!(
        pierd
            .docker_ok(&["volume", "create", "-d", "testplug", "v1"])
            .trim(),
        "v1"
    );
    let inspect = pierd.docker_ok(&[
        "volume",
        "inspect",
        "v1",
        "--format",
        "{{.Driver}} {{.Mountpoint}} {{.Scope}}",
    ]);
    assert_eq!(
        inspect.trim(),
        format!("testplug {} local", data.path().join("v1").display())
    );

    // The container sees the directory the plugin answered.
    let out = pierd.docker_ok(&[
        "run",
        "--name",
        "reader",
        "-v",
        "v1:/data",
        "busybox",
        "cat",
        "/data/marker",
    ]);
    assert_eq!(out, "made by testplug for v1\n");
    let reader = pierd.docker_ok(&["inspect", "-f", "{{.Id}}", "reader"]);
    let reader = reader.trim();

    // Two containers at once: a Mount each, with its own ID; an Unmount each at stop.
    pierd.docker_ok(&[
        "run", "-d", "--name", "ca", "-v", "v1:/data", "busybox", "sleep", "60",
    ]);
    pierd.docker_ok(&[
        "run", "-d", "--name", "cb", "-v", "v1:/data", "busybox", "sleep", "60",
    ]);
    let a = pierd
        .docker_ok(&["inspect", "-f", "{{.Id}}", "ca"])
        .trim()
        .to_string();
    let b = pierd
        .docker_ok(&["inspect", "-f", "{{.Id}}", "cb"])
        .trim()
        .to_string();
    // In use: not removable.
    let busy = pierd.docker(&["volume", "rm", "v1"]);
    assert_ne!(busy.code, Some(0), "{busy:?}");
    assert!(busy.stderr.contains("volume is in use"), "{busy:?}");
    pierd.docker_ok(&["stop", "-t", "0", "ca"]);
    pierd.docker_ok(&["stop", "-t", "0", "cb"]);
    pierd.docker_ok(&["rm", "reader", "ca", "cb"]);
    pierd.docker_ok(&["volume", "rm", "v1"]);
    assert!(!volume_names(&pierd).contains(&"v1".to_string()));

    let calls = changes(&plugin);
    let mut expected = vec![
        "Create v1".to_string(),
        format!("Mount v1 {reader}"),
        format!("Unmount v1 {reader}"),
    ];
    assert_eq!(calls[..3], expected[..], "{calls:#?}");
    // a and b: mounted before either stops, each unmounted once, with its own ID.
    let rest = &calls[3..];
    for id in [&a, &b] {
        let mount = rest.iter().position(|c| *c == format!("Mount v1 {id}"));
        let unmount = rest.iter().position(|c| *c == format!("Unmount v1 {id}"));
        assert!(
            mount.is_some() && unmount.is_some() && mount < unmount,
            "{calls:#?}"
        );
        assert_eq!(
            rest.iter().filter(|c| c.ends_with(id.as_str())).count(),
            2,
            "{calls:#?}"
        );
    }
    expected.push("Remove v1".into());
    assert_eq!(calls.last(), expected.last(), "{calls:#?}");
    assert_eq!(calls.len(), 8, "{calls:#?}");
    // Every call asked for the protocol's version.
    assert!(plugin
        .calls()
        .iter()
        .all(|c| c.accept.as_deref() == Some("application/vnd.docker.plugins.v1.2+json")));
    assert!(
        mounts_under(data.path()).is_empty(),
        "{:?}",
        mounts_under(data.path())
    );
}

#[test]
fn a_plugin_that_fails_or_is_down_leaves_no_volume() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let plugins = plugins_dir(&pierd);

    // No such plugin: Docker's words.
    let out = pierd.docker(&["volume", "create", "-d", "nosuch", "v0"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("plugin \"nosuch\" not found"),
        "{out:?}"
    );

    // The plugin refuses: its error, named by method.
    let plugin = start_plugin(&plugins.join("testplug.sock"), data.path());
    let out = pierd.docker(&["volume", "create", "-d", "testplug", "fail-1"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("Error response from daemon: create fail-1: the array is full"),
        "{out:?}"
    );
    assert!(!volume_names(&pierd).contains(&"fail-1".to_string()));

    // A volume made while the plugin was up; the plugin then goes down.
    pierd.docker_ok(&["volume", "create", "-d", "testplug", "v2"]);
    drop(plugin);
    let out = pierd.docker(&["run", "--rm", "-v", "v2:/data", "busybox", "true"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("testplug"), "{out:?}");
    assert_eq!(
        pierd.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "no container left"
    );

    // A socket nobody answers on (a plugin that died): a clear error, no record.
    drop(std::os::unix::net::UnixListener::bind(plugins.join("deadplug.sock")).unwrap());
    let out = pierd.docker(&["volume", "create", "-d", "deadplug", "v3"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("deadplug") && out.stderr.contains("refused"),
        "{out:?}"
    );
    assert!(!volume_names(&pierd).contains(&"v3".to_string()));

    // Back up (found again, activated again): v2 goes cleanly.
    let plugin = start_plugin(&plugins.join("testplug.sock"), data.path());
    pierd.docker_ok(&["volume", "rm", "v2"]);
    assert_eq!(changes(&plugin), ["Remove v2"]);
    assert!(!volume_names(&pierd).contains(&"v2".to_string()));
    assert!(mounts_under(data.path()).is_empty());
}

/// dockerd finds legacy plugins only in the host's `/run/docker/plugins` (and the spec
/// directories): the parity test puts its socket there, under a name of its own, and
/// removes the directories it had to make.
struct HostPluginDir {
    dir: PathBuf,
    made: Vec<PathBuf>,
}

impl HostPluginDir {
    fn new() -> HostPluginDir {
        let mut made = Vec::new();
        for dir in ["/run/docker", "/run/docker/plugins"] {
            if std::fs::create_dir(dir).is_ok() {
                made.push(PathBuf::from(dir));
            }
        }
        HostPluginDir {
            dir: PathBuf::from("/run/docker/plugins"),
            made,
        }
    }
}

impl Drop for HostPluginDir {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The same script against pierd and dockerd, each with a fresh test plugin: the same
/// answers, and the same calls in the same order.
#[test]
fn plugin_calls_and_answers_match_dockerd() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let Some(dockerd) = pier_testsupport::IsolatedDockerd::start_or_skip(
        "volume plugins",
        pier_testsupport::DockerdOptions::default(),
    ) else {
        return;
    };
    let host_dir = HostPluginDir::new();
    let tar = work.path().join("busybox-rootfs.tar");
    dockerd
        .docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &tar)
        .ok()
        .unwrap_or_else(|e| panic!("{e}"));
    let plugin_name = pier_testsupport::unique_name("pt");
    let socket = host_dir.dir.join(format!("{plugin_name}.sock"));

    let engines: [(&str, &dyn Engine); 2] = [("pierd", &pierd), ("dockerd", &dockerd)];
    let mut seen = Vec::new();
    for (label, engine) in engines {
        let data = tempfile::tempdir().unwrap();
        let plugin = start_plugin(&socket, data.path());
        let mut answers = Vec::new();
        let mut step = |args: &[&str]| {
            let out = engine.docker(args);
            answers.push(format!(
                "{args:?} -> {:?} {:?} {:?}",
                out.code,
                out.stdout,
                out.stderr.trim()
            ));
        };
        step(&["volume", "create", "-d", &plugin_name, "v1"]);
        step(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}}",
            "v1",
        ]);
        step(&[
            "run",
            "--name",
            "r1",
            "-v",
            "v1:/data",
            "busybox",
            "cat",
            "/data/marker",
        ]);
        step(&[
            "run",
            "--rm",
            "--volume-driver",
            &plugin_name,
            "-v",
            "v2:/data",
            "busybox",
            "cat",
            "/data/marker",
        ]);
        step(&["rm", "r1"]);
        step(&["volume", "rm", "v1"]);
        step(&["volume", "rm", "v2"]);
        step(&["volume", "create", "-d", &plugin_name, "fail-1"]);
        step(&["volume", "create", "-d", &plugin_name, "fail500-1"]);
        step(&["volume", "ls", "-q"]);
        // Container IDs differ; where they are is what must match.
        let mut ids = Vec::<String>::new();
        let calls: Vec<String> = changes(&plugin)
            .into_iter()
            .map(|line| {
                let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
                if let Some(id) = words.get_mut(2) {
                    let n = ids.iter().position(|i| i == id).unwrap_or_else(|| {
                        ids.push(id.clone());
                        ids.len() - 1
                    });
                    *id = format!("<container {n}>");
                }
                words.join(" ")
            })
            .collect();
        drop(plugin);
        assert!(mounts_under(data.path()).is_empty(), "{label}");
        seen.push((label, answers, calls));
    }
    let (_, pier_answers, pier_calls) = &seen[0];
    let (_, docker_answers, docker_calls) = &seen[1];
    for (pier, docker) in pier_answers.iter().zip(docker_answers) {
        assert_eq!(pier, docker);
    }
    assert_eq!(pier_calls, docker_calls);
}

/// Asks the plugin itself to make volume `name` (as another daemon, or the plugin's
/// own tooling, would): pierd has no record of it.
fn create_behind_pierds_back(plugin: &TestVolumePlugin, name: &str) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(plugin.socket()).unwrap();
    let body = json!({ "Name": name, "Opts": {} }).to_string();
    write!(
        stream,
        "POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200", "{answer:?}");
}

/// The volumes a plugin pierd has activated reports through `List`, recorded here or
/// not, are listed (once) and inspected (through `Get`), as dockerd shows a plugin's
/// own volumes; the filters apply to them. A container's `Mounts` shows a plugin
/// volume's path from its Mount, without asking the plugin again.
#[test]
fn a_plugins_own_volumes_are_listed_and_mounts_do_not_ask_the_plugin() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let plugin = start_plugin(&plugins_dir(&pierd).join("testplug.sock"), data.path());
    create_behind_pierds_back(&plugin, "own1");
    // Not yet activated by pierd: not asked.
    assert!(!volume_names(&pierd).contains(&"own1".to_string()));
    assert!(!plugin.calls().iter().any(|c| c.method == "Plugin.Activate"));

    pierd.docker_ok(&["volume", "create", "-d", "testplug", "v1"]);
    let listed = pierd.docker_ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort();
    assert_eq!(lines, ["testplug own1", "testplug v1"], "{listed}");
    let inspect = pierd.docker_ok(&[
        "volume",
        "inspect",
        "own1",
        "--format",
        "{{.Name}} {{.Driver}} {{.Mountpoint}} {{.Scope}}",
    ]);
    assert_eq!(
        inspect.trim(),
        format!("own1 testplug {} local", data.path().join("own1").display())
    );
    let missing = pierd.docker(&["volume", "inspect", "nosuch"]);
    assert_ne!(missing.code, Some(0), "{missing:?}");
    assert!(missing.stderr.contains("no such volume"), "{missing:?}");
    // Filters: a plugin's own volume is unused (dangling) and has no labels.
    let only = |filter: &str| {
        let mut names: Vec<String> = pierd
            .docker_ok(&["volume", "ls", "-q", "-f", filter])
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    };
    assert_eq!(only("driver=local"), Vec::<String>::new());
    assert_eq!(only("driver=testplug"), ["own1", "v1"]);
    assert_eq!(only("name=own"), ["own1"]);
    assert_eq!(only("dangling=true"), ["own1", "v1"]);
    assert_eq!(only("label=x"), Vec::<String>::new());

    // Mounts: the path the plugin answered at Mount, with no call made for it.
    pierd.docker_ok(&[
        "run", "-d", "--name", "user", "-v", "v1:/data", "busybox", "sleep", "60",
    ]);
    assert_eq!(only("dangling=false"), ["v1"]);
    let want = data.path().join("v1").display().to_string();
    for _ in 0..2 {
        let before = plugin.calls().len();
        let source = pierd.docker_ok(&["inspect", "-f", "{{(index .Mounts 0).Source}}", "user"]);
        assert_eq!(source.trim(), want);
        let ps = pierd.docker_ok(&["ps", "-a", "--format", "{{.Mounts}}"]);
        assert_eq!(ps.trim(), "v1");
        assert_eq!(
            plugin.calls().len(),
            before,
            "{:#?}",
            &plugin.calls()[before..]
        );
        pierd.docker_ok(&["stop", "-t", "0", "user"]);
    }
    pierd.docker_ok(&["rm", "user"]);
    pierd.docker_ok(&["volume", "rm", "v1"]);
    assert!(mounts_under(data.path()).is_empty());
}
