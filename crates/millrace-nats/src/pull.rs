//! Taking messages off an edge's durable pull consumer, one at a time and only when the
//! taker has room for it: each pull asks the server for one message (waiting up to 5 s for
//! one to arrive, then asking again). So no message waits unseen in a client-side buffer
//! while its `ack_wait` runs out: every message a part has been given is one it holds in
//! view (and keeps alive, or acks). Pulls that fail (the server away, a restart) are tried
//! again after a pause; a part pauses while the server is away and resumes when it is back.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::Message;
use futures_util::StreamExt;

/// A consumer's messages, one at a time, across reconnections.
pub(crate) struct Puller {
    consumer: Consumer<pull::Config>,
    /// The open pull request (kept across a cancelled `next`, so no message is lost).
    batch: Option<pull::Batch>,
    what: String,
    complained: Option<Instant>,
}

impl Puller {
    /// Pulls from `consumer`; `what` names it in complaints.
    pub(crate) fn new(consumer: Consumer<pull::Config>, what: String) -> Self {
        Puller {
            consumer,
            batch: None,
            what,
            complained: None,
        }
    }

    /// The next message. With `ask` false, no new request goes out: only a message already
    /// asked for can come (a caller without room takes in what is on its way, and no more).
    pub(crate) async fn next(&mut self, ask: bool) -> Message {
        loop {
            if let Some(batch) = &mut self.batch {
                match batch.next().await {
                    Some(Ok(message)) => return message,
                    Some(Err(e)) => {
                        self.batch = None;
                        self.complain(&e);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    // The request expired with nothing, or its one message was taken.
                    None => self.batch = None,
                }
                continue;
            }
            if !ask {
                std::future::pending::<()>().await;
            }
            let asked = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(5))
                .messages()
                .await;
            match asked {
                Ok(batch) => self.batch = Some(batch),
                Err(e) => {
                    self.complain(&e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
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
