//! Multi-layer perceptron.

use super::Model;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

pub struct Mlp {
    layers: Vec<Linear>,
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
            .map(|(i, w)| linear(w[0], w[1], vb.pp(format!("fc{}", i + 1))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, dims })
    }
}

impl Model for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h)?;
            if i < last {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    fn macs_per_sample(&self) -> u64 {
        self.dims.windows(2).map(|w| (w[0] * w[1]) as u64).sum()
    }
}
