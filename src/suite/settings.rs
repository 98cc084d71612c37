//! The raw shapes of a suite file, as serde reads them, and the one table of
//! every setting a `[defaults]`, `[[workload]]` or `[[variant]]` table may
//! hold. `joulebench list` prints the same table, so it cannot fall behind.

use crate::config::{
    AttentionKind, BatchScheduleSpec, LrScaling, ModelKind, OptimizerKind, Precision, QuantType,
    Schedule, Scope, SparseFormat, StopMetric, Structure,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What values a setting allows: the check `suite::check` applies to every
/// value of the key, and the words `joulebench list` and its errors show.
#[derive(Debug, Clone, Copy)]
pub enum Allowed {
    /// A shape checked by hand in `check` (schedules, sweeps, lists), in words.
    Text(&'static str),
    /// One of a name table's names; `what` names one value in messages.
    Named {
        what: &'static str,
        names: fn() -> Vec<&'static str>,
    },
    /// An integer in `min..=max`; `words` is the message below `min`.
    Int {
        min: i64,
        max: i64,
        words: &'static str,
    },
    /// A number in the interval; `words` is the message outside it.
    Real {
        min: f64,
        min_open: bool,
        max: f64,
        max_open: bool,
        words: &'static str,
    },
    /// A non-empty list of integers in `min..=max`.
    Ints {
        min: i64,
        max: i64,
        words: &'static str,
    },
}

impl Allowed {
    pub fn describe(&self) -> String {
        match self {
            Allowed::Text(t)
            | Allowed::Int { words: t, .. }
            | Allowed::Real { words: t, .. }
            | Allowed::Ints { words: t, .. } => t.to_string(),
            Allowed::Named { names, .. } => names().join(" | "),
        }
    }

    /// Why `v` is not allowed (None: it is), for the checks that the table
    /// itself can make.
    pub fn refuses(&self, v: &Value) -> Option<String> {
        match (self, v) {
            (Allowed::Int { min, words, .. }, Value::Int(x)) if x < min => Some(words.to_string()),
            // Above the top: a u32 count says its limit, words that give the
            // range say it again, others get the range.
            (Allowed::Int { min, max, words }, Value::Int(x)) if x > max => Some(if *max == U32 {
                format!("at most {max}")
            } else if words.contains("..=") {
                words.to_string()
            } else {
                format!("an integer in {min}..={max}")
            }),
            (
                Allowed::Real {
                    min,
                    min_open,
                    max,
                    max_open,
                    words,
                },
                Value::Real(x),
            ) => {
                let above = if *min_open { *x > *min } else { *x >= *min };
                let below = if *max_open { *x < *max } else { *x <= *max };
                (!(x.is_finite() && above && below)).then(|| words.to_string())
            }
            (Allowed::Ints { min, max, words }, Value::Ints(xs)) => {
                (xs.is_empty() || xs.iter().any(|x| x < min || x > max)).then(|| words.to_string())
            }
            _ => None,
        }
    }
}

/// A setting's value, for checks and for `joulebench list`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Real(f64),
    Ints(Vec<i64>),
    /// Anything else, as written in a suite (names, booleans, tables).
    Shown(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(x) => write!(f, "{x}"),
            Value::Real(x) => write!(f, "{x}"),
            Value::Ints(xs) => write!(f, "{xs:?}"),
            Value::Shown(s) => f.write_str(s),
        }
    }
}

/// A type a setting can hold.
pub trait SettingValue {
    fn value(&self) -> Value;
}

impl SettingValue for i64 {
    fn value(&self) -> Value {
        Value::Int(*self)
    }
}

impl SettingValue for f64 {
    fn value(&self) -> Value {
        Value::Real(*self)
    }
}

impl SettingValue for Vec<i64> {
    fn value(&self) -> Value {
        Value::Ints(self.clone())
    }
}

impl SettingValue for bool {
    fn value(&self) -> Value {
        Value::Shown(self.to_string())
    }
}

impl SettingValue for String {
    fn value(&self) -> Value {
        Value::Shown(format!("{self:?}"))
    }
}

impl SettingValue for BatchScheduleSpec {
    fn value(&self) -> Value {
        Value::Shown(format!("{self:?}"))
    }
}

macro_rules! named_values {
    ($($t:ty),+) => {
        $(impl SettingValue for $t {
            fn value(&self) -> Value {
                Value::Shown(self.name().to_string())
            }
        })+
    };
}

named_values!(
    OptimizerKind,
    Precision,
    LrScaling,
    StopMetric,
    AttentionKind,
    QuantType,
    SparseFormat,
    Scope,
    Schedule,
    Structure,
    ModelKind
);

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

