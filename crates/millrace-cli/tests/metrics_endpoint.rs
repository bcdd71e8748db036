//! `--metrics-addr`: the run's counters at /metrics while it runs, for every stage, with the
//! same counts the final report has; an address that cannot be served is a usage error.

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{line_by_line, millrace, pipeline_file, wait_or_kill};

/// Reads lines from stdin, parses and squares them, and counts them.
const STDIN_PIPELINE: &str = "[pipeline]\nname = \"metered\"\n\
     [source]\nkind = \"lines\"\npath = \"-\"\n\
     [[stage]]\nname = \"parse\"\nkind = \"parse\"\n\
     [[stage]]\nname = \"square\"\nkind = \"square\"\n[sink]\nkind = \"count\"\n";

/// The value of the sample `name{pipeline="metered",stage="STAGE"}` in `text`.
fn sample(text: &str, name: &str, stage: &str) -> Option<f64> {
    let key = format!("{name}{{pipeline=\"metered\",stage=\"{stage}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

/// The metrics text; `None` while the endpoint says the pipeline has not started (503).
fn scrape(url: &str) -> Option<String> {
    match ureq::get(url).call() {
        Ok(response) => Some(response.into_string().expect("text")),
        Err(ureq::Error::Status(503, _)) => None,
        Err(e) => panic!("the endpoint failed: {e}"),
    }
}

/// Scrapes until the sink has taken `n` items; panics after a minute.
fn scrape_until(url: &str, n: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(url).unwrap_or_default();
        if sample(&text, "millrace_stage_items_in_total", "sink") == Some(n) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the sink never reached {n}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_endpoint_serves_every_stage_while_the_run_goes() {
    let (_dir, path) = pipeline_file(STDIN_PIPELINE);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("run")
        .arg(&path)
        .args(["--metrics-addr", "127.0.0.1:0", "--no-live"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace");
    let stderr = line_by_line(child.stderr.take().unwrap());
    let url = loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(60))
            .expect("millrace says where the metrics are");
        if let Some(rest) = line.strip_prefix("millrace: metrics at ") {
            break rest.to_owned();
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let lines: String = (0..100).map(|i| format!("{i}\n")).collect();
    stdin.write_all(lines.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let first = scrape_until(&url, 100.0);
    for stage in ["source", "parse", "square", "sink"] {
        assert!(
            sample(&first, "millrace_stage_items_in_total", stage).is_some(),
            "{stage} missing:\n{first}"
        );
        assert!(sample(&first, "millrace_stage_workers", stage).is_some());
    }
    assert!(first.contains("# TYPE millrace_stage_busy_seconds counter"));
    stdin.write_all(b"100\n101\n").unwrap();
    stdin.flush().unwrap();
    let second = scrape_until(&url, 102.0);
    assert_eq!(
        sample(&second, "millrace_stage_items_in_total", "parse"),
        Some(102.0)
    );
    drop(stdin);
    let status = wait_or_kill(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let report: String = stderr.try_iter().collect::<Vec<_>>().join("\n");
    assert!(report.contains("102"), "{report}");
}

#[test]
fn a_port_chosen_by_the_os_is_printed_even_when_quiet() {
    // `--quiet` hid it, and nothing else tells the port (a new user's docs review).
    millrace()
        .args([
            "run",
            "--n",
            "10",
            "--quiet",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "millrace: metrics at http://127.0.0.1:",
        ));
}

#[test]
fn an_address_that_cannot_be_served_is_a_usage_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    millrace()
        .args(["run", "--n", "10", "--metrics-addr", &addr])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!("--metrics-addr {addr}")));
    millrace()
        .args(["run", "--n", "10", "--metrics-addr", "not an address"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--metrics-addr not an address"));
}
