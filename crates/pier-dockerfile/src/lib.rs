//! pier-dockerfile: the Dockerfile language (parser, variable expansion, .dockerignore),
//! written here, pure Rust, no I/O beyond what the caller passes in.
//!
//! It accepts what BuildKit's Dockerfile frontend (1.x) accepts, so Pier's builder can
//! take the modern syntax through the classic `POST /build` endpoint, and it reports
//! errors with the texts current Docker gives.
//!
//! # Shape of the API
//!
//! - [`parse`]`(text) -> Result<`[`Dockerfile`]`, `[`ParseError`]`>`: the whole file.
//!   A [`Dockerfile`] has its [`Directives`] (`# syntax=`, `# escape=`, `# check=`),
//!   the global `ARG`s before the first `FROM` ([`Dockerfile::global_args`]) and the
//!   [`Stage`]s. Each stage has its `FROM` (base, `--platform`, `AS name`) and its
//!   [`Instruction`]s; each instruction has its lines, its `original` text (what the
//!   classic builder echoes in `Step N/M : …`) and an [`InstructionKind`] with the
//!   instruction's arguments and flags, parsed and checked.
//! - [`parse_instruction`]`(text, escape)`: one instruction on its own, for `ONBUILD`
//!   triggers read from a base image's config.
//! - [`expand`]: Docker's shell-word lexer (quote removal, escapes, `$x`, `${x:-d}` …)
//!   that the builder applies, with the runtime environment, to the kinds Docker expands.
//! - [`ignore`]: `.dockerignore` matching (moby/patternmatcher semantics) and which
//!   ignore file applies to a Dockerfile.
//! - [`platform`]: the automatic platform args (`TARGETPLATFORM` …) and the predefined
//!   proxy args.
//! - [`chmod`]: `COPY --chmod` values, octal and symbolic.
//! - [`check`]: BuildKit's build checks: [`Dockerfile::warnings`] holds those the text
//!   decides (with their rule names and texts), [`Dockerfile::check`] the `# check=`
//!   directive (`skip=…`, `error=true` → [`check::CheckConfig::violation`]).
//! - For the executor: [`RunSpec::resolve`] (what a `RUN` executes, heredoc scripts
//!   included), [`RunMount::expanded`] / [`RunMount::is_readonly`] /
//!   [`RunMount::secret_id`] (BuildKit's mount defaults), [`CopySpec::paths`],
//!   [`Healthcheck::test`], [`Dockerfile::stage_index`], [`Dockerfile::step_count`].
//!
//! Errors name the line where the instruction starts (and ends: [`ParseError::excerpt`]
//! gives the source block BuildKit prints above an error); as in BuildKit an error of the
//! first pass (lines, JSON, heredocs, `ENV` syntax) anywhere in the file is reported
//! before an error of the second (flags, argument counts, unknown instructions).
//! Nothing here recurses on input depth beyond a small bound, so hostile input gives
//! an error, never a stack overflow.
//!
//! # Values are kept unexpanded
//!
//! Variable expansion needs the runtime environment (the base image's `ENV`, the
//! `ARG`s in scope, the build args), which only the executor has. So every value in the
//! AST is the text as written: quotes and escapes intact where Docker's parser keeps
//! them. Each [`InstructionKind`] variant says whether Docker expands it; the executor
//! runs those values through [`expand::process_word`] / [`expand::process_words`] with
//! the escape character of [`Directives::escape`]. Values Docker checks at parse time
//! (HEALTHCHECK durations, `--mount` types and numbers, `--network`) are parsed here;
//! a `--mount` number written as a variable (`uid=$UID`) waits for
//! [`RunMount::expanded`], as in BuildKit.
//!
//! # Where Pier is stricter than Docker
//!
//! Unknown flags on `ARG` and `STOPSIGNAL` (BuildKit ignores them), `--mount=type=ssh`
//! with `from`, `env=` on a mount other than a secret, and `RUN --security=insecure`
//! (Pier grants no such entitlement) are errors. Duplicate stage names are an error as
//! in the classic builder (BuildKit only warns).

pub mod check;
pub mod chmod;
pub mod expand;
mod glob;
pub mod ignore;
mod parser;
pub mod platform;

use std::time::Duration;

pub use parser::{parse, parse_instruction};

/// A parse error: the 1-based line where the offending instruction starts, and what is
/// wrong. Displays as current Docker does: `dockerfile parse error on line 3: unknown
/// instruction: FOO` (Debian's dockerd 20.10 says `… parse error line 3: …`, without
/// "on"). The builder adds the file name when it reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number where the offending instruction starts.
    pub line: usize,
    /// 1-based line number where it ends (continuations, heredocs).
    pub end_line: usize,
    pub message: String,
}

