//! Scraping `/metrics` over HTTP while a real pipeline runs, and parsing what comes back
//! with an OpenMetrics parser: names, types, labels, counters that only grow, and final
//! totals equal to the final report.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use millrace::{Pipeline, Report, Running, Stage};
use millrace_prometheus::{MetricsServer, CONTENT_TYPE};
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// Runs `f` on a thread of its own; panics if it has not finished within `secs` seconds.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("timed out after {secs} s (a hang?)"),
    }
}

/// Waits until `cond` holds, checking every millisecond; panics after `secs` seconds.
fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A ten-item pipeline, running: something for a server to watch.
fn tiny_run() -> Running<()> {
    Pipeline::source(0..10u64)
        .map("id", |x| x)
        .for_each(|_| {})
        .spawn()
        .expect("the pipeline starts")
}

fn scrape(server: &MetricsServer) -> Exposition {
    let url = format!("http://{}/metrics", server.local_addr());
    let response = ureq::get(&url).call().expect("the scrape answers");
    assert_eq!(response.content_type(), "application/openmetrics-text");
    assert!(CONTENT_TYPE.starts_with(response.content_type()));
    let text = response.into_string().expect("a text body");
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("not valid OpenMetrics: {e:?}\n{text}"))
}

/// Every sample of a counter family: (stage, extra label value) → total.
fn counter(exposition: &Exposition, family: &str) -> HashMap<(String, String), f64> {
    let f = &exposition.families[family];
    assert_eq!(f.family_type, OpenMetricsType::Counter, "{family}");
    f.iter_samples()
        .map(|s| {
            let labels = s.get_labelset().expect("labels");
            assert_eq!(labels.get_label_value("pipeline"), Some("test"), "{family}");
            let stage = labels
                .get_label_value("stage")
                .expect("a stage label")
                .to_owned();
            let extra = labels
                .iter()
                .find(|(k, _)| *k != "pipeline" && *k != "stage")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let OpenMetricsValue::Counter(c) = &s.value else {
                panic!("{family}: not a counter value")
            };
            ((stage, extra), c.value.as_f64())
        })
        .collect()
}

fn gauge(exposition: &Exposition, family: &str, stage: &str) -> f64 {
    let f = &exposition.families[family];
    assert_eq!(f.family_type, OpenMetricsType::Gauge, "{family}");
    f.iter_samples()
        .find(|s| s.get_labelset().unwrap().get_label_value("stage") == Some(stage))
        .map(|s| match &s.value {
            OpenMetricsValue::Gauge(n) => n.as_f64(),
            _ => panic!("{family}: not a gauge value"),
        })
        .unwrap_or_else(|| panic!("{family} has no stage {stage}"))
}

const COUNTERS: [&str; 9] = [
    "millrace_stage_items_in",
    "millrace_stage_items_out",
    "millrace_stage_items_filtered",
    "millrace_stage_items_failed",
    "millrace_stage_items_cancelled",
    "millrace_stage_retries",
    "millrace_stage_busy_seconds",
    "millrace_stage_idle_seconds",
    "millrace_stage_blocked_seconds",
];

fn check_shape(e: &Exposition) {
    for family in COUNTERS {
        let samples = counter(e, family);
        let stages: Vec<&str> = samples.keys().map(|(s, _)| s.as_str()).collect();
        for stage in ["source", "parse", "square", "sink"] {
            assert!(
                stages.contains(&stage),
                "{family} lacks {stage}: {stages:?}"
            );
        }
    }
    for family in [
        "millrace_stage_workers",
        "millrace_stage_queue_fill_ratio",
        "millrace_stage_in_flight",
        "millrace_stage_queue_capacity_batches",
    ] {
        assert_eq!(
            e.families[family].family_type,
            OpenMetricsType::Gauge,
            "{family}"
        );
    }
    assert_eq!(gauge(e, "millrace_stage_workers", "square"), 2.0);
    let fill = gauge(e, "millrace_stage_queue_fill_ratio", "square");
    assert!((0.0..=1.0).contains(&fill), "{fill}");
    let latency = &e.families["millrace_stage_latency_seconds"];
    assert_eq!(latency.family_type, OpenMetricsType::Histogram);
    assert_eq!(
        e.families["millrace_stage_errors"].family_type,
        OpenMetricsType::Counter
    );
    assert_eq!(
        e.families["millrace_stage_scaling_decisions"].family_type,
        OpenMetricsType::Counter
    );
    assert_eq!(
        e.families["millrace_stage_wedges"].family_type,
        OpenMetricsType::Counter
    );
}

