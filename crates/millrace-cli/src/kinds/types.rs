//! What each kind reads from an item and what it gives, as types: the declarations the
//! load-time check ([`crate::config::typecheck`]) walks and `millrace stages` shows.
//!
//! A kind declares a function from its parameters to its [`Types`] (a `field`, an `into`
//! or an `output` parameter changes them). [`Types::apply`] then says what a kind gives
//! for an input type, or why it cannot take it ([`Mismatch`]), with the same rules the
//! kinds follow at run time:
//!
//! * a kind that works on one type reads it from the item itself or, when the item is a
//!   record, from its `field` ([`Slot`]), and writes its result back
//!   the same way (the item replaced, or the record's `into` set);
//! * a filter or a wait gives the item as it came;
//! * `chunk` gives records: the item's own fields, if it is a record, and the chunk's.
//!
//! The run-time checks stay: they fail one item, should a value ever not be what its type
//! said. `tests/kind_types.rs` runs every kind on values of every type, so these
//! declarations cannot drift from what the kinds really do.

use std::fmt;

use crate::value::{Slot, Ty};

/// Accepts any value.
pub const ANY: &[Ty] = &[Ty::Any];
/// Accepts numbers.
pub const NUMBER: &[Ty] = &[Ty::Number];
/// Accepts text.
pub const TEXT: &[Ty] = &[Ty::Text];
/// Accepts bytes or text (text as its UTF-8 bytes).
pub const BYTES_OR_TEXT: &[Ty] = &[Ty::Bytes, Ty::Text];
/// Accepts numbers or text.
pub const NUMBER_OR_TEXT: &[Ty] = &[Ty::Number, Ty::Text];

/// What a kind reads from each item.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Nothing: a source.
    Nothing,
    /// A value of one of `accepts` ([`ANY`]: anything): the item itself or, when the item
    /// is a record and `field` is set, that field of it (which the record must have).
    Value {
        /// The types it takes.
        accepts: &'static [Ty],
        /// The field read from records; `None`: the item itself, record or not.
        field: Option<String>,
    },
    /// Records that have each of these fields, of any type (`count` with `fields`).
    Fields(Vec<String>),
}

/// What a kind gives for each item it takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Nothing: a sink.
    Nothing,
    /// The item as it came (or nothing: filtered).
    Same,
    /// A value of type `ty`: the item replaced or, when the item is a record, its field
    /// `into` set.
    Result {
        /// The result's type.
        ty: Ty,
        /// The field written in records.
        into: String,
    },
    /// Records, one per chunk: the item's fields, if it is a record, then `offset` and
    /// `length` (numbers) and the chunk's bytes in `field`.
    Chunks {
        /// The field that holds the chunk's bytes.
        field: String,
    },
    /// Values of this type, whatever came in: a source.
    Fixed(Ty),
}

/// A kind's input and output, for its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Types {
    /// What it reads.
    pub input: Input,
    /// What it gives.
    pub output: Output,
}

/// Why a kind cannot take items of some type.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// The item is of a type the kind does not take.
    Wrong {
        /// The item's type.
        found: Ty,
    },
    /// The record's field is of a type the kind does not take.
    WrongField {
        /// The field read.
        field: String,
        /// Its type.
        found: Ty,
    },
    /// The record has no such field.
    MissingField {
        /// The field read.
        field: String,
    },
    /// The kind reads fields, and the item is not a record.
    NotRecord {
        /// The item's type.
        found: Ty,
    },
}

impl Types {
    /// A source of `ty`.
    pub fn source(ty: Ty) -> Types {
        Types {
            input: Input::Nothing,
            output: Output::Fixed(ty),
        }
    }

    /// A sink that takes one of `accepts` through `field` (`None`: the item itself).
    pub fn sink(accepts: &'static [Ty], field: Option<&str>) -> Types {
        Types {
            input: Input::Value {
                accepts,
                field: field.map(str::to_owned),
            },
            output: Output::Nothing,
        }
    }

    /// A stage that reads one of `accepts` through `slot` and writes a `ty` through it.
    pub fn through(slot: &Slot, accepts: &'static [Ty], ty: Ty) -> Types {
        Types {
            input: Input::Value {
                accepts,
                field: Some(slot.field().to_owned()),
            },
            output: Output::Result {
                ty,
                into: slot.into_field().to_owned(),
            },
        }
    }

    /// A stage that reads one of `accepts` (through `field`) and gives the item as it came.
    pub fn passing(accepts: &'static [Ty], field: Option<&str>) -> Types {
        Types {
            input: Input::Value {
                accepts,
                field: field.map(str::to_owned),
            },
            output: Output::Same,
        }
    }

    /// Whether the kind takes items of type `input`.
    ///
    /// # Errors
    ///
    /// The [`Mismatch`] if it does not.
    pub fn check(&self, input: &Ty) -> Result<(), Mismatch> {
        match &self.input {
            Input::Nothing => Ok(()),
            Input::Value { accepts, field } => {
                let (read, field) = match (field, input) {
                    (Some(f), Ty::Record(_)) => match input.field(f) {
                        Some(t) => (t, Some(f)),
                        None => return Err(Mismatch::MissingField { field: f.clone() }),
                    },
                    _ => (input, None),
                };
                match (read.is_one_of(accepts), field) {
                    (true, _) => Ok(()),
                    (false, Some(f)) => Err(Mismatch::WrongField {
                        field: f.clone(),
                        found: read.clone(),
                    }),
                    (false, None) => Err(Mismatch::Wrong {
                        found: read.clone(),
                    }),
                }
            }
            Input::Fields(names) => match input {
                Ty::Any => Ok(()),
                Ty::Record(_) => match names.iter().find(|n| input.field(n).is_none()) {
                    Some(missing) => Err(Mismatch::MissingField {
                        field: missing.clone(),
                    }),
                    None => Ok(()),
                },
                other => Err(Mismatch::NotRecord {
                    found: other.clone(),
                }),
            },
        }
    }

