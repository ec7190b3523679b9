//! Real clients against pier-registry: an isolated dockerd (Debian's) pushes an
//! imported busybox image, removes it, pulls it back and runs it; skopeo copies an OCI
//! layout into pier-registry and back out, through a docker-archive and back, and
//! registry to registry between pier-registry and distribution both ways.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use pier_testsupport::{run_ok, DockerdOptions, IsolatedDockerd};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Makes a busybox rootfs (scripts/busybox-rootfs.sh) and imports it into `docker` as
/// `image`, streaming the tar to `docker import -`.
fn import_busybox(test: &str, docker: &IsolatedDockerd, dir: &Path, image: &str) -> bool {
    if !Path::new("/bin/busybox").exists() {
        pier_testsupport::skip(test, "/bin/busybox is missing (busybox-static)");
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    let rootfs = dir.join("rootfs");
    let mut import = Command::new("bash");
    import
        .arg("-c")
        .arg(r#"bash "$1" "$2" && tar -C "$2" -c . | docker import --change 'CMD ["/bin/sh"]' - "$3""#)
        .arg("import-busybox")
        .arg(&script)
        .arg(&rootfs)
        .arg(image)
        .envs(docker.env());
    run_ok(&mut import, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    true
}

#[test]
fn dockerd_pushes_to_and_pulls_from_pier_registry() {
    let test = "dockerd_pushes_to_and_pulls_from_pier_registry";
    if !pier_testsupport::require_tools(test, &["dockerd", "docker"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(docker) = IsolatedDockerd::start_or_skip(test, DockerdOptions::default()) else {
        return;
    };
    let r = Registry::pier(&[]);
    let image = format!("{}/interop/busybox:v1", r.addr);
    if !import_busybox(test, &docker, work.path(), &image) {
        return;
    }
    let push = docker.docker_ok(&["push", &image]).unwrap();
    let pushed_digest = push
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in push output: {push}"))
        .to_string();
    // The manifest dockerd pushed is what the registry serves under the tag.
    let head = r.call(
        "HEAD",
        "/v2/interop/busybox/manifests/v1",
        &[("Accept", DOCKER_MANIFEST)],
        b"",
    );
    head.expect(200, None);
    assert_eq!(
        head.header("docker-content-digest"),
        Some(pushed_digest.as_str())
    );
    assert_eq!(head.header("content-type"), Some(DOCKER_MANIFEST));

    // A second repository: dockerd mounts the layer instead of uploading it again.
    let other = format!("{}/interop/copy:v1", r.addr);
    docker.docker_ok(&["tag", &image, &other]).unwrap();
    let push2 = docker.docker_ok(&["push", &other]).unwrap();
    assert!(
        push2.contains("Mounted from interop/busybox") || push2.contains("Layer already exists"),
        "{push2}"
    );

    docker.docker_ok(&["rmi", &image, &other]).unwrap();
    docker.docker_ok(&["pull", &image]).unwrap();
    let digests = docker
        .docker_ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ])
        .unwrap();
    assert!(digests.contains(&pushed_digest), "{digests}");
    let out = docker
        .docker_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "/bin/echo",
            "pulled from pier-registry",
        ])
        .unwrap();
    assert_eq!(out.trim(), "pulled from pier-registry");
    // With bearer tokens: docker login, then push; without the login, denied.
    let auth = work.path();
    std::fs::write(
        auth.join("htpasswd"),
        format!("alice:{}\n", bcrypt::hash("alice-pw", 4).unwrap()),
    )
    .unwrap();
    std::fs::write(
        auth.join("access.json"),
        r#"{"rules": [{"account": "alice", "repository": "*", "actions": ["*"]}]}"#,
    )
    .unwrap();
    let htpasswd = auth.join("htpasswd").to_string_lossy().into_owned();
    let access = auth.join("access.json").to_string_lossy().into_owned();
    let secured = Registry::pier(&["--htpasswd", &htpasswd, "--token-access", &access]);
    let secured_image = format!("{}/team/busybox:v1", secured.addr);
    docker.docker_ok(&["tag", &image, &secured_image]).unwrap();
    let host = secured.addr.to_string();
    let login = ["login", "-u", "alice", "-p", "alice-pw", host.as_str()];
    docker.docker_ok(&login).unwrap();
    docker.docker_ok(&["push", &secured_image]).unwrap();
    docker.docker_ok(&["logout", &host]).unwrap();
    docker.docker_ok(&["rmi", &secured_image]).unwrap();
    let denied = docker.docker(&["pull", &secured_image]).unwrap();
    assert_ne!(denied.code, Some(0), "{}", denied.stdout);
    assert!(denied.stderr.contains("denied"), "{}", denied.stderr);
    docker.docker_ok(&login).unwrap();
    docker.docker_ok(&["pull", &secured_image]).unwrap();

    let catalog = r.call("GET", "/v2/_catalog", &[], b"").json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["interop/busybox", "interop/copy"])
    );
}

