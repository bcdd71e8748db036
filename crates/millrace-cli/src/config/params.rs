//! Parameters of stage kinds: their declared types, and checked values.
//!
//! Each kind declares its parameters as [`ParamSpec`]s: a name, a [`ParamType`], a default
//! (written as TOML, so `millrace stages` shows it exactly as a user would write it) and a
//! line of documentation. The same declarations drive validation here, the `stages`
//! listing, and the resolved pipeline that `millrace check` prints, so they cannot drift
//! apart.

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Loc};
use super::node::{Node, NodeKind};

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamType {
    /// A whole number in `min..=max`.
    Int {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A non-negative number of milliseconds (integer or float).
    Millis,
    /// A positive duration with a unit: `"250ms"`, `"2s"` (see [`super::duration`]).
    Duration,
    /// `true` or `false`.
    Bool,
    /// Any string.
    Text,
    /// A file or directory path; relative paths, in the file or in a `--set`, are relative
    /// to the pipeline file's directory; a leading `~` is the home directory. `-` means
    /// stdin/stdout.
    Path,
    /// A regular expression (Rust `regex` syntax), checked when the file is loaded.
    Regex,
    /// A size in bytes: an integer, or a string with a unit (`64KiB`, `16MiB`, `1GB`).
    Size {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A list of field names.
    Fields,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Int { min, max: i64::MAX } => write!(f, "integer ≥ {min}"),
            ParamType::Int { min, max } => write!(f, "integer {min}..={max}"),
            ParamType::Millis => f.write_str("milliseconds"),
            ParamType::Duration => f.write_str("duration"),
            ParamType::Bool => f.write_str("boolean"),
            ParamType::Text => f.write_str("string"),
            ParamType::Path => f.write_str("path"),
            ParamType::Regex => f.write_str("regex"),
            ParamType::Size { min, max } => write!(f, "size {min}..={max} bytes"),
            ParamType::Choice(options) => write!(f, "one of {}", options.join(" | ")),
            ParamType::Fields => f.write_str("list of field names"),
        }
    }
}

/// Whether a parameter must be given, and its default if not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    /// It must be given.
    Required,
    /// It may be left out; the kind does without it.
    Optional,
    /// Left out, it takes this value (written as TOML).
    Value(&'static str),
}

/// One declared parameter of a kind.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// Its key in the pipeline file.
    pub name: &'static str,
    /// Its type.
    pub ty: ParamType,
    /// Whether it is required, and its default.
    pub default: Default,
    /// What it does, in a line.
    pub doc: &'static str,
}

/// A checked parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// [`ParamType::Int`] and [`ParamType::Size`].
    Int(i64),
    /// [`ParamType::Millis`].
    Millis(f64),
    /// [`ParamType::Duration`].
    Duration(std::time::Duration),
    /// [`ParamType::Bool`].
    Bool(bool),
    /// [`ParamType::Text`], [`ParamType::Regex`] and [`ParamType::Choice`].
    Text(String),
    /// [`ParamType::Path`]: as written, and as resolved.
    Path(String, PathBuf),
    /// [`ParamType::Fields`].
    List(Vec<String>),
}

impl fmt::Display for ParamValue {
    /// Writes the value as TOML.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Millis(x) => write!(f, "{x}"),
            ParamValue::Duration(d) => write!(f, "\"{}\"", super::duration::format(*d)),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Text(s) | ParamValue::Path(s, _) => write!(f, "{s:?}"),
            ParamValue::List(items) => {
                let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
                write!(f, "[{}]", quoted.join(", "))
            }
        }
    }
}

/// The checked parameters of one source, stage or sink, in declaration order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    values: Vec<(&'static str, ParamValue, Loc)>,
}

impl Params {
    pub(crate) fn push(&mut self, name: &'static str, value: ParamValue, loc: Loc) {
        self.values.push((name, value, loc));
    }

    /// The path parameters, as written and as resolved (the resolved one to change).
    pub(crate) fn paths_mut(&mut self) -> impl Iterator<Item = (&str, &mut std::path::PathBuf)> {
        self.values.iter_mut().filter_map(|(_, v, _)| match v {
            ParamValue::Path(written, resolved) => Some((written.as_str(), resolved)),
            _ => None,
        })
    }

