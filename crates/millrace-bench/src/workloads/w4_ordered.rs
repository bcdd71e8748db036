//! W4 `ordered`: W2's stages, with the sink seeing the items in input order.
//!
//! The checksum `h = h·31 + d` over the items in arrival order at the sink changes under any
//! reordering. millrace marks the last stage [`ordered`](millrace::Stage::ordered); rayon
//! collects its indexed map in order and folds the vector; the one-thread-per-stage channel
//! pipeline keeps order by construction.

use millrace::{Pipeline, Stage};
use rayon::prelude::*;

use crate::channel_pipeline::{ChannelPipeline, DEFAULT_CAPACITY};
use crate::error::Error;
use crate::workloads::w2_imbalanced::{a, b, c, chain, d};
use crate::workloads::MillraceConfig;

/// The order-sensitive sink step.
pub fn hash(h: u64, d: u64) -> u64 {
    h.wrapping_mul(31).wrapping_add(d)
}

/// One fused loop.
pub fn sequential(n: u64) -> u64 {
    (0..n).map(chain).fold(0, hash)
}

/// rayon's indexed map, collected in order, folded in order.
pub fn rayon(n: u64) -> u64 {
    let outputs: Vec<u64> = (0..n).into_par_iter().map(chain).collect();
    outputs.into_iter().fold(0, hash)
}

/// One thread per stage, one item per message (in order by construction).
pub fn crossbeam(n: u64) -> Result<u64, Error> {
    ChannelPipeline::source(0..n, DEFAULT_CAPACITY)
        .stage("a", a)
        .stage("b", b)
        .stage("c", c)
        .stage("d", d)
        .fold(0, hash)
}

/// The millrace pipeline, its last stage ordered.
pub fn millrace(n: u64, config: &MillraceConfig) -> Result<u64, Error> {
    let finished = config
        .pipeline(Pipeline::source(0..n))
        .stage(config.stage(0, Stage::map("a", a)))
        .stage(config.stage(1, Stage::map("b", b)))
        .stage(config.stage(2, Stage::map("c", c)))
        .stage(config.stage(3, Stage::map("d", d)).ordered())
        .fold(0, hash)
        .run()?;
    crate::workloads::remember(&finished.report);
    Ok(finished.output)
}
