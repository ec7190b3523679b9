//! Interop of the image store with real tools: images made and saved by a real dockerd
//! (an isolated one, see `pier_testsupport::IsolatedDockerd`), Pier's archives loaded
//! and run by it, OCI layouts copied and written by skopeo and umoci, and Docker's
//! whiteouts unpacked into Pier's overlay snapshots.
//!
//! Needs root (dockerd, mounts, whiteout devices). A missing tool skips the test with a
//! message, unless `CI` is set: then it fails. Every external command has a deadline;
//! temporary directories, mounts and daemons are removed by Drop guards, also when an
//! assertion fails.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pier_image::archive::{load_archive, save_docker_archive};
use pier_image::content::ContentStore;
use pier_image::diff::import_rootfs;
use pier_image::digest::Digest;
use pier_image::image::{
    export_oci_layout, import_oci_layout, Descriptor, ImageConfig, ImageStore, Manifest,
    ManifestKind,
};
use pier_image::layer::apply_layer;
use pier_image::reference::Reference;
use pier_image::snapshot::{chain_ids, unmount, Snapshotter};
use pier_testsupport::{run_ok, DockerdOptions, IsolatedDockerd};

/// The deadline of any one external command.
const T: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Helpers.

/// Root and `tools`; otherwise skips (prints why) or, with `CI` set, fails.
fn prerequisites(test: &str, tools: &[&str]) -> bool {
    if !pier_testsupport::is_root() {
        pier_testsupport::skip(test, "needs root (dockerd, mounts, whiteout devices)");
        return false;
    }
    pier_testsupport::require_tools(test, tools)
}

fn tmp(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("pier-image-interop-{prefix}-"))
        .tempdir()
        .expect("temp dir")
}

fn stores(dir: &Path) -> ImageStore {
    let content = ContentStore::open(&dir.join("content")).unwrap();
    ImageStore::open(content, &dir.join("meta")).unwrap()
}

fn r(s: &str) -> Reference {
    Reference::parse_with_default_tag(s).unwrap()
}

fn dockerd() -> Option<IsolatedDockerd> {
    IsolatedDockerd::start_or_skip("pier-image interop", DockerdOptions::default())
}

fn ok(cmd: &mut Command) -> String {
    run_ok(cmd, T).unwrap_or_else(|e| panic!("{e}"))
}

/// A busybox rootfs made by the repo's `scripts/busybox-rootfs.sh`, plus files that
/// exercise metadata: owners, modes (setuid, private dirs), a hard link, a dangling
/// symlink, a name with a space, an empty file and a larger one.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    ok(Command::new("bash").arg(&script).arg(&rootfs));
    let p = rootfs.join("etc/pier");
    std::fs::create_dir(&p).unwrap();
    let write = |name: &str, data: &[u8], mode: u32, owner: Option<(u32, u32)>| {
        let f = p.join(name);
        std::fs::write(&f, data).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some((u, g)) = owner {
            std::os::unix::fs::lchown(&f, Some(u), Some(g)).unwrap();
            // chown clears setuid; set the mode again.
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    write("owned", b"owned by 1234:5678\n", 0o640, Some((1234, 5678)));
    write("suid", b"#!/bin/sh\n", 0o4755, None);
    write("with space", b"space\n", 0o600, None);
    write("empty", b"", 0o644, None);
    // 256 KiB of deterministic noise.
    let mut x: u32 = 12345;
    let big: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    write("big", &big, 0o644, None);
    std::fs::hard_link(p.join("owned"), p.join("owned-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", p.join("dangling")).unwrap();
    let private = p.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::write(private.join("secret"), b"s\n").unwrap();
    std::os::unix::fs::chown(&private, Some(42), Some(42)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o750)).unwrap();
    rootfs
}

/// `tar -C src -cf out .` (numeric owners): what `docker import` takes.
fn tar_dir(src: &Path, out: &Path) {
    ok(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(src)
        .arg("-cf")
        .arg(out)
        .arg("."));
}

/// One file system entry, as compared between trees.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    /// sha256 of a regular file's content.
    hash: Option<Digest>,
    /// A symlink's target.
    target: Option<String>,
    /// mtime (seconds) of regular files.
    mtime: Option<i64>,
}

