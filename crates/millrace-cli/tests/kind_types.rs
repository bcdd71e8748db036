//! Every kind's declared types (`kinds::types`, which the loader checks between stages) are
//! what the kind really does, so the declarations cannot drift from the code:
//!
//! * each transform kind, with its defaults and with parameters that change its types, is
//!   run on one value of each type (plain, and records with and without the fields it
//!   reads): it fails the item exactly when its types say it cannot take it, and otherwise
//!   gives values of exactly the type they say, fields and all;
//! * each sink takes or refuses the same values as its types say (`stdout` through the
//!   command, below, as it writes to the process's stdout; it shares `file`'s rendering);
//! * each source gives values of its declared type;
//! * through the command: each transform kind, after each source the loader lets it
//!   follow, runs with no item failed.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::http::serve;
use common::{millrace, pipeline_file, read_report};
use millrace::{ErrorPolicy, ItemId, Pipeline};
use millrace_cli::config::{load_str, load_str_untyped};
use millrace_cli::kinds::{self, Builder, Role, SinkFault, SourceLog};
use millrace_cli::value::{Item, Record, Ty, Value};

/// The transform stages tried: every kind with its required parameters, and variants
/// whose parameters change what it reads or gives. `URL` is the test server's.
const STAGES: &[&str] = &[
    "kind = \"square\"",
    "kind = \"square\"\nfield = \"line\"\ninto = \"sq\"",
    "kind = \"scale\"\nfactor = 3",
    "kind = \"parse\"",
    "kind = \"parse\"\nfield = \"value\"\ninto = \"n\"",
    "kind = \"grep\"\npattern = '.'",
    "kind = \"grep\"\npattern = '^$'\ninvert = true\nfield = \"value\"",
    "kind = \"spin\"\nunits = 1",
    "kind = \"sleep\"\nms = 1",
    "kind = \"http\"\nurl = \"URL\"",
    "kind = \"http\"\nurl = \"URL\"\noutput = \"status\"\nfield = \"text\"",
    "kind = \"http\"\nurl = \"URL\"\ninto = \"answer\"",
    "kind = \"hash\"",
    "kind = \"hash\"\nfield = \"text\"\ninto = \"h\"",
    "kind = \"compress\"",
    "kind = \"compress\"\nfield = \"value\"",
    "kind = \"chunk\"",
    "kind = \"chunk\"\nfield = \"text\"",
];

/// The sinks tried in-process.
const SINKS: &[&str] = &[
    "kind = \"sum\"",
    "kind = \"sum\"\nfield = \"line\"",
    "kind = \"count\"",
    "kind = \"count\"\nfields = [\"line\", \"text\"]",
    "kind = \"file\"\npath = \"out.txt\"",
    "kind = \"file\"\npath = \"out.txt\"\nformat = \"json\"\nfield = \"text\"",
    "kind = \"file\"\npath = \"out.txt\"\nformat = \"bytes\"",
    "kind = \"file\"\npath = \"out.txt\"\nformat = \"bytes\"\nfield = \"data\"",
    "kind = \"null\"",
];

/// Kinds checked elsewhere than in-process: `stdout` (it writes to the test's stdout).
const THROUGH_THE_COMMAND: &[&str] = &["stdout"];

/// One value of each type, plain and in records.
fn samples() -> Vec<Value> {
    let rec = |fields: &[(&str, Value)]| {
        Value::Record(
            fields
                .iter()
                .fold(Record::new(), |r, (n, v)| r.with(n, v.clone())),
        )
    };
    let bytes = |b: &'static [u8]| Value::Bytes(Bytes::from_static(b));
    vec![
        Value::Number(7),
        Value::text("7"),
        bytes(b"7 bytes"),
        rec(&[("value", Value::Number(7))]),
        rec(&[("value", Value::text("7"))]),
        rec(&[("line", Value::Number(1)), ("text", Value::text("7"))]),
        rec(&[
            ("path", Value::text("a/b")),
            ("size", Value::Number(3)),
            ("data", bytes(b"abc")),
        ]),
        rec(&[("text", bytes(b"7"))]),
        rec(&[]),
    ]
}

