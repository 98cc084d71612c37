//! The simulated GPUs: a thread advances every GPU's power and true energy
//! each millisecond; the counter, instant power and 1-s average power are
//! derived from that truth the way NVML derives them from the hardware.

use crate::scenario::{Gpu, Power, Scenario};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(1);

/// One GPU's simulated state.
pub struct GpuSim {
    pub spec: Gpu,
    /// Watts now.
    pub watts: f64,
    /// True joules since the start.
    pub joules: f64,
    /// The counter as last updated (mJ, scaled).
    pub counter_mj: u64,
    next_update: f64,
    /// (seconds, joules) of the last ~2 s, for averaged power.
    history: VecDeque<(f64, f64)>,
    /// Smoothed CPU utilisation of the process, for load-following power.
    load: f64,
    /// Locked SM clocks (min, max), set through NVML.
    pub locked: Option<(u32, u32)>,
    /// The power limit held the draw down at the last tick.
    pub capped: bool,
}

/// Settings made through NVML, as the driver keeps them (the scenario's
/// `state_file`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DriverState {
    pub gpus: Vec<GpuState>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GpuState {
    pub power_limit_w: f64,
    pub locked_clocks: Option<(u32, u32)>,
}

pub struct Sim {
    pub scenario: Scenario,
    pub start: Instant,
    /// Seconds of the last tick.
    pub t: f64,
    pub gpus: Vec<GpuSim>,
    cpu_s: f64,
    rng: u64,
    ledger: Option<std::fs::File>,
}

static SIM: OnceLock<Result<Mutex<Sim>, String>> = OnceLock::new();

