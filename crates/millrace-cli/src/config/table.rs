//! Reading one table of the config tree: its keys by name, and every key it does not
//! know reported (with the closest known one), so that a misspelt setting is never
//! silently ignored.

use super::error::{did_you_mean, ConfigError, Findings};
use super::node::{Entry, Node};

/// Reads one table; [`Keys::check_unknown`] rejects keys it does not know.
pub(super) struct Keys<'a> {
    pub(super) entries: &'a [Entry],
    pub(super) what: String,
}

impl<'a> Keys<'a> {
    pub(super) fn new(node: &'a Node, what: &str) -> Result<Self, ConfigError> {
        let entries = node.entries().ok_or_else(|| {
            ConfigError::new(
                node.loc.clone(),
                format!("{what} must be a table, found {}", node.describe()),
            )
        })?;
        Ok(Keys {
            entries,
            what: what.to_owned(),
        })
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// Records every key that is not in `known`.
    pub(super) fn check_unknown(&self, known: &[&str], found: &mut Findings) {
        for entry in self
            .entries
            .iter()
            .filter(|e| !known.contains(&e.key.as_str()))
        {
            found.push(
                ConfigError::new(
                    entry.key_loc.clone(),
                    format!("unknown key `{}` in {}", entry.key, self.what),
                )
                .help(
                    did_you_mean(&entry.key, known.iter().copied()).unwrap_or_else(|| {
                        format!("the keys {} takes are: {}", self.what, known.join(", "))
                    }),
                ),
            );
        }
    }
}
