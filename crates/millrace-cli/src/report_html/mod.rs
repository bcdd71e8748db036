//! The report as one self-contained HTML page (`--report FILE.html`): everything inline
//! (styles, SVG drawings), no script and nothing fetched, so the file opens anywhere,
//! offline, and can be attached to a ticket as it is.
//!
//! The page shows, from the run's [`Summary`] and its report's timeline
//! (`millrace::timeline`): the totals; the pipeline as a chain of stages (kind, workers,
//! busy share, the fill of each input queue, the bottleneck outlined); a stacked
//! busy / blocked / idle chart per part over the run; each stage's worker count over time
//! with the autoscaler's decisions marked; throughput over time; latency percentiles; and
//! the errors by stage and kind with the first few in full. Its `charts` module draws the SVG.

mod charts;

use std::fmt::Write as _;
use std::path::Path;

use crate::summary::Summary;

/// How many errors the page shows in full.
const ERRORS_SHOWN: usize = 10;
/// How many decisions the page lists (all are marked on the chart).
const DECISIONS_LISTED: usize = 50;

/// `text` with `&`, `<`, `>` and quotes escaped, for HTML text and attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 980px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 2px; }
.sub { color: #555; margin-top: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.outcome-completed { color: #2a7d2a; } .outcome-failed, .outcome-aborted { color: #c1121f; }
.legend span { margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px; vertical-align: -1px; }
.bottleneck { background: #fde2e4; border-left: 4px solid #c1121f; padding: 6px 10px; }
.errors li { font-family: ui-monospace, monospace; font-size: 12px; }
";

/// The whole page.
pub fn render(s: &Summary) -> String {
    let r = &s.report;
    let t = s.totals();
    let wall = r.wall().as_secs_f64().max(1e-9);
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>millrace report: {name}</title><style>{STYLE}</style></head><body>
<h1>millrace report: {name}</h1>
<p class="sub">{file}outcome <b class="outcome-{outcome}">{outcome}</b> (exit code {code}) · {wall:.3} s · {rate} delivered</p>
"#,
        name = esc(&s.pipeline),
        file = s
            .file
            .as_deref()
            .map_or(String::new(), |f| format!("{} · ", esc(f))),
        outcome = s.outcome.as_str(),
        code = s.exit_code(),
        rate = charts::rate(if wall > 0.0 {
            t.delivered as f64 / wall
        } else {
            0.0
        }),
    );
    if let Some(e) = &s.error {
        let _ = write!(html, "<p class=\"bottleneck\">error: {}</p>", esc(e));
    }
    let _ = write!(
        html,
        "<table><tr><th>items in</th><th>expanded</th><th>delivered</th><th>filtered</th><th>failed</th><th>cancelled</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        t.items_in, t.expanded, t.delivered, t.filtered, t.failed, t.cancelled
    );
    pipeline_section(&mut html, s);
    time_sections(&mut html, s, wall);
    latency_section(&mut html, s);
    errors_section(&mut html, s);
    html.push_str("<p class=\"sub\">written by the millrace command; every chart is drawn from the run's timeline, sampled while it ran.</p>\n</body></html>\n");
    html
}

/// The chain of stages and the bottleneck.
fn pipeline_section(html: &mut String, s: &Summary) {
    let r = &s.report;
    let kind = |i: usize| s.kinds.get(i).and_then(|k| k.as_deref());
    let mut parts = vec![(r.source(), kind(0))];
    parts.extend(
        r.stages()
            .iter()
            .enumerate()
            .map(|(i, st)| (st, kind(i + 1))),
    );
    parts.push((r.sink(), kind(r.stages().len() + 1)));
    let bottleneck = s.bottleneck();
    html.push_str("<h2>Pipeline</h2><div class=\"scroll\">");
    html.push_str(&charts::chain(
        &parts,
        bottleneck.as_ref().map(|b| b.0.as_str()),
    ));
    html.push_str("</div>");
    match &bottleneck {
        Some((stage, reason)) => {
            let _ = write!(
                html,
                "<p class=\"bottleneck\">bottleneck: <b>{}</b>: {}</p>",
                esc(stage),
                esc(reason)
            );
        }
        None => html.push_str("<p>the run did too little to name a bottleneck.</p>"),
    }
}

/// The charts over time: states per part, workers with decisions, throughput.
fn time_sections(html: &mut String, s: &Summary, wall: f64) {
    let r = &s.report;
    let timeline = r.timeline();
    let steps: Vec<_> = timeline.steps().collect();
    let _ = write!(
        html,
        "<h2>Busy, blocked and idle over time</h2><p class=\"legend\">\
         <span><i style=\"background:{}\"></i>busy</span><span><i style=\"background:{}\"></i>blocked (waiting for room downstream)</span>\
         <span><i style=\"background:{}\"></i>idle (waiting for input)</span> · each bar is one sample interval ({} ms); its height, the share of the part's worker time</p>",
        charts::BUSY,
        charts::BLOCKED,
        charts::IDLE,
        timeline.interval().as_millis()
    );
    if steps.is_empty() {
        html.push_str("<p>the run was not sampled long enough to draw its time.</p>");
    }
    for (i, name) in timeline.parts().iter().enumerate() {
        if steps.is_empty() {
            break;
        }
        let _ = write!(html, "<h3>{}</h3>", esc(name));
        html.push_str(&charts::states(name, i, &steps, wall));
    }
    html.push_str("<h2>Workers over time</h2>");
    html.push_str(&charts::workers_legend(r));
    html.push_str(&charts::workers(r, wall));
    let decisions: Vec<_> = r.decisions().collect();
    if decisions.is_empty() {
        html.push_str("<p>no autoscaling decisions: every stage kept its workers.</p>");
    } else {
        html.push_str("<table><tr><th>at</th><th>stage</th><th>workers</th><th>why</th></tr>");
        for (at, d) in decisions.iter().take(DECISIONS_LISTED) {
            let _ = write!(
                html,
                "<tr><td>{:.2} s</td><td>{}</td><td>{} → {}</td><td style=\"text-align:left\">{}</td></tr>",
                at.as_secs_f64(),
                esc(&d.name),
                d.from,
                d.to,
                esc(&d.reason.to_string())
            );
        }
        html.push_str("</table>");
        if decisions.len() > DECISIONS_LISTED {
            let _ = write!(
                html,
                "<p>… and {} more.</p>",
                decisions.len() - DECISIONS_LISTED
            );
        }
    }
    html.push_str("<h2>Throughput over time</h2><p class=\"sub\">items handed to the sink per second, per sample interval</p>");
    html.push_str(&charts::throughput(&steps, wall));
    // The engine's counts: the sink's refusals and the items it could not write are moved
    // out of delivered only in the totals (a chart of a run that wrote nothing used to
    // read as a fast one, with nothing to say otherwise).
    let (rejected, unwritten) = s.undelivered();
    if rejected + unwritten > 0 {
        let _ = write!(
            html,
            "<p class=\"sub\">of those, {} the sink refused or could not write (counted failed) \
             and {} it did not write because its output closed (counted cancelled)</p>",
            millrace::fmt::count(rejected),
            millrace::fmt::count(unwritten)
        );
    }
}

fn latency_section(html: &mut String, s: &Summary) {
    let l = s.report.latency();
    let ms = |d: std::time::Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    let _ = write!(
        html,
        "<h2>Latency</h2><p class=\"sub\">from admission to the sink, sampled per batch over {} items</p>\
         <table><tr><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        l.samples,
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max)
    );
}

