//! The unfused form of a run of stages fused at the start (see `pipeline::plan`'s
//! `fuse_at_the_start`), built beside the fused segment as the run's stages are added, for
//! when the run splits (see [`Handover`](super::handover::Handover)).

use super::pull::MakePull;

/// The unfused form of a run of stages fused at the start (see `plan::fuse_at_the_start`),
/// built beside the fused segment as the run's stages are added: each stage so far as a
/// segment of its own, without workers, on a connector of its own.
pub(crate) struct Standby<T> {
    /// Starts the source's own thread, when the run's workers read it (see
    /// `segment::pulled_source`): once, at the first slot a split starts.
    pub(crate) source: Option<Box<dyn FnOnce() + Send>>,
    /// Each starts, in a given slot, a worker of one of the run's stages before the latest
    /// (already connected to the connector into the stage after it).
    pub(crate) starts: Vec<Box<dyn FnMut(usize) + Send>>,
    /// The latest stage's own segment (the open segment's last stage), to connect where the
    /// next stage or the end is known.
    pub(crate) make_pull: MakePull<T>,
    /// The run's first stage.
    pub(crate) first: usize,
}
