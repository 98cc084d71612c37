//! `joulebench meters`: which energy sources work here, why not, the
//! counter update period, and a short idle reading per domain.

use crate::config::MeterChoice;
use crate::measure::{MeasureError, MeasureSettings, Measurement};
use crate::meter::cpu_power::{
    CCF_LINES, CpuModel, CpuProfile, DRAM_WATTS_PER_GB, LOAD_CURVE, table_len,
};
use crate::meter::{self, Measurer, MeterError};
use crate::util::device::DeviceSpec;
use crate::util::table::{Col, TextTable};
use std::fmt::Write;

/// Why `joulebench meters` could not report.
#[derive(Debug, thiserror::Error)]
pub enum MetersError {
    #[error(transparent)]
    Measure(#[from] MeasureError),
    #[error(transparent)]
    Meter(#[from] MeterError),
    #[error("--calibrate compares the estimate with RAPL, which is not available here: {0}")]
    NoRapl(MeterError),
}

/// The device `meters` reports for, and the measurement settings given.
pub struct Target<'a> {
    pub device: DeviceSpec,
    pub settings: &'a MeasureSettings,
}

impl Target<'_> {
    fn measurement(&self) -> Result<Measurement, MeasureError> {
        self.settings.resolve()
    }
}

fn status(t: &Target, choice: MeterChoice) -> Result<String, MetersError> {
    let mut mo = crate::meter::MeterOptions {
        choice,
        ..t.measurement()?.meter
    };
    node_gpus_on_cpu(&mut mo, t.device);
    Ok(match meter::build(&mo, t.device) {
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
                    "\n  {} [{}] {}",
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

/// On a CPU run `meters` shows the node's GPUs anyway (they draw power
/// too): NVML with the run's GPUs becomes NVML with all of them.
fn node_gpus_on_cpu(mo: &mut crate::meter::MeterOptions, device: DeviceSpec) {
    if mo.choice == MeterChoice::Nvml
        && device == DeviceSpec::Cpu
        && mo.gpus == crate::config::GpuSelection::Run
    {
        mo.gpus = crate::config::GpuSelection::All;
    }
}

/// The report as text.
pub fn report(t: &Target) -> Result<String, MetersError> {
    let mut out = String::new();
    let _ = writeln!(out, "energy meters for --device {}:", t.device);
    let mut meters = TextTable::bare(&[Col::Left, Col::Wrap]).indent(2);
    for (name, choice) in [
        ("nvml", MeterChoice::Nvml),
        ("rapl", MeterChoice::Rapl),
        ("estimate", MeterChoice::Estimate),
    ] {
        meters.row([name.to_string(), status(t, choice)?]);
    }
    out.push_str(&meters.render());
    let mut m = t.measurement()?;
    node_gpus_on_cpu(&mut m.meter, t.device);
    out.push_str(&cpu_model_report(&m));
    let built = meter::build(&m.meter, t.device)?;
    let device = match t.device.open() {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(out, "no idle reading: {e}");
            return Ok(out);
        }
    };
    let mut measurer = Measurer::new(built.meter, device);
    let secs = t.settings.meter.idle_seconds.unwrap_or(1.0).max(0.2);
    let idle = measurer.measure_idle(secs)?;
    let _ = writeln!(
        out,
        "selected (--meter {}): {}",
        m.meter.choice.name(),
        measurer.info().name
    );
    let _ = writeln!(out, "idle reading over {:.1} s:", idle.seconds.0);
    let mut domains = TextTable::bare(&[Col::Left, Col::Right, Col::Wrap]).indent(2);
    for d in &idle.domains {
        domains.row([
            d.domain.clone(),
            format!("{:.3} W", d.avg_watts.0),
            format!("({}, {})", d.meter, d.provenance.label()),
        ]);
    }
    out.push_str(&domains.render());
    if idle.is_modelled() {
        let _ = writeln!(
            out,
            "note: `estimated` figures are modelled from this process's CPU utilisation and memory x rated power, \
             not measured; an idle process shows the model's idle share of the CPU."
        );
    }
    for f in &idle.flags {
        let _ = writeln!(out, "flag: {f}");
    }
    Ok(out)
}

/// What the CPU estimate knows about this CPU and the watts it will use.
fn cpu_model_report(m: &Measurement) -> String {
    let p = m.meter.cpu_profile();
    let model = CpuModel::new(&p, m.meter.cpu_watts_per_core);
    let mut o = String::new();
    let _ = writeln!(o, "cpu estimate model:");
    let read = if p.model_configured {
        "from the settings"
    } else {
        "from /proc/cpuinfo"
    };
    let vm = if p.virtualised {
        "; virtualised: the visible topology is the VM's, not the host's"
    } else {
        ""
    };
    let _ = writeln!(
        o,
        "  model name     {} ({read}{vm})",
        p.model.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(o, "  TDP            {}", p.tdp_text());
    let _ = writeln!(o, "  threads        {}", p.threads_text());
    let _ = writeln!(
        o,
        "  architecture   {}",
        p.architecture.as_deref().map_or(
            "not recognised: the band spans every Cloud Carbon Footprint line".to_string(),
            |a| format!("{a} (Cloud Carbon Footprint line)")
        )
    );
    let _ = writeln!(
        o,
        "  usable threads {} (this process's CPU affinity and quota)",
        p.vcpus
    );
    let w = |u: f64| {
        let b = model.per_vcpu(u);
        format!("{:.2} W ({:.2}-{:.2})", b.central, b.low, b.high)
    };
    let _ = writeln!(o, "  per thread     idle {}, full load {}", w(0.0), w(1.0));
    let _ = writeln!(o, "  method         {}", model.describe());
    let dram = match m.meter.dram_watts_per_gb {
        Some(x) => format!("{x} W/GB (set in the settings)"),
        None => format!(
            "{} W/GB, band {}-{} (CodeCarbon; Teads/Boavizta; Cloud Carbon Footprint)",
            DRAM_WATTS_PER_GB.1, DRAM_WATTS_PER_GB.0, DRAM_WATTS_PER_GB.2
        ),
    };
    let _ = writeln!(o, "  DRAM           {dram}");
    let curve: Vec<String> = LOAD_CURVE
        .iter()
        .map(|(u, f)| format!("{:.0}% {f}", u * 100.0))
        .collect();
    let _ = writeln!(
        o,
        "  sources        TDP: {} ({} rows); load curve x TDP: Teads/Boavizta ({}); per-vCPU lines: Cloud Carbon Footprint from SPECpower ({} microarchitectures)",
        p.table,
        table_len(),
        curve.join(", "),
        CCF_LINES.len()
    );
    o
}

/// `joulebench meters --calibrate`: the load ladder against RAPL.
pub fn calibrate(t: &Target, seconds: f64) -> Result<String, MetersError> {
    let m = t.measurement()?;
    let mut rapl = meter::rapl::RaplMeter::open(&m.meter.rapl_root).map_err(MetersError::NoRapl)?;
    let p = m.meter.cpu_profile();
    let model = CpuModel::new(&p, m.meter.cpu_watts_per_core);
    let steps = meter::calibrate::ladder(
        &mut rapl,
        &model,
        p.vcpus as usize,
        seconds,
        &meter::calibrate::spin,
    )?;
    Ok(calibration_table(&p, &steps))
}

/// The ladder as a table.
pub fn calibration_table(p: &CpuProfile, steps: &[meter::calibrate::Step]) -> String {
    let mut t = TextTable::new(&[
        ("step", Col::Left),
        ("seconds", Col::Right),
        ("RAPL cpu W", Col::Right),
        ("RAPL dram W", Col::Right),
        ("estimate W (low-high)", Col::Right),
        ("est/RAPL", Col::Right),
    ]);
    for s in steps {
        let name = match s.busy {
            0 => "idle".to_string(),
            1 => "1 thread".to_string(),
            n => format!("{n} threads"),
        };
        let e = s.estimated_w;
        t.row([
            name,
            format!("{:.2}", s.seconds),
            format!("{:.2}", s.measured_cpu_w),
            format!("{:.2}", s.measured_dram_w),
            format!("{:.2} ({:.2}-{:.2})", e.central, e.low, e.high),
            format!("{:.2}", s.ratio()),
        ]);
    }
    cpu_model_summary(p) + &t.render()
}

fn cpu_model_summary(p: &CpuProfile) -> String {
    format!(
        "calibration of the CPU estimate for {} ({}; {}; {} usable threads) against RAPL:\n",
        p.model.as_deref().unwrap_or("(unknown CPU)"),
        p.tdp_text(),
        p.threads_text(),
        p.vcpus
    )
}
