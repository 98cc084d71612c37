//! Other work on the machine during a window: CPU time the whole machine
//! spent busy (`/proc/stat`) minus this process's own, as a share of the
//! machine's CPU capacity over the window.
//!
//! **Busy time.** The first line of `/proc/stat` sums every online CPU's
//! time since boot in clock ticks (`USER_HZ`, `sysconf(_SC_CLK_TCK)`,
//! usually 100 per second); busy = user + nice + system + irq + softirq +
//! steal (guest time is already inside user and nice; idle and iowait are
//! not busy). Steal counts as other work: the hypervisor gave the CPU to
//! someone else.
//!
//! **Own time.** `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, every thread of
//! this process, to the nanosecond.
//!
//! **Resolution.** Each CPU's counters advance by whole ticks, so a
//! window's busy time is known to about one tick per CPU at each edge:
//! [`Interference::resolution`] = 2 × CPUs / `USER_HZ` (20 ms of CPU time
//! per CPU at 100 Hz). The validity rule (`validity.rs`) only flags other
//! work beyond that.
//!
//! **Run-queue delay.** `/proc/self/task/*/schedstat` (second field, ns)
//! is how long this process's threads waited for a CPU while runnable; the
//! estimate meter uses it to tell time a neighbour took from this process
//! from time the process left idle (`estimate.rs`). Threads that exited
//! take their delay with them, so the per-interval difference is clamped
//! at zero.

use crate::util::units::Seconds;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What other processes did during one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interference {
    /// CPU time other processes (and the hypervisor's steal) used.
    pub other_cpu: Seconds,
    /// `other_cpu` over the machine's capacity (online CPUs × wall time).
    pub other_share: f64,
    /// This process's own CPU time in the window.
    pub own_cpu: Seconds,
    /// CPUs online.
    pub cpus: u32,
    /// How precisely `other_cpu` is known: one clock tick per CPU at each
    /// edge (absent in older records).
    #[serde(default)]
    pub resolution: Seconds,
}

impl Interference {
    /// From the machine's busy time and this process's CPU time over a
    /// window of `wall` seconds on `cpus` CPUs whose counters tick every `tick`.
    pub fn from_counters(
        busy: Seconds,
        own: Seconds,
        wall: Seconds,
        cpus: u32,
        tick: Seconds,
    ) -> Interference {
        let other = (busy.0 - own.0).max(0.0);
        let capacity = cpus.max(1) as f64 * wall.0;
        Interference {
            other_cpu: Seconds(other),
            other_share: if capacity > 0.0 {
                (other / capacity).min(1.0)
            } else {
                0.0
            },
            own_cpu: own,
            cpus,
            resolution: Seconds(2.0 * cpus as f64 * tick.0),
        }
    }

    /// Several windows' interference as one (a sum of windows): CPU times
    /// and resolutions add, the share is over the windows' total capacity;
    /// None unless every part has one.
    pub fn sum<'a>(
        parts: impl Iterator<Item = (Option<&'a Interference>, Seconds)>,
    ) -> Option<Interference> {
        let mut total: Option<Interference> = None;
        let mut capacity = 0.0;
        for (i, seconds) in parts {
            let i = i?;
            capacity += i.cpus.max(1) as f64 * seconds.0;
            total = Some(match total {
                None => *i,
                Some(t) => Interference {
                    other_cpu: t.other_cpu + i.other_cpu,
                    own_cpu: t.own_cpu + i.own_cpu,
                    resolution: t.resolution + i.resolution,
                    ..t
                },
            });
        }
        let mut t = total?;
        t.other_share = if capacity > 0.0 {
            (t.other_cpu.0 / capacity).min(1.0)
        } else {
            0.0
        };
        Some(t)
    }
}

/// The machine's and this process's CPU clocks at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuClock {
    pub at: Instant,
    /// Busy CPU time of the whole machine since boot; None where
    /// `/proc/stat` cannot be read (not Linux).
    pub busy: Option<Seconds>,
    /// This process's CPU time.
    pub own: Seconds,
    /// Run-queue wait of this process's live threads; None without schedstat.
    pub delay: Option<Seconds>,
    /// CPUs online.
    pub cpus: u32,
    /// One clock tick of `/proc/stat` (1 / `USER_HZ`).
    pub tick: Seconds,
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