fn check_grew(before: &Exposition, after: &Exposition) {
    for family in COUNTERS.iter().chain(&["millrace_stage_errors"]) {
        let (a, b) = (counter(before, family), counter(after, family));
        for (key, old) in &a {
            let new = b
                .get(key)
                .unwrap_or_else(|| panic!("{family}{key:?} went away"));
            assert!(new >= old, "{family}{key:?} went down: {old} → {new}");
        }
    }
}

fn check_totals(e: &Exposition, report: &Report) {
    let parts = std::iter::once(report.source())
        .chain(report.stages())
        .chain(std::iter::once(report.sink()));
    for part in parts {
        let key = (part.name.clone(), String::new());
        let t = &part.tally;
        let expect = [
            ("millrace_stage_items_in", t.items_in),
            ("millrace_stage_items_out", t.items_out),
            ("millrace_stage_items_filtered", t.filtered),
            ("millrace_stage_items_failed", t.failed),
            ("millrace_stage_items_cancelled", t.cancelled),
        ];
        for (family, value) in expect {
            assert_eq!(
                counter(e, family)[&key],
                value as f64,
                "{family} of {}",
                part.name
            );
        }
        let busy = counter(e, "millrace_stage_busy_seconds")[&key];
        assert!(
            (busy - t.busy.as_secs_f64()).abs() < 1e-6,
            "{busy} vs {:?}",
            t.busy
        );
    }
    let errors = counter(e, "millrace_stage_errors");
    assert_eq!(
        errors[&("parse".to_owned(), "failed".to_owned())],
        report.failed() as f64
    );
    let latency = &e.families["millrace_stage_latency_seconds"];
    let sample = latency
        .iter_samples()
        .next()
        .expect("one latency histogram");
    let OpenMetricsValue::Histogram(h) = &sample.value else {
        panic!("not a histogram")
    };
    assert_eq!(h.count, Some(report.latency().samples));
    let inf = h.buckets.last().expect("buckets");
    assert_eq!(inf.count.as_f64(), report.latency().samples as f64);
}

#[test]
fn a_scrape_during_a_run_parses_grows_and_ends_on_the_reports_totals() {
    within(120, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(64);
        let running = builder
            .stage(Stage::try_map("parse", |&x: &u64| {
                if x % 10 == 0 {
                    Err("a round number")
                } else {
                    Ok(x)
                }
            }))
            .stage(Stage::map("square", |x: u64| x * x).workers(2))
            .default_batch(8)
            .timeline(Some(Duration::from_millis(5)))
            .for_each(|_| {})
            .spawn()
            .expect("the pipeline starts");
        let handle = running.handle();
        let server = MetricsServer::serve("127.0.0.1:0", "test", running.handle())
            .expect("the server listens");
        let arrived = |n: u64| {
            let handle = handle.clone();
            move || handle.snapshot().sink().tally.items_in >= n
        };

        for x in 0..100 {
            submitter.submit(x).expect("submitted");
        }
        eventually(30, "the first 90 items at the sink", arrived(90));
        let first = scrape(&server);
        check_shape(&first);

        for x in 100..300 {
            submitter.submit(x).expect("submitted");
        }
        eventually(30, "270 items at the sink", arrived(270));
        let second = scrape(&server);
        check_shape(&second);
        check_grew(&first, &second);

        drop(submitter);
        let finished = running.join().expect("the run completes");
        server.finish(&finished.report);
        let last = scrape(&server);
        check_grew(&second, &last);
        check_totals(&last, &finished.report);
        assert_eq!(finished.report.delivered(), 270);
    });
}

