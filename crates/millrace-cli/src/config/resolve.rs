//! From the config tree to a [`PipelineSpec`]: every key known, every value checked,
//! defaults applied.
//!
//! Each table is read through a `Keys` reader (`table.rs`) that knows the keys it
//! takes; whatever else is there is an unknown key, reported with the closest known one.
//! The settings every stage has are read by `settings.rs`. Reading goes on
//! after an error, with what could be read, and every error is recorded in the
//! [`Findings`]: the file's errors are reported all at once, in file order.

use std::path::PathBuf;

use super::error::{did_you_mean, ConfigError, Findings, Loc};
use super::node::{parse_override_value, Node, NodeKind};
use super::params::{self, Default, ParamType, ParamValue, Params, PathBase};
use super::scaling;
use super::schema::{
    Part, PipelineSpec, Policy, SinkSpec, StageSpec, Workers, DEFAULT_CAPACITY, DEFAULT_WORKERS,
};
use super::settings::{
    no_paths, policy, read_settings, read_sink_settings, text_setting, Settings, STAGE_SETTINGS,
};
use super::table::Keys;
use crate::kinds::{self, Exec, Role};

/// Reads the `kind` of a source, stage or sink table and its parameters; `None` if the
/// kind cannot be known (its parameters are then not checked either).
fn part(
    keys: &Keys<'_>,
    node: &Node,
    role: Role,
    fixed: &[&str],
    base: &PathBase,
    found: &mut Findings,
) -> Option<Part> {
    found.keep(kind_of(keys, node, role)).and_then(|kind| {
        let before = found.count();
        let params = params_of(keys, node, kind, fixed, base, found);
        if found.count() == before {
            return found.keep(validated(keys, node, kind, params));
        }
        // Some parameter is wrong: the kind's own check still runs if every parameter it
        // reads is right, so that its finding comes with the others.
        if let Some(v) = kind.validate {
            if v.reads.iter().all(|name| params.get(name).is_some()) {
                let _ = found.keep(validated(keys, node, kind, params));
            }
        }
        None
    })
}

