//! Docker-style image references.
//!
//! A reference names an image the way the Docker CLI and Engine API accept it:
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path
//! domain     := host [ ":" port ]          host: DNS-ish name, IPv4, or "[" IPv6 "]"
//! path       := component [ "/" component ]*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [\w][\w.-]{0,127}
//! digest     := "sha256:" 64 hex | "sha512:" 128 hex
//! ```
//!
//! Parsing follows Docker's `reference.ParseNormalizedNamed` (module
//! `github.com/distribution/reference`): familiar names are expanded
//! (`busybox` → `docker.io/library/busybox`), `index.docker.io` becomes
//! `docker.io`, and invalid input is rejected with the same message Docker
//! prints, so that the daemon's 400 responses read exactly like Docker's.
//!
//! ```
//! use pier_image::reference::Reference;
//!
//! let r = Reference::parse_with_default_tag("busybox").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(r.familiar(), "busybox:latest");
//!
//! let err = Reference::parse("Busybox").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid reference format: repository name (library/Busybox) must be lowercase"
//! );
//! ```
//!
//! The matchers below are hand-written equivalents of the regular expressions
//! in distribution/reference's `regexp.go`; the crate deliberately has no regex
//! dependency.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy Docker Hub domain ("the Docker Index"), normalized to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag implied when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Maximum length, in bytes, of a repository path (without domain).
pub const REPOSITORY_NAME_MAX_LEN: usize = 255;
/// The one first component that is a domain without containing `.` or `:`.
const LOCALHOST: &str = "localhost";

// Docker's error texts (distribution/reference and opencontainers/go-digest v1).
const ERR_REFERENCE_INVALID_FORMAT: &str = "invalid reference format";
const ERR_TAG_INVALID_FORMAT: &str = "invalid tag format";
const ERR_NAME_CONTAINS_UPPERCASE: &str = "repository name must be lowercase";
const ERR_NAME_EMPTY: &str = "repository name must have at least one component";
const ERR_DIGEST_INVALID_FORMAT: &str = "invalid checksum digest format";
const ERR_DIGEST_INVALID_LENGTH: &str = "invalid checksum digest length";
const ERR_DIGEST_UNSUPPORTED: &str = "unsupported digest algorithm";

