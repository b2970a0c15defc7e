//! A YAML document as a tree of nodes that remember their spans.
//!
//! serde-saphyr parses (panic-free, with budgets against alias bombs); this module keeps the
//! generic shape with a span on every node, so that the decoders above it can report *all*
//! problems of a file — unknown keys, wrong types, duplicates — each at its exact place,
//! rather than stopping at the first mismatch as a derived `Deserialize` would.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Options, Spanned};

use crate::diagnostic::Diagnostic;
use crate::source::{SourceId, Span};

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; duplicates are kept so that decoders can report them.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// How the value is called in messages ("expected a list, found a string").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a decimal number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Scalars as the text a user wrote, for values that may be numbers or strings
    /// (`8989` and `"8989"`, `53/udp`).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// Parse one YAML document. An empty file is an empty map's worth of nothing: `Null`.
pub fn parse(source: SourceId, text: &str) -> Result<Node, Box<Diagnostic>> {
    let raw: Result<Spanned<RawValue>, _> = serde_saphyr::from_str_with_options(text, options());
    match raw {
        Ok(raw) => Ok(convert(source, text, raw)),
        Err(err) => Err(Box::new(syntax_error(source, text, &err))),
    }
}

/// Parse a multi-document YAML stream (`---` separated).
pub fn parse_multi(source: SourceId, text: &str) -> Result<Vec<Node>, Box<Diagnostic>> {
    let raw: Result<Vec<Spanned<RawValue>>, _> =
        serde_saphyr::from_str_multiple_with_options(text, options());
    match raw {
        Ok(docs) => Ok(docs.into_iter().map(|d| convert(source, text, d)).collect()),
        Err(err) => Err(Box::new(syntax_error(source, text, &err))),
    }
}

fn options() -> Options {
    serde_saphyr::options! {
        // Duplicates are reported by the decoders, all of them, with both places.
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
        // YAML 1.2 booleans only: `on:` is a key of statements, not `true` (YAML 1.1).
        strict_booleans: true,
    }
}

fn syntax_error(source: SourceId, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let plain = err.without_snippet();
    let span = match plain.location() {
        Some(loc) => {
            let offset = loc
                .span()
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or_else(|| offset_of(text, loc.line(), loc.column()));
            let len = loc
                .span()
                .byte_len()
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(0)
                .max(1);
            clamp(source, text, offset, len)
        }
        None => Span::new(source, 0, 0),
    };
    let message = first_line(&plain.to_string());
    Diagnostic::error("yaml-syntax", span, format!("invalid YAML: {message}"))
        .with_label("here")
        .with_help("fix the YAML syntax; the file was not read")
}

/// serde-saphyr prefixes messages with `error: line L column C: `; keep only the reason.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let reason = match line.find(": ") {
        Some(i) if line.starts_with("line ") => line.get(i + 2..).unwrap_or(line),
        _ => line,
    };
    // The position is shown by the report itself.
    let reason = match reason.rfind(" at line ") {
        Some(i) => reason.get(..i).unwrap_or(reason),
        None => reason,
    };
    reason.trim_end_matches('.').to_string()
}

fn offset_of(text: &str, line: u64, column: u64) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if (i as u64) + 1 == line {
            let col = usize::try_from(column.saturating_sub(1)).unwrap_or(0);
            return offset + l.char_indices().nth(col).map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    text.len()
}

fn clamp(source: SourceId, text: &str, offset: usize, len: usize) -> Span {
    let offset = offset.min(text.len());
    let len = len.min(text.len() - offset);
    Span::new(source, offset, len)
}

fn convert(source: SourceId, text: &str, raw: Spanned<RawValue>) -> Node {
    // `referenced` is where the node is used (an alias), `defined` where it was written; errors
    // point at the use.
    let loc = raw.referenced;
    let offset = loc
        .span()
        .byte_offset()
        .and_then(|o| usize::try_from(o).ok())
        .unwrap_or(0);
    let len = loc
        .span()
        .byte_len()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(0);
    let mut span = Span::new(source, offset, len);
    let value = match raw.value {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        RawValue::Float(f) => Value::Float(f),
        RawValue::Str(s) => Value::Str(s),
        RawValue::Seq(items) => Value::Seq(
            items
                .into_iter()
                .map(|i| convert(source, text, i))
                .collect(),
        ),
        RawValue::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(source, text, k), convert(source, text, v)))
                .collect(),
        ),
    };
    // serde-saphyr gives a collection the position of its start only; make the span cover the
    // whole collection, so that a diagnostic about it underlines all of it.
    let last_end = match &value {
        Value::Seq(items) => items.last().map(|n| n.span.range().end),
        Value::Map(entries) => entries
            .last()
            .map(|(_, v)| v.span.range().end.max(v.span.offset as usize)),
        _ => None,
    };
    let first_start = match &value {
        Value::Seq(items) => items.first().map(|n| n.span.offset as usize),
        Value::Map(entries) => entries.first().map(|(k, _)| k.span.offset as usize),
        _ => None,
    };
    let is_collection = matches!(value, Value::Seq(_) | Value::Map(_));
    if is_collection {
        let start = first_start.unwrap_or(offset).min(offset);
        let mut end = last_end.unwrap_or(offset + len).max(offset + len);
        if matches!(text_at(text, offset), Some('{' | '[')) {
            // Include the closing bracket of a flow collection.
            let rest = text.get(end..).unwrap_or("");
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r', ',']);
            if trimmed.starts_with(['}', ']']) {
                end += rest.len() - trimmed.len() + 1;
            }
        }
        span = Span::new(source, start, end.saturating_sub(start));
    }
    Node { value, span }
}

