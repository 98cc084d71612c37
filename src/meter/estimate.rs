//! The labelled estimate meter: this process's CPU utilisation × a CPU power
//! model, and its resident memory × watts per GB, each with a band.
//!
//! Used where no hardware counter is readable (VMs, containers, CI). Every
//! figure it produces has provenance `estimated`, and a band (low, central,
//! high) from the spread of published models (`cpu_power` says which and why).
//!
//! The CPU figure is integrated between snapshots: over each interval the
//! process's CPU utilisation of the threads it may use, u = CPU time /
//! (wall time × threads), sets the watts per thread (`CpuModel::per_vcpu`),
//! times the threads. Windows begin and end at snapshots, so each window
//! gets its own utilisation. An idle window therefore reads the model's idle
//! power (the curve's 0.12 × TDP share, or the linear lines' minimum), and
//! net energy is what the work added over it.
//!
//! DRAM (`dram-process`): the process's resident memory × 0.375 W per GB
//! (CodeCarbon: 3 W per 8 GB of DDR4, after Micron's power guides), band
//! 0.284 (Teads/Boavizta) to 0.392 (Cloud Carbon Footprint), integrated
//! over time. Also a model, also labelled `estimated`.

use super::cpu_power::{Band3, CpuModel, CpuProfile, DRAM_WATTS_PER_GB};
use super::{DomainInfo, EnergyMeter, MeterError, MeterInfo, Provenance, Snapshot};
use crate::util::units::{Joules, Seconds, Watts};
use std::time::Instant;

/// The central DRAM constant, W per GB of resident memory.
pub const DEFAULT_DRAM_WATTS_PER_GB: f64 = DRAM_WATTS_PER_GB.1;

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

/// Cumulative joules (low, central, high).
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    low: f64,
    central: f64,
    high: f64,
}

impl Acc {
    fn add(&mut self, w: Band3, seconds: f64) {
        self.low += w.low * seconds;
        self.central += w.central * seconds;
        self.high += w.high * seconds;
    }
}

/// The process's CPU clock and resident memory at the last snapshot.
#[derive(Debug, Clone, Copy)]
struct Last {
    at: Instant,
    cpu_s: f64,
    gb: f64,
}

pub struct EstimateMeter {
    profile: CpuProfile,
    model: CpuModel,
    /// DRAM W per GB (low, central, high); a set value has no band.
    dram_watts_per_gb: Band3,
    cpu: bool,
    dram: bool,
    last: Option<Last>,
    cpu_j: Acc,
    dram_j: Acc,
}

impl EstimateMeter {
    /// CPU and/or DRAM (the `auto` meter estimates only what no counter
    /// covers). `dram_watts_per_gb`: a set constant, or the banded default.
    pub fn new(
        profile: CpuProfile,
        model: CpuModel,
        dram_watts_per_gb: Option<f64>,
        cpu: bool,
        dram: bool,
    ) -> Self {
        let (lo, c, hi) = DRAM_WATTS_PER_GB;
        Self {
            profile,
            model,
            dram_watts_per_gb: match dram_watts_per_gb {
                Some(w) => Band3 {
                    low: w,
                    central: w,
                    high: w,
                },
                None => Band3 {
                    low: lo,
                    central: c,
                    high: hi,
                },
            },
            cpu,
            dram,
            last: None,
            cpu_j: Acc::default(),
            dram_j: Acc::default(),
        }
    }

    /// A CPU-only meter with the flat busy-core model (tests, examples).
    pub fn flat(watts_per_core: Watts) -> Self {
        let profile = CpuProfile::detect(&Default::default());
        Self::new(profile, CpuModel::Flat(watts_per_core), None, true, false)
    }

    pub fn profile(&self) -> &CpuProfile {
        &self.profile
    }

