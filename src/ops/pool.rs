//! 2×2 max pooling (stride 2) with a direct backward pass.
//!
//! The backward routes each output gradient to the first maximum of its
//! window. candle 0.11's `max_pool2d` backward (an upsample/compare/average
//! recipe) returns a quarter of the true gradient (tests/ops.rs), besides
//! building five full-size temporaries. The plane helpers here are shared
//! with the convolution, which pools inside its own op
//! (`ConvSpec::max_pool2`) so that its full-size output never becomes a
//! tensor of its own.

use super::registry::Kernel;
use super::{f32s, fast, filled, with_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Pools one (h, w) plane (h, w even) into `out` (h/2 · w/2): each output is
/// `f(max of its window)`, and `arg` records which of the window's four
/// entries (row-major) held the first maximum. Branch-free selects: on
/// random data a compare-and-branch per entry mispredicts half the time.
pub(super) fn pool_plane(
    src: &[f32],
    w: usize,
    out: &mut [f32],
    arg: &mut [u8],
    f: impl Fn(f32) -> f32,
) {
    let wo = w / 2;
    for ((orow, arow), rows) in out
        .chunks_exact_mut(wo)
        .zip(arg.chunks_exact_mut(wo))
        .zip(src.chunks_exact(2 * w))
    {
        let (r0, r1) = rows.split_at(w);
        for (((o, a), p0), p1) in orow
            .iter_mut()
            .zip(arow.iter_mut())
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            let (m, i) = (p0[0], 0u8);
            let (m, i) = if p0[1] > m { (p0[1], 1) } else { (m, i) };
            let (m, i) = if p1[0] > m { (p1[0], 2) } else { (m, i) };
            let (m, i) = if p1[1] > m { (p1[1], 3) } else { (m, i) };
            *o = f(m);
            *a = i;
        }
    }
}

/// The adjoint of [`pool_plane`]: writes every entry of the (h, w) plane
/// `dst` (h, w even; it may start uninitialised), `g` at each window's
/// recorded maximum where `keep` holds for that window's value in `mask`
/// (the pooled output), zero elsewhere.
pub(super) fn unpool_plane(
    g: &[f32],
    arg: &[u8],
    mask: &[f32],
    w: usize,
    dst: &mut [MaybeUninit<f32>],
    keep: impl Fn(f32) -> bool,
) {
    let wo = w / 2;
    for (((rows, grow), arow), mrow) in dst
        .chunks_exact_mut(2 * w)
        .zip(g.chunks_exact(wo))
        .zip(arg.chunks_exact(wo))
        .zip(mask.chunks_exact(wo))
    {
        let (r0, r1) = rows.split_at_mut(w);
        for ((((q0, q1), &gv), &a), &mv) in r0
            .chunks_exact_mut(2)
            .zip(r1.chunks_exact_mut(2))
            .zip(grow)
            .zip(arow)
            .zip(mrow)
        {
            let v = if keep(mv) { gv } else { 0.0 };
            q0[0].write(if a == 0 { v } else { 0.0 });
            q0[1].write(if a == 1 { v } else { 0.0 });
            q1[0].write(if a == 2 { v } else { 0.0 });
            q1[1].write(if a == 3 { v } else { 0.0 });
        }
    }
}

struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let (b, c, h, w) = l.shape().dims4()?;
        let q = (h / 2) * (w / 2);
        let mut out = vec![0f32; b * c * q];
        out.par_chunks_mut(q)
            .zip(x.par_chunks(h * w))
            .for_each_init(
                || vec![0u8; q],
                |arg, (o, xp)| pool_plane(xp, w, o, arg, |v| v),
            );
        super::registry::corrupt(Kernel::MaxPool2, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((b, c, h / 2, w / 2))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let q = (h / 2) * (w / 2);
        let g = grad.contiguous()?;
        let dx = with_f32(arg, self.name(), |x| {
            with_f32(&g, self.name(), |g| {
                Ok(filled(b * c * h * w, h * w, |p, dp| {
                    let (mut scratch, mut am) = (vec![0f32; q], vec![0u8; q]);
                    pool_plane(&x[p * h * w..][..h * w], w, &mut scratch, &mut am, |v| v);
                    let gp = &g[p * q..][..q];
                    unpool_plane(gp, &am, gp, w, dp, |_| true);
                }))
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), arg.device())?))
    }
}

/// 2×2/stride-2 max pooling: the fast path on f32 CPU tensors with even
/// sides, candle's `max_pool2d` otherwise.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if fast(Kernel::MaxPool2, &[x]) && h % 2 == 0 && w % 2 == 0 {
        x.contiguous()?.apply_op1(MaxPool2)
    } else {
        x.max_pool2d(2)
    }
}
