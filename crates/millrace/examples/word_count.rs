//! Word count with a flat-map: documents are split into lines, each line is an item of its
//! own (`#3.12` is line 12 of document 3), and every line's count travels back to the stage
//! that split the documents, which adds them up per document. A line that cannot be read
//! fails alone, named by its own id; the report balances (documents in + lines made =
//! delivered + filtered + failed).
//!
//! Run with `cargo run --release -p millrace --example word_count -- FILE...` (with no
//! files, it counts a built-in text).

use std::collections::BTreeMap;

use millrace::{Outcome, Pipeline, Stage};

/// What the splitting stage learns of one document from its lines.
#[derive(Debug, Default)]
struct Counted {
    lines: u64,
    words: u64,
    failed_lines: Vec<String>,
}

const BUILT_IN: &str = "A millrace is the channel that carries water to a mill's wheel.\n\
    Here, bounded channels carry data between stages,\n\
    and each stage turns its own wheel with as many workers as its work needs.\n\
    \u{fffd} this line holds a replacement character and is refused.\n";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let documents: Vec<(String, String)> = if paths.is_empty() {
        vec![
            ("built-in #1".to_owned(), BUILT_IN.to_owned()),
            ("built-in #2".to_owned(), BUILT_IN.repeat(3)),
        ]
    } else {
        paths
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|text| (p.clone(), text))
                    .map_err(|e| format!("cannot read {p}: {e}"))
            })
            .collect::<Result<_, _>>()?
    };
    let names: Vec<String> = documents.iter().map(|(n, _)| n.clone()).collect();

    let finished = Pipeline::source(documents.into_iter().map(|(_, text)| text))
        // Each line becomes an item with an id of its own: `#document.line`.
        .stage(Stage::flat_map("lines", |text: String| {
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        }))
        .stage(
            Stage::try_map("words", |line: &String| {
                if line.contains('\u{fffd}') {
                    return Err("the line is not valid text");
                }
                Ok(line.split_whitespace().count() as u64)
            })
            .workers(2),
        )
        .reply_to(
            "lines",
            BTreeMap::<u64, Counted>::new(),
            |mut docs, id, reply| {
                let doc = docs.entry(id.origin()).or_default();
                match reply {
                    Outcome::Output(words) => {
                        doc.lines += 1;
                        doc.words += words;
                    }
                    Outcome::Failed(e) => doc.failed_lines.push(e.to_string()),
                    _ => {}
                }
                docs
            },
        )
        .run()?;

    for (doc, counted) in &finished.output {
        let name = &names[*doc as usize];
        println!("{name}: {} words on {} lines", counted.words, counted.lines);
        for failure in &counted.failed_lines {
            println!("  {failure}");
        }
    }
    let report = &finished.report;
    println!("{report}");
    if !report.is_balanced() {
        return Err("the report does not balance".into());
    }
    Ok(())
}
