//! Sparse inference copies of models: their (pruned) linear layers stored
//! as CSR or BSR and run by `ops::sparse`'s kernels. Exact against the
//! dense masked layer up to float summation order.

use super::quantize::Dense;
use crate::ops::sparse::{SparseFormat, SparseMatrix, SparseStats};
use candle_core::{DType, Device, Result, Tensor};
use std::sync::Arc;

/// A sparse inference copy of a model.
pub struct Sparse {
    pub model: Box<dyn super::Model>,
    pub stats: SparseStats,
    /// Layers stored sparse, of all the model's weight layers.
    pub layers: usize,
    pub dense_layers: usize,
}

impl Dense {
    /// This layer stored sparse (weights as they are: pruned zeros are
    /// skipped) and what that keeps.
    pub fn sparsify(&self, format: SparseFormat, block: usize) -> Result<(Dense, SparseStats)> {
        let Dense::F32(l) = self else {
            candle_core::bail!("only full-precision layers can be stored sparse")
        };
        let w = l.weight().to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let (rows, cols) = w.dims2()?;
        let bias = match l.bias() {
            Some(b) => Some(b.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1()?),
            None => None,
        };
        let m = SparseMatrix::from_dense(
            &w.flatten_all()?.to_vec1()?,
            rows,
            cols,
            bias,
            format,
            block,
        );
        let stats = m.stats();
        Ok((Dense::Sparse(Arc::new(m)), stats))
    }
}

/// Stores every layer sparse, summing the stats.
pub fn sparsify_all(
    layers: &[&Dense],
    format: SparseFormat,
    block: usize,
) -> Result<(Vec<Dense>, SparseStats)> {
    let mut total = SparseStats::default();
    let mut out = Vec::with_capacity(layers.len());
    for l in layers {
        let (d, s) = l.sparsify(format, block)?;
        total.add(&s);
        out.push(d);
    }
    Ok((out, total))
}

/// A convolution whose kernel is stored sparse: im2col, then the sparse
/// product over each image's columns (the convolution's gemm).
#[derive(Debug, Clone)]
pub struct SparseConv {
    m: Arc<SparseMatrix>,
    c_in: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

impl SparseConv {
    /// From a trained (ungrouped, undilated) candle convolution.
    pub fn from_conv(
        conv: &candle_nn::Conv2d,
        format: SparseFormat,
        block: usize,
    ) -> Result<(SparseConv, SparseStats)> {
        let cfg = conv.config();
        if cfg.groups != 1 || cfg.dilation != 1 {
            candle_core::bail!("sparse convolution takes ungrouped, undilated kernels")
        }
        let w = conv
            .weight()
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?;
        let (o, c, k, _) = w.dims4()?;
        let bias = match conv.bias() {
            Some(b) => Some(b.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1()?),
            None => None,
        };
        let m = SparseMatrix::from_dense(
            &w.flatten_all()?.to_vec1()?,
            o,
            c * k * k,
            bias,
            format,
            block,
        );
        let stats = m.stats();
        Ok((
            SparseConv {
                m: Arc::new(m),
                c_in: c,
                k,
                stride: cfg.stride,
                pad: cfg.padding,
            },
            stats,
        ))
    }

    /// (B, C, H, W) -> (B, O, Ho, Wo), then the activation.
    pub fn forward(&self, x: &Tensor, act: crate::ops::Activation) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.c_in {
            candle_core::bail!("sparse convolution takes {} channels, got {c}", self.c_in)
        }
        let host = x
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let (cols, ho, wo) =
            crate::ops::conv::im2col(&host, (c, h, w), self.k, self.stride, self.pad)?;
        let l = ho * wo;
        let per_image = self.m.cols * l;
        let mut y = Vec::with_capacity(b * self.m.rows * l);
        for img in cols.chunks_exact(per_image) {
            y.extend(self.m.forward_columns(img, l));
        }
        let y = Tensor::from_vec(y, (b, self.m.rows, ho, wo), x.device())?.to_dtype(x.dtype())?;
        act.tensor(y)
    }
}
