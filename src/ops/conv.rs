//! conv2d (+ bias + activation, + 2×2 max pooling) as one op on the CPU:
//! im2col + one product per layer.
//!
//! The whole batch is unfolded into one (C·k·k, B·Ho·Wo) column matrix
//! (`ops::im2col`), so each group's output `z_g = W_g · cols_g` is a single
//! large product whose weight operand is packed once, not once per sample.
//! One parallel pass then adds the bias, applies the activation and, with
//! `ConvSpec::max_pool2`, pools 2×2 windows while it writes the NCHW output,
//! keeping which entry of each window won: the full-size activation never
//! becomes a tensor, so autograd never zero-fills and adds its gradient.
//! The backward pass routes the output gradient back through the pooling and
//! the activation's mask into gz (O, B·Ho·Wo), sums it for the bias, forms
//! `dW = gz · colsᵀ` as partial products over fixed spans of samples added
//! in span order (so results do not depend on the thread count), and only
//! when the input needs a gradient computes `Wᵀ · gz` and folds it back with
//! col2im. Grouped and depthwise convolutions (MobileNet) take the same path,
//! their groups in parallel. bf16 layers (bf16 CPU tensors, or f32 ones under
//! autocast: `ops::numerics`) go through the same op and multiply on
//! `ops::bf16_gemm`; with AMX in use im2col writes their columns packed for
//! the tiles, never in f32. Off the CPU candle's conv2d is used. Outputs and
//! gradients match candle's conv2d to float tolerance, pooled ones match the
//! unpooled op followed by `ops::pool::max_pool2` (tests/ops.rs: random
//! shapes, strides, padding and groups).

use super::bf16_gemm::{AMX_MIN_K, amx_in_use, amx_packed_product};
use super::bf16_pack::{pack_a, pack_b};
use super::depthwise;
use super::im2col::{Geometry, PackedCols};
use super::numerics::Numerics;
use super::pool::{pool_plane, unpool_plane};
use super::registry::Kernel;
use super::{Activation, Mat, filled, product, product_uninit, with_f32};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// What the forward keeps for the backward pass.
#[derive(Default)]
struct Saved {
    /// The batch's (C·k·k, B·L) columns, for the weight gradient.
    cols: Option<Vec<f32>>,
    /// The columns packed for the AMX weight gradient, in their place.
    packed: Option<PackedCols>,
    /// Which entry of each pooling window was the maximum.
    arg: Option<Vec<u8>>,
}

struct Conv2dOp {
    g: Geometry,
    groups: usize,
    act: Activation,
    pool: bool,
    input_grad: bool,
    weight_grad: bool,
    num: Numerics,
    saved: Mutex<Saved>,
}

/// The weight gradient is summed over at most this many fixed spans of
/// samples (and within this memory), then the spans are added in order.
const MAX_SPANS: usize = 8;
const PARTIALS_BYTES: usize = 64 << 20;

impl Conv2dOp {
    /// (out per group, rows of W per group = C/groups · k · k).
    fn group_dims(&self, o: usize) -> (usize, usize) {
        (o / self.groups, self.g.rows() / self.groups)
    }

    /// True for grouped convolutions with one input channel per group
    /// (depthwise layers): computed without column matrices
    /// (`ops::depthwise`). A single-channel stem (groups = C = 1) could take
    /// the same path, but measured slower there than one im2col product
    /// (CNN step 42.6–44.6 against 38.2–39.0 ms, interleaved).
    fn direct(&self) -> bool {
        self.groups > 1 && self.groups == self.g.c
    }

    /// Whether the layer's products run on AMX tiles over columns that
    /// im2col writes packed: bf16 numerics with AMX in use, one group, and
    /// as many rows as an AMX product sums over at least (`AMX_MIN_K`):
    /// shorter sums, such as 1×1 convolutions over few channels, cost more
    /// in tile starts and stores than they save.
    fn packed(&self) -> bool {
        self.num.bf16() && amx_in_use() && self.groups == 1 && self.g.rows() >= AMX_MIN_K
    }

    /// `a (m × k) · B` on AMX, B packed already with `kp` pairs.
    fn packed_product(a: Mat, pb: &[u32], kp: usize, n: usize) -> Vec<f32> {
        let m = a.rows;
        let pa = pack_a(&a, m.div_ceil(32) * 32, kp);
        let mut out = Vec::with_capacity(m * n);
        // SAFETY: `out` holds m·n entries and the product writes them all.
        unsafe {
            amx_packed_product(out.as_mut_ptr(), &pa, pb, kp, (m, n));
            out.set_len(m * n);
        }
        out
    }

