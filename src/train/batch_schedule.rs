//! Batch schedules in the loop: each epoch's batch size and learning rate,
//! and for the adaptive rule the gradient noise scale measured from the
//! micro-batch gradients every step already computes.
//!
//! An adaptive step trains on two micro-batches of half the batch whose
//! gradients are averaged (the same update as one batch: the loss is a mean),
//! so |G_small|^2 (micro-batch) and |G_big|^2 (their mean) come for the price
//! of two squared norms per step.

use super::{Loop, TrainError, grads};
use crate::config::{BatchSchedule, NoiseScale};
use crate::record::EpochBatch;
use candle_core::backprop::GradStore;

/// How an epoch's batches are cut.
#[derive(Debug, Clone, Copy)]
pub(super) struct EpochBatchPlan {
    /// Samples per optimizer step (before accumulation).
    pub batch: u32,
    /// Samples per micro-batch.
    pub micro: u32,
    /// Micro-batches per optimizer step.
    pub per_step: usize,
    pub learning_rate: Option<f64>,
}

impl Loop<'_> {
    /// Sets this epoch's batch size and learning rate; how to cut batches.
    pub(super) fn begin_epoch_batch(&mut self, number: u32) -> EpochBatchPlan {
        let cfg = &self.spec.config;
        let accumulation = cfg.accumulation_steps.max(1) as usize;
        let Some(schedule) = cfg.batch_schedule else {
            return EpochBatchPlan {
                batch: cfg.batch_size,
                micro: cfg.batch_size,
                per_step: accumulation,
                learning_rate: None,
            };
        };
        if let BatchSchedule::Ramp {
            start,
            end,
            over_epochs,
        } = schedule
        {
            self.batch = BatchSchedule::ramp(start, end, over_epochs, number);
        }
        let lr = cfg.lr_scaling.apply(
            cfg.base_learning_rate,
            self.batch.saturating_mul(accumulation as u32),
            cfg.reference_batch_size,
        );
        self.opt.set_learning_rate(lr);
        let adaptive = matches!(schedule, BatchSchedule::Adaptive { .. });
        self.noise = adaptive.then(NoiseScale::default);
        EpochBatchPlan {
            batch: self.batch,
            micro: if adaptive {
                self.batch.div_ceil(2)
            } else {
                self.batch
            },
            per_step: accumulation * if adaptive { 2 } else { 1 },
            learning_rate: Some(lr),
        }
    }

    /// The epoch's batch record; the adaptive rule picks the next batch.
    pub(super) fn end_epoch_batch(&mut self, plan: EpochBatchPlan) -> Option<EpochBatch> {
        let learning_rate = plan.learning_rate?;
        let noise = self.noise.take();
        let noise_scale = noise.as_ref().and_then(NoiseScale::b_simple);
        if let Some(BatchSchedule::Adaptive { end, .. }) = self.spec.config.batch_schedule {
            self.batch = BatchSchedule::adaptive_next(self.batch, end, noise_scale);
        }
        Some(EpochBatch {
            size: plan.batch,
            learning_rate,
            noise_scale: noise_scale.filter(|b| b.is_finite()),
            noise_steps: noise.map_or(0, |n| n.steps()),
        })
    }

    /// Adds one step's micro-batch and mean gradient norms to the noise
    /// measurement (steps whose micro-batches differ in size are skipped:
    /// the estimator assumes one small size).
    pub(super) fn observe_noise(
        &mut self,
        small: &[(f64, usize)],
        mean: &GradStore,
    ) -> Result<(), TrainError> {
        let Some(noise) = self.noise.as_mut() else {
            return Ok(());
        };
        if small.len() < 2 || small.iter().any(|s| s.1 != small[0].1) {
            return Ok(());
        }
        let b_small = small[0].1 as f64;
        let small_sq = small.iter().map(|s| s.0).sum::<f64>() / small.len() as f64;
        let big_sq = grads::squared_norm(mean, &self.all_vars)?;
        noise.observe(small_sq, b_small, big_sq, b_small * small.len() as f64);
        Ok(())
    }
}
