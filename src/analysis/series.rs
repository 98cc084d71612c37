//! Series derived from a run's records for the plots and the report: pure
//! functions, no drawing (the charts in `plots/` and the report sections
//! both read them).

use super::Run;
use super::aggregate::energy_to_accuracy;
use crate::impact::{ImpactSettings, lookup};
use crate::record::TrialRecord;

/// Indices on the Pareto frontier: no other point has less energy and more accuracy.
pub fn pareto(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut best = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for i in idx {
        if points[i].1 > best {
            best = points[i].1;
            out.push(i);
        }
    }
    out
}

/// Per-domain power over a trial: sampled timelines where the meter polls,
/// otherwise each window's average power drawn as a step.
/// (domain, sampled rather than window averages, (seconds, watts) points).
pub type PowerSeries = (String, bool, Vec<(f64, f64)>);

pub fn power_series(r: &TrialRecord) -> Vec<PowerSeries> {
    let windows = r.idle.iter().chain(r.windows());
    let mut out: Vec<PowerSeries> = Vec::new();
    let mut t0 = 0.0;
    for w in windows {
        for d in &w.domains {
            let sampled: Vec<(f64, f64)> = w
                .timeline
                .iter()
                .filter(|s| s.domain == d.domain)
                .map(|s| (t0 + s.t, s.watts.0))
                .collect();
            let (is_sampled, pts) = if sampled.len() >= 2 {
                (true, sampled)
            } else {
                (
                    false,
                    vec![(t0, d.avg_watts.0), (t0 + w.seconds.0, d.avg_watts.0)],
                )
            };
            match out.iter_mut().find(|(n, _, _)| n == &d.domain) {
                Some(e) => {
                    e.1 |= is_sampled;
                    e.2.extend(pts)
                }
                None => out.push((d.domain.clone(), is_sampled, pts)),
            }
        }
        t0 += w.seconds.0;
    }
    out
}

/// Regions drawn in the impact plot (plus the run's own).
pub const IMPACT_REGIONS: &[&str] = &[
    "NOR", "FRA", "BRA", "CAN", "WORLD", "USA", "DEU", "CHN", "IND", "AUS",
];

/// The run's total gross energy and the CO2e it means in each region.
pub fn impact_by_region(run: &Run) -> Vec<(String, f64, f64)> {
    let joules: f64 = run.records.iter().map(|r| r.total_energy().joules.0).sum();
    let own = run
        .records
        .iter()
        .find_map(|r| r.impact.as_ref())
        .map(|i| i.settings.clone());
    let (pue, wue, off) = own.as_ref().map_or(
        (
            crate::impact::DEFAULT_PUE,
            crate::impact::DEFAULT_WUE_ONSITE,
            crate::impact::DEFAULT_WATER_OFFSITE,
        ),
        |s| (s.pue, s.wue_onsite_l_per_kwh, s.water_offsite_l_per_kwh),
    );
    let mut codes: Vec<String> = IMPACT_REGIONS.iter().map(|s| s.to_string()).collect();
    if let Some(s) = &own
        && !codes.contains(&s.region.code)
    {
        codes.push(s.region.code.clone());
    }
    let mut rows: Vec<(String, f64, f64)> = codes
        .into_iter()
        .filter_map(|c| lookup(&c).ok())
        .map(|region| {
            let s = ImpactSettings {
                region,
                intensity: crate::impact::Intensity::Annual,
                hourly: None,
                dataset: crate::impact::TABLE_NAME.into(),
                pue,
                wue_onsite_l_per_kwh: wue,
                water_offsite_l_per_kwh: off,
            };
            let i = s.impact(crate::util::units::Joules(joules));
            (s.region.code.clone(), i.co2e_g, i.water_l)
        })
        .collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    rows
}

/// A target accuracy for ETA when none is given: the lowest final validation
/// accuracy over completed trials, so every trial's curve can reach it.
pub fn default_target(run: &Run) -> f64 {
    let t = run
        .records
        .iter()
        .filter_map(|r| r.epochs.last().and_then(|e| e.val_accuracy))
        .fold(f64::INFINITY, f64::min);
    if t.is_finite() {
        (t * 1000.0).floor() / 1000.0
    } else {
        0.8
    }
}

/// ETA per trial at `target`: (key, Some((J, s)) or None if never reached).
pub fn eta_table(run: &Run, target: f64) -> Vec<(String, Option<(f64, f64)>)> {
    run.records
        .iter()
        .map(|r| {
            let eta = energy_to_accuracy(r, target).map(|(j, s)| (j.0, s.0));
            (r.key.to_string(), eta)
        })
        .collect()
}
