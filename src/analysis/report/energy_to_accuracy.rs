//! The report's "Energy to accuracy" section: per variant, how many trials
//! reached the target and the energy and time they took to get there.

use super::est;
use crate::analysis::aggregate::summarize;
use crate::analysis::stats::Estimate;
use crate::analysis::study::{Ctx, Study};
use crate::analysis::{Run, series};
use std::fmt::Write;

/// Energy and time to the target accuracy, per variant.
pub struct EnergyToAccuracy;

impl Study for EnergyToAccuracy {
    fn name(&self) -> &'static str {
        "energy-to-accuracy"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        energy_to_accuracy(o, ctx.run, ctx.target);
    }
}

/// Energy and time to the target accuracy.
fn energy_to_accuracy(o: &mut String, run: &Run, target: f64) {
    let _ = writeln!(
        o,
        "\n## Energy to accuracy (target {:.1}% validation accuracy)\n",
        target * 100.0
    );
    let _ = writeln!(
        o,
        "Cumulative training + validation energy and time until the first evaluation at or above the target (evaluations once per epoch).\n"
    );
    let _ = writeln!(
        o,
        "| workload | variant | reached | energy to target (J) | time to target (s) |\n|---|---|---|---|---|"
    );
    let eta = series::eta_table(run, target);
    for v in summarize(&run.records) {
        let prefix = format!("{}/{}/", v.workload, v.variant);
        let these: Vec<&Option<(f64, f64)>> = eta
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, e)| e)
            .collect();
        let hit: Vec<(f64, f64)> = these.iter().filter_map(|e| **e).collect();
        let ej = Estimate::of(&hit.iter().map(|h| h.0).collect::<Vec<_>>());
        let es = Estimate::of(&hit.iter().map(|h| h.1).collect::<Vec<_>>());
        let _ = writeln!(
            o,
            "| {} | {} | {}/{} | {} | {} |",
            v.workload,
            v.variant,
            hit.len(),
            these.len(),
            est(&ej),
            est(&es)
        );
    }
}
