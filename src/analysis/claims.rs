//! Published claims as suites: a `[claim]` table names the source, the
//! metric, the baseline and treatment (`workload/variant`) and the expected
//! relation; `verdict` turns paired trial results into `reproduced`, `not
//! reproduced`, `inconclusive` (the 95% CI straddles the boundary) or `not
//! applicable` (the claim needs hardware or measurements this run lacks).

use crate::analysis::aggregate::energy_to_accuracy;
use crate::analysis::stats::Estimate;
pub use crate::config::claim::{Claim, Expect, Metric, Requires};
use crate::meter::Provenance;
use crate::record::{TrialRecord, TrialStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Reproduced,
    NotReproduced,
    Inconclusive,
    NotApplicable,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotApplicable => "not applicable",
        }
    }
}

/// A claim's outcome on one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub claim: Claim,
    pub pairs: usize,
    /// Mean of the per-pair treatment/baseline ratios, with 95% CI.
    pub ratio: Estimate,
    pub verdict: Verdict,
    pub reason: String,
    pub device: String,
    pub provenance: String,
}

fn split(sel: &str) -> (&str, &str) {
    sel.split_once('/').unwrap_or((sel, "baseline"))
}

/// The metric of one trial, if defined.
pub fn metric(claim: &Claim, r: &TrialRecord) -> Option<f64> {
    let total = r.total_energy();
    let train = r.training.as_ref();
    let steps: u64 = r.epochs.iter().map(|e| e.steps).sum();
    let v = match claim.metric {
        Metric::TrainJoulesPerStep => train.map(|t| t.joules.0 / steps.max(1) as f64),
        Metric::TrainJoulesPerToken => {
            let tokens = super::context_sweep::train_tokens(r)
                .unwrap_or_else(|| r.epochs.iter().map(|e| e.samples).sum());
            train.and_then(|t| (tokens > 0).then(|| t.joules.0 / tokens as f64))
        }
        Metric::TotalJoules => Some(total.joules.0),
        Metric::EnergyToAccuracy => {
            energy_to_accuracy(r, claim.target_accuracy.unwrap_or(0.8)).map(|x| x.0.0)
        }
        Metric::Macs => Some(r.macs_per_sample as f64),
        Metric::InferenceJoulesPer1k => r.inference.as_ref().map(|i| i.joules_per_1k.0),
        Metric::InferenceJoulesPer1kQueries => r.inference.as_ref().map(|i| {
            let per_query = if i.unit == "tokens" {
                r.config.generate_tokens.max(1) as f64
            } else {
                1.0
            };
            i.joules_per_1k.0 * per_query
        }),
        Metric::QuantizedSizeRatio => r
            .quantization
            .as_ref()
            .filter(|q| q.error.is_none())
            .map(|q| q.weight_bytes_quantized as f64 / q.weight_bytes_f32.max(1) as f64),
        Metric::SparseOverDenseInference => {
            let s = r.sparse.as_ref().filter(|s| s.error.is_none())?;
            let d = r.inference.as_ref()?.joules_per_1k.0;
            s.inference
                .as_ref()
                .and_then(|i| (d > 0.0).then(|| i.joules_per_1k.0 / d))
        }
        Metric::TestAccuracy => r.test_accuracy(),
        // Rated GPU power (the enforced power limit) x training time over the
        // GPU energy measured in the same windows. CPUs record no rated power.
        Metric::TdpOverMeasured => {
            let (mut rated, mut measured) = (0.0, 0.0);
            for e in &r.epochs {
                let limit: f64 = e
                    .train
                    .gpu_states
                    .iter()
                    .filter_map(|g| g.power_limit_w)
                    .sum();
                rated += limit * e.train.seconds.0;
                measured += e
                    .train
                    .domains
                    .iter()
                    .filter(|d| d.domain.starts_with("gpu"))
                    .map(|d| d.joules.0)
                    .sum::<f64>();
            }
            (rated > 0.0 && measured > 0.0).then(|| rated / measured)
        }
        // Needs 1-second-average power readings beside the counter: recorded by
        // the GPU check (scripts/gpu-check.sh), not by training runs.
        Metric::AveragePowerOverCounter => None,
    };
    v.filter(|x| x.is_finite())
}

fn measured(r: &TrialRecord) -> bool {
    r.total_energy()
        .domains
        .iter()
        .all(|d| matches!(d.provenance, Provenance::Counter | Provenance::Integrated))
}

