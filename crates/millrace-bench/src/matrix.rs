//! The matrix: every selected workload through every implementation, timed in one process
//! run, then peak memory in child processes, with every checksum checked against the
//! sequential loop's.
//!
//! Progress goes to stderr so that stdout holds only the tables. A failed implementation or
//! a checksum mismatch does not stop the matrix: it is collected in
//! [`MatrixResult::errors`], and the binary exits nonzero after printing what it has.

use std::time::Instant;

use crate::cli::Options;
use crate::error::Error;
use crate::machine;
use crate::measure::{measure, Measurement};
use crate::rss::{measure_in_child, Allocator, ChildRun};
use crate::workloads::{w5_large, Implementation, Workload};

/// One implementation's measurement.
#[derive(Clone, Debug)]
pub struct Row {
    /// How the workload ran.
    pub implementation: Implementation,
    /// Its timed runs.
    pub measurement: Measurement,
    /// For a row as a user writes it: what the adaptive batch sizes and the autoscaler
    /// chose in its last run.
    pub chosen: Option<String>,
}

/// One workload's rows.
#[derive(Clone, Debug)]
pub struct WorkloadResult {
    /// The workload.
    pub workload: Workload,
    /// Items per run.
    pub n: u64,
    /// Every implementation that ran, baselines first.
    pub rows: Vec<Row>,
}

impl WorkloadResult {
    /// The rate of the first row of the named implementation (`sequential`, `rayon`,
    /// `crossbeam`).
    pub fn rate_of(&self, name: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|row| row.implementation.name() == name)
            .map(|row| row.measurement.rate())
    }

    /// The fastest millrace row.
    pub fn best_millrace(&self) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|row| matches!(row.implementation, Implementation::Millrace(_)))
            .max_by(|a, b| a.measurement.rate().total_cmp(&b.measurement.rate()))
    }

    /// The ideal rate on `cores` cores: cores × the sequential loop's rate (W2 and W4 only).
    pub fn ideal(&self, cores: usize) -> Option<f64> {
        if !self.workload.has_ideal() {
            return None;
        }
        self.rate_of("sequential").map(|rate| rate * cores as f64)
    }
}

/// One peak-memory figure: the median of one or more child runs.
#[derive(Clone, Debug)]
pub struct RssRow {
    /// The workload.
    pub workload: Workload,
    /// The implementation's name.
    pub implementation: &'static str,
    /// How it was configured, for the table.
    pub setup: String,
    /// Items.
    pub n: u64,
    /// How the children's allocator was set up.
    pub allocator: Allocator,
    /// Each child run's peak resident set, in KiB, sorted.
    pub peaks_kib: Vec<u64>,
    /// The checksum the children reported.
    pub checksum: u64,
    /// The most 1 MiB buffers the settings allow in flight (W5).
    pub in_flight: Option<usize>,
}

/// Everything one matrix run measured.
#[derive(Debug, Default)]
pub struct MatrixResult {
    /// Cores available.
    pub cores: usize,
    /// The workloads run, in order (pending ones with no rows).
    pub workloads: Vec<WorkloadResult>,
    /// Peak-memory figures.
    pub rss: Vec<RssRow>,
    /// Failures and checksum mismatches: any makes the run fail.
    pub errors: Vec<Error>,
}

impl RssRow {
    /// The median peak in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.peaks_kib
            .get(self.peaks_kib.len() / 2)
            .map_or(0.0, |&kib| kib as f64 / 1024.0)
    }
}

impl MatrixResult {
    /// The result for `workload`, if it ran.
    pub fn workload(&self, workload: Workload) -> Option<&WorkloadResult> {
        self.workloads.iter().find(|w| w.workload == workload)
    }

    /// The peak-memory figure of `implementation` on `workload` at `n` items.
    pub fn rss_of(
        &self,
        workload: Workload,
        implementation: &str,
        n: u64,
        allocator: Allocator,
    ) -> Option<&RssRow> {
        self.rss.iter().find(|r| {
            r.workload == workload
                && r.implementation == implementation
                && r.n == n
                && r.allocator == allocator
        })
    }
}

/// One line of the peak-memory plan.
struct RssPlan {
    workload: Workload,
    implementation: &'static str,
    /// The run's N as a multiple of the workload's.
    multiple: u64,
    /// Child runs; the table shows the median peak and the range.
    repeats: usize,
    allocator: Allocator,
}

