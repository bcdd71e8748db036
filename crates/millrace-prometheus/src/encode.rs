//! A [`Report`] in the OpenMetrics text format (what Prometheus scrapes), through
//! `prometheus-client`'s encoder: one [`Collector`] that writes every metric of the table in
//! the [crate docs](crate) from the report it holds.

use std::fmt;

use millrace::{Report, StageReport, WorkerActivity};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The upper bounds of the latency histogram's buckets, in seconds (+Inf follows).
pub const LATENCY_BUCKETS: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The report of `pipeline` (its label value) in the OpenMetrics text format.
///
/// # Examples
///
/// ```
/// use millrace::Pipeline;
///
/// let finished = Pipeline::source(0..100u64).map("double", |x| 2 * x).for_each(|_| {}).run()?;
/// let text = millrace_prometheus::render("demo", &finished.report);
/// assert!(text.contains(r#"millrace_stage_items_in_total{pipeline="demo",stage="double"} 100"#));
/// assert!(text.ends_with("# EOF\n"));
/// # Ok::<(), millrace::RunError>(())
/// ```
pub fn render(pipeline: &str, report: &Report) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ReportCollector {
        pipeline: pipeline.to_owned(),
        report: report.clone(),
    }));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Writes a report's metrics at each encode.
#[derive(Debug)]
struct ReportCollector {
    pipeline: String,
    report: Report,
}

type Labels = Vec<(&'static str, String)>;

/// A constant histogram: what the report's latency buckets add up to.
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    /// (upper bound, count in the bucket), the last one +Inf (`f64::MAX`).
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One metric family: its name, help, unit and type, and a value per label set.
struct Family<'a> {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: Vec<(Labels, Value<'a>)>,
}

enum Value<'a> {
    Count(u64),
    Seconds(f64),
    Gauge(f64),
    Histogram(&'a ConstHistogram),
}

impl Family<'_> {
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut metric =
            encoder.encode_descriptor(self.name, self.help, self.unit.as_ref(), self.kind)?;
        for (labels, value) in &self.samples {
            let mut family = metric.encode_family(labels)?;
            match value {
                Value::Count(n) => family.encode_counter::<NoLabelSet, _, u64>(n, None)?,
                Value::Seconds(s) => family.encode_counter::<NoLabelSet, _, f64>(s, None)?,
                Value::Gauge(g) => family.encode_gauge(g)?,
                Value::Histogram(h) => h.encode(family)?,
            }
        }
        Ok(())
    }
}

/// A label value escaped as the text format asks (`\\`, `\"`, `\n`): prometheus-client
/// 0.23 writes label values as given, so one `"` in a pipeline or stage name made the whole
/// scrape unparseable.
fn label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

impl ReportCollector {
    fn labels(&self, stage: &str) -> Labels {
        vec![
            ("pipeline", label_value(&self.pipeline)),
            ("stage", label_value(stage)),
        ]
    }

    /// The source, each stage, the sink.
    fn parts(&self) -> impl Iterator<Item = &StageReport> {
        let r = &self.report;
        std::iter::once(r.source())
            .chain(r.stages())
            .chain(std::iter::once(r.sink()))
    }

    /// A family with one value per part.
    fn per_part<'a>(
        &'a self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        kind: MetricType,
        value: impl Fn(usize, &StageReport) -> Value<'a>,
    ) -> Family<'a> {
        Family {
            name,
            help,
            unit,
            kind,
            samples: self
                .parts()
                .enumerate()
                .map(|(i, part)| (self.labels(&part.name), value(i, part)))
                .collect(),
        }
    }

    /// Mean fill of each part's input queue over the last timeline step, or over the run
    /// when that step had no receive (or the run is not sampled).
    fn queue_fill(&self) -> Vec<f64> {
        let timeline = self.report.timeline();
        let last = timeline.steps().last();
        self.parts()
            .enumerate()
            .map(|(i, part)| {
                last.as_ref()
                    .and_then(|step| step.parts.get(i))
                    .and_then(|p| p.queue_fill)
                    .unwrap_or(part.queue_fill)
            })
            .collect()
    }

    fn latency(&self) -> ConstHistogram {
        let latency = self.report.latency();
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS.iter().map(|&le| (le, 0)).collect();
        buckets.push((f64::MAX, 0));
        for (upper, n) in &latency.buckets {
            // A bucket of the report counts under the first bound at or above its upper
            // bound: each `le` count is exact to the report's quarter-octave buckets.
            let upper = upper.as_secs_f64();
            let slot = buckets
                .iter()
                .position(|(le, _)| upper <= *le)
                .unwrap_or(buckets.len() - 1);
            buckets[slot].1 += n;
        }
        ConstHistogram {
            sum: latency.sum.as_secs_f64(),
            count: latency.samples,
            buckets,
        }
    }
}

