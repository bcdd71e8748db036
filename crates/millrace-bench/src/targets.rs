//! The targets of issue 3, judged from one matrix run: met or missed, and by how much.
//!
//! | workload | target | judged as |
//! |---|---|---|
//! | W1 | ≥ 20× the crossbeam pipeline | best millrace rate / crossbeam rate |
//! | W2 | ≥ 0.95 of ideal | best millrace rate of the sweep / (cores × sequential rate) |
//! | W4 | ≥ 0.93 of ideal | as W2 |
//! | W5 | no copy; RSS ≈ in flight × 1 MiB, whatever N | with an allocator that returns freed buffers, millrace's median peak above the sequential run's ≤ 1.25 × (in-flight bound − 1) MiB; with the default allocator, median peak at 4·N ≤ 1.1 × at N |
//! | W6 | ≤ 3 ns per item per hop | median time / (N × 10 hops), best configuration (fused or not) |
//! | memory | W1 peak RSS at 10·N within 10% of N | median peak(10·N) / median peak(N) ≤ 1.1 |

use crate::matrix::{MatrixResult, Row, W1_LONG_RUN, W5_LONG_RUN};
use crate::rss::Allocator;
use crate::workloads::{w6_hops, Implementation, Workload};

/// One target's verdict.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// What the target is about, e.g. `W1 seed`.
    pub subject: String,
    /// The target as issue 3 states it.
    pub target: &'static str,
    /// What was measured.
    pub measured: String,
    /// Met, missed, or `None` when this run did not measure it.
    pub met: Option<bool>,
}

impl Verdict {
    /// `met`, `MISSED` or `not measured`.
    pub fn status(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        }
    }
}

/// How a row was configured, for the verdict's text.
fn config_of(row: &Row) -> String {
    match &row.implementation {
        Implementation::Millrace(config) => config.to_string(),
        other => other.name().to_owned(),
    }
}

fn not_measured(subject: &str, target: &'static str) -> Verdict {
    Verdict {
        subject: subject.to_owned(),
        target,
        measured: "—".to_owned(),
        met: None,
    }
}

/// `value` against a floor: met, or short by how much.
fn at_least(value: f64, floor: f64, unit: &str) -> (String, bool) {
    if value >= floor {
        (format!("{value:.2}{unit}"), true)
    } else {
        let short = 100.0 * (1.0 - value / floor);
        (format!("{value:.2}{unit} ({short:.0}% short)"), false)
    }
}

fn w1(result: &MatrixResult) -> Verdict {
    const TARGET: &str = "≥ 20× the 1-item-per-message crossbeam pipeline";
    let subject = "W1 seed";
    let Some(w) = result.workload(Workload::W1Seed) else {
        return not_measured(subject, TARGET);
    };
    match (w.best_millrace(), w.rate_of("crossbeam")) {
        (Some(best), Some(crossbeam)) => {
            let (measured, met) = at_least(best.measurement.rate() / crossbeam, 20.0, "×");
            Verdict {
                subject: subject.to_owned(),
                target: TARGET,
                measured: format!(
                    "{measured}: {:.1} vs {:.1} M items/s ({})",
                    best.measurement.rate() / 1e6,
                    crossbeam / 1e6,
                    config_of(best)
                ),
                met: Some(met),
            }
        }
        _ => not_measured(subject, TARGET),
    }
}

fn of_ideal(
    result: &MatrixResult,
    workload: Workload,
    floor: f64,
    target: &'static str,
) -> Verdict {
    let subject = workload.to_string();
    let Some(w) = result.workload(workload) else {
        return not_measured(&subject, target);
    };
    match (w.best_millrace(), w.ideal(result.cores)) {
        (Some(best), Some(ideal)) => {
            let (measured, met) = at_least(best.measurement.rate() / ideal, floor, " of ideal");
            let config = config_of(best);
            Verdict {
                subject,
                target,
                measured: format!("{measured}, best of the sweep: {config}"),
                met: Some(met),
            }
        }
        _ => not_measured(&subject, target),
    }
}

fn w5(result: &MatrixResult) -> Verdict {
    const TARGET: &str = "no copy: peak RSS ≈ in-flight × 1 MiB, independent of N";
    let subject = "W5 large";
    let Some(w) = result.workload(Workload::W5Large) else {
        return not_measured(subject, TARGET);
    };
    let n = w.n;
    let rss = |implementation, n, allocator| {
        result.rss_of(Workload::W5Large, implementation, n, allocator)
    };
    let rows = (
        rss("millrace", n, Allocator::ReturnsFreed),
        rss("sequential", n, Allocator::ReturnsFreed),
        rss("millrace", n, Allocator::Default),
        rss("millrace", W5_LONG_RUN * n, Allocator::Default),
        rss("sequential", n, Allocator::Default),
    );
    let (Some(freed), Some(freed_floor), Some(at_n), Some(at_long), Some(floor)) = rows else {
        return not_measured(subject, TARGET);
    };
    // The sequential run holds one buffer itself: the pipeline's extra buffers are the
    // bound less one.
    let extra = at_n.in_flight.unwrap_or(1).saturating_sub(1) as f64;
    let above_freed = freed.peak_mib() - freed_floor.peak_mib();
    let above_default = at_n.peak_mib() - floor.peak_mib();
    let growth = at_long.peak_mib() / at_n.peak_mib();
    let speed = match (w.best_millrace(), w.rate_of("sequential")) {
        (Some(best), Some(seq)) => format!(
            "; {:.2}× the plain loop's rate",
            best.measurement.rate() / seq
        ),
        _ => String::new(),
    };
    Verdict {
        subject: subject.to_owned(),
        target: TARGET,
        measured: format!(
            "{above_freed:.1} MiB above the sequential run for {extra:.0} extra buffers in flight \
             with an allocator that returns freed buffers ({above_default:.1} MiB with glibc's \
             defaults, which keep freed buffers for reuse); median peak at {W5_LONG_RUN}·N / at \
             N = {growth:.2}{speed}"
        ),
        met: Some(above_freed <= 1.25 * extra && growth <= 1.1),
    }
}