const fn plan(
    workload: Workload,
    implementation: &'static str,
    multiple: u64,
    repeats: usize,
) -> RssPlan {
    RssPlan {
        workload,
        implementation,
        multiple,
        repeats,
        allocator: Allocator::Default,
    }
}

impl RssPlan {
    const fn returning_freed(self) -> RssPlan {
        RssPlan {
            allocator: Allocator::ReturnsFreed,
            ..self
        }
    }
}

/// The W5 run that shows the peak does not grow with N, as a multiple of N.
pub const W5_LONG_RUN: u64 = 4;

/// The W1 run that shows the peak does not grow with N, as a multiple of N.
pub const W1_LONG_RUN: u64 = 10;

/// The peak-memory runs. Each N (and allocator setting) is also run sequentially, for the
/// floor of a process's own memory and the reference checksum. With the default allocator,
/// peaks of one configuration vary by a few MiB from run to run (where the allocator happens
/// to keep freed buffers), hence the repeats; W5 is run again with an allocator that returns
/// freed buffers, whose peak follows the live buffers.
const RSS_PLAN: [RssPlan; 11] = [
    plan(Workload::W1Seed, "sequential", 1, 1),
    plan(Workload::W1Seed, "millrace", 1, 3),
    plan(Workload::W1Seed, "sequential", W1_LONG_RUN, 1),
    plan(Workload::W1Seed, "millrace", W1_LONG_RUN, 3),
    plan(Workload::W5Large, "sequential", 1, 1),
    plan(Workload::W5Large, "crossbeam", 1, 3),
    plan(Workload::W5Large, "millrace", 1, 3),
    plan(Workload::W5Large, "sequential", W5_LONG_RUN, 1),
    plan(Workload::W5Large, "millrace", W5_LONG_RUN, 3),
    plan(Workload::W5Large, "sequential", 1, 1).returning_freed(),
    plan(Workload::W5Large, "millrace", 1, 3).returning_freed(),
];

/// How the table describes an implementation's setup: threads, settings.
pub fn setup(workload: Workload, implementation: &Implementation) -> String {
    match implementation {
        Implementation::Sequential => "1 thread".to_owned(),
        Implementation::Rayon => format!("rayon pool, {} threads", machine::cores()),
        Implementation::Crossbeam => format!(
            "{} threads (source, 1 per stage, sink), 1 item/msg, cap {}",
            workload.stages() + 2,
            workload.channel_capacity()
        ),
        Implementation::Millrace(config) => match config.threads() {
            // Equal neighbours start fused and split once busy (adaptive fusion): what ran
            // is under "What the adaptive batch sizes and the autoscaler chose".
            Some(threads) if config.is_as_written() => {
                format!("{config} (up to {threads} threads)")
            }
            Some(threads) => format!("{config} ({threads} threads)"),
            None => format!("{config} (autoscaled, {} cores)", machine::cores()),
        },
    }
}

fn run_workload(options: &Options, workload: Workload, errors: &mut Vec<Error>) -> WorkloadResult {
    let n = options.n(workload);
    let mut rows: Vec<Row> = Vec::new();
    for implementation in workload.implementations() {
        let label = format!("{workload} · {}", setup(workload, &implementation));
        eprint!("  {label} … ");
        let start = Instant::now();
        let measured = measure(
            workload.code(),
            implementation.name(),
            options.runs(),
            n,
            || workload.run(&implementation, n),
        );
        match measured {
            Ok(measurement) => {
                eprintln!(
                    "{:.2} M items/s ({} runs, {:.1} s)",
                    measurement.rate() / 1e6,
                    measurement.times.len(),
                    start.elapsed().as_secs_f64()
                );
                let last = crate::workloads::take_last_report();
                let chosen = match &implementation {
                    Implementation::Millrace(c) if c.is_as_written() => {
                        last.as_ref().map(crate::workloads::chosen)
                    }
                    _ => None,
                };
                rows.push(Row {
                    implementation,
                    measurement,
                    chosen,
                });
            }
            Err(e) => {
                eprintln!("FAILED: {e}");
                errors.push(e);
            }
        }
    }
    check_checksums(workload, n, &rows, errors);
    WorkloadResult { workload, n, rows }
}

