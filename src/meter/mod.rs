//! Energy meters and measurement windows.
//!
//! A meter reports *cumulative* energy per domain at an instant (a
//! [`Snapshot`]); a window is the difference of two snapshots. Overlapping
//! and nested windows therefore come for free, and counters, integrating
//! pollers and estimates all fit one shape. Every figure carries the
//! [`Provenance`] of the domain that produced it.

pub mod calibrate;
pub mod composite;
pub mod cpu_power;
pub mod estimate;
pub mod fake;
pub mod interference;
pub mod judge;
pub mod measurer;
pub mod nvml;
pub mod rapl;
pub mod validity;
pub mod window;

use crate::util::units::{Joules, Seconds};
use serde::{Deserialize, Serialize};
use std::time::Instant;

pub use measurer::Measurer;
pub use window::EnergyReading;

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
    /// What every reading of this domain must say (e.g. a MIG GPU's reading
    /// is the whole GPU's); copied into each window's flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
}

/// What a meter is and what it measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterInfo {
    pub name: String,
    pub domains: Vec<DomainInfo>,
    /// How often the underlying source updates, if known; windows shorter
    /// than this are flagged.
    pub update_period: Option<Seconds>,
    /// The CPU the estimate models (estimate meters only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<cpu_power::CpuProfile>,
}

/// Cumulative energy per domain at one instant, in the order of `MeterInfo::domains`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    /// The same instant on the wall clock (UTC), for hourly carbon intensity.
    pub wall: std::time::SystemTime,
    pub energy: Vec<Joules>,
    /// Instant power per domain where the source has it (used to approximate
    /// windows shorter than the counter's update period).
    pub power: Vec<Option<crate::util::units::Watts>>,
    /// Cumulative (low, high) joules per domain for modelled domains with a
    /// band; empty or `None` where the figure has none.
    pub band: Vec<Option<(Joules, Joules)>>,
    /// Counter domains with a second source: the cumulative integral of
    /// polled instant power, for the counter's self-check.
    pub cross_check: Vec<Option<Joules>>,
    /// Estimated domains: cumulative seconds the domain's idle (static)
    /// power was charged for, wall time less what other processes' work
    /// displaced (`estimate.rs`); empty or `None` elsewhere.
    pub charged: Vec<Option<Seconds>>,
}

impl Snapshot {
    pub fn new(
        at: Instant,
        energy: Vec<Joules>,
        power: Vec<Option<crate::util::units::Watts>>,
    ) -> Self {
        Snapshot {
            at,
            wall: std::time::SystemTime::now() - at.elapsed(),
            energy,
            power,
            band: Vec::new(),
            cross_check: Vec::new(),
            charged: Vec::new(),
        }
    }

    /// Adds cumulative (low, high) joules per domain.
    pub fn with_band(mut self, band: Vec<Option<(Joules, Joules)>>) -> Self {
        self.band = band;
        self
    }

    /// Adds the cumulative instant-power integral per domain.
    pub fn with_cross_check(mut self, cross_check: Vec<Option<Joules>>) -> Self {
        self.cross_check = cross_check;
        self
    }

    /// Adds the cumulative charged seconds per domain.
    pub fn with_charged(mut self, charged: Vec<Option<Seconds>>) -> Self {
        self.charged = charged;
        self
    }
}

/// One power sample of a timeline; `t` is seconds from the window's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerSample {
    pub t: f64,
    pub domain: String,
    pub watts: crate::util::units::Watts,
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
    /// Power samples taken between two instants, if the meter polls.
    fn timeline(&self, _from: Instant, _to: Instant) -> Vec<PowerSample> {
        Vec::new()
    }
    /// Latest temperature, clocks, power limit and utilisation of measured GPUs.
    fn gpu_states(&self) -> Vec<crate::gpu::api::GpuState> {
        Vec::new()
    }
    /// Every state of the measured GPUs in force between two instants (the
    /// latest where the meter keeps no history).
    fn gpu_states_during(&self, _from: Instant, _to: Instant) -> Vec<crate::gpu::api::GpuState> {
        self.gpu_states()
    }
    /// The GPU driver's version, where the meter reads one.
    fn driver_version(&self) -> Option<String> {
        None
    }
}

/// Settings that choose and configure a meter.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterOptions {
    pub choice: crate::config::MeterChoice,
    /// A flat W per busy core instead of the CPU power model (the user's choice).
    pub cpu_watts_per_core: Option<crate::util::units::Watts>,
    /// A fixed DRAM W/GB instead of the banded default.
    pub dram_watts_per_gb: Option<f64>,
    /// The CPU's model name, for a VM that hides it.
    pub cpu_model: Option<String>,
    /// Hardware threads of the CPU package that share its TDP.
    pub cpu_threads: Option<u32>,
    /// Which GPUs NVML measures (the run's, all, or a list).
    pub gpus: crate::config::GpuSelection,
    /// The NVML library to load instead of the system's (else `JOULEBENCH_NVML_LIB`).
    pub nvml_lib: Option<std::path::PathBuf>,
    /// Powercap root (tests point it at a fake tree).
    pub rapl_root: std::path::PathBuf,
    /// NVML polling interval.
    pub poll_interval: std::time::Duration,
}