const U32: i64 = u32::MAX as i64;

/// An integer from `min` (message `words` below it) to `max`.
const fn int(min: i64, max: i64, words: &'static str) -> Allowed {
    Allowed::Int { min, max, words }
}

/// A number in `[min, max]`, `(min, max]` (`open`), or `[min, max)` (`half`).
const fn real(min: f64, max: f64, words: &'static str) -> Allowed {
    Allowed::Real {
        min,
        min_open: false,
        max,
        max_open: false,
        words,
    }
}

const fn open(min: f64, max: f64, words: &'static str) -> Allowed {
    Allowed::Real {
        min,
        min_open: true,
        max,
        max_open: false,
        words,
    }
}

const fn half(min: f64, max: f64, words: &'static str) -> Allowed {
    Allowed::Real {
        min,
        min_open: false,
        max,
        max_open: true,
        words,
    }
}

const fn widths(words: &'static str) -> Allowed {
    Allowed::Ints {
        min: 1,
        max: 65_536,
        words,
    }
}

/// Teachers are image classifiers: every model but the language model.
pub fn teacher_names() -> Vec<&'static str> {
    ModelKind::ALL
        .iter()
        .filter(|(_, k)| !k.uses_text())
        .map(|(n, _)| *n)
        .collect()
}

/// The three layers of one trial, lowest first: `[defaults]`, the
/// workload, the variant. The getters `settings!` declares read a key from
/// the highest layer that sets it, falling back to the table's default.
pub struct Layers<'a>(pub [&'a Settings; 3]);

impl Layers<'_> {
    /// The value of the highest layer that sets it.
    pub fn get<T: Clone>(&self, f: impl Fn(&Settings) -> &Option<T>) -> Option<T> {
        self.0.iter().rev().find_map(|l| f(l).clone())
    }
}

/// Declares `Settings` (every field optional: unset means "inherit"),
/// `SETTINGS`, its documentation and checks, `Settings::builtin` (the
/// defaults) and one getter per key on `Layers`, from one list.
macro_rules! settings {
    ($( #[doc = $about:literal] $field:ident : $ty:ty => $allowed:expr $(, default $default:expr)? );+ $(;)?) => {
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

        impl Settings {
            /// The built-in defaults (unset where the default depends on
            /// the model or on another setting).
            pub fn builtin() -> Settings {
                Settings { $( $field: settings!(@default $($default)?), )+ }
            }

            /// Every key with its value (None: unset), in table order.
            pub fn values(&self) -> Vec<(&'static SettingDoc, Option<Value>)> {
                let mut docs = SETTINGS.iter();
                vec![$( (docs.next().expect("one doc per field"), self.$field.as_ref().map(SettingValue::value)), )+]
            }
        }

        #[allow(dead_code)]
        impl Layers<'_> {
            $( settings!(@getter $field $ty $(, $default)?); )+
        }
    };
    (@default) => { None };
    (@default $d:expr) => { Some($d) };
    (@getter $field:ident $ty:ty) => {
        /// The highest layer's value, if any sets it.
        pub fn $field(&self) -> Option<$ty> {
            self.get(|s| &s.$field)
        }
    };
    (@getter $field:ident $ty:ty, $d:expr) => {
        /// The highest layer's value, else the table's default.
        pub fn $field(&self) -> $ty {
            self.get(|s| &s.$field).unwrap_or($d)
        }
    };
}

