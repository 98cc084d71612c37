//! A meter bound to the device it measures: named windows with the device
//! synchronised at each edge, each judged when it closes (`validity.rs`).

use super::interference::CpuClock;
use super::judge::{self, Evidence};
use super::validity::Rules;
use super::window::{EnergyReading, IdleBaseline, WindowStart, apply_idle, reading};
use super::{EnergyMeter, MeterError, MeterInfo, PowerSample};
use crate::gpu::api::GpuState;
use crate::util::units::Watts;
use candle_core::Device;

/// A meter bound to the device it measures: every window edge first waits
/// for the device's queued work, so asynchronous GPU work is charged to the
/// window that launched it.
///
/// Every window is judged when it closes (`validity.rs`), under the
/// measurer's [`Rules`].
pub struct Measurer {
    meter: Box<dyn EnergyMeter>,
    info: MeterInfo,
    device: Device,
    idle: Option<IdleBaseline>,
    rules: Rules,
}

/// Most timeline samples kept per domain and window.
const TIMELINE_POINTS: usize = 256;

impl Measurer {
    pub fn new(meter: Box<dyn EnergyMeter>, device: Device) -> Self {
        let info = meter.info();
        Self {
            meter,
            info,
            device,
            idle: None,
            rules: Rules::default(),
        }
    }

    /// The measurer with these validity rules.
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The validity rules, to change between trials (e.g. the power limit a
    /// trial sets).
    pub fn rules_mut(&mut self) -> &mut Rules {
        &mut self.rules
    }

    pub fn info(&self) -> &MeterInfo {
        &self.info
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn gpu_states(&self) -> Vec<GpuState> {
        self.meter.gpu_states()
    }

    pub fn driver_version(&self) -> Option<String> {
        self.meter.driver_version()
    }

    pub fn begin(&mut self, name: &str) -> Result<WindowStart, MeterError> {
        self.device.synchronize()?;
        let start = self.meter.snapshot()?;
        Ok(WindowStart {
            name: name.to_string(),
            start,
            cpu: CpuClock::read().ok(),
        })
    }

    pub fn end(&mut self, w: WindowStart) -> Result<EnergyReading, MeterError> {
        self.device.synchronize()?;
        let end = self.meter.snapshot()?;
        let cpu = CpuClock::read().ok();
        let mut r = reading(&self.info, &w.name, &w.start, &end);
        let timeline = self.meter.timeline(w.start.at, end.at);
        for d in &mut r.domains {
            d.peak_watts = timeline
                .iter()
                .filter(|s| s.domain == d.domain)
                .map(|s| s.watts)
                .reduce(Watts::max);
        }
        let samples = judge::sample_stats(&timeline, r.seconds.0);
        r.timeline = downsample(timeline, TIMELINE_POINTS);
        r.gpu_states = self.meter.gpu_states();
        r.interference = w.cpu.zip(cpu).and_then(|(a, b)| a.interference(&b));
        if let Some(idle) = &self.idle {
            apply_idle(&mut r, &idle.reading);
        }
        let run_gpu = match self.device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => Some(format!("gpu:{gpu_id}")),
            _ => None,
        };
        let states = self.meter.gpu_states_during(w.start.at, end.at);
        let evidence = Evidence {
            info: &self.info,
            reading: &r,
            gpu_states: &states,
            samples: &samples,
            run_gpu: run_gpu.as_deref(),
        };
        r.validity = Some(judge::judge(&self.rules, &evidence));
        Ok(r)
    }

    /// Sleeps through an idle window of `seconds` (after the device is
    /// drained) and uses its average power per domain as the baseline that
    /// later windows subtract. Returns the idle reading.
    pub fn measure_idle(&mut self, seconds: f64) -> Result<EnergyReading, MeterError> {
        self.idle = None;
        let w = self.begin("idle")?;
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds.max(0.0)));
        let r = self.end(w)?;
        self.idle = Some(IdleBaseline { reading: r.clone() });
        Ok(r)
    }

    pub fn idle(&self) -> Option<&EnergyReading> {
        self.idle.as_ref().map(|i| &i.reading)
    }
}

/// Keeps at most `n` samples per domain, evenly spaced.
fn downsample(samples: Vec<PowerSample>, n: usize) -> Vec<PowerSample> {
    let mut domains: Vec<String> = Vec::new();
    for s in &samples {
        if !domains.contains(&s.domain) {
            domains.push(s.domain.clone());
        }
    }
    let mut out = Vec::new();
    for d in domains {
        let these: Vec<&PowerSample> = samples.iter().filter(|s| s.domain == d).collect();
        let step = these.len().div_ceil(n).max(1);
        out.extend(these.into_iter().step_by(step).cloned());
    }
    out
}
