//! `pier cp`: copies between a container and the local filesystem through
//! `HEAD`/`GET`/`PUT /containers/{id}/archive`, with the docker CLI's semantics for
//! where things land (`pkg/archive` `CopyInfo`/`PrepareArchiveCopy`): a trailing `/`
//! asserts a directory, `dir/.` means the directory's contents, an existing
//! directory destination receives the source under its own name, a missing one is
//! created with the source's contents; `-` is a tar stream on stdin/stdout.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use serde_json::Value;

use crate::client::Client;
use crate::containers::enc;

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    source: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    destination: String,
}

/// One side of a copy: a container path or a local one.
#[derive(Debug, PartialEq)]
enum Side {
    Local(String),
    Container(String, String),
}

/// Docker's `splitCpArg`: an absolute or `.`-relative path is local, else
/// `CONTAINER:PATH` when there is a colon.
fn split_arg(arg: &str) -> Side {
    if arg.starts_with('/') || arg.starts_with('.') {
        return Side::Local(arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) => Side::Container(c.to_string(), p.to_string()),
        None => Side::Local(arg.to_string()),
    }
}

/// What docker's `X-Docker-Container-Path-Stat` header holds.
#[derive(Debug, Default, Clone)]
struct PathStat {
    mode: u64,
    link_target: String,
}

const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;
/// Go's `ModeType`: dir, symlink, named pipe, socket, device, char device,
/// irregular.
const MODE_TYPE: u64 =
    (1 << 31) | (1 << 27) | (1 << 25) | (1 << 24) | (1 << 26) | (1 << 21) | (1 << 19);

impl PathStat {
    fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }
    fn is_symlink(&self) -> bool {
        self.mode & MODE_SYMLINK != 0
    }
}

fn parse_stat(header: &str) -> Result<PathStat> {
    // dockerd sends standard base64 with padding.
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|_| anyhow!("bad path stat header"))?;
    let v: Value = serde_json::from_slice(&bytes).context("bad path stat header")?;
    Ok(PathStat {
        mode: v["mode"].as_u64().unwrap_or(0),
        link_target: v["linkTarget"].as_str().unwrap_or_default().to_string(),
    })
}

fn stat_query(container: &str, path: &str) -> String {
    format!("/containers/{}/archive?path={}", enc(container), enc(path))
}

/// `HEAD /containers/{id}/archive`: the path's stat.
fn stat_path(client: &Client, container: &str, path: &str) -> Result<PathStat> {
    let r = client.request_full("HEAD", &stat_query(container, path))?;
    if r.0 >= 400 {
        let message = if r.0 == 404 {
            format!("Could not find the file {path} in container {container}")
        } else {
            format!("status {}", r.0)
        };
        return Err(anyhow!(crate::client::DaemonError { message }));
    }
    let header =
        r.1.iter()
            .find(|(k, _)| k == "x-docker-container-path-stat")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow!("the daemon answered no path stat"))?;
    parse_stat(&header)
}

/// Go's `filepath.Clean` for slash paths.
fn clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// `archive.SplitPathDirEntry`: the directory and the last entry, `.` kept when the
/// path names a directory's contents (`dir/.`).
fn split_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean(path);
    let last = path.rsplit('/').next().unwrap_or("");
    if last == "." && cleaned != "." {
        cleaned = if cleaned == "/" {
            "/.".to_string()
        } else {
            format!("{cleaned}/.")
        };
    }
    match cleaned.rfind('/') {
        Some(0) => ("/".to_string(), cleaned[1..].to_string()),
        Some(i) => (cleaned[..i].to_string(), cleaned[i + 1..].to_string()),
        None => (".".to_string(), cleaned),
    }
}

fn join(dir: &str, name: &str) -> String {
    clean(&format!("{dir}/{name}"))
}

/// `archive.GetRebaseName`: keeps a trailing `/` or `/.` of `path` on `resolved`, and
/// the name to rebase to when the last elements differ.
fn rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    if path.ends_with("/.") && !resolved.ends_with("/.") {
        resolved.push_str("/.");
    } else if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let base = |p: &str| split_dir_entry(p).1;
    let rebase = (base(path) != base(&resolved)).then(|| base(path));
    (resolved, rebase)
}

