//! The seed pipeline (the blog's sample, workload W1): 3·x² for every x, in three stages.
//!
//! Stage `wrap` turns x into [`Data`]` { x, y: 0 }`, `square` sets `y = x·x`, `scale` sets
//! `y = 3·y`; whatever receives the results sums their `y` (wrapping). Over `0..n` that sum
//! is [`checksum`]`(n)`, the closed form n(n-1)(2n-1)/2 reduced mod 2^64.
//!
//! # What is shared and what is not
//!
//! Three programs run this pipeline for different ends, and they share this module's item,
//! stages and checksum, not one pipeline builder:
//!
//! - the benchmark (`millrace-bench`, W1) builds it under a sweep of worker counts, batch
//!   sizes and fusing, beside sequential, rayon and crossbeam baselines, and sums in a sink;
//! - the `millrace` command (its built-in pipeline) runs it once, with its results flowing
//!   back up the response path to `wrap`, under the live view and the final report;
//! - the core's `seed` example teaches the API, so it writes its stages out as closures
//!   where a reader sees them, and checks its sum against [`checksum`].
//!
//! # Examples
//!
//! ```
//! use millrace_workloads::seed::{add, checksum, scale, square, wrap};
//!
//! let n = 1_000;
//! let sum = (0..n).map(|x| scale(square(wrap(x)))).fold(0, add);
//! assert_eq!(sum, checksum(n));
//! ```

/// The item the seed pipeline's stages pass on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data {
    /// The input.
    pub x: u64,
    /// The result so far.
    pub y: u64,
}

/// Stage `wrap`: x into [`Data`] with `y = 0`.
pub fn wrap(x: u64) -> Data {
    Data { x, y: 0 }
}

/// Stage `square`: `y = x·x` (wrapping).
pub fn square(d: Data) -> Data {
    Data {
        y: d.x.wrapping_mul(d.x),
        ..d
    }
}

/// Stage `scale`: `y = 3·y` (wrapping).
pub fn scale(d: Data) -> Data {
    Data {
        y: d.y.wrapping_mul(3),
        ..d
    }
}

/// The sum's step: adds `d.y` to `sum` (wrapping).
pub fn add(sum: u64, d: Data) -> u64 {
    sum.wrapping_add(d.y)
}

/// The seed pipeline's checksum over `0..n`: the wrapping sum of 3·x² for x < n, by the
/// closed form n(n-1)(2n-1)/2 reduced mod 2^64.
///
/// # Examples
///
/// ```
/// use millrace_workloads::seed::checksum;
///
/// assert_eq!(checksum(3), 3 * (0 + 1 + 4));
/// // The figures `bench-workloads.md` gives for W1.
/// assert_eq!(checksum(10_000_000), 3_875_670_019_689_212_736);
/// assert_eq!(checksum(20_000_000), 12_559_216_083_774_150_272);
/// ```
pub const fn checksum(n: u64) -> u64 {
    // One of n and n-1 is even: halve it first, and the rest is a product mod 2^64, exact
    // for every n (a product in u128 would overflow from n ≈ 5.5·10^12).
    let (a, b) = if n % 2 == 0 {
        (n / 2, n.wrapping_sub(1))
    } else {
        (n, (n - 1) / 2)
    };
    a.wrapping_mul(b)
        .wrapping_mul(n.wrapping_mul(2).wrapping_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_form_agrees_with_the_stages() {
        for n in [0, 1, 2, 3, 10, 1_001, 65_536, 100_003] {
            let direct = (0..n).map(|x| scale(square(wrap(x)))).fold(0, add);
            assert_eq!(checksum(n), direct, "n = {n}");
        }
    }

    #[test]
    fn the_closed_form_holds_where_a_u128_product_would_overflow() {
        // n(n-1)(2n-1)/2 for n = 2^63: n/2 · (n-1) · (2n-1) mod 2^64, worked in u128 halves.
        let n: u128 = 1 << 63;
        let m = 1u128 << 64;
        let expected = ((n / 2) % m * ((n - 1) % m) % m * ((2 * n - 1) % m)) % m;
        assert_eq!(u128::from(checksum(1 << 63)), expected);
        assert_eq!(checksum(u64::MAX), {
            let n = u128::from(u64::MAX);
            ((n % m) * ((n - 1) / 2 % m) % m * ((2 * n - 1) % m) % m) as u64
        });
    }
}
