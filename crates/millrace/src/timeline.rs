//! The run's timeline: every part's counters (the source, each stage, the sink) sampled at a
//! fixed interval while the pipeline runs, so that a report can show *when* a stage was
//! busy, not only how busy it was over the whole run.
//!
//! The controller thread (the autoscaler's, started for sampling too) takes a [`Sample`]
//! each interval (100 ms by default,
//! [`PipelineBuilder::timeline`](crate::PipelineBuilder::timeline)) and the final
//! [`Report`](crate::Report) adds one at the end. A sample holds *cumulative*
//! counters (items, busy / idle / blocked time, the queue's receive-time samples) and the
//! gauges of the moment (workers, in flight), so that any two samples give exact totals for
//! the time between them ([`Timeline::steps`]).
//!
//! A sample equal to the one before (nothing moved: an idle run) is not kept, and the
//! sampler waits longer before the next look (up to 1.6 s); the step that follows spans the
//! idle time.
//!
//! Memory stays bounded on long runs by decimation: once [`MAX_SAMPLES`] samples are kept,
//! every other one is dropped (the first and the last are kept) and the interval doubles.
//! Since counters are cumulative, dropping a sample loses resolution, never counts.
//!
//! The autoscaler's decisions ([`Report::decisions`](crate::Report::decisions)) carry the
//! time since the start of the run, the same clock as [`Sample::at`].

use std::time::Duration;

use crate::metrics::StageMetrics;

/// How many samples a timeline keeps before it halves its resolution.
pub const MAX_SAMPLES: usize = 512;

/// One part's counters at one moment of the run (cumulative since the start, except the
/// gauges `workers` and `in_flight`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartSample {
    /// Items received so far.
    pub items_in: u64,
    /// Items emitted so far.
    pub items_out: u64,
    /// Items filtered out so far.
    pub filtered: u64,
    /// Items failed so far.
    pub failed: u64,
    /// Items cancelled so far.
    pub cancelled: u64,
    /// Busy time so far, summed over workers.
    pub busy: Duration,
    /// Idle time (waiting for input) so far, summed over workers.
    pub idle: Duration,
    /// Blocked time (waiting for room downstream) so far, summed over workers.
    pub blocked: Duration,
    /// Sum of the input queue's length (in batches) seen at each receive so far.
    pub queue_len_sum: u64,
    /// Receives so far at which the queue's length was seen.
    pub queue_samples: u64,
    /// Workers at that moment.
    pub workers: usize,
    /// Async stages: items in flight at that moment.
    pub in_flight: u64,
    /// Capacity in batches of its input queue at that moment (0: none of its own; a stage
    /// that started fused gets one when its run splits).
    pub queue_capacity: usize,
}

impl PartSample {
    fn of(m: &StageMetrics) -> Self {
        let t = m.tally();
        PartSample {
            items_in: t.items_in,
            items_out: t.items_out,
            filtered: t.filtered,
            failed: t.failed,
            cancelled: t.cancelled,
            busy: t.busy,
            idle: t.idle,
            blocked: t.blocked,
            queue_len_sum: t.queue_len_sum,
            queue_samples: t.queue_samples,
            workers: m.workers(),
            in_flight: t.in_flight,
            queue_capacity: m.queue_capacity(),
        }
    }
}

/// Every part's counters at one moment, `at` after the run started.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// Time since the run started.
    pub at: Duration,
    /// One per part, in the order of [`Timeline::parts`].
    pub parts: Vec<PartSample>,
}

/// What one part did between two samples.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct PartStep {
    /// Items received in the step.
    pub items_in: u64,
    /// Items emitted in the step.
    pub items_out: u64,
    /// Items filtered out in the step.
    pub filtered: u64,
    /// Items failed in the step.
    pub failed: u64,
    /// Busy time in the step, summed over workers.
    pub busy: Duration,
    /// Idle time in the step, summed over workers.
    pub idle: Duration,
    /// Blocked time in the step, summed over workers.
    pub blocked: Duration,
    /// Mean fill of the input queue (0 to 1) at the receives in the step; `None` for a part
    /// without a queue of its own, or without a receive in the step.
    pub queue_fill: Option<f64>,
    /// Workers at the end of the step.
    pub workers: usize,
    /// Items in flight at the end of the step.
    pub in_flight: u64,
}

