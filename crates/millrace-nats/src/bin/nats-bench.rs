//! Measures broker edges on loopback, side by side with the in-memory pipeline in the same
//! run (medians of `--repeat` runs, default 3):
//!
//! 1. items/s out through one broker edge to a worker and back through another, for W1's
//!    items (`{x, y}`: 16 bytes) at several batch sizes, vs the same stages in memory;
//! 2. W2 (`imbalanced`) with its heavy stage on 2 worker processes (`millrace-nats-demo`)
//!    vs the same pipeline in one process (`millrace-nats-demo local`);
//! 3. latency at light load (one item every 2 ms): origin → edge → worker → edge → origin,
//!    p50 / p99, and per hop (half).
//!
//! `cargo build --release -p millrace-nats --bins && cargo run --release -p millrace-nats
//! --bin nats-bench` (it starts its own nats-server; `--url` to use another).

#![forbid(unsafe_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use millrace::Pipeline;
use millrace_nats::local_server::LocalServer;
use millrace_nats::{Broker, EdgeConfig};
use serde::{Deserialize, Serialize};

/// W1's item, with serde.
#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
struct Data {
    x: u64,
    y: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median rate of W2 runs, with their (equal) sum.
fn median_run(runs: Vec<(f64, u64)>) -> (f64, u64) {
    let sum = runs[0].1;
    (
        median(runs.into_iter().map(|(rate, _)| rate).collect()),
        sum,
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut repeat = 3;
    let mut n: u64 = 2_000_000;
    let mut w2_n: u64 = 1_000_000;
    let mut light: u64 = 1000;
    while let Some(flag) = args.next() {
        if flag == "--quick" {
            // CI: tiny sizes, one run; the checks still hold (balanced, W2's sums agree).
            (n, w2_n, light, repeat) = (20_000, 20_000, 50, 1);
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--repeat" => repeat = value.parse()?,
            "--n" => n = value.parse()?,
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    let server = match url {
        Some(_) => None,
        None => Some(LocalServer::start()?),
    };
    let url = url.unwrap_or_else(|| server.as_ref().map(LocalServer::url).unwrap_or_default());
    let broker = Broker::connect(&url)?;
    println!(
        "nats-server {} at {url}; {repeat} runs each, medians",
        broker.server_version()
    );

    println!("\n## 1. W1 items through a broker edge and back (N = {n})\n");
    println!("| path | batch (items/msg) | items/s | vs in-memory |");
    println!("|---|---|---|---|");
    let memory = median(
        (0..repeat)
            .map(|_| {
                let start = Instant::now();
                let out = Pipeline::source(0..n)
                    .map("wrap", |x| Data { x, y: 0 })
                    .map("square", |d: Data| Data { y: d.x * d.x, ..d })
                    .fold(0u64, |s, d| s.wrapping_add(d.y))
                    .run()
                    .map(|f| f.output);
                std::hint::black_box(out.ok());
                n as f64 / start.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("| in memory (2 stages, 1 worker each) | 256 | {memory:.0} | 1.00× |");
    for (k, batch) in [256usize, 1024, 4096, 16384].into_iter().enumerate() {
        let rate = median(
            (0..repeat)
                .map(|r| through_broker(&broker, &format!("b{k}r{r}"), n, batch))
                .collect::<Result<Vec<_>, _>>()?,
        );
        println!(
            "| origin → edge → worker → edge → origin | {batch} | {rate:.0} | {:.2}× |",
            rate / memory
        );
    }

    println!("\n## 2. W2 (N = {w2_n}): heavy stage on 2 worker processes vs one process\n");
    let demo = std::env::current_exe()?.with_file_name("millrace-nats-demo");
    let local = median_run(
        (0..repeat)
            .map(|_| w2_local(&demo, w2_n))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let split = median_run(
        (0..repeat)
            .map(|r| w2_split(&demo, &url, &format!("w2r{r}"), w2_n))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let (local, local_sum) = local;
    let (split, split_sum) = split;
    if local_sum != split_sum {
        return Err(
            format!("W2's sums differ: {local_sum} in one process, {split_sum} split").into(),
        );
    }
    println!("| run | items/s | vs one process |");
    println!("|---|---|---|");
    println!("| one process (heavy stage: 2 workers) | {local:.0} | 1.00× |");
    println!(
        "| origin + 2 worker processes (1 heavy worker each), batch 1024 | {split:.0} | {:.2}× |",
        split / local
    );

    println!("\n## 3. Latency at light load (1 item / 2 ms, {light} items)\n");
    let (p50, p99) = latency(&broker, light)?;
    println!("| path | p50 | p99 |");
    println!("|---|---|---|");
    println!("| origin → edge → worker → edge → origin | {p50:?} | {p99:?} |");
    println!("| per broker hop (half) | {:?} | {:?} |", p50 / 2, p99 / 2);
    Ok(())
}

fn edges(batch: usize) -> EdgeConfig {
    EdgeConfig {
        batch,
        max_messages: 256,
        max_ack_pending: 64,
        ..EdgeConfig::default()
    }
}

/// W1 items out through one edge to an identity worker and back through another.
fn through_broker(
    broker: &Broker,
    job: &str,
    n: u64,
    batch: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let job = broker.job(job)?;
    let to = job.edge::<Data>("in", edges(batch))?;
    let from = job.edge::<Data>("out", edges(batch))?;
    let worker = job
        .worker(&to, &from, |b| {
            b.map("square", |d: Data| Data { y: d.x * d.x, ..d })
        })?
        .spawn()?;
    let start = Instant::now();
    let front = Pipeline::source(0..n)
        .default_batch(batch.min(4096))
        .max_in_flight(batch * 64)
        .map("wrap", |x| Data { x, y: 0 });
    let (remote, end) = job.origin(&to, &from)?.start(front)?;
    let sum = remote
        .outputs()
        .fold(0u64, |s, d: Data| s.wrapping_add(d.y));
    let finished = end.finish()?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    assert!(finished.remote.is_balanced() && finished.remote.delivered == n);
    worker.stop();
    worker.join()?;
    Ok(rate)
}

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))?
        .parse()
        .ok()
}

/// Items/s and the sum from the demo's line.
fn rate_and_sum(line: &str, n: u64) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let ms = field(line, "elapsed_ms").ok_or(format!("the demo said: {line}"))?;
    let sum = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("sum="))
        .and_then(|v| v.parse().ok())
        .ok_or(format!("the demo said: {line}"))?;
    Ok((n as f64 / (ms.max(1.0) / 1000.0), sum))
}

fn w2_local(demo: &std::path::Path, n: u64) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let out = Command::new(demo)
        .args(["local", "--n", &n.to_string(), "--workers", "2"])
        .output()?;
    rate_and_sum(&String::from_utf8_lossy(&out.stdout), n)
}

fn w2_split(
    demo: &std::path::Path,
    url: &str,
    job: &str,
    n: u64,
) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let common = ["--url", url, "--job", job, "--batch", "1024"];
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(
            Command::new(demo)
                .arg("worker")
                .args(common)
                .args(["--workers", "1"])
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new(demo)
        .arg("origin")
        .args(common)
        .args(["--n", &n.to_string()])
        .output()?;
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    if !line.contains("balanced=true") {
        return Err(format!("the split run did not balance: {line}").into());
    }
    rate_and_sum(&line, n)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Round trips of single items sent every 2 ms.
fn latency(
    broker: &Broker,
    items: u64,
) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    let job = broker.job("latency")?;
    let to = job.edge::<u64>("in", edges(64))?;
    let from = job.edge::<u64>("out", edges(64))?;
    let worker = job.worker(&to, &from, |b| b)?.spawn()?;
    let front = Pipeline::source((0..items).map(|_| {
        std::thread::sleep(Duration::from_millis(2));
        now_nanos()
    }))
    .default_batch(1);
    let (remote, end) = job.origin(&to, &from)?.start(front)?;
    let mut lat: Vec<u64> = remote
        .outputs()
        .map(|sent| now_nanos().saturating_sub(sent))
        .collect();
    end.finish()?;
    worker.stop();
    worker.join()?;
    lat.sort_unstable();
    let at = |q: f64| Duration::from_nanos(lat[((lat.len() - 1) as f64 * q) as usize]);
    Ok((at(0.5), at(0.99)))
}
