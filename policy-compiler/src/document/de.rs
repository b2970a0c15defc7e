//! `serde` over a [`Node`] tree: typed decoding that keeps source positions.
//!
//! Decoding a Kubernetes object into the typed CRD models (`cilium`, `kubernetes`) goes through
//! this deserializer so that every error points at the node where it arose (the innermost one),
//! and so that unknown keys are *collected*, all of them, instead of aborting at the first: the
//! API server's strict field validation (the default of `kubectl apply` and of server-side
//! apply) refuses an object with an unknown field, so the caller rejects the whole object.
//!
//! Scalars are strictly typed, like the API server: `port: 80` where the schema wants a string
//! is an error, as is `"8"` where it wants an integer.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::{Node, Value};
use crate::diagnostic::Diagnostic;
use crate::diagnostic::source::Span;

/// A decoding error, at the innermost node it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub span: Option<Span>,
    pub message: String,
    pub help: Option<String>,
}

impl DeError {
    fn at(mut self, span: Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
        }
        self
    }

    /// As a diagnostic; `fallback` is used when no node could be named.
    pub fn into_diagnostic(self, fallback: Span) -> Diagnostic {
        let mut d = Diagnostic::error("invalid-field", self.span.unwrap_or(fallback), self.message)
            .with_label("here");
        if let Some(help) = self.help {
            d = d.with_help(help);
        }
        d
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            span: None,
            message: msg.to_string(),
            help: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!("expected {exp}, found {}", unexpected(&unexp)))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid value {}, expected {exp}",
            unexpected(&unexp)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = Self::custom(format_args!("unknown value `{variant}`"));
        e.help = Some(
            match crate::diagnostic::spelling::closest(variant, expected.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("expected one of {}", super::list(expected)),
            },
        );
        e
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format_args!("missing required field `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::custom(format_args!("duplicate key `{field}`"))
    }
}

fn unexpected(u: &de::Unexpected<'_>) -> String {
    match u {
        de::Unexpected::Bool(b) => format!("the boolean `{b}`"),
        de::Unexpected::Signed(i) => format!("the number `{i}`"),
        de::Unexpected::Unsigned(i) => format!("the number `{i}`"),
        de::Unexpected::Float(f) => format!("the number `{f}`"),
        de::Unexpected::Str(s) => format!("the string `{s}`"),
        de::Unexpected::Unit => "nothing (null)".to_owned(),
        de::Unexpected::Seq => "a list".to_owned(),
        de::Unexpected::Map => "a map".to_owned(),
        other => other.to_string(),
    }
}

/// Unknown keys met while decoding, as errors: the API server's strict field validation (the
/// default of `kubectl apply` and server-side apply) refuses an object with one.
#[derive(Debug, Default)]
pub struct Unknown {
    pub errors: RefCell<Vec<Diagnostic>>,
}

/// Decode `node` into `T`. Unknown keys of structs (other than `metadata`) are pushed to
/// `unknown` and skipped.
pub fn from_node<'de, T: de::Deserialize<'de>>(
    node: &'de Node,
    unknown: &'de Unknown,
) -> Result<T, DeError> {
    T::deserialize(NodeDe { node, unknown }).map_err(|e: DeError| e.at(node.span))
}

struct NodeDe<'a> {
    node: &'a Node,
    unknown: &'a Unknown,
}

impl<'a> NodeDe<'a> {
    fn kind_error(&self, exp: &dyn de::Expected) -> DeError {
        let unexp = match &self.node.value {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Int(i) => de::Unexpected::Signed(*i),
            Value::Float(f) => de::Unexpected::Float(*f),
            Value::Str(s) => de::Unexpected::Str(s),
            Value::Seq(_) => de::Unexpected::Seq,
            Value::Map(_) => de::Unexpected::Map,
        };
        <DeError as de::Error>::invalid_type(unexp, exp).at(self.node.span)
    }
}

macro_rules! forward_int {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            match &self.node.value {
                Value::Int(i) => visitor.visit_i64(*i).map_err(|e: DeError| e.at(self.node.span)),
                _ => Err(self.kind_error(&visitor)),
            }
        }
    )*};
}

