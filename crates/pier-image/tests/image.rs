//! Tests of the image model, the image store and OCI layout export/import.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use pier_image::content::ContentStore;
use pier_image::digest::Digest;
use pier_image::error::Error;
use pier_image::image::{
    export_oci_layout, import_oci_layout, media_types, parse_manifest_or_index, select_platform,
    Compression, Descriptor, ImageConfig, ImageStore, Index, ManifestKind, Platform,
};
use pier_image::reference::Reference;

// ---------------------------------------------------------------------------
// Fixtures, hand-written after the OCI schemas and Docker's schema2 spec.

const CONFIG_DIGEST: &str =
    "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";
const LAYER_DIGEST: &str =
    "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0";
const LAYER2_DIGEST: &str =
    "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b";

const OCI_MANIFEST: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
    "size": 7023
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
      "size": 32654
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
      "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
      "size": 16724,
      "annotations": { "com.example.layer": "two" }
    }
  ],
  "subject": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
    "size": 7682
  },
  "annotations": { "com.example.key1": "value1" },
  "com.example.unknown": { "kept": true }
}"#;

const DOCKER_MANIFEST: &str = r#"{
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 7023,
        "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"
    },
    "layers": [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 32654,
            "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"
        },
        {
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "size": 16724,
            "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
            "urls": ["https://mcr.microsoft.com/v2/windows/blobs/sha256:3c3a"]
        }
    ]
}"#;

const MANIFEST_LIST: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
      "size": 528,
      "platform": { "architecture": "amd64", "os": "linux" }
    },
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
      "size": 528,
      "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
    },
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
      "size": 528,
      "platform": { "architecture": "arm", "os": "linux", "variant": "v7" }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444",
      "size": 840,
      "annotations": {
        "vnd.docker.reference.digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "vnd.docker.reference.type": "attestation-manifest"
      },
      "platform": { "architecture": "unknown", "os": "unknown" }
    }
  ]
}"#;

const DOCKER_CONFIG: &str = r#"{
  "architecture": "amd64",
  "config": {
    "Hostname": "",
    "User": "nobody",
    "ExposedPorts": { "80/tcp": {}, "443/tcp": {} },
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Entrypoint": null,
    "WorkingDir": "/srv",
    "Labels": { "maintainer": "someone" },
    "Volumes": { "/data": {} },
    "StopSignal": "SIGQUIT",
    "Healthcheck": {
      "Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
      "Interval": 30000000000,
      "Retries": 3
    },
    "OnBuild": null
  },
  "container_config": { "Cmd": ["/bin/sh"] },
  "created": "2024-01-01T00:00:00Z",
  "docker_version": "24.0.7",
  "history": [
    { "created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / " },
    { "created": "2024-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"nginx\"]", "empty_layer": true }
  ],
  "os": "linux",
  "rootfs": {
    "type": "layers",
    "diff_ids": [
      "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    ]
  }
}"#;

// ---------------------------------------------------------------------------
// Helpers.

fn stores(dir: &Path) -> ImageStore {
    let content = ContentStore::open(&dir.join("content")).unwrap();
    ImageStore::open(content, &dir.join("meta")).unwrap()
}

fn r(s: &str) -> Reference {
    Reference::parse_with_default_tag(s).unwrap()
}

/// Stores a small single-platform image (OCI or Docker media types) whose config and
/// layer contents vary with `seed`, and returns its manifest descriptor.
fn put_image(store: &ImageStore, seed: &str, arch: &str, docker: bool) -> Descriptor {
    let content = store.content();
    let layer_bytes = format!("layer bytes of {seed}").into_bytes();
    let layer = content.put(&layer_bytes, None).unwrap();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["/bin/sh"],"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}},"history":[{{"created_by":"test"}}]}}"#,
        Digest::sha256(&layer_bytes)
    );
    let config_desc = content.put(config.as_bytes(), None).unwrap();
    let (mt, cmt, lmt) = if docker {
        (
            media_types::DOCKER_MANIFEST,
            media_types::DOCKER_CONFIG,
            media_types::DOCKER_LAYER_GZIP,
        )
    } else {
        (
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG,
            media_types::OCI_LAYER_GZIP,
        )
    };
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"{cmt}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{lmt}","digest":"{}","size":{}}}]}}"#,
        config_desc.digest, config_desc.size, layer.digest, layer.size
    );
    store.put_manifest(manifest.as_bytes(), None).unwrap().0
}

