//! GPU power limit and locked clocks as techniques (`gpu_power_limit_w`,
//! `gpu_sm_clock_mhz`): set through NVML right before a trial's idle window,
//! read back into its record, and restored right after it.
//!
//! Safety rules:
//! - nothing changes without `--allow-gpu-settings`;
//! - before the first change the GPUs' original limits are saved in
//!   `<run>/gpu-settings-original.json` (state `changed`), and every restore
//!   marks it `restored`;
//! - restores happen after every trial (completed, failed or panicked), when
//!   a signal stops the run, when the run returns an error (the controller's
//!   `Drop`), and, after a `kill -9`, first thing on `--resume` (the file
//!   still says `changed`);
//! - requests outside NVML's constraints are refused before anything runs,
//!   with the allowed range; a missing permission is found by writing the
//!   current limit back once, before the run starts.
//!
//! Clocks are released with `nvmlDeviceResetGpuLockedClocks` (the driver's
//! default); a clock lock someone set before joulebench started is not
//! re-applied.

use crate::config::plan::TrialSpec;
use crate::gpu::api::GpuApi;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const ORIGINALS_FILE: &str = "gpu-settings-original.json";

#[derive(Debug, thiserror::Error)]
pub enum GpuSettingsError {
    #[error(
        "trial {trial} sets {what}, which changes the GPU's settings: pass --allow-gpu-settings to let joulebench change them (they are restored after each trial), or remove the setting"
    )]
    NotAllowed { trial: String, what: &'static str },
    #[error("{what} needs NVML: {reason}")]
    NoNvml { what: &'static str, reason: String },
    #[error(
        "trial {trial}: gpu_power_limit_w = {watts} is outside what GPU {gpu} accepts: {min:.0}..={max:.0} W (NVML power management limit constraints)"
    )]
    OutOfRange {
        trial: String,
        watts: u32,
        gpu: String,
        min: f64,
        max: f64,
    },
    #[error("GPU {gpu}: {action}: {reason}")]
    Nvml {
        gpu: String,
        action: String,
        reason: String,
    },
    #[error("cannot {action} {}: {message}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        message: String,
    },
}

/// A GPU's settings before joulebench changed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Original {
    pub index: u32,
    pub uuid: String,
    pub power_limit_mw: u32,
}

/// `<run>/gpu-settings-original.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Originals {
    /// `changed` (settings differ from these now) or `restored`.
    pub state: String,
    pub gpus: Vec<Original>,
    /// Whether clocks were locked (released by a reset on restore).
    pub clocks_locked: bool,
}

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

/// Changes and restores the settings of the run's GPUs.
pub struct GpuControl {
    api: Box<dyn GpuApi>,
    /// NVML index and UUID of each GPU.
    gpus: Vec<(u32, String)>,
    file: Option<PathBuf>,
    originals: Vec<Original>,
    constraints: Vec<(u32, u32)>,
    /// Settings differ from the originals now.
    dirty: bool,
    clocks_locked: bool,
}

fn nvml_err(gpu: &str, action: impl Into<String>) -> impl FnOnce(String) -> GpuSettingsError {
    let gpu = gpu.to_string();
    let action = action.into();
    move |reason| GpuSettingsError::Nvml {
        gpu,
        action,
        reason,
    }
}

/// Refuses a plan that changes GPU settings without the flag.
pub fn check_allowed<'a>(
    trials: impl IntoIterator<Item = &'a TrialSpec>,
    allowed: bool,
) -> Result<bool, GpuSettingsError> {
    let mut any = false;
    for t in trials {
        if !t.config.changes_gpu_settings() {
            continue;
        }
        any = true;
        if !allowed {
            return Err(GpuSettingsError::NotAllowed {
                trial: t.key.to_string(),
                what: if t.config.gpu_power_limit_w.is_some() {
                    "gpu_power_limit_w"
                } else {
                    "gpu_sm_clock_mhz"
                },
            });
        }
    }
    Ok(any)
}

impl GpuControl {
    /// Takes the GPUs (NVML index, UUID) of `api`, reads their limits and
    /// constraints, and checks that settings may be written (by writing the
    /// current limit back).
    pub fn new(
        api: Box<dyn GpuApi>,
        gpus: Vec<(u32, String)>,
    ) -> Result<GpuControl, GpuSettingsError> {
        let mut originals = Vec::new();
        let mut constraints = Vec::new();
        for (i, uuid) in &gpus {
            let mw = api
                .power_limit_mw(*i)
                .map_err(nvml_err(uuid, "read the power limit"))?;
            constraints.push(
                api.power_limit_constraints_mw(*i)
                    .map_err(nvml_err(uuid, "read the power limit constraints"))?,
            );
            api.set_power_limit_mw(*i, mw).map_err(nvml_err(
                uuid,
                "write the power limit (unchanged, as a permission check)",
            ))?;
            originals.push(Original {
                index: *i,
                uuid: uuid.clone(),
                power_limit_mw: mw,
            });
        }
        Ok(GpuControl {
            api,
            gpus,
            file: None,
            originals,
            constraints,
            dirty: false,
            clocks_locked: false,
        })
    }

