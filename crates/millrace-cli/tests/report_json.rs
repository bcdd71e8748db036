//! `--report FILE.json`: the report follows its documented schema (REPORT_SCHEMA.md):
//! every documented field is there, and every field there is documented; the autoscaling
//! and wedge fields (version 2) carry what happened.

mod common;

use std::collections::BTreeSet;

use common::{millrace, pipeline_file, read_report};

/// The field paths the schema document lists (`stages[].name`, `totals.done`, …).
fn documented_fields() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("REPORT_SCHEMA.md"),
    )
    .expect("REPORT_SCHEMA.md");
    let mut fields = BTreeSet::new();
    for line in doc.lines() {
        let Some(first) = line.strip_prefix("| `") else {
            continue;
        };
        let cell = first.split(" |").next().unwrap_or("");
        let mut prefix = String::new();
        for name in cell.split(", ") {
            let name = name.trim_matches('`');
            let full = if let Some(rest) = name.strip_prefix('.') {
                format!("{prefix}.{rest}")
            } else {
                prefix = name
                    .rsplit_once('.')
                    .map_or(String::new(), |(p, _)| p.to_owned());
                name.to_owned()
            };
            fields.insert(full);
        }
    }
    fields
}

/// Arrays whose elements are objects with documented fields.
const WALKED: &[&str] = &[
    "stages",
    "errors.sample",
    "decisions",
    "worker_history",
    "wedges",
    "in_progress",
    "errors.by_kind",
    "timeline.parts",
];

/// Objects whose keys are data (a sink's result, stage names), not fields.
const OPAQUE: &[&str] = &["result", "worker_history[].workers"];

/// Every leaf path of `value` (arrays as `[]`; the elements of the [`WALKED`] arrays are
/// walked, other arrays are leaves).
fn leaf_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) if !OPAQUE.contains(&prefix) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(v, &path, out);
            }
        }
        serde_json::Value::Array(items) if WALKED.contains(&prefix) => {
            out.insert(prefix.to_owned());
            for item in items {
                leaf_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn report_has_every_documented_field_and_nothing_undocumented() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"nums.txt\"\n\
         [[stage]]\nkind = \"parse\"\ndead_letter = \"dead.jsonl\"\n\
         [[stage]]\nkind = \"square\"\n[sink]\nkind = \"sum\"\n",
    );
    std::fs::write(dir.path().join("nums.txt"), "1\n2\nthree\n4\n").unwrap();
    let report = dir.path().join("report.json");
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .arg("--allow-failures")
        .assert()
        .success()
        .stdout("sum: 21\n");
    let json = read_report(&report);
    assert_eq!(json["schema"], "millrace-report");
    assert_eq!(json["version"], 3);
    assert_eq!(json["outcome"], "completed");
    assert_eq!(json["result"]["sum"], 21);
    assert_eq!(json["totals"]["failed"], 1);
    assert_eq!(json["errors"]["sample"][0]["item"], 2);
    assert_eq!(json["errors"]["sample"][0]["stage"], "parse");
    assert_eq!(json["dead_letters"][0]["items"], 1);
    let stage_names: Vec<&str> = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(stage_names, ["source", "parse", "square", "sink"]);

    // A run with autoscaling and a wedge fills the version 2 arrays.
    let (wedge_dir, wedge_path) = pipeline_file(WEDGED);
    let wedge_report = wedge_dir.path().join("report.json");
    millrace()
        .arg("run")
        .arg(&wedge_path)
        .arg("--report")
        .arg(&wedge_report)
        .assert()
        .code(1);
    let wedged: serde_json::Value = read_report(&wedge_report);

    let mut present = BTreeSet::new();
    leaf_paths(&json, "", &mut present);
    leaf_paths(&wedged, "", &mut present);
    let documented = documented_fields();
    let undocumented: Vec<&String> = present.difference(&documented).collect();
    // A documented object (`bottleneck`) is present when its fields are; the fields of an
    // array's elements are excused when the array is empty in both runs (`decisions`: the
    // autoscaler's choices depend on timing; tests/tune.rs checks them).
    let empty_arrays: Vec<String> = WALKED
        .iter()
        .filter(|a| {
            [&json, &wedged].iter().all(|j| {
                j.pointer(&format!("/{}", a.replace('.', "/")))
                    .and_then(|v| v.as_array())
                    .is_some_and(Vec::is_empty)
            })
        })
        .map(|a| format!("{a}[]."))
        .collect();
    let missing: Vec<&String> = documented
        .difference(&present)
        .filter(|d| !present.iter().any(|p| p.starts_with(&format!("{d}."))))
        .filter(|d| !empty_arrays.iter().any(|a| d.starts_with(a.as_str())))
        // Only a scaled-out run has `remote` (tests/scale_out.rs, with the `nats` feature).
        .filter(|d| *d != "remote" && !d.starts_with("remote."))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in REPORT_SCHEMA.md: {undocumented:?}"
    );
    assert!(missing.is_empty(), "documented but absent: {missing:?}");
}