/// A parsed, normalized image reference: `domain/path[:tag][@digest]`.
///
/// Values are only built by parsing or by the `with_*` methods, so every
/// `Reference` is valid and its [`Display`](fmt::Display) form parses back to
/// an equal value. Both a tag and a digest may be present (`img:tag@sha256:…`),
/// as Docker allows; the digest is then what identifies the content.
///
/// Serialized (serde) as its full string form; deserialization parses with
/// [`Reference::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `s` as Docker's `ParseNormalizedNamed` does: familiar names are
    /// expanded to their canonical form, no tag is added.
    ///
    /// `busybox` → `docker.io/library/busybox`, `user/img:1` →
    /// `docker.io/user/img:1`, `index.docker.io/x` → `docker.io/library/x`,
    /// `localhost/x`, `host:5000/a/b` and `[::1]:5000/a` keep their domain.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidReference`] with Docker's message, e.g.
    /// `invalid reference format`,
    /// `invalid reference format: repository name (library/Busybox) must be lowercase`,
    /// `repository name must not be more than 255 characters`,
    /// `invalid checksum digest length`, or
    /// `invalid repository name (<hex>), cannot specify 64-byte hexadecimal strings`
    /// for a bare 64-hex string (which Docker reserves for image IDs).
    pub fn parse(s: &str) -> Result<Reference> {
        if is_identifier(s) {
            return Err(invalid(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (domain, remainder) = split_docker_domain(s);
        // Docker checks the case of everything before the first ':' of the
        // remainder (so also e.g. `img@SHA256`), before the grammar check.
        let remote = remainder.split(':').next().unwrap_or_default();
        if go_to_lower(remote) != remote {
            return Err(invalid(format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            )));
        }
        parse_canonical(&format!("{domain}/{remainder}"))
    }

    /// Like [`parse`](Self::parse), then adds the tag `latest` when the
    /// reference has neither a tag nor a digest (Docker's `TagNameOnly`).
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn parse_with_default_tag(s: &str) -> Result<Reference> {
        let mut r = Reference::parse(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// The registry domain, e.g. `docker.io`, `localhost`, `host:5000`, `[::1]:5000`.
    ///
    /// Empty only in one Docker corner case: a first component that contains a
    /// `.` but is not a valid host name, yet is a valid path component
    /// (`a_b.c/x`); Docker then treats the whole name as a domain-less path.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full repository name, `domain/path` (Docker's `Name()`), e.g.
    /// `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The short form the docker CLI displays: `docker.io/` is dropped, and so
    /// is `library/` when nothing is nested below it.
    ///
    /// `docker.io/library/busybox:latest` → `busybox:latest`,
    /// `docker.io/user/x` → `user/x`, `docker.io/library/a/b` → `library/a/b`;
    /// other registries are unchanged.
    ///
    /// As in Docker this is a display form: `docker.io/a.b/c` shows as `a.b/c`,
    /// which would parse back as an image on registry `a.b`. Store and compare
    /// the full form ([`Display`](fmt::Display)) instead.
    pub fn familiar(&self) -> String {
        let name = if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        };
        let mut out = name;
        self.push_suffix(&mut out);
        out
    }

    /// A copy with the tag replaced by `tag`; any digest is kept.
    ///
    /// # Errors
    ///
    /// `invalid tag format` when `tag` does not match `[\w][\w.-]{0,127}`.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !is_tag(tag) {
            return Err(invalid(ERR_TAG_INVALID_FORMAT.to_string()));
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// A copy with the digest replaced by `digest`; any tag is kept.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    /// The full normalized form, e.g. `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.repository();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = Error;

    /// Same as [`Reference::parse`].
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Reference, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidReference(message)
}

/// Docker's `splitDockerDomain`: decides from the first `/`-separated part
/// whether the name starts with a registry domain, and canonicalizes Docker Hub.
fn split_docker_domain(name: &str) -> (&str, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        // A single element is always an image on Docker Hub, even `localhost`.
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{name}"));
    };
    let (domain, remote) = if maybe_domain == LOCALHOST {
        (maybe_domain, maybe_remote)
    } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, maybe_remote)
    } else if maybe_domain.contains(['.', ':']) || go_to_lower(maybe_domain) != maybe_domain {
        // Uppercase is never valid in a path, so Docker takes it as a host name.
        (maybe_domain, maybe_remote)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"))
    } else {
        (domain, remote.to_string())
    }
}

/// Docker's (non-normalizing) `reference.Parse`, restricted to named references.
fn parse_canonical(s: &str) -> Result<Reference> {
    if s.is_empty() {
        // Unreachable from `Reference::parse` (it always prefixes a domain),
        // kept so this function stays a faithful port of `Parse`.
        return Err(invalid(ERR_NAME_EMPTY.to_string()));
    }
    let parts = match match_reference(s) {
        Some(parts) => parts,
        None => {
            let lower = go_to_lower(s);
            let message = if lower != s && match_reference(&lower).is_some() {
                ERR_NAME_CONTAINS_UPPERCASE
            } else {
                ERR_REFERENCE_INVALID_FORMAT
            };
            return Err(invalid(message.to_string()));
        }
    };
    if parts.path.len() > REPOSITORY_NAME_MAX_LEN {
        return Err(invalid(format!(
            "repository name must not be more than {REPOSITORY_NAME_MAX_LEN} characters"
        )));
    }
    let digest = parts.digest.map(parse_digest).transpose()?;
    Ok(Reference {
        domain: parts.domain.to_string(),
        path: parts.path.to_string(),
        tag: parts.tag.map(str::to_string),
        digest,
    })
}

