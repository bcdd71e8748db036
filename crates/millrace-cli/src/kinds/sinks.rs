//! Sink kinds: `sum`, `count`, `stdout`, `file`, `null`.
//!
//! A [`Sink`] takes the pipeline's outputs one at a time on the engine's sink thread and,
//! at the end, gives a [`SinkResult`]: the lines it prints on stdout (`sum: …`) and the same
//! as JSON for the report. An item it cannot handle is a [`SinkFault::Item`], which fails
//! that item under the sink's error policy; an output that cannot be written is
//! [`SinkFault::Fatal`] and ends the run; a closed stdout (`| head`) ends it quietly.
//!
//! # Delivery
//!
//! The writing sinks (`stdout`, `file`) render items into a buffer of their own and hand
//! it to the output in [`Sink::flush`] (when it holds [`FLUSH_AT`] bytes, after every item
//! on a terminal, and at the end), and from a timer thread at most `flush_interval` (100 ms)
//! after an item came in, so that a slow stream's items show as they arrive.
//! An item is delivered only once the flush that covers it succeeded: the
//! [`SinkRunner`](crate::sink_runner::SinkRunner) holds the items a flush will cover and
//! fails them if it does not succeed (a full disk), or counts them unwritten if stdout
//! was closed, all but the items whose whole line was written before the failure (a reader
//! that left after some lines, `| head`, got those). Delivered means handed to the
//! operating system (a `write` that succeeded), not synced to the disk.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::types::{Input, Output, Types, ANY, BYTES_OR_TEXT, NUMBER};
use super::{field_param, Builder, Exec, KindSpec, Role};
use crate::config::params::{Default, ParamSpec, ParamType, Params};
use crate::value::{Fault, Item, Slot, Value};

/// What went wrong with one output.
#[derive(Debug)]
pub enum SinkFault {
    /// The item cannot be taken (its type, a missing field): fail it.
    Item(Fault),
    /// The output cannot be written: end the run with this error.
    Fatal(String),
    /// The reader went away (a closed pipe): end the run quietly.
    Closed,
}

impl From<Fault> for SinkFault {
    fn from(f: Fault) -> Self {
        SinkFault::Item(f)
    }
}

impl From<io::Error> for SinkFault {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            SinkFault::Closed
        } else {
            SinkFault::Fatal(e.to_string())
        }
    }
}

/// What a sink gives at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkResult {
    /// Lines to print on stdout after the run (`sum: 42`).
    pub lines: Vec<String>,
    /// The same, for the JSON report (`{"sum": 42}`), or `null`.
    pub json: serde_json::Value,
}

/// A sink: takes outputs on the sink thread, then finishes.
pub trait Sink: Send {
    /// Takes one output.
    ///
    /// # Errors
    ///
    /// A [`SinkFault`] for an item it cannot take or an output it cannot write.
    fn accept(&mut self, item: &Item) -> Result<(), SinkFault>;

    /// Whether the items it accepts are only handed over by [`Sink::flush`] (a buffering
    /// writer): they are delivered once a flush succeeds, not when accepted.
    fn buffers(&self) -> bool {
        false
    }

    /// For a buffering sink: how many of the items it accepted (counting from its first)
    /// were handed to the output so far, by [`Sink::flush`] or by a timer of its own.
    fn handed_over(&self) -> u64 {
        0
    }

    /// Whether enough is buffered that it should be flushed now.
    fn wants_flush(&self) -> bool {
        false
    }

    /// Hands what is buffered to the output; the items accepted since the last flush are
    /// delivered if this succeeds, and not if it fails.
    ///
    /// # Errors
    ///
    /// [`SinkFault::Fatal`] if the output could not be written, [`SinkFault::Closed`] if
    /// its reader went away.
    fn flush(&mut self) -> Result<(), SinkFault> {
        Ok(())
    }

    /// Gives the result (the runner has flushed it first).
    ///
    /// # Errors
    ///
    /// Why the result cannot be given.
    fn finish(self: Box<Self>) -> Result<SinkResult, String>;
}

const FORMAT_TEXT: ParamSpec = ParamSpec {
    name: "format",
    ty: ParamType::Choice(&["text", "json"]),
    default: Default::Value("\"text\""),
    doc: "text: numbers, text as is, bytes in hex, records as JSON; json: every value as JSON",
};

const PRINT_FIELD: ParamSpec = ParamSpec {
    name: "field",
    ty: ParamType::Text,
    default: Default::Optional,
    doc: "print only this field of records",
};

