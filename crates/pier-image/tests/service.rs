//! Tests of the image service: the operations in Docker's shapes, over real files and
//! real overlay mounts.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use pier_image::digest::Digest;
use pier_image::error::Error;
use pier_image::image::{media_types, Descriptor};
use pier_image::reference::Reference;
use pier_image::service::{ImageService, ImageUser, ListFilters};
use pier_image::snapshot::Kind;

fn r(s: &str) -> Reference {
    Reference::parse_with_default_tag(s).unwrap()
}

/// A layer tar: `("path", Some(data))` is a file, `("path/", None)` a directory,
/// `("dir/.wh.name", None)` a whiteout.
fn layer(files: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match data {
            Some(d) => {
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, path, d.as_bytes()).unwrap();
            }
            None if path.ends_with('/') => {
                h.set_size(0);
                h.set_mode(0o755);
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            None => {
                h.set_size(0);
                h.set_mode(0o600);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Stores an image made of `layers` (uncompressed OCI layers) with `labels` and
/// `created`, tags it `name` if given, and returns its manifest descriptor.
fn put_image(
    svc: &ImageService,
    name: Option<&str>,
    layers: &[Vec<u8>],
    created: &str,
    labels: &[(&str, &str)],
) -> Descriptor {
    let content = svc.content();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let d = content.put(l, None).unwrap();
        diff_ids.push(format!("\"{}\"", d.digest));
        layer_descs.push(format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
            media_types::OCI_LAYER,
            d.digest,
            d.size
        ));
    }
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    let history: Vec<String> = (0..layers.len())
        .map(|i| format!(r#"{{"created":"{created}","created_by":"step {i}"}}"#))
        .chain([format!(
            r#"{{"created":"{created}","created_by":"CMD [\"sh\"]","empty_layer":true}}"#
        )])
        .collect();
    let config = format!(
        r#"{{"created":"{created}","architecture":"{}","os":"linux","config":{{"Cmd":["sh"],"Env":["PATH=/bin"],"Labels":{{{}}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}},"history":[{}]}}"#,
        pier_image::image::Platform::host().architecture,
        labels.join(","),
        diff_ids.join(","),
        history.join(",")
    );
    let c = content.put(config.as_bytes(), None).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{}]}}"#,
        media_types::OCI_MANIFEST,
        media_types::OCI_CONFIG,
        c.digest,
        c.size,
        layer_descs.join(",")
    );
    let (desc, _) = svc.store().put_manifest(manifest.as_bytes(), None).unwrap();
    match name {
        Some(n) => {
            svc.store().tag(&r(n), &desc).unwrap();
        }
        None => svc
            .store()
            .add_dangling(std::slice::from_ref(&desc))
            .unwrap(),
    }
    svc.unpack(&desc).unwrap();
    desc
}

fn committed(svc: &ImageService) -> BTreeSet<String> {
    svc.snapshots()
        .list()
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == Kind::Committed)
        .map(|i| i.name)
        .collect()
}

fn ids(items: &[pier_image::service::api::DeleteItem]) -> (Vec<String>, Vec<String>) {
    let untagged = items.iter().filter_map(|i| i.untagged.clone()).collect();
    let deleted = items.iter().filter_map(|i| i.deleted.clone()).collect();
    (untagged, deleted)
}

const T1: &str = "2024-01-02T03:04:05.123456789Z";
const T2: &str = "2024-02-02T03:04:05Z";

fn base() -> Vec<u8> {
    layer(&[
        ("bin/", None),
        ("bin/sh", Some("#!shell")),
        ("etc/", None),
        ("etc/os-release", Some("ID=pier")),
        ("etc/gone", Some("x")),
    ])
}

// ---------------------------------------------------------------------------

