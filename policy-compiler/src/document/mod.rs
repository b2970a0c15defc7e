//! A YAML document as a tree of nodes that remember their spans.
//!
//! granit-parser (the panic-free parser under serde-saphyr) emits events with byte spans; this
//! module builds the generic shape from them with a span on every node, so that the decoders
//! above it can report *all* problems of a file — unknown keys, wrong types, duplicates — each
//! at its exact place, rather than stopping at the first mismatch as a derived `Deserialize`
//! would. Alias expansion and nesting depth are bounded, against alias bombs and deep nesting.
//!
//! [`files`] is where the text comes from (disk or memory), `de` the serde deserializer over
//! the nodes. Uses only [`crate::diagnostic`]; profiles and policy import both stand on it.

pub(crate) mod de;
pub mod files;

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, ScanError, StructureStyle};

use crate::diagnostic::Diagnostic;
use crate::diagnostic::source::{SourceId, Span};

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

/// One step of a path into a document: a map key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl Node {
    /// The value of `key` in a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node a path leads to, or the deepest node on the way that exists; with `key` set
    /// and the last step a map key, the key's node rather than its value.
    pub fn at(&self, path: &[Step<'_>], key: bool) -> &Node {
        let mut node = self;
        for (i, step) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let next = match (step, &node.value) {
                (Step::Key(name), Value::Map(entries)) => entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(name))
                    .map(|(k, v)| if last && key { k } else { v }),
                (Step::Index(index), Value::Seq(items)) => items.get(*index),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

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

    /// The node as a JSON value, spans dropped (for lenient readers of Kubernetes objects,
    /// such as the workload manifests beside policies). Map keys are their scalar text; a later
    /// duplicate key wins, as in JSON; a float that JSON cannot hold is `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match &self.value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Value::Str(s) => Json::String(s.clone()),
            Value::Seq(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.scalar_text()?, v.to_json())))
                    .collect(),
            ),
        }
    }
}

/// How many nodes alias expansion may create in one file, in all: bounds alias bombs.
const MAX_ALIAS_NODES: usize = 100_000;
/// How deeply collections may nest: bounds the work of recursive consumers.
const MAX_DEPTH: usize = 256;

/// Parse one YAML document. An empty file is an empty map's worth of nothing: `Null`.
pub fn parse(source: SourceId, text: &str) -> Result<Node, Box<Diagnostic>> {
    let mut docs = parse_multi(source, text)?.into_iter();
    let Some(first) = docs.next() else {
        return Ok(Node {
            value: Value::Null,
            span: Span::new(source, 0, 0),
        });
    };
    match docs.next() {
        None => Ok(first),
        Some(second) => {
            let offset = second.span.offset as usize;
            Err(Box::new(syntax_error(
                source,
                text,
                offset,
                "expected a single document, found several",
            )))
        }
    }
}

/// Parse a multi-document YAML stream (`---` separated).
pub fn parse_multi(source: SourceId, text: &str) -> Result<Vec<Node>, Box<Diagnostic>> {
    let options = granit_parser::options! { emit_comments: false };
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut builder = Builder {
        source,
        text,
        anchors: HashMap::new(),
        created: 0,
        expanded: 0,
        stack: Vec::new(),
        root: None,
        docs: Vec::new(),
    };
    while let Some(item) = parser.next_event() {
        let (event, span) = item.map_err(|e| Box::new(scan_error(source, text, &e)))?;
        let start = span.start.byte_offset().unwrap_or(0);
        let end = span.end.byte_offset().unwrap_or(start).max(start);
        builder.event(event, start, end)?;
    }
    Ok(builder.docs)
}

/// A collection being read.
struct Frame {
    items: Items,
    /// Where its start event was.
    start: usize,
    start_end: usize,
    flow: bool,
    anchor: usize,
    /// [`Builder::created`] before the collection started: the nodes it holds are the difference.
    created_before: usize,
}

enum Items {
    Seq(Vec<Node>),
    /// Entries, and the key whose value comes next.
    Map(Vec<(Node, Node)>, Option<Node>),
}

