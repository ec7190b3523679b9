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

/// A parsed `--format` template: Go's `text/template` as the docker CLI uses it, on
/// JSON values.
///
/// Actions: `{{.A.B}}`, `{{$}}`, `{{$x := pipeline}}`, `{{$x = pipeline}}`, pipelines
/// (`{{.X | json}}`), parenthesized pipelines, `{{if}}`/`{{else if}}`/`{{else}}`,
/// `{{range}}` (with `$i, $e :=`, `{{else}}`, `{{break}}`, `{{continue}}`),
/// `{{with}}`, comments, and `{{-`/`-}}` trim markers. Functions: Go's built-ins
/// (`and or not len index slice print printf println eq ne lt le gt ge html js
/// urlquery`) and Docker's (`json split join title lower upper pad truncate`).
///
/// Values follow Go's printing of what the docker CLI decodes: strings bare, numbers
/// as written, lists `[a b]`, objects `map[k:v]` (keys sorted), `null` as `<nil>`
/// and a missing key as `<no value>`.
#[derive(Debug)]
pub struct Template {
    /// A leading `table`: aligned columns with a header row.
    pub table: bool,
    /// The format as given, for [`print_inspect`] (which reads it as written).
    source: String,
    /// Parsed with [`Template::parse_raw`].
    raw: bool,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    /// Prints its value unless the pipeline declares or assigns variables.
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Pipe {
    /// Variables declared (`:=`) or assigned (`=`), without the `$`.
    vars: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Operand>>,
}

#[derive(Debug, Clone)]
enum Operand {
    Dot,
    /// `.A.B` on dot.
    Field(Vec<String>),
    /// `$x.A` (`$` is the name ""), then fields.
    Var(String, Vec<String>),
    Func(String),
    Lit(Value),
    Nil,
    /// `(pipeline)`, then fields.
    Sub(Box<Pipe>, Vec<String>),
}

/// An evaluated value; `None` is a missing map key (`<no value>`).
type Val = Option<Value>;

const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery", "json", "split", "join", "title", "lower", "upper",
    "pad", "truncate",
];

/// Docker's header functions: in a table's header row these give back their first
/// argument (the column name) untouched.
const HEADER_IDENTITY: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "truncate",
];

impl Template {
    /// Parses a list command's `--format` as the docker CLI does: `json` is
    /// `{{json .}}`; a leading `table` asks for aligned columns with a header; spaces
    /// around the format are trimmed; `\t` and `\n` escapes become tab and newline.
    pub fn parse(format: &str) -> Result<Template, String> {
        if format == "json" {
            let mut t = Template::parse_raw("{{json .}}")?;
            t.source = format.to_string();
            t.raw = false;
            return Ok(t);
        }
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        Ok(Template {
            table,
            source: format.to_string(),
            raw: false,
            nodes: Parser::new(&body)?.parse_top()?,
        })
    }

    /// Parses a Go template as written (`docker inspect --format`): no `table`, no
    /// escapes, no trimming.
    pub fn parse_raw(format: &str) -> Result<Template, String> {
        Ok(Template {
            table: false,
            source: format.to_string(),
            raw: true,
            nodes: Parser::new(format)?.parse_top()?,
        })
    }

    /// Renders one value (a JSON object whose keys are the template's field names);
    /// on an execution error, what was rendered before it.
    pub fn render(&self, value: &Value) -> String {
        match self.try_render(value) {
            Ok(s) => s,
            Err((partial, _)) => partial,
        }
    }

    /// Renders one value, or fails as Go's `Execute` does (with the output so far).
    pub fn try_render(&self, value: &Value) -> Result<String, (String, String)> {
        let mut exec = Exec {
            root: value,
            vars: Vec::new(),
            header: None,
            out: String::new(),
        };
        match exec.nodes(&self.nodes, value) {
            Ok(_) => Ok(exec.out),
            Err(e) => Err((exec.out, format!("template: executing \"\": {e}"))),
        }
    }

    /// The header row of a `table` template: the template run with every field
    /// replaced by its column name (`{{.ID}}` → `ID`, `{{.CreatedSince}}` →
    /// `CREATED`, by `names` of the field's last element) and Docker's header
    /// functions (`{{upper .Tag}}` → `TAG`).
    pub fn header(&self, names: &dyn Fn(&str) -> String) -> String {
        let mut exec = Exec {
            root: &Value::Null,
            vars: Vec::new(),
            header: Some(names),
            out: String::new(),
        };
        match exec.nodes(&self.nodes, &Value::Null) {
            Ok(_) => exec.out,
            // Docker prints an empty header when the header row cannot be made.
            Err(_) => String::new(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Field(String),
    Dot,
    Var(String),
    Lit(Value),
    Nil,
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Whitespace before it (`$x.A` is one operand, `$x .A` two).
    spaced: bool,
}

/// The template split into text and actions (tokens, line of the action).
enum Item {
    Text(String),
    Action(Vec<Token>, usize),
}

fn err_at(line: usize, msg: impl std::fmt::Display) -> String {
    format!("template: :{line}: {msg}")
}

fn lex(src: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    let line_of = |rest: &str| src[..src.len() - rest.len()].matches('\n').count() + 1;
    loop {
        let Some(start) = rest.find("{{") else {
            let text = if trim_next { rest.trim_start() } else { rest };
            if !text.is_empty() {
                items.push(Item::Text(text.to_string()));
            }
            return Ok(items);
        };
        let line = line_of(&rest[start..]);
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner = &rest[start + 2..];
        if inner.starts_with('-') && inner[1..].starts_with([' ', '\t', '\r', '\n']) {
            text = text.trim_end();
            inner = &inner[1..];
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let body = inner.trim_start();
        if let Some(comment) = body.strip_prefix("/*") {
            let end = comment
                .find("*/")
                .ok_or_else(|| err_at(line, "unclosed comment"))?;
            let after = comment[end + 2..].trim_start_matches([' ', '\t', '\r', '\n']);
            let (after, trim) = match after.strip_prefix("-}}") {
                Some(a) => (a, true),
                None => (
                    after
                        .strip_prefix("}}")
                        .ok_or_else(|| err_at(line, "comment ends before closing delimiter"))?,
                    false,
                ),
            };
            trim_next = trim;
            rest = after;
            continue;
        }
        let (tokens, after, trim) = lex_action(inner, line)?;
        items.push(Item::Action(tokens, line));
        trim_next = trim;
        rest = after;
    }
}

/// Tokens of one action up to its `}}`; the text after it, and whether it ended
/// with a trim marker (` -}}`).
fn lex_action(src: &str, line: usize) -> Result<(Vec<Token>, &str, bool), String> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut spaced = true;
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            let ws_start = i;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if src[i..].starts_with("-}}") && ws_start < i {
                return Ok((tokens, &src[i + 3..], true));
            }
            spaced = true;
            continue;
        }
        if src[i..].starts_with("}}") {
            return Ok((tokens, &src[i + 2..], false));
        }
        let start = i;
        let tok = match c {
            b'|' => {
                i += 1;
                Tok::Pipe
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'=' => {
                i += 1;
                Tok::Assign
            }
            b':' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Declare
            }
            b'"' => {
                let (s, n) = lex_quoted(&src[i..])
                    .ok_or_else(|| err_at(line, "unterminated quoted string"))?;
                i += n;
                Tok::Lit(Value::String(s))
            }
            b'`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or_else(|| err_at(line, "unterminated raw quoted string"))?;
                let s = src[i + 1..i + 1 + end].to_string();
                i += end + 2;
                Tok::Lit(Value::String(s))
            }
            b'\'' => {
                let (s, n) = lex_quoted(&src[i..])
                    .ok_or_else(|| err_at(line, "unterminated character constant"))?;
                i += n;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(ch), None) => Tok::Lit(Value::from(ch as u32)),
                    _ => {
                        return Err(err_at(
                            line,
                            format!("malformed character constant: {}", &src[start..i]),
                        ))
                    }
                }
            }
            b'.' if bytes
                .get(i + 1)
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') =>
            {
                i += 1;
                while i < bytes.len() && ident_char(bytes[i]) {
                    i += 1;
                }
                Tok::Field(src[start + 1..i].to_string())
            }
            b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                Tok::Dot
            }
            b'$' => {
                i += 1;
                while i < bytes.len() && ident_char(bytes[i]) {
                    i += 1;
                }
                Tok::Var(src[start + 1..i].to_string())
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'.'
                        || bytes[i] == b'_'
                        || ((bytes[i] == b'-' || bytes[i] == b'+')
                            && matches!(bytes[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
                let text = &src[start..i];
                Tok::Lit(
                    parse_number(text)
                        .ok_or_else(|| err_at(line, format!("bad number syntax: {text:?}")))?,
                )
            }
            c if ident_char(c) => {
                while i < bytes.len() && ident_char(bytes[i]) {
                    i += 1;
                }
                match &src[start..i] {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Nil,
                    word => Tok::Ident(word.to_string()),
                }
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err_at(line, format!("unexpected {ch:?} in command")));
            }
        };
        tokens.push(Token { tok, spaced });
        spaced = false;
    }
    Err(err_at(line, "unclosed action"))
}

