//! Causal self-attention in three costs, over per-head queries, keys and
//! values of shape (B, H, T, hd):
//!
//! - **full**: softmax over every earlier token; scores are (T, T) per head.
//! - **local** (sliding window w): token i attends to tokens i-w+1..=i. The
//!   sequence is cut into blocks of w queries; each block scores against its
//!   own and the previous block's keys (2w), so scores take (T, 2w), never
//!   (T, T). A window of T or more is full attention (and runs as such).
//! - **linear** (Katharopoulos et al. 2020, "Transformers are RNNs"):
//!   `y_i = phi(q_i)^T S_i / phi(q_i)^T z_i` with `phi(x) = elu(x) + 1`,
//!   `S_i = sum_{j<=i} phi(k_j) v_j^T`, `z_i = sum_{j<=i} phi(k_j)`. Computed
//!   in chunks of C tokens: inside a chunk as a masked (C, C) product, across
//!   chunks through the running state, so memory is O(T C + T/C hd^2).
//!
//! Every path is built from differentiable candle ops, so training
//! back-propagates through it; `tests/attention.rs` checks each against a
//! naive loop.
//!
//! Multiply-accumulates per token of one layer's attention core (scores and
//! weighted values; the projections are counted by the model), counting what
//! the kernels compute (masked entries included), with d = H hd:
//! full `2 T d`; local `4 w d` (2w keys per query, on T rounded up to whole
//! blocks); linear `2 C d + 2 d hd + d` (in-chunk products, the state update
//! and read-out, the normaliser) plus the chunk prefix sums.

use crate::config::Attention;
use candle_core::{D, DType, Device, Result, Tensor};

/// Chunk length of linear attention.
pub const LINEAR_CHUNK: usize = 64;

/// Attention output (B, H, T, hd) for q, k, v of that shape.
pub fn attend(attention: Attention, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let t = q.dim(2)?;
    match attention {
        Attention::Full => full(q, k, v),
        Attention::Local { window } if window >= t => full(q, k, v),
        Attention::Local { window } => local(q, k, v, window.max(1)),
        Attention::Linear => linear(q, k, v, LINEAR_CHUNK.min(t)),
    }
}

/// Softmax attention over every earlier token.
pub fn full(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (_, _, t, hd) = q.dims4()?;
    let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
    let att = att.broadcast_add(&causal_mask(t, q.dtype(), q.device())?)?;
    // Not `softmax_last_dim`: it has no backward pass.
    candle_nn::ops::softmax(&att, D::Minus1)?.matmul(v)
}

/// (t, t) additive causal mask: 0 on and below the diagonal, -inf above.
pub fn causal_mask(t: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, (t, t), dev)?.to_dtype(dtype)
}

// Blocked tensors are (B H, n, c, hd): candle's batched matmul takes at
// most two batch dimensions, so batch and heads are merged.

/// (B, H, T, hd) into (B H, n, c, hd) blocks of c tokens, zero-padded at the end.
fn blocks(x: &Tensor, c: usize, n: usize) -> Result<Tensor> {
    let (b, h, t, hd) = x.dims4()?;
    x.pad_with_zeros(2, 0, n * c - t)?
        .reshape((b * h, n, c, hd))
}

/// Back from blocks to (B, H, T, hd).
fn unblock(x: &Tensor, b: usize, t: usize) -> Result<Tensor> {
    let (bh, n, c, hd) = x.dims4()?;
    x.reshape((b, bh / b, n * c, hd))?.narrow(2, 0, t)
}

/// Each block's keys (or values) with the previous block's before them:
/// (B H, n, 2w, hd); block 0's "previous" is zeros (masked out).
fn with_previous(x: &Tensor, w: usize, n: usize) -> Result<Tensor> {
    let (b, h, t, hd) = x.dims4()?;
    let padded = x.pad_with_zeros(2, w, n * w - t)?;
    let prev = padded.narrow(2, 0, n * w)?.reshape((b * h, n, w, hd))?;
    let cur = padded.narrow(2, w, n * w)?.reshape((b * h, n, w, hd))?;
    Tensor::cat(&[&prev, &cur], 2)
}

/// (n, w, 2w) additive mask of the sliding window: query r of block c is
/// token c w + r; key s is token (c - 1) w + s; allowed when the key is at
/// most w - 1 tokens back and exists.
fn window_mask(w: usize, n: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(n * w * 2 * w);
    for c in 0..n {
        for r in 0..w {
            for s in 0..2 * w {
                let ok = s <= r + w && s > r && (c > 0 || s >= w);
                v.push(if ok { 0.0f32 } else { f32::NEG_INFINITY });
            }
        }
    }
    Tensor::from_vec(v, (n, w, 2 * w), dev)?.to_dtype(dtype)
}