/// A stage or sink table's kind and parameters, as the loader reads them (the types
/// between it and the `range` source are not checked).
fn part(table: &str, role: Role, dir: &Path) -> millrace_cli::config::schema::Part {
    let text = match role {
        Role::Transform => {
            format!("[source]\nkind = \"range\"\nend = 1\n[[stage]]\n{table}\n[sink]\nkind = \"null\"\n")
        }
        _ => format!("[source]\nkind = \"range\"\nend = 1\n[sink]\n{table}\n"),
    };
    let spec =
        load_str_untyped(&text, "p.toml", dir, &[]).unwrap_or_else(|e| panic!("{table}: {e}"));
    match role {
        Role::Transform => spec.stages[0].part.clone(),
        _ => spec.sink.part,
    }
}

fn answer_ok(_: &str) -> Option<(u16, String)> {
    Some((200, "ok".into()))
}

/// Runs one item through `stage` under `stop`; its outputs, or the run's error.
fn run_one(
    part: &millrace_cli::config::schema::Part,
    value: Value,
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<Value>, String> {
    let Builder::Transform(make) = part.kind.build else {
        panic!("{} is not a transform", part.kind.name);
    };
    let stage = make(part.kind.name, &part.params).on_error(ErrorPolicy::Stop);
    let items = vec![Item {
        id: ItemId::new(0),
        value,
    }];
    Pipeline::source(items)
        .runtime(runtime.handle().clone())
        .stage(stage)
        .collect()
        .run()
        .map(|f| f.output.into_iter().map(|i| i.value).collect())
        .map_err(|e| e.to_string())
}

#[test]
fn every_transform_fails_or_gives_exactly_what_its_types_say() {
    let server = serve(10_000, Duration::from_secs(60), answer_ok);
    let url = server.url("/items/{}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for table in STAGES {
        let table = table.replace("URL", &url);
        let part = part(&table, Role::Transform, dir.path());
        let types = (part.kind.types)(&part.params);
        let mut took = 0;
        for value in samples() {
            let input = Ty::of(&value);
            let declared = types.apply(&input);
            let shown = format!("`{table}` on {value} ({input})");
            match (declared, run_one(&part, value.clone(), &runtime)) {
                (Ok(ty), Ok(outputs)) => {
                    took += 1;
                    assert!(!outputs.is_empty(), "{shown}: no output");
                    for out in &outputs {
                        assert_eq!(Ty::of(out), ty, "{shown}: gave {out}");
                    }
                }
                (Err(m), Ok(outputs)) => {
                    panic!("{shown}: declared {m:?}, but it took it and gave {outputs:?}")
                }
                (Ok(ty), Err(e)) => panic!("{shown}: declared {ty}, but it failed: {e}"),
                (Err(_), Err(e)) => assert!(
                    e.contains("expected"),
                    "{shown}: failed for another reason than its type: {e}"
                ),
            }
        }
        assert!(took > 0, "`{table}` took none of the samples");
    }
    let covered: Vec<&str> = STAGES.iter().filter_map(|t| t.split('"').nth(1)).collect();
    for kind in kinds::all().filter(|k| k.role == Role::Transform) {
        assert!(covered.contains(&kind.name), "`{}` is not tried", kind.name);
    }
}

#[test]
fn every_sink_refuses_exactly_what_its_types_say() {
    let dir = tempfile::tempdir().unwrap();
    for table in SINKS {
        let part = part(table, Role::Sink, dir.path());
        let types = (part.kind.types)(&part.params);
        let Builder::Sink(open) = part.kind.build else {
            panic!("{} is not a sink", part.kind.name);
        };
        let mut sink = open(&part.params).unwrap();
        for (i, value) in samples().into_iter().enumerate() {
            let input = Ty::of(&value);
            let item = Item {
                id: ItemId::new(i as u64),
                value: value.clone(),
            };
            let declared = types.check(&input);
            match (declared, sink.accept(&item)) {
                (Ok(()), Ok(())) | (Err(_), Err(SinkFault::Item(_))) => {}
                (Ok(()), Err(e)) => panic!("`{table}` on {value}: declared fine, but {e:?}"),
                (Err(m), Ok(())) => panic!("`{table}` on {value}: declared {m:?}, but it took it"),
                (Err(m), Err(e)) => panic!("`{table}` on {value}: declared {m:?}, got {e:?}"),
            }
        }
        sink.finish().unwrap();
    }
    for kind in kinds::all().filter(|k| k.role == Role::Sink) {
        assert!(
            SINKS.iter().any(|t| t.split('"').nth(1) == Some(kind.name))
                || THROUGH_THE_COMMAND.contains(&kind.name),
            "`{}` is not tried",
            kind.name
        );
    }
}

#[test]
fn every_source_gives_its_declared_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "1\ntwo\n").unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/a.txt"), "abc").unwrap();
    std::fs::write(dir.path().join("d/b.bin"), [0u8, 159, 146, 150]).unwrap();
    let sources = [
        "kind = \"range\"\nend = 3",
        "kind = \"lines\"\npath = \"in.txt\"",
        "kind = \"files\"\ndir = \"d\"",
    ];
    for table in sources {
        let text = format!("[source]\n{table}\n[sink]\nkind = \"null\"\n");
        let spec = load_str(&text, "p.toml", dir.path(), &[]).unwrap();
        let declared = (spec.source.kind.types)(&spec.source.params)
            .apply(&Ty::Any)
            .unwrap();
        let Builder::Source(open) = spec.source.kind.build else {
            panic!("not a source");
        };
        let values: Vec<Value> = open(&spec.source.params, &Arc::new(SourceLog::default()))
            .unwrap()
            .collect();
        assert!(values.len() >= 2, "{table}");
        for v in &values {
            assert_eq!(Ty::of(v), declared, "{table}: gave {v}");
        }
    }
    for kind in kinds::all().filter(|k| k.role == Role::Source) {
        assert!(
            sources
                .iter()
                .any(|t| t.split('"').nth(1) == Some(kind.name)),
            "`{}` is not tried",
            kind.name
        );
    }
}

