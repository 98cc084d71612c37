//! Several meters read as one (e.g. NVML for the GPU + RAPL for the CPU +
//! the estimate for DRAM); each domain keeps its own meter and provenance.

use super::{EnergyMeter, MeterError, MeterInfo, PowerSample, Snapshot};
use crate::gpu::api::GpuState;
use std::time::Instant;

pub struct CompositeMeter {
    parts: Vec<Box<dyn EnergyMeter>>,
}

impl CompositeMeter {
    pub fn new(parts: Vec<Box<dyn EnergyMeter>>) -> Self {
        Self { parts }
    }
}

impl EnergyMeter for CompositeMeter {
    fn info(&self) -> MeterInfo {
        let infos: Vec<MeterInfo> = self.parts.iter().map(|p| p.info()).collect();
        MeterInfo {
            name: infos
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            domains: infos.iter().flat_map(|i| i.domains.clone()).collect(),
            // The slowest source sets the shortest trustworthy window.
            update_period: infos
                .iter()
                .filter_map(|i| i.update_period)
                .max_by(|a, b| a.0.total_cmp(&b.0)),
            cpu: infos.iter().find_map(|i| i.cpu.clone()),
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot, MeterError> {
        let mut energy = Vec::new();
        let mut power = Vec::new();
        let mut band = Vec::new();
        let mut check = Vec::new();
        let mut charged = Vec::new();
        let mut at = None;
        for p in &mut self.parts {
            let s = p.snapshot()?;
            at.get_or_insert(s.at);
            let n = s.energy.len();
            energy.extend(s.energy);
            power.extend(s.power);
            // Keep the band aligned with the domains: parts without one add `None`s.
            band.extend(s.band.into_iter().chain(std::iter::repeat(None)).take(n));
            check.extend(
                s.cross_check
                    .into_iter()
                    .chain(std::iter::repeat(None))
                    .take(n),
            );
            charged.extend(s.charged.into_iter().chain(std::iter::repeat(None)).take(n));
        }
        Ok(
            Snapshot::new(at.unwrap_or_else(Instant::now), energy, power)
                .with_band(band)
                .with_cross_check(check)
                .with_charged(charged),
        )
    }

    fn timeline(&self, from: Instant, to: Instant) -> Vec<PowerSample> {
        self.parts
            .iter()
            .flat_map(|p| p.timeline(from, to))
            .collect()
    }

    fn gpu_states(&self) -> Vec<GpuState> {
        self.parts.iter().flat_map(|p| p.gpu_states()).collect()
    }

    fn gpu_states_during(&self, from: Instant, to: Instant) -> Vec<GpuState> {
        self.parts
            .iter()
            .flat_map(|p| p.gpu_states_during(from, to))
            .collect()
    }

    fn driver_version(&self) -> Option<String> {
        self.parts.iter().find_map(|p| p.driver_version())
    }
}
