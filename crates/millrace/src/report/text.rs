//! A report as text: the totals, a row per stage, latency, the bottleneck, the autoscaler's
//! decisions and wedges, and the first errors.
//!
//! ```text
//! completed in 1.234 s: 10,000 in, 10,000 delivered, 0 filtered, 0 failed, 0 cancelled (8.10 k items/s)
//! stage            workers       items in      items out   busy   idle  blocked      capacity  queue
//! source                 1         10,000         10,000    61%     0%      39%             -      -
//! square                 2         10,000         10,000    57%     1%       2%     4 batches    95%
//! scale                  2         10,000         10,000    40%     1%       2%             -  fused
//! sink                   1         10,000         10,000     5%    95%       0%     4 batches     2%
//! latency: p50 812 µs, p90 7.34 ms, p99 12.3 ms, max 8.59 s
//! bottleneck: square+scale: 97% busy, input queue full (95%), output queue empty (2%)
//! ```

use std::fmt;

use super::stage::{pct, StageReport};
use super::EndState;
use super::{Latency, Report};

/// Errors a report's text shows in full before it counts the rest.
const ERRORS_SHOWN: usize = 10;

/// A stage's queue column: its mean fill, `fused` for a stage with no queue of its own
/// (it runs on the previous stage's workers; the source, on the first stage's), `-` for the
/// source otherwise.
fn queue_cell(s: &StageReport) -> String {
    if s.fused {
        "fused".into()
    } else if s.queue_capacity > 0 {
        format!("{}%", pct(s.queue_fill))
    } else {
        "-".into()
    }
}

/// A stage's capacity column: in items where the batch size is known, else in batches.
fn capacity_cell(s: &StageReport) -> String {
    match s.queue_items() {
        Some(items) => format!("{} items", crate::fmt::count(items as u64)),
        None if s.queue_capacity > 0 => {
            format!("{} batches", crate::fmt::count(s.queue_capacity as u64))
        }
        None => "-".into(),
    }
}

impl fmt::Display for Latency {
    /// `p50 7.34 ms, p90 9.01 ms, p99 12.3 ms, max 8.59 s`: each to three significant digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, max {}",
            crate::fmt::duration(self.p50),
            crate::fmt::duration(self.p90),
            crate::fmt::duration(self.p99),
            crate::fmt::duration(self.max)
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match self.end {
            EndState::Running => "running",
            EndState::Completed => "completed",
            EndState::Stopped => "stopped",
            EndState::Cancelled => "cancelled",
            EndState::Failed => "failed",
        };
        let expanded = match self.expanded() {
            0 => String::new(),
            n => format!(" + {} from flat-maps", crate::fmt::count(n)),
        };
        writeln!(
            f,
            "{end} in {:.3} s: {} in{expanded}, {} delivered, {} filtered, {} failed, {} cancelled ({} items/s)",
            self.wall.as_secs_f64(),
            crate::fmt::count(self.items_in()),
            crate::fmt::count(self.delivered()),
            crate::fmt::count(self.filtered()),
            crate::fmt::count(self.failed()),
            crate::fmt::count(self.cancelled()),
            crate::fmt::rate(self.throughput()),
        )?;
        writeln!(
            f,
            "{:<16} {:>7} {:>14} {:>14} {:>6} {:>6} {:>8} {:>13} {:>6}",
            "stage",
            "workers",
            "items in",
            "items out",
            "busy",
            "idle",
            "blocked",
            "capacity",
            "queue"
        )?;
        for s in std::iter::once(&self.source)
            .chain(&self.stages)
            .chain(std::iter::once(&self.sink))
        {
            writeln!(
                f,
                "{:<16} {:>7} {:>14} {:>14} {:>5}% {:>5}% {:>7}% {:>13} {:>6}",
                s.name,
                s.workers,
                crate::fmt::count(s.tally.items_in),
                crate::fmt::count(s.tally.items_out),
                pct(s.busy),
                pct(s.idle),
                pct(s.blocked),
                capacity_cell(s),
                queue_cell(s)
            )?;
        }
        for s in &self.stages {
            if let Some(busy) = s.response_busy {
                writeln!(f, "{}", responses_line(&s.name, busy))?;
            }
        }
        if self.latency.samples > 0 {
            writeln!(f, "latency: {}", self.latency)?;
        }
        if let Some(b) = &self.bottleneck {
            writeln!(f, "bottleneck: {}", b.reason)?;
        }
        for (at, d) in &self.scaling.decisions {
            writeln!(f, "at {:.1} s: {}", at.as_secs_f64(), d.reason)?;
        }
        for (at, w) in &self.scaling.wedges {
            writeln!(f, "at {:.1} s: wedged: {w}", at.as_secs_f64())?;
        }
        let shown = self.errors.len().min(ERRORS_SHOWN);
        for e in &self.errors[..shown] {
            writeln!(f, "error: {e}")?;
        }
        if self.errors_total > shown as u64 {
            writeln!(
                f,
                "… and {} more",
                crate::fmt::count(self.errors_total - shown as u64)
            )?;
        }
        if !self.unfinished.is_empty() {
            writeln!(f, "unfinished: {} items", self.unfinished.len())?;
        }
        Ok(())
    }
}

