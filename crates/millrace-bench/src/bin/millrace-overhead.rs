//! `millrace-overhead`: what observing a run costs. W1 (three trivial stages) and W2 (four
//! CPU stages, costs 1, 1, 4, 1) run with the timeline off, with it on (the default:
//! every part's counters sampled each 100 ms), and with it on while a `/metrics` endpoint
//! is scraped every 100 ms (a Prometheus scrape is usually every 15 s: this is a harsh
//! bound). The variants take turns, run after run, so that a change in the machine's load
//! hits them alike; the table gives each one's median and its ratio to `off`.
//!
//! Built with `--features tracing`, the core's `tracing` feature is compiled in (no
//! subscriber installed): compare the `off` rows of the two builds for its cost.
//!
//! ```text
//! cargo run --release -p millrace-bench --bin millrace-overhead -- --runs 9
//! cargo run --release -p millrace-bench --features tracing --bin millrace-overhead -- --runs 9
//! ```

#![forbid(unsafe_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use millrace::{Pipeline, PipelineBuilder, Stage};
use millrace_bench::workloads::{w1_seed, w2_imbalanced};
use millrace_prometheus::MetricsServer;

/// Options from the command line.
#[derive(Parser, Debug)]
#[command(
    name = "millrace-overhead",
    about = "The cost of the timeline and of serving /metrics: W1 and W2 with and without, in turns"
)]
struct Options {
    /// Runs per variant (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 7)]
    runs: usize,
    /// Multiply both workloads' N (W1: 20,000,000; W2: 1,000,000) by FACTOR.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    scale: f64,
    /// Tiny sizes, one run each (checks that everything runs).
    #[arg(long)]
    quick: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Off,
    Timeline,
    TimelineAndScrapes,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Off, Variant::Timeline, Variant::TimelineAndScrapes];

    fn name(self) -> &'static str {
        match self {
            Variant::Off => "timeline off",
            Variant::Timeline => "timeline on (100 ms)",
            Variant::TimelineAndScrapes => "timeline on + /metrics scraped every 100 ms",
        }
    }
}

/// Scrapes `addr` every 100 ms until `stop`; returns how many scrapes answered and the
/// time they took, end to end (an upper bound on the CPU time the server spent).
fn scrape_until(addr: SocketAddr, stop: &AtomicBool) -> (usize, Duration) {
    let (mut answered, mut spent) = (0, Duration::ZERO);
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n");
            let mut body = Vec::new();
            if stream.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.") {
                answered += 1;
                spent += start.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (answered, spent)
}

/// What observing one run cost, measured on the observers' side.
#[derive(Clone, Copy, Default)]
struct Cost {
    /// The controller thread's time (sampling the timeline), as the report gives it.
    sampling: Duration,
    /// Samples the timeline took.
    samples: usize,
    /// Scrapes answered, and their time end to end.
    scrapes: usize,
    scraping: Duration,
    /// The fastest render of the final report in the text format.
    render: Duration,
}

/// Runs `builder` into a sink folding with `add`, as `variant`; returns the wall time, the
/// sink's sum and what observing it cost.
fn timed<T: Send + 'static>(
    builder: PipelineBuilder<T>,
    add: fn(u64, T) -> u64,
    variant: Variant,
) -> Result<(Duration, u64, Cost), String> {
    let start = Instant::now();
    let builder = match variant {
        Variant::Off => builder.timeline(None),
        _ => builder.timeline(Some(Duration::from_millis(100))),
    };
    let running = builder.fold(0u64, add).spawn().map_err(|e| e.to_string())?;
    let scraping = if variant == Variant::TimelineAndScrapes {
        let server = MetricsServer::serve("127.0.0.1:0", "bench", running.handle())
            .map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let addr = server.local_addr();
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || scrape_until(addr, &stop)
        });
        Some((server, stop, thread))
    } else {
        None
    };
    let finished = running.join().map_err(|e| e.to_string())?;
    let wall = start.elapsed();
    let mut cost = Cost {
        sampling: finished.report.controller_busy(),
        samples: finished.report.timeline().samples().len(),
        ..Cost::default()
    };
    if let Some((server, stop, thread)) = scraping {
        stop.store(true, Ordering::Relaxed);
        (cost.scrapes, cost.scraping) = thread.join().unwrap_or_default();
        drop(server);
        // What one scrape costs the server: rendering the report, the fastest of 20
        // (the slower ones waited for a core).
        cost.render = (0..20)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(millrace_prometheus::render("bench", &finished.report));
                start.elapsed()
            })
            .min()
            .unwrap_or_default();
    }
    Ok((wall, finished.output, cost))
}

