//! Suite files (TOML): what to train, under which variants, how often.
//!
//! A suite is parsed strictly (unknown keys are errors) and every value is
//! checked where it was written, so an error names the file, the field (as a
//! path such as `variant[fast].batch_size`), the value and what is allowed.
//! Settings resolve in four layers: built-in defaults < `[defaults]` <
//! `[[workload]]` < `[[variant]]`.

use crate::model::ModelKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read suite file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: field `{field}` = {value} is not allowed: {allowed}")]
    Invalid {
        path: PathBuf,
        field: String,
        value: String,
        allowed: String,
    },
    #[error("{path}: field `{field}`: unknown {what} `{name}`; known: {known}")]
    Unknown {
        path: PathBuf,
        field: String,
        what: &'static str,
        name: String,
        known: String,
    },
}

/// Which optimizer trains the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// AdamW (decoupled weight decay), betas 0.9/0.999, eps 1e-8.
    Adamw,
    /// SGD with (heavy-ball) momentum and L2 weight decay.
    Sgd,
}

impl OptimizerKind {
    pub const ALL: &'static [(&'static str, OptimizerKind)] =
        &[("adamw", OptimizerKind::Adamw), ("sgd", OptimizerKind::Sgd)];
}

/// Meter selection as written in a suite or on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeterChoice {
    /// Every real source available (NVML, RAPL), the estimate for the rest.
    Auto,
    /// NVIDIA GPUs through NVML only.
    Nvml,
    /// CPU packages and DRAM through Linux RAPL (powercap) only.
    Rapl,
    /// Labelled estimate from process CPU time × rated watts per core.
    Estimate,
    /// Deterministic scripted meter (tests and demos; every value labelled `fake`).
    Fake,
}

impl MeterChoice {
    pub const ALL: &'static [(&'static str, MeterChoice)] = &[
        ("auto", MeterChoice::Auto),
        ("nvml", MeterChoice::Nvml),
        ("rapl", MeterChoice::Rapl),
        ("estimate", MeterChoice::Estimate),
        ("fake", MeterChoice::Fake),
    ];
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Knobs that `[defaults]`, a workload or a variant may set. All optional;
/// unset means "inherit".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub epochs: Option<i64>,
    pub batch_size: Option<i64>,
    pub learning_rate: Option<f64>,
    pub optimizer: Option<String>,
    pub momentum: Option<f64>,
    pub weight_decay: Option<f64>,
    /// Cap on training samples (quick runs); the first N of the training split.
    pub max_train_samples: Option<i64>,
    /// Cap on validation and test samples (quick runs).
    pub max_eval_samples: Option<i64>,
    /// Batch size of evaluation and of the inference window.
    pub eval_batch_size: Option<i64>,
    /// f32 | bf16 | f16 | bf16-pure | tf32 (see `Precision`).
    pub precision: Option<String>,
    /// Learning-rate scaling with the effective batch size: none | linear | sqrt.
    pub lr_scaling: Option<String>,
    /// Batch size at which `learning_rate` applies unchanged (for `lr_scaling`).
    pub reference_batch_size: Option<i64>,
    /// Micro-batches whose gradients are summed before one optimizer step.
    pub accumulation_steps: Option<i64>,
    /// Stop after this many evaluations without improvement.
    pub early_stopping_patience: Option<i64>,
    /// Smallest change that counts as an improvement.
    pub early_stopping_min_delta: Option<f64>,
    /// val_loss | val_accuracy
    pub early_stopping_metric: Option<String>,
    /// Stop at the first evaluation with validation accuracy >= this (0, 1].
    pub target_accuracy: Option<f64>,
    /// Evaluate every N optimizer steps (default: once per epoch).
    pub eval_every_steps: Option<i64>,
    /// Initial dynamic loss scale for f16 (default 65536).
    pub loss_scale_init: Option<f64>,
    /// Clean steps before the loss scale doubles (default 2000).
    pub loss_scale_growth_interval: Option<i64>,
    /// Variants only: expand into one variant per batch size (`<name>-b<size>`).
    pub batch_sizes: Option<Vec<i64>>,
    /// MLP hidden widths, e.g. [512, 256].
    pub hidden: Option<Vec<i64>>,
    /// CNN channel widths ([c1, c2] for cnn; stem + blocks for separable/standard-cnn).
    pub channels: Option<Vec<i64>>,
    /// Width of the CNN's hidden linear layer.
    pub fc_width: Option<i64>,
    /// Transformer width, depth, heads, context length and weight tying.
    pub d_model: Option<i64>,
    pub layers: Option<i64>,
    pub heads: Option<i64>,
    pub context: Option<i64>,
    pub tied: Option<bool>,
    /// Language models: tokens generated per prompt in the inference window.
    pub generate_tokens: Option<i64>,
    /// Post-training quantization of linear layers for inference: q8_0 | q4_0 | q4k.
    pub quantize: Option<String>,
    /// Unstructured magnitude pruning: target sparsity in [0, 1).
    pub prune_sparsity: Option<f64>,
    /// global | layer
    pub prune_scope: Option<String>,
    /// one-shot | gradual
    pub prune_schedule: Option<String>,
    /// One-shot: prune after this epoch (the rest fine-tune); gradual: ramp over these epochs.
    pub prune_after_epochs: Option<i64>,
    /// unstructured (masks) | structured (remove neurons/channels, rebuild smaller)
    pub prune_structure: Option<String>,
    /// Distil from a teacher of this model (e.g. "cnn"), trained in the trial.
    pub distill_teacher: Option<String>,
    /// Teacher training epochs (default: the trial's epochs).
    pub teacher_epochs: Option<i64>,
    /// Load the teacher from a safetensors file instead (relative: to the run folder).
    pub teacher_weights: Option<String>,
    /// Distillation temperature T (default 4) and soft-loss weight alpha (default 0.9).
    pub distill_temperature: Option<f64>,
    pub distill_alpha: Option<f64>,
    /// Save the trained weights to <run>/weights/<trial>.safetensors.
    pub save_weights: Option<bool>,
    /// Use the fused in-place AdamW / SGD on CPU f32 parameters (default true).
    pub fused_optimizer: Option<bool>,
}

