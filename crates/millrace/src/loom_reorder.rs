//! Model checks (loom) of the reorder buffer: whatever order workers finish in, batches leave
//! in sequence, each exactly once, and the region's window is released exactly as they leave.

use std::collections::VecDeque;

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use crate::reorder::Reorder;
use crate::window::Window;

#[test]
fn loom_reorder_emits_each_batch_once_in_sequence() {
    loom::model(|| {
        let reorder = Arc::new(Reorder::new());
        let emitted = Arc::new(Mutex::new(Vec::new()));
        let region = Arc::new(Window::new(3));
        let workers: Vec<_> = [vec![0u64, 2], vec![1]]
            .into_iter()
            .map(|seqs| {
                let (reorder, emitted, region) = (
                    Arc::clone(&reorder),
                    Arc::clone(&emitted),
                    Arc::clone(&region),
                );
                thread::spawn(move || {
                    for seq in seqs {
                        let released = reorder.insert(seq, seq * 10, |batch| {
                            emitted.lock().unwrap().push(batch);
                        });
                        region.advance(released);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(*emitted.lock().unwrap(), vec![0, 10, 20]);
        assert_eq!(region.front(), 3);
        assert!(reorder.drain().is_empty());
    });
}

/// A blocking queue shared by several workers (loom's mpsc has a single consumer).
struct Queue {
    items: Mutex<VecDeque<Option<u64>>>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, item: Option<u64>) {
        self.items.lock().unwrap().push_back(item);
        self.ready.notify_all();
    }

    fn pop(&self) -> Option<u64> {
        let mut items = self.items.lock().unwrap();
        loop {
            match items.pop_front() {
                Some(None) => {
                    // Leave the end marker for the other workers.
                    items.push_front(None);
                    return None;
                }
                Some(item) => return item,
                None => items = self.ready.wait(items).unwrap(),
            }
        }
    }
}

#[test]
fn loom_reorder_window_of_one_cannot_deadlock() {
    // The producer numbers batches and admits each through a window of 1; two workers
    // share its queue and finish in any order. Loom reports a deadlock if any
    // interleaving leaves everyone waiting.
    loom::model(|| {
        const N: u64 = 3;
        let region = Arc::new(Window::new(1));
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        });
        let reorder = Arc::new(Reorder::new());
        let emitted = Arc::new(Mutex::new(Vec::new()));
        let producer = {
            let (region, queue) = (Arc::clone(&region), Arc::clone(&queue));
            thread::spawn(move || {
                for seq in 0..N {
                    assert!(region.admit(seq));
                    queue.push(Some(seq));
                }
                queue.push(None);
            })
        };
        let worker = || {
            let (reorder, emitted, region, queue) = (
                Arc::clone(&reorder),
                Arc::clone(&emitted),
                Arc::clone(&region),
                Arc::clone(&queue),
            );
            thread::spawn(move || {
                while let Some(seq) = queue.pop() {
                    let released = reorder.insert(seq, seq, |b| emitted.lock().unwrap().push(b));
                    region.advance(released);
                }
            })
        };
        let a = worker();
        let b = worker();
        producer.join().unwrap();
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(*emitted.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(region.front(), N);
    });
}
