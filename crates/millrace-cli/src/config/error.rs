//! Config errors: where (file, line, column), what is wrong, and what was probably meant.
//!
//! Every error the loader reports is a [`ConfigError`] at a [`Loc`]: a place in the file,
//! a `--set` override, or the file as a whole. The loader reads the whole file before it
//! gives up, so one `ConfigError` may carry several: [`ConfigError::all`] lists them in
//! file order, and printed they come one after the other. A [`Severity::Warning`] is a
//! diagnostic of the same shape that does not stop anything (the pre-flight checks of
//! `millrace check` without `--strict`). Its message says what is wrong in the
//! user's words (the key, the expected type, the value found); for a misspelt key or kind,
//! [`did_you_mean`] adds the closest known name. Printed, an error shows the offending line
//! with a caret under the key or value:
//!
//! ```text
//! error: examples/bad.toml:7:1: unknown key `wokers` in [[stage]] `square`
//!   |
//! 7 | wokers = 4
//!   | ^^^^^^
//!   |
//!   = help: did you mean `workers`?
//! ```

use std::fmt;
use std::sync::Arc;

/// Where a config value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    /// A place in the pipeline file: 1-based line and column (in characters), and the width
    /// of what is there (for the caret).
    File {
        /// Line, from 1.
        line: usize,
        /// Column, from 1, in characters.
        col: usize,
        /// Characters to underline (at least 1).
        width: usize,
    },
    /// A `--set` override on the command line (its text).
    Override(Arc<str>),
    /// The file as a whole (something missing from it).
    Whole,
}

/// Maps byte offsets of a text to lines and columns.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    text: Arc<str>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: Arc<str>) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts, text }
    }

    /// The location of the byte range `span` (clamped to the text).
    pub fn loc(&self, span: std::ops::Range<usize>) -> Loc {
        let start = span.start.min(self.text.len());
        let end = span.end.clamp(start, self.text.len());
        let line = self.starts.partition_point(|&s| s <= start).max(1);
        let line_start = self.starts.get(line - 1).copied().unwrap_or(0);
        let prefix = self.text.get(line_start..start).unwrap_or("");
        let within = self.text.get(start..end).unwrap_or("");
        let within = within.split('\n').next().unwrap_or("");
        Loc::File {
            line,
            col: prefix.chars().count() + 1,
            width: within.chars().count().max(1),
        }
    }

    /// The text of line `line` (1-based), without its line break.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        let start = *self.starts.get(line.checked_sub(1)?)?;
        let end = self
            .starts
            .get(line)
            .map_or(self.text.len(), |&next| next.saturating_sub(1));
        self.text
            .get(start..end.max(start))
            .map(|l| l.trim_end_matches('\r'))
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Nothing runs.
    Error,
    /// Worth knowing; the command goes on.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as printed and in the JSON diagnostics.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A pipeline file that cannot run as written (or, as a [`Severity::Warning`], something
/// about it worth knowing).
///
/// Opaque and one pointer wide, so `Result<_, ConfigError>` stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    severity: Severity,
    file: Option<String>,
    loc: Loc,
    message: String,
    help: Option<String>,
    excerpt: Option<String>,
    /// The part of the pipeline it is about: a stage's name, `source`, `sink`.
    part: Option<String>,
    /// Further errors found in the same file, after this one.
    more: Vec<ConfigError>,
}

