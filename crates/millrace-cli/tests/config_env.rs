//! Where values come from: `${VAR}` and `${VAR:-default}` in string values (`$$` is a
//! `$`), `~` in paths, relative paths against the pipeline file's directory for the file
//! and `--set` alike, and the pipeline itself on stdin (`-`).

mod common;

use common::{millrace, pipeline_file};

#[test]
fn variables_and_defaults_fill_string_values() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"${MR_IN}\"\n\n\
         [[stage]]\nkind = \"grep\"\npattern = \"${MR_PATTERN:-b$$}\"\n\n\
         [sink]\nkind = \"count\"\n",
    );
    std::fs::write(dir.path().join("in.txt"), "ab\nb\nbc\n").expect("input");
    // `b$` (the default, `$$` being a `$`): the lines that end in b.
    millrace()
        .args(["run", "--quiet"])
        .arg(&path)
        .env("MR_IN", "in.txt")
        .env_remove("MR_PATTERN")
        .assert()
        .success()
        .stdout("count: 2\n");
    millrace()
        .args(["run", "--quiet"])
        .arg(&path)
        .env("MR_IN", "in.txt")
        .env("MR_PATTERN", "^b")
        .assert()
        .success()
        .stdout("count: 2\n");
}

#[test]
fn an_unset_variable_is_a_located_error_naming_it() {
    let (_dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"${MR_SURELY_UNSET}/a.log\"\n[sink]\nkind = \"count\"\n",
    );
    let out = millrace()
        .arg("check")
        .arg(&path)
        .env_remove("MR_SURELY_UNSET")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:3:8: environment variable `MR_SURELY_UNSET` is not set",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("${MR_SURELY_UNSET:-VALUE}"), "{stderr}");
}

#[test]
fn a_tilde_path_is_under_home() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"~/in.txt\"\n[sink]\nkind = \"count\"\n",
    );
    std::fs::write(dir.path().join("in.txt"), "1\n2\n").expect("input");
    millrace()
        .args(["run", "--quiet"])
        .arg(&path)
        .env("HOME", dir.path())
        .assert()
        .success()
        .stdout("count: 2\n");
}

#[test]
fn set_paths_are_relative_to_the_pipeline_file_like_the_file_s_own() {
    let (dir, path) =
        pipeline_file("[source]\nkind = \"lines\"\npath = \"a.txt\"\n[sink]\nkind = \"count\"\n");
    std::fs::write(dir.path().join("a.txt"), "1\n").expect("input");
    std::fs::write(dir.path().join("b.txt"), "1\n2\n3\n").expect("input");
    // The command runs from the repository root, not the file's directory.
    millrace()
        .args(["run", "--quiet"])
        .arg(&path)
        .assert()
        .success()
        .stdout("count: 1\n");
    millrace()
        .args(["run", "--quiet", "--set", "source.path=b.txt"])
        .arg(&path)
        .assert()
        .success()
        .stdout("count: 3\n");
}

#[test]
fn the_pipeline_can_come_on_stdin() {
    let dir = tempfile::tempdir().expect("a temp dir");
    millrace()
        .args(["run", "-", "--quiet"])
        .current_dir(dir.path())
        .write_stdin("[source]\nkind = \"range\"\nend = 5\n[sink]\nkind = \"sum\"\n")
        .assert()
        .success()
        .stdout("sum: 10\n");
    millrace()
        .args(["check", "-"])
        .write_stdin("[source]\nkind = \"range\"\nedn = 5\n[sink]\nkind = \"sum\"\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("<stdin>:3:1: unknown key `edn`"));
}

#[test]
fn a_pipeline_on_stdin_cannot_also_read_its_lines_there() {
    millrace()
        .args(["run", "-", "--quiet"])
        .write_stdin("[source]\nkind = \"lines\"\n[sink]\nkind = \"count\"\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "source `lines` cannot read its lines there too",
        ));
}