    /// The values, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ParamValue)> {
        self.values.iter().map(|(n, v, _)| (*n, v))
    }

    /// The value of `name`, if given or defaulted.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v)
    }

    /// Where `name` was written (for errors found after loading).
    pub fn loc(&self, name: &str) -> Loc {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or(Loc::Whole, |(_, _, l)| l.clone())
    }

    /// An integer (or size) parameter; 0 if absent (declared defaults make that impossible
    /// for the parameters kinds read this way).
    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Some(ParamValue::Int(i)) => *i,
            _ => 0,
        }
    }

    /// An integer parameter known to be non-negative.
    pub fn uint(&self, name: &str) -> u64 {
        u64::try_from(self.int(name)).unwrap_or(0)
    }

    /// A milliseconds parameter.
    pub fn millis(&self, name: &str) -> f64 {
        match self.get(name) {
            Some(ParamValue::Millis(x)) => *x,
            _ => 0.0,
        }
    }

    /// A duration parameter, if given.
    pub fn duration(&self, name: &str) -> Option<std::time::Duration> {
        match self.get(name) {
            Some(ParamValue::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    /// A boolean parameter.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Some(ParamValue::Bool(true)))
    }

    /// A string parameter (text, regex, choice).
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(ParamValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// A path parameter, resolved.
    pub fn path(&self, name: &str) -> Option<&Path> {
        match self.get(name) {
            Some(ParamValue::Path(_, p)) => Some(p),
            _ => None,
        }
    }

    /// A list parameter.
    pub fn list(&self, name: &str) -> &[String] {
        match self.get(name) {
            Some(ParamValue::List(items)) => items,
            _ => &[],
        }
    }
}

/// How relative paths resolve: against the pipeline file's directory, for values written
/// in it and `--set` values alike (one rule, whatever the current directory); `~` and
/// `~/…` against the home directory (`$HOME`).
#[derive(Clone, Debug)]
pub struct PathBase {
    /// The directory of the pipeline file.
    pub file_dir: PathBuf,
}

impl PathBase {
    fn resolve(&self, written: &str, loc: &Loc) -> Result<PathBuf, ConfigError> {
        let home = || {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    ConfigError::new(
                        loc.clone(),
                        format!("{written:?} starts with `~`, but HOME is not set"),
                    )
                    .help("write the path out, or set HOME")
                })
        };
        if written == "~" {
            return home();
        }
        if let Some(rest) = written.strip_prefix("~/") {
            return Ok(home()?.join(rest));
        }
        let p = Path::new(written);
        if written == "-" || p.is_absolute() {
            Ok(p.to_path_buf())
        } else {
            Ok(self.file_dir.join(p))
        }
    }
}

fn expected(spec: &ParamSpec, what: &str, node: &Node) -> ConfigError {
    let error = ConfigError::new(
        node.loc.clone(),
        format!("`{}` must be {what}, found {}", spec.name, node.describe()),
    );
    // `--set KEY=123` reads 123 as a number (and `true` as a boolean), as the file would:
    // a string that looks like one needs its quotes.
    let unquoted = matches!(
        node.kind,
        NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_)
    );
    match &node.loc {
        Loc::Override(text) if unquoted && what.contains("string") => match text.split_once('=') {
            Some((key, value)) => error.help(format!(
                "to give the string \"{value}\", quote it: --set '{key}=\"{value}\"'"
            )),
            None => error,
        },
        _ => error,
    }
}

/// `an integer from 1 to 1024`, or `a non-negative integer` when unbounded above.
fn int_range(min: i64, max: i64) -> String {
    match (min, max) {
        (0, i64::MAX) => "a non-negative integer".to_owned(),
        (min, i64::MAX) => format!("an integer of at least {min}"),
        (min, max) => format!("an integer from {min} to {max}"),
    }
}

/// Parses a size: an integer, or digits followed by a unit (B, KB, KiB, MB, MiB, GB, GiB).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.replace('_', "").parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Checks that `node` is a positive duration written with a unit (`"250ms"`, `"2s"`).
///
/// # Errors
///
/// A [`ConfigError`] at the node: not a string, not a duration, or zero.
pub fn check_duration(name: &str, node: &Node) -> Result<std::time::Duration, ConfigError> {
    let wrong = |why: String| {
        ConfigError::new(
            node.loc.clone(),
            format!("`{name}` must be a duration like \"250ms\" or \"2s\", {why}"),
        )
    };
    match &node.kind {
        NodeKind::Str(s) => match super::duration::parse(s) {
            Ok(d) if d.is_zero() => Err(wrong("not zero".into())),
            Ok(d) => Ok(d),
            Err(e) => Err(wrong(format!("found {s:?}: {e}"))),
        },
        NodeKind::Int(i) => Err(wrong(format!("found {}", node.describe()))
            .help(format!("write the unit: \"{i}ms\" or \"{i}s\""))),
        _ => Err(wrong(format!("found {}", node.describe()))),
    }
}