impl ParseError {
    /// BuildKit's source excerpt for this error (see [`source_excerpt`]).
    pub fn excerpt(&self, file_name: &str, text: &str) -> String {
        source_excerpt(file_name, text, self.line, self.end_line)
    }
}

/// The lines `start..=end` of `text` with some context, marked `>>>`, as BuildKit prints
/// them above a build error (its `errdefs.Source.Print`):
///
/// ```text
/// Dockerfile:2
/// --------------------
///    1 |     FROM busybox
///    2 | >>> FROMM x
///    3 |
/// --------------------
/// ```
///
/// Empty when the lines are not in the text.
pub fn source_excerpt(file_name: &str, text: &str, start: usize, end: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let (mut start, mut end) = (start, end.max(start));
    if start < 1 || start > lines.len() {
        return String::new();
    }
    end = end.min(lines.len());
    let (marked_start, marked_end) = (start, end);
    let pad = if end == start { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != lines.len() {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{file_name}:{marked_start}\n--------------------\n");
    for (i, line) in lines.iter().enumerate().take(end).skip(start - 1) {
        let n = i + 1;
        let prefix = if (marked_start..=marked_end).contains(&n) {
            ">>>"
        } else {
            "   "
        };
        out.push_str(&format!(" {n:>3} | {prefix} {line}\n"));
    }
    out.push_str("--------------------\n");
    out
}

/// Something Docker accepts but warns about: a build check (BuildKit's linter) the text
/// alone decides (an empty continuation line, the legacy `ENV key value` form, stage
/// name casing …); the builder prints these and fails on them under `# check=error=true`
/// ([`check::CheckConfig::violation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line number.
    pub line: usize,
    /// The rule, as BuildKit names it ([`check::rules`]).
    pub rule: &'static str,
    /// BuildKit's text.
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    /// The `ARG` instructions before the first `FROM` (each an
    /// [`InstructionKind::Arg`]): usable in every `FROM` line, and in a stage once the
    /// stage redeclares them (`ARG name` without a value). The classic builder counts
    /// them as steps.
    pub global_args: Vec<Instruction>,
    /// At least one.
    pub stages: Vec<Stage>,
    /// The build checks' findings, in line order, those `# check=skip=…` skips left out.
    pub warnings: Vec<Warning>,
    /// The `# check=` directive, parsed.
    pub check: check::CheckConfig,
}

impl Dockerfile {
    /// The declarations of [`global_args`](Self::global_args), in order.
    pub fn global_arg_decls(&self) -> impl Iterator<Item = &ArgDecl> {
        self.global_args.iter().flat_map(|i| match &i.kind {
            InstructionKind::Arg(decls) => decls.as_slice(),
            _ => &[],
        })
    }

    /// The index of the stage named `name` (compared lowercased, as Docker does) or,
    /// when `name` is a number, that index if it is a stage.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>()
            .ok()
            .filter(|&i| i < self.stages.len())
    }

    /// The number of instructions the classic builder counts as steps (the `M` of
    /// `Step N/M`): global `ARG`s, each `FROM` and each instruction.
    pub fn step_count(&self) -> usize {
        self.global_args.len()
            + self
                .stages
                .iter()
                .map(|s| 1 + s.instructions.len())
                .sum::<usize>()
    }
}

/// The parser directives: `# name=value` comments at the very top of the file (before
/// any instruction, empty line or other comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=`: the frontend image BuildKit would use. Pier always uses its own
    /// parser; the value is kept for the builder to report.
    pub syntax: Option<String>,
    /// `# escape=`: `\` (default) or `` ` ``. Also the escape character of
    /// [`expand`].
    pub escape: char,
    /// `# check=`: BuildKit's build-check configuration (`skip=…;error=true`), kept raw.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Directives {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// One build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS name`, lowercased as Docker does.
    pub name: Option<String>,
    /// The base image or stage name, unexpanded (Docker expands it with the global
    /// args only). `scratch` means no base.
    pub base: String,
    /// `--platform`, unexpanded (expanded with the global and automatic args).
    pub platform: Option<String>,
    /// 1-based line of the `FROM`.
    pub line: usize,
    /// The `FROM` instruction as the classic builder echoes it.
    pub original: String,
    pub instructions: Vec<Instruction>,
}

/// One instruction other than `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// 1-based line where it ends (continuations and heredocs included).
    pub end_line: usize,
    /// The instruction as the classic builder echoes it in `Step N/M : …`: the logical
    /// line (continuations joined, comments dropped), heredoc bodies not included.
    pub original: String,
    pub kind: InstructionKind,
}

/// The shell form (a string run by the stage's `SHELL`) or the exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    Shell(String),
    Exec(Vec<String>),
}

