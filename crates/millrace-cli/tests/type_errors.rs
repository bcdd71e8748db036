//! A stage (or the sink) that cannot take the values the part before it emits is a config
//! error, found when the file is loaded: exit 2 from `check` and from `run` (which starts
//! nothing), located at the offending `kind` (or at its `field` when that was written out
//! and is the trouble), naming both parts and both types, with a hint. When they fit,
//! `check` shows the type each part emits.

mod common;

use common::{example, millrace, pipeline_file};

/// `check` and `run` on `text` each exit 2 with nothing on stdout and exactly `wanted` (with
/// FILE for the file's path) on stderr; `run` writes no report.
fn refused(text: &str, wanted: &str) {
    let (dir, path) = pipeline_file(text);
    std::fs::write(dir.path().join("in.txt"), "1\n2\n").unwrap();
    let wanted = wanted.replace("FILE", &path.display().to_string());
    let report = dir.path().join("report.json");
    for args in [vec!["check"], vec!["run", "--report"]] {
        let mut cmd = millrace();
        cmd.args(&args);
        if args.len() > 1 {
            cmd.arg(&report);
        }
        cmd.arg(&path)
            .assert()
            .code(2)
            .stdout("")
            .stderr(wanted.clone());
    }
    assert!(!report.exists(), "a refused pipeline wrote a report");
}

#[test]
fn stage_that_cannot_take_what_the_stage_before_emits_is_located() {
    refused(
        "[source]\nkind = \"range\"\nend = 10\n\n\
         [[stage]]\nname = \"sq\"\nkind = \"square\"\n\n\
         [[stage]]\nname = \"g\"\nkind = \"grep\"\npattern = \"1\"\n\n\
         [sink]\nkind = \"count\"\n",
        "millrace: error: FILE:11:8: stage `g` (kind `grep`) takes text, but stage `sq` (kind `square`) before it emits numbers\n\
         \x20  |\n\
         11 | kind = \"grep\"\n\
         \x20  |        ^^^^^^\n\
         \x20  |\n\
         \x20  = help: no kind turns numbers into text\n",
    );
}

#[test]
fn stage_that_cannot_take_what_the_source_emits_is_located() {
    refused(
        "[source]\nkind = \"range\"\nend = 10\n\n[[stage]]\nkind = \"hash\"\n\n[sink]\nkind = \"count\"\n",
        "millrace: error: FILE:6:8: stage `hash` takes bytes or text, but source `range` emits numbers\n\
         \x20 |\n\
         6 | kind = \"hash\"\n\
         \x20 |        ^^^^^^\n\
         \x20 |\n\
         \x20 = help: no kind turns numbers into bytes or text\n",
    );
}

#[test]
fn sink_that_cannot_take_what_the_last_stage_emits_is_located() {
    refused(
        "[source]\nkind = \"range\"\nend = 3\n\n\
         [[stage]]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/{}\"\n\n\
         [sink]\nkind = \"sum\"\n",
        "millrace: error: FILE:10:8: sink `sum` takes numbers, but stage `http` before it emits text\n\
         \x20  |\n\
         10 | kind = \"sum\"\n\
         \x20  |        ^^^^^\n\
         \x20  |\n\
         \x20  = help: a `parse` stage before it turns text into numbers\n",
    );
}

#[test]
fn sink_reading_a_field_the_records_lack_is_located() {
    refused(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\n\
         [[stage]]\nkind = \"hash\"\nfield = \"text\"\n\n\
         [sink]\nkind = \"sum\"\n",
        "millrace: error: FILE:10:8: sink `sum` takes numbers in field `value`, but stage `hash` before it emits records with no `value` (their fields: line, text, hash)\n\
         \x20  |\n\
         10 | kind = \"sum\"\n\
         \x20  |        ^^^^^\n\
         \x20  |\n\
         \x20  = help: a `parse` stage before it turns text into numbers; or, to read the records' field `line` (a number), set field = \"line\"\n",
    );
}

#[test]
fn a_field_of_the_wrong_type_points_at_the_field() {
    refused(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\n\
         [[stage]]\nkind = \"hash\"\nfield = \"text\"\n\n\
         [sink]\nkind = \"sum\"\nfield = \"hash\"\n",
        "millrace: error: FILE:11:9: sink `sum` takes numbers in field `hash`, but stage `hash` before it emits records whose `hash` holds text\n\
         \x20  |\n\
         11 | field = \"hash\"\n\
         \x20  |         ^^^^^^\n\
         \x20  |\n\
         \x20  = help: a `parse` stage before it turns text into numbers; or, to read the records' field `line` (a number), set field = \"line\"\n",
    );
}

#[test]
fn a_stage_reading_a_missing_field_is_pointed_to_one_that_would_do() {
    refused(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n[[stage]]\nkind = \"hash\"\n[sink]\nkind = \"count\"\n",
        "millrace: error: FILE:5:8: stage `hash` takes bytes or text in field `data`, but source `lines` emits records with no `data` (their fields: line, text)\n\
         \x20 |\n\
         5 | kind = \"hash\"\n\
         \x20 |        ^^^^^^\n\
         \x20 |\n\
         \x20 = help: to read the records' field `text` (text), set field = \"text\"\n",
    );
}

#[test]
fn a_misspelt_field_gets_a_suggestion() {
    refused(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n[sink]\nkind = \"stdout\"\nfield = \"txt\"\n",
        "millrace: error: FILE:6:9: sink `stdout` reads field `txt`, but source `lines` emits records with no `txt` (their fields: line, text)\n\
         \x20 |\n\
         6 | field = \"txt\"\n\
         \x20 |         ^^^^^\n\
         \x20 |\n\
         \x20 = help: did you mean `text`?\n",
    );
}

