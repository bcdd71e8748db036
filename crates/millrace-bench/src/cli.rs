//! The command line: flags, their checks, and the help text.
//!
//! Parsing never panics on what the user typed: every mistake is an [`Error::Usage`] that
//! says what was wrong and what to write instead.

use std::time::Duration;

use crate::error::Error;
use crate::measure::Runs;
use crate::workloads::{Implementation, Workload};

/// The help text.
pub const HELP: &str = "\
millrace-bench: the standard workloads (shared/bench-workloads.md) through millrace and its
baselines (a sequential fused loop, rayon, a one-item-per-message crossbeam pipeline), all in
one process run; prints items/s (median of the runs), ratios, worker counts, peak memory, and
the verdict on each target of issue 3. Every checksum must equal the sequential loop's: a
mismatch fails the run (exit status 1).

USAGE:
    millrace-bench [OPTIONS]

OPTIONS:
    --runs N          timed runs per implementation; the table shows the median [default: 3]
    --min-time SECS   repeat short runs until they take SECS together (at most 100 runs)
                      [default: 1; 0 with --quick]
    --quick           tiny inputs (N / 1000) for CI: checks checksums, not speed
    --only LIST       only these workloads, by code or name: W1,W4 or seed,ordered
    --scale FACTOR    multiply every workload's N by FACTOR (e.g. 0.1)
    --markdown        print the tables as Markdown (for BENCHMARKS.md)
    --no-rss          skip the peak-memory measurements (child processes)
    -h, --help        print this help

ONE RUN (for peak memory, or under a profiler):
    --child W --n N --impl IMPL
                      run workload W once over N items with IMPL (sequential, rayon,
                      crossbeam, millrace, or millrace:K for the K-th configuration of the
                      sweep, in the table's order) and print its checksum and peak RSS

EXAMPLES:
    millrace-bench                      the whole matrix at the standard N
    millrace-bench --quick              what CI runs: every workload at N / 1000
    millrace-bench --only W1,W6 --runs 5
    millrace-bench --only W2 --scale 0.1
    millrace-bench --markdown > table.md
    valgrind --tool=callgrind millrace-bench --child W6 --n 1000000 --impl millrace:4
";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Print the help text.
    Help,
    /// Run the matrix.
    Matrix(Options),
    /// (Hidden) run one workload once and report the peak memory: see [`crate::rss`].
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

fn usage(message: String) -> Error {
    Error::Usage(format!(
        "{message}\n(run with --help for the flags and examples)"
    ))
}

fn parse_workload(text: &str) -> Result<Workload, Error> {
    Workload::parse(text).ok_or_else(|| {
        usage(format!(
            "unknown workload `{text}`: expected one of W1..W6 or seed, imbalanced, io, ordered, large, hops"
        ))
    })
}

/// Parses the arguments (without the program name).
///
/// # Errors
///
/// [`Error::Usage`] naming the flag or value that is wrong.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, Error> {
    let mut options = Options::default();
    let mut child_workload = None;
    let mut child_impl = None;
    let mut child_n = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, Error> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| usage(format!("{flag} needs a value: {what}")))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quick" => options.quick = true,
            "--markdown" => options.markdown = true,
            "--no-rss" => options.rss = false,
            "--runs" => {
                let text = value("a positive number of runs, e.g. --runs 3")?;
                options.runs = match text.parse::<usize>() {
                    Ok(runs) if runs > 0 => runs,
                    _ => {
                        return Err(usage(format!(
                            "--runs expects a positive integer, got `{text}`"
                        )))
                    }
                };
            }
            "--min-time" => {
                let text = value("seconds, e.g. --min-time 1")?;
                options.min_time = match text.parse::<f64>() {
                    Ok(secs) if (0.0..=3600.0).contains(&secs) => secs,
                    _ => {
                        return Err(usage(format!(
                            "--min-time expects seconds between 0 and 3600, got `{text}`"
                        )))
                    }
                };
            }
            "--scale" => {
                let text = value("a positive factor, e.g. --scale 0.1")?;
                options.scale = match text.parse::<f64>() {
                    Ok(scale) if scale > 0.0 && scale.is_finite() => scale,
                    _ => {
                        return Err(usage(format!(
                            "--scale expects a positive number, got `{text}`"
                        )))
                    }
                };
            }
            "--only" => {
                let text = value("workloads separated by commas, e.g. --only W1,W4")?;
                let mut only = Vec::new();
                for part in text.split(',').filter(|p| !p.trim().is_empty()) {
                    let workload = parse_workload(part)?;
                    if !only.contains(&workload) {
                        only.push(workload);
                    }
                }
                if only.is_empty() {
                    return Err(usage(
                        "--only needs at least one workload, e.g. --only W1".into(),
                    ));
                }
                options.only = only;
            }
            "--child" => child_workload = Some(parse_workload(&value("a workload")?)?),
            "--impl" => child_impl = Some(value("an implementation")?),
            "--n" => {
                let text = value("an item count")?;
                child_n =
                    Some(text.parse::<u64>().map_err(|_| {
                        usage(format!("--n expects a number of items, got `{text}`"))
                    })?);
            }
            other => return Err(usage(format!("unknown argument `{other}`"))),
        }
    }
    let Some(workload) = child_workload else {
        if child_impl.is_some() || child_n.is_some() {
            return Err(usage("--impl and --n go with --child".into()));
        }
        return Ok(Command::Matrix(options));
    };
    let name = child_impl.unwrap_or_else(|| "millrace".to_owned());
    let implementation = Implementation::parse(workload, &name).ok_or_else(|| {
        usage(format!(
            "no implementation `{name}` for {workload}: expected sequential, rayon, crossbeam, millrace or millrace:K (K from 1 to {})",
            workload.millrace_configs().len()
        ))
    })?;
    Ok(Command::Child {
        workload,
        implementation,
        n: child_n.unwrap_or_else(|| workload.default_n()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, Error> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    fn message(line: &str) -> String {
        match parse_str(line) {
            Err(Error::Usage(message)) => message,
            other => panic!("expected a usage error for `{line}`, got {other:?}"),
        }
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
            parse_str("--runs=5 --only w4,seed --scale 0.5 --markdown")
        else {
            panic!("expected a matrix run");
        };
        assert_eq!(options.runs, 5);
        assert_eq!(options.only, vec![Workload::W4Ordered, Workload::W1Seed]);
        assert_eq!(options.scale, 0.5);
        assert!(options.markdown);
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
        assert!(message("--frobnicate").contains("unknown argument `--frobnicate`"));
        assert!(message("--runs").contains("needs a value"));
    }

    #[test]
    fn the_hidden_child_flags_name_one_run() {
        assert_eq!(
            parse_str("--child W6 --n 100 --impl crossbeam").ok(),
            Some(Command::Child {
                workload: Workload::W6Hops,
                implementation: Implementation::Crossbeam,
                n: 100
            })
        );
        assert!(message("--child W1 --impl fast").contains("no implementation `fast`"));
        assert!(message("--n 5").contains("go with --child"));
        assert!(message("--child W1 --impl millrace:0").contains("K from 1 to"));
        assert!(matches!(
            parse_str("--child W1 --impl millrace:2"),
            Ok(Command::Child { implementation: Implementation::Millrace(c), .. }) if c.batch == 4096
        ));
    }
}
