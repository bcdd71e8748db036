//! `check --strict` and `run --strict`: what can be checked before a run is (inputs exist
//! and can be read, outputs can be written, no file both read and written), located at the
//! setting; without `--strict`, `check` says the same as warnings and succeeds.
//! `check --format json` and `run --error-format json` give the diagnostics as JSON.

mod common;

use common::{millrace, pipeline_file};

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

const MISSING_INPUT: &str =
    "[source]\nkind = \"lines\"\npath = \"missing.txt\"\n[sink]\nkind = \"count\"\n";

#[test]
fn a_missing_input_is_a_warning_for_check_and_an_error_under_strict() {
    let (_dir, path) = pipeline_file(MISSING_INPUT);
    let shown = path.display().to_string();
    let out = millrace().arg("check").arg(&path).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: {shown}:3:8: source `lines` `path`"))
            && stderr.contains("missing.txt does not exist"),
        "{stderr}"
    );
    let out = millrace()
        .args(["check", "--strict"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("error: {shown}:3:8:")), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no resolved pipeline for a strict failure"
    );
}

#[test]
fn strict_finds_every_unwritable_output_at_once() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"range\"\nend = 10\n\n\
         [[stage]]\nkind = \"square\"\ndead_letter = \"no/such/dir/dl.jsonl\"\n\n\
         [sink]\nkind = \"file\"\npath = \"out\"\n",
    );
    std::fs::create_dir(dir.path().join("out")).expect("a directory where the file goes");
    let out = millrace()
        .args(["check", "--strict", "--format", "json"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out.stdout);
    assert_eq!(doc["schema"], "millrace-diagnostics");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["errors"], 2, "{doc:#}");
    let d = &doc["diagnostics"];
    assert_eq!(d[0]["stage"], "square");
    assert_eq!(d[0]["line"], 5);
    assert!(
        d[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("does not exist"),
        "{doc:#}"
    );
    assert_eq!(d[1]["stage"], "sink");
    assert_eq!(
        (d[1]["line"].clone(), d[1]["column"].clone()),
        (11.into(), 8.into())
    );
    assert!(
        d[1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is a directory"),
        "{doc:#}"
    );
}

#[test]
fn a_file_both_read_and_written_is_found_before_the_run() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"data.txt\"\n[sink]\nkind = \"file\"\npath = \"data.txt\"\n",
    );
    std::fs::write(dir.path().join("data.txt"), "keep me\n").expect("write the input");
    let out = millrace()
        .args(["run", "--strict", "--quiet"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the run would write the file it reads"),
        "{stderr}"
    );
    let kept = std::fs::read_to_string(dir.path().join("data.txt")).expect("the input");
    assert_eq!(kept, "keep me\n", "nothing ran: the input is untouched");
}

#[test]
fn run_refuses_to_write_the_file_it_reads_even_without_strict() {
    // A file sink on the source's own file truncated it before the first line was read:
    // the run "completed" with 0 items and the input was gone.
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"data.txt\"\n[sink]\nkind = \"file\"\npath = \"data.txt\"\n",
    );
    std::fs::write(dir.path().join("data.txt"), "keep me\n").expect("write the input");
    let report = dir.path().join("r.json");
    let out = millrace()
        .args(["run", "--quiet", "--report"])
        .arg(&report)
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the run would write the file it reads"),
        "{stderr}"
    );
    let kept = std::fs::read_to_string(dir.path().join("data.txt")).expect("the input");
    assert_eq!(kept, "keep me\n", "nothing ran: the input is untouched");
    let r = json(&std::fs::read(&report).expect("the report"));
    assert_eq!(r["outcome"], "failed");

    // The report on the input: refused, and the input is not overwritten by the report.
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"nums.txt\"\n[sink]\nkind = \"count\"\n",
    );
    let input = dir.path().join("nums.txt");
    std::fs::write(&input, "1\n2\n").expect("write the input");
    let out = millrace()
        .args(["run", "--quiet", "--report"])
        .arg(&input)
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the JSON report"), "{stderr}");
    let kept = std::fs::read_to_string(&input).expect("the input");
    assert_eq!(kept, "1\n2\n", "the report did not overwrite the input");
}

#[test]
fn run_strict_refuses_a_missing_input_before_starting_and_still_writes_the_report() {
    let (dir, path) = pipeline_file(MISSING_INPUT);
    let report = dir.path().join("r.json");
    let out = millrace()
        .args(["run", "--strict", "--error-format", "json", "--report"])
        .arg(&report)
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out.stderr);
    assert_eq!(doc["diagnostics"][0]["severity"], "error");
    assert_eq!(doc["diagnostics"][0]["stage"], "source");
    let r = json(&std::fs::read(&report).expect("the report"));
    assert_eq!(r["outcome"], "failed");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or("")
            .contains("missing.txt does not exist"),
        "{r:#}"
    );
}

#[test]
fn check_json_lists_every_config_error_with_its_place_and_part() {
    let (_dir, path) = pipeline_file(
        "[source]\nkind = \"range\"\nedn = 10\n\n\
         [[stage]]\nname = \"sq\"\nkind = \"square\"\nwokers = 2\n\n\
         [sink]\nkind = \"cont\"\n",
    );
    let out = millrace()
        .args(["check", "--format", "json", "--set", "stage.sq.batch=0"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let doc = json(&out.stdout);
    let places: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = doc["diagnostics"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| (d["line"].clone(), d["stage"].clone(), d["set"].clone()))
        .collect();
    assert_eq!(
        places,
        vec![
            (
                serde_json::Value::Null,
                "sq".into(),
                "stage.sq.batch=0".into()
            ),
            (3.into(), "source".into(), serde_json::Value::Null),
            (8.into(), "sq".into(), serde_json::Value::Null),
            (11.into(), "sink".into(), serde_json::Value::Null),
        ],
        "{doc:#}"
    );
    assert_eq!(doc["diagnostics"][1]["help"], "did you mean `end`?");
    assert_eq!(doc["errors"], 4);
}

#[test]
fn a_valid_file_in_json_is_valid_with_its_warnings() {
    let (_dir, path) = pipeline_file(MISSING_INPUT);
    let out = millrace()
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let doc = json(&out.stdout);
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["warnings"], 1);
    assert_eq!(doc["diagnostics"][0]["severity"], "warning");
}

#[cfg(unix)]
#[test]
fn a_named_pipe_is_not_opened_before_the_run() {
    // Opening it waits for a writer: `check` and `run --strict` used to block there for
    // good, deaf to Ctrl-C.
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"in.pipe\"\n[sink]\nkind = \"file\"\npath = \"out.pipe\"\n",
    );
    for name in ["in.pipe", "out.pipe"] {
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join(name))
            .status()
            .expect("mkfifo");
        assert!(made.success());
    }
    for args in [vec!["check"], vec!["check", "--strict"]] {
        let out = millrace().args(&args).arg(&path).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("warning"), "{args:?}: {stderr}");
    }
}