/// The sink kinds.
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        name: "sum",
        role: Role::Sink,
        summary: "the wrapping sum of the numbers; prints `sum: N`",
        takes: "number",
        gives: "stdout: sum: N",
        types: |p| Types::sink(NUMBER, Some(p.text("field").unwrap_or("value"))),
        params: &[field_param("\"value\"")],
        example: "[sink]\nkind = \"sum\"",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Sink(open_sum),
    },
    KindSpec {
        name: "count",
        role: Role::Sink,
        summary: "counts the items, and totals record fields; prints `count: N`",
        takes: "anything (records, for `fields`)",
        gives: "stdout: count: N, then `field: total` per field",
        types: count_types,
        params: &[ParamSpec {
            name: "fields",
            ty: ParamType::Fields,
            default: Default::Value("[]"),
            doc: "record fields to total: numbers summed, text and bytes by length",
        }],
        example: "[sink]\nkind = \"count\"\nfields = [\"length\", \"data\"]",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Sink(open_count),
    },
    KindSpec {
        name: "stdout",
        role: Role::Sink,
        summary: "prints a line per item on stdout",
        takes: "anything",
        gives: "stdout: one line per item",
        types: |p| Types::sink(ANY, p.text("field")),
        params: &[PRINT_FIELD, FORMAT_TEXT, FLUSH_INTERVAL],
        example: "[sink]\nkind = \"stdout\"\nfield = \"text\"",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Sink(open_stdout),
    },
    KindSpec {
        name: "file",
        role: Role::Sink,
        summary: "writes items to a file: a line each, or their raw bytes",
        takes: "anything (lines); bytes or text (bytes)",
        gives: "the file",
        types: file_types,
        params: &[
            ParamSpec {
                name: "path",
                ty: ParamType::Path,
                default: Default::Required,
                doc: "the file to write (created or truncated); \"-\" writes stdout",
            },
            ParamSpec {
                name: "format",
                ty: ParamType::Choice(&["lines", "json", "bytes"]),
                default: Default::Value("\"lines\""),
                doc: "lines: as stdout prints them; json: JSON lines; bytes: raw bytes",
            },
            PRINT_FIELD,
            FLUSH_INTERVAL,
        ],
        example: "[sink]\nkind = \"file\"\npath = \"out.txt\"",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Sink(open_file),
    },
    KindSpec {
        name: "null",
        role: Role::Sink,
        summary: "drops every item (for measuring the stages alone)",
        takes: "anything",
        gives: "nothing",
        types: |_| Types::sink(ANY, None),
        params: &[],
        example: "[sink]\nkind = \"null\"",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Sink(open_null),
    },
];

fn count_types(params: &Params) -> Types {
    match params.list("fields") {
        [] => Types::sink(ANY, None),
        fields => Types {
            input: Input::Fields(fields.to_vec()),
            output: Output::Nothing,
        },
    }
}

fn file_types(params: &Params) -> Types {
    let accepts = if params.text("format") == Some("bytes") {
        BYTES_OR_TEXT
    } else {
        ANY
    };
    Types::sink(accepts, params.text("field"))
}

struct Sum {
    slot: Slot,
    sum: u64,
}

impl Sink for Sum {
    fn accept(&mut self, item: &Item) -> Result<(), SinkFault> {
        self.sum = self.sum.wrapping_add(self.slot.number(&item.value)?);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<SinkResult, String> {
        Ok(SinkResult {
            lines: vec![format!("sum: {}", self.sum)],
            // JSON readers that hold numbers as doubles (JavaScript, many jq builds) round
            // integers above 2^53: the same sum as a string is exact everywhere.
            json: serde_json::json!({ "sum": self.sum, "sum_text": self.sum.to_string() }),
        })
    }
}

fn open_sum(params: &Params) -> Result<Box<dyn Sink>, String> {
    let field = params.text("field").unwrap_or("value");
    Ok(Box::new(Sum {
        slot: Slot::new(field, field),
        sum: 0,
    }))
}

struct Count {
    count: u64,
    fields: Vec<(Slot, u64)>,
}

impl Sink for Count {
    fn accept(&mut self, item: &Item) -> Result<(), SinkFault> {
        let mut adds = Vec::with_capacity(self.fields.len());
        for (slot, _) in &self.fields {
            if !matches!(item.value, Value::Record(_)) {
                return Err(SinkFault::Item(Fault::Type {
                    expected: "a record (to total its fields)",
                    actual: item.value.type_of(),
                    field: None,
                }));
            }
            adds.push(match slot.read(&item.value)? {
                Value::Number(n) => *n,
                other => other.byte_len(),
            });
        }
        for ((_, total), add) in self.fields.iter_mut().zip(adds) {
            *total = total.wrapping_add(add);
        }
        self.count += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<SinkResult, String> {
        let mut lines = vec![format!("count: {}", self.count)];
        let mut totals = serde_json::Map::new();
        for (slot, total) in &self.fields {
            lines.push(format!("{}: {total}", slot.field()));
            totals.insert(slot.field().to_owned(), (*total).into());
        }
        Ok(SinkResult {
            lines,
            json: serde_json::json!({ "count": self.count, "fields": totals }),
        })
    }
}

fn open_count(params: &Params) -> Result<Box<dyn Sink>, String> {
    Ok(Box::new(Count {
        count: 0,
        fields: params
            .list("fields")
            .iter()
            .map(|f| (Slot::new(f, f), 0))
            .collect(),
    }))
}

/// How a line-writing sink renders an item.
struct Render {
    field: Option<Slot>,
    json: bool,
}

impl Render {
    fn new(params: &Params, json_format: &str) -> Self {
        Render {
            field: params.text("field").map(|f| Slot::new(f, f)),
            json: params.text("format") == Some(json_format),
        }
    }

