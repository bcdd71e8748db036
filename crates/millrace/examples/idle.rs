//! What an idle running pipeline costs, and how fast a stop takes effect on one.
//!
//! A submitter pipeline with three sync stages and an async one runs with no input for ten
//! seconds (or the number given); the process's CPU time over that window (from `/proc/self/stat`, Linux only) is
//! printed as a share of one core. Then `stop()` is called and the time until `join`
//! returns is printed. Every thread waits on a wake-up (a channel, a condition variable, a
//! tokio watch), none polls, so both figures should be near zero. The one timer is the
//! controller's: it samples the report's timeline every 100 ms while anything moves, and
//! on an idle run backs off to one look every 1.6 s; `.timeline(None)` turns it off.
//!
//! Run with `cargo run --release -p millrace --example idle [SECONDS]`.

use std::time::{Duration, Instant};

use millrace::{Pipeline, Stage};

/// User plus system CPU time of this process so far, in clock ticks (usually 10 ms).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (submitter, builder) = Pipeline::submitter::<u64>(64);
    let running = builder
        .stage(Stage::map("a", |x: u64| x + 1))
        .stage(Stage::map("b", |x: u64| x * 2).workers(2))
        .stage(Stage::map_async("c", |x: u64| async move { x }))
        .stage(Stage::filter("d", |x: &u64| x % 3 != 0))
        .for_each(|_| {})
        .spawn()?;
    // A few items first, so that every thread has run and gone back to waiting.
    for x in 0..1000 {
        submitter.submit(x)?;
    }
    std::thread::sleep(Duration::from_millis(200));

    let seconds: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| format!("the seconds `{arg}` are not a number: {e}"))?,
        None => 10,
    };
    let idle = Duration::from_secs(seconds);
    let before = cpu_ticks();
    std::thread::sleep(idle);
    let after = cpu_ticks();
    match (before, after) {
        (Some(b), Some(a)) => {
            let cpu = Duration::from_millis((a - b) * 10);
            println!(
                "idle for {:.1} s: {:.2} ms of CPU ({:.3}% of one core; the clock tick is 10 ms)",
                idle.as_secs_f64(),
                cpu.as_secs_f64() * 1e3,
                100.0 * cpu.as_secs_f64() / idle.as_secs_f64()
            );
        }
        _ => println!("CPU time is read from /proc/self/stat: not available here"),
    }

    let asked = Instant::now();
    running.stop();
    let finished = running.join()?;
    println!(
        "stop on the idle pipeline: the run ended {:.3} ms later ({} items delivered)",
        asked.elapsed().as_secs_f64() * 1e3,
        finished.report.delivered()
    );
    drop(submitter);
    Ok(())
}