/// Writes a one-layer OCI image layout at `dir` with tag `v1`.
fn oci_layout(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("hello.txt"), "hello from an OCI layout\n").unwrap();
    let layer_path = dir.join("layer.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&content)
            .arg("-cf")
            .arg(&layer_path)
            .arg("."),
        TIMEOUT,
    )
    .unwrap();
    let layer = std::fs::read(&layer_path).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        "config": {},
    }))
    .unwrap();
    let manifest = image_manifest(
        OCI_MANIFEST,
        OCI_CONFIG,
        (&sha256(&config), config.len()),
        &[(&sha256(&layer), layer.len())],
        None,
    );
    for blob in [&layer, &config, &manifest] {
        std::fs::write(blobs.join(&sha256(blob)[7..]), blob).unwrap();
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(&manifest), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::remove_dir_all(&content).unwrap();
    std::fs::remove_file(&layer_path).unwrap();
}

fn skopeo(args: &[&str]) -> String {
    run_ok(Command::new("skopeo").args(args), TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn manifest_digest(r: &Registry, repo: &str, tag: &str) -> String {
    let head = r.call(
        "HEAD",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Accept", OCI_MANIFEST)],
        b"",
    );
    head.expect(200, None);
    head.header("docker-content-digest").unwrap().to_string()
}

#[test]
fn skopeo_copies_oci_layout_and_registry_to_registry() {
    let test = "skopeo_copies_oci_layout_and_registry_to_registry";
    if !pier_testsupport::require_tools(test, &["skopeo"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    oci_layout(&layout);
    let r = Registry::pier(&[]);
    let no_tls = ["--src-tls-verify=false", "--dest-tls-verify=false"];
    let pier = |repo: &str| format!("docker://{}/{repo}:v1", r.addr);

    // OCI layout → pier-registry → OCI layout. skopeo compresses the layer on the way
    // into a registry, so the manifest changes once; the config does not, and from the
    // registry on the digest stays the same.
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    let (src, dest) = (format!("oci:{}:v1", layout.display()), pier("skopeo/img"));
    args.extend([src.as_str(), dest.as_str()]);
    skopeo(&args);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let layout_manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&index["manifests"][0]["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let digest = manifest_digest(&r, "skopeo/img", "v1");
    let stored = r.call(
        "GET",
        "/v2/skopeo/img/manifests/v1",
        &[("Accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!(sha256(&stored.body), digest);
    assert_eq!(
        stored.json()["config"]["digest"],
        layout_manifest["config"]["digest"]
    );
    assert_eq!(
        stored.json()["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let back = work.path().join("back");
    let dest = format!("oci:{}:v1", back.display());
    skopeo(&["copy", "--src-tls-verify=false", &pier("skopeo/img"), &dest]);
    let back_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(back_index["manifests"][0]["digest"], digest.as_str());
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &pier("skopeo/img"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());

    // pier-registry → docker-archive → pier-registry: the same config (the image ID) and
    // layer content come back under a Docker schema2 manifest.
    let archive = work.path().join("image.tar");
    let archive_ref = format!("docker-archive:{}:skopeo/img:v1", archive.display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &pier("skopeo/img"),
        &archive_ref,
    ]);
    let archive_src = format!("docker-archive:{}", archive.display());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &archive_src,
        &pier("skopeo/fromarchive"),
    ]);
    let from_archive = r.call(
        "GET",
        "/v2/skopeo/fromarchive/manifests/v1",
        &[("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)],
        b"",
    );
    from_archive.expect(200, None);
    assert_eq!(from_archive.header("content-type"), Some(DOCKER_MANIFEST));
    assert_eq!(
        from_archive.json()["config"]["digest"],
        stored.json()["config"]["digest"]
    );

    // Registry to registry, both ways, with distribution when it is installed.
    let Some(d) = Registry::distribution(test) else {
        return;
    };
    let dist = |repo: &str| format!("docker://{}/{repo}:v1", d.addr);
    let mut args = vec!["copy"];
    args.extend(no_tls);
    let (a, b) = (pier("skopeo/img"), dist("from/pier"));
    skopeo(&[&args[..], &[a.as_str(), b.as_str()]].concat());
    assert_eq!(manifest_digest(&d, "from/pier", "v1"), digest);
    let (a, b) = (dist("from/pier"), pier("from/distribution"));
    skopeo(&[&args[..], &[a.as_str(), b.as_str()]].concat());
    assert_eq!(manifest_digest(&r, "from/distribution", "v1"), digest);
}
