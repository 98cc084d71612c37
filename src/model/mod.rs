//! Reference models as candle structs (`new(vb)` + `forward`).

pub mod cnn;
pub mod mlp;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// A classifier the trainer can drive.
pub trait Model: Send + Sync {
    /// Logits for a batch of samples shaped (B, features...).
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;
    /// Analytic multiply-accumulates of one forward pass for one sample.
    fn macs_per_sample(&self) -> u64;
}

/// The reference models a workload can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// MLP 784-512-256-10 with ReLU.
    Mlp,
    /// Two conv(3x3)+ReLU+maxpool blocks (32, 64 channels), then 128-unit and 10-unit linear layers.
    Cnn,
}

impl ModelKind {
    pub const ALL: &'static [(&'static str, ModelKind)] =
        &[("mlp", ModelKind::Mlp), ("cnn", ModelKind::Cnn)];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    pub fn describe(self) -> &'static str {
        match self {
            ModelKind::Mlp => "MLP 784-512-256-10, ReLU (Fashion-MNIST)",
            ModelKind::Cnn => {
                "CNN conv3x3(32)-pool-conv3x3(64)-pool-fc128-fc10, ReLU (Fashion-MNIST)"
            }
        }
    }

    /// Builds the model, creating its variables through `vb`.
    pub fn build(self, vb: VarBuilder, classes: usize) -> Result<Box<dyn Model>> {
        Ok(match self {
            ModelKind::Mlp => Box::new(mlp::Mlp::new(vb, &[784, 512, 256], classes)?),
            ModelKind::Cnn => Box::new(cnn::Cnn::new(vb, classes)?),
        })
    }
}