    /// dW_g = gz_g · cols_gᵀ, a sum over every sample's positions: partial
    /// products over fixed column spans, added in span order, so the result
    /// does not depend on the thread count.
    fn weight_grad_columns(&self, gz: &[f32], cols: &[f32], o: usize, b: usize) -> Vec<f32> {
        let ((og, kg), l) = (self.group_dims(o), self.g.l());
        let n = b * l;
        let per = o * kg;
        let spans = (PARTIALS_BYTES / (per * 4).max(1)).clamp(1, MAX_SPANS.min(b.max(1)));
        let span = b.div_ceil(spans) * l;
        let partials: Vec<Vec<f32>> = (0..n.div_ceil(span))
            .into_par_iter()
            .map(|si| {
                let (start, len) = (si * span, span.min(n - si * span));
                let mut acc = vec![0f32; per];
                for gi in 0..self.groups {
                    let gzv = Mat {
                        rows: og,
                        cols: len,
                        ..Mat::new(&gz[gi * og * n + start..], og, n)
                    };
                    let cv = Mat {
                        rows: kg,
                        cols: len,
                        ..Mat::new(&cols[gi * kg * n + start..], kg, n)
                    };
                    product(self.num.bf16())(
                        &mut acc[gi * og * kg..(gi + 1) * og * kg],
                        gzv,
                        cv.t(),
                        false,
                        false,
                    );
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
        dw
    }

    /// dx: dcols_g = W_gᵀ · gz_g, folded back by col2im.
    fn input_grad_columns(&self, w: &[f32], gz: &[f32], o: usize, b: usize) -> Vec<f32> {
        let ((og, kg), n) = (self.group_dims(o), b * self.g.l());
        let dcols = self.per_group(
            self.g.rows() * n,
            |gi| Mat::new(&w[gi * og * kg..], og, kg).t(),
            |gi| Mat::new(&gz[gi * og * n..], og, n),
        );
        self.g.col2im_batch(&dcols, b)
    }

    /// `a_g · b_g` for every group g, end to end in a new vector of `len`
    /// (not zeroed first: each product writes its whole block). `a` and `b`
    /// give each group's operand views. One group: one product on all
    /// threads; several (depthwise and grouped convolutions): the groups in
    /// parallel.
    fn per_group<'a>(
        &self,
        len: usize,
        a: impl Fn(usize) -> Mat<'a> + Sync,
        b: impl Fn(usize) -> Mat<'a> + Sync,
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(len);
        let dst = &mut out.spare_capacity_mut()[..len];
        if self.groups == 1 {
            product_uninit(self.num.bf16(), dst, a(0), b(0), true);
        } else {
            let per = len / self.groups;
            dst.par_chunks_mut(per)
                .enumerate()
                .for_each(|(gi, d)| product_uninit(self.num.bf16(), d, a(gi), b(gi), false));
        }
        // SAFETY: the groups' blocks cover all `len` entries, each written by
        // its product.
        unsafe { out.set_len(len) };
        out
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
            self.num.input(xs, xl, self.name())?,
            self.num.input(ws, wl, self.name())?,
            self.num.input(bs, bl, self.name())?,
        );
        let (g, b, o) = (self.g, xl.dims()[0], wl.dims()[0]);
        let ((og, kg), l) = (self.group_dims(o), g.l());
        let n = b * l;
        // z (O, B·L): every output channel at every sample's positions.
        let mut packed = None;
        let (z, cols) = if self.direct() {
            (depthwise::forward(&g, &x, &w, og), None)
        } else if self.packed() {
            let p = g.im2col_packed(&x, self.weight_grad);
            let z = Self::packed_product(Mat::new(&w, o, kg), &p.fwd, p.kp_fwd, n);
            // Only the weight gradient's operand outlives the forward pass.
            packed = Some(PackedCols {
                fwd: Vec::new(),
                ..p
            })
            .filter(|_| self.weight_grad);
            (z, None)
        } else {
            let cols = g.im2col_batch(&x);
            let z = self.per_group(
                o * n,
                |gi| Mat::new(&w[gi * og * kg..], og, kg),
                |gi| Mat::new(&cols[gi * kg * n..], kg, n),
            );
            (z, Some(cols))
        };
        let act = self.act;
        let (shape, mut y, arg) = if self.pool {
            let (ph, pw) = (g.ho / 2, g.wo / 2);
            let q = ph * pw;
            let mut y = vec![0f32; b * o * q];
            let mut arg = vec![0u8; b * o * q];
            y.par_chunks_mut(q)
                .zip(arg.par_chunks_mut(q))
                .enumerate()
                .for_each(|(p, (yp, ap))| {
                    let (bi, oc) = (p / o, p % o);
                    let bv = bias[oc];
                    pool_plane(&z[oc * n + bi * l..][..l], g.wo, yp, ap, |v| {
                        act.scalar(v + bv)
                    });
                });
            (Shape::from((b, o, ph, pw)), y, Some(arg))
        } else {
            let y = filled(b * o * l, l, |p, yp| {
                let (bi, oc) = (p / o, p % o);
                let bv = bias[oc];
                for (d, &v) in yp.iter_mut().zip(&z[oc * n + bi * l..][..l]) {
                    d.write(act.scalar(v + bv));
                }
            });
            (Shape::from((b, o, g.ho, g.wo)), y, None)
        };
        super::registry::corrupt(Kernel::Conv2d, &mut y);
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        saved.cols = cols.filter(|_| self.weight_grad);
        saved.packed = packed;
        saved.arg = arg;
        Ok((self.num.storage(y), shape))
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
        let l = g.l();
        let n = b * l;
        let mut saved = std::mem::take(&mut *self.saved.lock().unwrap_or_else(|p| p.into_inner()));
        let grad = grad.contiguous()?;
        let grad = match with_f32(&grad, self.name(), |g| Ok(self.num.rounded_grad(g)))? {
            Some(g) => Tensor::from_vec(g, grad.shape(), grad.device())?,
            None => grad,
        };
        // gz (O, B·L): the gradient at the convolution's own output, with the
        // pooling routed back and the activation's mask applied.
        let gz = with_f32(y, self.name(), |y| {
            with_f32(&grad, self.name(), |gy| {
                let q = y.len() / (b * o).max(1);
                Ok(filled(o * n, n, |oc, row| {
                    for (bi, seg) in row.chunks_exact_mut(l).enumerate() {
                        let p = (bi * o + oc) * q;
                        let (yp, gp) = (&y[p..p + q], &gy[p..p + q]);
                        match &saved.arg {
                            Some(arg) => unpool_plane(gp, &arg[p..p + q], yp, g.wo, seg, |y| {
                                self.act.passes(y)
                            }),
                            None => {
                                for ((d, &gv), &yv) in seg.iter_mut().zip(gp).zip(yp) {
                                    d.write(if self.act.passes(yv) { gv } else { 0.0 });
                                }
                            }
                        }
                    }
                }))
            })
        })?;
        let db: Vec<f32> = gz.par_chunks(n).map(super::sum).collect();
        let og = self.group_dims(o).0;
        let direct = self.direct();
        let dw = if direct {
            self.num.with_operand(x, self.name(), |x| {
                Ok(depthwise::weight_grad(&g, x, &gz, og))
            })?
        } else if let Some(p) = saved.packed.take() {
            // dWᵀ = cols · gzᵀ: the columns packed as A, gzᵀ packed as B.
            let r = g.rows();
            let pb = pack_b(&Mat::new(&gz, o, n).t(), 2 * o.div_ceil(32), p.kp_dw);
            let mut dwt = Vec::with_capacity(r * o);
            // SAFETY: `dwt` holds r·o entries and the product writes them all.
            unsafe {
                amx_packed_product(dwt.as_mut_ptr(), &p.dw, &pb, p.kp_dw, (r, o));
                dwt.set_len(r * o);
            }
            (0..o * r).map(|i| dwt[(i % r) * o + i / r]).collect()
        } else {
            let cols = match saved.cols {
                Some(c) => c,
                None => self
                    .num
                    .with_operand(x, self.name(), |x| Ok(g.im2col_batch(x)))?,
            };
            self.weight_grad_columns(&gz, &cols, o, b)
        };
        let dx = if self.input_grad {
            let dx = self.num.with_operand(w, self.name(), |w| {
                Ok(if direct {
                    depthwise::input_grad(&g, w, &gz, b, og)
                } else {
                    self.input_grad_columns(w, &gz, o, b)
                })
            })?;
            Some(self.num.tensor(dx, x.shape())?)
        } else {
            None
        };
        Ok((
            dx,
            Some(self.num.tensor(dw, w.shape())?),
            Some(self.num.tensor(db, o)?),
        ))
    }
}

/// Stride, padding and groups of a square-kernel convolution, and whether a
/// 2×2/stride-2 max pooling follows the activation inside the same op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConvSpec {
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
    pub max_pool2: bool,
}

