//! The Dockerfile parser, in BuildKit's two passes: first the file is cut into nodes
//! (directives, continuations, comments, heredocs, each instruction's flags and its
//! arguments split as that instruction wants), then each node becomes an
//! [`Instruction`] with its flags checked. As in BuildKit, an error of the first pass
//! anywhere in the file is reported before an error of the second.

use std::time::Duration;

use crate::check::{looks_secret, rules, CheckConfig};
use crate::expand::Lexer;
use crate::{
    ArgDecl, CacheSharing, CopySpec, Directives, Dockerfile, Healthcheck, Heredoc, Instruction,
    InstructionKind, MountType, Onbuild, ParseError, RunMount, RunNetwork, RunSpec, ShellOrExec,
    Stage, Warning,
};

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let (directives, nodes, mut warnings, last_line) = scan(text, None)?;
    if nodes.is_empty() {
        return Err(ParseError {
            line: last_line.max(1),
            end_line: last_line.max(1),
            message: "file with no instructions".to_string(),
        });
    }
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &nodes {
        let lower = node.cmd.to_ascii_lowercase();
        if lower == "from" {
            let stage = convert_from(node).map_err(|m| node.error(m))?;
            if let Some(name) = &stage.name {
                if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                    return Err(node.error(format!("{name} stage name already used")));
                }
            }
            stages.push(stage);
            continue;
        }
        let instruction = convert(node, directives.escape, &mut warnings)?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(instruction),
            None if matches!(instruction.kind, InstructionKind::Arg(_)) => {
                global_args.push(instruction)
            }
            None => return Err(node.error("no build stage in current context")),
        }
    }
    if stages.is_empty() {
        return Err(ParseError {
            line: last_line.max(1),
            end_line: last_line.max(1),
            message: "dockerfile contains no stages to build".to_string(),
        });
    }
    let check =
        CheckConfig::parse(directives.check.as_deref().unwrap_or("")).map_err(|e| ParseError {
            line: 1,
            end_line: 1,
            message: format!("failed to parse check options: {e}"),
        })?;
    lint(&nodes, directives.escape, &mut warnings);
    warnings.retain(|w| check.reports(w.rule));
    warnings.sort_by_key(|w| w.line);
    Ok(Dockerfile {
        directives,
        global_args,
        stages,
        warnings,
        check,
    })
}

