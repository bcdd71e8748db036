//! The report as JSON (`--report FILE.json`): schema `millrace-report`, version 3 (which
//! added the timeline: every part's counters sampled over the run, and errors counted by
//! kind; version 2 added the autoscaler's decisions, the worker counts over time, wedges,
//! and async stages' in-flight counts).
//!
//! The schema is documented field by field in `REPORT_SCHEMA.md` beside this crate's
//! `Cargo.toml`; `tests/report_json.rs` checks that a real report has every documented
//! field. Fields are only ever added within a version; a change of meaning or a removal
//! makes a new version.

use std::path::Path;

use serde::Serialize;

use millrace::{DecisionReason, StageReport};

use crate::summary::Summary;

/// The schema's name.
pub const SCHEMA: &str = "millrace-report";
/// The schema's version.
pub const VERSION: u32 = 3;
/// How many unfinished ids are listed (the count is always complete).
const UNFINISHED_LISTED: usize = 1000;

/// The source positions of unfinished items, each once, at most [`UNFINISHED_LISTED`] of
/// them. A flat-map's children carry their parent's source position, so the sorted ids of
/// three unfinished children of item 1 read [1, 1, 1].
fn listed_unfinished(unfinished: &[millrace::ItemId]) -> Vec<u64> {
    let mut ids: Vec<u64> = unfinished.iter().map(|id| id.0).collect();
    ids.dedup();
    ids.truncate(UNFINISHED_LISTED);
    ids
}

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    version: u32,
    pipeline: Pipeline<'a>,
    outcome: &'static str,
    exit_code: u8,
    error: Option<&'a str>,
    wall_seconds: f64,
    throughput_per_second: f64,
    delivered_per_second: f64,
    totals: Totals,
    stages: Vec<Stage<'a>>,
    bottleneck: Option<Bottleneck>,
    latency_seconds: Latency,
    errors: Errors,
    unfinished: Unfinished,
    in_progress: Vec<InProgress>,
    source: Source<'a>,
    result: serde_json::Value,
    dead_letters: Vec<DeadLetters>,
    decisions: Vec<DecisionEntry>,
    worker_history: Vec<WorkersAt>,
    wedges: Vec<WedgeEntry>,
    controller_busy_seconds: f64,
    timeline: Timeline,
}

/// Every part's counters sampled over the run (see `millrace::timeline`).
#[derive(Serialize)]
struct Timeline {
    interval_seconds: f64,
    at_seconds: Vec<f64>,
    parts: Vec<PartSeries>,
}

/// One part's counters at each sample: cumulative counts and times, the gauges of the
/// moment, and the queue's mean fill over the step ending at the sample.
#[derive(Serialize)]
struct PartSeries {
    name: String,
    items_in: Vec<u64>,
    items_out: Vec<u64>,
    filtered: Vec<u64>,
    failed: Vec<u64>,
    busy_seconds: Vec<f64>,
    idle_seconds: Vec<f64>,
    blocked_seconds: Vec<f64>,
    queue_fill: Vec<Option<f64>>,
    workers: Vec<usize>,
    in_flight: Vec<u64>,
}

fn timeline(t: &millrace::Timeline) -> Timeline {
    let samples = t.samples();
    let steps: Vec<millrace::timeline::Step> = t.steps().collect();
    let parts = t
        .parts()
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let series = |f: &dyn Fn(&millrace::timeline::PartSample) -> u64| -> Vec<u64> {
                samples.iter().map(|s| f(&s.parts[i])).collect()
            };
            let secs = |f: &dyn Fn(&millrace::timeline::PartSample) -> std::time::Duration| {
                samples
                    .iter()
                    .map(|s| f(&s.parts[i]).as_secs_f64())
                    .collect()
            };
            PartSeries {
                name: name.clone(),
                items_in: series(&|p| p.items_in),
                items_out: series(&|p| p.items_out),
                filtered: series(&|p| p.filtered),
                failed: series(&|p| p.failed),
                busy_seconds: secs(&|p| p.busy),
                idle_seconds: secs(&|p| p.idle),
                blocked_seconds: secs(&|p| p.blocked),
                queue_fill: std::iter::once(None)
                    .chain(steps.iter().map(|s| s.parts[i].queue_fill))
                    .take(samples.len())
                    .collect(),
                workers: samples.iter().map(|s| s.parts[i].workers).collect(),
                in_flight: series(&|p| p.in_flight),
            }
        })
        .collect();
    Timeline {
        interval_seconds: t.interval().as_secs_f64(),
        at_seconds: samples.iter().map(|s| s.at.as_secs_f64()).collect(),
        parts,
    }
}