/// Every entry below `root` by relative path (`""` is the root itself).
fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, path: &Path, out: &mut BTreeMap<String, Node>) {
    let md =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = md.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_file() {
        "file".to_string()
    } else if ft.is_symlink() {
        "symlink".to_string()
    } else if ft.is_char_device() {
        format!("char {}", md.rdev())
    } else if ft.is_block_device() {
        format!("block {}", md.rdev())
    } else if ft.is_fifo() {
        "fifo".to_string()
    } else {
        "socket".to_string()
    };
    let rel = path
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let node = Node {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_file() { md.len() } else { 0 },
        hash: ft
            .is_file()
            .then(|| Digest::sha256(&std::fs::read(path).unwrap())),
        target: ft.is_symlink().then(|| {
            std::fs::read_link(path)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        }),
        mtime: ft.is_file().then(|| md.mtime()),
        kind,
    };
    out.insert(rel, node);
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            walk(root, &p, out);
        }
    }
}

/// The differences between two trees (ignoring the root's own metadata, which no layer
/// carries, and mtimes unless `mtimes`); empty when identical.
fn differences(
    want: &BTreeMap<String, Node>,
    got: &BTreeMap<String, Node>,
    mtimes: bool,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, w) in want {
        match got.get(path) {
            None => diffs.push(format!("missing: /{path} ({w:?})")),
            Some(_) if path.is_empty() => {}
            Some(g) => {
                let (mut w, mut g) = (w.clone(), g.clone());
                if !mtimes {
                    w.mtime = None;
                    g.mtime = None;
                }
                if w != g {
                    diffs.push(format!("differs: /{path}\n    want {w:?}\n    got  {g:?}"));
                }
            }
        }
    }
    for (path, g) in got {
        if !want.contains_key(path) {
            diffs.push(format!("unexpected: /{path} ({g:?})"));
        }
    }
    diffs
}

fn assert_same_tree(
    what: &str,
    want: &BTreeMap<String, Node>,
    got: &BTreeMap<String, Node>,
    mtimes: bool,
) {
    let diffs = differences(want, got, mtimes);
    assert!(
        diffs.is_empty(),
        "{what}: {} difference(s) (showing up to 40):\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn manifest_of(store: &ImageStore, target: &Descriptor) -> Manifest {
    match store.read_manifest(target).unwrap() {
        ManifestKind::Manifest(m) => m,
        ManifestKind::Index(_) => panic!("{}: an index, not a manifest", target.digest),
    }
}

fn config_of(store: &ImageStore, target: &Descriptor) -> ImageConfig {
    let m = manifest_of(store, target);
    ImageConfig::parse(&store.content().read(&m.config.digest).unwrap()).unwrap()
}

/// An image's layers extracted into committed snapshots (by chain ID) and its top
/// chain mounted read-only (a view) on `mountpoint`. Unmounted and the view removed when
/// dropped (the snapshot root goes with the test's temp dir).
struct Unpacked {
    snap: Snapshotter,
    mountpoint: PathBuf,
    mounted: bool,
}

const VIEW: &str = "interop-view";

impl Unpacked {
    fn new(store: &ImageStore, target: &Descriptor, dir: &Path) -> Unpacked {
        let manifest = manifest_of(store, target);
        let config = config_of(store, target);
        let diff_ids = config.rootfs.diff_ids;
        assert_eq!(manifest.layers.len(), diff_ids.len(), "layers vs diff_ids");
        let snap = Snapshotter::open(&dir.join("snapshots")).unwrap();
        let mountpoint = dir.join("merged");
        std::fs::create_dir_all(&mountpoint).unwrap();
        let chain = chain_ids(&diff_ids);
        let mut unpacked = Unpacked {
            snap,
            mountpoint,
            mounted: false,
        };
        for (i, layer) in manifest.layers.iter().enumerate() {
            let name = chain[i].to_string();
            if unpacked.snap.exists(&name) {
                continue;
            }
            let key = format!("extract-{i}");
            let parent = (i > 0).then(|| chain[i - 1].to_string());
            let fs = unpacked.snap.prepare(&key, parent.as_deref()).unwrap();
            let blob = store.content().open_blob(&layer.digest).unwrap();
            let applied = apply_layer(blob, &fs, Some(&layer.digest))
                .unwrap_or_else(|e| panic!("apply layer {i} ({}): {e}", layer.digest));
            assert_eq!(applied.diff_id, diff_ids[i], "diff ID of layer {i}");
            unpacked.snap.commit(&name, &key).unwrap();
        }
        for c in &chain {
            let info = unpacked.snap.stat(&c.to_string()).unwrap();
            assert!(info.is_some(), "snapshot {c} not committed");
        }
        let top = chain.last().map(ToString::to_string);
        unpacked.snap.view(VIEW, top.as_deref()).unwrap();
        unpacked.snap.mount(VIEW, &unpacked.mountpoint).unwrap();
        unpacked.mounted = true;
        unpacked
    }

    fn tree(&self) -> BTreeMap<String, Node> {
        tree(&self.mountpoint)
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = unmount(&self.mountpoint) {
                eprintln!("cleanup: {e}");
            }
        }
        let _ = self.snap.remove(VIEW);
    }
}

