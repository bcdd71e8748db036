//! # millrace-nats
//!
//! Scale a [millrace] pipeline out over processes and machines, joined by
//! **NATS JetStream** instead of in-memory connectors. Nothing accepted is lost: delivery
//! is at-least-once across the broker, and the origin removes duplicates by item id, so
//! each item's outcome reaches it exactly once.
//!
//! ## Design
//!
//! * A **broker edge** ([`Edge`]) is a JetStream stream: file storage, work-queue
//!   retention, bounded by `max_messages` / `max_bytes` with *discard new* (a publish to a
//!   full edge is refused and retried: the producer slows, nothing is dropped), and one
//!   durable pull consumer shared by every process that takes from the edge, with explicit
//!   acks, `ack_wait`, `max_deliver` and `max_ack_pending`. Edges live in a [`Job`]
//!   (`MILLRACE_<job>_<edge>`, subject `millrace.<job>.<edge>`).
//! * Items cross in **batches**, one message per batch of up to `EdgeConfig::batch` items,
//!   serialized with postcard (measured against bincode and rmp-serde: BENCHMARKS.md);
//!   each message carries the origin's run id and each item's **wire id**. The item type
//!   must be serde-serializable ([`Wire`]): anything else is a compile error.
//! * A **part** of a pipeline runs as an ordinary in-process millrace pipeline. The
//!   **origin** ([`Origin`]) runs the front part, whose outputs are published to the first
//!   edge (each publish awaited until the server has it), and collects what comes back.
//!   A **worker** ([`WorkerPart`]) takes messages off an edge, submits their items to its
//!   part, and, once every item of a message has its outcome on millrace's response path
//!   ([`respond`](millrace::PipelineBuilder::respond)), publishes the outputs to the next
//!   edge and the filtered / failed items to the job's response stream, awaits both acks,
//!   and only then **acks** the message.
//! * A worker that dies has its unacked messages **redelivered** after `ack_wait` to another
//!   worker (live workers extend `ack_wait` while they work; every taker pulls one message
//!   at a time, when it has room, so none waits unseen in a buffer). A worker takes in up
//!   to its part's capacity (the part is an ordinary pipeline): keep that small where
//!   workers should share a short input evenly. A message delivered
//!   `max_deliver` times goes to the edge's **dead-letter** stream with its error, and its
//!   items are answered as failed.
//! * **Duplicates** that redelivery causes are removed twice over: republished results keep
//!   their message id (the server's duplicate window drops them), and the origin keeps the
//!   first outcome of each wire id and drops the rest. So the origin's [`Remote`] iterator
//!   yields each item exactly once: a sink fed from it (any millrace sink) gives
//!   exactly-once output. A sink *inside a remote part* would see redelivered items again:
//!   only an idempotent one (keyed writes) gives exactly-once output there.
//! * **One origin per job at a time**: an origin holds its job's [`lease`] while it runs;
//!   a second one is refused ([`NatsError::JobBusy`]) rather than left to share, and
//!   lose, the first one's results. A worker drops unprocessed the messages of any other
//!   run than the one holding the lease (an interrupted run's leftovers, whose origin is
//!   gone), so a new run does not wait behind them.
//! * **One pipeline per job**: a [`Job::fingerprint`] (what the remote part does, as each
//!   process sees it) travels with every batch, and a worker that sees another one gives
//!   the batch back and stops ([`NatsError::PartMismatch`]) rather than answer it its way.
//! * **Order is not kept** across the broker: the [`Remote`] iterator yields outputs in the
//!   order workers finish them. Stages that must see input order belong in the front part
//!   (the `millrace` command refuses `ordered = true` from the first remote stage on).
//! * **Accounting**: the origin's [`RemoteReport`] counts every published item as delivered
//!   back, filtered (per remote stage) or failed (per stage, with errors), and
//!   [`is_balanced`](RemoteReport::is_balanced) checks the identity; each worker's
//!   [`WorkerReport`] has its part's full millrace report.
//!
//! ## Example
//!
//! One binary, the part chosen by argument: `demo origin` runs the source and sink side,
//! `demo worker` the heavy stage (start as many as needed).
//!
//! ```no_run
//! use millrace::{Pipeline, Stage};
//! use millrace_nats::{Broker, EdgeConfig};
//!
//! let broker = Broker::connect("nats://127.0.0.1:4222")?;
//! let job = broker.job("squares")?;
//! let to_heavy = job.edge::<u64>("in", EdgeConfig::default())?;
//! let from_heavy = job.edge::<u64>("out", EdgeConfig::default())?;
//! if std::env::args().nth(1).as_deref() == Some("worker") {
//!     let worker = job
//!         .worker(&to_heavy, &from_heavy, |b| b.stage(Stage::map("heavy", |x: u64| x * x).workers(2)))?
//!         .spawn()?;
//!     std::thread::park(); // until killed; `worker.stop()` and `join()` end it cleanly
//! } else {
//!     let (remote, end) = job.origin(&to_heavy, &from_heavy)?.start(Pipeline::source(0..1000u64).map("wrap", |x| x))?;
//!     let sum = Pipeline::source(remote.outputs()).fold(0u64, |s, y| s + y).run()?.output;
//!     let reports = end.finish()?;
//!     assert!(reports.remote.is_balanced());
//!     println!("{sum}\n{}", reports.remote);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod broker;
mod edge;
mod error;
pub mod lease;
pub mod local_server;
mod origin;
mod publish;
mod pull;
mod report;
mod wire;
mod wire_ids;
mod worker;

pub use broker::{
    say_retry, Broker, BrokerConfig, Credentials, Job, ENV_CREDS, ENV_PASSWORD, ENV_TOKEN, ENV_USER,
};
pub use edge::{Edge, EdgeConfig, Wire};
pub use error::NatsError;
pub use origin::{Origin, Remote, RemoteEnd, RemoteFinished, RemoteOutcome, RemoteStop};
pub use publish::{ERROR_HEADER, PART_HEADER};
pub use report::RemoteReport;
pub use worker::{WorkerHandle, WorkerPart, WorkerReport};
