//! 2×2 max pooling (stride 2) with a direct backward pass.
//!
//! The backward routes each output gradient to the first maximum of its
//! window. candle 0.11's `max_pool2d` backward (an upsample/compare/average
//! recipe) returns a quarter of the true gradient (tests/conv.rs), besides
//! building five full-size temporaries.

use super::{f32s, fast, with_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let (b, c, h, w) = l.shape().dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = Vec::with_capacity(b * c * ho * wo);
        for xp in x.chunks_exact(h * w) {
            for oy in 0..ho {
                for ox in 0..wo {
                    let i = 2 * oy * w + 2 * ox;
                    out.push(xp[i].max(xp[i + 1]).max(xp[i + w]).max(xp[i + w + 1]));
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let g = grad.contiguous()?;
        let mut dx = vec![0f32; b * c * h * w];
        with_f32(arg, self.name(), |x| {
            with_f32(&g, self.name(), |g| {
                let planes = x.chunks_exact(h * w).zip(dx.chunks_exact_mut(h * w));
                for ((xp, dp), gp) in planes.zip(g.chunks_exact(ho * wo)) {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let i = 2 * oy * w + 2 * ox;
                            let mut best = i;
                            for j in [i + 1, i + w, i + w + 1] {
                                if xp[j] > xp[best] {
                                    best = j;
                                }
                            }
                            dp[best] += gp[oy * wo + ox];
                        }
                    }
                }
                Ok(())
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), arg.device())?))
    }
}

/// 2×2/stride-2 max pooling: the fast path on f32 CPU tensors with even
/// sides, candle's `max_pool2d` otherwise.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if fast(&[x]) && h % 2 == 0 && w % 2 == 0 {
        x.contiguous()?.apply_op1(MaxPool2)
    } else {
        x.max_pool2d(2)
    }
}
