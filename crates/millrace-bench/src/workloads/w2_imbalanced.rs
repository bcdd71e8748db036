//! W2 `imbalanced`: four CPU stages of unequal cost, `spin` 1, 1, 4 and 1 units.
//!
//! Items x in 0..N; `a = spin(1, x)`, `b = spin(1, a)`, `c = spin(4, b)`, `d = spin(1, c)`;
//! the sink sums d. The ideal on P cores is P × the sequential loop's rate. The heavy stage
//! needs more workers than the others: millrace is measured over a small sweep of hand-set
//! worker counts.

use millrace::{Pipeline, Stage};
use rayon::prelude::*;

use crate::channel_pipeline::{ChannelPipeline, DEFAULT_CAPACITY};
use crate::error::Error;
use crate::work::spin;
use crate::workloads::MillraceConfig;

/// Stage a.
pub fn a(x: u64) -> u64 {
    spin(1, x)
}

/// Stage b.
pub fn b(a: u64) -> u64 {
    spin(1, a)
}

/// Stage c, the heavy one.
pub fn c(b: u64) -> u64 {
    spin(4, b)
}

/// Stage d.
pub fn d(c: u64) -> u64 {
    spin(1, c)
}

/// The whole chain for one item.
pub fn chain(x: u64) -> u64 {
    d(c(b(a(x))))
}

/// The sink's step.
pub fn add(sum: u64, d: u64) -> u64 {
    sum.wrapping_add(d)
}

/// The sweep of hand-set worker counts (W4 uses the same); the first is the primary one.
pub fn configs() -> Vec<MillraceConfig> {
    const BATCH: usize = 64;
    [[1, 1, 2, 1], [1, 1, 1, 1], [1, 1, 3, 1], [2, 2, 4, 2]]
        .iter()
        .map(|workers| MillraceConfig::new(workers, BATCH))
        .chain([
            MillraceConfig::as_written(),
            MillraceConfig::user_sized(&[1, 1, 2, 1]),
        ])
        .collect()
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
    ChannelPipeline::source(0..n, DEFAULT_CAPACITY)
        .stage("a", a)
        .stage("b", b)
        .stage("c", c)
        .stage("d", d)
        .fold(0, add)
}

/// The millrace pipeline.
pub fn millrace(n: u64, config: &MillraceConfig) -> Result<u64, Error> {
    let finished = config
        .pipeline(Pipeline::source(0..n))
        .stage(config.stage(0, Stage::map("a", a)))
        .stage(config.stage(1, Stage::map("b", b)))
        .stage(config.stage(2, Stage::map("c", c)))
        .stage(config.stage(3, Stage::map("d", d)))
        .fold(0, add)
        .run()?;
    crate::workloads::remember(&finished.report);
    Ok(finished.output)
}
