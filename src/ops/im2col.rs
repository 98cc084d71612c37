//! The unfolding behind the convolutions: im2col and its adjoint col2im.
//!
//! One row of a column matrix holds one kernel tap (channel, ky, kx) at every
//! output position. Each row is filled run by run: for one output row `oy`,
//! the inputs under that tap are a contiguous run of an input row (stride 1)
//! with zeros on the padded ends, so the fill is a copy and two short fills,
//! never a per-element bounds test. The training op lays a whole batch out as
//! one (C·k·k, B·Ho·Wo) matrix, so each layer is one large product whose
//! weight operand is packed once; inference kernels that run their own
//! product take the per-sample layout (B, C·k·k, Ho·Wo).

use super::bf16_pack::SendU32;
use super::filled;
use candle_core::Result;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The shape of a square-kernel convolution over one (C, H, W) image.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Geometry {
    pub fn new(c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Result<Self> {
        if stride == 0 || k == 0 || h + 2 * pad < k || w + 2 * pad < k {
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
    pub fn l(&self) -> usize {
        self.ho * self.wo
    }

    /// Rows of a column matrix: C·k·k.
    pub fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    pub fn image(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Tap `r` as (input channel, ky, kx).
    fn tap(&self, r: usize) -> (usize, usize, usize) {
        let kk = self.k * self.k;
        (r / kk, (r / self.k) % self.k, r % self.k)
    }

    /// The input row under output row `oy` for kernel row `ky` (None on the padding).
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&iy| iy < self.h)
    }

    /// Output columns `lo..hi` whose input column `ox·s + kx − pad` is inside.
    fn columns(&self, kx: usize) -> (usize, usize) {
        let s = self.stride;
        let lo = self.pad.saturating_sub(kx).div_ceil(s);
        let hi = match (self.w + self.pad).checked_sub(kx + 1) {
            Some(last) => (last / s + 1).min(self.wo),
            None => 0,
        };
        (lo.min(hi), hi)
    }

    /// The runs of tap `r` (channel, ky, kx) over one output plane: for each
    /// output row whose input row lies inside, `f(output offset, input
    /// offset within the tap's channel plane, length)`; along a run the
    /// output advances by 1 and the input by the stride.
    pub fn runs(&self, r: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (_, ky, kx) = self.tap(r);
        let (lo, hi) = self.columns(kx);
        if lo == hi {
            return;
        }
        let first = lo * self.stride + kx - self.pad;
        for oy in 0..self.ho {
            if let Some(iy) = self.input_row(oy, ky) {
                f(oy * self.wo + lo, iy * self.w + first, hi - lo);
            }
        }
    }

    /// Writes row `r` of one image's columns into `dst`: every one of its
    /// Ho·Wo entries, so `dst` may start uninitialised.
    fn fill_row(&self, img: &[f32], r: usize, dst: &mut [MaybeUninit<f32>]) {
        let zero = |d: &mut [MaybeUninit<f32>]| d.iter_mut().for_each(|v| _ = v.write(0.0));
        let (ci, ky, kx) = self.tap(r);
        let (lo, hi) = self.columns(kx);
        for (oy, out) in dst.chunks_exact_mut(self.wo).enumerate() {
            let Some(iy) = self.input_row(oy, ky) else {
                zero(out);
                continue;
            };
            let row = &img[(ci * self.h + iy) * self.w..][..self.w];
            zero(&mut out[..lo]);
            zero(&mut out[hi..]);
            // Input column of output column ox: ox·s + kx − pad (≥ 0 from lo on).
            let first = lo * self.stride + kx - self.pad;
            if self.stride == 1 {
                let src = &row[first..first + hi - lo];
                for (o, &v) in out[lo..hi].iter_mut().zip(src) {
                    o.write(v);
                }
            } else {
                for (j, o) in out[lo..hi].iter_mut().enumerate() {
                    o.write(row[first + j * self.stride]);
                }
            }
        }
    }

    /// Adds row `r` of one image's column gradient back into that image's
    /// gradient: the adjoint of [`Geometry::fill_row`].
    fn add_row(&self, src: &[f32], r: usize, img: &mut [f32]) {
        let (ci, ky, kx) = self.tap(r);
        let (lo, hi) = self.columns(kx);
        for (oy, run) in src.chunks_exact(self.wo).enumerate() {
            let Some(iy) = self.input_row(oy, ky) else {
                continue;
            };
            let row = &mut img[(ci * self.h + iy) * self.w..][..self.w];
            let first = lo * self.stride + kx - self.pad;
            if self.stride == 1 {
                for (d, v) in row[first..first + hi - lo].iter_mut().zip(&run[lo..hi]) {
                    *d += v;
                }
            } else {
                for (j, v) in run[lo..hi].iter().enumerate() {
                    row[first + j * self.stride] += v;
                }
            }
        }
    }

    /// The columns of a batch as one (C·k·k, B·Ho·Wo) matrix: row r holds
    /// tap r at every sample's every output position, sample by sample.
    pub fn im2col_batch(&self, x: &[f32]) -> Vec<f32> {
        let (b, l) = (x.len() / self.image().max(1), self.l());
        filled(self.rows() * b * l, b * l, |r, row| {
            for (seg, img) in row.chunks_exact_mut(l).zip(x.chunks_exact(self.image())) {
                self.fill_row(img, r, seg);
            }
        })
    }

    /// The gradient of a batch from its (C·k·k, B·Ho·Wo) column gradient.
    pub fn col2im_batch(&self, dcols: &[f32], b: usize) -> Vec<f32> {
        let (l, n) = (self.l(), b * self.l());
        let mut dx = vec![0f32; b * self.image()];
        dx.par_chunks_mut(self.image())
            .enumerate()
            .for_each(|(bi, img)| {
                for r in 0..self.rows() {
                    self.add_row(&dcols[r * n + bi * l..][..l], r, img);
                }
            });
        dx
    }

    /// The batch's columns as bf16 pairs (rounded to nearest even) in the
    /// two layouts the AMX products read (`ops::bf16_pack`), written straight
    /// from the input without an f32 column matrix:
    /// - `fwd`, the B operand of `z = W · cols` (k = rows, n = B·L);
    /// - with `weight_grad`, `dw`, the A operand of `dWᵀ = cols · gzᵀ`
    ///   (rows padded to 32, each `kp_dw` pairs of positions).
    ///
    /// Samples go in groups whose positions fill whole 16-column panels, so
    /// each task writes whole 64-byte lines that no other task touches, and
    /// every entry (padding included) is written once, none zeroed first.
    pub fn im2col_packed(&self, x: &[f32], weight_grad: bool) -> PackedCols {
        use super::bf16_pack::LANES;
        let (b, l) = (x.len() / self.image().max(1), self.l());
        let n = b * l;
        let rows = self.rows().div_ceil(2 * LANES) * 2 * LANES;
        let mut p = PackedCols {
            kp_fwd: rows / 2,
            panels_fwd: n.div_ceil(2 * LANES) * 2,
            kp_dw: n.div_ceil(2).div_ceil(LANES) * LANES,
            fwd: Vec::new(),
            dw: Vec::new(),
        };
        let fwd_len = p.panels_fwd * p.kp_fwd * LANES;
        let dw_len = if weight_grad { rows * p.kp_dw } else { 0 };
        let (mut fwd, mut dw) = (Vec::with_capacity(fwd_len), Vec::with_capacity(dw_len));
        let (pf, pd) = (SendU32(fwd.as_mut_ptr()), SendU32(dw.as_mut_ptr()));
        // Samples per group: the fewest whose positions make whole panels.
        let group = LANES / gcd(l, LANES);
        (0..b.div_ceil(group)).into_par_iter().for_each(|gi| {
            let (pf, pd) = (&pf, &pd);
            let samples = gi * group..((gi + 1) * group).min(b);
            let width = samples.len() * l;
            let q0 = samples.start * l;
            // Positions rounded up to whole panels; the rest of tmp stays 0.
            let span = width.div_ceil(LANES) * LANES;
            let mut tmp = vec![0f32; LANES * span];
            for r0 in (0..rows).step_by(LANES) {
                for (j, t) in tmp.chunks_exact_mut(span).enumerate() {
                    if r0 + j >= self.rows() {
                        t[..width].fill(0.0);
                        continue;
                    }
                    for (bi, seg) in samples.clone().zip(t.chunks_exact_mut(l)) {
                        // SAFETY: f32 has no invalid bit patterns; fill_row writes every entry.
                        let seg = unsafe { &mut *(seg as *mut [f32] as *mut [MaybeUninit<f32>]) };
                        self.fill_row(&x[bi * self.image()..][..self.image()], r0 + j, seg);
                    }
                }
                for pi in 0..span / LANES {
                    let base = ((q0 / LANES + pi) * p.kp_fwd + r0 / 2) * LANES;
                    // SAFETY: lines r0/2..r0/2 + 8 of panel q0/16 + pi lie
                    // inside `fwd` and belong to this group alone.
                    unsafe { pair_lines(&tmp, span, pi * LANES, pf.0.add(base)) };
                }
                if weight_grad {
                    // Each row's position pairs, a run in its row of `dw`.
                    let (half, start) = (span / 2, q0 / 2);
                    let len = half.min(p.kp_dw.saturating_sub(start));
                    for j in 0..LANES {
                        // SAFETY: row r0 + j < rows, pairs start..start + len
                        // < kp_dw: inside `dw`, and this group's alone.
                        let run = unsafe {
                            std::slice::from_raw_parts_mut(
                                pd.0.add((r0 + j) * p.kp_dw + start),
                                len,
                            )
                        };
                        super::bf16_pack::pair_run(&tmp[j * span..][..2 * len], run);
                    }
                }
            }
        });
        // The padding past the last group's panels and lines.
        let written_fwd = n.div_ceil(LANES) * p.kp_fwd * LANES;
        // SAFETY: the groups wrote every entry below written_fwd; the rest is
        // written here. Likewise for dw: every row's pairs below ⌈n/16⌉·8
        // were written, and the rest of each row is written here.
        unsafe {
            std::ptr::write_bytes(pf.0.add(written_fwd), 0, fwd_len - written_fwd);
            fwd.set_len(fwd_len);
            if weight_grad {
                let written = (n.div_ceil(LANES) * LANES / 2).min(p.kp_dw);
                for r in 0..rows {
                    let at = r * p.kp_dw + written;
                    std::ptr::write_bytes(pd.0.add(at), 0, p.kp_dw - written);
                }
                dw.set_len(dw_len);
            }
        }
        p.fwd = fwd;
        p.dw = dw;
        p
    }

    /// Per-sample column matrices: (B, C·k·k, Ho·Wo).
    pub fn im2col_samples(&self, x: &[f32]) -> Vec<f32> {
        let per = self.rows() * self.l();
        filled(x.len() / self.image().max(1) * per, per, |bi, cb| {
            let img = &x[bi * self.image()..][..self.image()];
            for (r, row) in cb.chunks_exact_mut(self.l()).enumerate() {
                self.fill_row(img, r, row);
            }
        })
    }
}

/// A batch's columns packed for the AMX products ([`Geometry::im2col_packed`]).
pub(super) struct PackedCols {
    /// B operand of the forward product: `panels_fwd` panels of `kp_fwd` lines.
    pub fwd: Vec<u32>,
    pub kp_fwd: usize,
    pub panels_fwd: usize,
    /// A operand of the weight gradient's transpose (empty without one).
    pub dw: Vec<u32>,
    pub kp_dw: usize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// Writes the 8 lines of row pairs (0, 1) … (14, 15) of `tmp` (16 rows of
/// `span` values) at columns `c0..c0 + 16`, one 64-byte line per pair, to
/// `dst` (8 consecutive lines of a B panel).
///
/// # Safety
/// `dst` points at 128 writable u32s.
unsafe fn pair_lines(tmp: &[f32], span: usize, c0: usize, dst: *mut u32) {
    use super::bf16_pack::{LANES, pair_rows};
    for t in 0..LANES / 2 {
        let (a, b) = (
            &tmp[2 * t * span + c0..][..LANES],
            &tmp[(2 * t + 1) * span + c0..][..LANES],
        );
        let mut line = [0u32; LANES];
        pair_rows(a, Some(b), &mut line);
        // SAFETY: the caller's contract: 8 lines of 16 at dst.
        unsafe { std::ptr::copy_nonoverlapping(line.as_ptr(), dst.add(t * LANES), LANES) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// im2col by definition, one element at a time.
    fn naive(g: &Geometry, img: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; g.rows() * g.l()];
        for r in 0..g.rows() {
            let (ci, ky, kx) = g.tap(r);
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                    if (0..g.h as isize).contains(&iy) && (0..g.w as isize).contains(&ix) {
                        out[r * g.l() + oy * g.wo + ox] =
                            img[(ci * g.h + iy as usize) * g.w + ix as usize];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn runs_match_the_definition_and_col2im_is_the_adjoint() {
        // (c, h, w, k, stride, pad), including pads wider than the kernel
        // reach and strides that skip the last column.
        for (c, h, w, k, s, p) in [
            (1, 5, 5, 3, 1, 1),
            (2, 7, 6, 3, 2, 1),
            (3, 4, 9, 1, 1, 0),
            (2, 6, 5, 5, 3, 2),
            (1, 3, 3, 3, 1, 4),
            (2, 8, 7, 2, 2, 0),
        ] {
            let g = Geometry::new(c, h, w, k, s, p).unwrap();
            let x: Vec<f32> = (0..2 * g.image()).map(|i| i as f32 * 0.5 - 3.0).collect();
            let per = g.im2col_samples(&x);
            let batch = g.im2col_batch(&x);
            let n = 2 * g.l();
            for (bi, img) in x.chunks_exact(g.image()).enumerate() {
                let want = naive(&g, img);
                assert_eq!(&per[bi * want.len()..][..want.len()], &want[..]);
                for r in 0..g.rows() {
                    assert_eq!(
                        &batch[r * n + bi * g.l()..][..g.l()],
                        &want[r * g.l()..][..g.l()],
                        "{c} {h} {w} {k} {s} {p} row {r}"
                    );
                }
            }
            // <im2col(x), d> = <x, col2im(d)> for any d.
            let d: Vec<f32> = (0..batch.len())
                .map(|i| ((i * 7) % 11) as f32 - 5.0)
                .collect();
            let lhs: f64 = batch.iter().zip(&d).map(|(a, b)| (a * b) as f64).sum();
            let back = g.col2im_batch(&d, 2);
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
            assert!(
                (lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
        }
    }

    /// Both packed layouts equal packing the f32 column matrix, for whole
    /// and partial panel groups, odd positions per sample and padded rows.
    #[test]
    fn packed_columns_match_packing_the_f32_columns() {
        use crate::ops::Mat;
        use crate::ops::bf16_pack::{LANES, pack_a, pack_b};
        for (c, h, w, k, s, p, b) in [
            (4, 6, 6, 3, 1, 1, 3),
            (8, 7, 7, 3, 1, 1, 5),
            (3, 9, 5, 3, 2, 0, 17),
            (5, 4, 4, 2, 1, 0, 2),
        ] {
            let g = Geometry::new(c, h, w, k, s, p).unwrap();
            let x: Vec<f32> = (0..b * g.image())
                .map(|i| (i as f32 * 0.61).sin() * 2.0)
                .collect();
            let cols = g.im2col_batch(&x);
            let n = b * g.l();
            let packed = g.im2col_packed(&x, true);
            let m = Mat::new(&cols, g.rows(), n);
            assert_eq!(
                packed.fwd,
                pack_b(&m, packed.panels_fwd, packed.kp_fwd),
                "fwd {c} {h} {w} {k} {s} {p} {b}"
            );
            let rows = g.rows().div_ceil(2 * LANES) * 2 * LANES;
            assert_eq!(
                packed.dw,
                pack_a(&m, rows, packed.kp_dw),
                "dw {c} {h} {w} {k} {s} {p} {b}"
            );
            assert!(g.im2col_packed(&x, false).dw.is_empty());
        }
    }
}