/// Validates a digest that already matched the reference grammar, in the
/// order go-digest v1 does, so the message is the one Docker shows.
fn parse_digest(s: &str) -> Result<Digest> {
    let (algorithm, encoded) = s.split_once(':').unwrap_or((s, ""));
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        // Docker also accepts sha384, but the store cannot represent it.
        _ => {
            let message = if is_go_digest(s) {
                ERR_DIGEST_UNSUPPORTED
            } else {
                ERR_DIGEST_INVALID_FORMAT
            };
            return Err(invalid(message.to_string()));
        }
    };
    if encoded.len() != hex_len {
        return Err(invalid(ERR_DIGEST_INVALID_LENGTH.to_string()));
    }
    s.parse::<Digest>()
        .map_err(|_| invalid(ERR_DIGEST_INVALID_FORMAT.to_string()))
}

/// The pieces of a reference string, as captured by Docker's `ReferenceRegexp`
/// followed by `anchoredNameRegexp`.
struct Parts<'a> {
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Matches `^(?:(domain)/)?(path)(?::(tag))?(?:@(digest))?$`.
///
/// A domain cannot contain `/`, so the only candidate is the text before the
/// first `/`; like the regex's greedy optional group, it is preferred when the
/// rest still matches, otherwise the whole name is tried as a path.
fn match_reference(s: &str) -> Option<Parts<'_>> {
    if let Some((domain, rest)) = s.split_once('/') {
        if is_domain_and_port(domain) {
            if let Some(parts) = match_path_and_suffix(domain, rest) {
                return Some(parts);
            }
        }
    }
    match_path_and_suffix("", s)
}

