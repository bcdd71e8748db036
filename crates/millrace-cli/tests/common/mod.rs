//! Helpers shared by the CLI tests: the binary with a timeout, the examples folder, and a
//! local HTTP server ([`http`]).

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

/// The wrapping sum of 3·x² for x < n: the seed pipeline's result.
pub(crate) fn seed_sum(n: u64) -> u64 {
    (0..n).fold(0u64, |s, x| {
        s.wrapping_add(x.wrapping_mul(x).wrapping_mul(3))
    })
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
