//! The parsed pipeline file as a tree of [`Node`]s, each knowing where it came from.
//!
//! The TOML parser (`toml_edit`, which keeps byte spans) reads the file; this module turns
//! its document into a plain tree whose every key and value carries a [`Loc`], so later
//! checks can point at the exact key or value they reject. `--set` overrides
//! ([`super::overrides`]) edit the same tree with locations of their own.

use std::sync::Arc;

use toml_edit::{ImDocument, Item, Table, Value as TomlValue};

use super::error::{ConfigError, LineIndex, Loc};

/// A value in the config tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Where it was written.
    pub loc: Loc,
}

/// The kinds of config values.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An array.
    Array(Vec<Node>),
    /// A table (standard, inline or an element of an array of tables).
    Table(Vec<Entry>),
    /// A date or time: valid TOML that no setting takes.
    Datetime(String),
}

/// A key of a table with its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Where the key was written.
    pub key_loc: Loc,
    /// Its value.
    pub value: Node,
}

impl Node {
    /// The boolean setting `name` read from `node` (`false` when absent); anything but
    /// `true` or `false` is an error at the value.
    pub fn flag(node: Option<&Node>, name: &str) -> Result<bool, ConfigError> {
        match node {
            None => Ok(false),
            Some(Node {
                kind: NodeKind::Bool(b),
                ..
            }) => Ok(*b),
            Some(other) => Err(ConfigError::new(
                other.loc.clone(),
                format!("`{name}` must be true or false, found {}", other.describe()),
            )),
        }
    }

    /// What the value is, for messages: `a string "four"`, `an integer 4`, `a table`.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Str(s) => format!("a string {s:?}"),
            NodeKind::Int(i) => format!("an integer {i}"),
            NodeKind::Float(x) => format!("a float {x}"),
            NodeKind::Bool(b) => format!("a boolean {b}"),
            NodeKind::Array(_) => "an array".into(),
            NodeKind::Table(_) => "a table".into(),
            NodeKind::Datetime(d) => format!("a date-time {d}"),
        }
    }

    /// The entries, if this is a table.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            NodeKind::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entry `key`, if this is a table that has it.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }
}

/// Parses `text` into a tree rooted at a table.
///
/// # Errors
///
/// A [`ConfigError`] at the parser's location if `text` is not valid TOML.
pub fn parse(text: &Arc<str>, index: &LineIndex) -> Result<Node, ConfigError> {
    let doc = ImDocument::parse(Arc::clone(text)).map_err(|e| {
        let loc = e.span().map_or(Loc::Whole, |s| index.loc(s));
        let message = e.message().trim().replace('\n', "; ");
        ConfigError::new(loc, format!("invalid TOML: {message}"))
    })?;
    Ok(Node {
        kind: NodeKind::Table(table_entries(doc.as_table(), index)),
        loc: Loc::Whole,
    })
}

fn loc_of(span: Option<std::ops::Range<usize>>, index: &LineIndex, fallback: &Loc) -> Loc {
    span.map_or_else(|| fallback.clone(), |s| index.loc(s))
}

fn table_entries(table: &Table, index: &LineIndex) -> Vec<Entry> {
    table
        .iter()
        .filter_map(|(key, item)| {
            let key_loc = loc_of(table.key(key).and_then(|k| k.span()), index, &Loc::Whole);
            let value = item_node(item, index, &key_loc)?;
            Some(Entry {
                key: key.to_owned(),
                key_loc,
                value,
            })
        })
        .collect()
}

fn item_node(item: &Item, index: &LineIndex, key_loc: &Loc) -> Option<Node> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_node(v, index, key_loc)),
        Item::Table(t) => Some(Node {
            kind: NodeKind::Table(table_entries(t, index)),
            loc: loc_of(t.span(), index, key_loc),
        }),
        Item::ArrayOfTables(a) => Some(Node {
            kind: NodeKind::Array(
                a.iter()
                    .map(|t| Node {
                        kind: NodeKind::Table(table_entries(t, index)),
                        loc: loc_of(t.span(), index, key_loc),
                    })
                    .collect(),
            ),
            loc: loc_of(a.span(), index, key_loc),
        }),
    }
}

