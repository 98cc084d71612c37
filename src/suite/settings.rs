//! The raw shapes of a suite file, as serde reads them, and the one table of
//! every setting a `[defaults]`, `[[workload]]` or `[[variant]]` table may
//! hold. `joulebench list` prints the same table, so it cannot fall behind.

use crate::config::{
    AttentionKind, BatchScheduleSpec, LrScaling, ModelKind, OptimizerKind, Precision, QuantType,
    Schedule, Scope, SparseFormat, StopMetric, Structure,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What values a setting allows, for `joulebench list` and for the check
/// of enum-valued settings.
#[derive(Debug, Clone, Copy)]
pub enum Allowed {
    /// A range or shape, in words.
    Text(&'static str),
    /// One of a name table's names; `what` names one value in messages.
    Named {
        what: &'static str,
        names: fn() -> Vec<&'static str>,
    },
}

impl Allowed {
    pub fn describe(&self) -> String {
        match self {
            Allowed::Text(t) => t.to_string(),
            Allowed::Named { names, .. } => names().join(" | "),
        }
    }
}

/// One documented setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    pub key: &'static str,
    pub allowed: Allowed,
    pub about: &'static str,
}

const fn named(what: &'static str, names: fn() -> Vec<&'static str>) -> Allowed {
    Allowed::Named { what, names }
}

const fn text(t: &'static str) -> Allowed {
    Allowed::Text(t)
}

/// Teachers are image classifiers: every model but the language model.
pub fn teacher_names() -> Vec<&'static str> {
    ModelKind::ALL
        .iter()
        .filter(|(_, k)| !k.uses_text())
        .map(|(n, _)| *n)
        .collect()
}

