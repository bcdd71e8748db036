//! The origin's bookkeeping of wire ids: which have come back ([`IdSet`], for dropping
//! redelivered copies) and which id in the origin each stands for ([`Origins`]). The
//! publisher issues wire ids densely from 0, in order; the collector looks them up.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use millrace::ItemId;

/// The wire ids seen so far: one bit per id (the origin numbers them densely from 0), so
/// de-duplicating a run of N items costs N / 8 bytes.
#[derive(Default)]
pub(crate) struct IdSet {
    words: Vec<u64>,
    len: u64,
}

impl IdSet {
    /// Adds `id`; false if it was there.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        let word = (id / 64) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (id % 64);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += u64::from(fresh);
        fresh
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// The origin's own id of each wire id not yet answered: wire ids are issued in order, so
/// a queue from the oldest unanswered one holds them, and memory follows the items in
/// flight, not the run. Shared by the publisher, which issues them, and the collector.
#[derive(Clone, Default)]
pub(crate) struct Origins {
    ids: Arc<std::sync::Mutex<OriginsInner>>,
    /// How many wire ids have been issued (the next one).
    pub(crate) issued: Arc<AtomicU64>,
}

#[derive(Default)]
struct OriginsInner {
    /// The wire id of `slots[0]`.
    base: u64,
    slots: std::collections::VecDeque<Option<ItemId>>,
}

impl Origins {
    fn lock(&self) -> std::sync::MutexGuard<'_, OriginsInner> {
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues the next wire ids to `ids`, in order (and empties it).
    pub(crate) fn issue(&self, ids: &mut Vec<ItemId>) {
        self.lock().slots.extend(ids.drain(..).map(Some));
    }

    /// The origin's id of `wire`, answered now (the caller de-duplicates first).
    pub(crate) fn take(&self, wire: u64) -> ItemId {
        let mut o = self.lock();
        let front = wire
            .checked_sub(o.base)
            .and_then(|i| o.slots.get_mut(i as usize))
            .and_then(Option::take);
        while o.slots.front().is_some_and(Option::is_none) {
            o.slots.pop_front();
            o.base += 1;
        }
        // Issued ids are in the queue until taken once, which de-duplication ensures.
        front.unwrap_or(ItemId::new(wire))
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn an_id_is_new_once() {
        let mut ids = IdSet::default();
        assert!(ids.insert(0) && ids.insert(130) && ids.insert(63));
        assert!(!ids.insert(130) && !ids.insert(0));
        assert_eq!(ids.len(), 3);
    }
}
