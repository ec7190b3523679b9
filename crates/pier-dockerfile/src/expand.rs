//! Docker's shell-word lexer (moby/buildkit `shell.Lex`): what the builder applies to
//! the values of the instructions Docker expands (ADD, COPY, ENV, EXPOSE, FROM, LABEL,
//! STOPSIGNAL, USER, VOLUME, WORKDIR, ARG, and ONBUILD triggers when they run).
//!
//! It removes quotes (`'…'` literal, `"…"` with `$` expansion and escapes of `"`,
//! `$`, the escape character), handles the escape character (`\` or `` ` ``), and
//! expands `$x`, `${x}`, `${x:-d}`, `${x-d}`, `${x:+a}`, `${x+a}`, `${x:?msg}`,
//! `${x?msg}`, and BuildKit's `${x#p}`, `${x##p}`, `${x%p}`, `${x%%p}`,
//! `${x/p/r}`, `${x//p/r}` (shell patterns: `*`, `?`, `[…]`). Unset variables expand
//! to nothing. `$` not followed by a name stays `$`.

use crate::glob::{self, Tok};

/// A malformed word or a `${x:?msg}` whose variable is unset or empty. Displays as
/// BuildKit does: `failed to process "${x:?}": x: is not allowed to be unset`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    pub message: String,
}

/// Expands one word: the whole value is one result, whitespace kept (ENV values,
/// WORKDIR, USER, COPY sources …). `lookup` gives a variable's value, None if unset.
pub fn process_word(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    Ok(Lexer::new(word, escape, lookup).process(word)?.0)
}

/// Expands and splits on unquoted whitespace, as for the shell form of EXPOSE and
/// VOLUME: `"a b" c` gives `a b` and `c`; a variable's value is split too unless
/// quoted.
pub fn process_words(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    Ok(Lexer::new(word, escape, lookup).process(word)?.1)
}

/// The variables a word refers to, in order, each once (nested defaults included, as
/// BuildKit's `ProcessWordWithMatches` looks them up); empty for a malformed word.
pub fn variables(word: &str, escape: char) -> Vec<String> {
    let seen = std::cell::RefCell::new(Vec::<String>::new());
    let lookup = |name: &str| {
        let mut seen = seen.borrow_mut();
        if !seen.iter().any(|s| s == name) {
            seen.push(name.to_string());
        }
        None
    };
    match Lexer::new(word, escape, &lookup).process(word) {
        Ok(_) => seen.into_inner(),
        Err(_) => Vec::new(),
    }
}

/// The lexer with BuildKit's switches; the parser uses the raw modes to find heredoc
/// words in a line.
pub(crate) struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    /// Keep quote characters in the result.
    pub(crate) raw_quotes: bool,
    /// Keep escape characters in the result.
    pub(crate) raw_escapes: bool,
    /// Leave `$x` / `${x…}` of unset variables as written.
    pub(crate) skip_unset: bool,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// How deep in `${…}` the lexer is: bounded, so hostile input cannot overflow the
    /// stack (BuildKit's goroutine stacks grow; ours do not).
    depth: usize,
}

/// The deepest `${a:-${b:-…}}` nesting accepted.
const MAX_DEPTH: usize = 64;

/// Collects the words of `process_words`.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

