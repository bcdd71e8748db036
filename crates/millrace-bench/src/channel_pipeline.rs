//! The hand-written baseline: a classic Go-style channel pipeline.
//!
//! One thread per stage, joined by bounded [`crossbeam_channel`]s that carry **one item per
//! message**. The source runs on a thread of its own and the sink folds on the calling
//! thread. This is what most people write by hand, and what millrace's batching is measured
//! against.
//!
//! ```
//! use millrace_bench::channel_pipeline::ChannelPipeline;
//!
//! let sum = ChannelPipeline::source(0..100u64, 16)
//!     .stage("double", |x| 2 * x)
//!     .fold(0, |s, x| s + x)?;
//! assert_eq!(sum, 9900);
//! # Ok::<(), millrace_bench::Error>(())
//! ```

use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, Receiver};

use crate::error::Error;

/// Channel capacity, in items, used for the cheap-item workloads.
pub const DEFAULT_CAPACITY: usize = 1024;

/// A channel pipeline being built: its threads so far and the receiver at its open end.
pub struct ChannelPipeline<T> {
    rx: Receiver<T>,
    capacity: usize,
    threads: Vec<(String, JoinHandle<()>)>,
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> (String, JoinHandle<()>) {
    let handle = thread::Builder::new()
        .name(format!("channel-{name}"))
        .spawn(body)
        .expect("the OS refused to start a baseline thread");
    (name.to_owned(), handle)
}

impl<T: Send + 'static> ChannelPipeline<T> {
    /// Starts a pipeline whose items come from `items`, sent one by one from a thread of its
    /// own; every channel of the pipeline holds at most `capacity` items.
    pub fn source<I>(items: I, capacity: usize) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        let (tx, rx) = bounded(capacity);
        let iter = items.into_iter();
        let source = spawn("source", move || {
            for item in iter {
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        ChannelPipeline {
            rx,
            capacity,
            threads: vec![source],
        }
    }

    /// Appends a stage on a thread of its own: it receives an item, applies `f`, sends the
    /// result on.
    pub fn stage<U, F>(mut self, name: &str, mut f: F) -> ChannelPipeline<U>
    where
        U: Send + 'static,
        F: FnMut(T) -> U + Send + 'static,
    {
        let (tx, rx) = bounded(self.capacity);
        let input = self.rx;
        self.threads.push(spawn(name, move || {
            for item in input {
                if tx.send(f(item)).is_err() {
                    break;
                }
            }
        }));
        ChannelPipeline {
            rx,
            capacity: self.capacity,
            threads: self.threads,
        }
    }

    /// Folds the outputs on the calling thread, then joins every thread.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] if a stage or the source panicked.
    pub fn fold<A>(self, init: A, mut f: impl FnMut(A, T) -> A) -> Result<A, Error> {
        let mut acc = init;
        for item in self.rx {
            acc = f(acc, item);
        }
        for (name, handle) in self.threads {
            handle
                .join()
                .map_err(|payload| Error::panicked(format!("channel stage `{name}`"), &*payload))?;
        }
        Ok(acc)
    }
}
