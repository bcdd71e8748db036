//! Which stages run remotely: the `connector` setting of `[pipeline]` (the default) and of
//! each `[[stage]]`, and the server's `url` under `[pipeline]`.
//!
//! One server serves a pipeline's broker edges: its `url` is set under `[pipeline]` only
//! (a stage's `url` belongs to its kind: `http` has one).
//!
//! ```toml
//! [pipeline]
//! connector = "nats"              # every stage remote by default ("memory": none)
//! url = "nats://10.0.0.5:4222"    # the server (default nats://127.0.0.1:4222)
//!
//! [[stage]]
//! kind = "spin"
//! connector = "nats"              # this stage runs on `millrace worker` processes
//! ```
//!
//! A stage marked `nats` runs on the `millrace worker` processes started for it: the edge
//! into it, and the edge out of the run of remote stages it belongs to, are broker edges.
//! Credentials never go in the file: they come from the environment (`MILLRACE_NATS_CREDS`,
//! a `.creds` file; or `MILLRACE_NATS_USER` / `_PASSWORD`; or `MILLRACE_NATS_TOKEN`).
//!
//! [`take`] removes these keys from the tree before the rest of the file is resolved (so
//! the other tables' readers never see them) and checks their values; [`settle`] then
//! checks them against the resolved stages: the remote stages must be one consecutive run,
//! a remote stage's items must be able to cross a broker edge (a flat-map kind's outputs
//! cannot yet: their ids are the origin's to give), a remote stage cannot stop the run
//! (`on_error = "stop"` would stop only its worker), no stage from the first remote one on
//! asks for input order (outputs come back across the broker in the order workers finish
//! them), and the pipeline's name must be able to name its job on the server.

use super::error::{ConfigError, Findings, Loc};
use super::node::{Node, NodeKind};
use super::schema::{PipelineSpec, StageSpec};

/// The server a pipeline's broker edges go through when its file names none.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The kinds whose stages cannot run remotely yet: flat-maps (`grep` emits zero or one
/// item, `chunk` many), whose outputs are child items the worker cannot give wire ids.
pub const LOCAL_ONLY_KINDS: &[&str] = &["grep", "chunk"];

/// The `connector` settings (and the pipeline's `url`) as written, before the stages are
/// resolved.
#[derive(Clone, Debug, Default)]
pub struct Taken {
    pipeline: Option<Setting>,
    /// One per `[[stage]]` element, in order.
    stages: Vec<Option<Setting>>,
}

/// One table's `connector` and (`[pipeline]`'s) `url`.
#[derive(Clone, Debug, Default)]
struct Setting {
    /// `Some(true)`: `nats`, `Some(false)`: `memory`; with where it was written.
    remote: Option<(bool, Loc)>,
    url: Option<(String, Loc)>,
}

/// The stages a pipeline runs remotely, and the server they go through.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleOut {
    /// The server's URL (it may carry no credentials: see the module docs).
    pub url: String,
    /// The first remote stage's index in [`PipelineSpec::stages`].
    pub first: usize,
    /// One past the last remote stage's index.
    pub end: usize,
}

impl ScaleOut {
    /// The remote stages of `spec`.
    pub fn stages<'a>(&self, spec: &'a PipelineSpec) -> &'a [StageSpec] {
        &spec.stages[self.first..self.end]
    }

    /// A fingerprint of what the remote stages of `spec` do to an item: their names,
    /// kinds, parameters (paths as written) and error policies, and the kind of the
    /// stage after them or the sink (what their outputs must suit). Not their workers,
    /// capacities, batches or dead-letter files, which may differ from process to process.
    /// The origin sends it with every batch and a worker refuses a batch whose
    /// fingerprint differs from its own (see `millrace_nats::Job::fingerprint`): 16 hex
    /// digits of FNV-1a, stable across builds and machines.
    pub fn fingerprint(&self, spec: &PipelineSpec) -> String {
        let mut described = String::new();
        for stage in self.stages(spec) {
            described.push_str(&format!(
                "stage {:?} kind {} policy {}",
                stage.name, stage.part.kind.name, stage.policy
            ));
            for (name, value) in stage.part.params.iter() {
                described.push_str(&format!(" {name}={value}"));
            }
            described.push('\n');
        }
        let after = spec
            .stages
            .get(self.end)
            .map_or(spec.sink.part.kind.name, |s| s.part.kind.name);
        described.push_str(&format!("then {after}"));
        format!("{:016x}", fnv1a(described.as_bytes()))
    }
}

