//! The bottleneck: which part of a finished (or running) pipeline holds it back, and the
//! evidence. A part is a segment with workers of its own — one stage, or a run of fused
//! stages judged as one, since they share workers — or the sink; the busiest part is the
//! bottleneck, unless the stages mostly wait for input, which points at the source.
//!
//! # More threads than cores
//!
//! Busy time is wall time spent in the stage's code, so it includes time a worker was ready
//! to run but had no core. When the run's worker threads outnumber the cores and no part is
//! clearly saturated (busy at least 90% of the time, or with a backlog and at least twice
//! as busy as any other part), a part that is, say, 87% busy
//! may be waiting for a core rather than holding the others back; the reason then says
//! the threads outnumber the cores instead of calling that part saturated. So it does when
//! no part is even half busy: with threads waiting for cores, the time is not all going to
//! hand-offs.

use std::fmt;

use super::stage::{pct, StageReport};
use std::ops::Range;

use crate::metrics::describe_fill;

/// The stage that holds the pipeline back, and why we think so.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Bottleneck {
    /// The stage's name (`source` or `sink` for the ends; `a+b+c` for stages that ran fused
    /// on shared workers, judged as one). When the worker threads outnumbered the cores and
    /// no part was saturated, the busiest part, with a reason that says so.
    pub stage: String,
    /// The evidence. Its `Display` reads e.g.
    /// `square: 97% busy, input queue full (95%), output queue empty (2%)`, or, with more
    /// worker threads than cores, `the threads outnumber the cores (9 threads on 2 cores)
    /// and no part is saturated: …`.
    pub reason: BottleneckReason,
}

/// The evidence for a [`Bottleneck`]: the part's measurements and the kind of verdict.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BottleneckReason {
    /// What kind of bottleneck it is.
    pub kind: BottleneckKind,
    /// The part the measurements are of: the bottleneck's stage (`a+b+c` for a fused
    /// segment), or `source`.
    pub part: String,
    /// Share of the part's workers' time spent busy (0 to 1; a fused segment's stages'
    /// shares summed).
    pub busy: f64,
    /// Mean fill of its input queue (0 to 1; 0 for the source, which has none).
    pub input_fill: f64,
    /// Mean fill of its output queue (0 to 1); `None` for the sink.
    pub output_fill: Option<f64>,
    /// For a part of fused stages: the stage that took the largest share of its workers'
    /// time, and that share (0 to 1), so a fused run still names its heavy stage.
    pub heaviest: Option<(String, f64)>,
}

/// The kind of verdict a [`BottleneckReason`] gives.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BottleneckKind {
    /// The busiest part holds the others back: saturated, or with a backlog in front of it.
    Saturated,
    /// The worker threads outnumber the cores and no part is saturated: the busiest part's
    /// busy time includes time spent waiting for a core.
    Oversubscribed {
        /// The run's worker threads.
        threads: usize,
        /// The cores the machine offers.
        cores: usize,
    },
    /// No part is busy half the time and none has a backlog: the threads mostly wait on
    /// one another (hand-offs).
    WaitingOnOneAnother,
    /// An async stage whose items filled its concurrency most of the time: the limit is how
    /// many it may have in flight, not a core (its threads mostly wait).
    ConcurrencyBound {
        /// The stage's concurrency.
        concurrency: usize,
    },
    /// A stage's responses (its [hook](crate::Stage::on_response) and
    /// [replies](crate::PipelineBuilder::reply_to), which run on a relay thread of their own)
    /// kept that thread busy: the responses come back faster than they are handled, so the
    /// source waits for the in-flight window. [`BottleneckReason::part`] names the stage;
    /// `busy` is the relay thread's share.
    ResponsesBound {
        /// Share of the run's time the source spent blocked (0 to 1): waiting for the
        /// window, or for room in the queue.
        source_blocked: f64,
    },
    /// The stages mostly wait for input: the source limits the run.
    SourceBound {
        /// The first stage (or the sink, without stages), whose idle share says so.
        waiting: String,
        /// Share of its time that stage spent idle (0 to 1).
        idle: f64,
    },
}

