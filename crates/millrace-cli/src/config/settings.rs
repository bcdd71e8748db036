//! The settings every stage may have (`workers`, `capacity`, `batch`, `on_error`,
//! `retry_*`, `dead_letter`), read from a `[[stage]]` table or, as defaults for every stage,
//! from `[pipeline]`, and the error policy they make together ([`policy`]): a stage's own
//! settings win over the pipeline's. The sink takes `on_error` (skip or stop) and
//! `dead_letter` only ([`read_sink_settings`]).
//!
//! Every error is recorded in the [`Findings`] and reading goes on, as in [`super::resolve`].

use std::path::PathBuf;

use super::error::{ConfigError, Findings, Loc};
use super::node::Node;
use super::params::{self, Default, ParamSpec, ParamType, ParamValue, PathBase};
use super::scaling;
use super::schema::{Policy, Workers, DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_BACKOFF_MS};
use super::table::Keys;

/// Settings a stage (and `[pipeline]`, as defaults) may set.
pub(super) const STAGE_SETTINGS: &[&str] = &[
    "workers",
    "capacity",
    "batch",
    "on_error",
    "retry_attempts",
    "retry_backoff_ms",
    "retry_then",
    "dead_letter",
];

pub(super) fn int_setting(
    keys: &Keys<'_>,
    name: &'static str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ConfigError> {
    let Some(node) = keys.get(name) else {
        return Ok(None);
    };
    let spec = ParamSpec {
        name,
        ty: ParamType::Int { min, max },
        default: Default::Optional,
        doc: "",
    };
    match params::check(&spec, node, &no_paths())? {
        ParamValue::Int(i) => Ok(Some(i)),
        _ => Ok(None),
    }
}

pub(super) fn text_setting(
    keys: &Keys<'_>,
    name: &'static str,
    ty: ParamType,
    base: &PathBase,
) -> Result<Option<(ParamValue, Loc)>, ConfigError> {
    let Some(node) = keys.get(name) else {
        return Ok(None);
    };
    let spec = ParamSpec {
        name,
        ty,
        default: Default::Optional,
        doc: "",
    };
    Ok(Some((params::check(&spec, node, base)?, node.loc.clone())))
}

pub(super) fn no_paths() -> PathBase {
    PathBase {
        file_dir: PathBuf::new(),
    }
}

/// The stage settings read from one table: each `None` when not given.
#[derive(Clone, Debug, Default)]
pub(super) struct Settings {
    pub(super) workers: Option<(Workers, Loc)>,
    pub(super) capacity: Option<usize>,
    pub(super) batch: Option<usize>,
    pub(super) on_error: Option<(String, Loc)>,
    pub(super) attempts: Option<(u32, Loc)>,
    pub(super) backoff_ms: Option<(u64, Loc)>,
    pub(super) then_stop: Option<(bool, Loc)>,
    pub(super) dead_letter: Option<PathBuf>,
}

pub(super) fn read_settings(keys: &Keys<'_>, base: &PathBase, found: &mut Findings) -> Settings {
    let size = |i: Option<Option<i64>>| i.flatten().and_then(|i| usize::try_from(i).ok());
    let mut s = Settings {
        workers: keys
            .get("workers")
            .and_then(|n| found.keep(scaling::workers(n).map(|w| (w, n.loc.clone())))),
        capacity: size(found.keep(int_setting(keys, "capacity", 1, 1 << 24))),
        batch: size(found.keep(int_setting(keys, "batch", 1, 1 << 16))),
        ..Settings::default()
    };
    if let Some(Some((ParamValue::Text(p), loc))) = found.keep(text_setting(
        keys,
        "on_error",
        ParamType::Choice(&["skip", "retry", "stop"]),
        base,
    )) {
        s.on_error = Some((p, loc));
    }
    if let Some(node) = keys.get("retry_attempts") {
        if let Some(attempts) = found.keep(int_setting_node(node, "retry_attempts", 1, 1000)) {
            s.attempts = Some((u32::try_from(attempts).unwrap_or(1), node.loc.clone()));
        }
    }
    if let Some(node) = keys.get("retry_backoff_ms") {
        if let Some(ms) = found.keep(int_setting_node(node, "retry_backoff_ms", 0, 60_000)) {
            s.backoff_ms = Some((u64::try_from(ms).unwrap_or(0), node.loc.clone()));
        }
    }
    if let Some(Some((ParamValue::Text(t), loc))) = found.keep(text_setting(
        keys,
        "retry_then",
        ParamType::Choice(&["skip", "stop"]),
        base,
    )) {
        s.then_stop = Some((t == "stop", loc));
    }
    if let Some(Some((ParamValue::Path(_, p), _))) =
        found.keep(text_setting(keys, "dead_letter", ParamType::Path, base))
    {
        s.dead_letter = Some(p);
    }
    s
}

pub(super) fn int_setting_node(
    node: &Node,
    name: &'static str,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let spec = ParamSpec {
        name,
        ty: ParamType::Int { min, max },
        default: Default::Optional,
        doc: "",
    };
    match params::check(&spec, node, &no_paths())? {
        ParamValue::Int(i) => Ok(i),
        _ => Ok(min),
    }
}

/// The policy `own` settings give, inheriting from `inherited` (the pipeline's).
pub(super) fn policy(own: &Settings, inherited: &Settings) -> Result<Policy, ConfigError> {
    let on_error = own
        .on_error
        .as_ref()
        .or(inherited.on_error.as_ref())
        .map_or("skip", |(p, _)| p.as_str());
    let retry_key = [
        own.attempts.as_ref().map(|(_, l)| ("retry_attempts", l)),
        own.backoff_ms
            .as_ref()
            .map(|(_, l)| ("retry_backoff_ms", l)),
        own.then_stop.as_ref().map(|(_, l)| ("retry_then", l)),
    ]
    .into_iter()
    .flatten()
    .next();
    match on_error {
        "retry" => Ok(Policy::Retry {
            attempts: own
                .attempts
                .clone()
                .or(inherited.attempts.clone())
                .map_or(DEFAULT_RETRY_ATTEMPTS, |(a, _)| a),
            backoff_ms: own
                .backoff_ms
                .clone()
                .or(inherited.backoff_ms.clone())
                .map_or(DEFAULT_RETRY_BACKOFF_MS, |(b, _)| b),
            then_stop: own
                .then_stop
                .clone()
                .or(inherited.then_stop.clone())
                .is_some_and(|(t, _)| t),
        }),
        other => {
            if let Some((key, loc)) = retry_key {
                return Err(ConfigError::new(
                    loc.clone(),
                    format!("`{key}` has no effect: the error policy here is `{other}`"),
                )
                .help("set on_error = \"retry\" to retry failed items"));
            }
            Ok(if other == "stop" {
                Policy::Stop
            } else {
                Policy::Skip
            })
        }
    }
}
pub(super) fn read_sink_settings(
    keys: &Keys<'_>,
    base: &PathBase,
    found: &mut Findings,
) -> Settings {
    let mut s = Settings::default();
    if let Some(Some((ParamValue::Text(p), loc))) = found.keep(text_setting(
        keys,
        "on_error",
        ParamType::Choice(&["skip", "stop"]),
        base,
    )) {
        s.on_error = Some((p, loc));
    }
    if let Some(Some((ParamValue::Path(_, p), _))) =
        found.keep(text_setting(keys, "dead_letter", ParamType::Path, base))
    {
        s.dead_letter = Some(p);
    }
    s
}