/// A here-document (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes or `-`.
    pub name: String,
    /// The body, each line ending with `\n`; for `<<-` with the leading tabs removed.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no variable
    /// expansion in the body.
    pub expand: bool,
    /// Whether it was `<<-` (leading tabs already stripped from `content`).
    pub chomp: bool,
}

/// An `ARG` declaration: `name` or `name=default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// Unexpanded, quotes intact (Docker expands it).
    pub default: Option<String>,
}

/// An instruction and its arguments. "Expanded" means Docker runs the values through
/// the shell-word lexer ([`expand`]) with the environment in scope at that step;
/// "not expanded" means the builder passes them on as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `RUN`: not expanded by the builder (the shell does it); `--mount` string fields
    /// are expanded.
    Run(RunSpec),
    /// `CMD`: not expanded.
    Cmd(ShellOrExec),
    /// `ENTRYPOINT`: not expanded.
    Entrypoint(ShellOrExec),
    /// `SHELL ["exe", "args"…]` (JSON form only): not expanded.
    Shell(Vec<String>),
    /// `LABEL k=v …` (or legacy `LABEL k v`): keys and values expanded.
    Label(Vec<(String, String)>),
    /// `MAINTAINER text`: not expanded.
    Maintainer(String),
    /// `EXPOSE 80/tcp …`: each word expanded (and may split into several).
    Expose(Vec<String>),
    /// `ENV k=v …` (or legacy `ENV k v`): values expanded, with the keys set earlier
    /// in the same instruction not yet visible (Docker's rule).
    Env(Vec<(String, String)>),
    /// `ADD`: sources, destination and flag values expanded.
    Add(CopySpec),
    /// `COPY`: sources, destination and flag values expanded.
    Copy(CopySpec),
    /// `VOLUME`: JSON list or whitespace-separated words; each expanded.
    Volume(Vec<String>),
    /// `USER user[:group]`: expanded.
    User(String),
    /// `WORKDIR path`: expanded.
    Workdir(String),
    /// `ARG`: defaults expanded.
    Arg(Vec<ArgDecl>),
    /// `ONBUILD trigger`: the trigger is stored raw in the image config and expanded,
    /// per its own kind, when a build uses the image as its base.
    Onbuild(Onbuild),
    /// `STOPSIGNAL signal`: expanded.
    Stopsignal(String),
    /// `HEALTHCHECK`: not expanded.
    Healthcheck(Healthcheck),
}

/// `RUN [--mount=…]… [--network=…] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// For `RUN <<EOF` the shell form holds the line as written (`<<EOF`, or
    /// `python3 <<EOF` …) and [`heredocs`](Self::heredocs) the bodies; BuildKit runs a
    /// lone heredoc as the script (through its `#!` if it has one) and otherwise
    /// hands the line followed by each body and delimiter to the shell.
    pub command: ShellOrExec,
    pub mounts: Vec<RunMount>,
    pub network: Option<RunNetwork>,
    pub heredocs: Vec<Heredoc>,
}

impl RunSpec {
    /// What the step executes, BuildKit's way, given the stage's `SHELL`:
    /// - the exec form: its argv;
    /// - a lone heredoc (`RUN <<EOF`): its body is the script, run by the shell, or,
    ///   when it starts with `#!`, written to [`ScriptFile::path`] (`/dev/pipes/NAME`,
    ///   mode 0755, read-only) and that path run by the shell;
    /// - otherwise the shell runs the command line followed by each heredoc's body and
    ///   delimiter, so the shell itself feeds them (`python3 <<EOF`, `cat <<A >a`).
    pub fn resolve(&self, shell: &[String]) -> ResolvedRun {
        let line = match &self.command {
            ShellOrExec::Exec(argv) => {
                return ResolvedRun {
                    argv: argv.clone(),
                    script_file: None,
                }
            }
            ShellOrExec::Shell(line) => line,
        };
        let with_shell = |script: String| shell.iter().cloned().chain([script]).collect();
        let lone = match self.heredocs.as_slice() {
            [doc] => parser::parse_heredoc(line.trim())
                .ok()
                .flatten()
                .filter(|h| h.name == doc.name)
                .map(|_| doc),
            _ => None,
        };
        match lone {
            Some(doc) if doc.content.starts_with("#!") => {
                let path = format!("/dev/pipes/{}", doc.name);
                ResolvedRun {
                    argv: with_shell(path.clone()),
                    script_file: Some(ScriptFile {
                        path,
                        content: doc.content.clone(),
                    }),
                }
            }
            Some(doc) => ResolvedRun {
                argv: with_shell(doc.content.clone()),
                script_file: None,
            },
            None => {
                let mut script = line.clone();
                for doc in &self.heredocs {
                    script.push('\n');
                    script.push_str(&doc.content);
                    script.push_str(&doc.name);
                }
                ResolvedRun {
                    argv: with_shell(script),
                    script_file: None,
                }
            }
        }
    }
}

