//! Hourly grid carbon intensity: the bundled profiles (one grid-year each,
//! `data/carbon-hourly/`), an instant mapped to the same calendar hour of a
//! profile's year, and energy windows integrated hour by hour.
//!
//! A profile must list every hour of its year, in order: a missing,
//! repeated or out-of-order hour is **refused** with the file and line, not
//! interpolated (the bundled files had their gaps filled at the source,
//! documented in their README).

use serde::{Deserialize, Serialize};

/// The two data families, with their licences and attributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    ElectricityMaps,
    Eia930,
}

impl Family {
    pub fn source(self) -> &'static str {
        match self {
            Family::ElectricityMaps => {
                "Electricity Maps data portal (2023, hourly), life-cycle (LCA), consumption-based (imports traced)"
            }
            Family::Eia930 => {
                "US EIA-930 hourly generation by fuel (2022) x IPCC AR5 life-cycle factors, production-based, phase +-1 h"
            }
        }
    }
    pub fn licence(self) -> &'static str {
        match self {
            Family::ElectricityMaps => "ODbL 1.0 (database), DbCL 1.0 (contents)",
            Family::Eia930 => "public domain (EIA, 17 U.S.C. 105) + MIT (dc-rl extraction)",
        }
    }
    pub fn attribution(self) -> &'static str {
        match self {
            Family::ElectricityMaps => {
                "Contains data from Electricity Maps (https://www.electricitymaps.com), hourly carbon-intensity datasets for 2023 (data-portal release of January 2024), licensed under the Open Database License (ODbL) v1.0, https://opendatacommons.org/licenses/odbl/1.0/ . Individual contents: Database Contents License (DbCL) v1.0. Modified: reduced to the life-cycle carbon-intensity column, timestamps reformatted."
            }
            Family::Eia930 => {
                "Hourly generation by fuel: U.S. Energy Information Administration, Form EIA-930 (Hourly Electric Grid Monitor), 2022, public domain; as extracted in HewlettPackard/dc-rl (SustainDC), MIT License, Copyright (c) 2024 Hewlett Packard Enterprise. Carbon intensity computed with IPCC AR5 (2014) life-cycle emission factors."
            }
        }
    }
}

/// A bundled profile.
pub struct Bundled {
    /// The region name users give (`region = "GB"`).
    pub id: &'static str,
    pub name: &'static str,
    pub year: i32,
    pub family: Family,
    /// The annual table's row for the same grid (its country), kept beside.
    pub annual: &'static str,
    pub file: &'static str,
    csv: &'static str,
}

macro_rules! bundled {
    ($( $id:literal, $name:literal, $year:literal, $fam:ident, $annual:literal, $file:literal; )*) => {
        /// Every bundled profile, newest year first within a grid.
        pub const BUNDLED: &[Bundled] = &[$(
            Bundled {
                id: $id,
                name: $name,
                year: $year,
                family: Family::$fam,
                annual: $annual,
                file: concat!("data/carbon-hourly/", $file),
                csv: include_str!(concat!("../../data/carbon-hourly/", $file)),
            },
        )*];
    };
}

bundled! {
    "GB", "Great Britain", 2023, ElectricityMaps, "GBR", "electricitymaps_GB_2023.csv";
    "DE", "Germany", 2023, ElectricityMaps, "DEU", "electricitymaps_DE_2023.csv";
    "FR", "France", 2023, ElectricityMaps, "FRA", "electricitymaps_FR_2023.csv";
    "ES", "Spain", 2023, ElectricityMaps, "ESP", "electricitymaps_ES_2023.csv";
    "NO", "Norway", 2023, ElectricityMaps, "NOR", "electricitymaps_NO_2023.csv";
    "US-CAL-CISO", "California ISO", 2023, ElectricityMaps, "USA", "electricitymaps_US-CAL-CISO_2023.csv";
    "US-MIDA-PJM", "PJM (US Mid-Atlantic)", 2023, ElectricityMaps, "USA", "electricitymaps_US-MIDA-PJM_2023.csv";
    "CISO", "California ISO (EIA)", 2022, Eia930, "USA", "eia930_CISO_2022.csv";
    "ERCO", "ERCOT, Texas (EIA)", 2022, Eia930, "USA", "eia930_ERCO_2022.csv";
    "MISO", "Midcontinent ISO (EIA)", 2022, Eia930, "USA", "eia930_MISO_2022.csv";
    "NYIS", "New York ISO (EIA)", 2022, Eia930, "USA", "eia930_NYIS_2022.csv";
    "PJM", "PJM (EIA)", 2022, Eia930, "USA", "eia930_PJM_2022.csv";
}