impl ConfigError {
    /// An error at `loc`.
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        ConfigError(Box::new(Inner {
            severity: Severity::Error,
            file: None,
            loc,
            message: message.into(),
            help: None,
            excerpt: None,
            part: None,
            more: Vec::new(),
        }))
    }

    /// A warning at `loc`: shaped like an error, but nothing is refused.
    pub fn warning(loc: Loc, message: impl Into<String>) -> Self {
        let mut w = ConfigError::new(loc, message);
        w.0.severity = Severity::Warning;
        w
    }

    /// All of `errors` as one: in file order (`--set` overrides first, the file as a whole
    /// last), each said once. `None` if there are none.
    pub fn many(errors: Vec<ConfigError>) -> Option<ConfigError> {
        let mut flat: Vec<ConfigError> = Vec::new();
        for e in errors.into_iter().flat_map(ConfigError::into_all) {
            if !flat.contains(&e) {
                flat.push(e);
            }
        }
        flat.sort_by_key(ConfigError::file_order);
        let mut iter = flat.into_iter();
        let mut first = iter.next()?;
        first.0.more = iter.collect();
        Some(first)
    }

    /// Where it comes in the order errors are listed: `--set` overrides first, then places
    /// in the file by line and column, then the file as a whole.
    pub fn file_order(&self) -> (u8, usize, usize) {
        match &self.0.loc {
            Loc::Override(_) => (0, 0, 0),
            Loc::File { line, col, .. } => (1, *line, *col),
            Loc::Whole => (2, 0, 0),
        }
    }

    /// This error and every further one it carries, each on its own.
    pub fn all(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(self).chain(self.0.more.iter())
    }

    fn into_all(mut self) -> Vec<ConfigError> {
        let more = std::mem::take(&mut self.0.more);
        std::iter::once(self)
            .chain(more.into_iter().flat_map(ConfigError::into_all))
            .collect()
    }

    /// How serious it is (of this one, not the further ones).
    pub fn severity(&self) -> Severity {
        self.0.severity
    }

    /// Says which part of the pipeline it is about (a stage's name, `source`, `sink`),
    /// unless that is said already.
    pub fn in_part(mut self, part: &str) -> Self {
        self.0.part.get_or_insert_with(|| part.to_owned());
        self
    }

    /// The part of the pipeline it is about, if known: a stage's name, `source`, `sink`.
    pub fn part(&self) -> Option<&str> {
        self.0.part.as_deref()
    }

    /// The file it is in, once known.
    pub fn file(&self) -> Option<&str> {
        self.0.file.as_deref()
    }

    /// Adds a hint (shown as `help: …`).
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// Adds a hint if there is one.
    pub fn maybe_help(self, help: Option<String>) -> Self {
        match help {
            Some(h) => self.help(h),
            None => self,
        }
    }

    /// Names the file the error is in and quotes the offending line from `index`.
    pub fn in_file(mut self, file: &str, index: Option<&LineIndex>) -> Self {
        let inner = &mut *self.0;
        inner.file = Some(file.to_owned());
        if let (Loc::File { line, .. }, Some(index)) = (&inner.loc, index) {
            inner.excerpt = index.line_text(*line).map(str::to_owned);
        }
        inner.more = std::mem::take(&mut inner.more)
            .into_iter()
            .map(|e| e.in_file(file, index))
            .collect();
        self
    }

    /// Says which part of the pipeline the error is in (`stage `cut` (kind `chunk`)`), and
    /// places it at `fallback` (the part's table) if it had no place of its own.
    pub fn within(mut self, what: &str, fallback: Loc) -> Self {
        let inner = &mut *self.0;
        inner.message = format!("{what}: {}", inner.message);
        if inner.loc == Loc::Whole {
            inner.loc = fallback;
        }
        self
    }

    /// Where the error is.
    pub fn loc(&self) -> &Loc {
        &self.0.loc
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The hint, if any.
    pub fn hint(&self) -> Option<&str> {
        self.0.help.as_deref()
    }
}

impl fmt::Display for ConfigError {
    /// The error as rustc and cargo show theirs (rendered by `annotate-snippets`): `error:`,
    /// the location and the message on the first line, then the offending line with a caret
    /// under the key or value, then the hint. Further errors follow, each after a blank
    /// line, and then how many there were.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render_one(f)?;
        for e in &self.0.more {
            f.write_str("\n\n")?;
            e.render_one(f)?;
        }
        let errors = self
            .all()
            .filter(|e| e.severity() == Severity::Error)
            .count();
        if errors > 1 {
            let file = self.0.file.as_deref().unwrap_or("the pipeline");
            write!(f, "\n\nerror: {file}: {errors} errors")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn render_one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use annotate_snippets::{Level, Renderer, Snippet};

        let this = &*self.0;
        let level = match this.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        };
        let file = this.file.as_deref().unwrap_or("<pipeline>");
        let title = match &this.loc {
            Loc::File { line, col, .. } => format!("{file}:{line}:{col}: {}", this.message),
            Loc::Override(text) => format!("--set {text}: {}", this.message),
            Loc::Whole => format!("{file}: {}", this.message),
        };
        let mut message = level.title(&title);
        if let (Loc::File { line, col, width }, Some(text)) = (&this.loc, &this.excerpt) {
            message = message.snippet(
                Snippet::source(text)
                    .line_start(*line)
                    .annotation(level.span(char_span(text, *col, *width))),
            );
        }
        if let Some(help) = &this.help {
            message = message.footer(Level::Help.title(help));
        }
        let rendered = Renderer::plain().render(message).to_string();
        f.write_str(&rendered)
    }
}

/// The errors found so far while reading a file. Reading goes on after an error, with
/// what could be read, so that every error of a file is reported at once rather than one
/// per round of fixing.
#[derive(Debug, Default)]
pub struct Findings {
    errors: Vec<ConfigError>,
    part: Option<String>,
}

impl Findings {
    /// Records `error`, naming the part being read if it does not name one.
    pub fn push(&mut self, error: ConfigError) {
        let error = match &self.part {
            Some(part) => error.in_part(part),
            None => error,
        };
        self.errors.push(error);
    }

    /// The value of `result`, or `None` with its error recorded.
    pub fn keep<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    /// How many errors were found so far.
    pub fn count(&self) -> usize {
        self.errors.len()
    }

