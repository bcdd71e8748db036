//! The built-in seed pipeline: the blog's sample, typed, as `millrace` runs it with no
//! pipeline file.
//!
//! Stage `wrap` turns x into `Data { x, y: 0 }`, `square` sets y = x², `scale` multiplies
//! by 3, and each result travels back up the response path to `wrap`, the stage that sent
//! the item, which sums them (wrapping): the blog's results flowing back, as values
//! ([`PipelineBuilder::reply_to`](millrace::PipelineBuilder::reply_to)). Over 10,000,000
//! numbers the sum is
//! 3875670019689212736 (`shared/bench-workloads.md`, W1). `examples/seed.toml` is the same
//! job as a pipeline file, over dynamic values. `tests/examples.rs` checks both (with
//! timeouts).

use millrace::{Outcome, Pipeline, Stage};

/// How many numbers the seed pipeline squares by default.
pub const DEFAULT_N: u64 = 10_000_000;

/// The seed pipeline's checksum for [`DEFAULT_N`].
pub const CHECKSUM_10M: u64 = 3_875_670_019_689_212_736;

#[derive(Debug)]
struct Data {
    x: u64,
    y: u64,
}

/// The seed pipeline over `0..n`; its output is the wrapping sum of the 3·x² that stage
/// `wrap` received back from stage `scale`.
pub fn pipeline(n: u64) -> Pipeline<u64> {
    Pipeline::source(0..n)
        .stage(Stage::map("wrap", |x: u64| Data { x, y: 0 }).batch(1024))
        .stage(
            Stage::map("square", |d: Data| Data {
                y: d.x.wrapping_mul(d.x),
                ..d
            })
            .batch(1024),
        )
        .stage(Stage::map("scale", |d: Data| d.y.wrapping_mul(3)).batch(1024))
        .default_batch(1024)
        .reply_to("wrap", 0u64, |sum, _id, reply| match reply {
            Outcome::Output(y) => sum.wrapping_add(y),
            _ => sum,
        })
}
