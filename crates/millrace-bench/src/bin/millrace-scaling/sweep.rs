//! The scale sweep: W6-shaped work (every stage `y + 1`) through 1, 4, 16 and 64 stages, each
//! with 1 to 256 workers, nothing else set (batch sizes adapt). It records how throughput per
//! core degrades as threads outnumber cores (issue 13: the worst point no worse than half the
//! best).
//!
//! Throughput is counted in hops: items per second × stages, per core of the machine, so
//! points with different stage counts compare.

use std::time::Instant;

use millrace::{Pipeline, Stage};

use crate::{median_of, Options};

/// Items of one point: about the same work (items × stages) at every stage count, 80 M hops:
/// a point runs for 100–300 ms. (With 8 M hops a one-stage point ran 12 ms, and one late
/// wake-up of a thread, a scheduler time slice, doubled it in some runs.)
fn items(stages: usize, quick: bool) -> u64 {
    if quick {
        10_000
    } else {
        (80_000_000 / stages as u64).max(1_000_000)
    }
}

fn expected(n: u64, stages: usize) -> u64 {
    (0..n).fold(0u64, |sum, x| sum.wrapping_add(x + stages as u64))
}

/// Runs one point: its checksum, and the threads it ran at the end (the workers of every
/// stage not fused with the one before, the source and the sink).
fn point(n: u64, stages: usize, workers: usize) -> Result<(u64, usize), String> {
    let mut builder = Pipeline::source(0..n)
        .default_workers(workers)
        .stage(Stage::map("hop0", |y: u64| y + 1));
    for hop in 1..stages {
        builder = builder.stage(Stage::map(&format!("hop{hop}"), |y: u64| y + 1));
    }
    let finished = builder
        .fold(0u64, u64::wrapping_add)
        .run()
        .map_err(|e| e.to_string())?;
    // A stage fused with the one before (equal neighbours start fused, and stay so until
    // busy) runs on that stage's workers.
    let threads = finished
        .report
        .stages()
        .iter()
        .filter(|s| !s.fused)
        .map(|s| s.workers)
        .sum::<usize>()
        + 2;
    Ok((finished.output, threads))
}

pub(crate) fn run(options: &Options) -> Result<(), String> {
    let cores = millrace_bench::machine::cores();
    let (stage_counts, worker_counts): (&[usize], &[usize]) = if options.quick {
        (&[1, 4], &[1, 4])
    } else {
        (&[1, 4, 16, 64], &[1, 4, 16, 64, 256])
    };
    println!();
    println!(
        "## Scale sweep — W6-shaped stages (y + 1), nothing set but the workers, {} run(s), median; {cores} cores",
        options.runs
    );
    println!();
    print!("| stages \\ workers per stage |");
    for w in worker_counts {
        print!(" {w} |");
    }
    println!();
    print!("|---|");
    for _ in worker_counts {
        print!("---:|");
    }
    println!();
    let mut points = Vec::new();
    for &stages in stage_counts {
        let n = items(stages, options.quick);
        let want = expected(n, stages);
        print!("| {stages} (N = {n}) |");
        for &workers in worker_counts {
            let (time, sum) = median_of(options.runs, || {
                let start = Instant::now();
                let sum = point(n, stages, workers);
                (start.elapsed(), sum)
            })?;
            let (sum, threads) = sum?;
            if sum != want {
                return Err(format!(
                    "{stages} stages × {workers} workers: checksum {sum}, expected {want}"
                ));
            }
            let per_core = n as f64 * stages as f64 / time.as_secs_f64() / cores as f64;
            points.push((stages, workers, per_core));
            print!(
                " {:.1} M ({} of {} thr) |",
                per_core / 1e6,
                threads,
                stages * workers + 2
            );
        }
        println!();
    }
    let best = points.iter().map(|p| p.2).fold(0.0, f64::max);
    let Some(worst) = points.iter().min_by(|a, b| a.2.total_cmp(&b.2)) else {
        return Ok(());
    };
    let ratio = worst.2 / best;
    // Within a row (the same stages, more workers): what threads outnumbering cores costs,
    // without the per-item work of the source and the sink, which one stage's single hop
    // per item cannot amortise.
    let within_rows = stage_counts
        .iter()
        .map(|&stages| {
            let row = points.iter().filter(|p| p.0 == stages).map(|p| p.2);
            let best = row.clone().fold(0.0, f64::max);
            row.fold(f64::INFINITY, f64::min) / best
        })
        .fold(f64::INFINITY, f64::min);
    println!();
    println!(
        "Hops per second per core, millions (in brackets: the threads running at the end, of those the worker counts ask for; fixed workers beyond the cores start while all of a stage's workers are busy, and equal neighbours start fused and split once busy). Worst point: {} stages × {} workers, {:.2} of the best ({}; target ≥ 0.5).",
        worst.0,
        worst.1,
        ratio,
        if ratio >= 0.5 { "met" } else { "MISSED" }
    );
    println!(
        "Within each row (same stages, more workers), the worst point is {within_rows:.2} of the row's best."
    );
    Ok(())
}
