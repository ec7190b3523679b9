//! Tests of `docker save` / `docker load` archives.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use pier_image::archive::{load_archive, save_docker_archive};
use pier_image::content::ContentStore;
use pier_image::digest::Digest;
use pier_image::error::Error;
use pier_image::image::{
    export_oci_layout, media_types, Descriptor, ImageConfig, ImageStore, ManifestKind, Platform,
};
use pier_image::reference::Reference;
use pier_testsupport::{DockerdOptions, IsolatedDockerd};

// ---------------------------------------------------------------------------
// Helpers.

fn stores(dir: &Path) -> ImageStore {
    let content = ContentStore::open(&dir.join("content")).unwrap();
    ImageStore::open(content, &dir.join("meta")).unwrap()
}

fn r(s: &str) -> Reference {
    Reference::parse_with_default_tag(s).unwrap()
}

/// A layer tar holding the given files.
fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn config_json(arch: &str, seed: &str, diff_ids: &[Digest]) -> String {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["/bin/sh"],"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}},"history":[{{"created_by":"test"}}]}}"#,
        ids.join(",")
    )
}

struct Built {
    manifest: Descriptor,
    config: Digest,
    diff_ids: Vec<Digest>,
}

/// Stores an image with the given layers (gzip-compressed or not, OCI or Docker
/// media types) and returns its manifest, config digest and diffIDs.
fn put_image(store: &ImageStore, seed: &str, arch: &str, compressed: bool, docker: bool) -> Built {
    let content = store.content();
    let layers = [
        layer_tar(&[("etc/seed", seed), ("bin/a", "aaa")]),
        layer_tar(&[(&format!("data/{seed}"), "second layer")]),
    ];
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::sha256(l)).collect();
    let (mt, cmt, lmt) = match (docker, compressed) {
        (true, true) => (
            media_types::DOCKER_MANIFEST,
            media_types::DOCKER_CONFIG,
            media_types::DOCKER_LAYER_GZIP,
        ),
        (true, false) => (
            media_types::DOCKER_MANIFEST,
            media_types::DOCKER_CONFIG,
            media_types::DOCKER_LAYER,
        ),
        (false, true) => (
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG,
            media_types::OCI_LAYER_GZIP,
        ),
        (false, false) => (
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG,
            media_types::OCI_LAYER,
        ),
    };
    let mut descs = Vec::new();
    for l in &layers {
        let blob = if compressed { gzip(l) } else { l.clone() };
        let d = content.put(&blob, None).unwrap();
        descs.push(format!(
            r#"{{"mediaType":"{lmt}","digest":"{}","size":{}}}"#,
            d.digest, d.size
        ));
    }
    let config = config_json(arch, seed, &diff_ids);
    let config_desc = content.put(config.as_bytes(), None).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"{cmt}","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config_desc.digest,
        config_desc.size,
        descs.join(",")
    );
    Built {
        manifest: store.put_manifest(manifest.as_bytes(), None).unwrap().0,
        config: config_desc.digest,
        diff_ids,
    }
}

/// Every regular file of a tar, by path.
fn tar_files(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

fn build_tar(files: &[(&str, &[u8])], symlinks: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    for (path, target) in symlinks {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, path, target).unwrap();
    }
    b.into_inner().unwrap()
}

fn manifest_of(store: &ImageStore, target: &Descriptor) -> pier_image::image::Manifest {
    match store.read_manifest(target).unwrap() {
        ManifestKind::Manifest(m) => m,
        ManifestKind::Index(_) => panic!("not a manifest"),
    }
}

fn diff_ids_of(store: &ImageStore, target: &Descriptor) -> Vec<Digest> {
    let m = manifest_of(store, target);
    let cfg = ImageConfig::parse(&store.content().read(&m.config.digest).unwrap()).unwrap();
    cfg.rootfs.diff_ids
}

