//! The string `format`s the API server checks (kube-openapi's default registry); unknown formats
//! are accepted, as the real server does.

use base64::Engine;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `value` is valid for `format`; `None` when the format is not one the server checks.
pub fn check(format: &str, value: &str) -> Option<bool> {
    let ok = match format {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(value).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok() && value.len() == 10,
        "byte" => base64::engine::general_purpose::STANDARD.decode(value).is_ok(),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => is_uuid(format, value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(value),
        "hostname" => is_hostname(value),
        "email" => is_email(value),
        "mac" => is_mac(value),
        "duration" => is_duration(value),
        "uri" => is_uri(value),
        _ => return None,
    };
    Some(ok)
}

fn is_uuid(format: &str, value: &str) -> bool {
    if value.len() != 36 {
        return false;
    }
    let Ok(id) = uuid::Uuid::parse_str(value) else { return false };
    match format {
        "uuid3" => id.get_version_num() == 3,
        "uuid4" => id.get_version_num() == 4,
        "uuid5" => id.get_version_num() == 5,
        _ => true,
    }
}

fn is_cidr(value: &str) -> bool {
    let Some((ip, bits)) = value.split_once('/') else { return false };
    let Ok(bits) = bits.parse::<u8>() else { return false };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits <= 32,
        Ok(IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

fn is_hostname(value: &str) -> bool {
    let name = value.strip_suffix('.').unwrap_or(value);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else { return false };
    !local.is_empty() && !local.contains(char::is_whitespace) && is_hostname(domain)
}

fn is_mac(value: &str) -> bool {
    let groups: Vec<&str> = value.split([':', '-']).collect();
    matches!(groups.len(), 6 | 8 | 20)
        && groups.iter().all(|g| g.len() == 2 && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Go `time.ParseDuration` syntax (`1h30m`, `500ms`, `-1.5s`), as kube-openapi accepts.
fn is_duration(value: &str) -> bool {
    let rest = value.strip_prefix(['-', '+']).unwrap_or(value);
    if rest == "0" {
        return true;
    }
    let mut rest = rest;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"].iter().find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn is_uri(value: &str) -> bool {
    let Some((scheme, _)) = value.split_once(':') else { return false };
    !scheme.is_empty()
        && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn known_formats_accept_good_and_reject_bad_values() {
        let cases = [
            ("date-time", "2024-01-02T03:04:05Z", "2024-01-02"),
            ("date", "2024-01-02", "2024-13-02"),
            ("byte", "aGVsbG8=", "not base64!"),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"),
            ("uuid4", "123e4567-e89b-42d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
            ("ipv4", "10.0.0.1", "10.0.0.300"),
            ("ipv6", "::1", "1.2.3.4"),
            ("cidr", "10.0.0.0/8", "10.0.0.0/40"),
            ("hostname", "a.example.com", "-bad-.com"),
            ("email", "dev@example.com", "not-an-email"),
            ("mac", "01:23:45:67:89:ab", "01:23"),
            ("duration", "1h30m", "ten minutes"),
            ("uri", "https://example.com/x", "/relative"),
        ];
        for (format, good, bad) in cases {
            assert_eq!(check(format, good), Some(true), "{format} should accept {good}");
            assert_eq!(check(format, bad), Some(false), "{format} should reject {bad}");
        }
    }

    #[test]
    fn duration_edge_cases() {
        assert_eq!(check("duration", "0"), Some(true));
        assert_eq!(check("duration", "-1.5s"), Some(true));
        assert_eq!(check("duration", ""), Some(false));
        assert_eq!(check("duration", "5"), Some(false));
    }

    #[test]
    fn unknown_formats_are_not_checked() {
        assert_eq!(check("int32", "anything"), None);
        assert_eq!(check("password", "x"), None);
    }
}
