//! Instants as milliseconds since the Unix epoch (Avro `timestamp-millis`), shown as RFC 3339.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn now() -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2026-11-21T10:00:00Z`, `2026-11-21T11:00:00.5+01:00`): any offset,
    /// any fraction (cut to the millisecond), any instant from year 0 to 9999.
    /// The date and the time are joined by `T` (or `t`), not by the space RFC 3339 also permits
    /// (JSON Schema's `date-time` does not).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let text = text.trim();
        if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
            return None;
        }
        let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000)).ok().map(Self)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T10:00:00.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(self.0).unwrap_or(0));
        write!(f, "{}", humantime::format_rfc3339_millis(time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_rfc3339_with_milliseconds() {
        let t = Timestamp::from_millis(1_763_719_200_123);
        assert_eq!(t.to_string(), "2025-11-21T10:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339("2025-11-21T10:00:00.123Z"), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn parses_every_rfc3339_instant_and_nothing_else() {
        let parse = |text: &str| Timestamp::parse_rfc3339(text).map(Timestamp::millis);
        assert_eq!(parse("2025-11-21T11:00:00.123456+01:00"), Some(1_763_719_200_123));
        assert_eq!(parse("2025-11-21t10:00:00z"), Some(1_763_719_200_000));
        assert_eq!(parse("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(parse("0000-01-01T00:00:00Z"), Some(-62_167_219_200_000));
        assert!(parse("9999-12-31T23:59:59.999-23:59").is_some());
        assert_eq!(parse("2016-12-31T23:59:60Z"), parse("2016-12-31T23:59:59.999Z"), "a leap second");
        for not_rfc3339 in ["", "2025-11-21", "2025-11-21T10:00:00", "2025-11-21 10:00:00Z", "2025-13-01T00:00:00Z"] {
            assert_eq!(parse(not_rfc3339), None, "{not_rfc3339}");
        }
    }
}
