//! Named measurement windows (the reading between two snapshots), the idle
//! baseline (gross, idle and net energy) and a counter's self-check (the
//! counter against the integral of its polled instant power). The measurer
//! that opens and closes them is `measurer.rs`.

use super::{MeterInfo, PowerSample, Provenance, Snapshot};
use crate::gpu::api::GpuState;
use crate::util::units::{Joules, Seconds, Watts};
use serde::{Deserialize, Serialize};

use super::interference::CpuClock;

/// The range a modelled figure may lie in: its value under the lowest and
/// the highest of the published models it is made from (`cpu_power`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub low: Joules,
    pub high: Joules,
}

impl Band {
    /// A figure with no band is its own range.
    fn point(j: Joules) -> Band {
        Band { low: j, high: j }
    }

    fn add(self, o: Band) -> Band {
        Band {
            low: self.low + o.low,
            high: self.high + o.high,
        }
    }

    /// The same range scaled (per step, per 1,000 samples, ...).
    pub fn scale(self, k: f64) -> Band {
        Band {
            low: Joules(self.low.0 * k),
            high: Joules(self.high.0 * k),
        }
    }
}

/// Sums optional bands, taking `points` for parts without one; `None` when no part has a band.
fn sum_bands(parts: impl Iterator<Item = (Option<Band>, Joules)>) -> Option<Band> {
    let mut any = false;
    let mut total = Band::point(Joules::ZERO);
    for (b, j) in parts {
        any |= b.is_some();
        total = total.add(b.unwrap_or(Band::point(j)));
    }
    any.then_some(total)
}

/// Energy of one domain over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEnergy {
    pub domain: String,
    pub meter: String,
    pub provenance: Provenance,
    /// Gross energy measured in the window.
    pub joules: Joules,
    pub avg_watts: Watts,
    /// Highest sampled power in the window (polling meters only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_watts: Option<Watts>,
    /// Idle power of the domain × window duration (when an idle baseline was taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_joules: Option<Joules>,
    /// Gross − idle: the energy the work added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules: Option<Joules>,
    /// Counter domains: the integral of polled instant power over the same
    /// window, the counter's independent cross-check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_check_joules: Option<Joules>,
    /// Modelled domains: the range of the gross figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    /// Modelled domains: the range of the net figure (each model's gross
    /// minus the same model's idle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_band: Option<Band>,
    /// Estimated domains: the seconds the idle (static) power is charged
    /// for, the window's less what other processes' work displaced
    /// (`estimate.rs`); the idle baseline is subtracted over these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charged_seconds: Option<Seconds>,
}

/// Energy and time of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReading {
    /// Window name, e.g. `train/epoch-1`, `test`, `inference`, `idle`.
    pub window: String,
    /// Wall-clock start, UTC seconds since 1970 (the end is `seconds` later);
    /// absent in sums of windows and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix: Option<f64>,
    pub seconds: Seconds,
    /// Gross energy, summed over domains.
    pub joules: Joules,
    pub avg_watts: Watts,
    pub domains: Vec<DomainEnergy>,
    /// Sum of the domains' idle joules (idle baseline × duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_joules: Option<Joules>,
    /// Gross − idle, summed over domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules: Option<Joules>,
    /// Range of the gross energy when a domain is modelled with a band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    /// Range of the net energy likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_band: Option<Band>,
    /// Caveats about this window (e.g. shorter than the counter's update period).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Power samples in the window (polling meters; at most ~256 per domain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<PowerSample>,
    /// GPU temperature, clocks, power limit, utilisation at the window's end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_states: Vec<GpuState>,
    /// Other processes' use of the machine during the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interference: Option<super::interference::Interference>,
    /// Whether the window's figure can be trusted, and why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<super::validity::Validity>,
}

impl EnergyReading {
    /// `estimated`, `fake`, `counter`, ... or a `+`-joined mix, for labels.
    pub fn provenance_label(&self) -> String {
        provenance_label(self.domains.iter().map(|d| d.provenance))
    }

    /// Whether any part of the figure is modelled rather than measured.
    pub fn is_modelled(&self) -> bool {
        self.domains.iter().any(|d| d.provenance.is_modelled())
    }

