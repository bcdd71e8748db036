//! The HTML report's drawings, as inline SVG strings: the chain of stages, a stacked
//! busy / idle / blocked chart per part, worker counts with the autoscaler's decisions,
//! and throughput, all over the run's time. No script: the page shows what it is given.

use std::fmt::Write as _;
use std::time::Duration;

use millrace::timeline::Step;
use millrace::{Report, StageReport};

use super::esc;

/// Colours of the three states, shared with the legend.
pub(super) const BUSY: &str = "#d1495b";
pub(super) const IDLE: &str = "#8ecae6";
pub(super) const BLOCKED: &str = "#edae49";
/// Colours of the stages' lines in the workers chart.
const PALETTE: [&str; 8] = [
    "#1b4965", "#d1495b", "#2a9d8f", "#edae49", "#6a4c93", "#00798c", "#8d6a9f", "#3d5a80",
];

const WIDTH: f64 = 940.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;

/// The x position of time `t` in a chart of a run `wall` long.
fn x_of(t: Duration, wall: f64) -> f64 {
    LEFT + (WIDTH - LEFT - RIGHT) * (t.as_secs_f64() / wall).clamp(0.0, 1.0)
}

/// Seconds, short: `0.25 s`, `12 s`.
fn secs(t: f64) -> String {
    if t >= 10.0 {
        format!("{t:.0} s")
    } else if t >= 1.0 {
        format!("{t:.1} s")
    } else {
        format!("{t:.2} s")
    }
}

/// The time axis under a chart whose plot ends at `bottom`: five ticks from 0 to `wall`.
fn time_axis(svg: &mut String, wall: f64, bottom: f64) {
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#999"/>"##,
        WIDTH - RIGHT
    );
    for k in 0..=4 {
        let t = wall * f64::from(k) / 4.0;
        let x = x_of(Duration::from_secs_f64(t), wall);
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="{}" font-size="10" fill="#555" text-anchor="{anchor}">{}</text>"##,
            bottom + 12.0,
            secs(t)
        );
    }
}

/// Whether `part` is (one of the stages of) the bottleneck `a+b+c`.
fn is_bottleneck(part: &str, bottleneck: Option<&str>) -> bool {
    bottleneck.is_some_and(|b| b.split('+').any(|s| s == part))
}

