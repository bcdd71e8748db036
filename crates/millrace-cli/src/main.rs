//! The `millrace` command: runs staged pipelines and reports what held them back.
//!
//! With no arguments it runs the built-in seed pipeline (the blog's 3·x² over 10,000,000
//! numbers) and prints the per-stage report. See `millrace --help`, and the crate docs of
//! `millrace_cli` for the modules.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(millrace_cli::main_with_args(std::env::args_os()))
}
