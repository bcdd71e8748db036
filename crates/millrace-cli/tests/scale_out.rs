//! Scale out over NATS (the `nats` feature): a pipeline file's `connector = "nats"` stages
//! run on `millrace worker` processes, `millrace run` runs the source and sink side and
//! reports the whole pipeline. Each test starts its own `nats-server` (JetStream on, a free
//! port, a temporary store), which stops when the test ends; every process has a timeout.

#![cfg(feature = "nats")]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{millrace, pipeline_file, sigint, wait_or_kill};
use millrace_nats::local_server::LocalServer;

/// How long a worker may take to connect and get ready, or to stop.
const LIMIT: Duration = Duration::from_secs(60);

/// A `millrace` process (a worker, or an origin), its stderr read line by line on a
/// thread of its own.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Worker {
    fn start(file: &Path, stage: &str) -> Worker {
        let file = file.display().to_string();
        Worker::spawn(&["worker", &file, "--stage", stage, "--workers", "2"])
    }

    fn spawn(args: &[&str]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start millrace worker");
        let stderr = child.stderr.take().expect("worker stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Worker {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to [`LIMIT`]) until `count` lines of stderr contain `text`.
    fn wait_for(&mut self, text: &str, count: usize) {
        let deadline = Instant::now() + LIMIT;
        while self.seen.iter().filter(|l| l.contains(text)).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "the worker did not say {text:?} {count} time(s); it said:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Stops it with Ctrl-C and returns everything it said.
    fn stop(mut self) -> String {
        sigint(&self.child);
        let status = wait_or_kill(&mut self.child, LIMIT);
        self.seen.extend(self.lines.try_iter());
        let said = self.seen.join("\n");
        assert!(status.success(), "the worker failed ({status}):\n{said}");
        said
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipeline of four stages whose third, `heavy`, is remote, through `url`.
fn four_stages(url: &str, n: u64) -> String {
    format!(
        r#"
[pipeline]
name = "four"
workers = 1
capacity = 256
url = "{url}"

[source]
kind = "range"
end = {n}

[[stage]]
name = "a"
kind = "square"

[[stage]]
name = "heavy"
kind = "spin"
units = 2
connector = "nats"

[[stage]]
name = "d"
kind = "scale"
factor = 3

[sink]
kind = "sum"
"#
    )
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the pipeline `file` with its remote stage in memory (the reference), and checks
/// that it succeeded.
fn run_in_memory(file: &std::path::Path) -> std::process::Output {
    let in_memory = millrace()
        .args(["run", &file.display().to_string(), "--quiet"])
        .args(["--set", "stage.heavy.connector=memory"])
        .output()
        .expect("run in memory");
    assert!(in_memory.status.success(), "{}", stderr_of(&in_memory));
    in_memory
}

#[test]
fn a_remote_stage_on_a_worker_gives_the_in_memory_sum_and_a_balanced_report() {
    let server = LocalServer::start().expect("start nats-server");
    let n = 3000;
    let (_dir, file) = pipeline_file(&four_stages(&server.url(), n));
    let in_memory = run_in_memory(&file);
    assert!(stdout_of(&in_memory).starts_with("sum: "));

    let mut worker = Worker::start(&file, "heavy");
    worker.wait_for("worker ready", 1);
    let json_path = file.with_file_name("report.json");
    let remote = millrace()
        .args(["run", &file.display().to_string(), "--no-live", "--report"])
        .arg(&json_path)
        .output()
        .expect("run the origin");
    let report = stderr_of(&remote);
    assert!(remote.status.success(), "{report}");
    assert_eq!(stdout_of(&remote), stdout_of(&in_memory), "{report}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("the JSON report"))
            .expect("JSON");
    assert_eq!(json["remote"]["stages"], serde_json::json!(["heavy"]));
    assert_eq!(json["remote"]["published"], n);
    assert_eq!(json["remote"]["delivered"], n);
    assert_eq!(json["remote"]["balanced"], true);
    remote_fields_are_documented(&json["remote"]);
    assert!(
        report.contains("stage(s) `heavy` ran on `millrace worker` processes"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "remote: {n} published, {n} delivered back, 0 filtered, 0 failed (balanced)"
        )),
        "{report}"
    );
    // The back part (after the broker) and the front part each account for every item.
    assert!(
        report.contains("in 3,000 = delivered 3,000 + filtered 0 + failed 0"),
        "{report}"
    );
    assert!(report.contains("3,000 in, 3,000 delivered"), "{report}");

    let said = worker.stop();
    assert!(said.contains("worker stopped"), "{said}");
}

#[test]
fn two_workers_share_the_remote_stage_and_the_sum_is_the_in_memory_one() {
    let server = LocalServer::start().expect("start nats-server");
    let n = 20_000;
    let (_dir, file) = pipeline_file(&four_stages(&server.url(), n));
    let in_memory = run_in_memory(&file);

    let mut first = Worker::start(&file, "heavy");
    let mut second = Worker::start(&file, "heavy");
    first.wait_for("worker ready", 1);
    second.wait_for("worker ready", 1);
    let remote = millrace()
        .args(["run", &file.display().to_string(), "--no-live"])
        .output()
        .expect("run the origin");
    let report = stderr_of(&remote);
    assert!(remote.status.success(), "{report}");
    assert_eq!(stdout_of(&remote), stdout_of(&in_memory), "{report}");
    assert!(
        report.contains(&format!(
            "remote: {n} published, {n} delivered back, 0 filtered, 0 failed (balanced)"
        )),
        "{report}"
    );
    // Between them the workers finished every message the origin published.
    let finished: u64 = [first.stop(), second.stop()]
        .iter()
        .map(|said| messages_finished(said))
        .sum();
    assert!(finished >= n.div_ceil(64), "{finished} messages finished");
}

/// Every field of the JSON report's `remote` object has its row in REPORT_SCHEMA.md
/// (`remote.KEY`, or `.KEY` after another field in a `remote` row), and every documented
/// one is there.
fn remote_fields_are_documented(remote: &serde_json::Value) {
    let schema =
        std::fs::read_to_string(common::repo_root().join("crates/millrace-cli/REPORT_SCHEMA.md"))
            .expect("REPORT_SCHEMA.md");
    let rows: Vec<&str> = schema
        .lines()
        .filter(|l| l.starts_with("| `remote."))
        .map(|l| l.split(" | ").next().unwrap_or(l))
        .collect();
    let keys: Vec<&String> = remote.as_object().expect("an object").keys().collect();
    for key in &keys {
        assert!(
            rows.iter().any(|r| r.contains(&format!("`remote.{key}`"))
                || r.contains(&format!("`.{key}`"))),
            "`remote.{key}` is not in REPORT_SCHEMA.md"
        );
    }
    let documented = rows.iter().flat_map(|r| r.split(", ")).count();
    assert_eq!(
        documented,
        keys.len(),
        "documented: {rows:?}, present: {keys:?}"
    );
}

/// The number in a stopped worker's `worker stopped: N message(s) finished`.
fn messages_finished(said: &str) -> u64 {
    said.lines()
        .find_map(|l| l.split("worker stopped: ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `worker stopped` line in:\n{said}"))
}

#[test]
fn items_that_fail_in_a_remote_stage_are_counted_and_make_the_run_exit_3() {
    let server = LocalServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("numbers.txt");
    std::fs::write(&input, "1\nx\n3\ny\n5\n").expect("write input");
    let text = format!(
        r#"
[pipeline]
name = "parsing"
url = "{}"

[source]
kind = "lines"
path = "{}"

[[stage]]
name = "parse"
kind = "parse"
on_error = "skip"
connector = "nats"

[sink]
kind = "sum"
"#,
        server.url(),
        input.display()
    );
    let file = dir.path().join("parsing.toml");
    std::fs::write(&file, text).expect("write pipeline");
    let in_memory = millrace()
        .args(["run", &file.display().to_string(), "--quiet"])
        .args(["--set", "stage.parse.connector=memory"])
        .output()
        .expect("run in memory");
    assert_eq!(
        in_memory.status.code(),
        Some(3),
        "{}",
        stderr_of(&in_memory)
    );

    let mut worker = Worker::start(&file, "parse");
    worker.wait_for("worker ready", 1);
    let remote = millrace()
        .args(["run", &file.display().to_string(), "--no-live"])
        .output()
        .expect("run the origin");
    let report = stderr_of(&remote);
    assert_eq!(remote.status.code(), Some(3), "{report}");
    assert_eq!(stdout_of(&remote), stdout_of(&in_memory), "{report}");
    assert!(
        report.contains("remote: 5 published, 3 delivered back, 0 filtered, 2 failed (balanced)"),
        "{report}"
    );
    assert!(report.contains("stage `parse`: 2 failed"), "{report}");
    let json_path = dir.path().join("report.json");
    let with_json = millrace()
        .args(["run", &file.display().to_string(), "--quiet", "--report"])
        .arg(&json_path)
        .output()
        .expect("run the origin with a JSON report");
    assert_eq!(with_json.status.code(), Some(3));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("the JSON report"))
            .expect("JSON");
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["remote"]["failed"]["parse"], 2);
    // The run's totals and errors are the whole pipeline's, as in memory: its input is the
    // front part's, and the remote stage's failures are failures.
    let t = &json["totals"];
    assert_eq!(
        (&t["items_in"], &t["delivered"], &t["failed"]),
        (&5.into(), &3.into(), &2.into()),
        "{t}"
    );
    assert_eq!(json["errors"]["total"], 2, "{}", json["errors"]);
    // A remote failure reads as it does in memory, naming its stage and item.
    let sample = &json["errors"]["sample"][0];
    assert_eq!(sample["stage"], "parse", "{sample}");
    let message = sample["message"].as_str().expect("a message");
    assert!(
        message.starts_with(&format!(
            "stage `parse` failed on item {}: ",
            sample["id"].as_str().expect("an id")
        )),
        "{sample}"
    );
    let allowed = millrace()
        .args([
            "run",
            &file.display().to_string(),
            "--quiet",
            "--allow-failures",
        ])
        .output()
        .expect("run the origin again");
    assert!(allowed.status.success(), "{}", stderr_of(&allowed));
    worker.stop();
}

#[test]
fn items_that_fail_before_the_broker_count_in_the_totals_and_make_the_run_exit_3() {
    // They were only in the front part's section: the headline said `failed 0`, and the
    // run exited 0.
    let server = LocalServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("numbers.txt");
    std::fs::write(&input, "1\nx\n3\ny\n5\n").expect("write input");
    let text = format!(
        r#"
[pipeline]
name = "front-failures"
url = "{}"

[source]
kind = "lines"
path = "{}"

[[stage]]
name = "parse"
kind = "parse"
on_error = "skip"

[[stage]]
name = "sq"
kind = "square"
connector = "nats"

[sink]
kind = "sum"
"#,
        server.url(),
        input.display()
    );
    let file = dir.path().join("front.toml");
    std::fs::write(&file, text).expect("write pipeline");
    let mut worker = Worker::start(&file, "sq");
    worker.wait_for("worker ready", 1);
    let json_path = dir.path().join("report.json");
    let remote = millrace()
        .args(["run", &file.display().to_string(), "--no-live", "--report"])
        .arg(&json_path)
        .output()
        .expect("run the origin");
    let report = stderr_of(&remote);
    assert_eq!(remote.status.code(), Some(3), "{report}");
    assert_eq!(stdout_of(&remote).trim(), "sum: 35", "{report}");
    assert!(
        report.contains("in 5 = delivered 3 + filtered 0 + failed 2"),
        "{report}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("the JSON report"))
            .expect("JSON");
    let t = &json["totals"];
    assert_eq!(
        (&t["items_in"], &t["delivered"], &t["failed"]),
        (&5.into(), &3.into(), &2.into()),
        "{t}"
    );
    assert_eq!(json["errors"]["total"], 2, "{}", json["errors"]);
    assert_eq!(json["errors"]["sample"][0]["stage"], "parse");
    worker.stop();
}

#[test]
fn a_running_workers_dead_letters_reach_its_file_while_it_runs() {
    // They were written only when the worker stopped.
    let server = LocalServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("numbers.txt"), "1\nx\n3\ny\n5\n").expect("write input");
    let text = format!(
        r#"
[pipeline]
name = "dead-letters"
url = "{}"

[source]
kind = "lines"
path = "numbers.txt"

[[stage]]
name = "parse"
kind = "parse"
on_error = "skip"
dead_letter = "failed.jsonl"
connector = "nats"

[sink]
kind = "sum"
"#,
        server.url()
    );
    let file = dir.path().join("dl.toml");
    std::fs::write(&file, text).expect("write pipeline");
    let mut worker = Worker::start(&file, "parse");
    worker.wait_for("worker ready", 1);
    let origin = millrace()
        .args(["run", &file.display().to_string(), "--quiet"])
        .output()
        .expect("run the origin");
    assert_eq!(origin.status.code(), Some(3), "{}", stderr_of(&origin));
    let dead = dir.path().join("failed.jsonl");
    let deadline = Instant::now() + LIMIT;
    loop {
        let lines = std::fs::read_to_string(&dead)
            .unwrap_or_default()
            .lines()
            .count();
        if lines == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running worker's dead-letter file has {lines} lines, not 2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    worker.stop();
}

#[test]
fn an_origin_whose_stages_no_worker_takes_ends_on_ctrl_c() {
    let server = LocalServer::start().expect("start nats-server");
    let (_dir, file) = pipeline_file(&four_stages(&server.url(), 1_000_000));
    let file = file.display().to_string();
    let mut origin = Worker::spawn(&["run", &file, "--no-live"]);
    let deadline = Instant::now() + LIMIT;
    while !common::catches_sigint(origin.child.id()) {
        assert!(Instant::now() < deadline, "the origin never caught Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigint(&origin.child);
    origin.wait_for("interrupted", 1);
    sigint(&origin.child);
    let status = wait_or_kill(&mut origin.child, LIMIT);
    assert_eq!(status.code(), Some(130));
    origin.seen.extend(origin.lines.try_iter());
    let said = origin.seen.join("\n");
    // The first Ctrl-C may end the run on its own (when the part after the broker had not
    // started waiting for items), else the second aborts it: either way it ends, and says
    // what the remote stages did.
    assert!(said.contains("interrupted"), "{said}");
    assert!(said.contains("stage(s) `heavy` ran on"), "{said}");
}

#[test]
fn one_ctrl_c_ends_an_origin_whose_items_never_come_back() {
    // No worker takes the items: the back part's source waits on the broker for items
    // that never come back. One Ctrl-C used to stop only the back part, which never
    // noticed; the origin now stops the front part and, after its grace, stops waiting.
    let server = LocalServer::start().expect("start nats-server");
    let (dir, file) = pipeline_file(&four_stages(&server.url(), 1_000_000));
    let report = dir.path().join("r.json");
    let file = file.display().to_string();
    let report_arg = report.display().to_string();
    let mut origin = Worker::spawn(&["run", &file, "--no-live", "--report", &report_arg]);
    let deadline = Instant::now() + LIMIT;
    while !common::catches_sigint(origin.child.id()) {
        assert!(Instant::now() < deadline, "the origin never caught Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Time to publish some (not needed for the test to pass: with none, it still ends).
    std::thread::sleep(Duration::from_secs(1));
    sigint(&origin.child);
    let status = wait_or_kill(&mut origin.child, LIMIT);
    origin.seen.extend(origin.lines.try_iter());
    let said = origin.seen.join("\n");
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(!said.contains("aborting"), "one Ctrl-C, no abort: {said}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the JSON report"))
            .expect("JSON");
    assert_eq!(r["outcome"], "interrupted", "{said}");
    let t = &r["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k}: {t}"));
    // The run's input is the front part's; what went out and never came back is cancelled.
    assert_eq!(
        n("items_in") + n("expanded"),
        n("delivered") + n("filtered") + n("failed") + n("cancelled") + n("in_progress"),
        "{t}"
    );
}

/// A port nothing listens on.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn a_worker_that_cannot_reach_its_server_says_so_and_keeps_trying() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let (_dir, file) = pipeline_file(&four_stages(&url, 10));
    let mut worker = Worker::start(&file, "heavy");
    worker.wait_for(&format!("cannot reach the NATS server at {url}"), 2);
    assert!(
        worker.seen.iter().any(|l| l.contains("trying again")),
        "{}",
        worker.seen.join("\n")
    );
    // Ctrl-C stops it while it waits (it used to keep trying until killed), and so does
    // SIGTERM.
    sigint(&worker.child);
    let status = wait_or_kill(&mut worker.child, LIMIT);
    assert_eq!(status.code(), Some(130), "{}", worker.seen.join("\n"));
    let mut worker = Worker::start(&file, "heavy");
    worker.wait_for("trying again", 1);
    common::signal(&worker.child, "TERM");
    let status = wait_or_kill(&mut worker.child, LIMIT);
    assert_eq!(status.code(), Some(143), "{}", worker.seen.join("\n"));
}

#[test]
fn the_origin_against_an_unreachable_server_fails_at_once_saying_where() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let (_dir, file) = pipeline_file(&four_stages(&url, 10));
    let out = millrace()
        .args(["run", &file.display().to_string(), "--quiet"])
        .output()
        .expect("run the origin");
    assert_eq!(out.status.code(), Some(1));
    let said = stderr_of(&out);
    assert!(
        said.contains(&format!("cannot reach the NATS server at {url}")),
        "{said}"
    );
}

#[test]
fn a_worker_for_a_stage_that_is_not_where_the_remote_run_starts_is_refused() {
    let (_dir, file) = pipeline_file(&four_stages("nats://127.0.0.1:4222", 10));
    let out = millrace()
        .args(["worker", &file.display().to_string(), "--stage", "d"])
        .output()
        .expect("run the worker");
    assert_eq!(out.status.code(), Some(2));
    let said = stderr_of(&out);
    assert!(
        said.contains("stage `d` is not remote") && said.contains("starts at `heavy`"),
        "{said}"
    );
}

#[test]
fn an_origin_s_progress_line_counts_the_input_its_front_part_read() {
    // No worker takes the items: the front part reads the whole file and publishes it,
    // nothing comes back. The progress line used to count the back part's reads (none)
    // against the front source's bytes: "read 0 items (100% done, …)".
    let server = LocalServer::start().expect("start nats-server");
    let (dir, file) = pipeline_file(&format!(
        r#"
[pipeline]
name = "lines-out"
url = "{}"

[source]
kind = "lines"
path = "in.txt"

[[stage]]
name = "heavy"
kind = "square"
field = "line"
into = "sq"
connector = "nats"

[sink]
kind = "count"
"#,
        server.url()
    ));
    let text: String = (0..400).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.path().join("in.txt"), text).expect("write the input");
    let file = file.display().to_string();
    let mut origin = Worker::spawn(&["run", &file, "--progress-every", "100ms"]);
    origin.wait_for("read 400 items", 1);
    let line = origin
        .seen
        .iter()
        .find(|l| l.contains("read 400 items"))
        .cloned()
        .unwrap_or_default();
    assert!(
        line.contains("(0% done, 100% of"),
        "all read, nothing back: {line}"
    );
    sigint(&origin.child);
    let status = wait_or_kill(&mut origin.child, LIMIT);
    origin.seen.extend(origin.lines.try_iter());
    let said = origin.seen.join("\n");
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(!said.contains("100% done"), "nothing came back: {said}");
}

#[test]
fn ctrl_c_on_an_origin_whose_workers_are_busy_gives_a_balanced_remote_account() {
    // The back part stopped reading while outcomes were held for it: the account used to
    // say "0 published" and count as delivered back what the run counted as cancelled.
    let server = LocalServer::start().expect("start nats-server");
    let (dir, file) = pipeline_file(&four_stages(&server.url(), 1_000_000));
    let mut worker = Worker::start(&file, "heavy");
    worker.wait_for("worker ready", 1);
    let report = dir.path().join("r.json");
    let file = file.display().to_string();
    let report_arg = report.display().to_string();
    let mut origin = Worker::spawn(&[
        "run",
        &file,
        "--report",
        &report_arg,
        "--progress-every",
        "100ms",
    ]);
    // Until some outputs have come back and been delivered.
    let deadline = Instant::now() + LIMIT;
    loop {
        origin.seen.extend(origin.lines.try_iter());
        let delivered_some = origin.seen.iter().any(|l| {
            l.split(", delivered ")
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .is_some_and(|n| n.trim() != "0")
        });
        if delivered_some {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing came back: {:?}",
            origin.seen
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sigint(&origin.child);
    let status = wait_or_kill(&mut origin.child, LIMIT);
    origin.seen.extend(origin.lines.try_iter());
    let said = origin.seen.join("\n");
    assert_eq!(status.code(), Some(130), "{said}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the JSON report"))
            .expect("JSON");
    let remote = &r["remote"];
    let n = |k: &str| {
        remote[k]
            .as_u64()
            .unwrap_or_else(|| panic!("remote.{k}: {remote}"))
    };
    assert!(n("published") > 0, "{remote}");
    assert_eq!(remote["balanced"], true, "{remote}");
    let delivered_total = r["totals"]["delivered"].as_u64().expect("totals.delivered");
    // Every output handed to the part after the broker was delivered (a stop drains).
    assert_eq!(
        n("delivered"),
        delivered_total,
        "delivered back {} but the run delivered {delivered_total}: {remote}",
        n("delivered")
    );
    drop(worker);
}

#[test]
fn a_second_origin_on_a_job_with_a_run_going_fails_at_once_saying_why() {
    // Two origins on one job used to take each other's results and both hang for ever.
    let server = LocalServer::start().expect("start nats-server");
    let (dir, file) = pipeline_file(&four_stages(&server.url(), 1_000_000));
    let file = file.display().to_string();
    let mut first = Worker::spawn(&["run", &file, "--no-live", "--progress-every", "100ms"]);
    // Its run is going (it took the job's lease before it started): it says how far it is.
    // (Catching Ctrl-C is no sign of it: the command does that from its start; under CI's
    // load the second origin once took the lease first.)
    first.wait_for(" s: read ", 1);
    let report = dir.path().join("second.json").display().to_string();
    let mut second = Worker::spawn(&["run", &file, "--no-live", "--report", &report]);
    let status = wait_or_kill(&mut second.child, LIMIT);
    // The second origin says why (read until it has: its stderr may still be on its way).
    second.wait_for("job `four` has a run going", 1);
    assert_eq!(status.code(), Some(1), "{}", second.seen.join("\n"));
    sigint(&first.child);
    let status = wait_or_kill(&mut first.child, LIMIT);
    first.seen.extend(first.lines.try_iter());
    assert_eq!(status.code(), Some(130), "{}", first.seen.join("\n"));
}

#[test]
fn a_worker_started_from_a_file_that_differs_refuses_the_origin_s_batches_and_stops() {
    // A worker whose file set the remote stage otherwise (another `factor`, say) used to
    // answer the origin's items its way: a wrong sum, exit 0.
    let server = LocalServer::start().expect("start nats-server");
    let n = 2000;
    let (_dir, file) = pipeline_file(&four_stages(&server.url(), n));
    let in_memory = run_in_memory(&file);
    let path = file.display().to_string();
    let mut wrong = Worker::spawn(&[
        "worker",
        &path,
        "--stage",
        "heavy",
        "--set",
        "stage.heavy.units=3",
    ]);
    wrong.wait_for("worker ready", 1);
    let origin = {
        let path = path.clone();
        std::thread::spawn(move || {
            millrace()
                .args(["run", &path, "--no-live", "--quiet"])
                .output()
                .expect("run the origin")
        })
    };
    // The wrong worker takes a batch, gives it back, and stops, saying why.
    let status = wait_or_kill(&mut wrong.child, LIMIT);
    wrong.wait_for("remote part differs from this worker's", 1);
    assert_eq!(status.code(), Some(1), "{}", wrong.seen.join("\n"));
    // A worker started from the origin's file then takes every item, the one given back too.
    let mut right = Worker::start(&file, "heavy");
    right.wait_for("worker ready", 1);
    let remote = origin.join().expect("the origin's thread");
    assert!(remote.status.success(), "{}", stderr_of(&remote));
    assert_eq!(
        stdout_of(&remote),
        stdout_of(&in_memory),
        "{}",
        stderr_of(&remote)
    );
    right.stop();
}
