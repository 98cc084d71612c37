//! The report's "Against the baseline" section: each variant's paired
//! savings and accuracy change against the baseline variant.

use super::est;
use crate::analysis::Run;
use crate::analysis::aggregate::paired;
use crate::analysis::study::{Ctx, Study};
use std::fmt::Write;

/// Paired deltas against the baseline (nothing without pairs).
pub struct AgainstBaseline;

impl Study for AgainstBaseline {
    fn name(&self) -> &'static str {
        "against-baseline"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        against_baseline(o, ctx.run);
    }
}

/// Paired deltas against the baseline variant.
fn against_baseline(o: &mut String, run: &Run) {
    if let Some(base) = run.baseline() {
        let ps = paired(&run.records, &base);
        if !ps.is_empty() {
            let _ = writeln!(
                o,
                "\n## Against the baseline `{base}` (paired on seed and repeat)\n"
            );
            let _ = writeln!(
                o,
                "Positive savings mean the variant used less. ✱ marks an interval that excludes zero.\n"
            );
            let _ = writeln!(
                o,
                "| workload | variant | pairs | energy saved % (gross) | train energy saved % (net) | time saved % | Δ test accuracy (pp) |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|");
            let star = |e: &crate::analysis::stats::Estimate| {
                format!("{}{}", est(e), if e.excludes_zero() { " ✱" } else { "" })
            };
            for p in ps {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    p.workload,
                    p.variant,
                    p.pairs,
                    star(&p.energy_saved_pct),
                    star(&p.net_train_energy_saved_pct),
                    star(&p.time_saved_pct),
                    star(&p.accuracy_delta_pp)
                );
            }
        }
    }
}
