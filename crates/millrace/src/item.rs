//! Items, their ids, and the batches that carry them over connectors.
//!
//! Every item that enters a pipeline gets an [`ItemId`]: its position in the source (or the
//! number [`Submitter::submit`](crate::Submitter::submit) returned). The id travels with the
//! item through every stage, so errors, dead letters and responses name the item they are
//! about. Children of a flat-map keep their parent's id.
//!
//! Items move between stages in a [`Batch`]: the values, their ids, and a sequence number
//! that ordered stages use to restore input order. Ids are stored as a range while they are
//! contiguous (the common case), so a batch of a million-item map costs no id bookkeeping.

use std::fmt;
use std::time::Instant;

/// The identity of one input item: its position in the source, counting from 0.
///
/// # Examples
///
/// ```
/// use millrace::ItemId;
/// assert_eq!(ItemId(7).to_string(), "#7");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u64);

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The ids of a batch's items, in item order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ids {
    /// `start, start + 1, …, start + len - 1`.
    Range { start: u64, len: usize },
    /// Any other sequence.
    List(Vec<u64>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Range { start: 0, len: 0 }
    }
}

impl Ids {
    pub(crate) fn len(&self) -> usize {
        match self {
            Ids::Range { len, .. } => *len,
            Ids::List(ids) => ids.len(),
        }
    }

    pub(crate) fn get(&self, index: usize) -> ItemId {
        match self {
            Ids::Range { start, .. } => ItemId(start + index as u64),
            Ids::List(ids) => ItemId(ids[index]),
        }
    }

    /// Appends `id`, staying a range while the ids stay contiguous.
    #[inline]
    pub(crate) fn push(&mut self, id: ItemId) {
        match self {
            Ids::Range { start, len } => {
                if *len == 0 {
                    *start = id.0;
                    *len = 1;
                } else if *start + *len as u64 == id.0 {
                    *len += 1;
                } else {
                    let mut list: Vec<u64> = (*start..*start + *len as u64).collect();
                    list.push(id.0);
                    *self = Ids::List(list);
                }
            }
            Ids::List(ids) => ids.push(id.0),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = ItemId> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Splits off the ids from `at` onwards, like [`Vec::split_off`].
    pub(crate) fn split_off(&mut self, at: usize) -> Ids {
        match self {
            Ids::Range { start, len } => {
                let tail = Ids::Range {
                    start: *start + at as u64,
                    len: *len - at,
                };
                *len = at;
                tail
            }
            Ids::List(ids) => Ids::List(ids.split_off(at)),
        }
    }
}

/// A run of items moving over a connector as one message.
pub(crate) struct Batch<T> {
    /// Position of this batch in its ordered region (see `reorder`); 0 where unused.
    pub(crate) seq: u64,
    /// When the oldest item in the batch entered the pipeline (for latency sampling).
    pub(crate) born: Instant,
    pub(crate) ids: Ids,
    pub(crate) items: Vec<T>,
}

impl<T> Batch<T> {
    #[cfg(feature = "async")]
    pub(crate) fn new(seq: u64, born: Instant, capacity: usize) -> Self {
        Batch {
            seq,
            born,
            ids: Ids::default(),
            items: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[inline]
    pub(crate) fn push(&mut self, id: ItemId, item: T) {
        self.ids.push(id);
        self.items.push(item);
    }

    /// Moves the items from `at` onwards into `rest` (an empty vector, recycled when one is
    /// at hand), as a batch with the same seq and birth.
    pub(crate) fn split_off_into(&mut self, at: usize, mut rest: Vec<T>) -> Batch<T> {
        rest.extend(self.items.drain(at..));
        Batch {
            seq: self.seq,
            born: self.born,
            ids: self.ids.split_off(at),
            items: rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_a_range_while_contiguous() {
        let mut ids = Ids::default();
        for i in 10..20 {
            ids.push(ItemId(i));
        }
        assert_eq!(ids, Ids::Range { start: 10, len: 10 });
        ids.push(ItemId(30));
        assert_eq!(ids.len(), 11);
        assert_eq!(ids.get(9), ItemId(19));
        assert_eq!(ids.get(10), ItemId(30));
        assert!(matches!(ids, Ids::List(_)));
    }

    #[test]
    fn split_off_keeps_both_halves() {
        let mut ids = Ids::Range { start: 5, len: 6 };
        let tail = ids.split_off(2);
        assert_eq!(ids.iter().map(|i| i.0).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(
            tail.iter().map(|i| i.0).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );
    }
}
