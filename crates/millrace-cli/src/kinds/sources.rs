//! Source kinds: `range` (numbers), `lines` (a file or stdin, line by line; a growing file
//! followed with `follow = true`, see [`super::follow`]) and `files` (a directory walk).
//!
//! A source is an iterator read on the pipeline's source thread. Opening it (the file, the
//! directory) happens before the run starts, so a missing input fails the command at once.
//! What goes wrong later (a read error halfway through a file) ends the iteration and is
//! recorded in the [`SourceLog`], which makes the run fail. Of the inputs the walk meets,
//! those skipped on purpose (over `max_size`) are only counted there; those that could not
//! be read (a file that vanished or cannot be opened, a directory that cannot be listed,
//! with whatever it held) are recorded as unreadable, and they fail the run too.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::follow::Follow;
use super::types::Types;
use super::{Builder, Exec, KindSpec, Opened, Role, Validate};
use crate::config::error::ConfigError;
use crate::config::params::{Default, ParamSpec, ParamType, Params};
use crate::progress::{Progress, Unit};
use crate::value::{Record, Ty, Value};

/// How many unreadable inputs are kept in full.
const UNREADABLE_SAMPLE: usize = 10;

/// What a source met besides its items: the error that ended it early, the inputs it
/// skipped on purpose, and the inputs it could not read.
#[derive(Debug, Default)]
pub struct SourceLog {
    error: Mutex<Option<String>>,
    skipped: AtomicU64,
    first_skip: Mutex<Option<String>>,
    unreadable: AtomicU64,
    unreadable_sample: Mutex<Vec<String>>,
    progress: Progress,
}

impl SourceLog {
    /// How far the source has got, of how much where that is known.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Records the error that ends the source (the first one is kept).
    pub fn fail(&self, message: String) {
        if let Ok(mut e) = self.error.lock() {
            e.get_or_insert(message);
        }
    }

    /// Records a skipped input and why.
    pub fn skip(&self, why: String) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_skip.lock() {
            first.get_or_insert(why);
        }
    }

    /// Records an input that could not be read: `what` names it (a file, or a directory
    /// and that its contents were not read) and says why.
    pub fn unreadable(&self, what: String) {
        self.unreadable.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sample) = self.unreadable_sample.lock() {
            if sample.len() < UNREADABLE_SAMPLE {
                sample.push(what);
            }
        }
    }

    /// How many inputs could not be read, and the first of them in full.
    pub fn unreadable_inputs(&self) -> (u64, Vec<String>) {
        let sample = self
            .unreadable_sample
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        (self.unreadable.load(Ordering::Relaxed), sample)
    }

    /// The error that ended the source early, if any.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// How many inputs were skipped, and the first reason.
    pub fn skipped(&self) -> (u64, Option<String>) {
        let first = self.first_skip.lock().ok().and_then(|f| f.clone());
        (self.skipped.load(Ordering::Relaxed), first)
    }
}

const NON_NEGATIVE: ParamType = ParamType::Int {
    min: 0,
    max: i64::MAX,
};

