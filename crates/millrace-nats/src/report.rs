//! [`RemoteReport`]: the accounting of the parts that ran on other processes, as the origin
//! saw it come back: every item it put on the broker is delivered back, filtered by a
//! remote stage, or failed in one (dead letters included), each exactly once after
//! de-duplication.

use std::collections::BTreeMap;
use std::fmt;

use millrace::ItemId;

/// What became of the items the origin sent across the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteReport {
    /// Items the origin published onto the first broker edge.
    pub published: u64,
    /// Items that came back on the last edge, each counted once.
    pub delivered: u64,
    /// Items filtered out, per remote stage.
    pub filtered: BTreeMap<String, u64>,
    /// Items failed, per remote stage (a dead-lettered message's items under the edge's
    /// name, `broker edge <name>`).
    pub failed: BTreeMap<String, u64>,
    /// The first errors of failed items (at most 20), with the item's id in the origin.
    pub errors: Vec<(ItemId, String)>,
    /// Copies of items already accounted for (redelivery after a worker died or an ack was
    /// lost), dropped.
    pub duplicates_dropped: u64,
    /// Messages left on the server by an earlier run, dropped.
    pub stale_dropped: u64,
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
    /// `published = delivered + filtered + failed`.
    pub fn is_balanced(&self) -> bool {
        self.published == self.delivered + self.filtered_total() + self.failed_total()
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
            "remote: {} published, {} delivered back, {} filtered, {} failed ({})",
            self.published,
            self.delivered,
            self.filtered_total(),
            self.failed_total(),
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
        for (id, e) in self.errors.iter().take(5) {
            writeln!(f, "  item {id}: {e}")?;
        }
        write!(
            f,
            "  {} duplicate(s) from redelivery dropped, {} stale message(s) dropped",
            self.duplicates_dropped, self.stale_dropped
        )
    }
}
