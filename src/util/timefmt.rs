//! UTC timestamps without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (the inverse of `civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    (
        y,
        m,
        day,
        s / 3600,
        (s / 60) % 60,
        s % 60,
        d.subsec_millis(),
    )
}

/// RFC 3339, e.g. `2026-11-27T15:09:12.345Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, ms) = parts(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
}

/// A folder-name-safe UTC stamp, e.g. `20261127T150912Z`.
pub fn folder_stamp(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, _) = parts(t);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000i64, 0, 59, 60, 19_417, 19_782, 20_000, 60_000] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56Z = 1709210096
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_250);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.250Z");
        assert_eq!(folder_stamp(t), "20240229T123456Z");
    }

    #[test]
    fn stamps_stay_what_older_versions_wrote() {
        // Computed with the hand-written calendar of commit dc3fb4a.
        let at = |ns: u64| UNIX_EPOCH + Duration::from_nanos(ns);
        for (ns, rfc, stamp) in [
            (0, "1970-01-01T00:00:00.000Z", "19700101T000000Z"),
            // Milliseconds are truncated, never rounded up.
            (
                1_709_210_096_999_999_999,
                "2024-02-29T12:34:56.999Z",
                "20240229T123456Z",
            ),
            (
                946_684_799_000_000_001,
                "1999-12-31T23:59:59.000Z",
                "19991231T235959Z",
            ),
            (
                4_107_542_400_123_456_789,
                "2100-03-01T00:00:00.123Z",
                "21000301T000000Z",
            ),
            (
                1_798_761_599_500_000_000,
                "2026-12-31T23:59:59.500Z",
                "20261231T235959Z",
            ),
        ] {
            assert_eq!(rfc3339(at(ns)), rfc);
            assert_eq!(folder_stamp(at(ns)), stamp);
        }
        // Before 1970 (a clock set wrong): the epoch.
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
        assert_eq!(folder_stamp(before), "19700101T000000Z");
    }

    #[test]
    fn civil_dates_stay_what_older_versions_computed() {
        for (days, ymd) in [
            (-719_468, (0, 3, 1)),
            (-1, (1969, 12, 31)),
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (19_782, (2024, 2, 29)),
            (47_541, (2100, 3, 1)),
            (2_932_896, (9999, 12, 31)),
        ] {
            assert_eq!(civil(days), ymd);
            assert_eq!(days_from_civil(ymd.0, ymd.1, ymd.2), days);
        }
    }
}