/// Ten items that wait a minute each, an autoscaled stage (on a budget of 2), and a wedge
/// watch that fails the run after 300 ms without progress: the run ends at once, failed,
/// with the diagnosis.
const WEDGED: &str = "[pipeline]\nwedge_timeout = \"300ms\"\nwedge_policy = \"fail\"\n\
     autoscale_interval = \"50ms\"\ncpu_budget = 2\n\
     [source]\nkind = \"range\"\nend = 10\n\
     [[stage]]\nkind = \"square\"\nworkers = \"auto\"\n\
     [[stage]]\nkind = \"sleep\"\nms = 60000\n[sink]\nkind = \"count\"\n";

#[test]
fn a_wedge_fails_the_run_and_is_in_the_report() {
    let (dir, path) = pipeline_file(WEDGED);
    let report = dir.path().join("report.json");
    // The stage sleeps for a minute per item: only the wedge detector ends the run before
    // the command's timeout (which would kill it, and fail the exit code check).
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "the pipeline is wedged: no item has moved",
        ))
        .stderr(predicates::str::contains("wedged at "));
    let json = read_report(&report);
    assert_eq!(json["outcome"], "failed");
    let wedge = &json["wedges"][0];
    assert!(wedge["at_seconds"].as_f64().unwrap() >= 0.3, "{wedge}");
    assert!(
        wedge["diagnosis"].as_str().unwrap().contains("`sleep`"),
        "{wedge}"
    );
    // The controller ran, so the worker counts over time start with the first ones: the
    // only autoscaled stage starts at an even share of the budget, all of it (async stages
    // take none).
    assert_eq!(json["worker_history"][0]["workers"]["square"], 2);
    assert_eq!(json["worker_history"][0]["workers"]["sleep"], 1);
    assert_eq!(json["totals"]["cancelled"], 10);
}

#[test]
fn pipeline_file_can_ask_for_the_report() {
    let (dir, path) = pipeline_file(
        "[pipeline]\nreport = \"out/report.json\"\n\
         [source]\nkind = \"range\"\nend = 100\n[sink]\nkind = \"count\"\n",
    );
    std::fs::create_dir(dir.path().join("out")).unwrap();
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--quiet")
        .assert()
        .success()
        .stdout("count: 100\n");
    let json = read_report(&dir.path().join("out/report.json"));
    assert_eq!(json["result"]["count"], 100);
    assert_eq!(json["totals"]["done"], 100);
}

/// Issue 14, bug 7: sums above 2^53 lose precision in readers that hold JSON numbers as
/// doubles; `result.sum_text` has the same sum as a string, exact everywhere.
#[test]
fn a_sum_above_2_pow_53_is_also_written_as_text() {
    let start: u64 = 1 << 60;
    let (dir, path) = pipeline_file(&format!(
        "[source]\nkind = \"range\"\nstart = {start}\nend = {}\n[sink]\nkind = \"sum\"\n",
        start + 3
    ));
    let report = dir.path().join("report.json");
    let expected = 3 * start + 3;
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .assert()
        .success()
        .stdout(format!("sum: {expected}\n"));
    let text = std::fs::read_to_string(&report).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["result"]["sum_text"], expected.to_string());
    assert_eq!(json["result"]["sum"].as_u64(), Some(expected));
    // As a double, the number would be another one: the text is what keeps it exact.
    assert_ne!((expected as f64) as u64, expected);
}

#[test]
fn the_timeline_ends_on_every_parts_totals_and_only_grows() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"range\"\nend = 20000\n[[stage]]\nkind = \"square\"\n[sink]\nkind = \"count\"\n",
    );
    let report = dir.path().join("report.json");
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .arg("--quiet")
        .assert()
        .success();
    let json = read_report(&report);
    let timeline = &json["timeline"];
    let at = timeline["at_seconds"].as_array().unwrap();
    assert!(at.len() >= 2, "{timeline}");
    let wall = json["wall_seconds"].as_f64().unwrap();
    assert!((at.last().unwrap().as_f64().unwrap() - wall).abs() < 1e-9);
    let parts = timeline["parts"].as_array().unwrap();
    let stages = json["stages"].as_array().unwrap();
    assert_eq!(parts.len(), stages.len());
    for (part, stage) in parts.iter().zip(stages) {
        assert_eq!(part["name"], stage["name"]);
        for field in ["items_in", "items_out", "filtered", "failed"] {
            let series: Vec<u64> = part[field]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(series.len(), at.len());
            assert!(
                series.windows(2).all(|w| w[0] <= w[1]),
                "{field}: {series:?}"
            );
            assert_eq!(
                series.last().copied(),
                stage[field].as_u64(),
                "{field} of {}",
                stage["name"]
            );
        }
    }
}