fn check_checksums(workload: Workload, n: u64, rows: &[Row], errors: &mut Vec<Error>) {
    let Some(sequential) = rows
        .iter()
        .find(|row| row.implementation == Implementation::Sequential)
    else {
        return;
    };
    let expected = sequential.measurement.checksum;
    if let Some(reference) = workload.reference_checksum(n) {
        if reference != expected {
            errors.push(Error::Checksum {
                workload: workload.code(),
                implementation: "sequential (vs bench-workloads.md)".into(),
                expected: reference,
                got: expected,
            });
        }
    }
    for row in rows {
        if row.measurement.checksum != expected {
            errors.push(Error::Checksum {
                workload: workload.code(),
                implementation: format!(
                    "{} ({})",
                    row.implementation.name(),
                    setup(workload, &row.implementation)
                ),
                expected,
                got: row.measurement.checksum,
            });
        }
    }
}

/// Runs one line of the plan: `repeats` children, every checksum checked.
fn run_children(
    workload: Workload,
    name: &str,
    n: u64,
    repeats: usize,
    allocator: Allocator,
    errors: &mut Vec<Error>,
) -> Option<(u64, Vec<u64>)> {
    let mut runs: Vec<ChildRun> = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        match measure_in_child(workload, name, n, allocator) {
            Ok(run) => runs.push(run),
            Err(e) => {
                eprintln!("FAILED: {e}");
                errors.push(e);
                return None;
            }
        }
    }
    let checksum = runs.first()?.checksum;
    if let Some(other) = runs.iter().find(|run| run.checksum != checksum) {
        errors.push(Error::Checksum {
            workload: workload.code(),
            implementation: format!("{name} in a peak-memory child at n = {n}"),
            expected: checksum,
            got: other.checksum,
        });
    }
    let mut peaks: Vec<u64> = runs.iter().map(|run| run.peak_kib).collect();
    peaks.sort_unstable();
    Some((checksum, peaks))
}

fn run_rss(options: &Options, result: &mut MatrixResult) {
    for line in RSS_PLAN {
        let (workload, name) = (line.workload, line.implementation);
        if !options.only.contains(&workload) {
            continue;
        }
        let n = options.n(workload) * line.multiple;
        let Some(implementation) = Implementation::parse(workload, name) else {
            continue;
        };
        eprint!(
            "  peak memory: {workload} · {name} at n = {n} × {} (allocator: {}) … ",
            line.repeats,
            line.allocator.label()
        );
        let Some((checksum, peaks_kib)) = run_children(
            workload,
            name,
            n,
            line.repeats,
            line.allocator,
            &mut result.errors,
        ) else {
            continue;
        };
        let mib: Vec<String> = peaks_kib
            .iter()
            .map(|kib| format!("{:.1}", *kib as f64 / 1024.0))
            .collect();
        eprintln!("{} MiB", mib.join(", "));
        if let Some(reference) = result.rss_of(workload, "sequential", n, line.allocator) {
            if reference.checksum != checksum {
                result.errors.push(Error::Checksum {
                    workload: workload.code(),
                    implementation: format!("{name} in the peak-memory child at n = {n}"),
                    expected: reference.checksum,
                    got: checksum,
                });
            }
        }
        let in_flight = match (workload, &implementation) {
            (Workload::W5Large, Implementation::Millrace(config)) => {
                Some(w5_large::millrace_in_flight(config))
            }
            (Workload::W5Large, Implementation::Crossbeam) => Some(w5_large::channel_in_flight()),
            (Workload::W5Large, _) => Some(1),
            _ => None,
        };
        result.rss.push(RssRow {
            workload,
            implementation: implementation.name(),
            setup: setup(workload, &implementation),
            n,
            allocator: line.allocator,
            peaks_kib,
            checksum,
            in_flight,
        });
    }
}

/// Runs the matrix the options select.
pub fn run(options: &Options) -> MatrixResult {
    let mut result = MatrixResult {
        cores: machine::cores(),
        ..MatrixResult::default()
    };
    for &workload in &options.only {
        if let Some(reason) = workload.pending() {
            eprintln!("{workload}: {reason}");
            result.workloads.push(WorkloadResult {
                workload,
                n: options.n(workload),
                rows: Vec::new(),
            });
            continue;
        }
        eprintln!(
            "{workload}: n = {}, at least {} runs each",
            options.n(workload),
            options.runs
        );
        let measured = run_workload(options, workload, &mut result.errors);
        result.workloads.push(measured);
    }
    if options.rss {
        run_rss(options, &mut result);
    }
    result
}