/// Stores an OCI index over the given manifests (with platforms).
fn put_index(store: &ImageStore, children: &[(&Descriptor, &str, Option<&str>)]) -> Descriptor {
    let manifests: Vec<String> = children
        .iter()
        .map(|(d, arch, variant)| {
            let variant = variant.map_or(String::new(), |v| format!(r#","variant":"{v}""#));
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"{variant}}}}}"#,
                d.media_type, d.digest, d.size
            )
        })
        .collect();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        media_types::OCI_INDEX,
        manifests.join(",")
    );
    store.put_manifest(index.as_bytes(), None).unwrap().0
}

fn config_digest(store: &ImageStore, manifest: &Descriptor) -> Digest {
    match store.read_manifest(manifest).unwrap() {
        ManifestKind::Manifest(m) => m.config.digest,
        ManifestKind::Index(_) => panic!("not a manifest"),
    }
}

fn layer_digest(store: &ImageStore, manifest: &Descriptor) -> Digest {
    match store.read_manifest(manifest).unwrap() {
        ManifestKind::Manifest(m) => m.layers[0].digest.clone(),
        ManifestKind::Index(_) => panic!("not a manifest"),
    }
}

fn blob_file(layout: &Path, d: &Digest) -> std::path::PathBuf {
    layout.join("blobs/sha256").join(d.hex())
}

// ---------------------------------------------------------------------------
// Model and parsing.

#[test]
fn parses_oci_manifest_and_keeps_unknown_fields() {
    let ManifestKind::Manifest(m) = parse_manifest_or_index(OCI_MANIFEST.as_bytes(), None).unwrap()
    else {
        panic!("expected a manifest");
    };
    assert_eq!(m.schema_version, 2);
    assert_eq!(m.media_type.as_deref(), Some(media_types::OCI_MANIFEST));
    assert_eq!(m.config.digest.to_string(), CONFIG_DIGEST);
    assert_eq!(m.config.size, 7023);
    assert_eq!(m.layers.len(), 2);
    assert_eq!(m.layers[0].digest.to_string(), LAYER_DIGEST);
    assert_eq!(m.layers[1].digest.to_string(), LAYER2_DIGEST);
    assert_eq!(
        media_types::layer_compression(&m.layers[0].media_type),
        Some(Compression::Gzip)
    );
    assert_eq!(
        media_types::layer_compression(&m.layers[1].media_type),
        Some(Compression::Zstd)
    );
    assert_eq!(m.layers[1].annotation("com.example.layer"), Some("two"));
    assert!(m.subject.is_some());
    assert_eq!(
        m.annotations
            .as_ref()
            .unwrap()
            .get("com.example.key1")
            .unwrap(),
        "value1"
    );
    // Unknown fields survive a serialize/parse cycle.
    let again = serde_json::to_value(&m).unwrap();
    assert_eq!(again["com.example.unknown"]["kept"], true);
    let back: pier_image::image::Manifest = serde_json::from_value(again).unwrap();
    assert_eq!(back, m);
}

#[test]
fn parses_manifest_without_media_type_by_hint_and_shape() {
    let no_mt = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7","size":2},"layers":[]}"#;
    let by_shape = parse_manifest_or_index(no_mt.as_bytes(), None).unwrap();
    assert!(matches!(by_shape, ManifestKind::Manifest(_)));
    assert_eq!(by_shape.media_type(), media_types::OCI_MANIFEST);
    let by_hint =
        parse_manifest_or_index(no_mt.as_bytes(), Some(media_types::OCI_MANIFEST)).unwrap();
    assert!(matches!(by_hint, ManifestKind::Manifest(_)));

    let idx = r#"{"schemaVersion":2,"manifests":[]}"#;
    assert!(matches!(
        parse_manifest_or_index(idx.as_bytes(), None).unwrap(),
        ManifestKind::Index(_)
    ));
    assert!(matches!(
        parse_manifest_or_index(idx.as_bytes(), Some(media_types::OCI_INDEX)).unwrap(),
        ManifestKind::Index(_)
    ));
}