/// The 64-bit FNV-1a hash of `bytes`: a fixed function (`std`'s hashers may change from
/// one Rust release to the next, and an origin and its workers may be built apart).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Removes `connector` from `[pipeline]` and every `[[stage]]` of `root`, and `url` from
/// `[pipeline]` (a stage's `url` is its kind's: `http` has one), and checks their values
/// (errors go to `found`).
pub fn take(root: &mut Node, found: &mut Findings) -> Taken {
    let mut taken = Taken::default();
    let NodeKind::Table(top) = &mut root.kind else {
        return taken;
    };
    for entry in top.iter_mut() {
        match (entry.key.as_str(), &mut entry.value.kind) {
            ("pipeline", NodeKind::Table(_)) => {
                taken.pipeline = Some(setting(&mut entry.value, "pipeline", true, found));
            }
            ("stage", NodeKind::Array(items)) => {
                taken.stages = items
                    .iter_mut()
                    .enumerate()
                    .map(|(i, item)| {
                        let part = format!("stage #{}", i + 1);
                        matches!(item.kind, NodeKind::Table(_))
                            .then(|| setting(item, &part, false, found))
                    })
                    .collect();
            }
            _ => {}
        }
    }
    taken
}

/// Takes one table's `connector` (and, with `with_url`, its `url`) out of it.
fn setting(table: &mut Node, part: &str, with_url: bool, found: &mut Findings) -> Setting {
    let mut out = Setting::default();
    let NodeKind::Table(entries) = &mut table.kind else {
        return out;
    };
    let mut kept = Vec::with_capacity(entries.len());
    for entry in entries.drain(..) {
        match entry.key.as_str() {
            "connector" => match &entry.value.kind {
                NodeKind::Str(s) if s == "nats" => {
                    if cfg!(feature = "nats") {
                        out.remote = Some((true, entry.value.loc.clone()));
                    } else {
                        found.push(
                            ConfigError::new(
                                entry.value.loc.clone(),
                                "this millrace was built without NATS support",
                            )
                            .help(
                                "build the command with the `nats` feature: cargo install \
                                 millrace-cli --features nats",
                            )
                            .in_part(part),
                        );
                    }
                }
                NodeKind::Str(s) if s == "memory" => {
                    out.remote = Some((false, entry.value.loc.clone()));
                }
                _ => found.push(
                    ConfigError::new(
                        entry.value.loc.clone(),
                        format!(
                            "`connector` must be \"nats\" or \"memory\", found {}",
                            entry.value.describe()
                        ),
                    )
                    .help("connector = \"nats\" runs the stage on `millrace worker` processes")
                    .in_part(part),
                ),
            },
            "url" if with_url => match &entry.value.kind {
                NodeKind::Str(url) => match check_url(url) {
                    Ok(()) => out.url = Some((url.clone(), entry.value.loc.clone())),
                    Err(why) => found.push(
                        ConfigError::new(
                            entry.value.loc.clone(),
                            format!("`url` {url:?} is not a NATS server URL: {why}"),
                        )
                        .help(format!("write it like {DEFAULT_URL:?}"))
                        .in_part(part),
                    ),
                },
                _ => found.push(
                    ConfigError::new(
                        entry.value.loc.clone(),
                        format!("`url` must be a string, found {}", entry.value.describe()),
                    )
                    .help(format!("write it like {DEFAULT_URL:?}"))
                    .in_part(part),
                ),
            },
            _ => kept.push(entry),
        }
    }
    *entries = kept;
    out
}

