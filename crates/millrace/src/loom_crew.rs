//! Model checks (loom) of the crew protocol of autoscaled segments (`segment/crew.rs`): workers
//! retiring while the target drops never retire the last worker, exactly the surplus
//! retires, and the end of input is always noticed by a last worker, even when a worker is
//! added while the others leave. Also the hand-over of a run of stages fused at the start
//! (`segment::handover`): the stages' own workers start in each slot only once its fused
//! worker has left, in every slot exactly when the request came before the end, and a fused
//! worker still inside a call that waits for a later call is met by them; and a source read
//! on the fused workers (`segment::pulled_source`) hands over to its own thread with every
//! batch cut exactly once, beside a fused worker still at work or after.

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

/// A hand-over for two fused workers whose `slot` records the slots it started (and asserts
/// that slot's fused worker had left); `first` counts the runs of what runs once.
fn recording_handover(
    left: &Arc<[AtomicBool; 2]>,
    slots: &Arc<Mutex<Vec<usize>>>,
    firsts: &Arc<AtomicUsize>,
) -> Arc<Handover> {
    let (left, slots, firsts) = (Arc::clone(left), Arc::clone(slots), Arc::clone(firsts));
    Arc::new(Handover::new(
        2,
        Box::new(move || {
            firsts.fetch_add(1, Ordering::SeqCst);
        }),
        Box::new(move |slot| {
            assert!(
                left[slot].load(Ordering::SeqCst),
                "a stage's own worker started in a slot its fused worker still held"
            );
            slots.lock().unwrap().push(slot);
        }),
    ))
}

#[test]
fn loom_a_split_starts_the_stages_own_workers_in_each_slot_its_fused_worker_left() {
    loom::model(|| {
        let crew = Arc::new(Crew::new(2, false));
        let left = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let slots = Arc::new(Mutex::new(Vec::new()));
        let firsts = Arc::new(AtomicUsize::new(0));
        let handover = recording_handover(&left, &slots, &firsts);
        let workers: Vec<_> = (0..2)
            .map(|slot| {
                let (crew, left, handover) =
                    (Arc::clone(&crew), Arc::clone(&left), Arc::clone(&handover));
                thread::spawn(move || {
                    // Two batches, or fewer once the hand-over is asked for.
                    for _ in 0..2 {
                        if handover.is_requested() {
                            break;
                        }
                    }
                    left[slot].store(true, Ordering::SeqCst);
                    let last = crew.leave();
                    handover.leave(slot, last);
                })
            })
            .collect();
        // The controller asks while the workers run or after they ended.
        let asked = handover.request();
        for w in workers {
            w.join().unwrap();
        }
        let mut started = slots.lock().unwrap().clone();
        started.sort_unstable();
        let want: Vec<usize> = if asked { vec![0, 1] } else { Vec::new() };
        assert_eq!(
            started, want,
            "every slot started once exactly when the request came before the end"
        );
        assert_eq!(firsts.load(Ordering::SeqCst), usize::from(asked));
        assert!(!handover.request(), "an ended segment takes no request");
    });
}

#[test]
fn loom_a_fused_worker_waiting_for_a_call_after_the_split_is_met_by_the_stages_own_worker() {
    // Worker 0 is inside a stage's call that waits for another call of the same stage (a
    // barrier of two); worker 1 has finished its batch and leaves at the request. The call
    // can only come from the stage's own worker started in slot 1: starting them only once
    // both fused workers had left would wait for ever (loom reports the deadlock).
    loom::model(|| {
        let crew = Arc::new(Crew::new(2, false));
        let left = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let met = Arc::new((Mutex::new(false), loom::sync::Condvar::new()));
        let handover = {
            let (left, met) = (Arc::clone(&left), Arc::clone(&met));
            Arc::new(Handover::new(
                2,
                Box::new(|| {}),
                Box::new(move |slot| {
                    assert!(left[slot].load(Ordering::SeqCst));
                    // The stage's own worker in this slot makes the call worker 0 waits for.
                    *met.0.lock().unwrap() = true;
                    met.1.notify_all();
                }),
            ))
        };
        assert!(handover.request());
        let waiting = {
            let (crew, left, handover, met) = (
                Arc::clone(&crew),
                Arc::clone(&left),
                Arc::clone(&handover),
                Arc::clone(&met),
            );
            thread::spawn(move || {
                let mut done = met.0.lock().unwrap();
                while !*done {
                    done = met.1.wait(done).unwrap();
                }
                drop(done);
                left[0].store(true, Ordering::SeqCst);
                let last = crew.leave();
                handover.leave(0, last);
            })
        };
        // Worker 1 sees the request between batches and leaves.
        assert!(handover.is_requested());
        left[1].store(true, Ordering::SeqCst);
        let last = crew.leave();
        handover.leave(1, last);
        waiting.join().unwrap();
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
        // Cuts the next batch, if the iterator has one; whether it had.
        fn take(cutter: &Mutex<u64>, cut: &Mutex<Vec<u64>>) -> bool {
            let mut next = cutter.lock().unwrap();
            if *next == BATCHES {
                return false;
            }
            cut.lock().unwrap().push(*next);
            *next += 1;
            true
        }
        // The source's own thread (`run_iter` on `Locked`), started as the first fused
        // worker leaves: the rest of the batches, a batch at a time under the lock.
        let own_thread = Arc::new(Mutex::new(None));
        let handover = {
            let (cutter, cut, own_thread) = (
                Arc::clone(&cutter),
                Arc::clone(&cut),
                Arc::clone(&own_thread),
            );
            Arc::new(Handover::new(
                2,
                Box::new(move || {
                    let thread = thread::spawn(move || while take(&cutter, &cut) {});
                    *own_thread.lock().unwrap() = Some(thread);
                }),
                Box::new(|_| {}),
            ))
        };
        let workers: Vec<_> = (0..2)
            .map(|slot| {
                let (cutter, cut, crew, handover) = (
                    Arc::clone(&cutter),
                    Arc::clone(&cut),
                    Arc::clone(&crew),
                    Arc::clone(&handover),
                );
                thread::spawn(move || {
                    // `run_worker`: a batch at a time, until the hand-over is asked for.
                    for _ in 0..2 {
                        if handover.is_requested() {
                            break;
                        }
                        take(&cutter, &cut);
                    }
                    let last = crew.leave();
                    handover.leave(slot, last);
                })
            })
            .collect();
        let asked = handover.request();
        for w in workers {
            w.join().unwrap();
        }
        let thread = own_thread.lock().unwrap().take();
        assert_eq!(
            thread.is_some(),
            asked,
            "the source's own thread ran if asked"
        );
        if let Some(thread) = thread {
            thread.join().unwrap();
        }
        // Every batch cut exactly once, in order: by the fused workers, and by the source's
        // own thread beside or after them if the hand-over came before they ran out.
        assert_eq!(*cut.lock().unwrap(), (0..BATCHES).collect::<Vec<_>>());
    });
}
