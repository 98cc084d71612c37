//! Fused optimizers for f32 parameters on the CPU: one pass per parameter
//! updates the weight and its optimizer state in place, split over threads
//! for large tensors, reading the gradient where it lies.
//!
//! - AdamW, with candle_nn::AdamW's arithmetic (bias-corrected moments,
//!   `θ (1 − lr·wd) − lr · m̂ / (√v̂ + ε)`); candle_nn builds about ten
//!   temporary tensors per parameter per step for the same update.
//! - SGD with heavy-ball momentum and L2 decay, as `optim::SgdMomentum`
//!   (PyTorch's `SGD`): `v = μ v + (g + wd θ)`, `θ −= lr v`.
//!
//! Both agree with their tensor-op versions to float rounding over 100 steps
//! (tests/techniques.rs).

use crate::ops::selfcheck::Kernel;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Storage, Var};
use rayon::prelude::*;
use std::sync::Mutex;

/// The update rule and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    AdamW {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    SgdMomentum {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    },
}

impl Rule {
    /// AdamW with candle_nn's hyper-parameters.
    pub fn adamw(p: &candle_nn::ParamsAdamW) -> Self {
        Rule::AdamW {
            lr: p.lr,
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.eps,
            weight_decay: p.weight_decay,
        }
    }
}

struct Param {
    var: Var,
    /// AdamW: first moment; SGD: velocity.
    m: Vec<f32>,
    /// AdamW: second moment; empty for SGD.
    v: Vec<f32>,
}

pub struct FusedOptimizer {
    params: Vec<Param>,
    pub rule: Rule,
    t: i32,
}

/// One AdamW step's coefficients, in f32: shared by the CPU kernel here
/// and the CUDA kernel (`train::cuda`).
#[derive(Clone, Copy)]
pub(crate) struct AdamWCoefs {
    pub decay: f32,
    pub b1: f32,
    pub b2: f32,
    /// 1 − β₁ and 1 − β₂ taken in f64, as candle_nn does: 1 − 0.999_f32
    /// is 1.3e-5 off 0.001.
    pub one_minus_b1: f32,
    pub one_minus_b2: f32,
    pub scale_m: f32,
    pub scale_v: f32,
    pub lr: f32,
    pub eps: f32,
}

impl AdamWCoefs {
    /// The coefficients of step `t` (from 1) under `p`.
    pub fn at(t: i32, p: &candle_nn::ParamsAdamW) -> Self {
        let candle_nn::ParamsAdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = *p;
        Self {
            decay: (1.0 - lr * weight_decay) as f32,
            b1: beta1 as f32,
            b2: beta2 as f32,
            one_minus_b1: (1.0 - beta1) as f32,
            one_minus_b2: (1.0 - beta2) as f32,
            scale_m: (1.0 / (1.0 - beta1.powi(t))) as f32,
            scale_v: (1.0 / (1.0 - beta2.powi(t))) as f32,
            lr: lr as f32,
            eps: eps as f32,
        }
    }
}

/// One step's coefficients, in f32.
#[derive(Clone, Copy)]
enum Coefs {
    AdamW(AdamWCoefs),
    Sgd { lr: f32, mu: f32, wd: f32 },
}

impl Coefs {
    fn update(self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        match self {
            Coefs::AdamW(AdamWCoefs {
                decay,
                b1,
                b2,
                one_minus_b1,
                one_minus_b2,
                scale_m,
                scale_v,
                lr,
                eps,
            }) => {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
                    *m = b1 * *m + one_minus_b1 * g;
                    *v = b2 * *v + one_minus_b2 * g * g;
                    let (m_hat, v_hat) = (*m * scale_m, *v * scale_v);
                    *w = *w * decay - lr * (m_hat / (v_hat.sqrt() + eps));
                }
            }
            Coefs::Sgd { lr, mu, wd } => {
                for ((w, &g), m) in w.iter_mut().zip(g).zip(m) {
                    *m = mu * *m + (g + wd * *w);
                    *w -= lr * *m;
                }
            }
        }
    }
}

/// Elements per parallel work unit; smaller tensors run on one thread.
const CHUNK: usize = 1 << 15;

struct Step<'a> {
    g: &'a [f32],
    state: Mutex<(&'a mut [f32], &'a mut [f32])>,
    c: Coefs,
}

impl InplaceOp1 for Step<'_> {
    fn name(&self) -> &'static str {
        "fused-optimizer-step"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("the fused optimizer takes f32 parameters")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("the fused optimizer needs contiguous parameters")
        };
        let w = &mut data[start..end];
        let mut guard = self
            .state
            .lock()
            .map_err(|_| candle_core::Error::Msg("optimizer state lock poisoned".into()))?;
        let (m, v) = &mut *guard;
        let c = self.c;
        if v.is_empty() {
            w.par_chunks_mut(CHUNK)
                .zip(self.g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .for_each(|((w, g), m)| c.update(w, g, m, &mut []));
        } else {
            w.par_chunks_mut(CHUNK)
                .zip(self.g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((w, g), m), v)| c.update(w, g, m, v));
        }
        crate::ops::selfcheck::corrupt(Kernel::FusedOptimizer, w);
        Ok(())
    }
}

