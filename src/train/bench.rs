//! Training-step fixtures for the speed benchmarks (`benches/`,
//! `examples/perf_summary`, `examples/meter_overhead`): one model on one
//! fixed, seeded batch, stepped and timed per phase the way the trainer
//! times it (forward + loss, backward, optimizer).

use crate::config::{OptimizerConfig, OptimizerKind};
use crate::model::{Model, ModelKind, ModelSize};
use crate::record::PhaseTimes;
use crate::train::optim::TrainOptimizer;
use crate::util::units::Seconds;
use candle_core::{DType, Device, Result, Tensor};

/// Characters in the synthetic vocabulary of the language-model fixture.
const VOCAB: usize = 96;

pub struct StepBench {
    kind: ModelKind,
    classes: usize,
    /// Mixed precision: the dtype of the copy each step computes in (the
    /// master weights stay f32), as the trainer's `precision = "bf16"`.
    compute: Option<DType>,
    /// bf16 mixed precision on the CPU: the autocast scope instead of a copy.
    autocast: bool,
    model: Box<dyn Model>,
    opt: TrainOptimizer,
    x: Tensor,
    y: Tensor,
    /// Keeps the variables alive for the optimizer.
    _vars: crate::train::init::SeededVars,
}

impl StepBench {
    /// `kind` at its default size with parameters in `dtype`, a batch of
    /// `batch` random inputs (images, or token windows for the transformer),
    /// and AdamW (lr 1e-3, weight decay 0.01), fused where it can be.
    pub fn new(
        kind: ModelKind,
        batch: usize,
        dtype: DType,
        fused_optimizer: bool,
        device: &Device,
    ) -> Result<Self> {
        let vars = crate::train::init::SeededVars::new(1);
        let mut rng = crate::util::rng::Rng::new(2);
        let classes = if kind.uses_text() { VOCAB } else { 10 };
        let model = kind.build_default(vars.builder(dtype, device), classes)?;
        let (x, y) = match kind.default_size() {
            ModelSize::Transformer { context, .. } => {
                let mut tokens =
                    |n: usize| -> Vec<u32> { (0..n).map(|_| rng.below(VOCAB) as u32).collect() };
                (
                    Tensor::from_vec(tokens(batch * context), (batch, context), device)?,
                    Tensor::from_vec(tokens(batch * context), (batch, context), device)?,
                )
            }
            _ => {
                let px: Vec<f32> = (0..batch * 784).map(|_| rng.next_f64() as f32).collect();
                let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
                (
                    Tensor::from_vec(px, (batch, 1, 28, 28), device)?.to_dtype(dtype)?,
                    Tensor::from_vec(labels, batch, device)?,
                )
            }
        };
        let cfg = OptimizerConfig {
            kind: OptimizerKind::Adamw,
            learning_rate: 1e-3,
            momentum: 0.0,
            weight_decay: 0.01,
            fused: fused_optimizer,
        };
        let opt = TrainOptimizer::new(&cfg, vars.var_map().all_vars())?;
        Ok(Self {
            kind,
            classes,
            compute: None,
            autocast: false,
            model,
            opt,
            x,
            y,
            _vars: vars,
        })
    }

    /// Mixed precision as the trainer runs it: f32 master weights and
    /// optimizer, and each step a `compute`-dtype copy of the model (weights
    /// cast, gradients flowing back through the casts) on inputs in
    /// `compute`; bf16 on the CPU runs as autocast (`ops::numerics`).
    pub fn mixed(
        kind: ModelKind,
        batch: usize,
        compute: DType,
        fused_optimizer: bool,
        device: &Device,
    ) -> Result<Self> {
        let mut b = Self::new(kind, batch, DType::F32, fused_optimizer, device)?;
        if crate::train::precision::cpu_autocast(compute, device) {
            b.autocast = true;
        } else {
            b.compute = Some(compute);
        }
        Ok(b)
    }

    /// True when the fused optimizer is in use (it needs f32 CPU parameters).
    pub fn fused_optimizer(&self) -> bool {
        matches!(self.opt, TrainOptimizer::Fused(_))
    }

    /// One training step; seconds per phase (`data_s` stays 0: the batch is fixed).
    pub fn step(&mut self) -> Result<PhaseTimes> {
        let mut clock = crate::train::PhaseClock::start(self.x.device());
        let copy = match self.compute {
            Some(dtype) => Some((
                self.kind
                    .build_default(self._vars.builder(dtype, self.x.device()), self.classes)?,
                crate::train::step::inputs(&self.x, dtype)?,
            )),
            None => None,
        };
        let (model, x) = match &copy {
            Some((m, x)) => (m.as_ref(), x),
            None => (self.model.as_ref(), &self.x),
        };
        let autocast = self.autocast.then(crate::ops::numerics::autocast_bf16);
        let logits = model.forward(x)?;
        let loss = crate::train::loss_of(&logits, &self.y)?;
        drop(autocast);
        let forward_s = clock.lap()?;
        let grads = loss.backward()?;
        let backward_s = clock.lap()?;
        self.opt.step(&grads)?;
        let optimizer_s = clock.lap()?;
        Ok(PhaseTimes {
            data_s: Seconds::ZERO,
            forward_s,
            backward_s,
            optimizer_s,
        })
    }
}

/// The median of each phase, and the median step total, over `samples`.
pub fn median(samples: &[PhaseTimes]) -> (Seconds, PhaseTimes) {
    let med = |f: &dyn Fn(&PhaseTimes) -> Seconds| {
        Seconds(crate::util::stats::median(
            &samples.iter().map(|p| f(p).0).collect::<Vec<_>>(),
        ))
    };
    (
        med(&|p| p.forward_s + p.backward_s + p.optimizer_s + p.data_s),
        PhaseTimes {
            data_s: med(&|p| p.data_s),
            forward_s: med(&|p| p.forward_s),
            backward_s: med(&|p| p.backward_s),
            optimizer_s: med(&|p| p.optimizer_s),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_two_middle_steps() {
        let step = |f: f64| PhaseTimes {
            data_s: Seconds::ZERO,
            forward_s: Seconds(f),
            backward_s: Seconds(2.0 * f),
            optimizer_s: Seconds(1.0),
        };
        let (total, p) = median(&[step(4.0), step(1.0), step(3.0), step(2.0)]);
        assert_eq!(
            (p.forward_s.0, p.backward_s.0, p.optimizer_s.0),
            (2.5, 5.0, 1.0)
        );
        assert_eq!(total, Seconds(8.5));
        assert!(median(&[]).0.0.is_nan());
    }

    #[test]
    fn a_step_changes_the_loss_and_times_every_phase() {
        let dev = Device::Cpu;
        for kind in [ModelKind::Mlp, ModelKind::CharTransformer] {
            let mut b = StepBench::new(kind, 4, DType::F32, true, &dev).unwrap();
            assert!(b.fused_optimizer());
            let loss = |b: &StepBench| {
                crate::train::loss_of(&b.model.forward(&b.x).unwrap(), &b.y)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let before = loss(&b);
            let steps: Vec<PhaseTimes> = (0..5).map(|_| b.step().unwrap()).collect();
            assert!(loss(&b) < before, "{kind:?}: loss did not fall");
            let (total, p) = median(&steps);
            assert!(
                p.forward_s > Seconds::ZERO
                    && p.backward_s > Seconds::ZERO
                    && p.optimizer_s > Seconds::ZERO
            );
            assert!(total >= p.forward_s);
        }
    }
}