/// The source kinds.
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        name: "range",
        role: Role::Source,
        summary: "the numbers start, start + step, … below end",
        takes: "nothing",
        gives: "number",
        types: |_| Types::source(Ty::Number),
        params: &[
            ParamSpec {
                name: "start",
                ty: NON_NEGATIVE,
                default: Default::Value("0"),
                doc: "the first number",
            },
            ParamSpec {
                name: "end",
                ty: NON_NEGATIVE,
                default: Default::Required,
                doc: "the end (exclusive)",
            },
            ParamSpec {
                name: "step",
                ty: ParamType::Int {
                    min: 1,
                    max: i64::MAX,
                },
                default: Default::Value("1"),
                doc: "the distance between numbers",
            },
        ],
        example: "[source]\nkind = \"range\"\nend = 10_000_000",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Source(open_range),
    },
    KindSpec {
        name: "lines",
        role: Role::Source,
        summary: "a text file (or stdin) line by line, with line numbers",
        takes: "nothing",
        gives: "record {line: number, text: text}",
        types: |_| Types::source(lines_type()),
        params: &[
            ParamSpec {
                name: "path",
                ty: ParamType::Path,
                default: Default::Value("\"-\""),
                doc: "the file to read; \"-\" reads stdin",
            },
            ParamSpec {
                name: "follow",
                ty: ParamType::Bool,
                default: Default::Value("false"),
                doc: "at the end of the file, wait for more lines (tail -f); Ctrl-C ends the run",
            },
        ],
        example: "[source]\nkind = \"lines\"\npath = \"data/app.log\"",
        validate: Some(Validate {
            reads: &["path", "follow"],
            check: follow_needs_a_file,
        }),
        exec: Exec::Threads,
        build: Builder::Source(open_lines),
    },
    KindSpec {
        name: "files",
        role: Role::Source,
        summary: "every regular file under a directory (sorted walk, links not followed)",
        takes: "nothing",
        gives: "record {path: text, size: number, data: bytes}",
        types: |_| Types::source(files_type()),
        params: &[
            ParamSpec {
                name: "dir",
                ty: ParamType::Path,
                default: Default::Required,
                doc: "the directory to walk",
            },
            ParamSpec {
                name: "max_size",
                ty: ParamType::Size {
                    min: 0,
                    max: 1 << 32,
                },
                default: Default::Value("\"16MiB\""),
                doc: "larger files are skipped (and counted)",
            },
            ParamSpec {
                name: "matching",
                ty: ParamType::Regex,
                default: Default::Optional,
                doc: "only paths matching this regex",
            },
        ],
        example: "[source]\nkind = \"files\"\ndir = \"../crates\"\nmax_size = \"1MiB\"\nmatching = '\\.rs$'",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Source(open_files),
    },
];

/// The records `lines` gives.
fn lines_type() -> Ty {
    Ty::Record(vec![("line".into(), Ty::Number), ("text".into(), Ty::Text)])
}

/// The records `files` gives.
fn files_type() -> Ty {
    Ty::Record(vec![
        ("path".into(), Ty::Text),
        ("size".into(), Ty::Number),
        ("data".into(), Ty::Bytes),
    ])
}

fn open_range(params: &Params, log: &Arc<SourceLog>) -> Result<Opened, String> {
    let (start, end) = (params.uint("start"), params.uint("end"));
    let step_u64 = params.uint("step").max(1);
    let numbers = if end > start {
        (end - start - 1) / step_u64 + 1
    } else {
        0
    };
    log.progress().start(Unit::Items, Some(numbers));
    let step = usize::try_from(step_u64).unwrap_or(usize::MAX);
    Ok(Opened::at_rest(Box::new(
        (start..end).step_by(step).map(Value::Number),
    )))
}

/// `follow = true` reads a file as it grows; stdin is a stream already.
fn follow_needs_a_file(params: &Params) -> Result<(), ConfigError> {
    let stdin = params.path("path").map_or(true, |p| p == Path::new("-"));
    if params.bool("follow") && stdin {
        return Err(ConfigError::new(
            params.loc("follow"),
            "`follow = true` needs a file `path`: stdin is read as it comes anyway",
        )
        .help("set path = \"FILE\", or drop follow"));
    }
    Ok(())
}

/// Opens `lines`' input. Stdin, a pipe or a device may keep the reader waiting for the next
/// line ([`Opened::waits`]); a regular file is data at rest.
fn open_lines(params: &Params, log: &Arc<SourceLog>) -> Result<Opened, String> {
    let path = params.path("path").unwrap_or(Path::new("-"));
    let (reader, waits): (Box<dyn BufRead + Send>, bool) = if path == Path::new("-") {
        (Box::new(BufReader::new(std::io::stdin())), true)
    } else {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let at_rest = file.metadata().is_ok_and(|m| m.is_file());
        if params.bool("follow") {
            (
                Box::new(BufReader::with_capacity(1 << 16, Follow::new(file))),
                true,
            )
        } else {
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            log.progress().start(Unit::Bytes, size);
            (Box::new(BufReader::with_capacity(1 << 16, file)), !at_rest)
        }
    };
    let values = Box::new(Lines {
        reader,
        line: 0,
        log: Arc::clone(log),
        name: path.display().to_string(),
        done: false,
    });
    Ok(Opened { values, waits })
}

/// Reads lines, numbering them from 1; invalid UTF-8 is replaced, not fatal.
struct Lines {
    reader: Box<dyn BufRead + Send>,
    line: u64,
    log: Arc<SourceLog>,
    name: String,
    done: bool,
}

