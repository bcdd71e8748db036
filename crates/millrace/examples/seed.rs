//! The blog's sample pipeline: 3·x² for every x, in three stages, with results flowing back.
//!
//! Stage 1 (`wrap`) turns x into `Data`, stage 2 (`square`) squares it, stage 3 (`scale`)
//! multiplies by 3. Every result travels back up the response path, as a value, to stage 1
//! (`reply_to("wrap", …)`), tagged with the id of the x it came from; stage 1 sums what it
//! receives, and the run returns that sum. It must equal the closed form.
//!
//! Run with `cargo run --release -p millrace --example seed -- 1000000`.
//!
//! The stages are written out here, to show the API; the item (`Data { x, y }`) and the
//! closed form are `millrace_workloads::seed`'s, shared with the benchmark's W1 and the
//! `millrace` command's built-in pipeline, which run the same stages.

use millrace::{Outcome, Pipeline, Stage};
use millrace_workloads::seed::{checksum, Data};

/// What stage 1 learns from the replies: their sum, and how many came back.
#[derive(Debug, Default)]
struct Received {
    sum: u64,
    results: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| format!("the count `{arg}` is not a number: {e}"))?,
        None => 1_000_000,
    };

    let finished = Pipeline::source(0..n)
        .stage(Stage::map("wrap", |x: u64| Data { x, y: 0 }))
        .stage(
            Stage::map("square", |d: Data| Data {
                y: d.x.wrapping_mul(d.x),
                ..d
            })
            .workers(2),
        )
        .stage(Stage::map("scale", |d: Data| d.y.wrapping_mul(3)).workers(2))
        // Stage 3's results go back to stage 1, which sent the items.
        .reply_to("wrap", Received::default(), |mut got, id, reply| {
            match reply {
                Outcome::Output(y) => {
                    debug_assert_eq!(y, id.0.wrapping_mul(id.0).wrapping_mul(3));
                    got.sum = got.sum.wrapping_add(y);
                    got.results += 1;
                }
                other => eprintln!("item {id} did not finish: {other:?}"),
            }
            got
        })
        .run()?;

    let got = finished.output;
    let expected = checksum(n);
    println!(
        "stage `wrap` received {} results from stage `scale`; their sum: {} (closed form n(n-1)(2n-1)/2: {expected})",
        got.results, got.sum
    );
    println!("{}", finished.report);
    if got.sum != expected || got.results != n {
        return Err(format!("expected {n} results summing to {expected}").into());
    }
    Ok(())
}