fn asserts_directory(path: &str) -> bool {
    path.ends_with('/') || path.ends_with("/.") || path == "."
}

/// Where an archive of a source goes for a destination, and what its root entry is
/// renamed to: docker's `PrepareArchiveCopy`.
#[derive(Debug, PartialEq)]
struct Plan {
    /// The directory the archive is extracted into.
    dir: String,
    /// The source's base name in the archive → its name at the destination.
    rename: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy)]
struct DstInfo {
    exists: bool,
    is_dir: bool,
}

fn prepare(
    src_path: &str,
    src_is_dir: bool,
    src_rebase: Option<&str>,
    dst_path: &str,
    dst: DstInfo,
) -> Result<Plan> {
    let (dst_dir, dst_base) = split_dir_entry(dst_path);
    let (_, src_base) = split_dir_entry(src_path);
    let src_base = src_rebase.map_or(src_base, str::to_string);
    if dst.exists && dst.is_dir {
        return Ok(Plan {
            dir: dst_path.to_string(),
            rename: None,
        });
    }
    if dst.exists && src_is_dir {
        bail!("cannot copy directory");
    }
    if !dst.exists && !src_is_dir && asserts_directory(dst_path) {
        bail!("no such directory");
    }
    Ok(Plan {
        dir: dst_dir,
        rename: Some((src_base, dst_base)),
    })
}

/// An archive entry's name after `rename` (`old` → `new` for the first element; `.`
/// as `old` means the names are relative to the source directory itself).
fn renamed(name: &Path, rename: Option<&(String, String)>) -> PathBuf {
    let comps: Vec<&std::ffi::OsStr> = name
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let Some((old, new)) = rename else {
        return comps.iter().collect();
    };
    let mut out = PathBuf::from(new);
    if old == "." {
        out.extend(comps);
    } else if comps.first().is_some_and(|f| *f == old.as_str()) {
        out.extend(&comps[1..]);
    } else {
        return comps.iter().collect();
    }
    out
}

/// Copies the tar `input` to `output` with every name (and hard link target) passed
/// through `rename`.
fn rebase_tar(
    input: impl Read,
    output: impl Write,
    rename: Option<&(String, String)>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = renamed(&entry.path()?, rename);
        let path = if path.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            path
        };
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_hard_link() || kind.is_symlink() {
            let target = entry
                .link_name()?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let target = if kind.is_hard_link() {
                renamed(&target, rename)
            } else {
                target
            };
            builder.append_link(&mut header, &path, &target)?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            builder.append_data(&mut header, &path, &mut entry)?;
        }
    }
    builder.into_inner()?.flush()
}

