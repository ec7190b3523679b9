//! `pier commit` at the library level, for `bench/layer-commit.sh`: a container's
//! changes (an overlay upper dir) become a new image layer.
//!
//! ```text
//! commit_bench setup  --data-root DIR --rootfs-tar BASE.tar --mount MNT
//! commit_bench commit --data-root DIR [--unpack]
//! commit_bench reset  --data-root DIR
//! ```
//!
//! - `setup` imports `BASE.tar` as image `pierbench-base` (`diff::import_rootfs`), unpacks
//!   its layer into a committed snapshot, prepares the container's active snapshot on it
//!   and mounts the overlay at `MNT`. The caller makes its changes through `MNT` and
//!   unmounts it (`umount MNT`), as a container that exited leaves it.
//! - `commit` is what is timed: `diff::diff_upper` of the container's upper dir streamed
//!   into a content-store blob (sha256 on the way; the layer is uncompressed, so its
//!   digest is its diffID), then a config (the base config plus the diffID and a
//!   history entry) and an OCI manifest are stored and tagged `pierbench-committed`.
//!   With `--unpack` the new layer is also applied into a committed snapshot on top of
//!   the base's (what Docker's layer store does with a committed layer, and what a
//!   container started from the new image needs).
//! - `reset` undoes `commit`: untags, removes committed snapshots other than the base's,
//!   and garbage-collects the content store.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use pier_image::content::ContentStore;
use pier_image::diff::{diff_upper, import_rootfs};
use pier_image::image::{
    media_types, Descriptor, History, ImageConfig, ImageStore, Manifest, ManifestKind,
};
use pier_image::layer::apply_layer;
use pier_image::reference::Reference;
use pier_image::snapshot::{chain_id, Kind, Snapshotter};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const USAGE: &str = "usage: commit_bench setup --data-root DIR --rootfs-tar TAR --mount MNT
       commit_bench commit --data-root DIR [--unpack] [-v]
       commit_bench reset --data-root DIR";
const BASE: &str = "pierbench-base:latest";
const COMMITTED: &str = "pierbench-committed:latest";
const CONTAINER_KEY: &str = "pierbench-container";
const UNPACK_KEY: &str = "pierbench-unpack";

struct Stores {
    content: ContentStore,
    images: ImageStore,
    snapshots: Snapshotter,
}

fn open(root: &Path) -> BoxResult<Stores> {
    let content = ContentStore::open(&root.join("content"))?;
    let images = ImageStore::open(content.clone(), &root.join("images"))?;
    let snapshots = Snapshotter::open(&root.join("snapshots"))?;
    Ok(Stores {
        content,
        images,
        snapshots,
    })
}

/// The base image's manifest and config.
fn base_image(s: &Stores) -> BoxResult<(Manifest, ImageConfig)> {
    let image = s.images.get(&Reference::parse(BASE)?)?;
    let ManifestKind::Manifest(manifest) = s.images.read_manifest(&image.target)? else {
        return Err("base image is an index".into());
    };
    let config = ImageConfig::parse(&s.content.read(&manifest.config.digest)?)?;
    Ok((manifest, config))
}

fn setup(s: &Stores, rootfs_tar: &Path, mount: &Path) -> BoxResult<()> {
    let tar = File::open(rootfs_tar).map_err(|e| format!("open {}: {e}", rootfs_tar.display()))?;
    import_rootfs(
        &s.images,
        BufReader::with_capacity(1 << 20, tar),
        &[],
        Some(&Reference::parse(BASE)?),
    )?;
    let (manifest, config) = base_image(s)?;
    let [layer] = manifest.layers.as_slice() else {
        return Err("the imported base image should have one layer".into());
    };
    let base_chain = chain_id(&config.rootfs.diff_ids).to_string();
    let key = "pierbench-extract";
    let dir = s.snapshots.prepare(key, None)?;
    let blob = s.content.open_verified(&layer.content())?;
    apply_layer(
        BufReader::with_capacity(1 << 20, blob),
        &dir,
        Some(&layer.digest),
    )?;
    s.snapshots.commit(&base_chain, key)?;
    s.snapshots.prepare(CONTAINER_KEY, Some(&base_chain))?;
    s.snapshots.mount(CONTAINER_KEY, mount)?;
    Ok(())
}

