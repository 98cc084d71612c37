//! Carbon-aware scheduling what-if: the CO2e a run's measured load would have
//! caused had it started at each hour of a profile's year.
//!
//! The load keeps the run's shape: energy per hour after its start (windows
//! laid out at their offsets from the earliest window, the start moved to the
//! top of an hour). A start late in December wraps to January of the same
//! data year. Every start hour of the year is one sample, so the answer is a
//! distribution (min, percentiles, max), not one lucky day.

use super::hourly::{Profile, Span};
use crate::util::stats::quantile_sorted;

/// Facility kWh in each hour after the start (index 0: the first hour).
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub kwh_by_hour: Vec<f64>,
    pub seconds: f64,
}

impl Load {
    /// The longest load a what-if takes: one data year.
    pub const MAX_HOURS: usize = 8760;

    /// Lays `spans` (IT energy) out from the earliest start, × `pue`;
    /// refuses a load longer than a year (the data year could not hold it).
    pub fn from_spans(spans: &[Span], pue: f64) -> Result<Load, String> {
        let t0 = spans
            .iter()
            .map(|s| s.start_unix)
            .fold(f64::INFINITY, f64::min);
        if !t0.is_finite() {
            return Ok(Load {
                kwh_by_hour: Vec::new(),
                seconds: 0.0,
            });
        }
        let end = spans
            .iter()
            .map(|s| s.start_unix + s.seconds.max(0.0))
            .fold(t0, f64::max);
        let span_h = (end - t0) / 3600.0;
        if span_h.is_nan() || span_h >= Self::MAX_HOURS as f64 {
            return Err(format!(
                "the windows span {span_h:.0} hours; a what-if takes a load of at most {} hours (one data year)",
                Self::MAX_HOURS
            ));
        }
        let hours = span_h.floor() as usize + 1;
        let mut kwh = vec![0.0; hours];
        for s in spans {
            let e = s.joules / 3.6e6 * pue;
            let (a, b) = (s.start_unix - t0, s.start_unix - t0 + s.seconds.max(0.0));
            if b <= a {
                kwh[((a / 3600.0) as usize).min(hours - 1)] += e;
                continue;
            }
            let mut t = a;
            while t < b {
                let next = ((t / 3600.0).floor() + 1.0) * 3600.0;
                let seg = next.min(b) - t;
                kwh[((t / 3600.0) as usize).min(hours - 1)] += e * seg / (b - a);
                t = next;
            }
        }
        Ok(Load {
            kwh_by_hour: kwh,
            seconds: end - t0,
        })
    }

    pub fn kwh(&self) -> f64 {
        self.kwh_by_hour.iter().sum()
    }
}

/// The saving of "start at the best hour within the next `hours`" against
/// "start now", over every start hour of the year.
#[derive(Debug, Clone, PartialEq)]
pub struct Within {
    pub hours: u32,
    /// Percent of the start-now CO2e saved: mean and percentiles over starts.
    pub mean_pct: f64,
    pub p10_pct: f64,
    pub median_pct: f64,
    pub p90_pct: f64,
    /// Mean wait, hours.
    pub mean_delay_h: f64,
}

/// The what-if for one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatIf {
    pub region: String,
    pub year: i32,
    /// Grams CO2e for a start at each hour of the year.
    pub per_start: Vec<f64>,
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    /// Start hour with the lowest grams (UTC, `MM-DD HH:00`).
    pub best_start: String,
    pub worst_start: String,
    /// Per month: the UTC start hour of day with the lowest mean, and that mean.
    pub best_hour_by_month: Vec<(u32, u32, f64)>,
    /// Per UTC start hour of day: 10th percentile, median, 90th percentile over the days.
    pub by_hour: Vec<[f64; 3]>,
    /// Mean grams by month (rows, 12) and UTC start hour (columns, 24).
    pub month_hour: Vec<Vec<f64>>,
    pub within: Within,
}

