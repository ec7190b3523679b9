//! Producing layers: the inverse of [`layer`](crate::layer).
//!
//! - [`diff_upper`]: turns an overlayfs upper directory (a container's changes) into a
//!   Docker layer tar (`docker commit`/`docker export` of changes). Overlay whiteouts
//!   (char device 0:0) become `.wh.<name>` entries, opaque directories
//!   (`trusted.overlay.opaque=y`, or `user.overlay.opaque=y` for `userxattr` mounts) get
//!   a `.wh..wh..opq` entry. Entries are written in a deterministic order: names sorted
//!   bytewise, a directory before its children. Hardlinks (same inode within the upper)
//!   become tar hardlink entries to the first path seen. Xattrs are written as PAX
//!   `SCHILY.xattr.*` records, except `trusted.overlay.*`/`user.overlay.*` (overlay's own
//!   bookkeeping). Timestamps are whole seconds.
//! - [`import_rootfs`]: `docker import`, storing a rootfs tar as a one-layer image with
//!   `--change` instructions applied to its config.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::{
    media_types, ContainerConfig, Descriptor, HealthConfig, History, ImageConfig, ImageStore,
    Manifest, Platform, RootFs,
};
use crate::layer::Compression;
use crate::reference::Reference;

/// What [`diff_upper`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// sha256 of the tar bytes written (the layer's diff ID).
    pub diff_id: Digest,
    /// Number of tar entries written (whiteout and opaque markers included, PAX
    /// extension headers not).
    pub files: u64,
}

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// A writer that hashes (sha256) what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the changes recorded in overlay upper directory `upper` as an uncompressed
/// Docker layer tar to `out`. See the module documentation for the conventions.
pub fn diff_upper(upper: &Path, out: impl Write) -> Result<DiffStats> {
    diff_upper_excluding(upper, out, &[])
}

/// [`diff_upper`] leaving out the entries at the tar paths in `exclude` (relative,
/// `etc/hostname`) and everything below them: what the engine itself made in the
/// upper dir (mount points of its bind-mounted files) is not a change of the
/// container's (`docker commit`).
pub fn diff_upper_excluding(
    upper: &Path,
    out: impl Write,
    exclude: &[PathBuf],
) -> Result<DiffStats> {
    diff_upper_clamped(upper, out, exclude, None)
}

/// [`diff_upper_excluding`] with every entry's mtime at most `clamp_mtime` (seconds
/// since the epoch) when given: a build's `SOURCE_DATE_EPOCH`, as BuildKit's
/// `rewrite-timestamp` clamps the files a build writes.
pub fn diff_upper_clamped(
    upper: &Path,
    out: impl Write,
    exclude: &[PathBuf],
    clamp_mtime: Option<u64>,
) -> Result<DiffStats> {
    let root_meta = fs::symlink_metadata(upper)
        .map_err(|e| Error::io(format!("reading {}", upper.display()), e))?;
    if !root_meta.is_dir() {
        return Err(Error::io(
            format!("diff of {}", upper.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
        ));
    }
    let mut differ = Differ {
        builder: tar::Builder::new(HashingWriter {
            inner: out,
            hasher: Hasher::new(Algorithm::Sha256),
        }),
        links: HashMap::new(),
        files: 0,
        exclude,
        clamp_mtime,
    };
    if is_opaque(upper) {
        differ.append_marker(
            Path::new(OPAQUE_MARKER),
            &root_meta,
            root_meta.mode() & 0o7777,
        )?;
    }
    differ.walk(upper, Path::new(""))?;
    let Differ {
        mut builder, files, ..
    } = differ;
    builder
        .finish()
        .map_err(|e| Error::io("writing layer tar", e))?;
    let hw = builder
        .into_inner()
        .map_err(|e| Error::io("writing layer tar", e))?;
    let mut inner = hw.inner;
    inner
        .flush()
        .map_err(|e| Error::io("writing layer tar", e))?;
    Ok(DiffStats {
        diff_id: hw.hasher.finish(),
        files,
    })
}

struct Differ<'a, W: Write> {
    builder: tar::Builder<HashingWriter<W>>,
    /// (dev, ino) of multiply-linked files already written → their tar path.
    links: HashMap<(u64, u64), PathBuf>,
    files: u64,
    /// Tar paths not to write (with their subtrees).
    exclude: &'a [PathBuf],
    /// The latest mtime an entry may have.
    clamp_mtime: Option<u64>,
}