#[test]
fn parses_docker_schema2_manifest() {
    let ManifestKind::Manifest(m) =
        parse_manifest_or_index(DOCKER_MANIFEST.as_bytes(), None).unwrap()
    else {
        panic!("expected a manifest");
    };
    assert_eq!(m.media_type.as_deref(), Some(media_types::DOCKER_MANIFEST));
    assert!(media_types::is_config(&m.config.media_type));
    assert_eq!(
        media_types::layer_compression(&m.layers[0].media_type),
        Some(Compression::Gzip)
    );
    assert!(media_types::is_non_distributable(&m.layers[1].media_type));
    assert_eq!(m.layers[1].urls.as_ref().unwrap().len(), 1);
}

#[test]
fn rejects_schema1_and_confused_documents() {
    let schema1 = r#"{"schemaVersion":1,"name":"library/x","tag":"latest","fsLayers":[]}"#;
    let err = parse_manifest_or_index(schema1.as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("schema 1"), "{err}");

    // An index claiming to be an index but carrying a config (containerd rejects these).
    let confused = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"config":{"mediaType":"x","digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7","size":1}}"#;
    assert!(parse_manifest_or_index(confused.as_bytes(), None).is_err());
    let confused = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[],"config":{"mediaType":"x","digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7","size":1}}"#;
    assert!(parse_manifest_or_index(confused.as_bytes(), None).is_err());
    assert!(parse_manifest_or_index(b"not json", None).is_err());
    assert!(parse_manifest_or_index(br#"{"schemaVersion":2}"#, None).is_err());
    // A bad digest in a descriptor.
    let bad = r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:abc","size":1},"layers":[]}"#;
    assert!(parse_manifest_or_index(bad.as_bytes(), None).is_err());
}

#[test]
fn parses_docker_config() {
    let c = ImageConfig::parse(DOCKER_CONFIG.as_bytes()).unwrap();
    assert_eq!(c.architecture, "amd64");
    assert_eq!(c.os, "linux");
    let cc = c.config.as_ref().unwrap();
    assert_eq!(cc.user.as_deref(), Some("nobody"));
    assert_eq!(cc.cmd.as_ref().unwrap()[0], "nginx");
    assert_eq!(cc.entrypoint, None);
    assert_eq!(cc.working_dir.as_deref(), Some("/srv"));
    assert_eq!(cc.labels.as_ref().unwrap()["maintainer"], "someone");
    assert!(cc.exposed_ports.as_ref().unwrap().contains_key("443/tcp"));
    assert!(cc.volumes.as_ref().unwrap().contains_key("/data"));
    assert_eq!(cc.stop_signal.as_deref(), Some("SIGQUIT"));
    let hc = cc.healthcheck.as_ref().unwrap();
    assert_eq!(hc.interval, Some(30_000_000_000));
    assert_eq!(hc.retries, Some(3));
    assert_eq!(c.rootfs.kind, "layers");
    assert_eq!(c.rootfs.diff_ids.len(), 1);
    assert_eq!(c.history.len(), 2);
    assert_eq!(c.history[1].empty_layer, Some(true));
    assert_eq!(c.platform().to_short_string(), "linux/amd64");
    // Unknown fields round trip, at both levels.
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["docker_version"], "24.0.7");
    assert_eq!(v["container_config"]["Cmd"][0], "/bin/sh");
    assert_eq!(v["config"]["Hostname"], "");
    assert_eq!(
        ImageConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap(),
        c
    );
}

// ---------------------------------------------------------------------------
// Platform selection.

fn list() -> Index {
    match parse_manifest_or_index(MANIFEST_LIST.as_bytes(), None).unwrap() {
        ManifestKind::Index(i) => i,
        ManifestKind::Manifest(_) => panic!("expected an index"),
    }
}

fn pick(index: &Index, os: &str, arch: &str, variant: Option<&str>) -> Option<char> {
    select_platform(index, &Platform::new(os, arch, variant))
        .map(|d| d.digest.hex().chars().next().unwrap())
}