#[derive(Serialize)]
struct DecisionEntry {
    at_seconds: f64,
    stage: String,
    from: usize,
    to: usize,
    reason: String,
    cost_share: Option<f64>,
    busy_share: Option<f64>,
    queue_fill: Option<f64>,
}

#[derive(Serialize)]
struct WorkersAt {
    at_seconds: f64,
    workers: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct WedgeEntry {
    at_seconds: f64,
    stalled_seconds: f64,
    diagnosis: String,
}

#[derive(Serialize)]
struct Pipeline<'a> {
    name: &'a str,
    file: Option<&'a str>,
}

#[derive(Serialize)]
struct Totals {
    items_in: u64,
    expanded: u64,
    delivered: u64,
    filtered: u64,
    failed: u64,
    cancelled: u64,
    done: u64,
    in_progress: u64,
}

#[derive(Serialize)]
struct InProgress {
    stage: String,
    queued: u64,
    in_hands: u64,
}

#[derive(Serialize)]
struct Stage<'a> {
    name: &'a str,
    role: &'static str,
    kind: Option<&'a str>,
    workers: usize,
    queue_capacity_batches: usize,
    fused: bool,
    items_in: u64,
    items_out: u64,
    filtered: u64,
    failed: u64,
    retries: u64,
    cancelled: u64,
    busy: f64,
    idle: f64,
    blocked: f64,
    queue_fill: f64,
    in_flight: u64,
    waiting_seconds: f64,
    concurrency: usize,
    concurrency_used: f64,
    response_busy: Option<f64>,
}

#[derive(Serialize)]
struct Bottleneck {
    stage: String,
    reason: String,
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    samples: u64,
}

#[derive(Serialize)]
struct Errors {
    total: u64,
    sample: Vec<ErrorEntry>,
    by_kind: Vec<ErrorCount>,
}

#[derive(Serialize)]
struct ErrorCount {
    stage: String,
    kind: String,
    count: u64,
}

#[derive(Serialize)]
struct ErrorEntry {
    stage: String,
    item: u64,
    id: String,
    attempts: u32,
    message: String,
}

#[derive(Serialize)]
struct Unfinished {
    count: usize,
    ids: Vec<u64>,
}

#[derive(Serialize)]
struct Source<'a> {
    error: Option<&'a str>,
    skipped: u64,
    first_skipped: Option<&'a str>,
    unreadable: u64,
    unreadable_sample: &'a [String],
}

#[derive(Serialize)]
struct DeadLetters {
    path: String,
    items: u64,
    not_written: u64,
}

/// One row; `rejected` items (the sink's refusals) move from out to failed, `unwritten`
/// ones (stdout closed) from out to cancelled.
fn stage<'a>(
    s: &'a StageReport,
    role: &'static str,
    kind: Option<&'a str>,
    (rejected, unwritten): (u64, u64),
) -> Stage<'a> {
    Stage {
        name: &s.name,
        role,
        kind,
        workers: s.workers,
        queue_capacity_batches: s.queue_capacity,
        fused: s.fused,
        items_in: s.tally.items_in,
        items_out: s.tally.items_out.saturating_sub(rejected + unwritten),
        filtered: s.tally.filtered,
        failed: s.tally.failed + rejected,
        retries: s.tally.retries,
        cancelled: s.tally.cancelled + unwritten,
        busy: s.busy,
        idle: s.idle,
        blocked: s.blocked,
        queue_fill: s.queue_fill,
        in_flight: s.tally.in_flight,
        waiting_seconds: s.tally.waiting.as_secs_f64(),
        concurrency: s.concurrency,
        concurrency_used: s.concurrency_used,
        response_busy: s.response_busy,
    }
}

