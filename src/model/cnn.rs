//! Small convolutional network for 28x28 grey images.

use super::Model;
use crate::config::QuantType;
use crate::model::quantize::{Dense, quantize_all};
use crate::ops::{Activation, conv, pool::max_pool2};
use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder, conv2d, linear};

/// A convolution, dense (trainable, the fused op) or stored sparse
/// (inference copies).
#[derive(Clone)]
enum ConvLayer {
    Dense(Conv2d),
    Sparse(super::sparse::SparseConv),
}

impl ConvLayer {
    /// `pool2(act(conv(x)))`: the dense layer pools inside its fused op.
    fn forward_pooled(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match self {
            ConvLayer::Dense(c) => conv::forward(c, x, act, true),
            ConvLayer::Sparse(c) => max_pool2(&c.forward(x, act)?),
        }
    }

    fn sparse(
        &self,
        cfg: crate::config::SparseConfig,
    ) -> Result<(ConvLayer, crate::ops::sparse::SparseStats)> {
        let ConvLayer::Dense(c) = self else {
            candle_core::bail!("layer is already sparse")
        };
        let (s, stats) = super::sparse::SparseConv::from_conv(c, cfg.format, cfg.block as usize)?;
        Ok((ConvLayer::Sparse(s), stats))
    }
}

#[derive(Clone)]
pub struct Cnn {
    conv1: ConvLayer,
    conv2: ConvLayer,
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
            conv1: ConvLayer::Dense(conv2d(1, c1, 3, cfg, vb.pp("conv1"))?),
            conv2: ConvLayer::Dense(conv2d(c1, c2, 3, cfg, vb.pp("conv2"))?),
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
        let h = self.conv1.forward_pooled(&h, Activation::Relu)?;
        let h = self.conv2.forward_pooled(&h, Activation::Relu)?;
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
    /// Every layer stored sparse: the convolutions through im2col.
    fn sparse(&self, cfg: crate::config::SparseConfig) -> Result<Option<super::sparse::Sparse>> {
        let (fcs, mut stats) =
            super::sparse::sparsify_all(&[&self.fc1, &self.fc2], cfg.format, cfg.block as usize)?;
        let mut q = self.clone();
        let mut it = fcs.into_iter();
        if let (Some(a), Some(b)) = (it.next(), it.next()) {
            q.fc1 = a;
            q.fc2 = b;
        }
        let (c1, s1) = self.conv1.sparse(cfg)?;
        let (c2, s2) = self.conv2.sparse(cfg)?;
        stats.add(&s1);
        stats.add(&s2);
        q.conv1 = c1;
        q.conv2 = c2;
        Ok(Some(super::sparse::Sparse {
            model: Box::new(q),
            stats,
            layers: 4,
            dense_layers: 0,
        }))
    }

    fn quantized(&self, dtype: QuantType) -> Result<Option<super::Quantized>> {
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