/// `archive.CopyInfoDestinationPath`: the local destination, symlinks on its last
/// element followed; a missing one needs an existing parent directory.
fn local_destination(path: &str) -> Result<(String, DstInfo)> {
    let mut path = path.to_string();
    let mut meta = std::fs::symlink_metadata(&path);
    let mut n = 0;
    while let Ok(m) = &meta {
        if !m.file_type().is_symlink() {
            break;
        }
        n += 1;
        if n > 10 {
            bail!("too many symlinks in {path}");
        }
        let target = std::fs::read_link(&path)?;
        let target = target.to_string_lossy().to_string();
        path = if target.starts_with('/') {
            target
        } else {
            join(&split_dir_entry(&path).0, &target)
        };
        meta = std::fs::symlink_metadata(&path);
    }
    match meta {
        Ok(m) => Ok((
            path,
            DstInfo {
                exists: true,
                is_dir: m.is_dir(),
            },
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = split_dir_entry(&path).0;
            let pm = std::fs::metadata(&parent).with_context(|| format!("stat {parent}"))?;
            if !pm.is_dir() {
                bail!("not a directory");
            }
            Ok((
                path,
                DstInfo {
                    exists: false,
                    is_dir: false,
                },
            ))
        }
        Err(e) => Err(anyhow!("stat {path}: {e}")),
    }
}

pub fn cp(client: &Client, a: CpArgs) -> Result<ExitCode> {
    match (split_arg(&a.source), split_arg(&a.destination)) {
        (Side::Container(c, p), Side::Local(d)) => from_container(client, &a, &c, &p, &d),
        (Side::Local(s), Side::Container(c, p)) => to_container(client, &a, &s, &c, &p),
        (Side::Local(_), Side::Local(_)) => {
            bail!("must specify at least one container source")
        }
        (Side::Container(..), Side::Container(..)) => {
            bail!("copying between containers is not supported")
        }
    }
}

fn progress(a: &CpArgs, size: u64, to: &str) {
    if !a.quiet && io::stderr().is_terminal() {
        eprintln!(
            "Successfully copied {} to {to}",
            crate::container_ops::human_size4(size as f64)
        );
    }
}

/// Counts the bytes read through it.
struct Counter<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

fn from_container(
    client: &Client,
    a: &CpArgs,
    container: &str,
    src: &str,
    dst: &str,
) -> Result<ExitCode> {
    if src.is_empty() {
        bail!("source path cannot be empty");
    }
    let mut src_path = src.to_string();
    let mut rebase = None;
    if a.follow_link {
        if let Ok(st) = stat_path(client, container, &src_path) {
            if st.is_symlink() {
                let target = if st.link_target.starts_with('/') {
                    st.link_target.clone()
                } else {
                    join(&split_dir_entry(&src_path).0, &st.link_target)
                };
                let (resolved, name) = rebase_name(&src_path, &target);
                src_path = resolved;
                rebase = name;
            }
        }
    }
    let (status, headers, body) = client.request_full("GET", &stat_query(container, &src_path))?;
    if status >= 400 {
        let mut bytes = Vec::new();
        let mut body = body;
        let _ = body.read_to_end(&mut bytes);
        return Err(crate::client::daemon_error(status, &bytes));
    }
    let stat = headers
        .iter()
        .find(|(k, _)| k == "x-docker-container-path-stat")
        .map(|(_, v)| parse_stat(v))
        .transpose()?
        .unwrap_or_default();
    let mut body = Counter {
        inner: body,
        count: 0,
    };
    if dst == "-" {
        let mut out = io::stdout().lock();
        io::copy(&mut body, &mut out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (dst_path, dst_info) = local_destination(dst)?;
    // A rebase from following a link applies first: the archive's root is the
    // link target's name.
    let src_rebase = rebase.as_deref();
    let plan = prepare(&src_path, stat.is_dir(), src_rebase, &dst_path, dst_info)?;
    let (_, archive_base) = split_dir_entry(&src_path);
    let rename = match (&plan.rename, src_rebase) {
        (Some((_, new)), _) => Some((archive_base.clone(), new.clone())),
        (None, Some(r)) => Some((archive_base.clone(), r.to_string())),
        (None, None) => None,
    };
    let (reader, writer) = rustix::pipe::pipe()?;
    let reader = std::fs::File::from(reader);
    let writer = std::fs::File::from(writer);
    let rebaser = std::thread::spawn(move || {
        let r = rebase_tar(&mut body, writer, rename.as_ref());
        (r, body.count)
    });
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    let unpacked = archive.unpack(&plan.dir);
    drop(archive);
    let (rebased, count) = rebaser
        .join()
        .map_err(|_| anyhow!("copy thread panicked"))?;
    rebased.context("reading the container's archive")?;
    unpacked.with_context(|| format!("extracting to {}", plan.dir))?;
    progress(a, count, dst);
    Ok(ExitCode::SUCCESS)
}

/// `archive.ResolveHostSourcePath` + `CopyInfoSourcePath`: the local source with its
/// parent's symlinks resolved (and its own with `-L`).
fn local_source(path: &str, follow: bool) -> Result<(String, bool, Option<String>)> {
    let abs = if path.starts_with('/') {
        path.to_string()
    } else {
        let cwd = std::env::current_dir()?;
        format!("{}/{path}", cwd.display())
    };
    let (resolved, rebase) = if follow {
        let r =
            std::fs::canonicalize(&abs).map_err(|e| anyhow!("lstat {abs}: {}", go_error(&e)))?;
        rebase_name(&abs, &r.to_string_lossy())
    } else {
        let (dir, base) = match abs.rfind('/') {
            Some(i) => (&abs[..=i], &abs[i + 1..]),
            None => ("", abs.as_str()),
        };
        let dir = std::fs::canonicalize(if dir.is_empty() { "." } else { dir }).map_err(|e| {
            if e.raw_os_error() == Some(libc_enotdir()) {
                anyhow!("not a directory")
            } else {
                anyhow!("lstat {abs}: {}", go_error(&e))
            }
        })?;
        let resolved = format!("{}/{base}", dir.to_string_lossy().trim_end_matches('/'));
        let rebase = (abs.ends_with('/')
            && split_dir_entry(&abs).1 != split_dir_entry(&resolved).1)
            .then(|| split_dir_entry(&abs).1);
        (resolved, rebase)
    };
    let meta = std::fs::symlink_metadata(resolved.trim_end_matches("/.").trim_end_matches('/'))
        .map_err(|e| anyhow!("lstat {resolved}: {}", go_error(&e)))?;
    if abs.ends_with('/') && !meta.is_dir() && !meta.file_type().is_symlink() {
        bail!("not a directory");
    }
    Ok((resolved, meta.is_dir(), rebase))
}

fn libc_enotdir() -> i32 {
    rustix::io::Errno::NOTDIR.raw_os_error()
}

/// An OS error as Go prints it: `no such file or directory`.
fn go_error(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.to_lowercase()
}

/// A tar of the local `path` whose root entry is named `name` (`.` or empty: the
/// directory's contents at the archive's root).
fn local_tar(path: &str, name: &str, out: impl Write) -> Result<()> {
    let fs_path = path.trim_end_matches("/.");
    let fs_path = if fs_path.len() > 1 {
        fs_path.trim_end_matches('/')
    } else {
        fs_path
    };
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let meta = std::fs::symlink_metadata(fs_path).with_context(|| format!("lstat {fs_path}"))?;
    if meta.is_dir() {
        if name.is_empty() || name == "." {
            for entry in std::fs::read_dir(fs_path)? {
                let entry = entry?;
                let child = entry.path();
                let child_name = entry.file_name();
                if entry.file_type()?.is_dir() {
                    b.append_dir_all(&child_name, &child)?;
                } else {
                    b.append_path_with_name(&child, &child_name)?;
                }
            }
        } else {
            b.append_dir_all(name, fs_path)?;
        }
    } else {
        b.append_path_with_name(fs_path, name)?;
    }
    b.into_inner()?.flush()?;
    Ok(())
}

fn to_container(
    client: &Client,
    a: &CpArgs,
    src: &str,
    container: &str,
    dst: &str,
) -> Result<ExitCode> {
    if dst.is_empty() {
        bail!("destination path cannot be empty");
    }
    let mut dst_path = dst.to_string();
    let mut stat = stat_path(client, container, &dst_path);
    if let Ok(st) = &stat {
        if st.is_symlink() {
            let target = if st.link_target.starts_with('/') {
                st.link_target.clone()
            } else {
                join(&split_dir_entry(&dst_path).0, &st.link_target)
            };
            dst_path = target;
            stat = stat_path(client, container, &dst_path);
        }
    }
    if let Ok(st) = &stat {
        let t = st.mode & MODE_TYPE;
        if t != 0 && t != MODE_DIR {
            bail!("destination \"{container}:{dst}\" must be a directory or a regular file");
        }
    }
    let dst_info = match &stat {
        Ok(st) => DstInfo {
            exists: true,
            is_dir: st.is_dir(),
        },
        Err(_) => DstInfo {
            exists: false,
            is_dir: false,
        },
    };
    let query = |dir: &str| {
        let mut q = format!("{}&noOverwriteDirNonDir=true", stat_query(container, dir));
        if a.archive {
            q.push_str("&copyUIDGID=true");
        }
        q
    };
    if src == "-" {
        if !dst_info.is_dir {
            bail!("destination \"{container}:{dst}\" must be a directory");
        }
        client
            .request_streaming("PUT", &query(&dst_path), "application/x-tar", io::stdin())?
            .check()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (resolved, src_is_dir, rebase) = local_source(src, a.follow_link)?;
    let plan = prepare(
        &resolved,
        src_is_dir,
        rebase.as_deref(),
        &dst_path,
        dst_info,
    )?;
    let name = match &plan.rename {
        Some((_, new)) => new.clone(),
        None => rebase
            .clone()
            .unwrap_or_else(|| split_dir_entry(&resolved).1),
    };
    // The archive is written into a pipe while it is uploaded.
    let (reader, writer) = rustix::pipe::pipe()?;
    let reader = std::fs::File::from(reader);
    let writer = std::fs::File::from(writer);
    let source = resolved.clone();
    let tarring = std::thread::spawn(move || local_tar(&source, &name, writer));
    let mut counted = Counter {
        inner: reader,
        count: 0,
    };
    let answer =
        client.request_streaming("PUT", &query(&plan.dir), "application/x-tar", &mut counted);
    let Counter { inner, count } = counted;
    drop(inner);
    let tarred = tarring
        .join()
        .map_err(|_| anyhow!("archive thread panicked"))?;
    answer?.check()?;
    tarred?;
    let size = std::fs::symlink_metadata(&resolved).map_or(0, |m| m.len());
    progress(
        a,
        if src_is_dir { count } else { size },
        &format!("{container}:{dst}"),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_docker() {
        assert_eq!(
            split_arg("c:/etc"),
            Side::Container("c".into(), "/etc".into())
        );
        assert_eq!(split_arg("/a:b"), Side::Local("/a:b".into()));
        assert_eq!(split_arg("./a:b"), Side::Local("./a:b".into()));
        assert_eq!(split_arg("file"), Side::Local("file".into()));
        assert_eq!(split_arg("-"), Side::Local("-".into()));
    }

    #[test]
    fn split_dir_entry_like_go() {
        assert_eq!(split_dir_entry("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_dir_entry("b"), (".".into(), "b".into()));
        assert_eq!(split_dir_entry("/b"), ("/".into(), "b".into()));
    }

    #[test]
    fn plans_like_prepare_archive_copy() {
        let missing = DstInfo {
            exists: false,
            is_dir: false,
        };
        let dir = DstInfo {
            exists: true,
            is_dir: true,
        };
        let file = DstInfo {
            exists: true,
            is_dir: false,
        };
        // Into an existing directory: unchanged.
        assert_eq!(
            prepare("/etc/hosts", false, None, "/tmp/d", dir).unwrap(),
            Plan {
                dir: "/tmp/d".into(),
                rename: None
            }
        );
        // A file to a new name.
        assert_eq!(
            prepare("/etc/hosts", false, None, "/tmp/new", missing).unwrap(),
            Plan {
                dir: "/tmp".into(),
                rename: Some(("hosts".into(), "new".into()))
            }
        );
        // A directory's contents to a new directory.
        assert_eq!(
            prepare("/etc/.", true, None, "/tmp/new", missing).unwrap(),
            Plan {
                dir: "/tmp".into(),
                rename: Some((".".into(), "new".into()))
            }
        );
        assert_eq!(
            prepare("/etc", true, None, "/tmp/file", file)
                .unwrap_err()
                .to_string(),
            "cannot copy directory"
        );
        assert_eq!(
            prepare("/etc/hosts", false, None, "/tmp/new/", missing)
                .unwrap_err()
                .to_string(),
            "no such directory"
        );
        assert_eq!(
            renamed(Path::new("./a/b"), Some(&(".".into(), "new".into()))),
            PathBuf::from("new/a/b")
        );
        assert_eq!(
            renamed(Path::new("hosts"), Some(&("hosts".into(), "x".into()))),
            PathBuf::from("x")
        );
    }

    #[test]
    fn path_stat_header() {
        // {"name":"d","mode":2147484141,"linkTarget":""}, as dockerd encodes it.
        let st =
            parse_stat("eyJuYW1lIjoiZCIsIm1vZGUiOjIxNDc0ODQxNDEsImxpbmtUYXJnZXQiOiIifQ==").unwrap();
        assert!(st.is_dir() && !st.is_symlink());
        assert!(parse_stat("not base64!").is_err());
    }
}