/// The report as a JSON value.
pub fn to_json(s: &Summary) -> serde_json::Value {
    let r = &s.report;
    let t = s.totals();
    let kind = |i: usize| s.kinds.get(i).and_then(|k| k.as_deref());
    let mut stages = vec![stage(r.source(), "source", kind(0), (0, 0))];
    for (i, st) in r.stages().iter().enumerate() {
        stages.push(stage(st, "stage", kind(i + 1), (0, 0)));
    }
    stages.push(stage(
        r.sink(),
        "sink",
        kind(r.stages().len() + 1),
        s.undelivered(),
    ));
    let wall = r.wall().as_secs_f64();
    let upstream = s.upstream.as_ref();
    let sample = (upstream.into_iter().flat_map(|up| &up.errors))
        .map(|e| ErrorEntry {
            stage: e.stage.clone(),
            item: e.id.0,
            id: e.id.to_string(),
            attempts: e.attempts,
            message: e.message.clone(),
        })
        .chain(r.errors().iter().map(|e| ErrorEntry {
            stage: e.stage().to_owned(),
            item: e.id().0,
            id: e.id().to_string(),
            attempts: e.attempts(),
            message: e.to_string(),
        }))
        .chain(s.sink.errors.iter().map(|e| ErrorEntry {
            stage: "sink".to_owned(),
            item: e.item.0,
            id: e.item.to_string(),
            attempts: 1,
            message: e.message.clone(),
        }))
        .collect();
    let l = r.latency();
    let doc = Doc {
        schema: SCHEMA,
        version: VERSION,
        pipeline: Pipeline {
            name: &s.pipeline,
            file: s.file.as_deref(),
        },
        outcome: s.outcome.as_str(),
        exit_code: s.exit_code(),
        error: s.error.as_deref(),
        wall_seconds: wall,
        throughput_per_second: if wall > 0.0 {
            t.items_in as f64 / wall
        } else {
            0.0
        },
        delivered_per_second: if wall > 0.0 {
            t.delivered as f64 / wall
        } else {
            0.0
        },
        totals: Totals {
            items_in: t.items_in,
            expanded: t.expanded,
            delivered: t.delivered,
            filtered: t.filtered,
            failed: t.failed,
            cancelled: t.cancelled,
            done: t.done(),
            in_progress: t.in_progress,
        },
        stages,
        bottleneck: s
            .bottleneck()
            .map(|(stage, reason)| Bottleneck { stage, reason }),
        latency_seconds: Latency {
            p50: l.p50.as_secs_f64(),
            p90: l.p90.as_secs_f64(),
            p99: l.p99.as_secs_f64(),
            max: l.max.as_secs_f64(),
            samples: l.samples,
        },
        errors: Errors {
            total: s.errors_total(),
            sample,
            by_kind: (upstream.into_iter().flat_map(|up| &up.errors_by_kind))
                .map(|(stage, kind, count)| ErrorCount {
                    stage: stage.clone(),
                    kind: kind.clone(),
                    count: *count,
                })
                .chain(
                    r.errors_by_kind()
                        .iter()
                        .map(|(stage, kind, count)| ErrorCount {
                            stage: stage.clone(),
                            kind: (*kind).to_owned(),
                            count: *count,
                        }),
                )
                .chain((s.sink.rejected > 0).then(|| ErrorCount {
                    stage: "sink".to_owned(),
                    kind: "rejected".to_owned(),
                    count: s.sink.rejected,
                }))
                .collect(),
        },
        unfinished: Unfinished {
            count: r.unfinished().len(),
            ids: listed_unfinished(r.unfinished()),
        },
        in_progress: s
            .in_progress()
            .into_iter()
            .map(|h| InProgress {
                stage: h.stage,
                queued: h.queued,
                in_hands: h.in_hands,
            })
            .collect(),
        source: Source {
            error: s.source_error.as_deref(),
            skipped: s.skipped.0,
            first_skipped: s.skipped.1.as_deref(),
            unreadable: s.unreadable.0,
            unreadable_sample: &s.unreadable.1,
        },
        result: s
            .sink
            .result
            .as_ref()
            .map_or(serde_json::Value::Null, |r| r.json.clone()),
        dead_letters: s
            .dead_letters
            .iter()
            .map(|dl| DeadLetters {
                path: dl.path.display().to_string(),
                items: dl.written,
                not_written: dl.lost,
            })
            .collect(),
        decisions: r
            .decisions()
            .map(|(at, d)| {
                let shares = match &d.reason {
                    DecisionReason::CostShare {
                        cost_share,
                        busy_share,
                        queue_fill,
                        ..
                    } => Some((*cost_share, *busy_share, *queue_fill)),
                    _ => None,
                };
                DecisionEntry {
                    at_seconds: at.as_secs_f64(),
                    stage: d.name.clone(),
                    from: d.from,
                    to: d.to,
                    reason: d.reason.to_string(),
                    cost_share: shares.map(|s| s.0),
                    busy_share: shares.map(|s| s.1),
                    queue_fill: shares.map(|s| s.2),
                }
            })
            .collect(),
        worker_history: r
            .worker_history()
            .iter()
            .map(|(at, counts)| WorkersAt {
                at_seconds: at.as_secs_f64(),
                workers: r
                    .stages()
                    .iter()
                    .zip(counts)
                    .map(|(st, n)| (st.name.clone(), serde_json::Value::from(*n)))
                    .collect(),
            })
            .collect(),
        wedges: r
            .wedges()
            .iter()
            .map(|(at, w)| WedgeEntry {
                at_seconds: at.as_secs_f64(),
                stalled_seconds: w.stalled.as_secs_f64(),
                diagnosis: w.to_string(),
            })
            .collect(),
        controller_busy_seconds: r.controller_busy().as_secs_f64(),
        timeline: timeline(r.timeline()),
    };
    serde_json::to_value(doc).unwrap_or(serde_json::Value::Null)
}