struct Builder<'t> {
    source: SourceId,
    text: &'t str,
    /// Anchored nodes, and how many nodes each holds.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes created so far, alias expansions included.
    created: usize,
    /// Nodes created by alias expansion.
    expanded: usize,
    stack: Vec<Frame>,
    root: Option<Node>,
    docs: Vec<Node>,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, start: usize, end: usize) -> Result<(), Box<Diagnostic>> {
        match event {
            Event::DocumentEnd => {
                if let Some(root) = self.root.take() {
                    self.docs.push(root);
                }
                self.anchors.clear();
            }
            Event::Scalar(value, style, anchor, tag) => {
                self.created += 1;
                let forced_str = tag
                    .as_deref()
                    .is_some_and(|t| t.core_suffix() == Some("str"));
                let value = if style == ScalarStyle::Plain && !forced_str {
                    resolve(&value)
                } else {
                    Value::Str(value.into_owned())
                };
                let node = Node {
                    value,
                    span: Span::new(self.source, start, end - start),
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, (node.clone(), 1));
                }
                self.add(node);
            }
            Event::SequenceStart(style, anchor, _) => {
                self.open(Items::Seq(Vec::new()), style, anchor, start, end)?;
            }
            Event::MappingStart(style, anchor, _) => {
                self.open(Items::Map(Vec::new(), None), style, anchor, start, end)?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(end),
            Event::Alias(id) => {
                let Some((anchored, size)) = self.anchors.get(&id) else {
                    return Err(Box::new(syntax_error(
                        self.source,
                        self.text,
                        start,
                        "alias to an anchor that is not complete (a recursive alias)",
                    )));
                };
                let size = *size;
                self.expanded = self.expanded.saturating_add(size);
                if self.expanded > MAX_ALIAS_NODES {
                    return Err(Box::new(syntax_error(
                        self.source,
                        self.text,
                        start,
                        "too many alias expansions",
                    )));
                }
                self.created = self.created.saturating_add(size);
                let node = Node {
                    value: anchored.value.clone(),
                    span: Span::new(self.source, start, end - start),
                };
                self.add(node);
            }
            _ => {}
        }
        Ok(())
    }

    fn open(
        &mut self,
        items: Items,
        style: StructureStyle,
        anchor: usize,
        start: usize,
        end: usize,
    ) -> Result<(), Box<Diagnostic>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Box::new(syntax_error(
                self.source,
                self.text,
                start,
                "collections nested too deeply",
            )));
        }
        self.stack.push(Frame {
            items,
            start,
            start_end: end,
            flow: style == StructureStyle::Flow,
            anchor,
            created_before: self.created,
        });
        self.created += 1;
        Ok(())
    }

    fn close(&mut self, end: usize) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let (value, first, last) = match frame.items {
            Items::Seq(items) => {
                let first = items.first().map(|n| n.span.offset as usize);
                let last = items.last().map(|n| n.span.range().end);
                (Value::Seq(items), first, last)
            }
            Items::Map(entries, _) => {
                let first = entries.first().map(|(k, _)| k.span.offset as usize);
                let last = entries
                    .last()
                    .map(|(k, v)| v.span.range().end.max(k.span.range().end));
                (Value::Map(entries), first, last)
            }
        };
        let start = first.map_or(frame.start, |f| f.min(frame.start));
        let mut stop = last.unwrap_or(frame.start_end).max(frame.start_end);
        if frame.flow {
            // The end event covers the closing bracket.
            stop = stop.max(end);
        }
        let node = Node {
            value,
            span: Span::new(self.source, start, stop.saturating_sub(start)),
        };
        if frame.anchor != 0 {
            let size = self.created.saturating_sub(frame.created_before);
            self.anchors.insert(frame.anchor, (node.clone(), size));
        }
        self.add(node);
    }

    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(frame) => match &mut frame.items {
                Items::Seq(items) => items.push(node),
                Items::Map(entries, pending) => match pending.take() {
                    Some(key) => entries.push((key, node)),
                    None => *pending = Some(node),
                },
            },
        }
    }
}

