//! Multi-layer perceptron.

use super::Model;
use crate::config::QuantType;
use crate::model::quantize::{Dense, quantize_all};
use crate::ops::Activation;
use candle_core::{Result, Tensor};
use candle_nn::{VarBuilder, linear};

pub struct Mlp {
    layers: Vec<Dense>,
    dims: Vec<usize>,
}

impl Mlp {
    /// `widths` lists the input and hidden widths, e.g. [784, 512, 256].
    pub fn new(vb: VarBuilder, widths: &[usize], classes: usize) -> Result<Self> {
        let mut dims = widths.to_vec();
        dims.push(classes);
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Ok(Dense::F32(linear(
                    w[0],
                    w[1],
                    vb.pp(format!("fc{}", i + 1)),
                )?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, dims })
    }
}

impl Model for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let act = if i < last {
                Activation::Relu
            } else {
                Activation::Identity
            };
            h = l.forward_act(&h, act)?;
        }
        Ok(h)
    }

    fn macs_per_sample(&self) -> u64 {
        self.dims.windows(2).map(|w| (w[0] * w[1]) as u64).sum()
    }

    fn sparse(&self, cfg: crate::config::SparseConfig) -> Result<Option<super::sparse::Sparse>> {
        let all: Vec<&Dense> = self.layers.iter().collect();
        let (layers, stats) = super::sparse::sparsify_all(&all, cfg.format, cfg.block as usize)?;
        Ok(Some(super::sparse::Sparse {
            layers: layers.len(),
            dense_layers: 0,
            model: Box::new(Mlp {
                layers,
                dims: self.dims.clone(),
            }),
            stats,
        }))
    }

    fn quantized(&self, dtype: QuantType) -> Result<Option<super::Quantized>> {
        let (layers, bytes) = quantize_all(&self.layers, dtype)?;
        Ok(Some(super::Quantized {
            model: Box::new(Mlp {
                layers,
                dims: self.dims.clone(),
            }),
            bytes,
        }))
    }
}
