//! Each class of mistake in a pipeline file or on the command line: its exit code (2 for
//! bad config or usage, 1 for a pipeline that fails) and a message that says where (file,
//! line, column), what is wrong, and what was probably meant.

mod common;

use common::{millrace, pipeline_file};
use predicates::prelude::*;

/// Runs `millrace check` on `text`; expects exit 2 and every one of `wanted` in stderr.
fn rejects(text: &str, wanted: &[&str]) {
    let (dir, path) = pipeline_file(text);
    let assert = millrace()
        .arg("check")
        .arg(&path)
        .assert()
        .code(2)
        .stdout("");
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    let shown = path.display().to_string();
    for w in wanted {
        let w = w.replace("FILE", &shown);
        assert!(stderr.contains(&w), "missing {w:?} in:\n{stderr}");
    }
    drop(dir);
}

const SOURCE: &str = "[source]\nkind = \"range\"\nend = 10\n";
const SINK: &str = "\n[sink]\nkind = \"sum\"\n";

#[test]
fn misspelt_stage_key_is_located_with_a_suggestion() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"square\"\nwokers = 4\n{SINK}"),
        &[
            "FILE:7:1: unknown key `wokers` in [[stage]] #1 (`square`)",
            "7 | wokers = 4",
            "  | ^^^^^^",
            "help: did you mean `workers`?",
        ],
    );
}

#[test]
fn misspelt_kind_parameter_is_an_unknown_key() {
    rejects(
        "[source]\nkind = \"range\"\nedn = 10\n[sink]\nkind = \"sum\"\n",
        &[
            "FILE:3:1: unknown key `edn` in [source]",
            "did you mean `end`?",
        ],
    );
}

#[test]
fn misspelt_table_is_an_unknown_key() {
    rejects(
        &format!("{SOURCE}\n[[stages]]\nkind = \"square\"\n{SINK}"),
        &["FILE:5:3: unknown key `stages`", "did you mean `stage`?"],
    );
}

#[test]
fn misspelt_kind_gets_a_suggestion() {
    rejects(
        "[source]\nkind = \"rnage\"\nend = 10\n[sink]\nkind = \"sum\"\n",
        &[
            "FILE:2:8: unknown source kind `rnage`",
            "did you mean `range`?",
        ],
    );
}

#[test]
fn kind_in_the_wrong_place_says_what_it_is() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"count\"\n{SINK}"),
        &[
            "FILE:6:8: unknown transform kind `count`",
            "`count` is a sink kind",
        ],
    );
}

#[test]
fn wrong_value_type_names_expected_and_found() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"square\"\nworkers = \"four\"\n{SINK}"),
        &[
            "FILE:7:11: `workers` must be a number from 1 to 1024, \"auto\", or { min = N, max = N }, found \"four\"",
        ],
    );
}

#[test]
fn value_out_of_range_is_rejected() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"square\"\ncapacity = 0\n{SINK}"),
        &["FILE:7:12: `capacity` must be an integer from 1 to 16777216, found 0"],
    );
}

#[test]
fn missing_required_parameter_is_named() {
    rejects(
        "[source]\nkind = \"range\"\n[sink]\nkind = \"sum\"\n",
        &["FILE:1:1: [source] (kind `range`) needs `end`"],
    );
}

#[test]
fn missing_source_or_sink_is_an_error() {
    rejects(
        "[sink]\nkind = \"sum\"\n",
        &["FILE: the pipeline has no [source]"],
    );
    rejects(SOURCE, &["FILE: the pipeline has no [sink]"]);
}

#[test]
fn invalid_toml_is_located() {
    rejects("[source\nkind = \"range\"\n", &["FILE:1:8: invalid TOML"]);
}

#[test]
fn invalid_regex_is_located() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"grep\"\npattern = \"(unclosed\"\n{SINK}"),
        &["FILE:7:11: `pattern` is not a valid regex"],
    );
}

#[test]
fn misspelt_choice_gets_a_suggestion() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"square\"\non_error = \"skp\"\n{SINK}"),
        &[
            "FILE:7:12: `on_error` must be one of skip, retry, stop, found \"skp\"",
            "did you mean `skip`?",
        ],
    );
}