#[test]
fn selects_platform_like_containerd() {
    let idx = list();
    assert_eq!(idx.manifests.len(), 4);
    assert_eq!(pick(&idx, "linux", "amd64", None), Some('1'));
    assert_eq!(pick(&idx, "linux", "x86_64", None), Some('1'));
    assert_eq!(pick(&idx, "Linux", "amd64", Some("v1")), Some('1'));
    assert_eq!(pick(&idx, "linux", "arm64", None), Some('2'));
    assert_eq!(pick(&idx, "linux", "aarch64", Some("v8")), Some('2'));
    assert_eq!(pick(&idx, "linux", "arm", None), Some('3'));
    assert_eq!(pick(&idx, "linux", "arm", Some("7")), Some('3'));
    assert_eq!(pick(&idx, "linux", "armhf", None), Some('3'));
    // arm/v8 (32-bit on a v8 CPU) runs v7.
    assert_eq!(pick(&idx, "linux", "arm", Some("v8")), Some('3'));
    // v6 cannot run v7, nor can another OS; attestations are never picked.
    assert_eq!(pick(&idx, "linux", "arm", Some("v6")), None);
    assert_eq!(pick(&idx, "windows", "amd64", None), None);
    assert_eq!(pick(&idx, "unknown", "unknown", None), Some('4'));
    assert_eq!(pick(&idx, "linux", "s390x", None), None);

    // amd64 micro-architecture levels fall back v3 → v2 → v1 (plain amd64) → 386.
    assert_eq!(pick(&idx, "linux", "amd64", Some("v3")), Some('1'));
    let mut only_386 = idx.clone();
    only_386.manifests.truncate(1);
    only_386.manifests[0].platform = Some(Platform::new("linux", "386", None));
    assert_eq!(pick(&only_386, "linux", "amd64", None), Some('1'));
    assert_eq!(pick(&only_386, "linux", "i386", None), Some('1'));
    assert_eq!(pick(&only_386, "linux", "arm64", None), None);
    // An entry without a platform is the last resort.
    let mut unplatformed = only_386.clone();
    unplatformed.manifests[0].platform = None;
    assert_eq!(pick(&unplatformed, "linux", "s390x", None), Some('1'));

    // Without an arm64 entry, arm64 falls back to arm/v7.
    let mut no_arm64 = idx.clone();
    no_arm64.manifests.remove(1);
    assert_eq!(pick(&no_arm64, "linux", "arm64", None), Some('3'));

    let host = Platform::host();
    assert_eq!(host.os, std::env::consts::OS);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(host.to_short_string(), "linux/amd64");
        assert_eq!(
            select_platform(&idx, &host)
                .unwrap()
                .digest
                .hex()
                .as_bytes()[0],
            b'1'
        );
    }
}

// ---------------------------------------------------------------------------
// Image store.

#[test]
fn stored_manifest_keeps_exact_bytes_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    // Odd whitespace and key order: a re-serialization would change the digest.
    let bytes = DOCKER_MANIFEST.as_bytes();
    let (desc, parsed) = store.put_manifest(bytes, None).unwrap();
    assert_eq!(desc.digest, Digest::sha256(bytes));
    assert_eq!(desc.size, bytes.len() as u64);
    assert_eq!(desc.media_type, media_types::DOCKER_MANIFEST);
    assert!(matches!(parsed, ManifestKind::Manifest(_)));
    assert_eq!(store.content().read(&desc.digest).unwrap(), bytes);

    // No mediaType in the document: the hint is recorded.
    let no_mt = br#"{"schemaVersion":2,"manifests":[]}"#;
    let (d, _) = store
        .put_manifest(no_mt, Some(media_types::DOCKER_MANIFEST_LIST))
        .unwrap();
    assert_eq!(d.media_type, media_types::DOCKER_MANIFEST_LIST);
    let (d, _) = store.put_manifest(no_mt, None).unwrap();
    assert_eq!(d.media_type, media_types::OCI_INDEX);
}