fn err(message: impl Into<String>) -> String {
    message.into()
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(
        text: &str,
        escape: char,
        lookup: &'a dyn Fn(&str) -> Option<String>,
    ) -> Lexer<'a> {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            lookup,
            depth: 0,
        }
    }

    /// The word and the words of the whole text.
    pub(crate) fn process(&mut self, source: &str) -> Result<(String, Vec<String>), ExpandError> {
        let raw_escapes = self.raw_escapes;
        self.process_stop_on(None, raw_escapes)
            .map_err(|e| ExpandError {
                message: format!("failed to process {source:?}: {e}"),
            })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                // `<<` and the blanks after it stay one word, so a heredoc written
                // `<< EOF` is found (BuildKit's processPossibleHeredoc).
                '<' if self.chars.get(self.pos + 1) == Some(&'<') => {
                    let mut tmp = String::from("<<");
                    self.pos += 2;
                    while let Some(c) = self.peek().filter(|c| *c == ' ' || *c == '\t') {
                        tmp.push(c);
                        self.pos += 1;
                    }
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' | '"' | '$' => {
                    let tmp = match ch {
                        '\'' => self.single_quote()?,
                        '"' => self.double_quote()?,
                        _ => self.dollar()?,
                    };
                    result.push_str(&tmp);
                    if ch == '$' {
                        words.add_string(&tmp);
                    } else {
                        words.add_raw_string(&tmp);
                    }
                }
                _ => {
                    self.next();
                    let mut ch = ch;
                    if ch == self.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next() {
                            None => break,
                            Some(c) => ch = c,
                        }
                        words.add_raw_char(ch);
                    } else {
                        words.add_char(ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching single-quote",
                    ))
                }
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching double-quote",
                    ))
                }
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn dollar(&mut self) -> Result<String, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "syntax error: substitutions nested more than {MAX_DEPTH} deep"
            ));
        }
        self.depth += 1;
        let result = self.dollar_inner();
        self.depth -= 1;
        result
    }

    fn dollar_inner(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match (self.lookup)(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(err("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(err("syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut ch) = self.next() else {
            return Err(err("syntax error: missing '}'"));
        };
        let mut modifier = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => Ok(match (self.lookup)(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if ch == ':' {
                    null_is_unset = true;
                    ch = self.next().unwrap_or_default();
                    modifier.push(ch);
                    if !matches!(ch, '+' | '-' | '?' | '#' | '%') {
                        return Err(format!("unsupported modifier ({modifier}) in substitution"));
                    }
                }
                let pattern_mode = ch == '#' || ch == '%';
                if null_is_unset && pattern_mode {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let word = match self.process_stop_on(Some('}'), pattern_mode) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            err("syntax error: missing '}'")
                        } else {
                            e
                        })
                    }
                };
                let value = (self.lookup)(&name);
                if self.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match ch {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if value.is_none() {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            };
                            Err(format!("{name}: {msg}"))
                        } else if unset {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            };
                            Err(format!("{name}: {msg}"))
                        } else {
                            Ok(value.unwrap_or_default())
                        }
                    }
                    _ => {
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let toks = glob::shell_pattern(&pattern).map_err(|e| {
                            format!("invalid pattern ({pattern}) in substitution: {e}")
                        })?;
                        Ok(if ch == '%' {
                            trim_suffix(&toks, &value, greedy)
                        } else {
                            trim_prefix(&toks, &value, greedy)
                        })
                    }
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((p, _)) => p,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            err("syntax error: missing '/' in ${}")
                        } else {
                            e
                        })
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((r, _)) => r,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            err("syntax error: missing '}'")
                        } else {
                            e
                        })
                    }
                };
                let value = (self.lookup)(&name);
                let Some(value) = value else {
                    if self.skip_unset {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let toks = glob::shell_pattern(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(replace(&toks, &value, &replacement, replace_all))
            }
            _ => {
                if self.skip_unset {
                    return Ok(format!("${{{name}}}"));
                }
                Err(format!("unsupported modifier ({modifier}) in substitution"))
            }
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits, or one special
    /// parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

/// The char boundaries of `s`, ascending (0 and `s.len()` included).
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

fn trim_prefix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let mut cuts = boundaries(value);
    if greedy {
        cuts.reverse();
    }
    for i in cuts {
        if glob::matches(toks, &value[..i]) {
            return value[i..].to_string();
        }
    }
    value.to_string()
}

fn trim_suffix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let mut cuts = boundaries(value);
    if !greedy {
        cuts.reverse();
    }
    for i in cuts {
        if glob::matches(toks, &value[i..]) {
            return value[..i].to_string();
        }
    }
    value.to_string()
}