#[test]
fn retry_settings_without_retry_policy_are_rejected() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"square\"\nretry_attempts = 5\n{SINK}"),
        &["FILE:7:18: `retry_attempts` has no effect: the error policy here is `skip`"],
    );
}

#[test]
fn inconsistent_parameters_are_rejected() {
    rejects(
        &format!(
            "{SOURCE}\n[[stage]]\nkind = \"chunk\"\nmin_size = \"64KiB\"\navg_size = \"8KiB\"\n{SINK}"
        ),
        &["FILE:7:12: [[stage]] #1 (`chunk`): `min_size` (65536 bytes) must not exceed `avg_size` (8192 bytes)"],
    );
}

/// Issue 14, bug 6: `avg_size = "8KiB"` alone clashed with `min_size`'s default (16 KiB),
/// and the error had no line, no stage and no word of the default.
#[test]
fn a_setting_that_clashes_with_a_default_names_the_line_the_stage_and_the_default() {
    rejects(
        &format!("{SOURCE}\n[[stage]]\nname = \"cut\"\nkind = \"chunk\"\navg_size = \"8KiB\"\n{SINK}"),
        &[
            "FILE:8:12: stage `cut` (kind `chunk`): `min_size` (16384 bytes, its default) must not exceed `avg_size` (8192 bytes)",
            "8 | avg_size = \"8KiB\"",
            "help: set `min_size` too, to at most 8192, or raise `avg_size` to at least 16384",
        ],
    );
    rejects(
        &format!("{SOURCE}\n[[stage]]\nkind = \"chunk\"\nmax_size = \"32KiB\"\n{SINK}"),
        &[
            "FILE:7:12: [[stage]] #1 (`chunk`): `avg_size` (65536 bytes, its default) must not exceed `max_size` (32768 bytes)",
            "help: set `avg_size` too, to at most 32768, or raise `max_size` to at least 65536",
        ],
    );
}

#[test]
fn duplicate_stage_names_are_rejected() {
    rejects(
        &format!(
            "{SOURCE}\n[[stage]]\nkind = \"square\"\nname = \"s\"\n[[stage]]\nkind = \"square\"\nname = \"s\"\n{SINK}"
        ),
        &["FILE:10:8: two stages are named `s`"],
    );
}

#[test]
fn unreadable_pipeline_file_is_a_usage_error() {
    millrace()
        .args(["run", "no/such/pipeline.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no/such/pipeline.toml: cannot read the pipeline file",
        ));
}

