//! Scale out: a pipeline file's remote stages run on `millrace worker` processes, joined to
//! the origin (`millrace run`, the source and sink side) by NATS JetStream broker edges
//! (the `millrace-nats` crate; the `nats` feature).
//!
//! Which stages are remote is read by [`crate::config::connector`] (`connector = "nats"`).
//! The pipeline is then built in parts from the pieces of [`crate::build`]:
//!
//! * the **origin** (`run_origin`, `origin.rs`): the source and the stages before the
//!   remote run (the *front*), whose outputs are published to the edge `in`; and the stages
//!   after it and the sink (the *back*), fed by what comes back on the edge `out`, each
//!   item once.
//!   Its report is the back part's, followed by the front part's and the remote stages'
//!   accounting (published = delivered + filtered + failed);
//! * a **worker** (`run_worker`, `worker.rs`): the remote stages, on items taken off
//!   `in`, publishing to `out`. Start one on as many machines as needed: they share the
//!   edge's input.
//!
//! Both sides name their job on the server after the pipeline (`[pipeline] name`, or the
//! file's stem), so a worker and an origin started from the same file meet. Items cross
//! as [`Item`](crate::value::Item)s (`wire`: serde, postcard on the wire), in batches of
//! [`EDGE_BATCH`].

#[cfg(feature = "nats")]
mod origin;
#[cfg(feature = "nats")]
mod wire;
#[cfg(feature = "nats")]
mod worker;

#[cfg(feature = "nats")]
pub use origin::{run_origin, RemoteAccount};
#[cfg(feature = "nats")]
pub use worker::run_worker;

/// What the parts of a scaled-out run other than the back one did (none can exist
/// without the `nats` feature).
#[cfg(not(feature = "nats"))]
#[derive(Debug)]
pub enum RemoteAccount {}

#[cfg(not(feature = "nats"))]
impl RemoteAccount {
    /// The account as the JSON report's `remote` object.
    pub fn to_json(&self) -> serde_json::Value {
        match *self {}
    }

    /// The whole run's exit code.
    pub fn exit_code(&self, _code: u8, _allow_failures: bool) -> u8 {
        match *self {}
    }

    /// Prints the account and returns the whole run's exit code.
    pub fn finish(&self, _code: u8, _quiet: bool, _allow_failures: bool) -> u8 {
        match *self {}
    }
}

/// Items per broker message (NATS refuses a message over its `max_payload`, 1 MiB by
/// default: keep items small, or the batch, where they are large).
pub const EDGE_BATCH: usize = 64;

/// Bytes each broker edge holds at most (the server reserves this much of its JetStream
/// storage per edge).
pub const EDGE_MAX_BYTES: i64 = 16 << 20;

#[cfg(feature = "nats")]
pub(crate) use edges::{connect, connect_waiting, edges};

#[cfg(feature = "nats")]
mod edges {
    use millrace_nats::{Broker, BrokerConfig, Edge, EdgeConfig, Job, NatsError};

    use super::{EDGE_BATCH, EDGE_MAX_BYTES};
    use crate::config::PipelineSpec;
    use crate::signals::Interrupts;
    use crate::value::Item;

    /// Connects to `url`, or fails at once (the origin).
    pub(crate) fn connect(url: &str) -> Result<Broker, NatsError> {
        let broker = Broker::connect_with(BrokerConfig::new(url))?;
        warn(&broker);
        Ok(broker)
    }

    /// Connects to `url`, waiting for the server (a worker), saying so on each try, until
    /// Ctrl-C or SIGTERM (`Ok(None)`).
    pub(crate) fn connect_waiting(
        url: &str,
        interrupts: &Interrupts,
    ) -> Result<Option<Broker>, NatsError> {
        let broker =
            Broker::connect_waiting(BrokerConfig::new(url), u32::MAX, |e, wait, attempt| {
                eprintln!(
                    "millrace: {e}; trying again in {wait:?} (attempt {attempt}; Ctrl-C stops)"
                );
                // An interrupt wakes the wait (the handler counts it first).
                let _ = interrupts.wakeup().recv_timeout(wait);
                interrupts.count() == 0
            })?;
        if let Some(broker) = &broker {
            warn(broker);
        }
        Ok(broker)
    }

    /// Prints what was found on connecting that works but should be fixed.
    fn warn(broker: &Broker) {
        for w in broker.warnings() {
            eprintln!("millrace: warning: {w}");
        }
    }

    /// The job of `spec` (with its remote part's fingerprint) and its two edges: into the
    /// remote run, and out of it.
    pub(crate) fn edges(
        broker: &Broker,
        spec: &PipelineSpec,
    ) -> Result<(Job, Edge<Item>, Edge<Item>), NatsError> {
        let mut job = broker.job(&spec.name)?;
        // Batches carry what the remote stages do, and a worker started from a file that
        // differs from the origin's refuses them rather than answer them its way.
        if let Some(scale) = &spec.scale_out {
            job = job.fingerprint(scale.fingerprint(spec));
        }
        let config = EdgeConfig {
            batch: EDGE_BATCH,
            max_bytes: EDGE_MAX_BYTES,
            ..EdgeConfig::default()
        };
        let into = job.edge::<Item>("in", config.clone())?;
        let out = job.edge::<Item>("out", config)?;
        Ok((job, into, out))
    }
}
