//! End to end through broker edges, in one process: the same outputs and accounting as the
//! same pipeline in memory, and clear errors for a bad setup.

mod common;

use std::time::Duration;

use common::{server, within};
use millrace::{ItemId, Pipeline, PipelineBuilder, Stage};
use millrace_nats::{Broker, EdgeConfig, NatsError, RemoteOutcome};

fn small_edges() -> EdgeConfig {
    EdgeConfig {
        batch: 64,
        max_messages: 16,
        max_bytes: 8 << 20,
        ack_wait: Duration::from_secs(5),
        ..EdgeConfig::default()
    }
}

/// The stages the worker runs, and the in-memory reference runs after the same front.
fn remote_stages(b: PipelineBuilder<u64>) -> PipelineBuilder<(u64, u64)> {
    b.stage(Stage::map("square", |x: u64| (x, x * x)).workers(2))
        .filter("no-sevens", |&(x, _): &(u64, u64)| x % 7 != 0)
        .try_map("check", |&(x, y): &(u64, u64)| {
            if x % 100 == 13 {
                Err(format!("unlucky {x}"))
            } else {
                Ok((x, y))
            }
        })
}

#[test]
fn a_pipeline_through_a_worker_gives_what_it_gives_in_memory() {
    within(120, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let job = broker.job("e2e").unwrap();
        let to = job.edge::<u64>("in", small_edges()).unwrap();
        let from = job.edge::<(u64, u64)>("out", small_edges()).unwrap();
        let worker = job
            .worker(&to, &from, remote_stages)
            .unwrap()
            .spawn()
            .unwrap();
        let n = 5_000u64;
        let (remote, end) = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..n).filter("even-hundreds-out", |x| x % 200 != 0))
            .unwrap();
        let mut got: Vec<(ItemId, RemoteOutcome<(u64, u64)>)> = remote.collect();
        let finished = end.finish().unwrap();
        worker.stop();
        let worker = worker.join().unwrap();

        // In memory, the same stages.
        let front = Pipeline::source(0..n).filter("even-hundreds-out", |x| x % 200 != 0);
        let mut expected: Vec<(u64, u64)> = remote_stages(front).collect().run().unwrap().output;
        expected.sort_unstable();

        let mut ids: Vec<ItemId> = got.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), got.len(), "each item once");
        // Each outcome comes back with the item's id at the origin: the source's x is #x.
        for (id, outcome) in &got {
            match outcome {
                RemoteOutcome::Output((x, _)) => assert_eq!(id.0, *x),
                RemoteOutcome::Filtered { .. } => assert_eq!(id.0 % 7, 0),
                RemoteOutcome::Failed { error, .. } => {
                    assert_eq!(error, &format!("unlucky {}", id.0));
                }
            }
        }
        got.sort_by_key(|(id, _)| *id);
        let mut outputs: Vec<(u64, u64)> = got
            .iter()
            .filter_map(|(_, o)| match o {
                RemoteOutcome::Output(v) => Some(*v),
                _ => None,
            })
            .collect();
        outputs.sort_unstable();
        assert_eq!(outputs, expected);

        let remote = &finished.remote;
        assert!(remote.is_balanced(), "{remote}");
        assert_eq!(remote.published, n - n.div_ceil(200));
        assert_eq!(remote.delivered, expected.len() as u64);
        let sevens = (0..n).filter(|x| x % 200 != 0 && x % 7 == 0).count() as u64;
        let unlucky = (0..n)
            .filter(|x| x % 200 != 0 && x % 7 != 0 && x % 100 == 13)
            .count() as u64;
        assert_eq!(remote.filtered.get("no-sevens"), Some(&sevens));
        assert_eq!(remote.failed.get("check"), Some(&unlucky));
        assert!(remote.errors.iter().all(|(_, e)| e.contains("unlucky")));
        assert!(finished.front.is_balanced());
        assert_eq!(finished.front.delivered(), remote.published);
        assert!(worker.pipeline.is_balanced());
        assert_eq!(
            worker.pipeline.stage("square").unwrap().tally.items_in,
            remote.published
        );
    });
}

#[test]
fn an_unreachable_server_is_named_with_what_to_check() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("nats://bob:s3cret@127.0.0.1:{port}");
    let e = within(60, move || Broker::connect(&url).unwrap_err());
    assert!(matches!(e, NatsError::Unreachable { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&format!("nats://127.0.0.1:{port}")), "{text}");
    assert!(text.contains("nats-server is running"), "{text}");
    assert!(
        !text.contains("s3cret"),
        "the password is never printed: {text}"
    );
}

#[test]
fn an_old_server_is_warned_about() {
    within(60, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let old = broker.server_version().starts_with("2.9");
        assert_eq!(
            !broker.warnings().is_empty(),
            old,
            "{:?}",
            broker.warnings()
        );
    });
}

