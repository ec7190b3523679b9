//! The layer applier: extracts an image layer (tar, tar+gzip, tar+zstd) into a snapshot
//! directory that becomes an overlayfs lower/upper dir.
//!
//! A layer is hostile until proven otherwise. The `tar` crate only *parses* the archive;
//! every file is created here with `*at` system calls relative to a parent directory fd
//! that was resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from the
//! snapshot root, so symlinks (already extracted, or swapped in concurrently) are
//! resolved as if the snapshot were `/` and can never lead outside it.
//!
//! Policies (Docker-compatible where Docker has one):
//! - **Paths**: a leading `/` and `.` components are stripped (`/abs/evil` → `abs/evil`);
//!   `a/../b` is normalised lexically; a `..` that would climb above the root is refused
//!   with an `InvalidData` I/O error mentioning "breakout" (Docker's behaviour). Entries
//!   naming the root itself (`.`, `/`) are skipped.
//! - **Hardlinks**: the link target gets the same normalisation (so `/etc/passwd` means
//!   the snapshot's `etc/passwd`, and `../x` is refused as an "invalid hardlink"); it is
//!   resolved inside the root and must already exist. `linkat` never follows a final symlink.
//! - **Symlinks** are stored verbatim (their targets may point anywhere; they are only
//!   ever resolved inside the root).
//! - **Replacement**: an entry replaces an existing non-directory (or a directory, when
//!   the entry is not a directory, recursively); a directory over a directory merges and
//!   takes the new metadata.
//! - **Whiteouts**: `.wh.<name>` removes `<name>` and creates an overlay whiteout (char
//!   device 0:0); `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory (entries
//!   of this same layer in that directory stay). Other `.wh..wh.*` (aufs metadata) are ignored.
//! - **Metadata**: ownership (header or PAX `uid`/`gid`, optionally shifted), mode
//!   (including setuid/setgid/sticky, applied after chown), mtime (PAX sub-second too;
//!   directories' mtimes are set at the end so children do not disturb them; atime = mtime).
//! - **Xattrs** (PAX `SCHILY.xattr.*`): set with `lsetxattr` on `/proc/self/fd/<parent>/<name>`.
//!   `trusted.overlay.*` from the layer are *dropped* (they would let a layer forge overlay
//!   redirects/metacopy). `EOPNOTSUPP` is ignored everywhere (filesystem without xattrs),
//!   and `EPERM` is ignored for `security.*`/`trusted.*` and on symlinks; other failures
//!   are errors.
//! - **Unsupported** entry types (GNU sparse, ...) are an error; PAX global headers are ignored.
//! - **Failure** of any kind (corrupt/truncated stream, refused entry, digest mismatch)
//!   removes everything extracted, leaving `target` empty. `target` must be an existing,
//!   empty directory; callers should extract into a fresh temporary directory and rename
//!   it into place on success.
//!
//! Requires Linux ≥ 5.6 (`openat2`) and a mounted `/proc`.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of a blob (gzip `1f 8b`, zstd
    /// `28 b5 2f fd`); anything else is taken as an uncompressed tar.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// A reader that decompresses `inner` (multi-member gzip included).
    pub fn decoder<'a>(self, inner: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(inner),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(inner)
                    .map_err(|e| Error::io("opening zstd layer", e))?,
            ),
        })
    }
}

/// Options of [`apply_layer_with`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Shift ownership into a user-namespace range: `(host_base, size)` maps layer id `n`
    /// to `host_base + n`; ids `>= size` are refused.
    pub id_shift: Option<(u32, u32)>,
}

/// The result of applying a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream, read to EOF.
    pub diff_id: Digest,
    /// Digest of the bytes as given (sha256, or the algorithm of `expected`).
    pub digest: Digest,
    /// Number of bytes as given (compressed size).
    pub size: u64,
    /// Number of tar entries applied (whiteouts included, skipped entries not).
    pub files: u64,
}

