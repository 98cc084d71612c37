//! MobileNet-style CNN: a 3x3 stem, then blocks that are either
//! depthwise-separable (3x3 depthwise conv with groups = channels, then 1x1
//! pointwise conv, ReLU after each) or their standard-conv twin (one 3x3
//! conv with the same input/output widths and stride), then global average
//! pooling and a linear classifier. No batch norm: the twins differ only in
//! the convolution, which is what the MobileNet cost ratio is about.
//!
//! Multiply-accumulates per block on an H x W output: standard
//! `H W Cin Cout k^2`; separable `H W Cin k^2 + H W Cin Cout`; ratio
//! `1/Cout + 1/k^2` (Howard et al. 2017, eq. 5).

use super::Model;
use crate::ops::Activation;
use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, conv2d, linear};

enum Block {
    Separable { dw: Conv2d, pw: Conv2d },
    Standard { conv: Conv2d },
}

pub struct MobileNetCnn {
    stem: Conv2d,
    blocks: Vec<Block>,
    head: Linear,
    macs: u64,
}

const K: usize = 3;

/// Strides of the blocks: downsample by 2 in the first two blocks (28 -> 14 -> 7).
fn stride(i: usize) -> usize {
    if i < 2 { 2 } else { 1 }
}

impl MobileNetCnn {
    /// `channels[0]` is the stem's width; each further entry adds a block.
    pub fn new(
        vb: VarBuilder,
        channels: &[usize],
        classes: usize,
        separable: bool,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let stem = conv2d(1, channels[0], K, cfg, vb.pp("stem"))?;
        let mut macs = (28 * 28 * channels[0] * K * K) as u64;
        let mut hw = 28;
        let mut blocks = Vec::new();
        for (i, w) in channels.windows(2).enumerate() {
            let (cin, cout) = (w[0], w[1]);
            let s = stride(i);
            hw = (hw + 2 - K) / s + 1;
            let vbb = vb.pp(format!("block{}", i + 1));
            let strided = Conv2dConfig {
                padding: 1,
                stride: s,
                ..Default::default()
            };
            if separable {
                let dw = conv2d(
                    cin,
                    cin,
                    K,
                    Conv2dConfig {
                        groups: cin,
                        ..strided
                    },
                    vbb.pp("dw"),
                )?;
                let pw = conv2d(cin, cout, 1, Default::default(), vbb.pp("pw"))?;
                macs += (hw * hw * cin * K * K + hw * hw * cin * cout) as u64;
                blocks.push(Block::Separable { dw, pw });
            } else {
                let conv = conv2d(cin, cout, K, strided, vbb.pp("conv"))?;
                macs += (hw * hw * cin * cout * K * K) as u64;
                blocks.push(Block::Standard { conv });
            }
        }
        let last = *channels.last().unwrap_or(&channels[0]);
        macs += (last * classes) as u64;
        Ok(Self {
            stem,
            blocks,
            head: linear(last, classes, vb.pp("head"))?,
            macs,
        })
    }
}

impl Model for MobileNetCnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let b = xs.dim(0)?;
        let conv = |layer, x: &Tensor| crate::ops::conv::forward(layer, x, Activation::Relu, false);
        let mut h = conv(&self.stem, &xs.reshape((b, 1, 28, 28))?)?;
        for blk in &self.blocks {
            h = match blk {
                Block::Separable { dw, pw } => conv(pw, &conv(dw, &h)?)?,
                Block::Standard { conv: c } => conv(c, &h)?,
            };
        }
        let pooled = h.mean((2, 3))?;
        crate::ops::linear::forward(&self.head, &pooled, Activation::Identity)
    }

    fn macs_per_sample(&self) -> u64 {
        self.macs
    }
}