/// The kind a source, stage or sink table names.
fn kind_of(
    keys: &Keys<'_>,
    node: &Node,
    role: Role,
) -> Result<&'static kinds::KindSpec, ConfigError> {
    let what = keys.what.clone();
    let kind_node = keys.get("kind").ok_or_else(|| {
        ConfigError::new(node.loc.clone(), format!("{what} has no `kind`")).help(format!(
            "add kind = \"…\"; the {role} kinds are: {}",
            kinds::names(role).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let NodeKind::Str(name) = &kind_node.kind else {
        return Err(ConfigError::new(
            kind_node.loc.clone(),
            format!("`kind` must be a string, found {}", kind_node.describe()),
        ));
    };
    let kind = match kinds::find(name) {
        Some(k) if k.role == role => k,
        other => {
            let known: Vec<&str> = kinds::names(role).collect();
            let help = match other {
                Some(k) => format!(
                    "`{name}` is a {} kind; the {role} kinds are: {}",
                    k.role,
                    known.join(", ")
                ),
                None => did_you_mean(name, known.iter().copied())
                    .unwrap_or_else(|| format!("the {role} kinds are: {}", known.join(", "))),
            };
            return Err(ConfigError::new(
                kind_node.loc.clone(),
                format!("unknown {role} kind `{name}`"),
            )
            .help(help));
        }
    };
    Ok(kind)
}

/// The parameters of `kind` read from its table, every error recorded.
fn params_of(
    keys: &Keys<'_>,
    node: &Node,
    kind: &'static kinds::KindSpec,
    fixed: &[&str],
    base: &PathBase,
    found: &mut Findings,
) -> Params {
    let known = known_keys(fixed, kind);
    keys.check_unknown(&known, found);
    // A required parameter misspelt is reported once, as the unknown key.
    let misspelt = |name: &str| {
        keys.entries
            .iter()
            .any(|e| !known.contains(&e.key.as_str()) && did_you_mean(&e.key, [name]).is_some())
    };
    let mut params = Params::default();
    for spec in kind.params {
        match (keys.get(spec.name), spec.default) {
            (Some(value), _) => {
                if let Some(checked) = found.keep(params::check(spec, value, base)) {
                    params.push(spec.name, checked, value.loc.clone());
                }
            }
            (None, Default::Required) if misspelt(spec.name) => {}
            (None, Default::Required) => found.push(
                ConfigError::new(
                    node.loc.clone(),
                    format!("{} (kind `{}`) needs `{}`", keys.what, kind.name, spec.name),
                )
                .help(format!("`{}`: {} ({})", spec.name, spec.doc, spec.ty)),
            ),
            (None, Default::Optional) => {}
            (None, Default::Value(text)) => {
                let value = parse_override_value(text, &Loc::Whole);
                if let Some(checked) = found.keep(params::check(spec, &value, base)) {
                    params.push(spec.name, checked, Loc::Whole);
                }
            }
        }
    }
    params
}

/// `params` once `kind`'s own check of them taken together passes.
fn validated(
    keys: &Keys<'_>,
    node: &Node,
    kind: &'static kinds::KindSpec,
    params: Params,
) -> Result<Part, ConfigError> {
    let what = keys.what.clone();
    let kind_node = keys.get("kind").unwrap_or(node);
    if let Some(validate) = kind.validate {
        (validate.check)(&params).map_err(|e| {
            let part = match keys.get("name").map(|n| &n.kind) {
                Some(NodeKind::Str(n)) => format!("stage `{n}` (kind `{}`)", kind.name),
                _ if what.contains(kind.name) => what.clone(),
                _ => format!("{what} (kind `{}`)", kind.name),
            };
            e.within(&part, node.loc.clone())
        })?;
    }
    Ok(Part {
        kind,
        params,
        loc: node.loc.clone(),
        kind_loc: kind_node.loc.clone(),
    })
}

/// The parameters of `kind` as they are when none is given: every declared default (for
/// `millrace stages`, which shows a kind's types for its defaults).
pub fn defaults(kind: &kinds::KindSpec) -> Params {
    let mut params = Params::default();
    for spec in kind.params {
        if let Default::Value(text) = spec.default {
            let value = parse_override_value(text, &Loc::Whole);
            if let Ok(v) = params::check(spec, &value, &no_paths()) {
                params.push(spec.name, v, Loc::Whole);
            }
        }
    }
    params
}

fn known_keys<'k>(fixed: &[&'k str], kind: &'k kinds::KindSpec) -> Vec<&'k str> {
    fixed
        .iter()
        .copied()
        .chain(kind.params.iter().map(|p| p.name))
        .collect()
}

/// Keys every stage table may have besides its kind's parameters.
fn stage_keys() -> Vec<&'static str> {
    let mut fixed = vec!["kind", "name", "ordered"];
    fixed.extend_from_slice(STAGE_SETTINGS);
    fixed
}

/// Resolves the whole tree, recording every error found in `found`; `None` when the
/// pipeline cannot be made (the errors say why).
pub fn resolve(
    root: &Node,
    base: &PathBase,
    file_stem: &str,
    file: &str,
    found: &mut Findings,
) -> Option<PipelineSpec> {
    let top = found.keep(Keys::new(root, "the pipeline file"))?;
    top.check_unknown(&["pipeline", "source", "stage", "sink"], found);
    let (mut name, mut report, mut defaults) = (file_stem.to_owned(), None, Settings::default());
    let mut name_loc = None;
    let mut scaling = super::schema::Scaling::default();
    if let Some(node) = top.get("pipeline") {
        pipeline_table(
            node,
            base,
            found,
            (&mut name, &mut name_loc),
            &mut report,
            &mut scaling,
            &mut defaults,
        );
    }

    found.reading(Some("source"));
    let source = match top.get("source") {
        Some(source_node) => found
            .keep(Keys::new(source_node, "[source]"))
            .and_then(|keys| part(&keys, source_node, Role::Source, &["kind"], base, found)),
        None => {
            found.push(
                ConfigError::new(Loc::Whole, "the pipeline has no [source]")
                    .help("add a [source] table, e.g. [source] kind = \"range\" end = 1000"),
            );
            None
        }
    };

    let mut stages: Vec<StageSpec> = Vec::new();
    let mut all_stages = true;
    if let Some(node) = top.get("stage") {
        found.reading(None);
        match &node.kind {
            NodeKind::Array(items) => {
                let mut names = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match stage(item, i + 1, &mut names, &defaults, base, found) {
                        Some(s) => stages.push(s),
                        None => all_stages = false,
                    }
                }
            }
            _ => {
                all_stages = false;
                found.push(
                    ConfigError::new(
                        node.loc.clone(),
                        format!(
                            "`stage` must be an array of tables, found {}",
                            node.describe()
                        ),
                    )
                    .help("write each stage as a [[stage]] table"),
                );
            }
        }
    }

    found.reading(Some("sink"));
    let sink = match top.get("sink") {
        Some(sink_node) => sink(sink_node, &defaults, base, found),
        None => {
            found.push(
                ConfigError::new(Loc::Whole, "the pipeline has no [sink]")
                    .help("add a [sink] table, e.g. [sink] kind = \"count\""),
            );
            None
        }
    };
    found.reading(None);

    let (source, sink) = (source?, sink?);
    all_stages.then_some(PipelineSpec {
        name,
        name_loc,
        file: file.to_owned(),
        batch: defaults.batch,
        capacity: defaults.capacity.unwrap_or(DEFAULT_CAPACITY),
        report,
        scaling,
        source,
        stages,
        sink,
        text: None,
        scale_out: None,
    })
}

