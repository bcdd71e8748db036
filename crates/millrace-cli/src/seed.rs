//! The built-in seed pipeline: the blog's sample, typed, as `millrace` runs it with no
//! pipeline file.
//!
//! Stage `wrap` turns x into `Data { x, y: 0 }`, `square` sets y = x², `scale` multiplies
//! by 3, and each result travels back up the response path to `wrap`, the stage that sent
//! the item, which sums their y (wrapping): the blog's results flowing back, as values
//! ([`PipelineBuilder::reply_to`](millrace::PipelineBuilder::reply_to)). Over 10,000,000
//! numbers the sum is
//! 3875670019689212736 (`shared/bench-workloads.md`, W1). `examples/seed.toml` is the same
//! job as a pipeline file, over dynamic values. `tests/examples.rs` checks both (with
//! timeouts).
//!
//! The item, the stages and the checksum are [`millrace_workloads::seed`]'s, the very ones the
//! benchmark measures as W1; what is the command's own is the response path. Nothing else
//! is set: the stages are autoscaled and the batch sizes adapt, as a user would write it.

use millrace::{Outcome, Pipeline, Stage};
use millrace_workloads::seed::{checksum, scale, square, wrap};

/// How many numbers the seed pipeline squares by default.
pub const DEFAULT_N: u64 = 10_000_000;

/// The seed pipeline's checksum for [`DEFAULT_N`].
pub const CHECKSUM_10M: u64 = checksum(DEFAULT_N);

/// The seed pipeline over `0..n`; its output is the wrapping sum of the 3·x² that stage
/// `wrap` received back from stage `scale`.
pub fn pipeline(n: u64) -> Pipeline<u64> {
    Pipeline::source(0..n)
        .stage(Stage::map("wrap", wrap))
        .stage(Stage::map("square", square))
        .stage(Stage::map("scale", scale))
        .reply_to("wrap", 0u64, |sum, _id, reply| match reply {
            Outcome::Output(d) => sum.wrapping_add(d.y),
            _ => sum,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_checksum_is_the_one_bench_workloads_md_gives() {
        assert_eq!(CHECKSUM_10M, 3_875_670_019_689_212_736);
    }

    #[test]
    fn the_pipeline_sums_to_the_closed_form() {
        for n in [0, 1, 1_000, 10_007] {
            let finished = pipeline(n).run().expect("the seed pipeline runs");
            assert_eq!(finished.output, checksum(n), "n = {n}");
        }
    }
}
