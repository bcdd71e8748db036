//! Serve a running millrace pipeline's counters at `/metrics`, in the format Prometheus
//! scrapes (OpenMetrics text, written by `prometheus-client`).
//!
//! [`MetricsServer::serve`] listens on an address and, at each scrape, renders the
//! pipeline's [`Handle::snapshot`](millrace::Handle::snapshot); after the run,
//! [`MetricsServer::finish`] makes it serve the final report. [`render`] gives the text of
//! any [`Report`](millrace::Report). The core library stays free of HTTP and Prometheus:
//! this crate is all of it.
//!
//! # Metrics
//!
//! One naming rule: `millrace_stage_<what>[_<unit>]`, labelled `pipeline` (the name given
//! to the server) and `stage` (a stage's name, or `source` / `sink` for the ends).
//! Counters end in `_total` as OpenMetrics asks.
//!
//! | metric | type | extra labels | what |
//! |---|---|---|---|
//! | `millrace_stage_items_in_total` | counter | | items received |
//! | `millrace_stage_items_out_total` | counter | | items emitted (a flat-map emits more than it receives) |
//! | `millrace_stage_items_filtered_total` | counter | | items that produced no output |
//! | `millrace_stage_items_failed_total` | counter | | items that failed after all their tries |
//! | `millrace_stage_items_cancelled_total` | counter | | items dropped unfinished by a cancel |
//! | `millrace_stage_retries_total` | counter | | extra tries under a retry policy |
//! | `millrace_stage_busy_seconds_total` | counter | | time its workers spent working, summed over workers |
//! | `millrace_stage_idle_seconds_total` | counter | | time its workers waited for input |
//! | `millrace_stage_blocked_seconds_total` | counter | | time its workers waited for room downstream |
//! | `millrace_stage_queue_fill_ratio` | gauge | | mean fill of its input queue (0–1) at the receives of the last timeline interval (over the run if none) |
//! | `millrace_stage_queue_capacity_batches` | gauge | | capacity of its input queue in batches (0: none of its own) |
//! | `millrace_stage_workers` | gauge | | its workers now |
//! | `millrace_stage_in_flight` | gauge | | async stages: items whose futures are running |
//! | `millrace_stage_latency_seconds` | histogram | | `stage="sink"`: admission to the sink, sampled per batch, weighted by items |
//! | `millrace_stage_errors_total` | counter | `kind` (`failed`, `panicked`, `timed_out`) | item errors by kind (every one, not only those the report keeps in full) |
//! | `millrace_stage_scaling_decisions_total` | counter | `direction` (`up`, `down`) | worker count changes the autoscaler made (a fused segment counts under its first stage) |
//! | `millrace_stage_wedges_total` | counter | | wedge diagnoses in which a worker of the stage was stuck in its code |
//!
//! The latency buckets ([`LATENCY_BUCKETS`], 1 µs to 10 s, then +Inf) are filled from the
//! report's quarter-octave histogram: a report bucket counts under the first bound at or
//! above its upper end, so each `le` count may miss items up to 19% below the bound.
//!
//! `Handle::snapshot` sums every worker's counters: a scrape costs a few microseconds per
//! stage and nothing on the pipeline's threads.

#![forbid(unsafe_code)]

mod encode;
mod server;

pub use encode::{render, LATENCY_BUCKETS};
pub use server::{MetricsServer, CONTENT_TYPE};