/// Removes a path the test made a tool create outside its directories (skopeo's blob
/// info cache under /var/lib/containers), if it did not exist before.
struct RemoveIfNew(Option<PathBuf>);

impl RemoveIfNew {
    fn new(path: &str) -> RemoveIfNew {
        let p = PathBuf::from(path);
        RemoveIfNew((!p.exists()).then_some(p))
    }
}

impl Drop for RemoveIfNew {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// `docker import`s the busybox rootfs (built in `dir`) as `name`; returns the rootfs.
fn docker_import_busybox(docker: &IsolatedDockerd, dir: &Path, name: &str) -> PathBuf {
    let rootfs = busybox_rootfs(dir);
    let tar = dir.join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    let change = format!("CMD {BUSYBOX_CMD_JSON}");
    docker
        .docker_ok(&["import", "--change", &change, tar.to_str().unwrap(), name])
        .unwrap();
    rootfs
}

/// The CMD `docker_import_busybox` gives the image.
const BUSYBOX_CMD_JSON: &str = r#"["/bin/sh","-c","echo busybox"]"#;

fn docker_save(docker: &IsolatedDockerd, image: &str, out: &Path) {
    docker
        .docker_ok(&["save", "-o", out.to_str().unwrap(), image])
        .unwrap();
}

fn docker_inspect(docker: &IsolatedDockerd, image: &str, format: &str) -> String {
    docker
        .docker_ok(&["image", "inspect", "-f", format, image])
        .unwrap()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// 1. docker import + docker save → Pier load → snapshots == the source rootfs

#[test]
fn docker_saved_busybox_unpacks_to_the_source_rootfs() {
    const TEST: &str = "docker_saved_busybox_unpacks_to_the_source_rootfs";
    if !prerequisites(TEST, &["dockerd", "docker", "tar", "busybox"]) {
        return;
    }
    let dir = tmp("load");
    let Some(docker) = dockerd() else { return };
    let image = "pier-interop/busybox:v1";
    let rootfs = docker_import_busybox(&docker, dir.path(), image);
    let archive = dir.path().join("saved.tar");
    docker_save(&docker, image, &archive);
    let docker_id = docker_inspect(&docker, image, "{{.Id}}");
    let docker_layers = docker_inspect(&docker, image, "{{range .RootFS.Layers}}{{.}} {{end}}");
    drop(docker);

    let store = stores(&dir.path().join("store"));
    let loaded = load_archive(&store, std::fs::File::open(&archive).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0].name, Some(r(image)));
    let resolved = store.resolve(image).unwrap();
    assert_eq!(resolved.id.to_string(), docker_id, "image ID");
    let config = config_of(&store, &resolved.target);
    let diff_ids: Vec<String> = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        diff_ids,
        docker_layers.split_whitespace().collect::<Vec<_>>()
    );

