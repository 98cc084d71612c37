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
        /// Per-row symmetric int8 weights, inputs quantized per sample at run time, i32 accumulation (AVX-512 VNNI where the CPU has it).
        Int8 = "int8",
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
    /// Unstructured only: prune whole b x b blocks of each weight matrix by
    /// their mean magnitude (1 = single weights; left out of records then).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub block: u32,
}

fn unstructured() -> Structure {
    Structure::Unstructured
}

fn one() -> u32 {
    1
}

fn is_one(b: &u32) -> bool {
    *b == 1
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

crate::named_enum! {
    /// Storage format of a sparse layer (`sparse_inference`).
    pub enum SparseFormat: "sparse format" {
        /// Compressed sparse rows: one stored value and column index per non-zero.
        Csr = "csr",
        /// Block sparse rows: b x b blocks holding any non-zero, each stored dense.
        Bsr = "bsr",
    }
}

/// Sparse execution of the trained model's linear layers in an extra
/// inference window (after pruning, pruned zeros are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SparseConfig {
    pub format: SparseFormat,
    /// BSR block edge (1 for CSR).
    pub block: u32,
}
