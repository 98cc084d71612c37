//! The report's "Estimated energy with its band" section and the
//! `trials.csv` columns of the band (modelled runs: each figure under the
//! lowest and the highest model of the estimate's band).

use super::baseline::saved;
use super::fmt_sig;
use crate::analysis::Run;
use crate::analysis::aggregate::{TrialMetrics, paired, summarize};
use crate::analysis::csv_export::num;
use crate::analysis::study::{Ctx, Study};
use crate::record::TrialRecord;
use std::fmt::Write;

/// The estimate's band: its section and its four CSV columns.
pub struct EstimateBand;

impl Study for EstimateBand {
    fn name(&self) -> &'static str {
        "estimate-band"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        estimate_band(o, ctx.run);
    }

    fn csv_columns(&self) -> &'static [&'static str] {
        &["gross_j_low", "gross_j_high", "train_j_low", "train_j_high"]
    }

    fn csv_cells(&self, _record: &TrialRecord, m: &TrialMetrics) -> Vec<String> {
        vec![
            num(m.gross_j_low),
            num(m.gross_j_high),
            num(m.train_j_low),
            num(m.train_j_high),
        ]
    }
}

/// Modelled runs: each variant's energy with the estimate's band, and
/// whether the band leaves a paired saving open.
fn estimate_band(o: &mut String, run: &Run) {
    let rows: Vec<_> = summarize(&run.records)
        .into_iter()
        .filter(|v| v.gross_j_low.n > 0)
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Estimated energy with its band\n");
    let _ = writeln!(
        o,
        "The estimate's figure under its central model, with the range from its lowest to its highest published model (`joulebench meters` lists them). The band is a model error shared by every trial of the run, so it does not shrink with more seeds.\n"
    );
    let _ = writeln!(o, "| workload | variant | gross J (band) |\n|---|---|---|");
    for v in &rows {
        let _ = writeln!(
            o,
            "| {} | {} | ≈ {} ({}–{}) |",
            v.workload,
            v.variant,
            fmt_sig(v.gross_j.mean),
            fmt_sig(v.gross_j_low.mean),
            fmt_sig(v.gross_j_high.mean)
        );
    }
    let Some(base) = run.baseline() else { return };
    let ps: Vec<_> = paired(&run.records, &base)
        .into_iter()
        .filter(|p| p.band_makes_inconclusive().is_some())
        .collect();
    if ps.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nGross energy saved against `{base}` with every trial under the band's lowest and under its highest model:\n"
    );
    let _ = writeln!(
        o,
        "| workload | variant | saved % (central) | saved % (low model) | saved % (high model) | verdict |\n|---|---|---|---|---|---|"
    );
    for p in ps {
        let verdict = match p.band_makes_inconclusive() {
            Some(true) => "inconclusive: the band, not only the seeds, leaves the sign open",
            _ if p.energy.excludes_zero() => "holds across the band",
            _ => "inconclusive (seed-to-seed CI includes zero)",
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            p.workload,
            p.variant,
            saved(&p.energy),
            saved(&p.energy_low_model),
            saved(&p.energy_high_model),
            verdict
        );
    }
}