/// The YAML 1.2 core schema, with its strict booleans (`on` stays a string).
fn resolve(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let Some(first) = text.bytes().next() else {
        return Value::Null;
    };
    // Everything else that is not a string starts with a sign, a digit or a dot.
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::Str(text.to_string());
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(text.to_string()),
        };
    }
    if let Some(digits) = text.strip_prefix("0o") {
        return radix(text, digits, 8);
    }
    if let Some(digits) = text.strip_prefix("0x") {
        return radix(text, digits, 16);
    }
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Value::Float(if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if is_float(unsigned)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn radix(text: &str, digits: &str, radix: u32) -> Value {
    let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    match i64::from_str_radix(digits, radix) {
        Ok(i) if valid => Value::Int(i),
        _ => Value::Str(text.to_string()),
    }
}

/// `( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (text.get(..i).unwrap_or(""), text.get(i + 1..)),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && digits(whole),
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

fn scan_error(source: SourceId, text: &str, err: &ScanError) -> Diagnostic {
    let marker = err.marker();
    let offset = marker
        .byte_offset()
        .unwrap_or_else(|| offset_of(text, marker.line(), marker.col()));
    let reason = err.kind().to_string();
    let reason = match reason.rfind(" at line ") {
        Some(i) => reason.get(..i).unwrap_or(&reason),
        None => &reason,
    };
    syntax_error(source, text, offset, reason.trim_end_matches('.'))
}

fn syntax_error(source: SourceId, text: &str, offset: usize, reason: &str) -> Diagnostic {
    let mut offset = offset.min(text.len());
    if offset == text.len() {
        // At the end: underline the last character.
        offset = text.char_indices().next_back().map_or(0, |(i, _)| i);
    }
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let len = text
        .get(offset..)
        .and_then(|s| s.chars().next())
        .map_or(0, char::len_utf8);
    Diagnostic::error(
        "yaml-syntax",
        Span::new(source, offset, len),
        format!("invalid YAML: {reason}"),
    )
    .with_label("here")
    .with_help("fix the YAML syntax; the file was not read")
}

/// Byte offset of a 1-based line and 0-based column (in characters).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset + l.char_indices().nth(column).map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    text.len()
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
                d = match crate::diagnostic::spelling::closest(name, allowed.iter().copied()) {
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

    #[test]
    fn collection_and_quoted_spans() {
        let src = "é: {a: 'x', b: [1, \"ü\"]  }\nlist:\n  - on\n  - 0x1F\n";
        let doc = parse(SourceId(0), src).unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("not a map")
        };
        assert_eq!(text_of(src, &doc), src.trim_end());
        assert_eq!(text_of(src, &entries[0].0), "é");
        assert_eq!(text_of(src, &entries[0].1), "{a: 'x', b: [1, \"ü\"]  }");
        let Value::Map(inner) = &entries[0].1.value else {
            panic!("not a map")
        };
        assert_eq!(text_of(src, &inner[0].1), "'x'");
        assert_eq!(text_of(src, &inner[1].1), "[1, \"ü\"]");
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(text_of(src, &entries[1].1), "- on\n  - 0x1F");
        assert_eq!(items[0].value, Value::Str("on".into()));
        assert_eq!(items[1].value, Value::Int(31));
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let cases = [
            ("~", Value::Null),
            ("", Value::Null),
            ("TRUE", Value::Bool(true)),
            ("yes", Value::Str("yes".into())),
            ("-12", Value::Int(-12)),
            ("0o17", Value::Int(15)),
            (
                "99999999999999999999",
                Value::Str("99999999999999999999".into()),
            ),
            ("1.5", Value::Float(1.5)),
            ("-2e3", Value::Float(-2000.0)),
            ("-.Inf", Value::Float(f64::NEG_INFINITY)),
            ("!!str 12", Value::Str("12".into())),
            ("\"12\"", Value::Str("12".into())),
            ("1.2.3", Value::Str("1.2.3".into())),
            ("53/udp", Value::Str("53/udp".into())),
        ];
        for (src, expected) in cases {
            assert_eq!(parse(SourceId(0), src).unwrap().value, expected, "{src}");
        }
        assert!(matches!(parse(SourceId(0), ".nan").unwrap().value, Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn aliases_are_expanded_within_bounds() {
        let doc = parse(SourceId(0), "a: &x [1, 2]\nb: *x\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let j = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}]\n"
            ));
        }
        let err = parse(SourceId(0), &bomb).unwrap_err();
        assert_eq!(err.message, "invalid YAML: too many alias expansions");
        let deep = "[".repeat(100_000);
        assert_eq!(parse(SourceId(0), &deep).unwrap_err().code, "yaml-syntax");
    }

    #[test]
    fn empty_streams_and_several_documents() {
        assert_eq!(parse(SourceId(0), "").unwrap().value, Value::Null);
        assert_eq!(
            parse(SourceId(0), "# nothing\n").unwrap().value,
            Value::Null
        );
        assert!(parse_multi(SourceId(0), "").unwrap().is_empty());
        assert_eq!(
            parse(SourceId(0), "a: 1\n---\nb: 2\n").unwrap_err().code,
            "yaml-syntax"
        );
        let err = parse(SourceId(0), "a: [1\n").unwrap_err();
        assert_eq!(err.message, "invalid YAML: unclosed bracket '['");
        assert_eq!(err.span.unwrap().range(), 3..4);
    }
}