/// BuildKit's InvalidDefaultArgInFrom: each FROM's base, expanded with the global
/// ARGs' defaults only (no build args) and the native platform args, must be an image
/// reference. Abandoned, as in BuildKit, when an expansion fails.
fn invalid_default_args_in_from(
    nodes: &[Node],
    escape: char,
    warn: &mut impl FnMut(usize, &'static str, String),
) {
    let native = crate::platform::Platform::native();
    let mut args: Vec<(String, String)> = crate::platform::automatic_args(&native, &native);
    let mut in_stages = false;
    for node in nodes {
        let cmd = node.cmd.to_ascii_lowercase();
        if cmd == "from" {
            in_stages = true;
            let Some(base) = node.args.first() else {
                continue;
            };
            let lookup = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let Ok(expanded) = crate::expand::process_word(base, escape, &lookup) else {
                return;
            };
            if !crate::check::valid_reference(&expanded) {
                warn(
                    node.line,
                    rules::INVALID_DEFAULT_ARG_IN_FROM,
                    format!(
                        "Default value for ARG {base} results in empty or invalid base image name"
                    ),
                );
            }
        } else if cmd == "arg" && !in_stages {
            for word in &node.args {
                let Some((name, default)) = word.split_once('=') else {
                    continue;
                };
                let lookup = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let Ok(value) = crate::expand::process_word(default, escape, &lookup) else {
                    return;
                };
                args.retain(|(n, _)| n != name);
                args.push((name.to_string(), value));
            }
        }
    }
}

/// The build checks the text decides (BuildKit's linter rules of the same names).
fn lint(nodes: &[Node], escape: char, warnings: &mut Vec<Warning>) {
    let mut warn = |line: usize, rule: &'static str, message: String| {
        warnings.push(Warning {
            line,
            rule,
            message,
        })
    };
    let is_consistent = |s: &str| s == s.to_lowercase() || s == s.to_uppercase();
    // Every ARG the file declares, and the automatic platform args: what FROM may use.
    let mut declared: Vec<String> = [
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for node in nodes.iter().filter(|n| n.cmd.eq_ignore_ascii_case("arg")) {
        for word in &node.args {
            declared.push(
                word.split_once('=')
                    .map_or(word.as_str(), |(n, _)| n)
                    .to_string(),
            );
        }
    }
    let declared_refs: Vec<&str> = declared.iter().map(String::as_str).collect();
    invalid_default_args_in_from(nodes, escape, &mut warn);
    let mut in_stage = false;
    let (mut lower, mut upper) = (0, 0);
    // The last CMD, ENTRYPOINT, HEALTHCHECK of the current stage: (name, line).
    let mut used_once: Vec<(String, usize)> = Vec::new();
    for node in nodes {
        let lower_cmd = node.cmd.to_ascii_lowercase();
        if lower_cmd == "from" {
            in_stage = true;
            used_once.clear();
            if let [_, as_word, name] = node.args.as_slice() {
                if name.to_lowercase() != *name {
                    warn(
                        node.line,
                        rules::STAGE_NAME_CASING,
                        format!("Stage name '{name}' should be lowercase"),
                    );
                }
                let from_lower = node.cmd == node.cmd.to_lowercase();
                let from_upper = node.cmd == node.cmd.to_uppercase();
                let as_matches = if from_lower {
                    *as_word == as_word.to_lowercase()
                } else {
                    !from_upper || *as_word == as_word.to_uppercase()
                };
                if !as_matches {
                    warn(
                        node.line,
                        rules::FROM_AS_CASING,
                        format!(
                            "'{as_word}' and '{}' keywords' casing do not match",
                            node.cmd
                        ),
                    );
                }
                let lower_name = name.to_ascii_lowercase();
                if lower_name == "context" || lower_name == "scratch" {
                    warn(
                        node.line,
                        rules::RESERVED_STAGE_NAME,
                        format!(
                            "Stage name should not use the same name as reserved stage {lower_name:?}"
                        ),
                    );
                }
            }
            let platform_flag = parse_flags(&node.flags, &[("platform", FlagType::Str)])
                .ok()
                .and_then(|f| f.str("platform"));
            for word in node.args.first().into_iter().chain(platform_flag.as_ref()) {
                for var in crate::expand::variables(word, escape) {
                    if !declared.contains(&var) {
                        warn(
                            node.line,
                            rules::UNDEFINED_ARG_IN_FROM,
                            suggest(
                                format!("FROM argument '{var}' is not declared"),
                                &var,
                                &declared_refs,
                                true,
                            ),
                        );
                    }
                }
            }
            if let Ok(flags) = parse_flags(&node.flags, &[("platform", FlagType::Str)]) {
                if let Some(p) = flags.str("platform") {
                    let stage_name = node.args.get(2).map(|n| n.to_ascii_lowercase());
                    if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
                        warn(
                            node.line,
                            rules::REDUNDANT_TARGET_PLATFORM,
                            format!("Setting platform to predefined {p} in FROM is redundant as this is the default behavior"),
                        );
                    } else if !p.contains('$') {
                        if let Ok(platform) = crate::platform::Platform::parse(&p) {
                            let named = stage_name.is_some_and(|n| {
                                n.contains(&platform.os) || n.contains(&platform.architecture)
                            });
                            if !named {
                                warn(
                                    node.line,
                                    rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                                    format!(
                                        "FROM --platform flag should not use constant value {p:?}"
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
        if in_stage && is_consistent(&node.cmd) {
            if node.cmd == node.cmd.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
        match lower_cmd.as_str() {
            "maintainer" => warn(
                node.line,
                rules::MAINTAINER_DEPRECATED,
                "Maintainer instruction is deprecated in favor of using label".to_string(),
            ),
            "arg" => {
                for word in &node.args {
                    let name = word.split_once('=').map_or(word.as_str(), |(n, _)| n);
                    if looks_secret(name) {
                        warn(
                            node.line,
                            rules::SECRETS_USED_IN_ARG_OR_ENV,
                            format!("Do not use ARG or ENV instructions for sensitive data (ARG {name:?})"),
                        );
                    }
                }
            }
            "env" => {
                for (key, _) in &node.pairs {
                    if looks_secret(key) {
                        warn(
                            node.line,
                            rules::SECRETS_USED_IN_ARG_OR_ENV,
                            format!("Do not use ARG or ENV instructions for sensitive data (ENV {key:?})"),
                        );
                    }
                }
            }
            "cmd" | "entrypoint" | "healthcheck" => {
                if let Some(prev) = used_once
                    .iter_mut()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&lower_cmd))
                {
                    warn(
                        prev.1,
                        rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
                        format!(
                            "Multiple {} instructions should not be used in the same stage because only the last one will be used",
                            node.cmd
                        ),
                    );
                    prev.1 = node.line;
                } else {
                    used_once.push((node.cmd.clone(), node.line));
                }
            }
            _ => {}
        }
    }
    // Casing against the majority of the stages' instructions (ties count as upper).
    let majority_lower = lower > upper;
    let mut in_stage = false;
    for node in nodes {
        in_stage |= node.cmd.eq_ignore_ascii_case("from");
        if !in_stage {
            continue;
        }
        let wanted = if majority_lower && node.cmd.to_lowercase() != node.cmd {
            "lowercase"
        } else if !majority_lower && node.cmd.to_uppercase() != node.cmd {
            "uppercase"
        } else {
            continue;
        };
        warn(
            node.line,
            rules::CONSISTENT_INSTRUCTION_CASING,
            format!(
                "Command '{}' should match the case of the command majority ({wanted})",
                node.cmd
            ),
        );
    }
}

/// Parses one instruction on its own (continuations and heredocs allowed), such as an
/// `ONBUILD` trigger read from a base image's config, with the escape character of the
/// Dockerfile being built. `FROM` is refused (it is no instruction of a stage), as is
/// anything but exactly one instruction.
pub fn parse_instruction(text: &str, escape: char) -> Result<Instruction, ParseError> {
    let (_, nodes, mut warnings, last_line) = scan(text, Some(escape))?;
    let [node] = nodes.as_slice() else {
        return Err(ParseError {
            line: last_line.max(1),
            end_line: last_line.max(1),
            message: format!("expected one instruction, found {}", nodes.len()),
        });
    };
    if node.cmd.eq_ignore_ascii_case("from") {
        return Err(node.error("FROM isn't allowed as an ONBUILD trigger"));
    }
    convert(node, escape, &mut warnings)
}

/// One instruction as the first pass leaves it.
#[derive(Debug, Clone)]
struct Node {
    line: usize,
    end_line: usize,
    /// The logical line: continuations joined, comments dropped, leading whitespace
    /// trimmed, trailing kept (ONBUILD stores it so).
    text: String,
    /// The instruction word as written.
    cmd: String,
    flags: Vec<String>,
    args: Vec<String>,
    /// The arguments were a JSON array.
    json: bool,
    /// ENV and LABEL pairs.
    pairs: Vec<(String, String)>,
    /// ENV/LABEL in the legacy `key value` form.
    legacy_pairs: bool,
    /// ONBUILD's trigger.
    sub: Option<Box<Node>>,
    heredocs: Vec<Heredoc>,
}

impl Node {
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            end_line: self.end_line.max(self.line),
            message: message.into(),
        }
    }
}

/// The parser directive names BuildKit knows.
const DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];

/// Reads `# name=value` at the top of the file: returns the directive, or None once
/// the directives are over (then `done` is set).
fn directive(line: &str, done: &mut bool) -> Option<(String, String)> {
    if *done {
        return None;
    }
    let parsed = (|| {
        let rest = line.strip_prefix('#')?.trim_start();
        let name_end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let value = rest[name_end..].trim_start().strip_prefix('=')?.trim();
        if value.is_empty() {
            return None;
        }
        let name = name.to_ascii_lowercase();
        DIRECTIVES
            .contains(&name.as_str())
            .then(|| (name, value.to_string()))
    })();
    if parsed.is_none() {
        *done = true;
    }
    parsed
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

/// Removes a trailing escape character (and spaces or tabs after it): the line without
/// it, and whether the line ends here. An escaped escape character (`\\` at the end)
/// is no continuation (BuildKit's `([^\\])\\[ \t]*$|^\\[ \t]*$`).
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) if !rest.ends_with(escape) => (rest.to_string(), false),
        _ => (line.to_string(), true),
    }
}

type Scanned = (Directives, Vec<Node>, Vec<Warning>, usize);

/// The first pass. `escape` is given for a lone instruction (no directives then).
fn scan(text: &str, escape: Option<char>) -> Result<Scanned, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut directives = Directives::default();
    let mut directives_done = escape.is_some();
    if let Some(e) = escape {
        directives.escape = e;
    }
    let mut seen = Vec::<String>::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    let mut current_line = 0;

    let mut process_line = |raw: &str,
                            strip_left: bool,
                            directives: &mut Directives,
                            line_no: usize|
     -> Result<String, ParseError> {
        let mut token = trim_newline(raw);
        if strip_left {
            token = token.trim_start();
        }
        if let Some((name, value)) = directive(token, &mut directives_done) {
            let fail = |message: String| ParseError {
                line: line_no,
                end_line: line_no,
                message,
            };
            if seen.contains(&name) {
                return Err(fail(format!(
                    "only one {name} parser directive can be used"
                )));
            }
            seen.push(name.clone());
            match name.as_str() {
                "escape" => {
                    let mut chars = value.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c @ ('\\' | '`')), None) => directives.escape = c,
                        _ => {
                            return Err(fail(format!(
                                "invalid escape token '{value}' does not match ` or \\"
                            )))
                        }
                    }
                }
                "syntax" => directives.syntax = Some(value),
                _ => directives.check = Some(value),
            }
        }
        Ok(if is_comment(token) {
            String::new()
        } else {
            token.to_string()
        })
    };

    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        let processed = process_line(raw, true, &mut directives, current_line + 1)?;
        current_line += 1;
        let start_line = current_line;
        let escape = directives.escape;
        let (first, mut end_of_line) = trim_continuation(&processed, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first;
        let mut empty_continuation = false;
        while !end_of_line && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let processed = process_line(raw, false, &mut directives, current_line + 1)?;
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if processed.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (cont, eol) = trim_continuation(&processed, escape);
            end_of_line = eol;
            line.push_str(&cont);
        }
        if empty_continuation {
            warnings.push(Warning {
                line: current_line,
                rule: rules::NO_EMPTY_CONTINUATION,
                message: format!("Empty continuation line found in: {line}"),
            });
        }
        let mut node = node_from_line(&line, escape, false).map_err(|message| ParseError {
            line: start_line,
            end_line: current_line,
            message,
        })?;
        node.line = start_line;
        let heredoc_cmd = match &node.sub {
            Some(sub) => sub.cmd.to_ascii_lowercase(),
            None => node.cmd.to_ascii_lowercase(),
        };
        let json = node.sub.as_ref().map_or(node.json, |s| s.json);
        if matches!(heredoc_cmd.as_str(), "add" | "copy" | "run") && !json && line.contains("<<") {
            let docs = heredocs_from_line(&line).map_err(|message| ParseError {
                line: start_line,
                end_line: current_line,
                message,
            })?;
            for mut doc in docs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    current_line += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError {
                        line: start_line,
                        end_line: current_line,
                        message: "unterminated heredoc".to_string(),
                    });
                }
                if doc.chomp {
                    doc.content = doc
                        .content
                        .split_inclusive('\n')
                        .map(|l| l.trim_start_matches('\t'))
                        .collect();
                }
                if let Some(sub) = &mut node.sub {
                    sub.heredocs.push(doc.clone());
                }
                node.heredocs.push(doc);
            }
        }
        node.end_line = current_line;
        if let Some(sub) = &mut node.sub {
            sub.line = node.line;
            sub.end_line = node.end_line;
        }
        nodes.push(node);
    }
    Ok((directives, nodes, warnings, current_line))
}

