//! Post-training quantization of linear layers for inference: candle's
//! GGML types (q8_0, q4_0, q4k) through `QMatMul`, or int8 with per-row
//! scales through `ops::int8`.
//!
//! GGML types quantize rows in blocks (32 values for q8_0/q4_0, 256 for
//! q4k); a layer whose input width is not a multiple of the block is padded
//! with zero columns (and its input with zeros), which is exact and costs a
//! few bytes — the reported sizes include that padding.

use crate::config::QuantType;
use crate::ops::Activation;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;
use serde::{Deserialize, Serialize};

/// candle's block format of a quantization type (None for int8).
pub fn ggml(q: QuantType) -> Option<GgmlDType> {
    match q {
        QuantType::Q8_0 => Some(GgmlDType::Q8_0),
        QuantType::Q4_0 => Some(GgmlDType::Q4_0),
        QuantType::Q4k => Some(GgmlDType::Q4K),
        QuantType::Int8 => None,
    }
}

/// A linear layer quantized for inference.
#[derive(Debug, Clone)]
pub struct QLinear {
    w: QMatMul,
    bias: Option<Tensor>,
    in_features: usize,
    padded: usize,
}

/// A linear layer in full precision, quantized, or stored sparse (the
/// last two for inference only; see `model::sparse`).
#[derive(Debug, Clone)]
pub enum Dense {
    F32(Linear),
    Quant(QLinear),
    Sparse(std::sync::Arc<crate::ops::sparse::SparseMatrix>),
    Int8(std::sync::Arc<crate::ops::int8::Int8Matrix>),
}

impl Dense {
    /// `act(layer(x))`, fused into one op for a full-precision layer.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match self {
            Dense::F32(l) => crate::ops::linear::forward(l, x, act),
            _ => act.tensor(Module::forward(self, x)?),
        }
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Dense::F32(l) => crate::ops::linear::forward(l, x, Activation::Identity),
            Dense::Quant(q) => {
                let x = if q.padded > q.in_features {
                    let mut pad_shape = x.dims().to_vec();
                    let last = pad_shape.len() - 1;
                    pad_shape[last] = q.padded - q.in_features;
                    let zeros = Tensor::zeros(pad_shape, x.dtype(), x.device())?;
                    Tensor::cat(&[x, &zeros], last)?
                } else {
                    x.clone()
                };
                let y = q.w.forward(&x)?;
                match &q.bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            Dense::Sparse(m) => crate::ops::sparse::tensor_forward(m, x),
            Dense::Int8(m) => {
                crate::ops::sparse::host_forward(x, m.cols, m.rows, |h, n| m.forward(h, n))
            }
        }
    }
}

/// Bytes of weights before and after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bytes {
    pub f32: u64,
    pub quantized: u64,
}

impl Dense {
    /// The quantized copy of this layer and its weight bytes (f32, quantized).
    pub fn quantize(&self, q: QuantType) -> Result<(Dense, Bytes)> {
        let Dense::F32(l) = self else {
            candle_core::bail!("layer is already quantized")
        };
        let w = l.weight().to_dtype(candle_core::DType::F32)?;
        let (out, inp) = w.dims2()?;
        let Some(dtype) = ggml(q) else {
            let bias = match l.bias() {
                Some(b) => Some(b.to_dtype(candle_core::DType::F32)?.to_vec1()?),
                None => None,
            };
            let m = crate::ops::int8::Int8Matrix::from_f32(
                &w.flatten_all()?.to_vec1()?,
                out,
                inp,
                bias,
            );
            let bytes = Bytes {
                f32: (out * inp * 4) as u64,
                quantized: m.bytes(),
            };
            return Ok((Dense::Int8(std::sync::Arc::new(m)), bytes));
        };
        let block = dtype.block_size();
        let padded = inp.div_ceil(block) * block;
        let wp = if padded > inp {
            let z = Tensor::zeros((out, padded - inp), w.dtype(), w.device())?;
            Tensor::cat(&[&w, &z], 1)?
        } else {
            w
        };
        let qt = QTensor::quantize(&wp, dtype)?;
        let bytes = Bytes {
            f32: (out * inp * 4) as u64,
            quantized: qt.storage_size_in_bytes() as u64,
        };
        Ok((
            Dense::Quant(QLinear {
                w: QMatMul::from_qtensor(qt)?,
                bias: l.bias().cloned(),
                in_features: inp,
                padded,
            }),
            bytes,
        ))
    }
}

/// Quantizes a list of layers, summing their bytes.
pub fn quantize_all(layers: &[Dense], dtype: QuantType) -> Result<(Vec<Dense>, Bytes)> {
    let mut total = Bytes::default();
    let mut out = Vec::new();
    for l in layers {
        let (q, b) = l.quantize(dtype)?;
        total.f32 += b.f32;
        total.quantized += b.quantized;
        out.push(q);
    }
    Ok((out, total))
}