    let unpacked = Unpacked::new(&store, &resolved.target, &dir.path().join("unpack"));
    let want = tree(&rootfs);
    // A sanity check of the comparison itself: the metadata-heavy entries are there.
    assert_eq!(want["etc/pier/owned"].uid, 1234);
    assert_eq!(want["etc/pier/suid"].mode, 0o4755);
    assert_eq!(want["tmp"].mode, 0o1777);
    // Directory mtimes are compared too (the layer applier sets them after the
    // directory's children are written), as are those of files; only the root's own
    // metadata is not, since no layer carries it.
    assert_same_tree(
        "Pier's snapshot of the docker-saved image vs the source rootfs",
        &want,
        &unpacked.tree(),
        true,
    );
}

// ---------------------------------------------------------------------------------------
// 2. Pier import + save → docker load + run

#[test]
fn pier_saved_archive_loads_and_runs_in_docker() {
    const TEST: &str = "pier_saved_archive_loads_and_runs_in_docker";
    if !prerequisites(TEST, &["dockerd", "docker", "runc", "tar", "busybox"]) {
        return;
    }
    let dir = tmp("save");
    let rootfs = busybox_rootfs(dir.path());
    let tar = dir.path().join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    let store = stores(&dir.path().join("store"));
    let image = "pier-interop/saved:v1";
    let changes = vec![
        r#"CMD ["/bin/sh","-c","echo pier-ok $PIER_VAR"]"#.to_string(),
        "ENV PIER_VAR=interop".to_string(),
    ];
    import_rootfs(
        &store,
        std::fs::File::open(&tar).unwrap(),
        &changes,
        Some(&r(image)),
    )
    .unwrap();
    let ours = store.resolve(image).unwrap();
    let archive = dir.path().join("pier.tar");
    save_docker_archive(
        &store,
        &[r(image)],
        std::fs::File::create(&archive).unwrap(),
    )
    .unwrap();

    let Some(docker) = dockerd() else { return };
    let out = docker
        .docker_ok(&["load", "-i", archive.to_str().unwrap()])
        .unwrap();
    assert!(out.contains(image), "docker load: {out}");
    assert_eq!(
        docker_inspect(&docker, image, "{{.Id}}"),
        ours.id.to_string(),
        "docker's image ID is Pier's config digest"
    );
    assert_eq!(
        docker_inspect(&docker, image, "{{json .Config.Cmd}}"),
        r#"["/bin/sh","-c","echo pier-ok $PIER_VAR"]"#
    );
    let env = docker_inspect(&docker, image, "{{json .Config.Env}}");
    let env: Vec<String> = serde_json::from_str(&env).unwrap();
    assert!(env.contains(&"PIER_VAR=interop".to_string()), "{env:?}");
    let run = docker
        .docker(&["run", "--rm", "--network", "none", image])
        .unwrap();
    assert_eq!(run.code, Some(0), "{}", run.explain("docker run"));
    assert_eq!(
        run.stdout,
        "pier-ok interop\n",
        "{}",
        run.explain("docker run")
    );
    // The rootfs docker sees is the one Pier imported.
    let out = docker
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "cat",
            "/etc/pier/owned",
        ])
        .unwrap();
    assert_eq!(out.stdout, "owned by 1234:5678\n", "{}", out.explain("cat"));
}

// ---------------------------------------------------------------------------------------
// 3. OCI layouts with skopeo and umoci

fn skopeo(args: &[&str], tmpdir: &Path) -> Result<String, String> {
    // Our own temp dir for big blobs; no system policy.json needed.
    run_ok(
        Command::new("skopeo")
            .env("TMPDIR", tmpdir)
            .arg("--insecure-policy")
            .args(args),
        T,
    )
}

