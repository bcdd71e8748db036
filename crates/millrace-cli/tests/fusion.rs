//! Fused stages end to end: `[pipeline] fuse = true` runs neighbours with equal fixed
//! worker counts on shared workers, `fuse_auto` (on by default) does the same for
//! autoscaled neighbours with the same bounds, and the JSON and text reports mark the
//! stages that ran fused. Every command runs under the tests' timeout.

mod common;

use common::{millrace, pipeline_file, read_report, seed_sum};

const N: u64 = 100_000;

/// Three number stages (3·x², as the seed pipeline) with `workers` each, and `pipeline`'s
/// lines in `[pipeline]`.
fn three_stages(pipeline: &str, workers: [&str; 3]) -> String {
    let [a, b, c] = workers;
    format!(
        "[pipeline]\n{pipeline}\n\
         [source]\nkind = \"range\"\nend = {N}\n\
         [[stage]]\nname = \"a\"\nkind = \"square\"\nworkers = {a}\n\
         [[stage]]\nname = \"b\"\nkind = \"scale\"\nfactor = 3\nworkers = {b}\n\
         [[stage]]\nname = \"c\"\nkind = \"scale\"\nfactor = 1\nworkers = {c}\n\
         [sink]\nkind = \"sum\"\n"
    )
}

/// What one run's JSON report says per part: (name, fused, workers).
type Layout = Vec<(String, bool, u64)>;

/// Runs `text` with `--report`, checks the sum, and returns the layout and the text report.
fn run(text: &str, sets: &[&str]) -> (Layout, String) {
    let (dir, path) = pipeline_file(text);
    let report = dir.path().join("report.json");
    let mut cmd = millrace();
    cmd.arg("run").arg(&path).arg("--report").arg(&report);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd
        .assert()
        .success()
        .stdout(format!("sum: {}\n", seed_sum(N)))
        .get_output()
        .stderr
        .clone();
    let json = read_report(&report);
    let layout = json["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("a name").to_owned(),
                s["fused"].as_bool().expect("`fused` is a boolean"),
                s["workers"].as_u64().expect("workers"),
            )
        })
        .collect();
    (layout, String::from_utf8(out).expect("UTF-8"))
}

/// The `fused` flags of the source, a, b, c and the sink.
fn fused(layout: &Layout) -> Vec<bool> {
    layout.iter().map(|(_, f, _)| *f).collect()
}

/// The text report's row for `stage`.
fn row<'a>(text: &'a str, stage: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(stage))
        .unwrap_or_else(|| panic!("no row for {stage} in:\n{text}"))
}

#[test]
fn fuse_true_runs_equal_fixed_stages_on_shared_workers() {
    let (layout, text) = run(&three_stages("fuse = true", ["2", "2", "2"]), &[]);
    let names: Vec<&str> = layout.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["source", "a", "b", "c", "sink"]);
    // a starts the fused run; b and c run on its two workers.
    assert_eq!(fused(&layout), [false, false, true, true, false]);
    assert!(layout[1..4].iter().all(|(_, _, w)| *w == 2), "{layout:?}");
    // The text report marks them in the queue column; a keeps its queue.
    assert!(row(&text, "b").ends_with(" fused"), "{text}");
    assert!(row(&text, "c").ends_with(" fused"), "{text}");
    assert!(!row(&text, "a").contains("fused"), "{text}");
}

#[test]
fn fuse_true_fuses_only_equal_neighbours_and_is_off_by_default() {
    // a has 2 workers, b and c one each: only c joins b.
    let (layout, _) = run(&three_stages("fuse = true", ["2", "1", "1"]), &[]);
    assert_eq!(fused(&layout), [false, false, false, true, false]);
    // Without `fuse` and with `adaptive_fusion = false`, equal fixed stages keep their own
    // workers and queues.
    let (layout, text) = run(
        &three_stages("adaptive_fusion = false", ["2", "2", "2"]),
        &[],
    );
    assert_eq!(fused(&layout), [false; 5]);
    assert!(!text.contains("fused"), "{text}");
    let (layout, _) = run(
        &three_stages("", ["2", "2", "2"]),
        &["pipeline.adaptive_fusion=false"],
    );
    assert_eq!(fused(&layout), [false; 5]);
    // --set turns it on.
    let (layout, _) = run(&three_stages("", ["2", "2", "2"]), &["pipeline.fuse=true"]);
    assert_eq!(fused(&layout), [false, false, true, true, false]);
}

#[test]
fn equal_fixed_stages_start_fused_by_default_and_end_fused_or_split() {
    // Cheap stages stay fused; a loaded machine may make them look busy, and then they
    // split: either way the sum is right (`run` checks it) and the layout is one of two.
    let (layout, _) = run(&three_stages("", ["2", "2", "2"]), &[]);
    let fused = fused(&layout);
    assert!(
        fused == [false, false, true, true, false] || fused == [false; 5],
        "{layout:?}"
    );
}

#[test]
fn autoscaled_neighbours_are_fused_unless_fuse_auto_is_false() {
    let auto = ["\"auto\""; 3];
    // By default the three form one segment, which starts on the whole budget.
    let (layout, _) = run(&three_stages("cpu_budget = 2", auto), &[]);
    assert_eq!(fused(&layout), [false, false, true, true, false]);
    let workers: Vec<u64> = layout[1..4].iter().map(|(_, _, w)| *w).collect();
    assert!(
        workers.iter().all(|&w| w == workers[0]),
        "a fused segment shares one count: {layout:?}"
    );
    // `fuse_auto = false` keeps them apart, in the file or with --set.
    let (layout, _) = run(
        &three_stages("cpu_budget = 2\nfuse_auto = false", auto),
        &[],
    );
    assert_eq!(fused(&layout), [false; 5]);
    let (layout, _) = run(
        &three_stages("cpu_budget = 2", auto),
        &["pipeline.fuse_auto=false"],
    );
    assert_eq!(fused(&layout), [false; 5]);
    // Different bounds keep neighbours apart too.
    let (layout, _) = run(
        &three_stages(
            "cpu_budget = 2",
            ["\"auto\"", "\"auto\"", "{ min = 1, max = 1 }"],
        ),
        &[],
    );
    assert_eq!(fused(&layout), [false, false, true, false, false]);
}

#[test]
fn fixed_workers_beyond_the_budget_start_lazily_unless_lazy_workers_is_false() {
    let eight = ["8"; 3];
    let counts =
        |layout: &Layout| -> Vec<u64> { layout[1..4].iter().map(|(_, _, w)| *w).collect() };
    // Cheap stages of 8 workers on a budget of 2 start one each (fused into one run, which
    // may grow while its workers are busy, and split once it has 8: whether it ran fused at
    // the end depends on the machine's load, so only the counts are checked here; the plan's
    // unit tests pin the fusion).
    let (layout, _) = run(&three_stages("cpu_budget = 2", eight), &[]);
    assert!(
        counts(&layout).iter().all(|&w| (1..=8).contains(&w)),
        "{layout:?}"
    );
    // `lazy_workers = false` starts all 8 of each at once, in the file or with --set.
    let (layout, _) = run(
        &three_stages("cpu_budget = 2\nlazy_workers = false", eight),
        &[],
    );
    assert_eq!(counts(&layout), [8, 8, 8]);
    let (layout, _) = run(
        &three_stages("cpu_budget = 2", eight),
        &["pipeline.lazy_workers=false"],
    );
    assert_eq!(counts(&layout), [8, 8, 8]);
}