impl<'a> de::Deserializer<'a> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = self.node.span;
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                unknown: self.unknown,
            }),
            Value::Map(entries) => visitor.visit_map(Map {
                entries,
                next: 0,
                fields: None,
                unknown: self.unknown,
                value: None,
            }),
        };
        result.map_err(|e: DeError| e.at(span))
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Bool(b) => visitor
                .visit_bool(*b)
                .map_err(|e: DeError| e.at(self.node.span)),
            _ => Err(self.kind_error(&visitor)),
        }
    }

    forward_int!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8
                 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = self.node.span;
        match &self.node.value {
            Value::Float(f) => visitor.visit_f64(*f).map_err(|e: DeError| e.at(span)),
            #[expect(clippy::cast_precision_loss, reason = "YAML integers used as numbers")]
            Value::Int(i) => visitor
                .visit_f64(*i as f64)
                .map_err(|e: DeError| e.at(span)),
            _ => Err(self.kind_error(&visitor)),
        }
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_str(s)
                .map_err(|e: DeError| e.at(self.node.span)),
            _ => Err(self.kind_error(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Kubernetes treats an explicit `null` as "not set".
        match &self.node.value {
            Value::Null => visitor.visit_none(),
            _ => {
                let span = self.node.span;
                visitor.visit_some(self).map_err(|e: DeError| e.at(span))
            }
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.kind_error(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.node.span;
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: DeError| e.at(span))
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => visitor
                .visit_seq(Seq {
                    items: items.iter(),
                    unknown: self.unknown,
                })
                .map_err(|e: DeError| e.at(self.node.span)),
            _ => Err(self.kind_error(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map(None, visitor)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // `metadata` is open in every CRD: server-managed keys are expected there.
        let known = (name != "ObjectMeta").then_some(fields);
        self.map(known, visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.node.span;
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| e.at(span)),
            _ => Err(self.kind_error(&visitor)),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

impl<'a> NodeDe<'a> {
    fn map<V: Visitor<'a>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.node.span;
        let entries: &'a [(Node, Node)] = match &self.node.value {
            Value::Map(entries) => entries,
            // An empty document or `key:` with nothing: an empty map, as Kubernetes reads it.
            Value::Null => &[],
            _ => return Err(self.kind_error(&visitor)),
        };
        // Duplicate keys are an error in Kubernetes' strict decoding.
        for (i, (key, _)) in entries.iter().enumerate() {
            if let Some(name) = key.as_str()
                && entries
                    .iter()
                    .take(i)
                    .any(|(k, _)| k.as_str() == Some(name))
            {
                return Err(DeError {
                    span: Some(key.span),
                    message: format!("duplicate key `{name}`"),
                    help: Some("keys must be unique; merge the two entries".to_owned()),
                });
            }
        }
        visitor
            .visit_map(Map {
                entries,
                next: 0,
                fields,
                unknown: self.unknown,
                value: None,
            })
            .map_err(|e: DeError| e.at(span))
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    unknown: &'a Unknown,
}

impl<'a> de::SeqAccess<'a> for Seq<'a> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some(node) => seed
                .deserialize(NodeDe {
                    node,
                    unknown: self.unknown,
                })
                .map(Some)
                .map_err(|e: DeError| e.at(node.span)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: &'a [(Node, Node)],
    next: usize,
    /// The keys a struct knows; `None` for a plain map.
    fields: Option<&'static [&'static str]>,
    unknown: &'a Unknown,
    value: Option<&'a Node>,
}

impl<'a> de::MapAccess<'a> for Map<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        while let Some((key, value)) = self.entries.get(self.next) {
            self.next += 1;
            if let Some(fields) = self.fields {
                let Some(name) = key.as_str() else {
                    return Err(DeError {
                        span: Some(key.span),
                        message: format!("expected a key name, found {}", key.value.kind()),
                        help: None,
                    });
                };
                if !fields.contains(&name) {
                    let mut d = Diagnostic::error(
                        "unknown-field",
                        key.span,
                        format!("unknown field `{name}`"),
                    )
                    .with_label("not in the schema");
                    d = match crate::diagnostic::spelling::closest(name, fields.iter().copied()) {
                        Some(best) => d.with_help(format!(
                            "did you mean `{best}`? `kubectl apply` refuses unknown fields (strict field validation), so the object never reaches the cluster"
                        )),
                        None => d.with_help(format!(
                            "`kubectl apply` refuses unknown fields (strict field validation), so the object never reaches the cluster; known fields here: {}",
                            super::list(fields)
                        )),
                    };
                    self.unknown.errors.borrow_mut().push(d);
                    continue;
                }
            }
            self.value = Some(value);
            return seed
                .deserialize(NodeDe {
                    node: key,
                    unknown: self.unknown,
                })
                .map(Some)
                .map_err(|e: DeError| e.at(key.span));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(node) = self.value.take() else {
            return Err(<DeError as de::Error>::custom("value without a key"));
        };
        seed.deserialize(NodeDe {
            node,
            unknown: self.unknown,
        })
        .map_err(|e: DeError| e.at(node.span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::source::SourceId;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Port {
        port: String,
        end_port: Option<i32>,
    }

    fn decode(text: &str) -> (Result<Vec<Port>, DeError>, Vec<Diagnostic>, String) {
        let node = super::super::parse(SourceId(0), text)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| Node {
                value: Value::Str(m),
                span: Span::new(SourceId(0), 0, 0),
            });
        let unknown = Unknown::default();
        let r = from_node(&node, &unknown);
        let w = unknown.errors.into_inner();
        (r, w, text.to_owned())
    }

    #[test]
    fn wrong_scalar_type_points_at_the_value() {
        let (r, _, text) = decode("- port: \"80\"\n- port: 80\n");
        let e = r.err().unwrap_or_else(|| DeError {
            span: None,
            message: String::new(),
            help: None,
        });
        assert_eq!(e.message, "expected a string, found the number `80`");
        let span = e.span.map(|s| &text[s.range()]);
        assert_eq!(span, Some("80"));
    }

    #[test]
    fn unknown_keys_are_collected_as_errors_and_skipped() {
        let (r, w, _) = decode("- port: \"80\"\n  endPorts: 90\n");
        assert_eq!(
            r.ok(),
            Some(vec![Port {
                port: "80".into(),
                end_port: None
            }])
        );
        assert_eq!(w.len(), 1);
        assert!(w.iter().all(Diagnostic::is_error));
        assert_eq!(
            w.first().map(|d| d.message.as_str()),
            Some("unknown field `endPorts`")
        );
    }

    #[test]
    fn missing_field_points_at_the_map() {
        let (r, _, text) = decode("- endPort: 90\n");
        let e = r.err().unwrap_or_else(|| DeError {
            span: None,
            message: String::new(),
            help: None,
        });
        assert_eq!(e.message, "missing required field `port`");
        assert_eq!(e.span.map(|s| &text[s.range()]), Some("endPort: 90"));
    }
}
