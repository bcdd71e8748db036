//! The subcommands, one module each: [`run`], [`check`], [`stages`], [`tune`].
//!
//! Each returns the process's exit code: [`EXIT_OK`], [`EXIT_FAILED`] (the pipeline
//! failed), [`EXIT_CONFIG`] (bad config or usage), or 130 after Ctrl-C. Messages go to
//! stderr, prefixed `millrace:`; data goes to stdout.

pub mod check;
pub mod run;
pub mod stages;
pub mod tune;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The pipeline failed: an item failed under `stop`, an input could not be read or an
/// output written.
pub const EXIT_FAILED: u8 = 1;
/// Bad config or usage.
pub const EXIT_CONFIG: u8 = 2;

/// Prints `millrace: message` on stderr and returns `code`.
pub fn fail(code: u8, message: &str) -> u8 {
    eprintln!("millrace: {message}");
    code
}
