//! The run's command-line options and the measurement settings in force
//! (command line > suite > defaults).

use crate::impact::ImpactSettings;
use crate::meter::MeterOptions;
use crate::suite::Suite;
use crate::util::device::DeviceSpec;
use crate::util::units::Watts;
use std::path::PathBuf;

/// A command-line option out of range, or impact constants that are not allowed.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("{0}")]
    Option(String),
    #[error(transparent)]
    Impact(#[from] crate::impact::ImpactError),
}

/// Command-line settings; each overrides the suite's.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub results_root: PathBuf,
    pub device: DeviceSpec,
    /// Dataset folder from the command line (highest precedence).
    pub data_dir: Option<PathBuf>,
    /// Text corpus folder from the command line (highest precedence).
    pub corpus_dir: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub meter: Option<crate::config::MeterChoice>,
    pub cpu_watts_per_core: Option<f64>,
    pub idle_seconds: Option<f64>,
    pub rapl_root: Option<PathBuf>,
    pub region: Option<String>,
    pub pue: Option<f64>,
    pub wue_onsite: Option<f64>,
    pub water_offsite: Option<f64>,
    /// `hourly` or `annual` grid intensity.
    pub intensity: Option<String>,
    /// The CPU's model name and package threads, for the estimate in a VM.
    pub cpu_model: Option<String>,
    pub cpu_threads: Option<u32>,
    /// Which GPUs NVML measures, and the NVML library to load.
    pub gpus: Option<crate::config::GpuSelection>,
    pub nvml_lib: Option<PathBuf>,
    /// How `--device auto` chose the device, when it did.
    pub device_reason: Option<String>,
    /// Run one shard of the plan into a shared run folder.
    pub shared: Option<crate::cluster::shard::SharedRun>,
    /// Let trials change GPU power limits and clocks (restored after each).
    pub allow_gpu_settings: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            results_root: "results".into(),
            device: DeviceSpec::Cpu,
            data_dir: None,
            corpus_dir: None,
            resume: None,
            meter: None,
            cpu_watts_per_core: None,
            idle_seconds: None,
            rapl_root: None,
            region: None,
            pue: None,
            wue_onsite: None,
            water_offsite: None,
            intensity: None,
            cpu_model: None,
            cpu_threads: None,
            gpus: None,
            nvml_lib: None,
            device_reason: None,
            shared: None,
            allow_gpu_settings: false,
        }
    }
}

/// Default idle window before each trial, seconds.
pub const DEFAULT_IDLE_SECONDS: f64 = 2.0;

/// Measurement settings in force: command line > suite > defaults.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub meter: MeterOptions,
    pub idle_seconds: f64,
    pub cooldown_seconds: f64,
    pub cooldown_temperature_c: Option<f64>,
    pub impact: ImpactSettings,
}

impl Measurement {
    /// Settings from the command line and built-in defaults only (no suite).
    pub fn defaults(opts: &RunOptions) -> Result<Measurement, OptionsError> {
        resolve(
            opts,
            None,
            &crate::suite::MeterSection::default(),
            &crate::suite::ImpactSection::default(),
        )
    }
}

/// Resolves the measurement settings: command line > suite > defaults.
pub fn measurement(suite: &Suite, opts: &RunOptions) -> Result<Measurement, OptionsError> {
    resolve(opts, suite.meter, &suite.meter_section, &suite.impact)
}

fn resolve(
    opts: &RunOptions,
    suite_meter: Option<crate::config::MeterChoice>,
    m: &crate::suite::MeterSection,
    i: &crate::suite::ImpactSection,
) -> Result<Measurement, OptionsError> {
    let d = MeterOptions::default();
    let idle_seconds = opts
        .idle_seconds
        .or(m.idle_seconds)
        .unwrap_or(DEFAULT_IDLE_SECONDS);
    // The same range as the suite's `[meter] idle_seconds`.
    let range = &crate::suite::METER_RANGES[2];
    debug_assert_eq!(range.key, "idle_seconds");
    if !range.contains(idle_seconds) {
        return Err(OptionsError::Option(format!(
            "--idle-seconds {idle_seconds}: {}",
            range.allowed
        )));
    }
    Ok(Measurement {
        meter: MeterOptions {
            choice: opts.meter.or(suite_meter).unwrap_or(d.choice),
            cpu_watts_per_core: opts.cpu_watts_per_core.or(m.cpu_watts_per_core).map(Watts),
            dram_watts_per_gb: m.dram_watts_per_gb,
            cpu_model: opts.cpu_model.clone().or_else(|| m.cpu_model.clone()),
            cpu_threads: opts.cpu_threads.or(m.cpu_threads.map(|t| t as u32)),
            gpus: opts
                .gpus
                .clone()
                .or_else(|| m.gpus.clone())
                .unwrap_or_default(),
            nvml_lib: opts.nvml_lib.clone().or_else(|| m.nvml_lib.clone()),
            rapl_root: opts.rapl_root.clone().unwrap_or(d.rapl_root),
            poll_interval: m
                .poll_interval_ms
                .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
                .unwrap_or(d.poll_interval),
        },
        idle_seconds,
        cooldown_seconds: m.cooldown_seconds.unwrap_or(0.0),
        cooldown_temperature_c: m.cooldown_temperature_c,
        impact: ImpactSettings::new(
            opts.region.as_deref().or(i.region.as_deref()),
            opts.pue.or(i.pue),
            opts.wue_onsite.or(i.wue_onsite),
            opts.water_offsite.or(i.water_offsite),
        )?
        .with_intensity(opts.intensity.as_deref().or(i.intensity.as_deref()))?,
    })
}
