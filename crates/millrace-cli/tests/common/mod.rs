//! Helpers shared by the CLI tests: the binary with a timeout, the examples folder, child
//! processes and signals, the JSON report's totals, and a local HTTP server ([`http`]).

#![allow(dead_code)]

pub(crate) mod http;

use std::path::PathBuf;
use std::time::Duration;

/// The longest any single command may run in a test before it counts as hung.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// `millrace` with a timeout, run from the repository root.
pub(crate) fn millrace() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("millrace").expect("the millrace binary");
    cmd.timeout(TIMEOUT).current_dir(repo_root());
    cmd
}

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/NAME` (relative to the repository root, as a user would type it).
pub(crate) fn example(name: &str) -> String {
    format!("examples/{name}")
}

/// A pipeline file with `text` in a fresh temporary directory.
pub(crate) fn pipeline_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, text).expect("write the pipeline file");
    (dir, path)
}

/// The wrapping sum of 3·x² for x < n: the seed pipeline's result, by its closed form.
pub(crate) fn seed_sum(n: u64) -> u64 {
    millrace_workloads::seed::checksum(n)
}

/// Waits for `child` up to `limit`; kills it and fails the test if it is still running.
pub(crate) fn wait_or_kill(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for millrace") {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("millrace did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads all of `pipe` on a thread of its own (so a child never blocks on a full pipe).
pub(crate) fn drain<R: std::io::Read + Send + 'static>(
    mut pipe: R,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        all
    })
}

/// Sends SIGINT (Ctrl-C) to `child`.
pub(crate) fn sigint(child: &std::process::Child) {
    signal(child, "INT");
}

/// Sends signal `name` (`INT`, `TERM`) to `child`, through `kill`.
pub(crate) fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

/// Whether process `pid` catches SIGINT: bit 1 (signal 2) of `SigCgt` in its
/// `/proc/PID/status`. Before millrace installs its handler a SIGINT kills it outright.
#[cfg(target_os = "linux")]
pub(crate) fn catches_sigint(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << 1) != 0)
}

/// Elsewhere there is no such window into the process: assume the handler is in place a
/// moment after the first output.
#[cfg(not(target_os = "linux"))]
pub fn catches_sigint(_pid: u32) -> bool {
    std::thread::sleep(Duration::from_millis(500));
    true
}

/// Waits until `child` catches SIGINT; kills it and fails the test after a minute.
pub(crate) fn wait_for_handler(child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !catches_sigint(child.id()) {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("millrace did not install its Ctrl-C handler within a minute");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads `pipe` line by line on a thread of its own, sending each line as it comes.
pub(crate) fn line_by_line<R: std::io::Read + Send + 'static>(
    pipe: R,
) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The JSON report at `path`.
pub(crate) fn read_report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("the JSON report")).expect("valid JSON")
}

/// The report's totals `[in, delivered, filtered, failed, cancelled]`, checked to balance:
/// in (+ expanded) = delivered + filtered + failed + cancelled.
pub(crate) fn totals(json: &serde_json::Value) -> [u64; 5] {
    let t = &json["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k} in {t}"));
    let [i, d, f, x, c] = [
        n("items_in"),
        n("delivered"),
        n("filtered"),
        n("failed"),
        n("cancelled"),
    ];
    assert_eq!(i + n("expanded"), d + f + x + c, "unbalanced: {t}");
    [i, d, f, x, c]
}