/// Matches `path[:tag][@digest]`; path characters exclude `:` and `@`, so the
/// path ends at the first of them.
fn match_path_and_suffix<'a>(domain: &'a str, s: &'a str) -> Option<Parts<'a>> {
    let end = s.find([':', '@']).unwrap_or(s.len());
    let (path, mut rest) = s.split_at(end);
    if !is_path(path) {
        return None;
    }
    let mut tag = None;
    if let Some(after) = rest.strip_prefix(':') {
        let end = after.find('@').unwrap_or(after.len());
        let (t, after) = after.split_at(end);
        if !is_tag(t) {
            return None;
        }
        tag = Some(t);
        rest = after;
    }
    let digest = match rest.strip_prefix('@') {
        Some(d) if is_digest_syntax(d) => Some(d),
        Some(_) => return None,
        None if rest.is_empty() => None,
        None => return None,
    };
    Some(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

/// `host (":" [0-9]+)?` where host is a domain name or a bracketed IPv6 address.
fn is_domain_and_port(s: &str) -> bool {
    let (host_ok, port) = if let Some(inner) = s.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return false;
        };
        // Only hex digits and colons: zone ids and IPv4-mapped forms are excluded.
        let ok = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        match after {
            "" => (ok, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (ok, Some(port)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (is_domain_name(host), Some(port)),
            None => (is_domain_name(s), None),
        }
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Dot-separated components of `[a-zA-Z0-9]` and inner `-` (upper case allowed).
fn is_domain_name(s: &str) -> bool {
    s.split('.').all(|c| {
        let b = c.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
            }
            _ => false,
        }
    })
}

/// One or more `/`-separated path components.
fn is_path(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = matches!(sep, b"." | b"_" | b"__")
            || (!sep.is_empty() && sep.iter().all(|&x| x == b'-'));
        if !ok {
            return false;
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[\w][\w.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    match b.split_first() {
        Some((&first, rest)) => {
            b.len() <= 128
                && is_word(first)
                && rest.iter().all(|&x| is_word(x) || x == b'.' || x == b'-')
        }
        None => false,
    }
}

/// The reference grammar's digest: `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}`.
/// Deliberately looser than what [`Digest`] accepts, so that the
/// algorithm/length/case problems get go-digest's specific messages.
fn is_digest_syntax(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let components_ok = algorithm.split(['-', '_', '+', '.']).all(|c| {
        let b = c.as_bytes();
        b.first().is_some_and(u8::is_ascii_alphabetic) && b.iter().all(u8::is_ascii_alphanumeric)
    });
    components_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's `DigestRegexpAnchored`:
/// `^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`; decides between
/// "unsupported" and "invalid format" for unknown algorithms.
fn is_go_digest(s: &str) -> bool {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['.', '+', '_', '-']).all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    algorithm_ok
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// `^[a-f0-9]{64}$`: what Docker takes for an image ID rather than a name.
fn is_identifier(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Go's `strings.ToLower`: per-character simple case mapping. Rust's
/// `str::to_lowercase` differs for U+0130 (`İ` → `i̇`, two chars, where Go gives
/// `i`) and for a word-final `Σ`, which would change some error messages.
fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{130}' => 'i',
            c => c.to_lowercase().next().unwrap_or(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const BUSYBOX_DIGEST: &str =
        "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";

    fn ok(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s:?} should parse, got {e}"),
        }
    }

    fn err(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => panic!("{s:?} should not parse, got {r}"),
            Err(Error::InvalidReference(m)) => m,
            Err(e) => panic!("{s:?}: wrong error kind {e:?}"),
        }
    }

    /// (input, normalized string, domain, path, familiar form)
    #[test]
    fn valid_references() {
        let sha = format!("sha256:{HEX64}");
        let sha512 = format!("sha512:{HEX64}{HEX64}");
        let long_path = format!("{}a", "a/".repeat(127));
        let cases: Vec<(String, String, &str, String, String)> = vec![
            c("busybox", "docker.io/library/busybox", "docker.io", "library/busybox", "busybox"),
            c("busybox:latest", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "busybox:latest"),
            c("user/img", "docker.io/user/img", "docker.io", "user/img", "user/img"),
            c("docker.io/busybox", "docker.io/library/busybox", "docker.io", "library/busybox", "busybox"),
            c("docker.io/library/busybox", "docker.io/library/busybox", "docker.io", "library/busybox", "busybox"),
            c("index.docker.io/busybox:1", "docker.io/library/busybox:1", "docker.io", "library/busybox", "busybox:1"),
            c("index.docker.io/fooo/bar", "docker.io/fooo/bar", "docker.io", "fooo/bar", "fooo/bar"),
            c("library/ubuntu", "docker.io/library/ubuntu", "docker.io", "library/ubuntu", "ubuntu"),
            c("library/foo/bar", "docker.io/library/foo/bar", "docker.io", "library/foo/bar", "library/foo/bar"),
            c("store/foo/bar", "docker.io/store/foo/bar", "docker.io", "store/foo/bar", "store/foo/bar"),
            c("other/library", "docker.io/other/library", "docker.io", "other/library", "other/library"),
            c("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "ubuntu-12.04-base"),
            c("host:5000/a/b:tag", "host:5000/a/b:tag", "host:5000", "a/b", "host:5000/a/b:tag"),
            c("localhost/x", "localhost/x", "localhost", "x", "localhost/x"),
            c("localhost:5000/x", "localhost:5000/x", "localhost:5000", "x", "localhost:5000/x"),
            // A lone "localhost" is an image name, not a registry.
            c("localhost", "docker.io/library/localhost", "docker.io", "library/localhost", "localhost"),
            c("localhost:5000", "docker.io/library/localhost:5000", "docker.io", "library/localhost", "localhost:5000"),
            c("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase", "127.0.0.1:8000/private/moonbase"),
            c("example.com/privatebase", "example.com/privatebase", "example.com", "privatebase", "example.com/privatebase"),
            c("192.168.0.1", "docker.io/library/192.168.0.1", "docker.io", "library/192.168.0.1", "192.168.0.1"),
            c("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "docker.io", "library/192.168.0.1", "192.168.0.1:80"),
            c("192.168.0.1:8/debian", "192.168.0.1:8/debian", "192.168.0.1:8", "debian", "192.168.0.1:8/debian"),
            c("test_com/foo", "docker.io/test_com/foo", "docker.io", "test_com/foo", "test_com/foo"),
            c("test-com:8080/foo", "test-com:8080/foo", "test-com:8080", "foo", "test-com:8080/foo"),
            c("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "xn--n3h.com:18080/foo"),
            c("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
            c("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app", "b.gcr.io/test.example.com/my-app:test.example.com"),
            c("[::1]:5000/repo", "[::1]:5000/repo", "[::1]:5000", "repo", "[::1]:5000/repo"),
            c("[2001:db8::1]/repo", "[2001:db8::1]/repo", "[2001:db8::1]", "repo", "[2001:db8::1]/repo"),
            c("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian"),
            c("[2001:db8::]:5000/repo:tag", "[2001:db8::]:5000/repo:tag", "[2001:db8::]:5000", "repo", "[2001:db8::]:5000/repo:tag"),
            // An uppercase first component is taken as a host name.
            c("Docker/docker", "Docker/docker", "Docker", "docker", "Docker/docker"),
            c("FOO/bar", "FOO/bar", "FOO", "bar", "FOO/bar"),
            c("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase", "docker.io", "library/lowercase", "lowercase:Uppercase"),
            c("docker---rules/docker", "docker.io/docker---rules/docker", "docker.io", "docker---rules/docker", "docker---rules/docker"),
            c("dock__er/docker", "docker.io/dock__er/docker", "docker.io", "dock__er/docker", "dock__er/docker"),
            c("d/docker", "docker.io/d/docker", "docker.io", "d/docker", "d/docker"),
            c("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io", "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
            // 63 hex digits is a name, and 64 is fine once a domain disambiguates.
            c("dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9", "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9", "docker.io", "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9", "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9"),
            c("docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "docker.io", "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
            c(&format!("img@{sha}"), &format!("docker.io/library/img@{sha}"), "docker.io", "library/img", &format!("img@{sha}")),
            c(&format!("busybox:latest@{BUSYBOX_DIGEST}"), &format!("docker.io/library/busybox:latest@{BUSYBOX_DIGEST}"), "docker.io", "library/busybox", &format!("busybox:latest@{BUSYBOX_DIGEST}")),
            c(&format!("test:5000/repo:tag@{sha}"), &format!("test:5000/repo:tag@{sha}"), "test:5000", "repo", &format!("test:5000/repo:tag@{sha}")),
            c(&format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"), &format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"), "xn--7o8h.com", "myimage", &format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}")),
            // Longest allowed path: 255 characters after the domain.
            c(&format!("{long_path}:tag-puts-this-over-max"), &format!("docker.io/{long_path}:tag-puts-this-over-max"), "docker.io", long_path.clone(), &format!("{long_path}:tag-puts-this-over-max")),
            // Docker quirk: "a_b.c" contains a '.', so it is taken as a domain,
            // fails the host grammar, and the whole name is matched as a path.
            c("a_b.c/x", "a_b.c/x", "", "a_b.c/x", "a_b.c/x"),
        ];
        fn c(
            input: &str,
            full: &str,
            domain: &'static str,
            path: impl Into<String>,
            familiar: &str,
        ) -> (String, String, &'static str, String, String) {
            (
                input.into(),
                full.into(),
                domain,
                path.into(),
                familiar.into(),
            )
        }
        for (input, full, domain, path, familiar) in &cases {
            let r = ok(input);
            assert_eq!(&r.to_string(), full, "normalized form of {input}");
            assert_eq!(r.domain(), *domain, "domain of {input}");
            assert_eq!(r.path(), path, "path of {input}");
            assert_eq!(&r.familiar(), familiar, "familiar form of {input}");
            assert_eq!(ok(full), r, "reparsing {full}");
            if !is_identifier(familiar) {
                assert_eq!(ok(familiar), r, "reparsing {familiar}");
            }
            assert_eq!(input.parse::<Reference>().ok().as_ref(), Some(&r));
        }
    }

    #[test]
    fn invalid_references() {
        let fmt = ERR_REFERENCE_INVALID_FORMAT;
        let hex = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
        let cases: Vec<(String, String)> = vec![
            e("", fmt),
            e(":justtag", fmt),
            e(&format!("@sha256:{HEX64}"), fmt),
            e("https://github.com/docker/docker", fmt),
            e("-docker", fmt),
            e("-docker/docker", fmt),
            e("docker-/docker", fmt),
            e("-docker-/docker", fmt),
            e("-docker.io/docker/docker", fmt),
            e("docker///docker", fmt),
            e("docker.io/docker///docker", fmt),
            e("docker/", fmt),
            e("____/____", fmt),
            e("_docker/_docker", fmt),
            e("dock..er/docker", fmt),
            e("dock_.er/docker", fmt),
            e("dock-.er/docker", fmt),
            e("dock___er/docker", fmt),
            e("aa/asdf$$^/aa", fmt),
            e("[fc00::1]", fmt),
            e("[fc00::1]:5000", fmt),
            e("[2001:db8::1]:tag", fmt),
            e("fc00::1:5000/debian", fmt),
            e("[fe80::1%eth0]:5000/debian", fmt),
            e("[fe80::1%@invalidzone]:5000/repo", fmt),
            e("[2001:db8:3:4::192.0.2.33]:5000/debian", fmt),
            e("busybox:", fmt),
            e("busybox:-tag", fmt),
            e("busybox:.tag", fmt),
            e(&format!("busybox:{}", "a".repeat(129)), fmt),
            e("busybox@", fmt),
            e("busybox@sha256:abc", fmt),
            e("busybox:tag@", fmt),
            e("a b", fmt),
            e("host:/x", fmt),
            e("host:50a0/x", fmt),
            e("ho_st.com:5000/x", fmt),
            e("example.com./x", fmt),
            e(
                "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
                "repository name must not be more than 255 characters",
            ),
            e(
                &format!("{}a:tag", "a/".repeat(128)),
                "repository name must not be more than 255 characters",
            ),
            e(
                "Busybox",
                "invalid reference format: repository name (library/Busybox) must be lowercase",
            ),
            e(
                "Uppercase:tag",
                "invalid reference format: repository name (library/Uppercase) must be lowercase",
            ),
            e(
                "docker/Docker",
                "invalid reference format: repository name (docker/Docker) must be lowercase",
            ),
            e(
                "docker.io/docker/Docker",
                "invalid reference format: repository name (docker/Docker) must be lowercase",
            ),
            e(
                "test:5000/Uppercase/lowercase:tag",
                "invalid reference format: repository name (Uppercase/lowercase) must be lowercase",
            ),
            // Docker checks the case of everything up to the first ':'.
            e(
                &format!("busybox@SHA256:{HEX64}"),
                "invalid reference format: repository name (library/busybox@SHA256) must be lowercase",
            ),
            // Host-like first component, but only valid once lower-cased.
            e("Foo_bar/x", ERR_NAME_CONTAINS_UPPERCASE),
            e(
                hex,
                &format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings"),
            ),
            e("repo@sha256:ffffffffffffffffffffffffffffffffff", ERR_DIGEST_INVALID_LENGTH),
            e(&format!("repo@sha512:{HEX64}"), ERR_DIGEST_INVALID_LENGTH),
            e(&format!("repo@sha256:{}", HEX64.to_uppercase()), ERR_DIGEST_INVALID_FORMAT),
            e(&format!("validname@invaliddigest:{HEX64}"), ERR_DIGEST_UNSUPPORTED),
            // Algorithm components must start with a letter in the reference grammar.
            e(&format!("repo@sha-256:{HEX64}"), fmt),
            e(&format!("repo@sha+b64:{HEX64}"), ERR_DIGEST_UNSUPPORTED),
            // After a tag, upper case passes the name check and reaches go-digest.
            e(&format!("repo:tag@SHA256:{HEX64}"), ERR_DIGEST_INVALID_FORMAT),
            e(&format!("repo:tag@sha256:{}", HEX64.to_uppercase()), ERR_DIGEST_INVALID_FORMAT),
            // Docker accepts sha384; the store cannot represent it.
            e(&format!("repo@sha384:{HEX64}{}", &HEX64[..32]), ERR_DIGEST_UNSUPPORTED),
        ];
        fn e(input: &str, message: &str) -> (String, String) {
            (input.into(), message.into())
        }
        for (input, message) in &cases {
            assert_eq!(&err(input), message, "message for {input:?}");
        }
    }

    #[test]
    fn default_tag() {
        let r = Reference::parse_with_default_tag("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar(), "busybox:latest");

        let r = Reference::parse_with_default_tag("user/img:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/img:1.0");

        // A digest alone identifies the image: no tag is added.
        let r = Reference::parse_with_default_tag(&format!("img@{BUSYBOX_DIGEST}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/img@{BUSYBOX_DIGEST}")
        );

        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.tag(), None);
        assert!(Reference::parse_with_default_tag("Busybox").is_err());
    }

    #[test]
    fn accessors_and_builders() {
        let r = ok("host:5000/a/b:tag");
        assert_eq!(r.domain(), "host:5000");
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.repository(), "host:5000/a/b");
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(r.digest(), None);

        let d: Digest = BUSYBOX_DIGEST.parse().unwrap();
        let both = r.with_digest(d.clone());
        assert_eq!(
            both.to_string(),
            format!("host:5000/a/b:tag@{BUSYBOX_DIGEST}")
        );
        assert_eq!(both.digest(), Some(&d));
        let retagged = both.with_tag("v2").unwrap();
        assert_eq!(
            retagged.to_string(),
            format!("host:5000/a/b:v2@{BUSYBOX_DIGEST}")
        );
        assert_eq!(ok(&retagged.to_string()), retagged);
        assert_eq!(r.with_tag("TAG5").unwrap().tag(), Some("TAG5"));

        for bad in ["", "-foo", ".x", "a/b", "a:b", &"x".repeat(129)] {
            match r.with_tag(bad) {
                Err(Error::InvalidReference(m)) => assert_eq!(m, "invalid tag format"),
                other => panic!("with_tag({bad:?}) = {other:?}"),
            }
        }
        assert!(r.with_tag(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn serde_as_string() {
        let r = ok(&format!("busybox:1@{BUSYBOX_DIGEST}"));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            format!("\"docker.io/library/busybox:1@{BUSYBOX_DIGEST}\"")
        );
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        // Deserialization normalizes, like parsing.
        assert_eq!(
            serde_json::from_str::<Reference>("\"busybox\"").unwrap(),
            ok("busybox")
        );
        let e = serde_json::from_str::<Reference>("\"Busybox\"").unwrap_err();
        assert!(e.to_string().contains("must be lowercase"), "{e}");
    }

    #[test]
    fn go_lowercase_mapping() {
        assert_eq!(go_to_lower("ABC"), "abc");
        assert_eq!(go_to_lower("\u{130}"), "i");
        assert_eq!(go_to_lower("\u{212a}"), "k");
        // Non-ASCII uppercase in a name is reported as uppercase, as in Go.
        assert_eq!(
            err("\u{c9}t\u{e9}"),
            "invalid reference format: repository name (library/\u{c9}t\u{e9}) must be lowercase"
        );
        assert_eq!(err("\u{e9}t\u{e9}"), ERR_REFERENCE_INVALID_FORMAT);
        // The Kelvin sign lower-cases to ASCII 'k', so Docker calls it uppercase.
        assert_eq!(err("\u{212a}_b/x"), ERR_NAME_CONTAINS_UPPERCASE);
    }

    /// Docker's familiar form drops `docker.io/` even when the first path
    /// component would then read as a registry (`docker.io/a.b/c` → `a.b/c`).
    fn familiar_is_unambiguous(r: &Reference) -> bool {
        match r.path().split_once('/') {
            Some((first, _)) if r.domain() == DEFAULT_DOMAIN => {
                first == "library" || !(first == LOCALHOST || first.contains('.'))
            }
            _ => true,
        }
    }

    #[test]
    fn familiar_form_is_for_display() {
        let r = ok("docker.io/a.b/c");
        assert_eq!(r.familiar(), "a.b/c");
        assert_eq!(ok("a.b/c").domain(), "a.b");
        assert_eq!(ok("docker.io/localhost/x").familiar(), "localhost/x");
    }

    /// A path component, built from the grammar (`[a-z0-9]+` joined by separators).
    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,2}"
    }

    fn domain() -> impl Strategy<Value = Option<String>> {
        let name = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?){0,2}";
        prop_oneof![
            Just(None),
            Just(Some("docker.io".to_string())),
            Just(Some("index.docker.io".to_string())),
            Just(Some("localhost".to_string())),
            Just(Some("[::1]:5000".to_string())),
            "\\[[0-9a-fA-F]{0,4}:[0-9a-fA-F:]{0,10}\\](:[0-9]{1,5})?".prop_map(Some),
            (name, proptest::option::of("[0-9]{1,5}")).prop_map(|(n, p)| Some(match p {
                Some(p) => format!("{n}:{p}"),
                None => n,
            })),
        ]
    }

    fn digest() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            "[0-9a-f]{64}".prop_map(|h| Some(format!("sha256:{h}"))),
            "[0-9a-f]{128}".prop_map(|h| Some(format!("sha512:{h}"))),
        ]
    }

    fn reference_string() -> impl Strategy<Value = String> {
        (
            domain(),
            proptest::collection::vec(component(), 1..4),
            proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest(),
        )
            .prop_map(|(domain, path, tag, digest)| {
                let mut s = domain.map(|d| format!("{d}/")).unwrap_or_default();
                s.push_str(&path.join("/"));
                if let Some(t) = tag {
                    s.push(':');
                    s.push_str(&t);
                }
                if let Some(d) = digest {
                    s.push('@');
                    s.push_str(&d);
                }
                s
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Reference::parse(&s);
            let _ = Reference::parse_with_default_tag(&s);
        }

        #[test]
        fn parse_never_panics_on_reference_alphabet(s in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,40}") {
            if let Ok(r) = Reference::parse(&s) {
                prop_assert_eq!(Reference::parse(&r.to_string()).ok(), Some(r.clone()));
                if familiar_is_unambiguous(&r) {
                    prop_assert_eq!(Reference::parse(&r.familiar()).ok(), Some(r));
                }
            }
        }

        #[test]
        fn generated_references_round_trip(s in reference_string()) {
            let r = Reference::parse(&s);
            prop_assert!(r.is_ok(), "{:?} should parse: {:?}", s, r);
            let r = r.unwrap();
            let full = r.to_string();
            prop_assert_eq!(Reference::parse(&full).ok(), Some(r.clone()));
            if familiar_is_unambiguous(&r) {
                prop_assert_eq!(Reference::parse(&r.familiar()).ok(), Some(r.clone()));
            }
            let with_default = Reference::parse_with_default_tag(&s).unwrap();
            prop_assert_eq!(Reference::parse(&with_default.to_string()).ok(), Some(with_default));
        }
    }
}
