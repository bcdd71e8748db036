//! The units of work of millrace's standard benchmark workloads (`shared/bench-workloads.md`),
//! defined once for everything that must compute exactly what the benchmark computes:
//!
//! - [`spin`], the unit of CPU work of W2–W4 (and of the `spin` kind of the `millrace`
//!   command, which promises the benchmark's figures);
//! - [`seed`], the blog's sample pipeline (W1, and the command's built-in pipeline): its item,
//!   its three stages and the closed form of its checksum;
//! - [`fnv1a`], the hash of W5.
//!
//! The crate has no dependencies, so the command can link it without the benchmark's, and it
//! is no part of the core library's API (the core uses it only in its examples and tests).

#![forbid(unsafe_code)]

pub mod seed;

/// The unit of CPU work: `units × 200` rounds of a multiply-add-xorshift on `x`.
///
/// The caller must feed the result into its checksum, so the compiler cannot remove the
/// work; `units` goes through [`std::hint::black_box`] so the loop is the same whether the
/// call site knows it (a benchmark's constant) or not (a pipeline file's parameter).
///
/// # Examples
///
/// ```
/// use millrace_workloads::spin;
///
/// assert_eq!(spin(0, 42), 42);
/// // W3 `io` at N = 20,000 sums spin(2, x): its reference checksum.
/// let sum = (0..20_000u64).fold(0u64, |s, x| s.wrapping_add(spin(2, x)));
/// assert_eq!(sum, 798_309_582_560_318_661);
/// ```
#[inline]
pub fn spin(units: u32, x: u64) -> u64 {
    let mut x = x;
    for _ in 0..std::hint::black_box(units) * 200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x ^= x >> 33;
    }
    x
}

/// The 64-bit FNV-1a hash of `bytes` (W5 `large`).
///
/// # Examples
///
/// ```
/// assert_eq!(millrace_workloads::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn spin_of_zero_units_is_the_identity() {
        assert_eq!(spin(0, 42), 42);
    }

    #[test]
    fn spin_reproduces_the_w3_reference_checksum() {
        let sum = (0..20_000u64).fold(0u64, |s, x| s.wrapping_add(spin(2, x)));
        assert_eq!(sum, 798_309_582_560_318_661);
    }
}
