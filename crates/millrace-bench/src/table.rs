//! The tables the benchmark prints — throughput, peak memory, targets — as aligned text or
//! as Markdown for `BENCHMARKS.md`.

use millrace::fmt::{count, rate};

use crate::matrix::{setup, MatrixResult};
use crate::targets::Verdict;
use crate::workloads::Implementation;

/// A table of text cells.
#[derive(Clone, Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    /// Whether each column is right-aligned (numbers).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns; a header starting with `>` is right-aligned (the
    /// `>` is not shown).
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            headers: headers.iter().map(|h| h.trim_start_matches('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank.
    pub fn push(&mut self, mut row: Vec<String>) {
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// The table as aligned text.
    pub fn text(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|row| row[i].chars().count())
                .chain([self.headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
                    if self.right[i] {
                        format!("{pad}{cell}")
                    } else {
                        format!("{cell}{pad}")
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = vec![line(self.headers.clone())];
        out.push(line(
            widths
                .iter()
                .map(|&w| "-".repeat(w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        ));
        for row in &self.rows {
            out.push(line(row.iter().map(String::as_str).collect()));
        }
        out.join("\n") + "\n"
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.headers.join(" | "));
        let rule: Vec<&str> = self
            .right
            .iter()
            .map(|&r| if r { "---:" } else { "---" })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }

    /// Text or Markdown.
    pub fn render(&self, markdown: bool) -> String {
        if markdown {
            self.markdown()
        } else {
            self.text()
        }
    }
}

/// A ratio, with enough digits to read small ones.
pub fn ratio(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.1e}×")
    } else if value >= 10.0 {
        format!("{value:.1}×")
    } else if value >= 0.01 {
        format!("{value:.2}×")
    } else {
        format!("{value:.4}×")
    }
}

/// Throughput: one row per implementation, with its ratios to the baselines and the ideal.
pub fn throughput(result: &MatrixResult) -> Table {
    let mut table = Table::new(&[
        "workload",
        "implementation",
        "workers / settings",
        ">N",
        ">runs",
        ">items/s",
        ">ns/item",
        ">spread",
        ">÷ sequential",
        ">÷ rayon",
        ">÷ crossbeam",
        ">÷ ideal",
    ]);
    for w in &result.workloads {
        if let Some(reason) = w.workload.pending() {
            table.push(vec![w.workload.to_string(), "—".into(), reason.into()]);
            continue;
        }
        let best = w.best_millrace().map(|row| &row.implementation);
        let against =
            |base: Option<f64>, value: f64| base.map_or("—".into(), |b| ratio(value / b));
        for row in &w.rows {
            let m = &row.measurement;
            let mut name = row.implementation.name().to_owned();
            let sweep = w
                .rows
                .iter()
                .filter(|r| matches!(r.implementation, Implementation::Millrace(_)))
                .count();
            if sweep > 1 && Some(&row.implementation) == best {
                name.push_str(" (best)");
            }
            table.push(vec![
                w.workload.to_string(),
                name,
                setup(w.workload, &row.implementation),
                count(w.n),
                m.times.len().to_string(),
                rate(m.rate()),
                format!("{:.1}", m.ns_per_item()),
                format!("{:.0}%", 100.0 * m.spread()),
                against(w.rate_of("sequential"), m.rate()),
                against(w.rate_of("rayon"), m.rate()),
                against(w.rate_of("crossbeam"), m.rate()),
                w.ideal(result.cores)
                    .map_or(String::new(), |ideal| ratio(m.rate() / ideal)),
            ]);
        }
    }
    table
}

/// Peak memory of the child runs.
pub fn peak_memory(result: &MatrixResult) -> Table {
    let mut table = Table::new(&[
        "workload",
        "implementation",
        "settings",
        ">N",
        "allocator",
        ">runs",
        ">peak RSS, median (MiB)",
        ">range (MiB)",
        ">in-flight bound (MiB)",
    ]);
    for r in &result.rss {
        table.push(vec![
            r.workload.to_string(),
            r.implementation.to_owned(),
            r.setup.clone(),
            count(r.n),
            r.allocator.label().to_owned(),
            r.peaks_kib.len().to_string(),
            format!("{:.1}", r.peak_mib()),
            match (r.peaks_kib.first(), r.peaks_kib.last()) {
                (Some(lo), Some(hi)) if lo != hi => {
                    format!("{:.1}–{:.1}", *lo as f64 / 1024.0, *hi as f64 / 1024.0)
                }
                _ => String::new(),
            },
            r.in_flight.map_or(String::new(), |items| items.to_string()),
        ]);
    }
    table
}

/// The targets of issue 3.
pub fn targets(verdicts: &[Verdict]) -> Table {
    let mut table = Table::new(&["target of", "target", "measured", "verdict"]);
    for v in verdicts {
        table.push(vec![
            v.subject.clone(),
            v.target.to_owned(),
            v.measured.clone(),
            v.status().to_owned(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables_align_numbers_right_and_words_left() {
        let mut table = Table::new(&["name", ">count"]);
        table.push(vec!["a".into(), "1".into()]);
        table.push(vec!["bbb".into(), "100".into()]);
        assert_eq!(
            table.text(),
            "name  count\n----  -----\na         1\nbbb     100\n"
        );
    }

    #[test]
    fn markdown_tables_escape_pipes_and_mark_numeric_columns() {
        let mut table = Table::new(&["name", ">count"]);
        table.push(vec!["a|b".into(), "1".into()]);
        assert_eq!(
            table.markdown(),
            "| name | count |\n|---|---:|\n| a\\|b | 1 |\n"
        );
    }
}
