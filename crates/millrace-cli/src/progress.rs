//! How far a run has got: the source's progress where its size is known, and the line a
//! long run prints now and then when no live view is drawn.
//!
//! A source that knows its size says so in its [`Progress`]: `range` knows how many
//! numbers it gives (the engine counts the items it read), `lines` from a regular file its
//! size in bytes (it counts the bytes it read), `files` how many files its walk will meet
//! (counted on a thread of its own while the walk goes; until then, no percentage). A
//! stream (stdin, a followed file) has no size: its progress is only what was read.
//!
//! The source reads ahead of the work, so the percentage done counts the items that
//! finished, out of all the input holds ([`Progress::done`]); the time left is the time so
//! far scaled by what is left. The live view's header shows both; off a terminal, the
//! supervisor prints [`status_line`] every `--progress-every` (default [`DEFAULT_EVERY`])
//! so a long CI job is not silent:
//!
//! ```text
//! millrace: 20.0 s: read 4,100,000 items (40% of 10,000,000 items done, about 30s left), delivered 4,000,000, 205 k items/s
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

    /// `(read, total)` in the source's unit, given the items read so far; `None` when the
    /// total is not known.
    pub fn fraction(&self, items_in: u64) -> Option<(u64, u64)> {
        let total = self.total.load(Ordering::Relaxed);
        if total == UNKNOWN {
            return None;
        }
        let read = match self.unit() {
            Unit::Items => items_in,
            Unit::Bytes | Unit::Files => self.done.load(Ordering::Relaxed),
        };
        Some((read.min(total), total))
    }

    /// How much of the work is done, as a fraction, given the run's counts; `None` when
    /// the size is not known (or nothing was read yet to estimate it from).
    ///
    /// The source reads ahead of the work (its items wait in the queues), so what it has
    /// read is not what is done. Done is the items that finished (delivered, filtered,
    /// failed or cancelled; a flat-map's pieces in proportion), out of all the items the
    /// input holds: the total for `range`, else the items read so far scaled by how much of
    /// the input they came from.
    pub fn done(&self, counts: Counts) -> Option<f64> {
        let (read, total) = self.fraction(counts.read)?;
        let items_total = match self.unit() {
            Unit::Items => total as f64,
            _ if total == 0 => 0.0,
            _ if read == 0 => return None,
            _ => counts.read as f64 * total as f64 / read as f64,
        };
        if items_total <= 0.0 {
            return Some(1.0);
        }
        let made = (counts.read + counts.expanded).max(1) as f64;
        let finished_inputs = counts.finished as f64 * counts.read as f64 / made;
        Some((finished_inputs / items_total).clamp(0.0, 1.0))
    }

    /// `41% of 10,000,000 items done, about 29s left` (for `range`), or `41% done, 80% of
    /// 14.2 MiB read, about 29s left` (bytes, files) after `elapsed`; `None` when the size
    /// is not known.
    pub fn describe(&self, counts: Counts, elapsed: Duration) -> Option<String> {
        let (read, total) = self.fraction(counts.read)?;
        let done = self.done(counts).unwrap_or(0.0);
        let percent = |f: f64| (f * 100.0).floor();
        let what = match self.unit() {
            Unit::Items => format!("{:.0}% of {} items done", percent(done), count(total)),
            unit => {
                let size = match unit {
                    Unit::Files => format!("{} files", count(total)),
                    _ => bytes(total),
                };
                let read = if total == 0 {
                    1.0
                } else {
                    read as f64 / total as f64
                };
                format!(
                    "{:.0}% done, {:.0}% of {size} read",
                    percent(done),
                    percent(read)
                )
            }
        };
        let left = eta(done, elapsed).map_or_else(String::new, |d| match round(d) {
            under if d.as_secs() == 0 => format!(", {under} left"),
            d => format!(", about {d} left"),
        });
        Some(format!("{what}{left}"))
    }
}

/// The counts progress is worked out from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items the source read.
    pub read: u64,
    /// Items flat-maps made beyond those they took.
    pub expanded: u64,
    /// Items that finished: delivered, filtered, failed or cancelled.
    pub finished: u64,
}

impl Counts {
    /// The counts of a snapshot.
    pub fn of(snap: &Report) -> Counts {
        Counts {
            read: snap.items_in(),
            expanded: snap.expanded(),
            finished: snap.delivered() + snap.filtered() + snap.failed() + snap.cancelled(),
        }
    }

