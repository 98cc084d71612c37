//! `joulebench list`: every workload model, every suite setting with its
//! allowed values, and the meters — printed from the tables the suite
//! parser itself uses, so the list cannot fall behind the parser.

use anyhow::Result;
use joulebench::config::{MeterChoice, ModelKind};
use joulebench::measure::MeasureSettings;
use joulebench::suite::settings::Settings;

pub fn run() -> Result<i32> {
    println!("workloads (models a [[workload]] can name with `model = ...`):");
    for (name, kind) in ModelKind::ALL {
        println!("  {name:<18} {}", kind.describe());
    }
    println!();
    println!(
        "settings of [defaults], [[workload]] or [[variant]] (a variant wins over its workload, a workload over [defaults]):"
    );
    for (d, default) in Settings::builtin().values() {
        let default = default.map_or(String::new(), |v| format!(" (default {v})"));
        println!("  {:<28} {}", d.key, d.about);
        println!("  {:<28} allowed: {}{default}", "", d.allowed.describe());
    }
    println!();
    println!("[defaults] only:");
    println!(
        "  {:<28} seeds of the trials; list of distinct integers >= 0 (default [0])",
        "seeds"
    );
    println!(
        "  {:<28} repeats of each seed; 1..=1000 (default 1)",
        "repeats"
    );
    println!();
    let builtin = MeasureSettings::builtin();
    for section in ["meter", "impact"] {
        println!(
            "[{section}] (each also a flag of run, slurm, reproduce and meters, which wins over the suite):"
        );
        for (spec, default) in builtin.knobs() {
            if spec.section != section || spec.hidden {
                continue;
            }
            let default = default.map_or(String::new(), |d| format!(" (default {})", d.shown()));
            println!("  {:<28} {} (--{})", spec.key, spec.about, spec.flag);
            println!("  {:<28} allowed: {}{default}", "", spec.allowed);
        }
    }
    println!();
    println!("meters (--meter or [meter] kind; `joulebench meters` shows which work here):");
    for m in MeterChoice::ALL.iter().map(|(_, m)| *m) {
        println!("  {:<10} {}", m.name(), describe(m));
    }
    Ok(0)
}

fn describe(m: MeterChoice) -> String {
    match m {
        MeterChoice::Auto => "every real source available (NVML for the run's GPU, RAPL for CPU and DRAM), the estimate for the rest".into(),
        MeterChoice::Nvml => "NVIDIA GPU energy counter (or polled instant power, integrated)".into(),
        MeterChoice::Rapl => "CPU package and DRAM energy counters (Linux powercap)".into(),
        MeterChoice::Estimate => "this process's CPU utilisation x the CPU's rated power (TDP table, load curve) or per-vCPU lines, and resident memory x W/GB; labelled `estimated`, with a low-high band".into(),
        MeterChoice::Fake => "constant power x wall time, for tests; labelled `fake`".into(),
    }
}
