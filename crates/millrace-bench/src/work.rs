//! The units of work the workloads are made of, exactly as `bench-workloads.md` defines them:
//! [`spin`], the unit of CPU work, and the 64-bit FNV-1a hash of W5.
//!
//! They are defined once, in the `millrace-workloads` crate, which the `millrace` command's
//! `spin` kind and the core's examples and tests use too, so all compute the same figures.

pub use millrace_workloads::{fnv1a, spin};
