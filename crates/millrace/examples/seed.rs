//! The blog's sample pipeline: 3·x² for every x, in three stages, with results flowing back.
//!
//! Stage 1 (`wrap`) turns x into `Data`, stage 2 (`square`) squares it, stage 3 (`scale`)
//! multiplies by 3. Every result travels back up the response path to the caller, tagged
//! with the id of the x it came from, and stage 1's response hook sees each one go by.
//!
//! Run with `cargo run --release -p millrace --example seed -- 1000000`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use millrace::{Outcome, Pipeline, Stage, Status};

#[derive(Debug)]
struct Data {
    x: u64,
    y: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| format!("the count `{arg}` is not a number: {e}"))?,
        None => 1_000_000,
    };

    let acknowledged = Arc::new(AtomicU64::new(0));
    let acks = Arc::clone(&acknowledged);
    let (running, responses) = Pipeline::source(0..n)
        .stage(
            Stage::map("wrap", |x: u64| Data { x, y: 0 }).on_response(move |_id, status| {
                if let Status::Delivered = status {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
            }),
        )
        .stage(
            Stage::map("square", |d: Data| Data {
                y: d.x.wrapping_mul(d.x),
                ..d
            })
            .workers(2),
        )
        .stage(Stage::map("scale", |d: Data| d.y.wrapping_mul(3)).workers(2))
        .respond()?;

    // Results come back to the submitter, each tagged with the id of its x.
    let mut sum = 0u64;
    let mut results = 0u64;
    for (id, outcome) in responses {
        match outcome {
            Outcome::Output(y) => {
                debug_assert_eq!(y, id.0.wrapping_mul(id.0).wrapping_mul(3));
                sum = sum.wrapping_add(y);
                results += 1;
            }
            other => return Err(format!("item {id} did not finish: {other:?}").into()),
        }
    }
    let finished = running.join()?;
    let expected = (0..n).fold(0u64, |s, x| {
        s.wrapping_add(x.wrapping_mul(x).wrapping_mul(3))
    });
    println!("sum of 3·x² for x < {n}: {sum} ({results} results back)");
    println!(
        "stage `wrap` saw {} responses",
        acknowledged.load(Ordering::Relaxed)
    );
    println!("{}", finished.report);
    if sum != expected {
        return Err(format!("expected {expected}").into());
    }
    Ok(())
}