fn commit(s: &Stores, unpack: bool, verbose: bool) -> BoxResult<()> {
    let start = Instant::now();
    let (base_manifest, base_config) = base_image(s)?;
    let upper = s.snapshots.fs_path(CONTAINER_KEY)?;

    // The layer: the upper dir as a tar, straight into the content store.
    let mut writer = s.content.writer(None)?;
    let stats = diff_upper(&upper, &mut writer)?;
    let blob = writer.commit()?;
    if blob.digest != stats.diff_id {
        return Err(format!("blob {} is not diff ID {}", blob.digest, stats.diff_id).into());
    }
    let diffed = start.elapsed();

    // The image: base config + the new diffID, base layers + the new layer.
    let mut config = base_config;
    config.rootfs.diff_ids.push(stats.diff_id.clone());
    config.history.push(History {
        created_by: Some("commit_bench".to_string()),
        comment: Some(format!("{} entries", stats.files)),
        ..History::default()
    });
    let config_blob = s.content.put(&serde_json::to_vec(&config)?, None)?;
    let mut layers = base_manifest.layers;
    layers.push(Descriptor::new(
        media_types::OCI_LAYER,
        blob.digest.clone(),
        blob.size,
    ));
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: Descriptor::new(
            media_types::OCI_CONFIG,
            config_blob.digest,
            config_blob.size,
        ),
        layers,
        subject: None,
        annotations: None,
        extra: BTreeMap::new(),
    };
    let (desc, _) = s.images.put_manifest(
        &serde_json::to_vec(&manifest)?,
        Some(media_types::OCI_MANIFEST),
    )?;
    s.images.tag(&Reference::parse(COMMITTED)?, &desc)?;

    if unpack {
        let diff_ids = &config.rootfs.diff_ids;
        let parent = chain_id(&diff_ids[..diff_ids.len() - 1]).to_string();
        let name = chain_id(diff_ids).to_string();
        let dir = s.snapshots.prepare(UNPACK_KEY, Some(&parent))?;
        let file = s.content.open_verified(&blob)?;
        if let Err(e) = apply_layer(
            BufReader::with_capacity(1 << 20, file),
            &dir,
            Some(&blob.digest),
        ) {
            let _ = s.snapshots.remove(UNPACK_KEY);
            return Err(e.into());
        }
        s.snapshots.commit(&name, UNPACK_KEY)?;
    }
    if verbose {
        eprintln!(
            "layer {} ({} bytes, {} entries): diff {:.3}s, total {:.3}s",
            blob.digest,
            blob.size,
            stats.files,
            diffed.as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn reset(s: &Stores) -> BoxResult<()> {
    match s.images.untag(&Reference::parse(COMMITTED)?) {
        Ok(()) | Err(pier_image::Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let (_, config) = base_image(s)?;
    let base_chain = chain_id(&config.rootfs.diff_ids).to_string();
    for info in s.snapshots.list()? {
        let stale_unpack = info.name == UNPACK_KEY;
        if stale_unpack || (info.kind == Kind::Committed && info.name != base_chain) {
            s.snapshots.remove(&info.name)?;
        }
    }
    s.content.gc(&s.images.roots()?)?;
    Ok(())
}

fn run() -> BoxResult<()> {
    let mut args = std::env::args_os().skip(1);
    let cmd = args.next().ok_or(USAGE)?;
    let (mut root, mut tar, mut mount) = (None, None, None);
    let (mut unpack, mut verbose) = (false, false);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--data-root") => root = args.next().map(PathBuf::from),
            Some("--rootfs-tar") => tar = args.next().map(PathBuf::from),
            Some("--mount") => mount = args.next().map(PathBuf::from),
            Some("--unpack") => unpack = true,
            Some("-v" | "--verbose") => verbose = true,
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}").into()),
        }
    }
    let stores = open(&root.ok_or(USAGE)?)?;
    match cmd.to_str() {
        Some("setup") => setup(&stores, &tar.ok_or(USAGE)?, &mount.ok_or(USAGE)?),
        Some("commit") => commit(&stores, unpack, verbose),
        Some("reset") => reset(&stores),
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("commit_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
