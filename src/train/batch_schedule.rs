//! Batch schedules in the loop: each epoch's batch size and learning rate,
//! and for the adaptive rule the gradient noise scale measured from the
//! micro-batch gradients every step already computes.
//!
//! An adaptive step trains on two micro-batches of half the batch whose
//! gradients are averaged (the same update as one batch: the loss is a mean),
//! so |G_small|^2 (micro-batch) and |G_big|^2 (their mean) come for the price
//! of two squared norms per step.

use super::{Loop, TrainError, grads};
use crate::config::BatchSchedule;
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
            self.batch = ramp(start, end, over_epochs, number);
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
            self.batch = adaptive_next(self.batch, end, noise_scale);
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

/// Growth cap of the adaptive rule per epoch.
pub const ADAPTIVE_MAX_GROWTH: u32 = 4;

/// The ramp's batch for a 1-based epoch: start (end/start)^f with
/// f = min((epoch - 1) / over_epochs, 1), rounded.
pub fn ramp(start: u32, end: u32, over_epochs: u32, epoch: u32) -> u32 {
    let f = (epoch.saturating_sub(1) as f64 / over_epochs.max(1) as f64).min(1.0);
    let b = start as f64 * (end as f64 / start as f64).powf(f);
    (b.round() as u32).clamp(start.min(end), start.max(end))
}

/// The adaptive rule: the next epoch's batch given this epoch's and the
/// noise scale measured during it (None: not measured, keep the batch).
/// Grows to the largest power of two at most B_simple (a noise scale that
/// is not finite or not positive means the gradient is noise-dominated:
/// grow), at most `ADAPTIVE_MAX_GROWTH` x, never above `end`, never down.
pub fn adaptive_next(current: u32, end: u32, noise_scale: Option<f64>) -> u32 {
    let Some(b) = noise_scale else {
        return current;
    };
    let target = if b.is_finite() && b > 0.0 {
        let mut p = 1u32;
        while (p as f64) * 2.0 <= b && p < u32::MAX / 2 {
            p *= 2;
        }
        p
    } else {
        u32::MAX
    };
    target
        .min(current.saturating_mul(ADAPTIVE_MAX_GROWTH))
        .min(end)
        .max(current)
}

/// Accumulates McCandlish et al.'s unbiased estimators (their appendix A.1)
/// over an epoch's steps: from the squared norms of micro-batch gradients
/// (size `b_small`) and of their mean (size `b_big`),
/// |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small) and
/// tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big).
/// B_simple = mean tr(Sigma) / mean |G|^2 (numerator and denominator
/// averaged separately, as the paper advises, since each is noisy).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseScale {
    g2_sum: f64,
    s_sum: f64,
    n: u64,
}

impl NoiseScale {
    pub fn observe(&mut self, small_sq: f64, b_small: f64, big_sq: f64, b_big: f64) {
        if !(b_big > b_small && b_small > 0.0 && small_sq.is_finite() && big_sq.is_finite()) {
            return;
        }
        self.g2_sum += (b_big * big_sq - b_small * small_sq) / (b_big - b_small);
        self.s_sum += (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big);
        self.n += 1;
    }

    /// Steps observed.
    pub fn steps(&self) -> u64 {
        self.n
    }

    /// B_simple; None before any observation.
    pub fn b_simple(&self) -> Option<f64> {
        (self.n > 0).then(|| {
            let g2 = self.g2_sum / self.n as f64;
            let s = self.s_sum / self.n as f64;
            if g2 > 0.0 { s / g2 } else { f64::INFINITY }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_is_geometric_and_stays_at_end() {
        let r: Vec<u32> = (1..=5).map(|e| ramp(32, 512, 2, e)).collect();
        assert_eq!(r, [32, 128, 512, 512, 512]);
        assert_eq!(ramp(64, 64, 3, 2), 64);
    }

    #[test]
    fn adaptive_grows_towards_the_noise_scale_within_its_caps() {
        assert_eq!(adaptive_next(32, 1024, Some(300.0)), 128);
        assert_eq!(adaptive_next(32, 1024, Some(70.0)), 64);
        assert_eq!(adaptive_next(32, 1024, Some(10.0)), 32);
        assert_eq!(adaptive_next(256, 512, Some(1e9)), 512);
        assert_eq!(adaptive_next(64, 512, Some(f64::INFINITY)), 256);
        assert_eq!(adaptive_next(64, 512, None), 64);
    }

    #[test]
    fn noise_scale_recovers_a_known_gradient_and_noise() {
        // |G|^2 = 4, tr(Sigma) = 100: E|G_B|^2 = 4 + 100 / B.
        let mut n = NoiseScale::default();
        for _ in 0..3 {
            n.observe(4.0 + 100.0 / 16.0, 16.0, 4.0 + 100.0 / 32.0, 32.0);
        }
        assert!((n.b_simple().unwrap() - 25.0).abs() < 1e-9);
        assert_eq!(n.steps(), 3);
        assert_eq!(NoiseScale::default().b_simple(), None);
    }
}
