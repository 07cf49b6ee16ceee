//! A TOML document as a tree whose every key and value keeps its byte span in the file.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One TOML value and the bytes it was written in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub span: Range<usize>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// One `key = value` of a table, in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub node: Node,
}

impl Value {
    /// The TOML type name, as shown in "expected ..., found ..." messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }
}

impl Node {
    pub fn as_table(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Looks up `key` among `entries`.
pub(crate) fn get<'a>(entries: &'a [Entry], key: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.key == key)
}

/// Parses a whole document. The error is toml's own (message and span).
pub(crate) fn parse_document(text: &str) -> Result<Vec<Entry>, toml::de::Error> {
    let root: Value = toml::from_str(text)?;
    match root {
        Value::Table(entries) => Ok(entries),
        // A document is always a table; anything else cannot come out of toml.
        _ => Ok(Vec::new()),
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// toml hands out a datetime as a one-entry map under this key.
const DATETIME_KEY: &str = "$__toml_private_datetime";

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom("integer is too large"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<toml::Spanned<Value>>()? {
            items.push(spanned_node(item));
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<SpannedKey>()? {
            if key.name == DATETIME_KEY {
                let text: String = map.next_value()?;
                return Ok(Value::Datetime(text));
            }
            let node = spanned_node(map.next_value::<toml::Spanned<Value>>()?);
            entries.push(Entry {
                key: key.name,
                key_span: key.span,
                node,
            });
        }
        Ok(Value::Table(entries))
    }
}

fn spanned_node(spanned: toml::Spanned<Value>) -> Node {
    let span = spanned.span();
    Node {
        span,
        value: spanned.into_inner(),
    }
}

/// A table key with its span. Written by hand rather than as `toml::Spanned<String>` because
/// the datetime pseudo-key arrives as a bare string, which `Spanned` refuses.
struct SpannedKey {
    name: String,
    span: Range<usize>,
}

// The protocol `serde_spanned` uses to ask toml for spans (`serde_spanned::__unstable`).
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

impl<'de> Deserialize<'de> for SpannedKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = SpannedKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SpannedKey, E> {
        Ok(SpannedKey {
            name: v.to_string(),
            span: 0..0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpannedKey, A::Error> {
        let mut start = 0;
        let mut end = 0;
        let mut name = None;
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                SPANNED_START => start = map.next_value()?,
                SPANNED_END => end = map.next_value()?,
                _ => name = Some(map.next_value::<String>()?),
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("key"))?;
        Ok(SpannedKey {
            name,
            span: start..end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_keep_their_spans() {
        let text = "[sop]\nname = \"x\"\nwhen = 1979-05-27\n[[t]]\na = [1, 2]\n";
        let doc = parse_document(text).expect("valid toml");
        let sop = get(&doc, "sop").expect("sop");
        let name = get(sop.node.as_table().expect("table"), "name").expect("name");
        assert_eq!(&text[name.key_span.clone()], "name");
        assert_eq!(&text[name.node.span.clone()], "\"x\"");
        let when = get(sop.node.as_table().expect("table"), "when").expect("when");
        assert!(matches!(when.node.value, Value::Datetime(_)));
        let t = get(&doc, "t").expect("t");
        let Value::Array(items) = &t.node.value else {
            panic!("array")
        };
        let a = get(items[0].as_table().expect("table"), "a").expect("a");
        assert_eq!(&text[a.node.span.clone()], "[1, 2]");
    }
}