#[test]
fn an_edge_whose_stream_exists_with_other_settings_is_a_conflict() {
    within(60, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let job = broker.job("conflict").unwrap();
        job.edge::<u64>("e", EdgeConfig::default()).unwrap();
        let e = job
            .edge::<u64>(
                "e",
                EdgeConfig {
                    max_messages: 7,
                    ..EdgeConfig::default()
                },
            )
            .unwrap_err();
        assert!(matches!(e, NatsError::ConfigConflict { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("MILLRACE_conflict_e"), "{text}");
        assert!(text.contains("max_messages"), "{text}");
    });
}

#[test]
fn a_message_that_cannot_be_decoded_goes_to_the_dead_letters_and_its_items_fail() {
    within(120, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let job = broker.job("dead").unwrap();
        // The origin sends numbers; the worker (wrongly) expects text on the same edge.
        let to_numbers = job.edge::<u64>("in", small_edges()).unwrap();
        let to_text = job.edge::<String>("in", small_edges()).unwrap();
        let from = job.edge::<String>("out", small_edges()).unwrap();
        let worker = job
            .worker(&to_text, &from, |b| {
                b.map("shout", |s: String| s.to_uppercase())
            })
            .unwrap()
            .spawn()
            .unwrap();
        // Each number's varint reads as a string length far past the message's end.
        let n = 100u64;
        let (remote, end) = job
            .origin(&to_numbers, &from)
            .unwrap()
            .start(Pipeline::source(0..n).map("big", |x| 1_000_000 + x))
            .unwrap();
        let outcomes: Vec<_> = remote.collect();
        let finished = end.finish().unwrap();
        worker.stop();
        let worker = worker.join().unwrap();
        assert_eq!(outcomes.len() as u64, n);
        assert!(outcomes.iter().all(
            |(_, o)| matches!(o, RemoteOutcome::Failed { stage, .. } if stage == "broker edge in")
        ));
        let r = &finished.remote;
        assert!(r.is_balanced(), "{r}");
        assert_eq!(r.failed.get("broker edge in"), Some(&n));
        assert!(r.errors[0].1.contains("cannot decode"), "{r}");
        assert!(worker.dead_lettered >= 1);
        assert_eq!(worker.messages, 0);
    });
}

#[test]
fn a_server_without_jetstream_is_named_with_how_to_enable_it() {
    within(60, || {
        let server = common::LocalServer::start_with(&[]).expect("start nats-server");
        let e = Broker::connect(&server.url()).unwrap_err();
        assert!(matches!(e, NatsError::JetStreamDisabled { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&server.url()) && text.contains("-js"),
            "{text}"
        );
    });
}

#[test]
fn refused_credentials_are_an_error_that_never_shows_the_password() {
    within(60, || {
        let server = common::LocalServer::start_with(&["-js", "--user", "bob", "--pass", "right"])
            .expect("start nats-server");
        let config = |password: &str| millrace_nats::BrokerConfig {
            credentials: millrace_nats::Credentials::UserPassword("bob".into(), password.into()),
            ..millrace_nats::BrokerConfig::new(&server.url())
        };
        let e = Broker::connect_with(config("wr0ng-s3cret")).unwrap_err();
        assert!(matches!(e, NatsError::Unauthorized { .. }), "{e:?}");
        assert!(!e.to_string().contains("wr0ng-s3cret"), "{e}");
        assert!(!format!("{e:?}").contains("wr0ng-s3cret"), "{e:?}");
        Broker::connect_with(config("right")).expect("the right password is accepted");
    });
}

#[test]
fn a_full_edge_slows_the_producer_and_drops_nothing() {
    within(120, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let job = broker.job("full").unwrap();
        // Two messages of one item fill the edge; the worker takes its time.
        let tiny = EdgeConfig {
            batch: 1,
            max_messages: 2,
            max_ack_pending: 1,
            ..small_edges()
        };
        let to = job.edge::<u64>("in", tiny.clone()).unwrap();
        let from = job.edge::<u64>("out", tiny).unwrap();
        let worker = job
            .worker(&to, &from, |b| {
                b.map("slow", |x: u64| {
                    std::thread::sleep(Duration::from_millis(2));
                    x + 1
                })
            })
            .unwrap()
            .spawn()
            .unwrap();
        let n = 150u64;
        let (remote, end) = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..n))
            .unwrap();
        let mut got: Vec<u64> = remote.outputs().collect();
        let finished = end.finish().unwrap();
        worker.stop();
        worker.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, (1..=n).collect::<Vec<_>>());
        assert!(finished.remote.is_balanced(), "{}", finished.remote);
    });
}

