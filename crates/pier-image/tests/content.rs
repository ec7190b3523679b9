//! Integration tests of the content store on a real filesystem.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use pier_image::content::{ContentStore, Descriptor};
use pier_image::digest::{Algorithm, Digest, Hasher};
use pier_image::Error;
use proptest::prelude::*;

fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    (dir, store)
}

fn sha512(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(Algorithm::Sha512);
    h.update(bytes);
    h.finish()
}

fn ingest_entries(store: &ContentStore) -> Vec<String> {
    fs::read_dir(store.root().join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn blob_file(store: &ContentStore, d: &Digest) -> std::path::PathBuf {
    store
        .root()
        .join("blobs")
        .join(d.algorithm().name())
        .join(d.hex())
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn roots(ds: &[&Digest]) -> HashSet<Digest> {
    ds.iter().map(|&d| d.clone()).collect()
}

#[test]
fn layout_and_modes() {
    let (_dir, store) = store();
    for sub in [
        "",
        "blobs",
        "blobs/sha256",
        "blobs/sha512",
        "ingest",
        "leases",
    ] {
        assert_eq!(mode(&store.root().join(sub)), 0o700, "{sub}");
    }
    let d = store.put(b"x", None).unwrap().digest;
    assert_eq!(mode(&blob_file(&store, &d)), 0o444);
    // Reopening an existing store is fine.
    ContentStore::open(store.root()).unwrap();
}

#[test]
fn round_trip_sha256() {
    let (_dir, store) = store();
    let data = b"hello, pier";
    let d = Digest::sha256(data);
    let desc = store.put(data, Some(&d)).unwrap();
    assert_eq!(
        desc,
        Descriptor {
            digest: d.clone(),
            size: data.len() as u64
        }
    );
    assert!(store.exists(&d));
    assert_eq!(store.read(&d).unwrap(), data);
    assert_eq!(store.info(&d).unwrap(), desc);
    store.verify(&d).unwrap();
    let mut s = String::new();
    store
        .open_verified(&desc)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s.as_bytes(), data);
    assert_eq!(store.list().unwrap(), vec![desc]);
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn round_trip_sha512_streamed() {
    let (_dir, store) = store();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = sha512(&data);
    let mut w = store.writer(Some((&d, data.len() as u64))).unwrap();
    for chunk in data.chunks(7777) {
        w.write_all(chunk).unwrap();
    }
    assert_eq!(w.written(), data.len() as u64);
    let desc = w.commit().unwrap();
    assert_eq!(desc.digest, d);
    assert!(blob_file(&store, &d).is_file());
    assert_eq!(store.read(&d).unwrap(), data);
    store.verify(&d).unwrap();
}

#[test]
fn unexpected_content_gets_computed_sha256() {
    let (_dir, store) = store();
    let desc = store.put(b"abc", None).unwrap();
    assert_eq!(desc.digest, Digest::sha256(b"abc"));
    assert_eq!(desc.size, 3);
    let empty = store.put(b"", None).unwrap();
    assert_eq!(empty.size, 0);
    assert_eq!(store.read(&empty.digest).unwrap(), b"");
}

#[test]
fn wrong_digest_is_rejected_and_leaves_nothing() {
    let (_dir, store) = store();
    let claimed = Digest::sha256(b"the real thing");
    let err = store.put(b"an impostor!!!", Some(&claimed)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    assert!(
        msg.starts_with(&format!(
            "blob {claimed}: expected digest {claimed}, got sha256:"
        )),
        "{msg}"
    );
    assert!(!store.exists(&claimed));
    assert!(store.list().unwrap().is_empty());
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn truncated_content_is_rejected() {
    let (_dir, store) = store();
    let data = b"0123456789";
    let d = Digest::sha256(data);
    let mut w = store.writer(Some((&d, 10))).unwrap();
    w.write_all(&data[..9]).unwrap();
    let err = w.commit().unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }));
    assert_eq!(
        err.to_string(),
        format!("blob {d}: expected size 10, got 9")
    );
    assert!(!store.exists(&d));
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn oversized_content_fails_early() {
    let (_dir, store) = store();
    let d = Digest::sha256(b"0123456789");
    let mut w = store.writer(Some((&d, 10))).unwrap();
    w.write_all(b"0123456789").unwrap();
    assert!(w.write_all(b"x").is_err());
    let err = w.commit().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("blob {d}: expected size 10, got more than 10")
    );
    assert!(!store.exists(&d));
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn drop_and_abort_clean_ingest() {
    let (_dir, store) = store();
    let mut w = store.writer(None).unwrap();
    w.write_all(&[1u8; 100_000]).unwrap();
    assert_eq!(ingest_entries(&store).len(), 1);
    drop(w);
    assert!(ingest_entries(&store).is_empty());

    let mut w = store.writer(None).unwrap();
    w.write_all(b"partial").unwrap();
    w.abort().unwrap();
    assert!(ingest_entries(&store).is_empty());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn missing_blob_is_not_found() {
    let (_dir, store) = store();
    let d = Digest::sha256(b"nope");
    let want = format!("blob {d} not found");
    for err in [
        store.open_blob(&d).unwrap_err(),
        store.read(&d).unwrap_err(),
        store.info(&d).unwrap_err(),
        store.verify(&d).unwrap_err(),
        store.delete(&d).unwrap_err(),
    ] {
        assert!(matches!(&err, Error::NotFound(m) if *m == want), "{err:?}");
    }
    assert!(!store.exists(&d));
}

#[test]
fn corruption_after_commit_is_caught() {
    let (_dir, store) = store();
    let data = b"{\"schemaVersion\":2}";
    let desc = store.put(data, None).unwrap();
    let path = blob_file(&store, &desc.digest);
    // Same size, different bytes: only a re-hash can tell.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"{\"schemaVersion\":3}").unwrap();
    let err = store.read(&desc.digest).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("blob {}: expected digest", desc.digest)));
    assert!(matches!(
        store.verify(&desc.digest),
        Err(Error::Mismatch { .. })
    ));
    // The cheap check still passes (same size) ...
    store.open_verified(&desc).unwrap();
    // ... but catches truncation.
    fs::write(&path, b"{\"schema").unwrap();
    let err = store.open_verified(&desc).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("blob {}: expected size {}, got 8", desc.digest, desc.size)
    );
    // Delete and re-fetch repairs it.
    store.delete(&desc.digest).unwrap();
    store.put(data, Some(&desc.digest)).unwrap();
    assert_eq!(store.read(&desc.digest).unwrap(), data);
}

#[test]
fn commit_replaces_a_damaged_blob_of_the_wrong_size() {
    let (_dir, store) = store();
    let data = b"layer bytes";
    let desc = store.put(data, None).unwrap();
    let path = blob_file(&store, &desc.digest);
    fs::write(&path, b"lay").unwrap();
    store.put(data, Some(&desc.digest)).unwrap();
    assert_eq!(store.read(&desc.digest).unwrap(), data);
}

#[test]
fn concurrent_writers_of_one_blob_both_succeed() {
    let (_dir, store) = store();
    let data: Arc<Vec<u8>> = Arc::new((0..(1 << 20)).map(|i| (i * 7 % 256) as u8).collect());
    let d = Digest::sha256(&data);
    for round in 0..20 {
        if round % 2 == 1 {
            // Alternate between racing for a fresh blob and racing onto an existing one.
            store.delete(&d).unwrap();
        }
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (store, data, d, barrier) =
                    (store.clone(), data.clone(), d.clone(), barrier.clone());
                thread::spawn(move || {
                    let expected = if i % 2 == 0 { Some(&d) } else { None };
                    let mut w = store
                        .writer(expected.map(|d| (d, data.len() as u64)))
                        .unwrap();
                    for chunk in data.chunks(100_000) {
                        w.write_all(chunk).unwrap();
                    }
                    barrier.wait();
                    w.commit().unwrap()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().digest, d);
        }
        store.verify(&d).unwrap();
        assert_eq!(store.info(&d).unwrap().size, data.len() as u64);
        assert!(ingest_entries(&store).is_empty(), "round {round}");
    }
}

#[test]
fn readers_never_see_a_partial_blob() {
    let (_dir, store) = store();
    let data: Arc<Vec<u8>> = Arc::new(vec![42u8; 512 * 1024]);
    let desc = Descriptor {
        digest: Digest::sha256(&data),
        size: data.len() as u64,
    };
    let reader = {
        let (store, desc, data) = (store.clone(), desc.clone(), data.clone());
        thread::spawn(move || {
            let mut seen = 0;
            while seen < 50 {
                match store.open_verified(&desc) {
                    Ok(mut f) => {
                        let mut buf = Vec::new();
                        f.read_to_end(&mut buf).unwrap();
                        assert_eq!(buf, *data);
                        seen += 1;
                    }
                    Err(Error::NotFound(_)) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    for _ in 0..30 {
        store.put(&data, Some(&desc.digest)).unwrap();
    }
    reader.join().unwrap();
}

#[test]
fn gc_keeps_roots_and_leases_and_reports_truthfully() {
    let (_dir, store) = store();
    let image = store.put(b"image manifest", None).unwrap();
    let layer = store.put(&[7u8; 1000], None).unwrap();
    let pulling = store.put(b"half-pulled layer", None).unwrap();
    let garbage1 = store.put(&[1u8; 300], None).unwrap();
    let garbage2 = store.put(b"old config", None).unwrap();

    store.create_lease("pull-1").unwrap();
    store.add_to_lease("pull-1", &pulling.digest).unwrap();

    let roots = roots(&[&image.digest, &layer.digest]);
    let usage = store.usage(&roots).unwrap();
    let total: u64 = [&image, &layer, &pulling, &garbage1, &garbage2]
        .iter()
        .map(|d| d.size)
        .sum();
    assert_eq!(usage.total_bytes, total);
    assert_eq!(usage.blob_count, 5);
    assert_eq!(usage.reclaimable_count, 2);
    assert_eq!(usage.reclaimable_bytes, garbage1.size + garbage2.size);

    let report = store.gc(&roots).unwrap();
    let mut expect = vec![garbage1.clone(), garbage2.clone()];
    expect.sort();
    assert_eq!(report.removed, expect);
    assert_eq!(report.bytes_freed, usage.reclaimable_bytes);
    for kept in [&image, &layer, &pulling] {
        store.verify(&kept.digest).unwrap();
    }
    for gone in [&garbage1, &garbage2] {
        assert!(!store.exists(&gone.digest));
    }
    let after = store.usage(&roots).unwrap();
    assert_eq!(after.reclaimable_bytes, 0);
    assert_eq!(after.total_bytes, total - report.bytes_freed);

    // Once the pull is done and its lease dropped, only roots survive.
    store.delete_lease("pull-1").unwrap();
    let report = store.gc(&roots).unwrap();
    assert_eq!(report.removed, vec![pulling.clone()]);
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(store.gc(&roots).unwrap().removed.is_empty());
}

#[test]
fn writer_commit_into_lease() {
    let (_dir, store) = store();
    store.create_lease("import").unwrap();
    let mut w = store.writer(None).unwrap();
    w.set_lease("import");
    w.write_all(b"imported layer").unwrap();
    let desc = w.commit().unwrap();
    assert!(store
        .lease("import")
        .unwrap()
        .digests
        .contains(&desc.digest));
    assert!(store.gc(&HashSet::new()).unwrap().removed.is_empty());
    assert!(store.exists(&desc.digest));

    // A missing lease fails the commit before anything is published.
    let mut w = store.writer(None).unwrap();
    w.set_lease("no-such-lease");
    w.write_all(b"orphan").unwrap();
    assert!(matches!(w.commit(), Err(Error::NotFound(_))));
    assert!(!store.exists(&Digest::sha256(b"orphan")));
    assert!(ingest_entries(&store).is_empty());
}

#[test]
fn leases_survive_reopen() {
    let (_dir, store) = store();
    let a = store.put(b"a", None).unwrap();
    let b = store.put(b"b", None).unwrap();
    let lease = store.create_lease("build-7").unwrap();
    assert!(lease.digests.is_empty());
    store.add_to_lease("build-7", &a.digest).unwrap();
    store.add_to_lease("build-7", &b.digest).unwrap();
    store.remove_from_lease("build-7", &b.digest).unwrap();
    drop(store);

    let store = ContentStore::open(_dir.path().join("content").as_path()).unwrap();
    let leases = store.leases().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].name, "build-7");
    assert_eq!(
        leases[0].digests.iter().collect::<Vec<_>>(),
        vec![&a.digest]
    );
    let report = store.gc(&HashSet::new()).unwrap();
    assert_eq!(report.removed, vec![b]);
    assert!(store.exists(&a.digest));
}

#[test]
fn lease_errors() {
    let (_dir, store) = store();
    store.create_lease("x").unwrap();
    assert!(matches!(store.create_lease("x"), Err(Error::Conflict(_))));
    let d = Digest::sha256(b"");
    assert!(matches!(
        store.add_to_lease("y", &d),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(store.delete_lease("y"), Err(Error::NotFound(_))));
    for bad in ["", "../etc", "a/b", ".hidden", &"n".repeat(129)] {
        assert!(
            matches!(store.create_lease(bad), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
    // Leasing a digest before its blob exists is allowed (protects an in-flight fetch).
    store.add_to_lease("x", &d).unwrap();
}

#[test]
fn expired_leases_stop_protecting() {
    let (_dir, store) = store();
    let a = store.put(b"a", None).unwrap();
    store
        .create_lease_expiring("crashed-pull", Duration::ZERO)
        .unwrap();
    store.add_to_lease("crashed-pull", &a.digest).unwrap();
    let lasting = store
        .create_lease_expiring("live-pull", Duration::from_secs(3600))
        .unwrap();
    assert!(lasting.expires.is_some());
    let usage = store.usage(&HashSet::new()).unwrap();
    assert_eq!(usage.reclaimable_bytes, a.size);
    let report = store.gc(&HashSet::new()).unwrap();
    assert_eq!(report.removed, vec![a]);
    assert_eq!(report.expired_leases, vec!["crashed-pull".to_string()]);
    let names: Vec<_> = store
        .leases()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, vec!["live-pull"]);
}

#[test]
fn gc_removes_only_stale_ingest_files() {
    let (_dir, store) = store();
    let stale = store.root().join("ingest").join("blob-crashed.tmp");
    fs::write(&stale, [0u8; 4096]).unwrap();
    let mut active = store.writer(None).unwrap();
    active.write_all(b"in flight").unwrap();
    active.flush().unwrap();

    let usage = store.usage(&HashSet::new()).unwrap();
    assert_eq!(usage.ingest_bytes, 4096 + 9);

    // Fresh files are kept by the default age.
    let report = store.gc(&HashSet::new()).unwrap();
    assert_eq!(report.ingest_files_removed, 0);
    assert_eq!(ingest_entries(&store).len(), 2);

    // With a zero age everything under ingest/ counts as abandoned — including the
    // active writer, whose commit then fails instead of publishing anything.
    let report = store.gc_with(&HashSet::new(), Duration::ZERO).unwrap();
    assert_eq!(report.ingest_files_removed, 2);
    assert_eq!(report.ingest_bytes_freed, 4096 + 9);
    assert!(matches!(active.commit(), Err(Error::Io { .. })));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn list_ignores_stray_files() {
    let (_dir, store) = store();
    let a = store.put(b"a", None).unwrap();
    let b = store.put(b"b", Some(&sha512(b"b"))).unwrap();
    fs::write(store.root().join("blobs/sha256/not-a-digest"), b"junk").unwrap();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(store.list().unwrap(), want);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_chunking_gives_the_same_blob(
        data in proptest::collection::vec(any::<u8>(), 0..20_000),
        chunk in 1usize..5000,
        use_sha512 in any::<bool>(),
    ) {
        let (_dir, store) = store();
        let d = if use_sha512 { sha512(&data) } else { Digest::sha256(&data) };
        let mut w = store.writer(Some((&d, data.len() as u64))).unwrap();
        for c in data.chunks(chunk) {
            w.write_all(c).unwrap();
        }
        let desc = w.commit().unwrap();
        prop_assert_eq!(&desc.digest, &d);
        prop_assert_eq!(store.read(&d).unwrap(), data);
    }
}

#[test]
fn gc_racing_leased_commits_never_loses_a_blob() {
    let (_dir, store) = store();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (store, stop) = (store.clone(), stop.clone());
        thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.gc(&HashSet::new()).unwrap();
                runs += 1;
            }
            runs
        })
    };
    for i in 0..200u32 {
        let name = format!("pull-{i}");
        store.create_lease(&name).unwrap();
        let data = i.to_le_bytes().repeat(1000);
        let mut w = store.writer(None).unwrap();
        w.set_lease(name.as_str());
        w.write_all(&data).unwrap();
        let desc = w.commit().unwrap();
        // Held by the lease from the moment it became visible.
        assert_eq!(store.read(&desc.digest).unwrap(), data, "iteration {i}");
        store.delete_lease(&name).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(collector.join().unwrap() > 0);
    store.gc(&HashSet::new()).unwrap();
    assert!(store.list().unwrap().is_empty());
}
