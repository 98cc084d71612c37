//! How a suite's trials are run, besides what each trial is: the order of
//! variants within a seed, the warm-up before a workload's first measured
//! trial, and whether seeds are added until each comparison is resolved.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// The order variants run in within one workload × seed × repeat.
    pub enum Order: "trial order" {
        /// Shuffled per block by a seeded RNG, so drift (clock frequency,
        /// page cache, a neighbour starting) spreads over the variants.
        Shuffled = "shuffled",
        /// As the suite lists them (the baseline first when it is listed first).
        Fixed = "fixed",
    }
}

/// Seeds added in rounds until each paired comparison against the baseline
/// is resolved: its 95% interval excludes no change, or lies within
/// ± `margin_pct` (the difference, if any, is below what the user cares about).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveSeeds {
    /// The first seed; later ones follow it (first, first + 1, ...).
    pub first: u64,
    /// Seeds every workload runs before any is judged (>= 2: an interval needs two pairs).
    pub min: usize,
    /// The cap: a comparison still open then is reported as inconclusive.
    pub max: usize,
    /// The smallest change that matters, in percent.
    pub margin_pct: f64,
}

/// A suite's protocol (`[protocol]` and the `seeds` form of `[defaults]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub order: Order,
    /// Seeds the shuffle (with each block's workload, seed and repeat).
    pub order_seed: u64,
    /// Training steps of a discarded warm-up before each workload's first
    /// measured trial in a process (0: none).
    pub warmup_steps: u32,
    /// `seeds = { first, min, max, margin_pct }`: adaptive seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSeeds>,
}

/// Warm-up steps before each workload's first trial, unless the suite says otherwise.
pub const DEFAULT_WARMUP_STEPS: u32 = 20;

/// The smallest change that matters when no suite says (compare, report).
pub const DEFAULT_MARGIN_PCT: f64 = 5.0;

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            order: Order::Shuffled,
            order_seed: 0,
            warmup_steps: DEFAULT_WARMUP_STEPS,
            adaptive: None,
        }
    }
}

impl Protocol {
    /// The smallest change that matters: the adaptive rule's margin, else the default.
    pub fn margin_pct(&self) -> f64 {
        self.adaptive.map_or(DEFAULT_MARGIN_PCT, |a| a.margin_pct)
    }
}