/// Splits off the first run of spaces or tabs.
fn split_first_ws(s: &str) -> (&str, &str) {
    match s.find([' ', '\t', '\x0b', '\x0c', '\r']) {
        Some(p) => (
            &s[..p],
            s[p..].trim_start_matches([' ', '\t', '\x0b', '\x0c', '\r']),
        ),
        None => (s, ""),
    }
}

/// Splits on runs of spaces and tabs (Docker's `parseStringsWhitespaceDelimited`).
fn split_ws(s: &str) -> Vec<String> {
    s.split([' ', '\t', '\x0b', '\x0c', '\r'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Builds a node from a logical line (BuildKit's `newNodeFromLine`).
fn node_from_line(line: &str, escape: char, nested: bool) -> Result<Node, String> {
    let (cmd, rest) = split_first_ws(line.trim());
    let (rest, flags) = extract_builder_flags(rest);
    let rest = rest.trim();
    let mut node = Node {
        line: 0,
        end_line: 0,
        text: line.to_string(),
        cmd: cmd.to_string(),
        flags,
        args: Vec::new(),
        json: false,
        pairs: Vec::new(),
        legacy_pairs: false,
        sub: None,
        heredocs: Vec::new(),
    };
    match cmd.to_ascii_lowercase().as_str() {
        "env" | "label" => {
            let key = cmd.to_ascii_uppercase();
            (node.pairs, node.legacy_pairs) = parse_name_val(rest, &key, escape)?;
        }
        "arg" => node.args = parse_words(rest, escape),
        "maintainer" | "workdir" | "user" | "stopsignal" if !rest.is_empty() => {
            node.args = vec![rest.to_string()];
        }
        "from" | "expose" => node.args = split_ws(rest),
        "add" | "copy" | "volume" => match parse_json(rest)? {
            Some(list) => (node.args, node.json) = (list, true),
            None => node.args = split_ws(rest),
        },
        "run" | "cmd" | "entrypoint" | "shell" => match parse_json(rest)? {
            Some(list) => (node.args, node.json) = (list, true),
            None if rest.is_empty() => {}
            None => node.args = vec![rest.to_string()],
        },
        // One level only: a trigger that is itself ONBUILD is refused in the second
        // pass by its name, and deeper chains would only deepen the recursion.
        "onbuild" if !rest.is_empty() && !nested => {
            node.sub = Some(Box::new(node_from_line(rest, escape, true)?));
        }
        "healthcheck" => {
            let (typ, cmd_rest) = split_first_ws(rest);
            if !typ.is_empty() {
                node.args.push(typ.to_string());
                match parse_json(cmd_rest)? {
                    Some(list) => {
                        node.args.extend(list);
                        node.json = true;
                    }
                    None if cmd_rest.is_empty() => {}
                    None => node.args.push(cmd_rest.to_string()),
                }
            }
        }
        _ => {}
    }
    Ok(node)
}

/// The JSON (exec) form: Some when `rest` is a JSON array of strings, None when it is
/// no JSON array (the shell form then), an error for a JSON array of other things.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The leading `--flag[=value]` words of an instruction's arguments (quotes removed,
/// `\` escaping), up to the first other word or `--`; returns the rest and the flags.
fn extract_builder_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut iter = line.char_indices().peekable();
    loop {
        let Some((pos, ch)) = iter.next() else {
            if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return ("", words);
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            if ch != '-' || iter.peek().map(|&(_, c)| c) != Some('-') {
                return (&line[pos..], words);
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (&line[pos..], words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    continue;
                }
                if ch == '\\' {
                    match iter.next() {
                        None => continue,
                        Some((_, c)) => word.push(c),
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                    continue;
                }
                if ch == '\\' {
                    match iter.next() {
                        None => {
                            phase = Phase::Word;
                            continue;
                        }
                        Some((_, c)) => word.push(c),
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Spaces => {}
        }
    }
}

/// Splits on unquoted whitespace, keeping quotes and escapes (BuildKit's
/// `parseWords`), for ENV, LABEL and ARG.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut iter = rest.chars().peekable();
    while let Some(ch) = iter.next() {
        if !in_word {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        match quote {
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    let Some(next) = iter.next() else {
                        continue;
                    };
                    word.push(ch);
                    word.push(next);
                    continue;
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    let Some(next) = iter.next() else {
                        quote = None;
                        continue;
                    };
                    word.push(ch);
                    word.push(next);
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV and LABEL: `k=v …` or the legacy `k v` (the whole rest is the value).
fn parse_name_val(
    rest: &str,
    key: &str,
    escape: char,
) -> Result<(Vec<(String, String)>, bool), String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok((Vec::new(), false));
    };
    if !first.contains('=') {
        let (name, value) = split_first_ws(rest);
        if value.is_empty() {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok((vec![(name.to_string(), value.to_string())], true));
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|pairs| (pairs, false))
}

/// The heredocs a line opens, in order (BuildKit's `heredocsFromLine`: the line's
/// words, quotes and escapes kept, that look like `<<[-]WORD`).
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let no_env = |_: &str| None;
    let mut lexer = Lexer::new(line, '\\', &no_env);
    lexer.raw_quotes = true;
    lexer.raw_escapes = true;
    lexer.skip_unset = true;
    let words = lexer.process(line).map(|(_, w)| w).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// A word of the form `[fd]<<[-]NAME`, NAME possibly quoted (no expansion then);
/// `$x` in NAME stays as written.
pub(crate) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    // A leading file descriptor (`3<<EOF`) is the shell's business: BuildKit accepts it.
    let rest = &word[digits..];
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.contains('<') {
        return Ok(None);
    }
    if rest.is_empty() {
        return Ok(None);
    }
    let no_env = |_: &str| None;
    let mut lexer = Lexer::new(rest, '\\', &no_env);
    lexer.skip_unset = true;
    let words = lexer.process(rest).map_err(|e| e.message)?.1;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let mut raw = Lexer::new(rest, '\\', &no_env);
    raw.skip_unset = true;
    raw.raw_quotes = true;
    let raw_words = raw.process(rest).map_err(|e| e.message)?.1;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = raw_words.first().is_some_and(|r| quotes(r) == quotes(name));
    Ok(Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        expand,
        chomp,
    }))
}

/// The kinds of flag values.
#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    Str,
    Strs,
}

/// The flags given to one instruction.
#[derive(Default)]
struct Flags {
    bools: Vec<(&'static str, bool)>,
    strs: Vec<(&'static str, String)>,
    lists: Vec<(&'static str, Vec<String>)>,
}

impl Flags {
    fn bool(&self, name: &str) -> bool {
        self.bools.iter().any(|(n, v)| *n == name && *v)
    }
    fn str(&self, name: &str) -> Option<String> {
        self.strs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
    fn list(&self, name: &str) -> Vec<String> {
        self.lists
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// Checks the flags against what the instruction takes (BuildKit's `BFlags.Parse`).
fn parse_flags(raw: &[String], spec: &[(&'static str, FlagType)]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut used: Vec<&str> = Vec::new();
    for arg in raw {
        let Some(arg) = arg.strip_prefix("--") else {
            return Err(format!("arg should start with -- : {arg}"));
        };
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let Some(&(name, typ)) = spec.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            return Err(with_suggestion(
                format!("unknown flag: --{name}"),
                name,
                &names,
            ));
        };
        if used.contains(&name) && typ != FlagType::Strs {
            return Err(format!("duplicate flag specified: --{name}"));
        }
        used.push(name);
        match (typ, value) {
            (FlagType::Bool, Some("")) => return Err(format!("missing a value on flag: --{name}")),
            (FlagType::Bool, v) => {
                let raw = v.unwrap_or("");
                let v = match raw.to_ascii_lowercase().as_str() {
                    "true" | "" => true,
                    "false" => false,
                    _ => {
                        return Err(format!(
                            "expecting boolean value for flag --{name}, not: {raw}"
                        ))
                    }
                };
                flags.bools.push((name, v));
            }
            (_, None) => return Err(format!("missing a value on flag: --{name}")),
            (FlagType::Str, Some(v)) => flags.strs.push((name, v.to_string())),
            (FlagType::Strs, Some(v)) => match flags.lists.iter_mut().find(|(n, _)| *n == name) {
                Some((_, list)) => list.push(v.to_string()),
                None => flags.lists.push((name, vec![v.to_string()])),
            },
        }
    }
    Ok(flags)
}

/// BuildKit's "did you mean" hint (its `suggest` package), case-sensitive.
fn with_suggestion(message: String, value: &str, options: &[&str]) -> String {
    suggest(message, value, options, true)
}

/// The first closest option within an edit distance of 2, none when the value is an
/// option; `case_sensitive` false compares lowercased and writes the option in the
/// value's case (BuildKit's `suggest.Search`).
fn suggest(message: String, value: &str, options: &[&str], case_sensitive: bool) -> String {
    if value.is_empty() {
        return message;
    }
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let val = fold(value);
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let opt = fold(opt);
        if opt == val {
            return message;
        }
        let d = levenshtein(&val, &opt);
        if d < min {
            min = d;
            best = Some(if case_sensitive || value == value.to_lowercase() {
                opt
            } else if value == value.to_uppercase() {
                opt.to_uppercase()
            } else {
                opt
            });
        }
    }
    match best {
        Some(b) => format!("{message} (did you mean {b}?)"),
        None => message,
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn exactly_one(node: &Node, name: &str) -> Result<String, String> {
    parse_flags(&node.flags, &[])?;
    match node.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("{name} requires exactly one argument")),
    }
}

fn shell_or_exec(node: &Node) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(node.args.clone())
    } else {
        ShellOrExec::Shell(node.args.join(" "))
    }
}

fn convert_from(node: &Node) -> Result<Stage, String> {
    let name = match node.args.as_slice() {
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err("FROM requires either one or three arguments".to_string()),
    };
    let flags = parse_flags(&node.flags, &[("platform", FlagType::Str)])?;
    Ok(Stage {
        name,
        base: node.args[0].clone(),
        platform: flags.str("platform"),
        line: node.line,
        original: node.text.trim().to_string(),
        instructions: Vec::new(),
    })
}

/// The second pass for one node other than FROM.
fn convert(
    node: &Node,
    escape: char,
    warnings: &mut Vec<Warning>,
) -> Result<Instruction, ParseError> {
    let kind = convert_kind(node, escape, warnings).map_err(|m| node.error(m))?;
    Ok(Instruction {
        line: node.line,
        end_line: node.end_line,
        original: node.text.trim().to_string(),
        kind,
    })
}

fn convert_kind(
    node: &Node,
    escape: char,
    warnings: &mut Vec<Warning>,
) -> Result<InstructionKind, String> {
    use FlagType::{Bool, Str, Strs};
    let upper = node.cmd.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "ENV" | "LABEL" => {
            parse_flags(&node.flags, &[])?;
            if node.pairs.is_empty() {
                return Err(format!("{upper} requires at least one argument"));
            }
            if node.pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(format!("{upper} names can not be blank"));
            }
            if node.legacy_pairs {
                warnings.push(Warning {
                    line: node.line,
                    rule: rules::LEGACY_KEY_VALUE_FORMAT,
                    message: format!(
                        "\"{upper} key=value\" should be used instead of legacy \"{upper} key value\" format"
                    ),
                });
            }
            if upper == "ENV" {
                InstructionKind::Env(node.pairs.clone())
            } else {
                InstructionKind::Label(node.pairs.clone())
            }
        }
        "MAINTAINER" => InstructionKind::Maintainer(exactly_one(node, "MAINTAINER")?),
        "WORKDIR" => InstructionKind::Workdir(exactly_one(node, "WORKDIR")?),
        "USER" => InstructionKind::User(exactly_one(node, "USER")?),
        "STOPSIGNAL" => InstructionKind::Stopsignal(exactly_one(node, "STOPSIGNAL")?),
        "EXPOSE" => {
            parse_flags(&node.flags, &[])?;
            if node.args.is_empty() {
                return Err("EXPOSE requires at least one argument".to_string());
            }
            InstructionKind::Expose(node.args.clone())
        }
        "VOLUME" => {
            parse_flags(&node.flags, &[])?;
            if node.args.is_empty() {
                return Err("VOLUME requires at least one argument".to_string());
            }
            let mut volumes = Vec::new();
            for v in &node.args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".to_string());
                }
                volumes.push(v.to_string());
            }
            InstructionKind::Volume(volumes)
        }
        "ARG" => {
            parse_flags(&node.flags, &[])?;
            if node.args.is_empty() {
                return Err("ARG requires at least one argument".to_string());
            }
            if node.args.iter().any(|a| a.starts_with('=')) {
                return Err("ARG names can not be blank".to_string());
            }
            InstructionKind::Arg(
                node.args
                    .iter()
                    .map(|a| match a.split_once('=') {
                        Some((name, value)) => ArgDecl {
                            name: name.to_string(),
                            default: Some(value.to_string()),
                        },
                        None => ArgDecl {
                            name: a.clone(),
                            default: None,
                        },
                    })
                    .collect(),
            )
        }
        "CMD" => {
            parse_flags(&node.flags, &[])?;
            InstructionKind::Cmd(shell_or_exec(node))
        }
        "ENTRYPOINT" => {
            parse_flags(&node.flags, &[])?;
            if node.args.is_empty() {
                InstructionKind::Entrypoint(ShellOrExec::Exec(Vec::new()))
            } else {
                InstructionKind::Entrypoint(shell_or_exec(node))
            }
        }
        "SHELL" => {
            parse_flags(&node.flags, &[])?;
            if node.args.is_empty() {
                return Err("SHELL requires at least one argument".to_string());
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".to_string());
            }
            InstructionKind::Shell(node.args.clone())
        }
        "RUN" => {
            let flags = parse_flags(
                &node.flags,
                &[("mount", Strs), ("network", Str), ("security", Str)],
            )?;
            let mounts = flags
                .list("mount")
                .iter()
                .map(|m| parse_mount(m, None))
                .collect::<Result<Vec<_>, _>>()?;
            let network = match flags.str("network") {
                None => None,
                Some(n) => Some(match n.as_str() {
                    "default" => RunNetwork::Default,
                    "none" => RunNetwork::None,
                    "host" => RunNetwork::Host,
                    _ => return Err(format!("invalid network mode {n:?}")),
                }),
            };
            match flags.str("security").as_deref() {
                None | Some("sandbox") => {}
                Some("insecure") => {
                    return Err(
                        "RUN --security=insecure is not supported: Pier does not grant \
                        build steps the security.insecure entitlement"
                            .to_string(),
                    )
                }
                Some(other) => return Err(format!("security {other:?} is not valid")),
            }
            InstructionKind::Run(RunSpec {
                command: shell_or_exec(node),
                mounts,
                network,
                heredocs: node.heredocs.clone(),
            })
        }
        "ADD" | "COPY" => {
            if node.args.len() < 2 {
                return Err(format!(
                    "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
                ));
            }
            let spec: &[(&'static str, FlagType)] = if upper == "COPY" {
                &[
                    ("from", Str),
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                    ("parents", Bool),
                    ("exclude", Strs),
                ]
            } else {
                &[
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                    ("keep-git-dir", Bool),
                    ("checksum", Str),
                    ("unpack", Bool),
                    ("exclude", Strs),
                ]
            };
            let flags = parse_flags(&node.flags, spec)?;
            let (dest, sources) = node.args.split_last().unwrap_or((&node.args[0], &[]));
            // As BuildKit: also in the JSON form (where no body was read, so a source
            // that looks like a heredoc is an empty one).
            if parse_heredoc(dest).ok().flatten().is_some() {
                return Err(format!("{upper} cannot accept a heredoc as a destination"));
            }
            let heredocs = sources
                .iter()
                .filter_map(|s| parse_heredoc(s).ok().flatten())
                .map(|h| {
                    let body = node.heredocs.iter().find(|d| d.name == h.name);
                    body.cloned().unwrap_or(h)
                })
                .collect();
            let copy = CopySpec {
                sources: sources.to_vec(),
                dest: dest.clone(),
                from: flags.str("from"),
                chown: flags.str("chown"),
                chmod: flags.str("chmod"),
                link: flags.bool("link"),
                excludes: flags.list("exclude"),
                parents: flags.bool("parents"),
                checksum: flags.str("checksum"),
                keep_git_dir: flags.bool("keep-git-dir"),
                unpack: flags
                    .bools
                    .iter()
                    .find(|(n, _)| *n == "unpack")
                    .map(|(_, v)| *v),
                heredocs,
            };
            if upper == "COPY" {
                InstructionKind::Copy(copy)
            } else {
                InstructionKind::Add(copy)
            }
        }
        "ONBUILD" => {
            let Some(sub) = &node.sub else {
                return Err("ONBUILD requires at least one argument".to_string());
            };
            parse_flags(&node.flags, &[])?;
            let trigger_name = sub.cmd.to_ascii_uppercase();
            match trigger_name.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!(
                        "{trigger_name} isn't allowed as an ONBUILD trigger"
                    ))
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.text).to_string();
            for doc in &node.heredocs {
                expression.push('\n');
                expression.push_str(&doc.content);
                expression.push_str(&doc.name);
            }
            let trigger = convert(sub, escape, &mut Vec::new()).ok().map(Box::new);
            InstructionKind::Onbuild(Onbuild {
                expression,
                trigger,
            })
        }
        "HEALTHCHECK" => convert_healthcheck(node)?,
        _ => {
            return Err(suggest(
                format!("unknown instruction: {}", node.cmd),
                &node.cmd,
                &INSTRUCTIONS,
                false,
            ));
        }
    })
}

/// The trigger text of an ONBUILD line: the line without `ONBUILD` and the
/// whitespace around it (case-insensitive, as BuildKit's `(?i)^\s*ONBUILD\s*`).
fn strip_onbuild(text: &str) -> &str {
    let t = text.trim_start();
    let rest = t
        .get(7..)
        .filter(|_| t[..7].eq_ignore_ascii_case("onbuild"));
    rest.map_or(t, str::trim_start)
}

fn convert_healthcheck(node: &Node) -> Result<InstructionKind, String> {
    let Some((typ, args)) = node.args.split_first() else {
        return Err("HEALTHCHECK requires at least one argument".to_string());
    };
    let typ = typ.to_ascii_uppercase();
    if typ == "NONE" {
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        // Docker does not look at the flags of HEALTHCHECK NONE.
        return Ok(InstructionKind::Healthcheck(Healthcheck {
            command: None,
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        }));
    }
    use FlagType::Str;
    let flags = parse_flags(
        &node.flags,
        &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"));
    }
    if args.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".to_string());
    }
    let command = if node.json {
        ShellOrExec::Exec(args.to_vec())
    } else {
        ShellOrExec::Shell(args.join(" "))
    };
    let interval = |name: &str| -> Result<Option<Duration>, String> {
        let Some(v) = flags.str(name).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        // Go parses a negative duration, which then is "less than 1ms".
        let (negative, magnitude) = match v.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, v.as_str()),
        };
        let d = parse_go_duration(magnitude)
            .map_err(|e| e.replace(&format!("{magnitude:?}"), &format!("{v:?}")))?;
        if d > Duration::ZERO && (negative || d < Duration::from_millis(1)) {
            return Err(format!("Interval {name:?} cannot be less than 1ms"));
        }
        Ok(Some(d))
    };
    let retries = match flags.str("retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let out_of_range = || format!("strconv.ParseInt: parsing {v:?}: value out of range");
            let n: i64 =
                v.parse()
                    .map_err(|e: std::num::ParseIntError| match e.kind() {
                        std::num::IntErrorKind::PosOverflow
                        | std::num::IntErrorKind::NegOverflow => out_of_range(),
                        _ => format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
                    })?;
            if i32::try_from(n).is_err() {
                return Err(out_of_range());
            }
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            Some(n as u32)
        }
    };
    Ok(InstructionKind::Healthcheck(Healthcheck {
        command: Some(command),
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    }))
}

