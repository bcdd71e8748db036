//! Which serde format for broker messages: encodes and decodes batches of 1,024 W1 items
//! (`{x: u64, y: u64}`) with postcard, bincode 1 and rmp-serde, and prints the bytes per
//! batch and the items/s of each (medians of 5 runs).
//!
//! `cargo run --release -p millrace-nats --example formats`

use std::time::Instant;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
struct Data {
    x: u64,
    y: u64,
}

type Codec = (&'static str, fn(&[Data]) -> Vec<u8>, fn(&[u8]) -> Vec<Data>);

fn main() {
    let batch: Vec<Data> = (0..1024u64).map(|x| Data { x, y: 3 * x * x }).collect();
    let codecs: [Codec; 3] = [
        (
            "postcard",
            |b| postcard::to_stdvec(b).unwrap(),
            |v| postcard::from_bytes(v).unwrap(),
        ),
        (
            "bincode 1",
            |b| bincode::serialize(b).unwrap(),
            |v| bincode::deserialize(v).unwrap(),
        ),
        (
            "rmp-serde",
            |b| rmp_serde::to_vec(b).unwrap(),
            |v| rmp_serde::from_slice(v).unwrap(),
        ),
    ];
    println!("| format | bytes / 1,024 items | encode items/s | decode items/s |");
    println!("|---|---|---|---|");
    let rounds = 2000;
    for (name, encode, decode) in codecs {
        let bytes = encode(&batch);
        assert_eq!(decode(&bytes), batch);
        let rate = |f: &dyn Fn()| {
            let mut runs: Vec<f64> = (0..5)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..rounds {
                        f();
                    }
                    (rounds * batch.len()) as f64 / start.elapsed().as_secs_f64()
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            runs[2]
        };
        let enc = rate(&|| {
            std::hint::black_box(encode(std::hint::black_box(&batch)));
        });
        let dec = rate(&|| {
            std::hint::black_box(decode(std::hint::black_box(&bytes)));
        });
        println!("| {name} | {} | {enc:.3e} | {dec:.3e} |", bytes.len());
    }
}
