//! A small wildcard matcher shared by `${x#pattern}` (shell patterns) and
//! `.dockerignore` (Go `filepath.Match` syntax compiled the way moby/patternmatcher
//! compiles it). Patterns are lists of tokens matched by a memoised backtracking
//! search, linear in pattern × text.

/// One pattern token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    /// Any one character.
    Any,
    /// Any one character but `/`.
    AnyNoSlash,
    /// Any run of characters.
    Star,
    /// Any run of characters without `/`.
    StarNoSlash,
    /// Nothing, or any run of characters ending with `/` (`**/`).
    OptDirs,
    /// `[…]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Whether the whole of `text` matches: `row[c]` says whether the tokens from `t` on
/// match the text from `c` on, computed from the last token back, one row at a time
/// (no recursion, so a hostile pattern cannot overflow the stack; time is pattern ×
/// text).
pub(crate) fn matches(toks: &[Tok], text: &str) -> bool {
    let s: Vec<char> = text.chars().collect();
    let n = s.len();
    // After the last token only the end of the text matches.
    let mut next: Vec<bool> = (0..=n).map(|c| c == n).collect();
    let mut row = vec![false; n + 1];
    for tok in toks.iter().rev() {
        // For OptDirs: some `/` at or after c is followed by a match of the rest.
        let mut slash_then_rest = false;
        for c in (0..=n).rev() {
            let ch = s.get(c).copied();
            let one = |ok: bool| ok && next[c + 1];
            row[c] = match (tok, ch) {
                (Tok::Lit(l), Some(ch)) => one(ch == *l),
                (Tok::Any, Some(_)) => one(true),
                (Tok::AnyNoSlash, Some(ch)) => one(ch != '/'),
                (Tok::Class { negated, ranges }, Some(ch)) => {
                    one(ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi) != *negated)
                }
                (Tok::Star, Some(_)) => next[c] || row[c + 1],
                (Tok::StarNoSlash, Some(ch)) => next[c] || (ch != '/' && row[c + 1]),
                (Tok::Star | Tok::StarNoSlash, None) => next[c],
                (Tok::OptDirs, _) => {
                    if ch == Some('/') && next[c + 1] {
                        slash_then_rest = true;
                    }
                    next[c] || slash_then_rest
                }
                (_, None) => false,
            };
        }
        std::mem::swap(&mut next, &mut row);
    }
    next[0]
}

/// A shell pattern (`${x#pattern}`): `*`, `?`, `[…]` with `!` or `^` negation, `\`
/// escaping the next character. An unterminated `[` is a literal.
pub(crate) fn shell_pattern(pattern: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => toks.push(Tok::Lit(
                chars.get(i).copied().inspect(|_| i += 1).unwrap_or('\\'),
            )),
            '[' => match parse_class(&chars, i, &['!', '^']) {
                Ok((tok, next)) => {
                    toks.push(tok);
                    i = next;
                }
                Err(_) => toks.push(Tok::Lit('[')),
            },
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Parses a class whose `[` is just before `start`: an optional negation character,
/// then characters, ranges `a-z` and `\`-escapes, up to `]`. Returns the token and
/// the index after `]`, or an error for an unterminated or empty class or a dangling
/// escape (Go's `filepath.ErrBadPattern`).
pub(crate) fn parse_class(
    chars: &[char],
    start: usize,
    negations: &[char],
) -> Result<(Tok, usize), String> {
    let bad = || "syntax error in pattern".to_string();
    let mut i = start;
    let negated = chars.get(i).is_some_and(|c| negations.contains(c));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let class_char = |i: &mut usize| -> Result<char, String> {
        let c = *chars.get(*i).ok_or_else(bad)?;
        if c == '-' || c == ']' {
            return Err(bad());
        }
        *i += 1;
        if c == '\\' {
            let e = *chars.get(*i).ok_or_else(bad)?;
            *i += 1;
            return Ok(e);
        }
        Ok(c)
    };
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Ok((Tok::Class { negated, ranges }, i + 1));
        }
        let lo = class_char(&mut i)?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = class_char(&mut i)?;
        }
        ranges.push((lo, hi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_patterns_match() {
        let m = |p: &str, s: &str| matches(&shell_pattern(p).unwrap(), s);
        assert!(m("*.gz", "a/b.tar.gz"));
        assert!(m("a?c", "a/c"));
        assert!(m("[a-c]x", "bx") && !m("[!a-c]x", "bx") && m("[^a-c]x", "dx"));
        assert!(m("\\*", "*") && !m("\\*", "a"));
        assert!(m("[x", "[x"));
        assert!(!m("a*b", "a/c"));
    }

    #[test]
    fn slash_aware_tokens() {
        let toks = [Tok::OptDirs, Tok::Lit('x')];
        assert!(matches(&toks, "x") && matches(&toks, "a/b/x") && !matches(&toks, "ax"));
        let toks = [Tok::StarNoSlash, Tok::Lit('x')];
        assert!(matches(&toks, "abx") && !matches(&toks, "a/x"));
    }
}
