//! The matrix products of the fused ops' bf16 layers on the CPU: bf16
//! inputs, f32 accumulation.
//!
//! A bf16 layer (bf16 tensors, or f32 ones under autocast: `ops::numerics`)
//! hands its products operands that hold bf16 values: inputs, weights,
//! column matrices and gradients. Three engines multiply them ([`engine`]
//! picks; `path()` names it for records):
//! - AMX (the default where the CPU has it): `tdpbf16ps` tiles (`ops::amx`)
//!   on operands packed to bf16 pairs (`ops::bf16_pack`). Short or thin
//!   products, where packing costs more than the tiles save, take the f32
//!   kernels. The conv layers' column matrices never exist in f32: im2col
//!   writes them packed (`Geometry::im2col_packed`) and
//!   [`amx_packed_product`] multiplies them as they are.
//! - AVX512-BF16 (`JOULEBENCH_CPU_BF16=avx512`): `vdpbf16ps`, 32 bf16
//!   multiply-adds into 16 f32 sums per instruction, on the same packing, a
//!   6 × 32 register block.
//! - The converting path (`JOULEBENCH_CPU_BF16=converting`, and CPUs without
//!   either): the f32 kernels, whose products of bf16 values are exact, so
//!   results differ from the others only in summation order.
//!
//! Each engine in use is self-checked at run start (`ops::selfcheck`).

use super::bf16_pack::{LANES, bf16_bits, pack_a, pack_b};
use super::{Mat, matmul};
use rayon::prelude::*;

/// Rows and columns of the register block.
const MR: usize = 6;
const NR: usize = 32;
/// Products below this many multiply-adds take the f32 kernels.
const MIN_MACS: usize = 1 << 14;
/// AMX products sum over at least this many values (`matmul_bf16_ptr`).
pub(super) const AMX_MIN_K: usize = 128;

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

/// The engine this process uses, while its kernel passes its self-check:
/// AMX where the CPU has it (the default), AVX512-BF16 only when
/// `JOULEBENCH_CPU_BF16=avx512` asks for it, and none (the converting path:
/// the f32 kernels on bf16 values) with `JOULEBENCH_CPU_BF16=converting` or
/// where the CPU has neither. On the one machine with all three measured (a
/// 2-core Xeon VM with AMX, README "Performance"), the CNN's bf16 autocast
/// step took 28–29 ms on AMX, 35 ms converting and 55 ms on AVX512-BF16,
/// against 33–34 ms in f32, in alternating runs of `examples/step_profile`.
pub(super) fn engine() -> Option<Engine> {
    static CHOSEN: std::sync::OnceLock<Option<Engine>> = std::sync::OnceLock::new();
    let e = *CHOSEN.get_or_init(|| match std::env::var("JOULEBENCH_CPU_BF16").as_deref() {
        Ok("converting") => None,
        Ok("avx512") => cpu_has_avx512_bf16().then_some(Engine::Avx512),
        _ => super::amx::available().then_some(Engine::Amx),
    });
    e.filter(|_| super::registry::enabled(super::registry::Kernel::Bf16Gemm))
}

