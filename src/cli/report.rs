//! `joulebench report` and `joulebench plot`: read a run folder, write the
//! report, CSV and plots (or only the plots).

use super::args::check_target;
use anyhow::Result;
use clap::Args;
use joulebench::analysis::report::write_report;
use joulebench::analysis::{Run, plots, series};
use std::path::PathBuf;

#[derive(Args)]
pub struct ReportArgs {
    run: PathBuf,
    /// Target validation accuracy for energy-to-accuracy, in [0, 1] (default: the lowest final one).
    #[arg(long)]
    target: Option<f64>,
}

#[derive(Args)]
pub struct PlotArgs {
    run: PathBuf,
    #[arg(long)]
    target: Option<f64>,
}

pub fn report(a: ReportArgs) -> Result<i32> {
    check_target(a.target)?;
    let r = Run::load(&a.run)?;
    let w = write_report(&r, a.target)?;
    println!(
        "wrote {}, {} and {} plot files under {}",
        w.report.display(),
        w.csv.display(),
        w.plots.len(),
        a.run.join("plots").display()
    );
    Ok(0)
}

pub fn plot(a: PlotArgs) -> Result<i32> {
    check_target(a.target)?;
    let r = Run::load(&a.run)?;
    let t = a.target.unwrap_or_else(|| series::default_target(&r));
    for f in plots::draw_all(&r, &a.run.join("plots"), t)? {
        println!("{}", f.display());
    }
    Ok(0)
}