/// An old-style (Docker ≤24) archive of one image: `<id>/layer.tar`, `<hex>.json`.
/// `diff_ids` overrides the config's diffIDs (to corrupt them).
fn old_style_archive(layers: &[Vec<u8>], diff_ids: Option<Vec<Digest>>, tag: &str) -> Vec<u8> {
    let ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| Digest::sha256(l)).collect());
    let config = config_json("amd64", "old", &ids);
    let config_hex = Digest::sha256(config.as_bytes()).hex().to_string();
    let layer_dirs: Vec<String> = (0..layers.len())
        .map(|i| format!("{:064x}", i + 1))
        .collect();
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["{tag}"],"Layers":[{}]}}]"#,
        layer_dirs
            .iter()
            .map(|d| format!("\"{d}/layer.tar\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let repositories = format!(
        r#"{{"old":{{"v1":"{}"}}}}"#,
        layer_dirs[layer_dirs.len() - 1]
    );
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (dir, l) in layer_dirs.iter().zip(layers) {
        files.push((format!("{dir}/VERSION"), b"1.0".to_vec()));
        files.push((format!("{dir}/json"), b"{}".to_vec()));
        files.push((format!("{dir}/layer.tar"), l.clone()));
    }
    files.push((format!("{config_hex}.json"), config.into_bytes()));
    files.push(("manifest.json".to_string(), manifest.into_bytes()));
    files.push(("repositories".to_string(), repositories.into_bytes()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    build_tar(&refs, &[])
}

// ---------------------------------------------------------------------------
// Save.

#[test]
fn save_writes_docker_and_oci_metadata_with_uncompressed_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let a = put_image(&store, "a", "amd64", true, false);
    store.tag(&r("busybox:latest"), &a.manifest).unwrap();
    store.tag(&r("busybox:1"), &a.manifest).unwrap();
    let b = put_image(&store, "b", "amd64", false, true);
    store
        .tag(&r("example.com/team/app:v2"), &b.manifest)
        .unwrap();

    let mut out = Vec::new();
    save_docker_archive(
        &store,
        &[r("busybox"), r("busybox:1"), r("example.com/team/app:v2")],
        &mut out,
    )
    .unwrap();
    let files = tar_files(&out);

    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let entries = manifest.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["Config"],
        format!("blobs/sha256/{}", a.config.hex())
    );
    assert_eq!(
        entries[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "busybox:1"])
    );
    assert_eq!(
        entries[1]["RepoTags"],
        serde_json::json!(["example.com/team/app:v2"])
    );
    for (entry, built) in entries.iter().zip([&a, &b]) {
        let layers = entry["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), built.diff_ids.len());
        for (path, diff_id) in layers.iter().zip(&built.diff_ids) {
            let path = path.as_str().unwrap();
            assert_eq!(path, format!("blobs/sha256/{}", diff_id.hex()));
            // Uncompressed: the file's digest is the diffID.
            assert_eq!(&Digest::sha256(&files[path]), diff_id);
        }
        let config_path = entry["Config"].as_str().unwrap();
        assert_eq!(Digest::sha256(&files[config_path]), built.config);
    }

    let repositories: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert_eq!(repositories["busybox"]["latest"], a.diff_ids[1].hex());
    assert_eq!(repositories["busybox"]["1"], a.diff_ids[1].hex());
    assert_eq!(
        repositories["example.com/team/app"]["v2"],
        b.diff_ids[1].hex()
    );

    let layout: serde_json::Value = serde_json::from_slice(&files["oci-layout"]).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let index_entries = index["manifests"].as_array().unwrap();
    assert_eq!(index_entries.len(), 3);
    assert_eq!(
        index_entries[0]["annotations"][media_types::ANNOTATION_CONTAINERD_IMAGE_NAME],
        "docker.io/library/busybox:latest"
    );
    assert_eq!(
        index_entries[0]["annotations"][media_types::ANNOTATION_REF_NAME],
        "latest"
    );
    // Image a had gzip layers: its layout manifest is rewritten to uncompressed
    // layers; image b is saved with its stored manifest unchanged.
    let a_manifest_path = format!(
        "blobs/sha256/{}",
        index_entries[0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    let a_manifest: serde_json::Value = serde_json::from_slice(&files[&a_manifest_path]).unwrap();
    assert_eq!(a_manifest["mediaType"], media_types::OCI_MANIFEST);
    assert_eq!(a_manifest["layers"][0]["mediaType"], media_types::OCI_LAYER);
    assert_eq!(a_manifest["layers"][0]["digest"], a.diff_ids[0].to_string());
    assert_eq!(a_manifest["config"]["digest"], a.config.to_string());
    assert_eq!(
        index_entries[2]["digest"],
        b.manifest.digest.to_string(),
        "uncompressed image keeps its manifest"
    );
    // Every blob file is named by its digest.
    for (path, data) in &files {
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(Digest::sha256(data).hex(), hex, "{path}");
        }
    }
}

#[test]
fn save_unknown_image_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let err = save_docker_archive(&store, &[r("nosuch")], Vec::new()).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[test]
fn save_index_writes_host_platform_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let host = Platform::host();
    let other_arch = if host.architecture == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let native = put_image(&store, "native", &host.architecture, true, false);
    let other = put_image(&store, "other", other_arch, true, false);
    let variant = host
        .variant
        .as_ref()
        .map_or(String::new(), |v| format!(r#","variant":"{v}""#));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{other_arch}","os":"linux"}}}},{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{}","os":"linux"{variant}}}}}]}}"#,
        media_types::OCI_INDEX,
        other.manifest.media_type,
        other.manifest.digest,
        other.manifest.size,
        native.manifest.media_type,
        native.manifest.digest,
        native.manifest.size,
        host.architecture,
    );
    let index_desc = store.put_manifest(index.as_bytes(), None).unwrap().0;
    store.tag(&r("multi:latest"), &index_desc).unwrap();

    let mut out = Vec::new();
    save_docker_archive(&store, &[r("multi")], &mut out).unwrap();
    let files = tar_files(&out);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", native.config.hex())
    );
    assert!(!files.contains_key(&format!("blobs/sha256/{}", other.config.hex())));

    let fresh = stores(&dir.path().join("fresh"));
    load_archive(&fresh, out.as_slice()).unwrap();
    assert_eq!(fresh.resolve("multi").unwrap().id, native.config);
}

