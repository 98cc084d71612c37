//! Per-trial metrics, per-variant summaries with confidence intervals, and
//! paired comparisons against the baseline on matching seeds.

use super::stats::{Estimate, Ratio, outliers};
use crate::record::{TrialRecord, TrialStatus};
use crate::util::units::{Joules, Seconds};
use serde::{Deserialize, Serialize};

/// The numbers one trial contributes (NaN where not defined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialMetrics {
    pub key: String,
    pub workload: String,
    pub variant: String,
    pub seed: u64,
    pub repeat: u32,
    pub completed: bool,
    /// Completed and not judged invalid (`meter::validity`): only these count.
    pub valid: bool,
    /// Completed with a validity flag (counted, and shown).
    pub flagged: bool,
    /// A flag says other work disturbed the measurement (interference).
    pub disturbed: bool,
    /// All windows (training, validation, test, inference).
    pub gross_j: f64,
    pub idle_j: f64,
    pub net_j: f64,
    pub train_j: f64,
    pub train_net_j: f64,
    pub train_s: f64,
    pub accuracy: f64,
    /// Training joules per training sample processed.
    pub j_per_sample: f64,
    /// Training FLOPs (3 x forward, forward = 2 x MACs) per training joule.
    pub flop_per_j: f64,
    pub inference_j_per_1k: f64,
    pub co2e_g: f64,
    pub water_l: f64,
    pub provenance: String,
    /// Modelled runs: gross energy (all windows) under the lowest and the
    /// highest model of the estimate's band; NaN without a band.
    pub gross_j_low: f64,
    pub gross_j_high: f64,
    /// Training energy likewise.
    pub train_j_low: f64,
    pub train_j_high: f64,
}

pub fn metrics(r: &TrialRecord) -> TrialMetrics {
    let total = r.total_energy();
    let train = r.training.as_ref();
    let samples: u64 = r.epochs.iter().map(|e| e.samples).sum();
    let train_j = train.map_or(f64::NAN, |t| t.joules.0);
    let nan = f64::NAN;
    TrialMetrics {
        key: r.key.to_string(),
        workload: r.key.workload.clone(),
        variant: r.key.variant.clone(),
        seed: r.key.seed,
        repeat: r.key.repeat,
        completed: r.status == TrialStatus::Completed,
        valid: r.status == TrialStatus::Completed
            && !r.validity.as_ref().is_some_and(|v| v.is_invalid()),
        flagged: r
            .validity
            .as_ref()
            .is_some_and(|v| v.verdict == crate::meter::validity::Verdict::Flagged),
        disturbed: r.validity.as_ref().is_some_and(|v| v.disturbed()),
        gross_j: total.joules.0,
        idle_j: total.idle_joules.map_or(nan, |j| j.0),
        net_j: total.net_joules.map_or(nan, |j| j.0),
        train_j,
        train_net_j: train.and_then(|t| t.net_joules).map_or(nan, |j| j.0),
        train_s: train.map_or(nan, |t| t.seconds.0),
        accuracy: r.test_accuracy().unwrap_or(nan),
        j_per_sample: if samples > 0 {
            train_j / samples as f64
        } else {
            nan
        },
        flop_per_j: if samples > 0 && train_j > 0.0 {
            let per_sample = if r.flops_per_train_sample > 0 {
                r.flops_per_train_sample as f64
            } else {
                6.0 * r.macs_per_sample as f64
            };
            per_sample * samples as f64 / train_j
        } else {
            nan
        },
        inference_j_per_1k: r.inference.as_ref().map_or(nan, |i| i.joules_per_1k.0),
        co2e_g: r.impact.as_ref().map_or(nan, |i| i.co2e_g()),
        water_l: r.impact.as_ref().map_or(nan, |i| i.gross.water_l),
        provenance: total.provenance_label(),
        gross_j_low: total.band.map_or(nan, |b| b.low.0),
        gross_j_high: total.band.map_or(nan, |b| b.high.0),
        train_j_low: train.and_then(|t| t.band).map_or(nan, |b| b.low.0),
        train_j_high: train.and_then(|t| t.band).map_or(nan, |b| b.high.0),
    }
}

