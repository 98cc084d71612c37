//! The matrix product of the fused ops' bf16 layers on the CPU: bf16 inputs,
//! f32 accumulation.
//!
//! A bf16 layer runs the fused f32 op on f32 copies of its bf16 tensors
//! (`ops::bf16_cpu`), so every operand of its products holds bf16 values
//! exactly: inputs, weights, column matrices and the gradients that arrive
//! through the casts. On a CPU with AVX512-BF16 those products run here on
//! `vdpbf16ps` (`_mm512_dpbf16_ps`: 32 bf16 multiply-adds into 16 f32 sums
//! per instruction, twice an f32 FMA's work): both operands are packed to
//! bf16 pairs along k, and a 6 × 32 register block accumulates in f32.
//! Elsewhere the same products run on the f32 kernels (the converting path).
//! The products of bf16 values are exact in f32, so the two paths differ
//! only in summation order. `path()` names the one this CPU takes.

use super::{Mat, matmul};
use rayon::prelude::*;

/// Rows and columns of the register block.
const MR: usize = 6;
const NR: usize = 32;
/// Columns of a packed panel (one 512-bit vector of f32 sums).
const LANES: usize = 16;

/// True where the CPU has AVX-512 F and BF16.
pub fn cpu_has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True where the bf16 layers' products run on the AVX512-BF16 kernel: the
/// CPU has it and `JOULEBENCH_CPU_BF16=avx512` asks for it. The default is
/// the converting path, because on the one AVX512-BF16 machine measured so
/// far (a 2-core Xeon VM) it was faster: CNN bf16 step 63-68 ms against
/// 83-89 ms with this kernel (README, "Performance").
pub fn avx512_bf16() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("JOULEBENCH_CPU_BF16").as_deref() == Ok("avx512") && cpu_has_avx512_bf16()
    })
}

/// How bf16 layers compute on this CPU (for records).
pub fn path() -> &'static str {
    if avx512_bf16() {
        "avx512-bf16: bf16 inputs and weights multiplied on vdpbf16ps with f32 accumulation in the fused kernels, outputs rounded to bf16"
    } else {
        "converting: bf16 inputs and weights widened to f32, f32 accumulation in the fused kernels, outputs rounded to bf16"
    }
}

/// The bf16 bits of `x`, rounded to nearest even (exact for bf16 values).
fn bf16_bits(x: f32) -> u32 {
    let b = x.to_bits();
    (b + 0x7FFF + ((b >> 16) & 1)) >> 16
}

/// Two k-neighbours as one 32-bit pair: the lower k in the low half, as
/// `vdpbf16ps` pairs them.
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) | (bf16_bits(hi) << 16)
}

/// `dst (m × n, row-major) = a·b`, or `+= a·b` with `accumulate`, for
/// operands holding bf16 values: on AVX512-BF16 where the CPU has it, on the
/// f32 kernels otherwise. `parallel` as for [`matmul`].
pub(super) fn matmul_bf16(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, parallel: bool) {
    matmul_bf16_on(dst, a, b, accumulate, parallel, avx512_bf16())
}

/// [`matmul_bf16`] with the kernel chosen by the caller (`kernel` only
/// where the CPU has AVX512-BF16).
fn matmul_bf16_on(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, parallel: bool, kernel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // Tiny products gain nothing from packing.
    if !(kernel && cpu_has_avx512_bf16()) || m < 2 || n < LANES || k < 8 {
        return matmul(dst, a, b, accumulate, parallel);
    }
    assert_eq!(k, b.rows, "matmul_bf16: inner dimensions differ");
    assert!(dst.len() >= m * n, "matmul_bf16: destination too small");
    #[cfg(target_arch = "x86_64")]
    {
        let kp = k.div_ceil(2);
        let at = |x: &Mat, r: usize, c: usize| x.data[r * x.rs + c * x.cs];
        // A: rows padded to a multiple of MR, row-major pairs.
        let rows = m.div_ceil(MR) * MR;
        let mut pa = vec![0u32; rows * kp];
        pa.par_chunks_mut(kp)
            .take(m)
            .enumerate()
            .for_each(|(i, row)| {
                for (p, v) in row.iter_mut().enumerate() {
                    let hi = if 2 * p + 1 < k {
                        at(&a, i, 2 * p + 1)
                    } else {
                        0.0
                    };
                    *v = pair(at(&a, i, 2 * p), hi);
                }
            });
        // B: panels of 16 columns, each (kp × 16) pairs.
        let panels = n.div_ceil(LANES);
        let pb = pack_b(&b, k, n, panels);
        let out = SendPtr(dst.as_mut_ptr());
        let strips = n.div_ceil(NR);
        let run = |s: usize| {
            let out = &out;
            for i0 in (0..m).step_by(MR) {
                // SAFETY: the CPU has AVX-512 F and BF16 (checked above); the
                // packed operands hold `rows` × kp and `panels` × kp × 16
                // pairs; the block writes rows i0..min(i0+6, m) and columns
                // of strip s below n only, and strips write disjoint columns.
                unsafe { block(&pa, &pb, kp, i0, m, s, n, out.0, accumulate) };
            }
        };
        if parallel && m * n * k >= super::PARALLEL_MACS {
            (0..strips).into_par_iter().for_each(run);
        } else {
            (0..strips).for_each(run);
        }
    }
}

