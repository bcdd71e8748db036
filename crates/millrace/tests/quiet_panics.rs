//! Panics that millrace catches in user code stay out of the panic hook (issue 10): ten
//! thousand of them used to print 629k lines. `show_caught_panics(true)` lets them through.
//!
//! One test in its own binary, so that its counting hook is in place before any pipeline
//! runs (millrace puts its quiet hook in front of the hook it finds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use millrace::{Pipeline, Report, Stage};

static COUNTED: AtomicU64 = AtomicU64::new(0);

fn run(show: bool) -> Report {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let report = Pipeline::source(0..100u64)
            .stage(Stage::map("boom", |x: u64| {
                if x % 2 == 0 {
                    panic!("counted {x}");
                }
                x
            }))
            .stage(
                Stage::try_map("check", |&x: &u64| {
                    if x % 5 == 0 {
                        panic!("counted try {x}");
                    }
                    Ok::<_, String>(x)
                })
                .on_response(|id, _| {
                    if id.0 == 1 {
                        panic!("counted hook");
                    }
                }),
            )
            .show_caught_panics(show)
            .for_each(|_| {})
            .run()
            .expect("the run completes")
            .report;
        let _ = tx.send(report);
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the run ended within 60 s")
}

#[test]
fn caught_panics_reach_the_panic_hook_only_when_shown() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        if msg.starts_with("counted") {
            COUNTED.fetch_add(1, Ordering::Relaxed);
        } else {
            previous(info);
        }
    }));

    let quiet = run(false);
    // 50 even items panic in `boom`; of the 50 odd ones, 10 (x % 5 == 0) in `check`.
    assert_eq!(quiet.failed(), 60);
    assert_eq!(quiet.hook_panics().len(), 1);
    assert_eq!(COUNTED.swap(0, Ordering::Relaxed), 0, "quiet by default");

    let shown = run(true);
    assert_eq!(shown.failed(), 60);
    assert_eq!(
        COUNTED.swap(0, Ordering::Relaxed),
        61,
        "every caught panic went through the hook"
    );
}