#[test]
fn skopeo_copies_and_inspects_pier_oci_layout() {
    const TEST: &str = "skopeo_copies_and_inspects_pier_oci_layout";
    if !prerequisites(TEST, &["skopeo", "tar", "busybox"]) {
        return;
    }
    let _cache = RemoveIfNew::new("/var/lib/containers");
    let dir = tmp("skopeo");
    let rootfs = busybox_rootfs(dir.path());
    let tar = dir.path().join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    let store = stores(&dir.path().join("store"));
    let image = "pier-interop/oci:v1";
    let target = import_rootfs(
        &store,
        std::fs::File::open(&tar).unwrap(),
        &["CMD [\"/bin/sh\"]".to_string()],
        Some(&r(image)),
    )
    .unwrap();
    let manifest = manifest_of(&store, &target);
    let layout = dir.path().join("layout");
    export_oci_layout(&store, &[r(image)], &layout).unwrap();

    // --preserve-digests: a byte-for-byte copy (by default skopeo gzips uncompressed
    // layers for an OCI destination, which changes the manifest).
    let copy = dir.path().join("copy");
    let src = format!("oci:{}:v1", layout.display());
    let dst = format!("oci:{}:v1", copy.display());
    skopeo(&["copy", "--preserve-digests", &src, &dst], dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let layers: Vec<String> = manifest
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    for (what, at) in [("Pier's layout", &src), ("skopeo's copy", &dst)] {
        let out = skopeo(&["inspect", at], dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["Digest"].as_str(),
            Some(target.digest.to_string().as_str()),
            "{what}: manifest digest: {out}"
        );
        let got: Vec<String> = v["Layers"]
            .as_array()
            .unwrap_or_else(|| panic!("no Layers: {out}"))
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, layers, "{what}: layers");
        assert_eq!(v["Os"].as_str(), Some("linux"), "{out}");
        let config = skopeo(&["inspect", "--config", at], dir.path()).unwrap();
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
        let diff_ids: Vec<String> = config_of(&store, &target)
            .rootfs
            .diff_ids
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    }

    // A default copy (gzip-compressed layers, a new manifest) holds the same image:
    // Pier imports it and unpacks the same tree.
    let gz = dir.path().join("gz");
    let gz_ref = format!("oci:{}:v1", gz.display());
    skopeo(&["copy", &src, &gz_ref], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let fresh = stores(&dir.path().join("fresh-gz"));
    let loaded = import_oci_layout(&fresh, &gz).unwrap();
    assert_eq!(loaded.len(), 1);
    let gz_manifest = manifest_of(&fresh, &loaded[0].target);
    assert!(
        gz_manifest.layers[0].media_type.ends_with("+gzip"),
        "{:?}",
        gz_manifest.layers[0]
    );
    assert_eq!(
        config_of(&fresh, &loaded[0].target).rootfs.diff_ids,
        config_of(&store, &target).rootfs.diff_ids
    );
    let unpacked = Unpacked::new(&fresh, &loaded[0].target, &dir.path().join("unpack"));
    assert_same_tree(
        "skopeo's gzipped copy unpacked by Pier vs the source rootfs",
        &tree(&rootfs),
        &unpacked.tree(),
        true,
    );
    drop(unpacked);

    // And what skopeo wrote loads back into a fresh store, same image.
    let fresh = stores(&dir.path().join("fresh"));
    let loaded = import_oci_layout(&fresh, &copy).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].target.digest, target.digest);
}

