//! The report's Variants section: the per-variant table (mean ± 95% CI),
//! where training time went per phase, and training FLOP/J against the
//! device's peak.

use super::est;
use crate::analysis::Run;
use crate::analysis::aggregate::summarize;
use crate::analysis::study::{Ctx, Study};
use std::fmt::Write;

/// The variants table, the phase table and the peak-efficiency table.
pub struct Variants;

impl Study for Variants {
    fn name(&self) -> &'static str {
        "variants"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        let peak_rows = variants(o, ctx.run);
        phases(o, ctx.run);
        peaks(o, &peak_rows);
    }
}

/// The variants table; returns the rows of the peak-efficiency table.
fn variants(o: &mut String, run: &Run) -> Vec<String> {
    let _ = writeln!(o, "\n## Variants\n");
    if !run.missing.is_empty() {
        let shown: Vec<String> = run
            .missing
            .iter()
            .take(20)
            .map(|k| format!("`{k}`"))
            .collect();
        let _ = writeln!(
            o,
            "Partial run: {} of {} planned trials recorded. Missing: {}{}.\n",
            run.records.len(),
            run.records.len() + run.missing.len(),
            shown.join(", "),
            if run.missing.len() > 20 {
                format!(" and {} more", run.missing.len() - 20)
            } else {
                String::new()
            }
        );
    }
    if run.discarded_bytes > 0 {
        let _ = writeln!(
            o,
            "A half-written last record ({} bytes) was ignored.\n",
            run.discarded_bytes
        );
    }
    let _ = writeln!(
        o,
        "Mean ± 95% confidence half-width (Student t) over completed, valid trials (n = those of all; invalid trials are listed under Validity and left out). Energy is per trial over all windows (training, validation, test, inference) unless named otherwise; net = gross − idle power × duration.\n"
    );
    let _ = writeln!(
        o,
        "| workload | variant | n | test acc (%) | train s | gross J | idle J | net J | train J/sample | train FLOP/J | inference J/1k | CO2e g | provenance | outliers |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut peak_rows: Vec<String> = Vec::new();
    let peak = run.manifest.as_ref().and_then(|m| {
        m.gpus
            .iter()
            .find_map(|g| crate::analysis::peaks::lookup(&g.name))
    });
    for v in summarize(&run.records) {
        if let Some(p) = peak
            && let Some(r) = run
                .records
                .iter()
                .find(|r| r.key.workload == v.workload && r.key.variant == v.variant)
        {
            peak_rows.push(format!(
                "| {} | {} | {} | {:.3e} | {:.2e} |",
                v.workload,
                v.variant,
                p.device,
                p.flop_per_joule(r.config.precision),
                v.flop_per_j.mean / p.flop_per_joule(r.config.precision)
            ));
        }
        let acc = crate::analysis::stats::Estimate {
            mean: v.accuracy.mean * 100.0,
            ci95: v.accuracy.ci95 * 100.0,
            ..v.accuracy
        };
        let _ = writeln!(
            o,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.workload,
            v.variant,
            v.completed,
            v.trials,
            est(&acc),
            est(&v.train_s),
            est(&v.gross_j),
            est(&v.idle_j),
            est(&v.net_j),
            est(&v.j_per_sample),
            est(&v.flop_per_j),
            est(&v.inference_j_per_1k),
            est(&v.co2e_g),
            v.provenance,
            if v.outliers.is_empty() {
                "-".into()
            } else {
                v.outliers.join(", ")
            }
        );
    }
    peak_rows
}

/// Where the training time went, per phase.
fn phases(o: &mut String, run: &Run) {
    let phase_rows: Vec<String> = summarize(&run.records)
        .iter()
        .filter_map(|v| {
            let ps: Vec<crate::record::PhaseTimes> = run
                .records
                .iter()
                .filter(|r| r.key.workload == v.workload && r.key.variant == v.variant)
                .flat_map(|r| r.epochs.iter().filter_map(|e| e.phases))
                .collect();
            if ps.is_empty() {
                return None;
            }
            let n = ps.len() as f64;
            let mean = |f: fn(&crate::record::PhaseTimes) -> f64| ps.iter().map(f).sum::<f64>() / n;
            let (d, f, b, o) = (
                mean(|p| p.data_s.0),
                mean(|p| p.forward_s.0),
                mean(|p| p.backward_s.0),
                mean(|p| p.optimizer_s.0),
            );
            let t = (d + f + b + o).max(1e-12);
            Some(format!(
                "| {} | {} | {:.3} ({:.0}%) | {:.3} ({:.0}%) | {:.3} ({:.0}%) | {:.3} ({:.0}%) |",
                v.workload,
                v.variant,
                d,
                100.0 * d / t,
                f,
                100.0 * f / t,
                b,
                100.0 * b / t,
                o,
                100.0 * o / t
            ))
        })
        .collect();
    if !phase_rows.is_empty() {
        let _ = writeln!(
            o,
            "\nWhere training time goes (seconds per epoch, mean over trials):\n"
        );
        let _ = writeln!(
            o,
            "| workload | variant | data | forward | backward | optimizer |\n|---|---|---|---|---|---|"
        );
        for row in &phase_rows {
            let _ = writeln!(o, "{row}");
        }
    }
}

/// Achieved FLOP/s and FLOP/J against the device peak.
fn peaks(o: &mut String, peak_rows: &[String]) {
    if !peak_rows.is_empty() {
        let _ = writeln!(
            o,
            "\nTraining FLOP/J against the device's peak dense FLOP/J at rated power (`src/peaks.rs`, vendors' datasheets):\n"
        );
        let _ = writeln!(
            o,
            "| workload | variant | device | peak FLOP/J | fraction of peak |\n|---|---|---|---|---|"
        );
        for row in peak_rows {
            let _ = writeln!(o, "{row}");
        }
    }
}
