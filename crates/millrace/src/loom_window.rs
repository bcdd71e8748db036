//! Model checks (loom) of the window hand-off: the admitter never misses a wake-up, never
//! runs more than `limit` positions ahead of the releaser, and `close` frees it for good.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p millrace --lib loom_ --release`.

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::window::Window;

#[test]
fn loom_window_admitter_stays_within_limit_and_finishes() {
    loom::model(|| {
        const N: u64 = 3;
        let window = Arc::new(Window::new(1));
        // Positions admitted so far; the releaser releases only what was admitted.
        let admitted = Arc::new(AtomicU64::new(0));

        let admitter = {
            let (window, admitted) = (Arc::clone(&window), Arc::clone(&admitted));
            thread::spawn(move || {
                for p in 0..N {
                    assert!(window.admit(p));
                    // Never more than `limit` positions admitted and unreleased.
                    assert!(
                        p < window.front() + 1,
                        "position {p} admitted past the window"
                    );
                    admitted.store(p + 1, Ordering::Release);
                }
            })
        };
        let mut released = 0;
        while released < N {
            if admitted.load(Ordering::Acquire) > released {
                window.advance(1);
                released += 1;
            } else {
                thread::yield_now();
            }
        }
        admitter.join().unwrap();
        assert_eq!(window.front(), N);
    });
}

#[test]
fn loom_window_close_wakes_a_waiting_admitter() {
    loom::model(|| {
        let window = Arc::new(Window::new(1));
        let w = Arc::clone(&window);
        let admitter = thread::spawn(move || w.admit(5));
        window.close();
        assert!(!admitter.join().unwrap());
        assert!(
            !window.admit(7),
            "a closed window admits nothing that must wait"
        );
    });
}