#[test]
fn totals_of_fields_need_records() {
    refused(
        "[source]\nkind = \"range\"\nend = 3\n[sink]\nkind = \"count\"\nfields = [\"length\"]\n",
        "millrace: error: FILE:6:10: sink `count` takes records with field `length`, but source `range` emits numbers\n\
         \x20 |\n\
         6 | fields = [\"length\"]\n\
         \x20 |          ^^^^^^^^^^\n\
         \x20 |\n\
         \x20 = help: numbers have no fields: leave out `fields`\n",
    );
}

#[test]
fn a_kind_set_on_the_command_line_is_checked_too() {
    millrace()
        .args(["check", &example("logs.toml"), "--set", "sink.kind=sum"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "millrace: error: --set sink.kind=sum: sink `sum` takes numbers in field `value`, but stage `grep` before it emits records with no `value` (their fields: line, text)\n\
             \x20= help: a `parse` stage before it turns text into numbers; or, to read the records' field `line` (a number), set field = \"line\"\n",
        );
}

#[test]
fn values_that_fit_load_through_records_and_fields() {
    // lines → parse (text → value) → square (value) → sum (value): records all the way.
    let (_dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nkind = \"parse\"\n[[stage]]\nkind = \"square\"\n\
         [[stage]]\nkind = \"sleep\"\nms = 0\n[sink]\nkind = \"sum\"\n",
    );
    std::fs::write(path.with_file_name("in.txt"), "3\n4\n").unwrap();
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--quiet")
        .assert()
        .success()
        .stdout("sum: 25\n");
}

#[test]
fn check_shows_what_each_part_emits() {
    // lines → parse → square → sum: after the source and each stage, a comment with the
    // type of the items that flow on, records' fields included; the output still loads to
    // the same pipeline.
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nkind = \"parse\"\n[[stage]]\nkind = \"square\"\n\
         [sink]\nkind = \"sum\"\n",
    );
    std::fs::write(dir.path().join("in.txt"), "3\n4\n").unwrap();
    // Nothing set: the stages are autoscaled within the cores and batch sizes adapt.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let adapts = "# batch: not set, adapts while the pipeline runs";
    let resolved = format!(
        "[pipeline]\nname = \"pipeline\"\ncapacity = 16384\n{adapts}\n\
         # cpu_budget: not set, so the number of cores ({cores} here), less one from 8 up\n\
         autoscale_interval = \"200ms\"\n# wedge_timeout: not set, so no wedge watch\n\
         fuse = false\nfuse_auto = true\nlazy_workers = true\nadaptive_fusion = true\n\
         \n[source]\nkind = \"lines\"\npath = \"in.txt\"\nfollow = false\n\
         # emits: record {{line: number, text: text}}\n\
         \n[[stage]]\nname = \"parse\"\nkind = \"parse\"\nworkers = \"auto\"\ncapacity = 16384\n{adapts}\n\
         ordered = false\non_error = \"skip\"\nfield = \"text\"\ninto = \"value\"\n\
         # emits: record {{line: number, text: text, value: number}}\n\
         \n[[stage]]\nname = \"square\"\nkind = \"square\"\nworkers = \"auto\"\ncapacity = 16384\n{adapts}\n\
         ordered = false\non_error = \"skip\"\nfield = \"value\"\ninto = \"value\"\n\
         # emits: record {{line: number, text: text, value: number}}\n\
         \n[sink]\nkind = \"sum\"\non_error = \"skip\"\nfield = \"value\"\n"
    );
    millrace()
        .arg("check")
        .arg(&path)
        .assert()
        .success()
        .stdout(format!(
            "# {}: valid; the resolved pipeline, every default written out:\n{resolved}",
            path.display()
        ));
    let spec = millrace_cli::config::load_str(&resolved, "again.toml", dir.path(), &[]).unwrap();
    assert_eq!(millrace_cli::commands::check::to_toml(&spec), resolved);
}

#[test]
fn check_writes_every_path_relative_to_the_file_as_the_file_does() {
    // The report and dead-letter paths came out relative to the current directory, the
    // parameters' as written: saved beside the file, the output named other files.
    let (dir, _) = pipeline_file("");
    let sub = dir.path().join("proj");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("in.txt"), "1\n").unwrap();
    std::fs::write(
        sub.join("p.toml"),
        "[pipeline]\nreport = \"r.json\"\n[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nname = \"p\"\nkind = \"parse\"\ndead_letter = \"dl.jsonl\"\n\
         [sink]\nkind = \"file\"\npath = \"out.txt\"\n",
    )
    .unwrap();
    let out = millrace()
        .current_dir(dir.path())
        .args(["check", "proj/p.toml"])
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "report = \"r.json\"",
        "path = \"in.txt\"",
        "dead_letter = \"dl.jsonl\"",
        "path = \"out.txt\"",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in:\n{printed}");
    }
}

#[test]
fn every_field_that_would_do_is_offered() {
    // `lines` into `http` offered only `field = "line"` (the line number), not the text.
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n[[stage]]\nname = \"h\"\nkind = \"http\"\n\
         url = \"http://127.0.0.1:1/{}\"\n[sink]\nkind = \"null\"\n",
    );
    std::fs::write(dir.path().join("in.txt"), "x\n").unwrap();
    let out = millrace().arg("check").arg(&path).output().expect("check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("set field = \"line\" (a number) or field = \"text\" (text)"),
        "{stderr}"
    );
}