// ---------------------------------------------------------------------------
// Load.

#[test]
fn save_then_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let a = put_image(&store, "a", "amd64", true, false);
    store.tag(&r("busybox:latest"), &a.manifest).unwrap();
    let b = put_image(&store, "b", "amd64", false, true);
    store
        .tag(&r("example.com/team/app:v2"), &b.manifest)
        .unwrap();
    let mut out = Vec::new();
    save_docker_archive(
        &store,
        &[r("busybox"), r("example.com/team/app:v2")],
        &mut out,
    )
    .unwrap();

    let fresh = stores(&dir.path().join("fresh"));
    let loaded = load_archive(&fresh, out.as_slice()).unwrap();
    let names: Vec<String> = loaded
        .iter()
        .map(|l| l.name.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:latest",
            "example.com/team/app:v2"
        ]
    );
    for (name, built) in [("busybox:latest", &a), ("example.com/team/app:v2", &b)] {
        let image = fresh.resolve(name).unwrap();
        assert_eq!(image.id, built.config, "{name}");
        assert_eq!(diff_ids_of(&fresh, &image.target), built.diff_ids);
        // The layers in the fresh store are the uncompressed tars.
        for l in manifest_of(&fresh, &image.target).layers {
            fresh.content().verify(&l.digest).unwrap();
            assert!(built.diff_ids.contains(&l.digest));
        }
    }
    // The uncompressed image kept its manifest digest through the OCI layout.
    assert_eq!(
        fresh.get(&r("example.com/team/app:v2")).unwrap().target,
        b.manifest
    );
    // Nothing is left leased.
    assert!(fresh.content().leases().unwrap().is_empty());

    // Saving again from the fresh store gives the same images.
    let mut again = Vec::new();
    save_docker_archive(&fresh, &[r("busybox")], &mut again).unwrap();
    let third = stores(&dir.path().join("third"));
    load_archive(&third, again.as_slice()).unwrap();
    assert_eq!(third.resolve("busybox").unwrap().id, a.config);
}

#[test]
fn loads_old_style_archive() {
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![
        layer_tar(&[("etc/os-release", "ID=old")]),
        layer_tar(&[("bin/sh", "#!")]),
    ];
    let archive = old_style_archive(&layers, None, "old:v1");
    let store = stores(dir.path());
    let loaded = load_archive(&store, archive.as_slice()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name, Some(r("old:v1")));
    assert_eq!(loaded[0].target.media_type, media_types::DOCKER_MANIFEST);
    let m = manifest_of(&store, &loaded[0].target);
    assert_eq!(m.config.media_type, media_types::DOCKER_CONFIG);
    let ids: Vec<Digest> = layers.iter().map(|l| Digest::sha256(l)).collect();
    for (l, id) in m.layers.iter().zip(&ids) {
        assert_eq!(l.media_type, media_types::DOCKER_LAYER);
        assert_eq!(&l.digest, id);
    }
    let image = store.resolve("old:v1").unwrap();
    assert_eq!(image.id, m.config.digest);
    assert_eq!(diff_ids_of(&store, &image.target), ids);
    assert!(store.content().leases().unwrap().is_empty());
}

