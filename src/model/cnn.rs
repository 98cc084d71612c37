//! Small convolutional network for 28x28 grey images.

use super::Model;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, conv2d, linear};

pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    classes: usize,
}

const C1: usize = 32;
const C2: usize = 64;
const HIDDEN: usize = 128;

impl Cnn {
    pub fn new(vb: VarBuilder, classes: usize) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv1: conv2d(1, C1, 3, cfg, vb.pp("conv1"))?,
            conv2: conv2d(C1, C2, 3, cfg, vb.pp("conv2"))?,
            fc1: linear(C2 * 7 * 7, HIDDEN, vb.pp("fc1"))?,
            fc2: linear(HIDDEN, classes, vb.pp("fc2"))?,
            classes,
        })
    }
}

impl Model for Cnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let b = xs.dim(0)?;
        let h = xs.reshape((b, 1, 28, 28))?;
        let h = self.conv1.forward(&h)?.relu()?.max_pool2d(2)?;
        let h = self.conv2.forward(&h)?.relu()?.max_pool2d(2)?;
        let h = h.flatten_from(1)?;
        let h = self.fc1.forward(&h)?.relu()?;
        self.fc2.forward(&h)
    }

    fn macs_per_sample(&self) -> u64 {
        let conv1 = 28 * 28 * C1 * 9;
        let conv2 = 14 * 14 * C2 * C1 * 9;
        let fc = C2 * 49 * HIDDEN + HIDDEN * self.classes;
        (conv1 + conv2 + fc) as u64
    }
}
