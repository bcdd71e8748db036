//! How far a run has got: the source's progress where its size is known, and the line a
//! long run prints now and then when no live view is drawn.
//!
//! A source that knows its size says so in its [`Progress`]: `range` knows how many
//! numbers it gives (the engine counts the items it read), `lines` from a regular file its
//! size in bytes (it counts the bytes it read), `files` how many files its walk will meet
//! (counted on a thread of its own while the walk goes; until then, no percentage). A
//! stream (stdin, a followed file) has no size: its progress is only what was read.
//!
//! The live view's header shows the percentage and an estimate of the time left (from the
//! rate so far); off a terminal, the supervisor prints [`status_line`] every
//! `--progress-every` (default [`DEFAULT_EVERY`]) so a long CI job is not silent:
//!
//! ```text
//! millrace: 20.0 s: read 4.10 M of 10.0 M items (41%, about 29s left), delivered 4.09 M, 205 k items/s
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use millrace::fmt::{count, rate};
use millrace::Report;

/// How often a progress line is printed off a terminal when `--progress-every` is not given.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(10);

/// What a source's size is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Items: the engine's count of items read is the progress.
    Items,
    /// Bytes of the input read.
    Bytes,
    /// Files met by a walk (read, skipped, or unreadable).
    Files,
}

const UNKNOWN: u64 = u64::MAX;

/// A source's progress: how much of how much it has read.
#[derive(Debug)]
pub struct Progress {
    unit: OnceLock<Unit>,
    done: AtomicU64,
    total: AtomicU64,
}

impl Default for Progress {
    /// Items, of an unknown total.
    fn default() -> Self {
        Progress {
            unit: OnceLock::new(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
        }
    }
}

impl Progress {
    /// Says what the source counts in, and its total if known now. The first call counts.
    pub fn start(&self, unit: Unit, total: Option<u64>) {
        let _ = self.unit.set(unit);
        if let Some(total) = total {
            self.set_total(total);
        }
    }

    /// The total, found out later (a walk counted).
    pub fn set_total(&self, total: u64) {
        self.total.store(total.min(UNKNOWN - 1), Ordering::Relaxed);
    }

    /// Counts `n` more read (bytes or files; items are counted by the engine).
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    fn unit(&self) -> Unit {
        self.unit.get().copied().unwrap_or(Unit::Items)
    }

    /// `(done, total)` in the source's unit, given the items read so far; `None` when the
    /// total is not known.
    pub fn fraction(&self, items_in: u64) -> Option<(u64, u64)> {
        let total = self.total.load(Ordering::Relaxed);
        if total == UNKNOWN {
            return None;
        }
        let done = match self.unit() {
            Unit::Items => items_in,
            Unit::Bytes | Unit::Files => self.done.load(Ordering::Relaxed),
        };
        Some((done.min(total), total))
    }

    /// `41% of 10.0 M items, about 29s left` after `elapsed`, given the items read; `None`
    /// when the total is not known.
    pub fn describe(&self, items_in: u64, elapsed: Duration) -> Option<String> {
        let (done, total) = self.fraction(items_in)?;
        let percent = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        let of = match self.unit() {
            Unit::Items => format!("{} items", count(total)),
            Unit::Bytes => bytes(total),
            Unit::Files => format!("{} files", count(total)),
        };
        let left = eta(done, total, elapsed).map_or_else(String::new, |d| match round(d) {
            under if d.as_secs() == 0 => format!(", {under} left"),
            d => format!(", about {d} left"),
        });
        Some(format!("{percent:.0}% of {of}{left}"))
    }
}

/// The time left at the rate so far, if there is a rate.
pub fn eta(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    if done == 0 || elapsed.is_zero() {
        return None;
    }
    let left = total.saturating_sub(done) as f64 * elapsed.as_secs_f64() / done as f64;
    Duration::try_from_secs_f64(left).ok()
}

/// A duration to the second, as humans write it (`1m 12s`; `under 1s`).
fn round(d: Duration) -> String {
    if d.as_secs() == 0 {
        return "under 1s".to_owned();
    }
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A size in bytes with a binary unit, three significant digits (`14.2 MiB`).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} bytes"),
        _ if value >= 100.0 => format!("{value:.0} {}", UNITS[unit]),
        _ if value >= 10.0 => format!("{value:.1} {}", UNITS[unit]),
        _ => format!("{value:.2} {}", UNITS[unit]),
    }
}

/// The progress line for the snapshot `snap`: time, items read (with the percentage and
/// the time left, where the size is known), delivered, and the rate of reading so far.
pub fn status_line(snap: &Report, progress: Option<&Progress>) -> String {
    let wall = snap.wall();
    let read = snap.items_in();
    let known = progress.and_then(|p| p.describe(read, wall));
    let per_sec = if wall.is_zero() {
        0.0
    } else {
        read as f64 / wall.as_secs_f64()
    };
    let known = known.map_or_else(String::new, |k| format!(" ({k})"));
    format!(
        "millrace: {:.1} s: read {} items{known}, delivered {}, {} items/s",
        wall.as_secs_f64(),
        count(read),
        count(snap.delivered()),
        rate(per_sec)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_progress_follows_the_items_read() {
        let p = Progress::default();
        assert_eq!(p.describe(10, Duration::from_secs(1)), None, "no total yet");
        p.start(Unit::Items, Some(1000));
        assert_eq!(p.fraction(250), Some((250, 1000)));
        assert_eq!(
            p.describe(250, Duration::from_secs(10)).as_deref(),
            Some("25% of 1,000 items, about 30s left")
        );
    }

    #[test]
    fn bytes_progress_counts_what_the_source_read_and_never_passes_the_total() {
        let p = Progress::default();
        p.start(Unit::Bytes, Some(100));
        p.advance(60);
        assert_eq!(p.fraction(3), Some((60, 100)));
        p.advance(100);
        assert_eq!(p.fraction(3), Some((100, 100)));
        assert_eq!(
            p.describe(3, Duration::from_secs(1)).as_deref(),
            Some("100% of 100 bytes, under 1s left")
        );
        assert_eq!(bytes(14_888_896), "14.2 MiB");
    }

    #[test]
    fn no_rate_no_estimate() {
        assert_eq!(eta(0, 10, Duration::from_secs(1)), None);
        assert_eq!(eta(5, 10, Duration::ZERO), None);
        assert_eq!(
            eta(5, 10, Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
    }
}