/// Reads `[pipeline]`: its name, report path, scaling and the defaults of every stage.
fn pipeline_table(
    node: &Node,
    base: &PathBase,
    found: &mut Findings,
    (name, name_loc): (&mut String, &mut Option<Loc>),
    report: &mut Option<PathBuf>,
    scaling: &mut super::schema::Scaling,
    defaults: &mut Settings,
) {
    let Some(keys) = found.keep(Keys::new(node, "[pipeline]")) else {
        return;
    };
    let mut known = vec!["name", "report"];
    known.extend_from_slice(STAGE_SETTINGS);
    known.extend_from_slice(scaling::PIPELINE_KEYS);
    keys.check_unknown(&known, found);
    let autoscale = match found.keep(scaling::pipeline(|k| keys.get(k))) {
        Some((autoscale, settings)) => {
            *scaling = settings;
            autoscale
        }
        None => false,
    };
    if let Some(Some((ParamValue::Text(n), loc))) =
        found.keep(text_setting(&keys, "name", ParamType::Text, base))
    {
        *name = n;
        *name_loc = Some(loc);
    }
    if let Some(Some((ParamValue::Path(_, p), _))) =
        found.keep(text_setting(&keys, "report", ParamType::Path, base))
    {
        *report = Some(p);
    }
    *defaults = read_settings(&keys, base, found);
    if let (true, Some((Workers::Fixed(n), loc))) = (autoscale, &defaults.workers) {
        found.push(
            ConfigError::new(
                loc.clone(),
                format!("`workers = {n}` and `autoscale = true` in [pipeline] disagree"),
            )
            .help("drop one: autoscale = true gives every stage without workers = \"auto\""),
        );
    }
    // Stages without `workers` are autoscaled unless the file says `autoscale = false`.
    if !autoscale && keys.get("autoscale").is_some() && defaults.workers.is_none() {
        defaults.workers = Some((Workers::Fixed(DEFAULT_WORKERS), Loc::Whole));
    }
    // The pipeline's own policy settings must hang together.
    found.keep(policy(defaults, &Settings::default()));
}

/// Reads `[sink]`.
fn sink(
    sink_node: &Node,
    defaults: &Settings,
    base: &PathBase,
    found: &mut Findings,
) -> Option<SinkSpec> {
    let keys = found.keep(Keys::new(sink_node, "[sink]"))?;
    let sink_part = part(
        &keys,
        sink_node,
        Role::Sink,
        &["kind", "on_error", "dead_letter"],
        base,
        found,
    );
    let own = read_sink_settings(&keys, base, found);
    // An error in [pipeline]'s policy is reported there, once.
    let inherited_stop = policy(defaults, &Settings::default()).is_ok_and(|p| p.stops());
    let sink_policy = match own.on_error.as_ref().map(|(p, _)| p.as_str()) {
        Some("stop") => Policy::Stop,
        Some(_) => Policy::Skip,
        None if inherited_stop => Policy::Stop,
        None => Policy::Skip,
    };
    Some(SinkSpec {
        part: sink_part?,
        policy: sink_policy,
        dead_letter: own.dead_letter.or(defaults.dead_letter.clone()),
    })
}

