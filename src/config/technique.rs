//! Settings of the techniques that act around the training loop: magnitude
//! pruning, distillation and post-training quantization.

use super::model::{ModelKind, ModelSize};
use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// When magnitude pruning happens.
    pub enum Schedule: "pruning schedule" {
        OneShot = "one-shot",
        Gradual = "gradual",
    }
}

crate::named_enum! {
    /// Over which weights the magnitude threshold is taken.
    pub enum Scope: "pruning scope" {
        Global = "global",
        Layer = "layer",
    }
}

crate::named_enum! {
    /// What pruning removes.
    pub enum Structure: "pruning structure" {
        /// Zero individual weights (masks); the model stays dense.
        Unstructured = "unstructured",
        /// Remove whole neurons or channels and rebuild a smaller model.
        Structured = "structured",
    }
}

crate::named_enum! {
    /// Post-training quantization types (candle's GGML block formats).
    pub enum QuantType: "quantization type" {
        Q8_0 = "q8_0",
        Q4_0 = "q4_0",
        Q4k = "q4k",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneConfig {
    /// Unstructured: fraction of weights zeroed; structured: fraction of
    /// neurons/channels removed per layer.
    pub sparsity: f64,
    pub scope: Scope,
    pub schedule: Schedule,
    /// One-shot: prune after this epoch. Gradual: reach the target at its end.
    pub after_epochs: u32,
    #[serde(default = "unstructured")]
    pub structure: Structure,
}

fn unstructured() -> Structure {
    Structure::Unstructured
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Teacher model and size (trained in the trial unless `teacher_weights` is given).
    pub teacher: ModelKind,
    pub teacher_size: ModelSize,
    pub teacher_epochs: u32,
    /// A safetensors file with the teacher's weights (relative paths: to the run folder).
    pub teacher_weights: Option<String>,
    pub temperature: f64,
    pub alpha: f64,
}