/// Judges a claim on a run's records.
pub fn verdict(claim: &Claim, records: &[TrialRecord]) -> Outcome {
    let done: Vec<&TrialRecord> = records
        .iter()
        .filter(|r| r.status == TrialStatus::Completed)
        .collect();
    let device = done.first().map_or("-".to_string(), |r| r.device.clone());
    let provenance = crate::meter::window::provenance_label(
        done.iter()
            .flat_map(|r| r.total_energy().domains.into_iter().map(|d| d.provenance)),
    );
    let mut out = Outcome {
        claim: claim.clone(),
        pairs: 0,
        ratio: Estimate::of(&[]),
        verdict: Verdict::Inconclusive,
        reason: String::new(),
        device: device.clone(),
        provenance,
    };
    match claim.requires {
        Some(Requires::Gpu) if !device.starts_with("cuda") => {
            out.verdict = Verdict::NotApplicable;
            out.reason = format!("needs a GPU; this run used {device}");
            return out;
        }
        Some(Requires::MeasuredEnergy) if !done.iter().all(|r| measured(r)) => {
            out.verdict = Verdict::NotApplicable;
            out.reason = "needs measured energy (counter or integrated power); this run's energy is estimated".into();
            return out;
        }
        _ => {}
    }
    let (bw, bv) = split(&claim.baseline);
    let (tw, tv) = split(&claim.treatment);
    let mut ratios = Vec::new();
    for t in done
        .iter()
        .filter(|r| r.key.workload == tw && r.key.variant == tv)
    {
        let tm = metric(claim, t);
        // Ratios within one trial: no baseline to pair with.
        if matches!(
            claim.metric,
            Metric::QuantizedSizeRatio | Metric::SparseOverDenseInference
        ) {
            ratios.extend(tm);
            continue;
        }
        let b = done.iter().find(|b| {
            b.key.workload == bw
                && b.key.variant == bv
                && b.key.seed == t.key.seed
                && b.key.repeat == t.key.repeat
        });
        if let (Some(tm), Some(bm)) = (tm, b.and_then(|b| metric(claim, b)))
            && bm != 0.0
        {
            ratios.push(tm / bm);
        }
    }
    out.pairs = ratios.len();
    out.ratio = Estimate::of(&ratios);
    let (v, reason) = judge(claim, &out.ratio);
    out.verdict = v;
    out.reason = reason;
    out
}

/// The verdict for a ratio estimate.
pub fn judge(claim: &Claim, e: &Estimate) -> (Verdict, String) {
    if e.n == 0 || !e.mean.is_finite() {
        return (
            Verdict::Inconclusive,
            "no complete baseline/treatment pairs".into(),
        );
    }
    // With one pair there is no interval: judge the point, but call it inconclusive.
    let (lo, hi) = if e.ci95.is_finite() {
        (e.low(), e.high())
    } else {
        (f64::NEG_INFINITY, f64::INFINITY)
    };
    if claim.expect == Expect::Differs {
        let (a, b) = (
            claim.ratio_min.unwrap_or(1.0),
            claim.ratio_max.unwrap_or(1.0),
        );
        return if hi < a || lo > b {
            (
                Verdict::Reproduced,
                format!("95% CI [{lo:.3}, {hi:.3}] lies outside [{a}, {b}]"),
            )
        } else if lo >= a && hi <= b {
            (
                Verdict::NotReproduced,
                format!("95% CI [{lo:.3}, {hi:.3}] lies within [{a}, {b}]: no change"),
            )
        } else {
            (
                Verdict::Inconclusive,
                format!(
                    "95% CI [{lo:.3}, {hi:.3}] overlaps [{a}, {b}] (mean {:.3})",
                    e.mean
                ),
            )
        };
    }
    let (a, b) = match claim.expect {
        Expect::Lower => (f64::NEG_INFINITY, 1.0),
        Expect::Higher => (1.0, f64::INFINITY),
        Expect::Within | Expect::Differs => (
            claim.ratio_min.unwrap_or(0.0),
            claim.ratio_max.unwrap_or(f64::INFINITY),
        ),
    };
    if lo >= a && hi <= b {
        (
            Verdict::Reproduced,
            format!("95% CI [{lo:.3}, {hi:.3}] lies within [{a}, {b}]"),
        )
    } else if hi < a || lo > b {
        (
            Verdict::NotReproduced,
            format!("95% CI [{lo:.3}, {hi:.3}] lies outside [{a}, {b}]"),
        )
    } else {
        (
            Verdict::Inconclusive,
            format!(
                "95% CI [{lo:.3}, {hi:.3}] straddles the boundary of [{a}, {b}] (mean {:.3})",
                e.mean
            ),
        )
    }
}
