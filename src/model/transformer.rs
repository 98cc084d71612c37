//! Character-level causal transformer (GPT-style): token embeddings plus
//! learned positions, pre-norm blocks of multi-head self-attention and a
//! 4x MLP (GELU), a final layer norm, and a head tied to the embeddings or
//! its own.
//!
//! The attention is full, local (sliding window) or linear (`attention`).
//!
//! Multiply-accumulates per token of a forward pass over a full context of
//! T tokens, d = d_model, V = vocabulary, per layer:
//! QKV `3 d^2` + the attention core (full: scores `T d` + weighted values
//! `T d`; local and linear: see `attention`) + output projection `d^2` +
//! MLP `8 d^2`; plus the head `d V`. (The causal mask zeroes half the
//! scores, but the dense kernels compute all T x T, so the count is what the
//! hardware does.) Per sample: T times that.

use super::Model;
use super::attention;
use super::quantize::{Bytes, Dense};
use crate::config::Attention;
use crate::config::QuantType;
use crate::ops::Activation;
use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, linear, linear_no_bias};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformerConfig {
    pub vocab: usize,
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    pub context: usize,
    pub tied: bool,
    pub attention: Attention,
}

impl TransformerConfig {
    /// Forward multiply-accumulates of one sequence at full context.
    pub fn macs_per_sequence(&self) -> u64 {
        let (d, t, v) = (self.d_model as u64, self.context as u64, self.vocab as u64);
        let hd = d / self.heads.max(1) as u64;
        let core = attention::macs_per_sequence(self.attention, t, d, hd);
        self.layers as u64 * (12 * d * d * t + core) + d * v * t
    }

    /// Forward multiply-accumulates for one token at full context.
    pub fn macs_per_token(&self) -> u64 {
        self.macs_per_sequence() / self.context.max(1) as u64
    }
}

/// Layer norm built from differentiable ops. candle_nn's `LayerNorm` (and
/// `ops::softmax_last_dim`) take a fused kernel with *no backward pass* on
/// contiguous inputs, so gradients silently stop there and a pre-norm
/// transformer learns only unigram statistics. This one trains.
#[derive(Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

fn layer_norm(d: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: vb.get_with_hints(d, "weight", candle_nn::Init::Const(1.0))?,
        bias: vb.get_with_hints(d, "bias", candle_nn::Init::Const(0.0))?,
        eps,
    })
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        xn.to_dtype(dtype)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

