//! YAML documents as compose reads them: a tree of [`Node`]s that keeps each node's
//! line and custom tag (`!reset`, `!override`), with anchors and aliases resolved and
//! merge keys (`<<`) applied. Plain scalars are resolved as compose's YAML library
//! (go-yaml v3) resolves them: `0644` is octal, `yes` stays a string.

use saphyr_parser::{Event, Parser, ScalarStyle};

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    /// A local tag such as `!reset` or `!override` (standard `!!` tags are applied).
    pub tag: Option<String>,
    /// 1-based line of the node in its file (0 for nodes made by the loader).
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; keys are strings as compose converts them.
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn new(value: NodeValue) -> Node {
        Node {
            value,
            tag: None,
            line: 0,
        }
    }

    pub fn str(s: impl Into<String>) -> Node {
        Node::new(NodeValue::Str(s.into()))
    }

    pub fn map(entries: Vec<(String, Node)>) -> Node {
        Node::new(NodeValue::Map(entries))
    }

    pub fn as_map(&self) -> Option<&Vec<(String, Node)>> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(String, Node)>> {
        match &mut self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing value in place or appending.
    pub fn set(&mut self, key: &str, value: Node) {
        if let Some(map) = self.as_map_mut() {
            if let Some(slot) = map.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value;
            } else {
                map.push((key.to_string(), value));
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let map = self.as_map_mut()?;
        let pos = map.iter().position(|(k, _)| k == key)?;
        Some(map.remove(pos).1)
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }

    /// The scalar as text, as compose formats a scalar it needs as a string.
    pub fn scalar_text(&self) -> Option<String> {
        Some(match &self.value {
            NodeValue::Str(s) => s.clone(),
            NodeValue::Int(i) => i.to_string(),
            NodeValue::Float(f) => format_float(*f),
            NodeValue::Bool(b) => b.to_string(),
            NodeValue::Null => String::new(),
            _ => return None,
        })
    }

    /// The node as JSON (tags dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A short description of the node's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Int(_) => "integer",
            NodeValue::Float(_) => "number",
            NodeValue::Str(_) => "string",
            NodeValue::Seq(_) => "array",
            NodeValue::Map(_) => "object",
        }
    }
}

/// Go's `%v` of a float64.
pub fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// Parses every document of a YAML stream.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: Vec::new(),
    };
    let mut documents = Vec::new();
    loop {
        let (event, _) = builder.next()?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                let (first, line) = builder.next()?;
                let node = builder.node(first, line)?;
                documents.push(node);
                builder.next()?; // DocumentEnd
            }
            _ => {}
        }
    }
    Ok(documents)
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: Vec<(usize, Node)>,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, usize), YamlError> {
        match self.parser.next_event() {
            None => Ok((Event::StreamEnd, 0)),
            Some(Ok((event, span))) => Ok((event, span.start.line())),
            Some(Err(e)) => Err(YamlError {
                line: e.marker().line(),
                message: e.info().to_string(),
            }),
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
    }

    fn node(&mut self, event: Event<'a>, line: usize) -> Result<Node, YamlError> {
        match event {
            Event::Alias(id) => self
                .anchors
                .iter()
                .rev()
                .find(|(a, _)| *a == id)
                .map(|(_, n)| n.clone())
                .ok_or(YamlError {
                    line,
                    message: "unknown anchor".into(),
                }),
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let (value, local_tag) = resolve_scalar(&text, style, tag.as_deref())
                    .map_err(|message| YamlError { line, message })?;
                let node = Node {
                    value,
                    tag: local_tag,
                    line,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (ev, l) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, l)?);
                }
                let node = Node {
                    value: NodeValue::Seq(items),
                    tag: local_tag(tag),
                    line,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                let mut entries: Vec<(String, Node)> = Vec::new();
                let mut merged: Vec<(String, Node)> = Vec::new();
                loop {
                    let (ev, key_line) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let is_merge =
                        matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
                    let key = self.node(ev, key_line)?;
                    let (ev, l) = self.next()?;
                    let mut value = self.node(ev, l)?;
                    // A block value starts on the next line; errors about it should
                    // point at its key.
                    if matches!(value.value, NodeValue::Map(_) | NodeValue::Seq(_)) {
                        value.line = key_line;
                    }
                    if is_merge {
                        merge_into(&mut merged, value, key_line)?;
                        continue;
                    }
                    let key = key.scalar_text().ok_or(YamlError {
                        line: key_line,
                        message: "invalid map key: a key must be a scalar".into(),
                    })?;
                    if let Some((_, prev)) = entries.iter().find(|(k, _)| *k == key) {
                        return Err(YamlError {
                            line: key_line,
                            message: format!(
                                "mapping key {key:?} already defined at line {}",
                                prev.line
                            ),
                        });
                    }
                    entries.push((key, value));
                }
                for (k, v) in merged {
                    if !entries.iter().any(|(e, _)| *e == k) {
                        entries.push((k, v));
                    }
                }
                let node = Node {
                    value: NodeValue::Map(entries),
                    tag: local_tag(tag),
                    line,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            other => Err(YamlError {
                line,
                message: format!("unexpected YAML event {other:?}"),
            }),
        }
    }
}

