//! Ctrl-C: the first asks the run to stop gracefully, the second aborts it.
//!
//! The handler (installed once per process, through `ctrlc`, which also catches SIGTERM)
//! only counts interrupts; the supervisor ([`crate::supervise`]) polls the count and acts
//! on the run's handle: at 1 a graceful stop (the source stops, items in flight drain,
//! sinks flush), at 2 a cancel, and if the workers do not let go within a second, the
//! command exits without waiting for them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The process's interrupt counter.
#[derive(Clone, Debug)]
pub struct Interrupts {
    count: Arc<AtomicUsize>,
}

static INSTALLED: OnceLock<Interrupts> = OnceLock::new();

impl Interrupts {
    /// Installs the handler (once) and returns the counter. If the handler cannot be
    /// installed, Ctrl-C keeps its default meaning (the process ends at once).
    pub fn install() -> Interrupts {
        INSTALLED
            .get_or_init(|| {
                let count = Arc::new(AtomicUsize::new(0));
                let seen = Arc::clone(&count);
                if let Err(e) = ctrlc::set_handler(move || {
                    seen.fetch_add(1, Ordering::SeqCst);
                }) {
                    eprintln!("millrace: warning: cannot catch Ctrl-C: {e}");
                }
                Interrupts { count }
            })
            .clone()
    }

    /// A counter no signal reaches (for runs that must not be interrupted, and tests).
    pub fn none() -> Interrupts {
        Interrupts {
            count: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many interrupts arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}
