//! Autoscaling, wedge and async settings in pipeline files: every form of `workers`, the
//! `[pipeline]` keys, `--set` overrides of them, how `millrace check` prints them resolved,
//! and a located error with a hint for each kind of mistake.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{millrace, pipeline_file};
use millrace_cli::config::{self, ConfigError, PipelineSpec, Wedge, Workers};
use predicates::prelude::*;

const SOURCE: &str = "[source]\nkind = \"range\"\nend = 10\n";
const SINK: &str = "\n[sink]\nkind = \"sum\"\n";

fn load(text: &str, overrides: &[&str]) -> Result<PipelineSpec, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
    config::load_str(text, "p.toml", Path::new("."), &overrides)
}

/// Expects `text` to be rejected with every one of `wanted` in the message.
fn rejects(text: &str, wanted: &[&str]) {
    let err = load(text, &[]).expect_err("the file should be rejected");
    let shown = err.to_string();
    for w in wanted {
        assert!(shown.contains(w), "missing {w:?} in:\n{shown}");
    }
}

fn workers(spec: &PipelineSpec) -> Vec<Workers> {
    spec.stages.iter().map(|s| s.workers).collect()
}

const THREE: &str = "[[stage]]\nname = \"a\"\nkind = \"square\"\n\
                     [[stage]]\nname = \"b\"\nkind = \"square\"\nworkers = 3\n\
                     [[stage]]\nname = \"c\"\nkind = \"sleep\"\nms = 1\n";

#[test]
fn workers_take_a_number_auto_or_bounds() {
    let text = format!(
        "{SOURCE}[[stage]]\nkind = \"square\"\nworkers = \"auto\"\n\
         [[stage]]\nkind = \"square\"\nworkers = {{ min = 2, max = 4 }}\n\
         [[stage]]\nkind = \"square\"\nworkers = {{ max = 3 }}\n\
         [[stage]]\nkind = \"square\"\nworkers = 2\n{SINK}"
    );
    let spec = load(&text, &[]).unwrap();
    assert_eq!(
        workers(&spec),
        [
            Workers::Auto { min: 1, max: None },
            Workers::Auto {
                min: 2,
                max: Some(4)
            },
            Workers::Auto {
                min: 1,
                max: Some(3)
            },
            Workers::Fixed(2),
        ]
    );
}

#[test]
fn pipeline_autoscale_covers_stages_without_workers_but_not_async_ones() {
    let text = format!("[pipeline]\nautoscale = true\ncpu_budget = 2\n{SOURCE}{THREE}{SINK}");
    let spec = load(&text, &[]).unwrap();
    assert_eq!(
        workers(&spec),
        [
            Workers::Auto { min: 1, max: None },
            Workers::Fixed(3),
            Workers::Async
        ]
    );
    assert_eq!(spec.scaling.cpu_budget, Some(2));
    // Without it, too: autoscaling is the default.
    let spec = load(&format!("{SOURCE}{THREE}{SINK}"), &[]).unwrap();
    assert_eq!(workers(&spec)[0], Workers::Auto { min: 1, max: None });
    // `autoscale = false` gives such stages one worker.
    let text = format!("[pipeline]\nautoscale = false\n{SOURCE}{THREE}{SINK}");
    let spec = load(&text, &[]).unwrap();
    assert_eq!(workers(&spec)[0], Workers::Fixed(1));
}

#[test]
fn wedge_and_interval_settings_reach_the_spec() {
    let text = format!(
        "[pipeline]\nautoscale_interval = \"50ms\"\nwedge_timeout = \"1.5s\"\nwedge_policy = \"fail\"\n\
         {SOURCE}{THREE}{SINK}"
    );
    let spec = load(&text, &[]).unwrap();
    assert_eq!(spec.scaling.interval, Some(Duration::from_millis(50)));
    assert_eq!(
        spec.scaling.wedge,
        Some(Wedge {
            after: Duration::from_millis(1500),
            fail: true
        })
    );
    // The policy defaults to reporting only.
    let spec = load(
        &format!("[pipeline]\nwedge_timeout = \"5s\"\n{SOURCE}{THREE}{SINK}"),
        &[],
    )
    .unwrap();
    assert_eq!(
        spec.scaling.wedge,
        Some(Wedge {
            after: Duration::from_secs(5),
            fail: false
        })
    );
}