impl Collector for ReportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        use MetricType::{Counter, Gauge};
        let r = &self.report;
        let count =
            |f: fn(&StageReport) -> u64| move |_: usize, p: &StageReport| Value::Count(f(p));
        let secs = |f: fn(&StageReport) -> std::time::Duration| {
            move |_: usize, p: &StageReport| Value::Seconds(f(p).as_secs_f64())
        };
        let fill = self.queue_fill();
        let latency = self.latency();
        let mut families = vec![
            self.per_part("millrace_stage_items_in", "Items received.", None, Counter, count(|p| p.tally.items_in)),
            self.per_part("millrace_stage_items_out", "Items emitted (a flat-map emits more than it receives).", None, Counter, count(|p| p.tally.items_out)),
            self.per_part("millrace_stage_items_filtered", "Items that produced no output.", None, Counter, count(|p| p.tally.filtered)),
            self.per_part("millrace_stage_items_failed", "Items that failed after all their tries.", None, Counter, count(|p| p.tally.failed)),
            self.per_part("millrace_stage_items_cancelled", "Items dropped unfinished by a cancel.", None, Counter, count(|p| p.tally.cancelled)),
            self.per_part("millrace_stage_retries", "Extra tries under a retry policy.", None, Counter, count(|p| p.tally.retries)),
            self.per_part("millrace_stage_busy", "Time its workers spent working, summed over workers.", Some(Unit::Seconds), Counter, secs(|p| p.tally.busy)),
            self.per_part("millrace_stage_idle", "Time its workers spent waiting for input, summed over workers.", Some(Unit::Seconds), Counter, secs(|p| p.tally.idle)),
            self.per_part("millrace_stage_blocked", "Time its workers spent waiting for room downstream, summed over workers.", Some(Unit::Seconds), Counter, secs(|p| p.tally.blocked)),
            self.per_part("millrace_stage_queue_fill_ratio", "Mean fill of its input queue (0 to 1) at the receives of the last sampling interval.", None, Gauge, |i, _| Value::Gauge(fill[i])),
            self.per_part("millrace_stage_queue_capacity_batches", "Capacity of its input queue, in batches (0: none of its own).", None, Gauge, |_, p| Value::Gauge(p.queue_capacity as f64)),
            self.per_part("millrace_stage_workers", "Its workers now.", None, Gauge, |_, p| Value::Gauge(p.workers as f64)),
            self.per_part("millrace_stage_in_flight", "Async stages: items whose futures are running now.", None, Gauge, |_, p| Value::Gauge(p.tally.in_flight as f64)),
        ];
        families.push(Family {
            // The unit is in the name, not in a UNIT line: some OpenMetrics parsers refuse
            // units on histograms.
            name: "millrace_stage_latency_seconds",
            help: "Time from admission to reaching the stage (the sink: end to end), sampled per batch, weighted by items.",
            unit: None,
            kind: MetricType::Histogram,
            samples: vec![(self.labels(&r.sink().name), Value::Histogram(&latency))],
        });
        families.push(Family {
            name: "millrace_stage_errors",
            help: "Item errors by kind: failed (the stage returned an error), panicked, timed_out.",
            unit: None,
            kind: Counter,
            samples: self.errors(),
        });
        families.push(Family {
            name: "millrace_stage_scaling_decisions",
            help: "Worker count changes the autoscaler made, by direction (up, down).",
            unit: None,
            kind: Counter,
            samples: self.decisions(),
        });
        families.push(Family {
            name: "millrace_stage_wedges",
            help: "Wedge diagnoses in which a worker of the stage was stuck in its code.",
            unit: None,
            kind: Counter,
            samples: self.wedges(),
        });
        for family in &families {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// The kinds of item errors, as [`ItemError::kind_name`](millrace::ItemError::kind_name)
/// names them.
const ERROR_KINDS: [&str; 3] = ["failed", "panicked", "timed_out"];

impl ReportCollector {
    /// Every stage and the sink (where items can fail) × every kind, zeros included, so
    /// that each series exists from the first scrape.
    fn errors(&self) -> Vec<(Labels, Value<'_>)> {
        let r = &self.report;
        let mut samples = Vec::new();
        for part in r.stages().iter().chain(std::iter::once(r.sink())) {
            for kind in ERROR_KINDS {
                let n = r
                    .errors_by_kind()
                    .iter()
                    .find(|(stage, k, _)| *stage == part.name && *k == kind)
                    .map_or(0, |(_, _, n)| *n);
                let mut labels = self.labels(&part.name);
                labels.push(("kind", kind.to_owned()));
                samples.push((labels, Value::Count(n)));
            }
        }
        samples
    }

    /// Every stage × both directions, zeros included.
    fn decisions(&self) -> Vec<(Labels, Value<'_>)> {
        let r = &self.report;
        let mut samples = Vec::new();
        for (index, stage) in r.stages().iter().enumerate() {
            for (direction, up) in [("up", true), ("down", false)] {
                let n = r
                    .decisions()
                    .filter(|(_, d)| d.stage == index && (d.to > d.from) == up)
                    .count() as u64;
                let mut labels = self.labels(&stage.name);
                labels.push(("direction", direction.to_owned()));
                samples.push((labels, Value::Count(n)));
            }
        }
        samples
    }

    fn wedges(&self) -> Vec<(Labels, Value<'_>)> {
        self.parts()
            .map(|part| {
                let n = self
                    .report
                    .wedges()
                    .iter()
                    .filter(|(_, w)| {
                        w.parts.iter().any(|p| {
                            p.name == part.name
                                && p.workers
                                    .iter()
                                    .any(|s| s.activity == WorkerActivity::InStageCode)
                        })
                    })
                    .count() as u64;
                (self.labels(&part.name), Value::Count(n))
            })
            .collect()
    }
}
