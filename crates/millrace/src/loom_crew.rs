//! Model checks (loom) of the crew protocol of autoscaled segments (`segment/crew.rs`): workers
//! retiring while the target drops never retire the last worker, exactly the surplus
//! retires, and the end of input is always noticed by a last worker, even when a worker is
//! added while the others leave. Also the hand-over of a run of stages fused at the start
//! (`segment::handover`): the stages' own workers start only once every fused
//! worker has left, exactly when the request came before the end; and a source read on the
//! fused workers (`segment::pulled_source`) hands over to its own thread with every batch
//! cut exactly once, never by its thread beside a fused worker.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::segment::crew::Crew;
use crate::segment::handover::Handover;

#[test]
fn loom_crew_retires_the_surplus_and_never_the_last_worker() {
    loom::model(|| {
        let crew = Arc::new(Crew::new(3, true));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let crew = Arc::clone(&crew);
                thread::spawn(move || {
                    // One batch boundary, then the end of input.
                    if crew.retire_one() {
                        return (true, false);
                    }
                    (false, crew.leave())
                })
            })
            .collect();
        crew.set_target(1);
        let ends: Vec<(bool, bool)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let retired = ends.iter().filter(|(r, _)| *r).count();
        let last = ends.iter().filter(|(_, l)| *l).count();
        assert!(retired <= 2, "the last worker never retires");
        assert_eq!(last, 1, "exactly one worker is the last out");
        assert_eq!(crew.alive(), 0);
    });
}

#[test]
fn loom_crew_end_of_input_is_seen_even_when_a_worker_joins_late() {
    loom::model(|| {
        let crew = Arc::new(Crew::new(1, true));
        // The segment's spare outlet: present while the segment runs.
        let outlet = Arc::new(Mutex::new(Some(())));
        let leave = |crew: &Crew, outlet: &Mutex<Option<()>>| {
            if crew.leave() {
                outlet.lock().unwrap().take();
            }
        };
        let first = {
            let (crew, outlet) = (Arc::clone(&crew), Arc::clone(&outlet));
            thread::spawn(move || leave(&crew, &outlet))
        };
        // The controller grows the segment: only while the outlet is still there.
        let grown = {
            let guard = outlet.lock().unwrap();
            if guard.is_some() {
                crew.join();
                drop(guard);
                let (crew, outlet) = (Arc::clone(&crew), Arc::clone(&outlet));
                Some(thread::spawn(move || leave(&crew, &outlet)))
            } else {
                None
            }
        };
        first.join().unwrap();
        if let Some(g) = grown {
            g.join().unwrap();
        }
        assert_eq!(crew.alive(), 0);
        assert!(
            outlet.lock().unwrap().is_none(),
            "the end of input reached downstream"
        );
    });
}

#[test]
fn loom_a_split_starts_the_stages_own_workers_only_after_every_fused_worker_left() {
    loom::model(|| {
        let crew = Arc::new(Crew::new(2, false));
        let started = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicUsize::new(0));
        let handover = {
            let (started, starts) = (Arc::clone(&started), Arc::clone(&starts));
            Arc::new(Handover::new(Box::new(move || {
                started.store(true, Ordering::SeqCst);
                starts.fetch_add(1, Ordering::SeqCst);
            })))
        };
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (crew, started, handover) = (
                    Arc::clone(&crew),
                    Arc::clone(&started),
                    Arc::clone(&handover),
                );
                thread::spawn(move || {
                    // Two batches, or fewer once the hand-over is asked for.
                    for _ in 0..2 {
                        if handover.is_requested() {
                            break;
                        }
                        assert!(
                            !started.load(Ordering::SeqCst),
                            "a stage's own workers ran beside its fused ones"
                        );
                    }
                    if crew.leave() {
                        handover.finish();
                    }
                })
            })
            .collect();
        // The controller asks while the workers run or after they ended.
        let asked = handover.request();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(
            starts.load(Ordering::SeqCst),
            usize::from(asked),
            "started once exactly when the request came before the end"
        );
        assert!(!handover.request(), "an ended segment takes no request");
    });
}

#[test]
fn loom_a_source_read_on_fused_workers_hands_over_with_every_batch_cut_once() {
    const BATCHES: u64 = 3;
    loom::model(|| {
        // The iterator's `Cut` under its lock: the next batch's position.
        let cutter = Arc::new(Mutex::new(0u64));
        let cut = Arc::new(Mutex::new(Vec::new()));
        let crew = Arc::new(Crew::new(2, false));
        let own_thread = Arc::new(AtomicBool::new(false));
        let handover = {
            let own_thread = Arc::clone(&own_thread);
            Arc::new(Handover::new(Box::new(move || {
                own_thread.store(true, Ordering::SeqCst);
            })))
        };
        // Cuts the next batch, if the iterator has one.
        let take = |cutter: &Mutex<u64>, cut: &Mutex<Vec<u64>>| {
            let mut next = cutter.lock().unwrap();
            if *next < BATCHES {
                cut.lock().unwrap().push(*next);
                *next += 1;
            }
        };
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (cutter, cut, crew, own_thread, handover) = (
                    Arc::clone(&cutter),
                    Arc::clone(&cut),
                    Arc::clone(&crew),
                    Arc::clone(&own_thread),
                    Arc::clone(&handover),
                );
                thread::spawn(move || {
                    // `run_worker`: a batch at a time, until the hand-over is asked for.
                    for _ in 0..2 {
                        if handover.is_requested() {
                            break;
                        }
                        assert!(
                            !own_thread.load(Ordering::SeqCst),
                            "the source's thread cut beside a fused worker"
                        );
                        take(&cutter, &cut);
                    }
                    if crew.leave() {
                        handover.finish();
                    }
                })
            })
            .collect();
        let asked = handover.request();
        for w in workers {
            w.join().unwrap();
        }
        if own_thread.load(Ordering::SeqCst) {
            // The source's own thread (`run_iter`): the rest of the batches.
            for _ in 0..BATCHES {
                take(&cutter, &cut);
            }
        }
        // Every batch cut exactly once, in order: by the fused workers, then by the source's
        // own thread if the hand-over came before they ran out.
        assert_eq!(*cut.lock().unwrap(), (0..BATCHES).collect::<Vec<_>>());
        assert_eq!(own_thread.load(Ordering::SeqCst), asked);
    });
}
