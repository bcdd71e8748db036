//! `millrace-bench`: runs the benchmark matrix of issue 3 and prints its tables.
//!
//! See `--help`, the [`millrace_bench`] crate docs and `BENCHMARKS.md`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use millrace_bench::cli::{self, Command, Options};
use millrace_bench::{machine, matrix, rss, table, targets};

fn run_matrix(options: &Options) -> ExitCode {
    let machine = machine::describe();
    let result = matrix::run(options);
    let heading = |title: &str| {
        if options.markdown {
            format!("\n### {title}\n\n")
        } else {
            format!("\n{title}\n\n")
        }
    };
    println!("command: {}", options.command_line());
    println!("machine (before the run): {machine}");
    if let Some(load) = machine::load_average() {
        println!(
            "1-minute load average after the run: {load:.2} (the benchmark's own threads add about {})",
            machine::cores()
        );
    }
    if options.quick {
        println!("QUICK run (N / 1000): checksums only, the figures mean nothing");
    }
    print!("{}", heading("Throughput (median of the runs)"));
    print!("{}", table::throughput(&result).render(options.markdown));
    if !result.rss.is_empty() {
        print!(
            "{}",
            heading("Peak memory (median of child processes, one run each)")
        );
        print!("{}", table::peak_memory(&result).render(options.markdown));
    }
    let chosen: Vec<String> = result
        .workloads
        .iter()
        .flat_map(|w| {
            w.rows.iter().filter_map(move |row| {
                let choice = row.chosen.as_ref()?;
                let setup = matrix::setup(w.workload, &row.implementation);
                Some(format!("* {} · {setup}: {choice}", w.workload))
            })
        })
        .collect();
    if !chosen.is_empty() {
        print!(
            "{}",
            heading("What the adaptive batch sizes and the autoscaler chose (rows as a user writes it, last run)")
        );
        println!("{}", chosen.join("\n"));
    }
    print!("{}", heading("Targets of issue 3"));
    print!(
        "{}",
        table::targets(&targets::evaluate(&result)).render(options.markdown)
    );
    if result.errors.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("\nTHE BENCHMARK FAILED: {} error(s)", result.errors.len());
    for error in &result.errors {
        eprintln!("  error: {error}");
    }
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    match cli::parse(std::env::args_os()) {
        // Prints the help (exit status 0) or what was wrong (exit status 2).
        Err(error) => error.exit(),
        Ok(Command::Child {
            workload,
            implementation,
            n,
        }) => match rss::child_report(workload, &implementation, n) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(Command::Matrix(options)) => run_matrix(&options),
    }
}