impl<W: Write> Differ<'_, W> {
    /// Writes the entries below directory `dir` (tar path `rel`), sorted by name.
    fn walk(&mut self, dir: &Path, rel: &Path) -> Result<()> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
            .map(|ent| ent.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let tar_path = rel.join(&name);
            if self.exclude.contains(&tar_path) {
                continue;
            }
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            self.entry(&path, &tar_path, &name, &meta)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, tar_path: &Path, name: &OsStr, meta: &Metadata) -> Result<()> {
        let ft = meta.file_type();
        let ctx = || format!("adding {} to layer", path.display());
        if ft.is_char_device() && meta.rdev() == 0 {
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            return self.append_marker(&tar_path.with_file_name(wh), meta, 0o600);
        }
        let mut header = header_from(meta, self.clamp_mtime);
        let xattrs = read_xattrs(path).map_err(|e| Error::io(ctx(), e))?;
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            self.append_pax(&xattrs).map_err(|e| Error::io(ctx(), e))?;
            self.builder
                .append_data(&mut header, tar_path, io::empty())
                .map_err(|e| Error::io(ctx(), e))?;
            self.files += 1;
            if is_opaque(path) {
                self.append_marker(&tar_path.join(OPAQUE_MARKER), meta, meta.mode() & 0o7777)?;
            }
            return self.walk(path, tar_path);
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| Error::io(ctx(), e))?;
            header.set_entry_type(tar::EntryType::Symlink);
            self.append_pax(&xattrs).map_err(|e| Error::io(ctx(), e))?;
            self.builder
                .append_link(&mut header, tar_path, target)
                .map_err(|e| Error::io(ctx(), e))?;
            self.files += 1;
            return Ok(());
        }
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                let first = first.clone();
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                self.builder
                    .append_link(&mut header, tar_path, first)
                    .map_err(|e| Error::io(ctx(), e))?;
                self.files += 1;
                return Ok(());
            }
            self.links
                .insert((meta.dev(), meta.ino()), tar_path.to_path_buf());
        }
        if ft.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            let file = File::open(path).map_err(|e| Error::io(ctx(), e))?;
            self.append_pax(&xattrs).map_err(|e| Error::io(ctx(), e))?;
            // A file that changes size while being read would corrupt the archive:
            // write exactly the size announced, failing if it shrank.
            let mut data = ExactReader {
                inner: file.take(meta.len()),
                remaining: meta.len(),
            };
            self.builder
                .append_data(&mut header, tar_path, &mut data)
                .map_err(|e| Error::io(ctx(), e))?;
            if data.remaining != 0 {
                return Err(Error::io(
                    ctx(),
                    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while reading"),
                ));
            }
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                // Sockets cannot be archived; Docker skips them too.
                return Ok(());
            };
            header.set_entry_type(kind);
            if kind != tar::EntryType::Fifo {
                let rdev = meta.rdev();
                header
                    .set_device_major(rustix::fs::major(rdev))
                    .map_err(|e| Error::io(ctx(), e))?;
                header
                    .set_device_minor(rustix::fs::minor(rdev))
                    .map_err(|e| Error::io(ctx(), e))?;
            }
            self.append_pax(&xattrs).map_err(|e| Error::io(ctx(), e))?;
            self.builder
                .append_data(&mut header, tar_path, io::empty())
                .map_err(|e| Error::io(ctx(), e))?;
        }
        self.files += 1;
        Ok(())
    }

    /// An empty regular-file entry (whiteout or opaque marker) owned like `meta`, as
    /// Docker writes them: whiteouts 0600, opaque markers with their directory's mode.
    fn append_marker(&mut self, tar_path: &Path, meta: &Metadata, mode: u32) -> Result<()> {
        let mut header = header_from(meta, self.clamp_mtime);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(mode);
        header.set_size(0);
        self.builder
            .append_data(&mut header, tar_path, io::empty())
            .map_err(|e| Error::io(format!("adding {} to layer", tar_path.display()), e))?;
        self.files += 1;
        Ok(())
    }

    /// A PAX extended header carrying `SCHILY.xattr.*` records, for the next entry.
    fn append_pax(&mut self, xattrs: &[(OsString, Vec<u8>)]) -> io::Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (name, value) in xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name.as_bytes());
            pax_record(&mut data, &key, value);
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_path("././@PaxHeader")?;
        header.set_cksum();
        self.builder.append(&header, data.as_slice())
    }
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A GNU header with mode, ownership and mtime of `meta` (at most `clamp_mtime`).
fn header_from(meta: &Metadata, clamp_mtime: Option<u64>) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    header.set_mtime(clamp_mtime.map_or(mtime, |c| mtime.min(c)));
    header.set_size(0);
    header
}

