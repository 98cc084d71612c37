//! The study registry: each part of `report.md` between the provenance
//! header and the plots is a `Study` that writes its own section and may add
//! `trials.csv` columns (criterion's `Report` trait is the model: every hook
//! has a no-op default, the registry fans out to all of them).
//!
//! Adding a study is one new file with a type implementing `Study`, and in
//! `analysis/mod.rs` its `mod` line and one line in `STUDIES`, placed where
//! its section goes. A study's charts are registered in `plots::CHARTS`,
//! whose order (the order of the report's Plots list) is not the section
//! order: the sparsity chart is drawn before the context-sweep chart while
//! its section comes after.

use super::Run;
use super::aggregate::TrialMetrics;
use crate::record::TrialRecord;

/// What studies and charts read: the run and the target validation accuracy
/// for energy-to-accuracy.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub run: &'a Run,
    pub target: f64,
}

/// One study of a run. Every hook defaults to contributing nothing.
pub trait Study: Sync {
    /// A short name for messages and tests.
    fn name(&self) -> &'static str;

    /// Appends the study's `report.md` section (nothing when the run has no
    /// data for it).
    fn section(&self, _ctx: &Ctx, _out: &mut String) {}

    /// The `trials.csv` columns the study adds after the common ones.
    fn csv_columns(&self) -> &'static [&'static str] {
        &[]
    }

    /// One trial's cells of `csv_columns`, as many and in the same order.
    fn csv_cells(&self, _record: &TrialRecord, _metrics: &TrialMetrics) -> Vec<String> {
        Vec::new()
    }
}
