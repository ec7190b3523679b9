//! `pier load` at the library level: loads a `docker save` archive (or OCI layout tar)
//! into a content store and unpacks every loaded image's layers into overlay snapshots.
//!
//! ```text
//! cargo run --release -p pier-image --example load_unpack -- --data-root DIR load -i IMAGE.tar
//! ```
//!
//! The command line is the one of `pier --data-root DIR load -i FILE`, so that
//! `bench/image-load.sh` can time either. Under `DIR`: `content/` (blobs), `images/` (the
//! image database) and `snapshots/` (one committed snapshot per layer, named by ChainID).
//! `-i -` (or no `-i`) reads the archive from stdin. Prints what it loaded, and with `-v`
//! the time of each phase, to stderr.
//!
//! Layers are unpacked in order, bottom first, one at a time: a snapshot can only be
//! prepared on a committed parent. A layer whose ChainID is already committed is skipped.

use std::error::Error;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use pier_image::archive::load_archive;
use pier_image::content::ContentStore;
use pier_image::image::{
    select_platform, Descriptor, ImageConfig, ImageStore, Manifest, ManifestKind, Platform,
};
use pier_image::layer::apply_layer;
use pier_image::snapshot::{chain_ids, Snapshotter};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const USAGE: &str = "usage: load_unpack --data-root DIR load [-i FILE|-] [-q] [-v]";

struct Args {
    data_root: PathBuf,
    input: Option<PathBuf>,
    quiet: bool,
    verbose: bool,
}

fn parse_args() -> BoxResult<Args> {
    let mut data_root = None;
    let mut input = None;
    let mut quiet = false;
    let mut verbose = false;
    let mut saw_load = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--data-root") => data_root = args.next().map(PathBuf::from),
            Some("load") if !saw_load => saw_load = true,
            Some("-i" | "--input") => input = args.next().map(PathBuf::from),
            Some("-q" | "--quiet") => quiet = true,
            Some("-v" | "--verbose") => verbose = true,
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}").into()),
        }
    }
    let data_root = data_root.ok_or(USAGE)?;
    if !saw_load {
        return Err(USAGE.into());
    }
    let input = input.filter(|p| p.as_os_str() != "-");
    Ok(Args {
        data_root,
        input,
        quiet,
        verbose,
    })
}

/// The image manifest to unpack for `target`: itself, or the host platform's entry of
/// an index.
fn host_manifest(images: &ImageStore, target: &Descriptor) -> BoxResult<Manifest> {
    match images.read_manifest(target)? {
        ManifestKind::Manifest(m) => Ok(m),
        ManifestKind::Index(index) => {
            let desc = select_platform(&index, &Platform::host())
                .ok_or_else(|| format!("{}: no manifest for the host platform", target.digest))?;
            match images.read_manifest(desc)? {
                ManifestKind::Manifest(m) => Ok(m),
                ManifestKind::Index(_) => Err(format!("{}: nested index", desc.digest).into()),
            }
        }
    }
}

/// Unpacks the layers of `manifest` into committed snapshots; returns (layers unpacked,
/// tar entries applied).
fn unpack(
    content: &ContentStore,
    snapshots: &Snapshotter,
    manifest: &Manifest,
) -> BoxResult<(usize, u64)> {
    let config = ImageConfig::parse(&content.read(&manifest.config.digest)?)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(format!(
            "config has {} diff IDs for {} layers",
            diff_ids.len(),
            manifest.layers.len()
        )
        .into());
    }
    let chains = chain_ids(diff_ids);
    let mut parent: Option<String> = None;
    let (mut unpacked, mut files) = (0, 0);
    for ((layer, diff_id), chain) in manifest.layers.iter().zip(diff_ids).zip(&chains) {
        let name = chain.to_string();
        if !snapshots.exists(&name) {
            let key = format!("extract-{}-{name}", std::process::id());
            let dir = snapshots.prepare(&key, parent.as_deref())?;
            let blob = content.open_verified(&layer.content())?;
            let applied = match apply_layer(
                BufReader::with_capacity(1 << 20, blob),
                &dir,
                Some(&layer.digest),
            ) {
                Ok(a) if a.diff_id == *diff_id => a,
                Ok(a) => {
                    let _ = snapshots.remove(&key);
                    return Err(format!(
                        "layer {}: diff ID {} is not {diff_id}",
                        layer.digest, a.diff_id
                    )
                    .into());
                }
                Err(e) => {
                    let _ = snapshots.remove(&key);
                    return Err(e.into());
                }
            };
            snapshots.commit(&name, &key)?;
            unpacked += 1;
            files += applied.files;
        }
        parent = Some(name);
    }
    Ok((unpacked, files))
}

fn run(args: &Args) -> BoxResult<()> {
    let root = &args.data_root;
    let content = ContentStore::open(&root.join("content"))?;
    let images = ImageStore::open(content.clone(), &root.join("images"))?;
    let snapshots = Snapshotter::open(&root.join("snapshots"))?;
    let input: Box<dyn Read> = match &args.input {
        Some(path) => {
            Box::new(File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?)
        }
        None => Box::new(io::stdin().lock()),
    };

    let start = Instant::now();
    let loaded = load_archive(&images, BufReader::with_capacity(1 << 20, input))?;
    let loaded_at = start.elapsed();
    let (mut layers, mut files) = (0, 0);
    for image in &loaded {
        let manifest = host_manifest(&images, &image.target)?;
        let (l, f) = unpack(&content, &snapshots, &manifest)?;
        layers += l;
        files += f;
        if !args.quiet {
            match &image.name {
                Some(name) => eprintln!("Loaded image: {}", name.familiar()),
                None => eprintln!("Loaded image ID: {}", image.target.digest),
            }
        }
    }
    if args.verbose {
        let total = start.elapsed();
        eprintln!(
            "load_archive {:.3}s, unpack {:.3}s ({layers} layers, {files} entries), total {:.3}s",
            loaded_at.as_secs_f64(),
            (total - loaded_at).as_secs_f64(),
            total.as_secs_f64()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load_unpack: {e}");
            ExitCode::FAILURE
        }
    }
}
