//! Feature `tracing`: a subscriber sees the run's span under the caller's own, a span per
//! thread under it, sampled batch spans under those, and the run's events.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::within;
use millrace::{ErrorPolicy, Pipeline, Stage};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// What the subscriber saw: each span's name with its parent's, and each event's message.
#[derive(Default)]
struct Seen {
    spans: Vec<(String, Option<String>)>,
    events: Vec<String>,
}

struct Recorder(Arc<Mutex<Seen>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("the span just made");
        let parent = span.parent().map(|p| p.name().to_owned());
        self.0
            .lock()
            .unwrap()
            .spans
            .push((attrs.metadata().name().to_owned(), parent));
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().events.push(message.0);
    }
}

#[test]
fn a_subscriber_sees_the_run_under_its_own_span_with_threads_batches_and_events() {
    let seen = within(60, || {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let subscriber = tracing_subscriber::registry().with(Recorder(Arc::clone(&seen)));
        tracing::subscriber::with_default(subscriber, || {
            let _job = tracing::info_span!("user.job").entered();
            Pipeline::source(0..1000u64)
                .stage(Stage::try_map("check", |&x: &u64| {
                    if x == 7 {
                        Err("seven")
                    } else {
                        Ok(x)
                    }
                }))
                .stage(Stage::map("double", |x: u64| 2 * x).workers(2))
                .on_error(ErrorPolicy::Skip)
                .default_batch(4)
                .wedge_timeout(Duration::from_secs(60), millrace::WedgePolicy::Report)
                .for_each(|_| {})
                .run()
                .expect("the run completes");
        });
        Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap()
    });
    let parent_of = |name: &str| -> Vec<Option<&str>> {
        seen.spans
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, p)| p.as_deref())
            .collect()
    };
    assert_eq!(parent_of("millrace.run"), [Some("user.job")]);
    let threads = parent_of("millrace.thread");
    // source, check, 2 × double, sink, controller (for the wedge watch)
    assert!(threads.len() >= 6, "{threads:?}");
    assert!(
        threads.iter().all(|p| *p == Some("millrace.run")),
        "{threads:?}"
    );
    let batches = parent_of("millrace.batch");
    assert!(!batches.is_empty(), "no sampled batch");
    assert!(
        batches.iter().all(|p| *p == Some("millrace.thread")),
        "{batches:?}"
    );
    // 250 batches of 4 through `check`, on one thread: one in 64 is sampled.
    let sampled = batches.len() as u64;
    assert!(
        sampled < 2 * 250 / millrace::trace::BATCH_SAMPLE + 10,
        "{sampled} sampled"
    );
    assert!(
        seen.events.iter().any(|e| e == "millrace: item failed"),
        "{:?}",
        seen.events
    );
    assert!(
        seen.events.iter().any(|e| e == "millrace: run ended"),
        "{:?}",
        seen.events
    );
}
