//! `joulebench schedule`: a carbon-aware scheduling what-if for a run.

use anyhow::Result;
use clap::Args;
use joulebench::analysis::Run;
use joulebench::analysis::schedule::{self, ScheduleOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct ScheduleArgs {
    /// Run folder (also a sharded or partial one).
    run: PathBuf,
    /// Grid with an hourly profile (see `joulebench regions`), repeatable, or
    /// `all`; default: the run's own region.
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Compare "start now" with "start at the best hour within the next N hours".
    #[arg(long, default_value = "24h", value_parser = within)]
    within: u32,
    /// Only profiles of this data year (2023: Electricity Maps; 2022: EIA-930).
    #[arg(long)]
    year: Option<i32>,
    /// One trial (workload/variant/sS/rR) instead of the whole run.
    #[arg(long)]
    trial: Option<String>,
}

fn within(s: &str) -> Result<u32, String> {
    let n = s.strip_suffix('h').unwrap_or(s);
    match n.trim().parse::<u32>() {
        Ok(h) if h <= 720 => Ok(h),
        _ => Err(format!("{s:?}: hours, 0..=720, e.g. 24h")),
    }
}

pub fn run(a: ScheduleArgs) -> Result<i32> {
    let run = Run::load(&a.run)?;
    let opts = ScheduleOptions {
        regions: a.regions,
        within_hours: a.within,
        year: a.year,
        trial: a.trial,
    };
    let (md, table) = schedule::write(&run, &opts)?;
    print!("{table}");
    println!("what-if: {}", md.display());
    Ok(0)
}
