//! The labelled estimate meter: this process's CPU utilisation × a CPU power
//! model, and its resident memory × watts per GB, each with a band.
//!
//! Used where no hardware counter is readable (VMs, containers, CI). Every
//! figure it produces has provenance `estimated`, and a band (low, central,
//! high) from the spread of published models (`cpu_power` says which and why).
//!
//! The CPU figure is integrated between snapshots. Windows begin and end at
//! snapshots, so each window gets its own figure. With the machine to
//! itself, over each interval the process's CPU utilisation of the threads
//! it may use, u = CPU time / (wall time × threads), sets the watts per
//! thread (`CpuModel::per_vcpu`), times the threads. An idle window
//! therefore reads the model's idle power (the curve's 0.12 × TDP share,
//! or the linear lines' minimum), and net energy is what the work added
//! over it.
//!
//! **On a shared machine** (`attribute`). Charging the model's power over
//! wall time lets a neighbour inflate the figure: it stretches this
//! process's wall time, and the idle (static) part, W(0) per thread, is
//! charged for the stretch (issue #32: one trial read 5.4, 11.1 and 14.9 J
//! under load). So each interval of dt seconds on n threads (capacity
//! C = n·dt) is split in two, from the machine's busy time (`/proc/stat`),
//! this process's CPU time c and its threads' run-queue wait
//! (`interference.rs`):
//! - *static*: W(0) × (C − d), where d, the CPU time neighbours displaced
//!   this process from, is its run-queue wait, at most the others' CPU time
//!   o (machine-wide, spread evenly over the CPUs: o × n / CPUs online).
//!   Time the process slept or left idle is still its own (it holds the
//!   machine: an idle window reads the idle power however busy the
//!   neighbours are); time it waited while others ran is theirs;
//! - *dynamic*: the model's dynamic power at the load the CPUs actually
//!   carried, U = (c + o) / C, shared by CPU time: c × (W(U) − W(0)) / U.
//!
//! With no other work (o = 0, d = 0) this is exactly n·dt·W(u), the figure
//! without neighbours, so quiet figures do not change. When a neighbour
//! stretches the wall time of the same CPU work on a saturated machine,
//! both parts are unchanged (the unit test `a_neighbour_that_doubles_the_wall_time_adds_nothing`).
//! Where the machine has spare CPUs, a concave model (the curve) charges
//! less per CPU-second at the higher load U; the linear and flat models
//! charge the same. Every part is computed per model, so the band follows.
//! DRAM is static power too: it is charged for dt × (C − d) / C. The seconds
//! charged, dt × (C − d) / C, go into the snapshot (`charged`), and the idle
//! baseline is subtracted over them (`window::apply_idle`), so net energy
//! does not grow or shrink with the stretch either. Without `/proc/stat`
//! the others' time is taken as zero, without schedstat the delay as zero
//! (the figure is then the quiet one over wall time). The interference rule
//! (`validity.rs`) flags such windows in any case.
//!
//! DRAM (`dram-process`): the process's resident memory × 0.375 W per GB
//! (CodeCarbon: 3 W per 8 GB of DDR4, after Micron's power guides), band
//! 0.284 (Teads/Boavizta) to 0.392 (Cloud Carbon Footprint), integrated
//! over time. Also a model, also labelled `estimated`.

use super::cpu_power::{Band3, CpuModel, CpuProfile, DRAM_WATTS_PER_GB};
use super::interference::CpuClock;
use super::{DomainInfo, EnergyMeter, MeterError, MeterInfo, Provenance, Snapshot};
use crate::util::units::{Joules, Seconds, Watts};

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

pub use super::interference::process_cpu_time;

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

/// The CPU clocks and resident memory at the last snapshot.
#[derive(Debug, Clone, Copy)]
struct Last {
    clock: CpuClock,
    gb: f64,
}

