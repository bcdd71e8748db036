//! The final report as text: a headline with how the run ended, the totals, a table per
//! stage, the bottleneck and its reason, latency, the autoscaler's decisions and any
//! wedge, errors, and what the source skipped.
//!
//! The rules are the engine's own report's ([`millrace::Report`]'s `Display`): a stage that
//! ran fused with the one before (on its workers, with no queue between them) shows `fused`
//! in the queue column and `-` for capacity; capacity is in items where the engine recorded
//! the batch size, else in batches; latencies are rounded to three significant digits
//! (`8.59 s`); the first [`ERRORS_SHOWN`] errors are listed and the rest counted
//! (`… and 10,210 more`).
//!
//! ```text
//! pipeline `seed` (examples/seed.toml): completed in 1.234 s, 8.10 M items/s
//! (items/s counts the items the source read; when fewer were delivered, as behind a
//! filter, `(20.1 k delivered/s)` follows)
//!   in 10,000,000 = delivered 10,000,000 + filtered 0 + failed 0 + cancelled 0
//! stage            kind      workers      items in     items out  filtered  failed  busy  idle  blocked      capacity  queue
//! source           range           1    10,000,000    10,000,000         0       0   61%    0%      39%             -      -
//! square           square          2    10,000,000    10,000,000         0       0   97%    1%       2%    16 batches    95%
//! …
//! bottleneck: square: 97% busy, input queue full (95%), output queue empty (2%)
//! latency (source to sink): p50 812 µs, p90 7.34 ms, p99 12.3 ms, max 8.59 s
//! autoscaling: 1 decision (controller: 0.4 ms of CPU)
//!   at 0.2 s: +1 worker to c: 57% of the chain's cost, 100% busy, input queue full (95%)
//! ```

use std::fmt::Write as _;

use millrace::fmt::{count, duration, rate};
use millrace::StageReport;

use crate::summary::{Outcome, Summary};

fn pct(x: f64) -> String {
    format!("{:.0}%", (x * 100.0).clamp(0.0, 100.0))
}

fn headline(s: &Summary) -> String {
    let r = &s.report;
    let t = s.totals();
    let from = s
        .file
        .as_deref()
        .map_or_else(String::new, |f| format!(" ({f})"));
    let wall = r.wall().as_secs_f64();
    // Throughput counts the items the source read; a filtering run delivers fewer.
    let per_sec = |n: u64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    let mut line = format!("pipeline `{}`{from}: ", s.pipeline);
    match s.outcome {
        Outcome::Completed => {
            let _ = write!(
                line,
                "completed in {wall:.3} s, {} items/s",
                rate(per_sec(t.items_in))
            );
            if t.delivered != t.items_in {
                let _ = write!(line, " ({} delivered/s)", rate(per_sec(t.delivered)));
            }
        }
        Outcome::Failed => {
            let _ = write!(line, "FAILED after {wall:.3} s");
        }
        Outcome::Closed => {
            let _ = write!(
                line,
                "stopped after {wall:.3} s: stdout was closed; {} items delivered",
                count(t.delivered)
            );
        }
        Outcome::Interrupted => {
            let _ = write!(
                line,
                "interrupted ({}) after {wall:.3} s: {} items done; the source was stopped and items in flight drained",
                if s.terminated { "SIGTERM" } else { "Ctrl-C" },
                count(t.done())
            );
        }
        Outcome::Aborted => {
            let _ = write!(
                line,
                "aborted ({}) after {wall:.3} s: {} items done, {} dropped unfinished",
                if s.terminated {
                    "a second signal after SIGTERM"
                } else {
                    "Ctrl-C twice"
                },
                count(t.done()),
                count(t.cancelled)
            );
            if t.in_progress > 0 {
                let _ = write!(
                    line,
                    ", {} still in progress (a stage had not let go of its batch)",
                    count(t.in_progress)
                );
            }
        }
    }
    line
}

/// Errors listed in full before the rest are counted (the JSON report has the first 100).
pub const ERRORS_SHOWN: usize = 10;

/// A stage's input capacity: in items where the batch size is known, else in batches; `-`
/// for the source and a fused stage, which have no queue of their own.
fn capacity(s: &StageReport) -> String {
    match s.queue_items() {
        Some(items) => format!("{} items", count(items as u64)),
        None if s.queue_capacity > 0 => format!("{} batches", count(s.queue_capacity as u64)),
        None => "-".into(),
    }
}

