//! Reference models as candle structs (`new(vb)` + `forward`), sized by
//! suite knobs (widths, depth, context).

pub mod cnn;
pub mod mlp;
pub mod separable;
pub mod transformer;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

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
    fn quantized(&self, _dtype: candle_core::quantized::GgmlDType) -> Result<Option<Quantized>> {
        Ok(None)
    }
}

/// A quantized inference copy of a model.
pub struct Quantized {
    pub model: Box<dyn Model>,
    pub bytes: crate::quantize::Bytes,
}

/// The reference models a workload can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// MLP 784-512-256-10 with ReLU.
    Mlp,
    /// Two conv(3x3)+ReLU+maxpool blocks (32, 64 channels), then 128-unit and 10-unit linear layers.
    Cnn,
    /// MobileNet-style depthwise-separable CNN.
    SeparableCnn,
    /// The separable CNN's twin with standard 3x3 convolutions.
    StandardCnn,
    /// Character-level causal transformer on a text corpus.
    CharTransformer,
}

/// Size knobs of a model, resolved (see `ModelKind::default_size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum ModelSize {
    Mlp {
        hidden: Vec<usize>,
    },
    Cnn {
        channels: Vec<usize>,
        fc_width: usize,
    },
    MobileNet {
        channels: Vec<usize>,
    },
    Transformer {
        d_model: usize,
        layers: usize,
        heads: usize,
        context: usize,
        tied: bool,
    },
}

impl ModelKind {
    pub const ALL: &'static [(&'static str, ModelKind)] = &[
        ("mlp", ModelKind::Mlp),
        ("cnn", ModelKind::Cnn),
        ("separable-cnn", ModelKind::SeparableCnn),
        ("standard-cnn", ModelKind::StandardCnn),
        ("char-transformer", ModelKind::CharTransformer),
    ];

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
            ModelKind::Mlp => "MLP, ReLU (Fashion-MNIST); knob: hidden = [512, 256]",
            ModelKind::Cnn => {
                "CNN conv3x3-pool x2, fc, ReLU (Fashion-MNIST); knobs: channels = [32, 64], fc_width = 128"
            }
            ModelKind::SeparableCnn => {
                "MobileNet-style depthwise-separable CNN (Fashion-MNIST); knob: channels = [32, 64, 128, 128]"
            }
            ModelKind::StandardCnn => {
                "standard-conv twin of separable-cnn (Fashion-MNIST); knob: channels = [32, 64, 128, 128]"
            }
            ModelKind::CharTransformer => {
                "char-level causal transformer (fortunes corpus); knobs: d_model = 128, layers = 2, heads = 4, context = 64, tied = true"
            }
        }
    }

    /// True for models trained on the text corpus rather than Fashion-MNIST.
    pub fn uses_text(self) -> bool {
        self == ModelKind::CharTransformer
    }

    pub fn default_size(self) -> ModelSize {
        match self {
            ModelKind::Mlp => ModelSize::Mlp {
                hidden: vec![512, 256],
            },
            ModelKind::Cnn => ModelSize::Cnn {
                channels: vec![32, 64],
                fc_width: 128,
            },
            ModelKind::SeparableCnn | ModelKind::StandardCnn => ModelSize::MobileNet {
                channels: vec![32, 64, 128, 128],
            },
            ModelKind::CharTransformer => ModelSize::Transformer {
                d_model: 128,
                layers: 2,
                heads: 4,
                context: 64,
                tied: true,
            },
        }
    }

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
                },
            )?),
            (k, s) => candle_core::bail!("model {} cannot take size {s:?}", k.name()),
        })
    }
}
