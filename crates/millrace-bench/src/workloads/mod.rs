//! The workloads of `bench-workloads.md` and the implementations each is measured with.
//!
//! Every workload module (`w1_seed`, `w2_imbalanced`, …) holds the workload's stages and four
//! implementations of it, all computing the same checksum: `sequential` (one fused loop on
//! one thread), `rayon` (a parallel iterator over the input range with the fused chain),
//! `crossbeam` (the [`ChannelPipeline`](crate::channel_pipeline::ChannelPipeline) baseline)
//! and `millrace` (the public millrace API, under a [`MillraceConfig`]). [`Workload::run`]
//! dispatches to them.

pub mod w1_seed;
pub mod w2_imbalanced;
pub mod w4_ordered;
pub mod w5_large;
pub mod w6_hops;

use std::cell::RefCell;
use std::fmt;

use millrace::{ErrorPolicy, PipelineBuilder, Report, Stage};

use crate::error::Error;

/// One of the standard workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// W1 `seed`: per-item overhead of three trivial stages.
    W1Seed,
    /// W2 `imbalanced`: four CPU stages of unequal cost.
    W2Imbalanced,
    /// W3 `io`: waiting without burning threads (needs async stages).
    W3Io,
    /// W4 `ordered`: W2 with the sink seeing input order.
    W4Ordered,
    /// W5 `large`: 1 MiB buffers moved through three stages.
    W5Large,
    /// W6 `hops`: ten cheap stages.
    W6Hops,
}

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 6] = [
        Workload::W1Seed,
        Workload::W2Imbalanced,
        Workload::W3Io,
        Workload::W4Ordered,
        Workload::W5Large,
        Workload::W6Hops,
    ];

    /// Its code, e.g. `W1`.
    pub fn code(self) -> &'static str {
        match self {
            Workload::W1Seed => "W1",
            Workload::W2Imbalanced => "W2",
            Workload::W3Io => "W3",
            Workload::W4Ordered => "W4",
            Workload::W5Large => "W5",
            Workload::W6Hops => "W6",
        }
    }

    /// Its name, e.g. `seed`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1Seed => "seed",
            Workload::W2Imbalanced => "imbalanced",
            Workload::W3Io => "io",
            Workload::W4Ordered => "ordered",
            Workload::W5Large => "large",
            Workload::W6Hops => "hops",
        }
    }

    /// The workload named by a code (`W1`, `w1`) or a name (`seed`).
    pub fn parse(text: &str) -> Option<Workload> {
        let text = text.trim();
        Workload::ALL.into_iter().find(|w| {
            w.code().eq_ignore_ascii_case(text)
                || w.name().eq_ignore_ascii_case(text)
                || format!("{} {}", w.code(), w.name()).eq_ignore_ascii_case(text)
        })
    }

    /// The item count `bench-workloads.md` sets.
    pub fn default_n(self) -> u64 {
        match self {
            Workload::W1Seed => 20_000_000,
            Workload::W2Imbalanced | Workload::W4Ordered => 1_000_000,
            Workload::W3Io => 20_000,
            Workload::W5Large => 2_000,
            Workload::W6Hops => 5_000_000,
        }
    }

    /// Why the workload cannot run yet, if it cannot.
    pub fn pending(self) -> Option<&'static str> {
        match self {
            Workload::W3Io => {
                Some("measured by the millrace-scaling binary (async stages need tokio)")
            }
            _ => None,
        }
    }

    /// The checksum `bench-workloads.md` gives for `n` items, where it gives one (for W1, at
    /// every `n`, by the closed form).
    pub fn reference_checksum(self, n: u64) -> Option<u64> {
        match (self, n) {
            // bench-workloads.md gives it at 10 M (3875670019689212736) and 20 M
            // (12559216083774150272); the closed form gives it for every N.
            (Workload::W1Seed, n) => Some(millrace_workloads::seed::checksum(n)),
            (Workload::W2Imbalanced, 1_000_000) => Some(7_791_460_224_770_166_305),
            (Workload::W3Io, 20_000) => Some(798_309_582_560_318_661),
            (Workload::W4Ordered, 1_000_000) => Some(8_577_470_968_386_014_893),
            (Workload::W6Hops, 5_000_000) => Some(12_500_047_500_000),
            _ => None,
        }
    }

    /// Whether throughput is compared with the ideal (cores × the sequential loop's rate).
    pub fn has_ideal(self) -> bool {
        matches!(self, Workload::W2Imbalanced | Workload::W4Ordered)
    }

    /// The number of stages an item passes through.
    pub fn stages(self) -> usize {
        match self {
            Workload::W1Seed | Workload::W5Large => 3,
            Workload::W2Imbalanced | Workload::W4Ordered => 4,
            Workload::W3Io => 2,
            Workload::W6Hops => w6_hops::HOPS,
        }
    }

    /// The millrace configurations measured: the first is the primary one (used for peak
    /// memory), the rest a sweep; the table marks the fastest.
    pub fn millrace_configs(self) -> Vec<MillraceConfig> {
        match self {
            Workload::W1Seed => w1_seed::configs(),
            Workload::W2Imbalanced | Workload::W4Ordered => w2_imbalanced::configs(),
            Workload::W3Io => Vec::new(),
            Workload::W5Large => w5_large::configs(),
            Workload::W6Hops => w6_hops::configs(),
        }
    }

    /// The channel capacity, in items, of the crossbeam baseline.
    pub fn channel_capacity(self) -> usize {
        match self {
            Workload::W5Large => w5_large::CHANNEL_CAPACITY,
            _ => crate::channel_pipeline::DEFAULT_CAPACITY,
        }
    }

    /// The implementations measured, baselines first.
    pub fn implementations(self) -> Vec<Implementation> {
        if self.pending().is_some() {
            return Vec::new();
        }
        let mut all = vec![
            Implementation::Sequential,
            Implementation::Rayon,
            Implementation::Crossbeam,
        ];
        all.extend(
            self.millrace_configs()
                .into_iter()
                .map(Implementation::Millrace),
        );
        all
    }

    /// Runs `n` items through `implementation` and returns the checksum.
    ///
    /// # Errors
    ///
    /// [`Error::Pending`] for a workload that cannot run yet; [`Error::Run`] or
    /// [`Error::Panicked`] if the run failed.
    pub fn run(self, implementation: &Implementation, n: u64) -> Result<u64, Error> {
        use Implementation as I;
        if let Some(reason) = self.pending() {
            return Err(Error::Pending {
                workload: self.code(),
                reason,
            });
        }
        match (self, implementation) {
            (Workload::W1Seed, I::Sequential) => Ok(w1_seed::sequential(n)),
            (Workload::W1Seed, I::Rayon) => Ok(w1_seed::rayon(n)),
            (Workload::W1Seed, I::Crossbeam) => w1_seed::crossbeam(n),
            (Workload::W1Seed, I::Millrace(c)) => w1_seed::millrace(n, c),
            (Workload::W2Imbalanced, I::Sequential) => Ok(w2_imbalanced::sequential(n)),
            (Workload::W2Imbalanced, I::Rayon) => Ok(w2_imbalanced::rayon(n)),
            (Workload::W2Imbalanced, I::Crossbeam) => w2_imbalanced::crossbeam(n),
            (Workload::W2Imbalanced, I::Millrace(c)) => w2_imbalanced::millrace(n, c),
            (Workload::W4Ordered, I::Sequential) => Ok(w4_ordered::sequential(n)),
            (Workload::W4Ordered, I::Rayon) => Ok(w4_ordered::rayon(n)),
            (Workload::W4Ordered, I::Crossbeam) => w4_ordered::crossbeam(n),
            (Workload::W4Ordered, I::Millrace(c)) => w4_ordered::millrace(n, c),
            (Workload::W5Large, I::Sequential) => Ok(w5_large::sequential(n)),
            (Workload::W5Large, I::Rayon) => Ok(w5_large::rayon(n)),
            (Workload::W5Large, I::Crossbeam) => w5_large::crossbeam(n),
            (Workload::W5Large, I::Millrace(c)) => w5_large::millrace(n, c),
            (Workload::W6Hops, I::Sequential) => Ok(w6_hops::sequential(n)),
            (Workload::W6Hops, I::Rayon) => Ok(w6_hops::rayon(n)),
            (Workload::W6Hops, I::Crossbeam) => w6_hops::crossbeam(n),
            (Workload::W6Hops, I::Millrace(c)) => w6_hops::millrace(n, c),
            (Workload::W3Io, _) => unreachable!("W3 is pending and returned above"),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

/// How a workload is run.
#[derive(Clone, Debug, PartialEq)]
pub enum Implementation {
    /// One fused loop on one thread.
    Sequential,
    /// A rayon parallel iterator over the input range, on rayon's global pool.
    Rayon,
    /// The hand-written channel pipeline: one thread per stage, one item per message.
    Crossbeam,
    /// millrace, configured so.
    Millrace(MillraceConfig),
}

impl Implementation {
    /// Its short name, as the command line and the table write it.
    pub fn name(&self) -> &'static str {
        match self {
            Implementation::Sequential => "sequential",
            Implementation::Rayon => "rayon",
            Implementation::Crossbeam => "crossbeam",
            Implementation::Millrace(_) => "millrace",
        }
    }

    /// The implementation named `text` for `workload`: `sequential`, `rayon`, `crossbeam`,
    /// `millrace` (its primary configuration) or `millrace:K` (the K-th configuration of its
    /// sweep, from 1).
    pub fn parse(workload: Workload, text: &str) -> Option<Implementation> {
        let config = |k: usize| {
            let index = k.checked_sub(1)?;
            workload.millrace_configs().into_iter().nth(index)
        };
        match text {
            "sequential" => Some(Implementation::Sequential),
            "rayon" => Some(Implementation::Rayon),
            "crossbeam" => Some(Implementation::Crossbeam),
            "millrace" => config(1).map(Implementation::Millrace),
            _ => {
                let k = text.strip_prefix("millrace:")?.parse().ok()?;
                config(k).map(Implementation::Millrace)
            }
        }
    }
}

thread_local! {
    /// The report of the last millrace run on this thread.
    static LAST_REPORT: RefCell<Option<Report>> = const { RefCell::new(None) };
}

/// Keeps `report` as the last millrace run's (each workload's `millrace` calls it).
pub fn remember(report: &Report) {
    LAST_REPORT.with(|last| *last.borrow_mut() = Some(report.clone()));
}

/// The report of the last millrace run on this thread, if any; taken.
pub fn take_last_report() -> Option<Report> {
    LAST_REPORT.with(|last| last.borrow_mut().take())
}

/// What a run's adaptive batch sizes and autoscaler chose, in one line: each connector's
/// batch size at the end (of its limit) and each part's workers.
pub fn chosen(report: &Report) -> String {
    let mut parts: Vec<String> = Vec::new();
    let stages = report.stages();
    // A source read on the first stages' workers: its batches are theirs (no connector).
    let source = Some(report.source()).filter(|s| s.fused);
    let mut i = 0;
    while i < stages.len() {
        let first = &stages[i];
        let mut names = vec![first.name.clone()];
        let mut batched = first;
        if let (0, Some(source)) = (i, source) {
            names.insert(0, "source".to_owned());
            batched = source;
        }
        let mut j = i + 1;
        while j < stages.len() && stages[j].fused {
            names.push(stages[j].name.clone());
            j += 1;
        }
        let batch = if batched.batch_adaptive {
            format!("batch {} (≤ {})", batched.batch, batched.batch_limit)
        } else {
            format!("batch {} (pinned)", batched.batch)
        };
        let workers = match first.workers {
            1 => "1 worker".to_owned(),
            n => format!("{n} workers"),
        };
        parts.push(format!("{}: {workers}, {batch}", names.join("+")));
        i = j;
    }
    let sink = report.sink();
    let on = if sink.fused {
        ", consumed on the last worker"
    } else {
        ""
    };
    parts.push(format!(
        "sink: batch {} (≤ {}){on}",
        sink.batch, sink.batch_limit
    ));
    parts.join("; ")
}

/// How a millrace implementation is set up: workers per stage, batch size, capacity, or
/// nothing at all (the pipeline as a user writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MillraceConfig {
    /// Workers of each stage, in order; `None`: not set (the stages are autoscaled).
    pub workers: Option<Vec<usize>>,
    /// The batch size of every stage and of the sink; `None`: not set (it adapts).
    pub batch: Option<usize>,
    /// Every connector's capacity in items (`default_capacity`), or `None` for millrace's
    /// default.
    pub capacity: Option<usize>,
    /// `.capacity(items)` on each stage, as a user sizing each stage writes it.
    pub stage_capacity: Option<usize>,
    /// Whether adjacent stages of equal worker counts share workers
    /// ([`PipelineBuilder::fuse`]).
    pub fuse: bool,
}