#[test]
fn loads_old_style_archive_with_symlinked_and_gzipped_layers() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = layer_tar(&[("a", "1")]);
    let l2 = layer_tar(&[("b", "2")]);
    let ids = [Digest::sha256(&l1), Digest::sha256(&l2)];
    let config = config_json(
        "amd64",
        "links",
        &[ids[0].clone(), ids[1].clone(), ids[0].clone()],
    );
    let config_hex = Digest::sha256(config.as_bytes()).hex().to_string();
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["links:latest"],"Layers":["l1/layer.tar","l2/layer.tar","l3/layer.tar"]}}]"#
    );
    let gz = gzip(&l2);
    let archive = build_tar(
        &[
            ("./manifest.json", manifest.as_bytes()),
            ("l1/layer.tar", &l1),
            ("l2/layer.tar", &gz),
            (&format!("{config_hex}.json"), config.as_bytes()),
        ],
        &[("l3/layer.tar", "../l1/layer.tar")],
    );
    let store = stores(dir.path());
    let loaded = load_archive(&store, archive.as_slice()).unwrap();
    let m = manifest_of(&store, &loaded[0].target);
    assert_eq!(m.layers.len(), 3);
    assert_eq!(m.layers[0].digest, ids[0]);
    assert_eq!(m.layers[1].media_type, media_types::DOCKER_LAYER_GZIP);
    assert_eq!(m.layers[1].digest, Digest::sha256(&gz));
    assert_eq!(m.layers[2].digest, ids[0]);
    assert_eq!(store.resolve("links").unwrap().id.hex(), config_hex);
}

#[test]
fn corrupt_layer_is_rejected_without_tags() {
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![layer_tar(&[("a", "1")])];
    let wrong = vec![Digest::sha256(b"something else")];
    let archive = old_style_archive(&layers, Some(wrong), "bad:v1");
    let store = stores(dir.path());
    let err = load_archive(&store, archive.as_slice()).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    assert!(store.list().unwrap().is_empty());
    assert!(store.content().leases().unwrap().is_empty());

    // A blob in a Docker 25 / OCI archive whose content does not match its name.
    let src = stores(&dir.path().join("src"));
    let a = put_image(&src, "a", "amd64", false, false);
    src.tag(&r("good:v1"), &a.manifest).unwrap();
    let mut out = Vec::new();
    save_docker_archive(&src, &[r("good:v1")], &mut out).unwrap();
    let mut files = tar_files(&out);
    let victim = format!("blobs/sha256/{}", a.diff_ids[0].hex());
    let mut data = files.remove(&victim).unwrap();
    data[600] ^= 0xff;
    let mut entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    entries.push((&victim, &data));
    let corrupt = build_tar(&entries, &[]);
    let fresh = stores(&dir.path().join("fresh"));
    let err = load_archive(&fresh, corrupt.as_slice()).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    assert!(fresh.list().unwrap().is_empty());
}

#[test]
fn rejects_tar_that_is_no_image_archive() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let archive = build_tar(&[("hello.txt", b"hi")], &[]);
    let err = load_archive(&store, archive.as_slice()).unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
    let err = load_archive(&store, &b"not a tar at all"[..]).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn loads_oci_layout_tar() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let a = put_image(&store, "a", "amd64", true, false);
    store
        .tag(&r("localhost:5000/x/y:1.0"), &a.manifest)
        .unwrap();
    let layout = dir.path().join("layout");
    export_oci_layout(&store, &[r("localhost:5000/x/y:1.0")], &layout).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &layout).unwrap();
    let archive = b.into_inner().unwrap();

    let fresh = stores(&dir.path().join("fresh"));
    let loaded = load_archive(&fresh, archive.as_slice()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name, Some(r("localhost:5000/x/y:1.0")));
    // Compressed layers are kept as they were.
    assert_eq!(loaded[0].target, a.manifest);
    assert_eq!(
        fresh.resolve("localhost:5000/x/y:1.0").unwrap().id,
        a.config
    );
}

