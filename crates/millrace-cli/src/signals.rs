//! Ctrl-C and SIGTERM: the first asks the run to stop gracefully, the second aborts it.
//!
//! The handler (installed once per process, through `signal-hook`'s signal iterator, on a
//! thread of its own) only counts interrupts, SIGINT and SIGTERM alike, and remembers
//! whether a SIGTERM was among them (the command then exits 143, 128 + SIGTERM, rather than
//! 130), and wakes the supervisor ([`crate::supervise`]), which reads the count and acts on
//! the run's handle:
//! at 1 a graceful stop (the source stops, items in flight drain, sinks flush), at 2 a
//! cancel, and if the workers do not let go within a second, the command exits without
//! waiting for them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The process's interrupt counter.
#[derive(Clone, Debug)]
pub struct Interrupts {
    count: Arc<AtomicUsize>,
    terminated: Arc<AtomicBool>,
    /// Gets a message for each interrupt: what the supervisor waits on (no polling).
    wake: (Sender<()>, Receiver<()>),
}

static INSTALLED: OnceLock<Interrupts> = OnceLock::new();

impl Interrupts {
    /// Installs the handler (once) and returns the counter. If the handler cannot be
    /// installed, Ctrl-C keeps its default meaning (the process ends at once).
    pub fn install() -> Interrupts {
        INSTALLED
            .get_or_init(|| {
                let counter = Interrupts::none();
                let seen = counter.clone();
                let listen = Signals::new([SIGINT, SIGTERM]).and_then(|mut signals| {
                    std::thread::Builder::new()
                        .name("millrace-signals".into())
                        .spawn(move || {
                            for signal in signals.forever() {
                                if signal == SIGTERM {
                                    seen.terminated.store(true, Ordering::SeqCst);
                                }
                                seen.count.fetch_add(1, Ordering::SeqCst);
                                // A full channel already holds a wake-up: that one will do.
                                let _ = seen.wake.0.try_send(());
                            }
                        })
                });
                if let Err(e) = listen {
                    eprintln!("millrace: warning: cannot catch Ctrl-C: {e}");
                }
                counter
            })
            .clone()
    }

    /// A counter no signal reaches (for runs that must not be interrupted, and tests).
    pub fn none() -> Interrupts {
        Interrupts {
            count: Arc::new(AtomicUsize::new(0)),
            terminated: Arc::new(AtomicBool::new(false)),
            wake: crossbeam_channel::bounded(1),
        }
    }

    /// A channel that receives a message when an interrupt arrives (at least one for any
    /// number of interrupts since the last was taken): to wait on, then read [`count`].
    ///
    /// [`count`]: Interrupts::count
    pub fn wakeup(&self) -> &Receiver<()> {
        &self.wake.1
    }

    /// How many interrupts arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Whether a SIGTERM was among them.
    pub fn terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }
}