/// `pool(act(conv2d(x, w) + bias))` of x (B, C, H, W) with weight
/// (O, C/groups, k, k) and optional bias (O), the pooling only with
/// `spec.max_pool2`: one fused op on f32 CPU tensors with a square kernel
/// (bf16 CPU tensors too), candle's ops otherwise.
pub fn conv2d_fused(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    spec: ConvSpec,
    act: Activation,
) -> Result<Tensor> {
    if x.dtype() == DType::BF16 && x.device().is_cpu() {
        let bias = match bias {
            Some(b) => b.to_dtype(DType::BF16)?,
            None => Tensor::zeros(w.dim(0)?, DType::BF16, x.device())?,
        };
        if super::bf16_cpu(Kernel::Conv2d, &[x, w, &bias]) && fits(x, w, spec)? {
            return conv_with(x, w, Some(&bias), spec, act, Numerics::Bf16);
        }
        // candle has no bf16 convolution on the CPU: its f32 ops on copies.
        let y = conv2d_fused(
            &x.to_dtype(DType::F32)?,
            &w.to_dtype(DType::F32)?,
            Some(&bias.to_dtype(DType::F32)?),
            spec,
            act,
        )?;
        return y.to_dtype(DType::BF16);
    }
    let ts: Vec<&Tensor> = [Some(x), Some(w), bias].into_iter().flatten().collect();
    match Numerics::of(Kernel::Conv2d, &ts) {
        Some(num) if fits(x, w, spec)? => conv_with(x, w, bias, spec, act, num),
        _ => {
            if let Some(r) = super::numerics::autocast_inputs(&ts)? {
                // Autocast without the fused op: f32 ops on bf16 values.
                let _off = super::numerics::autocast_off();
                let y = conv2d_fused(&r[0], &r[1], r.get(2), spec, act)?;
                return super::numerics::round_output(&y);
            }
            let y = x.conv2d(w, spec.pad, spec.stride, 1, spec.groups.max(1))?;
            let y = match bias {
                Some(bv) => y.broadcast_add(&bv.reshape((1, w.dim(0)?, 1, 1))?)?,
                None => y,
            };
            let y = act.tensor(y)?;
            if spec.max_pool2 {
                super::pool::max_pool2(&y)
            } else {
                Ok(y)
            }
        }
    }
}

