//! Durations as written in specs (`45m`, `1h30m`, `90s`).

use std::time::Duration;

/// Schema pattern for duration fields: one or more `<integer><unit>` pairs,
/// unit one of `h`, `m`, `s`, `ms` (a subset of Go's `time.ParseDuration`).
pub const PATTERN: &str = "^([0-9]+(h|m|s|ms))+$";

/// Parses a duration matching [`PATTERN`]; `None` when it does not match.
pub fn parse(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return None;
        };
        let amount = u32::try_from(amount).ok()?;
        total = total.checked_add(unit.checked_mul(amount)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse("45m"), Some(Duration::from_secs(45 * 60)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(90 * 60)));
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "h", "1", "1d", "1.5h", "-1h", "1h "] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