fn sorted(v: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = v.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Month (1-12), day and hour of day of hour `h` of `year`.
fn calendar(year: i32, h: usize) -> (u32, u32, u32) {
    // A profile's year is four digits (`hourly::parse`): 1 January is a date.
    let day0 = crate::util::timefmt::days_from_civil(year as i64, 1, 1).unwrap_or(0);
    let (_, m, d) = crate::util::timefmt::civil(day0 + (h / 24) as i64);
    (m, d, (h % 24) as u32)
}

/// Grams for every start hour, then the summaries.
pub fn what_if(profile: &Profile, load: &Load, within_hours: u32) -> WhatIf {
    let n = profile.values.len();
    let ci = &profile.values;
    let per_start: Vec<f64> = (0..n)
        .map(|s| {
            load.kwh_by_hour
                .iter()
                .enumerate()
                .map(|(k, e)| e * ci[(s + k) % n])
                .sum()
        })
        .collect();
    let all = sorted(per_start.iter().copied());
    let argmin = (0..n)
        .min_by(|&a, &b| per_start[a].total_cmp(&per_start[b]))
        .unwrap_or(0);
    let argmax = (0..n)
        .max_by(|&a, &b| per_start[a].total_cmp(&per_start[b]))
        .unwrap_or(0);
    let stamp = |h: usize| {
        let (m, d, hh) = calendar(profile.info.year, h);
        format!("{m:02}-{d:02} {hh:02}:00")
    };
    let mut month_hour = vec![vec![0.0; 24]; 12];
    let mut counts = vec![vec![0usize; 24]; 12];
    let mut by_hour_samples: Vec<Vec<f64>> = vec![Vec::new(); 24];
    for (h, g) in per_start.iter().enumerate() {
        let (m, _, hh) = calendar(profile.info.year, h);
        month_hour[m as usize - 1][hh as usize] += g;
        counts[m as usize - 1][hh as usize] += 1;
        by_hour_samples[hh as usize].push(*g);
    }
    for (row, c) in month_hour.iter_mut().zip(&counts) {
        for (v, k) in row.iter_mut().zip(c) {
            *v /= (*k).max(1) as f64;
        }
    }
    let best_hour_by_month = month_hour
        .iter()
        .enumerate()
        .map(|(m, row)| {
            let (h, g) = row
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map_or((0, f64::NAN), |(h, g)| (h, *g));
            (m as u32 + 1, h as u32, g)
        })
        .collect();
    let by_hour = by_hour_samples
        .into_iter()
        .map(|v| {
            let s = sorted(v);
            [
                quantile_sorted(&s, 0.1),
                quantile_sorted(&s, 0.5),
                quantile_sorted(&s, 0.9),
            ]
        })
        .collect();
    // Best start within the next W hours, for every "now".
    let w = within_hours as usize;
    let mut savings = Vec::with_capacity(n);
    let mut delays = 0.0;
    for s in 0..n {
        let (d, best) = (0..=w)
            .map(|d| (d, per_start[(s + d) % n]))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, per_start[s]));
        delays += d as f64;
        savings.push(if per_start[s] > 0.0 {
            100.0 * (1.0 - best / per_start[s])
        } else {
            0.0
        });
    }
    let mean_pct = savings.iter().sum::<f64>() / n.max(1) as f64;
    let savings = sorted(savings);
    WhatIf {
        region: profile.info.id.clone(),
        year: profile.info.year,
        min: all[0],
        p10: quantile_sorted(&all, 0.1),
        median: quantile_sorted(&all, 0.5),
        p90: quantile_sorted(&all, 0.9),
        max: all[n - 1],
        best_start: stamp(argmin),
        worst_start: stamp(argmax),
        per_start,
        best_hour_by_month,
        by_hour,
        month_hour,
        within: Within {
            hours: within_hours,
            mean_pct,
            p10_pct: quantile_sorted(&savings, 0.1),
            median_pct: quantile_sorted(&savings, 0.5),
            p90_pct: quantile_sorted(&savings, 0.9),
            mean_delay_h: delays / n.max(1) as f64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impact::hourly::ProfileRef;

    fn profile(f: impl Fn(usize) -> f64) -> Profile {
        Profile {
            info: ProfileRef {
                id: "SYN".into(),
                name: "synthetic".into(),
                year: 2023,
                source: String::new(),
                licence: String::new(),
                file: String::new(),
            },
            values: (0..8760).map(f).collect(),
        }
    }

    #[test]
    fn the_load_keeps_the_run_shape_by_hour() {
        // 1 kWh over 90 minutes from 00:30, then 1 kWh at once 3 h after the start.
        let t0 = 1_000_000.0 * 3600.0 + 1800.0;
        let spans = [
            Span {
                start_unix: t0,
                seconds: 5400.0,
                joules: 3.6e6,
            },
            Span {
                start_unix: t0 + 3.0 * 3600.0,
                seconds: 0.0,
                joules: 3.6e6,
            },
        ];
        let l = Load::from_spans(&spans, 2.0).unwrap();
        assert_eq!(l.kwh_by_hour.len(), 4);
        let want = [2.0 * 2.0 / 3.0, 2.0 / 3.0, 0.0, 2.0];
        for (a, b) in l.kwh_by_hour.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{:?}", l.kwh_by_hour);
        }
        assert!((l.kwh() - 4.0).abs() < 1e-12);
        // A load longer than the data year is refused, not allocated.
        let long = [Span {
            start_unix: t0,
            seconds: 1e12,
            joules: 1.0,
        }];
        assert!(
            Load::from_spans(&long, 1.0)
                .unwrap_err()
                .contains("at most 8760 hours")
        );
    }

    #[test]
    fn a_synthetic_profile_with_a_known_best_hour() {
        // 300 g/kWh, except 03:00-04:00 UTC every day at 100, and all of
        // July at 500.
        let p = profile(|h| {
            let (m, _, hh) = calendar(2023, h);
            if m == 7 {
                500.0
            } else if hh == 3 {
                100.0
            } else {
                300.0
            }
        });
        let load = Load {
            kwh_by_hour: vec![1.0],
            seconds: 3600.0,
        };
        let w = what_if(&p, &load, 24);
        assert_eq!((w.min, w.max), (100.0, 500.0));
        assert!(
            w.best_start.ends_with(" 03:00") && w.best_start.starts_with("01-01"),
            "{}",
            w.best_start
        );
        for (m, h, g) in &w.best_hour_by_month {
            if *m == 7 {
                assert_eq!(*g, 500.0);
            } else {
                assert_eq!((*h, *g), (3, 100.0), "month {m}");
            }
        }
        assert_eq!(w.by_hour[3][1], 100.0);
        assert_eq!(w.by_hour[12][1], 300.0);
        assert_eq!(w.month_hour[6][3], 500.0);
        // Within 24 h there is always a 03:00 ahead (outside July): from a
        // 300 g hour that saves 2/3; median start is such an hour.
        assert!(
            (w.within.median_pct - 100.0 * 2.0 / 3.0).abs() < 1e-9,
            "{:?}",
            w.within
        );
        // Within 0 h nothing can be saved.
        assert_eq!(what_if(&p, &load, 0).within.mean_pct, 0.0);
        // A 2-hour load starting at 02:00 straddles the clean hour.
        let two = Load {
            kwh_by_hour: vec![1.0, 1.0],
            seconds: 7200.0,
        };
        let w2 = what_if(&p, &two, 24);
        assert_eq!(w2.min, 400.0);
    }
}
