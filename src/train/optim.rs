//! Optimizers: AdamW (candle_nn) and SGD with momentum as tensor ops, and
//! their fused in-place versions (`fused_optim`) on f32 CPU parameters.

use crate::config::{OptimizerConfig, OptimizerKind};
use crate::train::fused_optim::{FusedOptimizer, Rule};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer as _;

/// SGD with heavy-ball momentum and L2 weight decay, as PyTorch's `SGD`
/// (dampening 0, no Nesterov): `v = mu v + (g + wd w)`, `w -= lr v`.
pub struct SgdMomentum {
    vars: Vec<(Var, Option<Tensor>)>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl SgdMomentum {
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        Self {
            vars: vars.into_iter().map(|v| (v, None)).collect(),
            lr,
            momentum,
            weight_decay,
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, velocity) in &mut self.vars {
            let Some(g) = grads.get(var) else { continue };
            let mut g = g.clone();
            if self.weight_decay != 0.0 {
                g = (g + (var.as_tensor() * self.weight_decay)?)?;
            }
            let v = match velocity.take() {
                Some(v) if self.momentum != 0.0 => ((v * self.momentum)? + g)?,
                _ => g,
            };
            var.set(&(var.as_tensor() - (&v * self.lr)?)?)?;
            *velocity = Some(v);
        }
        Ok(())
    }
}

/// The optimizer a trial trains with.
pub enum TrainOptimizer {
    AdamW(Box<candle_nn::AdamW>),
    Fused(crate::train::fused_optim::FusedOptimizer),
    Sgd(SgdMomentum),
    /// AdamW as one kernel launch per parameter tensor on CUDA.
    #[cfg(feature = "cuda")]
    Cuda(crate::train::cuda::CudaAdamW),
}

impl TrainOptimizer {
    pub fn new(cfg: &OptimizerConfig, vars: Vec<Var>) -> Result<Self> {
        // AdamW's hyper-parameters, one set for every implementation.
        let adamw = candle_nn::ParamsAdamW {
            lr: cfg.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
        };
        if cfg.fused
            && crate::ops::selfcheck::enabled(crate::ops::selfcheck::Kernel::FusedOptimizer)
        {
            let rule = match cfg.kind {
                OptimizerKind::Adamw => Rule::adamw(&adamw),
                OptimizerKind::Sgd => Rule::SgdMomentum {
                    lr: cfg.learning_rate,
                    momentum: cfg.momentum,
                    weight_decay: cfg.weight_decay,
                },
            };
            if let Some(f) = FusedOptimizer::new(vars.clone(), rule) {
                return Ok(TrainOptimizer::Fused(f));
            }
        }
        #[cfg(feature = "cuda")]
        if cfg.fused
            && cfg.kind == OptimizerKind::Adamw
            && crate::ops::selfcheck::enabled(crate::ops::selfcheck::Kernel::CudaAdamW)
            && let Some(o) = crate::train::cuda::CudaAdamW::new(vars.clone(), adamw.clone())
        {
            return Ok(TrainOptimizer::Cuda(o));
        }
        Ok(match cfg.kind {
            OptimizerKind::Adamw => {
                TrainOptimizer::AdamW(Box::new(candle_nn::AdamW::new(vars, adamw)?))
            }
            OptimizerKind::Sgd => TrainOptimizer::Sgd(SgdMomentum::new(
                vars,
                cfg.learning_rate,
                cfg.momentum,
                cfg.weight_decay,
            )),
        })
    }

    /// Changes the learning rate from the next step on (batch schedules).
    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            TrainOptimizer::AdamW(o) => o.set_learning_rate(lr),
            TrainOptimizer::Fused(o) => o.set_learning_rate(lr),
            TrainOptimizer::Sgd(o) => o.lr = lr,
            #[cfg(feature = "cuda")]
            TrainOptimizer::Cuda(o) => o.set_learning_rate(lr),
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            TrainOptimizer::AdamW(o) => o.step(grads),
            TrainOptimizer::Fused(o) => o.step(grads),
            TrainOptimizer::Sgd(o) => o.step(grads),
            #[cfg(feature = "cuda")]
            TrainOptimizer::Cuda(o) => o.step(grads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn sgd_momentum_matches_hand_computation() -> Result<()> {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let mut opt = SgdMomentum::new(vec![w.clone()], 0.1, 0.9, 0.0);
        // loss = sum(w^2) -> grad = 2w
        for _ in 0..2 {
            let loss = w.as_tensor().sqr()?.sum_all()?;
            opt.step(&loss.backward()?)?;
        }
        // step 1: v = 2w0 = [2,-4]; w1 = w0 - 0.1 v = [0.8, -1.6]
        // step 2: g = [1.6,-3.2]; v = 0.9[2,-4] + g = [3.4,-6.8]; w2 = [0.46, -0.92]
        let got = w.as_tensor().to_vec1::<f32>()?;
        assert!(
            (got[0] - 0.46).abs() < 1e-6 && (got[1] + 0.92).abs() < 1e-6,
            "{got:?}"
        );
        Ok(())
    }
}
