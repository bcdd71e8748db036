//! The live view: a line per stage on the terminal, redrawn from snapshots while a run goes.
//!
//! Each line shows, over the last interval (about 200 ms): items out per second, the share
//! of the stage's worker time spent busy, idle (waiting for input) and blocked (waiting
//! for room downstream), and the fill of its input queue (`(fused)` for a stage that runs
//! on the previous stage's workers, with no queue of its own); then its worker count as it
//! is now (autoscaled stages change it), and for an async stage the items in flight; the
//! three shares never add up to more than 100% ([`shares`]). The header shows the items
//! read and delivered, and where the source's size is known the percentage done and the
//! time left ([`crate::progress`]). Each
//! decision of the autoscaler and each wedge the detector finds is printed above the view
//! as it happens. The view draws on stderr through `indicatif`, only when stderr is a
//! terminal and `--quiet` is not given, and is cleared before the final report is printed.
//!
//! It reads the same `Handle::snapshot` as the `/metrics` endpoint (`--metrics-addr`): the
//! header's counts are the endpoint's `millrace_stage_items_in_total{stage="source"}` and
//! `millrace_stage_items_out_total{stage="sink"}`, the worker counts its
//! `millrace_stage_workers`, and the queue fill is computed the same way (over the view's
//! interval rather than the endpoint's).

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use millrace::{Report, StageReport};

use crate::progress::{Counts, Progress};

/// How often the supervisor redraws the view.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// The live view of one run.
pub struct LiveView {
    multi: MultiProgress,
    header: ProgressBar,
    rows: Vec<ProgressBar>,
    title: String,
    last: Option<Report>,
    decisions_shown: usize,
    wedges_shown: usize,
}

fn bar() -> ProgressBar {
    let style =
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    let pb = ProgressBar::new_spinner();
    pb.set_style(style);
    pb
}

/// Busy, idle and blocked shares (percent) scaled down together when they add up to more
/// than 100%: the worker count they are divided by is the one at the end of the interval,
/// and a stage that lost workers in it (autoscaling) counted more worker time than that.
pub fn shares(busy: f64, idle: f64, blocked: f64) -> (f64, f64, f64) {
    let sum = busy + idle + blocked;
    if sum > 100.0 {
        let k = 100.0 / sum;
        (busy * k, idle * k, blocked * k)
    } else {
        (busy, idle, blocked)
    }
}

/// One stage's line, from the change between two snapshots `dt` apart.
pub fn row(now: &StageReport, before: Option<&StageReport>, dt: Duration) -> String {
    let secs = dt.as_secs_f64().max(1e-9);
    let (t, p) = (
        &now.tally,
        before.map(|b| b.tally.clone()).unwrap_or_default(),
    );
    let rate = t.items_out.saturating_sub(p.items_out) as f64 / secs;
    let worker_secs = secs * now.workers.max(1) as f64;
    let share = |a: Duration, b: Duration| {
        (a.saturating_sub(b).as_secs_f64() / worker_secs * 100.0).clamp(0.0, 100.0)
    };
    let (busy, idle, blocked) = shares(
        share(t.busy, p.busy),
        share(t.idle, p.idle),
        share(t.blocked, p.blocked),
    );
    // The mean length seen at the receives of the interval, over the capacity: what the
    // `/metrics` endpoint serves as `millrace_stage_queue_fill_ratio` (over its own last
    // interval), and the run's mean when nothing was received.
    let receives = t.queue_samples.saturating_sub(p.queue_samples);
    let fill = if now.queue_capacity == 0 {
        None
    } else if receives == 0 {
        Some(now.queue_fill)
    } else {
        let len = t.queue_len_sum.saturating_sub(p.queue_len_sum) as f64;
        Some((len / receives as f64 / now.queue_capacity as f64).clamp(0.0, 1.0))
    };
    let queue = match fill {
        // As wide as a bar (`[####    ]  50%`), so that the columns after it line up.
        None if now.fused => format!("{:<15}", "(fused)"),
        None => format!("{:>15}", "-"),
        Some(f) => {
            let filled = (f * 8.0).round() as usize;
            format!(
                "[{}{}] {:>3.0}%",
                "#".repeat(filled),
                " ".repeat(8 - filled.min(8)),
                f * 100.0
            )
        }
    };
    let in_flight = if t.in_flight > 0 || !t.waiting.is_zero() {
        format!("  in flight {}", t.in_flight)
    } else {
        String::new()
    };
    format!(
        "{:<16} {:>11}/s  busy {busy:>3.0}%  idle {idle:>3.0}%  blocked {blocked:>3.0}%  queue {queue}  ×{}{in_flight}",
        now.name,
        millrace::fmt::rate(rate),
        now.workers
    )
}

impl LiveView {
    /// A view titled `title`, drawing on stderr.
    pub fn new(title: &str) -> LiveView {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let header = multi.add(bar());
        header.set_message(format!("{title}: starting"));
        LiveView {
            multi,
            header,
            rows: Vec::new(),
            title: title.to_owned(),
            last: None,
            decisions_shown: 0,
            wedges_shown: 0,
        }
    }

