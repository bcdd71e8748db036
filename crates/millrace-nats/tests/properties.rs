//! Property: random pipelines with some of their edges on NATS give the same outputs, and
//! the same filtered and failed counts, as the same pipeline in memory.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{within, LocalServer};
use millrace::{Pipeline, PipelineBuilder};
use millrace_nats::{Broker, EdgeConfig};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    Add(u64),
    Mul(u64),
    DropMultiplesOf(u64),
    FailMultiplesOf(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..100u64).prop_map(Op::Add),
        (1..5u64).prop_map(Op::Mul),
        (2..9u64).prop_map(Op::DropMultiplesOf),
        (5..13u64).prop_map(Op::FailMultiplesOf),
    ]
}

/// Adds `ops` (named `s<first + i>`) to `b`.
fn apply(mut b: PipelineBuilder<u64>, ops: &[Op], first: usize) -> PipelineBuilder<u64> {
    for (i, op) in ops.iter().enumerate() {
        let name = format!("s{}", first + i);
        b = match *op {
            Op::Add(k) => b.map(&name, move |x: u64| x.wrapping_add(k)),
            Op::Mul(k) => b.map(&name, move |x: u64| x.wrapping_mul(k)),
            Op::DropMultiplesOf(m) => b.filter(&name, move |x: &u64| x % m != 0),
            Op::FailMultiplesOf(m) => b.try_map(&name, move |&x: &u64| {
                if x % m == 0 {
                    Err(format!("{x} is a multiple of {m}"))
                } else {
                    Ok(x)
                }
            }),
        };
    }
    b
}

static CASE: AtomicU64 = AtomicU64::new(0);

/// Runs `ops` over 0..n with a broker edge after each of `cuts` (sorted positions in ops):
/// the origin runs ops before the first cut, one worker per segment after it.
fn on_nats(
    url: &str,
    n: u64,
    ops: Vec<Op>,
    cuts: Vec<usize>,
    batch: usize,
) -> (Vec<u64>, u64, u64) {
    let broker = Broker::connect(url).unwrap();
    let job = broker
        .job(&format!("prop{}", CASE.fetch_add(1, Ordering::Relaxed)))
        .unwrap();
    let config = EdgeConfig {
        batch,
        max_messages: 8,
        // Each case's streams stay on the shared server, each reserving its max_bytes.
        max_bytes: 1 << 20,
        ack_wait: Duration::from_secs(10),
        ..EdgeConfig::default()
    };
    let edges: Vec<_> = (0..cuts.len() + 1)
        .map(|i| job.edge::<u64>(&format!("e{i}"), config.clone()).unwrap())
        .collect();
    let mut bounds = cuts.clone();
    bounds.push(ops.len());
    let mut workers = Vec::new();
    for (k, window) in bounds.windows(2).enumerate() {
        let (lo, hi) = (window[0], window[1]);
        let part = ops[lo..hi].to_vec();
        let w = job
            .worker(&edges[k], &edges[k + 1], move |b| apply(b, &part, lo))
            .unwrap()
            .spawn()
            .unwrap();
        workers.push(w);
    }
    let front = apply(Pipeline::source(0..n), &ops[..cuts[0]], 0);
    let (remote, end) = job
        .origin(&edges[0], edges.last().unwrap())
        .unwrap()
        .start(front)
        .unwrap();
    let mut outputs: Vec<u64> = remote.outputs().collect();
    let finished = end.finish().unwrap();
    for w in &workers {
        w.stop();
    }
    for w in workers {
        w.join().unwrap();
    }
    outputs.sort_unstable();
    let r = &finished.remote;
    assert!(r.is_balanced(), "{r}");
    let front = &finished.front;
    (
        outputs,
        front.filtered() + r.filtered_total(),
        front.failed() + r.failed_total(),
    )
}

fn in_memory(n: u64, ops: &[Op]) -> (Vec<u64>, u64, u64) {
    let finished = apply(Pipeline::source(0..n), ops, 0)
        .collect()
        .run()
        .unwrap();
    let mut outputs = finished.output;
    outputs.sort_unstable();
    let r = &finished.report;
    (outputs, r.filtered(), r.failed())
}

fn case() -> impl Strategy<Value = (u64, Vec<Op>, Vec<usize>, usize)> {
    (prop::collection::vec(op(), 1..6), 0..2000u64, 1..200usize).prop_flat_map(|(ops, n, batch)| {
        let len = ops.len();
        (
            Just(n),
            Just(ops),
            prop::collection::btree_set(0..=len, 1..3)
                .prop_map(|cuts| cuts.into_iter().collect::<Vec<_>>()),
            Just(batch),
        )
    })
}

/// One server for every case, owned by the test, so that it is stopped when the test ends,
/// however it ends. (A `static` server was never dropped: every run of this test left a
/// `nats-server` running after the test process had exited.)
#[test]
fn pipelines_with_broker_edges_match_in_memory() {
    let server = LocalServer::start().expect("start nats-server");
    let url = server.url();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        max_shrink_time: 120_000,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let result = runner.run(&case(), |(n, ops, cuts, batch)| {
        let expected = in_memory(n, &ops);
        let url = url.clone();
        let got = within(120, move || on_nats(&url, n, ops, cuts, batch));
        prop_assert_eq!(got, expected);
        Ok(())
    });
    drop(server);
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
