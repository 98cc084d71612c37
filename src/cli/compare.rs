//! `joulebench compare`: run B against run A, per workload × variant.

use anyhow::{Result, bail};
use clap::Args;
use joulebench::analysis::{Run, compare};
use std::path::PathBuf;

#[derive(Args)]
pub struct CompareArgs {
    run_a: PathBuf,
    run_b: PathBuf,
    /// A significant energy or time increase above this many percent is a regression (0-1000).
    #[arg(long, default_value_t = 5.0, value_parser = percent)]
    energy_threshold: f64,
    /// A significant accuracy drop above this many points is a regression (0-100).
    #[arg(long, default_value_t = 1.0, value_parser = points)]
    accuracy_threshold: f64,
    /// Exit with code 3 when a regression is flagged (for CI gates).
    #[arg(long)]
    fail_on_regression: bool,
    /// Compare workload/variant names even where their resolved settings differ.
    #[arg(long)]
    allow_different_configs: bool,
}

fn bounded(s: &str, hi: f64, what: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=hi).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: {what}, a number in [0, {hi}]")),
    }
}

fn percent(s: &str) -> Result<f64, String> {
    bounded(s, 1000.0, "a percentage")
}

fn points(s: &str) -> Result<f64, String> {
    bounded(s, 100.0, "percentage points of accuracy")
}

pub fn run(a: CompareArgs) -> Result<i32> {
    let run_a = Run::load(&a.run_a)?;
    let run_b = Run::load(&a.run_b)?;
    let differ = compare::config_mismatches(&run_a, &run_b);
    if !differ.is_empty() && !a.allow_different_configs {
        bail!(
            "{} and {} use the same workload/variant names for different settings, so their energy is not like for like:\n  {}\n(--allow-different-configs compares them anyway)",
            a.run_a.display(),
            a.run_b.display(),
            differ.join("\n  ")
        );
    }
    for d in &differ {
        eprintln!("note: settings differ for {d}");
    }
    for (path, run) in [(&a.run_a, &run_a), (&a.run_b, &run_b)] {
        if let Some(m) = run.manifest.as_ref().filter(|m| !m.filters.is_empty()) {
            eprintln!("note: {} is a filtered run ({})", path.display(), m.filters);
        }
    }
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