// Worker counts are given: a stage without one is autoscaled, and this measures the
// observers, not the autoscaler.
fn w1(n: u64, variant: Variant) -> Result<(Duration, u64, Cost), String> {
    let builder = Pipeline::source(0..n)
        .default_batch(1024)
        .stage(Stage::map("wrap", w1_seed::wrap).workers(1))
        .stage(Stage::map("square", w1_seed::square).workers(1))
        .stage(Stage::map("scale", w1_seed::scale).workers(1));
    timed(builder, w1_seed::add, variant)
}

fn w2(n: u64, variant: Variant) -> Result<(Duration, u64, Cost), String> {
    let builder = Pipeline::source(0..n)
        .default_batch(64)
        .stage(Stage::map("a", w2_imbalanced::a).workers(1))
        .stage(Stage::map("b", w2_imbalanced::b).workers(1))
        .stage(Stage::map("c", w2_imbalanced::c).workers(2))
        .stage(Stage::map("d", w2_imbalanced::d).workers(1));
    timed(builder, w2_imbalanced::add, variant)
}

type Workload = fn(u64, Variant) -> Result<(Duration, u64, Cost), String>;

fn main() -> ExitCode {
    let options = Options::parse();
    let (runs, scale) = if options.quick {
        (1, 0.001)
    } else {
        (options.runs.max(1), options.scale)
    };
    let tracing = if cfg!(feature = "tracing") {
        "compiled in (no subscriber)"
    } else {
        "off"
    };
    println!("millrace-overhead: {runs} run(s) per variant, in turns; the core's tracing feature: {tracing}");
    println!();
    println!("| workload | variant | N | runs | median | spread | vs off | observer time / wall | samples, scrapes per run | per sample | per render |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let workloads: [(&str, u64, Workload); 2] = [
        ("W1 seed (workers 1,1,1, batch 1024)", 20_000_000, w1),
        ("W2 imbalanced (workers 1,1,2,1, batch 64)", 1_000_000, w2),
    ];
    for (name, base_n, run) in workloads {
        let n = ((base_n as f64 * scale) as u64).max(1000);
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); Variant::ALL.len()];
        let mut costs: Vec<Vec<(Duration, Cost)>> = vec![Vec::new(); Variant::ALL.len()];
        let mut checksum = None;
        for _ in 0..runs {
            for (k, variant) in Variant::ALL.into_iter().enumerate() {
                let (time, sum, cost) = match run(n, variant) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("millrace-overhead: {name}, {}: {e}", variant.name());
                        return ExitCode::FAILURE;
                    }
                };
                if *checksum.get_or_insert(sum) != sum {
                    eprintln!("millrace-overhead: {name}: checksums differ between variants");
                    return ExitCode::FAILURE;
                }
                times[k].push(time);
                costs[k].push((time, cost));
            }
        }
        let medians: Vec<Duration> = times
            .iter_mut()
            .map(|t| {
                t.sort();
                t[t.len() / 2]
            })
            .collect();
        for (k, variant) in Variant::ALL.into_iter().enumerate() {
            let t = &times[k];
            let spread =
                (t[t.len() - 1].as_secs_f64() - t[0].as_secs_f64()) / medians[k].as_secs_f64();
            // The observers' time over all runs, as a share of all runs' wall time: what they
            // took from the pipeline's cores at most, whatever the load.
            let wall: f64 = costs[k].iter().map(|(w, _)| w.as_secs_f64()).sum();
            let observed: f64 = costs[k]
                .iter()
                .map(|(_, c)| (c.sampling + c.scraping).as_secs_f64())
                .sum();
            let (samples, scrapes) = costs[k]
                .iter()
                .fold((0, 0), |(a, b), (_, c)| (a + c.samples, b + c.scrapes));
            let sampling: Duration = costs[k].iter().map(|(_, c)| c.sampling).sum();
            let per_sample = sampling.as_secs_f64() / samples.max(1) as f64;
            let render = costs[k]
                .iter()
                .map(|(_, c)| c.render)
                .min()
                .unwrap_or_default();
            println!(
                "| {name} | {} | {n} | {runs} | {:.1} ms | {:.0}% | {:.3}× | {:.4}% | {:.1}, {:.1} | {:.1} µs | {:.1} µs |",
                variant.name(),
                medians[k].as_secs_f64() * 1e3,
                spread * 100.0,
                medians[k].as_secs_f64() / medians[0].as_secs_f64(),
                observed / wall * 100.0,
                samples as f64 / runs as f64,
                scrapes as f64 / runs as f64,
                per_sample * 1e6,
                render.as_secs_f64() * 1e6,
            );
        }
    }
    ExitCode::SUCCESS
}
