//! Catching user code's panics quietly.
//!
//! A panic in a stage, a sink, a hook or a dead-letter handler fails one item: millrace
//! catches it, counts it and keeps its message for the report. The standard panic hook
//! would still print every one of them to stderr (with a backtrace under
//! `RUST_BACKTRACE=1`): ten thousand caught panics wrote 629k lines and made a run 40×
//! slower. So every place that runs user code calls [`catch`] instead of
//! `std::panic::catch_unwind`, which marks the thread as "inside a millrace catch" while the
//! closure runs; a panic hook installed once per process stays silent for panics raised
//! there and passes every other panic to the hook that was installed before it.
//!
//! [`PipelineBuilder::show_caught_panics`](crate::PipelineBuilder::show_caught_panics) (or
//! the environment variable `MILLRACE_SHOW_PANICS=1`) lets them through again, for
//! debugging.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many quiet [`catch`]es this thread is inside.
    static QUIET_DEPTH: Cell<u32> = const { Cell::new(0) };
}

static INSTALL: Once = Once::new();

/// Whether caught panics print by default: `MILLRACE_SHOW_PANICS` set to anything but `0`.
pub(crate) fn shown_by_default() -> bool {
    std::env::var_os("MILLRACE_SHOW_PANICS").is_some_and(|v| v != "0")
}

/// Installs the quiet hook in front of the current one, once per process.
pub(crate) fn install_quiet_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET_DEPTH.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Restores the depth when the closure returns or unwinds.
struct Quiet;

impl Quiet {
    fn enter() -> Self {
        QUIET_DEPTH.with(|d| d.set(d.get() + 1));
        Quiet
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        QUIET_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Runs user code, catching a panic. With `quiet`, the panic hook prints nothing for it.
#[inline]
pub(crate) fn catch<R>(quiet: bool, f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    let _quiet = quiet.then(Quiet::enter);
    catch_unwind(AssertUnwindSafe(f))
}

/// Runs `f` (a poll of a user's future, say) marked quiet like [`catch`], without catching:
/// for code whose panics an enclosing catch handles.
#[cfg(feature = "async")]
#[inline]
pub(crate) fn quietly<R>(quiet: bool, f: impl FnOnce() -> R) -> R {
    let _quiet = quiet.then(Quiet::enter);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_catch_returns_the_payload_and_leaves_the_depth_at_zero() {
        install_quiet_hook();
        let caught = catch(true, || panic!("boom"));
        let payload = caught.expect_err("the closure panicked");
        assert_eq!(crate::error::panic_message(&*payload), "boom");
        assert_eq!(QUIET_DEPTH.with(Cell::get), 0);
        assert_eq!(catch(true, || 7).ok(), Some(7));
    }

    #[test]
    fn nested_catches_stay_quiet_until_the_outer_one_ends() {
        let depth_after_inner = catch(true, || {
            let _ = catch(true, || panic!("inner"));
            QUIET_DEPTH.with(Cell::get)
        });
        assert_eq!(depth_after_inner.ok(), Some(1));
        assert_eq!(QUIET_DEPTH.with(Cell::get), 0);
    }
}
