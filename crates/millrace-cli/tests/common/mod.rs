//! Helpers shared by the CLI tests: the binary with a timeout, the examples folder, and a
//! local HTTP server ([`http`]).

#![allow(dead_code)]

pub mod http;

use std::path::PathBuf;
use std::time::Duration;

/// The longest any single command may run in a test before it counts as hung.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `millrace` with a timeout, run from the repository root.
pub fn millrace() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("millrace").expect("the millrace binary");
    cmd.timeout(TIMEOUT).current_dir(repo_root());
    cmd
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/NAME` (relative to the repository root, as a user would type it).
pub fn example(name: &str) -> String {
    format!("examples/{name}")
}

/// A pipeline file with `text` in a fresh temporary directory.
pub fn pipeline_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, text).expect("write the pipeline file");
    (dir, path)
}

/// The wrapping sum of 3·x² for x < n: the seed pipeline's result.
pub fn seed_sum(n: u64) -> u64 {
    (0..n).fold(0u64, |s, x| {
        s.wrapping_add(x.wrapping_mul(x).wrapping_mul(3))
    })
}