#[test]
fn fuse_settings_reach_the_spec_with_their_defaults() {
    let spec = load(&format!("{SOURCE}{THREE}{SINK}"), &[]).unwrap();
    assert!(!spec.scaling.fuse, "fuse is off by default");
    assert!(spec.scaling.fuse_auto, "fuse_auto is on by default");
    assert!(
        spec.scaling.adaptive_fusion,
        "adaptive_fusion is on by default"
    );
    let spec = load(
        &format!("[pipeline]\nadaptive_fusion = false\n{SOURCE}{THREE}{SINK}"),
        &[],
    )
    .unwrap();
    assert!(!spec.scaling.adaptive_fusion);
    let spec = load(
        &format!("{SOURCE}{THREE}{SINK}"),
        &["pipeline.adaptive_fusion=false"],
    )
    .unwrap();
    assert!(!spec.scaling.adaptive_fusion);
    let spec = load(
        &format!("[pipeline]\nfuse = true\nfuse_auto = false\n{SOURCE}{THREE}{SINK}"),
        &[],
    )
    .unwrap();
    assert!(spec.scaling.fuse);
    assert!(!spec.scaling.fuse_auto);
    // Written out, they read back the same.
    let spec = load(
        &format!("[pipeline]\nfuse = false\nfuse_auto = true\n{SOURCE}{THREE}{SINK}"),
        &[],
    )
    .unwrap();
    assert!(!spec.scaling.fuse);
    assert!(spec.scaling.fuse_auto);
    // --set turns them around, with or without a [pipeline] table in the file.
    let spec = load(
        &format!("{SOURCE}{THREE}{SINK}"),
        &["pipeline.fuse=true", "pipeline.fuse_auto=false"],
    )
    .unwrap();
    assert!(spec.scaling.fuse);
    assert!(!spec.scaling.fuse_auto);
    let spec = load(
        &format!("[pipeline]\nfuse = true\n{SOURCE}{THREE}{SINK}"),
        &["pipeline.fuse=false"],
    )
    .unwrap();
    assert!(!spec.scaling.fuse);
}

#[test]
fn overrides_set_workers_and_pipeline_settings() {
    let text = format!("{SOURCE}{THREE}{SINK}");
    let spec = load(
        &text,
        &[
            "stage.a.workers=auto",
            "stage.b.workers={min=2,max=3}",
            "pipeline.autoscale_interval=20ms",
            "pipeline.wedge_timeout=2s",
            "stage.c.concurrency=500",
            "stage.c.timeout=250ms",
        ],
    )
    .unwrap();
    assert_eq!(
        workers(&spec)[..2],
        [
            Workers::Auto { min: 1, max: None },
            Workers::Auto {
                min: 2,
                max: Some(3)
            }
        ]
    );
    assert_eq!(spec.scaling.interval, Some(Duration::from_millis(20)));
    assert_eq!(spec.stages[2].part.params.uint("concurrency"), 500);
    assert_eq!(
        spec.stages[2].part.params.duration("timeout"),
        Some(Duration::from_millis(250))
    );
}

#[test]
fn check_prints_the_settings_resolved() {
    let (_dir, path) = pipeline_file(&format!(
        "[pipeline]\nautoscale = true\ncpu_budget = 2\nwedge_timeout = \"5s\"\nwedge_policy = \"fail\"\n\
         {SOURCE}{THREE}\ntimeout = \"2s\"\n{SINK}"
    ));
    millrace()
        .arg("check")
        .arg(&path)
        .args(["--set", "stage.b.workers={min=1,max=4}"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "cpu_budget = 2\nautoscale_interval = \"200ms\"\nwedge_timeout = \"5s\"\nwedge_policy = \"fail\"\n\
             fuse = false\nfuse_auto = true\n",
        ))
        .stdout(predicate::str::contains(
            "name = \"a\"\nkind = \"square\"\nworkers = \"auto\"\n",
        ))
        .stdout(predicate::str::contains(
            "name = \"b\"\nkind = \"square\"\nworkers = { min = 1, max = 4 }\n",
        ))
        .stdout(predicate::str::contains(
            "# async: scaled by `concurrency`, not workers\n",
        ))
        .stdout(predicate::str::contains(
            "concurrency = 64\ntimeout = \"2s\"\n# emits: number\n",
        ));
}

