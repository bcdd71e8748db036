//! A broker edge: the connector between two parts of a pipeline, as a JetStream stream.
//!
//! Each edge is one stream, `MILLRACE_<job>_<edge>` on subject `millrace.<job>.<edge>`:
//! file storage, **work-queue retention** (a message is gone once acked), **bounded**
//! (`max_messages`, `max_bytes`) with **discard new** (a publish to a full edge is refused,
//! and the publisher waits and tries again: backpressure, never a drop); and one durable
//! **pull consumer** that every process taking from the edge shares, with explicit acks,
//! `ack_wait`, `max_deliver` and `max_ack_pending` (how many messages may be out with
//! workers at once). Poison messages go to the edge's dead-letter stream
//! `MILLRACE_<job>_<edge>_DEAD` (subject `millrace.<job>.<edge>.dead`) with their error.
//!
//! The item type is fixed by the edge's type parameter, which must be serde-serializable:
//!
//! ```compile_fail
//! struct NotSerde;
//! fn edge(job: &millrace_nats::Job) {
//!     let _ = job.edge::<NotSerde>("e", millrace_nats::EdgeConfig::default());
//! }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::broker::{check_name, Broker, Job};
use crate::error::NatsError;

/// What an item type must be to cross a broker edge.
pub trait Wire: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Wire for T {}

/// The settings of a broker edge.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// Items per message, at most (a partial batch is sent as soon as nothing more is ready).
    pub batch: usize,
    /// Messages the stream holds at most (unacked backlog).
    pub max_messages: i64,
    /// Bytes the stream holds at most. The server reserves this much of its JetStream
    /// storage for the edge while the stream exists.
    pub max_bytes: i64,
    /// Messages out with workers, not yet acked, at most (per edge, across all workers).
    pub max_ack_pending: i64,
    /// How long a worker may hold a message before the server gives it to another one.
    /// Workers extend it while they still work on a message; it matters when one dies.
    pub ack_wait: Duration,
    /// Deliveries of one message at most; the last one sends it to the dead letters.
    pub max_deliver: i64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            batch: 1024,
            max_messages: 1024,
            max_bytes: 64 << 20,
            max_ack_pending: 64,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
        }
    }
}

/// Names of one edge's stream, subject and consumer.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) stream: String,
    pub(crate) subject: String,
    pub(crate) consumer: String,
    pub(crate) dead_stream: String,
    pub(crate) dead_subject: String,
}

impl Names {
    pub(crate) fn new(job: &str, edge: &str) -> Self {
        Names {
            stream: format!("MILLRACE_{job}_{edge}"),
            subject: format!("millrace.{job}.{edge}"),
            consumer: format!("{edge}-takers"),
            dead_stream: format!("MILLRACE_{job}_{edge}_DEAD"),
            dead_subject: format!("millrace.{job}.{edge}.dead"),
        }
    }
}

