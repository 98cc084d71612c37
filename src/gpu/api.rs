//! The GPU device layer under the NVML meter: the few NVML calls joulebench
//! makes (`GpuApi`, the seam tests script), the real NVML through
//! nvml-wrapper with the library chosen at run time (`[meter] nvml_lib`,
//! `--nvml-lib`, `JOULEBENCH_NVML_LIB`, else the system's), and which GPUs
//! a run measures (`GpuSelection`: the run's, all, or a list).

use crate::config::GpuSelection;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Readings of a GPU besides energy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuState {
    pub domain: String,
    pub name: String,
    pub temperature_c: Option<u32>,
    pub sm_clock_mhz: Option<u32>,
    pub power_limit_w: Option<f64>,
    pub utilization_pct: Option<u32>,
    /// NVML's UUID (`GPU-...`), which names the board across reboots and schedulers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// PIDs of the processes with a compute context on the GPU
    /// (`nvmlDeviceGetComputeRunningProcesses`), this one's included; None: not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_pids: Option<Vec<u32>>,
    /// Why the clocks are below their maximum (NVML's clocks event, formerly
    /// throttle, reasons), by name (`throttle_names`); None: not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_reasons: Option<Vec<String>>,
}

/// NVML's clocks event (throttle) reasons by name, in bit order; bits this
/// table does not know are named by their hex value.
pub fn throttle_names(bits: u64) -> Vec<String> {
    use nvml_wrapper::bitmasks::device::ThrottleReasons as T;
    const NAMES: &[(T, &str)] = &[
        (T::GPU_IDLE, "gpu-idle"),
        (T::APPLICATIONS_CLOCKS_SETTING, "applications-clocks"),
        (T::SW_POWER_CAP, "sw-power-cap"),
        (T::HW_SLOWDOWN, "hw-slowdown"),
        (T::SYNC_BOOST, "sync-boost"),
        (T::SW_THERMAL_SLOWDOWN, "sw-thermal-slowdown"),
        (T::HW_THERMAL_SLOWDOWN, "hw-thermal-slowdown"),
        (T::HW_POWER_BRAKE_SLOWDOWN, "hw-power-brake-slowdown"),
        (T::DISPLAY_CLOCK_SETTING, "display-clocks"),
    ];
    let mut rest = bits;
    let mut v: Vec<String> = NAMES
        .iter()
        .filter(|(t, _)| bits & t.bits() != 0)
        .map(|(t, n)| {
            rest &= !t.bits();
            n.to_string()
        })
        .collect();
    if rest != 0 {
        v.push(format!("{rest:#x}"));
    }
    v
}

/// The few NVML calls joulebench makes: the seam that tests script.
pub trait GpuApi: Send + Sync {
    fn device_count(&self) -> Result<u32, String>;
    fn uuid(&self, index: u32) -> Result<String, String>;
    fn name(&self, index: u32) -> Result<String, String>;
    fn driver_version(&self) -> Option<String>;
    /// Millijoules since the driver loaded.
    fn total_energy_mj(&self, index: u32) -> Result<u64, String>;
    /// Instant power (`NVML_FI_DEV_POWER_INSTANT`), milliwatts.
    fn power_instant_mw(&self, index: u32) -> Result<u32, String>;
    /// `nvmlDeviceGetPowerUsage`, milliwatts (a 1-second average on Ampere+).
    fn power_usage_mw(&self, index: u32) -> Result<u32, String>;
    fn state(&self, index: u32) -> GpuState;
    /// PIDs of the processes with a compute context on the GPU.
    fn compute_processes(&self, _index: u32) -> Result<Vec<u32>, String> {
        Err(NOT_SUPPORTED.into())
    }
    /// The clocks event (throttle) reasons in force, NVML's bit mask.
    fn throttle_reasons(&self, _index: u32) -> Result<u64, String> {
        Err(NOT_SUPPORTED.into())
    }
    /// Whether MIG mode is on (None: unknown or not supported).
    fn mig_enabled(&self, _index: u32) -> Option<bool> {
        None
    }
    /// The library the calls go to, where one was loaded.
    fn library(&self) -> Option<String> {
        None
    }
    /// The power limit NVML accepts, (min, max) milliwatts.
    fn power_limit_constraints_mw(&self, _index: u32) -> Result<(u32, u32), String> {
        Err(NOT_SUPPORTED.into())
    }
    /// The power management limit in force, milliwatts.
    fn power_limit_mw(&self, _index: u32) -> Result<u32, String> {
        Err(NOT_SUPPORTED.into())
    }
    /// Sets the power management limit (root or CAP_SYS_ADMIN).
    fn set_power_limit_mw(&self, _index: u32, _mw: u32) -> Result<(), String> {
        Err(NOT_SUPPORTED.into())
    }
    /// Locks the SM clock to [min, max] MHz (root or CAP_SYS_ADMIN).
    fn set_locked_clocks_mhz(&self, _index: u32, _min: u32, _max: u32) -> Result<(), String> {
        Err(NOT_SUPPORTED.into())
    }
    /// Releases locked clocks (back to the driver's default behaviour).
    fn reset_locked_clocks(&self, _index: u32) -> Result<(), String> {
        Err(NOT_SUPPORTED.into())
    }
}