    fn write(&self, out: &mut impl Write, item: &Item) -> Result<(), SinkFault> {
        let value = match &self.field {
            Some(slot) => slot.read(&item.value)?,
            None => &item.value,
        };
        if self.json {
            writeln!(out, "{}", value.to_json())?;
        } else {
            writeln!(out, "{value}")?;
        }
        Ok(())
    }
}

/// How many buffered bytes make a writing sink flush.
pub const FLUSH_AT: usize = 1 << 16;

/// The `flush_interval` parameter of the writing sinks.
const FLUSH_INTERVAL: ParamSpec = ParamSpec {
    name: "flush_interval",
    ty: ParamType::Duration,
    default: Default::Value("\"100ms\""),
    doc: "output waits in the buffer at most this long (a slow stream's lines show as they come)",
};

/// Why a writing sink's output cannot be written any more: every later write would fail
/// the same way.
#[derive(Clone, Debug)]
enum Stuck {
    Closed,
    Fatal(String),
}

impl From<io::Error> for Stuck {
    fn from(e: io::Error) -> Self {
        match SinkFault::from(e) {
            SinkFault::Closed => Stuck::Closed,
            SinkFault::Fatal(e) => Stuck::Fatal(e),
            SinkFault::Item(f) => Stuck::Fatal(f.to_string()),
        }
    }
}

impl From<Stuck> for SinkFault {
    fn from(s: Stuck) -> Self {
        match s {
            Stuck::Closed => SinkFault::Closed,
            Stuck::Fatal(e) => SinkFault::Fatal(e),
        }
    }
}

/// A writing sink's output and what is buffered for it, shared by the sink thread and the
/// timer that flushes it.
struct Written<W> {
    out: W,
    buf: Vec<u8>,
    /// Items rendered into the buffer since the start.
    accepted: u64,
    /// Of those, the items a successful write covered.
    handed: u64,
    /// Where each item in the buffer ends in it, in order.
    ends: Vec<usize>,
    stuck: Option<Stuck>,
}

impl<W: Write> Written<W> {
    /// Writes the buffer out. Whatever happens, the buffer is spent: the items in it are
    /// handed over, or (the first failure sticks) failed, but for those whose every byte
    /// was written before the failure: a reader that closed the pipe (`| head`) still got
    /// those.
    fn flush(&mut self) -> Result<(), Stuck> {
        if let Some(stuck) = &self.stuck {
            return Err(stuck.clone());
        }
        let (done, written) = write_counting(&mut self.out, &self.buf);
        let written = written.and_then(|()| self.out.flush());
        let in_buffer = self.ends.len() as u64;
        let result = match written {
            Ok(()) => {
                self.handed = self.accepted;
                Ok(())
            }
            Err(e) => {
                // Stdout keeps the bytes after the last line break it took in its own
                // buffer, which the failed flush lost: only whole lines count.
                let reached = self.buf[..done]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |at| at + 1);
                let whole = self.ends.partition_point(|&end| end <= reached) as u64;
                self.handed = self.accepted - in_buffer + whole;
                Err(self.stuck.insert(Stuck::from(e)).clone())
            }
        };
        self.buf.clear();
        self.ends.clear();
        result
    }
}

/// `write_all`, and how many bytes were written before it failed.
fn write_counting<W: Write>(out: &mut W, buf: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while done < buf.len() {
        match out.write(&buf[done..]) {
            Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}

/// Locks `output`, whatever a panic elsewhere left there (a buffer of bytes is still one).
fn lock<W>(output: &Mutex<Written<W>>) -> MutexGuard<'_, Written<W>> {
    output.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A writing sink: items are rendered into a buffer that [`Sink::flush`] writes out when
/// it holds [`FLUSH_AT`] bytes (after every item when it writes to a terminal), and a timer
/// thread at the latest `flush_interval` after it took the first item since, so a slow
/// stream's items show as they come.
struct Lines<W: Write + Send + 'static> {
    output: Arc<Mutex<Written<W>>>,
    render: Render,
    raw_bytes: bool,
    /// Flush after every item (a terminal).
    per_item: bool,
}

impl<W: Write + Send + 'static> Lines<W> {
    fn new(out: W, render: Render, raw_bytes: bool, per_item: bool, interval: Duration) -> Self {
        let output = Arc::new(Mutex::new(Written {
            out,
            buf: Vec::with_capacity(FLUSH_AT),
            accepted: 0,
            handed: 0,
            ends: Vec::new(),
            stuck: None,
        }));
        let timer = Arc::downgrade(&output);
        let interval = interval.max(Duration::from_millis(1));
        // The timer ends with the sink; if it cannot start, the buffer is still flushed
        // when full and at the end.
        let _ = std::thread::Builder::new()
            .name("millrace-flush".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(output) = timer.upgrade() else {
                    return;
                };
                let mut output = lock(&output);
                if !output.buf.is_empty() && output.stuck.is_none() {
                    // A failure sticks: the sink thread meets it at its next item or flush.
                    let _ = output.flush();
                }
            });
        Lines {
            output,
            render,
            raw_bytes,
            per_item,
        }
    }
}