/// The capacity the "as a user writes it" rows set on each stage: what the other pipelines
/// of the comparison (the crossbeam baseline) use.
pub const USER_CAPACITY: usize = 1024;

impl MillraceConfig {
    /// Workers per stage and batch size, default capacity.
    pub fn new(workers: &[usize], batch: usize) -> Self {
        MillraceConfig {
            workers: Some(workers.to_vec()),
            batch: Some(batch),
            capacity: None,
            stage_capacity: None,
            fuse: false,
        }
    }

    /// The pipeline as a user writes it: the public API with nothing set.
    pub fn as_written() -> Self {
        MillraceConfig {
            workers: None,
            batch: None,
            capacity: None,
            stage_capacity: None,
            fuse: false,
        }
    }

    /// As a user who sizes each stage writes it: `.workers(w)` and
    /// `.capacity(`[`USER_CAPACITY`]`)` on each stage, nothing else.
    pub fn user_sized(workers: &[usize]) -> Self {
        MillraceConfig {
            workers: Some(workers.to_vec()),
            stage_capacity: Some(USER_CAPACITY),
            ..Self::as_written()
        }
    }

    /// Whether this is one of the "as a user writes it" rows (no batch size set).
    pub fn is_as_written(&self) -> bool {
        self.batch.is_none()
    }

