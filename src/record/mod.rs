//! Trial records: one JSON object per trial, one per line of `trials.jsonl`.
//!
//! The schema is versioned (`schema_version`); fields are only ever added
//! (with serde defaults) within a major version. Raw per-epoch data is kept;
//! statistics are computed later from these records. Field reference:
//! `docs/records.md`.

use crate::config::TrialConfig;
use crate::config::plan::{TrialKey, TrialSpec};
use crate::meter::EnergyReading;

pub mod placement;
pub mod seeds;
pub mod technique;

use crate::gpu::control::GpuSettingsRecord;
use crate::util::units::{Joules, Seconds};
pub use placement::{Placement, Shard};
use serde::{Deserialize, Serialize};
pub use technique::{DistillRecord, LayerSparsity, PruningRecord, StructuredRecord};

pub const SCHEMA_VERSION: u32 = 1;

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum TrialStatus {
    /// Trained, evaluated and measured as planned.
    Completed,
    /// The training loss became NaN or infinite in `epoch`; training stopped there.
    Diverged { epoch: u32 },
    /// The trial could not run; `error` says why. The suite went on.
    Failed { error: String },
}

/// One training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: u32,
    pub steps: u64,
    pub samples: u64,
    /// Mean training loss over the epoch's batches; null when not finite (diverged).
    pub train_loss: Option<f64>,
    /// The training window (forward, backward, optimizer) of this epoch.
    pub train: EnergyReading,
    pub train_samples_per_second: f64,
    /// The validation pass after this epoch (its own window).
    pub validation: EnergyReading,
    /// Null when the epoch diverged (no validation pass).
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Where the training window's time went (device synchronised at each
    /// phase edge on GPUs).
    #[serde(default)]
    pub phases: Option<PhaseTimes>,
    /// Trials with a batch schedule: the batch this epoch trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<EpochBatch>,
}

/// The batch size and learning rate an epoch of a scheduled trial used, and
/// for the adaptive rule the gradient noise scale measured during it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochBatch {
    /// Samples per optimizer step (before gradient accumulation).
    pub size: u32,
    pub learning_rate: f64,
    /// B_simple (McCandlish et al. 2018) from this epoch's steps; null when
    /// not measured, or when |G|^2 came out non-positive (noise-dominated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_scale: Option<f64>,
    /// Optimizer steps the noise scale was measured over.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noise_steps: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Seconds per phase of an epoch's training steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseTimes {
    /// Shuffling and assembling batches, casting inputs.
    pub data_s: Seconds,
    /// Forward pass and loss (teacher forward included when distilling).
    pub forward_s: Seconds,
    pub backward_s: Seconds,
    /// Gradient accumulation/scaling, loss-scaler checks, optimizer step, technique hooks.
    pub optimizer_s: Seconds,
}

/// Final evaluation on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub window: EnergyReading,
    pub samples: u64,
    pub loss: f64,
    /// Per sample for classifiers; per next-token prediction for language models.
    pub accuracy: f64,
    /// Language models: loss in bits per token (character).
    #[serde(default)]
    pub bits_per_token: Option<f64>,
}

/// The inference window: forward + argmax over the test split for
/// classifiers; greedy generation for language models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRecord {
    pub window: EnergyReading,
    /// Units produced: samples classified, or tokens generated.
    pub samples: u64,
    /// `samples` or `tokens`.
    #[serde(default = "default_unit")]
    pub unit: String,
    pub batch_size: u32,
    /// Units per second.
    pub samples_per_second: f64,
    /// Joules per 1,000 units (all domains).
    pub joules_per_1k: Joules,
    /// Batches run and discarded before the window opened, so the figure is
    /// steady state (0 in records written before warm-up existed).
    #[serde(default)]
    pub warmup_batches: u32,
}

fn default_unit() -> String {
    "samples".into()
}

