//! What a stage does when an item fails: [`ErrorPolicy`].
//!
//! The policy is set for the whole pipeline
//! ([`PipelineBuilder::on_error`](crate::PipelineBuilder::on_error)) and can be overridden per
//! stage ([`Stage::on_error`](crate::Stage::on_error)). A failure is an error returned by a
//! fallible stage or a panic in any stage; either way it hits that one item.

use std::time::Duration;

/// What a stage does with an item that failed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use millrace::{ErrorPolicy, Retry};
///
/// let policy = ErrorPolicy::Retry(Retry::new(3).backoff(Duration::from_millis(10)));
/// let ErrorPolicy::Retry(retry) = policy else { unreachable!() };
/// assert_eq!(retry.attempts, 3);
/// assert_eq!(retry.backoff, Duration::from_millis(10));
/// assert_eq!(retry.max_backoff, Duration::from_secs(1));
/// assert!(!retry.then_stop);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// Report the failure (with the item's id and stage), send the item to the stage's dead
    /// letters if it has any, and go on with the next item. Costs nothing on success.
    #[default]
    Skip,
    /// Try the item again, up to a limit, sleeping between tries; then skip it, or stop.
    /// Only the fallible stages that still have the item after a failed try can retry:
    /// `try_map`, `try_flat_map` and their `_with` forms and `try_map_async` (they borrow
    /// it), and `try_map_owned` (an error hands it back). Other stages treat this like its
    /// `then` policy.
    Retry(Retry),
    /// Stop the pipeline gracefully: the source stops, items in flight drain, and the run
    /// returns this first error. The items that drain are every item the source had
    /// admitted: what the connectors hold (up to each stage's
    /// [`capacity`](crate::Stage::capacity)) and what async stages have in flight, so a
    /// stage with side effects keeps making them for a while after the failure; a small
    /// capacity bounds that, and [`Handle::cancel`](crate::Handle::cancel) drops them.
    Stop,
}

/// How to retry a failed item: [`ErrorPolicy::Retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retry {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// Sleep before the second try; doubled before each try after it.
    pub backoff: Duration,
    /// The longest sleep between two tries.
    pub max_backoff: Duration,
    /// When the tries are used up: stop the pipeline (`true`) or skip the item (`false`).
    pub then_stop: bool,
}

impl Retry {
    /// Up to `attempts` tries in all, 1 ms backoff doubling up to 1 s, then skip. An
    /// `attempts` of 0 is taken as 1: one try, no retry.
    pub fn new(attempts: u32) -> Self {
        Retry {
            attempts: attempts.max(1),
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_secs(1),
            then_stop: false,
        }
    }

    /// Sets the sleep before the second try.
    #[must_use = "a retry policy does nothing until given to `ErrorPolicy::Retry`"]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the longest sleep between tries.
    #[must_use = "a retry policy does nothing until given to `ErrorPolicy::Retry`"]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Stop the pipeline (rather than skip the item) once the tries are used up.
    #[must_use = "a retry policy does nothing until given to `ErrorPolicy::Retry`"]
    pub fn then_stop(mut self) -> Self {
        self.then_stop = true;
        self
    }

    /// The sleep before try number `attempt` (2 for the first retry).
    pub(crate) fn delay_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(30);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

impl ErrorPolicy {
    /// The number of tries this policy allows a fallible stage.
    pub(crate) fn attempts(&self) -> u32 {
        match self {
            ErrorPolicy::Retry(r) => r.attempts.max(1),
            _ => 1,
        }
    }

    /// Whether a failure that exhausted the tries stops the pipeline.
    pub(crate) fn stops(&self) -> bool {
        match self {
            ErrorPolicy::Skip => false,
            ErrorPolicy::Stop => true,
            ErrorPolicy::Retry(r) => r.then_stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let r = Retry::new(10)
            .backoff(Duration::from_millis(10))
            .max_backoff(Duration::from_millis(35));
        assert_eq!(r.delay_before(2), Duration::from_millis(10));
        assert_eq!(r.delay_before(3), Duration::from_millis(20));
        assert_eq!(r.delay_before(4), Duration::from_millis(35));
        assert_eq!(r.delay_before(40), Duration::from_millis(35));
    }
}