/// Why `url` is not a NATS server URL (`nats://` or `tls://`, a host, an optional port,
/// several of them comma-separated), if it is not.
pub fn check_url(url: &str) -> Result<(), String> {
    for one in url.split(',') {
        let one = one.trim();
        let Some((scheme, rest)) = one.split_once("://") else {
            return Err("it has no scheme (nats:// or tls://)".into());
        };
        if !matches!(scheme, "nats" | "tls") {
            return Err(format!("the scheme `{scheme}` is not nats or tls"));
        }
        if rest.contains('@') {
            return Err(
                "credentials do not go in the file: set MILLRACE_NATS_CREDS, \
                        MILLRACE_NATS_USER and MILLRACE_NATS_PASSWORD, or MILLRACE_NATS_TOKEN"
                    .into(),
            );
        }
        let host_port = rest.trim_end_matches('/');
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                (host, Some(port))
            }
            _ => (host_port, None),
        };
        if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
            return Err(format!("`{host_port}` is not a host[:port]"));
        }
        if let Some(port) = port {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("the port `{port}` is not a number from 1 to 65535"));
            }
        }
    }
    Ok(())
}

/// Which of `spec`'s stages are remote, once they are resolved; errors go to `found`.
pub fn settle(taken: &Taken, spec: &PipelineSpec, found: &mut Findings) -> Option<ScaleOut> {
    let default = taken.pipeline.as_ref();
    let mut remote = Vec::new();
    let url = default.and_then(|d| d.url.as_ref());
    for (i, stage) in spec.stages.iter().enumerate() {
        let own = taken.stages.get(i).and_then(Option::as_ref);
        let marked = own
            .and_then(|s| s.remote.clone())
            .or_else(|| default.and_then(|d| d.remote.clone()));
        let Some((true, loc)) = marked else {
            continue;
        };
        if LOCAL_ONLY_KINDS.contains(&stage.part.kind.name) {
            found.push(
                ConfigError::new(
                    loc.clone(),
                    format!(
                        "stage `{}` cannot run remotely: its kind `{}` is a flat-map, whose \
                         outputs cannot cross a broker edge yet",
                        stage.name, stage.part.kind.name
                    ),
                )
                .help("keep it in the origin: connector = \"memory\" on this stage")
                .in_part(&format!("stage {}", stage.name)),
            );
        }
        if stage.policy.stops() {
            found.push(
                ConfigError::new(
                    loc.clone(),
                    format!(
                        "stage `{}` runs remotely with {}: a failure there would stop only \
                         its worker, not the run",
                        stage.name,
                        stage.policy.as_written()
                    ),
                )
                .help(
                    "use on_error = \"skip\" (or \"retry\" then \"skip\") on remote stages: \
                     their failed items are counted in the run's report",
                )
                .in_part(&format!("stage {}", stage.name)),
            );
        }
        remote.push((i, loc));
    }
    let (&(first, ref first_loc), &(last, _)) = (remote.first()?, remote.last()?);
    if let Some(why) = job_name_problem(&spec.name) {
        found.push(
            ConfigError::new(
                spec.name_loc.clone().unwrap_or_else(|| first_loc.clone()),
                format!(
                    "the pipeline's name `{}` names its job on the NATS server, and {why}",
                    spec.name
                ),
            )
            .help("give the pipeline a name under [pipeline], e.g. name = \"my-pipeline\""),
        );
    }
    for stage in spec.stages.iter().skip(first).filter(|s| s.ordered) {
        let remote_here = remote
            .iter()
            .any(|(i, _)| spec.stages[*i].name == stage.name);
        found.push(
            ConfigError::new(
                stage
                    .ordered_loc
                    .clone()
                    .unwrap_or_else(|| stage.part.loc.clone()),
                format!(
                    "stage `{}` asks for input order (ordered = true), but order is not kept \
                     across the broker: {}",
                    stage.name,
                    if remote_here {
                        "its outputs come back in the order the workers finish them"
                    } else {
                        "the remote stages before it hand their outputs back in the order the \
                         workers finish them"
                    }
                ),
            )
            .help(
                "keep ordered stages before the remote ones, or run the pipeline in memory \
                 (connector = \"memory\")",
            )
            .in_part(&format!("stage {}", stage.name)),
        );
    }
    if let Some(window) = remote.windows(2).find(|w| w[1].0 != w[0].0 + 1) {
        let (gap_at, loc) = (&window[1].0, &window[1].1);
        found.push(
            ConfigError::new(
                loc.clone(),
                format!(
                    "the remote stages must be one run of consecutive stages: stage `{}` is \
                     remote, `{}` before it is not",
                    spec.stages[*gap_at].name,
                    spec.stages[gap_at - 1].name
                ),
            )
            .help("mark the stages between them connector = \"nats\" too, or keep this one local")
            .in_part(&format!("stage {}", spec.stages[*gap_at].name)),
        );
    }
    Some(ScaleOut {
        url: url.map_or_else(|| DEFAULT_URL.to_owned(), |(u, _)| u.clone()),
        first,
        end: last + 1,
    })
}

