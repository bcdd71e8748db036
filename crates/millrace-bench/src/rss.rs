//! Peak memory: one run in a child process, which reports its own peak resident set.
//!
//! The benchmark re-executes its own binary with the hidden flags
//! `--child W1 --n 20000000 --impl millrace`; the child runs the workload once and prints its
//! checksum and its `VmHWM` (the peak resident set size) from `/proc/self/status`. A fresh
//! process per figure keeps one run's allocations from hiding in another's peak.

use std::process::Command;

use crate::error::Error;
use crate::workloads::{Implementation, Workload};

/// How a child's allocator is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// The system allocator as it comes.
    Default,
    /// glibc told to give every block over 128 KiB a mapping of its own and to unmap it when
    /// freed (`MALLOC_MMAP_THRESHOLD_=131072`, which also stops the threshold from rising),
    /// so that the resident set follows the live buffers rather than what the allocator's
    /// per-thread arenas keep for reuse. Other allocators ignore the variable.
    ReturnsFreed,
}

impl Allocator {
    /// The environment variable that sets it up, if any.
    fn env(self) -> Option<(&'static str, &'static str)> {
        match self {
            Allocator::Default => None,
            Allocator::ReturnsFreed => Some(("MALLOC_MMAP_THRESHOLD_", "131072")),
        }
    }

    /// How the tables name it.
    pub fn label(self) -> &'static str {
        match self {
            Allocator::Default => "default",
            Allocator::ReturnsFreed => "MALLOC_MMAP_THRESHOLD_=131072",
        }
    }
}

/// What a child run reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildRun {
    /// The run's checksum.
    pub checksum: u64,
    /// The child's peak resident set size, in KiB.
    pub peak_kib: u64,
}

impl ChildRun {
    /// The peak in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

/// This process's peak resident set size in KiB (`VmHWM`), where the OS reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The child's side: runs `n` items of `workload` through `implementation` once and returns
/// the lines to print.
///
/// # Errors
///
/// The run's error, or [`Error::Child`] where the OS does not report the peak.
pub fn child_report(
    workload: Workload,
    implementation: &Implementation,
    n: u64,
) -> Result<String, Error> {
    let checksum = workload.run(implementation, n)?;
    let peak_kib = peak_rss_kib()
        .ok_or_else(|| Error::Child("this OS does not report VmHWM in /proc/self/status".into()))?;
    Ok(format!("checksum {checksum}\npeak_rss_kib {peak_kib}"))
}

fn field(stdout: &str, name: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().parse().ok())
}

/// The parent's side: runs `n` items of `workload` through the implementation named
/// `implementation` (`sequential`, `crossbeam`, `millrace`, …) in a child process whose
/// allocator is set up as `allocator` says.
///
/// # Errors
///
/// [`Error::Child`] if the child cannot start, fails, or prints something else.
pub fn measure_in_child(
    workload: Workload,
    implementation: &str,
    n: u64,
    allocator: Allocator,
) -> Result<ChildRun, Error> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Child(format!("cannot find this program's path: {e}")))?;
    let mut command = Command::new(&exe);
    command
        .args(["--child", workload.code(), "--n", &n.to_string()])
        .args(["--impl", implementation]);
    if let Some((name, value)) = allocator.env() {
        command.env(name, value);
    }
    let output = command
        .output()
        .map_err(|e| Error::Child(format!("cannot start {}: {e}", exe.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::Child(format!(
            "{workload} {implementation} at n = {n} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    match (field(&stdout, "checksum"), field(&stdout, "peak_rss_kib")) {
        (Some(checksum), Some(peak_kib)) => Ok(ChildRun { checksum, peak_kib }),
        _ => Err(Error::Child(format!(
            "{workload} {implementation}: unexpected output `{}`",
            stdout.trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reports_a_nonzero_peak() {
        assert!(peak_rss_kib().is_some_and(|kib| kib > 0));
    }

    #[test]
    fn child_fields_are_parsed_by_name() {
        let out = "checksum 42\npeak_rss_kib 2048\n";
        assert_eq!(field(out, "checksum"), Some(42));
        assert_eq!(field(out, "peak_rss_kib"), Some(2048));
        assert_eq!(field(out, "other"), None);
    }
}