settings! {
    /// Training epochs.
    epochs: i64 => int(1, U32, "epochs must be an integer >= 1"), default 1;
    /// Training batch size.
    batch_size: i64 => int(1, U32, "batch size must be an integer >= 1"), default 128;
    /// Learning rate at `reference_batch_size` (default 1e-3 for AdamW, 0.05 for SGD).
    learning_rate: f64 => open(0.0, 10.0, "learning rate must be a finite number in (0, 10]");
    /// Optimizer.
    optimizer: OptimizerKind => named(OptimizerKind::WHAT, OptimizerKind::names), default OptimizerKind::Adamw;
    /// SGD momentum.
    momentum: f64 => half(0.0, 1.0, "momentum must be in [0, 1)"), default 0.9;
    /// Weight decay: decoupled for AdamW (default 0.01), L2 for SGD (default 0).
    weight_decay: f64 => real(0.0, f64::MAX, "weight decay must be a finite number >= 0");
    /// Cap on training samples (quick runs); the first N of the training split (default: the whole split).
    max_train_samples: i64 => int(1, U32, "a sample cap must be an integer >= 1 (omit it to use the whole split)");
    /// Cap on validation and test samples (quick runs; default: the whole split).
    max_eval_samples: i64 => int(1, U32, "a sample cap must be an integer >= 1 (omit it to use the whole split)");
    /// Batch size of evaluation and of the inference window.
    eval_batch_size: i64 => int(1, U32, "batch size must be an integer >= 1"), default 1000;
    /// Numeric precision: mixed bf16/f16 keep f32 master weights (f16 with loss scaling); tf32 is CUDA only.
    precision: Precision => named(Precision::WHAT, Precision::names), default Precision::F32;
    /// Learning-rate scaling with the effective batch size, relative to `reference_batch_size`.
    lr_scaling: LrScaling => named(LrScaling::WHAT, LrScaling::names), default LrScaling::None;
    /// Batch size at which `learning_rate` applies unchanged (for `lr_scaling`).
    reference_batch_size: i64 => int(1, U32, "batch size must be an integer >= 1"), default 128;
    /// Micro-batches whose gradients are summed before one optimizer step (effective batch = batch_size x this).
    accumulation_steps: i64 => int(1, U32, "accumulation steps must be an integer >= 1 (1 = no accumulation)"), default 1;
    /// Stop after this many evaluations without improvement (default: off).
    early_stopping_patience: i64 => int(1, U32, "patience is a number of evaluations >= 1");
    /// Smallest change that counts as an improvement.
    early_stopping_min_delta: f64 => real(0.0, f64::MAX, "a finite number >= 0"), default 0.0;
    /// The validation metric early stopping watches.
    early_stopping_metric: StopMetric => named(StopMetric::WHAT, StopMetric::names), default StopMetric::ValLoss;
    /// Stop at the first evaluation with validation accuracy >= this (default: off).
    target_accuracy: f64 => open(0.0, 1.0, "an accuracy in (0, 1], e.g. 0.85");
    /// Evaluate every N optimizer steps (default: once per epoch).
    eval_every_steps: i64 => int(1, U32, "evaluate every N >= 1 optimizer steps (omit for once per epoch)");
    /// Initial dynamic loss scale for f16.
    loss_scale_init: f64 => real(1.0, f64::MAX, "a finite number >= 1 (a power of two such as 65536)"), default 65536.0;
    /// Clean steps before the f16 loss scale doubles.
    loss_scale_growth_interval: i64 => int(1, U32, "a number of clean steps >= 1"), default 2000;
    /// Batch size over epochs instead of a fixed one; the learning rate follows `lr_scaling` at each epoch's batch.
    batch_schedule: BatchScheduleSpec => text("{ rule = \"ramp\", start = 32, end = 512, over_epochs = 3 } | { rule = \"adaptive\", start = 32, end = 1024 }");
    /// Variants only: one variant per batch size, named `<variant>-b<size>`.
    batch_sizes: Vec<i64> => text("non-empty list of integers >= 1");
    /// GPU power limit in watts, set through NVML right before the trial's idle window and restored after it (needs `run --allow-gpu-settings`).
    gpu_power_limit_w: i64 => int(1, 2000, "a GPU power limit in watts, 1..=2000 (checked against the GPU's NVML limits at run start)");
    /// Variants only: one variant per GPU power limit, named `<variant>-p<watts>`.
    gpu_power_limits_w: Vec<i64> => text("non-empty list of watts, 1..=2000");
    /// Lock the GPU's SM clock at this many MHz for the trial (reset after it; needs `run --allow-gpu-settings`).
    gpu_sm_clock_mhz: i64 => int(1, 10_000, "an SM clock in MHz, 1..=10000 (NVML refuses clocks the GPU does not support)");
    /// MLP hidden widths (mlp only; default [512, 256]).
    hidden: Vec<i64> => widths("a non-empty list of widths in 1..=65536");
    /// CNN channel widths: [c1, c2] for cnn; stem + blocks for separable-cnn/standard-cnn.
    channels: Vec<i64> => widths("a non-empty list of widths in 1..=65536");
    /// Width of the CNN's hidden linear layer (cnn only; default 128).
    fc_width: i64 => int(1, 65_536, "an integer >= 1");
    /// Transformer width (char-transformer only; default 128; divisible by heads).
    d_model: i64 => int(1, 65_536, "an integer >= 1");
    /// Transformer depth (char-transformer only; default 2).
    layers: i64 => int(1, 1_024, "an integer >= 1");
    /// Attention heads (char-transformer only; default 4).
    heads: i64 => int(1, 1_024, "an integer >= 1");
    /// Context length in characters (char-transformer only; default 64).
    context: i64 => int(1, 65_536, "an integer >= 1");
    /// Tie the output layer to the embedding (char-transformer only; default true).
    tied: bool => text("true | false");
    /// Causal self-attention of the char-transformer (default full): local is a sliding window, linear the elu+1 kernel form.
    attention: AttentionKind => named(AttentionKind::WHAT, AttentionKind::names);
    /// Tokens a local-attention query sees, itself included (attention = "local" only; a window >= context is full attention).
    attention_window: i64 => int(1, 65_536, "an integer >= 1");
    /// Variants only: one variant per context length, named `<variant>-t<T>` (char-transformer only).
    contexts: Vec<i64> => text("non-empty list of context lengths in 1..=65536");
    /// Language models: tokens generated per prompt in the inference window.
    generate_tokens: i64 => int(1, 65_536, "an integer >= 1"), default 64;
    /// Post-training quantization of linear layers for an extra inference window.
    quantize: QuantType => named(QuantType::WHAT, QuantType::names);
    /// Unstructured pruning of whole b x b blocks of each weight matrix (by mean magnitude), the pattern BSR execution can skip (1: single weights).
    prune_block: i64 => int(1, 64, "an integer >= 1"), default 1;
    /// Run the trained model's linear layers sparse (skipping pruned zeros) in an extra inference window beside the dense one.
    sparse_inference: SparseFormat => named(SparseFormat::WHAT, SparseFormat::names);
    /// BSR block edge: b x b blocks (sparse_inference = "bsr" only).
    sparse_block: i64 => int(1, 64, "an integer >= 1"), default 4;
    /// Magnitude pruning: fraction of weights (or neurons/channels, structured) removed (default: no pruning).
    prune_sparsity: f64 => half(0.0, 1.0, "sparsity is the fraction of weights set to zero, in [0, 1)");
    /// Where the magnitude threshold is taken.
    prune_scope: Scope => named(Scope::WHAT, Scope::names), default Scope::Global;
    /// Prune once after `prune_after_epochs`, or ramp up over them.
    prune_schedule: Schedule => named(Schedule::WHAT, Schedule::names), default Schedule::OneShot;
    /// One-shot: prune after this epoch (the rest fine-tune); gradual: ramp over these epochs.
    prune_after_epochs: i64 => int(1, U32, "an epoch number >= 1"), default 1;
    /// Masks (unstructured) or whole neurons/channels removed and the model rebuilt smaller.
    prune_structure: Structure => named(Structure::WHAT, Structure::names), default Structure::Unstructured;
    /// Distil from a teacher of this model, trained in the trial.
    distill_teacher: ModelKind => named("teacher model", teacher_names);
    /// Teacher training epochs (default: the trial's epochs).
    teacher_epochs: i64 => int(1, U32, "an integer >= 1");
    /// Load the teacher from a safetensors file instead (relative: to the run folder).
    teacher_weights: String => text("a file path");
    /// Distillation temperature T.
    distill_temperature: f64 => open(0.0, 100.0, "a temperature in (0, 100]"), default 4.0;
    /// Weight of the soft (teacher) loss.
    distill_alpha: f64 => real(0.0, 1.0, "a weight in [0, 1]"), default 0.9;
    /// Save the trained weights to <run>/weights/<trial>.safetensors.
    save_weights: bool => text("true | false"), default false;
    /// Use the fused in-place AdamW / SGD on CPU f32 parameters.
    fused_optimizer: bool => text("true | false"), default true;
}

