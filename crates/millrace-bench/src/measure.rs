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

/// Runs `f` (which processes `n` items and returns their checksum) `runs` times.
///
/// # Errors
///
/// The first error of a run, or [`Error::Checksum`] if two runs disagree.
pub fn measure(
    workload: &'static str,
    implementation: &str,
    runs: usize,
    n: u64,
    mut f: impl FnMut() -> Result<u64, Error>,
) -> Result<Measurement, Error> {
    let mut times = Vec::with_capacity(runs);
    let mut checksum = None;
    for _ in 0..runs.max(1) {
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
    fn runs_that_disagree_are_a_checksum_error() {
        let mut next = 0;
        let result = measure("W1", "flaky", 3, 10, || {
            next += 1;
            Ok(next)
        });
        assert!(matches!(result, Err(Error::Checksum { .. })));
    }
}