/// Checks that a report can be written to `path`, before anything runs: opens it for
/// writing (creating it, and removing it again, if it was not there).
///
/// # Errors
///
/// Why it cannot be written, naming the path.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// The report of a run that never started (a bad file, an input that cannot be opened):
/// the same schema, with no stages and every count zero.
pub fn not_started(
    pipeline: &str,
    file: Option<&str>,
    error: &str,
    exit_code: u8,
) -> serde_json::Value {
    let doc = Doc {
        schema: SCHEMA,
        version: VERSION,
        pipeline: Pipeline {
            name: pipeline,
            file,
        },
        outcome: "failed",
        exit_code,
        error: Some(error),
        wall_seconds: 0.0,
        throughput_per_second: 0.0,
        delivered_per_second: 0.0,
        totals: Totals {
            items_in: 0,
            expanded: 0,
            delivered: 0,
            filtered: 0,
            failed: 0,
            cancelled: 0,
            done: 0,
            in_progress: 0,
        },
        stages: Vec::new(),
        bottleneck: None,
        latency_seconds: Latency {
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            max: 0.0,
            samples: 0,
        },
        errors: Errors {
            total: 0,
            sample: Vec::new(),
            by_kind: Vec::new(),
        },
        unfinished: Unfinished {
            count: 0,
            ids: Vec::new(),
        },
        in_progress: Vec::new(),
        source: Source {
            error: None,
            skipped: 0,
            first_skipped: None,
            unreadable: 0,
            unreadable_sample: &[],
        },
        result: serde_json::Value::Null,
        dead_letters: Vec::new(),
        decisions: Vec::new(),
        worker_history: Vec::new(),
        wedges: Vec::new(),
        controller_busy_seconds: 0.0,
        timeline: timeline(&millrace::Timeline::default()),
    };
    serde_json::to_value(doc).unwrap_or(serde_json::Value::Null)
}

/// Writes `doc` to `path`, pretty-printed.
///
/// # Errors
///
/// Why the file cannot be written.
pub fn write_value(doc: &serde_json::Value, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))
}

/// Writes the report to `path`, pretty-printed.
///
/// # Errors
///
/// Why the file cannot be written.
pub fn write(s: &Summary, path: &Path) -> Result<(), String> {
    write_value(&to_json(s), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace::ItemId;

    #[test]
    fn unfinished_children_of_one_item_are_listed_under_its_position_once() {
        let child = |origin, position| ItemId::new(origin).child(position);
        let ids = [
            child(1, 1),
            child(1, 2),
            child(1, 3),
            ItemId::new(4),
            child(7, 1),
            child(7, 2),
        ];
        assert_eq!(listed_unfinished(&ids), vec![1, 4, 7]);
    }

    #[test]
    fn the_unfinished_list_is_cut_after_the_listed_count_of_positions() {
        // Duplicates do not use up the listed positions.
        let ids: Vec<ItemId> = (0..2 * UNFINISHED_LISTED as u64)
            .flat_map(|id| [ItemId::new(id).child(1), ItemId::new(id).child(2)])
            .collect();
        let listed = listed_unfinished(&ids);
        assert_eq!(listed.len(), UNFINISHED_LISTED);
        assert_eq!(listed, (0..UNFINISHED_LISTED as u64).collect::<Vec<_>>());
    }
}
