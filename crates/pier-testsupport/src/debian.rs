//! A Debian root filesystem for tests that need more than busybox (an X client, a
//! libc-linked program): made with `debootstrap --variant=minbase` from the mirror and
//! suite the host's apt uses, and kept as a tarball under [`CACHE_DIR`], named by suite
//! and package list, so that only a machine's first run downloads and unpacks it.
//!
//! Delete the cache directory to build afresh (say, after a point release).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{detach_mounts_below, require_tools, run, skip};

/// Where built root filesystems are kept, across test runs.
pub const CACHE_DIR: &str = "/var/cache/pier-tests";

/// Changes whenever the recipe below changes what a tarball holds, so that a cached
/// tarball of an older recipe is not used.
const RECIPE: &str = "r1";

/// How long debootstrap may take (a cold run on a fresh machine takes about a minute).
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(900);

/// Directories of the rootfs whose contents an image does not need: the downloaded
/// packages, apt's package lists, documentation and translations.
const TRIMMED: &[&str] = &[
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
];

/// One `deb` source of the host's apt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// The mirror, e.g. `http://deb.debian.org/debian`.
    pub uri: String,
    /// A release suite, e.g. `bookworm` (never `bookworm-updates` or `-security`).
    pub suite: String,
}

/// (type, URI, suite, components) of one entry of an apt source file.
type SourceEntry = (String, String, String, Vec<String>);

/// The host's first `deb` source of a release suite with the `main` component, from
/// `/etc/apt/sources.list` and `/etc/apt/sources.list.d` (one-line and deb822 files).
pub fn host_apt_source() -> Option<AptSource> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    let mut listed: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    listed.sort();
    files.extend(listed);
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => release_source(deb822_sources(&text)),
            _ if f.file_name().is_some_and(|n| n == "sources.list")
                || f.extension().is_some_and(|e| e == "list") =>
            {
                release_source(one_line_sources(&text))
            }
            _ => None,
        }
    })
}

/// (type, URI, suite, components) of each entry of a one-line `sources.list`.
fn one_line_sources(text: &str) -> Vec<SourceEntry> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let kind = words.next()?.to_string();
            let mut rest: Vec<&str> = words.collect();
            // `[arch=amd64 signed-by=...]` options.
            if rest.first().is_some_and(|w| w.starts_with('[')) {
                let end = rest.iter().position(|w| w.ends_with(']'))?;
                rest.drain(..=end);
            }
            let (uri, suite) = (rest.first()?.to_string(), rest.get(1)?.to_string());
            let components = rest[2..].iter().map(|c| c.to_string()).collect();
            Some((kind, uri, suite, components))
        })
        .collect()
}

/// The same, for each (type, URI, suite) combination of a deb822 `.sources` file.
fn deb822_sources(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(name).then(|| v.to_string())
                })
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if field("Enabled").first().is_some_and(|v| v == "no") {
            continue;
        }
        let components = field("Components");
        for kind in field("Types") {
            for uri in field("URIs") {
                for suite in field("Suites") {
                    out.push((kind.clone(), uri.clone(), suite, components.clone()));
                }
            }
        }
    }
    out
}

fn release_source(entries: Vec<SourceEntry>) -> Option<AptSource> {
    entries
        .into_iter()
        .find(|(kind, uri, suite, components)| {
            kind == "deb"
                && (uri.starts_with("http://") || uri.starts_with("https://"))
                && !suite.contains(['-', '/'])
                && components.iter().any(|c| c == "main")
        })
        .map(|(_, uri, suite, _)| AptSource {
            uri: uri.trim_end_matches('/').to_string(),
            suite,
        })
}

/// A tarball of a minimal Debian rootfs (the host's suite) with `packages` installed,
/// without their recommends; built on first use, then taken from [`CACHE_DIR`].
///
/// None, after printing why, when it cannot be made here: not root, no debootstrap (a
/// failure under `CI`), no Debian source in apt, or the mirror does not answer. A
/// debootstrap that fails with the mirror reachable is a panic.
pub fn debian_rootfs_tar(test: &str, packages: &[&str]) -> Option<PathBuf> {
    if !crate::is_root() {
        skip(test, "debootstrap needs root");
        return None;
    }
    if !require_tools(test, &["debootstrap", "wget", "tar"]) {
        return None;
    }
    let Some(source) = host_apt_source() else {
        skip(test, "the host's apt has no deb source to debootstrap from");
        return None;
    };
    let mut packages: Vec<&str> = packages.to_vec();
    packages.sort_unstable();
    packages.dedup();
    let name = format!(
        "{}-minbase-{}-{RECIPE}.tar",
        source.suite,
        if packages.is_empty() {
            "base".to_string()
        } else {
            packages.join("+")
        }
    );
    let cached = Path::new(CACHE_DIR).join(&name);
    if cached.is_file() {
        return Some(cached);
    }
    std::fs::create_dir_all(CACHE_DIR).unwrap_or_else(|e| panic!("{CACHE_DIR}: {e}"));
    // One builder per tarball: a test binary running alongside waits for this one.
    let lock_path = Path::new(CACHE_DIR).join(format!("{name}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
    // SAFETY: flock on a descriptor `lock` owns; the lock goes when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        panic!(
            "{}: flock: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    if cached.is_file() {
        return Some(cached);
    }
    if let Err(why) = probe_mirror(&source) {
        // The network is the environment's, not the test's: a skip even under CI.
        eprintln!("{test}: SKIPPED: no Debian rootfs: {why}");
        return None;
    }
    let started = Instant::now();
    build(&source, &packages, &cached).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{test}: built {} in {:.0?} ({} from {})",
        cached.display(),
        started.elapsed(),
        source.suite,
        source.uri
    );
    Some(cached)
}