/// Go's `time.ParseDuration` for the non-negative durations HEALTHCHECK takes
/// (`1h30m`, `1.5s`, `300ms`, `0`).
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.is_empty() || body.starts_with('-') {
        return Err(invalid());
    }
    let mut rest = body;
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: f64 = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let value: f64 = number.parse().map_err(|_| invalid())?;
        total_ns += value * scale;
    }
    if total_ns > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Splits a `--mount` value as CSV (fields in double quotes may hold commas; `""` is a
/// quote inside them).
fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = value.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if at_start && c == '"' {
            at_start = false;
            loop {
                match chars.next() {
                    None => {
                        return Err(
                            "failed to parse csv mounts: extraneous or missing \" in quoted-field"
                                .to_string(),
                        )
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            continue;
        }
        at_start = false;
        if c == ',' {
            fields.push(std::mem::take(&mut field));
            at_start = true;
            continue;
        }
        field.push(c);
    }
    fields.push(field);
    Ok(fields)
}

/// docker/go-units `RAMInBytes`: `512`, `64k`, `1.5g`, `10MiB` (powers of 1024).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let number: f64 = lower[..num_end].parse().ok()?;
    let suffix = lower[num_end..].trim_start_matches(' ');
    let suffix = suffix.strip_suffix('b').unwrap_or(suffix);
    let suffix = suffix.strip_suffix('i').unwrap_or(suffix);
    let power = match suffix {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    Some((number * 1024f64.powi(power)) as u64)
}

/// The keys whose values are strings the executor expands later; the others
/// (`type`, numbers, booleans, `sharing`) are interpreted here.
const MOUNT_STRING_KEYS: [&str; 8] = [
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "id",
    "env",
];

/// Expands one value of a `--mount` (see [`RunMount::expanded`]).
pub(crate) type MountExpander<'a> = &'a mut dyn FnMut(&str) -> Result<String, String>;

/// One `RUN --mount=` value (BuildKit's `parseMount`).
///
/// Without `expand` (at parse time) string fields are kept unexpanded, and a
/// non-string field whose value holds a `$` is left for later: then the checks that
/// depend on it wait for [`RunMount::expanded`], which parses the raw value again with
/// every value expanded first, as BuildKit does.
pub(crate) fn parse_mount(
    raw: &str,
    mut expand: Option<MountExpander<'_>>,
) -> Result<RunMount, String> {
    let fields = csv_fields(raw)?;
    let deferring = expand.is_none()
        && fields.iter().any(|f| {
            f.split_once('=').is_some_and(|(k, v)| {
                v.contains('$') && !MOUNT_STRING_KEYS.contains(&k.to_ascii_lowercase().as_str())
            })
        });
    let mut m = RunMount {
        mount_type: MountType::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        readonly: None,
        required: None,
        env: None,
        size: None,
        raw: raw.to_string(),
        deferred: deferring,
    };
    let type_name = |t: MountType| match t {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    };
    // Whether a check that depends on the mount type can be made now.
    let typed = !deferring;
    for field in fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(mut value) = value else {
            match key.as_str() {
                "readonly" | "ro" => m.readonly = Some(true),
                "readwrite" | "rw" => m.readonly = Some(false),
                "required"
                    if !typed || matches!(m.mount_type, MountType::Secret | MountType::Ssh) =>
                {
                    m.required = Some(true)
                }
                "required" => {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        type_name(m.mount_type)
                    ))
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        match expand.as_mut() {
            Some(e) => value = e(&value)?,
            None => {
                if key == "from" && value.find('$').is_some_and(|i| i + 1 != value.len()) {
                    return Err(format!(
                        "'{key}' doesn't support variable expansion, define alias stage instead"
                    ));
                }
                if deferring && value.contains('$') && !MOUNT_STRING_KEYS.contains(&key.as_str()) {
                    continue;
                }
            }
        }
        let bool_value = |v: &str| -> Result<bool, String> {
            match v {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                _ => Err(format!("invalid value for {key}: {v}")),
            }
        };
        let wrong_type =
            |t: MountType| format!("unexpected key '{key}' for mount type '{}'", type_name(t));
        match key.as_str() {
            "type" => {
                m.mount_type = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(with_suggestion(
                            format!("unsupported mount type {value:?}"),
                            &value,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                        ))
                    }
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => m.readonly = Some(bool_value(&value)?),
            "readwrite" | "rw" => m.readonly = Some(!bool_value(&value)?),
            "required" => {
                if typed && !matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                    return Err(wrong_type(m.mount_type));
                }
                m.required = Some(bool_value(&value)?);
            }
            "size" => {
                if typed && m.mount_type != MountType::Tmpfs {
                    return Err(wrong_type(m.mount_type));
                }
                m.size = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| format!("invalid value for {key}: {value}"))?,
                );
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => {
                        return Err(with_suggestion(
                            format!("unsupported sharing value {value:?}"),
                            &value,
                            &["shared", "private", "locked"],
                        ))
                    }
                });
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                );
            }
            "uid" | "gid" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| format!("invalid value {value} for {key}"))?;
                if key == "uid" {
                    m.uid = Some(n);
                } else {
                    m.gid = Some(n);
                }
            }
            "env" => m.env = Some(value),
            _ => {
                return Err(with_suggestion(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    &[
                        "type",
                        "from",
                        "source",
                        "target",
                        "readonly",
                        "id",
                        "sharing",
                        "required",
                        "size",
                        "mode",
                        "uid",
                        "gid",
                        "src",
                        "dst",
                        "destination",
                        "ro",
                        "rw",
                        "readwrite",
                        "env",
                    ],
                ))
            }
        }
    }
    if !typed {
        return Ok(m);
    }
    let type_str = type_name(m.mount_type);
    if !matches!(
        m.mount_type,
        MountType::Secret | MountType::Ssh | MountType::Cache
    ) {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!("{what} not allowed for {type_str:?} type mounts"));
            }
        }
    }
    if m.mount_type == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".to_string());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".to_string());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".to_string());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".to_string());
        }
    }
    if m.sharing.is_some() && m.mount_type != MountType::Cache {
        return Err(format!("invalid cache sharing set for {type_str} mount"));
    }
    // Stricter than BuildKit, which ignores these: a `from` an ssh mount cannot use,
    // an `env` only a secret can fill.
    if m.mount_type == MountType::Ssh && m.from.is_some() {
        return Err("ssh mount should not have a from".to_string());
    }
    if m.env.is_some() && m.mount_type != MountType::Secret {
        return Err(format!("unexpected key 'env' for mount type '{type_str}'"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_flags_are_split_off() {
        assert_eq!(
            extract_builder_flags("--from=a --chown=\"x y\" src dst"),
            (
                "src dst",
                vec!["--from=a".to_string(), "--chown=x y".to_string()]
            )
        );
        assert_eq!(
            extract_builder_flags("-- --not-a-flag x"),
            (" --not-a-flag x", vec![])
        );
        assert_eq!(
            extract_builder_flags("--link"),
            ("", vec!["--link".to_string()])
        );
        assert_eq!(extract_builder_flags("-x y"), ("-x y", vec![]));
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words(r#"a=1 b="x y" c='p q' d=e\ f"#, '\\'),
            ["a=1", "b=\"x y\"", "c='p q'", "d=e\\ f"]
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_go_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_go_duration("3x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"3x\""
        );
        assert_eq!(
            parse_go_duration("s").unwrap_err(),
            "time: invalid duration \"s\""
        );
    }

    fn healthcheck_error(flags: &str) -> String {
        crate::parse(&format!("FROM scratch\nHEALTHCHECK {flags} CMD true\n"))
            .unwrap_err()
            .message
    }

    #[test]
    fn healthcheck_flag_values() {
        assert_eq!(
            healthcheck_error("--interval=-1s"),
            "Interval \"interval\" cannot be less than 1ms"
        );
        assert_eq!(
            healthcheck_error("--timeout=-5x"),
            "time: unknown unit \"x\" in duration \"-5x\""
        );
        assert_eq!(
            healthcheck_error("--retries=99999999999"),
            "strconv.ParseInt: parsing \"99999999999\": value out of range"
        );
        assert_eq!(
            healthcheck_error("--retries=x"),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(healthcheck_error("--bogus=1"), "unknown flag: --bogus");
        for empty in [
            "HEALTHCHECK CMD",
            "HEALTHCHECK CMD []",
            "HEALTHCHECK --interval=1s CMD",
        ] {
            assert_eq!(
                crate::parse(&format!("FROM scratch\n{empty}\n"))
                    .unwrap_err()
                    .message,
                "Missing command after HEALTHCHECK CMD"
            );
        }
        let df = crate::parse("FROM scratch\nHEALTHCHECK --interval=0s --retries=+2 CMD true\n")
            .unwrap();
        match &df.stages[0].instructions[0].kind {
            InstructionKind::Healthcheck(h) => {
                assert_eq!((h.interval, h.retries), (Some(Duration::ZERO), Some(2)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mount_errors_as_buildkit() {
        let err = |m: &str| parse_mount(m, None).unwrap_err();
        assert_eq!(
            err("type=secret,id=a,sharing=locked"),
            "secret mount should not define sharing"
        );
        assert_eq!(
            err("type=secret,id=a,source=b"),
            "both source and id can't be set"
        );
        assert_eq!(
            err("type=secret,from=x,id=a"),
            "secret mount should not have a from"
        );
        assert_eq!(
            err("type=bind,sharing=shared,target=/x"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            err("type=cache,sharing=lockd"),
            "unsupported sharing value \"lockd\" (did you mean locked?)"
        );
        assert_eq!(err("type=cache,uid=x"), "invalid value x for uid");
        assert_eq!(err("type=cache,mode=9"), "invalid value 9 for mode");
        assert_eq!(err("type=tmpfs,size=lots"), "invalid value for size: lots");
        assert_eq!(
            err("type=cache,size=1m"),
            "unexpected key 'size' for mount type 'cache'"
        );
        assert_eq!(
            err("type=bind,required"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(err("type=cache,ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(
            err("type=cache,bogus"),
            "invalid field 'bogus' must be a key=value pair"
        );
        assert_eq!(
            err("from=$X/y"),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        let m = parse_mount(
            "type=cache,target=/c,sharing=PRIVATE,mode=0700,uid=1,gid=2,ro",
            None,
        )
        .unwrap();
        assert_eq!(
            (m.sharing, m.mode, m.uid, m.gid, m.readonly),
            (
                Some(CacheSharing::Private),
                Some(0o700),
                Some(1),
                Some(2),
                Some(true)
            )
        );
    }

    #[test]
    fn sizes_and_csv() {
        assert_eq!(ram_in_bytes("512"), Some(512));
        assert_eq!(ram_in_bytes("64k"), Some(65536));
        assert_eq!(ram_in_bytes("1.5g"), Some(1610612736));
        assert_eq!(ram_in_bytes("10MiB"), Some(10 << 20));
        assert_eq!(ram_in_bytes("x"), None);
        assert_eq!(
            csv_fields(r#"type=bind,"target=/a,b",x"#).unwrap(),
            ["type=bind", "target=/a,b", "x"]
        );
    }

    #[test]
    fn instruction_suggestions_follow_the_case_written() {
        let err = |t: &str| {
            crate::parse(&format!("FROM scratch\n{t}\n"))
                .unwrap_err()
                .message
        };
        assert_eq!(
            err("FROMM x"),
            "unknown instruction: FROMM (did you mean FROM?)"
        );
        assert_eq!(
            err("cop a b"),
            "unknown instruction: cop (did you mean copy?)"
        );
        assert_eq!(
            err("Workdirr /"),
            "unknown instruction: Workdirr (did you mean workdir?)"
        );
        assert_eq!(
            err("foo bar"),
            "unknown instruction: foo (did you mean from?)"
        );
        assert_eq!(err("BOGUS x"), "unknown instruction: BOGUS");
        assert_eq!(
            err("COPY --link --link a b"),
            "duplicate flag specified: --link"
        );
        assert_eq!(err("COPY --link= a b"), "missing a value on flag: --link");
        assert_eq!(
            err("COPY --link=yes a b"),
            "expecting boolean value for flag --link, not: yes"
        );
        assert_eq!(err("COPY --from a b"), "missing a value on flag: --from");
        assert_eq!(
            err("MAINTAINER --boo joe@example.com"),
            "unknown flag: --boo"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(levenshtein("chmodd", "chmod"), 1);
        assert_eq!(
            with_suggestion(
                "unknown flag: --chmodd".into(),
                "chmodd",
                &["chmod", "chown"]
            ),
            "unknown flag: --chmodd (did you mean chmod?)"
        );
        assert_eq!(
            with_suggestion("unknown flag: zzz".into(), "zzz", &["chmod"]),
            "unknown flag: zzz"
        );
    }
}