/// Energy and time spent until validation accuracy first reaches `target`
/// (training and validation windows, cumulated up to that evaluation, as
/// Zeus and MLPerf define energy- and time-to-accuracy); None if never.
pub fn energy_to_accuracy(r: &TrialRecord, target: f64) -> Option<(Joules, Seconds)> {
    if !r.evaluations.is_empty() {
        return r
            .evaluations
            .iter()
            .find(|e| e.val_accuracy.is_some_and(|a| a >= target))
            .map(|e| (e.cumulative_joules, e.cumulative_seconds));
    }
    // Records without evaluation points: per-epoch windows.
    let (mut j, mut s) = (Joules::ZERO, Seconds::ZERO);
    for e in &r.epochs {
        j += e.train.joules + e.validation.joules;
        s += e.train.seconds + e.validation.seconds;
        if e.val_accuracy.is_some_and(|a| a >= target) {
            return Some((j, s));
        }
    }
    None
}

/// Summary of one workload × variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    pub workload: String,
    pub variant: String,
    pub trials: usize,
    /// Completed and valid: the trials the statistics are over.
    pub completed: usize,
    /// Completed but judged invalid (left out of every figure).
    #[serde(default)]
    pub invalid: usize,
    /// Valid but flagged (counted; the report lists why).
    #[serde(default)]
    pub flagged: usize,
    pub gross_j: Estimate,
    pub idle_j: Estimate,
    pub net_j: Estimate,
    pub train_j: Estimate,
    pub train_s: Estimate,
    pub accuracy: Estimate,
    pub j_per_sample: Estimate,
    pub flop_per_j: Estimate,
    pub inference_j_per_1k: Estimate,
    pub co2e_g: Estimate,
    pub provenance: String,
    /// Modelled runs: mean gross energy under the band's lowest and highest model.
    pub gross_j_low: Estimate,
    pub gross_j_high: Estimate,
    /// Trials flagged as outliers (|modified z| > 3.5) on gross energy or time.
    pub outliers: Vec<String>,
}

fn est(ms: &[&TrialMetrics], f: impl Fn(&TrialMetrics) -> f64) -> Estimate {
    let xs: Vec<f64> = ms.iter().map(|m| f(m)).filter(|x| x.is_finite()).collect();
    Estimate::of(&xs)
}

/// Groups in first-seen order.
pub fn summarize(records: &[TrialRecord]) -> Vec<VariantSummary> {
    let all: Vec<TrialMetrics> = records.iter().map(metrics).collect();
    let mut keys: Vec<(String, String)> = Vec::new();
    for m in &all {
        let k = (m.workload.clone(), m.variant.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(w, v)| {
            let ms: Vec<&TrialMetrics> = all
                .iter()
                .filter(|m| m.workload == w && m.variant == v)
                .collect();
            let done: Vec<&TrialMetrics> = ms.iter().copied().filter(|m| m.valid).collect();
            let mut flagged = Vec::new();
            for f in [|m: &TrialMetrics| m.gross_j, |m: &TrialMetrics| m.train_s] {
                let xs: Vec<f64> = done.iter().map(|m| f(m)).collect();
                for i in outliers(&xs) {
                    if !flagged.contains(&done[i].key) {
                        flagged.push(done[i].key.clone());
                    }
                }
            }
            let mut prov: Vec<String> = Vec::new();
            for m in &ms {
                for p in m.provenance.split('+') {
                    if !prov.iter().any(|x| x == p) {
                        prov.push(p.to_string());
                    }
                }
            }
            VariantSummary {
                workload: w,
                variant: v,
                trials: ms.len(),
                completed: done.len(),
                invalid: ms.iter().filter(|m| m.completed && !m.valid).count(),
                flagged: done.iter().filter(|m| m.flagged).count(),
                gross_j: est(&done, |m| m.gross_j),
                idle_j: est(&done, |m| m.idle_j),
                net_j: est(&done, |m| m.net_j),
                train_j: est(&done, |m| m.train_j),
                train_s: est(&done, |m| m.train_s),
                accuracy: est(&done, |m| m.accuracy),
                j_per_sample: est(&done, |m| m.j_per_sample),
                flop_per_j: est(&done, |m| m.flop_per_j),
                inference_j_per_1k: est(&done, |m| m.inference_j_per_1k),
                co2e_g: est(&done, |m| m.co2e_g),
                provenance: prov.join("+"),
                gross_j_low: est(&done, |m| m.gross_j_low),
                gross_j_high: est(&done, |m| m.gross_j_high),
                outliers: flagged,
            }
        })
        .collect()
}

/// A variant against the baseline over trials with the same workload, seed
/// and repeat, both completed and valid: each figure as a paired ratio on
/// the log scale (`stats::Ratio`), accuracy as a paired difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub workload: String,
    pub variant: String,
    pub baseline: String,
    pub pairs: usize,
    /// Gross energy of all windows, variant / baseline.
    pub energy: Ratio,
    /// Net (idle-subtracted) training energy, where recorded.
    pub net_train_energy: Ratio,
    pub train_time: Ratio,
    /// variant − baseline, percentage points of test accuracy.
    pub accuracy_delta_pp: Estimate,
    /// Modelled runs: the gross energy ratio with both trials of each pair
    /// under the band's lowest model, and under its highest (no pairs without a band).
    pub energy_low_model: Ratio,
    pub energy_high_model: Ratio,
    /// Pairs in which a trial was flagged as disturbed by other work.
    pub disturbed_pairs: usize,
}

