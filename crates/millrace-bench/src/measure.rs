//! Timing: run an implementation several times and keep the median.

use std::time::{Duration, Instant};

use crate::error::Error;

/// Several timed runs of one implementation over `n` items.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Items per run.
    pub n: u64,
    /// The checksum every run gave.
    pub checksum: u64,
    /// Each run's wall time, sorted.
    pub times: Vec<Duration>,
}

impl Measurement {
    /// The median run time.
    pub fn median(&self) -> Duration {
        let len = self.times.len();
        if len == 0 {
            return Duration::ZERO;
        }
        if len % 2 == 1 {
            self.times[len / 2]
        } else {
            (self.times[len / 2 - 1] + self.times[len / 2]) / 2
        }
    }

    /// Items per second at the median run time.
    pub fn rate(&self) -> f64 {
        let secs = self.median().as_secs_f64();
        if secs > 0.0 {
            self.n as f64 / secs
        } else {
            f64::INFINITY
        }
    }

    /// Nanoseconds per item at the median run time.
    pub fn ns_per_item(&self) -> f64 {
        1e9 / self.rate()
    }

    /// The spread of the runs, (slowest − fastest) / median.
    pub fn spread(&self) -> f64 {
        match (self.times.first(), self.times.last()) {
            (Some(fastest), Some(slowest)) if !self.median().is_zero() => {
                (*slowest - *fastest).as_secs_f64() / self.median().as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// The most runs [`measure`] makes to fill its minimum time.
pub const MAX_RUNS: usize = 100;

/// How many runs to make of one implementation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Runs {
    /// At least this many runs.
    pub at_least: usize,
    /// And more (up to [`MAX_RUNS`]) until the runs took this long together: a run of a
    /// few milliseconds is at the mercy of one time slice, so short runs are repeated.
    pub min_time: Duration,
}

/// Runs `f` (which processes `n` items and returns their checksum) as often as `runs` says.
///
/// # Errors
///
/// The first error of a run, or [`Error::Checksum`] if two runs disagree.
pub fn measure(
    workload: &'static str,
    implementation: &str,
    runs: Runs,
    n: u64,
    mut f: impl FnMut() -> Result<u64, Error>,
) -> Result<Measurement, Error> {
    let mut times: Vec<Duration> = Vec::with_capacity(runs.at_least);
    let mut checksum = None;
    let more = |times: &Vec<Duration>| {
        times.len() < runs.at_least.max(1)
            || (times.len() < MAX_RUNS && times.iter().sum::<Duration>() < runs.min_time)
    };
    while more(&times) {
        let start = Instant::now();
        let got = f()?;
        times.push(start.elapsed());
        match checksum {
            None => checksum = Some(got),
            Some(first) if first != got => {
                return Err(Error::Checksum {
                    workload,
                    implementation: format!("{implementation} (a later run)"),
                    expected: first,
                    got,
                })
            }
            Some(_) => {}
        }
    }
    times.sort();
    Ok(Measurement {
        n,
        checksum: checksum.unwrap_or_default(),
        times,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(millis: &[u64]) -> Measurement {
        Measurement {
            n: 1000,
            checksum: 0,
            times: millis.iter().map(|&m| Duration::from_millis(m)).collect(),
        }
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_run() {
        assert_eq!(of(&[1, 2, 9]).median(), Duration::from_millis(2));
        assert_eq!(of(&[1, 2, 9]).rate(), 500_000.0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(of(&[1, 2, 4, 9]).median(), Duration::from_millis(3));
    }

    #[test]
    fn short_runs_are_repeated_until_the_minimum_time_is_filled() {
        let runs = Runs {
            at_least: 3,
            min_time: Duration::from_millis(20),
        };
        let m = measure("W1", "short", runs, 10, || {
            std::thread::sleep(Duration::from_millis(2));
            Ok(7)
        });
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        // The exact stopping rule, whatever a 2 ms sleep really takes on a loaded machine
        // (it was a count of at least 9, which a sleep of over 2.2 ms broke): runs go on
        // until they fill the minimum time, and stop with the run that fills it.
        let total: Duration = m.times.iter().sum();
        let before_last = total - m.times[m.times.len() - 1];
        assert!(
            total >= runs.min_time,
            "{:?} in {} runs",
            total,
            m.times.len()
        );
        assert!(
            m.times.len() >= runs.at_least,
            "only {} runs",
            m.times.len()
        );
        if m.times.len() > runs.at_least {
            assert!(
                before_last < runs.min_time,
                "one run too many: {:?}",
                m.times
            );
        }
        assert!(m.times.len() <= MAX_RUNS);
    }

    #[test]
    fn runs_that_disagree_are_a_checksum_error() {
        let mut next = 0;
        let runs = Runs {
            at_least: 3,
            min_time: Duration::ZERO,
        };
        let result = measure("W1", "flaky", runs, 10, || {
            next += 1;
            Ok(next)
        });
        assert!(matches!(result, Err(Error::Checksum { .. })));
    }
}
