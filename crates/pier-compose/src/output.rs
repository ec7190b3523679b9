//! Printing a project as `docker compose config` prints it: JSON (Go's
//! `MarshalIndent` with two spaces) or YAML (go-yaml v3, two-space indent), with every
//! `$` doubled when the project was interpolated so that the output loads again.

use std::cell::Cell;

use crate::model::Project;
use crate::yaml::{Node, NodeValue};

thread_local! {
    static JSON_FLAVOUR: Cell<bool> = const { Cell::new(false) };
}

/// Whether the model is being serialized for JSON output (see [`crate::model`]).
pub fn json_flavour() -> bool {
    JSON_FLAVOUR.with(Cell::get)
}

/// Runs `f` with the model serializing as for `json` output or not.
pub fn with_flavour<T>(json: bool, f: impl FnOnce() -> T) -> T {
    let before = JSON_FLAVOUR.with(|c| c.replace(json));
    let out = f();
    JSON_FLAVOUR.with(|c| c.set(before));
    out
}

/// Output format of `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// The project as `docker compose config [--format json]` prints it (without the
/// final newline compose's printing adds).
pub fn render(project: &Project, format: Format, escape_dollars: bool) -> String {
    let text = match format {
        Format::Json => {
            let json =
                with_flavour(true, || serde_json::to_string_pretty(project)).unwrap_or_default();
            go_json_escape(&json)
        }
        Format::Yaml => {
            let json = with_flavour(false, || serde_json::to_string(project)).unwrap_or_default();
            yaml_of_json(&json)
        }
    };
    if escape_dollars {
        text.replace('$', "$$")
    } else {
        text
    }
}

/// Block YAML for a JSON text, keeping its key order.
fn yaml_of_json(json: &str) -> String {
    let node = crate::yaml::parse(json)
        .ok()
        .and_then(|mut d| d.pop())
        .unwrap_or(Node::map(Vec::new()));
    let mut out = String::new();
    emit_yaml(&node, 0, &mut out);
    out
}

/// Escapes `<`, `>` and `&` as Go's JSON encoder does for HTML safety (outside strings
/// JSON has none of them).
pub fn go_json_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// An untyped model (`config --no-interpolate`) as compose prints it: a map, so keys
/// sorted at every level, and no `$` doubling.
pub fn render_model(model: &serde_json::Value, format: Format) -> String {
    match format {
        Format::Json => go_json_escape(&serde_json::to_string_pretty(model).unwrap_or_default()),
        Format::Yaml => {
            let json = serde_json::to_string(model).unwrap_or_default();
            yaml_of_json(&json)
        }
    }
}

/// Writes `node` as a block YAML document.
pub fn emit_yaml(node: &Node, indent: usize, out: &mut String) {
    match &node.value {
        NodeValue::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&" ".repeat(indent));
                out.push_str(&scalar(k));
                out.push(':');
                emit_value(v, indent, out);
            }
        }
        NodeValue::Seq(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                match &item.value {
                    NodeValue::Map(entries) if !entries.is_empty() => {
                        // The first key goes on the dash's line.
                        let mut inner = String::new();
                        emit_yaml(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(&inner[indent + 2..]);
                    }
                    NodeValue::Seq(items) if !items.is_empty() => {
                        let mut inner = String::new();
                        emit_yaml(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(&inner[indent + 2..]);
                    }
                    _ => emit_value(item, indent, out),
                }
            }
        }
        _ => {
            out.push_str(&inline(node, indent));
            out.push('\n');
        }
    }
}

/// Writes what follows `key:` or `-`.
fn emit_value(v: &Node, indent: usize, out: &mut String) {
    match &v.value {
        NodeValue::Map(e) if !e.is_empty() => {
            out.push('\n');
            emit_yaml(v, indent + 2, out);
        }
        NodeValue::Seq(i) if !i.is_empty() => {
            out.push('\n');
            emit_yaml(v, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(v, indent));
            out.push('\n');
        }
    }
}

fn inline(node: &Node, indent: usize) -> String {
    match &node.value {
        NodeValue::Null => "null".into(),
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Float(f) => format_float(*f),
        NodeValue::Str(s)
            if s.contains('\n') && !s.contains(|c: char| c.is_control() && c != '\n') =>
        {
            literal(s, indent + 2)
        }
        NodeValue::Str(s) => scalar(s),
        NodeValue::Map(_) => "{}".into(),
        NodeValue::Seq(_) => "[]".into(),
    }
}

fn format_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f.is_nan() {
        return ".nan".into();
    }
    let s = f.to_string();
    if s.contains('e') {
        s.replace("e", "e+").replace("e+-", "e-")
    } else {
        s
    }
}

/// A multi-line string as a literal block (`|`, `|-` without a final newline).
fn literal(s: &str, indent: usize) -> String {
    let chomp = if s.ends_with('\n') { "" } else { "-" };
    let body = s.strip_suffix('\n').unwrap_or(s);
    let mut out = format!("|{chomp}");
    if body.starts_with(' ') {
        out = format!("|{indent}{chomp}", indent = 2);
    }
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&" ".repeat(indent));
            out.push_str(line);
        }
    }
    out
}

/// A string scalar, plain when go-yaml would print it plain, else quoted as it does.
pub fn scalar(s: &str) -> String {
    if s.is_empty() {
        return "\"\"".into();
    }
    if resolves_to_non_string(s)
        || s.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}')
    {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Would go-yaml read this plain scalar as something other than a string (including
/// YAML 1.1 booleans such as `yes`/`on`, which it quotes for older readers)?
fn resolves_to_non_string(s: &str) -> bool {
    const OLD_BOOLS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    if OLD_BOOLS.contains(&s) {
        return true;
    }
    !matches!(crate::yaml::plain_value(s), NodeValue::Str(_))
}

/// libyaml's plain-scalar analysis (block context).
fn plain_allowed(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let first = chars[0];
    if first == ' ' || *chars.last().unwrap_or(&' ') == ' ' {
        return false;
    }
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && chars.get(1).is_none_or(|c| *c == ' ') {
        return false;
    }
    if s == "-" || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    for (i, c) in chars.iter().enumerate() {
        let next = chars.get(i + 1);
        if *c == ':' && next.is_none_or(|n| *n == ' ') {
            return false;
        }
        if *c == '#' && i > 0 && chars[i - 1] == ' ' {
            return false;
        }
        if *c == '\n' {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_quote_as_go_yaml() {
        assert_eq!(scalar("plain text"), "plain text");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("Y"), "\"Y\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a: b"), "'a: b'");
        assert_eq!(scalar("a #b"), "'a #b'");
        assert_eq!(scalar("- x"), "'- x'");
        assert_eq!(scalar(" lead"), "' lead'");
        assert_eq!(scalar("*star"), "'*star'");
        assert_eq!(scalar("~"), "\"~\"");
        assert_eq!(scalar("a\tb"), "\"a\\tb\"");
        assert_eq!(scalar("-c"), "-c");
        assert_eq!(scalar("8.8.8.8"), "8.8.8.8");
        assert_eq!(scalar("1m30s"), "1m30s");
    }

    #[test]
    fn block_layout() {
        let doc = crate::yaml::parse(
            "{\"a\": {\"b\": [1, {\"c\": 2, \"d\": [3]}], \"e\": {}, \"f\": null}}",
        )
        .unwrap()
        .remove(0);
        let mut out = String::new();
        emit_yaml(&doc, 0, &mut out);
        assert_eq!(
            out,
            "a:\n  b:\n    - 1\n    - c: 2\n      d:\n        - 3\n  e: {}\n  f: null\n"
        );
    }
}