impl<W: Write + Send + 'static> Sink for Lines<W> {
    fn accept(&mut self, item: &Item) -> Result<(), SinkFault> {
        let mut output = lock(&self.output);
        if let Some(stuck) = &output.stuck {
            return Err(stuck.clone().into());
        }
        if !self.raw_bytes {
            self.render.write(&mut output.buf, item)?;
        } else {
            let value = match &self.render.field {
                Some(slot) => slot.read(&item.value)?,
                None => &item.value,
            };
            match value {
                Value::Bytes(b) => output.buf.extend_from_slice(b),
                Value::Text(t) => output.buf.extend_from_slice(t.as_bytes()),
                other => {
                    return Err(SinkFault::Item(Fault::Type {
                        expected: "bytes or text",
                        actual: other.type_of(),
                        field: None,
                    }))
                }
            }
        }
        output.accepted += 1;
        let end = output.buf.len();
        output.ends.push(end);
        Ok(())
    }

    fn buffers(&self) -> bool {
        true
    }

    fn wants_flush(&self) -> bool {
        self.per_item || lock(&self.output).buf.len() >= FLUSH_AT
    }

    fn handed_over(&self) -> u64 {
        lock(&self.output).handed
    }

    fn flush(&mut self) -> Result<(), SinkFault> {
        Ok(lock(&self.output).flush()?)
    }

    fn finish(self: Box<Self>) -> Result<SinkResult, String> {
        Ok(SinkResult::default())
    }
}

/// The `flush_interval` a writing sink was given.
fn flush_interval(params: &Params) -> Duration {
    params
        .duration("flush_interval")
        .unwrap_or(Duration::from_millis(100))
}

/// A writing sink on stdout: flushed after every item on a terminal.
fn stdout_sink(params: &Params, render: Render, raw_bytes: bool) -> Box<dyn Sink> {
    let terminal = io::stdout().is_terminal();
    let interval = flush_interval(params);
    Box::new(Lines::new(
        io::stdout(),
        render,
        raw_bytes,
        terminal,
        interval,
    ))
}

fn open_stdout(params: &Params) -> Result<Box<dyn Sink>, String> {
    Ok(stdout_sink(params, Render::new(params, "json"), false))
}

fn open_file(params: &Params) -> Result<Box<dyn Sink>, String> {
    let path = params.path("path").unwrap_or(Path::new("-"));
    let render = Render::new(params, "json");
    let raw_bytes = params.text("format") == Some("bytes");
    // "-" is stdout, as it is stdin for `lines`.
    if path == Path::new("-") {
        return Ok(stdout_sink(params, render, raw_bytes));
    }
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let interval = flush_interval(params);
    Ok(Box::new(Lines::new(
        file, render, raw_bytes, false, interval,
    )))
}

struct Null;

impl Sink for Null {
    fn accept(&mut self, _item: &Item) -> Result<(), SinkFault> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<SinkResult, String> {
        Ok(SinkResult::default())
    }
}

fn open_null(_params: &Params) -> Result<Box<dyn Sink>, String> {
    Ok(Box::new(Null))
}
