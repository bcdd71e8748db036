//! Dynamic values: what flows between the stages of a pipeline described in a file.
//!
//! A pipeline file cannot name Rust types, so its items are [`Value`]s: a number (`u64`,
//! wrapping arithmetic, as in the benchmark workloads), text, bytes, or a record of named
//! fields. Payloads are reference-counted ([`Bytes`], `Arc<str>`), so a stage that borrows an
//! item and hands on a changed copy (every fallible stage does: it borrows so that a retry
//! can try the same item again) copies pointers, not data.
//!
//! # Records and fields
//!
//! Sources that know more than one thing about an item emit records: `lines` gives
//! `{line, text}`, `files` gives `{path, size, data}`, `chunk` gives `{…, offset, length,
//! data}`. A kind that works on one type reads it from the item itself or, when the item is
//! a record, from a field ([`Slot`]): by default `value` for numbers, `text` for text and
//! `data` for bytes. It writes its result back into the record, so context such as a line
//! number or a path travels with the item.
//!
//! # Faults
//!
//! A kind that receives a value it cannot handle returns a [`Fault`]; the stage fails that
//! item under its error policy, and the engine's error names the stage and the item's id.
//! Type faults are a safety net: the loader checks the types between stages first, with
//! each value's [`Ty`] (see [`crate::config::typecheck`]).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use millrace::ItemId;

/// One item of a config pipeline: its id (its position in the source) and its value.
///
/// The id is the one the engine gives the item; it travels with the value so that the
/// sink, which sees values only, can name the items it rejects.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The item's id.
    pub id: ItemId,
    /// What it holds.
    pub value: Value,
}

impl Item {
    /// The same item with another value.
    pub fn with(&self, value: Value) -> Item {
        Item { id: self.id, value }
    }
}

/// A dynamic value. With the `nats` feature it is serde-serializable, so it can cross a
/// broker edge (see `crate::scale_out`).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "nats", derive(serde::Serialize, serde::Deserialize))]
pub enum Value {
    /// An unsigned 64-bit number; arithmetic on it wraps.
    Number(u64),
    /// UTF-8 text.
    Text(Arc<str>),
    /// Raw bytes.
    Bytes(Bytes),
    /// Named fields, in the order they were added.
    Record(Record),
}

/// The type of a [`Value`], as error messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// [`Value::Number`].
    Number,
    /// [`Value::Text`].
    Text,
    /// [`Value::Bytes`].
    Bytes,
    /// [`Value::Record`].
    Record,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Number => "number",
            Type::Text => "text",
            Type::Bytes => "bytes",
            Type::Record => "record",
        })
    }
}

/// The type of a value as the load-time check sees it ([`crate::config::typecheck`]): a
/// [`Type`] with, for a record, its fields and their types in order, and [`Ty::Any`] for a
/// value whose type cannot be known before the run.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// A number.
    Number,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
    /// A record with these fields, in order.
    Record(Vec<(String, Ty)>),
    /// Any value: what a kind that takes anything accepts, or a type not known.
    Any,
}

impl Ty {
    /// The type of `value`, fields and all.
    pub fn of(value: &Value) -> Ty {
        match value {
            Value::Number(_) => Ty::Number,
            Value::Text(_) => Ty::Text,
            Value::Bytes(_) => Ty::Bytes,
            Value::Record(r) => {
                Ty::Record(r.fields().map(|(n, v)| (n.to_owned(), Ty::of(v))).collect())
            }
        }
    }

    /// The type of field `name`, if this is a record that has it.
    pub fn field(&self, name: &str) -> Option<&Ty> {
        match self {
            Ty::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, t)| t),
            _ => None,
        }
    }

    /// The record with field `name` of type `ty` (replaced if present, else appended, as
    /// [`Record::set`] does); anything but a record is left as it is.
    pub fn with_field(self, name: &str, ty: Ty) -> Ty {
        match self {
            Ty::Record(mut fields) => {
                match fields.iter_mut().find(|(n, _)| n == name) {
                    Some((_, t)) => *t = ty,
                    None => fields.push((name.to_owned(), ty)),
                }
                Ty::Record(fields)
            }
            other => other,
        }
    }

    /// Whether a value of this type is one of `accepts` (which may hold [`Ty::Any`]). A
    /// value of unknown type passes: the run-time check decides.
    pub fn is_one_of(&self, accepts: &[Ty]) -> bool {
        *self == Ty::Any || accepts.iter().any(|a| a == self || *a == Ty::Any)
    }

    /// How messages name values of this type: `numbers`, `text`, `records with fields
    /// line, text`.
    pub fn plural(&self) -> String {
        match self {
            Ty::Number => "numbers".into(),
            Ty::Text => "text".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Record(fields) if fields.is_empty() => "records with no fields".into(),
            Ty::Record(fields) => {
                let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                format!("records with fields {}", names.join(", "))
            }
            Ty::Any => "values of any type".into(),
        }
    }

    /// How messages name one value of this type: `a number`, `text`, `a record`.
    pub fn singular(&self) -> &'static str {
        match self {
            Ty::Number => "a number",
            Ty::Text => "text",
            Ty::Bytes => "bytes",
            Ty::Record(_) => "a record",
            Ty::Any => "anything",
        }
    }
}

