//! Helpers shared by the behaviour tests: a timeout around anything that could hang, and a
//! panic hook that keeps the panics the tests inject on purpose out of the output.

#![allow(dead_code)] // each test file uses its own subset

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// The prefix of every panic message a test injects on purpose.
pub(crate) const INJECTED: &str = "injected";

/// Runs `f` on a thread of its own and returns its result; panics if it has not finished
/// within `secs` seconds (a hang), and passes on its panic if it panicked.
pub(crate) fn within<T, F>(secs: u64, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    quiet_injected_panics();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn the test body");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => resume_unwind(payload),
        Err(_) => panic!("timed out: the test body did not finish within {secs} s (a hang?)"),
    }
}

/// Waits until `cond` holds, checking every millisecond; panics after `secs` seconds.
pub(crate) fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Installs (once per test binary) a panic hook that stays silent for panics whose message
/// starts with [`INJECTED`] and reports every other panic as usual.
pub(crate) fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned());
            if msg.is_some_and(|m| m.starts_with(INJECTED)) {
                return;
            }
            default(info);
        }));
    });
}

/// The wrapping sum of 3·x² for x < n, by the closed form n(n-1)(2n-1)/2.
pub(crate) fn closed_form_sum(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let n = u128::from(n);
    // (n-1)·n·(2n-1) is divisible by 6, so 3·that/6 = that/2; mod 2^64 at the end.
    ((n - 1) * n * (2 * n - 1) / 2) as u64
}

/// Property-test settings for tests whose cases run under [`within`]: `cases` cases, and
/// shrinking bounded to three minutes. When a case hangs, every smaller case that still
/// hangs costs a whole timeout, so unbounded shrinking would hold CI for hours.
pub(crate) fn hang_safe_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        max_shrink_time: 3 * 60 * 1000,
        ..proptest::test_runner::Config::with_cases(cases)
    }
}

/// Counts the calls that are inside a stage's code at once, and the most there ever were.
#[derive(Clone, Default)]
pub(crate) struct Inside {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Inside {
    /// Runs `f`, counted as inside while it runs.
    pub(crate) fn during<T>(&self, f: impl FnOnce() -> T) -> T {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let out = f();
        self.now.fetch_sub(1, Ordering::SeqCst);
        out
    }

    /// The most calls that were inside at once.
    pub(crate) fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// The report of a run that ended either way: completed, or with an error that carries it
/// (a cancelled or failed run still reports).
pub(crate) fn report_of<T>(
    ended: Result<millrace::Finished<T>, millrace::RunError>,
) -> millrace::Report {
    match ended {
        Ok(finished) => finished.report,
        Err(e) => e.report().expect("a run that ended still reports").clone(),
    }
}

/// Every stage's tally balances: `items_in + expanded = items_out + filtered + failed +
/// cancelled` (each item a stage received ended there in exactly one way; an output a
/// cancel dropped after the stage counted it out counts as cancelled, not both).
pub(crate) fn assert_every_stage_balances(report: &millrace::Report) {
    for stage in report.stages() {
        let t = &stage.tally;
        assert_eq!(
            t.items_in + t.expanded,
            t.items_out + t.filtered + t.failed + t.cancelled,
            "stage `{}` does not balance: {t:?}\n{report}",
            stage.name
        );
    }
}
