//! The layered measurement settings resolved, once per run, into what the
//! meters and the impact code take.

use super::MeasureSettings;
use crate::impact::{ImpactError, ImpactSettings};
use crate::meter::MeterOptions;
use crate::meter::validity::Rules;
use crate::util::units::Watts;

/// Settings the meter, the idle baseline and the impact arithmetic run with.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub meter: MeterOptions,
    pub idle_seconds: f64,
    pub cooldown_seconds: f64,
    pub cooldown_temperature_c: Option<f64>,
    pub impact: ImpactSettings,
    /// The validity rules' thresholds (the measurer judges every window by them).
    pub rules: Rules,
}

/// A setting that cannot be resolved: out of range, or impact constants
/// that do not go together.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error(transparent)]
    Setting(#[from] super::SettingError),
    #[error(transparent)]
    Impact(#[from] ImpactError),
}

impl MeasureSettings {
    /// Resolves these (layered) settings: the built-in defaults fill what is
    /// unset, every value is checked, and the impact settings are built.
    pub fn resolve(&self) -> Result<Measurement, MeasureError> {
        let s = self.clone().or(&MeasureSettings::builtin());
        s.check()?;
        let (m, i) = (&s.meter, &s.impact);
        let d = MeterOptions::default();
        Ok(Measurement {
            meter: MeterOptions {
                choice: m.kind.unwrap_or(d.choice),
                cpu_watts_per_core: m.cpu_watts_per_core.map(Watts),
                dram_watts_per_gb: m.dram_watts_per_gb,
                cpu_model: m.cpu_model.clone(),
                cpu_threads: m.cpu_threads,
                gpus: m.gpus.clone().unwrap_or_default(),
                nvml_lib: m.nvml_lib.clone(),
                rapl_root: m.rapl_root.clone().unwrap_or(d.rapl_root),
                poll_interval: m.poll_interval_ms.map_or(d.poll_interval, |ms| {
                    std::time::Duration::from_secs_f64(ms / 1000.0)
                }),
            },
            idle_seconds: m.idle_seconds.unwrap_or_default(),
            cooldown_seconds: m.cooldown_seconds.unwrap_or_default(),
            cooldown_temperature_c: m.cooldown_temperature_c,
            rules: Rules {
                interference_limit: m
                    .interference_limit
                    .unwrap_or(crate::meter::validity::DEFAULT_INTERFERENCE_LIMIT),
                ..Rules::default()
            },
            impact: ImpactSettings::new(i.region.as_deref(), i.pue, i.wue_onsite, i.water_offsite)?
                .with_intensity(i.intensity.as_deref())?,
        })
    }
}