#[test]
fn tag_get_list_untag() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let m = put_image(&store, "a", "amd64", false);

    let img = store
        .tag(&Reference::parse("busybox").unwrap(), &m)
        .unwrap();
    assert_eq!(img.name.to_string(), "docker.io/library/busybox:latest");
    store.tag(&r("example.com:5000/team/app:1.0"), &m).unwrap();
    let got = store.get(&r("busybox:latest")).unwrap();
    assert_eq!(got.target, m);

    let names: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:latest",
            "example.com:5000/team/app:1.0"
        ]
    );

    // Re-tagging moves the name and keeps its creation time.
    let m2 = put_image(&store, "b", "amd64", true);
    let moved = store.tag(&r("busybox"), &m2).unwrap();
    assert_eq!(moved.created, img.created);
    assert_eq!(store.get(&r("busybox")).unwrap().target, m2);

    // Persisted: a second handle sees the same.
    let again = stores(dir.path());
    assert_eq!(again.list().unwrap().len(), 2);

    store.untag(&r("busybox")).unwrap();
    let err = store.untag(&r("busybox")).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));
    assert_eq!(err.to_string(), "No such image: busybox:latest");
    let err = store.get(&r("busybox")).unwrap_err();
    assert_eq!(err.to_string(), "No such image: busybox:latest");
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn tag_validates_target() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let m = put_image(&store, "a", "amd64", false);
    // Unknown blob.
    let missing = Descriptor::new(media_types::OCI_MANIFEST, Digest::sha256(b"nope"), 4);
    assert!(matches!(
        store.tag(&r("x"), &missing).unwrap_err(),
        Error::NotFound(_)
    ));
    // Not a manifest.
    let layer = store.content().put(b"some layer", None).unwrap();
    let as_layer = Descriptor::new(media_types::OCI_LAYER, layer.digest, layer.size);
    assert!(store.tag(&r("x"), &as_layer).is_err());
    // Digest reference that names another digest.
    let wrong = r("x").with_digest(Digest::sha256(b"other"));
    assert!(matches!(
        store.tag(&wrong, &m).unwrap_err(),
        Error::Conflict(_)
    ));
    let right = Reference::parse("x").unwrap().with_digest(m.digest.clone());
    store.tag(&right, &m).unwrap();
    assert_eq!(store.get(&right).unwrap().target, m);
    // Nothing else got recorded by the failed calls.
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn resolve_by_name_id_digest_and_short_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let m = put_image(&store, "a", "amd64", false);
    let id = config_digest(&store, &m);
    store.tag(&r("busybox:1"), &m).unwrap();
    store.tag(&r("mirror.local/busybox:1"), &m).unwrap();

    let by_name = store.resolve("busybox:1").unwrap();
    assert_eq!(by_name.id, id);
    assert_eq!(by_name.target, m);
    assert_eq!(by_name.names.len(), 2);
    assert_eq!(store.resolve("docker.io/library/busybox:1").unwrap().id, id);
    assert_eq!(store.resolve(&id.to_string()).unwrap().target, m);
    assert_eq!(store.resolve(id.hex()).unwrap().target, m);
    assert_eq!(store.resolve(&id.hex()[..12]).unwrap().target, m);
    assert_eq!(
        store
            .resolve(&format!("sha256:{}", &id.hex()[..12]))
            .unwrap()
            .target,
        m
    );
    assert_eq!(store.resolve(&m.digest.to_string()).unwrap().id, id);
    assert_eq!(
        store
            .resolve(&format!("busybox@{}", m.digest))
            .unwrap()
            .target,
        m
    );

    let err = store.resolve("nosuch").unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));
    assert_eq!(err.to_string(), "No such image: nosuch:latest");
    let err = store
        .resolve(&Digest::sha256(b"x").to_string())
        .unwrap_err();
    assert!(err.to_string().starts_with("No such image: sha256:"));

    // An index's ID is the host platform manifest's config digest.
    let arm = put_image(&store, "arm", "arm64", false);
    let idx = put_index(&store, &[(&m, "amd64", None), (&arm, "arm64", Some("v8"))]);
    store.tag(&r("multi"), &idx).unwrap();
    let host_id = if cfg!(target_arch = "aarch64") {
        config_digest(&store, &arm)
    } else if cfg!(target_arch = "x86_64") {
        id.clone()
    } else {
        idx.digest.clone()
    };
    assert_eq!(store.resolve("multi").unwrap().id, host_id);
}

#[test]
fn resolve_ambiguous_short_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    // 17 images: two IDs share a first hex digit (pigeonhole).
    let mut ids = Vec::new();
    for i in 0..17 {
        let m = put_image(&store, &format!("img{i}"), "amd64", false);
        store.tag(&r(&format!("img{i}")), &m).unwrap();
        ids.push(config_digest(&store, &m));
    }
    let first = ids
        .iter()
        .map(|d| &d.hex()[..1])
        .find(|c| ids.iter().filter(|d| d.hex().starts_with(*c)).count() > 1)
        .unwrap()
        .to_string();
    let err = store.resolve(&first).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
}

