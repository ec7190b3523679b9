//! `.env` and `env_file` files: `KEY=value` lines, `export`, `#` comments, single
//! quotes (literal), double quotes (escapes and multi-line values), and `${VAR}`
//! substitution from earlier lines and the environment in unquoted and double-quoted
//! values. A bare `KEY` takes its value from the environment, or is left out.

use std::collections::BTreeMap;

use crate::interpolate::Interpolator;

/// Parses `text`. `lookup` is the environment bare keys and substitutions read
/// (entries defined earlier in the file win over it).
pub fn parse(
    text: &str,
    lookup: &BTreeMap<String, String>,
) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut line_no = 0;
    while !rest.is_empty() {
        let (line, tail) = rest.split_once('\n').unwrap_or((rest, ""));
        line_no += 1;
        rest = tail;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let statement = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let Some(eq) = statement.find('=') else {
            let key = statement.to_string();
            if key.contains(char::is_whitespace) {
                return Err(format!(
                    "line {line_no}: unexpected character in variable name {key:?}"
                ));
            }
            out.push((key.clone(), lookup.get(&key).cloned()));
            continue;
        };
        let key = statement[..eq].trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!(
                "line {line_no}: unexpected character in variable name {key:?}"
            ));
        }
        let raw = statement[eq + 1..].trim_start();
        let mut env = lookup.clone();
        for (k, v) in &out {
            if let Some(v) = v {
                env.insert(k.clone(), v.clone());
            }
        }
        let value = if let Some(body) = raw.strip_prefix('\'') {
            let (value, after) = take_quoted(body, '\'', &mut rest, &mut line_no)
                .ok_or(format!("line {line_no}: unterminated quoted value"))?;
            check_trailer(&after, line_no)?;
            value
        } else if let Some(body) = raw.strip_prefix('"') {
            let (value, after) = take_quoted(body, '"', &mut rest, &mut line_no)
                .ok_or(format!("line {line_no}: unterminated quoted value"))?;
            check_trailer(&after, line_no)?;
            let unescaped = unescape(&value);
            expand(&unescaped, &env)
        } else {
            let value = match raw.find(" #") {
                Some(i) => &raw[..i],
                None => raw,
            };
            expand(value.trim_end(), &env)
        };
        if let Some(slot) = out.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = Some(value);
        } else {
            out.push((key, Some(value)));
        }
    }
    Ok(out)
}

/// Reads a quoted value that may continue over further lines.
fn take_quoted(
    body: &str,
    quote: char,
    rest: &mut &str,
    line_no: &mut usize,
) -> Option<(String, String)> {
    let mut value = String::new();
    let mut current = body.to_string();
    loop {
        let mut escaped = false;
        for (i, c) in current.char_indices() {
            if quote == '"' && c == '\\' && !escaped {
                escaped = true;
                continue;
            }
            if c == quote && !escaped {
                value.push_str(&current[..i]);
                return Some((value, current[i + 1..].to_string()));
            }
            escaped = false;
        }
        if rest.is_empty() {
            return None;
        }
        value.push_str(&current);
        value.push('\n');
        let (line, tail) = rest.split_once('\n').unwrap_or((rest, ""));
        *line_no += 1;
        current = line.to_string();
        *rest = tail;
    }
}

fn check_trailer(after: &str, line_no: usize) -> Result<(), String> {
    let t = after.trim();
    if t.is_empty() || t.starts_with('#') {
        Ok(())
    } else {
        Err(format!(
            "line {line_no}: unexpected characters after the quoted value"
        ))
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Substitutes variables; a value that is not a valid template stays as written.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut interpolator = Interpolator::new(env);
    interpolator
        .string(text)
        .unwrap_or_else(|_| text.to_string())
}

/// Reads an env file into `(key, value)` pairs.
pub fn read(
    path: &std::path::Path,
    lookup: &BTreeMap<String, String>,
) -> Result<Vec<(String, Option<String>)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text, lookup).map_err(|e| format!("failed to read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_syntax() {
        let env: BTreeMap<String, String> = [("HOME".to_string(), "/root".to_string())].into();
        let text = "# comment\nA=1\nexport B = two # note\nC='lit ${A}'\nD=\"x\\ny ${A}\"\nE=${B}-$HOME\nHOME\nMISSING\nF=\"multi\nline\"\nG=\n";
        let parsed = parse(text, &env).unwrap();
        let get = |k: &str| parsed.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("A").as_deref(), Some("1"));
        assert_eq!(get("B").as_deref(), Some("two"));
        assert_eq!(get("C").as_deref(), Some("lit ${A}"));
        assert_eq!(get("D").as_deref(), Some("x\ny 1"));
        assert_eq!(get("E").as_deref(), Some("two-/root"));
        assert_eq!(get("HOME").as_deref(), Some("/root"));
        assert_eq!(get("MISSING"), None);
        assert_eq!(get("F").as_deref(), Some("multi\nline"));
        assert_eq!(get("G").as_deref(), Some(""));
    }
}
