//! Timestamps as Kubernetes writes them: `Time` (whole seconds) and `MicroTime`.

/// Formats a timestamp the way Kubernetes does (`2026-08-01T10:00:00Z`, whole seconds).
pub fn format_time(ts: jiff::Timestamp) -> String {
    match jiff::Timestamp::from_second(ts.as_second()) {
        Ok(t) => t.to_string(),
        Err(_) => ts.to_string(),
    }
}

/// Formats a MicroTime (`2026-08-01T10:00:00.123456Z`), as events use.
pub fn format_micro_time(ts: jiff::Timestamp) -> String {
    let micros = ts.as_microsecond();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => {
            let s = t.to_string();
            format!("{}.{frac:06}Z", s.trim_end_matches('Z'))
        }
        Err(_) => ts.to_string(),
    }
}

pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_whole_seconds() {
        let t: jiff::Timestamp = "2026-08-01T10:00:00.75Z".parse().unwrap();
        assert_eq!(format_time(t), "2026-08-01T10:00:00Z");
        assert_eq!(format_micro_time(t), "2026-08-01T10:00:00.750000Z");
    }
}