    /// Names the part of the pipeline now read (a stage's name, `source`, `sink`), for
    /// the errors found in it; `None` for the pipeline as a whole.
    pub fn reading(&mut self, part: Option<&str>) {
        self.part = part.map(str::to_owned);
    }

    /// `value` if no error was found; else all of them as one [`ConfigError`].
    ///
    /// # Errors
    ///
    /// Every error found, in file order.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ConfigError> {
        match (ConfigError::many(self.errors), value) {
            (Some(errors), _) => Err(errors),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(ConfigError::new(
                Loc::Whole,
                "the pipeline could not be read (no error was recorded: please report this)",
            )),
        }
    }
}

/// The byte range of `width` characters from column `col` (1-based, in characters) of
/// `text`, clamped to it.
fn char_span(text: &str, col: usize, width: usize) -> std::ops::Range<usize> {
    let byte_at = |chars: usize| {
        text.char_indices()
            .nth(chars)
            .map_or(text.len(), |(i, _)| i)
    };
    let start = byte_at(col.saturating_sub(1));
    let end = byte_at(col.saturating_sub(1) + width.max(1));
    start..end.max(start)
}

impl std::error::Error for ConfigError {}

/// The known name closest to `input`, phrased as a hint, if one is close enough to be what
/// was meant.
pub fn did_you_mean<'a>(input: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let input_lower = input.to_lowercase();
    // Close enough: a few edits away (transpositions count as one), or a shared prefix
    // and most letters (Jaro-Winkler), which catches longer misspellings.
    let max_edits = (input.chars().count() / 3).max(1);
    known
        .into_iter()
        .filter_map(|k| {
            let k_lower = k.to_lowercase();
            let edits = strsim::osa_distance(&input_lower, &k_lower);
            let similarity = strsim::jaro_winkler(&input_lower, &k_lower);
            (edits <= max_edits || similarity >= 0.85).then_some((edits, -similarity, k))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, k)| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let idx = LineIndex::new(Arc::from("a = 1\nwokers = 4\n"));
        assert_eq!(
            idx.loc(6..12),
            Loc::File {
                line: 2,
                col: 1,
                width: 6
            }
        );
        assert_eq!(idx.line_text(2), Some("wokers = 4"));
        assert_eq!(idx.line_text(9), None);
        // Out-of-range spans are clamped, never a panic.
        let _ = idx.loc(100..200);
    }

    #[test]
    fn near_misses_get_a_suggestion() {
        let known = ["workers", "capacity", "batch"];
        assert_eq!(
            did_you_mean("wokers", known).as_deref(),
            Some("did you mean `workers`?")
        );
        assert_eq!(did_you_mean("zzz", known), None);
        assert_eq!(
            did_you_mean("edn", ["start", "end", "step"]).as_deref(),
            Some("did you mean `end`?")
        );
    }

    #[test]
    fn many_errors_come_in_file_order_once_each_then_their_count() {
        let at = |line| Loc::File {
            line,
            col: 1,
            width: 1,
        };
        let errors = vec![
            ConfigError::new(at(3), "third"),
            ConfigError::new(Loc::Whole, "whole"),
            ConfigError::new(at(1), "first"),
            ConfigError::new(at(3), "third"),
            ConfigError::new(Loc::Override("a=1".into()), "override"),
        ];
        let all = ConfigError::many(errors)
            .expect("errors")
            .in_file("p.toml", None);
        let messages: Vec<&str> = all.all().map(ConfigError::message).collect();
        assert_eq!(messages, ["override", "first", "third", "whole"]);
        assert!(
            all.to_string().ends_with("error: p.toml: 4 errors"),
            "{all}"
        );
        assert!(all.all().all(|e| e.file() == Some("p.toml")));
        assert_eq!(ConfigError::many(Vec::new()), None);
    }

    #[test]
    fn a_warning_is_rendered_as_one_and_not_counted_as_an_error() {
        let w = ConfigError::warning(Loc::Whole, "input missing").in_file("p.toml", None);
        assert_eq!(w.severity(), Severity::Warning);
        assert!(
            w.to_string().starts_with("warning: p.toml: input missing"),
            "{w}"
        );
    }

    #[test]
    fn errors_quote_the_line_with_a_caret() {
        let idx = LineIndex::new(Arc::from("[[stage]]\nwokers = 4\n"));
        let err = ConfigError::new(idx.loc(10..16), "unknown key `wokers`")
            .help("did you mean `workers`?")
            .in_file("p.toml", Some(&idx));
        assert_eq!(
            err.to_string(),
            "error: p.toml:2:1: unknown key `wokers`\n  |\n2 | wokers = 4\n  | ^^^^^^\n  |\n  = help: did you mean `workers`?"
        );
    }
}