/// Sliding-window attention, window `w` < T.
pub fn local(q: &Tensor, k: &Tensor, v: &Tensor, w: usize) -> Result<Tensor> {
    let (b, _, t, hd) = q.dims4()?;
    let n = t.div_ceil(w);
    let qb = blocks(q, w, n)?;
    let kb = with_previous(k, w, n)?;
    let vb = with_previous(v, w, n)?;
    let att = (qb.matmul(&kb.t()?)? * (1.0 / (hd as f64).sqrt()))?;
    let att = att.broadcast_add(&window_mask(w, n, q.dtype(), q.device())?)?;
    let y = candle_nn::ops::softmax(&att, D::Minus1)?.matmul(&vb)?;
    unblock(&y, b, t)
}

/// elu(x) + 1 from ops with backward passes: x + 1 above 0, e^x below.
fn feature_map(x: &Tensor) -> Result<Tensor> {
    x.relu()? + x.minimum(0f64)?.exp()?
}

/// 0/1 lower-triangular (c, c) matrix (diagonal included).
fn tril(c: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..c)
        .flat_map(|i| (0..c).map(move |j| if j <= i { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, (c, c), dev)?.to_dtype(dtype)
}

/// 0/1 (n, n) matrix with 1 where row < column: right-multiplying a
/// (.., n) tensor by it gives exclusive prefix sums over the n chunks.
fn exclusive_prefix(n: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if i < j { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, (n, n), dev)?.to_dtype(dtype)
}

/// Exclusive prefix sum over dim 1 (the chunks) of a (B H, n, ..) tensor.
fn prefix_over_chunks(x: &Tensor, p: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (g, n) = (dims[0], dims[1]);
    let rest: usize = dims[2..].iter().product();
    let flat = x.reshape((g, n, rest))?.transpose(1, 2)?.contiguous()?;
    flat.broadcast_matmul(p)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// Causal linear attention in chunks of `c` tokens.
pub fn linear(q: &Tensor, k: &Tensor, v: &Tensor, c: usize) -> Result<Tensor> {
    let (b, _, t, _) = q.dims4()?;
    let (dtype, dev) = (q.dtype(), q.device());
    let n = t.div_ceil(c);
    // Padding goes after the last real token: a later key is masked inside
    // its chunk and never reaches an earlier chunk's prefix. The feature map
    // comes after the padding, so padded queries have phi = 1 and a non-zero
    // normaliser (0/0 there would send NaN back through the gradients).
    let qf = feature_map(&blocks(q, c, n)?)?;
    let kf = feature_map(&blocks(k, c, n)?)?;
    let vb = blocks(v, c, n)?;
    // Inside each chunk: (C, C) scores, causally masked.
    let a = qf.matmul(&kf.t()?)?.broadcast_mul(&tril(c, dtype, dev)?)?;
    let num = a.matmul(&vb)?;
    let den = a.sum_keepdim(D::Minus1)?;
    // Across chunks: the state of every earlier chunk.
    let p = exclusive_prefix(n, dtype, dev)?;
    let s = prefix_over_chunks(&kf.t()?.matmul(&vb)?, &p)?; // (B H, n, hd, hd)
    let z = prefix_over_chunks(&kf.sum_keepdim(2)?, &p)?; // (B H, n, 1, hd)
    let num = (num + qf.matmul(&s)?)?;
    let den = (den + qf.broadcast_mul(&z)?.sum_keepdim(D::Minus1)?)?;
    unblock(&num.broadcast_div(&den)?, b, t)
}

/// Attention-core multiply-accumulates of one layer for one sequence of `t`
/// tokens, width `d` and head width `hd` (see the module docs).
pub fn macs_per_sequence(attention: Attention, t: u64, d: u64, hd: u64) -> u64 {
    match attention {
        Attention::Local { window } if (window as u64) < t => {
            let w = (window as u64).max(1);
            t.div_ceil(w) * w * 4 * w * d
        }
        Attention::Full | Attention::Local { .. } => 2 * t * t * d,
        Attention::Linear => {
            let c = (LINEAR_CHUNK as u64).min(t).max(1);
            let n = t.div_ceil(c);
            let tp = n * c;
            tp * (2 * c * d + 2 * d * hd + d) + n * n * d * (hd + 1)
        }
    }
}
