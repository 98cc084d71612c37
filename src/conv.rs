//! A faster conv2d training path for the CPU: im2col + gemm.
//!
//! `im2col` is a custom op whose backward pass is `col2im` (its adjoint), so
//! the forward is `cols (B, L, C k k) x W^T (C k k, O)` and both gradients
//! come from matrix products (gemm) plus one col2im, instead of candle's
//! conv_transpose2d/conv2d backward kernels. Off the CPU, or for grouped
//! convolutions, candle's own conv2d is used. Outputs and gradients match
//! candle's conv2d to float tolerance (tests on random shapes).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

#[derive(Debug, Clone, Copy)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Self {
        let ho = (h + 2 * pad - k) / stride + 1;
        let wo = (w + 2 * pad - k) / stride + 1;
        Self {
            c,
            h,
            w,
            k,
            stride,
            pad,
            ho,
            wo,
        }
    }
    fn cols(&self) -> usize {
        self.c * self.k * self.k
    }
}

/// (B, C, H, W) -> (B, Ho*Wo, C*k*k + 1): the last column is all ones, so a
/// bias folded into the weight matrix comes out of the same gemm (and its
/// gradient too, without a strided reduction).
struct Im2Col(Geometry);
/// (B, Ho*Wo, C*k*k) -> (B, C, H, W), summing overlaps (the adjoint of im2col).
struct Col2Im(Geometry);

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("fast conv2d takes f32")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("fast conv2d needs contiguous input")
    };
    Ok(&v[a..b])
}

impl Geometry {
    /// Calls `f(column_index, input_index)` for every kernel tap of one sample
    /// that lands inside the input: `column_index` into that sample's
    /// (Ho*Wo, C*k*k + 1) im2col block, `input_index` into its (C, H, W) image.
    /// im2col copies along these pairs and col2im (its adjoint) adds back.
    fn taps(&self, mut f: impl FnMut(usize, usize)) {
        let n = self.cols() + 1;
        for oy in 0..self.ho {
            for ox in 0..self.wo {
                let row = (oy * self.wo + ox) * n;
                for ci in 0..self.c {
                    for ky in 0..self.k {
                        let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                        if iy < 0 || iy as usize >= self.h {
                            continue;
                        }
                        for kx in 0..self.k {
                            let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                            if ix >= 0 && (ix as usize) < self.w {
                                f(
                                    row + (ci * self.k + ky) * self.k + kx,
                                    (ci * self.h + iy as usize) * self.w + ix as usize,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let x = contiguous_f32(s, l)?;
        let b = l.dims()[0];
        let (l_out, n, img) = (g.ho * g.wo, g.cols() + 1, g.c * g.h * g.w);
        let mut out = vec![0f32; b * l_out * n];
        for bi in 0..b {
            let xb = &x[bi * img..(bi + 1) * img];
            let ob = &mut out[bi * l_out * n..(bi + 1) * l_out * n];
            for r in 0..l_out {
                ob[r * n + n - 1] = 1.0;
            }
            g.taps(|col, inp| ob[col] = xb[inp]);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, l_out, n))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let cols = contiguous_f32(s, l)?;
        let b = l.dims()[0];
        // The trailing ones column has no input position, so `taps` skips it.
        let (l_out, n, img) = (g.ho * g.wo, g.cols() + 1, g.c * g.h * g.w);
        let mut out = vec![0f32; b * img];
        for bi in 0..b {
            let cb = &cols[bi * l_out * n..(bi + 1) * l_out * n];
            let ob = &mut out[bi * img..(bi + 1) * img];
            g.taps(|col, inp| ob[inp] += cb[col]);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, g.c, g.h, g.w))))
    }
}

/// 2x2 max pooling (stride 2) whose backward routes each gradient to the
/// window's first maximum directly, instead of candle's upsample/compare/
/// average recipe.
struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l)?;
        let (b, c, h, w) = l.shape().dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = vec![0f32; b * c * ho * wo];
        for p in 0..b * c {
            let xp = &x[p * h * w..(p + 1) * h * w];
            for oy in 0..ho {
                for ox in 0..wo {
                    let i = 2 * oy * w + 2 * ox;
                    out[(p * ho + oy) * wo + ox] =
                        xp[i].max(xp[i + 1]).max(xp[i + w]).max(xp[i + w + 1]);
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let x = arg.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; x.len()];
        for p in 0..b * c {
            let base = p * h * w;
            for oy in 0..ho {
                for ox in 0..wo {
                    let i = base + 2 * oy * w + 2 * ox;
                    let cand = [i, i + 1, i + w, i + w + 1];
                    let best = cand
                        .iter()
                        .copied()
                        .fold(cand[0], |a, j| if x[j] > x[a] { j } else { a });
                    dx[best] += g[(p * ho + oy) * wo + ox];
                }
            }
        }
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), arg.device())?))
    }
}

/// 2x2/stride-2 max pooling: the fast path on f32 CPU tensors with even sides, candle's otherwise.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if x.device().is_cpu() && x.dtype() == DType::F32 && h % 2 == 0 && w % 2 == 0 {
        x.contiguous()?.apply_op1(MaxPool2)
    } else {
        x.max_pool2d(2)
    }
}

/// conv2d of x (B, C, H, W) with weight (O, C, k, k) and optional bias (O),
/// square kernel, equal stride and padding on both axes, groups = 1.
/// im2col + gemm on f32 CPU tensors; candle's conv2d otherwise.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    let (b, c, h, wd) = x.dims4()?;
    let (o, ci, k, k2) = w.dims4()?;
    let fast = x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && ci == c
        && k == k2;
    if !fast {
        let y = x.conv2d(w, pad, stride, 1, 1)?;
        return match bias {
            Some(bv) => y.broadcast_add(&bv.reshape((1, o, 1, 1))?),
            None => Ok(y),
        };
    }
    let g = Geometry::new(c, h, wd, k, stride, pad);
    let cols = x.contiguous()?.apply_op1(Im2Col(g))?; // (B, L, Ckk + 1)
    let bias = match bias {
        Some(bv) => bv.reshape((o, 1))?,
        None => Tensor::zeros((o, 1), DType::F32, x.device())?,
    };
    let wm = Tensor::cat(&[&w.reshape((o, c * k * k))?, &bias], 1)?.t()?; // (Ckk + 1, O)
    // One (B L) x (C k k + 1) by (C k k + 1) x O gemm; its backward is two gemms.
    let l = g.ho * g.wo;
    let y = cols.reshape((b * l, c * k * k + 1))?.matmul(&wm)?; // (B L, O)
    y.reshape((b, l, o))?
        .transpose(1, 2)?
        .reshape((b, o, g.ho, g.wo))
}

/// A candle_nn `Conv2d` layer's forward through the fast path when it can
/// (groups = 1, dilation = 1), through candle otherwise.
pub fn forward(layer: &candle_nn::Conv2d, x: &Tensor) -> Result<Tensor> {
    let cfg = layer.config();
    if cfg.groups == 1 && cfg.dilation == 1 {
        conv2d(x, layer.weight(), layer.bias(), cfg.stride, cfg.padding)
    } else {
        candle_core::Module::forward(layer, x)
    }
}