impl FusedOptimizer {
    /// None when a variable is not an f32 CPU tensor (use the tensor-op
    /// optimizers then).
    pub fn new(vars: Vec<Var>, rule: Rule) -> Option<Self> {
        if vars
            .iter()
            .any(|v| v.dtype() != DType::F32 || !v.device().is_cpu())
        {
            return None;
        }
        let adam = matches!(rule, Rule::AdamW { .. });
        let params = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                Param {
                    var,
                    m: vec![0.0; n],
                    v: if adam { vec![0.0; n] } else { Vec::new() },
                }
            })
            .collect();
        Some(Self { params, rule, t: 0 })
    }

    /// The fused AdamW under candle_nn's hyper-parameters.
    pub fn adamw(vars: Vec<Var>, p: &candle_nn::ParamsAdamW) -> Option<Self> {
        Self::new(vars, Rule::adamw(p))
    }

    fn coefs(&self) -> Coefs {
        match self.rule {
            Rule::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => Coefs::AdamW(AdamWCoefs::at(
                self.t,
                &candle_nn::ParamsAdamW {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                },
            )),
            Rule::SgdMomentum {
                lr,
                momentum,
                weight_decay,
            } => Coefs::Sgd {
                lr: lr as f32,
                mu: momentum as f32,
                wd: weight_decay as f32,
            },
        }
    }

    /// Changes the learning rate from the next step on (batch schedules).
    pub fn set_learning_rate(&mut self, new: f64) {
        match &mut self.rule {
            Rule::AdamW { lr, .. } | Rule::SgdMomentum { lr, .. } => *lr = new,
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let c = self.coefs();
        for p in &mut self.params {
            let Some(g) = grads.get(&p.var) else { continue };
            let g = g.to_dtype(DType::F32)?.contiguous()?;
            let (storage, layout) = g.storage_and_layout();
            let (Storage::Cpu(CpuStorage::F32(gv)), Some((a, b))) =
                (&*storage, layout.contiguous_offsets())
            else {
                candle_core::bail!("the fused optimizer takes f32 CPU gradients")
            };
            if b - a != p.m.len() {
                candle_core::bail!(
                    "gradient of {} elements for a parameter of {}",
                    b - a,
                    p.m.len()
                )
            }
            let step = Step {
                g: &gv[a..b],
                state: Mutex::new((&mut p.m, &mut p.v)),
                c,
            };
            p.var.as_tensor().inplace_op1(&step)?;
        }
        Ok(())
    }
}

/// An AdamW step function under test: built by the caller for the one
/// parameter it is given, with the learning rate and weight decay given.
pub(crate) type AdamWUnderTest = Box<dyn FnMut(&candle_core::backprop::GradStore) -> Result<()>>;

/// Three steps of the AdamW that `make` builds, on seeded parameter tensors
/// of the given `sizes` on `device`, against candle_nn's AdamW on the same
/// gradients; the largest relative difference of the parameters. The
/// self-check of every AdamW kernel (CPU and CUDA).
pub(crate) fn against_candle_adamw(
    device: &candle_core::Device,
    sizes: &[usize],
    make: impl FnOnce(Vec<Var>, &candle_nn::ParamsAdamW) -> Result<AdamWUnderTest>,
) -> Result<f64> {
    use candle_core::Tensor;
    use candle_nn::Optimizer;
    let mut rng = crate::util::rng::Rng::new(12);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let (mut tested_vars, mut reference_vars, mut coeffs) = (Vec::new(), Vec::new(), Vec::new());
    for &n in sizes {
        let (w0, c) = (draw(n), draw(n));
        tested_vars.push(Var::from_slice(&w0, n, device)?);
        reference_vars.push(Var::from_slice(&w0, n, device)?);
        coeffs.push(Tensor::from_slice(&c, n, device)?);
    }
    let params = candle_nn::ParamsAdamW {
        lr: 0.01,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut tested = make(tested_vars.clone(), &params)?;
    let mut reference = candle_nn::AdamW::new(reference_vars.clone(), params)?;
    for step in 0..3 {
        // A loss whose gradient changes from step to step: Σ c·w + ½ step·Σ w².
        let loss = |ws: &[Var]| -> Result<Tensor> {
            let mut total = Tensor::zeros((), candle_core::DType::F32, device)?;
            for (w, c) in ws.iter().zip(&coeffs) {
                let linear = (w.as_tensor() * c)?.sum_all()?;
                let quadratic = (w.as_tensor().sqr()?.sum_all()? * (0.5 * step as f64))?;
                total = (total + (linear + quadratic)?)?;
            }
            Ok(total)
        };
        tested(&loss(&tested_vars)?.backward()?)?;
        reference.step(&loss(&reference_vars)?.backward()?)?;
    }
    tested_vars
        .iter()
        .zip(&reference_vars)
        .try_fold(0f64, |m, (a, b)| {
            Ok(m.max(crate::ops::selfcheck::rel_error(
                a.as_tensor(),
                b.as_tensor(),
            )?))
        })
}

/// The self-check of the CPU fused AdamW: [`against_candle_adamw`] on two
/// tensors of 37 and 5 parameters.
pub fn self_check() -> Result<f64> {
    against_candle_adamw(&candle_core::Device::Cpu, &[37, 5], |vars, p| {
        let Some(mut f) = FusedOptimizer::adamw(vars, p) else {
            candle_core::bail!("the fused optimizer refused f32 CPU parameters")
        };
        Ok(Box::new(move |g| f.step(g)))
    })
}