/// The time between two consecutive samples, and what every part did in it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Step {
    /// Start of the step (time since the run started).
    pub from: Duration,
    /// End of the step.
    pub to: Duration,
    /// One per part, in the order of [`Timeline::parts`].
    pub parts: Vec<PartStep>,
}

impl Step {
    /// The step's length.
    pub fn length(&self) -> Duration {
        self.to.saturating_sub(self.from)
    }
}

/// Every part's counters over the run, sampled at an interval (see the [module
/// docs](crate::timeline)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    parts: Vec<String>,
    capacities: Vec<usize>,
    interval: Duration,
    samples: Vec<Sample>,
}

impl Timeline {
    /// An empty timeline of `parts` (source, stages, sink), sampled every `interval`.
    pub(crate) fn new<'a>(
        parts: impl Iterator<Item = &'a StageMetrics>,
        interval: Duration,
    ) -> Self {
        let (parts, capacities) = parts
            .map(|m| (m.name.to_string(), m.queue_capacity))
            .unzip();
        Timeline {
            parts,
            capacities,
            interval,
            samples: Vec::new(),
        }
    }

    /// Sets the sampling interval (zero: not sampled).
    pub(crate) fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// The parts sampled: `source`, each stage in order, `sink`.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// Capacity in batches of each part's input queue at the start of the run (0: none of
    /// its own). A stage that started fused gets one when its run splits: each sample has
    /// the capacities at its moment ([`PartSample::queue_capacity`]).
    pub fn queue_capacities(&self) -> &[usize] {
        &self.capacities
    }

    /// The time between kept samples now (the interval asked for, doubled at each
    /// decimation); zero when the run was not sampled.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Whether a sample is due at `at`: the first one, or an interval after the last.
    pub(crate) fn due(&self, at: Duration) -> bool {
        self.samples
            .last()
            .map_or(true, |last| at >= last.at + self.interval)
    }

    /// Samples `parts` at `at`, decimating first if the timeline is full.
    pub(crate) fn record<'a>(
        &mut self,
        at: Duration,
        parts: impl Iterator<Item = &'a StageMetrics>,
    ) {
        if self.samples.len() >= MAX_SAMPLES {
            self.decimate();
        }
        self.samples.push(Sample {
            at,
            parts: parts.map(PartSample::of).collect(),
        });
    }

    /// Samples `parts` at `at` unless nothing changed since the last sample (no count,
    /// time, queue sample, worker count or in-flight count moved); returns whether it did.
    /// An idle run's timeline does not fill up with copies, and its sampler can wait
    /// longer.
    pub(crate) fn record_if_moved<'a>(
        &mut self,
        at: Duration,
        parts: impl Iterator<Item = &'a StageMetrics>,
    ) -> bool {
        let now: Vec<PartSample> = parts.map(PartSample::of).collect();
        if self.samples.last().is_some_and(|last| last.parts == now) {
            return false;
        }
        if self.samples.len() >= MAX_SAMPLES {
            self.decimate();
        }
        self.samples.push(Sample { at, parts: now });
        true
    }

    /// Adds a last sample at `at` (the end of the run, or a snapshot), even if not due,
    /// unless the last one is already there.
    pub(crate) fn close<'a>(
        &mut self,
        at: Duration,
        parts: impl Iterator<Item = &'a StageMetrics>,
    ) {
        if self.samples.last().map_or(true, |last| last.at < at) {
            self.record(at, parts);
        }
    }

    /// Keeps every other sample (the first, and the last) and doubles the interval.
    fn decimate(&mut self) {
        let last = self.samples.pop();
        let mut k = 0;
        self.samples.retain(|_| {
            k += 1;
            k % 2 == 1
        });
        self.samples.extend(last);
        self.interval *= 2;
    }

    /// What every part did between each two consecutive samples, oldest first.
    pub fn steps(&self) -> impl Iterator<Item = Step> + '_ {
        self.samples.windows(2).map(|pair| {
            let (a, b) = (&pair[0], &pair[1]);
            let parts = a
                .parts
                .iter()
                .zip(&b.parts)
                .map(|(a, b)| {
                    // The capacity at the step's end: a stage split off in the step received
                    // from its own queue.
                    let capacity = b.queue_capacity;
                    let receives = b.queue_samples.saturating_sub(a.queue_samples);
                    let queue_fill = (capacity > 0 && receives > 0).then(|| {
                        let len = b.queue_len_sum.saturating_sub(a.queue_len_sum);
                        (len as f64 / receives as f64 / capacity as f64).min(1.0)
                    });
                    PartStep {
                        items_in: b.items_in.saturating_sub(a.items_in),
                        items_out: b.items_out.saturating_sub(a.items_out),
                        filtered: b.filtered.saturating_sub(a.filtered),
                        failed: b.failed.saturating_sub(a.failed),
                        busy: b.busy.saturating_sub(a.busy),
                        idle: b.idle.saturating_sub(a.idle),
                        blocked: b.blocked.saturating_sub(a.blocked),
                        queue_fill,
                        workers: b.workers,
                        in_flight: b.in_flight,
                    }
                })
                .collect();
            Step {
                from: a.at,
                to: b.at,
                parts,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn metrics() -> StageMetrics {
        StageMetrics::new(Arc::from("s"), 2, 4)
    }

    #[test]
    fn decimation_keeps_the_first_and_last_samples_and_doubles_the_interval() {
        let m = metrics();
        let ms = Duration::from_millis;
        let mut t = Timeline::new(std::iter::once(&m), ms(10));
        for k in 0..MAX_SAMPLES as u64 + 1 {
            let c = m.slot(0);
            c.add(&c.items_in, 1);
            t.record(ms(10 * k), std::iter::once(&m));
        }
        assert!(
            t.samples().len() <= MAX_SAMPLES / 2 + 2,
            "{}",
            t.samples().len()
        );
        assert_eq!(t.interval(), ms(20));
        assert_eq!(t.samples()[0].at, ms(0));
        assert_eq!(t.samples().last().unwrap().at, ms(10 * MAX_SAMPLES as u64));
        // Steps still add up to everything between the first and the last sample.
        let total: u64 = t.steps().map(|s| s.parts[0].items_in).sum();
        assert_eq!(total, MAX_SAMPLES as u64);
    }

    #[test]
    fn an_unchanged_sample_is_not_recorded() {
        let m = metrics();
        let ms = Duration::from_millis;
        let mut t = Timeline::new(std::iter::once(&m), ms(10));
        assert!(t.record_if_moved(ms(0), std::iter::once(&m)));
        assert!(!t.record_if_moved(ms(10), std::iter::once(&m)));
        let c = m.slot(0);
        c.add(&c.busy_ns, 5);
        assert!(t.record_if_moved(ms(20), std::iter::once(&m)));
        let at: Vec<Duration> = t.samples().iter().map(|s| s.at).collect();
        assert_eq!(at, [ms(0), ms(20)]);
    }

    #[test]
    fn a_steps_queue_fill_is_the_mean_length_at_its_receives_over_the_capacity() {
        let m = metrics();
        let mut t = Timeline::new(std::iter::once(&m), Duration::from_millis(10));
        t.record(Duration::ZERO, std::iter::once(&m));
        let c = m.slot(1);
        c.add(&c.queue_len_sum, 6); // two receives that saw 2 and 4 batches of 4
        c.add(&c.queue_samples, 2);
        t.record(Duration::from_millis(10), std::iter::once(&m));
        let step = t.steps().next().unwrap();
        assert_eq!(step.parts[0].queue_fill, Some(0.75));
        assert_eq!(step.parts[0].workers, 2);
        assert!(!t.due(Duration::from_millis(19)));
        assert!(t.due(Duration::from_millis(20)));
    }

    #[test]
    fn a_stage_split_off_a_fused_run_has_its_queue_filled_from_the_split_on() {
        // Fused at the start (no queue of its own), four batches of room once split.
        let m = StageMetrics::new(Arc::from("b"), 1, 0).fused(true, 4);
        let ms = Duration::from_millis;
        let mut t = Timeline::new(std::iter::once(&m), ms(10));
        t.record(ms(0), std::iter::once(&m));
        m.mark_split();
        let c = m.slot(0);
        c.add(&c.queue_len_sum, 2); // one receive that saw 2 batches of 4
        c.add(&c.queue_samples, 1);
        t.record(ms(10), std::iter::once(&m));
        assert_eq!(t.queue_capacities(), [0], "at the start");
        assert_eq!(t.samples()[1].parts[0].queue_capacity, 4);
        let step = t.steps().next().unwrap();
        assert_eq!(step.parts[0].queue_fill, Some(0.5));
    }
}