/// `number`, `text`, `bytes`, `any`, and records with their fields:
/// `record {line: number, text: text}`.
impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Number => f.write_str("number"),
            Ty::Text => f.write_str("text"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Any => f.write_str("any"),
            Ty::Record(fields) => {
                f.write_str("record {")?;
                for (i, (name, ty)) in fields.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    // A plain name as it is; anything else quoted, so that a field name
                    // with a newline cannot end a `# emits:` comment in `check`'s output.
                    let plain = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if plain {
                        write!(f, "{sep}{name}: {ty}")?;
                    } else {
                        write!(f, "{sep}{}: {ty}", serde_json::Value::from(&**name))?;
                    }
                }
                f.write_str("}")
            }
        }
    }
}

/// Named fields, in insertion order. Records are small; lookups scan.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "nats", derive(serde::Serialize, serde::Deserialize))]
pub struct Record {
    fields: Vec<(Arc<str>, Value)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Record::default()
    }

    /// The record with `name` set to `value` (replaced if present, else appended).
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value` (replaced if present, else appended).
    pub fn set(&mut self, name: &str, value: Value) {
        match self.fields.iter_mut().find(|(n, _)| &**n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((Arc::from(name), value)),
        }
    }

    /// The field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(n, v)| (&**n, v))
    }

    fn names(&self) -> String {
        if self.fields.is_empty() {
            return "no fields".into();
        }
        let names: Vec<&str> = self.fields.iter().map(|(n, _)| &**n).collect();
        format!("fields {}", names.join(", "))
    }
}

impl Value {
    /// Text from a string.
    pub fn text(s: &str) -> Value {
        Value::Text(Arc::from(s))
    }

    /// The value's type.
    pub fn type_of(&self) -> Type {
        match self {
            Value::Number(_) => Type::Number,
            Value::Text(_) => Type::Text,
            Value::Bytes(_) => Type::Bytes,
            Value::Record(_) => Type::Record,
        }
    }

    /// The size of the value's payload in bytes: text and bytes by length, a number as 8,
    /// a record as the sum of its fields.
    pub fn byte_len(&self) -> u64 {
        match self {
            Value::Number(_) => 8,
            Value::Text(t) => t.len() as u64,
            Value::Bytes(b) => b.len() as u64,
            Value::Record(r) => r.fields().map(|(_, v)| v.byte_len()).sum(),
        }
    }

    /// The value as JSON: bytes as a lowercase hex string, records as objects.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Number(n) => serde_json::Value::from(*n),
            Value::Text(t) => serde_json::Value::from(&**t),
            Value::Bytes(b) => serde_json::Value::from(hex(b)),
            Value::Record(r) => serde_json::Value::Object(
                r.fields()
                    .map(|(n, v)| (n.to_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// How a value prints on one line: numbers in decimal, text as it is, bytes in hex,
/// records as a JSON object.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
            Value::Bytes(b) => f.write_str(&hex(b)),
            Value::Record(_) => write!(f, "{}", self.to_json()),
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Why a kind could not handle one item. The engine adds the stage and the item's id.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The value (or the field read) had the wrong type.
    Type {
        /// What the kind accepts, e.g. `text`.
        expected: &'static str,
        /// What it got.
        actual: Type,
        /// The field read, when the item was a record.
        field: Option<Arc<str>>,
    },
    /// The item was a record without the field the kind reads.
    MissingField {
        /// The field the kind reads.
        field: Arc<str>,
        /// The fields the record has, for the message.
        present: String,
    },
    /// Anything else, said in words (a parse error, an I/O error).
    Other(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Type {
                expected,
                actual,
                field: None,
            } => write!(f, "expected {expected}, got {actual}"),
            Fault::Type {
                expected,
                actual,
                field: Some(field),
            } => write!(f, "expected {expected} in field `{field}`, got {actual}"),
            Fault::MissingField { field, present } => {
                write!(
                    f,
                    "expected a record with field `{field}`, got one with {present}"
                )
            }
            Fault::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Fault {}

/// Where a kind reads its input and writes its result: the value itself, or, when the item
/// is a record, the field `field` (read) and `into` (written).
#[derive(Clone, Debug)]
pub struct Slot {
    field: Arc<str>,
    into: Arc<str>,
}

impl Slot {
    /// Reads `field` of records and writes `into`.
    pub fn new(field: &str, into: &str) -> Self {
        Slot {
            field: Arc::from(field),
            into: Arc::from(into),
        }
    }

    /// The field read from records.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The field written in records.
    pub fn into_field(&self) -> &str {
        &self.into
    }

    /// The value to work on: the item itself, or its record's field.
    ///
    /// # Errors
    ///
    /// [`Fault::MissingField`] if the item is a record without the field.
    pub fn read<'a>(&self, value: &'a Value) -> Result<&'a Value, Fault> {
        match value {
            Value::Record(r) => r.get(&self.field).ok_or_else(|| Fault::MissingField {
                field: Arc::clone(&self.field),
                present: r.names(),
            }),
            other => Ok(other),
        }
    }

    /// A type fault for `actual`, read through this slot from `value`.
    pub fn mismatch(&self, expected: &'static str, value: &Value, actual: &Value) -> Fault {
        Fault::Type {
            expected,
            actual: actual.type_of(),
            field: matches!(value, Value::Record(_)).then(|| Arc::clone(&self.field)),
        }
    }

    /// The result put in place: the new value itself, or the record with `into` set.
    pub fn write(&self, value: &Value, result: Value) -> Value {
        match value {
            Value::Record(r) => Value::Record(r.clone().with(&self.into, result)),
            _ => result,
        }
    }

    /// Reads a number through the slot.
    ///
    /// # Errors
    ///
    /// A [`Fault`] if there is no number there.
    pub fn number(&self, value: &Value) -> Result<u64, Fault> {
        match self.read(value)? {
            Value::Number(n) => Ok(*n),
            other => Err(self.mismatch("a number", value, other)),
        }
    }

    /// Reads text through the slot.
    ///
    /// # Errors
    ///
    /// A [`Fault`] if there is no text there.
    pub fn text<'a>(&self, value: &'a Value) -> Result<&'a str, Fault> {
        match self.read(value)? {
            Value::Text(t) => Ok(t),
            other => Err(self.mismatch("text", value, other)),
        }
    }

    /// Reads bytes (or the UTF-8 bytes of text) through the slot.
    ///
    /// # Errors
    ///
    /// A [`Fault`] if there are neither bytes nor text there.
    pub fn bytes(&self, value: &Value) -> Result<Bytes, Fault> {
        match self.read(value)? {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Text(t) => Ok(Bytes::copy_from_slice(t.as_bytes())),
            other => Err(self.mismatch("bytes or text", value, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_reads_plain_values_and_record_fields() {
        let slot = Slot::new("value", "value");
        assert_eq!(slot.number(&Value::Number(7)), Ok(7));
        let rec = Value::Record(Record::new().with("value", Value::Number(9)));
        assert_eq!(slot.number(&rec), Ok(9));
        assert_eq!(
            slot.write(&rec, Value::Number(81)),
            Value::Record(Record::new().with("value", Value::Number(81)))
        );
    }

    #[test]
    fn faults_name_expected_and_actual_types() {
        let slot = Slot::new("text", "text");
        let err = slot.text(&Value::Number(3)).unwrap_err();
        assert_eq!(err.to_string(), "expected text, got number");
        let rec = Value::Record(Record::new().with("line", Value::Number(1)));
        assert_eq!(
            slot.text(&rec).unwrap_err().to_string(),
            "expected a record with field `text`, got one with fields line"
        );
        let rec = Value::Record(Record::new().with("text", Value::Number(1)));
        assert_eq!(
            slot.text(&rec).unwrap_err().to_string(),
            "expected text in field `text`, got number"
        );
    }

    #[test]
    fn types_of_values_keep_record_fields_in_order() {
        let rec = Value::Record(
            Record::new()
                .with("line", Value::Number(2))
                .with("text", Value::text("hi")),
        );
        let ty = Ty::of(&rec);
        assert_eq!(ty.to_string(), "record {line: number, text: text}");
        assert_eq!(ty.field("text"), Some(&Ty::Text));
        assert_eq!(
            ty.clone().with_field("line", Ty::Text).to_string(),
            "record {line: text, text: text}"
        );
        assert_eq!(
            ty.clone().with_field("n", Ty::Number).plural(),
            "records with fields line, text, n"
        );
        assert!(Ty::Text.is_one_of(&[Ty::Bytes, Ty::Text]));
        assert!(!Ty::Number.is_one_of(&[Ty::Text]));
        assert!(Ty::Any.is_one_of(&[Ty::Text]) && Ty::Bytes.is_one_of(&[Ty::Any]));
    }

    #[test]
    fn odd_field_names_print_quoted_on_one_line() {
        let ty = Ty::Record(Vec::new())
            .with_field("plain_name-2", Ty::Text)
            .with_field("two\nlines", Ty::Number);
        assert_eq!(
            ty.to_string(),
            "record {plain_name-2: text, \"two\\nlines\": number}"
        );
    }

    #[test]
    fn values_print_on_one_line() {
        assert_eq!(
            Value::Bytes(Bytes::from_static(b"\x01\xff")).to_string(),
            "01ff"
        );
        let rec = Value::Record(
            Record::new()
                .with("line", Value::Number(2))
                .with("text", Value::text("hi")),
        );
        assert_eq!(rec.to_string(), r#"{"line":2,"text":"hi"}"#);
    }
}