    /// Sum of several readings (e.g. all epochs), keeping per-domain totals.
    pub fn sum<'a>(window: &str, rs: impl IntoIterator<Item = &'a EnergyReading>) -> EnergyReading {
        let rs_parts: Vec<&EnergyReading> = rs.into_iter().collect();
        let mut out = EnergyReading {
            window: window.to_string(),
            started_unix: None,
            seconds: Seconds::ZERO,
            joules: Joules::ZERO,
            avg_watts: Watts::ZERO,
            domains: Vec::new(),
            idle_joules: None,
            net_joules: None,
            band: None,
            net_band: None,
            flags: Vec::new(),
            timeline: Vec::new(),
            gpu_states: Vec::new(),
            interference: None,
            validity: None,
        };
        let add = |a: &mut Option<Joules>, b: Option<Joules>| {
            if let Some(b) = b {
                *a = Some(a.unwrap_or(Joules::ZERO) + b);
            }
        };
        for r in rs_parts.iter().copied() {
            // The earliest part's start: the sum spans from there for its
            // total seconds (exact when the parts are back to back).
            out.started_unix = match (out.started_unix, r.started_unix) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            out.seconds += r.seconds;
            out.joules += r.joules;
            add(&mut out.idle_joules, r.idle_joules);
            add(&mut out.net_joules, r.net_joules);
            for d in &r.domains {
                match out.domains.iter_mut().find(|o| o.domain == d.domain) {
                    Some(o) => {
                        let o_j = o.joules;
                        let o_net = o.net_joules.unwrap_or(o.joules);
                        o.joules += d.joules;
                        o.cross_check_joules = match (o.cross_check_joules, d.cross_check_joules) {
                            (Some(a), Some(b)) => Some(a + b),
                            _ => None,
                        };
                        o.charged_seconds = match (o.charged_seconds, d.charged_seconds) {
                            (Some(a), Some(b)) => Some(a + b),
                            _ => None,
                        };
                        add(&mut o.idle_joules, d.idle_joules);
                        add(&mut o.net_joules, d.net_joules);
                        o.band = sum_opt(o.band, o_j, d.band, d.joules);
                        o.net_band = sum_opt(
                            o.net_band,
                            o_net,
                            d.net_band,
                            d.net_joules.unwrap_or(d.joules),
                        );
                        o.peak_watts = match (o.peak_watts, d.peak_watts) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    None => out.domains.push(d.clone()),
                }
            }
            for f in &r.flags {
                let f = format!("{}: {f}", r.window);
                if !out.flags.contains(&f) {
                    out.flags.push(f);
                }
            }
        }
        let judged: Vec<(String, super::validity::Validity)> = rs_parts
            .iter()
            .filter_map(|r| Some((r.window.clone(), r.validity.clone()?)))
            .collect();
        out.validity = super::validity::Validity::merge(window, &judged);
        out.interference = super::interference::Interference::sum(
            rs_parts
                .iter()
                .map(|r| (r.interference.as_ref(), r.seconds)),
        );
        out.avg_watts = avg(out.joules, out.seconds);
        for d in &mut out.domains {
            d.avg_watts = avg(d.joules, out.seconds);
        }
        out.set_bands();
        out
    }

    /// The reading's bands from its domains'.
    fn set_bands(&mut self) {
        self.band = sum_bands(self.domains.iter().map(|d| (d.band, d.joules)));
        self.net_band = sum_bands(
            self.domains
                .iter()
                .map(|d| (d.net_band, d.net_joules.unwrap_or(d.joules))),
        );
        if self.net_joules.is_none() {
            self.net_band = None;
        }
    }

    /// The gross range: the band, or the figure itself when it has none.
    pub fn range(&self) -> Band {
        self.band.unwrap_or(Band::point(self.joules))
    }

    /// The net range if an idle baseline was taken, else the gross range.
    pub fn net_or_gross_range(&self) -> Band {
        match self.net_joules {
            Some(n) => self.net_band.unwrap_or(Band::point(n)),
            None => self.range(),
        }
    }

    /// Net joules if an idle baseline was taken, else gross.
    pub fn net_or_gross(&self) -> Joules {
        self.net_joules.unwrap_or(self.joules)
    }
}

