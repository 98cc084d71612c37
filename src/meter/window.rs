//! Named measurement windows with the device synchronised at each edge.

use super::{EnergyMeter, MeterError, MeterInfo, Provenance, Snapshot};
use crate::units::{Joules, Seconds, Watts};
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// Energy of one domain over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEnergy {
    pub domain: String,
    pub meter: String,
    pub provenance: Provenance,
    pub joules: Joules,
    pub avg_watts: Watts,
}

/// Energy and time of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReading {
    /// Window name, e.g. `train/epoch-1`, `eval/test`, `inference`.
    pub window: String,
    pub seconds: Seconds,
    /// Sum over domains.
    pub joules: Joules,
    pub avg_watts: Watts,
    pub domains: Vec<DomainEnergy>,
    /// Caveats about this window (e.g. shorter than the counter's update period).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
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
        let mut out = EnergyReading {
            window: window.to_string(),
            seconds: Seconds::ZERO,
            joules: Joules::ZERO,
            avg_watts: Watts::ZERO,
            domains: Vec::new(),
            flags: Vec::new(),
        };
        for r in rs {
            out.seconds += r.seconds;
            out.joules += r.joules;
            for d in &r.domains {
                match out.domains.iter_mut().find(|o| o.domain == d.domain) {
                    Some(o) => o.joules += d.joules,
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
        out.avg_watts = avg(out.joules, out.seconds);
        for d in &mut out.domains {
            d.avg_watts = avg(d.joules, out.seconds);
        }
        out
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

fn avg(j: Joules, s: Seconds) -> Watts {
    if s.0 > 0.0 { j / s } else { Watts::ZERO }
}

/// An open window.
#[derive(Debug, Clone)]
pub struct WindowStart {
    name: String,
    start: Snapshot,
}

/// A meter bound to the device it measures: every window edge first waits
/// for the device's queued work, so asynchronous GPU work is charged to the
/// window that launched it.
pub struct Measurer {
    meter: Box<dyn EnergyMeter>,
    info: MeterInfo,
    device: Device,
}

impl Measurer {
    pub fn new(meter: Box<dyn EnergyMeter>, device: Device) -> Self {
        let info = meter.info();
        Self {
            meter,
            info,
            device,
        }
    }

    pub fn info(&self) -> &MeterInfo {
        &self.info
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn begin(&mut self, name: &str) -> Result<WindowStart, MeterError> {
        self.device.synchronize()?;
        Ok(WindowStart {
            name: name.to_string(),
            start: self.meter.snapshot()?,
        })
    }

    pub fn end(&mut self, w: WindowStart) -> Result<EnergyReading, MeterError> {
        self.device.synchronize()?;
        let end = self.meter.snapshot()?;
        Ok(reading(&self.info, &w.name, &w.start, &end))
    }
}

/// The reading between two snapshots of one meter.
pub fn reading(info: &MeterInfo, name: &str, a: &Snapshot, b: &Snapshot) -> EnergyReading {
    let seconds = Seconds::from_duration(b.at.saturating_duration_since(a.at));
    let mut flags = Vec::new();
    if let Some(p) = info.update_period
        && seconds.0 < p.0
    {
        flags.push(format!(
            "window of {:.3} s is shorter than the meter's update period of {:.3} s: energy is approximate",
            seconds.0, p.0
        ));
    }
    let domains: Vec<DomainEnergy> = info
        .domains
        .iter()
        .zip(a.energy.iter().zip(&b.energy))
        .map(|(d, (ea, eb))| {
            let j = *eb - *ea;
            if j.0 < 0.0 {
                flags.push(format!(
                    "{}: cumulative energy went backwards by {:.3} J (counter reset?)",
                    d.domain, -j.0
                ));
            }
            DomainEnergy {
                domain: d.domain.clone(),
                meter: d.meter.clone(),
                provenance: d.provenance,
                joules: j,
                avg_watts: avg(j, seconds),
            }
        })
        .collect();
    let joules = domains.iter().map(|d| d.joules).sum();
    EnergyReading {
        window: name.to_string(),
        seconds,
        joules,
        avg_watts: avg(joules, seconds),
        domains,
        flags,
    }
}
