//! W6 `hops`: ten cheap stages, measuring the cost of one hop.
//!
//! Items x in 0..N, y starting at x; ten stages each `y = y + 1`; the sink sums y. The cost
//! per item per hop is the run's time / (N × [`HOPS`]).

use millrace::{Pipeline, Stage};
use rayon::prelude::*;

use crate::channel_pipeline::{ChannelPipeline, DEFAULT_CAPACITY};
use crate::error::Error;
use crate::workloads::MillraceConfig;

/// Stages an item passes through.
pub const HOPS: usize = 10;

/// One hop.
pub fn step(y: u64) -> u64 {
    y.wrapping_add(1)
}

/// All hops for one item.
pub fn chain(x: u64) -> u64 {
    (0..HOPS).fold(x, |y, _| step(y))
}

/// The sink's step.
pub fn add(sum: u64, y: u64) -> u64 {
    sum.wrapping_add(y)
}

/// The millrace configurations measured (the first is the primary one).
pub fn configs() -> Vec<MillraceConfig> {
    vec![
        MillraceConfig::new(&[1; HOPS], 1024),
        MillraceConfig::new(&[1; HOPS], 4096).with_capacity(16_384),
        MillraceConfig::new(&[1; HOPS], 1024).fused(),
        MillraceConfig::new(&[1; HOPS], 4096)
            .with_capacity(16_384)
            .fused(),
        MillraceConfig::new(&[2; HOPS], 4096)
            .with_capacity(16_384)
            .fused(),
        MillraceConfig::as_written(),
        MillraceConfig::user_sized(&[1; HOPS]),
    ]
}

/// One fused loop.
pub fn sequential(n: u64) -> u64 {
    (0..n).map(chain).fold(0, add)
}

/// The fused chain over a rayon parallel range.
pub fn rayon(n: u64) -> u64 {
    (0..n)
        .into_par_iter()
        .map(chain)
        .fold(|| 0, add)
        .reduce(|| 0, u64::wrapping_add)
}

/// One thread per stage, one item per message.
pub fn crossbeam(n: u64) -> Result<u64, Error> {
    let mut pipeline = ChannelPipeline::source(0..n, DEFAULT_CAPACITY);
    for hop in 1..=HOPS {
        pipeline = pipeline.stage(&format!("hop{hop}"), step);
    }
    pipeline.fold(0, add)
}

/// The millrace pipeline.
pub fn millrace(n: u64, config: &MillraceConfig) -> Result<u64, Error> {
    let mut pipeline = config.pipeline(Pipeline::source(0..n));
    for hop in 0..HOPS {
        let name = format!("hop{}", hop + 1);
        pipeline = pipeline.stage(config.stage(hop, Stage::map(&name, step)));
    }
    let finished = pipeline.fold(0, add).run()?;
    crate::workloads::remember(&finished.report);
    Ok(finished.output)
}