impl Default for MeterOptions {
    fn default() -> Self {
        Self {
            choice: crate::config::MeterChoice::Auto,
            cpu_watts_per_core: None,
            dram_watts_per_gb: None,
            cpu_model: None,
            cpu_threads: None,
            gpus: crate::config::GpuSelection::Run,
            nvml_lib: None,
            rapl_root: rapl::DEFAULT_ROOT.into(),
            poll_interval: std::time::Duration::from_millis(20),
        }
    }
}

impl MeterOptions {
    /// This machine's CPU as the estimate sees it, with the settings' overrides.
    pub fn cpu_profile(&self) -> cpu_power::CpuProfile {
        cpu_power::CpuProfile::detect(&cpu_power::CpuOverrides {
            model: self.cpu_model.clone(),
            threads: self.cpu_threads,
            watts_per_core: self.cpu_watts_per_core,
        })
    }
}

/// A meter that could not be used, and why (recorded in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unavailable {
    pub meter: String,
    pub reason: String,
}

/// The meter a run uses, plus the sources that were tried and not available.
pub struct Built {
    pub meter: Box<dyn EnergyMeter>,
    pub unavailable: Vec<Unavailable>,
}

fn reason(e: MeterError) -> String {
    match e {
        MeterError::Unavailable { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Builds the meter the options ask for, for a run on `device`.
///
/// `auto` takes every real source there is (NVML for the run's GPUs, RAPL for
/// CPU packages and DRAM) and fills each missing CPU/DRAM domain with the
/// labelled estimate. `nvml` and `rapl` insist on that source and fail if it
/// is unavailable.
pub fn build(
    opts: &MeterOptions,
    device: crate::util::device::DeviceSpec,
) -> Result<Built, MeterError> {
    use crate::config::MeterChoice;
    let mut unavailable = Vec::new();
    let estimate = |cpu: bool, dram: bool| -> Box<dyn EnergyMeter> {
        let profile = opts.cpu_profile();
        let model = cpu_power::CpuModel::new(&profile, opts.cpu_watts_per_core);
        Box::new(estimate::EstimateMeter::new(
            profile,
            model,
            opts.dram_watts_per_gb,
            cpu,
            dram,
        ))
    };
    let gpu_ordinals: Vec<usize> = match device {
        crate::util::device::DeviceSpec::Cuda(n) => vec![n],
        crate::util::device::DeviceSpec::Cpu => vec![],
    };
    let open_nvml = || -> Result<nvml::NvmlMeter, MeterError> {
        if gpu_ordinals.is_empty() && opts.gpus == crate::config::GpuSelection::Run {
            return Err(MeterError::Unavailable {
                meter: "nvml".into(),
                reason:
                    "the run uses no GPU (--device cpu); --gpus all measures the node's GPUs anyway"
                        .into(),
            });
        }
        let api = crate::gpu::api::Nvml::load(opts.nvml_lib.as_deref()).map_err(|reason| {
            MeterError::Unavailable {
                meter: "nvml".into(),
                reason,
            }
        })?;
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        nvml::NvmlMeter::open_selected(
            std::sync::Arc::new(api),
            &opts.gpus,
            visible.as_deref(),
            &gpu_ordinals,
            opts.poll_interval,
        )
    };
    let meter: Box<dyn EnergyMeter> = match opts.choice {
        MeterChoice::Estimate => estimate(true, true),
        MeterChoice::Fake => Box::new(fake::ConstantPowerMeter::new(vec![
            ("cpu-fake".into(), crate::util::units::Watts(20.0)),
            ("dram-fake".into(), crate::util::units::Watts(5.0)),
        ])),
        MeterChoice::Rapl => Box::new(rapl::RaplMeter::open(&opts.rapl_root)?),
        MeterChoice::Nvml => Box::new(open_nvml()?),
        MeterChoice::Auto => {
            let mut parts: Vec<Box<dyn EnergyMeter>> = Vec::new();
            match open_nvml() {
                Ok(m) => parts.push(Box::new(m)),
                Err(e) => unavailable.push(Unavailable {
                    meter: "nvml".into(),
                    reason: reason(e),
                }),
            }
            let (mut has_cpu, mut has_dram) = (false, false);
            match rapl::RaplMeter::open(&opts.rapl_root) {
                Ok(m) => {
                    let info = m.info();
                    has_cpu = info.domains.iter().any(|d| !d.domain.starts_with("dram"));
                    has_dram = info.domains.iter().any(|d| d.domain.starts_with("dram"));
                    parts.push(Box::new(m));
                }
                Err(e) => unavailable.push(Unavailable {
                    meter: "rapl".into(),
                    reason: reason(e),
                }),
            }
            if !has_cpu || !has_dram {
                parts.push(estimate(!has_cpu, !has_dram));
            }
            if parts.len() == 1 {
                parts.remove(0)
            } else {
                Box::new(composite::CompositeMeter::new(parts))
            }
        }
    };
    Ok(Built { meter, unavailable })
}