fn value_node(value: &TomlValue, index: &LineIndex, key_loc: &Loc) -> Node {
    let loc = loc_of(value.span(), index, key_loc);
    let kind = match value {
        TomlValue::String(s) => NodeKind::Str(s.value().clone()),
        TomlValue::Integer(i) => NodeKind::Int(*i.value()),
        TomlValue::Float(x) => NodeKind::Float(*x.value()),
        TomlValue::Boolean(b) => NodeKind::Bool(*b.value()),
        TomlValue::Datetime(d) => NodeKind::Datetime(d.value().to_string()),
        TomlValue::Array(a) => {
            NodeKind::Array(a.iter().map(|v| value_node(v, index, &loc)).collect())
        }
        TomlValue::InlineTable(t) => NodeKind::Table(
            t.iter()
                .map(|(key, v)| {
                    let key_loc = loc_of(t.key(key).and_then(|k| k.span()), index, &loc);
                    let value = value_node(v, index, &key_loc);
                    Entry {
                        key: key.to_owned(),
                        key_loc,
                        value,
                    }
                })
                .collect(),
        ),
    };
    Node { kind, loc }
}

/// Parses one value written on the command line (`--set key=VALUE`): TOML if it parses as
/// a TOML value, else the text itself as a string (so `--set sink.path=out.txt` works
/// unquoted).
pub fn parse_override_value(text: &str, loc: &Loc) -> Node {
    let fake_index = LineIndex::new(Arc::from(""));
    match text.trim().parse::<TomlValue>() {
        Ok(v) => {
            let mut node = value_node(&v, &fake_index, loc);
            relocate(&mut node, loc);
            node
        }
        Err(_) => Node {
            kind: NodeKind::Str(text.to_owned()),
            loc: loc.clone(),
        },
    }
}

/// Gives `node` and everything in it the location `loc`.
fn relocate(node: &mut Node, loc: &Loc) {
    node.loc = loc.clone();
    match &mut node.kind {
        NodeKind::Array(items) => items.iter_mut().for_each(|n| relocate(n, loc)),
        NodeKind::Table(entries) => entries.iter_mut().for_each(|e| {
            e.key_loc = loc.clone();
            relocate(&mut e.value, loc);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Node, ConfigError> {
        let text: Arc<str> = Arc::from(text);
        let index = LineIndex::new(Arc::clone(&text));
        parse(&text, &index)
    }

    #[test]
    fn keys_and_values_keep_their_locations() {
        let root = parse_str("[source]\nkind = \"range\"\nend = 10\n").unwrap();
        let source = root.get("source").unwrap();
        let end = source.value.get("end").unwrap();
        assert_eq!(
            end.key_loc,
            Loc::File {
                line: 3,
                col: 1,
                width: 3
            }
        );
        assert_eq!(end.value.kind, NodeKind::Int(10));
        assert!(matches!(
            end.value.loc,
            Loc::File {
                line: 3,
                col: 7,
                ..
            }
        ));
    }

    #[test]
    fn arrays_of_tables_become_arrays() {
        let root = parse_str("[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\n").unwrap();
        let NodeKind::Array(stages) = &root.get("stage").unwrap().value.kind else {
            panic!("not an array");
        };
        assert_eq!(stages.len(), 2);
        assert!(matches!(stages[1].loc, Loc::File { line: 3, .. }));
    }

    #[test]
    fn invalid_toml_is_located() {
        let err = parse_str("[source]\nkind = \n").unwrap_err();
        assert!(matches!(err.loc(), Loc::File { line: 2, .. }), "{err}");
    }

    #[test]
    fn override_values_parse_as_toml_or_text() {
        let loc = Loc::Override(Arc::from("x"));
        assert_eq!(parse_override_value("12", &loc).kind, NodeKind::Int(12));
        assert_eq!(
            parse_override_value("out.txt", &loc).kind,
            NodeKind::Str("out.txt".into())
        );
    }
}