/// Sizes of the data the trial used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    pub dataset: String,
    pub source: String,
    pub train_samples: u64,
    pub validation_samples: u64,
    pub test_samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub schema_version: u32,
    pub suite: String,
    /// Position in the suite's plan (0-based).
    pub trial_index: usize,
    /// Hash of the key and resolved config (`TrialSpec::id`): the same trial
    /// has the same id in every shard and on every machine. Empty in records
    /// written before ids existed.
    #[serde(default)]
    pub trial_id: String,
    pub key: TrialKey,
    pub config: TrialConfig,
    /// e.g. `cpu`, `cuda:0`.
    pub device: String,
    /// Name of the meter (provenance is per domain inside each window).
    pub meter: String,
    pub status: TrialStatus,
    pub started_at: String,
    pub finished_at: String,
    pub parameters: u64,
    /// Analytic multiply-accumulates of one forward pass of one sample.
    pub macs_per_sample: u64,
    /// Training FLOPs per sample: 3 x forward, forward = 2 x MACs.
    #[serde(default)]
    pub flops_per_train_sample: u64,
    /// Inference FLOPs per unit (sample, or generated token): 2 x MACs.
    #[serde(default)]
    pub flops_per_inference_unit: u64,
    pub data: Option<DataRecord>,
    pub epochs: Vec<EpochRecord>,
    /// Sum of the epochs' training windows.
    pub training: Option<EnergyReading>,
    pub train_samples_per_second: Option<f64>,
    pub test: Option<EvalRecord>,
    pub inference: Option<InferenceRecord>,
    /// The idle window measured before the trial (its average power per
    /// domain is the baseline every later window subtracts).
    #[serde(default)]
    pub idle: Option<EnergyReading>,
    /// CO2e and water of the trial's total energy, with the constants used.
    #[serde(default)]
    pub impact: Option<TrialImpact>,
    /// Every validation pass with the cumulative energy and time spent so
    /// far: energy-to-accuracy and time-to-accuracy for any target.
    #[serde(default)]
    pub evaluations: Vec<EvalPoint>,
    /// The dtypes the trial actually used, and the loss scaler's record.
    #[serde(default)]
    pub precision: Option<PrecisionRecord>,
    /// Set when training stopped before its epoch budget.
    #[serde(default)]
    pub stop: Option<StopRecord>,
    /// Post-training quantization: sizes, accuracy and inference cost.
    #[serde(default)]
    pub quantization: Option<QuantizationRecord>,
    /// Sparse execution (`sparse_inference`): format, sizes, exactness and
    /// the sparse inference window beside `inference` (the dense one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SparseRecord>,
    /// Pruning: measured sparsity per layer and training energy by phase.
    #[serde(default)]
    pub pruning: Option<technique::PruningRecord>,
    /// Structured pruning: sizes, parameters and MACs before and after, phase energy.
    #[serde(default)]
    pub structured: Option<technique::StructuredRecord>,
    /// Distillation: the teacher's training and inference energy, kept apart.
    #[serde(default)]
    pub distillation: Option<technique::DistillRecord>,
    /// Saved weights, relative to the run folder.
    #[serde(default)]
    pub weights_file: Option<String>,
    /// NVML counters against their instant-power integral over the whole
    /// trial (when at least 3 s long): the disagreement, warned above 2%.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_self_check: Vec<crate::meter::window::SelfCheck>,
    /// Whether the trial's figures can be trusted: the worst verdict of its
    /// windows, with every finding (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<crate::meter::validity::Validity>,
    /// The discarded warm-up that ran just before this trial (the first of
    /// its workload in a process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<seeds::Warmup>,
    /// The GPU power limit / locked clocks the trial ran with, read back from NVML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_settings: Option<GpuSettingsRecord>,
    /// Host, scheduler job and shard the trial ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// The trained model's linear layers quantized and measured on the same
/// test data as the f32 model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizationRecord {
    pub dtype: String,
    /// Linear-layer weight bytes in f32 and quantized (padding included).
    pub weight_bytes_f32: u64,
    pub weight_bytes_quantized: u64,
    pub size_ratio: f64,
    pub test: Option<EvalRecord>,
    /// Test accuracy of the quantized minus the f32 model, in points.
    pub accuracy_change_pp: Option<f64>,
    pub inference: Option<InferenceRecord>,
    /// Why quantization could not run (the trial itself still completed).
    pub error: Option<String>,
    /// int8: which compiled kernel ran (`avx512-vnni` or `portable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
}

/// The trained model run with its linear layers stored sparse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseRecord {
    /// `csr` or `bsr`.
    pub format: String,
    /// BSR block edge (1 for CSR).
    pub block: u32,
    /// Which compiled kernel ran (`avx2+fma` or `portable`).
    pub kernel: String,
    /// Layers stored sparse, and layers left dense (e.g. convolutions).
    pub sparse_layers: usize,
    pub dense_layers: usize,
    /// Sizes over the sparse layers.
    pub stats: crate::ops::sparse::SparseStats,
    /// Fraction of the sparse layers' weights that are zero.
    pub sparsity: f64,
    /// Largest |sparse - dense| over one test batch's outputs, relative to the
    /// largest |dense| output (float summation order only: ~1e-7).
    pub max_rel_diff: f64,
    /// The sparse model's test window (accuracy equal to the dense one's but for ties).
    pub test: Option<EvalRecord>,
    pub inference: Option<InferenceRecord>,
    /// Why sparse execution could not run (the trial itself still completed).
    pub error: Option<String>,
}