    /// With adjacent stages of equal worker counts fused.
    pub fn fused(mut self) -> Self {
        self.fuse = true;
        self
    }

    /// With every connector holding `items`.
    pub fn with_capacity(mut self, items: usize) -> Self {
        self.capacity = Some(items);
        self
    }

    /// Sets the pipeline-wide settings and a stop-on-error policy (a failed item must not go
    /// unnoticed in a benchmark; it does not change the speed of a run without failures).
    pub fn pipeline<T: Send + 'static>(&self, builder: PipelineBuilder<T>) -> PipelineBuilder<T> {
        let mut builder = builder.on_error(ErrorPolicy::Stop);
        if let Some(batch) = self.batch {
            builder = builder.default_batch(batch);
        }
        if self.fuse {
            builder = builder.fuse();
        } else if !self.is_as_written() {
            // A tuned row runs as its label says: one thread per stage and worker.
            builder = builder.adaptive_fusion(false);
        }
        match self.capacity {
            Some(items) => builder.default_capacity(items),
            None => builder,
        }
    }

    /// Applies the settings of stage `index` (0-based) to `stage`.
    pub fn stage<T, U>(&self, index: usize, stage: Stage<T, U>) -> Stage<T, U> {
        let mut stage = stage;
        if let Some(workers) = &self.workers {
            stage = stage.workers(workers.get(index).copied().unwrap_or(1));
        }
        if let Some(batch) = self.batch {
            stage = stage.batch(batch);
        }
        if let Some(items) = self.stage_capacity {
            stage = stage.capacity(items);
        }
        stage
    }

    /// Threads the run uses: every worker, plus the source and the sink (`None` when the
    /// stages are autoscaled). Fused runs of adjacent stages with equal worker counts share
    /// their workers (assuming no ordered stage ends a run early).
    pub fn threads(&self) -> Option<usize> {
        let workers = self.workers.as_ref()?;
        let workers: usize = if self.fuse {
            let mut runs = workers.clone();
            runs.dedup();
            runs.iter().sum()
        } else {
            workers.iter().sum()
        };
        Some(workers + 2)
    }
}

impl fmt::Display for MillraceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers = self.workers.as_ref().map(|w| {
            let w: Vec<String> = w.iter().map(usize::to_string).collect();
            w.join(",")
        });
        if self.is_as_written() {
            write!(f, "as a user writes it: ")?;
            match (&workers, self.stage_capacity) {
                (None, None) => return write!(f, "nothing set"),
                (Some(w), Some(c)) => return write!(f, "workers {w} · .capacity({c}) per stage"),
                (Some(w), None) => write!(f, "workers {w}")?,
                (None, Some(c)) => write!(f, ".capacity({c}) per stage")?,
            }
        } else {
            match &workers {
                Some(w) => write!(f, "workers {w}")?,
                None => write!(f, "autoscaled")?,
            }
            if let Some(batch) = self.batch {
                write!(f, " · batch {batch}")?;
            }
        }
        if let Some(items) = self.capacity {
            write!(f, " · capacity {items}")?;
        }
        if self.fuse {
            write!(f, " · fused")?;
        }
        Ok(())
    }
}
