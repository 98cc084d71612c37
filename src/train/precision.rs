//! Precision modes: which dtype holds the weights and which one computes,
//! the TF32 switch on CUDA, the f16 loss scaler, and the record of it all.

use super::TrainError;
use super::loss_scale::LossScaler;
use crate::config::{Precision, TrialConfig};
use crate::record::PrecisionRecord;
use candle_core::{DType, Device};

/// Weights dtype and compute dtype of a precision mode.
pub fn dtypes(p: Precision) -> (DType, DType) {
    match p {
        Precision::F32 | Precision::Tf32 => (DType::F32, DType::F32),
        Precision::Bf16 => (DType::F32, DType::BF16),
        Precision::F16 => (DType::F32, DType::F16),
        Precision::Bf16Pure => (DType::BF16, DType::BF16),
    }
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// Whether mixed precision in `compute` on `device` runs as the CPU's bf16
/// autocast (`ops::numerics`): f32 tensors and master weights, bf16
/// products inside the fused layers, no compute copy of the model.
pub fn cpu_autocast(compute: DType, device: &Device) -> bool {
    compute == DType::BF16 && device.is_cpu()
}

/// A trial's precision, set up on its device.
pub struct Setup {
    pub mode: Precision,
    /// Dtype of the master weights and the optimizer state.
    pub master: DType,
    /// Dtype of the forward and backward passes' tensors.
    pub compute: DType,
    /// bf16 mixed precision on the CPU: f32 tensors, bf16 products in the
    /// fused layers (enter [`Setup::autocast`] for the trial).
    autocast: bool,
    /// f16 only: the dynamic loss scaler.
    pub scaler: Option<LossScaler>,
    /// bf16 compute on a CPU: the matmul path it takes.
    cpu_bf16_path: Option<&'static str>,
}

impl Setup {
    /// Switches CUDA's TF32 matmuls on or off for this trial; refuses TF32
    /// where it does not exist.
    pub fn new(cfg: &TrialConfig, device: &Device) -> Result<Self, TrainError> {
        if cfg.precision == Precision::Tf32 {
            if !device.is_cuda() {
                return Err(TrainError::Unsupported(
                    "precision tf32 is a CUDA tensor-core matmul mode; on a CPU it would be plain f32, so this trial is not run (use --device cuda:N)".into(),
                ));
            }
            candle_core::cuda::set_gemm_reduced_precision_f32(true);
        } else if device.is_cuda() {
            candle_core::cuda::set_gemm_reduced_precision_f32(false);
        }
        let (master, compute) = dtypes(cfg.precision);
        let autocast = master != compute && cpu_autocast(compute, device);
        Ok(Self {
            mode: cfg.precision,
            master,
            compute: if autocast { master } else { compute },
            autocast,
            scaler: (cfg.precision == Precision::F16)
                .then(|| LossScaler::new(cfg.loss_scale_init, cfg.loss_scale_growth_interval)),
            cpu_bf16_path: (compute == DType::BF16 && device.is_cpu())
                .then(crate::ops::bf16_gemm::path),
        })
    }

    /// The bf16 autocast scope for the trial's thread, where this precision
    /// runs as one (drop it when the trial ends).
    pub fn autocast(&self) -> Option<crate::ops::numerics::AutocastGuard> {
        self.autocast.then(crate::ops::numerics::autocast_bf16)
    }

    /// Whether compute runs in another dtype than the master weights (a
    /// compute-dtype copy of the model is then built for each step).
    pub fn mixed(&self) -> bool {
        self.compute != self.master
    }

    /// The loss scale of the next step (1 without a scaler).
    pub fn loss_scale(&self) -> f64 {
        self.scaler.as_ref().map_or(1.0, |s| s.scale)
    }

    pub fn record(&self) -> PrecisionRecord {
        PrecisionRecord {
            mode: self.mode,
            weights: dtype_name(self.master),
            activations: if self.autocast {
                "bf16 (CPU autocast: products of the fused layers on bf16 values, results rounded to bf16 and kept in f32 tensors; other ops f32)".into()
            } else {
                dtype_name(self.compute)
            },
            optimizer_state: dtype_name(self.master),
            final_loss_scale: self.scaler.as_ref().map(|s| s.scale),
            skipped_steps: self.scaler.as_ref().map_or(0, |s| s.skipped_steps),
            cpu_bf16_path: self.cpu_bf16_path.map(str::to_string),
        }
    }
}