const NOT_SUPPORTED: &str = "not supported by this GPU API";

/// The real NVML, from the library it was loaded from.
pub struct Nvml {
    nvml: nvml_wrapper::Nvml,
    /// The shared library (recorded in the meter's info and the manifest).
    pub library: String,
}

/// NVML's error in words, the lost-GPU case made plain.
fn nvml_error(e: nvml_wrapper::error::NvmlError) -> String {
    match e {
        nvml_wrapper::error::NvmlError::GpuLost => {
            "the GPU is lost: it fell off the bus or is otherwise inaccessible (NVML_ERROR_GPU_IS_LOST)".into()
        }
        nvml_wrapper::error::NvmlError::NoPermission => {
            "no permission to change GPU settings (NVML_ERROR_NO_PERMISSION): run as root or with CAP_SYS_ADMIN, or ask the machine's administrator".into()
        }
        nvml_wrapper::error::NvmlError::InvalidArg => {
            "NVML refused the value (NVML_ERROR_INVALID_ARGUMENT): outside what this GPU supports".into()
        }
        other => other.to_string(),
    }
}

/// Where libnvidia-ml is looked for, in order, when nothing names one.
const LIB_CANDIDATES: &[&str] = &[
    "libnvidia-ml.so.1",
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
];

/// The environment variable that names the NVML library to load.
pub const LIB_ENV: &str = "JOULEBENCH_NVML_LIB";

impl Nvml {
    /// Loads `lib` if given, else the library `JOULEBENCH_NVML_LIB` names,
    /// else the system's libnvidia-ml (several usual places). A named
    /// library is the only one tried, so a wrong path is an error, never a
    /// silent fallback to another NVML.
    pub fn load(lib: Option<&Path>) -> Result<Nvml, String> {
        let named = lib
            .map(|p| p.as_os_str().to_owned())
            .or_else(|| std::env::var_os(LIB_ENV).filter(|v| !v.is_empty()));
        let candidates: Vec<std::ffi::OsString> = match &named {
            Some(p) => vec![p.clone()],
            None => LIB_CANDIDATES.iter().map(|s| s.into()).collect(),
        };
        let mut errors = Vec::new();
        for lib in &candidates {
            match nvml_wrapper::Nvml::builder().lib_path(lib).init() {
                Ok(nvml) => {
                    return Ok(Nvml {
                        nvml,
                        library: lib.to_string_lossy().into_owned(),
                    });
                }
                Err(e) => errors.push(format!("{}: {e}", lib.to_string_lossy())),
            }
        }
        Err(match named {
            Some(_) => format!(
                "the NVML library named by the settings or {LIB_ENV} could not be loaded: {}",
                errors.join("; ")
            ),
            None => format!(
                "NVML could not be loaded (no NVIDIA driver here?): {}",
                errors.join("; ")
            ),
        })
    }

