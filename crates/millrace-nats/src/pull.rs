//! Taking messages off an edge's durable pull consumer, for as long as it takes: the pull
//! subscription is opened again whenever it ends or errs (a server restart, missed
//! heartbeats), so a part pauses while the server is away and resumes when it is back.
//! Opening it again drops what the old subscription had buffered (redelivered only after
//! `ack_wait`), so it is done only when the pull is really lost.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::Message;
use futures_util::StreamExt;

/// A consumer's messages, one at a time, across reconnections.
pub(crate) struct Puller {
    consumer: Consumer<pull::Config>,
    prefetch: usize,
    stream: Option<pull::Stream>,
    what: String,
    complained: Option<Instant>,
    /// Missed heartbeats since the last message.
    silent: u32,
}

impl Puller {
    /// Pulls from `consumer`, up to `prefetch` messages asked for at once.
    pub(crate) fn new(consumer: Consumer<pull::Config>, prefetch: usize, what: String) -> Self {
        Puller {
            consumer,
            prefetch: prefetch.max(1),
            stream: None,
            what,
            complained: None,
            silent: 0,
        }
    }

    /// The next message. Cancel-safe between messages (in a `select!`).
    pub(crate) async fn next(&mut self) -> Message {
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let opened = self
                        .consumer
                        .stream()
                        .max_messages_per_batch(self.prefetch)
                        .heartbeat(Duration::from_secs(5))
                        .expires(Duration::from_secs(30))
                        .messages()
                        .await;
                    match opened {
                        Ok(stream) => self.stream.insert(stream),
                        Err(e) => {
                            self.complain(&e);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    }
                }
            };
            match stream.next().await {
                Some(Ok(message)) => {
                    self.silent = 0;
                    return message;
                }
                // The client checks heartbeats only when polled, so a taker that held back
                // (backpressure) for longer than two heartbeats hears of a "missed" one while
                // messages wait in its buffer; the stream goes on. Only a second one in a row,
                // with no message between, means the pull is really lost.
                Some(Err(e))
                    if e.kind() == MessagesErrorKind::MissingHeartbeat && self.silent == 0 =>
                {
                    self.silent += 1;
                }
                Some(Err(e)) => {
                    self.silent = 0;
                    self.complain(&e);
                    self.stream = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => self.stream = None,
            }
        }
    }

    /// Says on stderr (at most every 5 s) why pulling fails.
    fn complain(&mut self, e: &dyn std::fmt::Display) {
        if self
            .complained
            .map_or(true, |t| t.elapsed() > Duration::from_secs(5))
        {
            eprintln!(
                "millrace-nats: taking from {} failed ({e}); trying again",
                self.what
            );
            self.complained = Some(Instant::now());
        }
    }
}
