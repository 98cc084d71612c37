//! Sparse execution of pruned linear layers on the CPU (inference only):
//! `y = x W^T + b` with W stored as CSR (compressed sparse rows: the
//! non-zeros of each output row and their input columns) or BSR (b x b
//! blocks that hold any non-zero, each stored dense).
//!
//! The kernel works on tiles of 16 samples: the tile's inputs are
//! transposed once into `xt[k][0..16]`, so every stored weight costs one
//! broadcast and one 16-wide multiply-add over contiguous memory, the same
//! inner loop a dense kernel runs. Tiles run in parallel (rayon, like the
//! fused ops). On x86-64 with AVX2 and FMA a copy of the kernel compiled for
//! them runs (detected at run time; `kernel()` names which), else the
//! portable one. Work is proportional to the stored weights: CSR skips every
//! zero, BSR every all-zero block.

pub use crate::config::SparseFormat;
use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Samples per tile: 16 f32 lanes = two AVX registers.
const TILE: usize = 16;

/// A (out x in) weight matrix in CSR or BSR form, with its bias.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseMatrix {
    pub format: SparseFormat,
    /// Block edge (1 for CSR).
    pub block: usize,
    pub rows: usize,
    pub cols: usize,
    /// Start of each (block) row's entries in `index`, plus the end.
    row_ptr: Vec<u32>,
    /// Column (CSR) or block column (BSR) of each entry.
    index: Vec<u32>,
    /// One value per CSR entry; block * block per BSR entry (row-major).
    values: Vec<f32>,
    bias: Option<Vec<f32>>,
}

/// What storing a layer sparsely keeps and costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseStats {
    /// Non-zero weights.
    pub nonzeros: u64,
    /// Weights of the dense matrix.
    pub weights: u64,
    /// Values stored (BSR stores the zeros inside kept blocks).
    pub stored: u64,
    /// Bytes of values, indices and row pointers (bias excluded).
    pub bytes: u64,
    /// Bytes of the dense f32 matrix.
    pub dense_bytes: u64,
}

impl SparseStats {
    pub fn add(&mut self, o: &SparseStats) {
        self.nonzeros += o.nonzeros;
        self.weights += o.weights;
        self.stored += o.stored;
        self.bytes += o.bytes;
        self.dense_bytes += o.dense_bytes;
    }
}

impl SparseMatrix {
    /// From a row-major dense (rows x cols) matrix; `block` >= 1 is the BSR
    /// block edge (ignored for CSR).
    pub fn from_dense(
        w: &[f32],
        rows: usize,
        cols: usize,
        bias: Option<Vec<f32>>,
        format: SparseFormat,
        block: usize,
    ) -> SparseMatrix {
        let b = if format == SparseFormat::Csr {
            1
        } else {
            block.max(1)
        };
        let (brows, bcols) = (rows.div_ceil(b), cols.div_ceil(b));
        let at = |r: usize, c: usize| {
            if r < rows && c < cols {
                w[r * cols + c]
            } else {
                0.0
            }
        };
        let mut row_ptr = vec![0u32];
        let (mut index, mut values) = (Vec::new(), Vec::new());
        for br in 0..brows {
            for bc in 0..bcols {
                let any = (0..b).any(|i| (0..b).any(|k| at(br * b + i, bc * b + k) != 0.0));
                if any {
                    index.push(bc as u32);
                    for i in 0..b {
                        for k in 0..b {
                            values.push(at(br * b + i, bc * b + k));
                        }
                    }
                }
            }
            row_ptr.push(index.len() as u32);
        }
        SparseMatrix {
            format,
            block: b,
            rows,
            cols,
            row_ptr,
            index,
            values,
            bias,
        }
    }

    pub fn stats(&self) -> SparseStats {
        SparseStats {
            nonzeros: self.values.iter().filter(|v| **v != 0.0).count() as u64,
            weights: (self.rows * self.cols) as u64,
            stored: self.values.len() as u64,
            bytes: 4 * (self.values.len() + self.index.len() + self.row_ptr.len()) as u64,
            dense_bytes: 4 * (self.rows * self.cols) as u64,
        }
    }

    /// `x W^T + b` for row-major `x` of (n x cols); row-major (n x rows).
    pub fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let mut y = vec![0f32; n * self.rows];
        y.par_chunks_mut(TILE * self.rows)
            .zip(x.par_chunks(TILE * self.cols))
            .for_each(|(yt, xt)| {
                let t = xt.len() / self.cols.max(1);
                let mut lanes = self.lanes();
                for (j, row) in xt.chunks_exact(self.cols).enumerate() {
                    for (k, v) in row.iter().enumerate() {
                        lanes[k][j] = *v;
                    }
                }
                products(self, &lanes, yt, t);
            });
        y
    }

    /// `W X + b` for column-major inputs: `xt` is (cols x n) row-major (one
    /// column per sample, as im2col lays out a convolution's positions);
    /// returns (rows x n) row-major.
    pub fn forward_columns(&self, xt: &[f32], n: usize) -> Vec<f32> {
        let per_tile: Vec<Vec<f32>> = (0..n.div_ceil(TILE))
            .into_par_iter()
            .map(|ti| {
                let (n0, t) = (ti * TILE, TILE.min(n - ti * TILE));
                // Each input row's 16 columns are already contiguous.
                let mut lanes = self.lanes();
                for (k, l) in lanes.iter_mut().take(self.cols).enumerate() {
                    l[..t].copy_from_slice(&xt[k * n + n0..k * n + n0 + t]);
                }
                let mut y = vec![0f32; t * self.rows];
                products(self, &lanes, &mut y, t);
                y
            })
            .collect();
        let mut out = vec![0f32; self.rows * n];
        for (ti, y) in per_tile.iter().enumerate() {
            let n0 = ti * TILE;
            for (j, row) in y.chunks_exact(self.rows).enumerate() {
                for (r, v) in row.iter().enumerate() {
                    out[r * n + n0 + j] = *v;
                }
            }
        }
        out
    }

    /// A zeroed tile of transposed inputs: one 16-lane row per input,
    /// padded to whole blocks of columns.
    fn lanes(&self) -> Vec<[f32; TILE]> {
        vec![[0f32; TILE]; self.cols.div_ceil(self.block) * self.block]
    }
}