/// Declares `Settings` (every field optional: unset means "inherit") and
/// `SETTINGS`, its documentation, from one list.
macro_rules! settings {
    ($( #[doc = $about:literal] $field:ident : $ty:ty => $allowed:expr ),+ $(,)?) => {
        /// Knobs that `[defaults]`, a workload or a variant may set. All
        /// optional; unset means "inherit".
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $( #[doc = $about] pub $field: Option<$ty>, )+
        }

        /// Every setting of `Settings`, in the order `joulebench list` shows them.
        pub const SETTINGS: &[SettingDoc] = &[
            $( SettingDoc { key: stringify!($field), allowed: $allowed, about: $about.trim_ascii() }, )+
        ];
    };
}

settings! {
    /// Training epochs.
    epochs: i64 => text("integer >= 1 (default 1)"),
    /// Training batch size.
    batch_size: i64 => text("integer >= 1 (default 128)"),
    /// Learning rate at `reference_batch_size` (default 1e-3 for AdamW, 0.05 for SGD).
    learning_rate: f64 => text("finite number in (0, 10]"),
    /// Optimizer (default adamw).
    optimizer: OptimizerKind => named(OptimizerKind::WHAT, OptimizerKind::names),
    /// SGD momentum (default 0.9).
    momentum: f64 => text("[0, 1)"),
    /// Weight decay: decoupled for AdamW (default 0.01), L2 for SGD (default 0).
    weight_decay: f64 => text("finite number >= 0"),
    /// Cap on training samples (quick runs); the first N of the training split.
    max_train_samples: i64 => text("integer >= 1 (default: the whole split)"),
    /// Cap on validation and test samples (quick runs).
    max_eval_samples: i64 => text("integer >= 1 (default: the whole split)"),
    /// Batch size of evaluation and of the inference window.
    eval_batch_size: i64 => text("integer >= 1 (default 1000)"),
    /// Numeric precision: mixed bf16/f16 keep f32 master weights (f16 with loss scaling); tf32 is CUDA only (default f32).
    precision: Precision => named(Precision::WHAT, Precision::names),
    /// Learning-rate scaling with the effective batch size, relative to `reference_batch_size` (default none).
    lr_scaling: LrScaling => named(LrScaling::WHAT, LrScaling::names),
    /// Batch size at which `learning_rate` applies unchanged (for `lr_scaling`).
    reference_batch_size: i64 => text("integer >= 1 (default 128)"),
    /// Micro-batches whose gradients are summed before one optimizer step (effective batch = batch_size x this).
    accumulation_steps: i64 => text("integer >= 1 (default 1)"),
    /// Stop after this many evaluations without improvement.
    early_stopping_patience: i64 => text("integer >= 1 (default: off)"),
    /// Smallest change that counts as an improvement.
    early_stopping_min_delta: f64 => text("finite number >= 0 (default 0)"),
    /// The validation metric early stopping watches (default val_loss).
    early_stopping_metric: StopMetric => named(StopMetric::WHAT, StopMetric::names),
    /// Stop at the first evaluation with validation accuracy >= this.
    target_accuracy: f64 => text("(0, 1], e.g. 0.85 (default: off)"),
    /// Evaluate every N optimizer steps (default: once per epoch).
    eval_every_steps: i64 => text("integer >= 1"),
    /// Initial dynamic loss scale for f16.
    loss_scale_init: f64 => text("finite number >= 1 (default 65536)"),
    /// Clean steps before the f16 loss scale doubles.
    loss_scale_growth_interval: i64 => text("integer >= 1 (default 2000)"),
    /// Batch size over epochs instead of a fixed one; the learning rate follows `lr_scaling` at each epoch's batch.
    batch_schedule: BatchScheduleSpec => text("{ rule = \"ramp\", start = 32, end = 512, over_epochs = 3 } | { rule = \"adaptive\", start = 32, end = 1024 }"),
    /// Variants only: one variant per batch size, named `<variant>-b<size>`.
    batch_sizes: Vec<i64> => text("non-empty list of integers >= 1"),
    /// GPU power limit in watts, set through NVML right before the trial's idle window and restored after it (needs `run --allow-gpu-settings`).
    gpu_power_limit_w: i64 => text("watts, 1..=2000; checked against the GPU's NVML limits at run start"),
    /// Variants only: one variant per GPU power limit, named `<variant>-p<watts>`.
    gpu_power_limits_w: Vec<i64> => text("non-empty list of watts, 1..=2000"),
    /// Lock the GPU's SM clock at this many MHz for the trial (reset after it; needs `run --allow-gpu-settings`).
    gpu_sm_clock_mhz: i64 => text("MHz, 1..=10000; NVML refuses clocks the GPU does not support"),
    /// MLP hidden widths (mlp only; default [512, 256]).
    hidden: Vec<i64> => text("non-empty list of widths in 1..=65536"),
    /// CNN channel widths: [c1, c2] for cnn; stem + blocks for separable-cnn/standard-cnn.
    channels: Vec<i64> => text("non-empty list of widths in 1..=65536"),
    /// Width of the CNN's hidden linear layer (cnn only; default 128).
    fc_width: i64 => text("integer >= 1"),
    /// Transformer width (char-transformer only; default 128).
    d_model: i64 => text("integer >= 1, divisible by heads"),
    /// Transformer depth (char-transformer only; default 2).
    layers: i64 => text("integer >= 1"),
    /// Attention heads (char-transformer only; default 4).
    heads: i64 => text("integer >= 1"),
    /// Context length in characters (char-transformer only; default 64).
    context: i64 => text("integer >= 1"),
    /// Tie the output layer to the embedding (char-transformer only; default true).
    tied: bool => text("true | false"),
    /// Causal self-attention of the char-transformer (default full): local is a sliding window, linear the elu+1 kernel form.
    attention: AttentionKind => named(AttentionKind::WHAT, AttentionKind::names),
    /// Tokens a local-attention query sees, itself included (attention = "local" only; a window >= context is full attention).
    attention_window: i64 => text("integer in 1..=65536"),
    /// Variants only: one variant per context length, named `<variant>-t<T>` (char-transformer only).
    contexts: Vec<i64> => text("non-empty list of context lengths in 1..=65536"),
    /// Language models: tokens generated per prompt in the inference window.
    generate_tokens: i64 => text("integer >= 1 (default 64)"),
    /// Post-training quantization of linear layers for an extra inference window.
    quantize: QuantType => named(QuantType::WHAT, QuantType::names),
    /// Unstructured pruning of whole b x b blocks of each weight matrix (by mean magnitude), the pattern BSR execution can skip (default 1: single weights).
    prune_block: i64 => text("integer in 1..=64"),
    /// Run the trained model's linear layers sparse (skipping pruned zeros) in an extra inference window beside the dense one.
    sparse_inference: SparseFormat => named(SparseFormat::WHAT, SparseFormat::names),
    /// BSR block edge: b x b blocks (sparse_inference = "bsr" only; default 4).
    sparse_block: i64 => text("integer in 1..=64"),
    /// Magnitude pruning: fraction of weights (or neurons/channels, structured) removed.
    prune_sparsity: f64 => text("[0, 1) (default: no pruning)"),
    /// Where the magnitude threshold is taken (default global).
    prune_scope: Scope => named(Scope::WHAT, Scope::names),
    /// Prune once after `prune_after_epochs`, or ramp up over them (default one-shot).
    prune_schedule: Schedule => named(Schedule::WHAT, Schedule::names),
    /// One-shot: prune after this epoch (the rest fine-tune); gradual: ramp over these epochs.
    prune_after_epochs: i64 => text("an epoch number >= 1 (default 1)"),
    /// Masks (unstructured) or whole neurons/channels removed and the model rebuilt smaller (default unstructured).
    prune_structure: Structure => named(Structure::WHAT, Structure::names),
    /// Distil from a teacher of this model, trained in the trial.
    distill_teacher: ModelKind => named("teacher model", teacher_names),
    /// Teacher training epochs (default: the trial's epochs).
    teacher_epochs: i64 => text("integer >= 1"),
    /// Load the teacher from a safetensors file instead (relative: to the run folder).
    teacher_weights: String => text("a file path"),
    /// Distillation temperature T (default 4).
    distill_temperature: f64 => text("(0, 100]"),
    /// Weight of the soft (teacher) loss (default 0.9).
    distill_alpha: f64 => text("[0, 1]"),
    /// Save the trained weights to <run>/weights/<trial>.safetensors (default false).
    save_weights: bool => text("true | false"),
    /// Use the fused in-place AdamW / SGD on CPU f32 parameters (default true).
    fused_optimizer: bool => text("true | false"),
}

/// `[defaults]`: suite-wide seeds and repeats, plus any `Settings` key
/// (checked strictly when the flattened table is turned into `Settings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Defaults {
    #[serde(default)]
    pub seeds: Option<Vec<i64>>,
    #[serde(default)]
    pub repeats: Option<i64>,
    #[serde(flatten)]
    pub settings: toml::Table,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Folder with the Fashion-MNIST IDX files.
    pub fashion_mnist: Option<PathBuf>,
    /// Folder of plain-text files for the character-level corpus.
    pub corpus: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterSection {
    /// auto | nvml | rapl | estimate | fake
    pub kind: Option<String>,
    /// Rated watts of one fully busy core, for the estimate meter.
    pub cpu_watts_per_core: Option<f64>,
    /// Watts per GB of resident memory, for the DRAM estimate.
    pub dram_watts_per_gb: Option<f64>,
    /// Length of the idle window before each trial (0 disables the baseline).
    pub idle_seconds: Option<f64>,
    /// Pause before each trial's idle window.
    pub cooldown_seconds: Option<f64>,
    /// Before each trial, wait (at most 120 s) until the GPU is at or below this temperature.
    pub cooldown_temperature_c: Option<f64>,
    /// NVML polling interval in milliseconds.
    pub poll_interval_ms: Option<f64>,
    /// The CPU's model name for the estimate, where a VM hides it (e.g. "AMD EPYC 7763").
    pub cpu_model: Option<String>,
    /// Hardware threads of the CPU package that share its TDP (the host's, in a VM).
    pub cpu_threads: Option<i64>,
    /// Which GPUs NVML measures: "run", "all" or a list of NVML indices.
    pub gpus: Option<crate::config::GpuSelection>,
    /// The NVML library to load instead of the system's (relative: to the suite file).
    pub nvml_lib: Option<PathBuf>,
}

/// A numeric `[meter]` setting: its key, the open lower and closed upper
/// bound, and what is allowed, in words.
pub struct MeterRange {
    pub key: &'static str,
    pub above: f64,
    pub at_most: f64,
    pub allowed: &'static str,
    pub about: &'static str,
}

/// The numeric `[meter]` settings, in the order of `MeterSection::values`.
pub const METER_RANGES: [MeterRange; 6] = [
    MeterRange {
        key: "cpu_watts_per_core",
        above: 0.0,
        at_most: 1000.0,
        allowed: "rated watts per core must be in (0, 1000]",
        about: "a flat W per busy core instead of the estimate's CPU power model (no band)",
    },
    MeterRange {
        key: "dram_watts_per_gb",
        above: 0.0,
        at_most: 10.0,
        allowed: "watts per GB must be in (0, 10]",
        about: "a fixed W per GB of resident memory instead of the banded 0.284-0.392 (central 0.375)",
    },
    MeterRange {
        key: "idle_seconds",
        above: -1e-12,
        at_most: 600.0,
        allowed: "idle window seconds must be in [0, 600] (0 disables the baseline)",
        about: "idle window before each trial",
    },
    MeterRange {
        key: "cooldown_seconds",
        above: -1e-12,
        at_most: 3600.0,
        allowed: "cool-down seconds must be in [0, 3600]",
        about: "pause before each trial's idle window",
    },
    MeterRange {
        key: "cooldown_temperature_c",
        above: 10.0,
        at_most: 100.0,
        allowed: "a GPU temperature in (10, 100] degrees C",
        about: "before each trial, wait (at most 120 s) until the GPU is this cool",
    },
    MeterRange {
        key: "poll_interval_ms",
        above: 1.0 - 1e-9,
        at_most: 1000.0,
        allowed: "polling interval in milliseconds, in [1, 1000]",
        about: "NVML power polling interval",
    },
];

impl MeterRange {
    pub fn contains(&self, v: f64) -> bool {
        v.is_finite() && v > self.above && v <= self.at_most
    }
}

impl MeterSection {
    /// The numeric settings in the order of `METER_RANGES`.
    pub fn values(&self) -> [Option<f64>; 6] {
        [
            self.cpu_watts_per_core,
            self.dram_watts_per_gb,
            self.idle_seconds,
            self.cooldown_seconds,
            self.cooldown_temperature_c,
            self.poll_interval_ms,
        ]
    }
}

/// `[impact]`: how energy becomes CO2e and water (see `impact.rs` for defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactSection {
    /// Country code, country name or cloud region (`gcp:europe-west1`).
    pub region: Option<String>,
    pub pue: Option<f64>,
    /// On-site water usage effectiveness, L/kWh of IT energy.
    pub wue_onsite: Option<f64>,
    /// Off-site water intensity of electricity generation, L/kWh.
    pub water_offsite: Option<f64>,
    /// `hourly` (default where the region has a bundled profile) or `annual`.
    pub intensity: Option<String>,
}