/// Why `name` cannot name a job on the server, if it cannot (millrace-nats's rule for the
/// names of streams: 1 to 32 ASCII letters, digits, `-` and `_`, not starting with `_`).
fn job_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 32 {
        Some("a job's name must have 1 to 32 characters")
    } else if name.starts_with('_') {
        Some("names starting with `_` are millrace's own")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some("only ASCII letters, digits, `-` and `_` may name a job")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{check_url, fnv1a, job_name_problem};
    #[cfg(feature = "nats")]
    use crate::config::{load_str, PipelineSpec};

    #[cfg(feature = "nats")]
    fn remote(stages: &str, overrides: &[&str]) -> PipelineSpec {
        let text = format!(
            "[pipeline]\nname = \"p\"\n[source]\nkind = \"range\"\nend = 10\n{stages}\n[sink]\nkind = \"sum\"\n"
        );
        let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
        load_str(&text, "p.toml", std::path::Path::new("."), &overrides)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[cfg(feature = "nats")]
    fn fingerprint(spec: &PipelineSpec) -> String {
        let scale = spec.scale_out.as_ref().expect("a remote stage");
        scale.fingerprint(spec)
    }

    #[cfg(feature = "nats")]
    const SCALE: &str =
        "[[stage]]\nname = \"scale\"\nkind = \"scale\"\nfactor = 3\nconnector = \"nats\"\nworkers = 2";

    #[test]
    fn fnv1a_is_the_published_function() {
        // The reference values of the 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[cfg(feature = "nats")]
    #[test]
    fn the_fingerprint_changes_with_what_a_remote_stage_does_and_not_with_its_workers() {
        let base = fingerprint(&remote(SCALE, &[]));
        assert_eq!(base.len(), 16);
        assert_eq!(
            base,
            fingerprint(&remote(SCALE, &[])),
            "the same file, the same"
        );
        assert_eq!(
            base,
            fingerprint(&remote(
                SCALE,
                &["stage.scale.workers=8", "stage.scale.capacity=64"]
            )),
            "workers and capacity may differ by process"
        );
        for changed in ["stage.scale.factor=4", "stage.scale.on_error=\"retry\""] {
            assert_ne!(base, fingerprint(&remote(SCALE, &[changed])), "{changed}");
        }
        let renamed = SCALE.replace("name = \"scale\"", "name = \"times\"");
        assert_ne!(base, fingerprint(&remote(&renamed, &[])), "a stage renamed");
    }

    #[test]
    fn a_job_name_is_letters_digits_dashes_and_underscores() {
        assert_eq!(job_name_problem("scale-out_2"), None);
        assert!(job_name_problem("my.pipe").is_some());
        assert!(job_name_problem("_own").is_some());
        assert!(job_name_problem(&"x".repeat(33)).is_some());
    }

    #[test]
    fn a_nats_url_with_host_and_port_is_accepted() {
        assert_eq!(check_url("nats://127.0.0.1:4222"), Ok(()));
        assert_eq!(check_url("tls://a.example:4222,nats://b.example"), Ok(()));
    }

    #[test]
    fn a_url_without_scheme_or_with_a_bad_port_or_credentials_is_refused() {
        assert!(check_url("127.0.0.1:4222").is_err());
        assert!(check_url("http://x:4222").is_err());
        assert!(check_url("nats://x:99999").is_err());
        assert!(check_url("nats://u:p@x:4222").is_err());
        assert!(check_url("nats://").is_err());
    }
}