fn stage_row(out: &mut String, s: &StageReport, kind: Option<&str>, failed: u64, items_out: u64) {
    // As in the live view, the three shares never add up to more than all of the time.
    let (busy, idle, blocked) =
        crate::live::shares(s.busy * 100.0, s.idle * 100.0, s.blocked * 100.0);
    let (busy, idle, blocked) = (busy / 100.0, idle / 100.0, blocked / 100.0);
    // A fused stage has no queue: it runs on the previous stage's workers.
    let queue = if s.fused {
        "fused".into()
    } else if s.queue_capacity > 0 {
        pct(s.queue_fill)
    } else {
        "-".into()
    };
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:>7} {:>13} {:>13} {:>9} {:>7} {:>5} {:>5} {:>8} {:>13} {:>6}",
        s.name,
        kind.unwrap_or("-"),
        s.workers,
        count(s.tally.items_in),
        count(items_out),
        count(s.tally.filtered),
        count(failed),
        pct(busy),
        pct(idle),
        pct(blocked),
        capacity(s),
        queue
    );
}

/// Decisions listed in full before the rest is summed up (the JSON report has them all).
const DECISIONS_LISTED: usize = 20;

/// The autoscaler's decisions and the wedges the detector found.
fn scaling(out: &mut String, r: &millrace::Report) {
    let decisions: Vec<_> = r.decisions().collect();
    if !decisions.is_empty() {
        let _ = writeln!(
            out,
            "autoscaling: {} decision{} (controller: {} of CPU)",
            decisions.len(),
            if decisions.len() == 1 { "" } else { "s" },
            duration(r.controller_busy())
        );
        for (at, d) in decisions.iter().take(DECISIONS_LISTED) {
            let _ = writeln!(out, "  at {:.1} s: {}", at.as_secs_f64(), d.reason);
        }
        if decisions.len() > DECISIONS_LISTED {
            let _ = writeln!(
                out,
                "  … and {} more (all in the JSON report)",
                decisions.len() - DECISIONS_LISTED
            );
        }
    }
    for (at, wedge) in r.wedges() {
        let _ = writeln!(out, "wedged at {:.1} s: {wedge}", at.as_secs_f64());
    }
}

/// Where an abandoned run still held items, part by part.
fn in_progress(out: &mut String, s: &Summary) {
    let held = s.in_progress();
    if held.is_empty() {
        return;
    }
    let parts: Vec<String> = held
        .iter()
        .map(|h| {
            let mut what = Vec::new();
            if h.queued > 0 {
                what.push(format!("{} queued", count(h.queued)));
            }
            if h.in_hands > 0 {
                let hands = if h.stage == "source" {
                    "admitted, not yet sent on"
                } else {
                    "in its workers' hands"
                };
                what.push(format!("{} {hands}", count(h.in_hands)));
            }
            format!("`{}` {}", h.stage, what.join(", "))
        })
        .collect();
    let _ = writeln!(
        out,
        "  still in progress when the command stopped waiting ({} s after the abort): {}",
        crate::supervise::ABORT_GRACE.as_secs(),
        parts.join("; ")
    );
}