#[test]
fn every_transform_runs_clean_after_each_source_the_loader_lets_it_follow() {
    let server = serve(10_000, Duration::from_secs(60), answer_ok);
    let url = server.url("/items/{}");
    let sources = [
        "kind = \"range\"\nend = 3",
        "kind = \"lines\"\npath = \"in.txt\"",
        "kind = \"files\"\ndir = \"d\"",
    ];
    let sinks = [
        "kind = \"stdout\"\nformat = \"json\"",
        "kind = \"stdout\"\nfield = \"text\"",
    ];
    let mut ran: Vec<String> = Vec::new();
    for table in STAGES {
        let table = table.replace("URL", &url);
        for source in sources {
            for sink in sinks {
                let text = format!("[source]\n{source}\n[[stage]]\n{table}\n[sink]\n{sink}\n");
                let (dir, path) = pipeline_file(&text);
                std::fs::write(dir.path().join("in.txt"), "7\n8\n").unwrap();
                std::fs::create_dir(dir.path().join("d")).unwrap();
                std::fs::write(dir.path().join("d/a.txt"), "abc").unwrap();
                if load_str(&text, "p.toml", dir.path(), &[]).is_err() {
                    continue;
                }
                ran.extend(table.split('"').nth(1).map(str::to_owned));
                let report = dir.path().join("report.json");
                millrace()
                    .arg("run")
                    .arg(&path)
                    .arg("--quiet")
                    .arg("--report")
                    .arg(&report)
                    .assert()
                    .success();
                let json = read_report(&report);
                let totals = &json["totals"];
                assert_eq!(totals["failed"], 0, "{text}\n{json:#}");
                assert!(
                    totals["delivered"].as_u64().unwrap_or(0) > 0,
                    "{text}\n{json:#}"
                );
            }
        }
    }
    for kind in kinds::all().filter(|k| k.role == Role::Transform) {
        assert!(
            ran.iter().any(|k| k == kind.name),
            "`{}` ran after none of the sources",
            kind.name
        );
    }
}