/// The fused op of [`conv2d_fused`] on tensors it takes, in format `num`.
fn conv_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    spec: ConvSpec,
    act: Activation,
    num: Numerics,
) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (o, _, k, _) = w.dims4()?;
    let groups = spec.groups.max(1);
    let g = Geometry::new(c, h, wd, k, spec.stride, spec.pad)?;
    if spec.max_pool2 && (g.ho % 2 != 0 || g.wo % 2 != 0) {
        // Odd outputs: the pooling drops the last row or column, outside this op.
        let unpooled = ConvSpec {
            max_pool2: false,
            ..spec
        };
        return super::pool::max_pool2(&conv_with(x, w, bias, unpooled, act, num)?);
    }
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(o, num.dtype(), x.device())?,
    };
    let op = Conv2dOp {
        g,
        groups,
        act,
        pool: spec.max_pool2,
        input_grad: x.track_op(),
        weight_grad: w.track_op(),
        num,
        saved: Mutex::new(Saved::default()),
    };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias, op)
}

/// Whether the fused op takes this shape: a square kernel, channels that
/// divide into the groups.
fn fits(x: &Tensor, w: &Tensor, spec: ConvSpec) -> Result<bool> {
    let (_, c, _, _) = x.dims4()?;
    let (o, cg, k, k2) = w.dims4()?;
    let groups = spec.groups.max(1);
    Ok(k == k2 && c % groups == 0 && o % groups == 0 && cg * groups == c)
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
        max_pool2: false,
    };
    conv2d_fused(x, w, bias, spec, Activation::Identity)
}

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
    Ok((g.im2col_samples(x), g.ho, g.wo))
}

/// A candle_nn `Conv2d` layer followed by `act` and, with `max_pool2`, a
/// 2×2 max pooling: through [`conv2d_fused`] when it can (dilation 1),
/// through candle otherwise.
pub fn forward(
    layer: &candle_nn::Conv2d,
    x: &Tensor,
    act: Activation,
    max_pool2: bool,
) -> Result<Tensor> {
    let cfg = layer.config();
    if cfg.dilation == 1 {
        let spec = ConvSpec {
            stride: cfg.stride,
            pad: cfg.padding,
            groups: cfg.groups,
            max_pool2,
        };
        conv2d_fused(x, layer.weight(), layer.bias(), spec, act)
    } else {
        let y = act.tensor(candle_core::Module::forward(layer, x)?)?;
        if max_pool2 {
            super::pool::max_pool2(&y)
        } else {
            Ok(y)
        }
    }
}
