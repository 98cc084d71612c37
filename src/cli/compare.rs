//! `joulebench compare`: run B against run A, per workload × variant.

use anyhow::{Result, bail};
use clap::Args;
use joulebench::analysis::{Run, compare};
use std::path::PathBuf;

#[derive(Args)]
pub struct CompareArgs {
    run_a: PathBuf,
    run_b: PathBuf,
    /// A significant energy or time increase above this many percent is a regression.
    #[arg(long, default_value_t = 5.0)]
    energy_threshold: f64,
    /// A significant accuracy drop above this many points is a regression.
    #[arg(long, default_value_t = 1.0)]
    accuracy_threshold: f64,
    /// Exit with code 3 when a regression is flagged (for CI gates).
    #[arg(long)]
    fail_on_regression: bool,
}

pub fn run(a: CompareArgs) -> Result<i32> {
    let run_a = Run::load(&a.run_a)?;
    let run_b = Run::load(&a.run_b)?;
    let rows = compare::compare(&run_a, &run_b, a.energy_threshold, a.accuracy_threshold);
    if rows.is_empty() {
        bail!(
            "{} and {} share no workload/variant with completed trials",
            a.run_a.display(),
            a.run_b.display()
        );
    }
    print!("{}", compare::table(&rows));
    let bad = rows.iter().filter(|r| !r.regression.is_empty()).count();
    if bad > 0 {
        eprintln!("{bad} regression(s) flagged");
        if a.fail_on_regression {
            return Ok(3);
        }
    }
    Ok(0)
}
