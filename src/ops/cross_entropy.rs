//! Mean cross-entropy of (N, C) logits against (N,) class labels as one op.
//!
//! candle_nn's version is a log-softmax built from seven tensor ops plus a
//! gather, each a graph node; here the forward is one pass per row
//! (max, log-sum-exp, pick the label) and the backward writes
//! `(softmax − one_hot) · g / N` directly.

use super::registry::Kernel;
use super::{f32s, with_f32};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

struct CrossEntropy;

/// Labels as indices, checked against the class count.
fn labels(s: &CpuStorage, l: &Layout, classes: usize) -> Result<Vec<usize>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("cross-entropy: labels must be contiguous")
    };
    let v: Vec<usize> = match s {
        CpuStorage::U32(v) => v[a..b].iter().map(|&x| x as usize).collect(),
        CpuStorage::U8(v) => v[a..b].iter().map(|&x| x as usize).collect(),
        CpuStorage::I64(v) => v[a..b]
            .iter()
            .map(|&x| usize::try_from(x).unwrap_or(usize::MAX))
            .collect(),
        other => candle_core::bail!(
            "cross-entropy: labels must be u8, u32 or i64, got {:?}",
            other.dtype()
        ),
    };
    if let Some(bad) = v.iter().find(|&&y| y >= classes) {
        candle_core::bail!("cross-entropy: label {bad} is outside 0..{classes}")
    }
    Ok(v)
}

/// `(max, ln Σ exp(x − max))` of one row.
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    (max, sum.ln())
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c) = l1.shape().dims2()?;
        let x = f32s(s1, l1, self.name())?;
        let y = labels(s2, l2, c)?;
        if y.len() != n {
            candle_core::bail!("cross-entropy: {n} rows of logits but {} labels", y.len())
        }
        // Sum in f64: N rows of f32 losses lose digits otherwise.
        let total: f64 = x
            .chunks_exact(c)
            .zip(&y)
            .map(|(row, &label)| {
                let (max, lse) = log_sum_exp(row);
                (max + lse - row[label]) as f64
            })
            .sum();
        let mean = if n == 0 { 0.0 } else { total / n as f64 };
        let mut out = vec![mean as f32];
        super::registry::corrupt(Kernel::CrossEntropy, &mut out);
        Ok((CpuStorage::F32(out), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, c) = logits.dims2()?;
        let scale = grad.to_dtype(DType::F32)?.to_scalar::<f32>()? / n.max(1) as f32;
        let y = {
            let (s, l) = labels_t.storage_and_layout();
            match &*s {
                candle_core::Storage::Cpu(cs) => labels(cs, l, c)?,
                _ => candle_core::bail!("cross-entropy: labels must be on the CPU"),
            }
        };
        let mut d = vec![0f32; n * c];
        with_f32(logits, self.name(), |x| {
            for ((row, out), &label) in x.chunks_exact(c).zip(d.chunks_exact_mut(c)).zip(&y) {
                let (max, lse) = log_sum_exp(row);
                for (o, v) in out.iter_mut().zip(row) {
                    *o = (v - max - lse).exp() * scale;
                }
                out[label] -= scale;
            }
            Ok(())
        })?;
        Ok((Some(Tensor::from_vec(d, (n, c), logits.device())?), None))
    }
}

/// Mean cross-entropy of `logits` (N, C) against `labels` (N): one fused op
/// for f32 CPU logits, the fused CUDA kernels (`ops::cuda`, an f32 loss) for
/// f32 or bf16 logits on CUDA, candle_nn's `cross_entropy` otherwise.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if super::cuda::usable(Kernel::CudaCrossEntropy, &[logits])
        && labels.device().same_device(logits.device())
        && logits.rank() == 2
        && matches!(labels.dtype(), DType::U32 | DType::I64)
    {
        return super::cuda::cross_entropy(logits, labels);
    }
    let fast = super::fast(Kernel::CrossEntropy, &[logits])
        && labels.device().is_cpu()
        && logits.rank() == 2
        && matches!(labels.dtype(), DType::U32 | DType::U8 | DType::I64);
    if fast {
        logits
            .contiguous()?
            .apply_op2(&labels.contiguous()?, CrossEntropy)
    } else {
        candle_nn::loss::cross_entropy(logits, labels)
    }
}
