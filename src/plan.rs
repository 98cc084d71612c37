//! The expanded plan: one entry per trial (workload × variant × seed × repeat).

use crate::suite::TrialConfig;
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
        let n = spec
            .config
            .max_train_samples
            .map_or(train_samples, |c| c.min(train_samples));
        n.div_ceil(spec.config.batch_size as u64)
            .div_ceil(spec.config.accumulation_steps.max(1) as u64)
            * spec.config.epochs as u64
    }
}