#[test]
fn bad_override_points_at_the_set_option() {
    let (_dir, path) = pipeline_file(&format!("{SOURCE}\n[[stage]]\nkind = \"square\"\n{SINK}"));
    millrace()
        .arg("run")
        .arg(&path)
        .args(["--set", "stage.square.workers=many"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--set stage.square.workers=many: `workers` must be a number from 1 to 1024",
        ));
    millrace()
        .arg("run")
        .arg(&path)
        .args(["--set", "stage.sqare.workers=2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no stage is named `sqare`"))
        .stderr(predicate::str::contains("did you mean `square`?"));
    // A stage by position that is out of range says so.
    millrace()
        .arg("run")
        .arg(&path)
        .args(["--set", "stage.5.workers=2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no stage 5: stages count from 1, and the pipeline has 1 stage",
        ))
        .stderr(predicate::str::contains("the stages are: square"));
    millrace()
        .arg("run")
        .arg(&path)
        .args(["--set", "workers"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected KEY=VALUE"));
}

#[test]
fn a_number_given_by_set_where_a_string_is_wanted_says_how_to_quote_it() {
    let (_dir, path) = pipeline_file(&format!(
        "{SOURCE}\n[[stage]]\nname = \"g\"\nkind = \"grep\"\npattern = \"x\"\n{SINK}"
    ));
    millrace()
        .arg("check")
        .arg(&path)
        .args(["--set", "stage.g.pattern=123"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`pattern` must be a regex string, found an integer 123",
        ))
        .stderr(predicate::str::contains(
            "to give the string \"123\", quote it: --set 'stage.g.pattern=\"123\"'",
        ));
}

/// Issue 14, bug 7: a stage named `a.b` could not be targeted by `--set`; its name is
/// quoted as in a TOML dotted key, and the unquoted form says so.
#[test]
fn a_stage_name_with_a_dot_is_quoted_in_set() {
    let (_dir, path) = pipeline_file(&format!(
        "{SOURCE}\n[[stage]]\nname = \"a.b\"\nkind = \"square\"\n\n[[stage]]\nname = \"x=y\"\nkind = \"square\"\n{SINK}"
    ));
    let out = millrace()
        .arg("check")
        .arg(&path)
        .args(["--set", "stage.\"a.b\".workers=3"])
        .args(["--set", "stage.'x=y'.workers=2"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let after = |name: &str| {
        let at = text.find(&format!("name = \"{name}\"")).expect(name);
        let rest = &text[at..];
        let line = rest.lines().find(|l| l.starts_with("workers")).unwrap();
        line.to_owned()
    };
    assert_eq!(after("a.b"), "workers = 3", "{text}");
    assert_eq!(after("x=y"), "workers = 2", "{text}");
    millrace()
        .arg("check")
        .arg(&path)
        .args(["--set", "stage.a.b.workers=3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "help: a stage name with a dot in it is quoted: stage.\"a.b\".workers",
        ));
}

#[test]
fn usage_errors_exit_2() {
    millrace()
        .args(["run", "--bogus"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unexpected argument '--bogus'"));
    millrace()
        .args(["check"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("FILE"));
    millrace()
        .args(["stages", "gerp"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean `grep`?"));
    millrace()
        .args(["run", "--set", "source.end=1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--set needs a pipeline file"));
}

#[test]
fn missing_input_fails_the_pipeline_with_exit_1() {
    let (_dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"missing.log\"\n[sink]\nkind = \"count\"\n",
    );
    millrace()
        .arg("run")
        .arg(&path)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("cannot open"))
        .stderr(predicate::str::contains("missing.log"));
}

#[test]
fn item_failing_under_stop_fails_the_pipeline_with_exit_1() {
    let (dir, path) = pipeline_file(
        "[pipeline]\non_error = \"stop\"\n[source]\nkind = \"lines\"\npath = \"nums.txt\"\n\
         [[stage]]\nkind = \"parse\"\n[sink]\nkind = \"sum\"\n",
    );
    std::fs::write(dir.path().join("nums.txt"), "1\n2\nthree\n4\n").unwrap();
    millrace()
        .arg("run")
        .arg(&path)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("FAILED"))
        .stderr(predicate::str::contains(
            "stage `parse` failed on item #2: line 3: cannot parse \"three\" as a number",
        ));
}

#[test]
fn help_is_everywhere_with_examples() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["check", "--help"],
        vec!["stages", "--help"],
    ] {
        millrace()
            .args(&args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn a_duration_humantime_cannot_read_is_quoted_and_underlined() {
    rejects(
        &format!("[pipeline]\nwedge_timeout = \"10 sex\"\n{SOURCE}{SINK}"),
        &["millrace: error: FILE:2:17: `wedge_timeout` must be a duration like \"250ms\" or \"2s\", \
           found \"10 sex\": unknown unit `sex` (use ns, us, ms, s, m or h)\n  \
           |\n\
           2 | wedge_timeout = \"10 sex\"\n  \
           |                 ^^^^^^^^\n"],
    );
}

#[test]
fn the_forms_of_duration_in_use_are_accepted() {
    for d in ["100ms", "2s", "1.5s", "1m30s", "1m 30s", "10us", "1_500ms"] {
        let (dir, path) = pipeline_file(&format!(
            "[pipeline]\nwedge_timeout = \"{d}\"\n{SOURCE}{SINK}"
        ));
        millrace().arg("check").arg(&path).assert().success();
        drop(dir);
    }
}

#[test]
fn every_error_of_a_file_is_reported_at_once_in_file_order() {
    rejects(
        "[source]\nkind = \"range\"\nedn = 10\n\n\
         [[stage]]\nkind = \"square\"\nwokers = 4\n\n\
         [[stage]]\nkind = \"grep\"\npattern = \"(\"\n\n\
         [sink]\nkind = \"sum\"\non_error = \"ski\"\n",
        &[
            "FILE:3:1: unknown key `edn` in [source]",
            "FILE:7:1: unknown key `wokers`",
            "FILE:11:11: `pattern` is not a valid regex",
            "FILE:15:12: `on_error` must be one of skip, stop",
            "FILE: 4 errors",
        ],
    );
}
