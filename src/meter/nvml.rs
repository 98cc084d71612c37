//! NVIDIA GPUs through NVML (nvml-wrapper; libnvidia-ml is loaded at run
//! time, so the binary runs where it is absent).
//!
//! Per GPU: the total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`,
//! mJ, Volta and newer) when it works, provenance `counter`; otherwise
//! instant power (field `NVML_FI_DEV_POWER_INSTANT`, else `power_usage`,
//! which is a 1-second average on Ampere and newer) polled by a background
//! thread and integrated with the trapezoid rule, provenance `integrated`.
//! The poller also keeps a power timeline (for plots and peak power) and
//! the GPU's temperature, SM clock, power limit and utilisation, its
//! compute processes and clock (throttle) reasons every 25 polls, with a
//! log of when processes or reasons changed, so a window's validity sees
//! every state in force during it.
//! Only the GPUs the run uses are measured: `CUDA_VISIBLE_DEVICES` and the
//! run's `cuda:N` ordinals are mapped to NVML indices.

use super::{DomainInfo, EnergyMeter, MeterError, MeterInfo, PowerSample, Provenance, Snapshot};
use crate::util::units::{Joules, Seconds, Watts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::GpuSelection;
use crate::gpu::api::{GpuApi, GpuState};

/// Trapezoid-rule energy of (seconds, watts) samples, in joules.
pub fn trapezoid(samples: &[(f64, f64)]) -> f64 {
    samples
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

/// Measures how often a counter changes: reads it until `changes` changes
/// were seen or `budget` seconds passed; returns the mean seconds between
/// changes. `now` and `pause` are injectable so tests can script time.
pub fn measure_update_period(
    mut read: impl FnMut() -> Result<u64, String>,
    mut now: impl FnMut() -> f64,
    mut pause: impl FnMut(),
    changes: usize,
    budget: f64,
) -> Option<f64> {
    let start = now();
    let mut last = read().ok()?;
    let mut change_times = Vec::new();
    while change_times.len() < changes + 1 && now() - start < budget {
        pause();
        let v = read().ok()?;
        if v != last {
            change_times.push(now());
            last = v;
        }
    }
    // The first change only aligns us with the counter's clock.
    (change_times.len() >= 2).then(|| {
        (change_times[change_times.len() - 1] - change_times[0]) / (change_times.len() - 1) as f64
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Counter,
    Integrated { instant_field: bool },
}

struct Gpu {
    index: u32,
    domain: String,
    name: String,
    mode: Mode,
    base_mj: u64,
    /// MIG mode is on: the reading is the whole GPU's, every instance's.
    mig: bool,
}

#[derive(Default)]
struct PollState {
    /// Integrated joules per GPU (trapezoid over the samples).
    integrated: Vec<f64>,
    last: Vec<Option<(f64, f64)>>,
    timeline: Vec<PowerSample>,
    states: Vec<GpuState>,
    /// (seconds, states) each time a GPU's processes or clock reasons
    /// changed: what a window saw is the entry in force at its start and
    /// those after it.
    changes: Vec<(f64, Vec<GpuState>)>,
}

impl PollState {
    /// Takes a new reading of every GPU's state, logging it if the
    /// processes or clock reasons of any GPU changed.
    fn set_states(&mut self, t: f64, states: Vec<GpuState>) {
        let same = |a: &[GpuState], b: &[GpuState]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    x.compute_pids == y.compute_pids && x.throttle_reasons == y.throttle_reasons
                })
        };
        if self.changes.last().is_none_or(|(_, l)| !same(l, &states)) {
            if self.changes.len() >= MAX_CHANGES {
                self.changes.drain(..MAX_CHANGES / 2);
            }
            self.changes.push((t, states.clone()));
        }
        self.states = states;
    }

    /// Every state in force between `a` and `b` (seconds since the origin).
    fn states_during(&self, a: f64, b: f64) -> Vec<GpuState> {
        let first = self.changes.iter().rposition(|(t, _)| *t <= a).unwrap_or(0);
        let mut v: Vec<GpuState> = self.changes[first.min(self.changes.len())..]
            .iter()
            .take_while(|(t, _)| *t <= b)
            .flat_map(|(_, s)| s.iter().cloned())
            .collect();
        v.extend(self.states.iter().cloned());
        v
    }
}

/// Longest log of state changes kept (older entries are dropped).
const MAX_CHANGES: usize = 10_000;

/// A GPU's state with its compute processes and clock reasons, as `domain`.
fn read_state(api: &dyn GpuApi, index: u32, domain: &str) -> GpuState {
    GpuState {
        domain: domain.to_string(),
        compute_pids: api.compute_processes(index).ok(),
        throttle_reasons: api
            .throttle_reasons(index)
            .ok()
            .map(crate::gpu::api::throttle_names),
        ..api.state(index)
    }
}

/// Longest power timeline kept in memory (older samples are dropped).
const MAX_TIMELINE: usize = 200_000;

pub struct NvmlMeter {
    api: Arc<dyn GpuApi>,
    gpus: Vec<Gpu>,
    origin: Instant,
    poll: Arc<Mutex<PollState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    update_period: Option<Seconds>,
    pub poll_interval: Duration,
}

fn power_w(api: &dyn GpuApi, index: u32, instant_field: bool) -> Option<f64> {
    let mw = if instant_field {
        api.power_instant_mw(index)
            .or_else(|_| api.power_usage_mw(index))
    } else {
        api.power_usage_mw(index)
    };
    mw.ok().map(|mw| mw as f64 / 1000.0)
}

/// The selected GPUs with their metering mode: the energy counter where it
/// exists, integrated power otherwise; a GPU with neither is an error.
fn open_gpus(api: &dyn GpuApi, targets: &[(u32, String)]) -> Result<Vec<Gpu>, String> {
    let mut gpus = Vec::new();
    for (index, domain) in targets {
        let index = *index;
        let name = api.name(index).unwrap_or_else(|_| "unknown GPU".into());
        let (mode, base_mj) = match api.total_energy_mj(index) {
            Ok(mj) => (Mode::Counter, mj),
            Err(_) => (
                Mode::Integrated {
                    instant_field: api.power_instant_mw(index).is_ok(),
                },
                0,
            ),
        };
        if let Mode::Integrated { .. } = mode
            && power_w(api, index, true).is_none()
        {
            return Err(format!(
                "GPU {index} ({name}) reports neither an energy counter nor power"
            ));
        }
        gpus.push(Gpu {
            index,
            domain: domain.clone(),
            name,
            mode,
            base_mj,
            mig: api.mig_enabled(index) == Some(true),
        });
    }
    Ok(gpus)
}

/// The background thread that polls power, integrates it per GPU and keeps
/// a bounded timeline and the latest GPU states.
struct Poller {
    api: Arc<dyn GpuApi>,
    /// (NVML index, domain, instant-power field available).
    targets: Vec<(u32, String, bool)>,
    poll: Arc<Mutex<PollState>>,
    stop: Arc<AtomicBool>,
    origin: Instant,
    interval: Duration,
}

impl Poller {
    fn run(self) {
        let mut tick = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let t = self.origin.elapsed().as_secs_f64();
            let readings: Vec<Option<f64>> = self
                .targets
                .iter()
                .map(|(i, _, inst)| power_w(self.api.as_ref(), *i, *inst))
                .collect();
            let states: Option<Vec<GpuState>> = tick.is_multiple_of(25).then(|| {
                self.targets
                    .iter()
                    .map(|(i, d, _)| read_state(self.api.as_ref(), *i, d))
                    .collect()
            });
            if let Ok(mut p) = self.poll.lock() {
                for (k, w) in readings.into_iter().enumerate() {
                    let Some(w) = w else { continue };
                    if let Some(prev) = p.last[k] {
                        p.integrated[k] += trapezoid(&[prev, (t, w)]);
                    }
                    p.last[k] = Some((t, w));
                    if p.timeline.len() >= MAX_TIMELINE {
                        p.timeline.drain(..MAX_TIMELINE / 2);
                    }
                    p.timeline.push(PowerSample {
                        t,
                        domain: self.targets[k].1.clone(),
                        watts: Watts(w),
                    });
                }
                if let Some(s) = states {
                    p.set_states(t, s);
                }
            }
            tick += 1;
            std::thread::sleep(self.interval);
        }
    }
}