/// The `[meter]` settings that are not numeric ranges, with what they allow.
pub const METER_OTHER: [(&str, &str); 5] = [
    ("kind", "auto | nvml | rapl | estimate | fake"),
    (
        "cpu_model",
        "the CPU's model name for the estimate's TDP lookup, where a VM hides it, e.g. \"AMD EPYC 7763\"",
    ),
    (
        "cpu_threads",
        "hardware threads of the CPU package sharing its TDP (the host's, in a VM); integer 1..=4096",
    ),
    (
        "gpus",
        "GPUs NVML measures: \"run\" (the run's, default), \"all\" (every GPU of the node) or a list of NVML indices, e.g. [0, 1]",
    ),
    (
        "nvml_lib",
        "path of the NVML library to load instead of the system's (else $JOULEBENCH_NVML_LIB), e.g. the stand-in of scripts/nvml-standin.sh",
    ),
];

/// The `[impact]` settings with what they allow (checked by `impact`).
pub const IMPACT_SETTINGS: [(&str, &str); 5] = [
    (
        "region",
        "grid region for CO2e: country code or name, or cloud region (`joulebench regions`)",
    ),
    (
        "pue",
        "power usage effectiveness (facility / IT energy), >= 1",
    ),
    (
        "wue_onsite",
        "on-site water usage effectiveness, L/kWh, >= 0",
    ),
    (
        "water_offsite",
        "off-site water intensity of generation, L/kWh, >= 0",
    ),
    (
        "intensity",
        "hourly | annual: CO2e from the intensity of each hour the energy was drawn in (default where the region has a bundled hourly profile: GB, DE, FR, ES, NO, US-CAL-CISO, ...) or the yearly average",
    ),
];

