//! Transform kinds on bytes: `hash` (BLAKE3), `compress` (zstd) and `chunk` (FastCDC
//! content-defined chunking).
//!
//! Bytes are reference-counted ([`Bytes`]): `chunk` slices its input without copying, and
//! a stage that borrows a record and hands on a changed copy copies pointers only.
//!
//! # Per-worker state
//!
//! `compress` keeps one zstd compression context per worker (`Stage::try_map_with`), made
//! on the worker's first item and reused for every later one, so no context is shared and
//! no lock is taken. A worker added by the autoscaler starts with none of its own; a
//! context that cannot be made fails the item at hand, and the next item tries again.

use bytes::Bytes;
use millrace::Stage;

use super::types::{Input, Output, Types, BYTES_OR_TEXT};
use super::{field_param, into_param, slot, Builder, Exec, KindSpec, Role, Validate};
use crate::config::error::{ConfigError, Loc};
use crate::config::params::{Default, ParamSpec, ParamType, Params};
use crate::value::{hex, Fault, Item, Record, Ty, Value};

/// The bytes transform kinds.
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        name: "hash",
        role: Role::Transform,
        summary: "the BLAKE3 hash of bytes (or of text's UTF-8), as 64 hex digits",
        takes: "bytes or text",
        gives: "text (records keep their data and gain `hash`)",
        types: |p| Types::through(&slot(p), BYTES_OR_TEXT, Ty::Text),
        params: &[field_param("\"data\""), into_param("\"hash\"")],
        example: "[[stage]]\nkind = \"hash\"\nworkers = 2",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Transform(hash),
    },
    KindSpec {
        name: "compress",
        role: Role::Transform,
        summary: "zstd-compresses bytes, one compression context per worker",
        takes: "bytes or text",
        gives: "bytes",
        types: |p| Types::through(&slot(p), BYTES_OR_TEXT, Ty::Bytes),
        params: &[
            ParamSpec {
                name: "level",
                ty: ParamType::Int { min: -7, max: 22 },
                default: Default::Value("3"),
                doc: "the zstd level (negative: faster, 22: smallest)",
            },
            field_param("\"data\""),
            into_param("\"data\""),
        ],
        example: "[[stage]]\nkind = \"compress\"\nlevel = 3\nworkers = 2",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Transform(compress),
    },
    KindSpec {
        name: "chunk",
        role: Role::Transform,
        summary: "cuts bytes into content-defined chunks (FastCDC 2020)",
        takes: "bytes or text",
        gives: "records {…, offset: number, length: number, data: bytes}, one per chunk",
        types: chunk_types,
        params: &[
            ParamSpec {
                name: "min_size",
                ty: ParamType::Size {
                    min: fastcdc::v2020::MINIMUM_MIN as u64,
                    max: fastcdc::v2020::MINIMUM_MAX as u64,
                },
                default: Default::Value("\"16KiB\""),
                doc: "the smallest chunk (but the last)",
            },
            ParamSpec {
                name: "avg_size",
                ty: ParamType::Size {
                    min: fastcdc::v2020::AVERAGE_MIN as u64,
                    max: fastcdc::v2020::AVERAGE_MAX as u64,
                },
                default: Default::Value("\"64KiB\""),
                doc: "the chunk size aimed at",
            },
            ParamSpec {
                name: "max_size",
                ty: ParamType::Size {
                    min: fastcdc::v2020::MAXIMUM_MIN as u64,
                    max: fastcdc::v2020::MAXIMUM_MAX as u64,
                },
                default: Default::Value("\"256KiB\""),
                doc: "the largest chunk",
            },
            field_param("\"data\""),
        ],
        example: "[[stage]]\nkind = \"chunk\"\navg_size = \"8KiB\"\nmin_size = \"2KiB\"\nmax_size = \"64KiB\"",
        validate: Some(Validate {
            reads: &["min_size", "avg_size", "max_size"],
            check: validate_chunk,
        }),
        exec: Exec::Threads,
        build: Builder::Transform(chunk),
    },
];

fn hash(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    Stage::try_map(name, move |item: &Item| {
        let data = slot.bytes(&item.value)?;
        let digest = blake3::hash(&data);
        Ok::<_, Fault>(item.with(slot.write(&item.value, Value::text(&hex(digest.as_bytes())))))
    })
}

