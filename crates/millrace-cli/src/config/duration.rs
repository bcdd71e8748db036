//! Durations in pipeline files: `"250ms"`, `"2s"`, `"1.5s"`, `"1m 30s"`.
//!
//! [`parse()`] reads them with [`humantime::parse_duration`]: one or more parts, each a
//! number (decimals allowed) and a unit: `ns`, `us` (or `µs`), `ms`, `s` (or `sec`), `m`
//! (or `min`), `h`, and humantime's longer ones (`d`, `w`, `hours`, …). A bare number is
//! refused, since nobody can tell whether `250` meant milliseconds or seconds; digit
//! separators (`"1_500ms"`) are dropped before parsing. humantime's errors
//! are put in the loader's words, saying which part of the text is wrong. [`format()`]
//! writes a duration back in the largest unit that keeps it exact, so `millrace check`
//! prints what the loader reads back unchanged.

use std::time::Duration;

/// Parses a duration such as `"250ms"`, `"2s"`, `"1.5s"` or `"1m 30s"`.
///
/// # Errors
///
/// Why the text is not a duration, in words.
pub fn parse(text: &str) -> Result<Duration, String> {
    use humantime::DurationError as E;

    let text = text.trim();
    // humantime takes no digit separators; no unit has an underscore, so dropping them
    // keeps `"1_500ms"` meaning what it says.
    let plain = text.replace('_', "");
    // Where humantime stopped: the rest of the text from byte `at`.
    let rest = |at: usize| plain.get(at..).unwrap_or("");
    humantime::parse_duration(&plain).map_err(|e| match e {
        E::Empty => "an empty duration".to_owned(),
        E::UnknownUnit { unit, .. } if unit.is_empty() => {
            format!("`{text}` has no unit (ms, s, m, …)")
        }
        E::UnknownUnit { unit, .. } => {
            format!("unknown unit `{unit}` (use ns, us, ms, s, m or h)")
        }
        E::InvalidCharacter(at) => format!("unexpected character at {:?}", rest(at)),
        E::NumberExpected(at) => format!("expected a number at {:?}", rest(at)),
        E::NumberOverflow => format!("{text:?} is too long"),
    })
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
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2 weeks"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(
            parse("2 fortnights").unwrap_err(),
            "unknown unit `fortnights` (use ns, us, ms, s, m or h)"
        );
        assert_eq!(parse("250").unwrap_err(), "`250` has no unit (ms, s, m, …)");
        assert_eq!(parse("2s x").unwrap_err(), "expected a number at \"x\"");
        assert!(parse("1.2.3s")
            .unwrap_err()
            .contains("unexpected character"));
        assert_eq!(parse("  ").unwrap_err(), "an empty duration");
        // Digit separators, as TOML allows in numbers, stay accepted.
        assert_eq!(parse("1_500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("ms").unwrap_err(), "expected a number at \"ms\"");
        assert!(parse("").is_err());
        assert!(parse("ms").is_err());
        assert!(parse("1e999s").is_err());
        assert_eq!(
            parse("99999999999999999999h").unwrap_err(),
            "\"99999999999999999999h\" is too long"
        );
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["2s", "250ms", "1500us", "7ns", "0s", "90s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(parse("1.5s").unwrap()), "1500ms");
    }
}
