//! Int8 linear layers for inference on the CPU, as PyTorch's dynamic
//! quantization does it: weights quantized once per output row
//! (symmetric, i8, one f32 scale per row), inputs quantized per sample row
//! at run time, an integer dot product accumulated in i32, then rescaled:
//! `y[n, o] = sx[n] sw[o] sum_k xq[n, k] wq[o, k] + b[o]`.
//!
//! On CPUs with AVX-512 VNNI the dot products run on `vpdpbusd` (64
//! u8 x i8 multiply-adds per instruction, 4 samples x 4 rows per register
//! block). It takes unsigned inputs, so inputs are stored as `xq + 128` and
//! `128 sum_k wq[o, k]` is subtracted afterwards. Elsewhere a portable i32
//! loop runs; `kernel()` names which.

use rayon::prelude::*;

/// Columns are padded to whole 64-byte vectors.
const LANE: usize = 64;
/// Samples and rows per register block.
const BLOCK: usize = 4;

/// A (rows x cols) weight matrix in i8 with per-row scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Matrix {
    pub rows: usize,
    pub cols: usize,
    /// `cols` rounded up to a multiple of 64.
    padded: usize,
    /// Row-major (rows x padded), zero-padded.
    w: Vec<i8>,
    scale: Vec<f32>,
    /// 128 x the row sums of `w` (the unsigned-input correction).
    offset: Vec<i32>,
    bias: Option<Vec<f32>>,
}

impl Int8Matrix {
    /// Quantizes a row-major f32 (rows x cols) matrix.
    pub fn from_f32(w: &[f32], rows: usize, cols: usize, bias: Option<Vec<f32>>) -> Int8Matrix {
        let padded = cols.div_ceil(LANE) * LANE;
        let mut q = vec![0i8; rows * padded];
        let mut scale = Vec::with_capacity(rows);
        let mut offset = Vec::with_capacity(rows);
        for r in 0..rows {
            let row = &w[r * cols..(r + 1) * cols];
            let s = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            let mut sum = 0i32;
            for (k, v) in row.iter().enumerate() {
                let x = (v * inv).round().clamp(-127.0, 127.0) as i8;
                q[r * padded + k] = x;
                sum += x as i32;
            }
            scale.push(s);
            offset.push(128 * sum);
        }
        Int8Matrix {
            rows,
            cols,
            padded,
            w: q,
            scale,
            offset,
            bias,
        }
    }

    /// Bytes of the i8 weights and per-row scales (padding included).
    pub fn bytes(&self) -> u64 {
        (self.w.len() + 4 * self.scale.len()) as u64
    }

    /// `x W^T + b` for row-major `x` (n x cols); row-major (n x rows).
    pub fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.forward_with(x, n, vnni())
    }

    /// `forward` on the portable kernel (the same integers as VNNI's).
    pub fn forward_portable(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.forward_with(x, n, false)
    }

    fn forward_with(&self, x: &[f32], n: usize, vnni: bool) -> Vec<f32> {
        let mut y = vec![0f32; n * self.rows];
        y.par_chunks_mut(BLOCK * self.rows)
            .zip(x.par_chunks(BLOCK * self.cols))
            .for_each(|(yb, xb)| {
                let t = xb.len() / self.cols.max(1);
                // Inputs of this block: u8 = round(x / sx) + 128.
                let mut xq = vec![128u8; BLOCK * self.padded];
                let mut sx = [0f32; BLOCK];
                for (j, row) in xb.chunks_exact(self.cols).enumerate() {
                    let s = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                    // round(v / sx) + 128 in [1, 255]: add 128.5 and truncate
                    // (positive, so truncation is floor); no libm call, so
                    // this loop vectorizes.
                    let dst = &mut xq[j * self.padded..j * self.padded + self.cols];
                    for (d, v) in dst.iter_mut().zip(row) {
                        *d = (v * inv + 128.5).clamp(1.0, 255.0) as u8;
                    }
                    sx[j] = s;
                }
                let mut dots = vec![0i32; BLOCK * self.rows];
                #[cfg(target_arch = "x86_64")]
                if vnni {
                    // SAFETY: the CPU has AVX-512 F, BW and VNNI (checked at run time).
                    unsafe { dots_vnni(self, &xq, &mut dots) };
                }
                if !vnni {
                    dots_portable(self, &xq, &mut dots);
                }
                for j in 0..t {
                    for o in 0..self.rows {
                        let d = dots[j * self.rows + o] - self.offset[o];
                        let b = self.bias.as_ref().map_or(0.0, |b| b[o]);
                        yb[j * self.rows + o] = sx[j] * self.scale[o] * d as f32 + b;
                    }
                }
            });
        y
    }
}

/// Which compiled kernel `forward` runs on this CPU.
pub fn kernel() -> &'static str {
    if vnni() { "avx512-vnni" } else { "portable" }
}

fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Unsigned-input dot products of the block's 4 samples with every row.
fn dots_portable(m: &Int8Matrix, xq: &[u8], dots: &mut [i32]) {
    for j in 0..BLOCK {
        let x = &xq[j * m.padded..(j + 1) * m.padded];
        for o in 0..m.rows {
            let w = &m.w[o * m.padded..(o + 1) * m.padded];
            dots[j * m.rows + o] = x.iter().zip(w).map(|(&a, &b)| a as i32 * b as i32).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)] // register-block indices, clearer than zipped iterators
unsafe fn dots_vnni(m: &Int8Matrix, xq: &[u8], dots: &mut [i32]) {
    use std::arch::x86_64::*;
    let steps = m.padded / LANE;
    let mut o0 = 0;
    while o0 < m.rows {
        let ro = BLOCK.min(m.rows - o0);
        let mut acc = [[_mm512_setzero_si512(); BLOCK]; BLOCK];
        for s in 0..steps {
            let mut xv = [_mm512_setzero_si512(); BLOCK];
            for (j, v) in xv.iter_mut().enumerate() {
                // SAFETY: xq holds BLOCK rows of `padded` bytes.
                *v = unsafe { _mm512_loadu_si512(xq.as_ptr().add(j * m.padded + s * LANE).cast()) };
            }
            for i in 0..ro {
                // SAFETY: row o0 + i < rows; each row holds `padded` bytes.
                let wv = unsafe {
                    _mm512_loadu_si512(m.w.as_ptr().add((o0 + i) * m.padded + s * LANE).cast())
                };
                for j in 0..BLOCK {
                    acc[j][i] = _mm512_dpbusd_epi32(acc[j][i], xv[j], wv);
                }
            }
        }
        for (j, row) in acc.iter().enumerate() {
            for (i, a) in row.iter().take(ro).enumerate() {
                dots[j * m.rows + o0 + i] = _mm512_reduce_add_epi32(*a);
            }
        }
        o0 += BLOCK;
    }
}
