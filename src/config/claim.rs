//! The `[claim]` table of a claim suite: a published claim as plain data.
//! Judging it against a run's records is `analysis::claims`.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// What a claim compares.
    pub enum Metric: "claim metric" {
        /// Gross training joules per optimizer step.
        TrainJoulesPerStep = "train-joules-per-step",
        /// Gross training joules per training token (language models: sequences x context; classifiers: per sample).
        TrainJoulesPerToken = "train-joules-per-token",
        /// Gross joules over all windows of the trial.
        TotalJoules = "total-joules",
        /// Training joules (gross) until validation accuracy reaches `target_accuracy`.
        EnergyToAccuracy = "energy-to-accuracy",
        /// Analytic multiply-accumulates per sample.
        Macs = "macs",
        /// Inference joules per 1,000 samples (or generated tokens).
        InferenceJoulesPer1k = "inference-joules-per-1k",
        /// Inference joules per 1,000 queries (a generation query = `generate_tokens` tokens).
        InferenceJoulesPer1kQueries = "inference-joules-per-1k-queries",
        /// Sparse / dense inference joules per 1,000 within each trial (treatment trials only).
        SparseOverDenseInference = "sparse-over-dense-inference",
        /// Quantized / f32 bytes of the linear weights (treatment trials only).
        QuantizedSizeRatio = "quantized-size-ratio",
        /// Test accuracy.
        TestAccuracy = "test-accuracy",
        /// Rated-power estimate (TDP x time, Strubell et al.) / measured energy.
        TdpOverMeasured = "tdp-over-measured",
        /// NVML 1-second-average power x time / energy counter, for short windows.
        AveragePowerOverCounter = "average-power-over-counter",
    }
}

crate::named_enum! {
    /// The relation a claim expects between treatment and baseline.
    pub enum Expect: "expectation" {
        /// Treatment / baseline < 1.
        Lower = "lower",
        /// Treatment / baseline > 1.
        Higher = "higher",
        /// ratio_min <= ratio <= ratio_max.
        Within = "within",
        /// The ratio lies outside [ratio_min, ratio_max] (a real change either way).
        Differs = "differs",
    }
}

crate::named_enum! {
    /// What a claim needs from the run to apply at all.
    pub enum Requires: "requirement" {
        Gpu = "gpu",
        MeasuredEnergy = "measured-energy",
    }
}

/// The `[claim]` table of a claim suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub id: String,
    pub source: String,
    pub statement: String,
    pub metric: Metric,
    /// `workload/variant` of the baseline and treatment trials (paired on seed and repeat).
    pub baseline: String,
    pub treatment: String,
    pub expect: Expect,
    pub ratio_min: Option<f64>,
    pub ratio_max: Option<f64>,
    /// The published figure, in words, and as a treatment/baseline ratio where one exists.
    pub published: String,
    pub published_ratio: Option<f64>,
    pub requires: Option<Requires>,
    /// For `energy-to-accuracy`.
    pub target_accuracy: Option<f64>,
    #[serde(default)]
    pub notes: String,
}