#[test]
fn shared_layers_unpack_once_and_go_with_their_last_image() {
    let dir = tempfile::tempdir().unwrap();
    let svc = ImageService::open(dir.path()).unwrap();
    let top_a = layer(&[("app/", None), ("app/a", Some("A"))]);
    let top_b = layer(&[("app/", None), ("app/b", Some("B"))]);
    put_image(&svc, Some("a:1"), &[base(), top_a], T1, &[]);
    put_image(&svc, Some("b:1"), &[base(), top_b], T2, &[]);
    assert_eq!(committed(&svc).len(), 3, "the base layer is unpacked once");

    let users: Vec<ImageUser> = Vec::new();
    let items = svc.remove("a:1", false, false, &users).unwrap();
    let (untagged, deleted) = ids(&items);
    assert_eq!(untagged, vec!["a:1"]);
    assert_eq!(
        deleted.len(),
        2,
        "image ID and its own top layer: {items:?}"
    );
    assert_eq!(committed(&svc).len(), 2, "the shared base stays");

    svc.remove("b:1", false, false, &users).unwrap();
    assert!(
        committed(&svc).is_empty(),
        "nothing left: {:?}",
        committed(&svc)
    );
    assert!(
        svc.content().list().unwrap().is_empty(),
        "every blob collected"
    );
}

#[test]
fn parallel_unpack_gives_the_overlay_tree_docker_would() {
    let dir = tempfile::tempdir().unwrap();
    let svc = ImageService::open(dir.path()).unwrap();
    let layers = vec![
        base(),
        layer(&[
            ("etc/", None),
            ("etc/.wh.gone", None),
            ("etc/new", Some("n")),
        ]),
        layer(&[
            ("etc/", None),
            ("etc/.wh..wh..opq", None),
            ("etc/only", Some("o")),
        ]),
        layer(&[("bin/", None), ("bin/sh", Some("#!newer"))]),
    ];
    let desc = put_image(&svc, Some("deep:1"), &layers, T1, &[]);
    let chain = svc.unpack(&desc).unwrap();
    assert_eq!(chain.len(), 4);
    // Each layer has its parent: the chain mounts as one overlay.
    for (i, c) in chain.iter().enumerate() {
        let info = svc.snapshots().stat(&c.to_string()).unwrap().unwrap();
        let want = i.checked_sub(1).map(|p| chain[p].to_string());
        assert_eq!(info.parent, want, "layer {i}");
        assert!(info.size.is_some(), "size measured at commit");
    }
    let view = format!("view-{}", std::process::id());
    let mnt = tempfile::tempdir().unwrap();
    svc.snapshots()
        .view(&view, Some(&chain[3].to_string()))
        .unwrap();
    svc.snapshots().mount(&view, mnt.path()).unwrap();
    let tree = walk(mnt.path());
    let _ = pier_image::snapshot::unmount(mnt.path());
    svc.snapshots().remove(&view).unwrap();
    assert_eq!(
        tree,
        vec![
            "bin/".to_string(),
            "bin/sh=#!newer".into(),
            "etc/".into(),
            "etc/only=o".into(),
        ]
    );
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                stack.push(e.path());
            } else {
                out.push(format!("{rel}={}", fs::read_to_string(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn corrupt_layer_fails_unpack_and_leaves_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let svc = ImageService::open(dir.path()).unwrap();
    let good = put_image(&svc, Some("ok:1"), &[base()], T1, &[]);
    let before = committed(&svc);
    // A second image whose second layer blob is corrupted on disk (same size).
    let top = layer(&[("x", Some("payload-payload"))]);
    let top_digest = Digest::sha256(&top);
    let content = svc.content();
    let d = content.put(&top, None).unwrap();
    let path = content.root().join("blobs/sha256").join(d.digest.hex());
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
        pier_image::image::Platform::host().architecture,
        Digest::sha256(&base()),
        top_digest
    );
    let c = content.put(config.as_bytes(), None).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}},{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        media_types::OCI_MANIFEST,
        media_types::OCI_CONFIG,
        c.digest,
        c.size,
        media_types::OCI_LAYER,
        Digest::sha256(&base()),
        base().len(),
        media_types::OCI_LAYER,
        d.digest,
        d.size
    );
    let (desc, _) = svc.store().put_manifest(manifest.as_bytes(), None).unwrap();
    let err = svc.unpack(&desc).unwrap_err();
    assert!(
        matches!(err, Error::Mismatch { .. }),
        "a corrupt blob is a mismatch: {err}"
    );
    assert_eq!(committed(&svc), before, "no new committed layer");
    let leftovers: Vec<String> = svc
        .snapshots()
        .list()
        .unwrap()
        .into_iter()
        .filter(|i| i.kind != Kind::Committed)
        .map(|i| i.name)
        .collect();
    assert!(
        leftovers.is_empty(),
        "no extraction snapshot left: {leftovers:?}"
    );
    assert!(svc.unpack(&good).is_ok());
}

