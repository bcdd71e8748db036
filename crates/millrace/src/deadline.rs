//! A cheap test of whether a deadline has passed, for loops that ask often and are almost
//! always told "not yet".
//!
//! A filling source asks, as its batch grows (at 2, 4, … 64 items, then every 64), whether
//! the batch has been open too long (see `pipeline::source`). `Instant::elapsed` costs about
//! 25 ns on the machines we measure (a virtualised `clock_gettime`), which was 7–9% of a
//! cheap fused run's time (`perf` of W1 at `.capacity(1024)`). On x86-64, [`Deadline`] first
//! reads the CPU's time-stamp counter (about 10 ns) and consults the real clock only once
//! enough ticks have passed that the deadline *might* have: the tick threshold assumes the
//! slowest counter we allow for ([`SLOWEST_TSC_HZ`]), so on any faster one it is reached
//! early, never late. A CPU that says its counter is invariant (it runs at a constant rate
//! and never stops, CPUID leaf 8000_0007h) is trusted alone: a thread moved to a core whose
//! counter lags behind (the kernel keeps them in step, and checks) can then be told "not
//! yet" late by that lag, which a filling source can afford. Where the CPU does not say so
//! (an old CPU whose counter stops in deep sleep), the real clock is still read at every
//! [`CLOCK_EVERY`]-th test, which bounds how late the answer can be in tests rather than in
//! time. (Read at every 8th test on a CPU that says so, the real clock was
//! still 11% of a one-stage run's source thread, `perf` of `y + 1` on `0..n`.) Elsewhere,
//! and under Miri (which cannot run `rdtsc`), it is `Instant::elapsed` every time.
//!
//! (A process that forbids `rdtsc` with `prctl(PR_SET_TSC, PR_TSC_SIGSEGV)` cannot run an
//! iterator source; nothing else in the crate reads the counter.)

use std::time::{Duration, Instant};

/// The slowest time-stamp counter the tick threshold allows for: 500 MHz. A constant-rate
/// counter runs at the CPU's nominal frequency, 600 MHz on the slowest x86-64 parts sold
/// (low-power embedded ones) and above 1 GHz on most.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const SLOWEST_TSC_HZ: u128 = 500_000_000;

/// Every this many tests, the real clock decides whatever a counter that may not keep time
/// says.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const CLOCK_EVERY: u32 = 8;

/// A moment and a span after it; [`passed`](Deadline::passed) says whether the span is over.
pub(crate) struct Deadline {
    since: Instant,
    after: Duration,
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    ticks: TickCheck,
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
struct TickCheck {
    start: u64,
    /// Ticks that take at most `after` on a counter of [`SLOWEST_TSC_HZ`] or faster.
    threshold: u64,
    /// Tests answered from the counter alone since the real clock was last read.
    unchecked: u32,
    /// Tests the counter may answer alone in a row: [`CLOCK_EVERY`] - 1, or all of them on
    /// a CPU whose counter keeps time.
    trusted: u32,
}

/// The time-stamp counter. With [`tsc_keeps_time`], one of the crate's two places of `unsafe`
/// (the other is `stage::in_place`; the workspace denies it elsewhere, and the other crates
/// forbid it): the intrinsic is marked unsafe though it has no precondition.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(unsafe_code)]
#[inline]
fn ticks_now() -> u64 {
    // SAFETY: `rdtsc` exists on every x86-64 CPU and only reads the time-stamp counter; it
    // touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Whether the CPU says its time-stamp counter is invariant: a constant rate in every power
/// state, never stopped (CPUID leaf 8000_0007h, EDX bit 8; Linux's `nonstop_tsc`). Asked
/// once per process.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(unsafe_code, unused_unsafe)]
fn tsc_keeps_time() -> bool {
    static INVARIANT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INVARIANT.get_or_init(|| {
        // SAFETY: `cpuid` exists on every x86-64 CPU and only reads identification
        // registers; it touches no memory. (Leaf 8000_0000h gives the highest extended
        // leaf, so that 8000_0007h is asked only where it means something. Newer Rust marks
        // the intrinsic safe.)
        unsafe {
            let highest = core::arch::x86_64::__cpuid(0x8000_0000).eax;
            highest >= 0x8000_0007 && core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0
        }
    })
}

impl Deadline {
    /// A deadline `after` from `now`, a moment just taken: the tick count starts here, so
    /// a moment from further back would be told "not yet" late by the difference. (Reading
    /// the clock to take it off cost a clock read per batch of a filling source.)
    pub(crate) fn starting(now: Instant, after: Duration) -> Self {
        Deadline {
            since: now,
            after,
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            ticks: TickCheck {
                start: ticks_now(),
                threshold: u64::try_from(after.as_nanos() * SLOWEST_TSC_HZ / 1_000_000_000)
                    .unwrap_or(u64::MAX),
                unchecked: 0,
                trusted: if tsc_keeps_time() {
                    u32::MAX
                } else {
                    CLOCK_EVERY - 1
                },
            },
        }
    }

    /// Whether more than `after` has passed since `since`.
    #[inline]
    pub(crate) fn passed(&mut self) -> bool {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            let ticks = &mut self.ticks;
            if ticks.unchecked < ticks.trusted
                && ticks_now().wrapping_sub(ticks.start) < ticks.threshold
            {
                ticks.unchecked += 1;
                return false;
            }
            ticks.unchecked = 0;
        }
        self.since.elapsed() > self.after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_not_yet_reached_has_not_passed() {
        let mut deadline = Deadline::starting(Instant::now(), Duration::from_secs(3600));
        assert!((0..100).all(|_| !deadline.passed()));
    }

    #[test]
    fn a_deadline_is_seen_to_pass_once_its_span_is_over() {
        let mut deadline = Deadline::starting(Instant::now(), Duration::from_millis(2));
        std::thread::sleep(Duration::from_millis(3));
        assert!(deadline.passed());
    }
}