#[test]
fn check_prints_the_fuse_settings() {
    // Without autoscaled stages `fuse_auto` has nothing to do and is left out, unless off.
    let (_dir, path) = pipeline_file(&format!(
        "[pipeline]\nfuse = true\n{SOURCE}[[stage]]\nkind = \"square\"\nworkers = 2\n{SINK}"
    ));
    millrace()
        .arg("check")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("\nfuse = true\n"))
        .stdout(predicate::str::contains("fuse_auto").not());
    millrace()
        .arg("check")
        .arg(&path)
        .args(["--set", "pipeline.fuse_auto=false"])
        .args(["--set", "pipeline.fuse=false"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\nfuse = false\nfuse_auto = false\n",
        ))
        // Every default written out: the lazy start and adaptive fusion too.
        .stdout(predicate::str::contains(
            "\nlazy_workers = true\nadaptive_fusion = true\n",
        ))
        .stdout(predicate::str::contains(
            "# wedge_timeout: not set, so no wedge watch\n",
        ));
    millrace()
        .arg("check")
        .arg(&path)
        .args(["--set", "pipeline.adaptive_fusion=false"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\nadaptive_fusion = false\n"));
}

#[test]
fn mistakes_in_workers_are_located_with_a_hint() {
    rejects(
        &format!("{SOURCE}[[stage]]\nkind = \"square\"\nworkers = \"aut\"\n{SINK}"),
        &[
            "p.toml:6:11: `workers` must be a number from 1 to 1024, \"auto\", or { min = N, max = N }",
            "did you mean `auto`?",
        ],
    );
    rejects(
        &format!("{SOURCE}[[stage]]\nkind = \"square\"\nworkers = {{ min = 1, mx = 4 }}\n{SINK}"),
        &[
            "p.toml:6:22: unknown key `mx` in `workers`",
            "did you mean `max`?",
        ],
    );
    rejects(
        &format!("{SOURCE}[[stage]]\nkind = \"square\"\nworkers = {{ min = 3, max = 2 }}\n{SINK}"),
        &["`workers.max` (2) must be at least `workers.min` (3)"],
    );
    rejects(
        &format!("{SOURCE}[[stage]]\nkind = \"square\"\nworkers = {{ min = 0 }}\n{SINK}"),
        &["`workers.min` must be an integer from 1 to 1024, found an integer 0"],
    );
    rejects(
        &format!("{SOURCE}[[stage]]\nkind = \"sleep\"\nms = 1\nworkers = 16\n{SINK}"),
        &[
            "p.toml:7:11: `workers` does not apply to `sleep`: `sleep` is an async stage",
            "set `concurrency`",
        ],
    );
    // Said beside a bad parameter of the same stage, not a round later (a new user's trial).
    rejects(
        &format!("{SOURCE}[[stage]]\nkind = \"sleep\"\nms = -1\nworkers = 16\n{SINK}"),
        &[
            "p.toml:7:11: `workers` does not apply to `sleep`: `sleep` is an async stage",
            "p.toml:6:6: `ms` must be",
        ],
    );
}

#[test]
fn mistakes_in_pipeline_settings_are_located_with_a_hint() {
    let with = |pipeline: &str| format!("[pipeline]\n{pipeline}\n{SOURCE}{THREE}{SINK}");
    rejects(
        &with("autoscal = true"),
        &[
            "p.toml:2:1: unknown key `autoscal` in [pipeline]",
            "did you mean `autoscale`?",
        ],
    );
    rejects(
        &with("autoscale = \"yes\""),
        &["`autoscale` must be true or false, found a string \"yes\""],
    );
    rejects(
        &with("fuse = \"yes\""),
        &["p.toml:2:8: `fuse` must be true or false, found a string \"yes\""],
    );
    rejects(
        &with("fuse_auto = 1"),
        &["p.toml:2:13: `fuse_auto` must be true or false, found an integer 1"],
    );
    rejects(
        &with("fuze = true"),
        &[
            "p.toml:2:1: unknown key `fuze` in [pipeline]",
            "did you mean `fuse`?",
        ],
    );
    rejects(
        &with("fuse_autos = false"),
        &[
            "p.toml:2:1: unknown key `fuse_autos` in [pipeline]",
            "did you mean `fuse_auto`?",
        ],
    );
    rejects(
        &with("cpu_budget = 0"),
        &["`cpu_budget` must be an integer from 1 to 1024"],
    );
    rejects(
        &with("autoscale_interval = 200"),
        &[
            "p.toml:2:22: `autoscale_interval` must be a duration like \"250ms\" or \"2s\"",
            "write the unit: \"200ms\"",
        ],
    );
    rejects(
        &with("wedge_timeout = \"5 parsecs\""),
        &[
            "`wedge_timeout` must be a duration",
            "unknown unit `parsecs`",
        ],
    );
    rejects(
        &with("wedge_timeout = \"5s\"\nwedge_policy = \"fial\""),
        &[
            "`wedge_policy` must be one of report, fail, found \"fial\"",
            "did you mean `fail`?",
        ],
    );
    rejects(
        &with("wedge_policy = \"fail\""),
        &["`wedge_policy` has no effect without `wedge_timeout`"],
    );
    rejects(
        &with("autoscale = true\nworkers = 2"),
        &["`workers = 2` and `autoscale = true` in [pipeline] disagree"],
    );
    rejects(
        &format!("{SOURCE}[[stage]]\nkind = \"sleep\"\nms = 1\ntimeout = \"0s\"\n{SINK}"),
        &["`timeout` must be a duration like \"250ms\" or \"2s\", not zero"],
    );
}
