//! What the adaptive-seeds rule decided for each workload of a run
//! (`<run>/seeds.json`): the seeds it ran, why it stopped, and each
//! comparison with the baseline as it stood then.

use serde::{Deserialize, Serialize};

/// One comparison with the baseline when the rule stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedComparison {
    pub variant: String,
    /// Pairs (seeds × repeats) with both trials completed and valid.
    pub pairs: usize,
    /// Energy change against the baseline, percent, with its 95% interval.
    pub change_pct: f64,
    pub low_pct: f64,
    pub high_pct: f64,
    pub resolved: bool,
    /// Pairs the observed spread needs to resolve it (when not resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs_needed: Option<usize>,
}

/// One workload's seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSeeds {
    pub workload: String,
    /// Seeds whose trials ran, in order.
    pub seeds: Vec<u64>,
    /// `resolved` (every comparison), `cap` (max seeds reached) or `running`.
    pub state: String,
    pub comparisons: Vec<SeedComparison>,
}

/// `<run>/seeds.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedDecisions {
    pub min: usize,
    pub max: usize,
    pub margin_pct: f64,
    /// What is compared: energy of all windows (gross joules), paired on
    /// seed and repeat, log ratio with a Student t 95% interval.
    pub metric: String,
    pub workloads: Vec<WorkloadSeeds>,
}

impl SeedDecisions {
    /// Seeds the rule decided not to run for a workload (none while it runs).
    pub fn skipped(&self, workload: &str, seed: u64) -> bool {
        self.workloads
            .iter()
            .find(|w| w.workload == workload)
            .is_some_and(|w| w.state != "running" && !w.seeds.contains(&seed))
    }
}

/// A warm-up before the trial it precedes: discarded training steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    pub steps: u64,
    pub seconds: crate::util::units::Seconds,
    /// `completed`, or why the warm-up failed (the trial ran anyway).
    pub outcome: String,
}