pub fn provenance_label(ps: impl Iterator<Item = Provenance>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for p in ps {
        if !seen.contains(&p.label()) {
            seen.push(p.label());
        }
    }
    if seen.is_empty() {
        "none".into()
    } else {
        seen.join("+")
    }
}

/// Windows shorter than this many counter update periods are flagged as
/// coarse (each edge may be one period stale).
pub const COARSE_PERIODS: f64 = 10.0;

/// A counter's agreement with its instant-power integral over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfCheck {
    pub domain: String,
    pub seconds: Seconds,
    pub counter_joules: Joules,
    pub instant_power_joules: Joules,
    /// (counter − integral) / integral × 100.
    pub difference_pct: f64,
    /// Over `SELF_CHECK_WARN_PCT`.
    pub warning: bool,
}

/// Shortest window whose self-check is recorded (a 100-ms counter is too
/// coarse for shorter ones).
pub const SELF_CHECK_MIN_SECONDS: f64 = 3.0;
/// Disagreement that earns a warning.
pub const SELF_CHECK_WARN_PCT: f64 = 2.0;

impl SelfCheck {
    pub fn describe(&self) -> String {
        format!(
            "{}: the energy counter ({:.1} J) and the integral of instant power ({:.1} J) differ by {:+.1}% over {:.1} s (self-check warns above {SELF_CHECK_WARN_PCT}%)",
            self.domain,
            self.counter_joules.0,
            self.instant_power_joules.0,
            self.difference_pct,
            self.seconds.0
        )
    }
}

/// The self-check of one domain over a window of `seconds`, where it has a
/// cross-check and the window is long enough.
pub fn self_check(d: &DomainEnergy, seconds: Seconds) -> Option<SelfCheck> {
    let integral = d.cross_check_joules?;
    if seconds.0 < SELF_CHECK_MIN_SECONDS || integral.0 <= 0.0 {
        return None;
    }
    let pct = (d.joules.0 - integral.0) / integral.0 * 100.0;
    Some(SelfCheck {
        domain: d.domain.clone(),
        seconds,
        counter_joules: d.joules,
        instant_power_joules: integral,
        difference_pct: pct,
        warning: pct.abs() > SELF_CHECK_WARN_PCT,
    })
}

/// Sum of two optional bands over figures `a` and `b`.
fn sum_opt(x: Option<Band>, a: Joules, y: Option<Band>, b: Joules) -> Option<Band> {
    (x.is_some() || y.is_some())
        .then(|| x.unwrap_or(Band::point(a)).add(y.unwrap_or(Band::point(b))))
}

fn avg(j: Joules, s: Seconds) -> Watts {
    if s.0 > 0.0 { j / s } else { Watts::ZERO }
}

/// An open window.
#[derive(Debug, Clone)]
pub struct WindowStart {
    pub(super) name: String,
    pub(super) start: Snapshot,
    /// The machine's and this process's CPU clocks at the start.
    pub(super) cpu: Option<CpuClock>,
}

/// Idle power per domain (in the meter's domain order), from an idle window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleBaseline {
    pub reading: EnergyReading,
}

/// Fills idle and net joules from the idle window's average power.
pub fn apply_idle(r: &mut EnergyReading, idle: &EnergyReading) {
    let mut idle_total = Joules::ZERO;
    for d in &mut r.domains {
        let Some(i) = idle.domains.iter().find(|i| i.domain == d.domain) else {
            continue;
        };
        // Over the seconds the idle power is charged for (estimated domains
        // on a shared machine charge less than the wall time).
        let idle_w = match i.charged_seconds {
            Some(s) if s.0 > 0.0 => i.joules / s,
            _ => i.avg_watts,
        };
        let j = idle_w * d.charged_seconds.unwrap_or(r.seconds);
        d.idle_joules = Some(j);
        d.net_joules = Some(d.joules - j);
        idle_total += j;
        // Each model's net: its gross minus its own idle power over the window.
        let per_idle_second = |x: Joules| {
            if i.avg_watts.0 > 0.0 && i.joules.0 > 0.0 {
                Joules(x.0 / i.joules.0 * j.0)
            } else {
                Joules::ZERO
            }
        };
        d.net_band = d.band.map(|b| {
            let ib = i.band.unwrap_or(Band::point(i.joules));
            Band {
                low: b.low - per_idle_second(ib.low),
                high: b.high - per_idle_second(ib.high),
            }
        });
    }
    r.idle_joules = Some(idle_total);
    r.net_joules = Some(r.joules - idle_total);
    r.set_bands();
}

