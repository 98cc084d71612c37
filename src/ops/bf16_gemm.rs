//! The matrix products of the fused ops' bf16 layers on the CPU: bf16
//! inputs, f32 accumulation.
//!
//! A bf16 layer's fused op widens its bf16 tensors exactly to f32 inside the
//! op (`ops::bf16_cpu`), so every operand of its products holds bf16 values:
//! inputs, weights, column matrices and gradients. Three engines multiply
//! them ([`engine`] picks; `path()` names it for records):
//! - the converting path (the default): the f32 kernels, whose products of
//!   bf16 values are exact, so results differ from the others only in
//!   summation order;
//! - AVX512-BF16 (`JOULEBENCH_CPU_BF16=avx512`): `vdpbf16ps`, 32 bf16
//!   multiply-adds into 16 f32 sums per instruction, both operands packed
//!   to bf16 pairs along k, a 6 × 32 register block;
//! - AMX (`JOULEBENCH_CPU_BF16=amx`): `tdpbf16ps` tiles on the same packing
//!   (`ops::amx`).
//!
//! Each engine in use is self-checked at run start (`ops::selfcheck`).

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

/// Which kernel multiplies bf16 layers' operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Engine {
    /// AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX512-BF16 vectors (`vdpbf16ps`).
    Avx512,
}

/// The engine this process uses: `JOULEBENCH_CPU_BF16` = `amx` or
/// `avx512` where the CPU has it, and only while the kernel has passed its
/// self-check; none (the converting path: the f32 kernels on the widened
/// values) by default. On the one machine with both measured so far (a
/// 2-core Xeon VM with AMX) the converting path was the fastest: CNN bf16
/// step 75–81 ms, AMX 80–85 ms, AVX512-BF16 95–106 ms, in alternating runs
/// of `examples/step_profile cnn bf16` (README, "Performance"): packing the
/// operands to bf16 pairs costs more than the faster product saves.
pub(super) fn engine() -> Option<Engine> {
    static CHOSEN: std::sync::OnceLock<Option<Engine>> = std::sync::OnceLock::new();
    let e = *CHOSEN.get_or_init(|| match std::env::var("JOULEBENCH_CPU_BF16").as_deref() {
        Ok("amx") => super::amx::available().then_some(Engine::Amx),
        Ok("avx512") => cpu_has_avx512_bf16().then_some(Engine::Avx512),
        _ => None,
    });
    e.filter(|_| super::registry::enabled(super::registry::Kernel::Bf16Gemm))
}

/// The self-check: the kernel against the f32 product on bf16 values.
pub(super) fn self_check() -> candle_core::Result<f64> {
    let mut rng = crate::util::rng::Rng::new(11);
    let (m, k, n) = (13, 70, 45);
    let mut draw = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| f32::from_bits(bf16_bits(rng.normal() as f32) << 16))
            .collect()
    };
    let (a, b) = (draw(m * k), draw(k * n));
    let (av, bv) = (Mat::new(&a, m, k), Mat::new(&b, k, n));
    let mut want = vec![0f32; m * n];
    matmul(&mut want, av, bv, false, false);
    let mut got = vec![0f32; m * n];
    matmul_bf16_on(&mut got, av, bv, false, false, engine());
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    Ok(super::max_rel_diff(&wide(&got), &wide(&want)))
}