impl Iterator for Lines {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if self.done {
            return None;
        }
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(n) => {
                self.log.progress().advance(n as u64);
                self.line += 1;
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                let text = String::from_utf8_lossy(&buf);
                Some(Value::Record(
                    Record::new()
                        .with("line", Value::Number(self.line))
                        .with("text", Value::text(&text)),
                ))
            }
            Err(e) => {
                self.done = true;
                self.log.fail(format!(
                    "reading {} after line {}: {e}",
                    self.name, self.line
                ));
                None
            }
        }
    }
}

fn open_files(params: &Params, log: &Arc<SourceLog>) -> Result<Opened, String> {
    let dir = params.path("dir").unwrap_or(Path::new("."));
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let matching = match params.text("matching") {
        Some(re) => Some(regex::Regex::new(re).map_err(|e| e.to_string())?),
        None => None,
    };
    log.progress().start(Unit::Files, None);
    count_files(dir.to_path_buf(), matching.clone(), Arc::clone(log));
    Ok(Opened::at_rest(Box::new(Walk {
        stack: vec![dir.to_path_buf()],
        files: Vec::new(),
        max_size: params.uint("max_size"),
        matching,
        log: Arc::clone(log),
    })))
}

/// Counts the regular files under `dir` that the walk will meet (those `matching`), on a
/// thread of its own, and gives the total to `log`'s progress once it is known. Without
/// the thread, there is no total, and no percentage.
fn count_files(dir: PathBuf, matching: Option<regex::Regex>, log: Arc<SourceLog>) {
    let counter = move || {
        let mut stack = vec![dir];
        let mut files = 0u64;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(entry.path()),
                    Ok(t) if t.is_file() => {
                        let shown = entry.path().display().to_string();
                        if matching.as_ref().map_or(true, |re| re.is_match(&shown)) {
                            files += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        log.progress().set_total(files);
    };
    let _ = std::thread::Builder::new()
        .name("millrace-count".into())
        .spawn(counter);
}

/// A depth-first, sorted directory walk that reads each regular file whole.
struct Walk {
    /// Directories still to list (the next one last).
    stack: Vec<PathBuf>,
    /// Files of the directory being walked, the next one last.
    files: Vec<PathBuf>,
    max_size: u64,
    matching: Option<regex::Regex>,
    log: Arc<SourceLog>,
}

impl Walk {
    /// Lists the next directory: its files to `files`, its subdirectories onto the stack.
    fn descend(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                return self.log.unreadable(format!(
                    "directory {}: cannot list it ({e}); nothing under it was read",
                    dir.display()
                ))
            }
        };
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.log.unreadable(format!(
                        "directory {}: listing it failed part way ({e}); the rest of it was not read",
                        dir.display()
                    ));
                    break;
                }
            };
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(t) if t.is_file() => files.push(entry.path()),
                Ok(_) => {}
                Err(e) => self.log.unreadable(format!(
                    "{}: cannot tell what it is ({e})",
                    entry.path().display()
                )),
            }
        }
        dirs.sort_unstable_by(|a, b| b.cmp(a));
        files.sort_unstable_by(|a, b| b.cmp(a));
        self.stack.extend(dirs);
        self.files = files;
    }

    fn read(&self, path: &Path) -> Option<Value> {
        let shown = path.display().to_string();
        if let Some(re) = &self.matching {
            if !re.is_match(&shown) {
                return None;
            }
        }
        self.log.progress().advance(1);
        let read = File::open(path).and_then(|f| {
            let size = f.metadata()?.len();
            if size > self.max_size {
                return Ok(Err(size));
            }
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            f.take(self.max_size.saturating_add(1))
                .read_to_end(&mut data)?;
            Ok(Ok(data))
        });
        match read {
            Ok(Ok(data)) if data.len() as u64 <= self.max_size => Some(Value::Record(
                Record::new()
                    .with("path", Value::text(&shown))
                    .with("size", Value::Number(data.len() as u64))
                    .with("data", Value::Bytes(Bytes::from(data))),
            )),
            Ok(Ok(_)) | Ok(Err(_)) => {
                self.log.skip(format!(
                    "{shown}: larger than max_size ({} bytes)",
                    self.max_size
                ));
                None
            }
            Err(e) => {
                self.log.unreadable(format!("{shown}: {e}"));
                None
            }
        }
    }
}

impl Iterator for Walk {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(file) = self.files.pop() {
                if let Some(value) = self.read(&file) {
                    return Some(value);
                }
                continue;
            }
            let dir = self.stack.pop()?;
            self.descend(&dir);
        }
    }
}
