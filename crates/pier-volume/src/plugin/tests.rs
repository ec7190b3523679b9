//! The plugin client against a test plugin on a unix socket (pier-testsupport's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pier_testsupport::volume_plugin::TestVolumePlugin;
use serde_json::{json, Value};

use super::*;

const ACTIVATE_ANSWER: &str = r#"{"Implements": ["VolumeDriver"]}"#;

/// A plugin answering every call the way a well-behaved driver does.
fn good_plugin(socket: &Path) -> TestVolumePlugin {
    TestVolumePlugin::start(socket, |method, body| {
        let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let name = request["Name"].as_str().unwrap_or("").to_string();
        let answer = match method {
            "Plugin.Activate" => ACTIVATE_ANSWER.to_string(),
            "VolumeDriver.Capabilities" => r#"{"Capabilities": {"Scope": "global"}}"#.into(),
            "VolumeDriver.Create" | "VolumeDriver.Remove" | "VolumeDriver.Unmount" => {
                r#"{"Err": ""}"#.into()
            }
            "VolumeDriver.Mount" | "VolumeDriver.Path" => {
                json!({"Mountpoint": format!("/srv/{name}"), "Err": ""}).to_string()
            }
            "VolumeDriver.Get" => json!({"Volume": {
                "Name": name, "Mountpoint": format!("/srv/{name}"),
                "Status": {"size": 3}, "CreatedAt": "2026-01-02T03:04:05Z",
                "SomethingNew": true}})
            .to_string(),
            "VolumeDriver.List" => json!({"Volumes": [
                {"Name": "a", "Mountpoint": "/srv/a"}, {"Name": "b"}], "Err": ""})
            .to_string(),
            _ => return (404, "404 page not found".into()),
        };
        (200, answer)
    })
    .unwrap()
}

fn body_of(call: &pier_testsupport::volume_plugin::PluginCall) -> Value {
    serde_json::from_str(&call.body).unwrap()
}

fn dirs(dir: &Path) -> Vec<PathBuf> {
    vec![dir.to_path_buf()]
}

#[test]
fn every_call_sends_dockers_body_and_reads_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = good_plugin(&dir.path().join("testplug.sock"));
    let driver = find("testplug", &dirs(dir.path())).unwrap();
    assert_eq!(driver.name(), "testplug");
    assert_eq!(driver.scope(), Scope::Global);

    let opts = BTreeMap::from([("size".to_string(), "1G".to_string())]);
    driver.create("v1", &opts).unwrap();
    assert_eq!(
        driver.mount("v1", "c0ffee").unwrap(),
        PathBuf::from("/srv/v1")
    );
    assert_eq!(driver.path("v1").unwrap(), Some(PathBuf::from("/srv/v1")));
    driver.unmount("v1", "c0ffee").unwrap();
    let got = driver.get("v1").unwrap();
    assert_eq!(got.name, "v1");
    assert_eq!(got.mountpoint, Some(PathBuf::from("/srv/v1")));
    assert_eq!(got.created_at.as_deref(), Some("2026-01-02T03:04:05Z"));
    assert_eq!(got.status.unwrap()["size"], json!(3));
    let listed = driver.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].name, "b");
    assert_eq!(listed[1].mountpoint, None);
    driver.remove("v1").unwrap();

    let calls = plugin.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "Plugin.Activate",
            "VolumeDriver.Capabilities",
            "VolumeDriver.Create",
            "VolumeDriver.Mount",
            "VolumeDriver.Path",
            "VolumeDriver.Unmount",
            "VolumeDriver.Get",
            "VolumeDriver.List",
            "VolumeDriver.Remove",
        ]
    );
    for call in &calls {
        assert_eq!(
            call.accept.as_deref(),
            Some("application/vnd.docker.plugins.v1.2+json"),
            "{}",
            call.method
        );
    }
    assert_eq!(
        body_of(&calls[2]),
        json!({"Name": "v1", "Opts": {"size": "1G"}})
    );
    assert_eq!(body_of(&calls[3]), json!({"Name": "v1", "ID": "c0ffee"}));
    assert_eq!(body_of(&calls[4]), json!({"Name": "v1"}));
    assert_eq!(body_of(&calls[5]), json!({"Name": "v1", "ID": "c0ffee"}));
    assert_eq!(body_of(&calls[6]), json!({"Name": "v1"}));
    assert_eq!(body_of(&calls[8]), json!({"Name": "v1"}));
}

