//! The expanded plan: one entry per trial (workload × variant × seed × repeat).

use super::trial::TrialConfig;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies a trial within a suite; stable across resumes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TrialKey {
    pub workload: String,
    pub variant: String,
    pub seed: u64,
    pub repeat: u32,
}

impl fmt::Display for TrialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/s{}/r{}",
            self.workload, self.variant, self.seed, self.repeat
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrialSpec {
    pub index: usize,
    pub key: TrialKey,
    pub config: TrialConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub suite: String,
    pub trials: Vec<TrialSpec>,
}

impl Plan {
    /// Optimizer steps of a trial given its training-set size (an upper
    /// bound when early stopping is on).
    pub fn steps(spec: &TrialSpec, train_samples: u64) -> u64 {
        spec.config.steps_per_epoch(train_samples) * spec.config.epochs as u64
    }
}
