//! What the stand-in plays: GPUs, how their power moves, and which of
//! NVML's behaviours they show (a JSON file; every field has a default).

use serde::Deserialize;
use std::path::PathBuf;

/// How a GPU's power moves over time.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Power {
    /// A fixed draw.
    Constant { watts: f64 },
    /// (seconds since nvmlInit, watts) points, linear between them, the last
    /// value held after the end.
    Trace { points: Vec<(f64, f64)> },
    /// `idle_w` plus (`busy_w` − `idle_w`) × the calling process's CPU
    /// utilisation of all CPUs (smoothed over `smooth_s`), so energy follows
    /// the work a CPU-only run does.
    LoadFollowing {
        idle_w: f64,
        busy_w: f64,
        #[serde(default = "smooth")]
        smooth_s: f64,
    },
}

fn smooth() -> f64 {
    0.05
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gpu {
    pub name: String,
    pub uuid: String,
    pub power: Power,
    /// The total-energy counter exists (Volta and newer); false: NOT_SUPPORTED.
    pub energy_counter: bool,
    /// The counter reports energy as of its last update, every this many ms
    /// (0: continuous, exact at every read).
    pub counter_update_ms: f64,
    /// The counter's energy is this × the true energy (a miscalibrated
    /// counter, for the self-check); instant power stays true.
    pub counter_scale: f64,
    /// `NVML_FI_DEV_POWER_INSTANT` answers; false: the field is NOT_SUPPORTED.
    pub instant_field: bool,
    /// `nvmlDeviceGetPowerUsage` averages over this many seconds (1 on Ampere and newer; 0: instant).
    pub power_usage_average_s: f64,
    /// Gaussian-ish noise (W, 1 sd) added to instant power readings.
    pub noise_w: f64,
    /// After this many seconds every call for this GPU returns GPU_IS_LOST.
    pub lost_after_s: Option<f64>,
    pub mig: bool,
    pub power_limit_w: f64,
    pub power_limit_min_w: f64,
    pub power_limit_max_w: f64,
    pub temperature_c: u32,
    pub sm_clock_mhz: u32,
    /// The SM clock range `nvmlDeviceSetGpuLockedClocks` accepts.
    pub sm_clock_min_mhz: u32,
    pub sm_clock_max_mhz: u32,
    /// Other processes with a compute context on this GPU, and when.
    pub processes: Vec<Scripted<u32>>,
    /// The calling process has a compute context here too (listed by its PID).
    pub caller_listed: bool,
    /// Clocks event (throttle) reasons in force, by joulebench's names
    /// (`sw-thermal-slowdown`, `hw-slowdown`, ...), and when. `sw-power-cap`
    /// is also reported on its own whenever the power limit caps the draw.
    pub throttle: Vec<Scripted<Vec<String>>>,
}

/// A value in force from `from_s` until `until_s` (seconds since nvmlInit;
/// no end: for good).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scripted<T> {
    pub value: T,
    #[serde(default)]
    pub from_s: f64,
    #[serde(default)]
    pub until_s: Option<f64>,
}

impl<T> Scripted<T> {
    pub fn active(&self, t: f64) -> bool {
        t >= self.from_s && self.until_s.is_none_or(|u| t < u)
    }
}

impl Default for Gpu {
    fn default() -> Self {
        Gpu {
            name: "NVIDIA H200 (joulebench NVML stand-in)".into(),
            uuid: String::new(),
            power: Power::LoadFollowing {
                idle_w: 84.0,
                busy_w: 684.0,
                smooth_s: smooth(),
            },
            energy_counter: true,
            counter_update_ms: 100.0,
            counter_scale: 1.0,
            instant_field: true,
            power_usage_average_s: 1.0,
            noise_w: 0.0,
            lost_after_s: None,
            mig: false,
            power_limit_w: 700.0,
            power_limit_min_w: 200.0,
            power_limit_max_w: 700.0,
            temperature_c: 35,
            sm_clock_mhz: 1980,
            sm_clock_min_mhz: 210,
            sm_clock_max_mhz: 1980,
            processes: Vec::new(),
            caller_listed: false,
            throttle: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub driver_version: String,
    /// Every total-energy read is appended here as a JSON line:
    /// {"gpu", "t", "reported_mj", "true_mj"}.
    pub ledger: Option<PathBuf>,
    /// Seed of the noise.
    pub seed: u64,
    /// Where the "driver" keeps settings made through NVML (power limits,
    /// locked clocks), so they outlive the process that made them, as on a
    /// real GPU; None: they last as long as the process.
    pub state_file: Option<PathBuf>,
    /// Whether the caller may change settings; false answers
    /// NVML_ERROR_NO_PERMISSION, as for a user without root or CAP_SYS_ADMIN.
    pub settings_permission: bool,
    pub gpus: Vec<Gpu>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            driver_version: "580.65.06".into(),
            ledger: None,
            seed: 1,
            state_file: None,
            settings_permission: true,
            gpus: vec![Gpu::default()],
        }
    }
}

impl Scenario {
    /// The scenario in force: `standin.json` beside the library, else the
    /// file `JOULEBENCH_NVML_SCENARIO` names, else the default (one
    /// load-following H200). A file that cannot be read or parsed is an
    /// error (the stand-in then fails `nvmlInit`, saying why on stderr).
    pub fn load(beside: Option<PathBuf>) -> Result<Scenario, String> {
        let path = beside
            .filter(|p| p.is_file())
            .or_else(|| std::env::var_os("JOULEBENCH_NVML_SCENARIO").map(PathBuf::from));
        let mut s = match path {
            None => Scenario::default(),
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("cannot read the scenario {}: {e}", p.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("scenario {}: {e}", p.display()))?
            }
        };
        for (i, g) in s.gpus.iter_mut().enumerate() {
            if g.uuid.is_empty() {
                g.uuid = format!("GPU-57a4d1e0-0000-4000-8000-{i:012}");
            }
        }
        Ok(s)
    }
}
