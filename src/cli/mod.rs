//! The command-line interface (the `anyhow` edge): one file per subcommand,
//! and `main` a dispatcher.

mod args;
mod compare;
mod list;
mod meters;
mod report;
mod reproduce;
mod run;
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
    /// Write report.md, trials.csv and plots/ for a run folder (also a partial one).
    Report(report::ReportArgs),
    /// Draw only the plots of a run folder.
    Plot(report::PlotArgs),
    /// Compare run B against run A per workload x variant, with 95% CIs.
    Compare(compare::CompareArgs),
    /// Run claim suites and write reproduction.md with a verdict per claim.
    Reproduce(reproduce::ReproduceArgs),
    /// Check a suite file and print its expanded plan.
    Validate { suite: PathBuf },
    /// List the known workloads, every suite setting with its allowed values, and the meters.
    List,
    /// Show which energy meters work here, why not, and a short idle reading.
    Meters {
        #[command(flatten)]
        meter: args::MeterArgs,
    },
    /// List the grid regions of the bundled carbon-intensity table.
    Regions,
}

pub fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Report(a) => report::report(a),
        Command::Plot(a) => report::plot(a),
        Command::Compare(a) => compare::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Validate { suite } => validate::run(&suite),
        Command::List => list::run(),
        Command::Meters { meter } => meters::meters(meter),
        Command::Regions => meters::regions(),
    }
}