#[derive(Clone)]
struct Block {
    ln1: LayerNorm,
    qkv: Dense,
    proj: Dense,
    ln2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

impl Block {
    fn layers(&self) -> [&Dense; 4] {
        [&self.qkv, &self.proj, &self.fc1, &self.fc2]
    }
}

/// The transformer; its linear layers (attention projections, MLP, head)
/// may be quantized for inference (`Model::quantized`).
#[derive(Clone)]
pub struct CharTransformer {
    cfg: TransformerConfig,
    tok: Embedding,
    pos: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// None: tied to the token embedding (f32 models only).
    head: Option<Dense>,
}

fn dense(layer: &Dense, x: &Tensor, act: Activation) -> Result<Tensor> {
    layer.forward_act(x, act)
}

impl CharTransformer {
    pub fn new(vb: VarBuilder, cfg: TransformerConfig) -> Result<Self> {
        let d = cfg.d_model;
        if cfg.heads == 0 || !d.is_multiple_of(cfg.heads) {
            candle_core::bail!("d_model {d} is not divisible by heads {}", cfg.heads);
        }
        // GPT-2's initialisation (std 0.02): candle's `embedding()` draws std 1,
        // which with a tied head gives logits of std ~sqrt(d) and a huge first loss.
        let tok = Embedding::new(
            vb.pp("tok").get_with_hints(
                (cfg.vocab, d),
                "weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            d,
        );
        let pos = vb.get_with_hints(
            (cfg.context, d),
            "pos",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let blocks = (0..cfg.layers)
            .map(|i| {
                let b = vb.pp(format!("block{i}"));
                Ok(Block {
                    ln1: layer_norm(d, 1e-5, b.pp("ln1"))?,
                    qkv: Dense::F32(linear(d, 3 * d, b.pp("qkv"))?),
                    proj: Dense::F32(linear(d, d, b.pp("proj"))?),
                    ln2: layer_norm(d, 1e-5, b.pp("ln2"))?,
                    fc1: Dense::F32(linear(d, 4 * d, b.pp("fc1"))?),
                    fc2: Dense::F32(linear(4 * d, d, b.pp("fc2"))?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ln_f = layer_norm(d, 1e-5, vb.pp("ln_f"))?;
        let head = if cfg.tied {
            None
        } else {
            Some(Dense::F32(linear_no_bias(d, cfg.vocab, vb.pp("head"))?))
        };
        Ok(Self {
            cfg,
            tok,
            pos,
            blocks,
            ln_f,
            head,
        })
    }

    fn attention(&self, blk: &Block, h: &Tensor) -> Result<Tensor> {
        let (b, t, d) = h.dims3()?;
        let nh = self.cfg.heads;
        let hd = d / nh;
        let qkv = dense(&blk.qkv, h, Activation::Identity)?.reshape((b, t, 3, nh, hd))?;
        let q = qkv
            .narrow(2, 0, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()?;
        let k = qkv
            .narrow(2, 1, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()?;
        let v = qkv
            .narrow(2, 2, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()?;
        let y = attention::attend(self.cfg.attention, &q, &k, &v)?
            .transpose(1, 2)?
            .reshape((b, t, d))?;
        dense(&blk.proj, &y, Activation::Identity)
    }
}

impl Model for CharTransformer {
    /// Logits (B, T, V) for token ids (B, T), T <= context.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_b, t) = xs.dims2()?;
        if t > self.cfg.context {
            candle_core::bail!(
                "sequence of {t} tokens exceeds the context of {}",
                self.cfg.context
            );
        }
        let mut h = self
            .tok
            .forward(xs)?
            .broadcast_add(&self.pos.narrow(0, 0, t)?)?;
        for blk in &self.blocks {
            h = (&h + self.attention(blk, &blk.ln1.forward(&h)?)?)?;
            let up = dense(&blk.fc1, &blk.ln2.forward(&h)?, Activation::Identity)?;
            let m = dense(
                &blk.fc2,
                &crate::ops::gelu::gelu(&up)?,
                Activation::Identity,
            )?;
            h = (h + m)?;
        }
        let h = self.ln_f.forward(&h)?;
        match &self.head {
            Some(head) => head.forward(&h),
            None => h.broadcast_matmul(&self.tok.embeddings().t()?),
        }
    }

    fn macs_per_sample(&self) -> u64 {
        self.cfg.macs_per_sequence()
    }

    fn macs_per_inference_unit(&self) -> u64 {
        self.cfg.macs_per_token()
    }

    fn generative(&self) -> Option<usize> {
        Some(self.cfg.context)
    }

    /// Attention projections, MLP and head stored sparse (a tied head as a
    /// sparse copy of the embedding).
    fn sparse(&self, cfg: crate::config::SparseConfig) -> Result<Option<super::sparse::Sparse>> {
        let mut layers: Vec<&Dense> = self.blocks.iter().flat_map(|b| b.layers()).collect();
        let tied = Dense::F32(Linear::new(self.tok.embeddings().clone(), None));
        layers.push(self.head.as_ref().unwrap_or(&tied));
        let (mut stored, stats) =
            super::sparse::sparsify_all(&layers, cfg.format, cfg.block as usize)?;
        let head = stored.pop();
        let mut it = stored.into_iter();
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for blk in &self.blocks {
            let (Some(qkv), Some(proj), Some(fc1), Some(fc2)) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                candle_core::bail!("sparse copy lost a layer")
            };
            blocks.push(Block {
                qkv,
                proj,
                fc1,
                fc2,
                ..blk.clone()
            });
        }
        let n = 4 * blocks.len() + 1;
        Ok(Some(super::sparse::Sparse {
            model: Box::new(CharTransformer {
                blocks,
                head,
                ..self.clone()
            }),
            stats,
            layers: n,
            dense_layers: 0,
        }))
    }

    /// Attention projections, MLP and head quantized (a tied head becomes
    /// a quantized copy of the embedding); embeddings, positions and layer
    /// norms stay f32.
    fn quantized(&self, dtype: QuantType) -> Result<Option<super::Quantized>> {
        let mut total = Bytes::default();
        let mut q = |l: &Dense| -> Result<Dense> {
            let (d, b) = l.quantize(dtype)?;
            total.f32 += b.f32;
            total.quantized += b.quantized;
            Ok(d)
        };
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for blk in &self.blocks {
            let [qkv, proj, fc1, fc2] = blk.layers();
            blocks.push(Block {
                qkv: q(qkv)?,
                proj: q(proj)?,
                fc1: q(fc1)?,
                fc2: q(fc2)?,
                ..blk.clone()
            });
        }
        let head = match &self.head {
            Some(h) => q(h)?,
            None => q(&Dense::F32(Linear::new(
                self.tok.embeddings().clone(),
                None,
            )))?,
        };
        Ok(Some(super::Quantized {
            model: Box::new(CharTransformer {
                blocks,
                head: Some(head),
                ..self.clone()
            }),
            bytes: total,
        }))
    }
}

/// Greedy generation: extends each row of `prompt` (B, P) by `n` tokens,
/// feeding at most the last `context` tokens. Returns (B, P + n).
pub fn generate(model: &dyn Model, prompt: &Tensor, n: usize, context: usize) -> Result<Tensor> {
    let mut seq = prompt.clone();
    for _ in 0..n {
        let t = seq.dim(1)?;
        let start = t.saturating_sub(context);
        let window = seq.narrow(1, start, t - start)?;
        let logits = model.forward(&window)?;
        let last = logits.narrow(1, logits.dim(1)? - 1, 1)?.squeeze(1)?;
        let next = last.argmax(D::Minus1)?.unsqueeze(1)?.to_dtype(DType::U32)?;
        seq = Tensor::cat(&[&seq, &next], 1)?;
    }
    Ok(seq)
}
