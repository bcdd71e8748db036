//! [`RemoteReport`]: the accounting of the parts that ran on other processes, as the origin
//! saw it come back: every item it put on the broker is delivered back, filtered by a
//! remote stage, or failed in one (dead letters included), each exactly once after
//! de-duplication.

use std::collections::BTreeMap;
use std::fmt;

use millrace::ItemId;

use crate::origin::RemoteOutcome;

/// What became of the items the origin sent across the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteReport {
    /// Items the origin published onto the first broker edge.
    pub published: u64,
    /// Items that came back on the last edge and were handed on to the origin's
    /// [`Remote`](crate::Remote) iterator, each counted once.
    pub delivered: u64,
    /// Items filtered out, per remote stage.
    pub filtered: BTreeMap<String, u64>,
    /// Items failed, per remote stage (a dead-lettered message's items under the edge's
    /// name, `broker edge <name>`).
    pub failed: BTreeMap<String, u64>,
    /// The first errors of failed items (at most 20), with the item's id in the origin:
    /// `stage `parse` failed on item #7: …`, as the error reads in memory.
    pub errors: Vec<(ItemId, String)>,
    /// Copies of items already accounted for (redelivery after a worker died or an ack was
    /// lost), dropped.
    pub duplicates_dropped: u64,
    /// Messages left on the server by an earlier run, dropped.
    pub stale_dropped: u64,
    /// Items published whose outcome was not handed on before the origin stopped waiting
    /// (a run stopped or cancelled early: the items on their way, or taken in but no
    /// longer read); the run counts them as cancelled. 0 for a run that completed.
    pub not_back: u64,
}

impl RemoteReport {
    /// Items filtered in all remote stages.
    pub fn filtered_total(&self) -> u64 {
        self.filtered.values().sum()
    }

    /// Items failed in all remote stages.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Whether every published item was accounted for exactly once:
    /// `published = delivered + filtered + failed + not_back`.
    pub fn is_balanced(&self) -> bool {
        self.published == self.answered() + self.not_back
    }

    /// Items whose outcome was handed on: delivered, filtered or failed.
    fn answered(&self) -> u64 {
        self.delivered + self.filtered_total() + self.failed_total()
    }

    /// Counts an outcome the [`Remote`](crate::Remote) iterator hands out.
    pub(crate) fn count<T>(&mut self, id: &ItemId, outcome: &RemoteOutcome<T>) {
        match outcome {
            RemoteOutcome::Output(_) => self.delivered += 1,
            RemoteOutcome::Filtered { stage } => {
                *self.filtered.entry(stage.clone()).or_default() += 1;
            }
            RemoteOutcome::Failed { stage, error } => {
                *self.failed.entry(stage.clone()).or_default() += 1;
                // As the error reads in memory (`ItemError`'s display).
                self.error(*id, format!("stage `{stage}` failed on item {id}: {error}"));
            }
        }
    }

    /// Takes in the outcomes the [`Remote`](crate::Remote) iterator handed out (`handed`):
    /// what was published and not among them is not back.
    pub(crate) fn handed(&mut self, handed: &RemoteReport) {
        self.delivered = handed.delivered;
        self.filtered.clone_from(&handed.filtered);
        self.failed.clone_from(&handed.failed);
        self.errors.clone_from(&handed.errors);
        self.not_back = self.published.saturating_sub(self.answered());
    }

    pub(crate) fn error(&mut self, id: ItemId, error: String) {
        if self.errors.len() < 20 {
            self.errors.push((id, error));
        }
    }
}

impl fmt::Display for RemoteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "remote: {} published, {} delivered back, {} filtered, {} failed{} ({})",
            self.published,
            self.delivered,
            self.filtered_total(),
            self.failed_total(),
            if self.not_back > 0 {
                format!(", {} not back (cancelled)", self.not_back)
            } else {
                String::new()
            },
            if self.is_balanced() {
                "balanced"
            } else {
                "NOT balanced"
            }
        )?;
        for (stage, n) in &self.filtered {
            writeln!(f, "  stage `{stage}`: {n} filtered")?;
        }
        for (stage, n) in &self.failed {
            writeln!(f, "  stage `{stage}`: {n} failed")?;
        }
        for (_, e) in self.errors.iter().take(5) {
            writeln!(f, "  {e}")?;
        }
        write!(
            f,
            "  {} duplicate(s) from redelivery dropped, {} stale message(s) dropped",
            self.duplicates_dropped, self.stale_dropped
        )
    }
}
