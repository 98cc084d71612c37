//! Which trials run, in which order and in how many rounds.
//!
//! Every round runs its trials in the plan's run order (`Plan::run_order`:
//! variants shuffled within each workload × seed × repeat unless the
//! protocol says `fixed`). With a list of seeds there is one round: the
//! whole plan. With adaptive seeds (`seeds = { first, min, max,
//! margin_pct }`) the first round runs `min` seeds of every workload; after
//! each round, a workload whose comparisons with the baseline are not all
//! resolved (`analysis::stats::Ratio::resolved`: the paired interval on the
//! log scale excludes no change, or lies within ± margin) runs its next
//! seed, until all are resolved or `max` seeds have run. Only completed,
//! valid trials count. The decisions are written to `<run>/seeds.json` (`runfolder::store::SEEDS_FILE`).
//!
//! A warm-up (`warmup_spec`) precedes the first measured trial of each
//! workload in a process: the same configuration trained for the
//! protocol's `warmup_steps` steps, its record discarded, so lazy
//! initialisation, page cache and clock ramp-up are not charged to
//! whichever variant happens to run first.

use crate::analysis::aggregate::metrics;
use crate::analysis::stats::Ratio;
use crate::config::plan::{Plan, TrialSpec};
use crate::config::protocol::{AdaptiveSeeds, Protocol};
use crate::record::seeds::{SeedComparison, SeedDecisions, WorkloadSeeds};
use crate::record::{TrialRecord, TrialStatus};

/// The rounds of one run.
pub(crate) struct Rounds<'a> {
    plan: &'a Plan,
    protocol: &'a Protocol,
    baseline: &'a str,
    /// The suite's seeds in order (adaptive: first .. first + max).
    seeds: &'a [u64],
}

/// Whether a record counts for the rule: completed and not invalid.
fn counts(r: &TrialRecord) -> bool {
    r.status == TrialStatus::Completed && !r.validity.as_ref().is_some_and(|v| v.is_invalid())
}

impl<'a> Rounds<'a> {
    pub fn new(
        plan: &'a Plan,
        protocol: &'a Protocol,
        baseline: &'a str,
        seeds: &'a [u64],
    ) -> Self {
        Rounds {
            plan,
            protocol,
            baseline,
            seeds,
        }
    }

