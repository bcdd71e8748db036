//! The `millrace` command: runs staged pipelines and reports what held them back.
//!
//! With no arguments it runs the built-in seed pipeline (the blog's 3·x² over 10,000,000
//! numbers) and prints the per-stage report.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use millrace::{Pipeline, Report, Stage};

#[derive(Parser, Debug)]
#[command(
    name = "millrace",
    version,
    about = "Run concurrent staged pipelines and see which stage holds them back",
    after_help = "Examples:\n  millrace                 run the built-in seed pipeline (3·x² over 10,000,000 numbers)\n  millrace run --n 1000    the seed pipeline over 1,000 numbers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pipeline (with no file: the built-in seed pipeline).
    Run {
        /// How many numbers the seed pipeline squares.
        #[arg(long, default_value_t = 10_000_000)]
        n: u64,
    },
}

#[derive(Debug)]
struct Data {
    x: u64,
    y: u64,
}

/// The blog's sample: wrap x, square it, multiply by 3; the sink sums the results.
fn run_seed(n: u64) -> Result<(u64, Report), millrace::RunError> {
    let finished = Pipeline::source(0..n)
        .stage(Stage::map("wrap", |x: u64| Data { x, y: 0 }).batch(1024))
        .stage(
            Stage::map("square", |d: Data| Data {
                y: d.x.wrapping_mul(d.x),
                ..d
            })
            .batch(1024),
        )
        .stage(Stage::map("scale", |d: Data| d.y.wrapping_mul(3)).batch(1024))
        .default_batch(1024)
        .fold(0u64, |sum, y| sum.wrapping_add(y))
        .run()?;
    Ok((finished.output, finished.report))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let n = match cli.command {
        Some(Command::Run { n }) => n,
        None => 10_000_000,
    };
    match run_seed(n) {
        Ok((sum, report)) => {
            println!("seed pipeline: sum of 3·x² for x < {n} = {sum}");
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("millrace: {e}");
            ExitCode::from(1)
        }
    }
}
