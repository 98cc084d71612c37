//! Small convolutional network for 28x28 grey images.

use super::Model;
use crate::model::quantize::{Dense, quantize_all};
use crate::ops::{Activation, conv, pool::max_pool2};
use candle_core::quantized::GgmlDType;
use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder, conv2d, linear};

#[derive(Clone)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Dense,
    fc2: Dense,
    c1: usize,
    c2: usize,
    hidden: usize,
    classes: usize,
}

impl Cnn {
    /// `channels` = [c1, c2] of the two conv blocks; `hidden` = width of fc1.
    pub fn new(vb: VarBuilder, channels: &[usize], hidden: usize, classes: usize) -> Result<Self> {
        let (c1, c2) = match channels {
            [a, b] => (*a, *b),
            _ => candle_core::bail!("cnn needs exactly two channel widths, got {channels:?}"),
        };
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv1: conv2d(1, c1, 3, cfg, vb.pp("conv1"))?,
            conv2: conv2d(c1, c2, 3, cfg, vb.pp("conv2"))?,
            fc1: Dense::F32(linear(c2 * 7 * 7, hidden, vb.pp("fc1"))?),
            fc2: Dense::F32(linear(hidden, classes, vb.pp("fc2"))?),
            c1,
            c2,
            hidden,
            classes,
        })
    }
}

impl Model for Cnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let b = xs.dim(0)?;
        let h = xs.reshape((b, 1, 28, 28))?;
        let h = max_pool2(&conv::forward(&self.conv1, &h, Activation::Relu)?)?;
        let h = max_pool2(&conv::forward(&self.conv2, &h, Activation::Relu)?)?;
        let h = h.flatten_from(1)?;
        let h = self.fc1.forward_act(&h, Activation::Relu)?;
        self.fc2.forward_act(&h, Activation::Identity)
    }

    fn macs_per_sample(&self) -> u64 {
        let conv1 = 28 * 28 * self.c1 * 9;
        let conv2 = 14 * 14 * self.c2 * self.c1 * 9;
        let fc = self.c2 * 49 * self.hidden + self.hidden * self.classes;
        (conv1 + conv2 + fc) as u64
    }

    /// The linear layers are quantized; the convolutions stay f32.
    fn quantized(&self, dtype: GgmlDType) -> Result<Option<super::Quantized>> {
        let (fcs, bytes) = quantize_all(&[self.fc1.clone(), self.fc2.clone()], dtype)?;
        let mut q = self.clone();
        let mut it = fcs.into_iter();
        if let (Some(a), Some(b)) = (it.next(), it.next()) {
            q.fc1 = a;
            q.fc2 = b;
        }
        Ok(Some(super::Quantized {
            model: Box::new(q),
            bytes,
        }))
    }
}
