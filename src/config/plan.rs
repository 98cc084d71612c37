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

impl TrialSpec {
    /// The trial's identity: 16 hex digits of a hash of its key (workload,
    /// variant, seed, repeat) and its fully resolved configuration, as JSON.
    /// The same suite gives the same ids on every machine and in every shard;
    /// a changed setting gives a new id. It does not depend on the plan index,
    /// so filtering a suite keeps each trial's id.
    pub fn id(&self) -> String {
        trial_id(&self.key, &self.config)
    }
}

/// See [`TrialSpec::id`].
pub fn trial_id(key: &TrialKey, config: &TrialConfig) -> String {
    // Serialising plain structs of numbers, strings and enums cannot fail.
    let json = serde_json::to_vec(&(key, config)).unwrap_or_default();
    format!("{:016x}", crate::util::hash::fnv1a64(&json))
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

impl Plan {
    /// The trials in the order they run: blocks of one workload × seed ×
    /// repeat in plan order; within each block the variants as listed
    /// (`Order::Fixed`) or shuffled by an RNG seeded from the protocol's
    /// `order_seed` and the block (`Order::Shuffled`), so the same suite
    /// runs in the same order everywhere and drift spreads over variants.
    pub fn run_order(&self, protocol: &super::protocol::Protocol) -> Vec<&TrialSpec> {
        let mut out: Vec<&TrialSpec> = Vec::with_capacity(self.trials.len());
        let mut i = 0;
        while i < self.trials.len() {
            let k = &self.trials[i].key;
            let n = self.trials[i..]
                .iter()
                .take_while(|t| {
                    (&t.key.workload, t.key.seed, t.key.repeat) == (&k.workload, k.seed, k.repeat)
                })
                .count();
            let mut block: Vec<&TrialSpec> = self.trials[i..i + n].iter().collect();
            if protocol.order == super::protocol::Order::Shuffled {
                let purpose = format!("order/{}/{}/{}", k.workload, k.seed, k.repeat);
                crate::util::rng::Rng::derive(protocol.order_seed, &purpose).shuffle(&mut block);
            }
            out.extend(block);
            i += n;
        }
        out
    }
}