/// A `[[workload]]` or `[[variant]]` table before checking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEntry {
    pub name: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// A suite file before checking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub baseline: Option<String>,
    #[serde(default)]
    pub defaults: Option<Defaults>,
    #[serde(default)]
    pub data: DataSection,
    #[serde(default)]
    pub meter: MeterSection,
    #[serde(default)]
    pub impact: ImpactSection,
    #[serde(default, rename = "workload")]
    pub workloads: Vec<RawEntry>,
    #[serde(default, rename = "variant")]
    pub variants: Vec<RawEntry>,
    /// A published claim this suite tests (`joulebench reproduce`).
    #[serde(default)]
    pub claim: Option<crate::config::claim::Claim>,
    /// Overrides of `[defaults]` for `--quick` (CPU-sized) runs.
    #[serde(default)]
    pub quick: Option<toml::Table>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_settings_field_is_documented_once() {
        let fields = serde_json::to_value(Settings::default()).unwrap();
        let fields: Vec<&String> = fields.as_object().unwrap().keys().collect();
        assert_eq!(fields.len(), SETTINGS.len());
        for f in fields {
            assert_eq!(SETTINGS.iter().filter(|d| d.key == f).count(), 1, "{f}");
        }
        assert!(SETTINGS.iter().all(|d| !d.about.is_empty()));
    }
}
