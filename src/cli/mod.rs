//! The command-line interface (the `anyhow` edge): one file per subcommand,
//! and `main` a dispatcher.

mod args;
mod compare;
mod list;
mod meters;
mod report;
mod reproduce;
mod run;
mod schedule;
mod slurm;
mod status;
mod validate;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "joulebench",
    version,
    about = "Measure the energy cost of ML optimization techniques"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Run (or resume) a suite and write its records under the results folder.
    Run(run::RunArgs),
    /// What-if: the run's CO2e had it started at every hour of a year, per grid region.
    Schedule(schedule::ScheduleArgs),
    /// Write an sbatch array script that runs a suite in shards (and submit it with --submit).
    Slurm(slurm::SlurmArgs),
    /// Progress of a run folder: per shard done/planned, failed, state and nodes.
    Status { run: PathBuf },
    /// Write report.md, trials.csv and plots/ for a run folder (also a partial one).
    Report(report::ReportArgs),
    /// Draw only the plots of a run folder.
    Plot(report::PlotArgs),
    /// Compare run B against run A per workload x variant, with 95% CIs.
    Compare(compare::CompareArgs),
    /// Run claim suites and write reproduction.md with a verdict per claim.
    Reproduce(reproduce::ReproduceArgs),
    /// Check a suite file and print its expanded plan.
    Validate {
        suite: PathBuf,
        /// Apply the suite's [quick] table over its defaults.
        #[arg(long)]
        quick: bool,
    },
    /// List the known workloads, every suite setting with its allowed values, and the meters.
    List,
    /// Show which energy meters work here, why not, and a short idle reading.
    Meters {
        #[command(flatten)]
        meter: args::MeterArgs,
        /// Where RAPL exists: run a load ladder (idle, 1 thread, all threads)
        /// and print measured vs estimated watts.
        #[arg(long)]
        calibrate: bool,
        /// Seconds per step of the calibration ladder.
        #[arg(long, default_value_t = 3.0, value_parser = calibrate_seconds)]
        calibrate_seconds: f64,
    },
    /// List the grid regions of the bundled carbon-intensity table and the hourly profiles, with licences.
    Regions,
}

fn calibrate_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.1..=60.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: seconds per step, a number in [0.1, 60]")),
    }
}

pub fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Slurm(a) => slurm::run(a),
        Command::Schedule(a) => schedule::run(a),
        Command::Status { run } => status::run(&run),
        Command::Report(a) => report::report(a),
        Command::Plot(a) => report::plot(a),
        Command::Compare(a) => compare::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Validate { suite, quick } => validate::run(&suite, quick),
        Command::List => list::run(),
        Command::Meters {
            meter,
            calibrate,
            calibrate_seconds,
        } => meters::meters(meter, calibrate.then_some(calibrate_seconds)),
        Command::Regions => meters::regions(),
    }
}
