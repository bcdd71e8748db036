//! How an [`Item`] crosses a broker edge: serde, as its id (the position in the source and
//! the flat-map path below it) and its [`Value`] (whose serde is derived in
//! [`crate::value`] under the `nats` feature).

use millrace::ItemId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::value::{Item, Value};

/// An item id as positions: the source's, then each flat-map level's (from 1).
fn path(id: ItemId) -> (u64, Vec<u32>) {
    let mut positions = Vec::new();
    let mut at = id;
    while let (Some(p), Some(parent)) = (at.position(), at.parent()) {
        positions.push(p);
        at = parent;
    }
    positions.reverse();
    (id.origin(), positions)
}

fn from_path(origin: u64, positions: &[u32]) -> ItemId {
    positions
        .iter()
        .fold(ItemId::new(origin), |id, &p| id.child(p))
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (origin, positions) = path(self.id);
        (origin, positions, &self.value).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (origin, positions, value) = <(u64, Vec<u32>, Value)>::deserialize(d)?;
        Ok(Item {
            id: from_path(origin, &positions),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use millrace::ItemId;

    use crate::value::{Item, Record, Value};

    #[test]
    fn an_item_with_every_kind_of_value_and_a_child_id_round_trips() {
        let mut record = Record::new();
        record.set("line", Value::Number(7));
        record.set("text", Value::Text(Arc::from("héllo")));
        record.set("data", Value::Bytes(Bytes::from_static(b"\0\x01\xff")));
        let item = Item {
            id: ItemId::new(41).child(3).child(2),
            value: Value::Record(record),
        };
        let bytes = serde_json::to_vec(&item).expect("serialize");
        let back: Item = serde_json::from_slice(&bytes).expect("deserialize");
        assert_eq!(back, item);
        assert_eq!(back.id.to_string(), "#41.3.2");
    }
}
