//! Batch-size schedules as settings: a geometric ramp over epochs, or growth
//! driven by the measured gradient noise scale (McCandlish et al. 2018).
//! How each epoch's batch follows from them is `train::batch_schedule`.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// How a batch schedule picks each epoch's batch size.
    pub enum BatchRule: "batch schedule rule" {
        /// Geometric steps from `start` at epoch 1 to `end` at epoch `over_epochs + 1`.
        Ramp = "ramp",
        /// Start at `start`; after each epoch grow towards the measured gradient
        /// noise scale B_simple (at most 4x per epoch, never above `end`, never shrinking).
        Adaptive = "adaptive",
    }
}

/// `batch_schedule = { rule = "...", start = .., end = .., over_epochs = .. }`
/// as written in a suite (checked in `suite::check`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchScheduleSpec {
    pub rule: BatchRule,
    pub start: i64,
    pub end: i64,
    #[serde(default)]
    pub over_epochs: Option<i64>,
}

/// A resolved batch schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum BatchSchedule {
    Ramp {
        start: u32,
        end: u32,
        over_epochs: u32,
    },
    Adaptive {
        start: u32,
        end: u32,
    },
}

impl BatchSchedule {
    pub fn start(&self) -> u32 {
        match *self {
            BatchSchedule::Ramp { start, .. } | BatchSchedule::Adaptive { start, .. } => start,
        }
    }

    /// The largest batch the schedule can reach.
    pub fn end(&self) -> u32 {
        match *self {
            BatchSchedule::Ramp { end, .. } | BatchSchedule::Adaptive { end, .. } => end,
        }
    }
}
