//! Dead-letter files: where items that failed for good go, one JSON line each.
//!
//! A stage (or the sink) with `dead_letter = "failed.jsonl"` writes every item it fails,
//! after any retries, as
//!
//! ```json
//! {"stage":"parse","item":7,"error":"line 8: cannot parse \"x\" as a number: …","value":{"line":8,"text":"x"}}
//! ```
//!
//! `value` is `null` when the stage no longer had the item (an infallible stage that
//! panicked consumed it). Stages naming the same file share one writer. Files are created
//! (truncated) when the pipeline is built; lines are buffered and written every 64 KiB and
//! when the run ends. An item counts as written once the file took its line: the report
//! gives each file's items written and the items that could not be (a full disk), and any
//! of those fails the run.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use millrace::ItemId;

use crate::value::Value;

/// How many buffered bytes make a dead-letter file write them out.
const FLUSH_AT: usize = 1 << 16;

/// What a dead-letter file holds: the lines not yet written, and its counts.
#[derive(Debug)]
struct State {
    file: File,
    /// Lines not yet handed to the file.
    buf: Vec<u8>,
    /// How many items `buf` holds.
    buffered: u64,
    /// Items whose line the file took.
    written: u64,
    /// Items whose line could not be written.
    lost: u64,
    /// The first write error.
    error: Option<String>,
}

impl State {
    /// Hands the buffer to the file: its items are written if that succeeds, lost if not.
    fn flush(&mut self) {
        let result = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.flush());
        self.buf.clear();
        match result {
            Ok(()) => self.written += self.buffered,
            Err(e) => {
                self.lost += self.buffered;
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
        self.buffered = 0;
    }
}

/// One dead-letter file.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    state: Mutex<State>,
}

/// What a dead-letter file got, once flushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterCount {
    /// The file.
    pub path: PathBuf,
    /// Items written to it.
    pub written: u64,
    /// Items meant for it that could not be written.
    pub lost: u64,
}

impl DeadLetterFile {
    /// Writes one failed item (buffered: it counts as written once the file took it).
    pub fn write(&self, stage: &str, id: ItemId, error: &str, value: Option<&Value>) {
        let line = serde_json::json!({
            "stage": stage,
            "item": id.0,
            "error": error,
            "value": value.map_or(serde_json::Value::Null, Value::to_json),
        });
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let _ = writeln!(state.buf, "{line}");
        state.buffered += 1;
        if state.buf.len() >= FLUSH_AT {
            state.flush();
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what is buffered; what the file got, and its first write error.
    pub fn flush(&self) -> (DeadLetterCount, Option<String>) {
        let mut count = DeadLetterCount {
            path: self.path.clone(),
            written: 0,
            lost: 0,
        };
        match self.state.lock() {
            Ok(mut state) => {
                state.flush();
                count.written = state.written;
                count.lost = state.lost;
                (count, state.error.clone())
            }
            Err(_) => (count, Some("a writer panicked".to_owned())),
        }
    }
}

/// The dead-letter files of one pipeline, by path.
#[derive(Debug, Default)]
pub struct DeadLetters {
    files: HashMap<PathBuf, Arc<DeadLetterFile>>,
}

impl DeadLetters {
    /// The file at `path`, created on first use.
    ///
    /// # Errors
    ///
    /// Why the file cannot be created.
    pub fn open(&mut self, path: &Path) -> Result<Arc<DeadLetterFile>, String> {
        if let Some(f) = self.files.get(path) {
            return Ok(Arc::clone(f));
        }
        let file = File::create(path)
            .map_err(|e| format!("cannot create the dead-letter file {}: {e}", path.display()))?;
        let f = Arc::new(DeadLetterFile {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file,
                buf: Vec::new(),
                buffered: 0,
                written: 0,
                lost: 0,
                error: None,
            }),
        });
        self.files.insert(path.to_path_buf(), Arc::clone(&f));
        Ok(f)
    }

    /// Writes out every file; returns what each got, sorted by path, and the first error.
    pub fn finish(&self) -> (Vec<DeadLetterCount>, Option<String>) {
        let mut counts = Vec::new();
        let mut first_error = None;
        for f in self.files.values() {
            let (count, error) = f.flush();
            if let Some(e) = error {
                first_error.get_or_insert_with(|| {
                    format!(
                        "{}: {} of {} items not written: {e}",
                        f.path().display(),
                        count.lost,
                        count.lost + count.written
                    )
                });
            }
            counts.push(count);
        }
        counts.sort_by(|a, b| a.path.cmp(&b.path));
        (counts, first_error)
    }
}
