//! The autoscaling, fusion and wedge settings of a pipeline file: `workers` as a number,
//! `"auto"` or `{ min, max }`, and `[pipeline]`'s `autoscale`, `cpu_budget`,
//! `autoscale_interval`, `wedge_timeout`, `wedge_policy`, `fuse`, `fuse_auto`,
//! `lazy_workers` and `adaptive_fusion`.
//!
//! ```toml
//! [pipeline]
//! autoscale = true            # stages without `workers` are autoscaled
//! cpu_budget = 2              # default: the cores (less one from 8 cores up)
//! autoscale_interval = "200ms"
//! wedge_timeout = "5s"        # report a wedge after 5 s without progress
//! wedge_policy = "fail"       # … and fail the run (default: "report")
//! fuse = true                 # adjacent stages with equal fixed worker counts share
//!                             # workers (default: false)
//! fuse_auto = false           # keep adjacent autoscaled stages apart (default: true,
//!                             # those with the same bounds share workers, sized as one)
//! lazy_workers = false        # start every fixed worker at once (default: true, more
//!                             # than the budget start while all are busy)
//! adaptive_fusion = false     # keep equal fixed stages apart (default: true, they start
//!                             # fused and split once busy)
//!
//! [[stage]]
//! kind = "spin"
//! units = 4
//! workers = { min = 1, max = 4 }   # or "auto" (1 to the budget), or a number
//! ```

use std::time::Duration;

use super::error::{did_you_mean, ConfigError};
use super::node::{Node, NodeKind};
use super::params::check_duration;
use super::schema::{Scaling, Wedge, Workers};

/// Most workers a stage may have (or a CPU budget may allow).
pub const MAX_WORKERS: usize = 1024;

/// The keys only `[pipeline]` takes, for autoscaling, wedges and fusion.
pub const PIPELINE_KEYS: &[&str] = &[
    "autoscale",
    "cpu_budget",
    "autoscale_interval",
    "wedge_timeout",
    "wedge_policy",
    "fuse",
    "fuse_auto",
    "lazy_workers",
    "adaptive_fusion",
];

const WORKERS_FORMS: &str = "a number from 1 to 1024, \"auto\", or { min = N, max = N }";

fn worker_count(node: &Node, what: &str) -> Result<usize, ConfigError> {
    match node.kind {
        NodeKind::Int(i) if (1..=MAX_WORKERS as i64).contains(&i) => Ok(i as usize),
        _ => Err(ConfigError::new(
            node.loc.clone(),
            format!(
                "`{what}` must be an integer from 1 to {MAX_WORKERS}, found {}",
                node.describe()
            ),
        )),
    }
}

/// Reads a `workers` value: `4`, `"auto"` or `{ min = 1, max = 4 }` (either bound may be
/// left out).
///
/// # Errors
///
/// A [`ConfigError`] at the value (or the bad key of the table) saying what is accepted.
pub fn workers(node: &Node) -> Result<Workers, ConfigError> {
    match &node.kind {
        NodeKind::Int(_) => worker_count(node, "workers").map(Workers::Fixed),
        NodeKind::Str(s) if s == "auto" => Ok(Workers::Auto { min: 1, max: None }),
        NodeKind::Str(s) => Err(ConfigError::new(
            node.loc.clone(),
            format!("`workers` must be {WORKERS_FORMS}, found {s:?}"),
        )
        .maybe_help(did_you_mean(s, ["auto"]))),
        NodeKind::Table(entries) => {
            let (mut min, mut max) = (None, None);
            for entry in entries {
                match entry.key.as_str() {
                    "min" => min = Some(worker_count(&entry.value, "workers.min")?),
                    "max" => max = Some((worker_count(&entry.value, "workers.max")?, entry)),
                    other => {
                        return Err(ConfigError::new(
                            entry.key_loc.clone(),
                            format!("unknown key `{other}` in `workers`"),
                        )
                        .help(
                            did_you_mean(other, ["min", "max"]).unwrap_or_else(|| {
                                "`workers` as a table takes `min` and `max`".to_owned()
                            }),
                        ))
                    }
                }
            }
            let min = min.unwrap_or(1);
            if let Some((max, entry)) = max {
                if max < min {
                    return Err(ConfigError::new(
                        entry.value.loc.clone(),
                        format!("`workers.max` ({max}) must be at least `workers.min` ({min})"),
                    ));
                }
            }
            Ok(Workers::Auto {
                min,
                max: max.map(|(m, _)| m),
            })
        }
        _ => Err(ConfigError::new(
            node.loc.clone(),
            format!(
                "`workers` must be {WORKERS_FORMS}, found {}",
                node.describe()
            ),
        )),
    }
}

/// `[pipeline]`'s scaling keys, read through `get`: whether `autoscale = true`, and the
/// rest (`fuse` defaults to false, `fuse_auto`, `lazy_workers` and `adaptive_fusion` to
/// true).
///
/// # Errors
///
/// A [`ConfigError`] at the first bad value, or at a `wedge_policy` without a
/// `wedge_timeout`.
pub fn pipeline<'a>(
    get: impl Fn(&str) -> Option<&'a Node>,
) -> Result<(bool, Scaling), ConfigError> {
    let autoscale = Node::flag(get("autoscale"), "autoscale")?;
    let fuse = Node::flag(get("fuse"), "fuse")?;
    let fuse_auto = match get("fuse_auto") {
        None => true,
        node => Node::flag(node, "fuse_auto")?,
    };
    let lazy_workers = match get("lazy_workers") {
        None => true,
        node => Node::flag(node, "lazy_workers")?,
    };
    let adaptive_fusion = match get("adaptive_fusion") {
        None => true,
        node => Node::flag(node, "adaptive_fusion")?,
    };
    let cpu_budget = get("cpu_budget")
        .map(|n| worker_count(n, "cpu_budget"))
        .transpose()?;
    let interval = get("autoscale_interval")
        .map(|n| check_duration("autoscale_interval", n))
        .transpose()?;
    if let (Some(d), Some(node)) = (interval, get("autoscale_interval")) {
        if d < Duration::from_millis(1) {
            return Err(ConfigError::new(
                node.loc.clone(),
                "`autoscale_interval` must be at least 1ms",
            ));
        }
    }
    let after = get("wedge_timeout")
        .map(|n| check_duration("wedge_timeout", n))
        .transpose()?;
    let fail = match get("wedge_policy") {
        None => false,
        Some(node) => {
            let policy = match &node.kind {
                NodeKind::Str(s) if s == "report" || s == "fail" => s.as_str(),
                NodeKind::Str(s) => {
                    return Err(ConfigError::new(
                        node.loc.clone(),
                        format!("`wedge_policy` must be one of report, fail, found {s:?}"),
                    )
                    .maybe_help(did_you_mean(s, ["report", "fail"])))
                }
                _ => {
                    return Err(ConfigError::new(
                        node.loc.clone(),
                        format!(
                            "`wedge_policy` must be one of report, fail, found {}",
                            node.describe()
                        ),
                    ))
                }
            };
            if after.is_none() {
                return Err(ConfigError::new(
                    node.loc.clone(),
                    "`wedge_policy` has no effect without `wedge_timeout`",
                )
                .help("add e.g. wedge_timeout = \"5s\" to [pipeline]"));
            }
            policy == "fail"
        }
    };
    Ok((
        autoscale,
        Scaling {
            cpu_budget,
            interval,
            wedge: after.map(|after| Wedge { after, fail }),
            fuse,
            fuse_auto,
            lazy_workers,
            adaptive_fusion,
        },
    ))
}