/// Which compiled kernel `forward` runs on this CPU.
pub fn kernel() -> &'static str {
    if avx2_fma() { "avx2+fma" } else { "portable" }
}

fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One tile's products: `xt` (transposed inputs, 16 lanes) into `y`
/// (t x rows), on the AVX2+FMA build where the CPU has it.
fn products(m: &SparseMatrix, xt: &[[f32; TILE]], y: &mut [f32], t: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time).
        unsafe { products_avx2(m, xt, y, t) };
        return;
    }
    products_portable(m, xt, y, t);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn products_avx2(m: &SparseMatrix, xt: &[[f32; TILE]], y: &mut [f32], t: usize) {
    products_portable(m, xt, y, t)
}

#[inline(always)]
fn products_portable(m: &SparseMatrix, xt: &[[f32; TILE]], y: &mut [f32], t: usize) {
    match m.block {
        1 => blocks::<1>(m, xt, y, t),
        2 => blocks::<2>(m, xt, y, t),
        4 => blocks::<4>(m, xt, y, t),
        8 => blocks::<8>(m, xt, y, t),
        _ => any_blocks(m, xt, y, t),
    }
}

/// Writes one block row's accumulators (plus bias) into `y`.
#[inline(always)]
fn store(m: &SparseMatrix, acc: &[[f32; TILE]], br: usize, y: &mut [f32], t: usize) {
    let b = acc.len();
    for (i, a) in acc.iter().enumerate() {
        let r = br * b + i;
        if r >= m.rows {
            break;
        }
        let bias = m.bias.as_ref().map_or(0.0, |bv| bv[r]);
        for (j, v) in a.iter().take(t).enumerate() {
            y[j * m.rows + r] = v + bias;
        }
    }
}

/// The kernel for a block edge known at compile time: the accumulators
/// (B x 16 floats) stay in registers across a block row.
#[inline(always)]
fn blocks<const B: usize>(m: &SparseMatrix, xt: &[[f32; TILE]], y: &mut [f32], t: usize) {
    for br in 0..m.row_ptr.len() - 1 {
        let mut acc = [[0f32; TILE]; B];
        let (start, end) = (m.row_ptr[br] as usize, m.row_ptr[br + 1] as usize);
        let values = &m.values[start * B * B..end * B * B];
        for (&c, vals) in m.index[start..end].iter().zip(values.chunks_exact(B * B)) {
            let xs = &xt[c as usize * B..c as usize * B + B];
            for (i, a) in acc.iter_mut().enumerate() {
                for (k, x) in xs.iter().enumerate() {
                    let w = vals[i * B + k];
                    for l in 0..TILE {
                        a[l] += w * x[l];
                    }
                }
            }
        }
        store(m, &acc, br, y, t);
    }
}

/// Any other block edge.
fn any_blocks(m: &SparseMatrix, xt: &[[f32; TILE]], y: &mut [f32], t: usize) {
    let b = m.block;
    let mut acc = vec![[0f32; TILE]; b];
    for br in 0..m.row_ptr.len() - 1 {
        acc.iter_mut().for_each(|a| *a = [0.0; TILE]);
        let (start, end) = (m.row_ptr[br] as usize, m.row_ptr[br + 1] as usize);
        for e in start..end {
            let col = m.index[e] as usize * b;
            let vals = &m.values[e * b * b..(e + 1) * b * b];
            for (i, a) in acc.iter_mut().enumerate() {
                for (k, &w) in vals[i * b..(i + 1) * b].iter().enumerate() {
                    let xs = &xt[col + k];
                    for l in 0..TILE {
                        a[l] += w * xs[l];
                    }
                }
            }
        }
        store(m, &acc, br, y, t);
    }
}

/// `x W^T + b` through the sparse kernel, for x of any rank (last dim = in).
pub fn tensor_forward(m: &SparseMatrix, x: &Tensor) -> Result<Tensor> {
    host_forward(x, m.cols, m.rows, |h, n| m.forward(h, n))
}

/// Runs a host kernel `f(x, n) -> y` (row-major, `cols` in, `rows` out) on
/// a tensor of any rank whose last dimension is `cols`.
pub fn host_forward(
    x: &Tensor,
    cols: usize,
    rows: usize,
    f: impl Fn(&[f32], usize) -> Vec<f32>,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let got = *dims.last().unwrap_or(&0);
    if got != cols {
        candle_core::bail!("layer takes {cols} inputs, got {got}")
    }
    let n = x.elem_count() / cols.max(1);
    let host = x
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let y = f(&host, n);
    let mut out = dims;
    if let Some(last) = out.last_mut() {
        *last = rows;
    }
    Tensor::from_vec(y, out, x.device())?.to_dtype(x.dtype())
}
