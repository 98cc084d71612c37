//! Fused CPU training ops: forward kernels with hand-written backward passes,
//! as candle custom ops.
//!
//! candle's autograd records one node per tensor op and, for every node,
//! accumulates the incoming gradient as `zeros_like + add`; a plain
//! `relu(x·Wᵀ + b)` therefore costs a transpose, a broadcast, a matmul that
//! also computes the gradient of an input nobody needs, and a handful of
//! full-size temporaries. Each op here does one layer's work in one node:
//! gemm with the bias folded in and the activation applied in place, and a
//! backward pass that computes exactly the gradients asked for. On f32 CPU
//! tensors the fast kernels run, and the linear, conv and GELU ops take bf16
//! CPU tensors too, widening them inside the op (`bf16_cpu`); inside a bf16
//! autocast scope the linear and conv ops compute in bf16 on f32 tensors
//! (`numerics`). On CUDA (with
//! the `cuda` feature) the linear layer's bias + activation and the
//! cross-entropy run joulebench's own kernels (`cuda`). Anywhere else (f16,
//! the other ops off the CPU) the same function falls back to candle's ops,
//! so models call one function and stay device-agnostic. Every fast op is
//! tested against candle's result and gradients (tests/ops.rs,
//! tests/device_kernels.rs).

mod amx;
pub mod bf16_gemm;
mod bf16_pack;
pub mod conv;
pub mod cross_entropy;
pub mod cuda;
mod depthwise;
pub mod gelu;
mod im2col;
pub mod int8;
pub mod linear;
pub mod numerics;
pub mod pool;
mod registry;
pub mod selfcheck;
pub mod sparse;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

/// The nonlinearity applied to a layer's output inside the fused op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
}

impl Activation {
    /// Applies the activation in place.
    fn apply(self, y: &mut [f32]) {
        if self == Activation::Relu {
            for v in y {
                *v = v.max(0.0);
            }
        }
    }

    /// Zeroes `g` where the activation's derivative is zero, reading the
    /// activation's output `y` (ReLU: y > 0 exactly where its input was).
    fn mask_grad(self, g: &mut [f32], y: &[f32]) {
        if self == Activation::Relu {
            for (g, &y) in g.iter_mut().zip(y) {
                if y <= 0.0 {
                    *g = 0.0;
                }
            }
        }
    }

    /// The activation of one value.
    fn scalar(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
        }
    }

    /// Whether a gradient passes back through an output `y` of the activation.
    fn passes(self, y: f32) -> bool {
        self != Activation::Relu || y > 0.0
    }

    /// Applies the activation with candle's tensor ops.
    pub fn tensor(self, y: Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(y),
            Activation::Relu => y.relu(),
        }
    }
}

static FUSED: AtomicBool = AtomicBool::new(true);

/// Switches the fused kernels on (the default) or off for the whole process.
/// Off, every op here runs candle's own ops, as a plain candle program would:
/// the baseline the benches and `examples/perf_summary` compare against.
pub fn set_fused(on: bool) {
    FUSED.store(on, Ordering::Relaxed);
}

/// Whether the fused kernels are switched on.
pub fn fused() -> bool {
    FUSED.load(Ordering::Relaxed)
}

/// True where `kernel`'s fused f32 CPU build can run on these tensors (and
/// it has not failed its self-check).
fn fast(kernel: registry::Kernel, ts: &[&Tensor]) -> bool {
    fused()
        && registry::enabled(kernel)
        && ts
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// bf16 CPU tensors (all of them) that `kernel` can take: candle has no bf16
/// matmul on the CPU, so the fused linear and conv ops take bf16 tensors
/// themselves, widen the values exactly to f32 inside the op, multiply on
/// [`bf16_gemm`] with f32 accumulation and round their outputs and
/// gradients to bf16: no cast is a graph node of its own.
fn bf16_cpu(kernel: registry::Kernel, ts: &[&Tensor]) -> bool {
    fused()
        && registry::enabled(kernel)
        && ts
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::BF16)
}

/// The product for an op's operands: f32, or bf16 values held in f32 (a
/// bf16 layer's widened values), which take [`bf16_gemm::matmul_bf16`].
type Product = fn(&mut [f32], Mat, Mat, bool, bool);

fn product(bf16: bool) -> Product {
    if bf16 { bf16_gemm::matmul_bf16 } else { matmul }
}

