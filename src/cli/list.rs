//! `joulebench list`: every workload model, every suite setting with its
//! allowed values, and the meters — printed from the tables the suite
//! parser itself uses, so the list cannot fall behind the parser.

use anyhow::Result;
use joulebench::config::{MeterChoice, ModelKind};
use joulebench::measure::MeasureSettings;
use joulebench::suite::settings::Settings;
use joulebench::util::table::{Col, TextTable};

pub fn run() -> Result<i32> {
    println!("workloads (models a [[workload]] can name with `model = ...`):");
    let mut t = list();
    for (name, kind) in ModelKind::ALL {
        t.row([name.to_string(), kind.describe().to_string()]);
    }
    print!("{}", t.render());
    println!();
    println!(
        "settings of [defaults], [[workload]] or [[variant]] (a variant wins over its workload, a workload over [defaults]):"
    );
    let mut t = list();
    for (d, default) in Settings::builtin().values() {
        let default = default.map_or(String::new(), |v| format!(" (default {v})"));
        t.row([
            d.key.to_string(),
            format!("{}\nallowed: {}{default}", d.about, d.allowed.describe()),
        ]);
    }
    print!("{}", t.render());
    println!();
    println!("[defaults] only:");
    let mut t = list();
    t.row([
        "seeds",
        "seeds of the trials: a list of distinct integers >= 0 (default [0]), or { first = 1, min = 3, max = 10, margin_pct = 5 } to add seeds until each comparison with the baseline is resolved",
    ]);
    t.row(["repeats", "repeats of each seed; 1..=1000 (default 1)"]);
    print!("{}", t.render());
    println!();
    println!("[protocol]:");
    let mut t = list();
    t.row([
        "order",
        "shuffled | fixed: the order variants run in within each seed (default shuffled)",
    ]);
    t.row([
        "order_seed",
        "seed of the shuffle; integer >= 0 (default 0)",
    ]);
    t.row([
        "warmup_steps",
        "training steps of a discarded warm-up before each workload's first trial; 0..=100000, 0 = off (default 20)",
    ]);
    print!("{}", t.render());
    let builtin = MeasureSettings::builtin();
    for section in ["meter", "impact"] {
        println!();
        println!(
            "[{section}] (each also a flag of run, slurm, reproduce and meters, which wins over the suite):"
        );
        let mut t = list();
        for (spec, default) in builtin.knobs() {
            if spec.section != section || spec.hidden {
                continue;
            }
            let default = default.map_or(String::new(), |d| format!(" (default {})", d.shown()));
            t.row([
                spec.key.to_string(),
                format!(
                    "{} (--{})\nallowed: {}{default}",
                    spec.about, spec.flag, spec.allowed
                ),
            ]);
        }
        print!("{}", t.render());
    }
    println!();
    println!("meters (--meter or [meter] kind; `joulebench meters` shows which work here):");
    let mut t = list();
    for m in MeterChoice::ALL.iter().map(|(_, m)| *m) {
        t.row([m.name().to_string(), describe(m)]);
    }
    print!("{}", t.render());
    Ok(0)
}

/// Names and what they mean, indented, the meaning wrapped on a terminal.
fn list() -> TextTable {
    TextTable::bare(&[Col::Left, Col::Wrap]).indent(2)
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
