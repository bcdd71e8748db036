//! Model check (loom) of the response protocol: items go forward through a bounded link,
//! responses come back on an unbounded one through a stage's relay to the origin, and the
//! source admits items through the in-flight window that only the origin advances.
//!
//! What it pins down: whatever the interleaving, nothing deadlocks (the forward link is
//! full while responses are waiting, the window is exhausted while items are in the
//! link …), every response reaches the origin exactly once, and the relay's hook sees each.
//! The bounded forward link is modelled as a window of its capacity over a queue, which is
//! what a bounded channel is.

use loom::sync::mpsc::channel;
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::window::Window;

#[test]
fn loom_responses_reach_the_origin_once_without_deadlock() {
    loom::model(|| {
        const N: u64 = 3;
        let in_flight = Arc::new(Window::new(1));
        let link_room = Arc::new(Window::new(1));
        let (forward_tx, forward_rx) = channel::<Option<u64>>();
        let (to_relay, relay_inbox) = channel::<Option<u64>>();
        let (to_origin, origin_inbox) = channel::<Option<u64>>();
        let hook_seen = Arc::new(Mutex::new(Vec::new()));

        // The source: admit through the in-flight window, then through the link's room.
        let source = {
            let (in_flight, link_room) = (Arc::clone(&in_flight), Arc::clone(&link_room));
            thread::spawn(move || {
                for id in 0..N {
                    assert!(in_flight.admit(id));
                    assert!(link_room.admit(id));
                    forward_tx.send(Some(id)).unwrap();
                }
                // loom's channels do not report disconnection: an explicit end marker.
                forward_tx.send(None).unwrap();
            })
        };
        // The last stage: take an item (freeing room in the link), answer it upstream.
        let stage = {
            let link_room = Arc::clone(&link_room);
            thread::spawn(move || {
                while let Some(id) = forward_rx.recv().unwrap() {
                    link_room.advance(1);
                    to_relay.send(Some(id)).unwrap();
                }
                to_relay.send(None).unwrap();
            })
        };
        // The first stage's relay: run the hook, pass the response on.
        let relay = {
            let hook_seen = Arc::clone(&hook_seen);
            thread::spawn(move || {
                while let Some(id) = relay_inbox.recv().unwrap() {
                    hook_seen.lock().unwrap().push(id);
                    to_origin.send(Some(id)).unwrap();
                }
                to_origin.send(None).unwrap();
            })
        };
        // The origin: take responses, returning their credits.
        let mut got = Vec::new();
        while let Some(id) = origin_inbox.recv().unwrap() {
            got.push(id);
            in_flight.advance(1);
        }
        source.join().unwrap();
        stage.join().unwrap();
        relay.join().unwrap();
        got.sort_unstable();
        assert_eq!(
            got,
            vec![0, 1, 2],
            "each response reaches the origin exactly once"
        );
        let mut seen = hook_seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2]);
    });
}
