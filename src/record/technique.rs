//! Records of the techniques that act around the training loop: pruning
//! (measured sparsity, energy by phase), structured pruning (the model
//! before and after) and distillation (the teacher's energy kept apart).

use crate::config::model::ModelSize;
use crate::config::technique::{DistillConfig, PruneConfig};
use crate::meter::EnergyReading;
use crate::util::units::Joules;
use serde::{Deserialize, Serialize};

/// Measured sparsity of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    pub name: String,
    pub zeros: u64,
    pub total: u64,
    pub sparsity: f64,
}

/// Pruning summary for a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruningRecord {
    pub config: PruneConfig,
    pub layers: Vec<LayerSparsity>,
    /// Zeros over all prunable weights.
    pub overall_sparsity: f64,
    /// Training energy (gross J) before pruning (pre-training, or the
    /// gradual ramp) and after it (fine-tuning).
    pub pretrain_joules: Joules,
    pub finetune_joules: Joules,
}

/// Structured pruning: the model before and after, and the phases' cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructuredRecord {
    pub fraction_removed: f64,
    pub size_before: ModelSize,
    pub size_after: ModelSize,
    pub parameters_before: u64,
    pub parameters_after: u64,
    pub macs_before: u64,
    pub macs_after: u64,
    /// Training energy (gross J) before pruning and of the fine-tuning.
    pub pretrain_joules: Joules,
    pub finetune_joules: Joules,
    /// The unpruned model at the pruning point.
    pub before_test_accuracy: Option<f64>,
    pub before_inference_joules_per_1k: Option<Joules>,
}

/// What distillation cost, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillRecord {
    pub config: DistillConfig,
    pub teacher_parameters: u64,
    /// Training of the teacher inside this trial (absent when loaded from weights).
    pub teacher_training: Option<EnergyReading>,
    pub teacher_test_accuracy: Option<f64>,
    /// The teacher's forward passes during distillation.
    pub teacher_inference: EnergyReading,
    /// Student training energy without the teacher's inference (gross J).
    pub student_only_joules: Joules,
}