/// Reads exactly what its `Take` allows and records how much was missing.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn is_opaque(path: &Path) -> bool {
    OPAQUE_XATTRS.iter().any(|name| {
        let mut buf = [0u8; 8];
        matches!(rustix::fs::lgetxattr(path, *name, &mut buf[..]), Ok(n) if &buf[..n] == b"y")
    })
}

/// The xattrs of `path` (not following symlinks) worth archiving, sorted by name.
fn read_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut list = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut list[..])?;
    list.truncate(n);
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let value = match rustix::fs::lgetxattr_query(path, name) {
            Ok(len) => {
                let mut value = vec![0u8; len];
                let n = rustix::fs::lgetxattr(path, name, &mut value[..])?;
                value.truncate(n);
                value
            }
            // Removed since it was listed.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        out.push((name.to_os_string(), value));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// A reader that hashes (sha256) what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `docker import`: stores `source` (a rootfs tar, uncompressed, gzip or zstd) as the
/// single layer of a new image, with a config for the host platform and the `--change`
/// instructions in `changes` applied (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`,
/// `LABEL`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`, `ONBUILD`). Stores the OCI manifest, tags it
/// as `reference` if given, and returns the manifest's descriptor.
///
/// The changes are validated before anything is stored; an unknown instruction fails
/// with Docker's message `<instruction> is not a valid change command`.
pub fn import_rootfs(
    store: &ImageStore,
    source: impl Read,
    changes: &[String],
    reference: Option<&Reference>,
) -> Result<Descriptor> {
    let mut container = ContainerConfig::default();
    apply_changes(&mut container, changes)?;

    // Every blob is leased until the image is tagged, so a concurrent GC cannot remove
    // it; the lease expires by itself should this process die.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let lease = format!(
        "import-{}-{}-{}",
        std::process::id(),
        now.as_nanos(),
        LEASE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let content = store.content();
    content.create_lease_expiring(&lease, LEASE_TTL)?;
    let result = import_leased(store, source, container, reference, &lease);
    // Best effort: an expired lease is removed by the next GC anyway.
    let _ = content.delete_lease(&lease);
    result
}

static LEASE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

fn import_leased(
    store: &ImageStore,
    source: impl Read,
    container: ContainerConfig,
    reference: Option<&Reference>,
    lease: &str,
) -> Result<Descriptor> {
    let content = store.content();
    let mut writer = content.writer(None)?;
    writer.set_lease(lease);
    let mut source = source;
    io::copy(&mut source, &mut writer).map_err(|e| Error::io("storing imported rootfs", e))?;
    let blob = writer.commit()?;

    // The diff ID: sha256 of the decompressed stream, which must be a valid tar.
    let mut file = content.open_verified(&blob)?;
    let mut head = Vec::with_capacity(8);
    (&mut file)
        .take(8)
        .read_to_end(&mut head)
        .map_err(|e| Error::io("reading imported layer", e))?;
    let compression = Compression::detect(&head);
    let chained = io::Cursor::new(head).chain(file);
    let decoder = compression.decoder(chained)?;
    let mut diff = HashingReader {
        inner: decoder,
        hasher: Hasher::new(Algorithm::Sha256),
    };
    {
        let mut archive = tar::Archive::new(&mut diff);
        let entries = archive
            .entries()
            .map_err(|e| Error::io("reading imported layer", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::io("reading imported layer", e))?;
            io::copy(&mut entry, &mut io::sink())
                .map_err(|e| Error::io("reading imported layer", e))?;
        }
    }
    io::copy(&mut diff, &mut io::sink()).map_err(|e| Error::io("reading imported layer", e))?;
    let diff_id = diff.hasher.finish();

    let layer_type = match compression {
        Compression::None => media_types::OCI_LAYER,
        Compression::Gzip => media_types::OCI_LAYER_GZIP,
        Compression::Zstd => media_types::OCI_LAYER_ZSTD,
    };
    let platform = Platform::host();
    let created = crate::time::now_rfc3339();
    let config = ImageConfig {
        created: Some(created.clone()),
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        config: Some(container),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(created),
            comment: Some("Imported from -".to_string()),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    let layers = vec![Descriptor::new(layer_type, blob.digest, blob.size)];
    store_image(store, &config, layers, reference, lease)
}

/// Stores an image made of `config` and `layers` (already in the content store): the
/// config blob and an OCI manifest, both under `lease`, then tags it as `reference`
/// or keeps it as a dangling image. The manifest's descriptor.
pub(crate) fn store_image(
    store: &ImageStore,
    config: &ImageConfig,
    layers: Vec<Descriptor>,
    reference: Option<&Reference>,
    lease: &str,
) -> Result<Descriptor> {
    let (desc, _) = write_image(store, config, layers, lease)?;
    match reference {
        Some(reference) => store.tag(reference, &desc).map(|_| ())?,
        None => store.add_dangling(std::slice::from_ref(&desc))?,
    }
    Ok(desc)
}

/// Writes an image's config blob and an OCI manifest of `layers` (already in the
/// content store), both under `lease`, without recording the image: the manifest's
/// descriptor and the image ID (the config's digest).
pub(crate) fn write_image(
    store: &ImageStore,
    config: &ImageConfig,
    layers: Vec<Descriptor>,
    lease: &str,
) -> Result<(Descriptor, Digest)> {
    let content = store.content();
    let config_bytes = serde_json::to_vec(config)
        .map_err(|e| Error::io("encoding image config", io::Error::other(e)))?;
    let config_id = Digest::sha256(&config_bytes);
    content.add_to_lease(lease, &config_id)?;
    let config_blob = content.put(&config_bytes, None)?;
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
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| Error::io("encoding image manifest", io::Error::other(e)))?;
    content.add_to_lease(lease, &Digest::sha256(&manifest_bytes))?;
    let (desc, _) = store.put_manifest(&manifest_bytes, Some(media_types::OCI_MANIFEST))?;
    Ok((desc, config_id))
}

/// An invalid `--change`: Docker answers 400 with the bare message.
fn invalid_change(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// Applies `docker import/commit --change` instructions to `config`, in order.
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for change in changes {
        let line = change.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instr, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i, r.trim()),
            None => (line, ""),
        };
        let instr = instr.to_ascii_lowercase();
        match instr.as_str() {
            "cmd" => {
                config.cmd = Some(command_form(rest));
                cmd_set = true;
            }
            "entrypoint" => {
                config.entrypoint = Some(command_form(rest));
                if !cmd_set {
                    config.cmd = None;
                }
            }
            "env" => {
                let env = config.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(rest, "ENV")? {
                    let prefix = format!("{k}=");
                    let var = format!("{k}={v}");
                    match env.iter_mut().find(|e| e.starts_with(&prefix) || **e == k) {
                        Some(e) => *e = var,
                        None => env.push(var),
                    }
                }
            }
            "label" => {
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in key_values(rest, "LABEL")? {
                    labels.insert(k, v);
                }
            }
            "workdir" => {
                if rest.is_empty() {
                    return Err(invalid_change("WORKDIR requires exactly one argument"));
                }
                let base = config.working_dir.as_deref().unwrap_or("/");
                config.working_dir = Some(clean_path(&if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    format!("{base}/{rest}")
                }));
            }
            "user" => {
                if rest.is_empty() {
                    return Err(invalid_change("USER requires exactly one argument"));
                }
                config.user = Some(rest.to_string());
            }
            "expose" => {
                if rest.is_empty() {
                    return Err(invalid_change("EXPOSE requires at least one argument"));
                }
                let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for spec in rest.split_whitespace() {
                    for port in expand_port(spec)? {
                        ports.insert(port, Value::Object(Default::default()));
                    }
                }
            }
            "volume" => {
                let list = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(v) if rest.starts_with('[') => v,
                    _ => rest.split_whitespace().map(str::to_string).collect(),
                };
                if list.is_empty() {
                    return Err(invalid_change("VOLUME requires at least one argument"));
                }
                let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
                for v in list {
                    if v.trim().is_empty() {
                        return Err(invalid_change(
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    volumes.insert(v, Value::Object(Default::default()));
                }
            }
            "stopsignal" => {
                if rest.is_empty() {
                    return Err(invalid_change("STOPSIGNAL requires exactly one argument"));
                }
                config.stop_signal = Some(rest.to_string());
            }
            "healthcheck" => config.healthcheck = Some(healthcheck(rest)?),
            "onbuild" => {
                if rest.is_empty() {
                    return Err(invalid_change("ONBUILD requires at least one argument"));
                }
                config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(rest.to_string());
            }
            _ => {
                return Err(invalid_change(format!(
                    "{instr} is not a valid change command"
                )))
            }
        }
    }
    Ok(())
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
/// [--start-interval=D] [--retries=N] CMD <command>` (durations in Go syntax).
fn healthcheck(rest: &str) -> Result<HealthConfig> {
    let mut rest = rest.trim();
    if rest.eq_ignore_ascii_case("none") {
        return Ok(HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..HealthConfig::default()
        });
    }
    let mut hc = HealthConfig::default();
    while let Some(flag) = rest.strip_prefix("--") {
        let (word, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (name, value) = word
            .split_once('=')
            .ok_or_else(|| invalid_change(format!("flag --{word} requires a value")))?;
        match name {
            "interval" => hc.interval = Some(health_duration(name, value)?),
            "timeout" => hc.timeout = Some(health_duration(name, value)?),
            "start-period" => hc.start_period = Some(health_duration(name, value)?),
            "start-interval" => hc.start_interval = Some(health_duration(name, value)?),
            "retries" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| invalid_change(format!("invalid retries value {value:?}")))?;
                if n < 0 {
                    return Err(invalid_change("--retries cannot be negative"));
                }
                hc.retries = Some(n);
            }
            _ => return Err(invalid_change(format!("unknown flag: --{name}"))),
        }
        rest = tail.trim_start();
    }
    let (kind, cmd) = rest
        .split_once(char::is_whitespace)
        .map(|(k, c)| (k, c.trim()))
        .unwrap_or((rest, ""));
    if !kind.eq_ignore_ascii_case("cmd") {
        return Err(invalid_change(format!(
            "Unknown type \"{}\" in HEALTHCHECK (try CMD)",
            kind.to_ascii_uppercase()
        )));
    }
    if cmd.is_empty() {
        return Err(invalid_change("Missing command after HEALTHCHECK CMD"));
    }
    let exec = cmd
        .starts_with('[')
        .then(|| serde_json::from_str::<Vec<String>>(cmd).ok())
        .flatten();
    let test = match exec {
        Some(args) => std::iter::once("CMD".to_string()).chain(args).collect(),
        None => vec!["CMD-SHELL".to_string(), cmd.to_string()],
    };
    hc.test = Some(test);
    Ok(hc)
}

