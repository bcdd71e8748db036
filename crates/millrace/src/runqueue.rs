//! How long a thread waited for a core while it could have run: what a busy machine adds
//! to the wall-clock time of the work it was doing.
//!
//! The controller splits a fused run when its parts' work, timed by the clock, is costly
//! enough (`autoscale`). On a machine whose cores are all taken, a worker preempted in the
//! middle of a batch has that batch timed long: a cheap run of `.capacity(8)` stages split
//! under CI's CPU hogs and then crawled (100,000 items in 20 s, every 2-item hand-off
//! waiting for a time slice). Linux counts, per thread, the time spent runnable but not
//! running (`/proc/self/task/<tid>/schedstat`, second field); the controller takes it off
//! the run's busy time. Elsewhere nothing is taken off.

use std::time::Duration;

/// The calling thread's id as the kernel knows it (`None` where that cannot be read).
pub(crate) fn current_thread_id() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // "<pid>/task/<tid>"
        let link = std::fs::read_link("/proc/thread-self").ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// How long thread `tid` of this process has waited for a core while runnable, since it
/// started (`None` where that cannot be read).
pub(crate) fn waited_for_a_core(tid: u64) -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        parse_schedstat_wait(&stat)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tid;
        None
    }
}

/// The run-queue wait of a `schedstat` line: "<on cpu ns> <waiting ns> <time slices>".
fn parse_schedstat_wait(stat: &str) -> Option<Duration> {
    let waited = stat.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(waited))
}

/// The run-queue waits of threads seen at the last look, for the wait since then.
#[derive(Default)]
pub(crate) struct Waits {
    last: std::collections::HashMap<u64, Duration>,
}

impl Waits {
    /// How long the threads `tids` waited for a core since the last look at each (since it
    /// started, for one not seen before).
    pub(crate) fn since_last(&mut self, tids: impl Iterator<Item = u64>) -> Duration {
        tids.filter_map(|tid| {
            let now = waited_for_a_core(tid)?;
            let before = self.last.insert(tid, now).unwrap_or_default();
            Some(now.saturating_sub(before))
        })
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_second_field_of_schedstat() {
        assert_eq!(
            parse_schedstat_wait("123456 7890 12\n"),
            Some(Duration::from_nanos(7890))
        );
        assert_eq!(parse_schedstat_wait("garbage"), None);
        assert_eq!(parse_schedstat_wait(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_threads_wait_can_be_read_and_only_grows() {
        let tid = current_thread_id().expect("Linux names its threads in /proc");
        let mut waits = Waits::default();
        let first = waits.since_last(std::iter::once(tid));
        let again = waited_for_a_core(tid).expect("still readable");
        assert!(again >= first, "since its start, then no less");
        // A second look counts only what came after the first: with the first, no more than
        // the whole wait read after it. (The wait may grow between any two reads: a busy
        // machine preempts this thread too.)
        let later = waits.since_last(std::iter::once(tid));
        let total = waited_for_a_core(tid).expect("still readable");
        assert!(first + later <= total, "{first:?} + {later:?} > {total:?}");
    }

    #[test]
    fn a_thread_that_cannot_be_read_adds_nothing() {
        let mut waits = Waits::default();
        assert_eq!(waits.since_last(std::iter::once(u64::MAX)), Duration::ZERO);
    }
}
