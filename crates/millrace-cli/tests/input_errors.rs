//! Inputs that cannot be read fail the run (exit 1), and the report names them: files that
//! vanish after the walk listed them, and a directory that vanishes before it is listed
//! (reported once, as a directory, with its path — not as one skipped input).
//!
//! The runs are made to wait deterministically: the sink prints each file's data (64 KiB of
//! hex per file) to a pipe the test does not read until it has removed the inputs, and the
//! pipeline holds one item per queue, so the source is blocked a few files in.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{drain, wait_or_kill, TIMEOUT};

const PIPELINE: &str = "[pipeline]\ncapacity = 1\nbatch = 1\n\
    [source]\nkind = \"files\"\ndir = \"in\"\n\
    [sink]\nkind = \"stdout\"\nfield = \"data\"\n";

/// `in/` with `top` files of 32 KiB, and `in/sub/` with 20 more.
fn inputs(dir: &Path, top: usize) -> (PathBuf, PathBuf) {
    let root = dir.join("in");
    let sub = root.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let data = vec![b'x'; 32 * 1024];
    for i in 0..top {
        std::fs::write(root.join(format!("f{i:03}")), &data).unwrap();
    }
    for i in 0..20 {
        std::fs::write(sub.join(format!("g{i:03}")), &data).unwrap();
    }
    std::fs::write(dir.join("p.toml"), PIPELINE).unwrap();
    (root, sub)
}

struct Ran {
    code: Option<i32>,
    stderr: String,
    report: serde_json::Value,
}

/// Runs the pipeline in `dir`; once its first output arrives (the walk has listed `in/`
/// and is blocked on the sink), calls `remove`, then lets the run finish.
fn run_removing(dir: &Path, remove: impl FnOnce()) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .current_dir(dir)
        .args(["run", "p.toml", "--report", "r.json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace");
    let mut stdout = child.stdout.take().expect("stdout");
    let stderr = drain(child.stderr.take().expect("stderr"));
    let (started, first_output) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = stdout.read_exact(&mut byte);
        let _ = started.send(());
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
    });
    if first_output.recv_timeout(TIMEOUT).is_err() {
        let _ = child.kill();
        panic!("no output from millrace within {TIMEOUT:?}");
    }
    remove();
    let status = wait_or_kill(&mut child, TIMEOUT);
    reader.join().expect("the stdout reader");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("the stderr reader")).into_owned();
    let report = std::fs::read(dir.join("r.json"))
        .map(|b| serde_json::from_slice(&b).expect("valid JSON"))
        .unwrap_or_else(|e| panic!("no report ({e}); stderr:\n{stderr}"));
    Ran {
        code: status.code(),
        stderr,
        report,
    }
}

#[test]
fn files_that_vanish_mid_run_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _sub) = inputs(dir.path(), 200);
    let ran = run_removing(dir.path(), || {
        for i in 0..200 {
            let _ = std::fs::remove_file(root.join(format!("f{i:03}")));
        }
    });
    let stderr = &ran.stderr;
    assert_eq!(ran.code, Some(1), "{stderr}");
    assert!(stderr.contains("FAILED"), "{stderr}");
    assert!(stderr.contains("the source could not read"), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
    assert_eq!(ran.report["outcome"], "failed");
    assert_eq!(ran.report["exit_code"], 1);
    let unreadable = ran.report["source"]["unreadable"]
        .as_u64()
        .expect("source.unreadable");
    // A few files were read before the run blocked; the rest vanished.
    assert!(
        unreadable > 100 && unreadable <= 200,
        "{unreadable}: {stderr}"
    );
    assert_eq!(
        ran.report["source"]["skipped"], 0,
        "nothing was skipped on purpose"
    );
    // The directory that did not vanish was read whole.
    assert!(!stderr.contains("in/sub"), "{stderr}");
}

#[test]
fn a_directory_that_cannot_be_listed_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, sub) = inputs(dir.path(), 40);
    let ran = run_removing(dir.path(), || {
        std::fs::remove_dir_all(&sub).expect("remove in/sub");
    });
    let stderr = &ran.stderr;
    assert_eq!(ran.code, Some(1), "{stderr}");
    assert_eq!(ran.report["outcome"], "failed");
    assert_eq!(ran.report["source"]["unreadable"], 1, "{stderr}");
    let named = format!(
        "directory {}: cannot list it",
        Path::new("in").join("sub").display()
    );
    assert!(stderr.contains(&named), "{stderr}");
    assert!(stderr.contains("nothing under it was read"), "{stderr}");
    let sample = &ran.report["source"]["unreadable_sample"][0];
    assert!(
        sample.as_str().is_some_and(|s| s.contains(&named)),
        "{sample}"
    );
    assert_eq!(
        ran.report["totals"]["delivered"], 40,
        "every file at the top was delivered"
    );
}