/// The self-check: the kernel against the f32 product on bf16 values.
///
/// Where AMX is in use, the conv layers' products over columns that im2col
/// packs itself (`Geometry::im2col_packed`) are checked too: the forward
/// product and the weight gradient's transpose, against the f32 products of
/// the f32 column matrix.
pub(super) fn self_check() -> candle_core::Result<f64> {
    let mut rng = crate::util::rng::Rng::new(11);
    // A shape every engine takes (AMX needs k >= 128 and a wide product).
    let (m, k, n) = (40, 200, 70);
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
    let mut err = super::max_rel_diff(&wide(&got), &wide(&want));
    if amx_in_use() {
        // 5 channels of 3×3 taps (45 rows, padded to 64), 7×7 positions
        // (odd: samples share panels), 3 samples; 20 output channels.
        let g = super::im2col::Geometry::new(5, 7, 7, 3, 1, 1)?;
        let (o, b) = (20, 3);
        let (x, w) = (draw(b * g.image()), draw(o * g.rows()));
        let (r, nn) = (g.rows(), b * g.l());
        let gz = draw(o * nn);
        let cols = g.im2col_batch(&x);
        let p = g.im2col_packed(&x, true);
        let product = |pa: &[u32], pb: &[u32], kp: usize, (m, n): (usize, usize)| {
            let mut out = vec![0f32; m * n];
            // SAFETY: `out` holds m·n entries; AMX is in use (checked above).
            unsafe { amx_packed_product(out.as_mut_ptr(), pa, pb, kp, (m, n)) };
            out
        };
        let (wm, cm) = (Mat::new(&w, o, r), Mat::new(&cols, r, nn));
        let mut z = vec![0f32; o * nn];
        matmul(&mut z, wm, cm, false, false);
        let got = product(&pack_a(&wm, 32, p.kp_fwd), &p.fwd, p.kp_fwd, (o, nn));
        err = err.max(super::max_rel_diff(&wide(&got), &wide(&z)));
        let gzt = Mat::new(&gz, o, nn).t();
        let mut dwt = vec![0f32; r * o];
        matmul(&mut dwt, cm, gzt, false, false);
        let got = product(&p.dw, &pack_b(&gzt, 2, p.kp_dw), p.kp_dw, (r, o));
        err = err.max(super::max_rel_diff(&wide(&got), &wide(&dwt)));
    }
    Ok(err)
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

/// `dst (m × n, row-major) = a·b`, or `+= a·b` with `accumulate`, for
/// operands holding bf16 values: on the bf16 [`engine`] where there is one,
/// on the f32 kernels otherwise. `parallel` as for [`matmul`].
pub(super) fn matmul_bf16(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, parallel: bool) {
    matmul_bf16_on(dst, a, b, accumulate, parallel, engine())
}

/// [`matmul_bf16`] into memory that may start uninitialised (without
/// `accumulate`, every engine writes each entry before any read of it).
///
/// # Safety
/// `dst` points at `a.rows · b.cols` writable f32s, initialised where the
/// product takes [`super::matmul_ptr`]'s plain loop (the caller zeroes those).
pub(super) unsafe fn matmul_bf16_uninit(dst: *mut f32, a: Mat, b: Mat, parallel: bool) {
    // SAFETY: passed on from the caller.
    unsafe { matmul_bf16_ptr(dst, a, b, false, parallel, engine()) }
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
    assert!(
        dst.len() >= a.rows * b.cols,
        "matmul_bf16: destination too small"
    );
    // SAFETY: dst is initialised and holds a.rows · b.cols entries.
    unsafe { matmul_bf16_ptr(dst.as_mut_ptr(), a, b, accumulate, parallel, engine) }
}

/// [`matmul_bf16_on`] through a pointer.
///
/// # Safety
/// As [`matmul_bf16_uninit`], and `dst` initialised with `accumulate`.
unsafe fn matmul_bf16_ptr(
    dst: *mut f32,
    a: Mat,
    b: Mat,
    accumulate: bool,
    parallel: bool,
    engine: Option<Engine>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // Tiny products gain nothing from packing; on AMX, neither do short
    // sums (k < 128: the tiles' start and store outweigh their products)
    // nor thin ones (fewer than 16 multiply-adds per packed value, mn/(m+n):
    // the packing costs more than the tiles save).
    let engine = engine.filter(|e| {
        m * n * k >= MIN_MACS
            && match e {
                Engine::Amx => k >= AMX_MIN_K && m * n >= 16 * (m + n) && super::amx::available(),
                Engine::Avx512 => k >= 8 && cpu_has_avx512_bf16(),
            }
    });
    let Some(engine) = engine else {
        // SAFETY: passed on from the caller.
        return unsafe { super::matmul_ptr(dst, a, b, accumulate, parallel) };
    };
    assert_eq!(k, b.rows, "matmul_bf16: inner dimensions differ");
    #[cfg(target_arch = "x86_64")]
    {
        let par = parallel && m * n * k >= super::PARALLEL_MACS;
        let out = SendPtr(dst);
        match engine {
            Engine::Avx512 => {
                let kp = k.div_ceil(2);
                let pa = pack_a(&a, m.div_ceil(MR) * MR, kp);
                let pb = pack_b(&b, n.div_ceil(LANES), kp);
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
        // SAFETY: the engine wrote all m · n entries.
        let written = unsafe { std::slice::from_raw_parts_mut(dst, m * n) };
        super::registry::corrupt(super::registry::Kernel::Bf16Gemm, written);
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
    let pa = pack_a(a, m.div_ceil(BLOCK) * BLOCK, kp);
    let pb = pack_b(b, 2 * n.div_ceil(BLOCK), kp);
    amx_packed(&pa, &pb, kp, (m, n), out, accumulate, parallel);
}

/// `dst (m × n) = A·B` on AMX tiles from operands packed already: `pa` as
/// [`pack_a`] lays out A (rows padded to 32, `kp` pairs a row), `pb` as
/// [`pack_b`] lays out B (2·⌈n/32⌉ panels of `kp` lines); `kp` a multiple
/// of 16. The fused conv's products, whose column operands im2col writes
/// packed (`Geometry::im2col_packed`), where [`amx_in_use`].
///
/// # Safety
/// `dst` points at m·n writable f32s (they may start uninitialised).
pub(super) unsafe fn amx_packed_product(
    dst: *mut f32,
    pa: &[u32],
    pb: &[u32],
    kp: usize,
    (m, n): (usize, usize),
) {
    use super::amx::{BLOCK, K_PAIRS};
    assert!(amx_in_use(), "amx_packed_product: AMX is not in use");
    assert!(kp.is_multiple_of(K_PAIRS), "amx_packed_product: {kp} pairs");
    assert!(
        pa.len() >= m.div_ceil(BLOCK) * BLOCK * kp,
        "amx_packed_product: A too short"
    );
    assert!(
        pb.len() >= n.div_ceil(BLOCK) * 2 * kp * LANES,
        "amx_packed_product: B too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        amx_packed(pa, pb, kp, (m, n), SendPtr(dst), false, true);
        // SAFETY: the product wrote all m · n entries.
        let written = unsafe { std::slice::from_raw_parts_mut(dst, m * n) };
        super::registry::corrupt(super::registry::Kernel::Bf16Gemm, written);
    }
}

/// Whether bf16 products run on AMX tiles in this process.
pub(super) fn amx_in_use() -> bool {
    engine() == Some(Engine::Amx)
}

/// The tile loop of [`amx_product`] over packed operands.
#[cfg(target_arch = "x86_64")]
fn amx_packed(
    pa: &[u32],
    pb: &[u32],
    kp: usize,
    (m, n): (usize, usize),
    out: SendPtr,
    accumulate: bool,
    parallel: bool,
) {
    use super::amx::BLOCK;
    let strips = n.div_ceil(BLOCK);
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
                        super::amx::block(pa, pb, kp, i0, s, &mut tile);
                        let (rows, j0) = (BLOCK.min(m - i0), s * BLOCK);
                        let cols = BLOCK.min(n - j0);
                        for (r, src) in tile.chunks_exact(BLOCK).take(rows).enumerate() {
                            // SAFETY: row i0 + r < m, columns j0..j0 + cols
                            // <= n of the (m × n) destination (initialised
                            // when accumulating); strips write disjoint columns.
                            let d = out.0.add((i0 + r) * n + j0);
                            if accumulate {
                                let d = std::slice::from_raw_parts_mut(d, cols);
                                d.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                            } else {
                                std::ptr::copy_nonoverlapping(src.as_ptr(), d, cols);
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
            (40, 129, 50),
            (96, 300, 130),
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
