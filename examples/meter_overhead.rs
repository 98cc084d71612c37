//! Overhead of measuring on training: MLP training steps (batch 128) inside
//! an open energy window of an NVML meter polling every 20 ms, against the
//! same steps with no meter. The machine is shared and noisy, so blocks of
//! steps alternate (off, on) 20 times and the figure is the median of the 20
//! paired on/off ratios, with their interquartile range. Besides wall time,
//! it reads the poller thread's own CPU time (/proc schedstat, in ns) against
//! the whole process's: the share of the work that measuring adds.
//!
//! The GPU API is `InstantGpu`, a stand-in that answers at once, so this
//! measures the poller thread's wake-ups and bookkeeping on this machine;
//! real NVML calls add their own latency on a GPU host (scripts/gpu-check.sh).
//!
//! Run: cargo run --release --example meter_overhead

use candle_core::{DType, Device};
use joulebench::meter::Measurer;
use joulebench::meter::fake::InstantGpu;
use joulebench::meter::nvml::NvmlMeter;
use joulebench::model::ModelKind;
use joulebench::train::bench::StepBench;
use joulebench::util::stats::quantile;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAIRS: usize = 20;
const STEPS: usize = 40;

fn steps(b: &mut StepBench, n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        b.step().unwrap();
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// CPU nanoseconds of this process's thread named `name` (Linux only).
fn thread_cpu_ns(name: &str) -> Option<u64> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.trim() != name {
                return None;
            }
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse().ok()
        })
}

/// CPU seconds used by the whole process so far.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    joulebench::util::alloc::keep_freed_memory();
    let mut b = StepBench::new(ModelKind::Mlp, 128, DType::F32, true, &Device::Cpu).unwrap();
    steps(&mut b, 10); // warm-up
    let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut poller_ns, mut on_cpu_s) = (0u64, 0.0);
    for _ in 0..PAIRS {
        let a = steps(&mut b, STEPS);
        let meter =
            NvmlMeter::open(Arc::new(InstantGpu), None, &[0], Duration::from_millis(20)).unwrap();
        let mut m = Measurer::new(Box::new(meter), Device::Cpu);
        let cpu0 = process_cpu_s();
        let w = m.begin("train").unwrap();
        let c = steps(&mut b, STEPS);
        m.end(w).unwrap();
        on_cpu_s += process_cpu_s() - cpu0;
        poller_ns += thread_cpu_ns("nvml-poller").unwrap_or(0);
        drop(m);
        off.push(a);
        on.push(c);
        ratios.push(c / a);
    }
    let med = |v: &[f64]| quantile(v, 0.5);
    println!(
        "MLP step (batch 128), {PAIRS} alternating pairs of {STEPS} steps: {:.3} ms without a meter, {:.3} ms inside a window of a 20 ms NVML poller (medians)",
        med(&off) * 1e3,
        med(&on) * 1e3
    );
    println!(
        "on/off ratio: median {:.4} ({:+.2}%), interquartile {:.4}-{:.4}; the poller thread used {:.3} ms of CPU = {:.3}% of the process's CPU time while on (target <= 1%)",
        med(&ratios),
        (med(&ratios) - 1.0) * 100.0,
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
        poller_ns as f64 * 1e-6,
        poller_ns as f64 * 1e-9 / on_cpu_s * 100.0
    );
}
