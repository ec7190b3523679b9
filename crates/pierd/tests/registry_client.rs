//! pierd against a real registry: Debian's `docker-registry` (distribution 2.8) on a
//! loopback port of the test's own, driven with the real docker CLI, side by side
//! with an isolated dockerd pushing to and pulling from the same registry.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{pierd_and_dockerd_with_busybox, pierd_with_busybox, Engine};
use pier_testsupport::registry::{bcrypt_hash, DockerRegistry};
use serde_json::Value;

fn inspect(engine: &dyn Engine, name: &str) -> Value {
    let text = engine.docker_ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    v[0].clone()
}

fn layers(image: &Value) -> Vec<String> {
    image["RootFS"]["Layers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The `digest: sha256:... size:` of a push's output.
fn pushed_digest(output: &str) -> String {
    output
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in push output: {output}"))
        .to_string()
}

/// A two-layer image `name` made on `engine` from busybox: the layer on top holds
/// `/hello` with `text` (and `extra_mib` MiB of random data in `/blob`).
fn make_image(engine: &dyn Engine, name: &str, text: &str, extra_mib: u32) {
    let container = pier_testsupport::unique_name("reg");
    let script = format!(
        "echo {text} > /hello && dd if=/dev/urandom of=/blob bs=1048576 count={extra_mib} 2>/dev/null"
    );
    engine.docker_ok(&["run", "--name", &container, "busybox", "sh", "-c", &script]);
    engine.docker_ok(&["commit", &container, name]);
    engine.docker_ok(&["rm", &container]);
}

/// Push from pierd, pull back into pierd and into dockerd; push from dockerd, pull into
/// pierd. The image ID, RepoDigests and layer digests agree everywhere, the pulled
/// images run, a second pull is "up to date", pull by digest works, and an unknown
/// tag fails with dockerd's words.
#[test]
fn push_and_pull_agree_with_dockerd() {
    let test = "push_and_pull_agree_with_dockerd";
    let Some(registry) = DockerRegistry::start_or_skip(test, None) else {
        return;
    };
    let Some((pierd, isolated, _work)) = pierd_and_dockerd_with_busybox(test) else {
        return;
    };
    let dockerd: &dyn Engine = &isolated;
    let reg = registry.host();

    // pierd pushes; the output is dockerd's shape.
    let app = format!("{reg}/pier/app:v1");
    make_image(&pierd, &app, "from-pier", 1);
    let before = inspect(&pierd, &app);
    let out = pierd.docker(&["push", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("The push refers to repository [{reg}/pier/app]")),
        "{out:?}"
    );
    assert!(out.stdout.contains("Pushed"), "{out:?}");
    let digest = pushed_digest(&out.stdout);
    // Pushing again: every layer is already there.
    let again = pierd.docker_ok(&["push", &app]);
    assert!(again.contains("Layer already exists"), "{again}");
    assert_eq!(pushed_digest(&again), digest);

    // Another repository of the same registry: the layers are mounted, not sent.
    let other = format!("{reg}/pier/other:1");
    pierd.docker_ok(&["tag", &app, &other]);
    let mounted = pierd.docker_ok(&["push", &other]);
    assert!(mounted.contains("Mounted from pier/app"), "{mounted}");
    assert_eq!(pushed_digest(&mounted), digest);
    pierd.docker_ok(&["rmi", &other]);

    // Gone locally, pulled back: same ID, a RepoDigest, and it runs.
    pierd.docker_ok(&["rmi", &app]);
    pierd.docker_ok(&["rmi", "busybox"]);
    let out = pierd.docker(&["pull", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("Pull complete"), "{out:?}");
    assert!(out.stdout.contains(&format!("Digest: {digest}")), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("Status: Downloaded newer image for {app}")),
        "{out:?}"
    );
    let pulled = inspect(&pierd, &app);
    assert_eq!(pulled["Id"], before["Id"]);
    assert_eq!(layers(&pulled), layers(&before));
    assert_eq!(
        pulled["RepoDigests"],
        serde_json::json!([format!("{reg}/pier/app@{digest}")])
    );
    let hello = pierd.docker_ok(&["run", "--rm", &app, "cat", "/hello"]);
    assert_eq!(hello.trim(), "from-pier");
    let again = pierd.docker_ok(&["pull", &app]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {app}")),
        "{again}"
    );

    // Every tag of the repository.
    let all = pierd.docker(&["pull", "--all-tags", &format!("{reg}/pier/app")]);
    assert_eq!(all.code, Some(0), "{all:?}");
    assert!(all.stdout.contains("v1: Pulling from pier/app"), "{all:?}");

    // dockerd pulls what pierd pushed: the same image.
    let out = dockerd.docker(&["pull", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let in_dockerd = inspect(dockerd, &app);
    assert_eq!(in_dockerd["Id"], before["Id"]);
    assert_eq!(layers(&in_dockerd), layers(&before));
    assert_eq!(in_dockerd["RepoDigests"], pulled["RepoDigests"]);

    // The events dockerd emits for a pull and a push.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1;
    let events = |e: &dyn Engine| {
        e.docker_ok(&[
            "events",
            "--since",
            "0",
            "--until",
            &until.to_string(),
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
        ])
    };
    let repo = format!("{reg}/pier/app");
    let mine = events(&pierd);
    assert!(mine.contains(&format!("push {app} {repo}\n")), "{mine}");
    assert!(mine.contains(&format!("pull {app} {repo}\n")), "{mine}");
    let theirs = events(dockerd);
    assert!(theirs.contains(&format!("pull {app} {repo}\n")), "{theirs}");

    // dockerd pushes; pierd pulls the same image.
    let theirs = format!("{reg}/docker/app:v2");
    make_image(dockerd, &theirs, "from-dockerd", 1);
    let theirs_image = inspect(dockerd, &theirs);
    let theirs_digest = pushed_digest(&dockerd.docker_ok(&["push", &theirs]));
    let out = pierd.docker(&["pull", &theirs]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mine = inspect(&pierd, &theirs);
    assert_eq!(mine["Id"], theirs_image["Id"]);
    assert_eq!(layers(&mine), layers(&theirs_image));
    assert_eq!(
        mine["RepoDigests"],
        serde_json::json!([format!("{reg}/docker/app@{theirs_digest}")])
    );
    let hello = pierd.docker_ok(&["run", "--rm", &theirs, "cat", "/hello"]);
    assert_eq!(hello.trim(), "from-dockerd");

    // By digest.
    pierd.docker_ok(&["rmi", &theirs]);
    let by_digest = format!("{reg}/docker/app@{theirs_digest}");
    let out = pierd.docker(&["pull", &by_digest]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("Status: Downloaded newer image for {by_digest}")),
        "{out:?}"
    );
    assert_eq!(inspect(&pierd, &by_digest)["Id"], theirs_image["Id"]);

    // An unknown tag: dockerd's error, word for word.
    let missing = format!("{reg}/pier/app:nope");
    let mine = pierd.docker(&["pull", &missing]);
    let theirs = dockerd.docker(&["pull", &missing]);
    assert_eq!(mine.code, Some(1), "{mine:?}");
    assert_eq!(mine.code, theirs.code, "{mine:?} vs {theirs:?}");
    assert_eq!(mine.stderr.trim(), theirs.stderr.trim());
    // A registry that is not there.
    let dead = format!(
        "127.0.0.1:{}/x/y:1",
        pier_testsupport::registry::free_port()
    );
    let mine = pierd.docker(&["pull", &dead]);
    let theirs = dockerd.docker(&["pull", &dead]);
    assert_eq!(mine.code, theirs.code, "{mine:?} vs {theirs:?}");
    assert_eq!(mine.stderr.trim(), theirs.stderr.trim());

    // Pushing what does not exist locally: a tag of a known repository, and a
    // repository not known at all.
    for name in [missing.clone(), format!("{reg}/never/seen:1")] {
        let mine = pierd.docker(&["push", &name]);
        let theirs = dockerd.docker(&["push", &name]);
        assert_eq!(mine.code, theirs.code, "{mine:?} vs {theirs:?}");
        assert_eq!(mine.stdout, theirs.stdout, "{mine:?} vs {theirs:?}");
        assert_eq!(
            mine.stderr.trim(),
            theirs.stderr.trim(),
            "{mine:?} vs {theirs:?}"
        );
    }

    // The registry's side: both repositories and their tags.
    let (status, tags) = curl(&format!("http://{reg}/v2/pier/app/tags/list"), None);
    assert_eq!(status, 200, "{tags}");
    assert!(tags.contains("v1"), "{tags}");
}

/// `docker login` against pierd checks the credentials with an htpasswd registry;
/// wrong ones fail as dockerd's do; after login, push and pull work, and without
/// credentials the registry refuses.
#[test]
fn login_then_push_to_an_htpasswd_registry() {
    let test = "login_then_push_to_an_htpasswd_registry";
    let Some(hash) = bcrypt_hash("s3cret") else {
        pier_testsupport::skip(test, "no bcrypt hasher (python3 crypt with libxcrypt)");
        return;
    };
    let Some(registry) = DockerRegistry::start_or_skip(test, Some(&format!("tester:{hash}")))
    else {
        return;
    };
    let Some((pierd, isolated, work)) = pierd_and_dockerd_with_busybox(test) else {
        return;
    };
    let dockerd: &dyn Engine = &isolated;
    let reg = registry.host();
    let wrong = work.path().join("wrong");
    std::fs::write(&wrong, "nope\n").expect("write");
    let right = work.path().join("right");
    std::fs::write(&right, "s3cret\n").expect("write");

    let args = ["login", "-u", "tester", "--password-stdin", reg.as_str()];
    let mine = pierd.docker_with_stdin(&args, &wrong);
    let theirs = dockerd.docker_with_stdin(&args, &wrong);
    assert_ne!(mine.code, Some(0), "{mine:?}");
    assert_eq!(mine.code, theirs.code, "{mine:?} vs {theirs:?}");
    assert_eq!(mine.stderr.trim(), theirs.stderr.trim());

    let app = format!("{reg}/private/app:1");
    pierd.docker_ok(&["tag", "busybox", &app]);
    let out = pierd.docker(&["push", &app]);
    assert_ne!(out.code, Some(0), "push without login succeeded: {out:?}");
    assert!(out.stderr.contains("no basic auth credentials"), "{out:?}");

    let out = pierd.docker_with_stdin(&args, &right);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("Login Succeeded"), "{out:?}");
    let config = std::fs::read_to_string(pierd.dir().join("cli/config.json")).expect("config");
    assert!(config.contains(&reg), "{config}");

    let out = pierd.docker(&["push", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let digest = pushed_digest(&out.stdout);
    pierd.docker_ok(&["rmi", &app]);
    let out = pierd.docker(&["pull", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(&format!("Digest: {digest}")), "{out:?}");

    // dockerd, logged in the same way, pulls it too.
    let out = dockerd.docker_with_stdin(&args, &right);
    assert_eq!(out.code, Some(0), "dockerd login: {out:?}");
    let out = dockerd.docker(&["pull", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// A layer download cut off midway resumes with a Range request; a pull that cannot
/// finish leaves no image, no partial blob and no lease; a retry then succeeds.
#[test]
fn interrupted_pulls_resume_or_leave_nothing() {
    let test = "interrupted_pulls_resume_or_leave_nothing";
    let Some(registry) = DockerRegistry::start_or_skip(test, None) else {
        return;
    };
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let reg = registry.host();
    let app = format!("{reg}/big/app:1");
    make_image(&pierd, &app, "big", 24);
    let id = inspect(&pierd, &app)["Id"].clone();
    pierd.docker_ok(&["push", &app]);
    pierd.docker_ok(&["rmi", &app]);

    // Through a proxy that cuts the first connection after 4 MiB from the registry.
    let proxy = CuttingProxy::start(registry.port(), 4 << 20, 1);
    let via = format!("127.0.0.1:{}/big/app:1", proxy.port);
    let out = pierd.docker(&["pull", &via]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "the proxy never cut");
    assert_eq!(inspect(&pierd, &via)["Id"], id);
    assert_eq!(
        pierd
            .docker_ok(&["run", "--rm", &via, "cat", "/hello"])
            .trim(),
        "big"
    );
    pierd.docker_ok(&["rmi", &via]);

    // Through a proxy that cuts every connection: the pull fails, nothing is left.
    let proxy = CuttingProxy::start(registry.port(), 4 << 20, u64::MAX);
    let via = format!("127.0.0.1:{}/big/app:1", proxy.port);
    let out = pierd.docker(&["pull", &via]);
    assert_ne!(out.code, Some(0), "{out:?}");
    let images = pierd.docker_ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.contains("big/app"), "{images}");
    let content = find_dir(&pierd.data_root(), "content").expect("content store");
    let ingest: Vec<_> = std::fs::read_dir(content.join("ingest"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(ingest.is_empty(), "partial downloads left: {ingest:?}");
    let leases: Vec<_> = std::fs::read_dir(content.join("leases"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    drop(proxy);

    // Straight from the registry it works.
    let out = pierd.docker(&["pull", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(inspect(&pierd, &app)["Id"], id);
}

/// A loopback registry serving HTTPS with a self-signed certificate: pierd, as dockerd,
/// speaks TLS to it without verifying the certificate (loopback registries are
/// insecure registries), and push and pull work.
#[test]
fn self_signed_https_registry_on_loopback() {
    let test = "self_signed_https_registry_on_loopback";
    let Some(registry) = DockerRegistry::start_tls_or_skip(test) else {
        return;
    };
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    // The registry only speaks TLS, with a certificate no CA vouches for.
    let (status, _) = curl(&format!("http://{}/v2/", registry.host()), None);
    assert_eq!(status, 400, "plain HTTP should be refused");
    let app = format!("{}/tls/app:1", registry.host());
    pierd.docker_ok(&["tag", "busybox", &app]);
    let digest = pushed_digest(&pierd.docker_ok(&["push", &app]));
    pierd.docker_ok(&["rmi", &app, "busybox"]);
    let out = pierd.docker(&["pull", &app]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(&format!("Digest: {digest}")), "{out:?}");
}

/// `GET /distribution/{name}/json` describes what the registry holds.
#[test]
fn distribution_inspect_and_auth_endpoint() {
    let test = "distribution_inspect_and_auth_endpoint";
    let Some(registry) = DockerRegistry::start_or_skip(test, None) else {
        return;
    };
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let reg = registry.host();
    let app = format!("{reg}/x/app:1");
    pierd.docker_ok(&["tag", "busybox", &app]);
    let digest = pushed_digest(&pierd.docker_ok(&["push", &app]));
    let (status, body) = common::api(
        &pierd.socket(),
        "GET",
        &format!("/distribution/{app}/json"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["Descriptor"]["digest"], digest.as_str());
    // The manifest as stored here, byte for byte: same media type.
    assert_eq!(
        v["Descriptor"]["mediaType"],
        inspect(&pierd, &app)["Descriptor"]["mediaType"]
    );
    assert_eq!(v["Platforms"][0]["os"], "linux");
    let (status, body) = common::api(
        &pierd.socket(),
        "POST",
        "/auth",
        Some(&format!(
            r#"{{"username":"a","password":"b","serveraddress":"{reg}"}}"#
        )),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Login Succeeded"), "{body}");
    let (status, _) = common::api(
        &pierd.socket(),
        "GET",
        &format!("/distribution/{reg}/x/app:none/json"),
        None,
    );
    assert_eq!(status, 404);

    // An index of two images: the host's platform by default, another with --platform.
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("{test}: index part skipped: the index names amd64 as the host's platform");
        return;
    }
    let multi = format!("{reg}/x/multi");
    make_image(&pierd, &format!("{multi}:arm"), "arm", 0);
    pierd.docker_ok(&["tag", "busybox", &format!("{multi}:amd")]);
    let mut entries = Vec::new();
    for (tag, arch) in [("amd", "amd64"), ("arm", "arm64")] {
        let name = format!("{multi}:{tag}");
        let digest = pushed_digest(&pierd.docker_ok(&["push", &name]));
        let descriptor = inspect(&pierd, &name)["Descriptor"].clone();
        entries.push(serde_json::json!({
            "mediaType": descriptor["mediaType"],
            "digest": digest,
            "size": descriptor["size"],
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    })
    .to_string();
    let put = pier_testsupport::run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .args([
                "-H",
                "Content-Type: application/vnd.oci.image.index.v1+json",
            ])
            .args(["--data-binary", &index])
            .arg(format!("http://{reg}/v2/x/multi/manifests/1")),
        Duration::from_secs(30),
    )
    .expect("curl");
    assert_eq!(put.stdout.trim(), "201", "{put:?}");
    let amd_id = inspect(&pierd, &format!("{multi}:amd"))["Id"].clone();
    let arm_id = inspect(&pierd, &format!("{multi}:arm"))["Id"].clone();
    let (status, body) = common::api(
        &pierd.socket(),
        "GET",
        &format!("/distribution/{multi}:1/json"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["Descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(v["Platforms"][1]["architecture"], "arm64", "{body}");
    let one = format!("{multi}:1");
    pierd.docker_ok(&["pull", &one]);
    assert_eq!(inspect(&pierd, &one)["Id"], amd_id);
    pierd.docker_ok(&["rmi", &one]);
    pierd.docker_ok(&["pull", "--platform", "linux/arm64", &one]);
    assert_eq!(inspect(&pierd, &one)["Id"], arm_id);
}

fn find_dir(root: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name() == name && path.join("ingest").is_dir() {
                    return Some(path);
                }
                stack.push(path);
            }
        }
    }
    None
}

fn curl(url: &str, user: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "30", "-w", "\n%{http_code}"]);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    cmd.arg(url);
    let out = pier_testsupport::run(&mut cmd, Duration::from_secs(40)).expect("curl");
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A TCP proxy to the registry that closes up to `cuts_left` connections once each
/// has carried `after` bytes from the registry. Stops accepting when dropped.
struct CuttingProxy {
    port: u16,
    cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: u16, after: u64, cuts_left: u64) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let cuts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&cuts), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        let cuts = Arc::clone(&c);
                        pipe(client, server, after, cuts, cuts_left);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        CuttingProxy { port, cuts, stop }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways on two threads; the registry-to-client side stops (closing both
/// sockets) after `after` bytes while cuts remain.
fn pipe(client: TcpStream, server: TcpStream, after: u64, cuts: Arc<AtomicU64>, cuts_left: u64) {
    let (mut c_read, mut s_write) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut s_read, mut c_write) = (server, client);
        let mut buf = [0u8; 65536];
        let mut carried = 0u64;
        while let Ok(n) = s_read.read(&mut buf) {
            if n == 0 {
                break;
            }
            carried += n as u64;
            if carried > after && cuts.load(Ordering::SeqCst) < cuts_left {
                cuts.fetch_add(1, Ordering::SeqCst);
                let _ = c_write.shutdown(std::net::Shutdown::Both);
                let _ = s_read.shutdown(std::net::Shutdown::Both);
                return;
            }
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_write.shutdown(std::net::Shutdown::Write);
    });
}
