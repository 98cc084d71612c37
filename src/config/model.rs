//! The reference models a workload can name, and their size knobs (the
//! models themselves are built in `model`).

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// The reference models a workload can name.
    pub enum ModelKind: "workload model" {
        /// MLP 784-512-256-10 with ReLU.
        Mlp = "mlp",
        /// Two conv(3x3)+ReLU+maxpool blocks (32, 64 channels), then 128-unit and 10-unit linear layers.
        Cnn = "cnn",
        /// MobileNet-style depthwise-separable CNN.
        SeparableCnn = "separable-cnn",
        /// The separable CNN's twin with standard 3x3 convolutions.
        StandardCnn = "standard-cnn",
        /// Character-level causal transformer on a text corpus.
        CharTransformer = "char-transformer",
    }
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
        /// Full attention unless set (left out of records then, so the ids
        /// of trials written before attention variants existed stay the same).
        #[serde(default, skip_serializing_if = "Attention::is_full")]
        attention: Attention,
    },
}

crate::named_enum! {
    /// Which causal self-attention the char-transformer uses.
    pub enum AttentionKind: "attention" {
        /// Softmax over every earlier token: O(T^2) time and memory per layer.
        Full = "full",
        /// Softmax over the last `attention_window` tokens (sliding window): O(T w).
        Local = "local",
        /// Kernelised attention with the elu+1 feature map (Katharopoulos et al. 2020), causal: O(T).
        Linear = "linear",
    }
}

/// A resolved attention variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Attention {
    #[default]
    Full,
    /// Each token attends to itself and the `window - 1` tokens before it.
    Local {
        window: usize,
    },
    Linear,
}

impl Attention {
    pub fn is_full(&self) -> bool {
        *self == Attention::Full
    }

    pub fn kind(&self) -> AttentionKind {
        match self {
            Attention::Full => AttentionKind::Full,
            Attention::Local { .. } => AttentionKind::Local,
            Attention::Linear => AttentionKind::Linear,
        }
    }

    /// `full`, `local(w=64)` or `linear`, for tables and legends.
    pub fn label(&self) -> String {
        match self {
            Attention::Local { window } => format!("local(w={window})"),
            a => a.kind().name().to_string(),
        }
    }
}

impl ModelKind {
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
                "char-level causal transformer (fortunes corpus); knobs: d_model = 128, layers = 2, heads = 4, context = 64, tied = true, attention = full"
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
                attention: Attention::Full,
            },
        }
    }
}