#[test]
fn a_second_origin_on_a_job_with_a_run_going_is_refused_until_that_run_ends() {
    // Two origins on one job used to share its consumers: each dropped half the other's
    // results as stale, and neither run ever ended.
    within(120, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let job = broker.job("one-at-a-time").unwrap();
        let to = job.edge::<u64>("in", small_edges()).unwrap();
        let from = job.edge::<u64>("out", small_edges()).unwrap();
        let worker = job
            .worker(&to, &from, |b| b.map("inc", |x: u64| x + 1))
            .unwrap()
            .spawn()
            .unwrap();
        let (remote, end) = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..1000u64))
            .unwrap();
        let second = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..10u64));
        match second {
            Err(NatsError::JobBusy { job, holder }) => {
                assert_eq!(job, "one-at-a-time");
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            Err(other) => panic!("expected JobBusy, got {other}"),
            Ok(_) => panic!("a second origin started on a job with a run going"),
        }
        let sum: u64 = remote
            .map(|(_, o)| match o {
                RemoteOutcome::Output(y) => y,
                _ => 0,
            })
            .sum();
        assert_eq!(sum, (1..=1000u64).sum::<u64>());
        assert!(end.finish().unwrap().remote.is_balanced());
        // Once that run has finished, the job takes another.
        let (remote, end) = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..10u64))
            .unwrap();
        assert_eq!(remote.count(), 10);
        end.finish().unwrap();
        worker.stop();
        worker.join().unwrap();
    });
}

#[test]
fn a_worker_whose_fingerprint_differs_gives_the_batch_back_and_stops() {
    within(120, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let origin_job = broker.job("parts").unwrap().fingerprint("factor-3");
        let to = origin_job.edge::<u64>("in", small_edges()).unwrap();
        let from = origin_job.edge::<u64>("out", small_edges()).unwrap();
        let times = |factor: u64| {
            move |b: PipelineBuilder<u64>| b.stage(Stage::map("times", move |x: u64| x * factor))
        };
        // A worker of the same job, started with another idea of what it does.
        let wrong = broker
            .job("parts")
            .unwrap()
            .fingerprint("factor-4")
            .worker(&to, &from, times(4))
            .unwrap()
            .spawn()
            .unwrap();
        let n = 500u64;
        let (remote, end) = origin_job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..n))
            .unwrap();
        let collected = std::thread::spawn(move || remote.outputs().collect::<Vec<u64>>());
        while !wrong.stopped_itself() {
            std::thread::sleep(Duration::from_millis(10));
        }
        match wrong.join() {
            Err(NatsError::PartMismatch {
                job, ours, theirs, ..
            }) => assert_eq!((&*job, &*ours, &*theirs), ("parts", "factor-4", "factor-3")),
            other => panic!("expected a part mismatch, got {other:?}"),
        }
        // One that agrees takes everything, the batch given back included.
        let right = origin_job
            .worker(&to, &from, times(3))
            .unwrap()
            .spawn()
            .unwrap();
        let mut outputs = collected.join().unwrap();
        let finished = end.finish().unwrap();
        right.stop();
        right.join().unwrap();
        outputs.sort_unstable();
        assert_eq!(outputs, (0..n).map(|x| x * 3).collect::<Vec<_>>());
        assert!(finished.remote.is_balanced(), "{}", finished.remote);
    });
}

/// The messages on `edge`'s stream now.
fn messages_on<T>(server_url: &str, edge: &millrace_nats::Edge<T>) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(server_url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(edge.stream_name()).await.unwrap();
        stream.info().await.unwrap().state.messages
    })
}

#[test]
fn a_worker_drops_an_interrupted_run_s_leftovers_unprocessed() {
    // They used to be processed before the next run's items, for results nobody takes.
    within(120, || {
        let server = server();
        let broker = Broker::connect(&server.url()).unwrap();
        let job = broker.job("leftovers").unwrap();
        let to = job.edge::<u64>("in", small_edges()).unwrap();
        let from = job.edge::<u64>("out", small_edges()).unwrap();
        // A run with no worker, given up once some of its batches are on the edge.
        let (remote, end) = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..640u64))
            .unwrap();
        while messages_on(&server.url(), &to) < 3 {
            std::thread::sleep(Duration::from_millis(10));
        }
        end.stopper().give_up();
        drop(remote);
        end.finish().unwrap();
        let left = messages_on(&server.url(), &to);
        assert!(left >= 3);

        // The next run, and a worker: it takes only the next run's items.
        let n = 100u64;
        let (remote, end) = job
            .origin(&to, &from)
            .unwrap()
            .start(Pipeline::source(0..n))
            .unwrap();
        let worker = job
            .worker(&to, &from, |b| b.map("inc", |x: u64| x + 1))
            .unwrap()
            .spawn()
            .unwrap();
        let mut outputs: Vec<u64> = remote.outputs().collect();
        let finished = end.finish().unwrap();
        worker.stop();
        let report = worker.join().unwrap();
        outputs.sort_unstable();
        assert_eq!(outputs, (1..=n).collect::<Vec<_>>());
        assert!(finished.remote.is_balanced(), "{}", finished.remote);
        assert_eq!(report.stale, left, "every leftover message dropped");
        assert_eq!(report.pipeline.items_in(), n, "none of them processed");
    });
}