/// A broker edge carrying items of type `T` (see the module docs). Cheap to clone.
pub struct Edge<T> {
    pub(crate) raw: Arc<RawEdge>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Edge<T> {
    fn clone(&self) -> Self {
        Edge {
            raw: Arc::clone(&self.raw),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Edge<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Edge")
            .field("stream", &self.raw.names.stream)
            .field("config", &self.raw.config)
            .finish()
    }
}

impl<T> Edge<T> {
    /// The edge's settings.
    pub fn config(&self) -> &EdgeConfig {
        &self.raw.config
    }

    /// The JetStream stream that holds the edge.
    pub fn stream_name(&self) -> &str {
        &self.raw.names.stream
    }
}

/// An edge without its item type: what the parts' network tasks use.
#[derive(Debug)]
pub(crate) struct RawEdge {
    pub(crate) broker: Broker,
    pub(crate) edge: String,
    pub(crate) names: Names,
    pub(crate) config: EdgeConfig,
    pub(crate) consumer: Consumer<pull::Config>,
}

impl Job {
    /// Creates the edge `name` on the server, or checks that the one there has these
    /// settings.
    ///
    /// # Errors
    ///
    /// [`NatsError::BadName`], [`NatsError::ConfigConflict`] when a stream or consumer of
    /// that name exists with other settings, [`NatsError::Request`] when the server fails.
    pub fn edge<T: Wire>(&self, name: &str, config: EdgeConfig) -> Result<Edge<T>, NatsError> {
        check_name(name)?;
        if config.batch == 0 {
            return Err(NatsError::BadName {
                name: name.to_owned(),
                why: "an edge's batch must be at least 1 item",
            });
        }
        let raw = self.raw_edge(name, config)?;
        Ok(Edge {
            raw: Arc::new(raw),
            _items: PhantomData,
        })
    }

    /// The job's response edge, which carries the items that ended in remote parts
    /// (filtered, failed) back to the origin.
    pub(crate) fn response_edge(&self) -> Result<Arc<RawEdge>, NatsError> {
        let config = EdgeConfig {
            // Responses must never be refused: a full response stream would stall workers
            // whose results the origin waits for. The origin's in-flight bound limits them.
            max_messages: -1,
            max_bytes: -1,
            max_ack_pending: 1024,
            ..EdgeConfig::default()
        };
        Ok(Arc::new(self.raw_edge("_responses", config)?))
    }

    fn raw_edge(&self, edge: &str, config: EdgeConfig) -> Result<RawEdge, NatsError> {
        let names = Names::new(&self.name, edge);
        let broker = self.broker.clone();
        let consumer = broker.block_on(ensure(&broker, &names, &config))?;
        Ok(RawEdge {
            broker,
            edge: edge.to_owned(),
            names,
            config,
            consumer,
        })
    }
}

/// Creates (or checks) the edge's stream, dead-letter stream and consumer.
async fn ensure(
    broker: &Broker,
    names: &Names,
    config: &EdgeConfig,
) -> Result<Consumer<pull::Config>, NatsError> {
    let wanted = stream::Config {
        name: names.stream.clone(),
        subjects: vec![names.subject.clone()],
        retention: RetentionPolicy::WorkQueue,
        discard: DiscardPolicy::New,
        max_messages: config.max_messages,
        max_bytes: config.max_bytes,
        storage: StorageType::File,
        // Publishes carry a message id; a publish retried after a lost ack is dropped.
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let stream = ensure_stream(broker, wanted).await?;
    ensure_stream(
        broker,
        stream::Config {
            name: names.dead_stream.clone(),
            subjects: vec![names.dead_subject.clone()],
            max_messages: 100_000,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            ..Default::default()
        },
    )
    .await?;
    let wanted = pull::Config {
        durable_name: Some(names.consumer.clone()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        max_deliver: config.max_deliver,
        max_ack_pending: config.max_ack_pending,
        ..Default::default()
    };
    let consumer = stream
        .get_or_create_consumer(&names.consumer, wanted.clone())
        .await
        .map_err(|e| {
            NatsError::request(
                format!(
                    "creating consumer `{}` on `{}`",
                    names.consumer, names.stream
                ),
                e,
            )
        })?;
    let have = &consumer.cached_info().config;
    let what = || format!("consumer `{}` of stream `{}`", names.consumer, names.stream);
    conflict(what(), "ack_wait", have.ack_wait, wanted.ack_wait)?;
    conflict(what(), "max_deliver", have.max_deliver, wanted.max_deliver)?;
    conflict(
        what(),
        "max_ack_pending",
        have.max_ack_pending,
        wanted.max_ack_pending,
    )?;
    Ok(consumer)
}

fn conflict<V: PartialEq + fmt::Debug>(
    what: String,
    field: &'static str,
    existing: V,
    wanted: V,
) -> Result<(), NatsError> {
    if existing == wanted {
        return Ok(());
    }
    Err(NatsError::ConfigConflict {
        what,
        field,
        existing: format!("{existing:?}"),
        wanted: format!("{wanted:?}"),
    })
}

/// Gets the stream `wanted.name`, checking its settings, or creates it.
async fn ensure_stream(
    broker: &Broker,
    wanted: stream::Config,
) -> Result<stream::Stream, NatsError> {
    let js = broker.js();
    let what = || format!("stream `{}`", wanted.name);
    let mut tries = 0;
    loop {
        tries += 1;
        match js.get_stream(&wanted.name).await {
            Ok(mut stream) => {
                let info = stream
                    .info()
                    .await
                    .map_err(|e| NatsError::request(format!("reading {}", what()), e))?;
                let have = &info.config;
                conflict(what(), "subjects", &have.subjects, &wanted.subjects)?;
                conflict(what(), "retention", have.retention, wanted.retention)?;
                conflict(what(), "discard", have.discard, wanted.discard)?;
                conflict(
                    what(),
                    "max_messages",
                    limit(have.max_messages),
                    limit(wanted.max_messages),
                )?;
                conflict(
                    what(),
                    "max_bytes",
                    limit(have.max_bytes),
                    limit(wanted.max_bytes),
                )?;
                conflict(what(), "storage", have.storage, wanted.storage)?;
                return Ok(stream);
            }
            Err(e) if is_not_found(&e) => match js.create_stream(wanted.clone()).await {
                Ok(stream) => return Ok(stream),
                Err(e) if e.to_string().contains("insufficient storage") => {
                    return Err(NatsError::request(
                        format!("creating {}", what()),
                        format!(
                            "{e}: the server reserves each stream's max_bytes; give the edge a \
                             smaller max_bytes, delete streams of old jobs, or raise the \
                             server's max_file_store"
                        ),
                    ))
                }
                // Another process may have created it meanwhile: look again.
                Err(e) if tries >= 3 => {
                    return Err(NatsError::request(format!("creating {}", what()), e))
                }
                Err(_) => continue,
            },
            Err(e) => return Err(NatsError::request(format!("looking up {}", what()), e)),
        }
    }
}

/// A stream limit as the server keeps it: 0 (unset) and negative mean none, written -1.
fn limit(v: i64) -> i64 {
    if v <= 0 {
        -1
    } else {
        v
    }
}

fn is_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::context::GetStreamErrorKind as K;
    match e.kind() {
        K::JetStream(js) => js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND,
        _ => false,
    }
}
