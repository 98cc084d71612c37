//! Energy meters and measurement windows.
//!
//! A meter reports *cumulative* energy per domain at an instant (a
//! [`Snapshot`]); a window is the difference of two snapshots. Overlapping
//! and nested windows therefore come for free, and counters, integrating
//! pollers and estimates all fit one shape. Every figure carries the
//! [`Provenance`] of the domain that produced it.

pub mod estimate;
pub mod fake;
pub mod window;

use crate::units::{Joules, Seconds};
use serde::{Deserialize, Serialize};
use std::time::Instant;

pub use window::{EnergyReading, Measurer};

/// How a figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// Read from a hardware energy counter.
    Counter,
    /// Polled instantaneous power, integrated over time.
    Integrated,
    /// Modelled from utilisation × rated power: not a measurement.
    Estimated,
    /// Scripted values for tests and demos: not a measurement.
    Fake,
}

impl Provenance {
    pub fn label(self) -> &'static str {
        match self {
            Provenance::Counter => "counter",
            Provenance::Integrated => "integrated",
            Provenance::Estimated => "estimated",
            Provenance::Fake => "fake",
        }
    }
    /// True for figures that are not measurements and must be labelled so.
    pub fn is_modelled(self) -> bool {
        matches!(self, Provenance::Estimated | Provenance::Fake)
    }
}

/// One energy domain a meter reports, e.g. `cpu-process`, `gpu:0`, `dram:0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainInfo {
    pub domain: String,
    pub meter: String,
    pub provenance: Provenance,
    /// How the figure is obtained, with the constants used.
    pub method: String,
}

/// What a meter is and what it measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterInfo {
    pub name: String,
    pub domains: Vec<DomainInfo>,
    /// How often the underlying source updates, if known; windows shorter
    /// than this are flagged.
    pub update_period: Option<Seconds>,
}

/// Cumulative energy per domain at one instant, in the order of `MeterInfo::domains`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub energy: Vec<Joules>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("meter {meter}: {message}")]
    Read { meter: String, message: String },
    #[error("meter {meter} is unavailable: {reason}")]
    Unavailable { meter: String, reason: String },
    #[error("cannot synchronise the device at a window edge: {0}")]
    Sync(#[from] candle_core::Error),
}

/// A source of cumulative energy readings.
pub trait EnergyMeter: Send {
    fn info(&self) -> MeterInfo;
    fn snapshot(&mut self) -> Result<Snapshot, MeterError>;
}

/// Settings that choose and configure a meter.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterOptions {
    pub choice: crate::suite::MeterChoice,
    pub cpu_watts_per_core: crate::units::Watts,
}

impl Default for MeterOptions {
    fn default() -> Self {
        Self {
            choice: crate::suite::MeterChoice::Estimate,
            cpu_watts_per_core: estimate::DEFAULT_WATTS_PER_CORE,
        }
    }
}

/// Builds the meter the options ask for.
pub fn build(opts: &MeterOptions) -> Result<Box<dyn EnergyMeter>, MeterError> {
    use crate::suite::MeterChoice;
    Ok(match opts.choice {
        MeterChoice::Estimate => Box::new(estimate::EstimateMeter::new(opts.cpu_watts_per_core)),
        MeterChoice::Fake => Box::new(fake::ConstantPowerMeter::new(vec![
            ("cpu-fake".into(), crate::units::Watts(20.0)),
            ("dram-fake".into(), crate::units::Watts(5.0)),
        ])),
    })
}