/// Extracts a layer into `target` (an empty, existing directory that becomes an overlay
/// lower/upper dir). See the module documentation for the policies.
pub fn apply_layer(reader: impl Read, target: &Path, expected: Option<&Digest>) -> Result<Applied> {
    apply_layer_with(reader, target, expected, &ApplyOptions::default())
}

/// [`apply_layer`] with options.
pub fn apply_layer_with(
    reader: impl Read,
    target: &Path,
    expected: Option<&Digest>,
    opts: &ApplyOptions,
) -> Result<Applied> {
    let root = rustix::fs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Error::io(
            format!("opening layer target {}", target.display()),
            e.into(),
        )
    })?;
    if !dir_is_empty(root.as_fd())
        .map_err(|e| Error::io(format!("reading {}", target.display()), e))?
    {
        return Err(Error::Conflict(format!(
            "layer target {} is not empty",
            target.display()
        )));
    }
    let result = extract(reader, root.as_fd(), expected, opts);
    if result.is_err() {
        // Best effort: the error we report is the original one.
        let _ = clear_dir(root.as_fd());
        let _ = rustix::fs::fremovexattr(&root, "trusted.overlay.opaque");
    }
    result
}

fn invalid(context: impl Into<String>, msg: &str) -> Error {
    Error::io(context, io::Error::new(io::ErrorKind::InvalidData, msg))
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Completes a stream that ends inside a 512-byte tar block with zeros, as a tar
/// whose last entry lacks its padding (Debian's umoci 0.4.7 writes such layers; Go's
/// archive/tar, and so Docker, accepts them). Used only when the layer's digest is
/// checked afterwards, so a stream cut short elsewhere still fails as a mismatch.
struct PadToBlock<R> {
    inner: R,
    count: u64,
    padding: u64,
}

impl<R: Read> Read for PadToBlock<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.padding == 0 {
            let n = self.inner.read(buf)?;
            self.count += n as u64;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.padding = (512 - self.count % 512) % 512;
            if self.padding == 0 {
                return Ok(0);
            }
        }
        let n = buf
            .len()
            .min(usize::try_from(self.padding).unwrap_or(usize::MAX));
        buf[..n].fill(0);
        self.padding -= n as u64;
        if self.padding == 0 {
            // Back to EOF: a second pad is never added.
            self.count = 0;
        }
        Ok(n)
    }
}