#[test]
fn rmi_follows_dockers_rules() {
    let dir = tempfile::tempdir().unwrap();
    let svc = ImageService::open(dir.path()).unwrap();
    put_image(&svc, Some("busybox:latest"), &[base()], T1, &[]);
    svc.tag("busybox", "busybox:extra").unwrap();
    svc.tag("busybox", "localhost:5000/mine:1").unwrap();
    let id = svc.inspect("busybox").unwrap().id;
    let short = &id["sha256:".len().."sha256:".len() + 12];

    // By ID while names in two repositories exist: must be forced.
    let err = svc.remove(short, false, false, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
    );
    assert!(matches!(err, Error::Conflict(_)));

    // By name with other names: only untagged.
    let items = svc.remove("busybox:extra", false, false, &[]).unwrap();
    assert_eq!(ids(&items), (vec!["busybox:extra".to_string()], vec![]));
    svc.remove("localhost:5000/mine:1", false, false, &[])
        .unwrap();

    let container = "c0ffee".repeat(10) + "abcd";
    let stopped = vec![ImageUser {
        container: container.clone(),
        image: id.parse().unwrap(),
        running: false,
    }];
    let err = svc.remove("busybox", false, false, &stopped).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {short}", &container[..12])
    );
    let err = svc.remove(&id, false, false, &stopped).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}", &container[..12])
    );
    let running = vec![ImageUser {
        running: true,
        ..stopped[0].clone()
    }];
    let err = svc.remove(&id, true, false, &running).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}", &container[..12])
    );
    // Forced by name with a running user: untagged, the image stays (dangling).
    let items = svc.remove("busybox", true, false, &running).unwrap();
    assert_eq!(ids(&items), (vec!["busybox:latest".to_string()], vec![]));
    let listed = svc.list(&ListFilters::default(), None).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].repo_tags.is_empty());
    assert_eq!(
        committed(&svc).len(),
        1,
        "its layer stays for the container"
    );

    // Gone for good once the container is gone.
    let items = svc.remove(short, false, false, &[]).unwrap();
    assert_eq!(ids(&items).1[0], id);
    assert!(committed(&svc).is_empty());
    let err = svc.remove("busybox", false, false, &[]).unwrap_err();
    assert_eq!(err.to_string(), "No such image: busybox:latest");
    assert!(matches!(err, Error::NotFound(_)));
}

#[test]
fn retagging_leaves_a_dangling_image_and_prune_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let svc = ImageService::open(dir.path()).unwrap();
    put_image(&svc, Some("app:1"), &[base()], T1, &[("tier", "old")]);
    let old_id = svc.inspect("app:1").unwrap().id;
    let top = layer(&[("new", Some("v2"))]);
    put_image(&svc, Some("app:1"), &[base(), top], T2, &[("tier", "new")]);

    let all = svc.list(&ListFilters::default(), None).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].repo_tags, vec!["app:1"], "newest first");
    assert!(all[1].repo_tags.is_empty(), "the old image is dangling");
    assert_eq!(all[1].id, old_id);
    assert!(all[0].size > 0 && all[0].shared_size == -1 && all[0].containers == -1);

    let dangling = ListFilters {
        dangling: Some(true),
        ..ListFilters::default()
    };
    assert_eq!(svc.list(&dangling, None).unwrap().len(), 1);
    let labelled = ListFilters {
        label: vec!["tier=new".into()],
        ..ListFilters::default()
    };
    assert_eq!(
        svc.list(&labelled, None).unwrap()[0].repo_tags,
        vec!["app:1"]
    );
    let before = ListFilters {
        before: Some("app:1".into()),
        ..ListFilters::default()
    };
    assert_eq!(svc.list(&before, None).unwrap()[0].id, old_id);
    let refs = ListFilters {
        reference: vec!["ap*".into()],
        ..ListFilters::default()
    };
    assert_eq!(svc.list(&refs, None).unwrap().len(), 1);

    // system df numbers: the base layer is shared by both.
    let users = vec![ImageUser {
        container: "x".repeat(64),
        image: old_id.parse().unwrap(),
        running: false,
    }];
    let df = svc.list(&ListFilters::default(), Some(&users)).unwrap();
    assert!(df.iter().all(|i| i.shared_size > 0), "{df:?}");
    assert_eq!(df.iter().map(|i| i.containers).sum::<i64>(), 1);

    // Prune keeps images containers use, then takes the dangling one.
    let report = svc.prune(false, &users, &|_| false).unwrap();
    assert!(report.images_deleted.is_empty(), "{report:?}");
    let report = svc.prune(false, &[], &|_| false).unwrap();
    assert_eq!(
        report.images_deleted[0].deleted.as_deref(),
        Some(old_id.as_str())
    );
    assert_eq!(svc.list(&ListFilters::default(), None).unwrap().len(), 1);
    // `-a` takes tagged images too.
    let report = svc.prune(true, &[], &|_| false).unwrap();
    assert_eq!(report.images_deleted[0].untagged.as_deref(), Some("app:1"));
    assert!(report.space_reclaimed > 0);
    assert!(committed(&svc).is_empty());
    assert!(svc.content().list().unwrap().is_empty());
}