/// How bf16 layers compute on this CPU (for records).
pub fn path() -> &'static str {
    match engine() {
        Some(Engine::Amx) => {
            "amx-bf16: bf16 inputs and weights multiplied on AMX tiles (tdpbf16ps) with f32 accumulation in the fused kernels, outputs rounded to bf16"
        }
        Some(Engine::Avx512) => {
            "avx512-bf16: bf16 inputs and weights multiplied on vdpbf16ps with f32 accumulation in the fused kernels, outputs rounded to bf16"
        }
        None => {
            "converting: bf16 inputs and weights widened to f32, f32 accumulation in the fused kernels, outputs rounded to bf16"
        }
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
/// operands holding bf16 values: on the bf16 [`engine`] where there is one,
/// on the f32 kernels otherwise. `parallel` as for [`matmul`].
pub(super) fn matmul_bf16(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, parallel: bool) {
    matmul_bf16_on(dst, a, b, accumulate, parallel, engine())
}

/// [`matmul_bf16`] on the engine chosen by the caller.
fn matmul_bf16_on(
    dst: &mut [f32],
    a: Mat,
    b: Mat,
    accumulate: bool,
    parallel: bool,
    engine: Option<Engine>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let engine = engine.filter(|e| match e {
        Engine::Amx => super::amx::available(),
        Engine::Avx512 => cpu_has_avx512_bf16(),
    });
    // Tiny products gain nothing from packing.
    let Some(engine) = engine.filter(|_| m >= 2 && n >= LANES && k >= 8) else {
        return matmul(dst, a, b, accumulate, parallel);
    };
    assert_eq!(k, b.rows, "matmul_bf16: inner dimensions differ");
    assert!(dst.len() >= m * n, "matmul_bf16: destination too small");
    #[cfg(target_arch = "x86_64")]
    {
        let par = parallel && m * n * k >= super::PARALLEL_MACS;
        let out = SendPtr(dst.as_mut_ptr());
        match engine {
            Engine::Avx512 => {
                let kp = k.div_ceil(2);
                let pa = pack_a(&a, k, m.div_ceil(MR) * MR, kp);
                let pb = pack_b(&b, k, n, n.div_ceil(LANES), kp);
                let run = |s: usize| {
                    let out = &out;
                    for i0 in (0..m).step_by(MR) {
                        // SAFETY: the CPU has AVX-512 F and BF16 (filtered
                        // above); the packed operands hold whole row blocks
                        // and every panel with kp pairs; the block writes rows
                        // i0..min(i0+6, m) and columns of strip s below n
                        // only, and strips write disjoint columns.
                        unsafe { block(&pa, &pb, kp, i0, m, s, n, out.0, accumulate) };
                    }
                };
                let strips = n.div_ceil(NR);
                if par {
                    (0..strips).into_par_iter().for_each(run);
                } else {
                    (0..strips).for_each(run);
                }
            }
            Engine::Amx => amx_product(&a, &b, (m, k, n), out, accumulate, par),
        }
        super::registry::corrupt(super::registry::Kernel::Bf16Gemm, dst);
    }
}

/// The product on AMX tiles: operands padded to 32 rows, 16 pairs and an
/// even number of panels; strips of 32 columns in parallel, each running all
/// row blocks with the tiles configured once.
#[cfg(target_arch = "x86_64")]
fn amx_product(
    a: &Mat,
    b: &Mat,
    (m, k, n): (usize, usize, usize),
    out: SendPtr,
    accumulate: bool,
    parallel: bool,
) {
    use super::amx::{BLOCK, K_PAIRS};
    let kp = k.div_ceil(2).div_ceil(K_PAIRS) * K_PAIRS;
    let pa = pack_a(a, k, m.div_ceil(BLOCK) * BLOCK, kp);
    let strips = n.div_ceil(BLOCK);
    let pb = pack_b(b, k, n, 2 * strips, kp);
    let run = |range: std::ops::Range<usize>| {
        let out = &out;
        let mut tile = [0f32; BLOCK * BLOCK];
        // SAFETY: AMX is available (the caller filtered on it).
        unsafe {
            super::amx::with_tiles(|| {
                for s in range {
                    for i0 in (0..m).step_by(BLOCK) {
                        // SAFETY: pa holds whole 32-row blocks of kp pairs,
                        // pb 2·strips panels of kp pairs, kp a multiple of 16.
                        super::amx::block(&pa, &pb, kp, i0, s, &mut tile);
                        let (rows, j0) = (BLOCK.min(m - i0), s * BLOCK);
                        let cols = BLOCK.min(n - j0);
                        for (r, src) in tile.chunks_exact(BLOCK).take(rows).enumerate() {
                            // SAFETY: row i0 + r < m, columns j0..j0 + cols
                            // <= n of the (m × n) destination; strips write
                            // disjoint columns.
                            let d =
                                std::slice::from_raw_parts_mut(out.0.add((i0 + r) * n + j0), cols);
                            if accumulate {
                                d.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                            } else {
                                d.copy_from_slice(&src[..cols]);
                            }
                        }
                    }
                }
            })
        }
    };
    let threads = if parallel {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let per = strips.div_ceil(threads).max(1);
    (0..strips.div_ceil(per))
        .into_par_iter()
        .for_each(|c| run(c * per..((c + 1) * per).min(strips)));
}

/// A (m × k) as `rows` rows (zero past m) of `kp` pairs along k (zero past k).
#[cfg(target_arch = "x86_64")]
fn pack_a(a: &Mat, k: usize, rows: usize, kp: usize) -> Vec<u32> {
    let at = |r: usize, c: usize| {
        if c < k {
            a.data[r * a.rs + c * a.cs]
        } else {
            0.0
        }
    };
    let mut pa = vec![0u32; rows * kp];
    pa.par_chunks_mut(kp)
        .take(a.rows)
        .enumerate()
        .for_each(|(i, row)| {
            for (p, v) in row.iter_mut().enumerate().take(k.div_ceil(2)) {
                *v = pair(at(i, 2 * p), at(i, 2 * p + 1));
            }
        });
    pa
}

/// B (k × n) as `panels` panels of 16 columns, each `kp` × 16 pairs along k
/// (zero past k and n). Row-major B is read row pair by row pair,
/// streaming, each 16-column run written as one 64-byte line of its panel;
/// a transposed B (columns contiguous) is read panel by panel, column by
/// column.
#[cfg(target_arch = "x86_64")]
fn pack_b(b: &Mat, k: usize, n: usize, panels: usize, kp: usize) -> Vec<u32> {
    let mut pb = vec![0u32; panels * kp * LANES];
    let pairs = k.div_ceil(2);
    if b.cs == 1 {
        // Pair rows in parallel: each writes line p of every panel.
        let pb_ptr = SendPtr(pb.as_mut_ptr().cast());
        (0..pairs).into_par_iter().for_each(|p| {
            let ptr = &pb_ptr;
            let r0 = &b.data[2 * p * b.rs..][..n];
            let r1 = (2 * p + 1 < k).then(|| &b.data[(2 * p + 1) * b.rs..][..n]);
            for pi in 0..n.div_ceil(LANES) {
                let j0 = pi * LANES;
                let mut line = [0u32; LANES];
                for (j, v) in line.iter_mut().enumerate().take(n - j0) {
                    *v = pair(r0[j0 + j], r1.map_or(0.0, |r| r[j0 + j]));
                }
                // SAFETY: line p of panel pi lies inside `pb` (panels × kp ×
                // 16 entries, p < kp), and only the task for pair p writes it.
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
        let at = |r: usize, c: usize| {
            if r < k {
                b.data[r * b.rs + c * b.cs]
            } else {
                0.0
            }
        };
        pb.par_chunks_mut(kp * LANES)
            .enumerate()
            .take(n.div_ceil(LANES))
            .for_each(|(pi, panel)| {
                let j0 = pi * LANES;
                for j in 0..LANES.min(n - j0) {
                    for p in 0..pairs {
                        panel[p * LANES + j] = pair(at(2 * p, j0 + j), at(2 * p + 1, j0 + j));
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
        let shapes = [
            (7, 9, 17),
            (64, 288, 196),
            (13, 31, 70),
            (2, 8, 16),
            (33, 100, 1),
            (40, 70, 33),
        ];
        for (m, k, n) in shapes {
            let a: Vec<f32> = (0..m * k).map(|i| bf((i as f32 * 0.37).sin())).collect();
            let b: Vec<f32> = (0..k * n).map(|i| bf((i as f32 * 0.11).cos())).collect();
            for (av, bv) in [
                (Mat::new(&a, m, k), Mat::new(&b, k, n)),
                (Mat::new(&a, k, m).t(), Mat::new(&b, n, k).t()),
            ] {
                let mut want = vec![0.0; m * n];
                matmul(&mut want, av, bv, false, false);
                // Every engine this CPU has (the others fall back to f32).
                for engine in [Some(Engine::Amx), Some(Engine::Avx512), None] {
                    let tol = 1e-4 * k as f32;
                    let mut got = vec![1.0; m * n];
                    matmul_bf16_on(&mut got, av, bv, false, true, engine);
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() < tol, "{engine:?} {m}x{k}x{n}: {g} vs {w}");
                    }
                    matmul_bf16_on(&mut got, av, bv, true, false, engine);
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - 2.0 * w).abs() < 2.0 * tol, "{engine:?} accumulated");
                    }
                }
            }
        }
        let want = match engine() {
            Some(Engine::Amx) => "amx-bf16",
            Some(Engine::Avx512) => "avx512-bf16",
            None => "converting",
        };
        assert!(path().starts_with(want), "{}", path());
    }
}
