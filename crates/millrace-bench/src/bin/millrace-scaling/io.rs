//! W3 `io`: stage 1 waits 1 ms per item on a timer (a stand-in for a network call), stage 2
//! computes `spin(2, x)`; the sink sums. N = 20,000 (`--w3-items` sets another).
//!
//! Measured in one run, the pipelines taking turns round after round: millrace (an async
//! stage at concurrency 1000, then a CPU stage), a hand-written tokio pipeline
//! (`buffer_unordered(1000)` on a multi-thread runtime); and rayon, which can only block its
//! threads (measured on fewer items: at 1 ms a wait per thread it
//! would take seconds). The ideal is concurrency ÷ the measured duration of one timer wait
//! (tokio rounds 1 ms up: measured as the mean wait of the items of the tokio run, where
//! `CONCURRENCY` waits are in flight, as in every implementation), capped by the CPU bound
//! of stage 2.

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use millrace::{Pipeline, Stage};
use millrace_bench::work::spin;
use rayon::prelude::*;

use crate::{median, median_of, Options};

const N: u64 = 20_000;
const CONCURRENCY: usize = 1_000;
const WAIT: Duration = Duration::from_millis(1);
const REFERENCE: u64 = 798_309_582_560_318_661;

fn stage2(x: u64) -> u64 {
    spin(2, x)
}

/// The checksum without the waits (they do not change it).
fn checksum(n: u64) -> u64 {
    (0..n).map(stage2).fold(0, u64::wrapping_add)
}

/// The median duration of one 1 ms tokio timer wait, measured back to back.
fn timer_wait() -> Duration {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return WAIT,
    };
    let mut waits: Vec<Duration> = rt.block_on(async {
        let mut waits = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            tokio::time::sleep(WAIT).await;
            waits.push(start.elapsed());
        }
        waits
    });
    waits.sort();
    waits[waits.len() / 2]
}

