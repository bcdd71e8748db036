//! Light load: a source that yields one item per millisecond, through four cheap stages, with
//! nothing set. What matters here is not throughput but how long an item waits between the
//! source and the sink: a pipeline that batches for throughput must not hold a lone item back
//! waiting for company (issue 13: p99 under 1 ms).
//!
//! Measured in one run: millrace as a user writes it (nothing set), millrace with the batch
//! pinned to 256 (the fixed default before batch sizes adapted), and a hand-written crossbeam
//! pipeline (a thread per stage, one item per message). Each item carries the instant the
//! source made it; the sink records its age.

use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use millrace::{Pipeline, Stage};

use crate::Options;

const STAGES: usize = 4;
const GAP: Duration = Duration::from_millis(1);

/// One item per `GAP`, each stamped with the instant it was made.
fn paced(n: usize) -> impl Iterator<Item = (u64, Instant)> {
    (0..n as u64).map(|x| {
        std::thread::sleep(GAP);
        (x, Instant::now())
    })
}

fn step((x, born): (u64, Instant)) -> (u64, Instant) {
    (x.wrapping_add(1), born)
}

/// Source-to-sink latencies of `n` items through millrace (`batch`: pinned, or `None`).
fn millrace(n: usize, batch: Option<usize>) -> Result<Vec<Duration>, String> {
    let mut builder = Pipeline::source(paced(n)).stage(Stage::map("s1", step));
    if let Some(batch) = batch {
        builder = builder.default_batch(batch);
    }
    let finished = builder
        .stage(Stage::map("s2", step))
        .stage(Stage::map("s3", step))
        .stage(Stage::map("s4", step))
        .fold(Vec::with_capacity(n), |mut ages, (_, born)| {
            ages.push(born.elapsed());
            ages
        })
        .run()
        .map_err(|e| e.to_string())?;
    Ok(finished.output)
}

/// The same through a thread per stage and one item per message.
fn crossbeam(n: usize) -> Vec<Duration> {
    let (tx, mut rx) = bounded::<(u64, Instant)>(1024);
    let mut threads = vec![std::thread::spawn(move || {
        for item in paced(n) {
            if tx.send(item).is_err() {
                return;
            }
        }
    })];
    for _ in 0..STAGES {
        let (next_tx, next_rx) = bounded(1024);
        let input = std::mem::replace(&mut rx, next_rx);
        threads.push(std::thread::spawn(move || {
            for item in input {
                if next_tx.send(step(item)).is_err() {
                    return;
                }
            }
        }));
    }
    let ages = rx.iter().map(|(_, born)| born.elapsed()).collect();
    for t in threads {
        let _ = t.join();
    }
    ages
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

pub(crate) fn run(options: &Options) -> Result<(), String> {
    let n = if options.quick { 200 } else { 3_000 };
    let mut rows = Vec::new();
    for (name, ages) in [
        (
            "millrace, as a user writes it: nothing set",
            millrace(n, None)?,
        ),
        ("millrace, batch pinned to 256", millrace(n, Some(256))?),
        ("crossbeam (a thread per stage, 1 item/msg)", crossbeam(n)),
    ] {
        if ages.len() != n {
            return Err(format!("{name}: {} of {n} items arrived", ages.len()));
        }
        let mut ages = ages;
        ages.sort();
        rows.push((name, ages));
    }
    println!();
    println!(
        "## Light load — one item per {} ms through {STAGES} stages, N = {n}",
        GAP.as_millis()
    );
    println!();
    println!("| pipeline | p50 | p99 | max | p99 < 1 ms |");
    println!("|---|---:|---:|---:|---|");
    for (name, ages) in &rows {
        let p99 = percentile(ages, 0.99);
        println!(
            "| {name} | {} | {} | {} | {} |",
            micros(percentile(ages, 0.5)),
            micros(p99),
            micros(percentile(ages, 1.0)),
            if p99 < Duration::from_millis(1) {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    Ok(())
}