/// One interval between snapshots, as the attribution sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Wall seconds.
    pub dt: f64,
    /// This process's CPU seconds.
    pub own: f64,
    /// Other processes' CPU seconds on the whole machine (None: unknown).
    pub other: Option<f64>,
    /// This process's threads' run-queue wait, seconds (None: unknown).
    pub delay: Option<f64>,
    /// CPUs online, over which `other` is spread.
    pub cpus: u32,
}

impl Interval {
    fn between(a: &CpuClock, b: &CpuClock) -> Interval {
        let busy = a.busy.zip(b.busy).map(|(x, y)| (y.0 - x.0).max(0.0));
        let own = (b.own.0 - a.own.0).max(0.0);
        Interval {
            dt: b.at.saturating_duration_since(a.at).as_secs_f64(),
            own,
            other: busy.map(|x| (x - own).max(0.0)),
            delay: a.delay.zip(b.delay).map(|(x, y)| (y.0 - x.0).max(0.0)),
            cpus: b.cpus,
        }
    }
}

/// What one interval charges this process: CPU joules (low, central,
/// high) and the seconds its static power is charged for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Charge {
    pub cpu_joules: Band3,
    pub charged_seconds: f64,
}

/// The process's share of the model's power over one interval on `vcpus`
/// threads (the module doc derives it).
pub fn attribute(model: &CpuModel, vcpus: u32, iv: Interval) -> Charge {
    let n = vcpus.max(1) as f64;
    let cap = iv.dt.max(0.0) * n;
    if cap <= 0.0 {
        let zero = Band3 {
            low: 0.0,
            central: 0.0,
            high: 0.0,
        };
        return Charge {
            cpu_joules: zero,
            charged_seconds: 0.0,
        };
    }
    let c = iv.own.clamp(0.0, cap);
    let o = iv
        .other
        .map_or(0.0, |o| (o * n / iv.cpus.max(1) as f64).clamp(0.0, cap - c));
    let displaced = iv.delay.map_or(0.0, |d| d.clamp(0.0, o));
    let load = (c + o) / cap;
    let (w0, wu) = (model.per_vcpu(0.0), model.per_vcpu(load));
    let part = |idle: f64, at_load: f64| {
        let dynamic = if c > 0.0 {
            c * (at_load - idle) / load
        } else {
            0.0
        };
        idle * (cap - displaced) + dynamic
    };
    Charge {
        cpu_joules: Band3 {
            low: part(w0.low, wu.low),
            central: part(w0.central, wu.central),
            high: part(w0.high, wu.high),
        },
        charged_seconds: if displaced > 0.0 {
            iv.dt * (cap - displaced) / cap
        } else {
            iv.dt
        },
    }
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
    /// Seconds the static power was charged for, so far.
    charged_s: f64,
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
            charged_s: 0.0,
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
        let clock = CpuClock::read().map_err(|e| MeterError::Read {
            meter: "estimate".into(),
            message: format!("clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed: {e}"),
        })?;
        let gb = if self.dram {
            resident_bytes().unwrap_or(0) as f64 / 1e9
        } else {
            0.0
        };
        if let Some(l) = self.last {
            let iv = Interval::between(&l.clock, &clock);
            if iv.dt > 0.0 {
                let charge = attribute(&self.model, self.profile.vcpus, iv);
                let b = charge.cpu_joules;
                self.cpu_j.add(b, 1.0);
                self.charged_s += charge.charged_seconds;
                self.dram_j.add(
                    self.dram_watts_per_gb.scale((l.gb + gb) / 2.0),
                    charge.charged_seconds,
                );
            }
        }
        self.last = Some(Last { clock, gb });
        let mut energy = Vec::new();
        let mut band = Vec::new();
        for (on, acc) in [(self.cpu, self.cpu_j), (self.dram, self.dram_j)] {
            if on {
                energy.push(Joules(acc.central));
                band.push(Some((Joules(acc.low), Joules(acc.high))));
            }
        }
        let n = energy.len();
        Ok(Snapshot::new(clock.at, energy, vec![None; n])
            .with_band(band)
            .with_charged(vec![Some(Seconds(self.charged_s)); n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::cpu_power::CCF_LINES;
    use std::time::Instant;

    fn curve() -> CpuModel {
        CpuModel::Curve {
            tdp_per_thread: 10.0,
            lines: CCF_LINES.to_vec(),
        }
    }

    fn close(a: Band3, b: Band3) -> bool {
        let eq = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
        eq(a.low, b.low) && eq(a.central, b.central) && eq(a.high, b.high)
    }

    #[test]
    fn a_neighbour_that_doubles_the_wall_time_adds_nothing() {
        // 2 threads on 2 CPUs: 2 CPU-s of work in 1 s on a quiet machine.
        let quiet = Interval {
            dt: 1.0,
            own: 2.0,
            other: Some(0.0),
            delay: Some(0.0),
            cpus: 2,
        };
        // The same work while neighbours hold half the machine: 2 s of
        // wall time, 2 CPU-s of theirs, and this process's threads waited
        // 2 thread-s in the run queue.
        let shared = Interval {
            dt: 2.0,
            own: 2.0,
            other: Some(2.0),
            delay: Some(2.0),
            cpus: 2,
        };
        // A one-core busy loop beside two threads: 3 runnable threads on 2
        // CPUs, each gets 2/3 of one, so 1.5 s of wall time.
        let one_core = Interval {
            dt: 1.5,
            own: 2.0,
            other: Some(1.0),
            delay: Some(1.0),
            cpus: 2,
        };
        for model in [curve(), CpuModel::Flat(Watts(15.0))] {
            let q = attribute(&model, 2, quiet);
            // Quiet: exactly the figure without neighbours, n x dt x W(u).
            assert!(close(q.cpu_joules, model.per_vcpu(1.0).scale(2.0)), "{q:?}");
            assert_eq!(q.charged_seconds, 1.0);
            for loaded in [shared, one_core] {
                let l = attribute(&model, 2, loaded);
                assert!(close(l.cpu_joules, q.cpu_joules), "{l:?} vs {q:?}");
                assert!((l.charged_seconds - 1.0).abs() < 1e-12, "{l:?}");
            }
        }
        // Charged over wall time (what the meter did before, and still does
        // where neither /proc/stat nor schedstat can be read), the curve's
        // idle share over the stretch inflates the same work by about half.
        let blind = Interval {
            other: None,
            delay: None,
            ..shared
        };
        let b = attribute(&curve(), 2, blind);
        assert!(close(b.cpu_joules, curve().per_vcpu(0.5).scale(4.0)));
        let q = attribute(&curve(), 2, quiet).cpu_joules.central;
        assert!(
            b.cpu_joules.central > 1.4 * q,
            "{} vs {q}",
            b.cpu_joules.central
        );
    }

    #[test]
    fn a_process_that_sleeps_beside_busy_neighbours_keeps_its_idle_power() {
        // Nothing of this process waited: the CPUs the neighbours did not
        // use were this process's to leave idle.
        let iv = Interval {
            dt: 1.0,
            own: 0.0,
            other: Some(1.5),
            delay: Some(0.0),
            cpus: 2,
        };
        let c = attribute(&curve(), 2, iv);
        assert!(
            close(c.cpu_joules, curve().per_vcpu(0.0).scale(2.0)),
            "{c:?}"
        );
        assert_eq!(c.charged_seconds, 1.0);
        // Others' time on a larger machine is spread over all its CPUs.
        let big = Interval {
            cpus: 8,
            own: 1.0,
            other: Some(4.0),
            delay: Some(0.5),
            ..iv
        };
        let c = attribute(&curve(), 2, big);
        // 1 CPU-s of the others on this process's 2 threads, 0.5 of it displacing it.
        assert!((c.charged_seconds - 0.75).abs() < 1e-12, "{c:?}");
    }

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