/// B (k × n) as panels of 16 columns, each kp × 16 pairs along k (zero
/// past k and n). Row-major B is read row pair by row pair, streaming, each
/// 16-column run written as one 64-byte line of its panel; a transposed B
/// (columns contiguous) is read panel by panel, column by column.
#[cfg(target_arch = "x86_64")]
fn pack_b(b: &Mat, k: usize, n: usize, panels: usize) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let mut pb = vec![0u32; panels * kp * LANES];
    let at = |r: usize, c: usize| b.data[r * b.rs + c * b.cs];
    if b.cs == 1 {
        // Pair rows in parallel: each writes line p of every panel.
        let pb_ptr = SendPtr(pb.as_mut_ptr().cast());
        (0..kp).into_par_iter().for_each(|p| {
            let ptr = &pb_ptr;
            let r0 = &b.data[2 * p * b.rs..][..n];
            let r1 = (2 * p + 1 < k).then(|| &b.data[(2 * p + 1) * b.rs..][..n]);
            for pi in 0..panels {
                let j0 = pi * LANES;
                let mut line = [0u32; LANES];
                for (j, v) in line.iter_mut().enumerate().take(n - j0.min(n)) {
                    *v = pair(r0[j0 + j], r1.map_or(0.0, |r| r[j0 + j]));
                }
                // SAFETY: line p of panel pi lies inside `pb` (panels × kp ×
                // 16 entries), and only the task for pair p writes it.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        line.as_ptr(),
                        ptr.0.cast::<u32>().add((pi * kp + p) * LANES),
                        LANES,
                    )
                };
            }
        });
    } else {
        pb.par_chunks_mut(kp * LANES)
            .enumerate()
            .for_each(|(pi, panel)| {
                let j0 = pi * LANES;
                for j in 0..LANES.min(n - j0) {
                    for p in 0..kp {
                        let hi = if 2 * p + 1 < k {
                            at(2 * p + 1, j0 + j)
                        } else {
                            0.0
                        };
                        panel[p * LANES + j] = pair(at(2 * p, j0 + j), hi);
                    }
                }
            });
    }
    pb
}

/// The destination pointer, shared by strips that write disjoint columns.
struct SendPtr(*mut f32);
// SAFETY: each strip writes its own columns of the destination only.
unsafe impl Sync for SendPtr {}

/// One 6 × 32 block of the product: rows i0.., columns of strip s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    pa: &[u32],
    pb: &[u32],
    kp: usize,
    i0: usize,
    m: usize,
    s: usize,
    n: usize,
    dst: *mut f32,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let panel = |q: usize| {
        // Strips past the last panel read the last panel again (never stored).
        let pi = (2 * s + q).min(n.div_ceil(LANES) - 1);
        pb.as_ptr().wrapping_add(pi * kp * LANES)
    };
    let (b0, b1) = (panel(0), panel(1));
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // Rows i0..i0 + 6 of packed A (padded to whole blocks).
    let a0 = pa[i0 * kp..(i0 + MR) * kp].as_ptr();
    for p in 0..kp {
        // SAFETY: both panels hold kp × 16 pairs; A's block holds 6 × kp.
        let (v0, v1, av) = unsafe {
            let v0 = _mm512_loadu_si512(b0.add(p * LANES).cast());
            let v1 = _mm512_loadu_si512(b1.add(p * LANES).cast());
            let av: [__m512i; MR] =
                std::array::from_fn(|r| _mm512_set1_epi32(*a0.add(r * kp + p) as i32));
            // The transmutes: 512-bit vectors of one size; the pairs are bf16 bits.
            let cast = |v: __m512i| std::mem::transmute::<__m512i, __m512bh>(v);
            (cast(v0), cast(v1), av.map(cast))
        };
        for (row, a) in acc.iter_mut().zip(av) {
            row[0] = _mm512_dpbf16_ps(row[0], a, v0);
            row[1] = _mm512_dpbf16_ps(row[1], a, v1);
        }
    }
    for (r, row) in acc.iter().enumerate().take(m - i0) {
        for (q, v) in row.iter().enumerate() {
            let j0 = s * NR + q * LANES;
            if j0 >= n {
                continue;
            }
            let cols = LANES.min(n - j0);
            let mask: __mmask16 = if cols == LANES {
                !0
            } else {
                (1u16 << cols) - 1
            };
            // SAFETY: row i0 + r < m and columns j0..j0 + cols < n of the
            // row-major (m × n) destination.
            unsafe {
                let ptr = dst.add((i0 + r) * n + j0);
                let sum = if accumulate {
                    _mm512_add_ps(*v, _mm512_maskz_loadu_ps(mask, ptr))
                } else {
                    *v
                };
                _mm512_mask_storeu_ps(ptr, mask, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bf16-exact values.
    fn bf(v: f32) -> f32 {
        f32::from_bits(bf16_bits(v) << 16)
    }

    #[test]
    fn bf16_products_match_f32_on_bf16_values() {
        for (m, k, n) in [
            (7, 9, 17),
            (64, 288, 196),
            (13, 31, 70),
            (2, 8, 16),
            (33, 100, 1),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| bf((i as f32 * 0.37).sin())).collect();
            let b: Vec<f32> = (0..k * n).map(|i| bf((i as f32 * 0.11).cos())).collect();
            for (av, bv) in [
                (Mat::new(&a, m, k), Mat::new(&b, k, n)),
                (Mat::new(&a, k, m).t(), Mat::new(&b, n, k).t()),
            ] {
                let mut want = vec![0.0; m * n];
                matmul(&mut want, av, bv, false, false);
                let kernel = cpu_has_avx512_bf16();
                let mut got = vec![1.0; m * n];
                matmul_bf16_on(&mut got, av, bv, false, true, kernel);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4 * (k as f32), "{m}x{k}x{n}: {g} vs {w}");
                }
                matmul_bf16_on(&mut got, av, bv, true, false, kernel);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - 2.0 * w).abs() < 2e-4 * (k as f32),
                        "{m}x{k}x{n} accumulated"
                    );
                }
            }
        }
        assert!(path().starts_with(if avx512_bf16() {
            "avx512-bf16"
        } else {
            "converting"
        }));
    }
}