/// One worker's zstd context, made on first use.
#[derive(Default)]
struct Context(Option<zstd::bulk::Compressor<'static>>);

impl Context {
    /// Compresses `data` at `level`, making the context first if need be.
    fn compress(&mut self, level: i32, data: &[u8]) -> Result<Vec<u8>, Fault> {
        let compressor = match &mut self.0 {
            Some(c) => c,
            empty => empty.insert(
                zstd::bulk::Compressor::new(level)
                    .map_err(|e| Fault::Other(format!("zstd: cannot make a context: {e}")))?,
            ),
        };
        compressor
            .compress(data)
            .map_err(|e| Fault::Other(format!("zstd: {e}")))
    }
}

fn compress(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    let level = i32::try_from(params.int("level")).unwrap_or(3);
    Stage::try_map_with(
        name,
        Context::default,
        move |ctx: &mut Context, item: &Item| {
            let data = slot.bytes(&item.value)?;
            let packed = ctx.compress(level, &data)?;
            Ok::<_, Fault>(item.with(slot.write(&item.value, Value::Bytes(Bytes::from(packed)))))
        },
    )
}

fn chunk_types(params: &Params) -> Types {
    let field = slot(params).field().to_owned();
    Types {
        input: Input::Value {
            accepts: BYTES_OR_TEXT,
            field: Some(field.clone()),
        },
        output: Output::Chunks { field },
    }
}

fn validate_chunk(params: &Params) -> Result<(), ConfigError> {
    at_most(params, "min_size", "avg_size")?;
    at_most(params, "avg_size", "max_size")
}

/// Checks that size parameter `low` is at most `high`. The error is placed at the one that
/// was written (at `low` when both were), and says which value is a default, so that
/// `avg_size = "8KiB"` alone is shown to clash with `min_size`'s default.
fn at_most(params: &Params, low: &str, high: &str) -> Result<(), ConfigError> {
    let (lo, hi) = (params.uint(low), params.uint(high));
    if lo <= hi {
        return Ok(());
    }
    let given = |name: &str| params.loc(name) != Loc::Whole;
    let shown = |name: &str, v: u64| {
        let default = if given(name) { "" } else { ", its default" };
        format!("`{name}` ({v} bytes{default})")
    };
    let message = format!("{} must not exceed {}", shown(low, lo), shown(high, hi));
    let (at, help) = match (given(low), given(high)) {
        (true, false) => (
            low,
            format!("lower `{low}` to at most {hi}, or set `{high}` too, to at least {lo}"),
        ),
        (false, true) => (
            high,
            format!("set `{low}` too, to at most {hi}, or raise `{high}` to at least {lo}"),
        ),
        _ => (low, format!("lower `{low}` or raise `{high}`")),
    };
    Err(ConfigError::new(params.loc(at), message).help(help))
}

fn chunk(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    let size = |p: &str| u32::try_from(params.uint(p)).unwrap_or(u32::MAX);
    let (min, avg, max) = (size("min_size"), size("avg_size"), size("max_size"));
    Stage::try_flat_map(name, move |item: &Item| {
        let data = slot.bytes(&item.value)?;
        let parent = match &item.value {
            Value::Record(r) => r.clone(),
            _ => Record::new(),
        };
        let chunks: Vec<Item> = fastcdc::v2020::FastCDC::new(&data, min, avg, max)
            .map(|c| {
                let end = (c.offset + c.length).min(data.len());
                let piece = data.slice(c.offset.min(end)..end);
                item.with(Value::Record(
                    parent
                        .clone()
                        .with("offset", Value::Number(c.offset as u64))
                        .with("length", Value::Number(piece.len() as u64))
                        .with(slot.field(), Value::Bytes(piece)),
                ))
            })
            .collect();
        Ok::<_, Fault>(chunks)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_round_trips_through_the_worker_context() {
        let data = b"millrace ".repeat(1000);
        let mut ctx = Context::default();
        let packed = ctx.compress(3, &data).unwrap();
        assert!(packed.len() < data.len() / 10);
        assert_eq!(zstd::bulk::decompress(&packed, data.len()).unwrap(), data);
        // A second call reuses the context.
        assert!(ctx.0.is_some());
        assert_eq!(ctx.compress(3, &data).unwrap(), packed);
    }
}
