//! Whole-second timestamps and durations, as the Kubernetes API writes them.
//!
//! Pod status times are RFC 3339 with whole seconds (`2026-08-01T10:00:00Z`); parsing that
//! form by hand is several times faster than a general parser, and the general parser
//! (jiff) still takes every other valid form.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn parse(s: &str) -> Option<Self> {
        parse_fast(s.as_bytes()).or_else(|| {
            s.parse::<jiff::Timestamp>()
                .ok()
                .map(|t| Timestamp(t.as_second()))
        })
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `d` after `self`.
    pub fn plus(self, d: Seconds) -> Timestamp {
        Timestamp(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_second(self.0) {
            Ok(t) => write!(f, "{}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
            Err(_) => write!(f, "@{}", self.0),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` followed by an optional fraction and `Z`.
fn parse_fast(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let rest = &b[19..];
    let rest = match rest.first() {
        Some(b'.') => {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            &rest[1 + digits..]
        }
        _ => rest,
    };
    if rest != b"Z" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(Timestamp(
        days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + s,
    ))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Deserialize an optional timestamp; `null` and absent are `None`, a malformed one an error.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Timestamp>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or null")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Timestamp::parse(s)
                .map(Some)
                .ok_or_else(|| E::custom(format_args!("invalid timestamp {s:?}")))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_option(V)
}

/// A Go-style duration (`90s`, `5m`, `1h30m`, `1.5h`) in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {reason} (examples: 90s, 5m, 1h30m)")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

impl Seconds {
    /// The JSON-schema pattern that admits exactly what [`Seconds::parse`] accepts.
    pub const PATTERN: &'static str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        let mut total_ms: f64 = 0.0;
        let mut rest = input;
        while !rest.is_empty() {
            // A number: digits, optionally a point and more digits (as PATTERN says).
            let int_len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if int_len == 0 {
                return Err(err("expected a number"));
            }
            let mut num_len = int_len;
            if let Some(frac) = rest[int_len..].strip_prefix('.') {
                let frac_len = frac
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(frac.len());
                if frac_len == 0 {
                    return Err(err("expected digits after the decimal point"));
                }
                num_len += 1 + frac_len;
            }
            let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unit must be ms, s, m or h")),
            };
            rest = &rest[unit_len..];
            total_ms += value * scale;
        }
        if !total_ms.is_finite() || total_ms > 1e15 {
            return Err(err("too large"));
        }
        Ok(Seconds((total_ms / 1000.0).round() as i64))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match (s / 3600, s % 3600 / 60, s % 60) {
            (0, 0, sec) => write!(f, "{sec}s"),
            (0, m, 0) => write!(f, "{m}m"),
            (0, m, sec) => write!(f, "{m}m{sec}s"),
            (h, 0, 0) => write!(f, "{h}h"),
            (h, m, 0) => write!(f, "{h}h{m}m"),
            (h, m, sec) => write!(f, "{h}h{m}m{sec}s"),
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Seconds::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_agrees_with_jiff() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-08-01T10:00:00Z",
            "2024-02-29T23:59:59Z",
            "2000-03-01T00:00:00Z",
            "1999-12-31T12:30:45.123456Z",
        ] {
            let want = s.parse::<jiff::Timestamp>().unwrap().as_second();
            assert_eq!(parse_fast(s.as_bytes()), Some(Timestamp(want)), "{s}");
        }
    }

    #[test]
    fn other_valid_forms_fall_back_and_garbage_is_rejected() {
        assert_eq!(
            Timestamp::parse("2026-08-01T12:00:00+02:00"),
            Some(Timestamp(
                Timestamp::parse("2026-08-01T10:00:00Z").unwrap().0
            ))
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_parse_like_go_and_print_compactly() {
        for (s, secs, shown) in [
            ("90s", 90, "1m30s"),
            ("5m", 300, "5m"),
            ("1h30m", 5400, "1h30m"),
            ("1.5h", 5400, "1h30m"),
            ("1500ms", 2, "2s"),
            ("2h0m5s", 7205, "2h0m5s"),
        ] {
            let d = Seconds::parse(s).unwrap();
            assert_eq!(d, Seconds(secs), "{s}");
            assert_eq!(d.to_string(), shown, "{s}");
        }
        for bad in ["", "5", "m", "5x", "1h 5m", "-5m", "5.m", ".5m", "1h5"] {
            assert!(Seconds::parse(bad).is_err(), "{bad}");
        }
    }
}
