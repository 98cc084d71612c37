//! UTC timestamps and civil (proleptic Gregorian) dates, from `jiff`.

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use std::time::SystemTime;

const EPOCH_DAY: Date = Date::constant(1970, 1, 1);

/// Civil date from days since 1970-01-01. Days beyond the years -9999..=9999
/// (what `jiff` represents) give the first or last day of that range.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let lo = days_from_date(Date::MIN);
    let hi = days_from_date(Date::MAX);
    let d = EPOCH_DAY
        .checked_add(days.clamp(lo, hi).days())
        .unwrap_or(EPOCH_DAY);
    (d.year() as i64, d.month() as u32, d.day() as u32)
}

/// Days since 1970-01-01 of a civil date (the inverse of `civil`); None when
/// it is no date (31 April, 29 February of a common year, month 13) or lies
/// outside the years -9999..=9999.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    let date = Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()?;
    Some(days_from_date(date))
}

fn days_from_date(d: Date) -> i64 {
    // Dates subtract to whole days (the span's largest unit is the day).
    (d - EPOCH_DAY).get_days() as i64
}

/// The instant as a timestamp; before 1970 (a clock set wrong) or beyond
/// year 9999, the epoch.
fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t)
        .ok()
        .filter(|ts| *ts >= Timestamp::UNIX_EPOCH)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// RFC 3339 in UTC with milliseconds (truncated), e.g. `2026-11-27T15:09:12.345Z`.
pub fn rfc3339(t: SystemTime) -> String {
    timestamp(t).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A folder-name-safe UTC stamp, e.g. `20261127T150912Z`.
pub fn folder_stamp(t: SystemTime) -> String {
    timestamp(t).strftime("%Y%m%dT%H%M%SZ").to_string()
}

pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000i64, 0, 59, 60, 19_417, 19_782, 20_000, 60_000] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        for (y, m, d) in [
            (2023, 4, 31),
            (2023, 2, 29),
            (2023, 13, 1),
            (2023, 1, 0),
            (10_000, 1, 1),
        ] {
            assert_eq!(days_from_civil(y, m, d), None, "{y}-{m}-{d}");
        }
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
        assert_eq!(civil(i64::MAX), (9999, 12, 31));
        assert_eq!(civil(i64::MIN), (-9999, 1, 1));
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
            assert_eq!(days_from_civil(ymd.0, ymd.1, ymd.2), Some(days));
        }
    }
}
