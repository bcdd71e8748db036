//! Items, their ids, and the batches that carry them over connectors.
//!
//! Every item that enters a pipeline gets an [`ItemId`]: its position in the source (or the
//! number [`Submitter::submit`](crate::Submitter::submit) returned). The id travels with the
//! item through every stage, so errors, dead letters and responses name the item they are
//! about. When a flat-map turns an item into several, each child gets an id of its own that
//! names its parent and its position among its siblings: `#25.3` is the third child of item
//! 25, `#25.3.2` the second child of that one.
//!
//! Items move between stages in a [`Batch`]: the values, their ids, and a sequence number
//! that ordered stages use to restore input order. Ids are stored as a range while they are
//! contiguous (the common case), so a batch of a million-item map costs no id bookkeeping.

use std::fmt;
use std::time::Instant;

/// How many levels of flat-map children an id names. Four fit in the padding the id's
/// `u64` leaves: an `ItemId` is 24 bytes with three levels or four.
const DEPTH: usize = 4;

/// The identity of one item: the position in the source of the input item it comes from
/// (`.0`, counting from 0) and, for a flat-map's child, its position among its siblings.
///
/// An input item's id is `#n`. A flat-map that turns an item into two or more outputs gives
/// them the ids `#n.1`, `#n.2`, …, and a flat-map further on numbers their children the same
/// way (`#n.2.1`); an item that a flat-map turns into exactly one output keeps its id. Ids
/// name four levels of children; children of a fifth flat-map in a chain keep their
/// parent's id (so siblings there share it).
///
/// # Examples
///
/// ```
/// use millrace::ItemId;
/// let id = ItemId::new(7);
/// assert_eq!(id.to_string(), "#7");
/// assert_eq!((id.0, id.parent(), id.position()), (7, None, None));
/// assert_eq!(format!("{:?}", id.child(2)), "ItemId(#7.2)");
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u64, ChildPath);

/// `ItemId(#25.3)`: the id as it displays (the derived form showed the child path's
/// internals, `ItemId(25, ChildPath([3, 0, 0, 0]))`).
impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemId({self})")
    }
}

/// Positions (from 1) among siblings, one per level of flat-map; 0 ends the path.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ChildPath([u32; DEPTH]);

impl ChildPath {
    fn depth(&self) -> usize {
        self.0.iter().take_while(|&&p| p != 0).count()
    }
}

impl ItemId {
    /// The id of the input item at position `origin` in the source.
    pub const fn new(origin: u64) -> Self {
        ItemId(origin, ChildPath([0; DEPTH]))
    }

    /// The position in the source of the input item this one comes from.
    pub fn origin(self) -> u64 {
        self.0
    }

    /// Whether this is a flat-map's child.
    pub fn is_child(self) -> bool {
        self.1.depth() > 0
    }

    /// The item a flat-map made this one from; `None` for an input item.
    pub fn parent(self) -> Option<ItemId> {
        let depth = self.1.depth();
        let mut path = self.1;
        path.0[depth.checked_sub(1)?] = 0;
        Some(ItemId(self.0, path))
    }

    /// The position (from 1) of this child among its siblings; `None` for an input item.
    pub fn position(self) -> Option<u32> {
        let depth = self.1.depth();
        Some(self.1 .0[depth.checked_sub(1)?])
    }

    /// The id a flat-map gives this item's child at `position` (from 1): `#25` → `#25.3`.
    /// Past the fourth level (and for position 0) it is this id.
    pub fn child(self, position: u32) -> ItemId {
        let depth = self.1.depth();
        if depth == DEPTH || position == 0 {
            return self;
        }
        let mut path = self.1;
        path.0[depth] = position;
        ItemId(self.0, path)
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)?;
        for p in self.1 .0.iter().take_while(|&&p| p != 0) {
            write!(f, ".{p}")?;
        }
        Ok(())
    }
}

