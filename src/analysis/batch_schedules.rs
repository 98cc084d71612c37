//! Batch schedules in a run: the batch size, learning rate and measured
//! gradient noise scale of each epoch, per scheduled variant.

use super::Run;
use super::stats::Estimate;
use super::study::{Ctx, Study};
use std::fmt::Write as _;

/// One epoch of one scheduled workload/variant, over its trials.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    pub workload: String,
    pub variant: String,
    pub rule: String,
    pub epoch: u32,
    pub batch: Estimate,
    pub learning_rate: Estimate,
    pub noise_scale: Estimate,
}

/// The scheduled variants' epochs, in run order.
pub fn rows(run: &Run) -> Vec<EpochRow> {
    let mut keys: Vec<(String, String, String, u32)> = Vec::new();
    for r in &run.records {
        let Some(s) = r.config.batch_schedule else {
            continue;
        };
        let rule = serde_json::to_value(s)
            .ok()
            .and_then(|v| v["rule"].as_str().map(str::to_string))
            .unwrap_or_default();
        for e in r.epochs.iter().filter(|e| e.batch.is_some()) {
            let k = (
                r.key.workload.clone(),
                r.key.variant.clone(),
                rule.clone(),
                e.epoch,
            );
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys.into_iter()
        .map(|(workload, variant, rule, epoch)| {
            let batches: Vec<_> = run
                .records
                .iter()
                .filter(|r| r.key.workload == workload && r.key.variant == variant)
                .flat_map(|r| r.epochs.iter().filter(|e| e.epoch == epoch))
                .filter_map(|e| e.batch)
                .collect();
            let est = |f: &dyn Fn(&crate::record::EpochBatch) -> Option<f64>| {
                Estimate::of(&batches.iter().filter_map(f).collect::<Vec<_>>())
            };
            EpochRow {
                batch: est(&|b| Some(b.size as f64)),
                learning_rate: est(&|b| Some(b.learning_rate)),
                noise_scale: est(&|b| b.noise_scale),
                workload,
                variant,
                rule,
                epoch,
            }
        })
        .collect()
}

/// The "Batch schedules" study: each scheduled epoch's batch size, learning
/// rate and gradient noise scale.
pub struct BatchSchedules;

impl Study for BatchSchedules {
    fn name(&self) -> &'static str {
        "batch-schedules"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        report_section(o, ctx.run);
    }
}

/// The report's "Batch schedules" section (nothing without scheduled trials).
fn report_section(o: &mut String, run: &Run) {
    let rows = rows(run);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "## Batch schedules\n\nThe batch size each epoch trained with (mean ± 95% CI over seeds where they differ), its learning rate, and for the adaptive rule the gradient noise scale B_simple measured during the epoch (McCandlish et al. 2018; '-' where |G|^2 came out non-positive, i.e. noise-dominated, which grows the batch).\n\n| workload | variant | rule | epoch | batch size | learning rate | noise scale B_simple |\n|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {:.3e} | {} |",
            r.workload,
            r.variant,
            r.rule,
            r.epoch,
            r.batch.fixed(0),
            r.learning_rate.mean,
            r.noise_scale.fixed(0)
        );
    }
    let _ = writeln!(o);
}
