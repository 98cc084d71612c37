//! The report's "Against the baseline" section: each variant's paired
//! savings and accuracy change against the baseline variant.

use super::est;
use crate::analysis::Run;
use crate::analysis::aggregate::paired;
use crate::analysis::stats::Ratio;
use crate::analysis::study::{Ctx, Study};
use crate::config::protocol::DEFAULT_MARGIN_PCT;
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

/// `saved % [low, high]` of a ratio (positive: the variant used less), ✱
/// when the interval excludes no change.
pub(crate) fn saved(r: &Ratio) -> String {
    if !r.log.mean.is_finite() {
        return "-".into();
    }
    let star = if r.excludes_zero() { " ✱" } else { "" };
    if !r.log.ci95.is_finite() {
        return format!("{:.1}", -r.change_pct());
    }
    format!(
        "{:.1} [{:.1}, {:.1}]{star}",
        -r.change_pct(),
        -r.high_pct(),
        -r.low_pct()
    )
}

/// Paired deltas against the baseline variant.
fn against_baseline(o: &mut String, run: &Run) {
    let Some(base) = run.baseline() else { return };
    let ps = paired(&run.records, &base);
    if ps.is_empty() {
        return;
    }
    let margin = run
        .suite
        .as_ref()
        .map_or(DEFAULT_MARGIN_PCT, |s| s.protocol.margin_pct());
    let _ = writeln!(
        o,
        "\n## Against the baseline `{base}` (paired on seed and repeat)\n"
    );
    let _ = writeln!(
        o,
        "Savings are 100 × (1 − variant / baseline) with a 95% interval: the ratio's Student t interval on the log scale over the pairs \
         (energy differences are multiplicative, so the log ratio is the scale they are symmetric on). Positive means the variant used less; \
         ✱ marks an interval that excludes no change. Only completed, valid trials are paired. The verdict is on gross energy at a margin of ±{margin} %.\n"
    );
    let _ = writeln!(
        o,
        "| workload | variant | pairs | energy saved % (gross) | train energy saved % (net) | train time saved % | Δ test accuracy (pp) | verdict |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for p in ps {
        let acc = &p.accuracy_delta_pp;
        let disturbed = if p.disturbed_pairs > 0 {
            format!(
                " (flagged: other work ran during {} pair(s))",
                p.disturbed_pairs
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {}{} | {}{disturbed} |",
            p.workload,
            p.variant,
            p.pairs,
            saved(&p.energy),
            saved(&p.net_train_energy),
            saved(&p.train_time),
            est(acc),
            if acc.excludes_zero() { " ✱" } else { "" },
            p.energy_verdict(margin)
        );
    }
}
