//! GPU settings a trial changed (power limit, locked clocks), as read back.

use serde::{Deserialize, Serialize};

/// What a trial ran with, as read back from NVML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSettingsRecord {
    pub requested_power_limit_w: Option<u32>,
    /// Per GPU, the limit in force as NVML reports it after the change.
    pub enforced_power_limit_w: Vec<f64>,
    pub requested_sm_clock_mhz: Option<u32>,
    /// Per GPU, the SM clock NVML reports after the change.
    pub sm_clock_mhz: Vec<Option<u32>>,
    /// Per GPU, the limit before joulebench changed it (restored after).
    pub original_power_limit_w: Vec<f64>,
}