/// What a `RUN` executes ([`RunSpec::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRun {
    pub argv: Vec<String>,
    /// A file the executor provides (read-only, mode 0755) before running `argv`.
    pub script_file: Option<ScriptFile>,
}

/// A heredoc script with a `#!` line, run as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptFile {
    /// Absolute path in the container: `/dev/pipes/<delimiter>`.
    pub path: String,
    pub content: String,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    Default,
    None,
    Host,
}

/// `RUN --mount=type=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// One `RUN --mount=…`, with BuildKit's defaults not filled in (the executor applies
/// them: a bind mount is read-only unless `rw`, a secret's target defaults to
/// `/run/secrets/<id>`, …). String fields are unexpanded (BuildKit expands them);
/// numbers are parsed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub mount_type: MountType,
    /// `target=`, `dst=`, `destination=`.
    pub target: Option<String>,
    /// `source=`, `src=`.
    pub source: Option<String>,
    /// `from=`: a stage name, index or image.
    pub from: Option<String>,
    /// `id=`.
    pub id: Option<String>,
    /// `sharing=` (cache mounts).
    pub sharing: Option<CacheSharing>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `ro`/`readonly`, `rw`/`readwrite`; None when not given (the default depends on
    /// the type: bind read-only, cache read-write).
    pub readonly: Option<bool>,
    /// `required` (secret and ssh mounts).
    pub required: Option<bool>,
    /// `env=` (secret mounts): the variable to expose the secret as.
    pub env: Option<String>,
    /// `size=` in bytes (tmpfs mounts).
    pub size: Option<u64>,
    /// The `--mount` value as written, for [`expanded`](Self::expanded).
    pub raw: String,
    /// A non-string field (`type`, `uid` …) holds a variable: it and the checks that
    /// depend on it wait for [`expanded`](Self::expanded), which the executor calls
    /// before using the mount anyway.
    pub deferred: bool,
}