/// `responses to `wrap`: its hook and replies busy 53% of the time, on a thread of their
/// own`: a stage's relay thread, which the table's rows (the workers') do not show.
fn responses_line(stage: &str, busy: f64) -> String {
    format!(
        "responses to `{stage}`: its hook and replies busy {}% of the time, on a thread of \
         their own",
        pct(busy)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::error::{ItemError, ItemErrorKind};
    use crate::item::ItemId;
    use crate::ledger::ScalingLog;
    use crate::metrics::Tally;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(crate::fmt::count(0), "0");
        assert_eq!(crate::fmt::count(999), "999");
        assert_eq!(crate::fmt::count(1_000), "1,000");
        assert_eq!(crate::fmt::count(10_000_000), "10,000,000");
    }

    fn stage(name: &str, workers: usize, queue_capacity: usize, batch: usize) -> StageReport {
        StageReport {
            name: name.into(),
            workers,
            queue_capacity,
            batch,
            batch_limit: batch,
            batch_adaptive: false,
            fused: false,
            tally: Tally {
                items_in: 1_000,
                items_out: 1_000,
                ..Tally::default()
            },
            busy: 0.5,
            idle: 0.25,
            blocked: 0.25,
            queue_fill: 0.5,
            concurrency: 0,
            concurrency_used: 0.0,
            response_busy: None,
        }
    }

    /// A finished run of `source → a → b → sink` with the given stages and errors.
    fn report(stages: Vec<StageReport>, errors: Vec<ItemError>, errors_total: u64) -> Report {
        Report {
            end: EndState::Completed,
            wall: Duration::from_secs(1),
            source: stage("source", 1, 0, 0),
            stages,
            sink: stage("sink", 1, 8, 0),
            latency: Latency::default(),
            errors,
            errors_total,
            errors_by_kind: Vec::new(),
            unfinished: Vec::new(),
            hook_panics: Vec::new(),
            bottleneck: None,
            scaling: ScalingLog::default(),
            timeline: crate::Timeline::default(),
        }
    }

    fn row<'a>(text: &'a str, stage: &str) -> Vec<&'a str> {
        text.lines()
            .find(|l| l.starts_with(&format!("{stage} ")))
            .unwrap_or_else(|| panic!("no row for `{stage}`:\n{text}"))
            .split_whitespace()
            .collect()
    }

    #[test]
    fn the_text_shows_ten_errors_and_counts_the_rest() {
        let errors: Vec<ItemError> = (0..100)
            .map(|i| {
                ItemError::new(
                    ItemId::new(i),
                    Arc::from("parse"),
                    1,
                    ItemErrorKind::Panicked("bad".into()),
                )
            })
            .collect();
        let text = report(vec![stage("a", 1, 4, 16)], errors, 10_220).to_string();
        let shown: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(shown.len(), 10, "{text}");
        assert_eq!(
            shown[0],
            "error: stage `parse` failed on item #0: panicked: bad"
        );
        assert!(text.contains("\n… and 10,210 more\n"), "{text}");
    }

    #[test]
    fn the_text_counts_no_more_errors_when_it_shows_them_all() {
        let errors = vec![ItemError::new(
            ItemId::new(7),
            Arc::from("a"),
            2,
            ItemErrorKind::Panicked("no".into()),
        )];
        let text = report(vec![stage("a", 1, 4, 16)], errors, 1).to_string();
        assert!(text.contains("error: stage `a` failed on item #7 after 2 attempts"));
        assert!(!text.contains("more"), "{text}");
    }

    #[test]
    fn latencies_are_shown_to_three_significant_digits() {
        let mut r = report(vec![stage("a", 1, 4, 16)], Vec::new(), 0);
        r.latency = Latency {
            p50: Duration::from_micros(812),
            p90: Duration::from_nanos(7_341_234),
            p99: Duration::from_nanos(123_456_789),
            max: Duration::from_nanos(8_589_934_592),
            samples: 1_000,
            ..Latency::default()
        };
        let text = r.to_string();
        assert!(
            text.contains("\nlatency: p50 812 µs, p90 7.34 ms, p99 123 ms, max 8.59 s\n"),
            "{text}"
        );
    }

    #[test]
    fn durations_round_to_three_significant_digits_in_every_unit() {
        let d = Duration::from_nanos;
        assert_eq!(crate::fmt::duration(d(0)), "0.00 ns");
        assert_eq!(crate::fmt::duration(d(640)), "640 ns");
        assert_eq!(crate::fmt::duration(d(1_500)), "1.50 µs");
        assert_eq!(crate::fmt::duration(d(45_678_000)), "45.7 ms");
        assert_eq!(crate::fmt::duration(d(8_589_934_592)), "8.59 s");
        assert_eq!(crate::fmt::duration(Duration::from_secs(3_600)), "3600 s");
    }

    #[test]
    fn a_fused_stage_is_marked_in_the_queue_column_and_has_no_capacity() {
        let fused = StageReport {
            fused: true,
            queue_capacity: 0,
            batch: 0,
            batch_limit: 0,
            ..stage("b", 2, 0, 0)
        };
        let text = report(vec![stage("a", 2, 4, 16), fused], Vec::new(), 0).to_string();
        let b = row(&text, "b");
        assert_eq!(b[b.len() - 2..], ["-", "fused"], "{text}");
        assert_eq!(row(&text, "source").last(), Some(&"-"), "{text}");
    }

    #[test]
    fn queue_capacity_is_shown_in_items_when_the_batch_size_is_known() {
        let text = report(
            vec![stage("a", 1, 4, 16), stage("b", 1, 1_000, 64)],
            Vec::new(),
            0,
        )
        .to_string();
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(" blocked      capacity  queue"));
        assert_eq!(row(&text, "a")[7..], ["64", "items", "50%"], "{text}");
        assert_eq!(row(&text, "b")[7..], ["64,000", "items", "50%"], "{text}");
    }

    #[test]
    fn queue_capacity_is_shown_in_batches_when_the_batch_size_is_not_known() {
        let text = report(vec![stage("a", 1, 4, 0)], Vec::new(), 0).to_string();
        assert_eq!(row(&text, "a")[7..], ["4", "batches", "50%"], "{text}");
        assert_eq!(row(&text, "sink")[7..], ["8", "batches", "50%"], "{text}");
    }

    #[test]
    fn capacity_in_items_is_whole_batches_of_the_batch_size() {
        assert_eq!(stage("a", 1, 4, 16).queue_items(), Some(64));
        assert_eq!(stage("a", 1, 4, 0).queue_items(), None);
        assert_eq!(stage("source", 1, 0, 0).queue_items(), None);
    }
}