    /// What the kind gives for items of type `input`.
    ///
    /// # Errors
    ///
    /// The [`Mismatch`] if it does not take them.
    pub fn apply(&self, input: &Ty) -> Result<Ty, Mismatch> {
        self.check(input)?;
        Ok(match &self.output {
            Output::Nothing | Output::Same => input.clone(),
            Output::Fixed(ty) => ty.clone(),
            Output::Result { ty, into } => match input {
                Ty::Record(_) => input.clone().with_field(into, ty.clone()),
                // Record or not: what comes out is not known either.
                Ty::Any => Ty::Any,
                _ => ty.clone(),
            },
            Output::Chunks { field } => {
                let parent = match input {
                    Ty::Record(_) => input.clone(),
                    Ty::Any => return Ok(Ty::Any),
                    _ => Ty::Record(Vec::new()),
                };
                parent
                    .with_field("offset", Ty::Number)
                    .with_field("length", Ty::Number)
                    .with_field(field, Ty::Bytes)
            }
        })
    }

    /// The one type this kind takes, if it takes exactly one (not [`Ty::Any`]).
    pub fn takes_only(&self) -> Option<&Ty> {
        match &self.input {
            Input::Value {
                accepts: [only], ..
            } if *only != Ty::Any => Some(only),
            _ => None,
        }
    }

    /// The type of its result, if it gives a value of a fixed type.
    pub fn gives_value(&self) -> Option<&Ty> {
        match &self.output {
            Output::Result { ty, .. } => Some(ty),
            _ => None,
        }
    }
}

/// What a kind accepts, in words: `numbers`, `bytes or text`, `records with fields
/// `length`, `data``.
pub fn accepts_in_words(input: &Input) -> String {
    match input {
        Input::Nothing => "nothing".into(),
        Input::Value { accepts, .. } => {
            let words: Vec<String> = accepts.iter().map(Ty::plural).collect();
            words.join(" or ")
        }
        Input::Fields(names) => {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            let s = if names.len() == 1 { "" } else { "s" };
            format!("records with field{s} {}", names.join(", "))
        }
    }
}

/// One line for `millrace stages`: `text → number (records: `text` → `value`)`.
impl fmt::Display for Types {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut field = None;
        match &self.input {
            Input::Nothing => f.write_str("nothing")?,
            Input::Value {
                accepts,
                field: read,
            } => {
                let names: Vec<String> = accepts.iter().map(ToString::to_string).collect();
                f.write_str(&names.join(" | "))?;
                field = read.as_deref();
            }
            Input::Fields(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("{n}: any")).collect();
                write!(f, "record {{{}, …}}", names.join(", "))?;
            }
        }
        f.write_str(" → ")?;
        match &self.output {
            Output::Nothing => f.write_str("nothing")?,
            Output::Same => f.write_str("the same item")?,
            Output::Fixed(ty) | Output::Result { ty, .. } => write!(f, "{ty}")?,
            Output::Chunks { field } => write!(
                f,
                "record {{…, offset: number, length: number, {field}: bytes}} per chunk"
            )?,
        }
        match (field, &self.output) {
            (Some(read), Output::Result { into, .. }) => {
                write!(f, " (records: `{read}` → `{into}`)")
            }
            (Some(read), _) => write!(f, " (records: `{read}`)"),
            (None, _) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Ty {
        Ty::Record(vec![("line".into(), Ty::Number), ("text".into(), Ty::Text)])
    }

    #[test]
    fn slots_read_records_fields_and_write_back() {
        let parse = Types::through(&Slot::new("text", "value"), TEXT, Ty::Number);
        assert_eq!(parse.apply(&Ty::Text), Ok(Ty::Number));
        assert_eq!(
            parse.apply(&lines()),
            Ok(lines().with_field("value", Ty::Number))
        );
        assert_eq!(
            parse.apply(&Ty::Number),
            Err(Mismatch::Wrong { found: Ty::Number })
        );
        let square = Types::through(&Slot::new("value", "value"), NUMBER, Ty::Number);
        assert_eq!(
            square.apply(&lines()),
            Err(Mismatch::MissingField {
                field: "value".into()
            })
        );
        let square = Types::through(&Slot::new("text", "text"), NUMBER, Ty::Number);
        assert_eq!(
            square.apply(&lines()),
            Err(Mismatch::WrongField {
                field: "text".into(),
                found: Ty::Text
            })
        );
        assert_eq!(square.apply(&Ty::Any), Ok(Ty::Any));
    }

    #[test]
    fn fields_need_records_that_have_them() {
        let count = Types {
            input: Input::Fields(vec!["line".into(), "size".into()]),
            output: Output::Nothing,
        };
        assert_eq!(
            count.check(&lines()),
            Err(Mismatch::MissingField {
                field: "size".into()
            })
        );
        assert_eq!(
            count.check(&Ty::Number),
            Err(Mismatch::NotRecord { found: Ty::Number })
        );
    }

    #[test]
    fn types_print_as_input_to_output() {
        let parse = Types::through(&Slot::new("text", "value"), TEXT, Ty::Number);
        assert_eq!(
            parse.to_string(),
            "text → number (records: `text` → `value`)"
        );
        assert_eq!(
            Types::source(lines()).to_string(),
            "nothing → record {line: number, text: text}"
        );
        assert_eq!(Types::sink(ANY, None).to_string(), "any → nothing");
    }
}