/// A healthcheck duration flag in nanoseconds: Go duration syntax, 0 or at least 1ms.
fn health_duration(flag: &str, value: &str) -> Result<i64> {
    let ns = crate::time::parse_go_duration(value)
        .filter(|_| !value.starts_with(['-', '+']))
        .ok_or_else(|| invalid_change(format!("time: invalid duration \"{value}\"")))?;
    if ns != 0 && ns < 1_000_000 {
        return Err(invalid_change(format!(
            "Interval \"{flag}\" cannot be less than 1ms"
        )));
    }
    Ok(ns)
}

/// JSON (exec) form if `rest` is a JSON array of strings, else shell form.
fn command_form(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()]
}

/// `k=v k2="v 2"` pairs, or the legacy `k v...` form (one pair).
fn key_values(rest: &str, what: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(rest);
    let Some(first) = words.first() else {
        return Err(invalid_change(format!(
            "{what} requires at least one argument"
        )));
    };
    if !first.contains('=') {
        // Legacy form: `ENV key value with spaces`.
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((rest, ""));
        if v.is_empty() {
            return Err(invalid_change(format!("{what} must have two arguments")));
        }
        return Ok(vec![(k.to_string(), v.to_string())]);
    }
    let mut out = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(invalid_change(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            )));
        };
        if k.is_empty() {
            return Err(invalid_change(format!("{what} names can not be blank")));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Splits on unquoted whitespace, removing quotes (`"..."`, `'...'`) and `\` escapes.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// `80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]`, ... (ranges expanded).
fn expand_port(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid_change(format!("invalid proto: {proto}")));
    }
    let parse = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .map_err(|_| invalid_change(format!("invalid containerPort: {ports}")))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(invalid_change(format!("invalid containerPort: {ports}")));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Lexically cleans an absolute path (`/a/./b/../c/` → `/a/c`).
fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths() {
        let mut out = Vec::new();
        pax_record(&mut out, b"a", b"b");
        assert_eq!(out, b"6 a=b\n");
        let mut out = Vec::new();
        pax_record(&mut out, b"k", b"xxxxx");
        assert_eq!(out, b"11 k=xxxxx\n");
        for n in 0..300 {
            let mut out = Vec::new();
            pax_record(&mut out, b"key", &vec![b'x'; n]);
            let digits = out.iter().position(|b| *b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&out[..digits])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, out.len(), "value length {n}");
        }
    }

    #[test]
    fn healthchecks_and_durations() {
        let hc = healthcheck("none").unwrap();
        assert_eq!(hc.test.unwrap(), vec!["NONE"]);
        let hc = healthcheck("--timeout=3s CMD curl -f http://localhost/").unwrap();
        assert_eq!(
            hc.test.unwrap(),
            vec!["CMD-SHELL", "curl -f http://localhost/"]
        );
        assert_eq!(hc.timeout, Some(3_000_000_000));
        assert!(healthcheck("--interval=1us CMD x").is_err());
        assert!(healthcheck("--bogus=1 CMD x").is_err());
        assert_eq!(
            healthcheck("RUN x").unwrap_err().to_string(),
            "Unknown type \"RUN\" in HEALTHCHECK (try CMD)"
        );
    }

    #[test]
    fn entrypoint_clears_cmd_unless_set_in_changes() {
        let mut c = ContainerConfig {
            cmd: Some(vec!["old".into()]),
            ..ContainerConfig::default()
        };
        apply_changes(&mut c, &["ENTRYPOINT [\"/e\"]".into()]).unwrap();
        assert_eq!(c.cmd, None);
        apply_changes(&mut c, &["CMD x".into(), "ENTRYPOINT y".into()]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "x"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "y"]);
        let mut c = ContainerConfig::default();
        apply_changes(&mut c, &["ENV A 1 2".into(), "LABEL \"a b\"=c".into()]).unwrap();
        assert_eq!(c.env.as_deref().unwrap(), ["A=1 2"]);
        assert_eq!(c.labels.as_ref().unwrap()["a b"], "c");
        assert!(apply_changes(&mut c, &["ENV".into()]).is_err());
        assert!(apply_changes(&mut c, &["LABEL a=1 b".into()]).is_err());
    }

    #[test]
    fn excluded_paths_and_their_subtrees_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        fs::create_dir_all(upper.join("etc/sub")).unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        fs::write(upper.join("etc/sub/x"), "x").unwrap();
        fs::write(upper.join("keep"), "k").unwrap();
        let names = |exclude: &[PathBuf]| -> Vec<String> {
            let mut out = Vec::new();
            let stats = diff_upper_excluding(upper, &mut out, exclude).unwrap();
            let mut archive = tar::Archive::new(out.as_slice());
            let names: Vec<String> = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            assert_eq!(stats.files as usize, names.len());
            names
        };
        assert_eq!(
            names(&[]),
            ["etc", "etc/hosts", "etc/sub", "etc/sub/x", "keep"]
        );
        assert_eq!(
            names(&[PathBuf::from("etc/hosts"), PathBuf::from("etc/sub")]),
            ["etc", "keep"]
        );
        assert_eq!(names(&[PathBuf::from("etc")]), ["keep"]);
        // Nothing left: an empty layer (only the end-of-archive blocks).
        let mut out = Vec::new();
        let stats = diff_upper_excluding(
            upper,
            &mut out,
            &[PathBuf::from("etc"), PathBuf::from("keep")],
        )
        .unwrap();
        assert_eq!(stats.files, 0);
        assert_eq!(
            stats.diff_id.to_string(),
            crate::service::commit::EMPTY_LAYER_DIFF_ID
        );
    }

    #[test]
    fn words_and_ports() {
        assert_eq!(
            split_words(r#"a=1 b="x y" c='z'"#),
            vec!["a=1", "b=x y", "c=z"]
        );
        assert_eq!(
            expand_port("8000-8002/udp").unwrap(),
            vec!["8000/udp", "8001/udp", "8002/udp"]
        );
        assert!(expand_port("abc").is_err());
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
    }
}