/// A Go double-quoted (or character) literal at the start of `src`: its value and
/// its length in bytes.
fn lex_quoted(src: &str) -> Option<(String, usize)> {
    let quote = src.chars().next()?;
    let mut out = String::new();
    let mut chars = src.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, i + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                let hex = |chars: &mut std::iter::Skip<std::str::CharIndices>, n: usize| {
                    let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' => out.push(hex(&mut chars, 2)?),
                    'u' => out.push(hex(&mut chars, 4)?),
                    'U' => out.push(hex(&mut chars, 8)?),
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

fn parse_number(text: &str) -> Option<Value> {
    let clean = text.replace('_', "");
    let (neg, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = |p: &str, r: u32| {
        digits
            .strip_prefix(p)
            .or_else(|| digits.strip_prefix(&p.to_uppercase()))
            .and_then(|d| i64::from_str_radix(d, r).ok())
    };
    let int = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| digits.parse::<i64>().ok());
    if let Some(n) = int {
        return Some(Value::from(if neg { -n } else { n }));
    }
    let f: f64 = clean.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

// ---------------------------------------------------------------------------------
// Parsing

struct Parser {
    items: std::vec::IntoIter<Item>,
    range_depth: usize,
}

enum Stop {
    Eof,
    End,
    /// `{{else}}` or `{{else if …}}`: the tokens after `else`, and the line.
    Else(Vec<Token>, usize),
}

impl Parser {
    fn new(src: &str) -> Result<Parser, String> {
        Ok(Parser {
            items: lex(src)?.into_iter(),
            range_depth: 0,
        })
    }

    fn parse_top(&mut self) -> Result<Vec<Node>, String> {
        let (nodes, stop) = self.list()?;
        match stop {
            Stop::Eof => Ok(nodes),
            Stop::End => Err("template: :1: unexpected {{end}}".to_string()),
            Stop::Else(_, line) => Err(err_at(line, "unexpected {{else}}")),
        }
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (tokens, line) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action(tokens, line) => (tokens, line),
            };
            let keyword = match tokens.first().map(|t| &t.tok) {
                Some(Tok::Ident(w)) => w.as_str(),
                _ => "",
            };
            let only = |node: Node| {
                if tokens.len() == 1 {
                    Ok(node)
                } else {
                    Err(err_at(
                        line,
                        format!("unexpected token in {{{{{keyword}}}}}"),
                    ))
                }
            };
            match keyword {
                "end" => {
                    only(Node::Break)?;
                    return Ok((nodes, Stop::End));
                }
                "else" => return Ok((nodes, Stop::Else(tokens[1..].to_vec(), line))),
                "if" | "range" | "with" => {
                    let pipe = parse_pipe(&tokens[1..], line, true)?;
                    nodes.push(self.control(keyword, pipe, line)?);
                }
                "break" | "continue" => {
                    if self.range_depth == 0 {
                        return Err(err_at(
                            line,
                            format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                        ));
                    }
                    nodes.push(only(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    })?);
                }
                "define" | "template" | "block" => {
                    return Err(err_at(line, format!("{{{{{keyword}}}}} is not supported")));
                }
                _ => nodes.push(Node::Action(parse_pipe(&tokens, line, true)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// The rest of an `if`/`range`/`with` after its pipeline, through its `{{end}}`.
    fn control(&mut self, keyword: &str, pipe: Pipe, line: usize) -> Result<Node, String> {
        if keyword == "range" {
            self.range_depth += 1;
        }
        let body = self.list();
        if keyword == "range" {
            self.range_depth -= 1;
        }
        let (body, stop) = body?;
        let els = match stop {
            Stop::End => Vec::new(),
            Stop::Eof => return Err(err_at(line, "unexpected EOF")),
            Stop::Else(rest, else_line) if rest.is_empty() => match self.list()? {
                (els, Stop::End) => els,
                (_, Stop::Eof) => return Err(err_at(else_line, "unexpected EOF")),
                (_, Stop::Else(_, l)) => return Err(err_at(l, "expected end; found {{else}}")),
            },
            Stop::Else(rest, else_line) => match rest[0].tok {
                Tok::Ident(ref w) if (w == "if" || w == "with") && keyword != "range" => {
                    let kw = w.clone();
                    let pipe = parse_pipe(&rest[1..], else_line, true)?;
                    vec![self.control(&kw, pipe, else_line)?]
                }
                _ => return Err(err_at(else_line, "unexpected token in {{else}}")),
            },
        };
        Ok(match keyword {
            "if" => Node::If(pipe, body, els),
            "with" => Node::With(pipe, body, els),
            _ => Node::Range(pipe, body, els),
        })
    }
}

/// A pipeline: optional `$a, $b :=` (or `=`), then commands separated by `|`.
fn parse_pipe(tokens: &[Token], line: usize, allow_decl: bool) -> Result<Pipe, String> {
    let mut vars = Vec::new();
    let mut assign = false;
    let mut rest = tokens;
    if allow_decl {
        let mut i = 0;
        let mut names = Vec::new();
        while let Some(Tok::Var(name)) = rest.get(i).map(|t| &t.tok) {
            names.push(name.clone());
            match rest.get(i + 1).map(|t| &t.tok) {
                Some(Tok::Comma) if names.len() < 2 => i += 2,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = rest[i + 1].tok == Tok::Assign;
                    vars = names;
                    rest = &rest[i + 2..];
                    break;
                }
                _ => break,
            }
        }
    }
    let mut cmds = Vec::new();
    let mut pos = 0;
    loop {
        let mut cmd = Vec::new();
        while pos < rest.len() && rest[pos].tok != Tok::Pipe {
            let (op, next) = parse_operand(rest, pos, line)?;
            cmd.push(op);
            pos = next;
        }
        if cmd.is_empty() {
            return Err(err_at(line, "missing value for command"));
        }
        cmds.push(cmd);
        if pos >= rest.len() {
            break;
        }
        pos += 1;
    }
    Ok(Pipe { vars, assign, cmds })
}

/// One operand at `pos` with the fields chained to it; the position after it.
fn parse_operand(tokens: &[Token], pos: usize, line: usize) -> Result<(Operand, usize), String> {
    let mut next = pos + 1;
    let chained = |next: &mut usize| {
        let mut fields = Vec::new();
        while let Some(Token {
            tok: Tok::Field(f),
            spaced: false,
        }) = tokens.get(*next)
        {
            fields.push(f.clone());
            *next += 1;
        }
        fields
    };
    let op = match &tokens[pos].tok {
        Tok::Field(f) => {
            let mut path = vec![f.clone()];
            path.extend(chained(&mut next));
            Operand::Field(path)
        }
        Tok::Dot => Operand::Dot,
        Tok::Var(name) => Operand::Var(name.clone(), chained(&mut next)),
        Tok::Lit(v) => Operand::Lit(v.clone()),
        Tok::Nil => Operand::Nil,
        Tok::Ident(name) => {
            if !FUNCS.contains(&name.as_str()) {
                return Err(err_at(line, format!("function {name:?} not defined")));
            }
            Operand::Func(name.clone())
        }
        Tok::LParen => {
            let mut depth = 1;
            let mut end = pos + 1;
            while end < tokens.len() {
                match tokens[end].tok {
                    Tok::LParen => depth += 1,
                    Tok::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                end += 1;
            }
            if end >= tokens.len() {
                return Err(err_at(line, "unclosed left paren"));
            }
            let pipe = parse_pipe(&tokens[pos + 1..end], line, false)?;
            next = end + 1;
            Operand::Sub(Box::new(pipe), chained(&mut next))
        }
        Tok::RParen => return Err(err_at(line, "unexpected right paren")),
        other => return Err(err_at(line, format!("unexpected {other:?} in operand"))),
    };
    Ok((op, next))
}

// ---------------------------------------------------------------------------------
// Execution

struct Exec<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
    /// Header mode: fields give their column names.
    header: Option<&'a dyn Fn(&str) -> String>,
    out: String,
}

#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        for node in nodes {
            let flow = self.node(node, dot)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    /// Runs `nodes` in a scope of their own (variables declared there end with it).
    fn scoped(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        let mark = self.vars.len();
        let flow = self.nodes(nodes, dot);
        self.vars.truncate(mark);
        flow
    }

    fn node(&mut self, node: &Node, dot: &Value) -> Result<Flow, String> {
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.pipe(pipe, dot)?;
                if pipe.vars.is_empty() {
                    self.out.push_str(&text(&v));
                } else {
                    self.bind(pipe, &[v.unwrap_or(Value::Null)])?;
                }
            }
            Node::If(pipe, then, els) | Node::With(pipe, then, els) => {
                let v = self.pipe(pipe, dot)?;
                // Variables declared here live to the control's {{end}}.
                let mark = self.vars.len();
                let bound = self.bind(pipe, &[v.clone().unwrap_or(Value::Null)]);
                let flow = bound.and_then(|()| match (truthy(&v), node) {
                    (true, Node::With(..)) => {
                        let v = v.unwrap_or(Value::Null);
                        self.scoped(then, &v)
                    }
                    (true, _) => self.scoped(then, dot),
                    (false, _) => self.scoped(els, dot),
                });
                self.vars.truncate(mark);
                return flow;
            }
            Node::Range(pipe, body, els) => {
                let v = self.pipe(pipe, dot)?.unwrap_or(Value::Null);
                let items: Vec<(Value, Value)> = match v {
                    Value::Array(a) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, e)| (Value::from(i), e))
                        .collect(),
                    Value::Object(m) => {
                        let mut kv: Vec<(String, Value)> = m.into_iter().collect();
                        kv.sort_by(|a, b| a.0.cmp(&b.0));
                        kv.into_iter().map(|(k, e)| (Value::String(k), e)).collect()
                    }
                    Value::Number(n) if n.as_i64().is_some() => (0..n.as_i64().unwrap_or(0))
                        .map(|i| (Value::from(i), Value::from(i)))
                        .collect(),
                    Value::Null => Vec::new(),
                    other => {
                        return Err(format!("range can't iterate over {}", text(&Some(other))))
                    }
                };
                if items.is_empty() {
                    return self.scoped(els, dot);
                }
                for (key, elem) in items {
                    let mark = self.vars.len();
                    match pipe.vars.len() {
                        0 => {}
                        1 => self.vars.push((pipe.vars[0].clone(), elem.clone())),
                        _ => {
                            self.vars.push((pipe.vars[0].clone(), key));
                            self.vars.push((pipe.vars[1].clone(), elem.clone()));
                        }
                    }
                    let flow = self.nodes(body, &elem);
                    self.vars.truncate(mark);
                    if flow? == Flow::Break {
                        break;
                    }
                }
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn bind(&mut self, pipe: &Pipe, values: &[Value]) -> Result<(), String> {
        for (name, v) in pipe.vars.iter().zip(values) {
            if pipe.assign {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| format!("undefined variable: ${name}"))?;
                slot.1 = v.clone();
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Val, String> {
        let mut prev: Option<Val> = None;
        for cmd in &pipe.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        Ok(prev.flatten())
    }

    fn command(&mut self, cmd: &[Operand], dot: &Value, prev: Option<Val>) -> Result<Val, String> {
        match &cmd[0] {
            Operand::Func(name) => {
                let mut args = cmd[1..]
                    .iter()
                    .map(|op| self.operand(op, dot))
                    .collect::<Result<Vec<_>, _>>()?;
                args.extend(prev);
                self.call(name, args)
            }
            // A field with arguments: a method in Docker's contexts (`.Label "k"`).
            Operand::Field(path) if cmd.len() > 1 || prev.is_some() => {
                let mut args = cmd[1..]
                    .iter()
                    .map(|op| self.operand(op, dot))
                    .collect::<Result<Vec<_>, _>>()?;
                args.extend(prev);
                let key = match args.as_slice() {
                    [Some(Value::String(k))] => k.clone(),
                    _ => {
                        return Err(format!(
                            "can't give argument to non-function .{}",
                            path.join(".")
                        ))
                    }
                };
                if self.header.is_some() {
                    return Ok(Some(Value::String(key)));
                }
                Ok(Some(method(dot, path, &key)?))
            }
            op => {
                if cmd.len() > 1 || prev.is_some() {
                    return Err(format!("can't give argument to non-function {op:?}"));
                }
                if let Operand::Nil = op {
                    return Err("nil is not a command".to_string());
                }
                self.operand(op, dot)
            }
        }
    }

    fn operand(&mut self, op: &Operand, dot: &Value) -> Result<Val, String> {
        match op {
            Operand::Dot => Ok(Some(dot.clone())),
            Operand::Field(path) => self.walk(dot, path),
            Operand::Var(name, path) => {
                let v = if name.is_empty() {
                    self.root.clone()
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| format!("undefined variable: ${name}"))?
                };
                self.fields(Some(v), path)
            }
            Operand::Func(name) => self.call(name, Vec::new()),
            Operand::Lit(v) => Ok(Some(v.clone())),
            Operand::Nil => Ok(Some(Value::Null)),
            Operand::Sub(pipe, path) => {
                let v = self.pipe(pipe, dot)?;
                self.fields(v, path)
            }
        }
    }

    fn fields(&self, v: Val, path: &[String]) -> Result<Val, String> {
        match v {
            Some(v) => self.walk(&v, path),
            None if path.is_empty() => Ok(None),
            None => self.walk(&Value::Null, path),
        }
    }

    /// `.A.B` from `v`: a missing key is `None`; a field of a non-object an error.
    fn walk(&self, v: &Value, path: &[String]) -> Result<Val, String> {
        if path.is_empty() {
            return Ok(Some(v.clone()));
        }
        if let Some(names) = self.header {
            return Ok(Some(Value::String(names(
                path.last().map_or("", String::as_str),
            ))));
        }
        let mut v = v;
        for key in path {
            v = match v {
                Value::Object(m) => match m.get(key) {
                    Some(x) => x,
                    None => return Ok(None),
                },
                Value::Null => return Ok(None),
                other => {
                    return Err(format!(
                        "can't evaluate field {key} in type {}",
                        go_type(other)
                    ))
                }
            };
        }
        Ok(Some(v.clone()))
    }

    fn call(&mut self, name: &str, args: Vec<Val>) -> Result<Val, String> {
        if self.header.is_some() && HEADER_IDENTITY.contains(&name) {
            return Ok(args.into_iter().next().flatten());
        }
        call(name, args).map_err(|e| format!("error calling {name}: {e}"))
    }
}

/// `.Label "key"` on a row: the key in the object at `path`, or in a `Labels`
/// string of `k=v,k=v` (what Docker's ps and images rows show).
fn method(dot: &Value, path: &[String], key: &str) -> Result<Value, String> {
    let mut v = dot;
    for p in path {
        v = v.get(p).unwrap_or(&Value::Null);
    }
    match v {
        Value::Object(m) => Ok(m.get(key).cloned().unwrap_or(Value::String(String::new()))),
        Value::Null => {
            let parent = path.len().saturating_sub(1);
            let mut owner = dot;
            for p in &path[..parent] {
                owner = owner.get(p).unwrap_or(&Value::Null);
            }
            let plural = format!("{}s", path.last().map_or("", String::as_str));
            match owner.get(&plural) {
                Some(Value::String(list)) => Ok(Value::String(
                    list.split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default(),
                )),
                Some(Value::Object(m)) => {
                    Ok(m.get(key).cloned().unwrap_or(Value::String(String::new())))
                }
                _ => Err(format!("can't evaluate field {}", path.join("."))),
            }
        }
        _ => Err(format!(
            "can't give argument to non-function .{}",
            path.join(".")
        )),
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's truth: false, 0, nil, and empty strings, lists and maps are false.
fn truthy(v: &Val) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// A value as Go's template prints it (`%v`).
fn text(v: &Val) -> String {
    match v {
        None => "<no value>".to_string(),
        Some(v) => plain(v),
    }
}

/// `%v` of a present value: strings bare, `[a b]`, `map[k:v]` with sorted keys,
/// `<nil>` for null.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(plain).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", plain(&map[k])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

fn want(args: &[Val], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("wrong number of args: want {n} got {}", args.len()))
    }
}

fn arg_str(v: &Val) -> String {
    v.as_ref().map_or_else(String::new, plain)
}

fn arg_int(v: &Val) -> Result<i64, String> {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("expected integer; got {n}")),
        other => Err(format!("expected integer; got {}", text(other))),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Val| matches!(v, Some(Value::String(_)));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&print_arg(a));
    }
    out
}