/// Numeric precision of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Everything in f32.
    F32,
    /// Mixed: f32 master weights and optimizer state, forward/backward in bf16.
    Bf16,
    /// Mixed: f32 master weights and optimizer state, forward/backward in f16,
    /// with a dynamic loss scaler.
    F16,
    /// Everything (weights, activations, optimizer state) in bf16.
    Bf16Pure,
    /// f32 with TF32 tensor-core matmuls (CUDA only).
    Tf32,
}

impl Precision {
    pub const ALL: &'static [(&'static str, Precision)] = &[
        ("f32", Precision::F32),
        ("bf16", Precision::Bf16),
        ("f16", Precision::F16),
        ("bf16-pure", Precision::Bf16Pure),
        ("tf32", Precision::Tf32),
    ];
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, p)| *p)
    }
}

/// How the learning rate follows the effective batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrScaling {
    None,
    /// lr × B / B_ref (Goyal et al. 2017).
    Linear,
    /// lr × sqrt(B / B_ref) (Krizhevsky 2014; Hoffer et al. 2017).
    Sqrt,
}

impl LrScaling {
    pub const ALL: &'static [(&'static str, LrScaling)] = &[
        ("none", LrScaling::None),
        ("linear", LrScaling::Linear),
        ("sqrt", LrScaling::Sqrt),
    ];
    /// The learning rate at `batch` given `lr` at `reference`.
    pub fn apply(self, lr: f64, batch: u32, reference: u32) -> f64 {
        let r = batch as f64 / reference as f64;
        match self {
            LrScaling::None => lr,
            LrScaling::Linear => lr * r,
            LrScaling::Sqrt => lr * r.sqrt(),
        }
    }
}

/// Which validation metric early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    ValLoss,
    ValAccuracy,
}

/// Early stopping: patience on a metric, and/or a target-accuracy stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: Option<u32>,
    pub min_delta: f64,
    pub metric: StopMetric,
    pub target_accuracy: Option<f64>,
}

/// `[defaults]`: suite-wide seeds and repeats, plus any `Settings` key
/// (checked strictly when the flattened table is turned into `Settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// auto | nvml | rapl | estimate
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawEntry {
    name: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(flatten)]
    settings: toml::Table,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    baseline: Option<String>,
    #[serde(default)]
    defaults: Option<Defaults>,
    #[serde(default)]
    data: DataSection,
    #[serde(default)]
    meter: MeterSection,
    #[serde(default)]
    impact: ImpactSection,
    #[serde(default, rename = "workload")]
    workloads: Vec<RawEntry>,
    #[serde(default, rename = "variant")]
    variants: Vec<RawEntry>,
    /// A published claim this suite tests (`joulebench reproduce`).
    #[serde(default)]
    claim: Option<crate::claims::Claim>,
    /// Overrides of `[defaults]` for `--quick` (CPU-sized) runs.
    #[serde(default)]
    quick: Option<toml::Table>,
}

/// A fully resolved optimizer configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub learning_rate: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// The fused in-place update (CPU f32) instead of the tensor-op one.
    #[serde(default)]
    pub fused: bool,
}

/// Everything one trial needs, resolved from the layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialConfig {
    pub workload: String,
    pub model: ModelKind,
    pub variant: String,
    pub epochs: u32,
    pub batch_size: u32,
    pub optimizer: OptimizerConfig,
    pub max_train_samples: Option<u64>,
    pub max_eval_samples: Option<u64>,
    pub eval_batch_size: u32,
    pub precision: Precision,
    /// Micro-batches per optimizer step (effective batch = batch_size × this).
    pub accumulation_steps: u32,
    pub lr_scaling: LrScaling,
    /// Learning rate as written before scaling (`optimizer.learning_rate` is the scaled one).
    pub base_learning_rate: f64,
    pub reference_batch_size: u32,
    pub early_stopping: Option<EarlyStopping>,
    pub eval_every_steps: Option<u64>,
    pub loss_scale_init: f64,
    pub loss_scale_growth_interval: u32,
    /// Model size knobs, resolved.
    pub size: crate::model::ModelSize,
    /// Language models: tokens generated per prompt in the inference window.
    pub generate_tokens: u32,
    /// Post-training quantization type for an extra inference window.
    pub quantize: Option<String>,
    /// Magnitude pruning, if any.
    pub prune: Option<crate::prune::PruneConfig>,
    /// Knowledge distillation from a teacher, if any.
    pub distill: Option<crate::distill::DistillConfig>,
    pub save_weights: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub model: ModelKind,
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub settings: Settings,
}