fn errors_section(html: &mut String, s: &Summary) {
    let r = &s.report;
    let total = r.errors_total() + s.sink.rejected;
    let _ = write!(
        html,
        "<h2>Errors</h2><p>{total} item error{}.</p>",
        if total == 1 { "" } else { "s" }
    );
    if total == 0 {
        return;
    }
    html.push_str("<table><tr><th>stage</th><th>kind</th><th>items</th></tr>");
    let by_kind = r
        .errors_by_kind()
        .iter()
        .map(|(stage, kind, n)| (stage.as_str(), *kind, *n))
        .chain((s.sink.rejected > 0).then_some(("sink", "rejected", s.sink.rejected)));
    for (stage, kind, n) in by_kind {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{kind}</td><td>{n}</td></tr>",
            esc(stage)
        );
    }
    html.push_str("</table><ul class=\"errors\">");
    let messages = r
        .errors()
        .iter()
        .map(ToString::to_string)
        .chain(s.sink.errors.iter().map(|e| e.message.clone()));
    for message in messages.take(ERRORS_SHOWN) {
        let _ = write!(html, "<li>{}</li>", esc(&message));
    }
    html.push_str("</ul>");
}

/// Writes the page to `path`.
///
/// # Errors
///
/// Why the file cannot be written, naming it.
pub fn write(s: &Summary, path: &Path) -> Result<(), String> {
    std::fs::write(path, render(s))
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))
}

/// Writes the page of a run that never started (a bad file, an input that cannot be
/// opened) to `path`: the pipeline, why, and the exit code.
///
/// # Errors
///
/// Why the file cannot be written, naming it.
pub fn write_not_started(
    pipeline: &str,
    file: Option<&str>,
    error: &str,
    exit_code: u8,
    path: &Path,
) -> Result<(), String> {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>millrace report: {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>millrace report: {name}</h1><p class=\"sub\">{file}outcome <b class=\"outcome-failed\">failed</b> (exit code {exit_code}): the run never started</p>\n\
         <p class=\"bottleneck\">{error}</p>\n</body></html>\n",
        name = esc(pipeline),
        file = file.map_or(String::new(), |f| format!("{} · ", esc(f))),
        error = esc(error),
    );
    std::fs::write(path, html)
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))
}

/// Whether `path` asks for the HTML report (its extension is `html` or `htm`).
pub fn is_html(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_extension_chooses_html() {
        assert!(is_html(Path::new("run.html")));
        assert!(is_html(Path::new("RUN.HTM")));
        assert!(!is_html(Path::new("run.json")));
        assert!(!is_html(Path::new("html")));
    }
}