/// Renders the report.
pub fn render(s: &Summary) -> String {
    let r = &s.report;
    let t = s.totals();
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(s));
    if let Some(e) = &s.error {
        let _ = writeln!(out, "  error: {e}");
    }
    if let Some(why) = s.failed_items() {
        let _ = writeln!(out, "  {why}");
    }
    let ends = t.done() + t.cancelled + t.in_progress;
    let sign = if ends == t.items_in + t.expanded {
        "="
    } else {
        "→"
    };
    let made = if t.expanded > 0 {
        format!(" + {} made by flat-maps", count(t.expanded))
    } else {
        String::new()
    };
    let going = if t.in_progress > 0 {
        format!(" + still in progress {}", count(t.in_progress))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  in {}{made} {sign} delivered {} + filtered {} + failed {} + cancelled {}{going}",
        count(t.items_in),
        count(t.delivered),
        count(t.filtered),
        count(t.failed),
        count(t.cancelled)
    );
    in_progress(&mut out, s);
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:>7} {:>13} {:>13} {:>9} {:>7} {:>5} {:>5} {:>8} {:>13} {:>6}",
        "stage",
        "kind",
        "workers",
        "items in",
        "items out",
        "filtered",
        "failed",
        "busy",
        "idle",
        "blocked",
        "capacity",
        "queue"
    );
    let kind = |i: usize| s.kinds.get(i).and_then(|k| k.as_deref());
    stage_row(&mut out, r.source(), kind(0), 0, r.source().tally.items_out);
    for (i, st) in r.stages().iter().enumerate() {
        stage_row(
            &mut out,
            st,
            kind(i + 1),
            st.tally.failed,
            st.tally.items_out,
        );
    }
    let sink = r.sink();
    let (rejected, unwritten) = s.undelivered();
    stage_row(
        &mut out,
        sink,
        kind(r.stages().len() + 1),
        sink.tally.failed + rejected,
        sink.tally.items_out.saturating_sub(rejected + unwritten),
    );
    for st in r.stages() {
        if let Some(busy) = st.response_busy {
            // (Their relay thread is not one of the workers the rows show.)
            let _ = writeln!(
                out,
                "responses to `{}`: its hook and replies busy {} of the time, on a thread of \
                 their own",
                st.name,
                pct(busy)
            );
        }
    }
    match s.bottleneck() {
        Some((_, reason)) => {
            let _ = writeln!(out, "bottleneck: {reason}");
        }
        None => {
            let _ = writeln!(
                out,
                "bottleneck: none named (the run did too little to tell)"
            );
        }
    }
    let l = r.latency();
    if l.samples > 0 {
        let _ = writeln!(out, "latency (source to sink): {l}");
    }
    scaling(&mut out, r);
    let total_errors = s.errors_total();
    if total_errors > 0 {
        let shown: Vec<String> = s.error_messages().take(ERRORS_SHOWN).collect();
        let _ = writeln!(
            out,
            "errors: {} (first {} below)",
            count(total_errors),
            shown.len()
        );
        for e in &shown {
            let _ = writeln!(out, "  {e}");
        }
        if total_errors > shown.len() as u64 {
            let _ = writeln!(
                out,
                "  … and {} more",
                count(total_errors - shown.len() as u64)
            );
        }
    }
    if !r.unfinished().is_empty() {
        let _ = writeln!(
            out,
            "unfinished: {} items dropped by {}",
            count(r.unfinished().len() as u64),
            if s.outcome == Outcome::Aborted {
                "the abort"
            } else {
                "the cancel that ended the run"
            }
        );
    }
    if let Some(e) = &s.source_error {
        let _ = writeln!(out, "source: {e}");
    }
    if s.skipped.0 > 0 {
        let _ = writeln!(
            out,
            "source skipped {} inputs (first: {})",
            count(s.skipped.0),
            s.skipped.1.as_deref().unwrap_or("?")
        );
    }
    if s.unreadable.0 > 0 {
        let _ = writeln!(
            out,
            "source could not read {} input{}{}:",
            count(s.unreadable.0),
            if s.unreadable.0 == 1 { "" } else { "s" },
            if s.unreadable.0 > s.unreadable.1.len() as u64 {
                format!(" (first {} below)", s.unreadable.1.len())
            } else {
                String::new()
            }
        );
        for what in &s.unreadable.1 {
            let _ = writeln!(out, "  {what}");
        }
    }
    for dl in &s.dead_letters {
        if dl.lost == 0 {
            let _ = writeln!(
                out,
                "dead letters: {} items in {}",
                count(dl.written),
                dl.path.display()
            );
        } else {
            let _ = writeln!(
                out,
                "dead letters: {} of {} items written to {} ({} could not be)",
                count(dl.written),
                count(dl.written + dl.lost),
                dl.path.display(),
                count(dl.lost)
            );
        }
    }
    if s.sink.closed && unwritten > 0 {
        let _ = writeln!(
            out,
            "stdout was closed; the run stopped early: {} items not written (counted as cancelled)",
            count(unwritten)
        );
    } else if s.sink.closed {
        let _ = writeln!(out, "stdout was closed: the result was not printed");
    }
    out
}
