//! Overlayfs snapshotter tests: real mounts in a temp dir (requires root; skipped
//! otherwise). Every mount is undone by a Drop guard, and each test checks that nothing
//! under its temp dir is left in /proc/self/mountinfo.

use std::fs;
use std::path::{Path, PathBuf};

use pier_image::digest::Digest;
use pier_image::snapshot::{self, chain_id, chain_ids, Kind, MountApi, MountSpec, Snapshotter};
use pier_image::Error;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Unmounts on drop, even when the test panics.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = snapshot::unmount(&self.0);
    }
}

fn mount(s: &Snapshotter, key: &str, target: &Path, api: MountApi) -> MountGuard {
    fs::create_dir_all(target).unwrap();
    s.mount_with(key, target, api).unwrap();
    MountGuard(target.to_path_buf())
}

/// Fails if any mount point under `dir` remains.
fn assert_nothing_mounted(dir: &Path) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = dir.to_string_lossy().into_owned();
    let left: Vec<&str> = info
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| mp.starts_with(&prefix))
        })
        .collect();
    assert!(left.is_empty(), "left mounted: {left:?}");
}

/// A temp dir that asserts on drop (after guards) that no mount is left under it.
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_nothing_mounted(self.0.path());
        }
    }
}

fn digest(s: &str) -> Digest {
    Digest::sha256(s.as_bytes())
}

#[test]
fn chain_id_matches_spec() {
    let d0 = digest("layer0");
    let d1 = digest("layer1");
    let d2 = digest("layer2");
    assert_eq!(chain_id(std::slice::from_ref(&d0)), d0);
    let c1 = Digest::sha256(format!("{d0} {d1}").as_bytes());
    assert_eq!(chain_id(&[d0.clone(), d1.clone()]), c1);
    let c2 = Digest::sha256(format!("{c1} {d2}").as_bytes());
    assert_eq!(chain_id(&[d0.clone(), d1.clone(), d2.clone()]), c2);
    assert_eq!(chain_ids(&[d0.clone(), d1, d2]), vec![d0, c1, c2]);
    // A known value: two sha256 of "" stacked.
    let e = Digest::sha256(b"");
    let want = Digest::sha256(
        b"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 \
sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    assert_eq!(chain_id(&[e.clone(), e]), want);
}

/// Commits one layer `name` on `parent` containing `files`.
fn layer(s: &Snapshotter, name: &str, parent: Option<&str>, files: &[(&str, &str)]) {
    let key = format!("extract-{name}");
    let dir = s.prepare(&key, parent).unwrap();
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    for (f, content) in files {
        fs::write(dir.join(f), content).unwrap();
    }
    s.commit(name, &key).unwrap();
}

#[test]
fn container_on_committed_layers() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = TestDir::new();
    let s = Snapshotter::open(&t.path().join("root")).unwrap();
    layer(&s, "base", None, &[("a", "A")]);
    layer(&s, "top", Some("base"), &[("b", "B")]);
    assert_eq!(s.stat("top").unwrap().unwrap().kind, Kind::Committed);
    assert!(s.stat("extract-top").unwrap().is_none());

    let upper = s.prepare("ctr", Some("top")).unwrap();
    match s.mounts("ctr").unwrap() {
        MountSpec::Overlay {
            lowerdirs,
            upperdir,
            workdir,
        } => {
            assert_eq!(lowerdirs.len(), 2);
            assert_eq!(lowerdirs[0], s.fs_path("top").unwrap());
            assert_eq!(upperdir.as_deref(), Some(upper.as_path()));
            assert!(workdir.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    for api in [MountApi::Auto, MountApi::Legacy] {
        let target = t.path().join(format!("mnt-{api:?}"));
        let g = mount(&s, "ctr", &target, api);
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "A");
        assert_eq!(fs::read_to_string(target.join("b")).unwrap(), "B");
        fs::write(target.join(format!("new-{api:?}")), "N").unwrap();
        drop(g);
        assert!(!target.join("a").exists());
    }
    let mut names: Vec<String> = fs::read_dir(&upper)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["new-Auto", "new-Legacy"]);

    // A committed snapshot is not mountable, only viewable (read-only).
    assert!(matches!(s.mounts("top"), Err(Error::Conflict(_))));
    let spec = s.view("v", Some("top")).unwrap();
    assert!(spec.readonly());
    let target = t.path().join("view");
    let g = mount(&s, "v", &target, MountApi::Auto);
    assert_eq!(fs::read_to_string(target.join("b")).unwrap(), "B");
    assert!(fs::write(target.join("x"), "x").is_err());
    drop(g);
    let target = t.path().join("view1");
    s.view("v1", Some("base")).unwrap();
    let g = mount(&s, "v1", &target, MountApi::Auto);
    assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "A");
    assert!(fs::write(target.join("x"), "x").is_err());
    drop(g);
    s.remove("v").unwrap();
    s.remove("v1").unwrap();

    // An active snapshot without parent is a plain bind mount.
    let dir = s.prepare("solo", None).unwrap();
    let target = t.path().join("solo");
    let g = mount(&s, "solo", &target, MountApi::Auto);
    fs::write(target.join("f"), "F").unwrap();
    drop(g);
    assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "F");
    assert!(s.usage("solo").unwrap() > 0);
}

