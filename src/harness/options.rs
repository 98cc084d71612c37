//! What a run is started with besides its suite: where results go, the
//! device, the data folders, resume or shard, and the command line's
//! measurement settings (which win over the suite's).

use crate::measure::{MeasureError, MeasureSettings, Measurement};
use crate::suite::Suite;
use crate::util::device::DeviceSpec;
use std::path::PathBuf;

/// Command-line settings of a run; each overrides the suite's.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub results_root: PathBuf,
    pub device: DeviceSpec,
    /// How `--device auto` chose the device, when it did.
    pub device_reason: Option<String>,
    /// Dataset folder from the command line (highest precedence).
    pub data_dir: Option<PathBuf>,
    /// Text corpus folder from the command line (highest precedence).
    pub corpus_dir: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    /// Run one shard of the plan into a shared run folder.
    pub shared: Option<crate::cluster::shard::SharedRun>,
    /// Let trials change GPU power limits and clocks (restored after each).
    pub allow_gpu_settings: bool,
    /// The command line's meter and impact settings.
    pub measure: MeasureSettings,
}

impl RunOptions {
    /// The measurement settings in force: command line > suite > defaults.
    pub fn measurement(&self, suite: Option<&Suite>) -> Result<Measurement, MeasureError> {
        let suite = suite.map(|s| s.measure.clone()).unwrap_or_default();
        self.measure.clone().or(&suite).resolve()
    }
}
