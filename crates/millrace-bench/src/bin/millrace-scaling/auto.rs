//! Autoscaling: W2 and W4 with every stage on `auto` against the best hand-set worker counts
//! of a sweep in the same run and the ideal (cores × the sequential loop's rate); W2 whose
//! heavy stage moves half-way (`c` heavy for the first half, `a` for the second) with the
//! worker counts over time; and what the controller itself costs.

use std::time::{Duration, Instant};

use millrace::{Pipeline, PipelineBuilder, Report, Stage};
use millrace_bench::work::spin;

use crate::{median_of, Options};

/// Stage costs, in spin units, for item `x` of `n`.
#[derive(Clone, Copy)]
enum Costs {
    /// W2: 1, 1, 4, 1 throughout.
    W2,
    /// 1, 1, 4, 1 for the first half, then 4, 1, 1, 1.
    Shifting,
}

impl Costs {
    fn units(self, stage: usize, x: u64, n: u64) -> u32 {
        match (self, x < n / 2) {
            (Costs::W2, _) | (Costs::Shifting, true) => [1, 1, 4, 1][stage],
            (Costs::Shifting, false) => [4, 1, 1, 1][stage],
        }
    }
}

/// How the pipeline's workers are set.
#[derive(Clone, Debug)]
enum Setup {
    /// Every stage on auto: fused into one autoscaled segment (the default).
    Auto,
    /// Every stage on auto, each on its own workers (`fuse_auto(false)`).
    AutoApart,
    Fixed([usize; 4]),
    /// Every stage on all cores, fused into one segment.
    Fused,
}

impl Setup {
    fn is_auto(&self) -> bool {
        matches!(self, Setup::Auto | Setup::AutoApart)
    }

    fn label(&self, cores: usize) -> String {
        match self {
            Setup::Auto => format!("auto (cpu budget {cores})"),
            Setup::AutoApart => format!("auto, stages apart (cpu budget {cores})"),
            Setup::Fixed(w) => format!("workers {},{},{},{}", w[0], w[1], w[2], w[3]),
            Setup::Fused => format!("fused, {cores} workers"),
        }
    }
}

struct Run {
    time: Duration,
    checksum: u64,
    report: Report,
}

fn pipeline(
    costs: Costs,
    setup: &Setup,
    n: u64,
    ordered: bool,
    cores: usize,
) -> Result<Run, String> {
    // Items carry their input x beside the value, so each stage's cost can depend on x.
    let stage = |i: usize, name: &str| {
        let s = Stage::map(name, move |(x, v): (u64, u64)| {
            (x, spin(costs.units(i, x, n), v))
        });
        let s = match setup {
            Setup::Auto | Setup::AutoApart => s,
            Setup::Fixed(w) => s.workers(w[i]),
            Setup::Fused => s.workers(cores),
        };
        if ordered && i == 3 {
            s.ordered()
        } else {
            s
        }
    };
    let mut p: PipelineBuilder<(u64, u64)> =
        Pipeline::source((0..n).map(|x| (x, x))).default_batch(64);
    p = match setup {
        Setup::Auto => p
            .autoscale()
            .cpu_budget(cores)
            .autoscale_interval(Duration::from_millis(100)),
        Setup::AutoApart => p
            .autoscale()
            .fuse_auto(false)
            .cpu_budget(cores)
            .autoscale_interval(Duration::from_millis(100)),
        Setup::Fused => p.fuse(),
        Setup::Fixed(_) => p,
    };
    let start = Instant::now();
    let finished = p
        .stage(stage(0, "a"))
        .stage(stage(1, "b"))
        .stage(stage(2, "c"))
        .stage(stage(3, "d"))
        .fold(0u64, move |h, (_, d)| {
            if ordered {
                h.wrapping_mul(31).wrapping_add(d)
            } else {
                h.wrapping_add(d)
            }
        })
        .run()
        .map_err(|e| e.to_string())?;
    Ok(Run {
        time: start.elapsed(),
        checksum: finished.output,
        report: finished.report,
    })
}

fn sequential(costs: Costs, n: u64, ordered: bool) -> (Duration, u64) {
    let start = Instant::now();
    let h = (0..n).fold(0u64, |h, x| {
        let d = (0..4).fold(x, |v, i| spin(costs.units(i, x, n), v));
        if ordered {
            h.wrapping_mul(31).wrapping_add(d)
        } else {
            h.wrapping_add(d)
        }
    });
    (start.elapsed(), h)
}

