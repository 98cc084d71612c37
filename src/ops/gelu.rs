//! GELU (tanh approximation, as candle's `gelu`) as one op with a one-pass
//! backward.
//!
//! candle's backward for `gelu` builds about a dozen full-size tensors
//! (two `powf(3)`, a `tanh`, the products and sums), and its forward runs on
//! one thread; in the char-transformer's MLP they were the largest hot spot
//! of a training step (a quarter of it in `powf`, `expm1f` and `tanhf`).
//! Here the forward and the backward are each one parallel pass over the
//! values, with x³ as x·x·x.

use super::registry::Kernel;
use super::{f32s, fast, storage_of, tensor_of, with_f32};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const C: f32 = 0.044_715;
const CHUNK: usize = 1 << 14;

/// gelu(x) and the tanh it used.
fn forward(x: f32) -> (f32, f32) {
    let t = (SQRT_2_OVER_PI * (x + C * x * x * x)).tanh();
    (0.5 * x * (1.0 + t), t)
}

/// d gelu / dx.
fn derivative(x: f32) -> f32 {
    let (_, t) = forward(x);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * C * x * x)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = forward(x).0;
                }
            });
        super::registry::corrupt(Kernel::Gelu, &mut y);
        Ok((storage_of(y, s.dtype() == DType::BF16), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let dx = with_f32(arg, self.name(), |x| {
            with_f32(&grad, self.name(), |g| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(CHUNK)
                    .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
                    .for_each(|(d, (x, g))| {
                        for ((d, &x), &g) in d.iter_mut().zip(x).zip(g) {
                            *d = g * derivative(x);
                        }
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(tensor_of(
            dx,
            arg.shape(),
            arg.dtype() == DType::BF16,
        )?))
    }
}

/// GELU (tanh approximation): the fused op on f32 and bf16 CPU tensors
/// (bf16 widened inside, the result rounded to bf16), candle's `gelu`
/// otherwise.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if fast(Kernel::Gelu, &[x]) || super::bf16_cpu(Kernel::Gelu, &[x]) {
        x.contiguous()?.apply_op1(Gelu)
    } else {
        x.gelu()
    }
}
