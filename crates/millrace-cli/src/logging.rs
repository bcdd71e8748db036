//! `--log-format json|text` and `RUST_LOG`: the engine's traces (the `millrace` library's
//! feature `tracing`: spans for the run, its threads and sampled batches; events for
//! autoscaling decisions, wedges, item errors and the run's end) written on stderr by
//! `tracing-subscriber`.
//!
//! Nothing is installed unless one of them is given, so the command's output stays as it
//! is by default. `RUST_LOG` takes `tracing-subscriber`'s `EnvFilter` syntax
//! (`millrace=debug`, `info,millrace::trace=debug` …); without it the filter is `info`.

use std::io::IsTerminal as _;

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

/// How traces are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event or closed span.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the subscriber `format` (or `RUST_LOG` alone) asks for; does nothing if neither
/// is given, or if a subscriber is already installed.
pub fn init(format: Option<LogFormat>) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty());
    let format = match (format, &filter) {
        (Some(format), _) => format,
        (None, Some(_)) => LogFormat::Text,
        (None, None) => return,
    };
    let filter = match filter.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            eprintln!("millrace: RUST_LOG is not a filter ({e}); using `info`");
            EnvFilter::new("info")
        }
        None => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::CLOSE)
        .with_thread_names(true)
        .with_ansi(std::io::stderr().is_terminal());
    // Another subscriber already installed (a test calling in twice) keeps its place.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
