//! conv2d (+ bias + activation) as one op on the CPU: im2col + gemm.
//!
//! Per sample, the input is unfolded into a (C·k·k, Ho·Wo) column matrix and
//! each group's output is `W_g · cols_g`, written straight into the NCHW
//! output, which was pre-filled with the bias; the activation is applied in
//! place. The backward pass reuses the forward's columns for
//! `dW = Σ_samples g · colsᵀ`, sums `g` for the bias, and only when the input
//! needs a gradient computes `Wᵀ · g` and folds it back with col2im (the
//! adjoint of im2col). Samples run in parallel, and the weight gradient is
//! summed over fixed sample chunks in a fixed order, so results do not depend
//! on the thread count. Grouped and depthwise convolutions (MobileNet) take
//! the same path. Off the CPU or in f16/bf16, candle's conv2d is used.
//! Outputs and gradients match candle's conv2d to float tolerance
//! (tests/conv.rs, random shapes, strides, padding and groups).

use super::{Activation, Mat, f32s, fast, matmul, with_f32};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

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
    fn new(c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Result<Self> {
        if stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
            candle_core::bail!(
                "conv2d: a {k}x{k} kernel with stride {stride} and padding {pad} does not fit a {h}x{w} input"
            )
        }
        Ok(Self {
            c,
            h,
            w,
            k,
            stride,
            pad,
            ho: (h + 2 * pad - k) / stride + 1,
            wo: (w + 2 * pad - k) / stride + 1,
        })
    }

    /// Output positions per channel.
    fn l(&self) -> usize {
        self.ho * self.wo
    }

    /// Rows of a sample's column matrix: C·k·k.
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    fn image(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Calls `f(column_index, input_index)` for every kernel tap of one sample
    /// that lands inside the input: `column_index` into that sample's
    /// (C·k·k, Ho·Wo) column matrix, `input_index` into its (C, H, W) image.
    /// im2col copies along these pairs and col2im (its adjoint) adds back.
    fn taps(&self, mut f: impl FnMut(usize, usize)) {
        let l = self.l();
        for ci in 0..self.c {
            for ky in 0..self.k {
                for kx in 0..self.k {
                    let row = ((ci * self.k + ky) * self.k + kx) * l;
                    for oy in 0..self.ho {
                        let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                        if iy < 0 || iy as usize >= self.h {
                            continue;
                        }
                        let base = (ci * self.h + iy as usize) * self.w;
                        for ox in 0..self.wo {
                            let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                            if ix >= 0 && (ix as usize) < self.w {
                                f(row + oy * self.wo + ox, base + ix as usize);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The column matrices of a batch: (B, C·k·k, Ho·Wo).
    fn im2col(&self, x: &[f32]) -> Vec<f32> {
        let n = self.rows() * self.l();
        let mut cols = vec![0f32; x.len() / self.image() * n];
        cols.par_chunks_mut(n)
            .zip(x.par_chunks(self.image()))
            .for_each(|(cb, xb)| self.taps(|col, inp| cb[col] = xb[inp]));
        cols
    }
}

struct Conv2dOp {
    g: Geometry,
    groups: usize,
    act: Activation,
    input_grad: bool,
    /// The forward's column matrices, kept for the weight gradient.
    cols: Mutex<Option<Vec<f32>>>,
    keep_cols: bool,
}

/// Weight-gradient partial sums are formed over at most this many fixed
/// sample chunks (and within this memory), then added in chunk order.
const MAX_CHUNKS: usize = 16;
const PARTIALS_BYTES: usize = 64 << 20;

impl Conv2dOp {
    /// (out per group, rows of W per group = C/groups · k · k).
    fn group_dims(&self, o: usize) -> (usize, usize) {
        (o / self.groups, self.g.rows() / self.groups)
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "fused-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, bias) = (
            f32s(xs, xl, self.name())?,
            f32s(ws, wl, self.name())?,
            f32s(bs, bl, self.name())?,
        );
        let (g, b, o) = (self.g, xl.dims()[0], wl.dims()[0]);
        let ((og, kg), l) = (self.group_dims(o), g.l());
        let cols = g.im2col(x);
        let mut y = vec![0f32; b * o * l];
        let inner_parallel = b < candle_core::utils::get_num_threads();
        y.par_chunks_mut(o * l)
            .zip(cols.par_chunks(g.rows() * l))
            .for_each(|(yb, cb)| {
                for (row, &bv) in yb.chunks_exact_mut(l).zip(bias) {
                    row.fill(bv);
                }
                for gi in 0..self.groups {
                    matmul(
                        &mut yb[gi * og * l..(gi + 1) * og * l],
                        Mat::new(&w[gi * og * kg..], og, kg),
                        Mat::new(&cb[gi * kg * l..], kg, l),
                        true,
                        inner_parallel,
                    );
                }
                self.act.apply(yb);
            });
        if self.keep_cols {
            *self.cols.lock().unwrap_or_else(|p| p.into_inner()) = Some(cols);
        }
        Ok((CpuStorage::F32(y), Shape::from((b, o, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (g, b, o) = (self.g, x.dim(0)?, w.dim(0)?);
        let ((og, kg), l) = (self.group_dims(o), g.l());
        let mut gz = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        with_f32(y, self.name(), |y| {
            self.act.mask_grad(&mut gz, y);
            Ok(())
        })?;
        let mut db = vec![0f32; o];
        for plane in gz.chunks_exact(o * l) {
            for (d, row) in db.iter_mut().zip(plane.chunks_exact(l)) {
                *d += row.iter().sum::<f32>();
            }
        }
        let cached = self.cols.lock().unwrap_or_else(|p| p.into_inner()).take();
        let cols = match cached {
            Some(c) => c,
            None => with_f32(x, self.name(), |x| Ok(g.im2col(x)))?,
        };
        // dW: partial sums over fixed sample chunks, added in order.
        let per = o * kg;
        let chunks = (PARTIALS_BYTES / (per * 4).max(1)).clamp(1, MAX_CHUNKS.min(b.max(1)));
        let chunk = b.div_ceil(chunks).max(1);
        let partials: Vec<Vec<f32>> = (0..b.div_ceil(chunk))
            .into_par_iter()
            .map(|ci| {
                let mut acc = vec![0f32; per];
                for bi in ci * chunk..((ci + 1) * chunk).min(b) {
                    let (gb, cb) = (&gz[bi * o * l..], &cols[bi * g.rows() * l..]);
                    for gi in 0..self.groups {
                        matmul(
                            &mut acc[gi * og * kg..(gi + 1) * og * kg],
                            Mat::new(&gb[gi * og * l..], og, l),
                            Mat::new(&cb[gi * kg * l..], kg, l).t(),
                            true,
                            false,
                        );
                    }
                }
                acc
            })
            .collect();
        let mut dw = vec![0f32; per];
        for p in &partials {
            for (d, v) in dw.iter_mut().zip(p) {
                *d += v;
            }
        }
        drop(cols);
        let dx = if self.input_grad {
            let mut dx = vec![0f32; b * g.image()];
            with_f32(w, self.name(), |w| {
                dx.par_chunks_mut(g.image())
                    .zip(gz.par_chunks(o * l))
                    .for_each_init(
                        || vec![0f32; g.rows() * l],
                        |dcols, (dxb, gb)| {
                            for gi in 0..self.groups {
                                matmul(
                                    &mut dcols[gi * kg * l..(gi + 1) * kg * l],
                                    Mat::new(&w[gi * og * kg..], og, kg).t(),
                                    Mat::new(&gb[gi * og * l..], og, l),
                                    false,
                                    false,
                                );
                            }
                            g.taps(|col, inp| dxb[inp] += dcols[col]);
                        },
                    );
                Ok(())
            })?;
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        Ok((
            dx,
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(db, o, w.device())?),
        ))
    }
}

/// Stride, padding and groups of a square-kernel convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

/// `act(conv2d(x, w) + bias)` of x (B, C, H, W) with weight
/// (O, C/groups, k, k) and optional bias (O): the fused op on f32 CPU
/// tensors with a square kernel, candle's conv2d otherwise.
pub fn conv2d_fused(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    spec: ConvSpec,
    act: Activation,
) -> Result<Tensor> {
    if super::bf16_cpu(&[x, w]) {
        let b = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
        let y = conv2d_fused(
            &x.to_dtype(DType::F32)?,
            &w.to_dtype(DType::F32)?,
            b.as_ref(),
            spec,
            act,
        )?;
        return y.to_dtype(DType::BF16);
    }
    let (_, c, h, wd) = x.dims4()?;
    let (o, cg, k, k2) = w.dims4()?;
    let groups = spec.groups.max(1);
    let fits = k == k2 && c % groups == 0 && o % groups == 0 && cg * groups == c;
    if !(fits && fast(&[x, w]) && bias.is_none_or(|b| fast(&[b]))) {
        let y = x.conv2d(w, spec.pad, spec.stride, 1, groups)?;
        let y = match bias {
            Some(bv) => y.broadcast_add(&bv.reshape((1, o, 1, 1))?)?,
            None => y,
        };
        return act.tensor(y);
    }
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(o, DType::F32, x.device())?,
    };
    let op = Conv2dOp {
        g: Geometry::new(c, h, wd, k, spec.stride, spec.pad)?,
        groups,
        act,
        input_grad: x.track_op(),
        cols: Mutex::new(None),
        keep_cols: w.track_op(),
    };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias, op)
}

/// conv2d with groups = 1 and no activation: x (B, C, H, W), weight
/// (O, C, k, k), optional bias (O).
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    let spec = ConvSpec {
        stride,
        pad,
        groups: 1,
    };
    conv2d_fused(x, w, bias, spec, Activation::Identity)
}

/// A candle_nn `Conv2d` layer followed by `act`, through [`conv2d_fused`]
/// when it can (dilation 1), through candle otherwise.
/// The column matrices of a batch of (C, H, W) images for a k x k kernel:
/// (B, C k k, Ho Wo) row-major, and (Ho, Wo). For inference kernels that
/// run their own product over the columns (sparse convolution).
pub fn im2col(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<(Vec<f32>, usize, usize)> {
    let g = Geometry::new(c, h, w, k, stride, pad)?;
    Ok((g.im2col(x), g.ho, g.wo))
}

pub fn forward(layer: &candle_nn::Conv2d, x: &Tensor, act: Activation) -> Result<Tensor> {
    let cfg = layer.config();
    if cfg.dilation == 1 {
        let spec = ConvSpec {
            stride: cfg.stride,
            pad: cfg.padding,
            groups: cfg.groups,
        };
        conv2d_fused(x, layer.weight(), layer.bias(), spec, act)
    } else {
        act.tensor(candle_core::Module::forward(layer, x)?)
    }
}