impl fmt::Display for BottleneckReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BottleneckKind::Oversubscribed { threads, cores } => {
                write!(
                    f,
                    "the threads outnumber the cores ({threads} threads on {cores} core{}) and \
                     no part is saturated: the busiest, `{}`, is {}% busy, input queue {} \
                     ({}%)",
                    if *cores == 1 { "" } else { "s" },
                    self.part,
                    pct(self.busy),
                    describe_fill(self.input_fill),
                    pct(self.input_fill)
                )?;
                self.write_heaviest(f)?;
                f.write_str(
                    ", counting time spent waiting for a core; fewer workers or fusing stages \
                     may help",
                )
            }
            BottleneckKind::ConcurrencyBound { concurrency } => write!(
                f,
                "{}: {}% of its concurrency ({concurrency}) in use on average, input queue {} \
                 ({}%); a higher concurrency may help",
                self.part,
                pct(self.busy),
                describe_fill(self.input_fill),
                pct(self.input_fill)
            ),
            BottleneckKind::ResponsesBound { source_blocked } => write!(
                f,
                "`{}`'s responses: its hook and replies took {}% of their thread's time, so \
                 they come back faster than they are handled and the source waits (blocked \
                 {}% of the time); a cheaper hook or reply fold may help",
                self.part,
                pct(self.busy),
                pct(*source_blocked)
            ),
            BottleneckKind::SourceBound { waiting, idle } => write!(
                f,
                "{}: {}% busy; the stages wait for input (`{waiting}` idle {}% of the time)",
                self.part,
                pct(self.busy),
                pct(*idle)
            ),
            BottleneckKind::Saturated | BottleneckKind::WaitingOnOneAnother => {
                write!(
                    f,
                    "{}: {}% busy, input queue {} ({}%)",
                    self.part,
                    pct(self.busy),
                    describe_fill(self.input_fill),
                    pct(self.input_fill)
                )?;
                if let Some(output) = self.output_fill {
                    write!(
                        f,
                        ", output queue {} ({}%)",
                        describe_fill(output),
                        pct(output)
                    )?;
                }
                self.write_heaviest(f)?;
                if self.kind == BottleneckKind::WaitingOnOneAnother {
                    // Nothing is saturated, nothing has a backlog in front of it, the input
                    // is not what is missing, and every thread has a core: the time goes to
                    // the hand-offs.
                    f.write_str(
                        "; no part is busy half the time: the threads mostly wait on one \
                         another (hand-offs), so fusing stages or larger batches may help",
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl BottleneckReason {
    /// `, most of it in `c` (24%)` for a part of fused stages.
    fn write_heaviest(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.heaviest {
            Some((stage, busy)) => write!(f, ", most of it in `{stage}` ({}%)", pct(*busy)),
            None => Ok(()),
        }
    }
}

/// The busy share from which a part counts as saturated whatever else runs on its cores.
const SATURATED: f64 = 0.9;

/// A part of the pipeline that has workers of its own: a segment of stages (several when
/// fused, sharing workers) or the sink.
struct Part {
    name: String,
    /// Share of the part's workers' time spent busy, summed over its stages.
    busy: f64,
    /// Of several fused stages, the busiest and its share.
    heaviest: Option<(String, f64)>,
    /// An async stage whose share of its concurrency in use is above its threads' busy
    /// share (which its `busy` then is): its concurrency.
    concurrency_bound: Option<usize>,
    input_fill: f64,
    output_fill: Option<f64>,
}

/// The segments (runs of fused stages) and the sink, each with its busy share and queues.
fn parts(stages: &[StageReport], segments: &[Range<usize>], sink: &StageReport) -> Vec<Part> {
    // The queue after stage i is the input of stage i + 1, or the sink's.
    let fills: Vec<f64> = stages
        .iter()
        .map(|s| s.queue_fill)
        .chain([sink.queue_fill])
        .collect();
    let mut parts: Vec<Part> = segments
        .iter()
        .filter(|segment| segment.end <= stages.len() && !segment.is_empty())
        .map(|segment| {
            let run = &stages[segment.clone()];
            // Fused stages share workers: each one's busy share is a part of theirs.
            let busy = run.iter().map(|s| s.busy).sum::<f64>().min(1.0);
            // An async stage (never fused) is as busy as its concurrency is in use.
            let in_use = run
                .iter()
                .find(|s| s.concurrency > 0)
                .filter(|s| s.concurrency_used > busy);
            Part {
                name: run
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                busy: in_use.map_or(busy, |s| s.concurrency_used),
                concurrency_bound: in_use.map(|s| s.concurrency),
                heaviest: (run.len() > 1)
                    .then(|| run.iter().max_by(|a, b| a.busy.total_cmp(&b.busy)))
                    .flatten()
                    .map(|s| (s.name.clone(), s.busy)),
                input_fill: fills[segment.start],
                output_fill: Some(fills[segment.end]),
            }
        })
        .collect();
    parts.push(Part {
        name: sink.name.clone(),
        busy: sink.busy,
        heaviest: None,
        concurrency_bound: None,
        input_fill: sink.queue_fill,
        output_fill: None,
    });
    parts
}

/// The run's worker threads: the source's (unless it ran on the first stage's workers), each
/// segment's (fused stages share theirs), the sink's (unless the last stage's workers
/// consumed it, all or mostly: the sink thread then took only what they found it busy
/// with), and each relay thread (a stage that hears back from later ones). An async stage
/// counts as its one worker: its other threads mostly wait.
pub(super) fn worker_threads(
    source: &StageReport,
    stages: &[StageReport],
    segments: &[Range<usize>],
    sink: &StageReport,
) -> usize {
    usize::from(!source.fused) * source.workers
        + segments
            .iter()
            .filter_map(|segment| stages.get(segment.start))
            .map(|s| s.workers)
            .sum::<usize>()
        + usize::from(!sink.fused) * sink.workers
        + stages.iter().filter(|s| s.response_busy.is_some()).count()
}

/// The part holding the run back, and why; `cores` is what the machine offers
/// ([`std::thread::available_parallelism`]). `None` if the source admitted nothing.
pub(super) fn find_bottleneck(
    source: &StageReport,
    stages: &[StageReport],
    segments: &[Range<usize>],
    sink: &StageReport,
    cores: usize,
) -> Option<Bottleneck> {
    if source.tally.items_in == 0 {
        return None;
    }
    let parts = parts(stages, segments, sink);
    let busiest = parts.iter().max_by(|a, b| a.busy.total_cmp(&b.busy))?;
    let threads = worker_threads(source, stages, segments, sink);
    // A relay thread busy all the time holds the run back through the in-flight window,
    // whatever the stages do (the seed pipeline's report blamed "more threads than cores"
    // while its replies' thread, counted nowhere, was the busiest).
    let responses = stages
        .iter()
        .filter_map(|s| Some((s, s.response_busy?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((stage, busy)) = responses.filter(|&(_, b)| b >= SATURATED && b >= busiest.busy) {
        return Some(Bottleneck {
            stage: stage.name.clone(),
            reason: BottleneckReason {
                kind: BottleneckKind::ResponsesBound {
                    source_blocked: source.blocked,
                },
                part: stage.name.clone(),
                busy,
                input_fill: 0.0,
                output_fill: None,
                heaviest: None,
            },
        });
    }
    if let Some(concurrency) = busiest.concurrency_bound.filter(|_| busiest.busy >= 0.5) {
        return Some(Bottleneck {
            stage: busiest.name.clone(),
            reason: busiest.reason(BottleneckKind::ConcurrencyBound { concurrency }),
        });
    }
    let runner_up = parts
        .iter()
        .filter(|p| p.name != busiest.name)
        .map(|p| p.busy)
        .fold(source.busy, f64::max);
    // A part with a backlog that works at least twice as much as any other holds the run
    // back, cores or not.
    let dominant = busiest.input_fill >= 0.75 && busiest.busy >= 2.0 * runner_up;
    // Below half busy the time is not going to the work at all: the notes further down say
    // where it goes.
    let contended = busiest.busy >= 0.5 && busiest.busy < SATURATED && source.busy < SATURATED;
    if threads > cores && contended && !dominant {
        return Some(Bottleneck {
            stage: busiest.name.clone(),
            reason: busiest.reason(BottleneckKind::Oversubscribed { threads, cores }),
        });
    }
    let first_idle = stages.first().map_or(sink.idle, |s| s.idle);
    if busiest.busy < 0.5 && first_idle > 0.5 {
        let first = stages.first().unwrap_or(sink);
        return Some(Bottleneck {
            stage: source.name.clone(),
            reason: BottleneckReason {
                kind: BottleneckKind::SourceBound {
                    waiting: first.name.clone(),
                    idle: first_idle,
                },
                part: source.name.clone(),
                busy: source.busy,
                input_fill: 0.0,
                output_fill: Some(first.queue_fill),
                heaviest: None,
            },
        });
    }
    let kind = if busiest.busy < 0.5 && busiest.input_fill < 0.75 {
        if threads > cores {
            // Not the hand-offs alone: the threads wait for cores too.
            BottleneckKind::Oversubscribed { threads, cores }
        } else {
            BottleneckKind::WaitingOnOneAnother
        }
    } else {
        BottleneckKind::Saturated
    };
    Some(Bottleneck {
        stage: busiest.name.clone(),
        reason: busiest.reason(kind),
    })
}

impl Part {
    fn reason(&self, kind: BottleneckKind) -> BottleneckReason {
        BottleneckReason {
            kind,
            part: self.name.clone(),
            busy: self.busy,
            input_fill: self.input_fill,
            output_fill: self.output_fill,
            heaviest: self.heaviest.clone(),
        }
    }
}

/// The segments of these stages as they ran at the end: a stage fused at the end joins the
/// one before it (a run fused at the start that split counts as its stages).
pub(crate) fn segments_of(stages: &[StageReport]) -> Vec<Range<usize>> {
    crate::pipeline::plan::segments_of_fused(stages.iter().map(|s| s.fused))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::metrics::Tally;

    /// More cores than any of these runs has threads, unless a test says otherwise.
    const CORES: usize = 64;

    fn stage(name: &str, busy: f64, idle: f64, fill: f64) -> StageReport {
        StageReport {
            name: name.into(),
            workers: 1,
            queue_capacity: 4,
            batch: 16,
            batch_limit: 16,
            batch_adaptive: false,
            fused: false,
            tally: Tally {
                items_in: 100,
                ..Tally::default()
            },
            busy,
            idle,
            blocked: 1.0 - busy - idle,
            queue_fill: fill,
            concurrency: 0,
            concurrency_used: 0.0,
            response_busy: None,
        }
    }

    #[test]
    fn an_async_stage_at_its_concurrency_is_the_bottleneck_though_its_threads_idle() {
        // One item at a time, 2 ms each: its threads are 4% busy, its one slot always used.
        let source = stage("source", 0.01, 0.0, 0.0);
        let mut io = stage("io", 0.04, 0.0, 0.97);
        io.concurrency = 1;
        io.concurrency_used = 1.0;
        let stages = vec![stage("a", 0.02, 0.1, 0.1), io];
        let sink = stage("sink", 0.01, 0.99, 0.01);
        let segments = vec![0..1, 1..2];
        // Four threads on two cores: it used to read as oversubscription, "fewer workers".
        let b = find_bottleneck(&source, &stages, &segments, &sink, 2).expect("a bottleneck");
        assert_eq!(b.stage, "io");
        assert_eq!(
            b.reason.kind,
            BottleneckKind::ConcurrencyBound { concurrency: 1 }
        );
        assert_eq!(
            b.reason.to_string(),
            "io: 100% of its concurrency (1) in use on average, input queue full (97%); a \
             higher concurrency may help"
        );
        // Half its concurrency in use: not what holds the run back.
        let mut stages = stages;
        stages[1].concurrency_used = 0.3;
        let b = find_bottleneck(&source, &stages, &segments, &sink, 64).expect("a bottleneck");
        assert_ne!(
            b.reason.kind,
            BottleneckKind::ConcurrencyBound { concurrency: 1 }
        );
    }

    #[test]
    fn a_relay_thread_busy_all_the_time_is_the_bottleneck_and_counts_as_a_thread() {
        // The stages wait on one another and the source waits for the in-flight window:
        // the replies' thread, on no row, is what holds the run.
        let mut source = stage("source", 0.05, 0.0, 0.0);
        source.blocked = 0.9;
        let mut wrap = stage("wrap", 0.2, 0.6, 0.1);
        wrap.response_busy = Some(0.97);
        let stages = vec![wrap, stage("square", 0.1, 0.7, 0.1)];
        let sink = stage("sink", 0.01, 0.99, 0.01);
        let segments = vec![0..1, 1..2];
        assert_eq!(worker_threads(&source, &stages, &segments, &sink), 5);
        let b = find_bottleneck(&source, &stages, &segments, &sink, 2).expect("a bottleneck");
        assert_eq!(b.stage, "wrap");
        assert_eq!(
            b.reason.kind,
            BottleneckKind::ResponsesBound {
                source_blocked: 0.9
            }
        );
        assert_eq!(
            b.reason.to_string(),
            "`wrap`'s responses: its hook and replies took 97% of their thread's time, so \
             they come back faster than they are handled and the source waits (blocked 90% \
             of the time); a cheaper hook or reply fold may help"
        );
        // Half busy: not what holds the run back.
        let mut stages = stages;
        stages[0].response_busy = Some(0.5);
        let b = find_bottleneck(&source, &stages, &segments, &sink, 64).expect("a bottleneck");
        assert!(
            !matches!(b.reason.kind, BottleneckKind::ResponsesBound { .. }),
            "{b:?}"
        );
    }

    #[test]
    fn the_busiest_stage_is_the_bottleneck_with_its_queues_described() {
        let source = stage("source", 0.1, 0.0, 0.0);
        let stages = vec![
            stage("wrap", 0.1, 0.1, 0.9),
            stage("square", 0.97, 0.0, 0.95),
            stage("scale", 0.2, 0.8, 0.02),
        ];
        let sink = stage("sink", 0.1, 0.9, 0.0);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, CORES).unwrap();
        assert_eq!(b.stage, "square");
        assert_eq!(b.reason.kind, BottleneckKind::Saturated);
        assert_eq!((b.reason.busy, b.reason.input_fill), (0.97, 0.95));
        assert_eq!(b.reason.output_fill, Some(0.02));
        assert_eq!(
            b.reason.to_string(),
            "square: 97% busy, input queue full (95%), output queue empty (2%)"
        );
    }

    #[test]
    fn a_fused_segment_is_judged_as_one_with_the_queues_around_it() {
        let source = stage("source", 0.1, 0.0, 0.0);
        let fused = |name: &str, busy: f64| StageReport {
            fused: true,
            queue_capacity: 0,
            ..stage(name, busy, 0.0, 0.0)
        };
        // a+b+c share their workers, busy 30% + 25% + 40% of their time; d alone is 60%.
        let stages = vec![
            stage("a", 0.3, 0.02, 0.9),
            fused("b", 0.25),
            fused("c", 0.4),
            stage("d", 0.6, 0.3, 0.3),
        ];
        let sink = stage("sink", 0.1, 0.9, 0.01);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, CORES).unwrap();
        assert_eq!(b.stage, "a+b+c");
        assert_eq!(
            b.reason.to_string(),
            "a+b+c: 95% busy, input queue full (90%), output queue half full (30%), most of \
             it in `c` (40%)"
        );
        assert_eq!(b.reason.heaviest, Some(("c".to_owned(), 0.4)));
    }

    #[test]
    fn a_run_where_nothing_is_saturated_says_the_threads_wait_on_one_another() {
        let source = stage("source", 0.09, 0.0, 0.0);
        let stages = vec![
            stage("wrap", 0.2, 0.1, 0.7),
            stage("square", 0.17, 0.11, 0.62),
        ];
        let sink = stage("sink", 0.02, 0.87, 0.56);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, CORES).unwrap();
        assert_eq!(b.stage, "wrap");
        assert_eq!(b.reason.kind, BottleneckKind::WaitingOnOneAnother);
        assert!(
            b.reason.to_string().ends_with(
                "; no part is busy half the time: the threads mostly wait on one another \
                 (hand-offs), so fusing stages or larger batches may help"
            ),
            "{}",
            b.reason
        );
    }

    #[test]
    fn more_threads_than_cores_with_nothing_half_busy_says_so_rather_than_blaming_hand_offs() {
        // 16 workers of a CPU-bound stage on 2 cores, started at once: each waits for a core
        // most of the time, and no part looks even half busy.
        let source = stage("source", 0.05, 0.0, 0.0);
        let mut hash = stage("hash", 0.16, 0.33, 0.3);
        hash.workers = 16;
        let stages = vec![hash];
        let sink = stage("sink", 0.01, 0.99, 0.0);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, 2).unwrap();
        assert_eq!(b.stage, "hash");
        assert_eq!(
            b.reason.kind,
            BottleneckKind::Oversubscribed {
                threads: 18,
                cores: 2
            }
        );
        assert!(!b.reason.to_string().contains("hand-offs"), "{}", b.reason);
    }

    #[test]
    fn a_part_with_a_backlog_is_not_called_a_hand_off_problem() {
        // The sink limits the run at 40% busy (its overhead is outside its busy time): its
        // queue is full, so the note about threads waiting on one another stays out.
        let source = stage("source", 0.05, 0.0, 0.0);
        let stages = vec![stage("a", 0.35, 0.05, 0.9)];
        let sink = stage("sink", 0.4, 0.1, 0.95);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, CORES).unwrap();
        assert_eq!(b.stage, "sink");
        assert!(
            !b.reason.to_string().contains("wait on one another"),
            "{}",
            b.reason
        );
    }

    #[test]
    fn idle_stages_point_at_the_source() {
        let source = stage("source", 0.99, 0.0, 0.0);
        let stages = vec![stage("a", 0.1, 0.9, 0.0)];
        let sink = stage("sink", 0.05, 0.95, 0.0);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, CORES).unwrap();
        assert_eq!(b.stage, "source");
        assert_eq!(
            b.reason.kind,
            BottleneckKind::SourceBound {
                waiting: "a".into(),
                idle: 0.9
            }
        );
        assert_eq!(
            b.reason.to_string(),
            "source: 99% busy; the stages wait for input (`a` idle 90% of the time)"
        );
    }

    #[test]
    fn a_dominant_stage_with_a_backlog_is_named_even_with_more_threads_than_cores() {
        // examples/imbalanced.toml on two cores: `c` does four times the work of the others.
        let source = stage("source", 0.01, 0.0, 0.0);
        let stages = vec![
            stage("a", 0.2, 0.08, 0.8),
            stage("b", 0.17, 0.06, 0.81),
            stage("c", 0.88, 0.01, 0.86),
            stage("d", 0.2, 0.71, 0.35),
        ];
        let sink = stage("sink", 0.01, 0.9, 0.39);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, 2).unwrap();
        assert_eq!(b.stage, "c");
        assert!(
            b.reason.to_string().starts_with("c: 88% busy"),
            "{}",
            b.reason
        );
    }

    #[test]
    fn more_threads_than_cores_is_named_instead_of_an_unsaturated_stage() {
        let source = stage("source", 0.3, 0.0, 0.0);
        let two = |name: &str, busy: f64, fill: f64| StageReport {
            workers: 2,
            ..stage(name, busy, 0.05, fill)
        };
        let stages = vec![
            two("wrap", 0.6, 0.9),
            two("square", 0.87, 0.95),
            two("scale", 0.5, 0.3),
        ];
        let sink = stage("sink", 0.2, 0.7, 0.1);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, 2).unwrap();
        assert_eq!(b.stage, "square");
        assert_eq!(
            b.reason.kind,
            BottleneckKind::Oversubscribed {
                threads: 8,
                cores: 2
            }
        );
        assert_eq!(
            b.reason.to_string(),
            "the threads outnumber the cores (8 threads on 2 cores) and no part is saturated: \
             the busiest, `square`, is 87% busy, input queue full (95%), counting time spent \
             waiting for a core; fewer workers or fusing stages may help"
        );
    }

    #[test]
    fn a_saturated_stage_is_named_even_with_more_threads_than_cores() {
        let source = stage("source", 0.1, 0.0, 0.0);
        let stages = vec![stage("a", 0.3, 0.1, 0.9), stage("c", 0.97, 0.0, 0.95)];
        let sink = stage("sink", 0.1, 0.9, 0.0);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, 1).unwrap();
        assert_eq!(b.stage, "c");
        assert!(
            b.reason.to_string().starts_with("c: 97% busy"),
            "{}",
            b.reason
        );
    }

    #[test]
    fn as_many_threads_as_cores_names_the_busiest_stage() {
        let source = stage("source", 0.1, 0.0, 0.0);
        let stages = vec![stage("a", 0.87, 0.0, 0.9), stage("b", 0.3, 0.6, 0.1)];
        let sink = stage("sink", 0.1, 0.9, 0.0);
        let b = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, 4).unwrap();
        assert!(
            b.reason.to_string().starts_with("a: 87% busy"),
            "{}",
            b.reason
        );
    }

    #[test]
    fn fused_stages_share_their_segments_threads() {
        let source = stage("source", 0.1, 0.0, 0.0);
        let three = |name: &str, fused: bool| StageReport {
            workers: 3,
            fused,
            ..stage(name, 0.5, 0.0, 0.0)
        };
        let stages = vec![three("a", false), three("b", true), three("c", false)];
        let sink = stage("sink", 0.1, 0.9, 0.0);
        // source 1 + a+b 3 + c 3 + sink 1.
        assert_eq!(
            worker_threads(&source, &stages, &segments_of(&stages), &sink),
            8
        );
    }
}