fn text_at(text: &str, offset: usize) -> Option<char> {
    text.get(offset..).and_then(|s| s.chars().next())
}

/// What serde-saphyr fills; converted to [`Node`] right after parsing.
enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawValue>>),
    Map(Vec<(Spanned<RawValue>, Spanned<RawValue>)>),
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }

    fn visit_none<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        d.deserialize_any(RawVisitor)
    }

    fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<RawValue, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => RawValue::Int(i),
            Err(_) => RawValue::Str(v.to_string()),
        })
    }

    fn visit_i128<E>(self, v: i128) -> Result<RawValue, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => RawValue::Int(i),
            Err(_) => RawValue::Str(v.to_string()),
        })
    }

    fn visit_u128<E>(self, v: u128) -> Result<RawValue, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => RawValue::Int(i),
            Err(_) => RawValue::Str(v.to_string()),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<RawValue, E> {
        Ok(RawValue::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawValue::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(RawValue::Map(entries))
    }
}

/// The keys of a YAML map, checked against the keys a decoder knows.
///
/// Building one reports, all at once: a node that is not a map, non-string keys, unknown keys
/// (with a "did you mean"), and duplicate keys (pointing at both).
#[derive(Debug)]
pub struct Fields<'a> {
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
    pub span: Span,
}

impl<'a> Fields<'a> {
    /// `what` names the map in messages ("a service", "a statement").
    pub fn read(
        node: &'a Node,
        what: &str,
        allowed: &[&str],
        diagnostics: &mut crate::diagnostic::Diagnostics,
    ) -> Option<Fields<'a>> {
        let entries: &'a [(Node, Node)] = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            other => {
                diagnostics.push(
                    Diagnostic::error(
                        "wrong-type",
                        node.span,
                        format!("expected {what} (a map), found {}", other.kind()),
                    )
                    .with_label(format!("this is {}", other.kind()))
                    .with_help(format!("{what} has the keys {}", list(allowed))),
                );
                return None;
            }
        };
        let mut fields = Fields {
            entries: Vec::with_capacity(entries.len()),
            span: node.span,
        };
        for (key, value) in entries {
            let Some(name) = key.as_str() else {
                diagnostics.push(
                    Diagnostic::error(
                        "wrong-type",
                        key.span,
                        format!("expected a key name, found {}", key.value.kind()),
                    )
                    .with_label("not a key name")
                    .with_help(format!("{what} has the keys {}", list(allowed))),
                );
                continue;
            };
            if !allowed.contains(&name) {
                let mut d = Diagnostic::error(
                    "unknown-key",
                    key.span,
                    format!("unknown key `{name}` in {what}"),
                )
                .with_label("unknown key");
                d = match crate::suggest::closest(name, allowed.iter().copied()) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help(format!("{what} has the keys {}", list(allowed))),
                };
                diagnostics.push(d);
                continue;
            }
            if let Some((_, first, _)) = fields.entries.iter().find(|(n, _, _)| *n == name) {
                diagnostics.push(
                    Diagnostic::error("duplicate-key", key.span, format!("duplicate key `{name}`"))
                        .with_label("second definition")
                        .with_related(first.span, "first definition")
                        .with_help("YAML keys must be unique; merge the two entries"),
                );
                continue;
            }
            fields.entries.push((name, key, value));
        }
        Some(fields)
    }

    pub fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| *v)
    }

    pub fn key_span(&self, name: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, k, _)| k.span)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Entries in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a Node, &'a Node)> + '_ {
        self.entries.iter().copied()
    }
}

/// `a`, `b` and `c` → "`a`, `b`, `c`".
pub fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value that may be written as one item or a list of items (`to: sonarr`, `to: [a, b]`).
pub fn one_or_many(node: &Node) -> Vec<&Node> {
    match &node.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        _ => vec![node],
    }
}

#[cfg(test)]
mod tests {
    #![expect(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::panic,
        reason = "tests"
    )]
    use super::*;

    fn text_of<'a>(src: &'a str, node: &Node) -> &'a str {
        &src[node.span.range()]
    }

    #[test]
    fn nodes_keep_their_spans() {
        let src = "a: 1\nb:\n  - x\n  - \"8080\"\n";
        let doc = parse(SourceId(0), src).unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("not a map")
        };
        assert_eq!(text_of(src, &entries[0].0), "a");
        assert_eq!(entries[0].1.value, Value::Int(1));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(text_of(src, &items[0]), "x");
        assert_eq!(items[1].value, Value::Str("8080".into()));
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_decoder() {
        let doc = parse(SourceId(0), "a: 1\na: 2\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        let src = "a: [1, 2\nb: 3\n";
        let err = parse(SourceId(0), src).unwrap_err();
        assert_eq!(err.code, "yaml-syntax");
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert!(err.span.is_some());
    }

    #[test]
    fn multi_document_streams() {
        let docs = parse_multi(SourceId(0), "a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }
}