/// Replaces the leftmost-longest match (or every match) of the pattern, as Go's
/// regexp replacement BuildKit uses: an empty match counts (`${x/$EMPTY/a}` puts `a`
/// first), except right after a non-empty one.
fn replace(toks: &[Tok], value: &str, replacement: &str, all: bool) -> String {
    let cuts = boundaries(value);
    let mut out = String::new();
    let mut copied_to = 0;
    let mut after_match: Option<usize> = None;
    let mut i = 0;
    while i < cuts.len() {
        let start = cuts[i];
        let end = cuts[i..]
            .iter()
            .rev()
            .copied()
            .find(|&end| glob::matches(toks, &value[start..end]));
        match end {
            Some(end) if !(end == start && after_match == Some(start)) => {
                out.push_str(&value[copied_to..start]);
                out.push_str(replacement);
                copied_to = end;
                if !all {
                    break;
                }
                if end > start {
                    after_match = Some(end);
                    i = cuts.iter().position(|&c| c == end).unwrap_or(cuts.len());
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&value[copied_to..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "a" => Some("A".into()),
            "empty" => Some(String::new()),
            "sp" => Some("x  y".into()),
            "path" => Some("/usr/local/bin/tool.tar.gz".into()),
            _ => None,
        }
    }

    fn word(w: &str) -> Result<String, String> {
        process_word(w, '\\', &env).map_err(|e| e.message)
    }

    fn words(w: &str) -> Vec<String> {
        process_words(w, '\\', &env).unwrap()
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(word("$a ${a} $nope.${nope}").unwrap(), "A A .");
        assert_eq!(word("x$").unwrap(), "x$");
        assert_eq!(word("$ a").unwrap(), "$ a");
        assert_eq!(word("$a_b${a}_b").unwrap(), "A_b");
        assert_eq!(word("${a}b").unwrap(), "Ab");
    }

    #[test]
    fn default_and_alternative_values() {
        assert_eq!(
            word("${nope:-d}|${nope-d}|${empty:-d}|${empty-d}").unwrap(),
            "d|d|d|"
        );
        assert_eq!(word("${a:-d}|${a-d}").unwrap(), "A|A");
        assert_eq!(
            word("${a:+x}|${a+x}|${empty:+x}|${empty+x}|${nope+x}").unwrap(),
            "x|x||x|"
        );
        assert_eq!(word("${nope:-$a and ${a}}").unwrap(), "A and A");
        assert_eq!(word("${nope:-'q u'}").unwrap(), "q u");
    }

    #[test]
    fn required_values() {
        assert_eq!(word("${a:?}").unwrap(), "A");
        assert_eq!(
            word("${nope:?}").unwrap_err(),
            "failed to process \"${nope:?}\": nope: is not allowed to be unset"
        );
        assert_eq!(
            word("${empty:?}").unwrap_err(),
            "failed to process \"${empty:?}\": empty: is not allowed to be empty"
        );
        assert_eq!(word("${empty?}").unwrap(), "");
        assert_eq!(
            word("${nope?set it}").unwrap_err(),
            "failed to process \"${nope?set it}\": nope: set it"
        );
    }

    #[test]
    fn pattern_removal_and_replacement() {
        assert_eq!(word("${path#*/}").unwrap(), "usr/local/bin/tool.tar.gz");
        assert_eq!(word("${path##*/}").unwrap(), "tool.tar.gz");
        assert_eq!(word("${path%.*}").unwrap(), "/usr/local/bin/tool.tar");
        assert_eq!(word("${path%%.*}").unwrap(), "/usr/local/bin/tool");
        assert_eq!(
            word("${path/local/opt}").unwrap(),
            "/usr/opt/bin/tool.tar.gz"
        );
        assert_eq!(
            word("${path//[o.]/-}").unwrap(),
            "/usr/l-cal/bin/t--l-tar-gz"
        );
        assert_eq!(word("${path/#/x}").unwrap(), "/usr/local/bin/tool.tar.gz");
        assert_eq!(word("${nope#x}").unwrap(), "");
        assert_eq!(
            word("${a:#x}").unwrap_err(),
            "failed to process \"${a:#x}\": unsupported modifier (:#) in substitution"
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(word(r#"'$a' "$a" \$a"#).unwrap(), "$a A $a");
        assert_eq!(word(r#""q\"w\$a\\\x""#).unwrap(), r#"q"w$a\\x"#);
        assert_eq!(word(r"a\ b\").unwrap(), "a b");
        assert_eq!(process_word("`$a``x", '`', &env).unwrap(), "$a`x");
        assert_eq!(process_word(r"c:\dir", '`', &env).unwrap(), r"c:\dir");
        assert_eq!(
            word("'open").unwrap_err(),
            "failed to process \"'open\": unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            word("\"open").unwrap_err(),
            "failed to process \"\\\"open\": unexpected end of statement while looking for matching double-quote"
        );
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            word("${a").unwrap_err(),
            "failed to process \"${a\": syntax error: missing '}'"
        );
        assert_eq!(
            word("${}").unwrap_err(),
            "failed to process \"${}\": syntax error: bad substitution"
        );
        assert_eq!(
            word("${a!}").unwrap_err(),
            "failed to process \"${a!}\": unsupported modifier (!) in substitution"
        );
        assert_eq!(
            word("${a:-x").unwrap_err(),
            "failed to process \"${a:-x\": syntax error: missing '}'"
        );
    }

    #[test]
    fn variables_referenced() {
        assert_eq!(
            variables("${A:-$B}:${C}-$A '$D' \\$E", '\\'),
            ["B", "A", "C"]
        );
        assert!(variables("${", '\\').is_empty());
    }

    #[test]
    fn words_split_on_unquoted_whitespace() {
        assert_eq!(words("80 \"a b\" $sp"), ["80", "a b", "x", "y"]);
        assert_eq!(words("\"$sp\" a\\ b"), ["x  y", "a b"]);
        assert_eq!(words("  "), Vec::<String>::new());
        assert_eq!(words("'' x"), ["x"]);
    }
}
