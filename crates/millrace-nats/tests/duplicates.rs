//! Duplicates that get past the server's duplicate window (a result published again under
//! another message id, as after a redelivery outside the window) are dropped at the origin:
//! each item once, every copy counted.

mod common;

use common::{server, within};
use futures_util::StreamExt;
use millrace::Pipeline;
use millrace_nats::{Broker, EdgeConfig};

#[test]
fn copies_that_get_past_the_server_are_dropped_at_the_origin() {
    within(120, || {
        let server = server();
        let url = server.url();
        let broker = Broker::connect(&url).unwrap();
        let job = broker.job("dup").unwrap();
        let config = EdgeConfig {
            batch: 32,
            ..EdgeConfig::default()
        };
        let to = job.edge::<u64>("in", config.clone()).unwrap();
        let from = job.edge::<u64>("out", config).unwrap();
        let n = 1000u64;
        let (remote, end) = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..n))
            .unwrap();
        // A stand-in worker that passes every message on twice, under two message ids.
        let forwarder = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let client = async_nats::connect(url).await.unwrap();
                let js = async_nats::jetstream::new(client);
                let consumer: async_nats::jetstream::consumer::PullConsumer = js
                    .get_consumer_from_stream("in-takers", "MILLRACE_dup_in")
                    .await
                    .unwrap();
                let mut messages = consumer.messages().await.unwrap();
                let mut forwarded = 0;
                while forwarded < n {
                    let m = messages.next().await.unwrap().unwrap();
                    let (_run, ids, _items): (u64, Vec<u64>, Vec<u64>) =
                        postcard::from_bytes(&m.payload).unwrap();
                    for copy in 0..2 {
                        let message = async_nats::jetstream::message::PublishMessage::build()
                            .payload(m.payload.clone())
                            .message_id(format!("{}-{copy}", ids[0]));
                        js.send_publish("millrace.dup.out", message)
                            .await
                            .unwrap()
                            .await
                            .unwrap();
                    }
                    m.double_ack().await.unwrap();
                    forwarded += ids.len() as u64;
                }
            });
        });
        let mut got: Vec<u64> = remote.outputs().collect();
        let finished = end.finish().unwrap();
        forwarder.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        let r = &finished.remote;
        assert!(r.is_balanced(), "{r}");
        // The collector pulls in stream order, so it meets each message's second copy before
        // the next message's first: every message but the last is surely dropped once.
        assert!(
            r.duplicates_dropped >= n - 32 && r.duplicates_dropped <= n,
            "{r}"
        );
    });
}
