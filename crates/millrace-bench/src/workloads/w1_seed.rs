//! W1 `seed`: the blog's sample, measuring what the pipeline itself costs per item.
//!
//! Items x in 0..N; stage A wraps x in [`Data`], stage B sets `y = x·x`, stage C sets
//! `y = 3·y`; the sink sums y. About a nanosecond of work per item.
//!
//! The item, the stages and the closed-form checksum are `millrace_workloads::seed`'s, which
//! the `millrace` command's built-in pipeline uses too; what is W1's own is how it is measured
//! (the configurations and the baselines below).

use millrace::{Pipeline, Stage};
pub use millrace_workloads::seed::{add, scale, square, wrap, Data};
use rayon::prelude::*;

use crate::channel_pipeline::{ChannelPipeline, DEFAULT_CAPACITY};
use crate::error::Error;
use crate::workloads::MillraceConfig;

/// The millrace configurations measured (the first is the primary one).
pub fn configs() -> Vec<MillraceConfig> {
    vec![
        MillraceConfig::new(&[1, 1, 1], 1024),
        MillraceConfig::new(&[1, 1, 1], 4096).with_capacity(16_384),
        MillraceConfig::new(&[1, 1, 1], 1024).fused(),
        MillraceConfig::new(&[1, 1, 1], 4096)
            .with_capacity(16_384)
            .fused(),
        MillraceConfig::new(&[2, 2, 2], 4096)
            .with_capacity(16_384)
            .fused(),
        MillraceConfig::as_written(),
        MillraceConfig::user_sized(&[1, 1, 1]),
    ]
}

/// One fused loop.
pub fn sequential(n: u64) -> u64 {
    (0..n).map(|x| scale(square(wrap(x)))).fold(0, add)
}

/// The fused chain over a rayon parallel range.
pub fn rayon(n: u64) -> u64 {
    (0..n)
        .into_par_iter()
        .map(|x| scale(square(wrap(x))))
        .fold(|| 0, add)
        .reduce(|| 0, u64::wrapping_add)
}

/// One thread per stage, one item per message.
pub fn crossbeam(n: u64) -> Result<u64, Error> {
    ChannelPipeline::source(0..n, DEFAULT_CAPACITY)
        .stage("wrap", wrap)
        .stage("square", square)
        .stage("scale", scale)
        .fold(0, add)
}

/// The millrace pipeline.
pub fn millrace(n: u64, config: &MillraceConfig) -> Result<u64, Error> {
    let finished = config
        .pipeline(Pipeline::source(0..n))
        .stage(config.stage(0, Stage::map("wrap", wrap)))
        .stage(config.stage(1, Stage::map("square", square)))
        .stage(config.stage(2, Stage::map("scale", scale)))
        .fold(0, add)
        .run()?;
    crate::workloads::remember(&finished.report);
    Ok(finished.output)
}