    fn dev(&self, index: u32) -> Result<nvml_wrapper::Device<'_>, String> {
        self.nvml.device_by_index(index).map_err(nvml_error)
    }
}

impl GpuApi for Nvml {
    fn power_limit_constraints_mw(&self, index: u32) -> Result<(u32, u32), String> {
        let c = self
            .dev(index)?
            .power_management_limit_constraints()
            .map_err(nvml_error)?;
        Ok((c.min_limit, c.max_limit))
    }
    fn power_limit_mw(&self, index: u32) -> Result<u32, String> {
        self.dev(index)?
            .power_management_limit()
            .map_err(nvml_error)
    }
    fn set_power_limit_mw(&self, index: u32, mw: u32) -> Result<(), String> {
        self.dev(index)?
            .set_power_management_limit(mw)
            .map_err(nvml_error)
    }
    fn set_locked_clocks_mhz(&self, index: u32, min: u32, max: u32) -> Result<(), String> {
        use nvml_wrapper::enums::device::GpuLockedClocksSetting;
        self.dev(index)?
            .set_gpu_locked_clocks(GpuLockedClocksSetting::Numeric {
                min_clock_mhz: min,
                max_clock_mhz: max,
            })
            .map_err(nvml_error)
    }
    fn reset_locked_clocks(&self, index: u32) -> Result<(), String> {
        self.dev(index)?
            .reset_gpu_locked_clocks()
            .map_err(nvml_error)
    }
    fn device_count(&self) -> Result<u32, String> {
        self.nvml.device_count().map_err(nvml_error)
    }
    fn uuid(&self, index: u32) -> Result<String, String> {
        self.dev(index)?.uuid().map_err(nvml_error)
    }
    fn name(&self, index: u32) -> Result<String, String> {
        self.dev(index)?.name().map_err(nvml_error)
    }
    fn driver_version(&self) -> Option<String> {
        self.nvml.sys_driver_version().ok()
    }
    fn total_energy_mj(&self, index: u32) -> Result<u64, String> {
        self.dev(index)?
            .total_energy_consumption()
            .map_err(nvml_error)
    }
    fn power_instant_mw(&self, index: u32) -> Result<u32, String> {
        use nvml_wrapper::enums::device::SampleValue;
        use nvml_wrapper::struct_wrappers::device::FieldValueSample;
        use nvml_wrapper::structs::device::FieldId;
        const NVML_FI_DEV_POWER_INSTANT: u32 = 186;
        let d = self.dev(index)?;
        let v = d
            .field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])
            .map_err(nvml_error)?;
        let sample: FieldValueSample = v
            .into_iter()
            .next()
            .ok_or("no field value returned")?
            .map_err(nvml_error)?;
        match sample.value.map_err(nvml_error)? {
            SampleValue::U32(x) => Ok(x),
            SampleValue::U64(x) => Ok(x as u32),
            SampleValue::I64(x) => Ok(x.max(0) as u32),
            SampleValue::F64(x) => Ok(x.max(0.0) as u32),
        }
    }
    fn power_usage_mw(&self, index: u32) -> Result<u32, String> {
        self.dev(index)?.power_usage().map_err(nvml_error)
    }
    fn mig_enabled(&self, index: u32) -> Option<bool> {
        self.dev(index)
            .ok()?
            .mig_mode()
            .ok()
            .map(|m| m.current != 0)
    }
    fn library(&self) -> Option<String> {
        Some(self.library.clone())
    }
    fn compute_processes(&self, index: u32) -> Result<Vec<u32>, String> {
        let procs = self
            .dev(index)?
            .running_compute_processes()
            .map_err(nvml_error)?;
        Ok(procs.into_iter().map(|p| p.pid).collect())
    }
    fn throttle_reasons(&self, index: u32) -> Result<u64, String> {
        // nvml-wrapper 0.13 calls nvmlDeviceGetCurrentClocksThrottleReasons,
        // the older name of nvmlDeviceGetCurrentClocksEventReasons (same bits).
        self.dev(index)?
            .current_throttle_reasons()
            .map(|r| r.bits())
            .map_err(nvml_error)
    }
    fn state(&self, index: u32) -> GpuState {
        use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
        let Ok(d) = self.dev(index) else {
            return GpuState::default();
        };
        GpuState {
            domain: String::new(),
            name: d.name().unwrap_or_default(),
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            power_limit_w: d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0),
            utilization_pct: d.utilization_rates().ok().map(|u| u.gpu),
            uuid: d.uuid().ok(),
            ..GpuState::default()
        }
    }
}

