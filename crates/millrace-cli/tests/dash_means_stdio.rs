//! `-` means stdin for `lines` and stdout for `file`, as everywhere on a command line: no
//! file named `-` is created.

mod common;

use common::{millrace, pipeline_file};

#[test]
fn a_file_sink_at_dash_writes_stdout() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"-\"\n\
         [sink]\nkind = \"file\"\npath = \"-\"\nfield = \"text\"\n",
    );
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--quiet")
        .write_stdin("a\nb\n")
        .assert()
        .success()
        .stdout("a\nb\n");
    assert!(!dir.path().join("-").exists(), "no file named `-`");
}