impl Paired {
    /// Whether the estimate's band leaves the gross saving's sign open: the
    /// pairs' interval excludes no change, but under the band's lowest or
    /// highest model the change has the other sign or an interval that
    /// includes none. `None` without a band.
    pub fn band_makes_inconclusive(&self) -> Option<bool> {
        let (lo, hi) = (&self.energy_low_model, &self.energy_high_model);
        if lo.pairs() == 0 || hi.pairs() == 0 {
            return None;
        }
        let c = &self.energy;
        let sign = c.log.mean.signum();
        let holds = |r: &Ratio| r.log.mean.signum() == sign && r.excludes_zero();
        Some(c.excludes_zero() && !(holds(lo) && holds(hi)))
    }

    /// What the energy comparison says at `margin_pct`: a saving, a cost, no
    /// difference beyond the margin, or inconclusive with the pairs the
    /// observed spread needs.
    pub fn energy_verdict(&self, margin_pct: f64) -> String {
        verdict(&self.energy, margin_pct, "saves", "costs more")
    }
}

/// A ratio's verdict: `less` when the interval lies below no change,
/// `more` above it, "no difference beyond ±m %" inside the margin, else
/// inconclusive (with the pairs needed, when the spread says).
pub fn verdict(r: &Ratio, margin_pct: f64, less: &str, more: &str) -> String {
    if r.excludes_zero() {
        return if r.log.mean < 0.0 { less } else { more }.to_string();
    }
    if r.within(margin_pct) {
        return format!("no difference beyond ±{margin_pct} %");
    }
    match r.pairs_needed(margin_pct) {
        Some(n) if n > r.pairs() => {
            format!("inconclusive: about {n} pairs would resolve ±{margin_pct} % at this spread")
        }
        _ => "inconclusive".to_string(),
    }
}

pub fn paired(records: &[TrialRecord], baseline: &str) -> Vec<Paired> {
    let all: Vec<TrialMetrics> = records.iter().map(metrics).filter(|m| m.valid).collect();
    let mut keys: Vec<(String, String)> = Vec::new();
    for m in &all {
        let k = (m.workload.clone(), m.variant.clone());
        if m.variant != baseline && !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .filter_map(|(w, v)| {
            let pairs: Vec<(&TrialMetrics, &TrialMetrics)> = all
                .iter()
                .filter(|m| m.workload == w && m.variant == v)
                .filter_map(|m| {
                    all.iter()
                        .find(|b| {
                            b.workload == w
                                && b.variant == baseline
                                && b.seed == m.seed
                                && b.repeat == m.repeat
                        })
                        .map(|b| (b, m))
                })
                .collect();
            if pairs.is_empty() {
                return None;
            }
            let ratio = |f: fn(&TrialMetrics) -> f64| {
                Ratio::of_pairs(&pairs.iter().map(|(b, m)| (f(b), f(m))).collect::<Vec<_>>())
            };
            Some(Paired {
                workload: w,
                variant: v,
                baseline: baseline.to_string(),
                pairs: pairs.len(),
                energy: ratio(|m| m.gross_j),
                net_train_energy: ratio(|m| m.train_net_j),
                train_time: ratio(|m| m.train_s),
                accuracy_delta_pp: Estimate::of(
                    &pairs
                        .iter()
                        .map(|(b, m)| (m.accuracy - b.accuracy) * 100.0)
                        .filter(|x| x.is_finite())
                        .collect::<Vec<_>>(),
                ),
                energy_low_model: ratio(|m| m.gross_j_low),
                energy_high_model: ratio(|m| m.gross_j_high),
                disturbed_pairs: pairs
                    .iter()
                    .filter(|(b, m)| b.disturbed || m.disturbed)
                    .count(),
            })
        })
        .collect()
}