fn extract(
    reader: impl Read,
    root: BorrowedFd<'_>,
    expected: Option<&Digest>,
    opts: &ApplyOptions,
) -> Result<Applied> {
    let algorithm = expected.map_or(Algorithm::Sha256, |d| d.algorithm());
    let mut raw = HashingReader {
        inner: reader,
        hasher: Hasher::new(algorithm),
        count: 0,
    };
    let mut head = Vec::with_capacity(8);
    (&mut raw)
        .take(8)
        .read_to_end(&mut head)
        .map_err(|e| Error::io("reading layer", e))?;
    let compression = Compression::detect(&head);
    let (diff_id, files) = {
        let chained = io::Cursor::new(head).chain(&mut raw);
        let decoder = compression.decoder(chained)?;
        let mut diff = HashingReader {
            inner: decoder,
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
        };
        let files = {
            let source: Box<dyn Read + '_> = if expected.is_some() {
                Box::new(PadToBlock {
                    inner: &mut diff,
                    count: 0,
                    padding: 0,
                })
            } else {
                Box::new(&mut diff)
            };
            let mut archive = tar::Archive::new(source);
            let mut ex = Extractor {
                root,
                opts,
                dir_times: Vec::new(),
                files: 0,
            };
            ex.run(&mut archive)?;
            ex.finish_dir_times()?;
            ex.files
        };
        // tar stops at the end-of-archive block: hash the padding too.
        io::copy(&mut diff, &mut io::sink())
            .map_err(|e| Error::io("reading layer after end of archive", e))?;
        (diff.hasher.finish(), files)
    };
    io::copy(&mut raw, &mut io::sink())
        .map_err(|e| Error::io("reading layer after end of stream", e))?;
    let digest = raw.hasher.finish();
    if let Some(want) = expected {
        if *want != digest {
            return Err(Error::Mismatch {
                what: "layer digest".into(),
                expected: want.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    Ok(Applied {
        diff_id,
        digest,
        size: raw.count,
        files,
    })
}

/// Normalises a tar path into components below the root; `None` for the root itself.
fn normalize(raw: &[u8], what: &str) -> Result<Vec<OsString>> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    if raw.contains(&0) {
        return Err(invalid(
            format!("layer entry {shown:?}"),
            "NUL byte in path",
        ));
    }
    let mut out: Vec<OsString> = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(invalid(
                        format!("layer entry {shown:?}"),
                        &format!("{what} escapes the layer root (breakout)"),
                    ));
                }
            }
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> PathBuf {
    if comps.is_empty() {
        return PathBuf::from(".");
    }
    let mut bytes = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            bytes.push(b'/');
        }
        bytes.extend_from_slice(c.as_bytes());
    }
    PathBuf::from(OsString::from_vec(bytes))
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Opens directory `comps` resolved inside `root`.
fn open_in_root(root: BorrowedFd<'_>, comps: &[OsString]) -> io::Result<OwnedFd> {
    loop {
        match rustix::fs::openat2(root, join(comps), dir_flags(), Mode::empty(), RESOLVE) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// Opens (creating missing directories, 0755 root-owned) directory `comps` inside `root`.
fn mkdir_all_in_root(root: BorrowedFd<'_>, comps: &[OsString]) -> io::Result<OwnedFd> {
    match open_in_root(root, comps) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        r => return r,
    }
    let mut fd = open_in_root(root, &[])?;
    for i in 0..comps.len() {
        match open_in_root(root, &comps[..=i]) {
            Ok(next) => fd = next,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                match rustix::fs::mkdirat(&fd, &comps[i], Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                fd = open_in_root(root, &comps[..=i])?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(fd)
}

fn dir_is_empty(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes every entry of `dir` (never following symlinks).
fn clear_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    let mut names = Vec::new();
    {
        let mut d = rustix::fs::Dir::read_from(dir)?;
        while let Some(ent) = d.read() {
            let ent = ent?;
            let name = ent.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
    }
    for name in names {
        remove_all_at(dir, &name)?;
    }
    Ok(())
}

/// `rm -rf parent/name` without following symlinks; absent is fine. Contained: it
/// never leaves `parent` (pierd's `docker cp` uses it too).
pub fn remove_all_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        clear_dir(fd.as_fd())?;
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
    }
    Ok(())
}

/// Metadata of one entry, from its header and PAX records.
struct Meta {
    kind: tar::EntryType,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: rustix::fs::Timespec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

struct Extractor<'a> {
    root: BorrowedFd<'a>,
    opts: &'a ApplyOptions,
    dir_times: Vec<(Vec<OsString>, rustix::fs::Timespec)>,
    files: u64,
}

impl Extractor<'_> {
    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<()> {
        let entries = archive
            .entries()
            .map_err(|e| Error::io("reading layer tar", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading layer tar entry", e))?;
            self.entry(entry)?;
        }
        Ok(())
    }

    fn shift(&self, id: u64, what: &str, ctx: &str) -> Result<u32> {
        let id = u32::try_from(id).map_err(|_| invalid(ctx, &format!("{what} out of range")))?;
        match self.opts.id_shift {
            None => Ok(id),
            Some((base, size)) => {
                if id >= size {
                    return Err(invalid(ctx, &format!("{what} {id} outside the id range")));
                }
                base.checked_add(id)
                    .ok_or_else(|| invalid(ctx, &format!("{what} {id} overflows")))
            }
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, ctx: &str) -> Result<Meta> {
        let h = entry.header();
        let bad = |e: io::Error| Error::io(ctx.to_string(), e);
        let kind = h.entry_type();
        let old = h.as_old();
        let mode = lenient(h.mode().map(u64::from), &old.mode).map_err(bad)? & 0o7777;
        let mode = u32::try_from(mode).unwrap_or(0);
        let mut uid = lenient(h.uid(), &old.uid).map_err(bad)?;
        let mut gid = lenient(h.gid(), &old.gid).map_err(bad)?;
        let mut mtime = rustix::fs::Timespec {
            tv_sec: i64::try_from(lenient(h.mtime(), &old.mtime).map_err(bad)?).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(bad)? {
            for ext in pax {
                let ext = ext.map_err(bad)?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| invalid(ctx, "bad PAX numeric record"))
                };
                match key {
                    b"uid" => uid = num()?,
                    b"gid" => gid = num()?,
                    b"mtime" => {
                        if let Some(t) = parse_pax_time(value) {
                            mtime = t;
                        }
                    }
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            xattrs.push((OsStr::from_bytes(name).to_os_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(Meta {
            kind,
            mode,
            uid: self.shift(uid, "uid", ctx)?,
            gid: self.shift(gid, "gid", ctx)?,
            mtime,
            xattrs,
        })
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let ctx = format!("layer entry {:?}", String::from_utf8_lossy(&raw_path));
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let mut comps = normalize(&raw_path, "path")?;
        let Some(name) = comps.pop() else {
            return Ok(()); // the root itself
        };
        let meta = self.meta(&mut entry, &ctx)?;
        let io_err = |what: &str, e: io::Error| Error::io(format!("{ctx}: {what}"), e);
        let parent = mkdir_all_in_root(self.root, &comps).map_err(|e| io_err("parent", e))?;
        let parent = parent.as_fd();

        // Whiteouts.
        if let Some(rest) = name.as_bytes().strip_prefix(b".wh.") {
            if rest == b".wh..opq" {
                let p = proc_path(parent, None);
                rustix::fs::setxattr(&p, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                    .map_err(|e| io_err("setting opaque xattr", e.into()))?;
            } else if rest.starts_with(b".wh.") {
                return Ok(()); // aufs metadata
            } else if rest.is_empty() || rest == b"." || rest == b".." {
                return Err(invalid(ctx, "invalid whiteout"));
            } else {
                let target = OsStr::from_bytes(rest);
                remove_all_at(parent, target).map_err(|e| io_err("removing", e))?;
                rustix::fs::mknodat(
                    parent,
                    target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| io_err("creating whiteout", e.into()))?;
                // The whiteout keeps the entry's mtime, so diffing the snapshot again
                // gives the same layer (the diff writes the device's mtime).
                let times = Timestamps {
                    last_access: meta.mtime,
                    last_modification: meta.mtime,
                };
                rustix::fs::utimensat(parent, target, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io_err("setting whiteout times", e.into()))?;
            }
            self.files += 1;
            return Ok(());
        }

        let existing = match rustix::fs::statat(parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(io_err("stat", e.into())),
        };
        let is_dir = kind == tar::EntryType::Directory;
        if existing.is_some() && !(is_dir && existing == Some(FileType::Directory)) {
            remove_all_at(parent, &name).map_err(|e| io_err("replacing", e))?;
        }
        match kind {
            tar::EntryType::Directory => {
                if existing != Some(FileType::Directory) {
                    rustix::fs::mkdirat(parent, &name, Mode::from_raw_mode(0o700))
                        .map_err(|e| io_err("mkdir", e.into()))?;
                }
                let mut full = comps.clone();
                full.push(name.clone());
                self.dir_times.push((full, meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    parent,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err("create", e.into()))?;
                let mut file = std::fs::File::from(fd);
                let want = entry.size();
                let got = io::copy(&mut entry, &mut file).map_err(|e| io_err("writing", e))?;
                if got != want {
                    return Err(invalid(
                        ctx,
                        &format!("truncated layer: entry has {got} of {want} bytes"),
                    ));
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(ctx.clone(), "symlink without target"))?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), parent, &name)
                    .map_err(|e| io_err("symlink", e.into()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(ctx.clone(), "hardlink without target"))?;
                let mut tcomps = normalize(&target, "hardlink target").map_err(|_| {
                    invalid(
                        ctx.clone(),
                        "invalid hardlink: target escapes the layer root",
                    )
                })?;
                let tname = tcomps
                    .pop()
                    .ok_or_else(|| invalid(ctx.clone(), "invalid hardlink to the root"))?;
                let tparent =
                    open_in_root(self.root, &tcomps).map_err(|e| io_err("hardlink target", e))?;
                rustix::fs::linkat(&tparent, &tname, parent, &name, AtFlags::empty())
                    .map_err(|e| io_err("hardlink", e.into()))?;
                // A hardlink shares the target's inode and metadata.
                self.files += 1;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                rustix::fs::mknodat(
                    parent,
                    &name,
                    ft,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| io_err("mknod", e.into()))?;
            }
            other => {
                return Err(invalid(
                    ctx,
                    &format!("unsupported tar entry type {other:?}"),
                ))
            }
        }
        set_meta(parent, &name, &meta).map_err(|e| io_err("metadata", e))?;
        self.files += 1;
        Ok(())
    }

    fn finish_dir_times(&mut self) -> Result<()> {
        // Deepest first is not needed: utimensat on a dir does not touch its parent.
        for (comps, t) in std::mem::take(&mut self.dir_times) {
            let Some((name, parent)) = comps.split_last() else {
                continue;
            };
            let ctx = || format!("layer entry {:?}: mtime", join(&comps));
            let pfd = match open_in_root(self.root, parent) {
                Ok(fd) => fd,
                // Removed later in the layer (whiteout/replacement): nothing to do.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(Error::io(ctx(), e)),
            };
            let times = Timestamps {
                last_access: t,
                last_modification: t,
            };
            match rustix::fs::utimensat(&pfd, name, &times, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::io(ctx(), e.into())),
            }
        }
        Ok(())
    }
}

/// A numeric header field; an empty one (all NUL/space, as some producers write when a
/// PAX record carries the value) reads as 0, like Go's `archive/tar`.
fn lenient(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        r => r,
    }
}

fn parse_pax_time(v: &[u8]) -> Option<rustix::fs::Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec = secs.parse::<i64>().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let mut tv_nsec = digits.parse::<i64>().ok()?;
    if tv_sec < 0 && tv_nsec > 0 {
        // "-1.5" means -1.5 s, i.e. -2 s + 0.5 s.
        return Some(rustix::fs::Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: 1_000_000_000 - tv_nsec,
        });
    }
    if tv_nsec >= 1_000_000_000 {
        tv_nsec = 0;
    }
    Some(rustix::fs::Timespec { tv_sec, tv_nsec })
}

/// `/proc/self/fd/<dir>[/<name>]`.
fn proc_path(dir: BorrowedFd<'_>, name: Option<&OsStr>) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    if let Some(n) = name {
        p.push(n);
    }
    p
}

/// Ownership, xattrs, mode and mtime of the just-created `parent/name` (never following a
/// final symlink). Directory mtimes are applied later by the caller.
fn set_meta(parent: BorrowedFd<'_>, name: &OsStr, meta: &Meta) -> io::Result<()> {
    let is_symlink = meta.kind == tar::EntryType::Symlink;
    rustix::fs::chownat(
        parent,
        name,
        Some(rustix::fs::Uid::from_raw(meta.uid)),
        Some(rustix::fs::Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    let xpath = proc_path(parent, Some(name));
    for (key, value) in &meta.xattrs {
        let k = key.as_bytes();
        if k.starts_with(b"trusted.overlay.") {
            continue; // never let a layer forge overlay metadata
        }
        match rustix::fs::lsetxattr(&xpath, key.as_os_str(), value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(Errno::PERM)
                if is_symlink || k.starts_with(b"security.") || k.starts_with(b"trusted.") => {}
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("setting xattr {}: {e}", String::from_utf8_lossy(k)),
                ))
            }
        }
    }
    if !is_symlink {
        // chmod after chown (chown clears setuid/setgid). Via an O_PATH fd of the exact
        // inode, so a swapped-in symlink is never followed.
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Err(io::Error::other("entry was replaced by a symlink"));
        }
        rustix::fs::chmod(proc_path(fd.as_fd(), None), Mode::from_raw_mode(meta.mode))?;
    }
    if meta.kind != tar::EntryType::Directory {
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };
        rustix::fs::utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}