/// The bundled profile named `id` (case-insensitive).
pub fn find(id: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.id.eq_ignore_ascii_case(id))
}

/// The one bundled profile of an annual-table region (GBR → GB); none where
/// the country has several grids (USA) or none.
pub fn for_annual(code: &str) -> Option<&'static Bundled> {
    let mut it = BUNDLED
        .iter()
        .filter(|b| b.annual.eq_ignore_ascii_case(code));
    match (it.next(), it.next()) {
        (Some(b), None) => Some(b),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HourlyError {
    #[error("{file}:{line}: {message}")]
    Row {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// A profile as recorded: which grid-year, from where, under which licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileRef {
    pub id: String,
    pub name: String,
    pub year: i32,
    pub source: String,
    pub licence: String,
    pub file: String,
}

/// One grid-year of hourly intensities, gCO2e/kWh, from 1 January 00:00 UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub info: ProfileRef,
    pub values: Vec<f64>,
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// `YYYY-MM-DDTHH:MMZ` as (year, hours since 1 January 00:00 of that year).
fn parse_hour(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    if b.len() != 17
        || &s[4..5] != "-"
        || &s[7..8] != "-"
        || &s[10..11] != "T"
        || &s[13..14] != ":"
        || &s[16..] != "Z"
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, m, d, h, min) = (n(0..4)? as i64, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?);
    if !(1..=12).contains(&m) || d == 0 || h > 23 || min != 0 {
        return None;
    }
    // None for no date, e.g. 31 April.
    let days = crate::util::timefmt::days_from_civil(y, m, d)?;
    let day0 = crate::util::timefmt::days_from_civil(y, 1, 1)?;
    Some((y, (days - day0) * 24 + h as i64))
}

/// Parses a profile (`utc_hour,gco2_per_kwh`, `#` comments): every hour of
/// one calendar year in order, each value a finite intensity in [0, 5000].
pub fn parse(file: &str, text: &str) -> Result<(i32, Vec<f64>), HourlyError> {
    let row = |line: usize, message: String| HourlyError::Row {
        file: file.to_string(),
        line,
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    match lines.next() {
        Some((_, "utc_hour,gco2_per_kwh")) => {}
        Some((n, l)) => {
            return Err(row(
                n,
                format!(
                    "header {:?}: expected `utc_hour,gco2_per_kwh`",
                    crate::util::clip(l)
                ),
            ));
        }
        None => {
            return Err(HourlyError::File {
                file: file.into(),
                message: "no rows".into(),
            });
        }
    }
    let mut year = None;
    let mut values: Vec<f64> = Vec::with_capacity(8784);
    for (n, l) in lines {
        let Some((t, v)) = l.split_once(',') else {
            return Err(row(
                n,
                format!(
                    "{:?}: expected `utc_hour,gco2_per_kwh`",
                    crate::util::clip(l)
                ),
            ));
        };
        let Some((y, h)) = parse_hour(t.trim()) else {
            return Err(row(
                n,
                format!(
                    "utc_hour {:?}: expected YYYY-MM-DDTHH:00Z (UTC, start of the hour)",
                    crate::util::clip(t)
                ),
            ));
        };
        let y0 = *year.get_or_insert(y);
        if y != y0 {
            return Err(row(
                n,
                format!("hour {t} is not in {y0}: a profile holds one calendar year"),
            ));
        }
        if h != values.len() as i64 {
            let expected = values.len();
            return Err(row(
                n,
                if h > expected as i64 {
                    format!(
                        "hour {t} follows hour {} of {y0}: {} hour(s) missing; profiles must list every hour (joulebench refuses gaps rather than interpolating: fill them first and say how)",
                        expected as i64 - 1,
                        h - expected as i64
                    )
                } else {
                    format!(
                        "hour {t} is repeated or out of order (expected hour {expected} of {y0})"
                    )
                },
            ));
        }
        let g: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|g: &f64| g.is_finite() && (0.0..=5000.0).contains(g))
            .ok_or_else(|| {
                row(
                    n,
                    format!(
                        "gco2_per_kwh {:?}: a number in [0, 5000]",
                        crate::util::clip(v)
                    ),
                )
            })?;
        values.push(g);
    }
    let Some(y) = year else {
        return Err(HourlyError::File {
            file: file.into(),
            message: "no rows".into(),
        });
    };
    let want = if leap(y) { 8784 } else { 8760 };
    if values.len() != want {
        return Err(HourlyError::File {
            file: file.into(),
            message: format!(
                "{} hours, but {y} has {want}: the profile ends at hour {} (refused, not padded)",
                values.len(),
                values.len() as i64 - 1
            ),
        });
    }
    Ok((y as i32, values))
}

impl Bundled {
    pub fn load(&self) -> Result<Profile, HourlyError> {
        let (year, values) = parse(self.file, self.csv)?;
        if year != self.year {
            return Err(HourlyError::File {
                file: self.file.into(),
                message: format!("holds {year}, registered as {}", self.year),
            });
        }
        Ok(Profile {
            info: self.reference(),
            values,
        })
    }

    pub fn reference(&self) -> ProfileRef {
        ProfileRef {
            id: self.id.into(),
            name: self.name.into(),
            year: self.year,
            source: self.family.source().into(),
            licence: self.family.licence().into(),
            file: self.file.into(),
        }
    }
}

/// An energy window on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// UTC start, seconds since 1970.
    pub start_unix: f64,
    pub seconds: f64,
    /// IT energy drawn in the window, spread evenly over it.
    pub joules: f64,
}

