//! The standard millrace benchmark (issue 3): the workloads of `shared/bench-workloads.md`,
//! each implemented with millrace and with the baselines it is measured against in the same
//! process run — a sequential fused loop, rayon, and a hand-written crossbeam-channel
//! pipeline with one item per message.
//!
//! The `millrace-bench` binary runs the whole matrix ([`matrix`]) and prints it ([`table`])
//! with the verdict on each target of issue 3 ([`targets`]); the library is what the binary
//! and the checksum tests share.

#![forbid(unsafe_code)]

pub mod channel_pipeline;
pub mod cli;
pub mod error;
pub mod machine;
pub mod matrix;
pub mod measure;
pub mod rss;
pub mod table;
pub mod targets;
pub mod work;
pub mod workloads;

pub use error::Error;
pub use workloads::{Implementation, MillraceConfig, Workload};
