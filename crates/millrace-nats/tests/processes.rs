//! Parts of one pipeline in separate processes (the `millrace-nats-demo` binary: W2 with
//! its heavy stage on workers): a worker killed with SIGKILL mid-run, a server restarted
//! mid-run (each at a random item, while a worker is sure to be holding messages), a worker
//! started before its server. Every output arrives exactly once and the
//! accounting balances.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{server, within, LocalServer};
use millrace_workloads::spin;

const DEMO: &str = env!("CARGO_BIN_EXE_millrace-nats-demo");
const HEAVY: u32 = 1000;

/// A child process whose stderr lines are kept; killed (SIGKILL) on drop.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(DEMO)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start millrace-nats-demo");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Proc { child, stderr }
    }

    fn worker(url: &str, job: &str, extra: &[&str]) -> Proc {
        let mut args = vec!["worker", "--url", url, "--job", job, "--workers", "1"];
        args.extend_from_slice(&["--heavy", "1000", "--batch", "16", "--ack-wait-ms", "1500"]);
        args.extend_from_slice(extra);
        Proc::start(&args)
    }

    fn said(&self, what: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(what))
    }

    fn wait_said(&self, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.said(what) {
            assert!(
                Instant::now() < deadline,
                "the process did not say `{what}` within {secs} s; it said: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for it to exit; returns its stdout.
    fn output(mut self) -> String {
        let mut out = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{status}: {out} {:?}",
            self.stderr.lock().unwrap()
        );
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn origin(url: &str, job: &str, n: u64) -> Proc {
    Proc::start(&[
        "origin",
        "--url",
        url,
        "--job",
        job,
        "--n",
        &n.to_string(),
        "--heavy",
        "1000",
        "--batch",
        "16",
        "--ack-wait-ms",
        "1500",
    ])
}

/// W2's sum with the demo's heavy stage, computed here.
fn expected_sum(n: u64) -> u64 {
    (0..n).fold(0u64, |s, x| {
        s.wrapping_add(spin(1, spin(HEAVY, spin(1, spin(1, x)))))
    })
}

/// `key=value` from the origin's line.
fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .to_owned()
}

fn assert_exactly_once(line: &str, n: u64) {
    assert_eq!(field(line, "outputs"), n.to_string(), "{line}");
    assert_eq!(field(line, "sum"), expected_sum(n).to_string(), "{line}");
    assert_eq!(field(line, "published"), n.to_string(), "{line}");
    assert_eq!(field(line, "delivered"), n.to_string(), "{line}");
    assert_eq!(field(line, "balanced"), "true", "{line}");
}

/// `count` numbers in `low..high` from a small generator (xorshift) seeded from the clock;
/// the seed is printed.
fn random_numbers(count: usize, low: u64, high: u64) -> Vec<u64> {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("random numbers seeded with {x}");
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            low + x % (high - low)
        })
        .collect()
}

/// The kill and the restart must land mid-run whatever the machine's speed: the worker
/// pauses on a random item (`--pause-at`) and says so; only then does the test act.
#[test]
fn a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing() {
    within(600, || {
        let server = server();
        let url = server.url();
        let n = 1500;
        for (round, at) in random_numbers(3, 0, 1000).into_iter().enumerate() {
            let job = format!("kill{round}");
            // Alone at first, the doomed worker is sure to reach item `at`, and hangs there
            // holding unacked messages.
            let doomed = Proc::worker(&url, &job, &["--pause-at", &at.to_string()]);
            doomed.wait_said("worker ready", 60);
            let origin = origin(&url, &job, n);
            doomed.wait_said("pausing", 120);
            let survivor = Proc::worker(&url, &job, &[]);
            survivor.wait_said("worker ready", 60);
            drop(doomed); // SIGKILL
            let line = origin.output();
            println!("round {round}, killed at item {at}: {line}");
            assert_exactly_once(&line, n);
        }
    });
}

#[test]
fn a_server_restart_mid_run_loses_nothing() {
    within(600, || {
        let mut server = server();
        let url = server.url();
        let n = 1500;
        let at = random_numbers(1, 0, 1000)[0];
        let pause = format!("{at}:2000");
        let worker = Proc::worker(&url, "restart", &["--pause-at", &pause]);
        worker.wait_said("worker ready", 60);
        let origin = origin(&url, "restart", n);
        worker.wait_said("pausing", 120);
        server
            .restart()
            .expect("restart nats-server on the same store");
        let line = origin.output();
        println!("restarted at item {at}: {line}");
        assert_exactly_once(&line, n);
        drop(worker);
    });
}

/// A message whose taker died as often as `max_deliver` allows is not dropped: it goes to
/// the dead letters and its items are answered failed, so the run still ends balanced.
#[test]
fn a_message_delivered_max_deliver_times_is_dead_lettered_and_accounted_for() {
    within(600, || {
        let server = server();
        let url = server.url();
        let n = 600;
        let twice = ["--max-deliver", "2"];
        // The doomed worker hangs holding a message (delivery 1) and is killed; the survivor
        // gets it again (delivery 2 of 2) and dead-letters it.
        let doomed = Proc::worker(&url, "poison", &["--pause-at", "5", "--max-deliver", "2"]);
        doomed.wait_said("worker ready", 60);
        let mut origin_args = vec!["origin", "--url", &url, "--job", "poison", "--n", "600"];
        origin_args.extend_from_slice(&["--heavy", "1000", "--batch", "16"]);
        origin_args.extend_from_slice(&["--ack-wait-ms", "1500"]);
        origin_args.extend_from_slice(&twice);
        let origin = Proc::start(&origin_args);
        doomed.wait_said("pausing", 120);
        let survivor = Proc::worker(&url, "poison", &twice);
        survivor.wait_said("worker ready", 60);
        drop(doomed); // SIGKILL
        let line = origin.output();
        println!("{line}");
        survivor.wait_said("went to the dead letters", 60);
        let count = |key| field(&line, key).parse::<u64>().unwrap();
        assert_eq!(field(&line, "balanced"), "true", "{line}");
        assert!(
            count("failed") >= 1,
            "the held message's items failed: {line}"
        );
        assert_eq!(count("outputs") + count("failed"), n, "{line}");
        assert_eq!(count("published"), n, "{line}");
    });
}

#[test]
fn a_worker_that_cannot_reach_the_server_retries_and_says_so() {
    within(120, || {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("nats://127.0.0.1:{port}");
        let worker = Proc::worker(&url, "late", &[]);
        worker.wait_said("cannot reach the NATS server", 60);
        worker.wait_said("trying again in", 60);
        let _server = LocalServer::start_on(port).expect("start nats-server");
        worker.wait_said("worker ready", 60);
    });
}
