//! Docker's output conventions: tab-aligned tables, human sizes and durations, and
//! `--format` templates (the subset of Go templates Docker users reach for first).

use std::fmt::Write as _;

use serde_json::Value;

/// Aligns rows as Go's `tabwriter` does with Docker's settings (min width 10,
/// padding 3): every column but the last is padded to its widest cell + 3.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let width = (widths[i] + 3).max(10);
                let pad = width - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `units.HumanSizeWithPrecision(size, 3)`: decimal units, 3 significant digits
/// (`4.26MB`, `972B`, `1.5kB`).
pub fn human_size(size: i64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(value, 3), UNITS[unit])
}

/// Go's `%.Ng` for values below 1000: N significant digits, trailing zeros dropped.
fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// "2 hours ago" for a Unix time, relative to now.
pub fn ago(unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    format!("{} ago", pier_image::time::human_duration(now - unix))
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A parsed `--format` template: literal text and `{{.Field}}` / `{{json .}}` /
/// `{{json .Field}}` actions. A leading `table` asks for aligned columns with a
/// header row.
#[derive(Debug)]
pub struct Template {
    pub table: bool,
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Field(Vec<String>),
    Json(Vec<String>),
}

impl Template {
    /// Parses `format`; `\t` and `\n` escapes become tab and newline, as Docker does.
    pub fn parse(format: &str) -> Result<Template, String> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, format),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let end = rest[start..]
                .find("}}")
                .ok_or_else(|| format!("template: unclosed action in {format:?}"))?;
            let action = rest[start + 2..start + end].trim();
            parts.push(parse_action(action)?);
            rest = &rest[start + end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { table, parts })
    }

    /// Renders one value (a JSON object whose keys are the template's field names).
    pub fn render(&self, value: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => {
                    let _ = write!(out, "{}", plain(lookup(value, path)));
                }
                Part::Json(path) => out.push_str(&lookup(value, path).to_string()),
            }
        }
        out
    }

    /// The header row of a `table` template: each field's name in upper case with
    /// Docker's spacing (`{{.ID}}` → `ID`, `{{.CreatedSince}}` → `CREATED`).
    pub fn header(&self, names: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) | Part::Json(path) => {
                    out.push_str(&names(path.last().map_or("", String::as_str)))
                }
            }
        }
        out
    }
}

fn parse_action(action: &str) -> Result<Part, String> {
    let field = |s: &str| -> Result<Vec<String>, String> {
        if s == "." {
            return Ok(Vec::new());
        }
        let path = s
            .strip_prefix('.')
            .ok_or_else(|| format!("template: unsupported action {{{{{action}}}}}"))?;
        Ok(path.split('.').map(str::to_string).collect())
    };
    match action.strip_prefix("json ") {
        Some(arg) => Ok(Part::Json(field(arg.trim())?)),
        None => Ok(Part::Field(field(action)?)),
    }
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> &'a Value {
    let mut v = value;
    for key in path {
        v = v.get(key).unwrap_or(&Value::Null);
    }
    v
}

/// A value as Go's template prints it: strings bare, `<no value>` for missing.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(plain).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", plain(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

/// Renders rows with a template: as an aligned table with a header for `table`
/// templates, one line per value otherwise.
pub fn render_all(t: &Template, values: &[Value], names: &dyn Fn(&str) -> String) -> String {
    if t.table {
        let mut rows = vec![split_cells(&t.header(names))];
        rows.extend(values.iter().map(|v| split_cells(&t.render(v))));
        table(&rows)
    } else {
        values.iter().map(|v| t.render(v) + "\n").collect()
    }
}

fn split_cells(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_string).collect()
}

/// `inspect`'s output: the objects as a JSON array indented like docker's (4 spaces),
/// or one rendered template line per object with `--format`.
pub fn print_inspect(values: &[Value], template: Option<&Template>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match template {
        Some(t) => {
            for v in values {
                writeln!(out, "{}", t.render(v))?;
            }
        }
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(values, &mut ser).map_err(std::io::Error::other)?;
            out.write_all(&buf)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(972), "972B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_000_000_000), "1GB");
    }

    #[test]
    fn table_pads_like_tabwriter() {
        let rows = vec![
            vec!["REPOSITORY".into(), "TAG".into(), "SIZE".into()],
            vec!["busybox".into(), "latest".into(), "4MB".into()],
        ];
        assert_eq!(
            table(&rows),
            "REPOSITORY   TAG       SIZE\nbusybox      latest    4MB\n"
        );
    }

    #[test]
    fn templates() {
        let v = serde_json::json!({"ID": "abc", "Tag": "1", "Labels": {"a": "b"}});
        let t = Template::parse("{{.ID}}:{{.Tag}}").unwrap();
        assert!(!t.table);
        assert_eq!(t.render(&v), "abc:1");
        let t = Template::parse("{{json .Labels}}").unwrap();
        assert_eq!(t.render(&v), r#"{"a":"b"}"#);
        let t = Template::parse("table {{.ID}}\\t{{.Tag}}").unwrap();
        assert!(t.table);
        let out = render_all(&t, &[v], &|n| n.to_uppercase());
        assert_eq!(out, "ID        TAG\nabc       1\n");
        assert!(Template::parse("{{.ID").is_err());
        assert!(Template::parse("{{range .}}").is_err());
    }
}
