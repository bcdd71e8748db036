//! W5 `large`: 1 MiB buffers moved through the stages, never copied.
//!
//! Items x in 0..N; stage 1 builds a 1 MiB buffer with byte i = (x + i) as u8, stage 2
//! computes its 64-bit FNV-1a hash, stage 3 drops the buffer and passes the hash on; the sink
//! sums the hashes. Peak memory must stay near (items in flight) × 1 MiB whatever N, which
//! [`millrace_in_flight`] and [`channel_in_flight`] bound from the settings.

use millrace::{Pipeline, Stage};
use rayon::prelude::*;

use crate::channel_pipeline::ChannelPipeline;
use crate::error::Error;
use crate::work::fnv1a;
use crate::workloads::MillraceConfig;

/// Bytes in one item.
pub const ITEM_BYTES: usize = 1 << 20;

/// Channel capacity, in items, of the crossbeam baseline: a few MiB, not a GiB.
pub const CHANNEL_CAPACITY: usize = 2;

/// A buffer and its hash, as stage 2 passes them on.
pub type Hashed = (Vec<u8>, u64);

/// Stage 1: the buffer of item x.
pub fn build(x: u64) -> Vec<u8> {
    (0..ITEM_BYTES)
        .map(|i| x.wrapping_add(i as u64) as u8)
        .collect()
}

/// Stage 2: hash the buffer, keep it.
pub fn hash(buffer: Vec<u8>) -> Hashed {
    let h = fnv1a(&buffer);
    (buffer, h)
}

/// Stage 3: drop the buffer, pass the hash on.
pub fn release((buffer, h): Hashed) -> u64 {
    drop(buffer);
    h
}

/// The sink's step.
pub fn add(sum: u64, h: u64) -> u64 {
    sum.wrapping_add(h)
}

/// The chain for one item. The buffer goes through `black_box` (once per MiB) so that the
/// fused loops build it for real, as the pipelines must.
pub fn chain(x: u64) -> u64 {
    release(hash(std::hint::black_box(build(x))))
}

/// The millrace configurations measured (the first is the primary one).
pub fn configs() -> Vec<MillraceConfig> {
    vec![
        MillraceConfig::new(&[2, 2, 1], 1).with_capacity(2),
        MillraceConfig::new(&[1, 2, 1], 1).with_capacity(2),
        MillraceConfig::new(&[1, 2, 1], 1).with_capacity(4),
        MillraceConfig::as_written(),
        MillraceConfig::user_sized(&[1, 2, 1]),
    ]
}

/// millrace's default capacity of a connector, in items.
const DEFAULT_CAPACITY: usize = 16_384;

/// The most buffers a millrace run under `config` can hold at once: each worker of the three
/// stages one batch (in hand or being sent), and the two connectors that carry buffers full.
pub fn millrace_in_flight(config: &MillraceConfig) -> usize {
    let capacity = config
        .stage_capacity
        .or(config.capacity)
        .unwrap_or(DEFAULT_CAPACITY);
    // Unset, the batch size adapts up to a quarter of the capacity, in four slots.
    let batch = config.batch.unwrap_or((capacity / 4).max(1));
    let workers: usize = match &config.workers {
        Some(workers) => workers.iter().take(3).sum(),
        None => crate::machine::cores(),
    };
    let per_connector = capacity.div_ceil(batch).max(1) * batch;
    workers * batch + 2 * per_connector
}

/// The most buffers the channel baseline can hold at once: one per stage thread and the
/// two channels that carry buffers full.
pub fn channel_in_flight() -> usize {
    3 + 2 * CHANNEL_CAPACITY
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
    ChannelPipeline::source(0..n, CHANNEL_CAPACITY)
        .stage("build", build)
        .stage("hash", hash)
        .stage("release", release)
        .fold(0, add)
}

/// The millrace pipeline.
pub fn millrace(n: u64, config: &MillraceConfig) -> Result<u64, Error> {
    let finished = config
        .pipeline(Pipeline::source(0..n))
        .stage(config.stage(0, Stage::map("build", build)))
        .stage(config.stage(1, Stage::map("hash", hash)))
        .stage(config.stage(2, Stage::map("release", release)))
        .fold(0, add)
        .run()?;
    crate::workloads::remember(&finished.report);
    Ok(finished.output)
}