/// Checks `node` against `spec` and returns the value.
///
/// # Errors
///
/// A [`ConfigError`] at the node saying what was expected and what was found.
pub fn check(spec: &ParamSpec, node: &Node, base: &PathBase) -> Result<ParamValue, ConfigError> {
    match (spec.ty, &node.kind) {
        (ParamType::Int { min, max }, NodeKind::Int(i)) => {
            if (min..=max).contains(i) {
                Ok(ParamValue::Int(*i))
            } else {
                Err(ConfigError::new(
                    node.loc.clone(),
                    format!("`{}` must be {}, found {i}", spec.name, int_range(min, max)),
                ))
            }
        }
        (ParamType::Int { min, max }, _) => Err(expected(spec, &int_range(min, max), node)),
        (ParamType::Millis, NodeKind::Int(i)) if *i >= 0 => Ok(ParamValue::Millis(*i as f64)),
        (ParamType::Millis, NodeKind::Float(x)) if x.is_finite() && *x >= 0.0 => {
            Ok(ParamValue::Millis(*x))
        }
        (ParamType::Millis, _) => Err(expected(
            spec,
            "a non-negative number of milliseconds",
            node,
        )),
        (ParamType::Duration, _) => check_duration(spec.name, node).map(ParamValue::Duration),
        (ParamType::Bool, NodeKind::Bool(b)) => Ok(ParamValue::Bool(*b)),
        (ParamType::Bool, _) => Err(expected(spec, "true or false", node)),
        (ParamType::Text, NodeKind::Str(s)) => Ok(ParamValue::Text(s.clone())),
        (ParamType::Text, _) => Err(expected(spec, "a string", node)),
        (ParamType::Path, NodeKind::Str(s)) if !s.is_empty() => {
            Ok(ParamValue::Path(s.clone(), base.resolve(s, &node.loc)?))
        }
        (ParamType::Path, _) => Err(expected(spec, "a non-empty path string", node)),
        (ParamType::Regex, NodeKind::Str(s)) => match regex::Regex::new(s) {
            Ok(_) => Ok(ParamValue::Text(s.clone())),
            Err(e) => {
                let detail = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                Err(ConfigError::new(
                    node.loc.clone(),
                    format!("`{}` is not a valid regex: {detail}", spec.name),
                ))
            }
        },
        (ParamType::Regex, _) => Err(expected(spec, "a regex string", node)),
        (ParamType::Size { min, max }, kind) => {
            let size = match kind {
                NodeKind::Int(i) => u64::try_from(*i).ok(),
                NodeKind::Str(s) => parse_size(s),
                _ => None,
            };
            match size {
                Some(n) if (min..=max).contains(&n) => Ok(ParamValue::Int(n as i64)),
                Some(n) => Err(ConfigError::new(
                    node.loc.clone(),
                    format!(
                        "`{}` must be between {min} and {max} bytes, found {n}",
                        spec.name
                    ),
                )),
                None => Err(expected(
                    spec,
                    "a size in bytes (an integer, or a string like \"64KiB\")",
                    node,
                )),
            }
        }
        (ParamType::Choice(options), NodeKind::Str(s)) if options.contains(&s.as_str()) => {
            Ok(ParamValue::Text(s.clone()))
        }
        (ParamType::Choice(options), NodeKind::Str(s)) => Err(ConfigError::new(
            node.loc.clone(),
            format!(
                "`{}` must be one of {}, found {s:?}",
                spec.name,
                options.join(", ")
            ),
        )
        .maybe_help(super::error::did_you_mean(s, options.iter().copied()))),
        (ParamType::Choice(options), _) => Err(expected(
            spec,
            &format!("one of {}", options.join(", ")),
            node,
        )),
        (ParamType::Fields, NodeKind::Array(items)) => items
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Str(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(expected(spec, "a list of field-name strings", n)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ParamValue::List),
        (ParamType::Fields, _) => Err(expected(spec, "a list of field-name strings", node)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("16 MiB"), Some(16 << 20));
        assert_eq!(parse_size("2kb"), Some(2_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("99999999999999999999GiB"), None);
        assert_eq!(parse_size("KiB"), None);
    }
}