/// A function argument as `fmt` prints it (a missing value is nil).
fn print_arg(v: &Val) -> String {
    v.as_ref().map_or_else(|| "<nil>".to_string(), plain)
}

fn call(name: &str, args: Vec<Val>) -> Result<Val, String> {
    let s = |v: String| Ok(Some(Value::String(v)));
    match name {
        "and" | "or" => {
            if args.is_empty() {
                return Err("wrong number of args: want at least 1 got 0".to_string());
            }
            let stop = args
                .iter()
                .position(|a| truthy(a) == (name == "or"))
                .unwrap_or(args.len() - 1);
            Ok(args.into_iter().nth(stop).flatten())
        }
        "not" => {
            want(&args, 1)?;
            Ok(Some(Value::Bool(!truthy(&args[0]))))
        }
        "len" => {
            want(&args, 1)?;
            match &args[0] {
                Some(Value::String(x)) => Ok(Some(Value::from(x.len()))),
                Some(Value::Array(a)) => Ok(Some(Value::from(a.len()))),
                Some(Value::Object(m)) => Ok(Some(Value::from(m.len()))),
                other => Err(format!(
                    "len of type {}",
                    other.as_ref().map_or("<nil>", go_type)
                )),
            }
        }
        "index" => {
            let mut it = args.into_iter();
            let mut v = it
                .next()
                .ok_or("wrong number of args: want at least 1 got 0")?;
            for idx in it {
                v = match (v, idx) {
                    (Some(Value::Array(a)), i) => {
                        let i = arg_int(&i)?;
                        let n = usize::try_from(i)
                            .ok()
                            .filter(|&n| n < a.len())
                            .ok_or_else(|| format!("index out of range: {i}"))?;
                        a.into_iter().nth(n)
                    }
                    (Some(Value::Object(mut m)), Some(Value::String(k))) => {
                        // A missing key gives the map's zero value: "" for the
                        // string maps of Docker's objects (Labels, Options…).
                        let strings = m.values().all(Value::is_string);
                        match m.remove(&k) {
                            Some(v) => Some(v),
                            None if strings => Some(Value::String(String::new())),
                            None => None,
                        }
                    }
                    (None | Some(Value::Null), _) => return Err("index of untyped nil".to_string()),
                    (Some(other), _) => {
                        return Err(format!("can't index item of type {}", go_type(&other)))
                    }
                };
            }
            Ok(v)
        }
        "slice" => {
            if args.is_empty() || args.len() > 4 {
                return Err(format!(
                    "wrong number of args: want 1 to 3 got {}",
                    args.len()
                ));
            }
            let idx = args[1..]
                .iter()
                .map(|a| arg_int(a).and_then(|i| usize::try_from(i).map_err(|e| e.to_string())))
                .collect::<Result<Vec<usize>, _>>()?;
            match &args[0] {
                Some(Value::String(x)) => {
                    let lo = idx.first().copied().unwrap_or(0);
                    let hi = idx.get(1).copied().unwrap_or(x.len());
                    x.get(lo..hi)
                        .map(|t| Some(Value::String(t.to_string())))
                        .ok_or_else(|| format!("index out of range: {hi}"))
                }
                Some(Value::Array(a)) => {
                    let lo = idx.first().copied().unwrap_or(0);
                    let hi = idx.get(1).copied().unwrap_or(a.len());
                    a.get(lo..hi)
                        .map(|t| Some(Value::Array(t.to_vec())))
                        .ok_or_else(|| format!("index out of range: {hi}"))
                }
                other => Err(format!(
                    "can't slice item of type {}",
                    other.as_ref().map_or("<nil>", go_type)
                )),
            }
        }
        "print" => s(sprint(&args)),
        "println" => {
            let parts: Vec<String> = args.iter().map(print_arg).collect();
            s(parts.join(" ") + "\n")
        }
        "printf" => {
            let (format, rest) = args
                .split_first()
                .ok_or("wrong number of args: want at least 1 got 0")?;
            s(sprintf(&arg_str(format), rest))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".to_string());
            }
            for b in &args[1..] {
                if compare(&args[0], b)? == Some(std::cmp::Ordering::Equal) {
                    return Ok(Some(Value::Bool(true)));
                }
            }
            Ok(Some(Value::Bool(false)))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(&args, 2)?;
            use std::cmp::Ordering::*;
            let ord = compare(&args[0], &args[1])?;
            let result = match (name, ord) {
                ("ne", o) => o != Some(Equal),
                (_, None) => return Err("invalid type for comparison".to_string()),
                ("lt", Some(o)) => o == Less,
                ("le", Some(o)) => o != Greater,
                ("gt", Some(o)) => o == Greater,
                (_, Some(o)) => o != Less,
            };
            Ok(Some(Value::Bool(result)))
        }
        "html" => s(sprint(&args)
            .chars()
            .map(|c| match c {
                '<' => "&lt;".to_string(),
                '>' => "&gt;".to_string(),
                '&' => "&amp;".to_string(),
                '\'' => "&#39;".to_string(),
                '"' => "&#34;".to_string(),
                '\0' => "\u{FFFD}".to_string(),
                c => c.to_string(),
            })
            .collect()),
        "js" => s(sprint(&args)
            .chars()
            .map(|c| match c {
                '\\' => "\\\\".to_string(),
                '\'' => "\\'".to_string(),
                '"' => "\\\"".to_string(),
                '<' | '>' | '&' | '=' => format!("\\u{:04X}", c as u32),
                c if (c as u32) < 0x20 => format!("\\u{:04X}", c as u32),
                c => c.to_string(),
            })
            .collect()),
        "urlquery" => s(sprint(&args)
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                b => format!("%{b:02X}"),
            })
            .collect()),
        "json" => {
            want(&args, 1)?;
            let v = args[0].clone().unwrap_or(Value::Null);
            s(serde_json::to_string(&v).map_err(|e| e.to_string())?)
        }
        "split" => {
            want(&args, 2)?;
            let (text, sep) = (arg_str(&args[0]), arg_str(&args[1]));
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Some(Value::Array(parts)))
        }
        "join" => {
            want(&args, 2)?;
            let sep = arg_str(&args[1]);
            match &args[0] {
                Some(Value::Array(a)) => s(a.iter().map(plain).collect::<Vec<_>>().join(&sep)),
                None | Some(Value::Null) => s(String::new()),
                Some(other) => Err(format!(
                    "wrong type for value; expected []string; got {}",
                    go_type(other)
                )),
            }
        }
        "title" => {
            want(&args, 1)?;
            let mut out = String::new();
            let mut start = true;
            for c in arg_str(&args[0]).chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !(c.is_alphanumeric() || c == '_' || c == '\'');
            }
            s(out)
        }
        "lower" => {
            want(&args, 1)?;
            s(arg_str(&args[0]).to_lowercase())
        }
        "upper" => {
            want(&args, 1)?;
            s(arg_str(&args[0]).to_uppercase())
        }
        "pad" => {
            want(&args, 3)?;
            let text = arg_str(&args[0]);
            if text.is_empty() {
                return s(text);
            }
            let n = |v: &Val| arg_int(v).map(|i| usize::try_from(i).unwrap_or(0));
            let (pre, post) = (n(&args[1])?, n(&args[2])?);
            s(format!("{}{text}{}", " ".repeat(pre), " ".repeat(post)))
        }
        "truncate" => {
            want(&args, 2)?;
            let text = arg_str(&args[0]);
            let n = usize::try_from(arg_int(&args[1])?).unwrap_or(0);
            if text.len() < n {
                return s(text);
            }
            // Go cuts bytes; stay on a character boundary.
            let mut end = n;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            s(text[..end].to_string())
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's comparison of basic kinds: numbers with numbers, strings with strings,
/// bools with bools; `Some(Equal)` for two nils. Other pairs: an error, as in Go.
fn compare(a: &Val, b: &Val) -> Result<Option<std::cmp::Ordering>, String> {
    let nil = |v: &Val| matches!(v, None | Some(Value::Null));
    match (a, b) {
        (x, y) if nil(x) || nil(y) => Ok((nil(x) && nil(y)).then_some(std::cmp::Ordering::Equal)),
        (Some(Value::Number(x)), Some(Value::Number(y))) => Ok(match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Some(i.cmp(&j)),
            _ => x.as_f64().partial_cmp(&y.as_f64()),
        }),
        (Some(Value::String(x)), Some(Value::String(y))) => Ok(Some(x.cmp(y))),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => Ok(Some(x.cmp(y))),
        _ => Err("incompatible types for comparison".to_string()),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %t %x %X %o %b %c
/// %e %f %g %%`, with flags `-+0 #`, width and precision.
fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space, mut sharp) =
            (false, false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => sharp = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        let width = number(&mut chars);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let bad = |arg: &Val| match arg {
            None | Some(Value::Null) => format!("%!{verb}(<nil>)"),
            Some(v) => format!("%!{verb}({}={})", go_type(v), plain(v)),
        };
        let int = arg.as_ref().and_then(Value::as_i64);
        let float = arg.as_ref().and_then(Value::as_f64);
        let mut numeric = false;
        let body = match verb {
            'v' => print_arg(arg),
            's' => match arg {
                Some(Value::String(x)) => x.clone(),
                Some(Value::Array(_) | Value::Object(_)) => {
                    plain(arg.as_ref().unwrap_or(&Value::Null))
                }
                _ => bad(arg),
            },
            'q' => match arg {
                Some(Value::String(x)) => go_quote(x),
                _ => match int
                    .and_then(|i| u32::try_from(i).ok())
                    .and_then(char::from_u32)
                {
                    Some(ch) => format!("{ch:?}"),
                    None => bad(arg),
                },
            },
            't' => match arg {
                Some(Value::Bool(b)) => b.to_string(),
                _ => bad(arg),
            },
            'd' | 'x' | 'X' | 'o' | 'b' if int.is_some() => {
                numeric = true;
                let i = int.unwrap_or(0);
                let magnitude = i.unsigned_abs();
                let digits = match verb {
                    'd' => magnitude.to_string(),
                    'x' => format!("{}{magnitude:x}", if sharp { "0x" } else { "" }),
                    'X' => format!("{}{magnitude:X}", if sharp { "0X" } else { "" }),
                    'o' => format!("{}{magnitude:o}", if sharp { "0" } else { "" }),
                    _ => format!("{magnitude:b}"),
                };
                let sign = if i < 0 {
                    "-"
                } else if plus {
                    "+"
                } else if space {
                    " "
                } else {
                    ""
                };
                format!("{sign}{digits}")
            }
            'x' | 'X' if matches!(arg, Some(Value::String(_))) => {
                let hex: String = arg_str(arg).bytes().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' {
                    hex.to_uppercase()
                } else {
                    hex
                }
            }
            'c' => match int
                .and_then(|i| u32::try_from(i).ok())
                .and_then(char::from_u32)
            {
                Some(ch) => ch.to_string(),
                None => bad(arg),
            },
            'e' | 'f' | 'F' | 'g' if float.is_some() => {
                numeric = true;
                let f = float.unwrap_or(0.0);
                let text = match verb {
                    'e' => go_exp(f, precision.unwrap_or(6)),
                    'g' => match precision {
                        Some(p) => significant(f, p.max(1) as i32),
                        None => {
                            let v = arg.clone().unwrap_or(Value::Null);
                            plain(&v)
                        }
                    },
                    _ => format!("{f:.*}", precision.unwrap_or(6)),
                };
                if plus && f >= 0.0 {
                    format!("+{text}")
                } else {
                    text
                }
            }
            _ => bad(arg),
        };
        let body = match (verb, precision) {
            ('s' | 'v', Some(p)) => body.chars().take(p).collect(),
            _ => body,
        };
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.extend(std::iter::repeat_n(' ', pad));
                } else if zero && numeric {
                    let (sign, digits) = match body.chars().next() {
                        Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
                        _ => (String::new(), body),
                    };
                    out.push_str(&sign);
                    out.extend(std::iter::repeat_n('0', pad));
                    out.push_str(&digits);
                } else {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                None | Some(Value::Null) => "<nil>".to_string(),
                Some(v) => format!("{}={}", go_type(v), plain(v)),
            })
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