/// The simulation, started on first use with the scenario in force.
pub fn sim() -> Result<&'static Mutex<Sim>, String> {
    SIM.get_or_init(|| {
        let scenario = Scenario::load(crate::own_dir().map(|d| d.join("standin.json")))?;
        let ledger = match &scenario.ledger {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("cannot open the ledger {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let gpus = scenario
            .gpus
            .iter()
            .map(|g| GpuSim {
                spec: g.clone(),
                watts: 0.0,
                joules: 0.0,
                counter_mj: 0,
                next_update: 0.0,
                history: VecDeque::new(),
                load: 0.0,
                locked: None,
                capped: false,
            })
            .collect::<Vec<_>>();
        let mut gpus = gpus;
        if let Some(p) = &scenario.state_file
            && let Ok(text) = std::fs::read_to_string(p)
        {
            let st: DriverState = serde_json::from_str(&text)
                .map_err(|e| format!("driver state {}: {e}", p.display()))?;
            for (g, s) in gpus.iter_mut().zip(st.gpus) {
                g.spec.power_limit_w = s.power_limit_w;
                g.locked = s.locked_clocks;
            }
        }
        let sim = Mutex::new(Sim {
            rng: scenario.seed.max(1),
            scenario,
            start: Instant::now(),
            t: 0.0,
            gpus,
            cpu_s: process_cpu_s(),
            ledger,
        });
        std::thread::Builder::new()
            .name("nvml-standin".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TICK);
                    if let Some(Ok(m)) = SIM.get()
                        && let Ok(mut s) = m.lock()
                    {
                        s.tick();
                    }
                }
            })
            .map_err(|e| format!("cannot start the simulation thread: {e}"))?;
        Ok(sim)
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn cpus() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

impl Sim {
    /// Writes the settings to the scenario's state file, if it has one.
    pub fn save_state(&self) -> Result<(), String> {
        let Some(p) = &self.scenario.state_file else {
            return Ok(());
        };
        let st = DriverState {
            gpus: self
                .gpus
                .iter()
                .map(|g| GpuState {
                    power_limit_w: g.spec.power_limit_w,
                    locked_clocks: g.locked,
                })
                .collect(),
        };
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&st).map_err(|e| e.to_string())?)
            .and_then(|_| std::fs::rename(&tmp, p))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    }

    /// The SM clock now: the spec's, within locked clocks.
    pub fn sm_clock(&self, i: usize) -> u32 {
        let g = &self.gpus[i];
        match g.locked {
            Some((lo, hi)) => g.spec.sm_clock_mhz.clamp(lo, hi),
            None => g.spec.sm_clock_mhz,
        }
    }

    /// Advances every GPU to now.
    pub fn tick(&mut self) {
        let t = self.start.elapsed().as_secs_f64();
        let dt = t - self.t;
        if dt <= 0.0 {
            return;
        }
        let cpu = process_cpu_s();
        let util = ((cpu - self.cpu_s) / (dt * cpus())).clamp(0.0, 1.0);
        self.cpu_s = cpu;
        for g in &mut self.gpus {
            // The power of the interval just ended, held over it.
            g.joules += g.watts * dt;
            if let Power::LoadFollowing { smooth_s, .. } = g.spec.power {
                let a = (dt / smooth_s.max(1e-3)).min(1.0);
                g.load += a * (util - g.load);
            }
            // The power limit caps the draw (the board throttles to it).
            let want = power_at(&g.spec.power, t, g.load);
            g.capped = want > g.spec.power_limit_w;
            g.watts = want.min(g.spec.power_limit_w);
            if t >= g.next_update {
                g.counter_mj = (g.joules * g.spec.counter_scale * 1000.0) as u64;
                let p = g.spec.counter_update_ms.max(0.001) / 1000.0;
                g.next_update = ((t / p).floor() + 1.0) * p;
            }
            g.history.push_back((t, g.joules));
            while g.history.front().is_some_and(|(s, _)| t - s > 2.5) {
                g.history.pop_front();
            }
        }
        self.t = t;
    }

    /// Seconds since the start, now (between ticks).
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// True joules of GPU `i` now (the last tick plus the power since).
    pub fn true_joules(&self, i: usize) -> f64 {
        let g = &self.gpus[i];
        g.joules + g.watts * (self.now() - self.t).max(0.0)
    }

    /// PIDs with a compute context on GPU `i` now.
    pub fn pids(&self, i: usize) -> Vec<u32> {
        let t = self.now();
        let g = &self.gpus[i].spec;
        let mut v: Vec<u32> = g
            .processes
            .iter()
            .filter(|p| p.active(t))
            .map(|p| p.value)
            .collect();
        if g.caller_listed {
            v.push(std::process::id());
        }
        v
    }

    /// The clocks event reasons of GPU `i` now, NVML's bit mask (an
    /// unknown name is an error).
    pub fn throttle_bits(&self, i: usize) -> Result<u64, String> {
        let t = self.now();
        let g = &self.gpus[i];
        let mut bits = if g.capped {
            reason_bit("sw-power-cap")?
        } else {
            0
        };
        for s in g.spec.throttle.iter().filter(|s| s.active(t)) {
            for name in &s.value {
                bits |= reason_bit(name)?;
            }
        }
        Ok(bits)
    }

    pub fn lost(&self, i: usize) -> bool {
        self.gpus[i]
            .spec
            .lost_after_s
            .is_some_and(|s| self.now() >= s)
    }

    /// Instant power with the scenario's noise.
    pub fn instant_w(&mut self, i: usize) -> f64 {
        let noise = self.gpus[i].spec.noise_w;
        let n = if noise > 0.0 {
            self.normal() * noise
        } else {
            0.0
        };
        (self.gpus[i].watts + n).max(0.0)
    }

    /// Mean power over the last `secs` (instant power when 0).
    pub fn average_w(&mut self, i: usize, secs: f64) -> f64 {
        if secs <= 0.0 {
            return self.instant_w(i);
        }
        let g = &self.gpus[i];
        let now = (self.t, g.joules);
        let then = g
            .history
            .iter()
            .find(|(s, _)| now.0 - s <= secs)
            .copied()
            .unwrap_or(now);
        if now.0 - then.0 > 1e-6 {
            (now.1 - then.1) / (now.0 - then.0)
        } else {
            g.watts
        }
    }

    /// Appends a total-energy read to the ledger: what was reported, and
    /// the true joules at the read (`truth`, from [`Sim::true_joules`]).
    pub fn log_read(&mut self, i: usize, reported_mj: u64, truth: f64) {
        let line = format!(
            "{{\"gpu\":{i},\"t\":{},\"reported_mj\":{reported_mj},\"true_mj\":{}}}\n",
            self.now(),
            truth * 1000.0
        );
        if let Some(f) = &mut self.ledger {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// A standard-normal draw (Box–Muller over xorshift64*).
    fn normal(&mut self) -> f64 {
        let mut u = || {
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            ((self.rng.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (a, b) = (u(), u());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

/// The bit of a clocks event reason, by the name joulebench records.
fn reason_bit(name: &str) -> Result<u64, String> {
    use nvml_wrapper_sys::bindings as b;
    Ok(match name {
        "gpu-idle" => b::nvmlClocksEventReasonGpuIdle,
        "applications-clocks" => b::nvmlClocksEventReasonApplicationsClocksSetting,
        "sw-power-cap" => b::nvmlClocksEventReasonSwPowerCap,
        "hw-slowdown" => b::nvmlClocksThrottleReasonHwSlowdown,
        "sync-boost" => b::nvmlClocksEventReasonSyncBoost,
        "sw-thermal-slowdown" => b::nvmlClocksEventReasonSwThermalSlowdown,
        "hw-thermal-slowdown" => b::nvmlClocksThrottleReasonHwThermalSlowdown,
        "hw-power-brake-slowdown" => b::nvmlClocksThrottleReasonHwPowerBrakeSlowdown,
        "display-clocks" => b::nvmlClocksEventReasonDisplayClockSetting,
        other => return Err(format!("unknown throttle reason {other:?} in the scenario")),
    } as u64)
}

fn power_at(p: &Power, t: f64, load: f64) -> f64 {
    match p {
        Power::Constant { watts } => *watts,
        Power::LoadFollowing { idle_w, busy_w, .. } => idle_w + (busy_w - idle_w) * load,
        Power::Trace { points } => {
            let Some(first) = points.first() else {
                return 0.0;
            };
            if t <= first.0 {
                return first.1;
            }
            for w in points.windows(2) {
                let ((t0, w0), (t1, w1)) = (w[0], w[1]);
                if t <= t1 {
                    return if t1 > t0 {
                        w0 + (t - t0) / (t1 - t0) * (w1 - w0)
                    } else {
                        w1
                    };
                }
            }
            points[points.len() - 1].1
        }
    }
}