// ---------------------------------------------------------------------------
// Interop with a real dockerd (skipped when dockerd is missing or not root).

#[test]
fn round_trips_through_real_docker() {
    const TEST: &str = "round_trips_through_real_docker";
    if !pier_testsupport::is_root() {
        return pier_testsupport::skip(TEST, "needs root (dockerd)");
    }
    if !pier_testsupport::require_tools(TEST, &["dockerd", "docker"]) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("pier-archive-")
        .tempdir()
        .unwrap();
    let store = stores(&dir.path().join("ours"));
    let built = put_image(&store, "docker", "amd64", true, false);
    store
        .tag(&r("pier-archive-test:v1"), &built.manifest)
        .unwrap();
    let ours = dir.path().join("ours.tar");
    save_docker_archive(
        &store,
        &[r("pier-archive-test:v1")],
        std::fs::File::create(&ours).unwrap(),
    )
    .unwrap();

    let Some(docker) = IsolatedDockerd::start_or_skip(TEST, DockerdOptions::default()) else {
        return;
    };
    let loaded = docker
        .docker_ok(&["load", "-i", ours.to_str().unwrap()])
        .unwrap();
    assert!(loaded.contains("pier-archive-test:v1"), "{loaded}");
    let id = docker
        .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "pier-archive-test:v1"])
        .unwrap();
    assert_eq!(id.trim(), built.config.to_string());
    let layers = docker
        .docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{range .RootFS.Layers}}{{.}} {{end}}",
            "pier-archive-test:v1",
        ])
        .unwrap();
    let want: Vec<String> = built.diff_ids.iter().map(ToString::to_string).collect();
    assert_eq!(layers.split_whitespace().collect::<Vec<_>>(), want);

    let theirs = dir.path().join("theirs.tar");
    docker
        .docker_ok(&[
            "save",
            "-o",
            theirs.to_str().unwrap(),
            "pier-archive-test:v1",
        ])
        .unwrap();
    drop(docker);

    let fresh = stores(&dir.path().join("fresh"));
    let loaded = load_archive(&fresh, std::fs::File::open(&theirs).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name, Some(r("pier-archive-test:v1")));
    let image = fresh.resolve("pier-archive-test:v1").unwrap();
    assert_eq!(image.id, built.config);
    assert_eq!(diff_ids_of(&fresh, &image.target), built.diff_ids);
}

#[test]
fn save_decompresses_zstd_layers_and_drops_stale_digest_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let content = store.content();
    let layer = layer_tar(&[("z", "zstd layer")]);
    let diff_id = Digest::sha256(&layer);
    let blob = content
        .put(&zstd::encode_all(layer.as_slice(), 3).unwrap(), None)
        .unwrap();
    let config = config_json("amd64", "zstd", std::slice::from_ref(&diff_id));
    let config_desc = content.put(config.as_bytes(), None).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        media_types::OCI_MANIFEST,
        media_types::OCI_CONFIG,
        config_desc.digest,
        config_desc.size,
        media_types::OCI_LAYER_ZSTD,
        blob.digest,
        blob.size
    );
    let target = store.put_manifest(manifest.as_bytes(), None).unwrap().0;
    let by_digest = r(&format!("zs@{}", target.digest));
    store.tag(&r("zs:latest"), &target).unwrap();
    store.tag(&by_digest, &target).unwrap();

    let mut out = Vec::new();
    save_docker_archive(&store, &[r("zs"), by_digest], &mut out).unwrap();
    let files = tar_files(&out);
    assert_eq!(
        Digest::sha256(&files[&format!("blobs/sha256/{}", diff_id.hex())]),
        diff_id
    );
    let fresh = stores(&dir.path().join("fresh"));
    let loaded = load_archive(&fresh, out.as_slice()).unwrap();
    // The digest name named the zstd manifest, which the archive does not hold.
    let names: Vec<String> = loaded
        .iter()
        .filter_map(|l| l.name.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(names, ["docker.io/library/zs:latest"]);
    let image = fresh.resolve("zs").unwrap();
    assert_eq!(image.id, config_desc.digest);
    assert_eq!(diff_ids_of(&fresh, &image.target), [diff_id]);
}
