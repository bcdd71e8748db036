//! Numbers as the reports print them: counts grouped by thousands, rates with an SI prefix,
//! durations with a unit, each to about three significant digits.
//!
//! One definition for every report: the `millrace` command's text report and live view and
//! the benchmark's tables use these, so a figure reads the same everywhere.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use millrace::fmt;
//!
//! let line = format!(
//!     "{} items in {} ({} items/s)",
//!     fmt::count(10_000_000),
//!     fmt::duration(Duration::from_millis(1_234)),
//!     fmt::rate(8_103_727.0),
//! );
//! assert_eq!(line, "10,000,000 items in 1.23 s (8.10 M items/s)");
//! ```

use std::time::Duration;

/// `n` with its digits grouped by thousands: `10,000,000`.
///
/// # Examples
///
/// ```
/// assert_eq!(millrace::fmt::count(999), "999");
/// assert_eq!(millrace::fmt::count(1_234_567), "1,234,567");
/// ```
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate (of anything per second) to three significant digits, with an SI prefix from a
/// thousand on: `812`, `12.3 k`, `4.56 M`, `1.20 G`. Follow it with a space and the unit
/// (`items/s`).
///
/// # Examples
///
/// ```
/// use millrace::fmt::rate;
///
/// assert_eq!(rate(812.0), "812");
/// assert_eq!(rate(12_345.0), "12.3 k");
/// assert_eq!(rate(4_560_000.0), "4.56 M");
/// assert_eq!(rate(270_300_000.0), "270 M");
/// ```
pub fn rate(per_sec: f64) -> String {
    let (value, prefix) = if per_sec >= 1e9 {
        (per_sec / 1e9, " G")
    } else if per_sec >= 1e6 {
        (per_sec / 1e6, " M")
    } else if per_sec >= 1e3 {
        (per_sec / 1e3, " k")
    } else {
        (per_sec, "")
    };
    format!("{}{prefix}", three_digits(value))
}

/// A duration to three significant digits, in the largest unit under which it is at least
/// one: `640 ns`, `1.50 µs`, `7.34 ms`, `8.59 s` (and `3600 s` past a minute).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use millrace::fmt::duration;
///
/// assert_eq!(duration(Duration::from_nanos(640)), "640 ns");
/// assert_eq!(duration(Duration::from_micros(7_340)), "7.34 ms");
/// assert_eq!(duration(Duration::from_secs(3_600)), "3600 s");
/// ```
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let (value, unit) = if secs >= 1.0 {
        (secs, "s")
    } else if secs >= 1e-3 {
        (secs * 1e3, "ms")
    } else if secs >= 1e-6 {
        (secs * 1e6, "µs")
    } else {
        (secs * 1e9, "ns")
    };
    format!("{} {unit}", three_digits(value))
}

/// `value` to three significant digits (all of its integer digits from 100 on).
fn three_digits(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(10_000_000), "10,000,000");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn rates_have_three_significant_digits_and_a_prefix() {
        assert_eq!(rate(0.0), "0.00");
        assert_eq!(rate(12.5), "12.5");
        assert_eq!(rate(999.0), "999");
        assert_eq!(rate(1_000.0), "1.00 k");
        assert_eq!(rate(8_100.0), "8.10 k");
        assert_eq!(rate(123_456.0), "123 k");
        assert_eq!(rate(8_103_727.0), "8.10 M");
        assert_eq!(rate(1.2e9), "1.20 G");
    }

    #[test]
    fn durations_have_three_significant_digits_and_a_unit() {
        let ns = Duration::from_nanos;
        assert_eq!(duration(ns(0)), "0.00 ns");
        assert_eq!(duration(ns(640)), "640 ns");
        assert_eq!(duration(ns(1_500)), "1.50 µs");
        assert_eq!(duration(ns(812_000)), "812 µs");
        assert_eq!(duration(ns(45_678_000)), "45.7 ms");
        assert_eq!(duration(ns(8_589_934_592)), "8.59 s");
        assert_eq!(duration(Duration::from_secs(3_600)), "3600 s");
    }
}
