//! A cheap test of whether a deadline has passed, for loops that ask often and are almost
//! always told "not yet".
//!
//! A filling source asks every 64 items whether its batch has been open too long (see
//! `pipeline::source`). `Instant::elapsed` costs about 25 ns on the machines we measure (a
//! virtualised `clock_gettime`), which was 7–9% of a cheap fused run's time (`perf` of W1 at
//! `.capacity(1024)`). On x86-64, [`Deadline`] first reads the CPU's time-stamp counter
//! (about 10 ns) and consults the real clock only once enough ticks have passed that the
//! deadline *might* have: the tick threshold assumes the slowest counter we support
//! ([`SLOWEST_TSC_HZ`]), so on any faster one it is reached early, never late. A counter
//! that jumps (a migration between sockets that disagree) only sends the test to the real
//! clock sooner. Elsewhere it is `Instant::elapsed`.

use std::time::{Duration, Instant};

/// The slowest time-stamp counter the tick threshold allows for: 500 MHz. Every x86-64 CPU
/// with a constant-rate counter runs it at its nominal frequency, 1 GHz or more.
#[cfg(target_arch = "x86_64")]
const SLOWEST_TSC_HZ: u128 = 500_000_000;

/// A moment and a span after it; [`passed`](Deadline::passed) says whether the span is over.
pub(crate) struct Deadline {
    since: Instant,
    after: Duration,
    #[cfg(target_arch = "x86_64")]
    ticks: TickCheck,
}

#[cfg(target_arch = "x86_64")]
struct TickCheck {
    start: u64,
    /// Ticks that take at most `after` on a counter of [`SLOWEST_TSC_HZ`] or faster.
    threshold: u64,
}

/// The time-stamp counter. The crate's one `unsafe` (the workspace denies it elsewhere): the
/// intrinsic is marked unsafe though it has no precondition.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
fn ticks_now() -> u64 {
    // SAFETY: `rdtsc` exists on every x86-64 CPU and only reads the time-stamp counter; it
    // touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Deadline {
    /// A deadline `after` from `since` (a moment just taken: the tick count starts now).
    pub(crate) fn new(since: Instant, after: Duration) -> Self {
        Deadline {
            since,
            after,
            #[cfg(target_arch = "x86_64")]
            ticks: TickCheck {
                start: ticks_now(),
                threshold: u64::try_from(after.as_nanos() * SLOWEST_TSC_HZ / 1_000_000_000)
                    .unwrap_or(u64::MAX),
            },
        }
    }

    /// Whether more than `after` has passed since `since`.
    #[inline]
    pub(crate) fn passed(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if ticks_now().wrapping_sub(self.ticks.start) < self.ticks.threshold {
            return false;
        }
        self.since.elapsed() > self.after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_not_yet_reached_has_not_passed() {
        let deadline = Deadline::new(Instant::now(), Duration::from_secs(3600));
        assert!(!deadline.passed());
    }

    #[test]
    fn a_deadline_is_seen_to_pass_once_its_span_is_over() {
        let deadline = Deadline::new(Instant::now(), Duration::from_millis(2));
        std::thread::sleep(Duration::from_millis(3));
        assert!(deadline.passed());
    }

    #[test]
    fn a_deadline_counted_from_the_past_has_passed_at_once() {
        // The tick count starts at `new`; the real clock still decides once the ticks are in.
        let since = Instant::now() - Duration::from_millis(5);
        let deadline = Deadline::new(since, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(2));
        assert!(deadline.passed());
    }
}