/// A parsed and validated suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub baseline: String,
    pub seeds: Vec<u64>,
    pub repeats: u32,
    pub defaults: Settings,
    pub data: DataSection,
    pub meter: Option<MeterChoice>,
    pub meter_section: MeterSection,
    pub impact: ImpactSection,
    pub workloads: Vec<Workload>,
    pub variants: Vec<Variant>,
    /// The file's exact text (copied into each run folder).
    pub source: String,
    pub claim: Option<crate::claims::Claim>,
    /// Whether the `[quick]` overrides were applied.
    pub quick: bool,
}

struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn invalid(&self, field: &str, value: impl std::fmt::Display, allowed: &str) -> SuiteError {
        SuiteError::Invalid {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }

    fn unknown(&self, field: &str, what: &'static str, name: &str, known: &[&str]) -> SuiteError {
        SuiteError::Unknown {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            what,
            name: name.to_string(),
            known: known.join(", "),
        }
    }

    fn settings(&self, prefix: &str, table: toml::Table) -> Result<Settings, SuiteError> {
        let s: Settings = match Settings::deserialize(toml::Value::Table(table.clone())) {
            Ok(s) => s,
            Err(e) => {
                // Find the offending key, so the message can name it.
                let culprit = table.iter().find(|(k, v)| {
                    let mut one = toml::Table::new();
                    one.insert((*k).clone(), (*v).clone());
                    Settings::deserialize(toml::Value::Table(one)).is_err()
                });
                let message = match culprit {
                    Some((k, v)) => format!("field `{prefix}.{k}` = {v}: {}", e.message()),
                    None => format!("in `{prefix}`: {}", e.message()),
                };
                return Err(SuiteError::Parse {
                    path: self.path.to_path_buf(),
                    message,
                });
            }
        };
        self.check_settings(prefix, &s)?;
        Ok(s)
    }

    fn check_settings(&self, p: &str, s: &Settings) -> Result<(), SuiteError> {
        let pos_int = |field: &str, v: Option<i64>, what: &str| -> Result<(), SuiteError> {
            match v {
                Some(v) if v < 1 => Err(self.invalid(&format!("{p}.{field}"), v, what)),
                Some(v) if v > u32::MAX as i64 => {
                    Err(self.invalid(&format!("{p}.{field}"), v, "at most 4294967295"))
                }
                _ => Ok(()),
            }
        };
        pos_int("epochs", s.epochs, "epochs must be an integer >= 1")?;
        pos_int(
            "batch_size",
            s.batch_size,
            "batch size must be an integer >= 1",
        )?;
        pos_int(
            "max_train_samples",
            s.max_train_samples,
            "a sample cap must be an integer >= 1 (omit it to use the whole split)",
        )?;
        pos_int(
            "max_eval_samples",
            s.max_eval_samples,
            "a sample cap must be an integer >= 1 (omit it to use the whole split)",
        )?;
        pos_int(
            "eval_batch_size",
            s.eval_batch_size,
            "batch size must be an integer >= 1",
        )?;
        if let Some(lr) = s.learning_rate
            && !(lr.is_finite() && lr > 0.0 && lr <= 10.0)
        {
            return Err(self.invalid(
                &format!("{p}.learning_rate"),
                lr,
                "learning rate must be a finite number in (0, 10]",
            ));
        }
        if let Some(m) = s.momentum
            && !(0.0..1.0).contains(&m)
        {
            return Err(self.invalid(&format!("{p}.momentum"), m, "momentum must be in [0, 1)"));
        }
        if let Some(w) = s.weight_decay
            && !(w.is_finite() && w >= 0.0)
        {
            return Err(self.invalid(
                &format!("{p}.weight_decay"),
                w,
                "weight decay must be a finite number >= 0",
            ));
        }
        pos_int(
            "reference_batch_size",
            s.reference_batch_size,
            "batch size must be an integer >= 1",
        )?;
        pos_int(
            "accumulation_steps",
            s.accumulation_steps,
            "accumulation steps must be an integer >= 1 (1 = no accumulation)",
        )?;
        pos_int(
            "early_stopping_patience",
            s.early_stopping_patience,
            "patience is a number of evaluations >= 1",
        )?;
        pos_int(
            "eval_every_steps",
            s.eval_every_steps,
            "evaluate every N >= 1 optimizer steps (omit for once per epoch)",
        )?;
        pos_int(
            "loss_scale_growth_interval",
            s.loss_scale_growth_interval,
            "a number of clean steps >= 1",
        )?;
        if let Some(d) = s.early_stopping_min_delta
            && !(d.is_finite() && d >= 0.0)
        {
            return Err(self.invalid(
                &format!("{p}.early_stopping_min_delta"),
                d,
                "a finite number >= 0",
            ));
        }
        if let Some(t) = s.target_accuracy
            && !(t > 0.0 && t <= 1.0)
        {
            return Err(self.invalid(
                &format!("{p}.target_accuracy"),
                t,
                "an accuracy in (0, 1], e.g. 0.85",
            ));
        }
        if let Some(x) = s.loss_scale_init
            && !(x.is_finite() && x >= 1.0)
        {
            return Err(self.invalid(
                &format!("{p}.loss_scale_init"),
                x,
                "a finite number >= 1 (a power of two such as 65536)",
            ));
        }
        if let Some(bs) = &s.batch_sizes {
            if bs.is_empty() {
                return Err(self.invalid(
                    &format!("{p}.batch_sizes"),
                    "[]",
                    "list at least one batch size",
                ));
            }
            if let Some(b) = bs.iter().find(|&&b| b < 1 || b > u32::MAX as i64) {
                return Err(self.invalid(
                    &format!("{p}.batch_sizes"),
                    b,
                    "batch sizes must be integers >= 1",
                ));
            }
        }
        if let Some(x) = &s.precision
            && Precision::parse(x).is_none()
        {
            return Err(self.unknown(
                &format!("{p}.precision"),
                "precision",
                x,
                &Precision::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ));
        }
        if let Some(x) = s.prune_sparsity
            && !(0.0..1.0).contains(&x)
        {
            return Err(self.invalid(
                &format!("{p}.prune_sparsity"),
                x,
                "sparsity is the fraction of weights set to zero, in [0, 1)",
            ));
        }
        pos_int(
            "prune_after_epochs",
            s.prune_after_epochs,
            "an epoch number >= 1",
        )?;
        if let Some(x) = &s.prune_structure
            && x != "unstructured"
            && x != "structured"
        {
            return Err(self.unknown(
                &format!("{p}.prune_structure"),
                "pruning structure",
                x,
                &["unstructured", "structured"],
            ));
        }
        if let Some(t) = &s.distill_teacher
            && (ModelKind::parse(t).is_none() || ModelKind::parse(t).is_some_and(|k| k.uses_text()))
        {
            return Err(self.unknown(
                &format!("{p}.distill_teacher"),
                "teacher model",
                t,
                &["mlp", "cnn", "separable-cnn", "standard-cnn"],
            ));
        }
        pos_int("teacher_epochs", s.teacher_epochs, "an integer >= 1")?;
        if let Some(t) = s.distill_temperature
            && !(t.is_finite() && t > 0.0 && t <= 100.0)
        {
            return Err(self.invalid(
                &format!("{p}.distill_temperature"),
                t,
                "a temperature in (0, 100]",
            ));
        }
        if let Some(a) = s.distill_alpha
            && !(0.0..=1.0).contains(&a)
        {
            return Err(self.invalid(&format!("{p}.distill_alpha"), a, "a weight in [0, 1]"));
        }
        if let Some(x) = &s.prune_scope
            && x != "global"
            && x != "layer"
        {
            return Err(self.unknown(
                &format!("{p}.prune_scope"),
                "pruning scope",
                x,
                &["global", "layer"],
            ));
        }
        if let Some(x) = &s.prune_schedule
            && x != "one-shot"
            && x != "gradual"
        {
            return Err(self.unknown(
                &format!("{p}.prune_schedule"),
                "pruning schedule",
                x,
                &["one-shot", "gradual"],
            ));
        }
        if let Some(x) = &s.quantize
            && crate::quantize::parse(x).is_none()
        {
            return Err(self.unknown(
                &format!("{p}.quantize"),
                "quantization type",
                x,
                &crate::quantize::TYPES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>(),
            ));
        }
        if let Some(x) = &s.lr_scaling
            && !LrScaling::ALL.iter().any(|(n, _)| n == x)
        {
            return Err(self.unknown(
                &format!("{p}.lr_scaling"),
                "lr scaling rule",
                x,
                &LrScaling::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ));
        }
        if let Some(x) = &s.early_stopping_metric
            && x != "val_loss"
            && x != "val_accuracy"
        {
            return Err(self.unknown(
                &format!("{p}.early_stopping_metric"),
                "metric",
                x,
                &["val_loss", "val_accuracy"],
            ));
        }
        for (field, v) in [
            ("fc_width", s.fc_width),
            ("d_model", s.d_model),
            ("layers", s.layers),
            ("heads", s.heads),
            ("context", s.context),
            ("generate_tokens", s.generate_tokens),
        ] {
            pos_int(field, v, "an integer >= 1")?;
        }
        for (field, v) in [("hidden", &s.hidden), ("channels", &s.channels)] {
            if let Some(v) = v
                && (v.is_empty() || v.iter().any(|&w| !(1..=65_536).contains(&w)))
            {
                return Err(self.invalid(
                    &format!("{p}.{field}"),
                    format!("{v:?}"),
                    "a non-empty list of widths in 1..=65536",
                ));
            }
        }
        if let Some(o) = &s.optimizer {
            parse_optimizer(o).ok_or_else(|| {
                self.unknown(
                    &format!("{p}.optimizer"),
                    "optimizer",
                    o,
                    &OptimizerKind::ALL
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>(),
                )
            })?;
        }
        Ok(())
    }
}

