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
//! (truncated) when the pipeline is built and flushed when the run ends.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use millrace::ItemId;

use crate::value::Value;

/// One dead-letter file.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
    written: AtomicU64,
    error: Mutex<Option<String>>,
}

impl DeadLetterFile {
    /// Writes one failed item.
    pub fn write(&self, stage: &str, id: ItemId, error: &str, value: Option<&Value>) {
        let line = serde_json::json!({
            "stage": stage,
            "item": id.0,
            "error": error,
            "value": value.map_or(serde_json::Value::Null, Value::to_json),
        });
        let result = match self.out.lock() {
            Ok(mut out) => writeln!(out, "{line}").map_err(|e| e.to_string()),
            Err(_) => Err("a writer panicked".to_owned()),
        };
        match result {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if let Ok(mut first) = self.error.lock() {
                    first.get_or_insert(e);
                }
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Items written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Flushes the file; the first write or flush error, if any.
    pub fn flush(&self) -> Result<(), String> {
        if let Ok(Some(e)) = self.error.lock().map(|e| e.clone()) {
            return Err(e);
        }
        match self.out.lock() {
            Ok(mut out) => out.flush().map_err(|e| e.to_string()),
            Err(_) => Err("a writer panicked".to_owned()),
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
            out: Mutex::new(BufWriter::new(file)),
            written: AtomicU64::new(0),
            error: Mutex::new(None),
        });
        self.files.insert(path.to_path_buf(), Arc::clone(&f));
        Ok(f)
    }

    /// Flushes every file; returns `(path, items written)` per file, sorted, and the first
    /// error.
    pub fn finish(&self) -> (Vec<(PathBuf, u64)>, Option<String>) {
        let mut written: Vec<(PathBuf, u64)> = self
            .files
            .values()
            .map(|f| (f.path().to_path_buf(), f.written()))
            .collect();
        written.sort();
        let error = self.files.values().find_map(|f| {
            f.flush()
                .err()
                .map(|e| format!("{}: {e}", f.path().display()))
        });
        (written, error)
    }
}
