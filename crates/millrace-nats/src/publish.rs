//! Publishing to a stream until the server has it: every publish awaits the server's ack,
//! carries a message id (so a publish retried after a lost ack is dropped by the server's
//! duplicate window), and is retried with backoff while the edge is full (discard new: this
//! is how a full edge slows its producer) or the server is away (a restart). Nothing is
//! dropped; a long wait is said on stderr.

use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

use crate::broker::Broker;

/// The header of a dead letter that says why it is one.
pub const ERROR_HEADER: &str = "Millrace-Error";

/// The header of a batch that carries its job's fingerprint (see
/// [`Job::fingerprint`](crate::Job::fingerprint)).
pub const PART_HEADER: &str = "Millrace-Part";

/// The headers of a batch of a job with `fingerprint`.
pub(crate) fn part_header(fingerprint: Option<&str>) -> Vec<(&'static str, &str)> {
    fingerprint.map(|f| (PART_HEADER, f)).into_iter().collect()
}

/// Publishes `payload` to `subject` with message id `msg_id` and `headers`, until the
/// server acks it.
pub(crate) async fn publish_until_acked(
    broker: &Broker,
    subject: &str,
    msg_id: &str,
    payload: Bytes,
    headers: &[(&'static str, &str)],
) {
    let mut wait = Duration::from_millis(1);
    let mut since = Instant::now();
    loop {
        let mut message = PublishMessage::build()
            .payload(payload.clone())
            .message_id(msg_id);
        for &(name, value) in headers {
            message = message.header(name, value);
        }
        let error = match broker.js().send_publish(subject.to_owned(), message).await {
            Ok(ack) => match ack.await {
                Ok(_) => return,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if since.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "millrace-nats: publishing to `{subject}` on {} still fails ({error}); trying \
                 again (the edge is full, or the server is away)",
                broker.url()
            );
            since = Instant::now();
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(250));
    }
}