#[test]
fn pier_imports_oci_layout_written_by_skopeo_from_docker_save() {
    const TEST: &str = "pier_imports_oci_layout_written_by_skopeo_from_docker_save";
    if !prerequisites(TEST, &["skopeo", "dockerd", "docker", "tar", "busybox"]) {
        return;
    }
    let _cache = RemoveIfNew::new("/var/lib/containers");
    let dir = tmp("skopeo-docker");
    let Some(docker) = dockerd() else { return };
    let image = "pier-interop/skopeo:v1";
    let rootfs = docker_import_busybox(&docker, dir.path(), image);
    let archive = dir.path().join("saved.tar");
    docker_save(&docker, image, &archive);
    let docker_cmd = docker_inspect(&docker, image, "{{json .Config.Cmd}}");
    let docker_layers = docker_inspect(&docker, image, "{{range .RootFS.Layers}}{{.}} {{end}}");
    drop(docker);

    let layout = dir.path().join("layout");
    skopeo(
        &[
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:v1", layout.display()),
        ],
        dir.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let store = stores(&dir.path().join("store"));
    let loaded = import_oci_layout(&store, &layout).unwrap();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    // A bare tag names no image: the caller tags it.
    assert_eq!(loaded[0].name, None);
    store
        .tag(&r("pier-interop/from-skopeo:v1"), &loaded[0].target)
        .unwrap();
    let resolved = store.resolve("pier-interop/from-skopeo:v1").unwrap();
    // skopeo converts Docker's manifest and config to OCI ones (a new config, so a new
    // image ID), and keeps the layers' content: the same diff IDs.
    let theirs = config_of(&store, &resolved.target);
    assert_eq!(docker_cmd, BUSYBOX_CMD_JSON);
    assert_eq!(
        serde_json::to_string(&theirs.config.as_ref().and_then(|c| c.cmd.clone())).unwrap(),
        docker_cmd
    );
    let config = config_of(&store, &resolved.target);
    let diff_ids: Vec<String> = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        diff_ids,
        docker_layers.split_whitespace().collect::<Vec<_>>()
    );
    let unpacked = Unpacked::new(&store, &resolved.target, &dir.path().join("unpack"));
    assert_same_tree(
        "skopeo's OCI layout unpacked by Pier vs the source rootfs",
        &tree(&rootfs),
        &unpacked.tree(),
        true,
    );
}