/// The values of a contiguous f32 or bf16 CPU storage as f32: borrowed, or
/// widened (exactly) from bf16.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<Cow<'a, [f32]>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: needs a contiguous tensor")
    };
    match s {
        CpuStorage::F32(v) => Ok(Cow::Borrowed(&v[a..b])),
        CpuStorage::BF16(v) => {
            let mut out = vec![0f32; b - a];
            out.par_chunks_mut(CONVERT_CHUNK)
                .zip(v[a..b].par_chunks(CONVERT_CHUNK))
                .for_each(|(d, s)| {
                    for (d, s) in d.iter_mut().zip(s) {
                        *d = f32::from_bits((s.to_bits() as u32) << 16);
                    }
                });
            Ok(Cow::Owned(out))
        }
        _ => candle_core::bail!("{op}: takes f32 or bf16 tensors, got {:?}", s.dtype()),
    }
}

/// Values per task when widening or rounding between f32 and bf16.
const CONVERT_CHUNK: usize = 1 << 15;

/// f32 results as a CPU storage: as they are, or rounded to bf16 (nearest
/// even) for a bf16 layer.
fn storage_of(v: Vec<f32>, bf16: bool) -> CpuStorage {
    if !bf16 {
        return CpuStorage::F32(v);
    }
    let mut out = vec![half::bf16::ZERO; v.len()];
    out.par_chunks_mut(CONVERT_CHUNK)
        .zip(v.par_chunks(CONVERT_CHUNK))
        .for_each(|(d, s)| {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = half::bf16::from_f32(s);
            }
        });
    CpuStorage::BF16(out)
}

/// f32 results as a CPU tensor of `shape`, in bf16 for a bf16 layer.
fn tensor_of(v: Vec<f32>, shape: impl Into<Shape>, bf16: bool) -> Result<Tensor> {
    let shape = shape.into();
    match storage_of(v, bf16) {
        CpuStorage::BF16(b) => Tensor::from_vec(b, shape, &candle_core::Device::Cpu),
        CpuStorage::F32(f) => Tensor::from_vec(f, shape, &candle_core::Device::Cpu),
        _ => unreachable!("storage_of makes f32 or bf16"),
    }
}

/// Runs `f` on the values (as f32) of a contiguous f32 or bf16 CPU tensor.
fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(&f32s(c, l, op)?),
        _ => candle_core::bail!("{op}: the fused kernels run on the CPU only"),
    }
}

/// A vector of `len` values written chunk by chunk, in parallel, by `fill`
/// (chunk index, chunk of `chunk` entries): the column matrices are the
/// largest buffers of a step (and the gradients at a layer's output
/// next), and zeroing them first would cost as much as filling them. `fill` must write every entry of each chunk.
pub(super) fn filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    assert!(
        len == 0 || (chunk > 0 && len.is_multiple_of(chunk)),
        "filled: {len} entries in chunks of {chunk}"
    );
    let mut v = Vec::<f32>::with_capacity(len);
    if len > 0 {
        v.spare_capacity_mut()[..len]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| fill(i, c));
    }
    // SAFETY: the chunks cover the first `len` entries exactly, `fill` wrote
    // every entry of each (its contract), and `len` <= capacity.
    unsafe { v.set_len(len) };
    v
}