    /// Refuses power limits outside any GPU's constraints.
    pub fn check<'a>(
        &self,
        trials: impl IntoIterator<Item = &'a TrialSpec>,
    ) -> Result<(), GpuSettingsError> {
        for t in trials {
            let Some(w) = t.config.gpu_power_limit_w else {
                continue;
            };
            for ((_, uuid), (lo, hi)) in self.gpus.iter().zip(&self.constraints) {
                if w * 1000 < *lo || w * 1000 > *hi {
                    return Err(GpuSettingsError::OutOfRange {
                        trial: t.key.to_string(),
                        watts: w,
                        gpu: uuid.clone(),
                        min: *lo as f64 / 1000.0,
                        max: *hi as f64 / 1000.0,
                    });
                }
            }
        }
        Ok(())
    }

    /// Where the originals are saved (the run folder), restoring first any
    /// that a killed run left changed.
    pub fn attach(&mut self, run_dir: &Path) -> Result<Option<String>, GpuSettingsError> {
        let file = run_dir.join(ORIGINALS_FILE);
        let mut note = None;
        if let Ok(bytes) = std::fs::read(&file) {
            let saved: Originals =
                serde_json::from_slice(&bytes).map_err(|e| GpuSettingsError::File {
                    action: "read",
                    path: file.clone(),
                    message: e.to_string(),
                })?;
            if saved.state == "changed" {
                // A run killed mid-trial left these: they are the true originals.
                self.originals = saved.gpus;
                self.clocks_locked = saved.clocks_locked;
                self.dirty = true;
                self.file = Some(file.clone());
                self.restore()?;
                note = Some(format!(
                    "restored the GPU settings a killed run left changed ({})",
                    file.display()
                ));
            }
        }
        self.file = Some(file);
        Ok(note)
    }

    fn save(&self, state: &str) -> Result<(), GpuSettingsError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let o = Originals {
            state: state.into(),
            gpus: self.originals.clone(),
            clocks_locked: self.clocks_locked,
        };
        serde_json::to_vec_pretty(&o)
            .map_err(std::io::Error::from)
            .and_then(|b| crate::util::fsio::replace_file(file, &b))
            .map_err(|e| GpuSettingsError::File {
                action: "write",
                path: file.clone(),
                message: e.to_string(),
            })
    }

    /// Sets the trial's power limit and clocks (the originals saved first)
    /// and reads them back. None when the trial changes nothing.
    pub fn apply(
        &mut self,
        spec: &TrialSpec,
    ) -> Result<Option<GpuSettingsRecord>, GpuSettingsError> {
        let (limit, clock) = (spec.config.gpu_power_limit_w, spec.config.gpu_sm_clock_mhz);
        if limit.is_none() && clock.is_none() {
            return Ok(None);
        }
        self.clocks_locked |= clock.is_some();
        // Saved before the first change, so a kill at any later point finds them.
        self.save("changed")?;
        self.dirty = true;
        let mut rec = GpuSettingsRecord {
            requested_power_limit_w: limit,
            enforced_power_limit_w: Vec::new(),
            requested_sm_clock_mhz: clock,
            sm_clock_mhz: Vec::new(),
            original_power_limit_w: self
                .originals
                .iter()
                .map(|o| o.power_limit_mw as f64 / 1000.0)
                .collect(),
        };
        for (i, uuid) in &self.gpus {
            if let Some(w) = limit {
                self.api
                    .set_power_limit_mw(*i, w * 1000)
                    .map_err(nvml_err(uuid, format!("set the power limit to {w} W")))?;
            }
            if let Some(m) = clock {
                self.api
                    .set_locked_clocks_mhz(*i, m, m)
                    .map_err(nvml_err(uuid, format!("lock the SM clock at {m} MHz")))?;
            }
            rec.enforced_power_limit_w.push(
                self.api
                    .power_limit_mw(*i)
                    .map_err(nvml_err(uuid, "read the power limit back"))? as f64
                    / 1000.0,
            );
            rec.sm_clock_mhz.push(self.api.state(*i).sm_clock_mhz);
        }
        Ok(Some(rec))
    }

    /// Puts the original settings back (if anything changed) and marks the
    /// saved originals `restored`.
    pub fn restore(&mut self) -> Result<(), GpuSettingsError> {
        if !self.dirty {
            return Ok(());
        }
        let mut first_err = None;
        for o in &self.originals {
            if let Err(e) = self.api.set_power_limit_mw(o.index, o.power_limit_mw) {
                first_err.get_or_insert(nvml_err(&o.uuid, "restore the power limit")(e));
            }
            if self.clocks_locked
                && let Err(e) = self.api.reset_locked_clocks(o.index)
            {
                first_err.get_or_insert(nvml_err(&o.uuid, "reset the locked clocks")(e));
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        self.dirty = false;
        self.clocks_locked = false;
        self.save("restored")
    }
}

impl Drop for GpuControl {
    /// The last resort: an error return or an unwinding panic out of the run.
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            tracing::error!("could not restore the GPU settings: {e}");
        }
    }
}

/// Opens NVML for the run's measured GPUs.
pub fn open(
    nvml_lib: Option<&Path>,
    selection: &crate::config::GpuSelection,
    device: crate::util::device::DeviceSpec,
) -> Result<GpuControl, GpuSettingsError> {
    let what = "gpu_power_limit_w / gpu_sm_clock_mhz";
    let api = crate::gpu::api::Nvml::load(nvml_lib)
        .map_err(|reason| GpuSettingsError::NoNvml { what, reason })?;
    let ordinals: Vec<usize> = match device {
        crate::util::device::DeviceSpec::Cuda(i) => vec![i],
        _ => Vec::new(),
    };
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let gpus = crate::gpu::api::resolve_selection(&api, selection, visible.as_deref(), &ordinals)
        .map_err(|reason| GpuSettingsError::NoNvml { what, reason })?;
    let gpus = gpus
        .into_iter()
        .map(|(i, _)| (i, api.uuid(i).unwrap_or_else(|_| format!("index {i}"))))
        .collect();
    GpuControl::new(Box::new(api), gpus)
}
