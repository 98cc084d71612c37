//! `joulebench compare`: run B against run A, per workload × variant.

use anyhow::{Result, bail};
use clap::Args;
use joulebench::analysis::{Run, compare};
use std::path::PathBuf;

#[derive(Args)]
pub struct CompareArgs {
    run_a: PathBuf,
    run_b: PathBuf,
    /// An energy or time increase whose whole 95% interval lies above this
    /// many percent is a regression; one whose interval spans it cannot be
    /// judged (0-1000).
    #[arg(long, default_value_t = 5.0, value_parser = percent)]
    energy_threshold: f64,
    /// An accuracy drop whose whole interval lies beyond this many points is a regression (0-100).
    #[arg(long, default_value_t = 1.0, value_parser = points)]
    accuracy_threshold: f64,
    /// Exit 3 when a regression is found, else 4 when a comparison cannot
    /// be judged (too few pairs, too much noise, a disturbed run), for CI gates.
    #[arg(long)]
    fail_on_regression: bool,
    /// Also write the comparison as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
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
    let th = compare::Thresholds {
        pct: a.energy_threshold,
        accuracy_pp: a.accuracy_threshold,
    };
    let rows = compare::compare(&run_a, &run_b, th);
    if rows.is_empty() {
        bail!(
            "{} and {} share no workload/variant with completed trials",
            a.run_a.display(),
            a.run_b.display()
        );
    }
    print!("{}", compare::table(&rows, th));
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&rows)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let count = |v: compare::Verdict| rows.iter().filter(|r| r.verdict == v).count();
    let (bad, open) = (
        count(compare::Verdict::Regression),
        count(compare::Verdict::CannotJudge),
    );
    if bad > 0 {
        eprintln!("{bad} regression(s) found");
    }
    if open > 0 {
        eprintln!("{open} comparison(s) cannot be judged (see the verdict column)");
    }
    Ok(match (a.fail_on_regression, bad, open) {
        (true, 1.., _) => 3,
        (true, 0, 1..) => 4,
        _ => 0,
    })
}