#[test]
fn plugin_errors_come_back_in_dockers_words() {
    let dir = tempfile::tempdir().unwrap();
    let _plugin = TestVolumePlugin::start(&dir.path().join("errplug.sock"), |method, _| {
        match method {
            "Plugin.Activate" => (200, ACTIVATE_ANSWER.into()),
            // No Capabilities: the driver is local.
            "VolumeDriver.Capabilities" => (404, "404 page not found".into()),
            // An error with status 200 and an Err, as some plugins answer...
            "VolumeDriver.Create" => (200, r#"{"Err": "no space on the array"}"#.into()),
            // ...and with status 500, as Docker's plugin helpers answer.
            "VolumeDriver.Mount" => (500, r#"{"Err": "device busy"}"#.into()),
            "VolumeDriver.Get" => (500, r#"{"Err": "no such volume"}"#.into()),
            "VolumeDriver.Remove" => (500, "plain text trouble".into()),
            _ => (200, "{}".into()),
        }
    })
    .unwrap();
    let driver = find("errplug", &dirs(dir.path())).unwrap();
    assert_eq!(driver.scope(), Scope::Local);

    let err = driver.create("v", &BTreeMap::new()).unwrap_err();
    assert!(matches!(err, VolumeError::Driver(_)), "{err:?}");
    // dockerd's words: an Err in a success answer alone, an error status with the method.
    assert_eq!(err.to_string(), "no space on the array");
    let err = driver.mount("v", "c1").unwrap_err();
    assert_eq!(err.to_string(), "VolumeDriver.Mount: device busy");
    let err = driver.get("v").unwrap_err();
    assert!(matches!(err, VolumeError::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "VolumeDriver.Get: no such volume");
    let err = driver.remove("v").unwrap_err();
    assert_eq!(err.to_string(), "VolumeDriver.Remove: plain text trouble");
    // An answer without a Mountpoint: Path has none (the volume is not mounted).
    assert_eq!(driver.path("v").unwrap(), None);
}

#[test]
fn a_missing_plugin_is_not_found_in_dockers_words() {
    let dir = tempfile::tempdir().unwrap();
    let err = find("nosuch", &dirs(dir.path())).unwrap_err();
    assert!(matches!(err, VolumeError::NotFound(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "error looking up volume plugin nosuch: plugin \"nosuch\" not found"
    );
    // A name that would walk out of the plugin directories is no plugin name at all.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let _plugin = good_plugin(&dir.path().join("sub").join("escape.sock"));
    for name in ["../escape", "sub/escape", "", ".hidden"] {
        let err = find(name, &dirs(&dir.path().join("sub").join("x"))).unwrap_err();
        assert!(matches!(err, VolumeError::NotFound(_)), "{name}: {err:?}");
    }
}

#[test]
fn a_plugin_that_is_down_or_hangs_fails_clearly_and_in_time() {
    let dir = tempfile::tempdir().unwrap();
    // A socket file nobody listens on: the plugin died and left it behind.
    let stale = dir.path().join("downplug.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = find("downplug", &dirs(dir.path())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("error looking up volume plugin downplug: Plugin.Activate: plugin \"downplug\" at unix://"),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");

    // Activated, then gone: each call names the plugin and says why.
    let plugin = good_plugin(&dir.path().join("goneplug.sock"));
    let driver = find("goneplug", &dirs(dir.path())).unwrap();
    drop(plugin);
    let text = driver.mount("v", "c1").unwrap_err().to_string();
    assert!(
        text.starts_with("VolumeDriver.Mount: plugin \"goneplug\" at unix://"),
        "{text}"
    );

    // A plugin that accepts but never answers: bounded by the timeout.
    let _slow = TestVolumePlugin::start(&dir.path().join("slowplug.sock"), |method, _| {
        if method == "VolumeDriver.Mount" {
            std::thread::sleep(Duration::from_secs(10));
        }
        match method {
            "Plugin.Activate" => (200, ACTIVATE_ANSWER.into()),
            _ => (200, "{}".into()),
        }
    })
    .unwrap();
    let registry = PluginRegistry::new(dirs(dir.path())).with_timeout(Duration::from_millis(300));
    let driver = registry.get("slowplug").unwrap();
    let started = Instant::now();
    let text = driver.mount("v", "c1").unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text.starts_with("VolumeDriver.Mount: plugin \"slowplug\" at unix://")
            && text.ends_with("no answer within 300ms"),
        "{text}"
    );
}

#[test]
fn activation_requires_volumedriver_and_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let _net = TestVolumePlugin::start(&dir.path().join("netplug.sock"), |_, _| {
        (200, r#"{"Implements": ["NetworkDriver"]}"#.into())
    })
    .unwrap();
    let err = find("netplug", &dirs(dir.path())).unwrap_err();
    assert!(matches!(err, VolumeError::NotFound(_)), "{err:?}");
    assert!(
        err.to_string().contains("does not implement VolumeDriver"),
        "{err}"
    );

    let plugin = good_plugin(&dir.path().join("cached.sock"));
    let registry = PluginRegistry::new(dirs(dir.path()));
    assert!(registry.active_names().is_empty());
    let first = registry.get("cached").unwrap();
    // Listed once activated (pierd lists their volumes).
    assert_eq!(registry.active_names(), ["cached"]);
    first.create("x", &BTreeMap::new()).unwrap();
    let second = registry.get("cached").unwrap();
    second.remove("x").unwrap();
    let activations = plugin
        .calls()
        .iter()
        .filter(|c| c.method == "Plugin.Activate")
        .count();
    assert_eq!(activations, 1);
}

#[test]
fn discovery_follows_dockers_places_and_spec_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(first.join("nested")).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let all = vec![first.clone(), second.clone()];

    // <dir>/<name>/<name>.sock
    let _nested = good_plugin(&first.join("nested").join("nested.sock"));
    assert_eq!(
        discover("nested", &all).unwrap(),
        Endpoint::Unix(first.join("nested").join("nested.sock"))
    );
    // An earlier directory wins.
    let _a = good_plugin(&second.join("both.sock"));
    let _b = good_plugin(&first.join("both.sock"));
    assert_eq!(
        discover("both", &all).unwrap(),
        Endpoint::Unix(first.join("both.sock"))
    );
    // A .spec with a unix URL, used for calls.
    let real = dir.path().join("elsewhere.sock");
    let plugin = good_plugin(&real);
    std::fs::write(
        second.join("specplug.spec"),
        format!("unix://{}\n", real.display()),
    )
    .unwrap();
    let driver = find("specplug", &all).unwrap();
    driver.create("s", &BTreeMap::new()).unwrap();
    assert_eq!(plugin.changes()[0].method, "VolumeDriver.Create");
    // A .spec with a tcp address.
    std::fs::write(second.join("tcpplug.spec"), "tcp://127.0.0.1:8123").unwrap();
    assert_eq!(
        discover("tcpplug", &all).unwrap(),
        Endpoint::Tcp("127.0.0.1:8123".into())
    );
    // A .json spec; TLS is refused, not downgraded.
    std::fs::write(
        second.join("jsonplug.json"),
        r#"{"Name": "jsonplug", "Addr": "tcp://127.0.0.1:8124"}"#,
    )
    .unwrap();
    assert_eq!(
        discover("jsonplug", &all).unwrap(),
        Endpoint::Tcp("127.0.0.1:8124".into())
    );
    std::fs::write(
        second.join("tlsplug.json"),
        r#"{"Name": "tlsplug", "Addr": "tcp://127.0.0.1:8125", "TLSConfig": {"CAFile": "/ca.pem"}}"#,
    )
    .unwrap();
    let err = discover("tlsplug", &all).unwrap_err().to_string();
    assert!(err.contains("TLSConfig is not supported"), "{err}");
    std::fs::write(second.join("httpsplug.spec"), "https://127.0.0.1:8126").unwrap();
    let err = discover("httpsplug", &all).unwrap_err().to_string();
    assert!(err.contains("needs TLS"), "{err}");
    std::fs::write(second.join("badplug.spec"), "ftp://x").unwrap();
    let err = discover("badplug", &all).unwrap_err().to_string();
    assert!(
        err.contains("is not unix:///path or tcp://host:port"),
        "{err}"
    );
}

#[test]
fn default_dirs_are_dockers() {
    assert_eq!(
        default_dirs(),
        [
            PathBuf::from("/run/docker/plugins"),
            PathBuf::from("/etc/docker/plugins"),
            PathBuf::from("/usr/lib/docker/plugins")
        ]
    );
}

#[test]
fn calls_work_from_inside_an_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = good_plugin(&dir.path().join("asyncplug.sock"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A caller that blocks inside an async task (not what it should do, but it must not
    // bring the daemon down with "cannot start a runtime from within a runtime").
    let mountpoint = runtime.block_on(async {
        let driver = find("asyncplug", &dirs(dir.path())).unwrap();
        driver.mount("v", "c1").unwrap()
    });
    assert_eq!(mountpoint, PathBuf::from("/srv/v"));
    assert_eq!(plugin.changes()[0].method, "VolumeDriver.Mount");
}

/// Relays each TCP connection on a loopback port to the unix socket `to`; answers
/// the port.
fn tcp_relay(to: &Path) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let to = to.to_path_buf();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(unix) = std::os::unix::net::UnixStream::connect(&to) else {
                continue;
            };
            let (mut tcp_in, mut unix_out) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut tcp_in, &mut unix_out));
            let (mut unix_in, mut tcp_out) = (unix, tcp);
            std::thread::spawn(move || std::io::copy(&mut unix_in, &mut tcp_out));
        }
    });
    port
}

#[test]
fn a_plugin_on_loopback_tcp_from_a_spec_file() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = good_plugin(&dir.path().join("behind-tcp.sock"));
    let port = tcp_relay(plugin.socket());
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(
        specs.join("tcpplug.spec"),
        format!("tcp://127.0.0.1:{port}\n"),
    )
    .unwrap();
    let driver = find("tcpplug", &dirs(&specs)).unwrap();
    assert_eq!(driver.mount("v9", "c9").unwrap(), PathBuf::from("/srv/v9"));
    let changes = plugin.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(body_of(&changes[0]), json!({"Name": "v9", "ID": "c9"}));
}