    /// Redraws from a new snapshot, first printing decisions and wedges not yet shown;
    /// `counts` are the run's (the snapshot's, or a run in parts': [`Counts::of_parts`]), and
    /// `progress`, where the source's size is known, adds the percentage and the time left.
    pub fn update(&mut self, snap: &Report, counts: Counts, progress: Option<&Progress>) {
        let new: Vec<String> = snap
            .decisions()
            .skip(self.decisions_shown)
            .map(|(at, d)| format!("millrace: at {:.1} s: {}", at.as_secs_f64(), d.reason))
            .collect();
        self.decisions_shown += new.len();
        for line in new {
            self.println(&line);
        }
        for (at, wedge) in snap.wedges().iter().skip(self.wedges_shown) {
            self.println(&format!(
                "millrace: at {:.1} s: wedged: {wedge}",
                at.as_secs_f64()
            ));
        }
        self.wedges_shown = snap.wedges().len();
        let parts: Vec<&StageReport> = std::iter::once(snap.source())
            .chain(snap.stages())
            .chain(std::iter::once(snap.sink()))
            .collect();
        while self.rows.len() < parts.len() {
            self.rows.push(self.multi.add(bar()));
        }
        let dt = self
            .last
            .as_ref()
            .map_or(snap.wall(), |l| snap.wall().saturating_sub(l.wall()));
        let before: Vec<&StageReport> = self.last.as_ref().map_or_else(Vec::new, |l| {
            std::iter::once(l.source())
                .chain(l.stages())
                .chain(std::iter::once(l.sink()))
                .collect()
        });
        for (i, (now, pb)) in parts.iter().zip(&self.rows).enumerate() {
            pb.set_message(row(now, before.get(i).copied(), dt));
        }
        let known = progress
            .and_then(|p| p.describe(counts, snap.wall()))
            .map_or_else(String::new, |k| format!(" ({k})"));
        self.header.set_message(format!(
            "{}: {:.1} s, {} in{known}, {} delivered   (Ctrl-C stops, twice aborts)",
            self.title,
            snap.wall().as_secs_f64(),
            counts.read,
            snap.delivered()
        ));
        self.last = Some(snap.clone());
    }

    /// Prints a line above the view.
    pub fn println(&self, line: &str) {
        if self.multi.println(line).is_err() {
            eprintln!("{line}");
        }
    }

    /// Removes the view from the terminal.
    pub fn finish(self) {
        let _ = self.multi.clear();
        self.header.finish_and_clear();
        for pb in &self.rows {
            pb.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `name{pipeline="p",stage="STAGE"}` in the endpoint's text.
    fn served(text: &str, name: &str, stage: &str) -> String {
        let key = format!("{name}{{pipeline=\"p\",stage=\"{stage}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
            .to_owned()
    }

    #[test]
    fn the_view_shows_the_counts_and_workers_the_endpoint_serves() {
        let pipeline = millrace::Pipeline::source(0..5000u64)
            .stage(millrace::Stage::map("a", |x: u64| x + 1).workers(2))
            .for_each(|_| {});
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(pipeline.run());
        });
        let report = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the run ends within 30 s")
            .expect("the run")
            .report;
        let text = millrace_prometheus::render("p", &report);
        let mut view = LiveView::new("p");
        view.update(&report, Counts::of(&report), None);
        let header = view.header.message();
        assert!(
            header.contains(&format!(
                "{} in, {} delivered",
                served(&text, "millrace_stage_items_in_total", "source"),
                served(&text, "millrace_stage_items_out_total", "sink")
            )),
            "{header}"
        );
        let a = row(&report.stages()[0], None, report.wall());
        let shown: f64 = a
            .rsplit('×')
            .next()
            .and_then(|w| w.parse().ok())
            .expect("×N");
        let workers: f64 = served(&text, "millrace_stage_workers", "a")
            .parse()
            .unwrap();
        assert_eq!(shown, workers, "{a}");
        view.finish();
    }

    #[test]
    fn shares_never_add_up_past_all_of_the_time() {
        // The numbers: busy 17% idle 51% blocked 70%.
        let (b, i, x) = shares(17.0, 51.0, 70.0);
        assert!((b + i + x - 100.0).abs() < 1e-9);
        assert!(b < i && i < x, "the proportions are kept");
        assert_eq!(shares(10.0, 20.0, 30.0), (10.0, 20.0, 30.0));
    }

    #[test]
    fn a_fused_stage_shows_no_queue() {
        // Two stages with one worker each, fused: `b` runs on `a`'s worker.
        let pipeline = millrace::Pipeline::source(0..1000u64)
            .fuse()
            .map("a", |x| x + 1)
            .map("b", |x| x * 2)
            .fold(0u64, |sum, x| sum + x);
        // On a thread of its own, so that a hang fails the test instead of holding it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(pipeline.run());
        });
        let finished = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the run ends within 30 s")
            .expect("the run");
        let stages = finished.report.stages();
        assert!(!stages[0].fused && stages[1].fused);
        let a = row(&stages[0], None, Duration::from_millis(200));
        let b = row(&stages[1], None, Duration::from_millis(200));
        assert!(a.contains("queue ["), "{a}");
        assert!(b.contains("queue (fused)"), "{b}");
        // The columns after the queue stay aligned, for the source's `-` too.
        let source = row(finished.report.source(), None, Duration::from_millis(200));
        assert_eq!(a.find('×'), b.find('×'), "{a}\n{b}");
        assert_eq!(a.find('×'), source.find('×'), "{a}\n{source}");
    }
}