/// The name a stage goes by: its `name`, or its kind made unique (`spin`, `spin-2`, …).
fn stage_name(
    keys: &Keys<'_>,
    kind: Option<&str>,
    taken: &[String],
    found: &mut Findings,
) -> Option<String> {
    let taken = |n: &str| taken.iter().any(|t| t == n);
    match keys.get("name") {
        Some(Node {
            kind: NodeKind::Str(n),
            loc,
        }) => {
            if n.is_empty() || n == "source" || n == "sink" || taken(n) {
                let why = if n.is_empty() {
                    "a stage name cannot be empty".to_owned()
                } else if taken(n) {
                    format!("two stages are named `{n}`; names must be unique")
                } else {
                    format!("`{n}` is reserved for the report's {n} row")
                };
                found.push(ConfigError::new(loc.clone(), why));
                return None;
            }
            Some(n.clone())
        }
        Some(other) => {
            found.push(ConfigError::new(
                other.loc.clone(),
                format!("`name` must be a string, found {}", other.describe()),
            ));
            None
        }
        None => {
            let kind = kind?;
            let mut n = kind.to_owned();
            let mut k = 2;
            while taken(&n) {
                n = format!("{kind}-{k}");
                k += 1;
            }
            Some(n)
        }
    }
}

/// Reads the `position`th `[[stage]]`; `names` holds the names of the stages before it,
/// and gets this one's.
fn stage(
    node: &Node,
    position: usize,
    names: &mut Vec<String>,
    defaults: &Settings,
    base: &PathBase,
    found: &mut Findings,
) -> Option<StageSpec> {
    let kind_name = match node.get("kind").map(|e| &e.value.kind) {
        Some(NodeKind::Str(k)) => Some(k.clone()),
        _ => None,
    };
    let shown_kind = kind_name
        .as_deref()
        .map_or_else(String::new, |k| format!(" (`{k}`)"));
    found.reading(None);
    let mut keys = found.keep(Keys::new(
        node,
        &format!("[[stage]] #{position}{shown_kind}"),
    ))?;
    let name = stage_name(&keys, kind_name.as_deref(), names, found);
    if let Some(n) = &name {
        names.push(n.clone());
        found.reading(Some(n));
    }
    let part = part(&keys, node, Role::Transform, &stage_keys(), base, found);
    if let Some(n) = &name {
        keys.what = format!("[[stage]] #{position} `{n}`");
    }
    let ordered = found.keep(Node::flag(keys.get("ordered"), "ordered"));
    let ordered_loc = keys.get("ordered").map(|n| n.loc.clone());
    let own = read_settings(&keys, base, found);
    let policy = found.keep(policy(&own, defaults));
    // `workers` on an async kind is said whether or not its parameters are right (it used
    // to wait for them: a file's mistakes came a round at a time).
    let async_kind = kind_name
        .as_deref()
        .and_then(kinds::find)
        .filter(|k| matches!(k.exec, Exec::Async { .. }));
    if let (Some(kind), Some((_, loc))) = (async_kind, &own.workers) {
        let shown = name.as_deref().unwrap_or(kind.name);
        let error = ConfigError::new(
            loc.clone(),
            format!(
                "`workers` does not apply to `{shown}`: `{}` is an async stage",
                kind.name
            ),
        )
        .help("set `concurrency` (items in flight at once) instead");
        found.push(match &name {
            Some(n) => error.in_part(n),
            None => error,
        });
    }
    found.reading(None);
    let (name, part, ordered, policy) = (name?, part?, ordered?, policy?);
    let workers = match (part.kind.exec, &own.workers) {
        (Exec::Threads, _) => own
            .workers
            .as_ref()
            .or(defaults.workers.as_ref())
            .map_or(Workers::Auto { min: 1, max: None }, |(w, _)| *w),
        (Exec::Async { .. }, None) => Workers::Async,
        // (Said above.)
        (Exec::Async { .. }, Some(_)) => return None,
    };
    Some(StageSpec {
        name,
        workers,
        capacity: own
            .capacity
            .or(defaults.capacity)
            .unwrap_or(DEFAULT_CAPACITY),
        batch: own.batch.or(defaults.batch),
        ordered,
        ordered_loc,
        policy,
        dead_letter: own.dead_letter.clone().or(defaults.dead_letter.clone()),
        part,
    })
}