#[test]
fn roots_cover_everything_reachable_and_gc_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = stores(dir.path());
    let amd = put_image(&store, "amd", "amd64", false);
    let arm = put_image(&store, "arm", "arm64", true);
    // An index entry whose manifest was never pulled.
    let absent = Descriptor::new(media_types::OCI_MANIFEST, Digest::sha256(b"absent"), 6);
    let idx = put_index(
        &store,
        &[
            (&amd, "amd64", None),
            (&arm, "arm64", None),
            (&absent, "s390x", None),
        ],
    );
    store.tag(&r("multi:1"), &idx).unwrap();
    let lone = put_image(&store, "lone", "amd64", false);
    let lone_config = config_digest(&store, &lone);

    let roots = store.roots().unwrap();
    let expected: HashSet<Digest> = [
        idx.digest.clone(),
        amd.digest.clone(),
        arm.digest.clone(),
        absent.digest.clone(),
        config_digest(&store, &amd),
        layer_digest(&store, &amd),
        config_digest(&store, &arm),
        layer_digest(&store, &arm),
    ]
    .into_iter()
    .collect();
    assert_eq!(roots, expected);

    let report = store.content().gc(&roots).unwrap();
    let removed: HashSet<Digest> = report.removed.iter().map(|d| d.digest.clone()).collect();
    assert!(removed.contains(&lone.digest));
    assert!(removed.contains(&lone_config));
    assert_eq!(removed.len(), 3);
    for d in &expected {
        if d != &absent.digest {
            store.content().verify(d).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// OCI image layout.

/// A store with a multi-platform OCI image and a Docker schema2 image, tagged.
fn populated(dir: &Path) -> (ImageStore, Vec<Reference>) {
    let store = stores(dir);
    let amd = put_image(&store, "amd", "amd64", false);
    let arm = put_image(&store, "arm", "arm", false);
    let idx = put_index(&store, &[(&amd, "amd64", None), (&arm, "arm", Some("v7"))]);
    let docker = put_image(&store, "docker", "amd64", true);
    let refs = vec![r("library/multi:1.0"), r("registry.local:5000/team/app:v2")];
    store.tag(&refs[0], &idx).unwrap();
    store.tag(&refs[1], &docker).unwrap();
    (store, refs)
}

#[test]
fn oci_layout_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, refs) = populated(&dir.path().join("a"));
    let layout = dir.path().join("layout");
    let index = export_oci_layout(&store, &refs, &layout).unwrap();
    assert_eq!(index.manifests.len(), 2);

    let oci_layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index_json["schemaVersion"], 2);
    let ann = &index_json["manifests"][1]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], "v2");
    assert_eq!(
        ann["io.containerd.image.name"],
        "registry.local:5000/team/app:v2"
    );
    // Every blob of both images is in the layout, named by its digest.
    let roots = store.roots().unwrap();
    for d in &roots {
        let bytes = std::fs::read(blob_file(&layout, d)).unwrap();
        assert_eq!(&Digest::sha256(&bytes), d);
    }

    // Import into a fresh store: same names, same digests, all blobs present.
    let fresh = stores(&dir.path().join("b"));
    let loaded = import_oci_layout(&fresh, &layout).unwrap();
    assert_eq!(loaded.len(), 2);
    for (reference, l) in refs.iter().zip(&loaded) {
        assert_eq!(l.name.as_ref(), Some(reference));
        let original = store.get(reference).unwrap();
        assert_eq!(l.target, original.target);
        assert_eq!(fresh.get(reference).unwrap().target, original.target);
    }
    assert_eq!(fresh.roots().unwrap(), roots);
    for d in &roots {
        fresh.content().verify(d).unwrap();
    }
    // The import's lease is gone: GC of the fresh store removes nothing.
    assert!(fresh.content().leases().unwrap().is_empty());
    assert!(fresh.content().gc(&roots).unwrap().removed.is_empty());

    // Exporting again into the same directory is idempotent.
    export_oci_layout(&store, &refs, &layout).unwrap();
    // An unknown name fails with Docker's message.
    let err = export_oci_layout(&store, &[r("nosuch")], &dir.path().join("x")).unwrap_err();
    assert_eq!(err.to_string(), "No such image: nosuch:latest");
}