impl RunMount {
    /// The mount with every value run through `expand` (BuildKit expands them with the
    /// step's args and env) and then interpreted and checked, as BuildKit does at
    /// dispatch; an error is a bad value (`invalid value abc for uid` …) or `expand`'s.
    pub fn expanded(
        &self,
        mut expand: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<RunMount, String> {
        parser::parse_mount(&self.raw, Some(&mut expand))
    }

    /// Read-only as given, else BuildKit's default: cache and tmpfs mounts are
    /// writable, the others read-only.
    pub fn is_readonly(&self) -> bool {
        self.readonly.unwrap_or(!matches!(
            self.mount_type,
            MountType::Cache | MountType::Tmpfs
        ))
    }

    /// The id of a secret (`source`, else `id`, else the base name of `target`) or an
    /// ssh agent (`id`, else `default`), as BuildKit picks it; None for other types.
    pub fn secret_id(&self) -> Option<String> {
        match self.mount_type {
            MountType::Secret => self.source.clone().or_else(|| self.id.clone()).or_else(|| {
                self.target.as_deref().map(|t| {
                    t.trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
            }),
            MountType::Ssh => Some(self.id.clone().unwrap_or_else(|| "default".to_string())),
            _ => None,
        }
    }
}

/// The arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// At least one (heredoc sources appear as their `<<NAME` word and in
    /// [`heredocs`](Self::heredocs)). Unexpanded; from the JSON form or split on
    /// whitespace (quotes do not group in the shell form, as in Docker).
    pub sources: Vec<String>,
    pub dest: String,
    /// `--from=`: a stage name, index or image (COPY only).
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=` raw; see [`chmod::Chmod::parse`].
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude=` patterns, in order.
    pub excludes: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// `--checksum=` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack[=bool]` (ADD only; None when not given: local archives are unpacked,
    /// remote ones not).
    pub unpack: Option<bool>,
    pub heredocs: Vec<Heredoc>,
}

impl CopySpec {
    /// The sources that are paths (or URLs), without the heredoc ones, in order.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.sources
            .iter()
            .filter(|s| !matches!(parser::parse_heredoc(s), Ok(Some(_))))
    }
}

/// `ONBUILD trigger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger text as stored in the image config's `OnBuild` (the instruction
    /// after `ONBUILD`, as written).
    pub expression: String,
    /// The trigger as parsed now; None when it does not parse (an unknown instruction,
    /// bad flags …): Docker accepts and stores such a trigger, and the build that uses
    /// the image as its base fails on it ([`parse_instruction`] then says why).
    pub trigger: Option<Box<Instruction>>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// None for `HEALTHCHECK NONE`.
    pub command: Option<ShellOrExec>,
    /// `--interval`; None when not given (0 in the image config: inherit the default).
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

impl Healthcheck {
    /// The `Test` list of the image config: `["NONE"]`, `["CMD-SHELL", cmd]` or
    /// `["CMD", args…]`.
    pub fn test(&self) -> Vec<String> {
        match &self.command {
            None => vec!["NONE".to_string()],
            Some(ShellOrExec::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
            Some(ShellOrExec::Exec(args)) => std::iter::once("CMD".to_string())
                .chain(args.iter().cloned())
                .collect(),
        }
    }
}

impl InstructionKind {
    /// The instruction's name, upper case (`RUN`, `COPY` …).
    pub fn name(&self) -> &'static str {
        match self {
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::User(_) => "USER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::Stopsignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(text: &str) -> RunSpec {
        let df = parse(&format!("FROM scratch\n{text}")).unwrap();
        match &df.stages[0].instructions[0].kind {
            InstructionKind::Run(r) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn sh() -> Vec<String> {
        vec!["/bin/sh".to_string(), "-c".to_string()]
    }

    /// BuildKit's TestParseExtractsHeredoc (parser_heredoc_test.go), with the bodies of
    /// `<<-` already chomped, as Pier keeps them, through both passes.
    #[test]
    fn heredocs_as_buildkit_extracts_them() {
        let df = parse(
            "\nFROM alpine:3.6\n\nENV NAME=me\n\nRUN ls\n\nUSER <<INVALID\n\nRUN <<EMPTY\nEMPTY\n\n\
             RUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\nRUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\n\
             RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\nRUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\n\
             RUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\nRUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\n\
             RUN <<COPY\necho hello world\necho foo bar\nCOPY\n\n\
             RUN <<COMMENT\n# internal comment\necho hello world\necho foo bar # trailing comment\nCOMMENT\n\n\
             RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\n\
             COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\n\
             COPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n\n\
             RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n\nCOPY <<file.txt /dest\nhello world\nfile.txt\n\n\
             RUN <<eo'f'\necho foo\neof\n\nRUN <<eo\\'f\necho foo\neo'f\n\nRUN <<'e'o\\'f\necho foo\neo'f\n\n\
             RUN <<'one two'\necho bar\none two\n\nRUN <<$EOF\n$EOF\n\nRUN <<  EOF\nEOF\n\nRUN <<  EOF  > foo\nEOF\n\t",
        )
        .unwrap();
        let docs: Vec<Vec<(String, String, bool, bool)>> = df.stages[0]
            .instructions
            .iter()
            .map(|i| {
                let docs = match &i.kind {
                    InstructionKind::Run(r) => r.heredocs.clone(),
                    InstructionKind::Copy(c) => c.heredocs.clone(),
                    _ => Vec::new(),
                };
                docs.into_iter()
                    .map(|h| (h.name, h.content, h.expand, h.chomp))
                    .collect()
            })
            .collect();
        let d = |name: &str, content: &str, expand: bool, chomp: bool| {
            vec![(name.to_string(), content.to_string(), expand, chomp)]
        };
        let none = Vec::new;
        let expected = vec![
            none(), // ENV
            none(), // RUN ls
            // USER <<INVALID (in BuildKit's test a line INVALID follows, which its first pass
            // takes as an instruction and its second refuses)
            none(),
            d("EMPTY", "", true, false),
            d("EMPTY2", "", true, false),
            none(), // RUN "<<NOHEREDOC"
            d("INDENT", "\tfoo\n\tbar\n", true, false),
            d("UNINDENT", "baz\nquux\n", true, true),
            d("UNINDENT2", "baz\nquux\n", true, true),
            d("EXPAND", "expand $NAME\n", true, true),
            d("NOEXPAND", "don't expand $NAME\n", false, true),
            d("COPY", "echo hello world\necho foo bar\n", true, false),
            d(
                "COMMENT",
                "# internal comment\necho hello world\necho foo bar # trailing comment\n",
                true,
                false,
            ),
            d("MOUNT", "echo hello\n", true, false),
            [
                d("FILE1", "content 1\n", true, false),
                d("FILE2", "content 2\n", true, false),
            ]
            .concat(),
            d("EOF", "\"foo\"\n'bar'\n", true, false),
            [d("X", "Y\n", true, false), d("Y", "X\n", true, false)].concat(),
            d("COMPLEX", "print('hello world')\n", true, false),
            d("file.txt", "hello world\n", true, false),
            d("eof", "echo foo\n", false, false),
            d("eo'f", "echo foo\n", true, false),
            d("eo'f", "echo foo\n", false, false),
            d("one two", "echo bar\n", false, false),
            d("$EOF", "", true, false),
            d("EOF", "", true, false),
            d("EOF", "", true, false),
        ];
        assert_eq!(docs.len(), expected.len(), "{docs:?}");
        for (i, (got, want)) in docs.iter().zip(&expected).enumerate() {
            assert_eq!(got, want, "instruction {i}");
        }
    }

    fn copy_of(text: &str) -> CopySpec {
        let df = parse(&format!("FROM scratch\n{text}")).unwrap();
        match &df.stages[0].instructions[0].kind {
            InstructionKind::Copy(c) | InstructionKind::Add(c) => c.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn copy_and_add_details() {
        let c = copy_of("COPY a <<EOF b /d/\nbody\nEOF\n");
        assert_eq!(c.paths().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c.heredocs[0].content, "body\n");
        assert_eq!(copy_of("ADD --unpack=false a.tar /").unpack, Some(false));
        assert_eq!(copy_of("ADD --unpack a.tar /").unpack, Some(true));
        assert_eq!(copy_of("ADD a.tar /").unpack, None);
        // The JSON form: a heredoc-looking source is an empty heredoc, as in BuildKit.
        let c = copy_of("COPY [\"<<EOF\", \"/x\"]");
        assert_eq!((c.heredocs.len(), c.heredocs[0].content.as_str()), (1, ""));
        let err = |t: &str| parse(&format!("FROM scratch\n{t}")).unwrap_err().message;
        assert_eq!(
            err("COPY [\"a\", \"<<EOF\"]"),
            "COPY cannot accept a heredoc as a destination"
        );
        assert_eq!(err("COPY --unpack a b"), "unknown flag: --unpack");
        assert_eq!(err("ARG =x"), "ARG names can not be blank");
    }

    #[test]
    fn heredoc_names_and_descriptors() {
        let run = run_of("RUN cat 3<<EOF <<$NAME\nthree\nEOF\nname\n$NAME\n");
        let names: Vec<_> = run
            .heredocs
            .iter()
            .map(|h| (h.name.as_str(), h.content.as_str()))
            .collect();
        assert_eq!(names, [("EOF", "three\n"), ("$NAME", "name\n")]);
    }

    #[test]
    fn run_resolution_follows_buildkit() {
        let lone = run_of("RUN <<EOF\necho a\necho b\nEOF\n").resolve(&sh());
        assert_eq!(lone.argv, ["/bin/sh", "-c", "echo a\necho b\n"]);
        assert_eq!(lone.script_file, None);

        let shebang =
            run_of("RUN <<-EOT\n\t#!/usr/bin/env python3\n\tprint(1)\n\tEOT\n").resolve(&sh());
        assert_eq!(shebang.argv, ["/bin/sh", "-c", "/dev/pipes/EOT"]);
        assert_eq!(
            shebang.script_file,
            Some(ScriptFile {
                path: "/dev/pipes/EOT".to_string(),
                content: "#!/usr/bin/env python3\nprint(1)\n".to_string(),
            })
        );

        let fed = run_of("RUN cat <<A >a && cat <<'B' >b\n1\nA\n$2\nB\n").resolve(&sh());
        assert_eq!(
            fed.argv,
            ["/bin/sh", "-c", "cat <<A >a && cat <<'B' >b\n1\nA\n$2\nB"]
        );

        let exec = run_of("RUN [\"/bin/true\", \"x\"]").resolve(&sh());
        assert_eq!(exec.argv, ["/bin/true", "x"]);
        let plain = run_of("RUN echo hi").resolve(&["bash".to_string(), "-ec".to_string()]);
        assert_eq!(plain.argv, ["bash", "-ec", "echo hi"]);
    }

    #[test]
    fn mount_defaults_and_expansion() {
        let run = run_of(
            "RUN --mount=type=secret,target=/run/s/tok --mount=type=cache,target=$D \\\n --mount=type=ssh --mount=target=/b,from=x true",
        );
        let ids: Vec<_> = run.mounts.iter().map(RunMount::secret_id).collect();
        assert_eq!(
            ids,
            [
                Some("tok".to_string()),
                None,
                Some("default".to_string()),
                None
            ]
        );
        let ro: Vec<_> = run.mounts.iter().map(RunMount::is_readonly).collect();
        assert_eq!(ro, [true, false, true, true]);
        let cache = run.mounts[1]
            .expanded(|v| Ok(v.replace("$D", "/cache")))
            .unwrap();
        assert_eq!(cache.target.as_deref(), Some("/cache"));
        assert_eq!(cache.mount_type, MountType::Cache);
        assert!(!cache.deferred);
    }

    #[test]
    fn mount_numbers_from_variables_wait_for_expansion() {
        let run = run_of("RUN --mount=type=cache,target=/c,uid=$UID,gid=${GID:-0},sharing=$S true");
        let m = &run.mounts[0];
        assert!(m.deferred);
        assert_eq!((m.mount_type, m.uid, m.gid), (MountType::Cache, None, None));
        let vars = |v: &str| {
            Ok(v.replace("$UID", "1000")
                .replace("${GID:-0}", "0")
                .replace("$S", "locked"))
        };
        let e = m.expanded(vars).unwrap();
        assert_eq!(
            (e.uid, e.gid, e.sharing),
            (Some(1000), Some(0), Some(CacheSharing::Locked))
        );
        assert_eq!(
            m.expanded(|v| Ok(v.replace("$UID", "abc"))).unwrap_err(),
            "invalid value abc for uid"
        );
        // The type from a variable: checks wait for it too.
        let run = run_of("RUN --mount=type=$T,target=/s,uid=1 true");
        assert!(run.mounts[0].deferred);
        assert_eq!(
            run.mounts[0]
                .expanded(|v| Ok(v.replace("$T", "bind")))
                .unwrap_err(),
            "uid not allowed for \"bind\" type mounts"
        );
    }

    #[test]
    fn stages_by_name_or_index_and_step_count() {
        let df = parse("ARG A\nFROM scratch AS One\nRUN x\nFROM one\nFROM scratch\n").unwrap();
        assert_eq!(df.stage_index("ONE"), Some(0));
        assert_eq!(df.stage_index("1"), Some(1));
        assert_eq!(df.stage_index("3"), None);
        assert_eq!(df.stage_index("other"), None);
        assert_eq!(df.step_count(), 5);
        assert_eq!(
            df.global_arg_decls()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["A"]
        );
    }

    #[test]
    fn lone_instructions_for_onbuild_triggers() {
        let ins = parse_instruction("RUN <<EOF\necho later\nEOF", '\\').unwrap();
        assert_eq!(ins.kind.name(), "RUN");
        assert_eq!(ins.original, "RUN <<EOF");
        let ins = parse_instruction("COPY a `\n b", '`').unwrap();
        match ins.kind {
            InstructionKind::Copy(c) => {
                assert_eq!((c.sources, c.dest), (vec!["a".into()], "b".into()))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_instruction("FOO bar", '\\').unwrap_err().message,
            "unknown instruction: FOO (did you mean FROM?)"
        );
        assert!(parse_instruction("FROM x", '\\').is_err());
        assert!(parse_instruction("RUN a\nRUN b", '\\').is_err());
    }

    #[test]
    fn onbuild_keeps_an_unparsable_trigger_as_docker_does() {
        let df = parse("FROM scratch\nONBUILD FOO bar\nONBUILD  COPY --bad a b \n").unwrap();
        let triggers: Vec<_> = df.stages[0]
            .instructions
            .iter()
            .map(|i| match &i.kind {
                InstructionKind::Onbuild(o) => (o.expression.clone(), o.trigger.is_some()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            triggers,
            [
                ("FOO bar".to_string(), false),
                ("COPY --bad a b ".to_string(), false)
            ]
        );
    }

    fn rules_of(text: &str) -> Vec<(usize, &'static str, String)> {
        parse(text)
            .unwrap()
            .warnings
            .into_iter()
            .map(|w| (w.line, w.rule, w.message))
            .collect()
    }

    #[test]
    fn build_checks_decided_by_the_text() {
        let found = rules_of(
            "ARG API_TOKEN\nFROM --platform=linux/amd64 busybox as Builder\nMAINTAINER me\n\
             ENV DB_PASSWORD=x PUBLIC_KEY=y\nCMD a\nCMD b\nrun true\nFROM scratch AS context\n\
             FROM --platform=$TARGETPLATFORM scratch AS amd64-build\n",
        );
        let expect: &[(usize, &str, &str)] = &[
            (1, "SecretsUsedInArgOrEnv", "Do not use ARG or ENV instructions for sensitive data (ARG \"API_TOKEN\")"),
            (2, "StageNameCasing", "Stage name 'Builder' should be lowercase"),
            (2, "FromAsCasing", "'as' and 'FROM' keywords' casing do not match"),
            (2, "FromPlatformFlagConstDisallowed", "FROM --platform flag should not use constant value \"linux/amd64\""),
            (3, "MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label"),
            (4, "SecretsUsedInArgOrEnv", "Do not use ARG or ENV instructions for sensitive data (ENV \"DB_PASSWORD\")"),
            (5, "MultipleInstructionsDisallowed", "Multiple CMD instructions should not be used in the same stage because only the last one will be used"),
            (7, "ConsistentInstructionCasing", "Command 'run' should match the case of the command majority (uppercase)"),
            (8, "ReservedStageName", "Stage name should not use the same name as reserved stage \"context\""),
            (9, "RedundantTargetPlatform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"),
        ];
        let found: Vec<(usize, &str, &str)> =
            found.iter().map(|(l, r, m)| (*l, *r, m.as_str())).collect();
        assert_eq!(found, expect);
        let found = rules_of(
            "ARG VERSION\nFROM alpine:${VERSON} AS a\nFROM --platform=$BUILDPLATFORM alpine:$TAG\n",
        );
        let found: Vec<(usize, &str, &str)> =
            found.iter().map(|(l, r, m)| (*l, *r, m.as_str())).collect();
        assert_eq!(
            found,
            [
                (
                    2,
                    "InvalidDefaultArgInFrom",
                    "Default value for ARG alpine:${VERSON} results in empty or invalid base image name"
                ),
                (
                    2,
                    "UndefinedArgInFrom",
                    "FROM argument 'VERSON' is not declared (did you mean VERSION?)"
                ),
                (
                    3,
                    "InvalidDefaultArgInFrom",
                    "Default value for ARG alpine:$TAG results in empty or invalid base image name"
                ),
                (
                    3,
                    "UndefinedArgInFrom",
                    "FROM argument 'TAG' is not declared"
                ),
            ]
        );
        let found = rules_of("ARG TAG\nARG IMG=alpine\nFROM ${IMG}:${TAG}\nFROM $IMG:${TAG:-3}\n");
        let found: Vec<(usize, &str, &str)> =
            found.iter().map(|(l, r, m)| (*l, *r, m.as_str())).collect();
        assert_eq!(
            found,
            [(
                3,
                "InvalidDefaultArgInFrom",
                "Default value for ARG ${IMG}:${TAG} results in empty or invalid base image name"
            )]
        );
        // A constant platform the stage is named after is fine.
        assert!(rules_of("FROM --platform=linux/arm64 scratch AS build-arm64\n").is_empty());
    }

    #[test]
    fn check_directive_skips_and_fails() {
        let df = parse(
            "# check=skip=MaintainerDeprecated;error=true\nFROM scratch\nMAINTAINER x\nENV a b\n",
        )
        .unwrap();
        let rules: Vec<_> = df.warnings.iter().map(|w| w.rule).collect();
        assert_eq!(rules, ["LegacyKeyValueFormat"]);
        assert_eq!(
            df.check.violation(&df.warnings).as_deref(),
            Some("lint violation found for rules: LegacyKeyValueFormat")
        );
        let df = parse("# check=skip=all\nfrom scratch\nMAINTAINER x\n").unwrap();
        assert!(df.warnings.is_empty());
        assert_eq!(
            parse("# check=bogus\nFROM scratch\n").unwrap_err().to_string(),
            "dockerfile parse error on line 1: failed to parse check options: invalid check option \"bogus\""
        );
    }

    #[test]
    fn error_excerpts_as_buildkit_prints_them() {
        let text = "FROM busybox\nRUN a\nFROMM x\nRUN b \\\n  c\nRUN d\nRUN e\n";
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.end_line), (3, 3));
        assert_eq!(
            e.excerpt("Dockerfile", text),
            "Dockerfile:3\n--------------------\n   1 |     FROM busybox\n   2 |     RUN a\n   3 | >>> FROMM x\n   4 |     RUN b \\\n   5 |       c\n--------------------\n"
        );
        let text = "FROM busybox\nCOPY --bad \\\n a b\n";
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.end_line), (2, 3));
        assert_eq!(
            e.excerpt("app.Dockerfile", text),
            "app.Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> COPY --bad \\\n   3 | >>>  a b\n   4 |     \n--------------------\n"
        );
        assert_eq!(source_excerpt("D", "x", 5, 5), "");
    }

    #[test]
    fn directives_only_at_the_top() {
        let df =
            parse("# Syntax = docker/dockerfile:1.7\n#check=skip=all\n#escape=`\nFROM scratch\n")
                .unwrap();
        assert_eq!(
            df.directives.syntax.as_deref(),
            Some("docker/dockerfile:1.7")
        );
        assert_eq!(df.directives.check.as_deref(), Some("skip=all"));
        assert_eq!(df.directives.escape, '`');
        // After a comment that is no directive, or an empty line, they are comments.
        let df = parse("# hello\n# escape=`\nFROM scratch\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
        let df = parse("\n# escape=`\nFROM scratch\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
        let df = parse("FROM scratch\n# escape=`\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
        // An unknown directive ends them too.
        let df = parse("# foo=bar\n# escape=`\nFROM scratch\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
    }

    #[test]
    fn instruction_names_are_case_insensitive_and_crlf_is_fine() {
        let df = parse("from scratch as X\r\nrUn echo hi\r\nCoPy a b\r\n").unwrap();
        assert_eq!(df.stages[0].name.as_deref(), Some("x"));
        let kinds: Vec<_> = df.stages[0]
            .instructions
            .iter()
            .map(|i| i.kind.name())
            .collect();
        assert_eq!(kinds, ["RUN", "COPY"]);
        assert_eq!(df.stages[0].instructions[0].original, "rUn echo hi");
    }
}