#[test]
fn inspect_and_history_in_dockers_shape() {
    let dir = tempfile::tempdir().unwrap();
    let svc = ImageService::open(dir.path()).unwrap();
    let desc = put_image(
        &svc,
        Some("shape:1"),
        &[base(), layer(&[("x", Some("y"))])],
        T1,
        &[("a", "b")],
    );
    let inspect = svc.inspect("shape:1").unwrap();
    let json = serde_json::to_value(&inspect).unwrap();
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "Author",
        "Config",
        "Architecture",
        "Os",
        "Size",
        "GraphDriver",
        "RootFS",
        "Metadata",
        "Descriptor",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["RepoTags"], serde_json::json!(["shape:1"]));
    assert_eq!(json["Created"], T1);
    assert_eq!(json["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(json["Config"]["Labels"]["a"], "b");
    assert_eq!(json["Config"]["Entrypoint"], serde_json::Value::Null);
    assert_eq!(json["RootFS"]["Type"], "layers");
    assert_eq!(json["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(json["GraphDriver"]["Name"], "overlay2");
    let upper = json["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    assert_eq!(fs::read_to_string(Path::new(upper).join("x")).unwrap(), "y");
    assert_eq!(json["Descriptor"]["digest"], desc.digest.to_string());
    // Found by short ID and by manifest digest too.
    assert_eq!(svc.inspect(&inspect.id[7..19]).unwrap().id, inspect.id);
    assert_eq!(
        svc.inspect(&desc.digest.to_string()).unwrap().id,
        inspect.id
    );

    let history = svc.history("shape:1").unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].id, inspect.id);
    assert_eq!(history[0].created_by, "CMD [\"sh\"]");
    assert_eq!(history[0].size, 0);
    assert_eq!(history[0].tags, Some(vec!["shape:1".to_string()]));
    assert_eq!(history[1].id, "<missing>");
    assert!(history[1].size > 0 && history[2].size > 0);
    assert_eq!(history[2].created, 1_704_164_645);
}

#[test]
fn save_and_load_round_trip_unpacks_and_keeps_nameless_images() {
    let a = tempfile::tempdir().unwrap();
    let svc = ImageService::open(a.path()).unwrap();
    put_image(
        &svc,
        Some("rt:1"),
        &[base(), layer(&[("z", Some("1"))])],
        T1,
        &[],
    );
    let id = svc
        .import(&base()[..], &["CMD [\"true\"]".to_string()], None)
        .unwrap();
    let mut archive = Vec::new();
    svc.save(&["rt:1".to_string(), id.to_string()], &mut archive)
        .unwrap();

    let b = tempfile::tempdir().unwrap();
    let other = ImageService::open(b.path()).unwrap();
    let loaded = other.load(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    let listed = other.list(&ListFilters::default(), None).unwrap();
    let tags: BTreeSet<Vec<String>> = listed.iter().map(|i| i.repo_tags.clone()).collect();
    assert_eq!(
        tags,
        BTreeSet::from([vec!["rt:1".to_string()], vec![]]),
        "the ID-saved image loads dangling"
    );
    assert_eq!(committed(&other).len(), 2, "base shared, top unpacked");
    assert_eq!(
        other.inspect("rt:1").unwrap().id,
        svc.inspect("rt:1").unwrap().id
    );
    assert!(matches!(
        other.save(&["nope".to_string()], Vec::new()).unwrap_err(),
        Error::NotFound(_)
    ));
}
