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
}