/// Threads of this process whose name starts with `prefix` (Linux; names are cut to 15 bytes).
fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// millrace: `tuned` pins the batch size to 64 and the CPU stage's workers to the cores;
/// otherwise the pipeline is as a user writes it (only the async stage's concurrency set).
fn millrace(n: u64, cores: usize, tuned: bool) -> Result<(Duration, u64, usize), String> {
    let start = Instant::now();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&peak);
    let spin = Stage::map("spin", stage2);
    let (builder, spin) = if tuned {
        (
            Pipeline::source(0..n).default_batch(64),
            spin.workers(cores),
        )
    } else {
        (Pipeline::source(0..n), spin)
    };
    let finished = builder
        .stage(
            Stage::map_async("w3wait", move |x: u64| {
                let seen = std::sync::Arc::clone(&seen);
                async move {
                    tokio::time::sleep(WAIT).await;
                    if x % 1000 == 0 {
                        let threads = threads_named("millrace-w3wait");
                        seen.fetch_max(threads, std::sync::atomic::Ordering::Relaxed);
                    }
                    x
                }
            })
            .concurrency(CONCURRENCY),
        )
        .stage(spin)
        .fold(0u64, u64::wrapping_add)
        .run()
        .map_err(|e| e.to_string())?;
    Ok((
        start.elapsed(),
        finished.output,
        peak.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// The hand-written tokio pipeline; also returns the mean time one timer wait took with
/// `CONCURRENCY` of them in flight (the wait every implementation's items see).
fn tokio_pipeline(n: u64, cores: usize) -> Result<(Duration, u64, Duration), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (sum, waited) = rt.block_on(async {
        stream::iter(0..n)
            .map(|x| async move {
                let start = Instant::now();
                tokio::time::sleep(WAIT).await;
                (x, start.elapsed())
            })
            .buffer_unordered(CONCURRENCY)
            .fold((0u64, Duration::ZERO), |(sum, waited), (x, w)| async move {
                (sum.wrapping_add(stage2(x)), waited + w)
            })
            .await
    });
    Ok((start.elapsed(), sum, waited / n.max(1) as u32))
}

fn rayon(n: u64) -> (Duration, u64) {
    let start = Instant::now();
    let sum = (0..n)
        .into_par_iter()
        .map(|x| {
            std::thread::sleep(WAIT);
            stage2(x)
        })
        .reduce(|| 0, u64::wrapping_add);
    (start.elapsed(), sum)
}

pub(crate) fn run(options: &Options) -> Result<(), String> {
    let cores = millrace_bench::machine::cores();
    let n = if options.quick {
        2_000
    } else {
        options.w3_items.unwrap_or(N)
    };
    let n_rayon = if options.quick { 100 } else { 2_000 };
    let expected = checksum(n);
    if n == N && expected != REFERENCE {
        return Err(format!(
            "checksum {expected} differs from the reference {REFERENCE}"
        ));
    }
    let lone_wait = timer_wait();
    let cpu_bound = {
        let start = Instant::now();
        let c = checksum(n);
        std::hint::black_box(c);
        cores as f64 * n as f64 / start.elapsed().as_secs_f64()
    };

    // The three pipelines take turns, round after round (each round in a rotated order), so
    // a slow phase of the machine falls on all of them alike; each reports its median.
    let mut threads = 0;
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut sums: [Option<u64>; 3] = [None; 3];
    let mut waits = Vec::new();
    for round in 0..options.runs {
        for turn in 0..3 {
            let which = (round + turn) % 3;
            let (time, sum) = match which {
                0 | 1 => {
                    let (time, sum, th) = millrace(n, cores, which == 0)?;
                    threads = threads.max(th);
                    (time, sum)
                }
                _ => {
                    let (time, sum, wait) = tokio_pipeline(n, cores)?;
                    waits.push(wait);
                    (time, sum)
                }
            };
            if sums[which].is_some_and(|first| first != sum) {
                return Err(format!("runs disagree: {:?} then {sum}", sums[which]));
            }
            sums[which] = Some(sum);
            times[which].push(time);
        }
    }
    let [m_time, u_time, t_time] = times.each_mut().map(|times| median(times));
    let [m_sum, u_sum, t_sum] = sums.map(|sum| sum.unwrap_or_default());
    waits.sort();
    let wait = waits[waits.len() / 2];
    let ideal = (CONCURRENCY as f64 / wait.as_secs_f64()).min(cpu_bound);
    let (r_time, r_sum) = median_of(options.runs, || rayon(n_rayon))?;
    for (name, got, want) in [
        ("millrace", m_sum, expected),
        ("millrace as written", u_sum, expected),
        ("tokio", t_sum, expected),
        ("rayon", r_sum, checksum(n_rayon)),
    ] {
        if got != want {
            return Err(format!("{name}: checksum {got}, expected {want}"));
        }
    }
    let rate = |items: u64, t: Duration| items as f64 / t.as_secs_f64();
    let (m_rate, t_rate, r_rate) = (rate(n, m_time), rate(n, t_time), rate(n_rayon, r_time));
    let u_rate = rate(n, u_time);
    println!();
    println!(
        "## W3 io — N = {n}, concurrency {CONCURRENCY}, {} run(s), median",
        options.runs
    );
    println!();
    println!(
        "a 1 ms timer wait takes {:.3} ms alone and {:.3} ms with {CONCURRENCY} in flight (mean, tokio run); \
         ideal = min({CONCURRENCY} / {:.3} ms, CPU bound {:.0}/s) = {:.0} items/s",
        lone_wait.as_secs_f64() * 1e3,
        wait.as_secs_f64() * 1e3,
        wait.as_secs_f64() * 1e3,
        cpu_bound,
        ideal
    );
    println!();
    println!("| implementation | items/s | × ideal | × tokio | × rayon | notes |");
    println!("|---|---:|---:|---:|---:|---|");
    println!(
        "| millrace (map_async, concurrency {CONCURRENCY}, batch 64; spin on {cores} workers) | {m_rate:.0} | {:.3} | {:.2} | {:.1} | async stage used {threads} OS threads (at most 3) |",
        m_rate / ideal,
        m_rate / t_rate,
        m_rate / r_rate
    );
    println!(
        "| millrace as a user writes it (map_async, concurrency {CONCURRENCY}; nothing else set) | {u_rate:.0} | {:.3} | {:.2} | {:.1} | batch sizes adapt, spin autoscaled |",
        u_rate / ideal,
        u_rate / t_rate,
        u_rate / r_rate
    );
    println!(
        "| tokio (buffer_unordered({CONCURRENCY}), {cores} worker threads) | {t_rate:.0} | {:.3} | 1.00 | {:.1} | hand-written |",
        t_rate / ideal,
        t_rate / r_rate
    );
    println!(
        "| rayon (blocking sleep, {cores} threads; N = {n_rayon}) | {r_rate:.0} | {:.4} | {:.4} | 1.0 | blocks a thread per wait |",
        r_rate / ideal,
        r_rate / t_rate
    );
    if threads > 3 {
        return Err(format!("the async stage used {threads} threads"));
    }
    Ok(())
}
