//! One optimizer step: micro-batches forward, loss, backward and gradient
//! accumulation, unscaling, the loss scaler's gate, the update and the
//! step hooks — each phase timed by the `PhaseClock`.

use super::{Loop, TrainError, grads};
use crate::model::Model;
use crate::record::PhaseTimes;
use crate::util::units::Seconds;
use candle_core::{DType, Tensor};

/// Times consecutive phases of training steps. On a GPU each lap first waits
/// for the device's queued work, so every phase is charged its own kernels.
pub struct PhaseClock {
    device: candle_core::Device,
    last: std::time::Instant,
}

impl PhaseClock {
    pub fn start(device: &candle_core::Device) -> Self {
        Self {
            device: device.clone(),
            last: std::time::Instant::now(),
        }
    }

    /// Seconds since the previous lap (or the start).
    pub fn lap(&mut self) -> candle_core::Result<Seconds> {
        if self.device.is_cuda() {
            self.device.synchronize()?;
        }
        let now = std::time::Instant::now();
        let dt = Seconds::from_duration(now - self.last);
        self.last = now;
        Ok(dt)
    }

    /// Starts timing afresh (after work that is not a training phase).
    pub fn restart(&mut self) {
        self.last = std::time::Instant::now();
    }
}

/// What a step updates besides the model: the phase times, the phase clock
/// and the running loss of the epoch.
pub struct StepTiming {
    pub phases: PhaseTimes,
    pub clock: PhaseClock,
    pub loss: RunningLoss,
}

/// The running mean training loss of an epoch, kept on the device.
pub struct RunningLoss {
    sum: Tensor,
    count: u64,
}

impl RunningLoss {
    pub fn new(device: &candle_core::Device) -> candle_core::Result<Self> {
        Ok(Self {
            sum: Tensor::zeros((), DType::F32, device)?,
            count: 0,
        })
    }

    pub fn add(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        self.sum = (&self.sum + loss.detach())?;
        self.count += 1;
        Ok(())
    }

    pub fn mean(&self) -> candle_core::Result<f64> {
        Ok(self.sum.to_scalar::<f32>()? as f64 / self.count.max(1) as f64)
    }
}

/// Float inputs in the compute dtype; token ids stay integers.
pub(crate) fn inputs(x: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    if x.dtype().is_float() {
        x.to_dtype(dtype)
    } else {
        Ok(x.clone())
    }
}

/// (N, C) logits and (N,) labels: sequence outputs (B, T, V) are flattened
/// so language models share the classifiers' loss and accuracy.
pub(crate) fn flat(logits: &Tensor, y: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    if logits.rank() == 3 {
        let (b, t, v) = logits.dims3()?;
        Ok((logits.reshape((b * t, v))?, y.reshape(b * t)?))
    } else {
        Ok((logits.clone(), y.clone()))
    }
}

/// Cross-entropy (f32) of a batch's logits against its labels.
pub fn loss_of(logits: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let (l, y) = flat(&logits.to_dtype(DType::F32)?, y)?;
    crate::ops::cross_entropy::cross_entropy(&l, &y)
}

impl Loop<'_> {
    /// One optimizer step over a chunk of micro-batches; false when the
    /// chunk held no batch (nothing was stepped).
    pub(super) fn optimizer_step(
        &mut self,
        ep: &mut StepTiming,
        chunk: &[(Tensor, Tensor)],
    ) -> Result<bool, TrainError> {
        let compute = self.precision.compute;
        let step_model = if self.precision.mixed() {
            Some((self.build)(compute)?)
        } else {
            None
        };
        let model: &dyn Model = step_model.as_deref().unwrap_or(self.master.as_ref());
        let loss_scale = self.precision.loss_scale();
        let mut acc = None;
        // Squared norms and sizes of the micro-batch gradients (adaptive batch).
        let mut small: Vec<(f64, usize)> = Vec::new();
        for (x, y) in chunk {
            let xin = inputs(x, compute)?;
            ep.phases.data_s += ep.clock.lap()?;
            let logits = model.forward(&xin)?.to_dtype(DType::F32)?;
            let loss = self.hooks.loss(&xin, &logits, y, self.measurer)?;
            ep.phases.forward_s += ep.clock.lap()?;
            ep.loss.add(&loss)?;
            self.samples_seen += y.dims()[0] as u64;
            let g = if loss_scale != 1.0 {
                (loss * loss_scale)?.backward()?
            } else {
                loss.backward()?
            };
            ep.phases.backward_s += ep.clock.lap()?;
            if self.noise.is_some() {
                small.push((
                    grads::squared_norm(&g, &self.all_vars)? / (loss_scale * loss_scale),
                    y.dims()[0],
                ));
            }
            grads::accumulate(&mut acc, g, &self.all_vars)?;
        }
        let Some(mut g) = acc else { return Ok(false) };
        grads::scale(
            &mut g,
            &self.all_vars,
            1.0 / (loss_scale * chunk.len() as f64),
        )?;
        self.observe_noise(&small, &g)?;
        let all_vars = &self.all_vars;
        let may_step = match &mut self.precision.scaler {
            Some(s) => s.update(grads::any_non_finite(&g, all_vars)?),
            None => true,
        };
        if may_step {
            self.opt.step(&g)?;
        }
        self.step += 1;
        self.hooks.after_step(self.step, self.vars)?;
        ep.phases.optimizer_s += ep.clock.lap()?;
        self.progress.step();
        Ok(true)
    }
}
