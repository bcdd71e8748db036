//! Dead letters: an item that failed for good, handed to the stage's handler
//! ([`Stage::dead_letter`](crate::Stage::dead_letter)) with its id and error, and the item
//! itself where the stage still had it.

use std::sync::Arc;

use crate::error::ItemError;
use crate::item::ItemId;

/// An item that failed for good, with its error: what a stage's dead-letter handler gets.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeadLetter<T> {
    /// The item's id.
    pub id: ItemId,
    /// Why it failed.
    pub error: ItemError,
    /// The item itself, where the stage still had it: fallible forms borrow their items, so
    /// they always do; an infallible form that panicked consumed it.
    pub item: Option<T>,
}

/// A stage's dead-letter handler, shared by its workers.
pub(crate) type DeadLetterFn<T> = Arc<dyn Fn(DeadLetter<T>) + Send + Sync>;