/// Busy ticks of the first (`cpu `) line of `/proc/stat`.
pub fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    (v.len() >= 4).then(|| at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// Run-queue delay of every live thread of this process, from schedstat.
fn run_delay() -> Option<Seconds> {
    let mut ns = 0u64;
    let mut any = false;
    for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        if let Some(d) = s
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse::<u64>().ok())
        {
            ns += d;
            any = true;
        }
    }
    any.then_some(Seconds(ns as f64 * 1e-9))
}

impl CpuClock {
    /// Reads the clocks now; what cannot be read is None, except the
    /// process clock, whose failure (`clock_gettime`) is the error.
    pub fn read() -> Result<CpuClock, std::io::Error> {
        let own = process_cpu_time()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let tick = Seconds(1.0 / if hz > 0 { hz as f64 } else { 100.0 });
        let busy = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_busy_ticks(&s))
            .map(|t| Seconds(t as f64 * tick.0));
        Ok(CpuClock {
            at: Instant::now(),
            busy,
            own,
            delay: run_delay(),
            cpus: cpus.max(1) as u32,
            tick,
        })
    }

    /// What other processes did between `self` and a later reading.
    pub fn interference(&self, later: &CpuClock) -> Option<Interference> {
        let busy = later.busy?.0 - self.busy?.0;
        Some(Interference::from_counters(
            Seconds(busy.max(0.0)),
            Seconds((later.own.0 - self.own.0).max(0.0)),
            Seconds::from_duration(later.at.saturating_duration_since(self.at)),
            later.cpus,
            later.tick,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait_and_count_steal() {
        let stat = "cpu  100 5 20 900 40 3 2 7 11 0\ncpu0 50 2 10 450 20 1 1 3 5 0\n";
        assert_eq!(parse_busy_ticks(stat), Some(100 + 5 + 20 + 3 + 2 + 7));
        assert_eq!(parse_busy_ticks("intr 1 2 3"), None);
        assert_eq!(parse_busy_ticks("cpu  1 x 3 4"), None);
    }

    #[test]
    fn other_work_is_busy_time_minus_own_over_capacity() {
        // 2 CPUs for 4 s = 8 CPU-s; the machine was busy 5 CPU-s, 3 of them ours.
        let i =
            Interference::from_counters(Seconds(5.0), Seconds(3.0), Seconds(4.0), 2, Seconds(0.01));
        assert_eq!(i.other_cpu, Seconds(2.0));
        assert!((i.other_share - 0.25).abs() < 1e-12);
        assert_eq!(i.resolution, Seconds(0.04));
        // Two such windows: 4 of 16 CPU-s.
        let two =
            Interference::sum([(Some(&i), Seconds(4.0)), (Some(&i), Seconds(4.0))].into_iter());
        let two = two.unwrap();
        assert_eq!((two.other_cpu, two.own_cpu), (Seconds(4.0), Seconds(6.0)));
        assert!((two.other_share - 0.25).abs() < 1e-12);
        assert!(
            Interference::sum([(Some(&i), Seconds(4.0)), (None, Seconds(1.0))].into_iter())
                .is_none()
        );
        // Ticks can lag the exact process clock: never negative.
        let q = Interference::from_counters(
            Seconds(0.99),
            Seconds(1.0),
            Seconds(1.0),
            2,
            Seconds(0.01),
        );
        assert_eq!((q.other_cpu, q.other_share), (Seconds(0.0), 0.0));
    }

    #[test]
    fn the_clocks_read_on_linux() {
        let a = CpuClock::read().unwrap();
        let b = CpuClock::read().unwrap();
        assert!(a.cpus >= 1 && a.tick.0 > 0.0);
        if std::path::Path::new("/proc/stat").exists() {
            let i = a.interference(&b).unwrap();
            assert!(i.other_share >= 0.0 && i.other_share <= 1.0);
        }
    }
}
