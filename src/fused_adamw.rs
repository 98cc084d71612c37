//! A fused AdamW for f32 parameters on the CPU: one pass per parameter
//! updates the weight (decoupled decay), both moments and the step in place,
//! split across threads for large tensors. candle_nn's AdamW builds about
//! ten temporary tensors per parameter per step; this builds none but a copy
//! of the gradient. Same arithmetic as candle_nn::AdamW (bias-corrected
//! moments, `theta (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)`), so the two
//! agree to float rounding (a test checks 100 steps).

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Var};
use std::sync::Mutex;

struct Param {
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
}

pub struct FusedAdamW {
    params: Vec<Param>,
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    t: i32,
}

struct Step<'a> {
    g: &'a [f32],
    state: Mutex<(&'a mut [f32], &'a mut [f32])>,
    c: Coefs,
}

#[derive(Clone, Copy)]
struct Coefs {
    decay: f32,
    b1: f32,
    b2: f32,
    scale_m: f32,
    scale_v: f32,
    lr: f32,
    eps: f32,
}

fn update(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Coefs) {
    for i in 0..w.len() {
        let gi = g[i];
        let mi = c.b1 * m[i] + (1.0 - c.b1) * gi;
        let vi = c.b2 * v[i] + (1.0 - c.b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        let m_hat = mi * c.scale_m;
        let v_hat = vi * c.scale_v;
        w[i] = w[i] * c.decay - c.lr * (m_hat / (v_hat.sqrt() + c.eps));
    }
}

/// Below this many elements one thread does the whole tensor.
const PARALLEL_MIN: usize = 1 << 16;

impl InplaceOp1 for Step<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("fused AdamW takes f32 parameters")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fused AdamW needs contiguous parameters")
        };
        let w = &mut data[start..end];
        let mut guard = self
            .state
            .lock()
            .map_err(|_| candle_core::Error::Msg("optimizer state lock poisoned".into()))?;
        let (m, v) = &mut *guard;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if w.len() < PARALLEL_MIN || threads < 2 {
            update(w, self.g, m, v, self.c);
            return Ok(());
        }
        let chunk = w.len().div_ceil(threads);
        std::thread::scope(|s| {
            for (((w, g), m), v) in w
                .chunks_mut(chunk)
                .zip(self.g.chunks(chunk))
                .zip(m.chunks_mut(chunk))
                .zip(v.chunks_mut(chunk))
            {
                let c = self.c;
                s.spawn(move || update(w, g, m, v, c));
            }
        });
        Ok(())
    }
}

impl FusedAdamW {
    /// None when a variable is not an f32 CPU tensor (use candle_nn's AdamW then).
    pub fn new(
        vars: Vec<Var>,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Option<Self> {
        if vars
            .iter()
            .any(|v| v.dtype() != DType::F32 || !v.device().is_cpu())
        {
            return None;
        }
        let params = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                Param {
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        Some(Self {
            params,
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            t: 0,
        })
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let c = Coefs {
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            b1: self.beta1 as f32,
            b2: self.beta2 as f32,
            scale_m: (1.0 / (1.0 - self.beta1.powi(self.t))) as f32,
            scale_v: (1.0 / (1.0 - self.beta2.powi(self.t))) as f32,
            lr: self.lr as f32,
            eps: self.eps as f32,
        };
        for p in &mut self.params {
            let Some(g) = grads.get(&p.var) else { continue };
            let g = g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let step = Step {
                g: &g,
                state: Mutex::new((&mut p.m, &mut p.v)),
                c,
            };
            p.var.as_tensor().inplace_op1(&step)?;
        }
        Ok(())
    }
}
