//! `--set KEY=VALUE`: changing one setting of a pipeline file from the command line.
//!
//! Keys name a table and a key in it: `pipeline.batch`, `source.end`, `sink.path`, or a
//! stage by its name or 1-based position: `stage.square.workers`, `stage.2.workers`. The
//! key is a TOML dotted key, so a name with a dot (or an `=`) in it is quoted as in TOML:
//! `stage."a.b".workers=2`. The
//! value is TOML (`4`, `true`, `"text"`, `["a", "b"]`); a value that is not valid TOML is
//! taken as a string, so `--set sink.path=out.txt` needs no quotes. The override replaces
//! (or adds) the key before the file is checked, and errors about it point at the `--set`.

use std::sync::Arc;

use super::error::{ConfigError, Loc};
use super::node::{parse_override_value, Entry, Node, NodeKind};

/// Applies one `--set` to the tree.
///
/// # Errors
///
/// A [`ConfigError`] if the text is not `KEY=VALUE` or the key names nothing.
pub fn apply(root: &mut Node, text: &str) -> Result<(), ConfigError> {
    let loc = Loc::Override(Arc::from(text));
    let usage = "expected KEY=VALUE with KEY one of pipeline.KEY, source.KEY, \
                 stage.NAME.KEY (or stage.N.KEY) and sink.KEY";
    let Some((path, raw)) = split_key(text) else {
        return Err(ConfigError::new(loc, usage));
    };
    let value = parse_override_value(raw, &loc);
    let keys = toml_edit::Key::parse(path.trim()).map_err(|e| {
        let why = e.message().trim_end().to_owned();
        ConfigError::new(
            loc.clone(),
            format!("`{}` is not a TOML key: {why}", path.trim()),
        )
        .help("quote a name with a dot in it as in TOML: stage.\"a.b\".workers=2")
    })?;
    let parts: Vec<&str> = keys.iter().map(toml_edit::Key::get).collect();
    match parts.as_slice() {
        [table @ ("pipeline" | "source" | "sink"), key] if !key.is_empty() => {
            let node = child_table(root, table, &loc)?;
            set(node, key, value, &loc)
        }
        ["stage", which, key] if !key.is_empty() => {
            let stage = find_stage(root, which, &loc)?;
            set(stage, key, value, &loc)
        }
        ["stage", name @ .., key] if name.len() > 1 => {
            let name = name.join(".");
            Err(ConfigError::new(loc, usage).help(format!(
                "a stage name with a dot in it is quoted: stage.\"{name}\".{key}"
            )))
        }
        _ => Err(ConfigError::new(loc, usage)),
    }
}

/// Splits `KEY=VALUE` at the first `=` outside a quoted part of the key.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '=') => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// The table `name` of `root`, added if missing.
fn child_table<'a>(root: &'a mut Node, name: &str, loc: &Loc) -> Result<&'a mut Node, ConfigError> {
    let NodeKind::Table(entries) = &mut root.kind else {
        return Err(ConfigError::new(loc.clone(), "the file is not a table"));
    };
    let index = match entries.iter().position(|e| e.key == name) {
        Some(i) => i,
        None => {
            entries.push(Entry {
                key: name.to_owned(),
                key_loc: loc.clone(),
                value: Node {
                    kind: NodeKind::Table(Vec::new()),
                    loc: loc.clone(),
                },
            });
            entries.len() - 1
        }
    };
    entries
        .get_mut(index)
        .map(|e| &mut e.value)
        .ok_or_else(|| ConfigError::new(loc.clone(), format!("no [{name}]")))
}

/// The names stages get: their `name`, or their kind made unique (`spin`, `spin-2`, …).
fn stage_names(stages: &[Node]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for stage in stages {
        let explicit = match stage.get("name").map(|e| &e.value.kind) {
            Some(NodeKind::Str(n)) => Some(n.clone()),
            _ => None,
        };
        let name = explicit.unwrap_or_else(|| {
            let kind = match stage.get("kind").map(|e| &e.value.kind) {
                Some(NodeKind::Str(k)) => k.clone(),
                _ => "stage".to_owned(),
            };
            let mut n = kind.clone();
            let mut k = 2;
            while names.contains(&n) {
                n = format!("{kind}-{k}");
                k += 1;
            }
            n
        });
        names.push(name);
    }
    names
}

fn find_stage<'a>(root: &'a mut Node, which: &str, loc: &Loc) -> Result<&'a mut Node, ConfigError> {
    let stages = match root
        .entries()
        .and_then(|entries| entries.iter().position(|e| e.key == "stage"))
    {
        Some(i) => match &mut root.kind {
            NodeKind::Table(entries) => entries.get_mut(i).map(|e| &mut e.value),
            _ => None,
        },
        None => None,
    };
    let Some(Node {
        kind: NodeKind::Array(stages),
        ..
    }) = stages
    else {
        return Err(ConfigError::new(
            loc.clone(),
            "the pipeline has no [[stage]]",
        ));
    };
    let names = stage_names(stages);
    let index = match which.parse::<usize>() {
        Ok(n) if (1..=stages.len()).contains(&n) => n - 1,
        // A number that is no stage's position (and no stage's name).
        Ok(n) if !names.iter().any(|name| name == which) => {
            return Err(ConfigError::new(
                loc.clone(),
                format!(
                    "no stage {n}: stages count from 1, and the pipeline has {}",
                    plural(stages.len(), "stage")
                ),
            )
            .help(format!("the stages are: {}", names.join(", "))));
        }
        _ => names.iter().position(|n| n == which).ok_or_else(|| {
            let help = super::error::did_you_mean(which, names.iter().map(String::as_str))
                .unwrap_or_else(|| format!("the stages are: {}", names.join(", ")));
            ConfigError::new(loc.clone(), format!("no stage is named `{which}`")).help(help)
        })?,
    };
    stages
        .get_mut(index)
        .ok_or_else(|| ConfigError::new(loc.clone(), format!("no stage {which}")))
}

fn set(table: &mut Node, key: &str, value: Node, loc: &Loc) -> Result<(), ConfigError> {
    let NodeKind::Table(entries) = &mut table.kind else {
        return Err(ConfigError::new(
            loc.clone(),
            format!(
                "cannot set `{key}`: the target is {}, not a table",
                table.describe()
            ),
        ));
    };
    match entries.iter_mut().find(|e| e.key == key) {
        Some(entry) => {
            entry.key_loc = loc.clone();
            entry.value = value;
        }
        None => entries.push(Entry {
            key: key.to_owned(),
            key_loc: loc.clone(),
            value,
        }),
    }
    Ok(())
}

/// `n thing` or `n things`.
fn plural(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}