/// The pipeline as a chain of boxes: each part's name, kind, workers and busy share, the
/// fill of the queue into it on the arrow before it; the bottleneck outlined in red.
pub(super) fn chain(parts: &[(&StageReport, Option<&str>)], bottleneck: Option<&str>) -> String {
    const BOX_W: f64 = 124.0;
    const BOX_H: f64 = 78.0;
    const GAP: f64 = 40.0;
    let width = parts.len() as f64 * (BOX_W + GAP) - GAP + 8.0;
    let mut svg = format!(
        r#"<svg class="chain" width="{width:.0}" height="{}" viewBox="0 0 {width:.0} {}" role="img" aria-label="the pipeline's stages in order">"#,
        BOX_H + 28.0,
        BOX_H + 28.0
    );
    for (i, (part, kind)) in parts.iter().enumerate() {
        let x = 4.0 + i as f64 * (BOX_W + GAP);
        let y = 4.0;
        let hot = is_bottleneck(&part.name, bottleneck);
        let (stroke, stroke_width, fill) = if hot {
            ("#c1121f", 3.0, "#fde2e4")
        } else {
            ("#345", 1.2, "#f6f8fa")
        };
        let _ = write!(
            svg,
            r#"<g class="part" data-stage="{name}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"/>"#,
            name = esc(&part.name)
        );
        let lines = [
            (
                format!("<tspan font-weight=\"bold\">{}</tspan>", esc(&part.name)),
                18.0,
            ),
            (esc(kind.unwrap_or("built in")), 34.0),
            (
                format!(
                    "{} worker{}{}",
                    part.workers,
                    if part.workers == 1 { "" } else { "s" },
                    if part.fused { " (fused)" } else { "" }
                ),
                50.0,
            ),
            (format!("busy {:.0}%", part.busy * 100.0), 66.0),
        ];
        for (text, dy) in lines {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" font-size="12" fill="#222" text-anchor="middle">{text}</text>"##,
                x + BOX_W / 2.0,
                y + dy
            );
        }
        if hot {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" font-size="11" fill="#c1121f" text-anchor="middle" font-weight="bold">bottleneck</text>"##,
                x + BOX_W / 2.0,
                y + BOX_H + 16.0
            );
        }
        svg.push_str("</g>");
        if i > 0 {
            // The arrow into this part, with its input queue's fill as a small gauge.
            let (x0, x1, ym) = (x - GAP + 2.0, x - 2.0, y + BOX_H / 2.0);
            let _ = write!(
                svg,
                r##"<line x1="{x0}" y1="{ym}" x2="{x1}" y2="{ym}" stroke="#345" stroke-width="1.5"/><path d="M{x1} {ym} l-7 -4 v8 z" fill="#345"/>"##
            );
            if part.queue_capacity > 0 {
                let w = GAP - 14.0;
                let filled = w * part.queue_fill.clamp(0.0, 1.0);
                let _ = write!(
                    svg,
                    r##"<rect x="{}" y="{}" width="{w}" height="7" fill="#fff" stroke="#345" stroke-width="0.8"><title>input queue {:.0}% full on average</title></rect><rect x="{}" y="{}" width="{filled:.1}" height="7" fill="{BLOCKED}"/><text x="{}" y="{}" font-size="10" fill="#555" text-anchor="middle">q {:.0}%</text>"##,
                    x0 + 5.0,
                    ym - 16.0,
                    part.queue_fill * 100.0,
                    x0 + 5.0,
                    ym - 16.0,
                    x0 + 5.0 + w / 2.0,
                    ym + 16.0,
                    part.queue_fill * 100.0
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One part's time over the run as stacked bars, one per timeline step: the share of its
/// workers' time spent busy (bottom), blocked, and idle (top).
pub(super) fn states(name: &str, part: usize, steps: &[Step], wall: f64) -> String {
    const HEIGHT: f64 = 70.0;
    const TOP: f64 = 6.0;
    let mut svg = format!(
        r#"<svg class="states" width="{WIDTH}" height="{}" viewBox="0 0 {WIDTH} {}" role="img" aria-label="busy, idle and blocked over time: {}">"#,
        HEIGHT + TOP + 16.0,
        HEIGHT + TOP + 16.0,
        esc(name)
    );
    for (label, frac) in [("100%", 0.0), ("0", 1.0)] {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" fill="#555" text-anchor="end">{label}</text>"##,
            LEFT - 4.0,
            TOP + HEIGHT * frac + 4.0
        );
    }
    for step in steps {
        let Some(p) = step.parts.get(part) else {
            continue;
        };
        let length = step.length().as_secs_f64();
        if length <= 0.0 {
            continue;
        }
        let worker_time =
            (length * p.workers.max(1) as f64).max((p.busy + p.idle + p.blocked).as_secs_f64());
        let (x0, x1) = (x_of(step.from, wall), x_of(step.to, wall));
        let w = (x1 - x0).max(0.5);
        let mut y = TOP + HEIGHT;
        for (value, colour, what) in [
            (p.busy, BUSY, "busy"),
            (p.blocked, BLOCKED, "blocked"),
            (p.idle, IDLE, "idle"),
        ] {
            let share = (value.as_secs_f64() / worker_time).clamp(0.0, 1.0);
            let h = HEIGHT * share;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x0:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{colour}"><title>{} – {}: {what} {:.0}%</title></rect>"#,
                secs(step.from.as_secs_f64()),
                secs(step.to.as_secs_f64()),
                share * 100.0
            );
        }
    }
    time_axis(&mut svg, wall, TOP + HEIGHT);
    svg.push_str("</svg>");
    svg
}

/// Each stage's worker count over the run (a step line per stage, from the timeline's
/// samples), with the autoscaler's decisions marked where they were taken.
pub(super) fn workers(report: &Report, wall: f64) -> String {
    const HEIGHT: f64 = 120.0;
    const TOP: f64 = 10.0;
    let timeline = report.timeline();
    let samples = timeline.samples();
    let stages = report.stages();
    let max = samples
        .iter()
        .flat_map(|s| s.parts.iter().map(|p| p.workers))
        .chain(stages.iter().map(|s| s.workers))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y_of = |n: usize| TOP + HEIGHT * (1.0 - n as f64 / max);
    let mut svg = format!(
        r#"<svg class="workers" width="{WIDTH}" height="{}" viewBox="0 0 {WIDTH} {}" role="img" aria-label="workers per stage over time, with the autoscaler's decisions">"#,
        HEIGHT + TOP + 16.0,
        HEIGHT + TOP + 16.0
    );
    for (label, n) in [(format!("{max:.0}"), max as usize), ("0".to_owned(), 0)] {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" fill="#555" text-anchor="end">{label}</text>"##,
            LEFT - 4.0,
            y_of(n) + 4.0
        );
    }
    for (at, d) in report.decisions() {
        let x = x_of(at, wall);
        let _ = write!(
            svg,
            r##"<g class="decision"><line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#888" stroke-dasharray="3 3"/><path d="M{x:.1} {TOP} l-4 -7 h8 z" fill="{}"><title>{}: {} → {} ({})</title></path></g>"##,
            TOP + HEIGHT,
            if d.to > d.from { "#2a9d8f" } else { "#c1121f" },
            secs(at.as_secs_f64()),
            d.from,
            d.to,
            esc(&d.reason.to_string())
        );
    }
    for (i, stage) in stages.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mut points = String::new();
        let mut previous: Option<usize> = None;
        for s in samples {
            let n = s.parts.get(i + 1).map_or(stage.workers, |p| p.workers);
            let x = x_of(s.at, wall);
            if let Some(before) = previous {
                let _ = write!(points, "{x:.1},{:.1} ", y_of(before));
            }
            let _ = write!(points, "{x:.1},{:.1} ", y_of(n));
            previous = Some(n);
        }
        // A small offset per stage keeps equal counts apart.
        let _ = write!(
            svg,
            r#"<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" transform="translate(0 {:.1})"><title>{}</title></polyline>"#,
            -(i as f64) * 1.5,
            esc(&stage.name)
        );
    }
    time_axis(&mut svg, wall, TOP + HEIGHT);
    svg.push_str("</svg>");
    svg
}