impl Profile {
    /// The profile hour of an instant: the same month, day and UTC hour in
    /// the profile's year (29 February → 28 February in a common year).
    pub fn hour_index(&self, unix_s: f64) -> usize {
        let secs = unix_s.floor() as i64;
        let (_, m, d) = crate::util::timefmt::civil(secs.div_euclid(86_400));
        let h = secs.rem_euclid(86_400) / 3600;
        let y = self.info.year as i64;
        let d = if m == 2 && d == 29 && !leap(y) { 28 } else { d };
        // A profile's year is four digits (`parse`), so both are dates.
        let day_of = |m, d| crate::util::timefmt::days_from_civil(y, m, d).unwrap_or(0);
        let day = day_of(m, d) - day_of(1, 1);
        ((day * 24 + h) as usize).min(self.values.len() - 1)
    }

    /// Grams CO2e of windows of IT energy at facility overhead `pue`: each
    /// window's energy is split over the UTC hours it overlaps, in proportion
    /// to the overlap, and each part is multiplied by its hour's intensity.
    pub fn grams(&self, spans: &[Span], pue: f64) -> f64 {
        let mut g = 0.0;
        for s in spans {
            let kwh = s.joules / 3.6e6 * pue;
            if s.seconds <= 0.0 {
                g += kwh * self.values[self.hour_index(s.start_unix)];
                continue;
            }
            let end = s.start_unix + s.seconds;
            let mut t = s.start_unix;
            while t < end {
                let next = ((t / 3600.0).floor() + 1.0) * 3600.0;
                let seg = next.min(end) - t;
                g += kwh * seg / s.seconds * self.values[self.hour_index(t)];
                t = next;
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat_profile(year: i32, f: impl Fn(usize) -> f64) -> Profile {
        let n = if leap(year as i64) { 8784 } else { 8760 };
        Profile {
            info: ProfileRef {
                id: "T".into(),
                name: "test".into(),
                year,
                source: String::new(),
                licence: String::new(),
                file: String::new(),
            },
            values: (0..n).map(f).collect(),
        }
    }

    #[test]
    fn every_bundled_profile_loads_with_its_year_and_hours() {
        for b in BUNDLED {
            let p = b.load().unwrap();
            assert_eq!(p.values.len(), 8760, "{}", b.id);
            assert!(p.values.iter().all(|v| *v > 0.0), "{}", b.id);
        }
        // The README's table: GB 2023 min 49.98, max 383.32.
        let gb = find("gb").unwrap().load().unwrap();
        let (min, max) = gb
            .values
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
        assert_eq!((min, max), (49.98, 383.32));
        assert_eq!(gb.values[0], 103.50);
        assert_eq!(for_annual("GBR").unwrap().id, "GB");
        assert!(for_annual("USA").is_none() && for_annual("WORLD").is_none());
    }

    #[test]
    fn a_window_across_an_hour_boundary_is_split_by_overlap() {
        // Hour 0 of 2023 at 100 g/kWh, hour 1 at 300, the rest 0.
        let p = flat_profile(2023, |h| [100.0, 300.0].get(h).copied().unwrap_or(0.0));
        // 2026-01-01T00:45:00Z for 30 minutes: 15 min in hour 0, 15 in hour 1.
        let t0 = crate::util::timefmt::days_from_civil(2026, 1, 1).unwrap() as f64 * 86_400.0
            + 45.0 * 60.0;
        let span = Span {
            start_unix: t0,
            seconds: 1800.0,
            joules: 3.6e6,
        }; // 1 kWh
        // By hand: 0.5 kWh x 100 + 0.5 kWh x 300 = 200 g; PUE 1.5 -> 300 g.
        assert!((p.grams(&[span], 1.0) - 200.0).abs() < 1e-9);
        assert!((p.grams(&[span], 1.5) - 300.0).abs() < 1e-9);
        // 20 minutes in hour 0 and 10 in hour 1: 2/3 x 100 + 1/3 x 300.
        let span = Span {
            start_unix: t0 - 300.0,
            ..span
        };
        assert!((p.grams(&[span], 1.0) - (200.0 / 3.0 + 100.0)).abs() < 1e-9);
    }

    #[test]
    fn instants_map_to_the_same_calendar_hour_of_the_profile_year() {
        let p = flat_profile(2023, |h| h as f64);
        let at = |y, m, d, h: i64| {
            crate::util::timefmt::days_from_civil(y, m, d).unwrap() as f64 * 86_400.0
                + h as f64 * 3600.0
        };
        assert_eq!(p.hour_index(at(2026, 1, 1, 0)), 0);
        assert_eq!(p.hour_index(at(2026, 3, 1, 5)), (31 + 28) * 24 + 5);
        assert_eq!(p.hour_index(at(2024, 2, 29, 7)), (31 + 27) * 24 + 7);
        assert_eq!(p.hour_index(at(2024, 12, 31, 23)), 8759);
    }

    #[test]
    fn hour_stamps_parse_to_the_hour_of_their_year_and_impossible_dates_do_not() {
        assert_eq!(parse_hour("2023-01-01T00:00Z"), Some((2023, 0)));
        assert_eq!(parse_hour("2024-02-29T07:00Z"), Some((2024, 59 * 24 + 7)));
        assert_eq!(parse_hour("2023-12-31T23:00Z"), Some((2023, 8759)));
        for bad in [
            "2023-04-31T00:00Z",
            "2023-02-29T00:00Z",
            "2023-13-01T00:00Z",
            "2023-00-10T00:00Z",
            "2023-01-00T00:00Z",
            "2023-01-01T24:00Z",
            "2023-01-01T05:30Z",
            "2023-01-01 05:00Z",
            "2023-01-01T05:00",
        ] {
            assert_eq!(parse_hour(bad), None, "{bad}");
        }
    }

    #[test]
    fn gaps_repeats_bad_values_and_short_years_are_refused_with_the_line() {
        let mut rows = vec!["# c".to_string(), "utc_hour,gco2_per_kwh".to_string()];
        for h in 0..8760 {
            let (y, m, d) = crate::util::timefmt::civil(
                crate::util::timefmt::days_from_civil(2023, 1, 1).unwrap() + h / 24,
            );
            rows.push(format!(
                "{y:04}-{m:02}-{d:02}T{:02}:00Z,{}",
                h % 24,
                100 + h % 7
            ));
        }
        let ok = rows.join("\n");
        assert_eq!(parse("p.csv", &ok).unwrap().1.len(), 8760);
        let mut gap = rows.clone();
        gap.remove(2 + 100);
        let e = parse("p.csv", &gap.join("\n")).unwrap_err().to_string();
        assert!(
            e.starts_with("p.csv:103:") && e.contains("1 hour(s) missing") && e.contains("refuses"),
            "{e}"
        );
        let mut rep = rows.clone();
        rep[2 + 101] = rep[2 + 100].clone();
        assert!(
            parse("p.csv", &rep.join("\n"))
                .unwrap_err()
                .to_string()
                .contains("repeated or out of order")
        );
        let mut bad = rows.clone();
        bad[2 + 5] = "2023-01-01T05:00Z,-3".into();
        assert!(
            parse("p.csv", &bad.join("\n"))
                .unwrap_err()
                .to_string()
                .contains("p.csv:8: gco2_per_kwh \"-3\"")
        );
        let short = rows[..rows.len() - 24].join("\n");
        assert!(
            parse("p.csv", &short)
                .unwrap_err()
                .to_string()
                .contains("8736 hours, but 2023 has 8760")
        );
        let e = parse("p.csv", "utc_hour,g\n").unwrap_err().to_string();
        assert!(e.contains("header"), "{e}");
        assert!(parse("p.csv", "utc_hour,gco2_per_kwh\n2023-04-31T00:00Z,1\n").is_err());
    }
}
