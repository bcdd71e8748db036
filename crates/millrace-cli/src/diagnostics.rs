//! Diagnostics for machines: config errors and pre-flight findings as one JSON document
//! (`millrace check --format json`, and `run --error-format json` on stderr), so an editor
//! or a CI step can place them without parsing the text.
//!
//! ```json
//! {
//!   "schema": "millrace-diagnostics",
//!   "version": 1,
//!   "file": "p.toml",
//!   "valid": false,
//!   "errors": 1,
//!   "warnings": 0,
//!   "diagnostics": [
//!     {
//!       "severity": "error",
//!       "message": "unknown key `wokers` in [[stage]] #1 (`square`)",
//!       "file": "p.toml",
//!       "line": 7,
//!       "column": 1,
//!       "width": 6,
//!       "set": null,
//!       "stage": "square",
//!       "help": "did you mean `workers`?"
//!     }
//!   ]
//! }
//! ```
//!
//! `line`, `column` (1-based, in characters) and `width` are `null` for what is not at a
//! place in the file: a `--set` override (then `set` holds its text) or the file as a whole.
//! `stage` names the part it is about: a stage's name, `source`, `sink`, `report`, or `null`
//! for the pipeline as a whole. `valid` is whether the command found no error (warnings
//! aside). The crate README documents the schema.

use serde_json::{json, Value};

use crate::config::{ConfigError, Loc, Severity};

/// The schema's name.
pub const SCHEMA: &str = "millrace-diagnostics";
/// The schema's version.
pub const VERSION: u32 = 1;

/// One diagnostic as a JSON object.
pub fn diagnostic(d: &ConfigError) -> Value {
    let (line, column, width, set) = match d.loc() {
        Loc::File { line, col, width } => (json!(line), json!(col), json!(width), Value::Null),
        Loc::Override(text) => (Value::Null, Value::Null, Value::Null, json!(text.as_ref())),
        Loc::Whole => (Value::Null, Value::Null, Value::Null, Value::Null),
    };
    json!({
        "severity": d.severity().as_str(),
        "message": d.message(),
        "file": d.file(),
        "line": line,
        "column": column,
        "width": width,
        "set": set,
        "stage": d.part(),
        "help": d.hint(),
    })
}

/// The document for `file`'s diagnostics (every one of each [`ConfigError`] in `found`).
pub fn document<'a>(file: &str, found: impl IntoIterator<Item = &'a ConfigError>) -> Value {
    let all: Vec<&ConfigError> = found.into_iter().flat_map(ConfigError::all).collect();
    let errors = all
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .count();
    json!({
        "schema": SCHEMA,
        "version": VERSION,
        "file": file,
        "valid": errors == 0,
        "errors": errors,
        "warnings": all.len() - errors,
        "diagnostics": all.iter().map(|d| diagnostic(d)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_has_no_place_but_its_text() {
        let e = ConfigError::new(Loc::Override("stage.x.workers=0".into()), "bad")
            .in_part("x")
            .in_file("p.toml", None);
        let doc = document("p.toml", [&e]);
        let d = &doc["diagnostics"][0];
        assert_eq!(d["set"], "stage.x.workers=0");
        assert_eq!(d["line"], Value::Null);
        assert_eq!(d["stage"], "x");
        assert_eq!(doc["valid"], false);
        assert_eq!(doc["errors"], 1);
    }
}