#[test]
fn corrupt_or_missing_blob_in_layout_is_rejected_without_tags() {
    let dir = tempfile::tempdir().unwrap();
    let (store, refs) = populated(&dir.path().join("a"));
    let layout = dir.path().join("layout");
    export_oci_layout(&store, &refs, &layout).unwrap();
    let docker = store.get(&refs[1]).unwrap().target;
    let layer = layer_digest(&store, &docker);
    let path = blob_file(&layout, &layer);
    let good = std::fs::read(&path).unwrap();

    // Same size, different bytes.
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let fresh = stores(&dir.path().join("b"));
    let err = import_oci_layout(&fresh, &layout).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains(&layer.to_string()), "{err}");
    assert!(fresh.list().unwrap().is_empty());
    assert!(!fresh.content().exists(&layer));

    // Longer than its descriptor says.
    let mut long = good.clone();
    long.extend_from_slice(b"trailing");
    std::fs::write(&path, &long).unwrap();
    let err = import_oci_layout(&fresh, &layout).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(fresh.list().unwrap().is_empty());

    // Missing.
    std::fs::remove_file(&path).unwrap();
    let err = import_oci_layout(&fresh, &layout).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(err.to_string().contains("is missing"), "{err}");
    assert!(fresh.list().unwrap().is_empty());
    assert!(fresh.content().leases().unwrap().is_empty());

    // Restored: the import succeeds.
    std::fs::write(&path, &good).unwrap();
    assert_eq!(import_oci_layout(&fresh, &layout).unwrap().len(), 2);
    assert_eq!(fresh.list().unwrap().len(), 2);
}

#[test]
fn layout_without_names_or_with_bad_version() {
    let dir = tempfile::tempdir().unwrap();
    let (store, refs) = populated(&dir.path().join("a"));
    let layout = dir.path().join("layout");
    export_oci_layout(&store, &refs[..1], &layout).unwrap();

    // Only a bare tag in ref.name (as skopeo writes): imported, but not named.
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": "1.0"});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let fresh = stores(&dir.path().join("b"));
    let loaded = import_oci_layout(&fresh, &layout).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name, None);
    assert!(fresh.content().exists(&loaded[0].target.digest));
    assert!(fresh.list().unwrap().is_empty());

    // A full reference in ref.name is used as the name.
    index["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": "example.com/x:3"});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let loaded = import_oci_layout(&fresh, &layout).unwrap();
    assert_eq!(loaded[0].name, Some(r("example.com/x:3")));

    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    assert!(import_oci_layout(&fresh, &layout).is_err());
    std::fs::remove_file(layout.join("oci-layout")).unwrap();
    assert!(matches!(
        import_oci_layout(&fresh, &layout).unwrap_err(),
        Error::NotFound(_)
    ));
}

#[test]
fn skopeo_accepts_exported_layout() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("SKIPPED: skopeo is not installed (apt-get install skopeo)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, mut refs) = populated(&dir.path().join("a"));
    // A single-platform OCI image too. (skopeo's `oci:` transport only considers
    // index.json entries with OCI media types, so the Docker schema2 image of
    // `populated` is exported but not checked here.)
    let single = put_image(&store, "single", "amd64", false);
    refs.push(r("example.com/single:s1"));
    store.tag(&refs[2], &single).unwrap();
    let layout = dir.path().join("layout");
    export_oci_layout(&store, &refs, &layout).unwrap();
    for (reference, tag) in [(&refs[0], "1.0"), (&refs[2], "s1")] {
        let target = store.get(reference).unwrap().target;
        let out = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect --raw failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(Digest::sha256(&out.stdout), target.digest);

        // The full inspect reads the (host platform's) manifest and config.
        let out = Command::new("skopeo")
            .args([
                "--override-os",
                "linux",
                "--override-arch",
                "amd64",
                "inspect",
            ])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Architecture"], "amd64");
        assert_eq!(v["Os"], "linux");
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    }
}
