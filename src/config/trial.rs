//! The resolved settings of one trial: what the trainer and the techniques
//! read. Plain data; `suite` builds it from a suite file's layers.

use super::model::{ModelKind, ModelSize};
use super::technique::{DistillConfig, PruneConfig, QuantType};
use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// Which optimizer trains the model.
    pub enum OptimizerKind: "optimizer" {
        /// AdamW (decoupled weight decay), betas 0.9/0.999, eps 1e-8.
        Adamw = "adamw",
        /// SGD with (heavy-ball) momentum and L2 weight decay.
        Sgd = "sgd",
    }
}

impl OptimizerKind {
    /// Learning rate when a suite gives none.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            OptimizerKind::Adamw => 1e-3,
            OptimizerKind::Sgd => 0.05,
        }
    }

    /// Weight decay when a suite gives none.
    pub fn default_weight_decay(self) -> f64 {
        match self {
            OptimizerKind::Adamw => 0.01,
            OptimizerKind::Sgd => 0.0,
        }
    }
}

crate::named_enum! {
    /// Numeric precision of a trial.
    pub enum Precision: "precision" {
        /// Everything in f32.
        F32 = "f32",
        /// Mixed: f32 master weights and optimizer state, forward/backward in bf16.
        Bf16 = "bf16",
        /// Mixed: f32 master weights and optimizer state, forward/backward in f16,
        /// with a dynamic loss scaler.
        F16 = "f16",
        /// Everything (weights, activations, optimizer state) in bf16.
        Bf16Pure = "bf16-pure",
        /// f32 with TF32 tensor-core matmuls (CUDA only).
        Tf32 = "tf32",
    }
}

crate::named_enum! {
    /// How the learning rate follows the effective batch size.
    pub enum LrScaling: "lr scaling rule" {
        None = "none",
        /// lr × B / B_ref (Goyal et al. 2017).
        Linear = "linear",
        /// lr × sqrt(B / B_ref) (Krizhevsky 2014; Hoffer et al. 2017).
        Sqrt = "sqrt",
    }
}

impl LrScaling {
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

crate::named_enum! {
    /// Which validation metric early stopping watches.
    pub enum StopMetric: "metric" {
        ValLoss = "val_loss",
        ValAccuracy = "val_accuracy",
    }
}

/// Early stopping: patience on a metric, and/or a target-accuracy stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: Option<u32>,
    pub min_delta: f64,
    pub metric: StopMetric,
    pub target_accuracy: Option<f64>,
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
    /// The batch size (with a schedule: its first epoch's).
    pub batch_size: u32,
    /// A batch size that changes over epochs (ramp or adaptive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_schedule: Option<super::BatchSchedule>,
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
    pub size: ModelSize,
    /// Language models: tokens generated per prompt in the inference window.
    pub generate_tokens: u32,
    /// Post-training quantization type for an extra inference window.
    pub quantize: Option<QuantType>,
    /// Sparse execution of the linear layers in an extra inference window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_inference: Option<super::SparseConfig>,
    /// Magnitude pruning, if any.
    pub prune: Option<PruneConfig>,
    /// Knowledge distillation from a teacher, if any.
    pub distill: Option<DistillConfig>,
    pub save_weights: bool,
    /// GPU power limit (W) the harness sets for this trial (then restores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_power_limit_w: Option<u32>,
    /// Locked GPU SM clock (MHz) for this trial (then reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_sm_clock_mhz: Option<u32>,
}

impl TrialConfig {
    /// Whether the trial changes GPU settings (power limit or clocks).
    pub fn changes_gpu_settings(&self) -> bool {
        self.gpu_power_limit_w.is_some() || self.gpu_sm_clock_mhz.is_some()
    }

    /// Optimizer steps of one epoch over `train_samples` samples (before the
    /// `max_train_samples` cap, which this applies).
    pub fn steps_per_epoch(&self, train_samples: u64) -> u64 {
        let n = self
            .max_train_samples
            .map_or(train_samples, |c| c.min(train_samples));
        n.div_ceil(self.batch_size as u64)
            .div_ceil(self.accumulation_steps.max(1) as u64)
    }
}
