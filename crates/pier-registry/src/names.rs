//! Repository names, tags and the `/v2/...` paths of the distribution API.
//!
//! Names may have several components (`a/b/c`), so routes are parsed from the end of
//! the path: the last segments say which endpoint, everything before is the name.

use pier_image::digest::Digest;

use crate::error::{RegistryError, Result};

/// A validated repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/...)*`, at most
/// 255 characters (distribution's limit).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<RepoName> {
        let invalid = || RegistryError::NameInvalid(s.to_string());
        if s.is_empty() || s.len() > 255 {
            return Err(invalid());
        }
        if !s.split('/').all(component_valid) {
            return Err(invalid());
        }
        Ok(RepoName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or one or more `-`.
fn component_valid(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn tag_valid(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

pub fn parse_digest(s: &str) -> Result<Digest> {
    s.parse()
        .map_err(|_| RegistryError::DigestInvalid(format!("invalid digest {s:?}")))
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        if s.contains(':') {
            return parse_digest(s).map(Reference::Digest);
        }
        if tag_valid(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(RegistryError::TagInvalid(s.to_string()))
        }
    }
}

/// The endpoint a `/v2/...` path names.
#[derive(Debug)]
pub enum Route {
    Base,
    Catalog,
    Tags(RepoName),
    Manifest(RepoName, String),
    Blob(RepoName, String),
    UploadStart(RepoName),
    Upload(RepoName, String),
    Referrers(RepoName, String),
}

impl Route {
    /// Parses the path (without query). `None` when it is no API path at all.
    pub fn parse(path: &str) -> Option<Result<Route>> {
        let rest = path.strip_prefix("/v2")?;
        if rest.is_empty() || rest == "/" {
            return Some(Ok(Route::Base));
        }
        let rest = rest.strip_prefix('/')?;
        if rest == "_catalog" {
            return Some(Ok(Route::Catalog));
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name_of =
            |k: usize| -> Result<RepoName> { RepoName::parse(&segments[..n - k].join("/")) };
        let tail = |k: usize| -> Vec<&str> { segments[n.saturating_sub(k)..].to_vec() };
        let route = if n >= 4 && tail(3)[..2] == ["blobs", "uploads"] {
            let id = segments[n - 1];
            name_of(3).map(|name| {
                if id.is_empty() {
                    Route::UploadStart(name)
                } else {
                    Route::Upload(name, id.to_string())
                }
            })
        } else if n >= 3 && tail(2) == ["blobs", "uploads"] {
            name_of(2).map(Route::UploadStart)
        } else if n >= 3 && tail(2) == ["tags", "list"] {
            name_of(2).map(Route::Tags)
        } else if n >= 3 {
            let last = segments[n - 1].to_string();
            match segments[n - 2] {
                "blobs" => name_of(2).map(|name| Route::Blob(name, last)),
                "manifests" => name_of(2).map(|name| Route::Manifest(name, last)),
                "referrers" => name_of(2).map(|name| Route::Referrers(name, last)),
                _ => return None,
            }
        } else {
            return None;
        };
        Some(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "a/b/c", "foo.bar", "a__b", "a---b", "x0/y_1/z-2"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a___b", "-a", "a.", "a..b", "a_.b",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
        assert!(tag_valid("latest") && tag_valid("_x.Y-1"));
        assert!(!tag_valid(".x") && !tag_valid("") && !tag_valid(&"a".repeat(129)));
    }

    #[test]
    fn routes() {
        let r = |p| Route::parse(p).unwrap().unwrap();
        assert!(matches!(r("/v2/"), Route::Base));
        assert!(matches!(r("/v2/_catalog"), Route::Catalog));
        assert!(
            matches!(r("/v2/a/b/blobs/uploads/"), Route::UploadStart(n) if n.as_str() == "a/b")
        );
        assert!(matches!(r("/v2/a/blobs/uploads"), Route::UploadStart(n) if n.as_str() == "a"));
        assert!(
            matches!(r("/v2/x/blobs/blobs/uploads/u1"), Route::Upload(n, u) if n.as_str() == "x/blobs" && u == "u1")
        );
        assert!(
            matches!(r("/v2/a/b/c/manifests/latest"), Route::Manifest(n, t) if n.as_str() == "a/b/c" && t == "latest")
        );
        assert!(matches!(r("/v2/a/tags/list"), Route::Tags(_)));
        assert!(matches!(
            r("/v2/a/referrers/sha256:x"),
            Route::Referrers(..)
        ));
        assert!(Route::parse("/v2/A/tags/list").unwrap().is_err());
        assert!(Route::parse("/v3/").is_none());
    }
}