/// Adds a merge key's mapping(s) to `merged`; earlier sources take precedence.
fn merge_into(merged: &mut Vec<(String, Node)>, value: Node, line: usize) -> Result<(), YamlError> {
    let sources = match value.value {
        NodeValue::Map(_) => vec![value],
        NodeValue::Seq(items) => items,
        _ => {
            return Err(YamlError {
                line,
                message: "map merge requires map or sequence of maps as the value".into(),
            })
        }
    };
    for source in sources {
        let NodeValue::Map(entries) = source.value else {
            return Err(YamlError {
                line,
                message: "map merge requires map or sequence of maps as the value".into(),
            });
        };
        for (k, v) in entries {
            if !merged.iter().any(|(m, _)| *m == k) {
                merged.push((k, v));
            }
        }
    }
    Ok(())
}

fn local_tag(tag: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>) -> Option<String> {
    let tag = tag?;
    (tag.handle == "!").then(|| format!("!{}", tag.suffix))
}

/// Resolves a scalar with go-yaml v3's rules (YAML 1.2 core plus 1.1 octals/underscores).
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&str>,
) -> Result<(NodeValue, Option<String>), String> {
    let string = || NodeValue::Str(text.to_string());
    match tag {
        Some("tag:yaml.org,2002:str") => return Ok((string(), None)),
        Some("tag:yaml.org,2002:int") => {
            return parse_int(text)
                .map(|i| (NodeValue::Int(i), None))
                .ok_or(format!("cannot decode {text:?} as !!int"))
        }
        Some("tag:yaml.org,2002:float") => {
            return parse_float(text)
                .map(|f| (NodeValue::Float(f), None))
                .ok_or(format!("cannot decode {text:?} as !!float"))
        }
        Some("tag:yaml.org,2002:bool") => {
            return parse_bool(text)
                .map(|b| (NodeValue::Bool(b), None))
                .ok_or(format!("cannot decode {text:?} as !!bool"))
        }
        Some("tag:yaml.org,2002:null") => return Ok((NodeValue::Null, None)),
        Some(t) if t.starts_with('!') && !t.starts_with("!!") => {
            let value = if style == ScalarStyle::Plain {
                plain_value(text)
            } else {
                string()
            };
            return Ok((value, Some(t.to_string())));
        }
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Ok((string(), None));
    }
    Ok((plain_value(text), None))
}

/// How a plain (unquoted) scalar resolves.
pub fn plain_value(text: &str) -> NodeValue {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return NodeValue::Null;
    }
    if let Some(b) = parse_bool(text) {
        return NodeValue::Bool(b);
    }
    if let Some(i) = parse_int(text) {
        return NodeValue::Int(i);
    }
    if let Some(f) = parse_float(text) {
        return NodeValue::Float(f);
    }
    NodeValue::Str(text.to_string())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b`/leading-`0` octal, `_`.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || !body.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    if radix == 10 && digits.contains('_') {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let value = i64::from_str_radix(&clean, radix).ok()?;
    Some(if negative { -value } else { value })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
                && !(a.is_empty() && b.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        parse(text).unwrap().remove(0)
    }

    #[test]
    fn scalars_resolve_as_go_yaml_does() {
        let doc = one("a: 0400\nb: yes\nc: '1'\nd: 1.5\ne: ~\nf: 0x10\ng: 1_000\nh: true\n");
        assert_eq!(doc.get("a").unwrap().value, NodeValue::Int(256));
        assert_eq!(doc.get("b").unwrap().value, NodeValue::Str("yes".into()));
        assert_eq!(doc.get("c").unwrap().value, NodeValue::Str("1".into()));
        assert_eq!(doc.get("d").unwrap().value, NodeValue::Float(1.5));
        assert_eq!(doc.get("e").unwrap().value, NodeValue::Null);
        assert_eq!(doc.get("f").unwrap().value, NodeValue::Int(16));
        assert_eq!(doc.get("g").unwrap().value, NodeValue::Str("1_000".into()));
        assert_eq!(doc.get("h").unwrap().value, NodeValue::Bool(true));
    }

    #[test]
    fn anchors_merge_keys_and_tags() {
        let doc = one("base: &b {x: 1, y: 2}\nsvc:\n  <<: *b\n  y: 3\n  z: !reset []\n");
        let svc = doc.get("svc").unwrap();
        assert_eq!(svc.get("x").unwrap().value, NodeValue::Int(1));
        assert_eq!(svc.get("y").unwrap().value, NodeValue::Int(3));
        assert_eq!(svc.get("z").unwrap().tag.as_deref(), Some("!reset"));
        assert_eq!(svc.get("y").unwrap().line, 4);
    }

    #[test]
    fn errors_carry_the_line() {
        let err = parse("a: 1\nb: [\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        let dup = parse("a: 1\na: 2\n").unwrap_err();
        assert!(dup.message.contains("already defined"), "{dup:?}");
    }
}