    /// The trials of the next round given the records so far, those not
    /// yet recorded, in run order (empty: the run is done).
    pub fn next(&self, records: &[TrialRecord]) -> Vec<&'a TrialSpec> {
        let recorded = |t: &TrialSpec| records.iter().any(|r| r.key == t.key);
        let order = self.plan.run_order(self.protocol);
        let Some(a) = self.protocol.adaptive else {
            return order.into_iter().filter(|t| !recorded(t)).collect();
        };
        let decisions = self.decide(&a, records);
        order
            .into_iter()
            .filter(|t| {
                let w = decisions
                    .workloads
                    .iter()
                    .find(|w| w.workload == t.key.workload);
                let ran = w.map_or(0, |w| w.seeds.len());
                let wanted = if w.is_some_and(|w| w.state == "running") {
                    (ran + 1).max(a.min)
                } else {
                    ran
                };
                let pos = self
                    .seeds
                    .iter()
                    .position(|&s| s == t.key.seed)
                    .unwrap_or(usize::MAX);
                pos < wanted
            })
            .filter(|t| !recorded(t))
            .collect()
    }

    /// The rule's state per workload from the records so far (adaptive
    /// seeds only).
    pub fn decisions(&self, records: &[TrialRecord]) -> Option<SeedDecisions> {
        self.protocol.adaptive.map(|a| self.decide(&a, records))
    }

    fn decide(&self, a: &AdaptiveSeeds, records: &[TrialRecord]) -> SeedDecisions {
        let mut workloads: Vec<String> = Vec::new();
        for t in &self.plan.trials {
            if !workloads.contains(&t.key.workload) {
                workloads.push(t.key.workload.clone());
            }
        }
        let out = workloads
            .into_iter()
            .map(|w| {
                let planned: Vec<&TrialSpec> = self
                    .plan
                    .trials
                    .iter()
                    .filter(|t| t.key.workload == w)
                    .collect();
                // Seeds whose every planned trial has a record (whatever its status).
                let seeds: Vec<u64> = self
                    .seeds
                    .iter()
                    .copied()
                    .filter(|&s| {
                        let of_seed = planned.iter().filter(|t| t.key.seed == s);
                        let mut any = false;
                        let all = of_seed.into_iter().all(|t| {
                            any = true;
                            records.iter().any(|r| r.key == t.key)
                        });
                        any && all
                    })
                    .collect();
                let comparisons = self.compare(&w, records, a.margin_pct);
                let state = if seeds.len() < a.min {
                    "running"
                } else if comparisons.iter().all(|c| c.resolved) {
                    "resolved"
                } else if seeds.len() >= a.max {
                    "cap"
                } else {
                    "running"
                };
                WorkloadSeeds {
                    workload: w,
                    seeds,
                    state: state.into(),
                    comparisons,
                }
            })
            .collect();
        SeedDecisions {
            min: a.min,
            max: a.max,
            margin_pct: a.margin_pct,
            metric: "energy of all windows (gross J), paired on seed and repeat: Student t 95% interval of the log ratio".into(),
            workloads: out,
        }
    }

    /// Each variant of `w` against the baseline, on the records that count.
    fn compare(&self, w: &str, records: &[TrialRecord], margin_pct: f64) -> Vec<SeedComparison> {
        let mut variants: Vec<&str> = Vec::new();
        for t in self.plan.trials.iter().filter(|t| t.key.workload == w) {
            if t.key.variant != self.baseline && !variants.contains(&t.key.variant.as_str()) {
                variants.push(&t.key.variant);
            }
        }
        let of = |v: &str| -> Vec<&TrialRecord> {
            records
                .iter()
                .filter(|r| r.key.workload == w && r.key.variant == v && counts(r))
                .collect()
        };
        let base = of(self.baseline);
        variants
            .into_iter()
            .map(|v| {
                let pairs: Vec<(f64, f64)> = of(v)
                    .iter()
                    .filter_map(|t| {
                        base.iter()
                            .find(|b| b.key.seed == t.key.seed && b.key.repeat == t.key.repeat)
                            .map(|b| (metrics(b).gross_j, metrics(t).gross_j))
                    })
                    .collect();
                let r = Ratio::of_pairs(&pairs);
                let resolved = r.resolved(margin_pct);
                SeedComparison {
                    variant: v.to_string(),
                    pairs: r.pairs(),
                    change_pct: r.change_pct(),
                    low_pct: r.low_pct(),
                    high_pct: r.high_pct(),
                    resolved,
                    pairs_needed: (!resolved).then(|| r.pairs_needed(margin_pct)).flatten(),
                }
            })
            .collect()
    }
}

/// The warm-up of `spec`: its configuration trained for `steps` optimizer
/// steps in one epoch, with evaluation capped to one batch and the
/// techniques that train more than the model itself (distillation's
/// teacher, pruning's fine-tuning, early stopping, batch schedules) left
/// out. Its record is discarded.
pub(crate) fn warmup_spec(spec: &TrialSpec, steps: u32) -> TrialSpec {
    let mut w = spec.clone();
    let c = &mut w.config;
    c.epochs = 1;
    if let Some(b) = c.batch_schedule.take() {
        c.batch_size = b.start();
    }
    let per_step = c.batch_size as u64 * c.accumulation_steps.max(1) as u64;
    c.max_train_samples = Some(per_step * steps as u64);
    c.max_eval_samples = Some(c.eval_batch_size as u64);
    c.early_stopping = None;
    c.eval_every_steps = None;
    c.prune = None;
    c.distill = None;
    c.save_weights = false;
    w
}