#[test]
fn pier_imports_oci_layout_written_by_umoci() {
    const TEST: &str = "pier_imports_oci_layout_written_by_umoci";
    if !prerequisites(TEST, &["umoci"]) {
        return;
    }
    let dir = tmp("umoci");
    let layout = dir.path().join("layout");
    let image = format!("{}:t", layout.display());
    let umoci = |args: &[&str]| ok(Command::new("umoci").args(args));
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    // `umoci insert` of Debian 12's umoci (0.4.7) writes layers without the tar footer
    // (and without the last entry's padding): umoci#436, fixed by umoci#534 (0.4.8).
    // GNU tar rejects those ("Unexpected EOF in archive") and so does Pier. unpack and
    // repack write proper layers.
    let bundle = dir.path().join("work");
    // Layer 1: a small tree.
    umoci(&["unpack", "--image", &image, bundle.to_str().unwrap()]);
    let app = bundle.join("rootfs/opt/app");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    std::fs::create_dir_all(app.join("gone-dir/deeper")).unwrap();
    std::fs::write(app.join("hello"), "hello from umoci\n").unwrap();
    std::fs::write(app.join("gone-dir/deeper/f"), "f\n").unwrap();
    std::fs::write(app.join("gone"), "gone\n").unwrap();
    std::fs::write(app.join("sub/mode600"), "private\n").unwrap();
    std::fs::set_permissions(
        app.join("sub/mode600"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("../hello", app.join("sub/link")).unwrap();
    umoci(&["repack", "--image", &image, bundle.to_str().unwrap()]);
    std::fs::remove_dir_all(&bundle).unwrap();
    // Layer 2: a changed file, a deleted file and directory (whiteouts), a new file.
    umoci(&["unpack", "--image", &image, bundle.to_str().unwrap()]);
    std::fs::write(app.join("hello"), "second layer\n").unwrap();
    std::fs::remove_file(app.join("gone")).unwrap();
    std::fs::remove_dir_all(app.join("gone-dir")).unwrap();
    std::fs::write(app.join("sub/new"), "new\n").unwrap();
    umoci(&["repack", "--image", &image, bundle.to_str().unwrap()]);
    umoci(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/opt/app/hello",
    ]);

    // The manifest umoci tagged `t`.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "t")
        .unwrap_or_else(|| panic!("no entry t in {index}"))
        .clone();

    let store = stores(&dir.path().join("store"));
    let loaded = import_oci_layout(&store, &layout).unwrap();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(
        loaded[0].target.digest.to_string(),
        entry["digest"].as_str().unwrap()
    );
    store
        .tag(&r("pier-interop/umoci:t"), &loaded[0].target)
        .unwrap();
    let target = store.resolve("pier-interop/umoci:t").unwrap().target;
    let config = config_of(&store, &target);
    assert_eq!(config.rootfs.diff_ids.len(), 2);
    let manifest = manifest_of(&store, &target);
    assert!(
        manifest
            .layers
            .iter()
            .all(|l| l.media_type.ends_with("+gzip")),
        "{:?}",
        manifest.layers
    );
    assert_eq!(
        config.config.as_ref().and_then(|c| c.cmd.clone()),
        Some(vec!["/opt/app/hello".to_string()])
    );

    // Pier's snapshots vs umoci's own unpacking of the same image.
    let bundle = dir.path().join("bundle");
    umoci(&["unpack", "--image", &image, bundle.to_str().unwrap()]);
    let unpacked = Unpacked::new(&store, &target, &dir.path().join("unpack"));
    let got = unpacked.tree();
    assert_eq!(
        got["opt/app/hello"].hash,
        Some(Digest::sha256(b"second layer\n"))
    );
    assert_eq!(got["opt/app/sub/mode600"].mode, 0o600);
    assert!(!got.contains_key("opt/app/gone"));
    assert!(!got.contains_key("opt/app/gone-dir"));
    assert!(got.contains_key("opt/app/sub/new"));
    assert_same_tree(
        "umoci's image unpacked by Pier vs by umoci",
        &tree(&bundle.join("rootfs")),
        &got,
        true,
    );
}

// ---------------------------------------------------------------------------------------
// 4. Whiteouts: a docker-committed container vs `docker export` of it

/// What the container does to the image's /data.
const CHANGES: &str = "set -e
rm /data/gone.txt
rm -r /data/gone-dir
rm -r /data/opaque; mkdir /data/opaque; echo new > /data/opaque/c
rm /data/file2dir; mkdir /data/file2dir; echo inside > /data/file2dir/x
rm -r /data/dir2link; ln -s /data/opaque /data/dir2link
echo changed > /data/keep/modified
chmod 700 /data/keep
";

/// Paths dockerd's init layer adds to every container (and so to `docker export`) that
/// are not in the container's own changes (and so not in `docker commit`).
const INIT_LAYER: &[&str] = &[
    ".dockerenv",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
    "dev/console",
    "dev/pts",
    "dev/shm",
];

#[test]
fn docker_whiteouts_unpack_like_docker_export() {
    const TEST: &str = "docker_whiteouts_unpack_like_docker_export";
    if !prerequisites(TEST, &["dockerd", "docker", "runc", "tar", "busybox"]) {
        return;
    }
    let dir = tmp("whiteout");
    let Some(docker) = dockerd() else { return };
    let base = "pier-interop/whiteout-base:v1";
    let image = "pier-interop/whiteout:v1";
    // The base image: busybox plus a /data tree for the container to change.
    let rootfs = busybox_rootfs(dir.path());
    let data = rootfs.join("data");
    for d in ["gone-dir/sub", "opaque", "dir2link", "keep"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    for (f, text) in [
        ("gone.txt", "gone"),
        ("gone-dir/a", "a"),
        ("gone-dir/sub/b", "b"),
        ("opaque/a", "old a"),
        ("opaque/b", "old b"),
        ("file2dir", "a file"),
        ("dir2link/x", "x"),
        ("keep/modified", "before"),
        ("keep/untouched", "untouched"),
    ] {
        std::fs::write(data.join(f), text).unwrap();
    }
    let tar = dir.path().join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    docker
        .docker_ok(&["import", tar.to_str().unwrap(), base])
        .unwrap();
    let name = format!("pier-image-whiteout-{}", std::process::id());
    let out = docker
        .docker(&[
            "run",
            "--name",
            &name,
            "--network",
            "none",
            base,
            "sh",
            "-c",
            CHANGES,
        ])
        .unwrap();
    assert_eq!(out.code, Some(0), "{}", out.explain("docker run"));
    docker.docker_ok(&["commit", &name, image]).unwrap();
    let archive = dir.path().join("saved.tar");
    docker_save(&docker, image, &archive);
    let export = dir.path().join("export.tar");
    docker
        .docker_ok(&["export", "-o", export.to_str().unwrap(), &name])
        .unwrap();
    drop(docker);

    let exported = dir.path().join("exported");
    std::fs::create_dir(&exported).unwrap();
    ok(Command::new("tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(&export)
        .arg("-C")
        .arg(&exported));

    let store = stores(&dir.path().join("store"));
    load_archive(&store, std::fs::File::open(&archive).unwrap()).unwrap();
    let target = store.resolve(image).unwrap().target;
    let manifest = manifest_of(&store, &target);
    assert_eq!(manifest.layers.len(), 2, "base layer + the container's");
    // The container's layer does carry whiteouts (else this tests nothing).
    let top = store
        .content()
        .open_blob(&manifest.layers[1].digest)
        .unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(top).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    for w in ["data/.wh.gone.txt", "data/.wh.gone-dir"] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == w),
            "{w} not in the committed layer: {names:?}"
        );
    }

    let unpacked = Unpacked::new(&store, &target, &dir.path().join("unpack"));
    let mut want = tree(&exported);
    let mut got = unpacked.tree();
    for t in [&mut want, &mut got] {
        t.retain(|p, _| {
            !INIT_LAYER
                .iter()
                .any(|i| p == i || p.starts_with(&format!("{i}/")))
        });
    }
    // What the container did, seen through Pier's overlay.
    assert!(!got.contains_key("data/gone.txt"));
    assert!(!got.contains_key("data/gone-dir"));
    assert_eq!(
        got.keys()
            .filter(|p| p.starts_with("data/opaque/"))
            .collect::<Vec<_>>(),
        ["data/opaque/c"]
    );
    assert_eq!(got["data/file2dir"].kind, "dir");
    assert_eq!(got["data/dir2link"].kind, "symlink");
    assert_eq!(got["data/dir2link"].target.as_deref(), Some("/data/opaque"));
    assert_eq!(got["data/keep"].mode, 0o700);
    assert_eq!(
        got["data/keep/modified"].hash,
        Some(Digest::sha256(b"changed\n"))
    );
    // No whiteout device or opaque marker shows through the merged view.
    assert!(got.values().all(|n| !n.kind.starts_with("char")));
    // mtimes: docker export has the container's real ones, the layers Docker's.
    assert_same_tree(
        "Pier's overlay of the committed image vs docker export",
        &want,
        &got,
        false,
    );
}

