//! `joulebench meters`: which energy sources work here, why not, the
//! counter update period, and a short idle reading per domain.

use crate::config::MeterChoice;
use crate::harness::runner::{RunError, RunOptions};
use crate::meter::{self, Measurer, MeterError};
use std::fmt::Write;

fn status(opts: &RunOptions, choice: MeterChoice) -> Result<String, RunError> {
    let suite_defaults = crate::harness::runner::Measurement::defaults(opts)?;
    let mo = crate::meter::MeterOptions {
        choice,
        ..suite_defaults.meter
    };
    Ok(match meter::build(&mo, opts.device) {
        Ok(b) => {
            let info = b.meter.info();
            let mut s = format!(
                "available: {} domain(s){}",
                info.domains.len(),
                info.update_period
                    .map(|p| format!(", counter update period {:.1} ms", p.0 * 1e3))
                    .unwrap_or_default()
            );
            for d in info.domains {
                let _ = write!(
                    s,
                    "\n      {} [{}] {}",
                    d.domain,
                    d.provenance.label(),
                    d.method
                );
            }
            s
        }
        Err(MeterError::Unavailable { reason, .. }) => format!("unavailable: {reason}"),
        Err(e) => format!("unavailable: {e}"),
    })
}

/// The report as text.
pub fn report(opts: &RunOptions) -> Result<String, RunError> {
    let mut out = String::new();
    let _ = writeln!(out, "energy meters for --device {}:", opts.device);
    for (name, choice) in [
        ("nvml", MeterChoice::Nvml),
        ("rapl", MeterChoice::Rapl),
        ("estimate", MeterChoice::Estimate),
    ] {
        let _ = writeln!(out, "  {name:<9} {}", status(opts, choice)?);
    }
    let m = crate::harness::runner::Measurement::defaults(opts)?;
    let built = meter::build(&m.meter, opts.device)?;
    let device = match opts.device.open() {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(out, "no idle reading: {e}");
            return Ok(out);
        }
    };
    let mut measurer = Measurer::new(built.meter, device);
    let secs = opts.idle_seconds.unwrap_or(1.0).max(0.2);
    let idle = measurer.measure_idle(secs)?;
    let _ = writeln!(
        out,
        "selected (--meter {}): {}",
        m.meter.choice.name(),
        measurer.info().name
    );
    let _ = writeln!(out, "idle reading over {:.1} s:", idle.seconds.0);
    for d in &idle.domains {
        let _ = writeln!(
            out,
            "  {:<16} {:>9.3} W  ({}, {})",
            d.domain,
            d.avg_watts.0,
            d.meter,
            d.provenance.label()
        );
    }
    if idle.is_modelled() {
        let _ = writeln!(
            out,
            "note: `estimated` figures are modelled from CPU time and memory x rated power, not measured; \
             a sleeping process shows ~0 W of CPU."
        );
    }
    for f in &idle.flags {
        let _ = writeln!(out, "flag: {f}");
    }
    Ok(out)
}
