//! Environment variables in string values: `${VAR}`, `${VAR:-default}` and `$$`.
//!
//! Every string value of the file (and of `--set` overrides) is expanded after the
//! overrides are applied and before the values are checked, so a path, a pattern or a URL
//! can come from the environment, as Vector and Benthos users expect:
//!
//! ```toml
//! [source]
//! kind = "lines"
//! path = "${LOG_DIR:-/var/log}/app.log"
//! ```
//!
//! * `${VAR}` is the variable's value; unset, it is an error at the value, naming it;
//! * `${VAR:-default}` is the value, or `default` when the variable is unset or empty (the
//!   default is taken as written, not expanded again);
//! * `$$` is a literal `$`; any other `$` is kept as it is (`'\.rs$'` needs no escape).
//!
//! Keys are never expanded. A leading `~` in a path is the home directory: paths are
//! resolved in [`super::params`].

use super::error::{ConfigError, Findings};
use super::node::{Node, NodeKind};

/// Looks a variable up: `std::env::var` for the command, a table for tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands every string value under `node`, recording each error in `found`.
pub fn expand_tree(node: &mut Node, env: Lookup<'_>, found: &mut Findings) {
    match &mut node.kind {
        NodeKind::Str(text) if text.contains('$') => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(e) => found.push(ConfigError::new(node.loc.clone(), e.message).maybe_help(e.help)),
        },
        NodeKind::Array(items) => items.iter_mut().for_each(|n| expand_tree(n, env, found)),
        NodeKind::Table(entries) => entries
            .iter_mut()
            .for_each(|e| expand_tree(&mut e.value, env, found)),
        _ => {}
    }
}

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

/// `text` with its `${…}` references replaced and `$$` made `$`.
///
/// # Errors
///
/// An unset variable without a default, an unclosed `${`, or a name that is not a
/// variable name (letters, digits and `_`, not starting with a digit).
pub fn expand(text: &str, env: Lookup<'_>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inside) = after.strip_prefix('{') {
            let Some(close) = inside.find('}') else {
                return Err(ExpandError {
                    message: format!("`${{` without a closing `}}` in {text:?}"),
                    help: Some("write ${NAME}, or $$ for a literal $".into()),
                });
            };
            out.push_str(&variable(&inside[..close], env)?);
            rest = &inside[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${…}`: `NAME` or `NAME:-default`.
fn variable(inside: &str, env: Lookup<'_>) -> Result<String, ExpandError> {
    let (name, default) = match inside.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inside, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ExpandError {
            message: format!("`${{{inside}}}` does not name an environment variable"),
            help: Some(
                "a name is letters, digits and _, not starting with a digit: ${NAME} or \
                 ${NAME:-default}; $$ is a literal $"
                    .into(),
            ),
        });
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(ExpandError {
            message: format!("environment variable `{name}` is not set"),
            help: Some(format!(
                "set it, or give a default: ${{{name}:-VALUE}}; $$ is a literal $"
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DIR" => Some("/data".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_and_defaults_fill_unset_or_empty_ones() {
        assert_eq!(expand("${DIR}/a.log", &env).unwrap(), "/data/a.log");
        assert_eq!(expand("${NOPE:-/tmp}/a", &env).unwrap(), "/tmp/a");
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${DIR:-x}", &env).unwrap(), "/data");
    }

    #[test]
    fn double_dollar_is_a_dollar_and_a_lone_dollar_stays() {
        assert_eq!(expand("cost $$5", &env).unwrap(), "cost $5");
        assert_eq!(expand(r"\.rs$", &env).unwrap(), r"\.rs$");
        assert_eq!(expand("$$${DIR}", &env).unwrap(), "$/data");
    }

    #[test]
    fn an_unset_variable_without_default_is_an_error_naming_it() {
        let e = expand("${NOPE}/x", &env).unwrap_err();
        assert_eq!(e.message, "environment variable `NOPE` is not set");
        assert!(expand("${DIR", &env).is_err());
        assert!(expand("${1X}", &env).is_err());
        assert!(expand("${}", &env).is_err());
    }
}
