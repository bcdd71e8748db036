//! One binary, two parts of one pipeline, chosen by argument: W2 (`imbalanced`, four
//! stages of spin) with its heavy stage on workers across a NATS server.
//!
//! ```text
//! millrace-nats-demo worker --url nats://127.0.0.1:4222 [--workers 2]   # start as many as needed
//! millrace-nats-demo origin --url nats://127.0.0.1:4222 [--n 1000000]   # source and sink side
//! millrace-nats-demo local [--n 1000000]                                 # all in one process
//! ```
//!
//! Common options: `--job NAME` (default `w2`), `--heavy UNITS` (the heavy stage's spin,
//! default 4), `--batch ITEMS` (per message, default 64), `--ack-wait-ms MS` (default
//! 30000), `--max-deliver N` (default 5; every part must agree). For the tests, a worker's `--pause-at ITEMS[:MS]` makes its heavy stage say
//! `pausing` on its ITEMS-th item and sleep MS ms there (forever without MS), so a kill or
//! a server restart is sure to land mid-run. The origin prints one line: `sum=… outputs=… published=… delivered=…
//! filtered=… failed=… duplicates=… balanced=… elapsed_ms=…`.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use millrace::{Pipeline, Stage};
use millrace_nats::{say_retry, Broker, BrokerConfig, EdgeConfig};
use millrace_workloads::spin;

struct Args {
    part: String,
    url: String,
    job: String,
    n: u64,
    heavy: u32,
    batch: usize,
    ack_wait: Duration,
    workers: usize,
    pause_at: Option<(u64, Option<u64>)>,
    max_deliver: i64,
}

fn parse() -> Result<Args, String> {
    let mut raw = std::env::args().skip(1);
    let part = raw
        .next()
        .ok_or("usage: millrace-nats-demo origin|worker|local [--url URL] [options]")?;
    let mut args = Args {
        part,
        url: "nats://127.0.0.1:4222".into(),
        job: "w2".into(),
        n: 1_000_000,
        heavy: 4,
        batch: 64,
        ack_wait: Duration::from_secs(30),
        workers: 2,
        pause_at: None,
        max_deliver: EdgeConfig::default().max_deliver,
    };
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|e| format!("{flag}: `{v}` is not a whole number ({e})"))
        };
        match flag.as_str() {
            "--url" => args.url = value,
            "--job" => args.job = value,
            "--n" => args.n = number(&value)?,
            "--heavy" => args.heavy = number(&value)? as u32,
            "--batch" => args.batch = number(&value)?.max(1) as usize,
            "--ack-wait-ms" => args.ack_wait = Duration::from_millis(number(&value)?),
            "--workers" => args.workers = number(&value)?.max(1) as usize,
            "--max-deliver" => args.max_deliver = number(&value)?.max(1) as i64,
            "--pause-at" => {
                let (at, ms) = match value.split_once(':') {
                    Some((at, ms)) => (number(at)?, Some(number(ms)?)),
                    None => (number(&value)?, None),
                };
                args.pause_at = Some((at, ms));
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("millrace-nats-demo: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("millrace-nats-demo: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let heavy = args.heavy;
    if args.part == "local" {
        let start = Instant::now();
        let finished = Pipeline::source(0..args.n)
            .map("a", |x| spin(1, x))
            .map("b", |a| spin(1, a))
            .stage(Stage::map("c", move |b| spin(heavy, b)).workers(args.workers))
            .map("d", |c| spin(1, c))
            .fold((0u64, 0u64), |(s, n), d| (s.wrapping_add(d), n + 1))
            .run()?;
        let (sum, outputs) = finished.output;
        println!(
            "sum={sum} outputs={outputs} elapsed_ms={}",
            start.elapsed().as_millis()
        );
        return Ok(());
    }
    // A worker waits for its server (and says so); the origin fails fast.
    let config = BrokerConfig::new(&args.url);
    let broker = if args.part == "worker" {
        Broker::connect_retrying(config, 1000, say_retry)?
    } else {
        Broker::connect_with(config)?
    };
    for w in broker.warnings() {
        eprintln!("millrace-nats-demo: warning: {w}");
    }
    let job = broker.job(&args.job)?;
    let edges = EdgeConfig {
        batch: args.batch,
        ack_wait: args.ack_wait,
        max_deliver: args.max_deliver,
        // W2's items are numbers: 1,024 messages of 1,024 fit in 16 MiB.
        max_bytes: 16 << 20,
        ..EdgeConfig::default()
    };
    let to = job.edge::<u64>("in", edges.clone())?;
    let from = job.edge::<u64>("out", edges)?;
    match args.part.as_str() {
        "worker" => {
            let workers = args.workers;
            let pause_at = args.pause_at;
            let seen = std::sync::atomic::AtomicU64::new(0);
            let _worker = job
                .worker(&to, &from, move |b| {
                    b.stage(
                        Stage::map("c", move |b| {
                            let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if let Some((at, ms)) = pause_at.filter(|(at, _)| *at == n) {
                                eprintln!("millrace-nats-demo: pausing at item {at}");
                                match ms {
                                    Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
                                    None => loop {
                                        std::thread::park();
                                    },
                                }
                            }
                            spin(heavy, b)
                        })
                        .workers(workers),
                    )
                })?
                .spawn()?;
            eprintln!("millrace-nats-demo: worker ready");
            loop {
                std::thread::park();
            }
        }
        "origin" => {
            let start = Instant::now();
            let front = Pipeline::source(0..args.n)
                .map("a", |x| spin(1, x))
                .map("b", |a| spin(1, a));
            let (remote, end) = job.origin(&to, &from)?.start(front)?;
            let (sum, outputs) = Pipeline::source(remote.outputs())
                .map("d", |c| spin(1, c))
                .fold((0u64, 0u64), |(s, n), d| (s.wrapping_add(d), n + 1))
                .run()?
                .output;
            let reports = end.finish()?;
            let r = &reports.remote;
            println!(
                "sum={sum} outputs={outputs} published={} delivered={} filtered={} failed={} \
                 duplicates={} balanced={} elapsed_ms={}",
                r.published,
                r.delivered,
                r.filtered_total(),
                r.failed_total(),
                r.duplicates_dropped,
                r.is_balanced(),
                start.elapsed().as_millis()
            );
            Ok(())
        }
        other => Err(format!("unknown part `{other}`: origin, worker or local").into()),
    }
}