/// Go's `%e`: `1.234560e+06`.
fn go_exp(f: f64, precision: usize) -> String {
    let text = format!("{f:.precision$e}");
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

/// Go's `strconv.Quote` for printable text: `"a\tb"`.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
/// or one rendered template line per object with `--format`. Inspect formats are
/// Go templates as written (docker applies no `table` and no `\t` escapes there);
/// `--format json` prints the array on one line. An execution error stops with
/// docker's message.
pub fn print_inspect(values: &[Value], template: Option<&Template>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match template {
        Some(t) if t.source == "json" => {
            let line = serde_json::to_string(values).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
        }
        Some(t) => {
            let reparsed;
            let t = if t.raw {
                t
            } else {
                match Template::parse_raw(&t.source) {
                    Ok(raw) => {
                        reparsed = raw;
                        &reparsed
                    }
                    Err(_) => t,
                }
            };
            for v in values {
                match t.try_render(v) {
                    Ok(line) => writeln!(out, "{line}")?,
                    Err((partial, e)) => {
                        out.write_all(partial.as_bytes())?;
                        out.flush()?;
                        return Err(std::io::Error::other(format!(
                            "template parsing error: {e}"
                        )));
                    }
                }
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

    /// What `docker image inspect` decodes for a busybox imported into pierd with
    /// `LABEL b=2 a=1`, `ENV X=1 Y=two` and a second tag.
    fn image() -> Value {
        serde_json::json!({
            "Architecture": "amd64",
            "Config": {
                "Cmd": ["sh"],
                "Entrypoint": null,
                "Env": ["X=1", "Y=two"],
                "Labels": {"a": "1", "b": "2"},
                "Volumes": null,
                "WorkingDir": ""
            },
            "Id": "sha256:046f19a66abb920832f3d4b1217754fb29043ec52b0f0c99d1b68ef6ea0d32ce",
            "Os": "linux",
            "RepoDigests": [],
            "RepoTags": ["busybox:latest", "busybox:v2"],
            "Size": 2043904
        })
    }

    /// `docker image inspect --format FORMAT busybox` (docker 28.x against pierd),
    /// where Pier's JSON model gives the same answer.
    #[test]
    fn inspect_formats_like_docker() {
        let cases: &[(&str, &str)] = &[
            ("{{.Os}}", "linux"),
            ("{{.Config.Labels}}", "map[a:1 b:2]"),
            ("{{.Config.Env}}", "[X=1 Y=two]"),
            ("{{json .Config.Labels}}", r#"{"a":"1","b":"2"}"#),
            ("{{json .Config.Entrypoint}}", "null"),
            ("{{.Config.Labels.a}}", "1"),
            ("{{.Config.Labels.c}}", "<no value>"),
            (r#"{{index .Config.Labels "b"}}"#, "2"),
            (r#"{{index .Config.Labels "zz"}}"#, ""),
            ("{{index .RepoTags 1}}", "busybox:v2"),
            ("{{index .Config.Env 0}}", "X=1"),
            (r#"{{join .RepoTags ","}}"#, "busybox:latest,busybox:v2"),
            (
                "{{range .RepoTags}}<{{.}}>{{end}}",
                "<busybox:latest><busybox:v2>",
            ),
            (
                "{{range $i, $t := .RepoTags}}{{$i}}={{$t}};{{end}}",
                "0=busybox:latest;1=busybox:v2;",
            ),
            (
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                "a=1;b=2;",
            ),
            ("{{range .Config.Entrypoint}}x{{else}}empty{{end}}", "empty"),
            ("{{if .Config.Entrypoint}}yes{{else}}no{{end}}", "no"),
            ("{{if .Config.Cmd}}yes{{else}}no{{end}}", "yes"),
            (
                r#"{{if eq .Os "linux"}}L{{else if eq .Os "x"}}X{{else}}O{{end}}"#,
                "L",
            ),
            (r#"{{printf "%s-%d" .Os .Size}}"#, "linux-2043904"),
            (
                r#"{{printf "%v" .RepoTags}}"#,
                "[busybox:latest busybox:v2]",
            ),
            (r#"{{printf "%q" .Os}}"#, r#""linux""#),
            (
                r#"{{printf "%10s|%-6s|%05d" .Os .Os 42}}"#,
                "     linux|linux |00042",
            ),
            ("{{.Os | upper}}", "LINUX"),
            (r#"{{.Os | printf "%s!"}}"#, "linux!"),
            (
                r#"{{upper .Os}} {{lower "ABC"}} {{title "hello world"}}"#,
                "LINUX abc Hello World",
            ),
            (r#"{{split "a,b,c" ","}}"#, "[a b c]"),
            (r#"{{json (split "a,b,c" ",")}}"#, r#"["a","b","c"]"#),
            ("{{pad .Os 2 3}}|", "  linux   |"),
            ("{{truncate .Id 12}}", "sha256:046f1"),
            (r#"{{truncate "abc" 12}}"#, "abc"),
            (
                "{{len .RepoTags}} {{len .Config.Labels}} {{len .Os}}",
                "2 2 5",
            ),
            ("{{.Size}} {{.Architecture}}", "2043904 amd64"),
            ("{{println .Os}}x", "linux\nx"),
            (r#"{{print .Os 1 2 "a" "b"}}"#, "linux1 2ab"),
            ("{{- .Os -}}   ", "linux"),
            ("  {{- .Os }}  {{ .Os -}}  .", "linux  linux."),
            // Inspect formats are taken as written.
            ("{{.Os}}\\t{{.Os}}\\n", "linux\\tlinux\\n"),
            ("table {{.Os}}", "table linux"),
            ("{{/* c */}}{{.Os}}", "linux"),
            ("{{$x := .Os}}{{$x}}", "linux"),
            ("{{with .Config}}{{.Cmd}}{{end}}", "[sh]"),
            ("{{with .Config.Entrypoint}}E{{else}}none{{end}}", "none"),
            (
                r#"{{and .Os .Size}} {{or .Config.Entrypoint "dflt"}} {{not .Os}}"#,
                "2043904 dflt false",
            ),
            ("{{json .Os}}", r#""linux""#),
            (
                r#"{{ne 1 2}} {{lt 1 2}} {{ge 3 3}} {{eq .Os "linux" "darwin"}}"#,
                "true true true true",
            ),
            (r#"{{"a\tb"}}"#, "a\tb"),
            ("{{`raw\\n`}}", "raw\\n"),
            ("{{json .RepoDigests}}", "[]"),
            ("{{.RepoDigests}}", "[]"),
            ("{{slice .Os 1 3}}", "in"),
            (
                r#"{{html "<a>"}} {{js "a'b"}} {{urlquery "a b"}}"#,
                "&lt;a&gt; a\\'b a+b",
            ),
        ];
        let v = image();
        for (format, want) in cases {
            let t = Template::parse_raw(format).unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(
                t.try_render(&v).map_err(|e| e.1),
                Ok(want.to_string()),
                "{format}"
            );
        }
        // Beyond what the docker CLI showed above, Go's rules.
        let more: &[(&str, &str)] = &[
            (
                "{{range $i, $t := .RepoTags}}{{if $i}},{{end}}{{$t}}{{end}}",
                "busybox:latest,busybox:v2",
            ),
            (
                "{{range .RepoTags}}{{if eq . \"busybox:v2\"}}{{break}}{{end}}{{.}};{{end}}",
                "busybox:latest;",
            ),
            (
                "{{range .RepoTags}}{{if eq . \"busybox:latest\"}}{{continue}}{{end}}{{.}}{{end}}",
                "busybox:v2",
            ),
            (
                "{{$n := 0}}{{range .RepoTags}}{{$n = .}}{{end}}{{$n}}",
                "busybox:v2",
            ),
            ("{{range $.RepoTags}}{{$.Os}}{{end}}", "linuxlinux"),
            ("{{(index .RepoTags 0)}}", "busybox:latest"),
            ("{{(.Config).WorkingDir}}|", "|"),
            ("{{index . \"Config\" \"Labels\" \"a\"}}", "1"),
            ("{{.Config.Entrypoint}}", "<nil>"),
            (
                "{{printf \"%x %X %o %b %c %t\" 255 255 8 5 65 true}}",
                "ff FF 10 101 A true",
            ),
            (
                "{{printf \"%.2f|%6.1f|%e\" 3.14159 2.5 1234.5}}",
                "3.14|   2.5|1.234500e+03",
            ),
            ("{{printf \"%d %s\" .Os}}", "%!d(string=linux) %!s(MISSING)"),
            ("{{printf \"%s\" .Os .Size}}", "linux%!(EXTRA int=2043904)"),
            ("{{printf \"%5.2s|%+d|%%\" .Os 3}}", "   li|+3|%"),
            ("{{- /* trimmed */ -}} {{.Os}}", "linux"),
            ("{{title \"hello-world foo_bar\"}}", "Hello-World Foo_bar"),
            ("{{truncate \"日本語\" 4}}", "日"),
            ("{{range 3}}{{.}}{{end}}", "012"),
            ("{{if and .Os (not .Config.Entrypoint)}}ok{{end}}", "ok"),
            ("{{with $x := .Config.Labels}}{{$x.b}}{{end}}", "2"),
            (
                "{{with .Config.Entrypoint}}E{{else with .Config.Cmd}}{{.}}{{end}}",
                "[sh]",
            ),
            ("{{.Os}}\n{{.Architecture}}", "linux\namd64"),
        ];
        for (format, want) in more {
            let t = Template::parse_raw(format).unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(
                t.try_render(&v).map_err(|e| e.1),
                Ok(want.to_string()),
                "{format}"
            );
        }
    }

    #[test]
    fn template_errors_like_go() {
        let parse_err = |f: &str| Template::parse_raw(f).err().unwrap_or_default();
        assert_eq!(parse_err("{{.Os"), "template: :1: unclosed action");
        assert_eq!(
            parse_err("{{range .RepoTags}}"),
            "template: :1: unexpected EOF"
        );
        assert_eq!(
            parse_err("{{foo .Os}}"),
            "template: :1: function \"foo\" not defined"
        );
        assert_eq!(parse_err("a\n{{end}}"), "template: :1: unexpected {{end}}");
        assert!(parse_err("{{break}}").contains("outside {{range}}"));
        assert!(parse_err("{{if}}{{end}}").contains("missing value"));
        assert!(parse_err("{{\"open}}").contains("unterminated"));
        let v = image();
        let exec_err = |f: &str| {
            Template::parse_raw(f)
                .unwrap()
                .try_render(&v)
                .unwrap_err()
                .1
        };
        assert!(exec_err("{{index .RepoTags 5}}")
            .contains("error calling index: index out of range: 5"));
        assert!(exec_err("{{eq .Os 1}}").contains("incompatible types for comparison"));
        assert!(exec_err("{{range .Os}}{{end}}").contains("range can't iterate over linux"));
        assert!(exec_err("{{.Os.Foo}}").contains("can't evaluate field Foo in type string"));
        // render keeps what came before the error.
        assert_eq!(
            Template::parse_raw("a{{index .RepoTags 9}}b")
                .unwrap()
                .render(&v),
            "a"
        );
    }

    /// `docker images --format FORMAT` (docker 28.x against pierd): `table`, escapes,
    /// trimming and header functions.
    #[test]
    fn list_formats_like_docker() {
        let rows = [
            serde_json::json!({"ID": "046f19a66abb", "Repository": "busybox", "Tag": "latest"}),
            serde_json::json!({"ID": "046f19a66abb", "Repository": "busybox", "Tag": "v2"}),
        ];
        let names = |field: &str| match field {
            "ID" => "IMAGE ID".to_string(),
            other => other.to_uppercase(),
        };
        let run = |format: &str| render_all(&Template::parse(format).unwrap(), &rows, &names);
        assert_eq!(run(" {{.Tag}} "), "latest\nv2\n");
        assert_eq!(
            run("{{.Tag}}\\t{{.ID}}\\n"),
            "latest\t046f19a66abb\n\nv2\t046f19a66abb\n\n"
        );
        assert_eq!(
            run("table {{.Tag}}\\t{{.ID}}"),
            "TAG       IMAGE ID\nlatest    046f19a66abb\nv2        046f19a66abb\n"
        );
        assert_eq!(
            run("table  {{.Tag}}\\t{{.ID}} "),
            run("table {{.Tag}}\\t{{.ID}}")
        );
        assert_eq!(
            run("table {{upper .Tag}}\\t{{json .ID}}\\t{{.Repository | lower}}\\t{{truncate .ID 4}}\\t{{pad .Tag 1 1}}|"),
            "TAG       IMAGE ID         REPOSITORY   IMAGE ID    TAG |\n\
             LATEST    \"046f19a66abb\"   busybox      046f        latest |\n\
             V2        \"046f19a66abb\"   busybox      046f        v2 |\n"
        );
        assert_eq!(
            run("table {{.Tag}} and {{.ID}}"),
            "TAG and IMAGE ID\nlatest and 046f19a66abb\nv2 and 046f19a66abb\n"
        );
        assert_eq!(
            run("table {{if .Tag}}{{.Tag}}{{end}}\\t{{printf \"%s\" .ID}}"),
            "TAG       IMAGE ID\nlatest    046f19a66abb\nv2        046f19a66abb\n"
        );
        assert_eq!(
            run("table {{range $i, $e := split .Tag \",\"}}{{$e}}{{end}}\\t{{.ID}}"),
            "\nlatest    046f19a66abb\nv2        046f19a66abb\n"
        );
        assert_eq!(run("{{- .Tag -}}\\n"), "latest\nv2\n");
        assert_eq!(run("tablex {{.Tag}}"), "x TAG\nx latest\nx v2\n");
        assert_eq!(
            run("{{.Tag}} {{\"\\t\"}} {{.ID}}"),
            "latest \t 046f19a66abb\nv2 \t 046f19a66abb\n"
        );
        assert_eq!(run("table {{.Tag}}"), "TAG\nlatest\nv2\n");
        assert_eq!(
            run("json"),
            "{\"ID\":\"046f19a66abb\",\"Repository\":\"busybox\",\"Tag\":\"latest\"}\n\
             {\"ID\":\"046f19a66abb\",\"Repository\":\"busybox\",\"Tag\":\"v2\"}\n"
        );
        // `docker ps --format '{{.Label "k"}}'`: a method of Docker's row context.
        let ps = [serde_json::json!({"Names": "c1", "Labels": "k=v,x=y"})];
        let t = Template::parse("table {{.Names}}\\t{{.Labels}}\\t{{.Label \"k\"}}").unwrap();
        assert_eq!(
            render_all(&t, &ps, &|n| n.to_uppercase()),
            "NAMES     LABELS    k\nc1        k=v,x=y   v\n"
        );
        // The public API as other commands use it.
        let t = Template::parse("{{.Tag}}").unwrap();
        assert_eq!(t.header(&names), "TAG");
        assert_eq!(t.render(&rows[1]), "v2");
    }
}
