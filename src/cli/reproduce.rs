//! `joulebench reproduce`: run claim suites and write reproduction.md.

use super::args::{DataArgs, MeterArgs, run_options};
use anyhow::Result;
use clap::Args;
use joulebench::harness::options::RunOptions;
use joulebench::reproduce;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReproduceArgs {
    /// Claim ids to run (default: all in the claims folder).
    ids: Vec<String>,
    /// CPU-sized versions (each suite's [quick] overrides).
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value = "experiments/claims")]
    claims_dir: PathBuf,
    #[arg(long, default_value = "results")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    meter: MeterArgs,
    /// Let claim suites that change GPU power limits run (see `run --allow-gpu-settings`).
    #[arg(long)]
    allow_gpu_settings: bool,
    /// Judge the claims of runs already made (e.g. a sharded run on a
    /// cluster) instead of running the claim suites; repeatable.
    #[arg(long = "run", value_name = "RUN_DIR", conflicts_with = "ids")]
    runs: Vec<PathBuf>,
}

pub fn run(a: ReproduceArgs) -> Result<i32> {
    if !a.runs.is_empty() {
        let results = reproduce::judge_runs(&a.runs)?;
        return write(&a, &results);
    }
    let suites = reproduce::discover(&a.claims_dir, &a.ids, a.quick)?;
    let opts = RunOptions {
        results_root: a.out.clone(),
        allow_gpu_settings: a.allow_gpu_settings,
        ..run_options(&a.meter, a.data.clone())?
    };
    joulebench::util::interrupt::install();
    let total: usize = suites
        .iter()
        .map(|c| c.suite.plan().map_or(0, |p| p.trials.len()))
        .sum();
    let progress = joulebench::console::progress::Console::new(total);
    let results = reproduce::run_all(&suites, &opts, &progress)?;
    drop(progress);
    write(&a, &results)
}

fn write(a: &ReproduceArgs, results: &[reproduce::Reproduced]) -> Result<i32> {
    let stamp = joulebench::util::timefmt::folder_stamp(std::time::SystemTime::now());
    let dir = a.out.join("reproduction").join(if a.quick {
        format!("{stamp}-quick")
    } else {
        stamp
    });
    let md = reproduce::write(&dir, results, a.quick)?;
    print!("{}", reproduce::table(results));
    println!("report: {}", md.display());
    Ok(0)
}
