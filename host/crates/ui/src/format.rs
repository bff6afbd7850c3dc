//! Times, durations and numbers as people read them.

use std::time::{Duration, SystemTime};

/// `2026-12-03T15:23:33.123456Z` as `2026-12-03 15:23:33`; anything else as it is.
pub fn time(rfc3339: &str) -> String {
    match humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z')) {
        Ok(_) => rfc3339.replace('T', " ").chars().take(19).collect(),
        Err(_) => rfc3339.to_string(),
    }
}

/// From `start` to `end` (to now when there is no end yet); `None` when a time is unreadable.
pub fn span(start: &str, end: Option<&str>) -> Option<Duration> {
    let start = humantime::parse_rfc3339_weak(start.trim_end_matches('Z')).ok()?;
    let end = match end {
        Some(e) => humantime::parse_rfc3339_weak(e.trim_end_matches('Z')).ok()?,
        None => SystemTime::now(),
    };
    end.duration_since(start).ok()
}

/// A duration the way a runs table shows it: `830 ms`, `4.2 s`, `3 min 07 s`, `2 h 05 min`.
pub fn duration(d: Duration) -> String {
    millis(d.as_secs_f64() * 1000.0)
}

/// Milliseconds, as [`duration`] writes them.
pub fn millis(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "—".into();
    }
    let s = ms / 1000.0;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// A metric value: short, but never hiding the difference between two close runs.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "∞" } else { "−∞" }.into()
    } else if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        format!("{v:.4e}")
    } else {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    }
}

/// A byte count: `512 B`, `1.5 KiB`, ...
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(millis(0.25), "250 µs");
        assert_eq!(millis(830.0), "830 ms");
        assert_eq!(millis(4200.0), "4.2 s");
        assert_eq!(millis(187_000.0), "3 min 07 s");
        assert_eq!(millis(7_500_000.0), "2 h 05 min");
        assert_eq!(millis(f64::NAN), "—");
    }

    #[test]
    fn spans_and_times() {
        let d = span("2026-01-01T00:00:00Z", Some("2026-01-01T00:01:30.5Z")).unwrap();
        assert_eq!(duration(d), "1 min 30 s");
        assert_eq!(time("2026-12-03T15:23:33.123456Z"), "2026-12-03 15:23:33");
        assert_eq!(time("not a time"), "not a time");
        assert!(span("garbage", None).is_none());
    }

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(number(0.953333), "0.953333");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(1.5e-7), "1.5000e-7");
        assert_eq!(number(f64::NEG_INFINITY), "−∞");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
