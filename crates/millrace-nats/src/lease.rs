//! One origin per job at a time: an origin holds its job's **lease** while it runs.
//!
//! Two origins on one job would share its edges' durable consumers: each collector would
//! take, and drop as another run's, half of the other's results, and neither run would ever
//! end. So an origin first creates its job's key in the key-value bucket
//! [`BUCKET`] (a create fails where the key exists), renews it every third of [`HOLD`] while
//! it runs, and deletes it when it finishes. An origin that dies without deleting it lets go
//! [`HOLD`] after its last renewal: the bucket keeps no entry longer (`max_age`).

use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::error::NatsError;

/// The bucket of the jobs' leases (one key per job that has a run going).
pub const BUCKET: &str = "MILLRACE_RUNS";

/// How long a lease lasts unless renewed: how soon a job whose origin died takes a new run.
pub const HOLD: Duration = Duration::from_secs(15);

/// The run that holds `job`'s lease now, if one does (as [`Lease::take`] wrote it). A
/// worker reads it when a message's run is not the one it last saw: a message of another
/// run than the holder's is an earlier run's leftover, whose origin is gone (one origin per
/// job), and which nothing will ever take the results of.
pub(crate) async fn holder_run(broker: &Broker, job: &str) -> Option<u64> {
    let store = broker.js().get_key_value(BUCKET).await.ok()?;
    let value = store.get(job).await.ok()??;
    run_of_holder(&String::from_utf8_lossy(&value))
}

/// The run id in a lease's value (`run 0123456789abcdef of process 42`).
fn run_of_holder(holder: &str) -> Option<u64> {
    let hex = holder.strip_prefix("run ")?.split(' ').next()?;
    u64::from_str_radix(hex, 16).ok()
}

/// What a lease says of its holder.
fn holder_of(run: u64) -> String {
    format!("run {run:016x} of process {}", std::process::id())
}

/// A job's lease, renewed until released (or dropped: it is then let go in the background,
/// or, where that cannot happen, lapses after [`HOLD`]).
pub(crate) struct Lease {
    broker: Broker,
    store: kv::Store,
    key: String,
    renewer: JoinHandle<()>,
    released: bool,
}

impl Lease {
    /// Takes `job`'s lease for the run `run`.
    ///
    /// # Errors
    ///
    /// [`NatsError::JobBusy`] where another origin holds it; [`NatsError::Request`] where
    /// the server fails.
    pub(crate) fn take(broker: &Broker, job: &str, run: u64) -> Result<Lease, NatsError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            NatsError::request(format!("{what} the lease of job `{job}` ({BUCKET})"), e)
        };
        let holder = holder_of(run);
        let key = job.to_owned();
        let (store, revision) = broker.block_on(async {
            // The bucket's stream, as `create_key_value` makes it; made here, since that
            // call first reads the account's info, which older servers (2.9) answer in a
            // form the client cannot read.
            let js = broker.js();
            js.get_or_create_stream(stream::Config {
                name: format!("KV_{BUCKET}"),
                subjects: vec![format!("$KV.{BUCKET}.>")],
                max_messages_per_subject: 1,
                max_age: HOLD,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| failed("making the bucket of", &e))?;
            let store = js
                .get_key_value(BUCKET)
                .await
                .map_err(|e| failed("opening the bucket of", &e))?;
            match store.create(&key, holder.clone().into()).await {
                Ok(revision) => Ok((store, revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let other = store.get(&key).await.ok().flatten().map_or_else(
                        || "another origin".to_owned(),
                        |v| String::from_utf8_lossy(&v).into_owned(),
                    );
                    Err(NatsError::JobBusy {
                        job: key.clone(),
                        holder: other,
                    })
                }
                Err(e) => Err(failed("taking", &e)),
            }
        })?;
        let renewer = broker.spawn({
            let (store, key) = (store.clone(), key.clone());
            async move {
                let mut revision = revision;
                loop {
                    tokio::time::sleep(HOLD / 3).await;
                    match store.update(&key, holder.clone().into(), revision).await {
                        Ok(r) => revision = r,
                        // Lost (the server was away longer than HOLD and another run took
                        // it, or it is unreachable now): try again at the next renewal.
                        Err(_) => continue,
                    }
                }
            }
        });
        Ok(Lease {
            broker: broker.clone(),
            store,
            key,
            renewer,
            released: false,
        })
    }

    /// Lets go of the lease: the job takes another run at once.
    pub(crate) fn release(mut self) {
        self.renewer.abort();
        let _ = self.broker.block_on(self.store.delete(&self.key));
        self.released = true;
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("job", &self.key)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if !self.released {
            let (store, key) = (self.store.clone(), std::mem::take(&mut self.key));
            drop(self.broker.spawn(async move {
                let _ = store.delete(&key).await;
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_names_its_run_for_workers_to_read() {
        assert_eq!(
            run_of_holder(&holder_of(0x00ab_cdef_0123)),
            Some(0x00ab_cdef_0123)
        );
        assert_eq!(run_of_holder("another origin"), None);
    }
}
