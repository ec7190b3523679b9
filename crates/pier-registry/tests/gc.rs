//! Garbage collection: offline `pier-registry gc` (with `--dry-run`) and online
//! collection while pushes go on. Nothing a tag, an index's children or a push in
//! progress needs is deleted; unreferenced blobs older than the grace period are.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn blob_exists(r: &Registry, digest: &str) -> bool {
    let (alg, hex) = digest.split_once(':').unwrap();
    r.root().join("blobs").join(alg).join(hex).exists()
}

/// Starts an upload with some data; its location.
fn start_upload(r: &Registry, repo: &str) -> String {
    let start = r.call("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    let location = start.header("location").unwrap().to_string();
    r.call("PATCH", &location, &[], b"partial")
        .expect(202, None);
    location
}

/// Makes an upload look untouched for two days.
fn backdate_upload(r: &Registry, location: &str) {
    let id = location.rsplit('/').next().unwrap();
    let data = r.root().join("uploads").join(id).join("data");
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(data)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
}

fn gc(root: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pier-registry"))
        .arg("gc")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn offline_gc_dry_run_then_delete() {
    let r = Registry::pier(&[]);
    let (_, kept) = r.push_image("gc/app", "v1", "kept");
    // An index (tagged) whose child is pushed by digest only: the child stays.
    let child_config = r.push_blob("gc/app", b"{\"child\":1}");
    let child_layer = r.push_blob("gc/app", b"child layer");
    let child = image_manifest(
        OCI_MANIFEST,
        OCI_CONFIG,
        (&child_config, 11),
        &[(&child_layer, 11)],
        None,
    );
    let child_digest = sha256(&child);
    r.put_manifest("gc/app", &child_digest, OCI_MANIFEST, &child)
        .expect(201, None);
    let index = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child_digest, "size": child.len()}]}),
    )
    .unwrap();
    r.put_manifest("gc/app", "multi", OCI_INDEX, &index)
        .expect(201, None);
    // A manifest whose tag was deleted stays (it is still there by digest).
    let (_, untagged) = r.push_image("gc/app", "gone-tag", "untagged");
    r.call("DELETE", "/v2/gc/app/manifests/gone-tag", &[], b"")
        .expect(202, None);
    // Garbage: a blob nothing references, and a deleted manifest with its own layer.
    let garbage = r.push_blob("gc/app", b"never referenced");
    let (deleted_manifest, deleted) = r.push_image("gc/other", "v1", "deleted");
    let deleted_json: serde_json::Value = serde_json::from_slice(&deleted_manifest).unwrap();
    let deleted_layer = deleted_json["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted_config = deleted_json["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    r.call(
        "DELETE",
        &format!("/v2/gc/other/manifests/{deleted}"),
        &[],
        b"",
    )
    .expect(202, None);

    // An upload abandoned two days ago, and one in progress.
    let abandoned = start_upload(&r, "gc/app");
    backdate_upload(&r, &abandoned);
    let in_progress = start_upload(&r, "gc/app");

    let dir = r.into_dir();
    let root = dir.path().join("root");
    // Everything is younger than the default grace period (an hour).
    let young = gc(&root, &["--dry-run"]);
    assert!(young.contains("would delete 0 blobs (0 bytes)"), "{young}");

    let dry = gc(&root, &["--dry-run", "--gc-grace", "0"]);
    let abandoned_id = abandoned.rsplit('/').next().unwrap();
    assert!(
        dry.contains(&format!("would delete abandoned upload {abandoned_id}")),
        "{dry}"
    );
    assert!(
        !dry.contains(in_progress.rsplit('/').next().unwrap()),
        "{dry}"
    );
    let listed: Vec<&str> = dry
        .lines()
        .filter(|l| l.starts_with("would delete sha"))
        .collect();
    let expected = [&garbage, &deleted, &deleted_layer, &deleted_config];
    assert_eq!(listed.len(), 4, "{dry}");
    for d in expected {
        assert!(dry.contains(d.as_str()), "{d} not in {dry}");
    }
    let r = Registry::pier_in(dir, &[]);
    for d in expected {
        assert!(blob_exists(&r, d), "dry run deleted {d}");
    }

    let dir = r.into_dir();
    let done = gc(&dir.path().join("root"), &["--gc-grace", "0"]);
    assert!(done.contains("deleted 4 blobs"), "{done}");
    let r = Registry::pier_in(dir, &[]);
    for d in expected {
        assert!(!blob_exists(&r, d), "{d} kept");
    }
    r.call("GET", &abandoned, &[], b"")
        .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    r.call("GET", &in_progress, &[], b"").expect(204, None);
    r.call("HEAD", &format!("/v2/gc/app/blobs/{garbage}"), &[], b"")
        .expect(404, None);
    for reference in [
        "v1",
        "multi",
        child_digest.as_str(),
        untagged.as_str(),
        kept.as_str(),
    ] {
        let m = r.call(
            "GET",
            &format!("/v2/gc/app/manifests/{reference}"),
            &[],
            b"",
        );
        m.expect(200, None);
        for layer in m.json()["layers"].as_array().into_iter().flatten() {
            let d = layer["digest"].as_str().unwrap();
            r.call("GET", &format!("/v2/gc/app/blobs/{d}"), &[], b"")
                .expect(200, None);
        }
    }
    r.call("GET", &format!("/v2/gc/app/blobs/{child_layer}"), &[], b"")
        .expect(200, None);
    // The collected blobs' links are gone too.
    r.call(
        "GET",
        &format!("/v2/gc/other/blobs/{deleted_layer}"),
        &[],
        b"",
    )
    .expect(404, Some("BLOB_UNKNOWN"));
}

#[test]
fn online_gc_during_a_push_deletes_nothing_the_push_needs() {
    let r = Registry::pier(&["--gc-interval", "1", "--gc-grace", "5"]);
    let garbage = r.push_blob("live/app", b"garbage to collect");
    let abandoned = start_upload(&r, "live/app");
    backdate_upload(&r, &abandoned);
    let in_progress = start_upload(&r, "live/app");
    // A push in progress: blobs first, the manifest after some collections ran.
    let config = r.push_blob("live/app", b"{\"os\":\"linux\"}");
    let layer = r.push_blob("live/app", b"the layer");
    let log = r.dir.path().join("pier-registry.log");
    let gc_runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("\"msg\":\"gc\"")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while gc_runs() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gc_runs() > 0, "no collection ran");
    let manifest = image_manifest(
        OCI_MANIFEST,
        OCI_CONFIG,
        (&config, 13),
        &[(&layer, 9)],
        None,
    );
    r.put_manifest("live/app", "v1", OCI_MANIFEST, &manifest)
        .expect(201, None);

    let deadline = Instant::now() + Duration::from_secs(30);
    while blob_exists(&r, &garbage) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!blob_exists(&r, &garbage), "garbage not collected");
    // Past the grace period now, and kept because the manifest references them.
    for d in [&config, &layer] {
        r.call("GET", &format!("/v2/live/app/blobs/{d}"), &[], b"")
            .expect(200, None);
    }
    r.call("GET", "/v2/live/app/manifests/v1", &[], b"")
        .expect(200, None);
    r.call("GET", &abandoned, &[], b"")
        .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    r.call("GET", &in_progress, &[], b"").expect(204, None);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&garbage), "{text}");
}
