//! Grouped convolutions with one input channel per group (depthwise layers:
//! groups = channels, MobileNet's 3×3 layers), computed directly from the
//! input without column matrices: im2col would copy every input value k·k
//! times for products whose inner dimension is only k·k. Each output plane sums k·k
//! shifted, scaled runs of its group's input plane (`Geometry::runs`); the
//! weight gradient is k·k dot products per output channel, summed over
//! samples in a fixed order; the input gradient scatters the same runs back.
//! Layouts are those of the conv op: z and gz are (O, B·Ho·Wo), x and dx
//! (B, C, H, W), w (O, k·k); output channel o reads input channel o / og
//! (og outputs per group).

use super::im2col::Geometry;
use rayon::prelude::*;

/// z (O, B·L) of `x` (B, C, H, W) with `w` (O, k·k), `og` outputs per group.
pub(super) fn forward(g: &Geometry, x: &[f32], w: &[f32], og: usize) -> Vec<f32> {
    let (b, l, kk, plane) = dims(g, x);
    let o = g.c * og;
    let mut z = vec![0f32; o * b * l];
    z.par_chunks_mut((b * l).max(1))
        .enumerate()
        .for_each(|(oc, row)| {
            let c = oc / og;
            for (bi, out) in row.chunks_exact_mut(l).enumerate() {
                let img = &x[(bi * g.c + c) * plane..][..plane];
                for r in 0..kk {
                    let wv = w[oc * kk + r];
                    g.runs(r, |o, i, len| {
                        let out = &mut out[o..o + len];
                        if g.stride == 1 {
                            for (d, v) in out.iter_mut().zip(&img[i..i + len]) {
                                *d += wv * v;
                            }
                        } else {
                            for (j, d) in out.iter_mut().enumerate() {
                                *d += wv * img[i + j * g.stride];
                            }
                        }
                    });
                }
            }
        });
    z
}

/// dW (O, k·k) from `x` and gz (O, B·L).
pub(super) fn weight_grad(g: &Geometry, x: &[f32], gz: &[f32], og: usize) -> Vec<f32> {
    let (b, l, kk, plane) = dims(g, x);
    let mut dw = vec![0f32; g.c * og * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(oc, dwc)| {
        let c = oc / og;
        for (r, d) in dwc.iter_mut().enumerate() {
            let mut acc = 0f32;
            for bi in 0..b {
                let img = &x[(bi * g.c + c) * plane..][..plane];
                let gp = &gz[oc * b * l + bi * l..][..l];
                g.runs(r, |o, i, len| {
                    acc += if g.stride == 1 {
                        super::dot(&gp[o..o + len], &img[i..i + len])
                    } else {
                        (0..len).map(|j| gp[o + j] * img[i + j * g.stride]).sum()
                    };
                });
            }
            *d = acc;
        }
    });
    dw
}

/// dx (B, C, H, W) from `w` (O, k·k) and gz (O, B·L).
pub(super) fn input_grad(g: &Geometry, w: &[f32], gz: &[f32], b: usize, og: usize) -> Vec<f32> {
    let (l, kk, plane) = (g.l(), g.k * g.k, g.h * g.w);
    let mut dx = vec![0f32; b * g.c * plane];
    dx.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(p, img)| {
            let (bi, c) = (p / g.c, p % g.c);
            for oc in c * og..(c + 1) * og {
                let gp = &gz[oc * b * l + bi * l..][..l];
                for r in 0..kk {
                    let wv = w[oc * kk + r];
                    g.runs(r, |o, i, len| {
                        for (j, v) in gp[o..o + len].iter().enumerate() {
                            img[i + j * g.stride] += wv * v;
                        }
                    });
                }
            }
        });
    dx
}

/// (batch, positions per plane, taps, input plane size).
fn dims(g: &Geometry, x: &[f32]) -> (usize, usize, usize, usize) {
    let plane = g.h * g.w;
    (x.len() / (g.c * plane).max(1), g.l(), g.k * g.k, plane)
}
