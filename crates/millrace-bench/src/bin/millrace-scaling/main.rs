//! `millrace-scaling`: the benchmarks of async stages (W3) and of autoscaling (W2 and W4
//! with every stage on `auto`, and W2 whose costs change half-way), each against baselines
//! measured in the same run. The standard matrix of W1–W6 is `millrace-bench`.
//!
//! ```text
//! cargo run --release -p millrace-bench --bin millrace-scaling            # full sizes
//! cargo run --release -p millrace-bench --bin millrace-scaling -- --quick # tiny, for CI
//! ```

mod auto;
mod io;

use std::process::ExitCode;
use std::time::Duration;

/// Options from the command line.
pub(crate) struct Options {
    /// Tiny sizes, one run each: checks that everything runs and checksums agree.
    pub(crate) quick: bool,
    /// Timed runs per measurement (the median is reported).
    pub(crate) runs: usize,
    /// Only this part: `w3` or `auto`.
    pub(crate) only: Option<String>,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        runs: 3,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--runs" => {
                let value = args.next().ok_or("--runs needs a number")?;
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or(format!("--runs: `{value}` is not a positive number"))?;
            }
            "--only" => {
                let part = args.next().ok_or("--only needs `w3` or `auto`")?;
                if part != "w3" && part != "auto" {
                    return Err(format!("--only: `{part}` is neither `w3` nor `auto`"));
                }
                options.only = Some(part);
            }
            "--help" | "-h" => {
                println!(
                    "millrace-scaling: W3 (async stages) and autoscaling benchmarks\n\n\
                     usage: millrace-scaling [--quick] [--runs N] [--only w3|auto]\n\n\
                     --quick   tiny sizes, one run: checks checksums (used by CI)\n\
                     --runs N  timed runs per measurement, median reported (default 3)\n\
                     --only P  only W3 (`w3`) or only the autoscaling workloads (`auto`)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if options.quick {
        options.runs = 1;
    }
    Ok(options)
}

/// The median of `runs` timings of `f`, which returns a checksum that must not change.
pub(crate) fn median_of<T: PartialEq + std::fmt::Debug>(
    runs: usize,
    mut f: impl FnMut() -> (Duration, T),
) -> Result<(Duration, T), String> {
    let (first_time, first) = f();
    let mut times = vec![first_time];
    for _ in 1..runs {
        let (time, value) = f();
        if value != first {
            return Err(format!("runs disagree: {first:?} then {value:?}"));
        }
        times.push(time);
    }
    times.sort();
    Ok((times[times.len() / 2], first))
}

/// One part of the benchmark: runs it and prints its tables.
type Part = fn(&Options) -> Result<(), String>;

fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("millrace-scaling: {e}");
            return ExitCode::from(2);
        }
    };
    println!("machine: {}", millrace_bench::machine::describe());
    let mut failed = false;
    let wanted = |part: &str| options.only.as_deref().map_or(true, |only| only == part);
    let parts: [(&str, &str, Part); 2] =
        [("w3", "W3", io::run), ("auto", "autoscaling", auto::run)];
    for (part, name, run) in parts {
        if !wanted(part) {
            continue;
        }
        if let Err(e) = run(&options) {
            eprintln!("millrace-scaling: {name}: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