// ---------------------------------------------------------------------------------------
// The comparison the tests above rely on.

/// A change made to a copy of a tree.
type Mutation = dyn Fn(&Path);

#[test]
fn tree_comparison_sees_every_kind_of_difference() {
    let a = tmp("cmp-a");
    let b = tmp("cmp-b");
    for d in [a.path(), b.path()] {
        std::fs::create_dir(d.join("dir")).unwrap();
        std::fs::write(d.join("dir/file"), "same").unwrap();
        std::os::unix::fs::symlink("target", d.join("link")).unwrap();
    }
    let same = differences(&tree(a.path()), &tree(b.path()), true);
    assert!(same.is_empty(), "{same:?}");
    let mutations: [(&str, &Mutation); 5] = [
        ("content", &|d| {
            std::fs::write(d.join("dir/file"), "diff").unwrap()
        }),
        ("mode", &|d| {
            std::fs::set_permissions(d.join("dir"), std::fs::Permissions::from_mode(0o700)).unwrap()
        }),
        ("type", &|d| {
            std::fs::remove_file(d.join("link")).unwrap();
            std::fs::create_dir(d.join("link")).unwrap();
        }),
        ("target", &|d| {
            std::fs::remove_file(d.join("link")).unwrap();
            std::os::unix::fs::symlink("other", d.join("link")).unwrap();
        }),
        ("extra", &|d| std::fs::write(d.join("new"), "").unwrap()),
    ];
    for (what, mutate) in mutations {
        let c = tmp("cmp-c");
        ok(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", b.path().display()))
            .arg(c.path()));
        assert!(differences(&tree(a.path()), &tree(c.path()), true).is_empty());
        mutate(c.path());
        let d = differences(&tree(a.path()), &tree(c.path()), true);
        assert_eq!(d.len(), 1, "{what}: {d:?}");
    }
}
