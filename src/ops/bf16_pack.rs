//! Operands of the bf16 products packed to bf16 pairs along k, rounded to
//! nearest even on the way (`ops::bf16_gemm`):
//! - A (m × k) as `rows` rows of `kp` pairs (AMX's A tile layout, and the
//!   broadcast operand of the AVX512-BF16 block);
//! - B (k × n) as panels of 16 columns, each `kp` lines of 16 pairs (AMX's
//!   B tile layout, one 512-bit vector per line).
//!
//! Each layout has a streaming case (the pairs lie along contiguous memory,
//! or two contiguous rows interleave) and a transposing case, which packs
//! through a small block that stays in L1 so that every write is a whole
//! 64-byte line. Every loop over values is branch-free, so it vectorizes.

use super::Mat;
use rayon::prelude::*;

/// Columns of a packed B panel (one 512-bit vector of f32 sums).
pub(super) const LANES: usize = 16;

/// Pairs a transposing pack handles per block.
const BLOCK_PAIRS: usize = 256;

/// The bf16 bits of `x`, rounded to nearest even (exact for bf16 values);
/// NaN stays NaN.
#[inline(always)]
pub(super) fn bf16_bits(x: f32) -> u32 {
    let b = x.to_bits();
    let r = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16;
    if x.is_nan() { 0x7FC0 } else { r }
}

/// Two k-neighbours as one 32-bit pair: the lower k in the low half, as
/// `vdpbf16ps` and `tdpbf16ps` pair them.
#[inline(always)]
pub(super) fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) | (bf16_bits(hi) << 16)
}

/// `out[p] = pair(src[2p], src[2p + 1])`, zero past the end of `src`.
pub(super) fn pair_run(src: &[f32], out: &mut [u32]) {
    let whole = src.len() / 2;
    for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
        *o = pair(c[0], c[1]);
    }
    if let Some(o) = out.get_mut(whole) {
        *o = src.get(2 * whole).map_or(0, |&v| pair(v, 0.0));
    }
    if out.len() > whole + 1 {
        out[whole + 1..].fill(0);
    }
}

/// `out[j] = pair(r0[j], r1[j])` (r1 absent: zero).
pub(super) fn pair_rows(r0: &[f32], r1: Option<&[f32]>, out: &mut [u32]) {
    match r1 {
        Some(r1) => {
            for ((o, &a), &b) in out.iter_mut().zip(r0).zip(r1) {
                *o = pair(a, b);
            }
        }
        None => {
            for (o, &a) in out.iter_mut().zip(r0) {
                *o = pair(a, 0.0);
            }
        }
    }
}

/// Row `r` of a view whose rows are contiguous (`cs == 1`).
fn row<'a>(x: &Mat<'a>, r: usize) -> &'a [f32] {
    &x.data[r * x.rs..][..x.cols]
}

/// A (m × k) as `rows` rows (zero past m) of `kp` pairs along k (zero past k).
pub(super) fn pack_a(a: &Mat, rows: usize, kp: usize) -> Vec<u32> {
    let (m, k) = (a.rows, a.cols);
    if a.cs == 1 {
        // Every row is written whole (pair_run zeroes past k), the padding
        // rows here: nothing is zeroed first.
        let mut pa = Vec::with_capacity(rows * kp);
        pa.spare_capacity_mut()[..rows * kp]
            .par_chunks_mut(kp)
            .enumerate()
            .for_each(|(i, out)| {
                // SAFETY: u32 has no invalid bit patterns; every entry is
                // written below before the vector is read.
                let out = unsafe { &mut *(out as *mut [std::mem::MaybeUninit<u32>] as *mut [u32]) };
                if i < m {
                    pair_run(row(a, i), out);
                } else {
                    out.fill(0);
                }
            });
        // SAFETY: all rows · kp entries were written.
        unsafe { pa.set_len(rows * kp) };
        return pa;
    }
    let mut pa = vec![0u32; rows * kp];
    if a.rs == 1 {
        // Columns contiguous: column pairs (2p, 2p + 1) interleave into
        // pair p of every row, a block of pairs at a time.
        let cols = a.t();
        pa.par_chunks_mut(kp * LANES)
            .enumerate()
            .for_each(|(ib, rows_out)| {
                let i0 = ib * LANES;
                let ir = LANES.min(m.saturating_sub(i0));
                if ir == 0 {
                    return;
                }
                let mut block = [[0u32; LANES]; BLOCK_PAIRS];
                for p0 in (0..k.div_ceil(2)).step_by(BLOCK_PAIRS) {
                    let np = BLOCK_PAIRS.min(k.div_ceil(2) - p0);
                    for (p, line) in block.iter_mut().enumerate().take(np) {
                        let c = 2 * (p0 + p);
                        let r0 = &cols.data[c * cols.rs + i0..][..ir];
                        let r1 = (c + 1 < k).then(|| &cols.data[(c + 1) * cols.rs + i0..][..ir]);
                        pair_rows(r0, r1, &mut line[..ir]);
                    }
                    for (r, out) in rows_out.chunks_exact_mut(kp).take(ir).enumerate() {
                        for (o, line) in out[p0..p0 + np].iter_mut().zip(&block) {
                            *o = line[r];
                        }
                    }
                }
            });
        return pa;
    }
    let at = |r: usize, c: usize| {
        if c < k {
            a.data[r * a.rs + c * a.cs]
        } else {
            0.0
        }
    };
    pa.par_chunks_mut(kp)
        .take(m)
        .enumerate()
        .for_each(|(i, out)| {
            for (p, v) in out.iter_mut().enumerate().take(k.div_ceil(2)) {
                *v = pair(at(i, 2 * p), at(i, 2 * p + 1));
            }
        });
    pa
}

