//! What travels in a message: a batch of items with their ids ([`Envelope`]), or the items
//! that ended in a remote part ([`EndedBatch`]), serialized with postcard.
//!
//! Postcard was chosen by measuring: `cargo run --release -p millrace-nats --example
//! formats` encodes and decodes batches of 1,024 W1 items (`{x: u64, y: u64}`) with
//! postcard, bincode 1 and rmp-serde; the figures are in BENCHMARKS.md ("Broker edges").
//!
//! Every message carries the origin's **run id**: a message left on the server by an
//! earlier run (a worker that died mid-way, an origin that was stopped) is recognised and
//! dropped by the origin rather than counted twice. Item ids are the origin's: the wire id
//! the origin gave each item when it first crossed onto the broker, kept by every part.

use serde::{Deserialize, Serialize};

use crate::error::NatsError;

/// A batch of items with their wire ids (borrowed, for encoding).
#[derive(Serialize)]
pub(crate) struct EnvelopeRef<'a, T> {
    pub(crate) run: u64,
    pub(crate) ids: &'a [u64],
    pub(crate) items: &'a [T],
}

/// A batch of items with their wire ids (owned, decoded).
#[derive(Deserialize, Debug)]
pub(crate) struct Envelope<T> {
    pub(crate) run: u64,
    pub(crate) ids: Vec<u64>,
    pub(crate) items: Vec<T>,
}

/// Why an item ended before the origin's sink side.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndKind {
    /// A stage filtered it out.
    Filtered,
    /// A stage failed on it, with the error.
    Failed(String),
}

/// One item that ended in a remote part.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) id: u64,
    pub(crate) stage: String,
    pub(crate) kind: EndKind,
}

/// The items of one message that ended in a remote part.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct EndedBatch {
    pub(crate) run: u64,
    pub(crate) ended: Vec<Ended>,
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, NatsError> {
    postcard::to_stdvec(value).map_err(|e| NatsError::request("serializing a batch", e))
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("cannot decode the message: {e}"))
}

/// The run id of a message, read without decoding its items (the first field).
pub(crate) fn run_of(bytes: &[u8]) -> Option<u64> {
    postcard::take_from_bytes::<u64>(bytes)
        .ok()
        .map(|(run, _)| run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_with_its_run_and_ids() {
        let items = vec![(1u64, "a".to_owned()), (2, "b".to_owned())];
        let bytes = encode(&EnvelopeRef {
            run: 7,
            ids: &[10, 11],
            items: &items,
        })
        .unwrap();
        assert_eq!(run_of(&bytes), Some(7));
        let back: Envelope<(u64, String)> = decode(&bytes).unwrap();
        assert_eq!((back.run, back.ids, back.items), (7, vec![10, 11], items));
    }

    #[test]
    fn a_message_of_another_type_is_an_error_not_a_panic() {
        let bytes = encode(&EnvelopeRef::<u8> {
            run: 1,
            ids: &[1],
            items: &[200],
        })
        .unwrap();
        assert!(decode::<Envelope<String>>(&bytes).is_err());
    }
}