/// `[defaults]`: suite-wide seeds and repeats, plus any `Settings` key
/// (checked strictly when the flattened table is turned into `Settings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Defaults {
    /// A list of seeds, or the table of adaptive seeds (`suite::protocol`).
    #[serde(default)]
    pub seeds: Option<toml::Value>,
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

/// `[protocol]` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtocol {
    /// `shuffled` (default) or `fixed`.
    pub order: Option<String>,
    pub order_seed: Option<i64>,
    pub warmup_steps: Option<i64>,
}

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
    /// Trial order and warm-up.
    #[serde(default)]
    pub protocol: RawProtocol,
    /// `[meter]` and `[impact]`: checked key by key into `MeasureSettings`.
    #[serde(default)]
    pub meter: toml::Table,
    #[serde(default)]
    pub impact: toml::Table,
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
    fn defaults_pass_their_own_checks() {
        for (doc, v) in Settings::builtin().values() {
            if let Some(v) = v {
                assert_eq!(doc.allowed.refuses(&v), None, "{}: default {v}", doc.key);
            }
        }
        let l = Layers([
            &Settings::default(),
            &Settings::default(),
            &Settings::builtin(),
        ]);
        assert_eq!((l.batch_size(), l.epochs(), l.prune_block()), (128, 1, 1));
    }

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