    /// The counts of a run in parts, as a scaled-out origin sees it: `front` is the part
    /// before the broker (its source reads the input), `back` the part after it (its sink
    /// delivers). An item is finished once the back part is done with it, or once the front
    /// part filtered, failed or cancelled it; the remote stages' filtered and failed items
    /// never reach either, so the percentage done may stay a little short of them.
    pub fn of_parts(front: Option<&Report>, back: &Report) -> Counts {
        let back_counts = Counts::of(back);
        let Some(front) = front else {
            return back_counts;
        };
        Counts {
            read: front.items_in(),
            expanded: front.expanded() + back_counts.expanded,
            finished: back_counts.finished + front.filtered() + front.failed() + front.cancelled(),
        }
    }
}

/// The time left when the fraction `done` took `elapsed`, if anything is done yet.
pub fn eta(done: f64, elapsed: Duration) -> Option<Duration> {
    if done <= 0.0 || elapsed.is_zero() {
        return None;
    }
    Duration::try_from_secs_f64(elapsed.as_secs_f64() * (1.0 - done) / done).ok()
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

/// The progress line for the snapshot `snap` and the run's `counts` (those of the snapshot,
/// or of a run in parts: [`Counts::of_parts`]): time, items read (with the percentage and
/// the time left, where the size is known), delivered, and the rate of reading so far.
pub fn status_line(snap: &Report, counts: Counts, progress: Option<&Progress>) -> String {
    let wall = snap.wall();
    let read = counts.read;
    let known = progress.and_then(|p| p.describe(counts, wall));
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

    fn counts(read: u64, finished: u64) -> Counts {
        Counts {
            read,
            expanded: 0,
            finished,
        }
    }

    #[test]
    fn done_counts_finished_items_not_those_read_ahead() {
        let p = Progress::default();
        assert_eq!(
            p.describe(counts(10, 0), Duration::from_secs(1)),
            None,
            "no total yet"
        );
        p.start(Unit::Items, Some(1000));
        // All read, a quarter finished: the rest waits in the queues.
        assert_eq!(
            p.describe(counts(1000, 250), Duration::from_secs(10))
                .as_deref(),
            Some("25% of 1,000 items done, about 30s left")
        );
    }

    #[test]
    fn bytes_progress_scales_the_items_read_to_the_whole_input() {
        let p = Progress::default();
        p.start(Unit::Bytes, Some(1000));
        p.advance(500);
        // 100 items from half the input: about 200 in all, 50 of them finished.
        assert_eq!(p.done(counts(100, 50)), Some(0.25));
        assert_eq!(
            p.describe(counts(100, 50), Duration::from_secs(1))
                .as_deref(),
            Some("25% done, 50% of 1000 bytes read, about 3s left")
        );
        p.advance(5000);
        assert_eq!(p.fraction(3), Some((1000, 1000)), "never past the total");
        assert_eq!(bytes(14_888_896), "14.2 MiB");
    }

    #[test]
    fn a_flat_map_s_pieces_count_in_proportion() {
        let p = Progress::default();
        p.start(Unit::Items, Some(10));
        let c = Counts {
            read: 10,
            expanded: 30,
            finished: 20,
        };
        assert_eq!(p.done(c), Some(0.5));
    }

    #[test]
    fn a_run_in_parts_reads_at_the_front_and_finishes_at_both_ends() {
        use millrace::{Pipeline, Stage};
        // The front part reads 10 and filters 5 out; 3 of the other 5 came back so far.
        let front = Pipeline::source(0..10u64)
            .stage(Stage::filter("odd", |x: &u64| x % 2 == 1))
            .collect()
            .run()
            .expect("the front part runs")
            .report;
        let back = Pipeline::source(0..3u64)
            .collect()
            .run()
            .expect("the back part runs")
            .report;
        let counts = Counts::of_parts(Some(&front), &back);
        assert_eq!(
            counts,
            Counts {
                read: 10,
                expanded: 0,
                finished: 8
            }
        );
        assert_eq!(Counts::of_parts(None, &back), Counts::of(&back));
        let p = Progress::default();
        p.start(Unit::Items, Some(10));
        let line = status_line(&back, counts, Some(&p));
        assert!(
            line.contains("read 10 items (80% of 10 items done"),
            "the line counts the front part's reads: {line}"
        );
    }

    #[test]
    fn no_rate_no_estimate() {
        assert_eq!(eta(0.0, Duration::from_secs(1)), None);
        assert_eq!(eta(0.5, Duration::ZERO), None);
        assert_eq!(
            eta(0.5, Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
    }
}