/// Largest |got − want| / max(|want|, 1e-3) (infinite where `got` is not
/// finite): how the self-checks compare a kernel with its reference.
fn max_rel_diff(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .map(|(g, w)| {
            if g.is_finite() {
                (g - w).abs()
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max);
    diff / scale
}

/// A read-only matrix view: `rows × cols` with element (r, c) at
/// `r * rs + c * cs` of `data`. Transposing swaps the strides, copying nothing.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MACS: usize = 1 << 18;

/// Below this many multiply-adds, or for a single row or column (depthwise
/// convolutions: 1×9 by 9×L), a plain loop beats gemm's packing.
const SMALL_MACS: usize = 1 << 12;

/// The plain-loop product behind [`matmul`] for tiny or thin shapes.
fn small_matmul(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let at = |i: usize, p: usize| a.data[i * a.rs + p * a.cs];
    for i in 0..m {
        let row = &mut dst[i * n..(i + 1) * n];
        if !accumulate {
            row.fill(0.0);
        }
        if b.cs == 1 {
            // Rows of b are contiguous: row += a[i][p] · b[p].
            for p in 0..k {
                let s = at(i, p);
                let bp = &b.data[p * b.rs..p * b.rs + n];
                for (d, &v) in row.iter_mut().zip(bp) {
                    *d += s * v;
                }
            }
        } else {
            // Columns of b are contiguous (b is a transposed view): dot products.
            for (j, d) in row.iter_mut().enumerate() {
                let acc = if a.cs == 1 && b.rs == 1 {
                    dot(&a.data[i * a.rs..][..k], &b.data[j * b.cs..][..k])
                } else {
                    (0..k).map(|p| at(i, p) * b.data[p * b.rs + j * b.cs]).sum()
                };
                *d += acc;
            }
        }
    }
}

/// Σ x with 16 running sums (so the loop vectorizes), added in a fixed
/// order: bias gradients sum rows of B·H·W values.
fn sum(x: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let chunks = x.chunks_exact(L);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..L {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ x·y with 16 running sums (so the loop vectorizes), added in a fixed
/// order: depthwise weight gradients are long dot products.
fn dot(x: &[f32], y: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for l in 0..L {
            acc[l] += a[l] * b[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `dst (a.rows × b.cols, row-major) = a·b`, or `+= a·b` with `accumulate`.
/// `parallel` lets gemm use candle's thread count for large products; ops
/// that already run one product per thread pass false.
fn matmul(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, parallel: bool) {
    assert!(
        dst.len() >= a.rows * b.cols,
        "matmul: destination too small"
    );
    // SAFETY: dst is initialised and holds a.rows · b.cols entries.
    unsafe { matmul_ptr(dst.as_mut_ptr(), a, b, accumulate, parallel) }
}

/// `dst = a·b` into memory that may start uninitialised: gemm writes every
/// entry without reading it, so the largest buffers of a step (a layer's
/// pre-activation, the column gradient) are not zeroed first. The
/// plain-loop shapes zero it and take [`product`].
fn product_uninit(bf16: bool, dst: &mut [MaybeUninit<f32>], a: Mat, b: Mat, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(dst.len() >= m * n, "matmul: destination too small");
    if plain_loop(m, k, n) {
        for d in dst.iter_mut() {
            d.write(0.0);
        }
        // SAFETY: every entry was just written.
        let dst = unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) };
        return product(bf16)(dst, a, b, false, parallel);
    }
    if bf16 {
        // SAFETY: dst holds m·n entries; not the plain loop (above).
        return unsafe { bf16_gemm::matmul_bf16_uninit(dst.as_mut_ptr().cast(), a, b, parallel) };
    }
    // SAFETY: dst holds m·n entries; without `accumulate` gemm writes each
    // (alpha = 0: `dst = acc`) before any read of it.
    unsafe { matmul_ptr(dst.as_mut_ptr().cast(), a, b, false, parallel) }
}

/// Whether [`matmul`] takes the plain loop for an m×k by k×n product.
fn plain_loop(m: usize, k: usize, n: usize) -> bool {
    k == 0 || m == 1 || n == 1 || k <= 2 || m * n * k < SMALL_MACS
}

/// [`matmul`] through a pointer.
///
/// # Safety
/// `dst` points at `a.rows · b.cols` writable f32s, initialised unless the
/// product takes gemm without `accumulate`.
unsafe fn matmul_ptr(dst: *mut f32, a: Mat, b: Mat, accumulate: bool, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    for x in [&a, &b] {
        assert!(
            x.rows == 0 || x.cols == 0 || (x.rows - 1) * x.rs + (x.cols - 1) * x.cs < x.data.len(),
            "matmul: view out of bounds"
        );
    }
    if plain_loop(m, k, n) {
        // SAFETY: the caller's contract: m·n initialised entries here.
        let dst = unsafe { std::slice::from_raw_parts_mut(dst, m * n) };
        if k == 0 {
            if !accumulate {
                dst.fill(0.0);
            }
            return;
        }
        return small_matmul(dst, a, b, accumulate);
    }
    // The thread count reads the environment: only ask when it can matter
    // (per-sample products in conv pass `parallel = false`).
    let threads = if parallel && m * n * k >= PARALLEL_MACS {
        candle_core::utils::get_num_threads()
    } else {
        1
    };
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm reads inside `a.data`
    // and `b.data`; the caller's contract covers the m·n it writes at `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat, b: Mat) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    out[i * b.cols + j] +=
                        a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
                }
            }
        }
        out
    }

    #[test]
    fn matmul_handles_transposed_views_and_accumulation() {
        // Small shapes take the plain loop; a 40×50×60 product takes gemm.
        for (m, k, n) in [(3, 4, 5), (1, 9, 30), (9, 1, 30), (30, 40, 1), (40, 50, 60)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            for (av, bv) in [
                (Mat::new(&a, m, k), Mat::new(&b, k, n)),
                (Mat::new(&a, k, m).t(), Mat::new(&b, n, k).t()),
            ] {
                let want = naive(av, bv);
                let mut got = vec![1.0; m * n];
                matmul(&mut got, av, bv, false, true);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4, "{m}x{k}x{n}: {g} vs {w}");
                }
                matmul(&mut got, av, bv, true, false);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - 2.0 * w).abs() < 2e-4, "{m}x{k}x{n} accumulated");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn matmul_refuses_a_view_past_its_data() {
        let a = vec![1.0; 5];
        let mut d = vec![0.0; 4];
        matmul(&mut d, Mat::new(&a, 2, 3), Mat::new(&a, 3, 2), false, false);
    }
}