#[test]
fn a_path_other_than_metrics_is_not_found() {
    within(60, || {
        let running = tiny_run();
        let server = MetricsServer::serve("127.0.0.1:0", "test", running.handle()).unwrap();
        let url = format!("http://{}/", server.local_addr());
        match ureq::get(&url).call() {
            Err(ureq::Error::Status(404, _)) => {}
            other => panic!("expected a 404, got {other:?}"),
        }
        running.join().expect("the run completes");
    });
}

#[test]
fn an_address_in_use_is_an_error_that_names_it() {
    within(60, || {
        let running = tiny_run();
        let first = MetricsServer::serve("127.0.0.1:0", "a", running.handle()).unwrap();
        let addr = first.local_addr();
        let err = MetricsServer::serve(addr, "b", running.handle()).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        // The OS's kind, for a caller to match on (every listen error read
        // `AddrNotAvailable`).
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        running.join().expect("the run completes");
    });
}

#[test]
fn an_address_that_does_not_resolve_is_an_error_that_names_it() {
    for bad in [
        "127.0.0.1:notaport",
        "no-such-host.invalid:9090",
        "nonsense",
    ] {
        let err = MetricsServer::bind(bad, "a").expect_err("no such address");
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn a_bound_server_answers_503_until_it_watches_a_pipeline() {
    within(60, || {
        let server = MetricsServer::bind("127.0.0.1:0", "test").expect("the server listens");
        let url = format!("http://{}/metrics", server.local_addr());
        match ureq::get(&url).call() {
            Err(ureq::Error::Status(503, _)) => {}
            other => panic!("expected a 503, got {other:?}"),
        }
        let running = tiny_run();
        server.watch(running.handle());
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        assert!(text.contains(r#"stage="id""#), "{text}");
        running.join().expect("the run completes");
    });
}

#[test]
fn scaling_decisions_and_worker_counts_match_the_report() {
    let report = within(120, || {
        Pipeline::source(0..20_000u64)
            .stage(Stage::map("cheap", |x: u64| x))
            .stage(Stage::map("dear", |x: u64| {
                (0..2_000u64).fold(x, |a, k| a.wrapping_mul(31).wrapping_add(k))
            }))
            .autoscale()
            .fuse_auto(false)
            .cpu_budget(3)
            .autoscale_interval(Duration::from_millis(5))
            .default_batch(8)
            .for_each(|_| {})
            .run()
            .expect("the run completes")
            .report
    });
    let text = millrace_prometheus::render("test", &report);
    let e = openmetrics_parser::openmetrics::parse_openmetrics(&text).expect("valid OpenMetrics");
    let decisions = counter(&e, "millrace_stage_scaling_decisions");
    let total: f64 = decisions.values().sum();
    assert_eq!(total, report.decisions().count() as f64, "{text}");
    for (_, d) in report.decisions() {
        let direction = if d.to > d.from { "up" } else { "down" };
        let key = (report.stages()[d.stage].name.clone(), direction.to_owned());
        assert!(decisions[&key] >= 1.0, "{key:?} not counted");
    }
    for stage in report.stages() {
        assert_eq!(
            gauge(&e, "millrace_stage_workers", &stage.name),
            stage.workers as f64
        );
    }
}

#[test]
fn names_with_quotes_backslashes_and_newlines_are_escaped_and_the_scrape_parses() {
    // One `"` in a name used to make the whole scrape unparseable.
    let stage = "st\"a\\ge\nname";
    let report = within(60, move || {
        Pipeline::source(0..100u64)
            .map(stage, |x| x)
            .for_each(|_| {})
            .run()
            .expect("the run completes")
            .report
    });
    let text = millrace_prometheus::render("pi\"pe\\line", &report);
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|err| panic!("not valid OpenMetrics: {err:?}\n{text}"));
    assert!(
        text.contains(
            r#"millrace_stage_items_in_total{pipeline="pi\"pe\\line",stage="st\"a\\ge\nname"} 100"#
        ),
        "{text}"
    );
}
