//! The loader never panics: arbitrary text, and random mutations of the example files
//! (characters inserted, deleted or replaced, lines dropped, duplicated or swapped), must
//! each give a pipeline or a `ConfigError`. A short run (a few hundred cases) is part of
//! every `cargo test`; set `PROPTEST_CASES` for a longer one.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn examples() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension(), Some(e) if e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read example");
            (p, text)
        })
        .collect();
    files.sort();
    files
}

/// Loads `text` as a pipeline file, with and without an override; only panics fail.
fn load(text: &str, dir: &Path) {
    let _ = millrace_cli::config::load_str(text, "fuzz.toml", dir, &[]);
    let _ = millrace_cli::config::load_str(
        text,
        "fuzz.toml",
        dir,
        &["stage.1.workers=2".to_owned(), "source.end=7".to_owned()],
    );
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    DropLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        prop::sample::select(vec![
            '[', ']', '=', '"', '\'', '\n', '.', ',', '{', '}', '#', '0', '-', ' ', 'x', '\\', 'é',
        ]),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.lines().collect();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *edit {
        Edit::Insert(i, c) => {
            let i = at(i, chars.len() + 1);
            chars.insert(i, c);
            chars.into_iter().collect()
        }
        Edit::Delete(i) if !chars.is_empty() => {
            chars.remove(at(i, chars.len()));
            chars.into_iter().collect()
        }
        Edit::Replace(i, c) if !chars.is_empty() => {
            let i = at(i, chars.len());
            chars[i] = c;
            chars.into_iter().collect()
        }
        Edit::DropLine(i) if !lines.is_empty() => {
            lines.remove(at(i, lines.len()));
            lines.join("\n")
        }
        Edit::DuplicateLine(i) if !lines.is_empty() => {
            let i = at(i, lines.len());
            lines.insert(i, lines[i]);
            lines.join("\n")
        }
        Edit::SwapLines(a, b) if !lines.is_empty() => {
            let (a, b) = (at(a, lines.len()), at(b, lines.len()));
            lines.swap(a, b);
            lines.join("\n")
        }
        _ => text.to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in ".{0,400}") {
        load(&text, Path::new("."));
    }

    #[test]
    fn toml_shaped_text_never_panics_the_loader(
        text in r#"(\[{1,2}(pipeline|source|stage|sink)\]{1,2}\n|[a-z_]{1,10} = ("[^"\n]{0,12}"|-?[0-9_]{1,22}|[0-9.e+-]{1,8}|true|\[\]|\{ ?\}|"[0-9]+[KMG]i?B")\n){0,12}"#
    ) {
        load(&text, Path::new("."));
    }

    #[test]
    fn mutated_examples_never_panic_the_loader(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let files = examples();
        let (path, text) = which.get(&files);
        let mut text = text.clone();
        for e in &edits {
            text = apply(&text, e);
        }
        load(&text, path.parent().unwrap_or(Path::new(".")));
    }
}

#[test]
fn every_example_loads_unmutated() {
    for (path, text) in examples() {
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Err(e) = millrace_cli::config::load_str(&text, "x.toml", dir, &[]) {
            panic!("{}: {e}", path.display());
        }
    }
}
