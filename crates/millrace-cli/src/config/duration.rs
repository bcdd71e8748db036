//! Durations in pipeline files: `"250ms"`, `"2s"`, `"1.5s"`, `"1m 30s"`.
//!
//! A duration is a string of one or more parts, each a number (decimals allowed) and a
//! unit: `ns`, `us` (or `µs`), `ms`, `s`, `m` (or `min`), `h`. A bare number is refused,
//! since nobody can tell whether `250` meant milliseconds or seconds. [`format()`] writes a
//! duration back in the largest unit that keeps it exact, so `millrace check` prints what
//! the loader reads back unchanged.

use std::time::Duration;

/// Parses a duration such as `"250ms"`, `"2s"`, `"1.5s"` or `"1m 30s"`.
///
/// # Errors
///
/// Why the text is not a duration, in words.
pub fn parse(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let number: f64 = number
            .replace('_', "")
            .parse()
            .map_err(|_| format!("expected a number at {rest:?}"))?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("`{}` has no unit (ms, s, m, …)", text.trim())),
            other => {
                return Err(format!(
                    "unknown unit `{other}` (use ns, us, ms, s, m or h)"
                ))
            }
        };
        let part = Duration::try_from_secs_f64(number * seconds_per_unit)
            .map_err(|_| format!("{:?} is too long", text.trim()))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{:?} is too long", text.trim()))?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// Writes `d` in the largest unit that keeps it exact: `2s`, `250ms`, `1500us`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".to_owned()
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_parts() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse(" 1.5 s "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert!(parse("250").unwrap_err().contains("no unit"));
        assert!(parse("2 weeks").unwrap_err().contains("unknown unit"));
        assert!(parse("").is_err());
        assert!(parse("ms").is_err());
        assert!(parse("1e999s").is_err());
        assert!(parse("99999999999999999999h").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["2s", "250ms", "1500us", "7ns", "0s", "90s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(parse("1.5s").unwrap()), "1500ms");
    }
}