/// The ids of a batch's items, in item order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ids {
    /// `start, start + 1, …, start + len - 1`.
    Range { start: u64, len: usize },
    /// Any other sequence (flat-map children, gaps).
    List(Vec<ItemId>),
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
            Ids::Range { start, .. } => ItemId::new(start + index as u64),
            Ids::List(ids) => ids[index],
        }
    }

    /// Appends `id`, staying a range while the ids stay contiguous.
    #[inline]
    pub(crate) fn push(&mut self, id: ItemId) {
        match self {
            Ids::Range { start, len } => {
                if id.is_child() {
                    let mut list: Vec<ItemId> =
                        (*start..*start + *len as u64).map(ItemId::new).collect();
                    list.push(id);
                    *self = Ids::List(list);
                } else if *len == 0 {
                    *start = id.0;
                    *len = 1;
                } else if *start + *len as u64 == id.0 {
                    *len += 1;
                } else {
                    let mut list: Vec<ItemId> =
                        (*start..*start + *len as u64).map(ItemId::new).collect();
                    list.push(id);
                    *self = Ids::List(list);
                }
            }
            Ids::List(ids) => ids.push(id),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = ItemId> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Appends `other`'s ids: a range that continues this one extends it at no cost per id.
    pub(crate) fn append(&mut self, other: &Ids) {
        match (&mut *self, other) {
            (_, Ids::Range { len: 0, .. }) => {}
            (Ids::Range { len: 0, .. }, _) => *self = other.clone(),
            (
                Ids::Range { start, len },
                Ids::Range {
                    start: next,
                    len: more,
                },
            ) if *start + *len as u64 == *next => {
                *len += more;
            }
            (Ids::List(ids), Ids::List(more)) => ids.extend_from_slice(more),
            _ => other.iter().for_each(|id| self.push(id)),
        }
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
    fn appending_a_range_that_continues_a_range_extends_it() {
        let mut ids = Ids::Range { start: 10, len: 5 };
        ids.append(&Ids::Range { start: 15, len: 3 });
        assert_eq!(ids, Ids::Range { start: 10, len: 8 });
        ids.append(&Ids::Range { start: 99, len: 0 });
        assert_eq!(ids, Ids::Range { start: 10, len: 8 }, "nothing to append");
        let mut empty = Ids::default();
        empty.append(&Ids::Range { start: 7, len: 2 });
        assert_eq!(empty, Ids::Range { start: 7, len: 2 });
        // A gap, or a child, turns the range into a list in order.
        let mut gap = Ids::Range { start: 0, len: 2 };
        gap.append(&Ids::Range { start: 5, len: 1 });
        let child = ItemId::new(6).child(1);
        gap.append(&Ids::List(vec![child]));
        assert_eq!(
            gap.iter().collect::<Vec<_>>(),
            [ItemId::new(0), ItemId::new(1), ItemId::new(5), child]
        );
    }

    #[test]
    fn ids_stay_a_range_while_contiguous() {
        let mut ids = Ids::default();
        for i in 10..20 {
            ids.push(ItemId::new(i));
        }
        assert_eq!(ids, Ids::Range { start: 10, len: 10 });
        ids.push(ItemId::new(30));
        assert_eq!(ids.len(), 11);
        assert_eq!(ids.get(9), ItemId::new(19));
        assert_eq!(ids.get(10), ItemId::new(30));
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

    #[test]
    fn children_name_their_parent_and_position() {
        let parent = ItemId::new(25);
        let child = parent.child(3);
        assert_eq!(child.to_string(), "#25.3");
        assert_eq!(
            (child.0, child.position(), child.parent()),
            (25, Some(3), Some(parent))
        );
        let grandchild = child.child(2);
        assert_eq!(grandchild.to_string(), "#25.3.2");
        assert_eq!(grandchild.parent(), Some(child));
        assert!(grandchild.is_child() && !parent.is_child());
        let deepest = grandchild.child(1).child(5);
        assert_eq!(deepest.to_string(), "#25.3.2.1.5");
        // Past four levels, children keep their parent's id.
        assert_eq!(deepest.child(4), deepest);
        assert_ne!(parent.child(1), parent.child(2));
        // Four levels cost nothing over three: the path fits beside the origin's u64.
        assert_eq!(std::mem::size_of::<ItemId>(), 24);
    }

    #[test]
    fn a_child_turns_a_range_into_a_list() {
        let mut ids = Ids::default();
        ids.push(ItemId::new(4));
        ids.push(ItemId::new(5).child(1));
        assert!(matches!(ids, Ids::List(_)));
        assert_eq!(ids.get(0), ItemId::new(4));
        assert_eq!(ids.get(1).to_string(), "#5.1");
    }
}
