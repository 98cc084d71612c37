//! Meters for tests and demos. Every figure is labelled `fake`.

use super::{DomainInfo, EnergyMeter, MeterError, MeterInfo, Provenance, Snapshot};
use crate::util::units::{Joules, Seconds, Watts};
use std::collections::VecDeque;
use std::time::Instant;

/// Constant power per domain × wall time: deterministic in the ratio of joules
/// to seconds, which CLI tests check. Hidden from the user-facing meter list.
pub struct ConstantPowerMeter {
    domains: Vec<(String, Watts)>,
    start: Instant,
}

impl ConstantPowerMeter {
    pub fn new(domains: Vec<(String, Watts)>) -> Self {
        Self {
            domains,
            start: Instant::now(),
        }
    }
}

impl EnergyMeter for ConstantPowerMeter {
    fn info(&self) -> MeterInfo {
        MeterInfo {
            name: "fake".into(),
            domains: self
                .domains
                .iter()
                .map(|(d, w)| DomainInfo {
                    domain: d.clone(),
                    meter: "fake".into(),
                    provenance: Provenance::Fake,
                    method: format!("constant {} W x wall time (test meter)", w.0),
                    caveat: None,
                })
                .collect(),
            update_period: None,
            cpu: None,
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot, MeterError> {
        let now = Instant::now();
        let t = Seconds::from_duration(now - self.start);
        Ok(Snapshot::new(
            now,
            self.domains.iter().map(|(_, w)| *w * t).collect(),
            self.domains.iter().map(|(_, w)| Some(*w)).collect(),
        ))
    }
}

/// Replays a script of snapshots: (seconds since the first, cumulative
/// joules per domain, instant watts per domain). Running off the end of the
/// script is an error, as a dead counter would be.
/// GPU states, if given, are what the meter reports for every window.
pub struct ScriptedMeter {
    info: MeterInfo,
    origin: Instant,
    script: VecDeque<(f64, Vec<Joules>, Vec<Option<Watts>>)>,
    states: Vec<crate::gpu::api::GpuState>,
}

impl ScriptedMeter {
    pub fn new(info: MeterInfo, script: Vec<(f64, Vec<Joules>, Vec<Option<Watts>>)>) -> Self {
        Self {
            info,
            origin: Instant::now(),
            script: script.into(),
            states: Vec::new(),
        }
    }

    /// The meter reporting these GPU states (power limits, processes,
    /// throttle reasons) for every window.
    pub fn with_gpu_states(mut self, states: Vec<crate::gpu::api::GpuState>) -> Self {
        self.states = states;
        self
    }
}

impl EnergyMeter for ScriptedMeter {
    fn info(&self) -> MeterInfo {
        self.info.clone()
    }

    fn snapshot(&mut self) -> Result<Snapshot, MeterError> {
        let (t, energy, power) = self.script.pop_front().ok_or_else(|| MeterError::Read {
            meter: self.info.name.clone(),
            message: "script exhausted".into(),
        })?;
        Ok(Snapshot::new(
            self.origin + std::time::Duration::from_secs_f64(t),
            energy,
            power,
        ))
    }

    fn gpu_states(&self) -> Vec<crate::gpu::api::GpuState> {
        self.states.clone()
    }
}

/// A GPU API stand-in that answers every call at once: one GPU drawing a
/// constant 100 W, with no energy counter (so the NVML meter polls power),
/// this process alone on it and its clocks unthrottled.
/// Used to measure the poller's own overhead on a machine without a GPU.
pub struct InstantGpu;

impl crate::gpu::api::GpuApi for InstantGpu {
    fn device_count(&self) -> Result<u32, String> {
        Ok(1)
    }
    fn uuid(&self, _: u32) -> Result<String, String> {
        Ok("GPU-instant-stand-in".into())
    }
    fn name(&self, _: u32) -> Result<String, String> {
        Ok("instant stand-in".into())
    }
    fn driver_version(&self) -> Option<String> {
        None
    }
    fn total_energy_mj(&self, _: u32) -> Result<u64, String> {
        Err("not supported".into())
    }
    fn power_instant_mw(&self, _: u32) -> Result<u32, String> {
        Ok(100_000)
    }
    fn power_usage_mw(&self, _: u32) -> Result<u32, String> {
        Ok(100_000)
    }
    fn state(&self, _: u32) -> crate::gpu::api::GpuState {
        crate::gpu::api::GpuState::default()
    }
    fn compute_processes(&self, _: u32) -> Result<Vec<u32>, String> {
        Ok(vec![std::process::id()])
    }
    fn throttle_reasons(&self, _: u32) -> Result<u64, String> {
        Ok(0)
    }
}