/// One validation pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Optimizer steps so far.
    pub step: u64,
    pub epoch: u32,
    pub samples_seen: u64,
    /// Gross joules of all training and validation windows up to and including this pass.
    pub cumulative_joules: Joules,
    /// Net joules likewise, when an idle baseline exists.
    pub cumulative_net_joules: Option<Joules>,
    pub cumulative_seconds: Seconds,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecord {
    pub mode: crate::config::Precision,
    pub weights: String,
    pub activations: String,
    pub optimizer_state: String,
    /// f16 only: the loss scale at the end, and the steps skipped for inf/NaN gradients.
    pub final_loss_scale: Option<f64>,
    pub skipped_steps: u64,
    /// bf16 on a CPU: how its matrix products ran (`ops::bf16_gemm::path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_bf16_path: Option<String>,
}

/// Why training stopped before its epoch budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    TargetReached,
    PatienceExhausted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRecord {
    pub reason: StopReason,
    pub step: u64,
    pub epoch: u32,
}

/// Impact of a trial's total energy (training, validation, test, inference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialImpact {
    pub settings: crate::impact::ImpactSettings,
    /// From gross energy (what the facility draws while the trial runs).
    pub gross: crate::impact::Impact,
    /// From net energy (what the work added over idle), when a baseline exists.
    pub net: Option<crate::impact::Impact>,
    /// From the intensity of the hours the energy was drawn in, when the
    /// region has an hourly profile (`gross`/`net` stay the annual figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<crate::impact::HourlyImpact>,
}

impl TrialImpact {
    /// Gross grams CO2e as the settings ask: hourly where computed, else annual.
    pub fn co2e_g(&self) -> f64 {
        self.hourly
            .as_ref()
            .map_or(self.gross.co2e_g, |h| h.gross_co2e_g)
    }
}

impl TrialRecord {
    /// The record of a trial about to run: its identity and configuration,
    /// every result still empty.
    pub fn pending(
        suite: &str,
        spec: &TrialSpec,
        device: String,
        meter: String,
        started_at: String,
    ) -> TrialRecord {
        TrialRecord {
            schema_version: SCHEMA_VERSION,
            suite: suite.to_string(),
            trial_index: spec.index,
            trial_id: spec.id(),
            key: spec.key.clone(),
            config: spec.config.clone(),
            device,
            meter,
            status: TrialStatus::Completed,
            started_at,
            finished_at: String::new(),
            parameters: 0,
            macs_per_sample: 0,
            flops_per_train_sample: 0,
            flops_per_inference_unit: 0,
            data: None,
            epochs: Vec::new(),
            training: None,
            train_samples_per_second: None,
            test: None,
            inference: None,
            idle: None,
            impact: None,
            evaluations: Vec::new(),
            precision: None,
            stop: None,
            quantization: None,
            sparse: None,
            pruning: None,
            structured: None,
            distillation: None,
            weights_file: None,
            gpu_self_check: Vec::new(),
            validity: None,
            warmup: None,
            gpu_settings: None,
            placement: None,
        }
    }

    /// The trial's id, or (for records written before ids existed) its key.
    pub fn identity(&self) -> String {
        if self.trial_id.is_empty() {
            self.key.to_string()
        } else {
            self.trial_id.clone()
        }
    }

    pub fn test_accuracy(&self) -> Option<f64> {
        self.test.as_ref().map(|t| t.accuracy)
    }

    /// The trial's measured windows in order: each epoch's training and
    /// validation, then test and inference (the idle baseline is apart).
    pub fn windows(&self) -> impl Iterator<Item = &EnergyReading> {
        self.epochs
            .iter()
            .flat_map(|e| [&e.train, &e.validation])
            .chain(self.test.iter().map(|t| &t.window))
            .chain(self.inference.iter().map(|i| &i.window))
    }

    /// Training + validation + test + inference windows, summed.
    pub fn total_energy(&self) -> EnergyReading {
        EnergyReading::sum("total", self.windows())
    }

    /// Parses one line of `trials.jsonl`, refusing unknown major versions.
    pub fn from_json_line(line: &str) -> Result<TrialRecord, String> {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        match v.get("schema_version").and_then(|x| x.as_u64()) {
            Some(x) if x == SCHEMA_VERSION as u64 => {}
            Some(x) => {
                return Err(format!(
                    "schema_version {x} is not supported by this joulebench (reads {SCHEMA_VERSION})"
                ));
            }
            None => return Err("no schema_version field".into()),
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}
