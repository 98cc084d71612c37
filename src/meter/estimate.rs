//! The labelled estimate meter: process CPU time × rated watts per core.
//!
//! Used where no hardware counter is readable (VMs, containers, CI). Every
//! figure it produces has provenance `estimated`. The model: a core that this
//! process keeps fully busy for one second draws `watts_per_core` joules more
//! than when idle. It ignores uncore, DRAM and other processes, so it is a
//! rough, attributable *dynamic* figure, not wall-plug energy.
//!
//! Default constant (`DEFAULT_WATTS_PER_CORE` = 10 W): rated TDP divided by
//! core count for common CPUs lies between ~4 and ~12 W (e.g. AMD EPYC 7763:
//! 280 W / 64 cores = 4.4 W; Intel Xeon Platinum 8380: 270 W / 40 = 6.8 W;
//! Intel Core i7-12700: 125 W / 12 = 10.4 W; AMD Ryzen 7 5800X: 105 W / 8 =
//! 13.1 W, vendors' data sheets). We take 10 W, towards the upper end, so the
//! estimate is unlikely to under-count a busy desktop core. Override with
//! `[meter] cpu_watts_per_core` or `--cpu-watts-per-core`.
//!
//! DRAM (`dram-process`): the process's resident memory × 0.375 W per GB,
//! integrated over time — CodeCarbon's constant (3 W per 8 GB of DDR4,
//! after Micron's power guides). Also a model, also labelled `estimated`.
//!
//! Idle baseline: a sleeping process uses no CPU time, so the CPU estimate's
//! idle power is ~0 and its net equals its gross; the DRAM estimate's idle
//! power is the resident set's, so its net is ~0. Both are honest about what
//! the model can say: it attributes only this process's own activity.

use super::{DomainInfo, EnergyMeter, MeterError, MeterInfo, Provenance, Snapshot};
use crate::util::units::{Joules, Seconds, Watts};
use std::time::Instant;

pub const DEFAULT_WATTS_PER_CORE: Watts = Watts(10.0);
pub const DEFAULT_DRAM_WATTS_PER_GB: f64 = 0.375;

/// Resident memory of this process in bytes (`/proc/self/statm`), if known.
pub fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

/// CPU time consumed by this process (all threads), from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`.
pub fn process_cpu_time() -> Result<Seconds, std::io::Error> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes to it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Seconds(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9))
}

pub struct EstimateMeter {
    watts_per_core: Watts,
    dram_watts_per_gb: f64,
    cpu: bool,
    dram: bool,
    /// (time, resident GB) at the last snapshot, and DRAM joules so far.
    dram_state: Option<(Instant, f64)>,
    dram_joules: f64,
}

impl EstimateMeter {
    /// CPU only.
    pub fn new(watts_per_core: Watts) -> Self {
        Self::with_domains(watts_per_core, DEFAULT_DRAM_WATTS_PER_GB, true, false)
    }

    /// Chooses the domains (the `auto` meter estimates only what no counter covers).
    pub fn with_domains(
        watts_per_core: Watts,
        dram_watts_per_gb: f64,
        cpu: bool,
        dram: bool,
    ) -> Self {
        Self {
            watts_per_core,
            dram_watts_per_gb,
            cpu,
            dram,
            dram_state: None,
            dram_joules: 0.0,
        }
    }
}

impl EnergyMeter for EstimateMeter {
    fn info(&self) -> MeterInfo {
        let mut domains = Vec::new();
        if self.cpu {
            domains.push(DomainInfo {
                domain: "cpu-process".into(),
                meter: "estimate".into(),
                provenance: Provenance::Estimated,
                method: format!(
                    "process CPU time x {} W per busy core (rated-power model, not a measurement)",
                    self.watts_per_core.0
                ),
            });
        }
        if self.dram {
            domains.push(DomainInfo {
                domain: "dram-process".into(),
                meter: "estimate".into(),
                provenance: Provenance::Estimated,
                method: format!(
                    "process resident memory x {} W/GB (model, not a measurement)",
                    self.dram_watts_per_gb
                ),
            });
        }
        MeterInfo {
            name: "estimate".into(),
            domains,
            // clock_gettime resolution is far finer than any window we take.
            update_period: None,
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot, MeterError> {
        let at = Instant::now();
        let mut energy = Vec::new();
        if self.cpu {
            let cpu = process_cpu_time().map_err(|e| MeterError::Read {
                meter: "estimate".into(),
                message: format!("clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed: {e}"),
            })?;
            energy.push(Joules(cpu.0 * self.watts_per_core.0));
        }
        if self.dram {
            let gb = resident_bytes().unwrap_or(0) as f64 / 1e9;
            if let Some((t0, gb0)) = self.dram_state {
                let dt = at.saturating_duration_since(t0).as_secs_f64();
                self.dram_joules += dt * (gb0 + gb) / 2.0 * self.dram_watts_per_gb;
            }
            self.dram_state = Some((at, gb));
            energy.push(Joules(self.dram_joules));
        }
        let power = vec![None; energy.len()];
        Ok(Snapshot { at, energy, power })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_costs_cpu_time_times_rated_watts() {
        let mut m = EstimateMeter::new(Watts(20.0));
        // Bracket the meter's snapshots with the process clock; spin until this
        // process has used 0.1 s of CPU (wall time varies on a loaded machine).
        let c0 = process_cpu_time().unwrap();
        let a = m.snapshot().unwrap();
        let mut x = 0u64;
        while process_cpu_time().unwrap().0 - c0.0 < 0.1 {
            x = x.wrapping_add(std::hint::black_box(x) ^ 0x9e37);
        }
        std::hint::black_box(x);
        let b = m.snapshot().unwrap();
        let c1 = process_cpu_time().unwrap();
        let j = (b.energy[0] - a.energy[0]).0;
        assert!(j >= 20.0 * 0.099, "{j}");
        assert!(j <= 20.0 * (c1.0 - c0.0) + 1e-6, "{j}");
        assert_eq!(m.info().domains[0].provenance, Provenance::Estimated);
    }
}