/// The legend of the workers chart: a colour per stage.
pub(super) fn workers_legend(report: &Report) -> String {
    let mut html = String::from(r#"<p class="legend">"#);
    for (i, stage) in report.stages().iter().enumerate() {
        let _ = write!(
            html,
            r#"<span><i style="background:{}"></i>{}</span> "#,
            PALETTE[i % PALETTE.len()],
            esc(&stage.name)
        );
    }
    html.push_str(r#"<span>▼ a decision (green: a worker added, red: one removed)</span></p>"#);
    html
}

/// Items delivered per second over the run, one point per timeline step (the sink is the
/// timeline's last part).
pub(super) fn throughput(steps: &[Step], wall: f64) -> String {
    const HEIGHT: f64 = 110.0;
    const TOP: f64 = 10.0;
    let rates: Vec<(f64, f64, f64)> = steps
        .iter()
        .filter(|s| !s.length().is_zero())
        .map(|s| {
            let items = s.parts.last().map_or(0, |p| p.items_in);
            (
                x_of(s.from, wall),
                x_of(s.to, wall),
                items as f64 / s.length().as_secs_f64(),
            )
        })
        .collect();
    let max = rates.iter().map(|r| r.2).fold(0.0, f64::max);
    let scale = if max > 0.0 { max } else { 1.0 };
    let mut svg = format!(
        r#"<svg class="throughput" width="{WIDTH}" height="{}" viewBox="0 0 {WIDTH} {}" role="img" aria-label="items delivered per second over time">"#,
        HEIGHT + TOP + 16.0,
        HEIGHT + TOP + 16.0
    );
    for (label, frac) in [(rate(max), 0.0), ("0".to_owned(), 1.0)] {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" fill="#555" text-anchor="end">{label}</text>"##,
            LEFT - 4.0,
            TOP + HEIGHT * frac + 4.0
        );
    }
    let mut points = String::new();
    for (x0, x1, r) in &rates {
        let y = TOP + HEIGHT * (1.0 - r / scale);
        let _ = write!(points, "{x0:.1},{y:.1} {x1:.1},{y:.1} ");
    }
    let _ = write!(
        svg,
        r##"<polyline points="{points}" fill="none" stroke="#1b4965" stroke-width="2"/>"##
    );
    time_axis(&mut svg, wall, TOP + HEIGHT);
    svg.push_str("</svg>");
    svg
}

/// A rate, short: `950/s`, `12.3k/s`, `4.1M/s`.
pub(super) fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}
