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

/// Whether the whole of `text` matches.
pub(crate) fn matches(toks: &[Tok], text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    // failed[ti * (n + 1) + ci]: (ti, ci) is known not to match.
    let mut failed = vec![false; (toks.len() + 1) * (chars.len() + 1)];
    match_at(toks, &chars, 0, 0, &mut failed)
}

fn match_at(toks: &[Tok], s: &[char], ti: usize, ci: usize, failed: &mut [bool]) -> bool {
    let key = ti * (s.len() + 1) + ci;
    if failed[key] {
        return false;
    }
    let ok = match toks.get(ti) {
        None => ci == s.len(),
        Some(tok) => match tok {
            Tok::Lit(c) => s.get(ci) == Some(c) && match_at(toks, s, ti + 1, ci + 1, failed),
            Tok::Any => ci < s.len() && match_at(toks, s, ti + 1, ci + 1, failed),
            Tok::AnyNoSlash => {
                s.get(ci).is_some_and(|&c| c != '/') && match_at(toks, s, ti + 1, ci + 1, failed)
            }
            Tok::Class { negated, ranges } => {
                s.get(ci)
                    .is_some_and(|&c| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                    && match_at(toks, s, ti + 1, ci + 1, failed)
            }
            Tok::Star => (ci..=s.len()).any(|j| match_at(toks, s, ti + 1, j, failed)),
            Tok::StarNoSlash => {
                let end = s[ci..]
                    .iter()
                    .position(|&c| c == '/')
                    .map_or(s.len(), |p| ci + p);
                (ci..=end).any(|j| match_at(toks, s, ti + 1, j, failed))
            }
            Tok::OptDirs => {
                match_at(toks, s, ti + 1, ci, failed)
                    || (ci..s.len())
                        .filter(|&j| s[j] == '/')
                        .any(|j| match_at(toks, s, ti + 1, j + 1, failed))
            }
        },
    };
    if !ok {
        failed[key] = true;
    }
    ok
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