    pub fn model(&self) -> &CpuModel {
        &self.model
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
                    "{} usable thread(s); {} (model, not a measurement)",
                    self.profile.vcpus,
                    self.model.describe()
                ),
                caveat: None,
            });
        }
        if self.dram {
            let w = self.dram_watts_per_gb;
            domains.push(DomainInfo {
                domain: "dram-process".into(),
                meter: "estimate".into(),
                provenance: Provenance::Estimated,
                method: if w.low == w.high {
                    format!(
                        "process resident memory x {} W/GB (model, not a measurement)",
                        w.central
                    )
                } else {
                    format!(
                        "process resident memory x {} W/GB, band {}-{} W/GB (model, not a measurement)",
                        w.central, w.low, w.high
                    )
                },
                caveat: None,
            });
        }
        MeterInfo {
            name: "estimate".into(),
            domains,
            // clock_gettime resolution is far finer than any window we take.
            update_period: None,
            cpu: self.cpu.then(|| self.profile.clone()),
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot, MeterError> {
        let at = Instant::now();
        let cpu_s = process_cpu_time()
            .map_err(|e| MeterError::Read {
                meter: "estimate".into(),
                message: format!("clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed: {e}"),
            })?
            .0;
        let gb = if self.dram {
            resident_bytes().unwrap_or(0) as f64 / 1e9
        } else {
            0.0
        };
        if let Some(l) = self.last {
            let dt = at.saturating_duration_since(l.at).as_secs_f64();
            if dt > 0.0 {
                let n = self.profile.vcpus as f64;
                let u = ((cpu_s - l.cpu_s) / (dt * n)).clamp(0.0, 1.0);
                self.cpu_j.add(self.model.per_vcpu(u).scale(n), dt);
                self.dram_j
                    .add(self.dram_watts_per_gb.scale((l.gb + gb) / 2.0), dt);
            }
        }
        self.last = Some(Last { at, cpu_s, gb });
        let mut energy = Vec::new();
        let mut band = Vec::new();
        for (on, acc) in [(self.cpu, self.cpu_j), (self.dram, self.dram_j)] {
            if on {
                energy.push(Joules(acc.central));
                band.push(Some((Joules(acc.low), Joules(acc.high))));
            }
        }
        let power = vec![None; energy.len()];
        Ok(Snapshot::new(at, energy, power).with_band(band))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_costs_cpu_time_times_rated_watts() {
        let mut m = EstimateMeter::flat(Watts(20.0));
        // The meter reads this process's CPU time, which other tests' threads
        // add to: bracket each snapshot with the process clock (outer reads
        // bound the meter from above, inner ones from below), and spin until
        // 0.1 s of CPU has passed between the inner reads.
        let outer0 = process_cpu_time().unwrap();
        let a = m.snapshot().unwrap();
        let inner0 = process_cpu_time().unwrap();
        let wall0 = Instant::now();
        let mut x = 0u64;
        while process_cpu_time().unwrap().0 - inner0.0 < 0.1 {
            x = x.wrapping_add(std::hint::black_box(x) ^ 0x9e37);
        }
        std::hint::black_box(x);
        let wall1 = Instant::now();
        let inner1 = process_cpu_time().unwrap();
        let b = m.snapshot().unwrap();
        let outer1 = process_cpu_time().unwrap();
        let j = (b.energy[0] - a.energy[0]).0;
        // Utilisation is capped at 100% of the usable CPUs, so when other
        // tests' threads fill the rest of the machine the meter may count
        // less than the process clock: at least all CPUs for the wall time.
        let cap = m.profile.vcpus as f64 * (wall1 - wall0).as_secs_f64();
        let lower = 20.0 * (inner1.0 - inner0.0).min(cap);
        assert!(j >= 0.98 * lower - 1e-6, "{j} < 0.98 x {lower}");
        assert!(j <= 20.0 * (outer1.0 - outer0.0) + 1e-6, "{j}");
        assert_eq!(m.info().domains[0].provenance, Provenance::Estimated);
    }
}
