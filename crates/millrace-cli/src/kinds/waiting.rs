//! The async kinds, for work that waits rather than computes: `sleep` (a timer, standing
//! in for any I/O wait) and `http` (a GET per item).
//!
//! Each is an async stage of the engine (`Stage::try_map_async`): up to `concurrency`
//! items in flight at once on a tokio runtime, on three threads whatever the concurrency,
//! so 1,000 waits of 50 ms take about 50 ms, not 1,000 threads. A `timeout` fails an item
//! whose wait takes longer (its future is dropped) under the stage's error policy. Both
//! borrow their item to start each try, so they retry like any fallible stage. They take
//! no `workers`: the concurrency is what scales them.

use std::sync::Arc;
use std::time::Duration;

use millrace::Stage;

use super::http::{self, Fetcher, Output, Template};
use super::types::{Types, ANY, NUMBER_OR_TEXT};
use super::{field_param, Builder, Exec, KindSpec, Role, Validate};
use crate::config::error::ConfigError;
use crate::config::params::{Default, ParamSpec, ParamType, Params};
use crate::value::{Fault, Item, Slot, Ty};

/// Items in flight when `concurrency` is not given (the engine's default).
pub const DEFAULT_CONCURRENCY: &str = "64";

const CONCURRENCY: ParamSpec = ParamSpec {
    name: "concurrency",
    ty: ParamType::Int {
        min: 1,
        max: 1_000_000,
    },
    default: Default::Value(DEFAULT_CONCURRENCY),
    doc: "items in flight at once (async: no thread per item)",
};

const TIMEOUT: ParamSpec = ParamSpec {
    name: "timeout",
    ty: ParamType::Duration,
    default: Default::Optional,
    doc: "fail an item that takes longer (\"250ms\", \"2s\"); none by default",
};

/// The async kinds.
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        name: "sleep",
        role: Role::Transform,
        summary: "waits a while per item (standing in for I/O), as an async stage",
        takes: "anything",
        gives: "the same item",
        types: |_| Types::passing(ANY, None),
        params: &[
            ParamSpec {
                name: "ms",
                ty: ParamType::Millis,
                default: Default::Required,
                doc: "milliseconds to wait per item",
            },
            CONCURRENCY,
            TIMEOUT,
        ],
        example: "[[stage]]\nkind = \"sleep\"\nms = 10\nconcurrency = 1000",
        validate: None,
        exec: Exec::Async { io: false },
        build: Builder::Transform(sleep),
    },
    KindSpec {
        name: "http",
        role: Role::Transform,
        summary: "GETs a URL made from each item; a status outside 2xx fails the item",
        takes: "number or text (put in the URL's {})",
        gives: "text (the body, invalid UTF-8 replaced: not for binary downloads) or number (the status); records gain `body` or `status`",
        types: http_types,
        params: &[
            ParamSpec {
                name: "url",
                ty: ParamType::Text,
                default: Default::Required,
                doc: "http:// URL; {} is replaced by the item (text percent-encoded)",
            },
            ParamSpec {
                name: "output",
                ty: ParamType::Choice(&["body", "status"]),
                default: Default::Value("\"body\""),
                doc: "what the item becomes: the body as text, or the status code",
            },
            ParamSpec {
                name: "max_body",
                ty: ParamType::Size {
                    min: 0,
                    max: 1 << 30,
                },
                default: Default::Value("\"16MiB\""),
                doc: "a longer body fails the item",
            },
            CONCURRENCY,
            TIMEOUT,
            field_param("\"value\""),
            ParamSpec {
                name: "into",
                ty: ParamType::Text,
                default: Default::Optional,
                doc: "the field written when the item is a record (default: `output`)",
            },
        ],
        example: "[[stage]]\nkind = \"http\"\nurl = \"http://127.0.0.1:8080/items/{}\"\nconcurrency = 100\ntimeout = \"2s\"",
        validate: Some(Validate {
            reads: &["url"],
            check: validate_http,
        }),
        exec: Exec::Async { io: true },
        build: Builder::Transform(http_stage),
    },
];

/// Applies the async settings every async kind takes.
fn settings(stage: Stage<Item, Item>, params: &Params) -> Stage<Item, Item> {
    let concurrency = usize::try_from(params.uint("concurrency")).unwrap_or(usize::MAX);
    let stage = stage.concurrency(concurrency.max(1));
    match params.duration("timeout") {
        Some(limit) => stage.timeout(limit),
        None => stage,
    }
}

fn sleep(name: &str, params: &Params) -> Stage<Item, Item> {
    let delay = Duration::try_from_secs_f64(params.millis("ms") / 1000.0).unwrap_or(Duration::MAX);
    let stage = Stage::try_map_async(name, move |item: &Item| {
        let item = item.clone();
        async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Fault>(item)
        }
    });
    settings(stage, params)
}

fn validate_http(params: &Params) -> Result<(), ConfigError> {
    let url = params.text("url").unwrap_or("");
    Template::parse(url)
        .map(|_| ())
        .map_err(|e| ConfigError::new(params.loc("url"), format!("`url`: {e}")))
}

/// What an `http` stage gives, and the slot it reads and writes through.
fn http_output(params: &Params) -> (Output, Slot) {
    let output = match params.text("output") {
        Some("status") => Output::Status,
        _ => Output::Body,
    };
    let field = params.text("field").unwrap_or("value");
    let into = params.text("into").unwrap_or(match output {
        Output::Body => "body",
        Output::Status => "status",
    });
    (output, Slot::new(field, into))
}

fn http_types(params: &Params) -> Types {
    let (output, slot) = http_output(params);
    let ty = match output {
        Output::Body => Ty::Text,
        Output::Status => Ty::Number,
    };
    Types::through(&slot, NUMBER_OR_TEXT, ty)
}

fn http_stage(name: &str, params: &Params) -> Stage<Item, Item> {
    let (output, slot) = http_output(params);
    let max_body = usize::try_from(params.uint("max_body")).unwrap_or(usize::MAX);
    // The URL was checked when the file was loaded; should it still not parse, every item
    // fails with the reason.
    let template = Template::parse(params.text("url").unwrap_or("")).map_err(Arc::<str>::from);
    let fetcher = Arc::new(Fetcher::new(output, max_body));
    let stage = Stage::try_map_async(name, move |item: &Item| {
        let start = match (&template, http::key(&slot, &item.value)) {
            (Ok(t), Ok(key)) => Ok((t.fill(&key), item.value.clone())),
            (Err(e), _) => Err(Fault::Other(e.to_string())),
            (_, Err(fault)) => Err(fault),
        };
        let (fetcher, slot, id) = (Arc::clone(&fetcher), slot.clone(), item.id);
        async move {
            let (url, value) = start?;
            let answer = fetcher.get(url).await?;
            Ok::<_, Fault>(Item {
                id,
                value: slot.write(&value, answer),
            })
        }
    });
    settings(stage, params)
}
