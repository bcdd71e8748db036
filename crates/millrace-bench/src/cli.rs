//! The command line of `millrace-bench`: its flags (parsed by clap), their checks, and the
//! [`Command`] they ask for.
//!
//! Parsing never panics on what the user typed: every mistake is a [`clap::Error`] that says
//! what was wrong (`main` prints it and exits with status 2).

use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::measure::Runs;
use crate::workloads::{Implementation, Workload};

const ABOUT: &str = "\
The standard workloads (shared/bench-workloads.md) through millrace and its baselines (a
sequential fused loop, rayon, a one-item-per-message crossbeam pipeline), all in one process
run; prints items/s (median of the runs), ratios, worker counts, peak memory, and the verdict
on each target of issue 3. Every checksum must equal the sequential loop's: a mismatch fails
the run (exit status 1).";

const EXAMPLES: &str = "\
Examples:
  millrace-bench                      the whole matrix at the standard N
  millrace-bench --quick              what CI runs: every workload at N / 1000
  millrace-bench --only W1,W6 --runs 5
  millrace-bench --only W2 --scale 0.1
  millrace-bench --markdown > table.md
  valgrind --tool=callgrind millrace-bench --child W6 --n 1000000 --impl millrace:4";

/// The help's heading of the flags that make one run.
const ONE_RUN: &str = "One run (for peak memory, or under a profiler)";

/// The flags, as clap parses them; [`parse`] turns them into a [`Command`].
#[derive(Parser, Debug)]
#[command(
    name = "millrace-bench",
    about = "The standard millrace benchmark: workloads W1-W6 against sequential, rayon and crossbeam baselines",
    long_about = ABOUT,
    after_help = EXAMPLES
)]
struct Args {
    /// Timed runs per implementation; the table shows the median.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = positive)]
    runs: usize,
    /// Repeat short runs until they take SECS together (at most 100 runs); 0 with --quick.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MIN_TIME, value_parser = seconds)]
    min_time: f64,
    /// Tiny inputs (N / 1000) for CI: checks checksums, not speed.
    #[arg(long)]
    quick: bool,
    /// Only these workloads, by code or name: W1,W4 or seed,ordered.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = workload)]
    only: Vec<Workload>,
    /// Multiply every workload's N by FACTOR (e.g. 0.1).
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 1.0,
        value_parser = factor,
        allow_negative_numbers = true
    )]
    scale: f64,
    /// Print the tables as Markdown (for BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
    /// Skip the peak-memory measurements (child processes).
    #[arg(long)]
    no_rss: bool,
    /// Run workload W once and print its checksum and peak RSS (VmHWM).
    #[arg(long, value_name = "W", value_parser = workload, help_heading = ONE_RUN)]
    child: Option<Workload>,
    /// Items of the one run [default: the workload's N].
    #[arg(
        long,
        value_name = "N",
        requires = "child",
        help_heading = ONE_RUN
    )]
    n: Option<u64>,
    /// The implementation of the one run: sequential, rayon, crossbeam, millrace, or
    /// millrace:K for the K-th configuration of the sweep, in the table's order.
    #[arg(
        long = "impl",
        value_name = "IMPL",
        requires = "child",
        default_value = "millrace",
        help_heading = ONE_RUN
    )]
    implementation: String,
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(runs) if runs > 0 => Ok(runs),
        _ => Err(format!("expected a positive integer, got `{text}`")),
    }
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.0..=3600.0).contains(&secs) => Ok(secs),
        _ => Err(format!("expected seconds between 0 and 3600, got `{text}`")),
    }
}

fn factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale > 0.0 && scale.is_finite() => Ok(scale),
        _ => Err(format!("expected a positive number, got `{text}`")),
    }
}

fn workload(text: &str) -> Result<Workload, String> {
    Workload::parse(text).ok_or_else(|| {
        format!(
            "unknown workload `{text}`: expected one of W1..W6 or seed, imbalanced, io, ordered, large, hops"
        )
    })
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Run the matrix.
    Matrix(Options),
    /// Run one workload once and report the peak memory: see [`crate::rss`].
    Child {
        /// The workload.
        workload: Workload,
        /// The implementation.
        implementation: Implementation,
        /// Items.
        n: u64,
    },
}

/// Settings of a matrix run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Timed runs per implementation (at least).
    pub runs: usize,
    /// Short runs are repeated until they take this many seconds together.
    pub min_time: f64,
    /// Tiny inputs.
    pub quick: bool,
    /// The workloads to run, in order.
    pub only: Vec<Workload>,
    /// Multiplies every N.
    pub scale: f64,
    /// Markdown output.
    pub markdown: bool,
    /// Measure peak memory.
    pub rss: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runs: 3,
            min_time: DEFAULT_MIN_TIME,
            quick: false,
            only: Workload::ALL.to_vec(),
            scale: 1.0,
            markdown: false,
            rss: true,
        }
    }
}

/// The default of `--min-time`, in seconds.
pub const DEFAULT_MIN_TIME: f64 = 1.0;

/// The divisor `--quick` applies to every N.
pub const QUICK_DIVISOR: f64 = 1000.0;

impl Options {
    /// The item count for `workload` under these options (at least 1).
    pub fn n(&self, workload: Workload) -> u64 {
        let divisor = if self.quick { QUICK_DIVISOR } else { 1.0 };
        let n = workload.default_n() as f64 * self.scale / divisor;
        (n.round() as u64).max(1)
    }

    /// How many runs to make of each implementation.
    pub fn runs(&self) -> Runs {
        let min_time = if self.quick { 0.0 } else { self.min_time };
        Runs {
            at_least: self.runs,
            min_time: Duration::from_secs_f64(min_time),
        }
    }