/// Maps the run's CUDA ordinals to NVML indices, honouring
/// `CUDA_VISIBLE_DEVICES` (integers or `GPU-` UUID prefixes; as in CUDA, the
/// list ends at the first entry that matches no GPU).
pub fn select_gpus(
    api: &dyn GpuApi,
    cuda_visible_devices: Option<&str>,
    ordinals: &[usize],
) -> Result<Vec<u32>, String> {
    let count = api.device_count()?;
    let visible: Vec<u32> = match cuda_visible_devices.map(str::trim) {
        None => (0..count).collect(),
        Some(list) => {
            let uuids: Vec<String> = (0..count)
                .map(|i| api.uuid(i).unwrap_or_default())
                .collect();
            let mut v = Vec::new();
            for entry in list.split(',').map(str::trim) {
                let idx = if let Ok(n) = entry.parse::<u32>() {
                    (n < count).then_some(n)
                } else if entry.starts_with("GPU-") {
                    let m: Vec<u32> = (0..count)
                        .filter(|&i| uuids[i as usize].starts_with(entry))
                        .collect();
                    (m.len() == 1).then(|| m[0])
                } else if entry.starts_with("MIG-") {
                    return Err(format!(
                        "CUDA_VISIBLE_DEVICES names a MIG instance ({entry}): NVML energy is per physical GPU, so joulebench cannot attribute it; measure on a whole GPU"
                    ));
                } else {
                    None
                };
                match idx {
                    Some(i) if !v.contains(&i) => v.push(i),
                    _ => break,
                }
            }
            v
        }
    };
    ordinals
        .iter()
        .map(|&o| {
            visible.get(o).copied().ok_or_else(|| {
                format!(
                    "cuda:{o} does not exist: {} GPU(s) visible{}",
                    visible.len(),
                    cuda_visible_devices
                        .map(|s| format!(" (CUDA_VISIBLE_DEVICES={s})"))
                        .unwrap_or_default()
                )
            })
        })
        .collect()
}

/// The NVML indices a selection measures, each with the domain it reports
/// (`gpu:N`: N is the CUDA ordinal for the run's GPUs, the NVML index otherwise).
pub fn resolve_selection(
    api: &dyn GpuApi,
    selection: &GpuSelection,
    cuda_visible_devices: Option<&str>,
    run_ordinals: &[usize],
) -> Result<Vec<(u32, String)>, String> {
    match selection {
        GpuSelection::Run => {
            if run_ordinals.is_empty() {
                return Err("the run uses no GPU (--device cpu); measure the node's GPUs with --gpus all or [meter] gpus = \"all\"".into());
            }
            let idx = select_gpus(api, cuda_visible_devices, run_ordinals)?;
            Ok(idx
                .into_iter()
                .zip(run_ordinals)
                .map(|(i, o)| (i, format!("gpu:{o}")))
                .collect())
        }
        GpuSelection::All => {
            let n = api.device_count()?;
            if n == 0 {
                return Err("NVML reports no GPU on this node".into());
            }
            Ok((0..n).map(|i| (i, format!("gpu:{i}"))).collect())
        }
        GpuSelection::Indices(v) => {
            let n = api.device_count()?;
            if let Some(bad) = v.iter().find(|&&i| i >= n) {
                return Err(format!(
                    "--gpus names GPU {bad}, but NVML sees {n} GPU(s) (indices 0..{n})"
                ));
            }
            Ok(v.iter().map(|&i| (i, format!("gpu:{i}"))).collect())
        }
    }
}
