//! Reference models as candle structs (`new(vb)` + `forward`), sized by
//! suite knobs (widths, depth, context).

pub mod attention;
pub mod cnn;
pub mod memory;
pub mod mlp;
pub mod quantize;
pub mod separable;
pub mod sparse;
pub mod transformer;

pub use crate::config::model::{ModelKind, ModelSize};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// A model the trainer can drive.
pub trait Model: Send + Sync {
    /// Logits for a batch: (B, classes) for classifiers, (B, T, vocab) for
    /// language models.
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;
    /// Analytic multiply-accumulates of one forward pass for one sample.
    fn macs_per_sample(&self) -> u64;
    /// Multiply-accumulates per unit of the inference window: a classified
    /// sample, or a generated token (counted at full context, an upper bound).
    fn macs_per_inference_unit(&self) -> u64 {
        self.macs_per_sample()
    }
    /// For generative models: the context length (the inference window then
    /// generates text instead of classifying).
    fn generative(&self) -> Option<usize> {
        None
    }
    /// A copy with its linear layers quantized for inference, or None when
    /// this model does not support post-training quantization.
    fn quantized(&self, _q: crate::config::QuantType) -> Result<Option<Quantized>> {
        Ok(None)
    }
    /// A copy with its linear layers stored sparse (CSR or BSR) for
    /// inference, or None when this model has no sparse path.
    fn sparse(&self, _cfg: crate::config::SparseConfig) -> Result<Option<sparse::Sparse>> {
        Ok(None)
    }
}

/// A quantized inference copy of a model.
pub struct Quantized {
    pub model: Box<dyn Model>,
    pub bytes: crate::model::quantize::Bytes,
}

impl ModelKind {
    /// Builds the model at its default size.
    pub fn build_default(self, vb: VarBuilder, classes: usize) -> Result<Box<dyn Model>> {
        self.build(vb, classes, &self.default_size())
    }

    /// Builds the model, creating its variables through `vb`. `classes` is
    /// the number of classes, or the vocabulary for language models.
    pub fn build(self, vb: VarBuilder, classes: usize, size: &ModelSize) -> Result<Box<dyn Model>> {
        Ok(match (self, size) {
            (ModelKind::Mlp, ModelSize::Mlp { hidden }) => {
                let mut widths = vec![784];
                widths.extend(hidden);
                Box::new(mlp::Mlp::new(vb, &widths, classes)?)
            }
            (ModelKind::Cnn, ModelSize::Cnn { channels, fc_width }) => {
                Box::new(cnn::Cnn::new(vb, channels, *fc_width, classes)?)
            }
            (
                ModelKind::SeparableCnn | ModelKind::StandardCnn,
                ModelSize::MobileNet { channels },
            ) => Box::new(separable::MobileNetCnn::new(
                vb,
                channels,
                classes,
                self == ModelKind::SeparableCnn,
            )?),
            (
                ModelKind::CharTransformer,
                ModelSize::Transformer {
                    d_model,
                    layers,
                    heads,
                    context,
                    tied,
                    attention,
                },
            ) => Box::new(transformer::CharTransformer::new(
                vb,
                transformer::TransformerConfig {
                    vocab: classes,
                    d_model: *d_model,
                    layers: *layers,
                    heads: *heads,
                    context: *context,
                    tied: *tied,
                    attention: *attention,
                },
            )?),
            (k, s) => candle_core::bail!("model {} cannot take size {s:?}", k.name()),
        })
    }
}
