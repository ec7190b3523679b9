//! `COPY` and `ADD`: files from the context (or another stage, or an image) into a
//! step's root.
//!
//! The sources are resolved inside their own root with `openat2(RESOLVE_IN_ROOT)` and
//! turned into a tar stream whose names are the destination paths, owners the
//! `--chown` IDs (else root, as Docker), modes the sources' (or `--chmod`'s) and times
//! the sources'. That stream is extracted into the step's root by
//! [`rootfs_tar::extract`](crate::rootfs_tar::extract), which never leaves the root, so
//! a symlink in the image cannot redirect a copy onto the host. The same stream with
//! times zeroed, hashed, is the step's cache key ([`content_hash`]).
//!
//! `ADD` of a local tar archive (plain, gzip or zstd) extracts it instead, keeping its
//! owners.

use std::ffi::OsStr;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use pier_dockerfile::chmod::Chmod;
use pier_dockerfile::ignore::DockerIgnore;
use pier_image::digest::{Algorithm, Hasher};
use pier_image::layer::Compression;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::BuildError;
use crate::rootfs_tar::{clean, extract, in_root, ExtractOptions};

/// One `COPY`/`ADD`, its values expanded.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// `ADD` (local archives are extracted unless `--unpack=false`).
    pub add: bool,
    /// Paths in the source root, as written (may hold wildcards).
    pub sources: Vec<String>,
    /// The destination, absolute (the working directory joined already), its trailing
    /// `/` kept.
    pub dest: String,
    /// `--chown` resolved to IDs; None keeps root (or an archive's owners).
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<Chmod>,
    /// `--exclude` patterns.
    pub excludes: Option<DockerIgnore>,
    /// `--parents`: keep each source's path below the destination.
    pub parents: bool,
    /// The instruction name for messages (`COPY`, `ADD`).
    pub instruction: &'static str,
}

/// One resolved source.
struct Source {
    /// Its path in the source root, cleaned components.
    comps: Vec<String>,
    fd: OwnedFd,
    stat: rustix::fs::Stat,
}

