//! Autoscaling: four CPU stages of unequal cost and no worker counts to guess.
//!
//! `compress` costs four units of work per item, the other stages one each (the shape of the
//! benchmark workload W2). The pipeline runs twice on every core:
//!
//! 1. `autoscale()` as is: adjacent auto stages share workers, so the four run fused as one
//!    segment that starts on the whole CPU budget: every worker takes a batch through all
//!    four stages, and no stage waits on another;
//! 2. with `fuse_auto(false)`: each stage on its own workers, and the controller moves
//!    workers to the stage that limits throughput (`compress`), printing why.
//!
//! Then it writes a file through a sink that can fail (`try_for_each`): one line in a
//! thousand is refused and reported, the rest are written.
//!
//! Run with `cargo run --release -p millrace --example autoscale -- 300000`.

use std::io::Write;
use std::time::Instant;

use millrace::{Pipeline, Report};
// `units` of CPU work: the benchmark workloads' unit (200 rounds of an LCG step).
use millrace_workloads::spin;

fn run(n: u64, fuse_auto: bool) -> Result<(u64, Report, f64), millrace::RunError> {
    let start = Instant::now();
    let finished = Pipeline::source(0..n)
        .autoscale()
        .fuse_auto(fuse_auto)
        .default_batch(64)
        .map("parse", |x| spin(1, x))
        .map("enrich", |x| spin(1, x))
        .map("compress", |x| spin(4, x))
        .map("index", |x| spin(1, x))
        .fold(0u64, |sum, x| sum.wrapping_add(x))
        .run()?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    Ok((finished.output, finished.report, rate))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| format!("the item count {arg:?} is not a number: {e}"))?,
        None => 300_000,
    };
    for (fuse_auto, title) in [(true, "fused (the default)"), (false, "stages apart")] {
        let (checksum, report, rate) = run(n, fuse_auto)?;
        let layout: Vec<String> = report
            .stages()
            .iter()
            .map(|s| {
                let fused = if s.fused { " (fused)" } else { "" };
                format!("{} ×{}{fused}", s.name, s.workers)
            })
            .collect();
        println!("== {title}: {rate:.0} items/s, checksum {checksum}");
        println!("   stages: {}", layout.join(", "));
        for (at, decision) in report.decisions() {
            println!("   at {:.2} s: {}", at.as_secs_f64(), decision.reason);
        }
        if let Some(b) = report.bottleneck() {
            println!("   bottleneck: {}", b.reason);
        }
    }

    // A sink that can fail: refuse every thousandth line; the run goes on without it.
    let path = std::env::temp_dir().join("millrace-autoscale-example.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let finished = Pipeline::source(0..10_000u64)
        .autoscale()
        .map("render", |x| format!("{x}: {}", spin(1, x)))
        .try_for_each(
            move |line: &String| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                if line.starts_with("999") {
                    return Err(format!("refusing {line:?}").into());
                }
                writeln!(file, "{line}")?;
                Ok(())
            },
        )
        .run()?;
    let report = finished.report;
    println!(
        "== try_for_each: {} lines written to {}, {} refused (first: {})",
        report.delivered(),
        path.display(),
        report.failed(),
        report
            .errors()
            .first()
            .map_or(String::new(), |e| e.to_string())
    );
    Ok(())
}
