//! The benchmark's error: everything that makes a run of the matrix fail loudly.

use std::any::Any;
use std::fmt;

/// Why a benchmark run, or one implementation in it, failed.
#[derive(Debug)]
pub enum Error {
    /// A millrace run ended in error.
    Run(Box<millrace::RunError>),
    /// A thread of a baseline panicked.
    Panicked {
        /// The thread (or implementation) that panicked.
        what: String,
        /// Its panic message.
        message: String,
    },
    /// The workload cannot run yet.
    Pending {
        /// The workload's code, e.g. `W3`.
        workload: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An implementation's checksum differs from the sequential loop's (or from the reference).
    Checksum {
        /// The workload's code.
        workload: &'static str,
        /// The implementation that disagreed.
        implementation: String,
        /// What it should have been.
        expected: u64,
        /// What it was.
        got: u64,
    },
    /// A child process measuring peak memory failed.
    Child(String),
}

impl Error {
    /// The error of a thread that panicked with `payload`.
    pub fn panicked(what: impl Into<String>, payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".to_owned());
        Error::Panicked {
            what: what.into(),
            message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Run(e) => write!(f, "the millrace run failed: {e}"),
            Error::Panicked { what, message } => write!(f, "{what} panicked: {message}"),
            Error::Pending { workload, reason } => write!(f, "{workload} is {reason}"),
            Error::Checksum {
                workload,
                implementation,
                expected,
                got,
            } => write!(
                f,
                "CHECKSUM MISMATCH in {workload}: {implementation} gave {got}, expected {expected}"
            ),
            Error::Child(message) => write!(f, "peak-memory child process: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Run(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<millrace::RunError> for Error {
    fn from(e: millrace::RunError) -> Self {
        Error::Run(Box::new(e))
    }
}