fn is_dir(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` for one path component: `*`, `?`, `[...]` (with `^`/`!`
/// negation and ranges) and `\` escapes.
fn component_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let (mut star_p, mut star_n) = (None::<usize>, 0usize);
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = Some(p);
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, name[n]) {
                        if matched {
                            p = next;
                            n += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == name[n] => {
                    p += 2;
                    n += 1;
                    continue;
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star_p {
            Some(sp) => {
                p = sp + 1;
                star_n += 1;
                n = star_n;
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// A `[...]` class at `pattern[start]` against `c`: whether it matched, and the index
/// after the class. None for an unterminated class.
fn class_match(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = matches!(pattern.get(i), Some(b'^' | b'!'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() && (first || pattern[i] != b']') {
        first = false;
        let mut lo = pattern[i];
        if lo == b'\\' && i + 1 < pattern.len() {
            i += 1;
            lo = pattern[i];
        }
        let mut hi = lo;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&h| h != b']') {
            hi = pattern[i + 2];
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    if i >= pattern.len() {
        return None;
    }
    Some((matched != negated, i + 1))
}

fn dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// The paths in `root` matching `pattern` (cleaned components), sorted.
fn glob(root: BorrowedFd<'_>, pattern: &[String]) -> Result<Vec<Vec<String>>, BuildError> {
    let mut found: Vec<Vec<String>> = vec![Vec::new()];
    for comp in pattern {
        let mut next = Vec::new();
        for base in &found {
            if !has_wildcard(comp) {
                let mut p = base.clone();
                p.push(comp.clone());
                next.push(p);
                continue;
            }
            let dir = match in_root(root, &base.join("/"), OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(_) => continue,
            };
            let names =
                dir_names(dir.as_fd()).map_err(|e| BuildError::internal("listing sources", e))?;
            for name in names {
                if component_match(comp.as_bytes(), &name) {
                    let mut p = base.clone();
                    p.push(String::from_utf8_lossy(&name).into_owned());
                    next.push(p);
                }
            }
        }
        found = next;
    }
    Ok(found)
}

/// Resolves the sources of `plan` in `root`. `what` names the root in messages.
fn resolve_sources(
    root: BorrowedFd<'_>,
    plan: &CopyPlan,
    from_context: bool,
) -> Result<Vec<Source>, BuildError> {
    let mut out = Vec::new();
    for raw in &plan.sources {
        let comps = clean(raw).0;
        let candidates = if has_wildcard(raw) {
            glob(root, &comps)?
        } else {
            vec![comps]
        };
        let mut any = false;
        for comps in candidates {
            let fd = match in_root(root, &comps.join("/"), OFlags::PATH | OFlags::CLOEXEC) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) if !has_wildcard(raw) => {
                    return Err(BuildError::Failed {
                        message: if from_context {
                            format!(
                                "{} failed: file not found in build context or excluded by .dockerignore: stat {raw}: file does not exist",
                                plan.instruction
                            )
                        } else {
                            format!(
                                "{} failed: stat {raw}: file does not exist",
                                plan.instruction
                            )
                        },
                        code: 1,
                    })
                }
                Err(_) => continue,
            };
            let rel = comps.join("/");
            if plan
                .excludes
                .as_ref()
                .is_some_and(|x| !rel.is_empty() && x.excludes(&rel))
            {
                continue;
            }
            let stat =
                rustix::fs::fstat(&fd).map_err(|e| BuildError::internal("stat source", e))?;
            any = true;
            out.push(Source { comps, fd, stat });
        }
        if !any {
            return Err(BuildError::Failed {
                message: format!(
                    "{} failed: no source files were specified",
                    plan.instruction
                ),
                code: 1,
            });
        }
    }
    Ok(out)
}

/// What a tar entry is made from.
enum Item {
    /// A directory made for the destination (mode 0755).
    NewDir,
    /// A file, directory, symlink or special file of the source root.
    /// An `O_PATH` descriptor of the file itself (a symlink not followed).
    Source { fd: OwnedFd, stat: rustix::fs::Stat },
}

/// Writes the tar of one source into `w`: entries named by destination path (relative
/// to the root), owners and modes as the plan says, times zeroed when `for_hash`.
struct TarWriter<'a, W: Write> {
    builder: tar::Builder<W>,
    plan: &'a CopyPlan,
    for_hash: bool,
}

impl<W: Write> TarWriter<'_, W> {
    fn append(&mut self, dest: &[String], item: &Item) -> io::Result<()> {
        let path = dest.join("/");
        let mut h = tar::Header::new_gnu();
        let (uid, gid) = self.plan.owner.unwrap_or((0, 0));
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        match item {
            Item::NewDir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(0);
                self.builder
                    .append_data(&mut h, format!("{path}/"), io::empty())
            }
            Item::Source { fd, stat } => {
                let kind = FileType::from_raw_mode(stat.st_mode);
                let dir = kind == FileType::Directory;
                let mode = match &self.plan.chmod {
                    Some(c) if kind != FileType::Symlink => c.apply(stat.st_mode & 0o7777, dir),
                    _ => stat.st_mode & 0o7777,
                };
                h.set_mode(mode);
                h.set_mtime(if self.for_hash {
                    0
                } else {
                    stat.st_mtime.max(0) as u64
                });
                match kind {
                    FileType::Directory => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_size(0);
                        self.builder
                            .append_data(&mut h, format!("{path}/"), io::empty())
                    }
                    FileType::RegularFile => {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(stat.st_size as u64);
                        let f = reopen(fd.as_fd())?;
                        self.builder.append_data(
                            &mut h,
                            &path,
                            BufReader::new(f).take(stat.st_size as u64),
                        )
                    }
                    FileType::Symlink => {
                        let target = rustix::fs::readlinkat(fd, "", Vec::new())?;
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        self.builder.append_link(
                            &mut h,
                            &path,
                            OsStr::from_bytes(target.as_bytes()),
                        )
                    }
                    FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                        h.set_entry_type(match kind {
                            FileType::Fifo => tar::EntryType::Fifo,
                            FileType::CharacterDevice => tar::EntryType::Char,
                            _ => tar::EntryType::Block,
                        });
                        h.set_device_major(rustix::fs::major(stat.st_rdev))?;
                        h.set_device_minor(rustix::fs::minor(stat.st_rdev))?;
                        h.set_size(0);
                        self.builder.append_data(&mut h, &path, io::empty())
                    }
                    // Sockets are not copied (Docker skips them too).
                    _ => Ok(()),
                }
            }
        }
    }

    /// A directory's contents, recursively, below `dest`.
    fn append_tree(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &[String],
        dest: &[String],
    ) -> io::Result<()> {
        for name in dir_names(dir)? {
            let name_os = OsStr::from_bytes(&name);
            let name_text = String::from_utf8_lossy(&name).into_owned();
            let mut child_rel = rel.to_vec();
            child_rel.push(name_text.clone());
            if let Some(x) = &self.plan.excludes {
                if x.excludes(&child_rel.join("/")) {
                    continue;
                }
            }
            let stat = rustix::fs::statat(dir, name_os, AtFlags::SYMLINK_NOFOLLOW)?;
            let mut child_dest = dest.to_vec();
            child_dest.push(name_text);
            let fd = rustix::fs::openat(
                dir,
                name_os,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            self.append(&child_dest, &Item::Source { fd, stat })?;
            if is_dir(&stat) {
                let sub = rustix::fs::openat(
                    dir,
                    name_os,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.append_tree(sub.as_fd(), &child_rel, &child_dest)?;
            }
        }
        Ok(())
    }
}

/// Whether the regular file `fd` is an archive `ADD` extracts (tar, perhaps gzip- or
/// zstd-compressed).
fn archive_compression(fd: BorrowedFd<'_>) -> Option<Compression> {
    let file = reopen(fd).ok()?;
    let mut head = [0u8; 512];
    let n = read_full(&file, &mut head).ok()?;
    let compression = Compression::detect(&head[..n]);
    match compression {
        Compression::None => (n >= 262 && &head[257..262] == b"ustar").then_some(compression),
        other => {
            // A compressed file is an archive only if it holds a tar.
            let file = reopen(fd).ok()?;
            let mut inner = other.decoder(file).ok()?;
            let mut head = [0u8; 512];
            let n = read_full(&mut inner, &mut head).ok()?;
            (n >= 262 && &head[257..262] == b"ustar").then_some(other)
        }
    }
}

/// Whether the file at `path` is a tar, perhaps gzip- or zstd-compressed.
pub fn is_tar_stream(path: &std::path::Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| archive_compression(f.as_fd()).is_some())
}

fn read_full(mut r: impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Opens an `O_PATH` descriptor's file for reading.
fn reopen(fd: BorrowedFd<'_>) -> io::Result<std::fs::File> {
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(fd))
}

/// What one source becomes.
enum Operation {
    /// Entries written as a tar and extracted at the root.
    Entries(
        Vec<(Vec<String>, Item)>,
        Option<(OwnedFd, Vec<String>, Vec<String>)>,
    ),
    /// An archive extracted into a directory.
    Archive(OwnedFd, Compression, Vec<String>),
}

/// Plans the operations of `plan`: for each source, what goes where.
fn operations(
    src_root: BorrowedFd<'_>,
    dest_root: Option<BorrowedFd<'_>>,
    plan: &CopyPlan,
    from_context: bool,
) -> Result<Vec<Operation>, BuildError> {
    let sources = resolve_sources(src_root, plan, from_context)?;
    let (dest, dest_slash) = clean(&plan.dest);
    let dest_slash = dest_slash || plan.dest.ends_with('/');
    let several = sources.len() > 1 || plan.sources.iter().any(|s| has_wildcard(s));
    if several && !dest_slash {
        return Err(BuildError::Failed {
            message: format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                plan.instruction
            ),
            code: 1,
        });
    }
    let dest_is_dir = dest_slash
        || dest_root
            .is_some_and(|r| in_root(r, &dest.join("/"), OFlags::PATH | OFlags::DIRECTORY).is_ok());
    let mut ops = Vec::new();
    for src in sources {
        let kind = FileType::from_raw_mode(src.stat.st_mode);
        let base = if plan.parents {
            let mut d = dest.clone();
            let keep = if kind == FileType::Directory {
                src.comps.clone()
            } else {
                src.comps[..src.comps.len().saturating_sub(1)].to_vec()
            };
            d.extend(keep);
            d
        } else {
            dest.clone()
        };
        if plan.add && kind == FileType::RegularFile {
            if let Some(compression) = archive_compression(src.fd.as_fd()) {
                ops.push(Operation::Archive(src.fd, compression, base));
                continue;
            }
        }
        let mut entries = Vec::new();
        let mut tree = None;
        if kind == FileType::Directory {
            entries.push((base.clone(), Item::NewDir));
            tree = Some((src.fd, src.comps.clone(), base));
        } else {
            let target = if dest_is_dir || plan.parents {
                let mut t = base;
                t.push(src.comps.last().cloned().unwrap_or_default());
                t
            } else {
                base
            };
            if let Some((_, parent_dirs)) = target.split_last() {
                entries.push((parent_dirs.to_vec(), Item::NewDir));
            }
            // The named source itself was resolved (a symlink followed), as Docker
            // does for the path a COPY names.
            entries.push((
                target,
                Item::Source {
                    fd: src.fd,
                    stat: src.stat,
                },
            ));
        }
        ops.push(Operation::Entries(entries, tree));
    }
    Ok(ops)
}

/// Writes an operation's entries as a tar into `w`. The directories made for the
/// destination are written only when `dest_root` lacks them.
fn write_entries<W: Write>(
    w: W,
    plan: &CopyPlan,
    entries: &[(Vec<String>, Item)],
    tree: Option<&(OwnedFd, Vec<String>, Vec<String>)>,
    dest_root: Option<BorrowedFd<'_>>,
    for_hash: bool,
) -> io::Result<W> {
    let mut tw = TarWriter {
        builder: tar::Builder::new(w),
        plan,
        for_hash,
    };
    for (dest, item) in entries {
        if let Item::NewDir = item {
            // Each missing component of the directory, made with the plan's owner.
            for depth in 1..=dest.len() {
                let part = &dest[..depth];
                let exists =
                    dest_root.is_some_and(|r| in_root(r, &part.join("/"), OFlags::PATH).is_ok());
                if !exists && !for_hash {
                    tw.append(part, &Item::NewDir)?;
                }
            }
            continue;
        }
        tw.append(dest, item)?;
    }
    if let Some((fd, rel, dest)) = tree {
        let dir = rustix::fs::openat(
            fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        tw.append_tree(dir.as_fd(), rel, dest)?;
    }
    tw.builder.into_inner()
}

/// The hash of what `plan` copies from `src_root` (names, contents, modes, owners):
/// the `COPY`/`ADD` part of a step's cache key.
pub fn content_hash(
    src_root: BorrowedFd<'_>,
    plan: &CopyPlan,
    from_context: bool,
) -> Result<String, BuildError> {
    let ops = operations(src_root, None, plan, from_context)?;
    let mut hasher = HashWriter(Hasher::new(Algorithm::Sha256));
    for op in &ops {
        match op {
            Operation::Entries(entries, tree) => {
                hasher = write_entries(hasher, plan, entries, tree.as_ref(), None, true)
                    .map_err(|e| BuildError::internal("hashing sources", e))?;
            }
            Operation::Archive(fd, _, dest) => {
                hasher
                    .write_all(dest.join("/").as_bytes())
                    .map_err(|e| BuildError::internal("hashing sources", e))?;
                let mut f =
                    reopen(fd.as_fd()).map_err(|e| BuildError::internal("hashing sources", e))?;
                io::copy(&mut f, &mut hasher)
                    .map_err(|e| BuildError::internal("hashing sources", e))?;
            }
        }
    }
    Ok(hasher.0.finish().hex().to_string())
}

/// What `plan` copies, file by file: destination path → a hash of its mode, owners,
/// link target and contents (for `--explain`, to name the files that changed).
pub fn file_hashes(
    src_root: BorrowedFd<'_>,
    plan: &CopyPlan,
    from_context: bool,
) -> Result<std::collections::BTreeMap<String, String>, BuildError> {
    let ops = operations(src_root, None, plan, from_context)?;
    let err = |e: io::Error| BuildError::internal("hashing sources", e);
    let mut out = std::collections::BTreeMap::new();
    for op in &ops {
        let tar_file = tempfile::tempfile().map_err(err)?;
        let mut tar_file = match op {
            Operation::Entries(entries, tree) => {
                write_entries(tar_file, plan, entries, tree.as_ref(), None, true).map_err(err)?
            }
            Operation::Archive(fd, _, dest) => {
                let mut h = HashWriter(Hasher::new(Algorithm::Sha256));
                let mut f = reopen(fd.as_fd()).map_err(err)?;
                io::copy(&mut f, &mut h).map_err(err)?;
                out.insert(
                    format!("/{}", dest.join("/")),
                    h.0.finish().hex().to_string(),
                );
                continue;
            }
        };
        io::Seek::seek(&mut tar_file, io::SeekFrom::Start(0)).map_err(err)?;
        let mut archive = tar::Archive::new(tar_file);
        for entry in archive.entries().map_err(err)? {
            let mut entry = entry.map_err(err)?;
            let h = entry.header().clone();
            let mut hasher = HashWriter(Hasher::new(Algorithm::Sha256));
            let meta = format!(
                "{:o} {} {} {:?} {:?}\n",
                h.mode().unwrap_or(0),
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
                h.entry_type(),
                entry.link_name_bytes().map(|l| l.into_owned())
            );
            hasher.write_all(meta.as_bytes()).map_err(err)?;
            io::copy(&mut entry, &mut hasher).map_err(err)?;
            let path = String::from_utf8_lossy(&entry.path_bytes())
                .trim_end_matches('/')
                .to_string();
            out.insert(format!("/{path}"), hasher.0.finish().hex().to_string());
        }
    }
    Ok(out)
}

struct HashWriter(Hasher);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copies what `plan` names from `src_root` into `dest_root` (blocking).
pub fn copy(
    src_root: BorrowedFd<'_>,
    dest_root: BorrowedFd<'_>,
    plan: &CopyPlan,
    from_context: bool,
) -> Result<(), BuildError> {
    let ops = operations(src_root, Some(dest_root), plan, from_context)?;
    for op in ops {
        match op {
            Operation::Entries(entries, tree) => {
                let (reader, writer) =
                    rustix::pipe::pipe().map_err(|e| BuildError::internal("copying", e))?;
                let opts = ExtractOptions {
                    copy_uid_gid: true,
                    ..ExtractOptions::default()
                };
                let result = std::thread::scope(|s| {
                    let producer = s.spawn(|| {
                        let w = std::io::BufWriter::with_capacity(
                            256 * 1024,
                            std::fs::File::from(writer),
                        );
                        write_entries(w, plan, &entries, tree.as_ref(), Some(dest_root), false)
                            .and_then(|mut w| w.flush())
                    });
                    let mut r = std::fs::File::from(reader);
                    let extracted = extract(dest_root, "/", &mut r, &opts);
                    // Drain, so the producer never blocks on a full pipe.
                    let _ = io::copy(&mut r, &mut io::sink());
                    drop(r);
                    let produced = producer
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("copy thread panicked")));
                    (extracted, produced)
                });
                match result {
                    (Err(e), _) => {
                        return Err(BuildError::Failed {
                            message: format!("{} failed: {e}", plan.instruction),
                            code: 1,
                        })
                    }
                    (Ok(()), Err(e)) => {
                        return Err(BuildError::Failed {
                            message: format!("{} failed: {e}", plan.instruction),
                            code: 1,
                        })
                    }
                    (Ok(()), Ok(())) => {}
                }
            }
            Operation::Archive(fd, compression, dest) => {
                let f = reopen(fd.as_fd())
                    .map_err(|e| BuildError::internal("opening an archive", e))?;
                let reader = compression
                    .decoder(BufReader::with_capacity(256 * 1024, f))
                    .map_err(|e| BuildError::internal("opening an archive", e))?;
                // The archive's directory, made first (with the plan's owner).
                write_dirs(dest_root, &dest, plan)?;
                let opts = ExtractOptions {
                    copy_uid_gid: true,
                    ..ExtractOptions::default()
                };
                extract(dest_root, &format!("/{}", dest.join("/")), reader, &opts).map_err(
                    |e| BuildError::Failed {
                        message: format!("{} failed: {e}", plan.instruction),
                        code: 1,
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// Makes `dest` (and its missing parents) directories in `root`, owned as the plan
/// says.
pub fn write_dirs(
    root: BorrowedFd<'_>,
    dest: &[String],
    plan: &CopyPlan,
) -> Result<(), BuildError> {
    let entries = vec![(dest.to_vec(), Item::NewDir)];
    let mut buf = Vec::new();
    buf = write_entries(buf, plan, &entries, None, Some(root), false)
        .map_err(|e| BuildError::internal("making directories", e))?;
    let opts = ExtractOptions {
        copy_uid_gid: true,
        ..ExtractOptions::default()
    };
    extract(root, "/", &buf[..], &opts).map_err(|e| BuildError::internal("making directories", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_go_filepath_match() {
        assert!(component_match(b"*.txt", b"a.txt"));
        assert!(!component_match(b"*.txt", b"a.txt2"));
        assert!(component_match(b"a?c", b"abc"));
        assert!(component_match(b"[a-c]x", b"bx"));
        assert!(!component_match(b"[^a-c]x", b"bx"));
        assert!(component_match(b"\\*", b"*"));
        assert!(!component_match(b"\\*", b"a"));
        assert!(component_match(b"*", b""));
        assert!(component_match(b"a*b*c", b"aXbYc"));
    }
}