/// B (k × n) as `panels` panels of 16 columns, each `kp` × 16 pairs along k
/// (zero past k and n).
pub(super) fn pack_b(b: &Mat, panels: usize, kp: usize) -> Vec<u32> {
    let (k, n) = (b.rows, b.cols);
    let mut pb = vec![0u32; panels * kp * LANES];
    let pairs = k.div_ceil(2);
    if b.cs == 1 {
        // Row pairs interleave into line p of every panel; pairs in parallel.
        let ptr = SendU32(pb.as_mut_ptr());
        let width = n.div_ceil(LANES) * LANES;
        (0..pairs).into_par_iter().for_each_init(
            || vec![0u32; width],
            |line, p| {
                let ptr = &ptr;
                let r1 = (2 * p + 1 < k).then(|| row(b, 2 * p + 1));
                pair_rows(row(b, 2 * p), r1, &mut line[..n]);
                for (pi, run) in line.chunks_exact(LANES).enumerate() {
                    // SAFETY: line p of panel pi lies inside `pb` (panels × kp ×
                    // 16 entries, p < kp, pi < panels), and only the task for
                    // pair p writes it.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            run.as_ptr(),
                            ptr.0.add((pi * kp + p) * LANES),
                            LANES,
                        )
                    };
                }
            },
        );
    } else if b.rs == 1 {
        // Columns contiguous: each column's pairs are a run; 16 runs at a
        // time become the panel's lines through an L1 block.
        let cols = b.t();
        pb.par_chunks_mut(kp * LANES)
            .enumerate()
            .take(n.div_ceil(LANES))
            .for_each(|(pi, panel)| {
                let j0 = pi * LANES;
                let nj = LANES.min(n - j0);
                let mut block = [[0u32; BLOCK_PAIRS]; LANES];
                for p0 in (0..pairs).step_by(BLOCK_PAIRS) {
                    let np = BLOCK_PAIRS.min(pairs - p0);
                    for (j, run) in block.iter_mut().enumerate().take(nj) {
                        let col = &row(&cols, j0 + j)[2 * p0..(2 * (p0 + np)).min(k)];
                        pair_run(col, &mut run[..np]);
                    }
                    for (p, line) in panel[p0 * LANES..(p0 + np) * LANES]
                        .chunks_exact_mut(LANES)
                        .enumerate()
                    {
                        for (o, run) in line.iter_mut().zip(&block).take(nj) {
                            *o = run[p];
                        }
                    }
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

/// A packed buffer shared by parallel tasks that write disjoint entries.
pub(super) struct SendU32(pub(super) *mut u32);
// SAFETY: each task writes its own entries of the buffer only.
unsafe impl Sync for SendU32 {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout case against the plain definition.
    #[test]
    fn packs_match_the_definition() {
        for (k, n) in [
            (1usize, 1usize),
            (7, 5),
            (32, 16),
            (33, 17),
            (600, 40),
            (70, 530),
        ] {
            let data: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
            let kp = k.div_ceil(2).div_ceil(16) * 16;
            let panels = n.div_ceil(LANES) + 1;
            let rows = n.div_ceil(32) * 32;
            // As B (k × n): row-major, column-major, and a padded stride.
            let padded: Vec<f32> = (0..k * (n + 3))
                .map(|i| {
                    if i % (n + 3) < n {
                        data[i / (n + 3) * n + i % (n + 3)]
                    } else {
                        9.0
                    }
                })
                .collect();
            let t: Vec<f32> = (0..n * k).map(|i| data[(i % k) * n + i / k]).collect();
            let views = [
                Mat::new(&data, k, n),
                Mat::new(&t, n, k).t(),
                Mat {
                    rs: n + 3,
                    ..Mat::new(&padded, k, n)
                },
            ];
            let at = |r: usize, c: usize| if r < k && c < n { data[r * n + c] } else { 0.0 };
            for v in &views {
                let pb = pack_b(v, panels, kp);
                for pi in 0..panels {
                    for p in 0..kp {
                        for j in 0..LANES {
                            let c = pi * LANES + j;
                            let want = if c < n {
                                pair(at(2 * p, c), at(2 * p + 1, c))
                            } else {
                                0
                            };
                            assert_eq!(pb[(pi * kp + p) * LANES + j], want, "B {k}x{n} {p} {c}");
                        }
                    }
                }
                // The same view transposed, as A (n × k).
                let pa = pack_a(&v.t(), rows, kp);
                for i in 0..rows {
                    for p in 0..kp {
                        let want = if i < n {
                            pair(at(2 * p, i), at(2 * p + 1, i))
                        } else {
                            0
                        };
                        assert_eq!(pa[i * kp + p], want, "A {n}x{k} {i} {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        // 1 + 2^-8 and 1 + 3·2^-8: ties, to even (down, then up).
        let ties = [f32::from_bits(0x3F80_8000), f32::from_bits(0x3F81_8000)];
        let values = [
            1.0f32,
            1.005,
            -2.5e-3,
            3.0e38,
            f32::MAX,
            -0.0,
            1e-40,
            f32::INFINITY,
        ];
        for x in values.into_iter().chain(ties) {
            assert_eq!(
                bf16_bits(x) as u16,
                half::bf16::from_f32(x).to_bits(),
                "{x}"
            );
        }
        assert_eq!(bf16_bits(ties[0]), 0x3F80);
        assert_eq!(bf16_bits(ties[1]), 0x3F82);
        // A signalling NaN must not round into infinity.
        assert!(f32::from_bits(bf16_bits(f32::from_bits(0x7F80_0001)) << 16).is_nan());
        assert!(f32::from_bits(bf16_bits(f32::NAN) << 16).is_nan());
    }
}
