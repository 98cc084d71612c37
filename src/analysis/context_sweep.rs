//! Context-length sweep of the char-transformer: per workload, attention
//! variant and context length T, the step time, training joules per token,
//! inference joules per 1,000 generated tokens and validation bits per
//! character, each a mean with its 95% interval over the trials.

use super::Run;
use super::stats::Estimate;
use super::study::{Ctx, Study};
use crate::config::ModelSize;
use crate::record::TrialRecord;
use std::fmt::Write as _;

/// One (workload, attention, T) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub workload: String,
    /// `full`, `local(w=64)` or `linear`.
    pub attention: String,
    pub context: usize,
    pub ms_per_step: Estimate,
    pub train_j_per_token: Estimate,
    pub inference_j_per_1k_tokens: Estimate,
    pub bits_per_char: Estimate,
    pub provenance: String,
}

/// Training tokens a trial processed: samples x context (each position of a
/// sequence is one next-character prediction).
pub fn train_tokens(r: &TrialRecord) -> Option<u64> {
    let ModelSize::Transformer { context, .. } = r.config.size else {
        return None;
    };
    let samples: u64 = r.epochs.iter().map(|e| e.samples).sum();
    Some(samples * context as u64)
}

/// Validation bits per character at the last evaluation (the test split's
/// when no validation point was recorded).
fn bits_per_char(r: &TrialRecord) -> Option<f64> {
    r.evaluations
        .iter()
        .rev()
        .find_map(|e| e.val_loss)
        .or_else(|| r.epochs.iter().rev().find_map(|e| e.val_loss))
        .map(|l| l / std::f64::consts::LN_2)
        .or_else(|| r.test.as_ref().and_then(|t| t.bits_per_token))
}

fn cell(r: &TrialRecord) -> Option<(String, String, usize)> {
    match &r.config.size {
        ModelSize::Transformer {
            context, attention, ..
        } => Some((r.key.workload.clone(), attention.label(), *context)),
        _ => None,
    }
}

/// The sweep's cells, or nothing when the run's transformer trials span
/// fewer than two contexts and fewer than two attention variants.
pub fn points(run: &Run) -> Vec<Point> {
    let mut cells: Vec<(String, String, usize)> = run.records.iter().filter_map(cell).collect();
    cells.sort();
    cells.dedup();
    let distinct = |f: fn(&(String, String, usize)) -> String| {
        let mut v: Vec<String> = cells.iter().map(f).collect();
        v.sort();
        v.dedup();
        v.len()
    };
    if distinct(|c| c.2.to_string()) < 2 && distinct(|c| c.1.clone()) < 2 {
        return Vec::new();
    }
    cells
        .into_iter()
        .map(|c| {
            let rs: Vec<&TrialRecord> = run
                .records
                .iter()
                .filter(|r| r.status == crate::record::TrialStatus::Completed)
                .filter(|r| cell(r).as_ref() == Some(&c))
                .collect();
            let est = |f: &dyn Fn(&TrialRecord) -> Option<f64>| {
                Estimate::of(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            Point {
                ms_per_step: est(&|r| {
                    let steps: u64 = r.epochs.iter().map(|e| e.steps).sum();
                    let t = r.training.as_ref()?;
                    (steps > 0).then(|| t.seconds.0 * 1e3 / steps as f64)
                }),
                train_j_per_token: est(&|r| {
                    let n = train_tokens(r)?;
                    (n > 0).then(|| r.training.as_ref().map(|t| t.joules.0 / n as f64))?
                }),
                inference_j_per_1k_tokens: est(&|r| {
                    r.inference
                        .as_ref()
                        .filter(|i| i.unit == "tokens")
                        .map(|i| i.joules_per_1k.0)
                }),
                bits_per_char: est(&bits_per_char),
                provenance: crate::meter::window::provenance_label(
                    rs.iter()
                        .flat_map(|r| r.total_energy().domains.into_iter().map(|d| d.provenance)),
                ),
                workload: c.0,
                attention: c.1,
                context: c.2,
            }
        })
        .collect()
}

/// The context-length sweep study.
pub struct ContextSweep;

impl Study for ContextSweep {
    fn name(&self) -> &'static str {
        "context-sweep"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        report_section(o, ctx.run);
    }
}

/// The report's "Context-length sweep" section (nothing without a sweep).
fn report_section(o: &mut String, run: &Run) {
    let pts = points(run);
    if pts.is_empty() {
        return;
    }
    let est = if run.modelled() { " [ESTIMATED]" } else { "" };
    let _ = writeln!(
        o,
        "## Context-length sweep (attention variants)\n\nMeans ± 95% CI over seeds. Training J/token = training joules / (sequences × T){est}; inference J/1k = joules per 1,000 generated tokens{est}; bits/char = validation loss / ln 2.\n\n| workload | attention | T | n | ms/step | training J/token | inference J/1k tokens | bits/char | provenance |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in &pts {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.workload,
            p.attention,
            p.context,
            p.ms_per_step.n,
            p.ms_per_step.fixed(1),
            p.train_j_per_token.sci(),
            p.inference_j_per_1k_tokens.fixed(3),
            p.bits_per_char.fixed(3),
            p.provenance
        );
    }
    let _ = writeln!(o);
}