    /// The command that reproduces a run under these options.
    pub fn command_line(&self) -> String {
        let mut line = String::from("cargo run --release -p millrace-bench --");
        if self.runs != 3 {
            line.push_str(&format!(" --runs {}", self.runs));
        }
        if self.min_time != DEFAULT_MIN_TIME {
            line.push_str(&format!(" --min-time {}", self.min_time));
        }
        if self.quick {
            line.push_str(" --quick");
        }
        if self.only != Workload::ALL {
            let codes: Vec<&str> = self.only.iter().map(|w| w.code()).collect();
            line.push_str(&format!(" --only {}", codes.join(",")));
        }
        if self.scale != 1.0 {
            line.push_str(&format!(" --scale {}", self.scale));
        }
        if !self.rss {
            line.push_str(" --no-rss");
        }
        if self.markdown {
            line.push_str(" --markdown");
        }
        line
    }
}

/// Parses the arguments (with the program name first, as [`std::env::args`] gives them).
///
/// # Errors
///
/// A [`clap::Error`] naming the flag or value that is wrong, or asking for the help text
/// (`--help`): [`clap::Error::exit`] prints either and exits as it should.
pub fn parse<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = Args::try_parse_from(args)?;
    let Some(workload) = args.child else {
        let mut only = Vec::new();
        for w in args.only {
            if !only.contains(&w) {
                only.push(w);
            }
        }
        return Ok(Command::Matrix(Options {
            runs: args.runs,
            min_time: args.min_time,
            quick: args.quick,
            only: if only.is_empty() {
                Workload::ALL.to_vec()
            } else {
                only
            },
            scale: args.scale,
            markdown: args.markdown,
            rss: !args.no_rss,
        }));
    };
    let name = args.implementation;
    let implementation = Implementation::parse(workload, &name).ok_or_else(|| {
        Args::command().error(
            ErrorKind::InvalidValue,
            format!(
                "no implementation `{name}` for {workload}: expected sequential, rayon, crossbeam, millrace or millrace:K (K from 1 to {})",
                workload.millrace_configs().len()
            ),
        )
    })?;
    Ok(Command::Child {
        workload,
        implementation,
        n: args.n.unwrap_or_else(|| workload.default_n()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, clap::Error> {
        parse(std::iter::once("millrace-bench").chain(line.split_whitespace()))
    }

    fn message(line: &str) -> String {
        match parse_str(line) {
            Err(e) => e.to_string(),
            other => panic!("expected a usage error for `{line}`, got {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn no_arguments_run_the_whole_matrix_three_times() {
        assert_eq!(
            parse_str("").ok(),
            Some(Command::Matrix(Options::default()))
        );
    }

    #[test]
    fn flags_take_values_after_a_space_or_an_equals_sign() {
        let Ok(Command::Matrix(options)) =
            parse_str("--runs=5 --only w4,seed,W4 --scale 0.5 --markdown --no-rss")
        else {
            panic!("expected a matrix run");
        };
        assert_eq!(options.runs, 5);
        assert_eq!(options.only, vec![Workload::W4Ordered, Workload::W1Seed]);
        assert_eq!(options.scale, 0.5);
        assert!(options.markdown);
        assert!(!options.rss);
    }

    #[test]
    fn quick_zeroes_the_minimum_time_and_the_command_line_says_so() {
        let Ok(Command::Matrix(options)) = parse_str("--quick --only W1,W6") else {
            panic!("expected a matrix run");
        };
        assert!(options.quick);
        assert_eq!(options.runs().min_time, Duration::ZERO);
        assert_eq!(
            options.command_line(),
            "cargo run --release -p millrace-bench -- --quick --only W1,W6"
        );
    }

    #[test]
    fn quick_divides_every_n_by_a_thousand_but_never_below_one() {
        let options = Options {
            quick: true,
            ..Options::default()
        };
        assert_eq!(options.n(Workload::W1Seed), 20_000);
        assert_eq!(options.n(Workload::W5Large), 2);
        let tiny = Options {
            scale: 0.0001,
            ..options
        };
        assert_eq!(tiny.n(Workload::W5Large), 1);
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        assert!(message("--runs zero").contains("`zero`"));
        assert!(message("--runs 0").contains("positive"));
        assert!(message("--scale -1").contains("`-1`"));
        assert!(message("--min-time soon").contains("`soon`"));
        assert!(message("--only W9").contains("unknown workload `W9`"));
        assert!(message("--frobnicate").contains("--frobnicate"));
        assert!(message("--runs").contains("--runs"));
    }

    #[test]
    fn help_is_not_a_run() {
        let e = parse_str("--help").expect_err("help is clap's");
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        assert!(e.to_string().contains("--only <LIST>"));
    }

    #[test]
    fn the_child_flags_name_one_run() {
        assert_eq!(
            parse_str("--child W6 --n 100 --impl crossbeam").ok(),
            Some(Command::Child {
                workload: Workload::W6Hops,
                implementation: Implementation::Crossbeam,
                n: 100
            })
        );
        assert!(message("--child W1 --impl fast").contains("no implementation `fast`"));
        assert!(message("--n 5").contains("--child"));
        assert!(message("--child W1 --impl millrace:0").contains("K from 1 to"));
        assert!(matches!(
            parse_str("--child W1 --impl millrace:2"),
            Ok(Command::Child { implementation: Implementation::Millrace(c), .. }) if c.batch == Some(4096)
        ));
        assert!(matches!(
            parse_str("--child W5"),
            Ok(Command::Child {
                implementation: Implementation::Millrace(_),
                n: 2_000,
                ..
            })
        ));
    }
}