/// The median run of each setup, with its report. The setups take turns run by run, so a
/// change of the machine's load falls on all of them alike, and each round starts with the
/// next setup, so none is always first (or always right after a given other).
fn measure_all(
    options: &Options,
    costs: Costs,
    setups: &[Setup],
    n: u64,
    ordered: bool,
    cores: usize,
) -> Result<Vec<Run>, String> {
    let mut runs: Vec<Vec<Run>> = setups.iter().map(|_| Vec::new()).collect();
    for round in 0..options.runs {
        for turn in 0..setups.len() {
            let i = (round + turn) % setups.len();
            runs[i].push(pipeline(costs, &setups[i], n, ordered, cores)?);
        }
    }
    setups
        .iter()
        .zip(runs)
        .map(|(setup, mut runs)| {
            if runs.iter().any(|r| r.checksum != runs[0].checksum) {
                return Err(format!("{setup:?}: runs disagree"));
            }
            runs.sort_by_key(|r| r.time);
            Ok(runs.swap_remove(runs.len() / 2))
        })
        .collect()
}

fn workers_over_time(report: &Report) -> String {
    report
        .worker_history()
        .iter()
        .map(|(at, w)| {
            format!(
                "{:.1} s: {}",
                at.as_secs_f64(),
                w.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn workload(
    options: &Options,
    title: &str,
    costs: Costs,
    ordered: bool,
    n: u64,
) -> Result<(), String> {
    let cores = millrace_bench::machine::cores();
    let (seq_time, expected) = median_of(options.runs, || sequential(costs, n, ordered))?;
    let seq_rate = n as f64 / seq_time.as_secs_f64();
    let ideal = seq_rate * cores as f64;
    let setups = [
        Setup::Auto,
        Setup::AutoApart,
        Setup::Fixed([1, 1, 2, 1]),
        Setup::Fixed([1, 1, 1, 1]),
        Setup::Fixed([2, 2, 2, 2]),
        Setup::Fused,
    ];
    println!();
    println!("## {title} — N = {n}, {} run(s), median; ideal = {cores} cores × sequential {seq_rate:.0}/s = {ideal:.0} items/s", options.runs);
    println!();
    println!(
        "| setup | items/s | × ideal | × best hand-set | controller CPU | workers over time |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    let mut rows = Vec::new();
    for (setup, run) in setups
        .iter()
        .zip(measure_all(options, costs, &setups, n, ordered, cores)?)
    {
        if run.checksum != expected {
            return Err(format!(
                "{}: checksum {} != sequential {expected}",
                setup.label(cores),
                run.checksum
            ));
        }
        rows.push((setup, run));
    }
    let best_fixed = rows
        .iter()
        .filter(|(s, _)| !s.is_auto())
        .map(|(_, r)| n as f64 / r.time.as_secs_f64())
        .fold(0.0, f64::max);
    for (setup, run) in &rows {
        let rate = n as f64 / run.time.as_secs_f64();
        let controller =
            run.report.controller_busy().as_secs_f64() / (run.time.as_secs_f64() * cores as f64);
        let history = if setup.is_auto() {
            workers_over_time(&run.report)
        } else {
            String::new()
        };
        println!(
            "| {} | {rate:.0} | {:.3} | {:.3} | {} | {history} |",
            setup.label(cores),
            rate / ideal,
            rate / best_fixed,
            if setup.is_auto() {
                format!("{:.3}%", controller * 100.0)
            } else {
                "-".into()
            },
        );
    }
    for (setup, run) in rows.iter().filter(|(s, _)| s.is_auto()) {
        for (at, d) in run.report.decisions() {
            println!(
                "- {}, at {:.2} s: {}",
                setup.label(cores),
                at.as_secs_f64(),
                d.reason
            );
        }
    }
    Ok(())
}

pub(crate) fn run(options: &Options) -> Result<(), String> {
    let (n, n_shift) = if options.quick {
        (2_000, 4_000)
    } else {
        (1_000_000, 1_000_000)
    };
    workload(options, "W2 imbalanced, autoscaled", Costs::W2, false, n)?;
    workload(options, "W4 ordered, autoscaled", Costs::W2, true, n)?;
    workload(
        options,
        "W2 with the heavy stage moving half-way (c, then a)",
        Costs::Shifting,
        false,
        n_shift,
    )
}