#[test]
fn shared_base_is_reused_and_duplicate_commit_discarded() {
    let t = TestDir::new();
    let s = Snapshotter::open(&t.path().join("root")).unwrap();
    let base = digest("base");
    let (x, y) = (digest("x"), digest("y"));
    let img1 = chain_ids(&[base.clone(), x]);
    let img2 = chain_ids(&[base.clone(), y]);
    assert_eq!(img1[0], img2[0]);

    layer(&s, &img1[0].to_string(), None, &[("base", "1")]);
    layer(
        &s,
        &img1[1].to_string(),
        Some(&img1[0].to_string()),
        &[("x", "x")],
    );
    // The second image finds its base already there...
    assert!(s.exists(&img2[0].to_string()));
    let id_before = s.stat(&img2[0].to_string()).unwrap().unwrap().id;
    // ...and a racing pull that extracted it again loses gracefully.
    let dup = s.prepare("dup", None).unwrap();
    fs::write(dup.join("base"), "2").unwrap();
    s.commit(&img2[0].to_string(), "dup").unwrap();
    assert!(!dup.exists());
    assert!(s.stat("dup").unwrap().is_none());
    let info = s.stat(&img2[0].to_string()).unwrap().unwrap();
    assert_eq!(info.id, id_before);
    assert_eq!(
        fs::read_to_string(s.fs_path(&info.name).unwrap().join("base")).unwrap(),
        "1"
    );
    layer(
        &s,
        &img2[1].to_string(),
        Some(&img2[0].to_string()),
        &[("y", "y")],
    );
    assert_eq!(s.list().unwrap().len(), 3);

    // Errors: unknown parent, duplicate key, parent not committed.
    assert!(matches!(
        s.prepare("k", Some("nope")),
        Err(Error::NotFound(_))
    ));
    s.prepare("k", None).unwrap();
    assert!(matches!(s.prepare("k", None), Err(Error::Conflict(_))));
    assert!(matches!(
        s.prepare("k2", Some("k")),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(s.commit("c", "missing"), Err(Error::NotFound(_))));
}

#[test]
fn remove_refuses_parents_then_frees_bottom_up() {
    let t = TestDir::new();
    let s = Snapshotter::open(&t.path().join("root")).unwrap();
    layer(&s, "a", None, &[("a", "a")]);
    layer(&s, "b", Some("a"), &[("b", "b")]);
    layer(&s, "c", Some("a"), &[("c", "c")]);
    let dir_b = s.fs_path("b").unwrap();
    assert!(matches!(s.remove("a"), Err(Error::Conflict(_))));
    s.remove("b").unwrap();
    assert!(!dir_b.exists());
    // "a" is still used by "c".
    assert!(matches!(s.remove("a"), Err(Error::Conflict(_))));
    s.remove("c").unwrap();
    let dir_a = s.fs_path("a").unwrap();
    s.remove("a").unwrap();
    assert!(!dir_a.exists());
    assert!(matches!(s.remove("a"), Err(Error::NotFound(_))));
    assert!(s.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(t.path().join("root/snapshots"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn deep_chain_of_120_layers_mounts() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = TestDir::new();
    // A long root path makes absolute lowerdir options far exceed one page.
    let root = t
        .path()
        .join("a-rather-long-directory-name-for-the-snapshotter-root");
    let s = Snapshotter::open(&root).unwrap();
    let diffs: Vec<Digest> = (0..120).map(|i| digest(&format!("layer{i}"))).collect();
    let chain = chain_ids(&diffs);
    for (i, c) in chain.iter().enumerate() {
        let parent = i.checked_sub(1).map(|p| chain[p].to_string());
        let f = format!("f{i}");
        layer(&s, &c.to_string(), parent.as_deref(), &[(f.as_str(), "x")]);
    }
    let top = chain[119].to_string();
    s.prepare("ctr", Some(&top)).unwrap();
    let MountSpec::Overlay { lowerdirs, .. } = s.mounts("ctr").unwrap() else {
        panic!("expected overlay");
    };
    assert_eq!(lowerdirs.len(), 120);
    let full: usize = lowerdirs.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(full > 4096, "{full}");
    for api in [MountApi::New, MountApi::Legacy] {
        let target = t.path().join(format!("mnt-{api:?}"));
        let g = mount(&s, "ctr", &target, api);
        for i in 0..120 {
            assert!(target.join(format!("f{i}")).exists(), "f{i} via {api:?}");
        }
        drop(g);
    }
    // A read-only view of the whole chain too.
    s.view("v", Some(&top)).unwrap();
    let target = t.path().join("view");
    let g = mount(&s, "v", &target, MountApi::Auto);
    assert!(target.join("f0").exists() && target.join("f119").exists());
    drop(g);
}

#[test]
fn metadata_survives_reopen() {
    let t = TestDir::new();
    let root = t.path().join("root");
    {
        let s = Snapshotter::open(&root).unwrap();
        layer(&s, "base", None, &[("a", "a")]);
        s.prepare("ctr", Some("base")).unwrap();
    }
    // A crash leftover (directory without a record) is cleared on open.
    fs::create_dir_all(root.join("snapshots/999/fs")).unwrap();
    let s = Snapshotter::open(&root).unwrap();
    assert!(!root.join("snapshots/999").exists());
    let base = s.stat("base").unwrap().unwrap();
    assert_eq!(base.kind, Kind::Committed);
    let ctr = s.stat("ctr").unwrap().unwrap();
    assert_eq!(ctr.kind, Kind::Active);
    assert_eq!(ctr.parent.as_deref(), Some("base"));
    assert_eq!(
        fs::read_to_string(s.fs_path("base").unwrap().join("a")).unwrap(),
        "a"
    );
    // Ids are not reused after reopening.
    s.prepare("more", None).unwrap();
    let more = s.stat("more").unwrap().unwrap();
    assert!(more.id > ctr.id && more.id > base.id);
}

/// A user namespace mapping root to `host_root` (65536 IDs), held by a `sleep` child
/// for as long as the returned fd is needed; the child is killed by pid on drop.
struct UserNs {
    child: std::process::Child,
    fd: std::os::fd::OwnedFd,
}

impl UserNs {
    fn new(host_root: u32) -> UserNs {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("/bin/sleep");
        cmd.arg("60");
        let enter_userns = || {
            // SAFETY: a new user namespace for the single-threaded forked child; no
            // other thread shares its credentials or filesystem state.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }
                .map_err(std::io::Error::from)
        };
        // SAFETY: the closure only calls unshare(2), which is async-signal-safe, as
        // pre_exec requires of code run between fork and exec.
        unsafe { cmd.pre_exec(enter_userns) };
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        for map in ["uid_map", "gid_map"] {
            fs::write(
                format!("/proc/{pid}/{map}"),
                format!("0 {host_root} 65536\n"),
            )
            .unwrap();
        }
        let fd = fs::File::open(format!("/proc/{pid}/ns/user"))
            .unwrap()
            .into();
        UserNs { child, fd }
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn idmapped_mounts_share_layers_and_store_writes_unshifted() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = TestDir::new();
    // The mapped root must be able to reach the mount point.
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let s = Snapshotter::open(&t.path().join("root")).unwrap();
    layer(&s, "base", None, &[("a", "A")]);
    layer(&s, "top", Some("base"), &[("b", "B")]);
    let upper = s.prepare("ctr", Some("top")).unwrap();
    let ns = UserNs::new(300_000);
    let idmap = snapshot::IdMap {
        userns: ns.fd.as_fd(),
        root_uid: 300_000,
        root_gid: 300_000,
    };
    let target = t.path().join("mnt");
    fs::create_dir_all(&target).unwrap();
    s.mount_idmapped("ctr", &target, idmap).unwrap();
    let g = MountGuard(target.clone());
    // The layers' root-owned files appear owned by the mapped root.
    let meta = fs::metadata(target.join("a")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (300_000, 300_000));
    // The mapped root writes: copy-up, a new directory and file.
    let script = format!(
        "echo changed > {0}/a && mkdir {0}/d && echo new > {0}/d/f",
        target.display()
    );
    let status = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .uid(300_000)
        .gid(300_000)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "changed\n");
    let meta = fs::metadata(target.join("d/f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (300_000, 300_000));
    drop(g);
    // On disk everything is stored as root, as an unmapped container would store it,
    // and the shared lower layer is untouched.
    for f in ["a", "d", "d/f"] {
        let meta = fs::metadata(upper.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{f}");
    }
    let base = s.fs_path("base").unwrap();
    assert_eq!(fs::read_to_string(base.join("a")).unwrap(), "A");
    assert_eq!(fs::metadata(base.join("a")).unwrap().uid(), 0);

    // A snapshot without parents is an idmapped bind mount.
    let solo = s.prepare("solo", None).unwrap();
    fs::write(solo.join("f"), "F").unwrap();
    let target = t.path().join("solo-mnt");
    fs::create_dir_all(&target).unwrap();
    s.mount_idmapped("solo", &target, idmap).unwrap();
    let g = MountGuard(target.clone());
    assert_eq!(fs::metadata(target.join("f")).unwrap().uid(), 300_000);
    drop(g);
}
