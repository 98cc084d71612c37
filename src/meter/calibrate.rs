//! Calibration of the CPU estimate against RAPL, where RAPL exists: a short
//! load ladder (idle, one busy thread, every usable thread busy), each step
//! measured by the RAPL counters and estimated by the CPU power model at the
//! same utilisation, so a user sees how far the estimate is from their
//! hardware. (`joulebench meters --calibrate`.)

use super::cpu_power::{Band3, CpuModel};
use super::{EnergyMeter, MeterError};
use std::time::{Duration, Instant};

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Threads kept busy (0 = idle).
    pub busy: usize,
    pub seconds: f64,
    /// Measured watts of the CPU package domains (RAPL `cpu-package:*`, or
    /// `psys` where no package zone exists), summed.
    pub measured_cpu_w: f64,
    /// Measured watts of the DRAM domains, summed (0 without any).
    pub measured_dram_w: f64,
    /// The model's watts for the usable threads at this step's utilisation.
    pub estimated_w: Band3,
}

impl Step {
    /// Estimated central / measured package watts.
    pub fn ratio(&self) -> f64 {
        self.estimated_w.central / self.measured_cpu_w
    }
}

/// Keeps `threads` threads spinning for `d` (0 threads: sleeps).
pub fn spin(threads: usize, d: Duration) {
    if threads == 0 {
        std::thread::sleep(d);
        return;
    }
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let end = Instant::now() + d;
                let mut x = 0u64;
                while Instant::now() < end {
                    for _ in 0..10_000 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    std::hint::black_box(x);
                }
            });
        }
    });
}

/// Runs the ladder: for each step, `load(busy, duration)` and the RAPL
/// energy over it. `vcpus` is the number of threads the model attributes.
pub fn ladder(
    rapl: &mut dyn EnergyMeter,
    model: &CpuModel,
    vcpus: usize,
    seconds: f64,
    load: &dyn Fn(usize, Duration),
) -> Result<Vec<Step>, MeterError> {
    let info = rapl.info();
    let is_dram: Vec<bool> = info
        .domains
        .iter()
        .map(|d| d.domain.starts_with("dram"))
        .collect();
    let vcpus = vcpus.max(1);
    let mut rungs = vec![0, 1, vcpus];
    rungs.dedup();
    let mut out = Vec::new();
    for busy in rungs {
        let a = rapl.snapshot()?;
        load(busy, Duration::from_secs_f64(seconds));
        let b = rapl.snapshot()?;
        let dt = b.at.saturating_duration_since(a.at).as_secs_f64().max(1e-9);
        let (mut cpu, mut dram) = (0.0, 0.0);
        for (k, dram_domain) in is_dram.iter().enumerate() {
            let w = (b.energy[k] - a.energy[k]).0 / dt;
            if *dram_domain {
                dram += w;
            } else {
                cpu += w;
            }
        }
        let u = busy as f64 / vcpus as f64;
        out.push(Step {
            busy,
            seconds: dt,
            measured_cpu_w: cpu,
            measured_dram_w: dram,
            estimated_w: model.per_vcpu(u).scale(vcpus as f64),
        });
    }
    Ok(out)
}
