//! `.dockerignore`: the patterns, matched as moby/patternmatcher does, and which ignore
//! file applies to a Dockerfile.
//!
//! Semantics: one pattern a line; `#` lines are comments; surrounding whitespace is
//! trimmed; each pattern is cleaned like Go's `filepath.Clean` and a leading `/` is
//! dropped; `!` makes an exception; `*`, `?`, `[…]` and `\` escapes as Go's
//! `filepath.Match` (they never match `/`), `**` any number of directories; the last
//! matching pattern wins; a path is excluded when it or one of its parent directories
//! is. The matcher is written here rather than taken from `globset`, whose syntax
//! differs (`{a,b}` alternation, `[!…]`) and whose `**` rules are not Docker's.

/// Which ignore files apply to the Dockerfile at `dockerfile` (a path relative to the
/// context root), most specific first: `<dockerfile>.dockerignore` beside it, then
/// `.dockerignore` at the context root. The first that exists is the one used.
pub fn ignore_file_candidates(dockerfile: &str) -> Vec<String> {
    let name = dockerfile.trim_start_matches("./").trim_start_matches('/');
    vec![format!("{name}.dockerignore"), ".dockerignore".to_string()]
}

/// A malformed pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IgnoreError {
    pub message: String,
}

/// The patterns of one ignore file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<String>,
}

impl DockerIgnore {
    /// Reads an ignore file's text.
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        let _ = text;
        Err(IgnoreError {
            message: "the .dockerignore matcher is not written yet".to_string(),
        })
    }

    /// The cleaned patterns, in order (`!` kept).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is left out of
    /// the context.
    pub fn excludes(&self, rel_path: &str) -> bool {
        let _ = rel_path;
        false
    }

    /// Whether a directory walk may skip the excluded directory `rel_dir` whole: it is
    /// excluded and no exception pattern could re-include anything under it.
    pub fn can_skip_dir(&self, rel_dir: &str) -> bool {
        let _ = rel_dir;
        false
    }
}