fn parse_optimizer(s: &str) -> Option<OptimizerKind> {
    OptimizerKind::ALL
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, k)| *k)
}

pub fn parse_meter(s: &str) -> Option<MeterChoice> {
    MeterChoice::ALL
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, k)| *k)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl Suite {
    /// Reads and validates a suite file.
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Reads a suite with its `[quick]` overrides applied (if `quick`).
    pub fn load_with(path: &Path, quick: bool) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_with(path, &text, quick)
    }

    /// Parses and validates suite text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Suite, SuiteError> {
        Self::parse_with(path, text, false)
    }

    /// Parses suite text, applying `[quick]` over `[defaults]` when `quick`.
    pub fn parse_with(path: &Path, text: &str, quick: bool) -> Result<Suite, SuiteError> {
        let cx = Ctx { path };
        let mut raw: RawSuite = toml::from_str(text).map_err(|e| SuiteError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if quick && let Some(q) = raw.quick.take() {
            let d = raw.defaults.get_or_insert(Defaults {
                seeds: None,
                repeats: None,
                settings: toml::Table::new(),
            });
            for (k, v) in q {
                match k.as_str() {
                    "seeds" => {
                        d.seeds = Some(Vec::<i64>::deserialize(v).map_err(|e| {
                            cx.invalid("quick.seeds", e.message(), "a list of integer seeds")
                        })?)
                    }
                    "repeats" => {
                        d.repeats =
                            Some(i64::deserialize(v).map_err(|e| {
                                cx.invalid("quick.repeats", e.message(), "an integer")
                            })?)
                    }
                    _ => {
                        d.settings.insert(k, v);
                    }
                }
            }
        }
        if !valid_name(&raw.name) {
            return Err(cx.invalid(
                "name",
                format!("{:?}", raw.name),
                "1-64 characters of letters, digits, '-', '_' or '.' (it names the results folder)",
            ));
        }
        let defaults = raw.defaults.unwrap_or(Defaults {
            seeds: None,
            repeats: None,
            settings: toml::Table::new(),
        });
        let seeds = match defaults.seeds {
            None => vec![0],
            Some(v) if v.is_empty() => {
                return Err(cx.invalid(
                    "defaults.seeds",
                    "[]",
                    "give at least one seed, e.g. seeds = [1, 2, 3]",
                ));
            }
            Some(v) => {
                let mut out = Vec::new();
                for s in v {
                    if s < 0 {
                        return Err(cx.invalid("defaults.seeds", s, "seeds are integers >= 0"));
                    }
                    if out.contains(&(s as u64)) {
                        return Err(cx.invalid(
                            "defaults.seeds",
                            s,
                            "each seed may appear once (use `repeats` to repeat a seed)",
                        ));
                    }
                    out.push(s as u64);
                }
                out
            }
        };
        let repeats = match defaults.repeats {
            None => 1,
            Some(r) if (1..=1000).contains(&r) => r as u32,
            Some(r) => {
                return Err(cx.invalid(
                    "defaults.repeats",
                    r,
                    "repeats must be an integer in 1..=1000",
                ));
            }
        };
        let default_settings = cx.settings("defaults", defaults.settings)?;

        if raw.workloads.is_empty() {
            return Err(cx.invalid(
                "workload",
                "(none)",
                "a suite needs at least one [[workload]] table with `name` and `model`",
            ));
        }
        let known_models: Vec<&str> = ModelKind::ALL.iter().map(|(n, _)| *n).collect();
        let mut workloads: Vec<Workload> = Vec::new();
        for (i, w) in raw.workloads.into_iter().enumerate() {
            let field = format!("workload[{i}]");
            if !valid_name(&w.name) {
                return Err(cx.invalid(
                    &format!("{field}.name"),
                    format!("{:?}", w.name),
                    "1-64 characters of letters, digits, '-', '_' or '.'",
                ));
            }
            if workloads.iter().any(|x| x.name == w.name) {
                return Err(cx.invalid(
                    &format!("{field}.name"),
                    &w.name,
                    "workload names must be unique within a suite",
                ));
            }
            let model_name = w.model.clone().unwrap_or_else(|| w.name.clone());
            let model = ModelKind::parse(&model_name).ok_or_else(|| {
                cx.unknown(
                    &format!("workload[{}].model", w.name),
                    "workload model",
                    &model_name,
                    &known_models,
                )
            })?;
            let settings = cx.settings(&format!("workload[{}]", w.name), w.settings)?;
            workloads.push(Workload {
                name: w.name,
                model,
                settings,
            });
        }

        let mut variants: Vec<Variant> = Vec::new();
        for (i, v) in raw.variants.into_iter().enumerate() {
            let field = format!("variant[{i}]");
            if !valid_name(&v.name) {
                return Err(cx.invalid(
                    &format!("{field}.name"),
                    format!("{:?}", v.name),
                    "1-64 characters of letters, digits, '-', '_' or '.'",
                ));
            }
            if v.model.is_some() {
                return Err(cx.invalid(
                    &format!("variant[{}].model", v.name),
                    v.model.as_deref().unwrap_or_default(),
                    "a variant changes techniques, not the model; set `model` on a [[workload]]",
                ));
            }
            if variants.iter().any(|x| x.name == v.name) {
                return Err(cx.invalid(
                    &format!("{field}.name"),
                    &v.name,
                    "variant names must be unique within a suite",
                ));
            }
            let settings = cx.settings(&format!("variant[{}]", v.name), v.settings)?;
            if settings.batch_sizes.is_some() && settings.batch_size.is_some() {
                return Err(cx.invalid(
                    &format!("variant[{}].batch_sizes", v.name),
                    "(with batch_size)",
                    "give either batch_size or batch_sizes, not both",
                ));
            }
            match &settings.batch_sizes {
                None => variants.push(Variant {
                    name: v.name,
                    settings,
                }),
                Some(sizes) => {
                    for &b in sizes {
                        let name = format!("{}-b{b}", v.name);
                        if variants.iter().any(|x| x.name == name) {
                            return Err(cx.invalid(
                                &format!("variant[{}].batch_sizes", v.name),
                                b,
                                "each batch size may appear once",
                            ));
                        }
                        variants.push(Variant {
                            name,
                            settings: Settings {
                                batch_size: Some(b),
                                batch_sizes: None,
                                ..settings.clone()
                            },
                        });
                    }
                }
            }
        }
        if variants.is_empty() {
            variants.push(Variant {
                name: "baseline".into(),
                settings: Settings::default(),
            });
        }
        let baseline = match raw.baseline {
            None => variants[0].name.clone(),
            Some(b) => {
                if !variants.iter().any(|v| v.name == b) {
                    let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
                    return Err(cx.unknown("baseline", "variant", &b, &names));
                }
                b
            }
        };
        let meter = match &raw.meter.kind {
            None => None,
            Some(k) => Some(parse_meter(k).ok_or_else(|| {
                cx.unknown(
                    "meter.kind",
                    "meter",
                    k,
                    &MeterChoice::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                )
            })?),
        };
        let ranges: [(&str, Option<f64>, f64, f64, &str); 6] = [
            (
                "meter.cpu_watts_per_core",
                raw.meter.cpu_watts_per_core,
                0.0,
                1000.0,
                "rated watts per core must be in (0, 1000]",
            ),
            (
                "meter.dram_watts_per_gb",
                raw.meter.dram_watts_per_gb,
                0.0,
                10.0,
                "watts per GB must be in (0, 10]",
            ),
            (
                "meter.idle_seconds",
                raw.meter.idle_seconds,
                -1e-12,
                600.0,
                "idle window seconds must be in [0, 600] (0 disables the baseline)",
            ),
            (
                "meter.cooldown_seconds",
                raw.meter.cooldown_seconds,
                -1e-12,
                3600.0,
                "cool-down seconds must be in [0, 3600]",
            ),
            (
                "meter.cooldown_temperature_c",
                raw.meter.cooldown_temperature_c,
                10.0,
                100.0,
                "a GPU temperature in (10, 100] degrees C",
            ),
            (
                "meter.poll_interval_ms",
                raw.meter.poll_interval_ms,
                0.5,
                1000.0,
                "polling interval in milliseconds, in [1, 1000]",
            ),
        ];
        for (field, v, lo, hi, allowed) in ranges {
            if let Some(v) = v
                && !(v.is_finite() && v > lo && v <= hi)
            {
                return Err(cx.invalid(field, v, allowed));
            }
        }
        crate::impact::ImpactSettings::new(
            raw.impact.region.as_deref(),
            raw.impact.pue,
            raw.impact.wue_onsite,
            raw.impact.water_offsite,
        )
        .map_err(|e| match e {
            crate::impact::ImpactError::Invalid {
                field,
                value,
                allowed,
            } => cx.invalid(&format!("impact.{field}"), value, allowed),
            other => SuiteError::Parse {
                path: path.to_path_buf(),
                message: format!("field `impact.region`: {other}"),
            },
        })?;
        let suite = Suite {
            path: path.to_path_buf(),
            name: raw.name,
            description: raw.description,
            baseline,
            seeds,
            repeats,
            defaults: default_settings,
            data: raw.data,
            meter,
            meter_section: raw.meter,
            impact: raw.impact,
            workloads,
            variants,
            source: text.to_string(),
            claim: raw.claim,
            quick,
        };
        if let Some(c) = &suite.claim {
            for (field, sel) in [
                ("claim.baseline", &c.baseline),
                ("claim.treatment", &c.treatment),
            ] {
                let (w, v) = sel.split_once('/').unwrap_or((sel.as_str(), "baseline"));
                let ok = suite.workloads.iter().any(|x| x.name == w)
                    && suite.variants.iter().any(|x| x.name == v);
                if !ok {
                    let known: Vec<String> = suite
                        .workloads
                        .iter()
                        .flat_map(|w| {
                            suite
                                .variants
                                .iter()
                                .map(move |v| format!("{}/{}", w.name, v.name))
                        })
                        .collect();
                    return Err(cx.unknown(
                        field,
                        "workload/variant",
                        sel,
                        &known.iter().map(String::as_str).collect::<Vec<_>>(),
                    ));
                }
            }
            if matches!(
                c.expect,
                crate::claims::Expect::Within | crate::claims::Expect::Differs
            ) && (c.ratio_min.is_none() || c.ratio_max.is_none())
            {
                return Err(cx.invalid(
                    "claim.expect",
                    format!("{:?}", c.expect),
                    "`within` and `differs` need ratio_min and ratio_max",
                ));
            }
        }
        // Resolve every combination once so that a bad combination is reported now.
        suite.plan()?;
        Ok(suite)
    }

    /// Resolves the settings of one workload × variant.
    pub fn resolve(&self, w: &Workload, v: &Variant) -> Result<TrialConfig, SuiteError> {
        let layers = [&self.defaults, &w.settings, &v.settings];
        macro_rules! pick {
            ($f:ident, $d:expr) => {
                layers.iter().rev().find_map(|l| l.$f.clone()).unwrap_or($d)
            };
        }
        let optimizer_name: String = pick!(optimizer, "adamw".to_string());
        let kind = parse_optimizer(&optimizer_name).unwrap_or(OptimizerKind::Adamw);
        let default_wd = match kind {
            OptimizerKind::Adamw => 0.01,
            OptimizerKind::Sgd => 0.0,
        };
        let optimizer = OptimizerConfig {
            kind,
            learning_rate: pick!(
                learning_rate,
                match kind {
                    OptimizerKind::Adamw => 1e-3,
                    OptimizerKind::Sgd => 0.05,
                }
            ),
            momentum: pick!(momentum, 0.9),
            weight_decay: pick!(weight_decay, default_wd),
            fused: pick!(fused_optimizer, true),
        };
        let cap = |v: Option<i64>| v.map(|x| x as u64);
        let batch_size = pick!(batch_size, 128) as u32;
        let accumulation_steps = pick!(accumulation_steps, 1) as u32;
        let lr_scaling = LrScaling::ALL
            .iter()
            .find(|(n, _)| *n == pick!(lr_scaling, "none".to_string()))
            .map_or(LrScaling::None, |(_, r)| *r);
        let reference_batch_size = pick!(reference_batch_size, 128) as u32;
        let base_learning_rate = optimizer.learning_rate;
        let optimizer = OptimizerConfig {
            learning_rate: lr_scaling.apply(
                base_learning_rate,
                batch_size * accumulation_steps,
                reference_batch_size,
            ),
            ..optimizer
        };
        let patience = layers.iter().rev().find_map(|l| l.early_stopping_patience);
        let target_accuracy = layers.iter().rev().find_map(|l| l.target_accuracy);
        let early_stopping =
            (patience.is_some() || target_accuracy.is_some()).then(|| EarlyStopping {
                patience: patience.map(|p| p as u32),
                min_delta: pick!(early_stopping_min_delta, 0.0),
                metric: if pick!(early_stopping_metric, "val_loss".to_string()) == "val_accuracy" {
                    StopMetric::ValAccuracy
                } else {
                    StopMetric::ValLoss
                },
                target_accuracy,
            });
        let precision =
            Precision::parse(&pick!(precision, "f32".to_string())).unwrap_or(Precision::F32);
        let size = self.resolve_size(w, &layers)?;
        Ok(TrialConfig {
            workload: w.name.clone(),
            model: w.model,
            variant: v.name.clone(),
            epochs: pick!(epochs, 1) as u32,
            batch_size,
            optimizer,
            max_train_samples: cap(layers.iter().rev().find_map(|l| l.max_train_samples)),
            max_eval_samples: cap(layers.iter().rev().find_map(|l| l.max_eval_samples)),
            eval_batch_size: pick!(eval_batch_size, 1000) as u32,
            precision,
            accumulation_steps,
            lr_scaling,
            base_learning_rate,
            reference_batch_size,
            early_stopping,
            eval_every_steps: cap(layers.iter().rev().find_map(|l| l.eval_every_steps)),
            loss_scale_init: pick!(loss_scale_init, 65536.0),
            loss_scale_growth_interval: pick!(loss_scale_growth_interval, 2000) as u32,
            size,
            generate_tokens: pick!(generate_tokens, 64) as u32,
            quantize: layers.iter().rev().find_map(|l| l.quantize.clone()),
            prune: layers
                .iter()
                .rev()
                .find_map(|l| l.prune_sparsity)
                .map(|sparsity| crate::prune::PruneConfig {
                    sparsity,
                    scope: if pick!(prune_scope, "global".to_string()) == "layer" {
                        crate::prune::Scope::Layer
                    } else {
                        crate::prune::Scope::Global
                    },
                    schedule: if pick!(prune_schedule, "one-shot".to_string()) == "gradual" {
                        crate::prune::Schedule::Gradual
                    } else {
                        crate::prune::Schedule::OneShot
                    },
                    after_epochs: pick!(prune_after_epochs, 1) as u32,
                    structure: if pick!(prune_structure, "unstructured".to_string()) == "structured"
                    {
                        crate::prune::Structure::Structured
                    } else {
                        crate::prune::Structure::Unstructured
                    },
                }),
            distill: match layers.iter().rev().find_map(|l| l.distill_teacher.clone()) {
                None => None,
                Some(t) => {
                    let teacher = ModelKind::parse(&t).unwrap_or(ModelKind::Cnn);
                    Some(crate::distill::DistillConfig {
                        teacher,
                        teacher_size: teacher.default_size(),
                        teacher_epochs: pick!(teacher_epochs, pick!(epochs, 1)) as u32,
                        teacher_weights: layers
                            .iter()
                            .rev()
                            .find_map(|l| l.teacher_weights.clone()),
                        temperature: pick!(distill_temperature, 4.0),
                        alpha: pick!(distill_alpha, 0.9),
                    })
                }
            },
            save_weights: pick!(save_weights, false),
        })
    }

    /// The model's size from the layers; knobs that do not apply to the
    /// workload's model are errors.
    fn resolve_size(
        &self,
        w: &Workload,
        layers: &[&Settings; 3],
    ) -> Result<crate::model::ModelSize, SuiteError> {
        use crate::model::ModelSize;
        let cx = Ctx { path: &self.path };
        let last = |f: &dyn Fn(&Settings) -> Option<i64>| layers.iter().rev().find_map(|l| f(l));
        let list = |f: &dyn Fn(&Settings) -> Option<Vec<i64>>| {
            layers
                .iter()
                .rev()
                .find_map(|l| f(l))
                .map(|v| v.into_iter().map(|x| x as usize).collect::<Vec<_>>())
        };
        let hidden = list(&|s| s.hidden.clone());
        let channels = list(&|s| s.channels.clone());
        let fc_width = last(&|s| s.fc_width);
        let d_model = last(&|s| s.d_model);
        let n_layers = last(&|s| s.layers);
        let heads = last(&|s| s.heads);
        let context = last(&|s| s.context);
        let tied = layers.iter().rev().find_map(|l| l.tied);
        let misplaced = |knob: &str, applies: &str| {
            cx.invalid(
                &format!("workload[{}].{knob}", w.name),
                "(set)",
                &format!(
                    "`{knob}` applies to {applies} only; workload `{}` is a {}",
                    w.name,
                    w.model.name()
                ),
            )
        };
        let default = w.model.default_size();
        Ok(match default {
            ModelSize::Mlp { hidden: h0 } => {
                for (k, set) in [
                    ("channels", channels.is_some()),
                    ("fc_width", fc_width.is_some()),
                    ("d_model", d_model.is_some()),
                    ("layers", n_layers.is_some()),
                    ("heads", heads.is_some()),
                    ("context", context.is_some()),
                    ("tied", tied.is_some()),
                ] {
                    if set {
                        return Err(misplaced(k, "other models"));
                    }
                }
                ModelSize::Mlp {
                    hidden: hidden.unwrap_or(h0),
                }
            }
            ModelSize::Cnn {
                channels: c0,
                fc_width: f0,
            } => {
                if hidden.is_some()
                    || d_model.is_some()
                    || n_layers.is_some()
                    || heads.is_some()
                    || context.is_some()
                    || tied.is_some()
                {
                    return Err(misplaced(
                        "hidden/d_model/layers/heads/context/tied",
                        "mlp or char-transformer",
                    ));
                }
                let channels = channels.unwrap_or(c0);
                if channels.len() != 2 {
                    return Err(cx.invalid(
                        &format!("workload[{}].channels", w.name),
                        format!("{channels:?}"),
                        "cnn takes exactly two widths, e.g. [32, 64]",
                    ));
                }
                ModelSize::Cnn {
                    channels,
                    fc_width: fc_width.map_or(f0, |x| x as usize),
                }
            }
            ModelSize::MobileNet { channels: c0 } => {
                if hidden.is_some()
                    || fc_width.is_some()
                    || d_model.is_some()
                    || n_layers.is_some()
                    || heads.is_some()
                    || context.is_some()
                    || tied.is_some()
                {
                    return Err(misplaced(
                        "hidden/fc_width/d_model/layers/heads/context/tied",
                        "other models",
                    ));
                }
                let channels = channels.unwrap_or(c0);
                if channels.len() < 2 {
                    return Err(cx.invalid(
                        &format!("workload[{}].channels", w.name),
                        format!("{channels:?}"),
                        "a stem width and at least one block width, e.g. [32, 64, 128]",
                    ));
                }
                ModelSize::MobileNet { channels }
            }
            ModelSize::Transformer {
                d_model: d0,
                layers: l0,
                heads: h0,
                context: t0,
                tied: tied0,
            } => {
                if hidden.is_some() || channels.is_some() || fc_width.is_some() {
                    return Err(misplaced("hidden/channels/fc_width", "mlp and the CNNs"));
                }
                let d = d_model.map_or(d0, |x| x as usize);
                let h = heads.map_or(h0, |x| x as usize);
                if d % h != 0 {
                    return Err(cx.invalid(
                        &format!("workload[{}].heads", w.name),
                        h,
                        &format!("d_model ({d}) must be divisible by heads"),
                    ));
                }
                ModelSize::Transformer {
                    d_model: d,
                    layers: n_layers.map_or(l0, |x| x as usize),
                    heads: h,
                    context: context.map_or(t0, |x| x as usize),
                    tied: tied.unwrap_or(tied0),
                }
            }
        })
    }

    /// Expands the suite into its ordered plan of trials.
    ///
    /// Order: workload, then seed, then repeat, then variant — so the variants of
    /// one seed run back to back and paired comparisons see the same machine state.
    pub fn plan(&self) -> Result<crate::plan::Plan, SuiteError> {
        let mut trials = Vec::new();
        for w in &self.workloads {
            for &seed in &self.seeds {
                for repeat in 0..self.repeats {
                    for v in &self.variants {
                        let config = self.resolve(w, v)?;
                        trials.push(crate::plan::TrialSpec {
                            index: trials.len(),
                            key: crate::plan::TrialKey {
                                workload: w.name.clone(),
                                variant: v.name.clone(),
                                seed,
                                repeat,
                            },
                            config,
                        });
                    }
                }
            }
        }
        Ok(crate::plan::Plan {
            suite: self.name.clone(),
            trials,
        })
    }

    /// Restricts the suite to some workloads and/or variants (CLI filters).
    pub fn select(&mut self, workloads: &[String], variants: &[String]) -> Result<(), SuiteError> {
        let cx = Ctx { path: &self.path };
        for w in workloads {
            if !self.workloads.iter().any(|x| &x.name == w) {
                let names: Vec<&str> = self.workloads.iter().map(|x| x.name.as_str()).collect();
                return Err(cx.unknown("--workload", "workload", w, &names));
            }
        }
        for v in variants {
            if !self.variants.iter().any(|x| &x.name == v) {
                let names: Vec<&str> = self.variants.iter().map(|x| x.name.as_str()).collect();
                return Err(cx.unknown("--variant", "variant", v, &names));
            }
        }
        if !workloads.is_empty() {
            self.workloads.retain(|x| workloads.contains(&x.name));
        }
        if !variants.is_empty() {
            self.variants.retain(|x| variants.contains(&x.name));
        }
        Ok(())
    }
}