fn w6(result: &MatrixResult) -> Verdict {
    const TARGET: &str = "≤ 3 ns per item per hop";
    let subject = "W6 hops";
    let Some(w) = result.workload(Workload::W6Hops) else {
        return not_measured(subject, TARGET);
    };
    let per_hop = |row: &Row| row.measurement.ns_per_item() / w6_hops::HOPS as f64;
    let Some(best) = w.best_millrace() else {
        return not_measured(subject, TARGET);
    };
    let best_ns = per_hop(best);
    let mut measured = if best_ns <= 3.0 {
        format!("{best_ns:.2} ns ({})", config_of(best))
    } else {
        format!(
            "{best_ns:.2} ns, {:.1}× the target ({})",
            best_ns / 3.0,
            config_of(best)
        )
    };
    let unfused = w
        .rows
        .iter()
        .filter(|row| matches!(&row.implementation, Implementation::Millrace(c) if !c.fuse))
        .map(per_hop)
        .min_by(f64::total_cmp);
    if let Some(unfused) = unfused {
        measured.push_str(&format!("; without fusion {unfused:.2} ns"));
    }
    Verdict {
        subject: subject.to_owned(),
        target: TARGET,
        measured,
        met: Some(best_ns <= 3.0),
    }
}

fn memory(result: &MatrixResult) -> Verdict {
    const TARGET: &str = "W1 peak RSS at 10·N within 10% of N";
    let subject = "memory";
    let Some(w) = result.workload(Workload::W1Seed) else {
        return not_measured(subject, TARGET);
    };
    let (Some(at_n), Some(at_10n)) = (
        result.rss_of(Workload::W1Seed, "millrace", w.n, Allocator::Default),
        result.rss_of(
            Workload::W1Seed,
            "millrace",
            W1_LONG_RUN * w.n,
            Allocator::Default,
        ),
    ) else {
        return not_measured(subject, TARGET);
    };
    let ratio = at_10n.peak_mib() / at_n.peak_mib();
    Verdict {
        subject: subject.to_owned(),
        target: TARGET,
        measured: format!(
            "{:.1} MiB at 10·N vs {:.1} MiB at N ({:+.1}%)",
            at_10n.peak_mib(),
            at_n.peak_mib(),
            100.0 * (ratio - 1.0)
        ),
        met: Some(ratio <= 1.1),
    }
}

/// Every target of issue 3, judged from `result`.
pub fn evaluate(result: &MatrixResult) -> Vec<Verdict> {
    vec![
        w1(result),
        of_ideal(
            result,
            Workload::W2Imbalanced,
            0.95,
            "≥ 0.95 of ideal (cores × sequential)",
        ),
        of_ideal(
            result,
            Workload::W4Ordered,
            0.93,
            "≥ 0.93 of ideal (cores × sequential)",
        ),
        w5(result),
        w6(result),
        memory(result),
    ]
    .into_iter()
    .chain(as_written(result))
    .collect()
}

/// The targets of issue 13, on the rows "as a user writes it" (no batch size set): W1 ≥ 20×
/// the crossbeam pipeline, W2 and W4 ≥ 0.95 of ideal, W6 ≤ 3 ns per hop with nothing set.
fn as_written(result: &MatrixResult) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for w in &result.workloads {
        let (floor, unit, target): (f64, &str, &'static str) = match w.workload {
            Workload::W1Seed => (20.0, "×", "as written: ≥ 20× the crossbeam pipeline"),
            Workload::W2Imbalanced | Workload::W4Ordered => {
                (0.95, " of ideal", "as written: ≥ 0.95 of ideal")
            }
            Workload::W6Hops => (
                3.0,
                " ns per hop",
                "as written, nothing set: ≤ 3 ns per hop",
            ),
            _ => continue,
        };
        let baseline = match w.workload {
            Workload::W1Seed => w.rate_of("crossbeam"),
            Workload::W6Hops => Some(1.0),
            _ => w.ideal(result.cores),
        };
        for row in &w.rows {
            let Implementation::Millrace(config) = &row.implementation else {
                continue;
            };
            if !config.is_as_written() {
                continue;
            }
            let subject = format!("{} · {config}", w.workload);
            let Some(baseline) = baseline else {
                verdicts.push(not_measured(&subject, target));
                continue;
            };
            let (measured, met) = if w.workload == Workload::W6Hops {
                if config.workers.is_some() {
                    continue; // the target is for nothing set
                }
                let ns = row.measurement.ns_per_item() / w6_hops::HOPS as f64;
                (format!("{ns:.2}{unit}"), ns <= floor)
            } else {
                at_least(row.measurement.rate() / baseline, floor, unit)
            };
            verdicts.push(Verdict {
                subject,
                target,
                measured,
                met: Some(met),
            });
        }
    }
    verdicts
}