impl NvmlMeter {
    /// Opens the GPUs of the run (CUDA ordinals), measures the counter's
    /// update period and starts the poller.
    pub fn open(
        api: Arc<dyn GpuApi>,
        cuda_visible_devices: Option<&str>,
        ordinals: &[usize],
        poll_interval: Duration,
    ) -> Result<NvmlMeter, MeterError> {
        Self::open_selected(
            api,
            &GpuSelection::Run,
            cuda_visible_devices,
            ordinals,
            poll_interval,
        )
    }

    /// Opens the GPUs `selection` names (the run's `ordinals`, all, or a list).
    pub fn open_selected(
        api: Arc<dyn GpuApi>,
        selection: &GpuSelection,
        cuda_visible_devices: Option<&str>,
        ordinals: &[usize],
        poll_interval: Duration,
    ) -> Result<NvmlMeter, MeterError> {
        let unavailable = |reason: String| MeterError::Unavailable {
            meter: "nvml".into(),
            reason,
        };
        let targets = crate::gpu::api::resolve_selection(
            api.as_ref(),
            selection,
            cuda_visible_devices,
            ordinals,
        )
        .map_err(unavailable)?;
        if targets.is_empty() {
            return Err(unavailable("no GPU selected".into()));
        }
        let gpus = open_gpus(api.as_ref(), &targets).map_err(unavailable)?;
        let origin = Instant::now();
        let update_period = gpus.iter().find(|g| g.mode == Mode::Counter).and_then(|g| {
            let api = api.clone();
            let i = g.index;
            measure_update_period(
                || api.total_energy_mj(i),
                || origin.elapsed().as_secs_f64(),
                || std::thread::sleep(Duration::from_millis(1)),
                5,
                1.5,
            )
            .map(Seconds)
        });
        let n = gpus.len();
        let mut state = PollState {
            integrated: vec![0.0; n],
            last: vec![None; n],
            ..PollState::default()
        };
        // Read once now, so the manifest has every GPU's state before the poller's first pass.
        state.set_states(
            0.0,
            gpus.iter()
                .map(|g| read_state(api.as_ref(), g.index, &g.domain))
                .collect(),
        );
        let poll = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let api = api.clone();
            let poll = poll.clone();
            let stop = stop.clone();
            let targets: Vec<(u32, String, bool)> = gpus
                .iter()
                .map(|g| {
                    let instant = !matches!(
                        g.mode,
                        Mode::Integrated {
                            instant_field: false
                        }
                    );
                    (g.index, g.domain.clone(), instant)
                })
                .collect();
            let poller = Poller {
                api,
                targets,
                poll,
                stop,
                origin,
                interval: poll_interval,
            };
            std::thread::Builder::new()
                .name("nvml-poller".into())
                .spawn(move || poller.run())
                .map_err(|e| unavailable(format!("cannot start the poller thread: {e}")))?
        };
        Ok(NvmlMeter {
            api,
            gpus,
            origin,
            poll,
            stop,
            thread: Some(thread),
            update_period,
            poll_interval,
        })
    }
}