/// The reading between two snapshots of one meter.
///
/// A window shorter than the meter's update period cannot be read from the
/// counter (it may not have ticked): where the meter gives instant power, the
/// window's energy is approximated as mean instant power × duration, the
/// domain's provenance becomes `integrated`, and the window is flagged.
pub fn reading(info: &MeterInfo, name: &str, a: &Snapshot, b: &Snapshot) -> EnergyReading {
    let seconds = Seconds::from_duration(b.at.saturating_duration_since(a.at));
    let mut flags: Vec<String> = info
        .domains
        .iter()
        .filter_map(|d| d.caveat.as_ref().map(|c| format!("{}: {c}", d.domain)))
        .collect();
    let short = info.update_period.filter(|p| seconds.0 < p.0);
    if let Some(p) = short {
        flags.push(format!(
            "window of {:.4} s is shorter than the meter's update period of {:.4} s: counter domains approximated as instant power x duration",
            seconds.0, p.0
        ));
    } else if let Some(p) = info
        .update_period
        .filter(|p| seconds.0 < COARSE_PERIODS * p.0)
        && info
            .domains
            .iter()
            .any(|d| d.provenance == Provenance::Counter)
    {
        // Each edge reads the counter as of its last update: up to one period stale.
        flags.push(format!(
            "window of {:.3} s spans only {:.1} counter updates ({:.0} ms each): its counter figure may be off by up to about {:.0}% of the window's energy",
            seconds.0,
            seconds.0 / p.0,
            p.0 * 1e3,
            100.0 * p.0 / seconds.0
        ));
    }
    let domains: Vec<DomainEnergy> = info
        .domains
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let mut provenance = d.provenance;
            let mut j = b.energy[k] - a.energy[k];
            let band = match (
                a.band.get(k).copied().flatten(),
                b.band.get(k).copied().flatten(),
            ) {
                (Some((al, ah)), Some((bl, bh))) => Some(Band {
                    low: bl - al,
                    high: bh - ah,
                }),
                _ => None,
            };
            let cross_check = match (
                a.cross_check.get(k).copied().flatten(),
                b.cross_check.get(k).copied().flatten(),
            ) {
                (Some(x), Some(y)) => Some(y - x),
                _ => None,
            };
            let charged = match (
                a.charged.get(k).copied().flatten(),
                b.charged.get(k).copied().flatten(),
            ) {
                (Some(x), Some(y)) => Some(y - x),
                _ => None,
            };
            let power = (
                a.power.get(k).copied().flatten(),
                b.power.get(k).copied().flatten(),
            );
            if short.is_some()
                && d.provenance == Provenance::Counter
                && let (Some(pa), Some(pb)) = power
            {
                j = Joules((pa.0 + pb.0) / 2.0 * seconds.0);
                provenance = Provenance::Integrated;
            }
            if j.0 < 0.0 {
                flags.push(format!(
                    "{}: cumulative energy went backwards by {:.3} J (counter reset?)",
                    d.domain, -j.0
                ));
            }
            DomainEnergy {
                domain: d.domain.clone(),
                meter: d.meter.clone(),
                provenance,
                joules: j,
                avg_watts: avg(j, seconds),
                peak_watts: None,
                idle_joules: None,
                net_joules: None,
                band,
                net_band: None,
                cross_check_joules: cross_check,
                charged_seconds: charged,
            }
        })
        .collect();
    for d in &domains {
        if let Some(c) = self_check(d, seconds)
            && c.warning
        {
            flags.push(c.describe());
        }
    }
    let joules = domains.iter().map(|d| d.joules).sum();
    let mut r = EnergyReading {
        window: name.to_string(),
        started_unix: a
            .wall
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64()),
        seconds,
        joules,
        avg_watts: avg(joules, seconds),
        domains,
        idle_joules: None,
        net_joules: None,
        band: None,
        net_band: None,
        flags,
        timeline: Vec::new(),
        gpu_states: Vec::new(),
        interference: None,
        validity: None,
    };
    r.set_bands();
    r
}