/// Whether the mirror serves the suite's release file.
fn probe_mirror(source: &AptSource) -> Result<(), String> {
    let url = format!("{}/dists/{}/InRelease", source.uri, source.suite);
    let out = run(
        Command::new("wget").args(["-q", "-T", "15", "-t", "2", "-O", "/dev/null", &url]),
        Duration::from_secs(60),
    )?;
    if out.code == Some(0) {
        Ok(())
    } else {
        Err(out.explain("the mirror does not answer"))
    }
}

/// A build directory next to the cache (so the finished tarball is renamed into place),
/// removed when dropped; whatever debootstrap left mounted in it is detached first.
struct BuildDir(tempfile::TempDir);

impl Drop for BuildDir {
    fn drop(&mut self) {
        for m in detach_mounts_below(self.0.path()) {
            eprintln!("debootstrap left a mount behind, detached: {}", m.display());
        }
    }
}

fn build(source: &AptSource, packages: &[&str], dest: &Path) -> Result<(), String> {
    let dir = BuildDir(
        tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(CACHE_DIR)
            .map_err(|e| format!("{CACHE_DIR}: {e}"))?,
    );
    let rootfs = dir.0.path().join("rootfs");
    let mut debootstrap = Command::new("debootstrap");
    debootstrap.arg("--variant=minbase");
    if !packages.is_empty() {
        debootstrap.arg(format!("--include={}", packages.join(",")));
    }
    debootstrap.arg(&source.suite).arg(&rootfs).arg(&source.uri);
    let out = run(&mut debootstrap, DEBOOTSTRAP_TIMEOUT)?;
    if out.code != Some(0) {
        let log =
            std::fs::read_to_string(rootfs.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        return Err(format!(
            "{}\n  debootstrap.log (end):\n{}",
            out.explain("failed"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    for sub in TRIMMED {
        empty_dir(&rootfs.join(sub))?;
    }
    let tar = dir.0.path().join("rootfs.tar");
    // /dev is the runtime's to fill; debootstrap's nodes stay out of the image.
    crate::run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["--numeric-owner", "--exclude=./dev/*", "-cf"])
            .arg(&tar)
            .arg("."),
        Duration::from_secs(300),
    )?;
    std::fs::rename(&tar, dest).map_err(|e| format!("{}: {e}", dest.display()))
}

/// Removes what `dir` holds, keeping `dir`.
fn empty_dir(dir: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let path = e.path();
        let removed = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|err| format!("{}: {err}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(uri: &str, suite: &str) -> Option<AptSource> {
        Some(AptSource {
            uri: uri.into(),
            suite: suite.into(),
        })
    }

    #[test]
    fn one_line_sources_skip_options_comments_and_update_suites() {
        let text = "# deb http://old.example/debian sid main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security bookworm-security main\n\
                    deb https://mirror.example/debian/ bookworm contrib main # a note\n";
        assert_eq!(
            release_source(one_line_sources(text)),
            source("https://mirror.example/debian", "bookworm")
        );
    }

    #[test]
    fn a_mirror_that_does_not_answer_is_reported() {
        if crate::which("wget").is_none() {
            eprintln!("SKIPPED: wget is not installed");
            return;
        }
        // Nothing listens on loopback's discard port: the connection is refused.
        let err = probe_mirror(&AptSource {
            uri: "http://127.0.0.1:9/debian".into(),
            suite: "bookworm".into(),
        })
        .expect_err("no mirror there");
        assert!(err.contains("the mirror does not answer"), "{err}");
    }

    #[test]
    fn deb822_sources_expand_lists_and_honour_enabled() {
        let text = "Types: deb\nURIs: http://off.example/debian\nSuites: trixie\n\
                    Components: main\nEnabled: no\n\n\
                    Types: deb-src deb\n# URIs: http://commented.example\n\
                    URIs: http://deb.example/debian\nSuites: bookworm-updates bookworm\n\
                    Components: main contrib\n";
        assert_eq!(
            release_source(deb822_sources(text)),
            source("http://deb.example/debian", "bookworm")
        );
        assert_eq!(release_source(deb822_sources("Types: deb\n")), None);
    }
}