impl Drop for NvmlMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl EnergyMeter for NvmlMeter {
    fn info(&self) -> MeterInfo {
        MeterInfo {
            name: "nvml".into(),
            domains: self
                .gpus
                .iter()
                .map(|g| DomainInfo {
                    domain: g.domain.clone(),
                    meter: "nvml".into(),
                    provenance: match g.mode {
                        Mode::Counter => Provenance::Counter,
                        Mode::Integrated { .. } => Provenance::Integrated,
                    },
                    method: match g.mode {
                        Mode::Counter => format!(
                            "NVML total-energy counter of GPU {} ({})",
                            g.index, g.name
                        ),
                        Mode::Integrated { instant_field: true } => format!(
                            "NVML instant power of GPU {} ({}) polled every {} ms, trapezoid-integrated",
                            g.index,
                            g.name,
                            self.poll_interval.as_millis()
                        ),
                        Mode::Integrated { instant_field: false } => format!(
                            "NVML power usage (1-s average on Ampere+) of GPU {} ({}) polled every {} ms, trapezoid-integrated",
                            g.index,
                            g.name,
                            self.poll_interval.as_millis()
                        ),
                    } + &self.api.library().map(|l| format!("; library {l}")).unwrap_or_default(),
                    caveat: g.mig.then(|| {
                        "MIG mode is on: the reading is the whole GPU's, every MIG instance's, not one instance's".to_string()
                    }),
                })
                .collect(),
            update_period: self.update_period,
            cpu: None,
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot, MeterError> {
        let at = Instant::now();
        let p = self.poll.lock().map_err(|_| MeterError::Read {
            meter: "nvml".into(),
            message: "poller lock poisoned".into(),
        })?;
        let mut energy = Vec::new();
        let mut power = Vec::new();
        let mut check = Vec::new();
        let now = at.saturating_duration_since(self.origin).as_secs_f64();
        for (k, g) in self.gpus.iter().enumerate() {
            // The polled-power integral up to now: the last sample's power held
            // since it (without that tail, a window shorter than the polling
            // interval would read as zero). Beside a counter, its self-check.
            let tail = p.last[k].map_or(0.0, |(t, w)| w * (now - t).max(0.0));
            let integral = p.integrated[k] + tail;
            check.push((g.mode == Mode::Counter).then_some(Joules(integral)));
            let j = match g.mode {
                Mode::Counter => {
                    let mj = self
                        .api
                        .total_energy_mj(g.index)
                        .map_err(|e| MeterError::Read {
                            meter: "nvml".into(),
                            message: format!("GPU {}: total energy: {e}", g.index),
                        })?;
                    mj.saturating_sub(g.base_mj) as f64 / 1000.0
                }
                Mode::Integrated { .. } => integral,
            };
            energy.push(Joules(j));
            power.push(
                power_w(self.api.as_ref(), g.index, true)
                    .or(p.last[k].map(|(_, w)| w))
                    .map(Watts),
            );
        }
        Ok(Snapshot::new(at, energy, power).with_cross_check(check))
    }

    fn timeline(&self, from: Instant, to: Instant) -> Vec<PowerSample> {
        let a = from.saturating_duration_since(self.origin).as_secs_f64();
        let b = to.saturating_duration_since(self.origin).as_secs_f64();
        self.poll
            .lock()
            .map(|p| {
                p.timeline
                    .iter()
                    .filter(|s| s.t >= a && s.t <= b)
                    .map(|s| PowerSample {
                        t: s.t - a,
                        ..s.clone()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn gpu_states(&self) -> Vec<GpuState> {
        self.poll
            .lock()
            .map(|p| p.states.clone())
            .unwrap_or_default()
    }

    fn gpu_states_during(&self, from: Instant, to: Instant) -> Vec<GpuState> {
        let a = from.saturating_duration_since(self.origin).as_secs_f64();
        let b = to.saturating_duration_since(self.origin).as_secs_f64();
        self.poll
            .lock()
            .map(|p| p.states_during(a, b))
            .unwrap_or_default()
    }
}
