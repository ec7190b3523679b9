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

use crate::glob::{self, Tok};

/// Which ignore files apply to the Dockerfile at `dockerfile` (a path relative to the
/// context root), most specific first: `<dockerfile>.dockerignore` beside it, then
/// `.dockerignore` at the context root. The first that exists is the one used
/// (BuildKit's rule; the docker CLI 28 with the classic builder reads only
/// `.dockerignore` when it makes the context tar, so what `docker build` sends over
/// the API is already filtered that way).
pub fn ignore_file_candidates(dockerfile: &str) -> Vec<String> {
    let name = dockerfile.trim_start_matches("./").trim_start_matches('/');
    vec![format!("{name}.dockerignore"), ".dockerignore".to_string()]
}

/// A malformed pattern (Go's `filepath.ErrBadPattern`, or a lone `!`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IgnoreError {
    pub message: String,
}

/// How a pattern matches (moby/patternmatcher's match types).
#[derive(Debug, Clone, PartialEq, Eq)]
enum MatchType {
    /// The whole path equals the pattern.
    Exact,
    /// `dir/**`: the path starts with `dir/`.
    Prefix,
    /// `**/name`: the path is `name` or ends with `/name`.
    Suffix,
    Glob(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// Without the `!`.
    cleaned: String,
    exclusion: bool,
    match_type: MatchType,
}

/// The patterns of one ignore file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    /// As read and cleaned, `!` kept.
    lines: Vec<String>,
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Reads an ignore file's text (moby's `ignorefile.ReadAll`, then the matcher).
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = Vec::new();
        for line in text.lines() {
            // A comment only when `#` is the first character of the line.
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = String::new();
            if !pattern.is_empty() {
                cleaned = clean_path(pattern);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            lines.push(if invert {
                format!("!{cleaned}")
            } else {
                cleaned
            });
        }
        DockerIgnore::from_patterns(lines)
    }

    /// Builds the matcher from patterns already read (as `parse` cleans them; the
    /// builder adds `!Dockerfile`-style exceptions this way).
    pub fn from_patterns(
        lines: impl IntoIterator<Item = String>,
    ) -> Result<DockerIgnore, IgnoreError> {
        let mut out = DockerIgnore::default();
        for line in lines {
            let p = line.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean_path(p);
            let (exclusion, body) = match p.strip_prefix('!') {
                Some("") => {
                    return Err(IgnoreError {
                        message: "illegal exclusion pattern: \"!\"".to_string(),
                    })
                }
                Some(rest) => (true, rest.to_string()),
                None => (false, p.clone()),
            };
            let match_type = compile(&body)?;
            out.patterns.push(Pattern {
                cleaned: body,
                exclusion,
                match_type,
            });
            out.lines.push(line);
        }
        Ok(out)
    }

    /// The matcher with exceptions added for the ignore file itself and the Dockerfile
    /// (None when it comes from stdin) where the patterns would leave them out: the
    /// docker CLI always sends both (its `TrimBuildFilesFromExcludes`). The classic
    /// daemon, once it has read them, removes from the context those the patterns
    /// exclude (moby's `removeDockerfile`), so `COPY .` never sees them then.
    pub fn keeping_build_files(self, dockerfile: Option<&str>) -> DockerIgnore {
        let mut lines = self.lines.clone();
        if self.excludes(".dockerignore") {
            lines.push("!.dockerignore".to_string());
        }
        if let Some(df) = dockerfile {
            if self.excludes(df) {
                lines.push(format!("!{}", clean_path(df)));
            }
        }
        if lines.len() == self.lines.len() {
            return self;
        }
        // The added lines are clean patterns, so this cannot fail; keep self if it did.
        DockerIgnore::from_patterns(lines).unwrap_or(self)
    }

    /// The patterns, in order (`!` kept).
    pub fn patterns(&self) -> &[String] {
        &self.lines
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is left out of
    /// the context: the last pattern matching it or one of its parent directories
    /// decides (moby/patternmatcher's `MatchesOrParentMatches`).
    pub fn excludes(&self, rel_path: &str) -> bool {
        let file = clean_path(rel_path);
        let parent_dirs: Vec<&str> = match file.rfind('/') {
            Some(i) => file[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for pattern in &self.patterns {
            // An exclusion only matters once something matched, an inclusion only
            // while nothing has.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&file);
            if !hit {
                hit = (1..=parent_dirs.len()).any(|n| pattern.matches(&parent_dirs[..n].join("/")));
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether a directory walk may skip the excluded directory `rel_dir` whole: it is
    /// excluded and no exception pattern starts with `rel_dir/`. This is the rule of
    /// the docker CLI's context archiver, so Pier leaves out what `docker build`
    /// leaves out: an exception such as `!**/*.go` does not bring files back from under
    /// an excluded directory.
    pub fn can_skip_dir(&self, rel_dir: &str) -> bool {
        if !self.excludes(rel_dir) {
            return false;
        }
        let dir_slash = format!("{}/", clean_path(rel_dir));
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&dir_slash))
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.match_type {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.cleaned[2..];
                if let Some(name) = suffix.strip_prefix('/') {
                    if path == name {
                        return true;
                    }
                }
                path.ends_with(suffix)
            }
            MatchType::Glob(toks) => glob::matches(toks, path),
        }
    }
}

/// Compiles a cleaned pattern as moby/patternmatcher does (`*` and `?` never match `/`,
/// `**` any number of directories, a leading `**` or a trailing `/**` a plain suffix or
/// prefix test), checking the syntax as Go's `filepath.Match`.
fn compile(pattern: &str) -> Result<MatchType, IgnoreError> {
    let bad = || IgnoreError {
        message: "syntax error in pattern".to_string(),
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut kind = MatchType::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let at_start = first;
        first = false;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        toks.push(Tok::Star);
                        kind = MatchType::Glob(Vec::new());
                    }
                } else {
                    toks.push(Tok::OptDirs);
                    kind = MatchType::Glob(Vec::new());
                }
                if at_start {
                    kind = MatchType::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::StarNoSlash);
                kind = MatchType::Glob(Vec::new());
            }
            '?' => {
                toks.push(Tok::AnyNoSlash);
                kind = MatchType::Glob(Vec::new());
            }
            // An escaped character makes the pattern a glob (so `a\*b` matches `a*b`).
            '\\' => match chars.get(i) {
                Some(&e) => {
                    toks.push(Tok::Lit(e));
                    i += 1;
                    kind = MatchType::Glob(Vec::new());
                }
                None => return Err(bad()),
            },
            '[' => {
                let (tok, next) = glob::parse_class(&chars, i, &['^']).map_err(|_| bad())?;
                toks.push(tok);
                i = next;
                kind = MatchType::Glob(Vec::new());
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(match kind {
        MatchType::Glob(_) => MatchType::Glob(toks),
        other => other,
    })
}

/// Go's `path.Clean`: no repeated or trailing `/`, no `.` elements, `..` resolved where
/// possible; `.` for an empty result.
pub(crate) fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The .dockerignore and context of a build checked against dockerd 20.10's
    /// classic builder (`docker build` then `docker export`): these files were sent.
    #[test]
    fn matches_what_docker_sends() {
        let ignore = DockerIgnore::parse(
            "# comment\n  *.md  \n!docs/README.md\n/node_modules\nkeep/**\n!keep/x\na/**/*.go\n",
        )
        .unwrap();
        let sent = [
            ".dockerignore",
            "Dockerfile",
            "a",
            "a/b",
            "a/b/c",
            "a/b/g.txt",
            "a/h.md",
            "docs",
            "docs/README.md",
            "docs/other.md",
            "keep",
            "keep/x",
            "keep/x/y.md",
            "sp ace.txt",
        ];
        let left_out = [
            "top.md",
            "keep/z.txt",
            "node_modules",
            "node_modules/pkg",
            "node_modules/pkg/i.js",
            "a/b/c/f.go",
        ];
        for p in sent {
            assert!(!ignore.excludes(p), "{p} should be sent");
        }
        for p in left_out {
            assert!(ignore.excludes(p), "{p} should be left out");
        }
        assert!(ignore.can_skip_dir("node_modules"));
        assert!(!ignore.can_skip_dir("keep"), "not excluded itself");
        assert_eq!(
            ignore.patterns(),
            [
                "*.md",
                "!docs/README.md",
                "node_modules",
                "keep/**",
                "!keep/x",
                "a/**/*.go"
            ]
        );
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let ignore = DockerIgnore::parse("*\n!keep\nkeep/drop\n!keep/drop/back\n").unwrap();
        assert!(ignore.excludes("x"));
        assert!(!ignore.excludes("keep"));
        assert!(!ignore.excludes("keep/a"));
        assert!(ignore.excludes("keep/drop/b"));
        assert!(!ignore.excludes("keep/drop/back"));
        assert!(
            !ignore.can_skip_dir("keep/drop"),
            "an exception lies under it"
        );
        assert!(ignore.can_skip_dir("x"));
    }

    #[test]
    fn double_star_forms() {
        let d = DockerIgnore::parse("**/*.log\n**/tmp\nbuild/**\nsrc/**/gen\n").unwrap();
        assert!(d.excludes("a.log") && d.excludes("x/y/a.log"));
        assert!(d.excludes("tmp") && d.excludes("a/tmp") && d.excludes("a/tmp/f"));
        assert!(!d.excludes("atmp"));
        assert!(d.excludes("build/x") && !d.excludes("build") && !d.excludes("buildx/y"));
        assert!(d.excludes("src/gen") && d.excludes("src/a/b/gen/f") && !d.excludes("src/agen"));
    }

    #[test]
    fn cleaning_and_syntax() {
        let d =
            DockerIgnore::parse("/abs/./x/../y\n!  /z\n\\#lit\n#c\n dir/ \nf?o\n[a-c]x\n").unwrap();
        assert_eq!(
            d.patterns(),
            ["abs/y", "!z", "\\#lit", "dir", "f?o", "[a-c]x"]
        );
        assert!(d.excludes("abs/y/f") && d.excludes("dir/f") && d.excludes("#lit"));
        assert!(d.excludes("foo") && !d.excludes("f/o") && d.excludes("bx"));
        assert_eq!(
            DockerIgnore::parse("!\n").unwrap_err().message,
            "illegal exclusion pattern: \"!\""
        );
        assert_eq!(
            DockerIgnore::parse("a[\n").unwrap_err().message,
            "syntax error in pattern"
        );
        assert_eq!(
            DockerIgnore::parse("a\\\n").unwrap_err().message,
            "syntax error in pattern"
        );
        assert_eq!(clean_path("a//b/./c/.."), "a/b");
        assert_eq!(clean_path("../x"), "../x");
        assert_eq!(clean_path(""), ".");
    }

    /// Wildcards within one component, across components and escaped.
    #[test]
    fn wildcard_patterns() {
        let one = |pattern: &str, path: &str| {
            DockerIgnore::from_patterns([pattern.to_string()])
                .expect("pattern")
                .excludes(path)
        };
        let cases: &[(&str, &str, bool)] = &[
            ("*.log", "debug.log", true),
            ("*.log", "logs/debug.log", false),
            ("**/*.log", "logs/debug.log", true),
            ("build/*", "build/out/x", true),
            ("src/?.c", "src/a.c", true),
            ("src/?.c", "src/ab.c", false),
            ("[a-c]*", "beta", true),
            ("[^a-c]*", "delta", true),
            ("notes\\*", "notes*", true),
            ("notes\\*", "notes1", false),
            ("docs/**/draft", "docs/a/b/draft", true),
            ("docs/**/draft", "docs/draft", true),
            ("docs/**/draft", "other/draft", false),
            ("a(b)+c", "a(b)+c", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(one(pattern, path), *want, "{pattern} on {path}");
        }
    }

    #[test]
    fn build_files_are_always_sent() {
        let d = DockerIgnore::parse("*\n")
            .unwrap()
            .keeping_build_files(Some("sub/app.Dockerfile"));
        assert!(!d.excludes(".dockerignore") && !d.excludes("sub/app.Dockerfile"));
        assert!(d.excludes("sub/other") && d.excludes("x"));
        let d = DockerIgnore::parse("x\n")
            .unwrap()
            .keeping_build_files(None);
        assert_eq!(d.patterns(), ["x"]);
    }

    #[test]
    fn ignore_file_for_a_dockerfile() {
        assert_eq!(
            ignore_file_candidates("docker/app.Dockerfile"),
            ["docker/app.Dockerfile.dockerignore", ".dockerignore"]
        );
        assert_eq!(
            ignore_file_candidates("./Dockerfile"),
            ["Dockerfile.dockerignore", ".dockerignore"]
        );
    }
}
