//! Unstructured magnitude pruning (Han et al. 2015; Zhu & Gupta 2017):
//! weights of linear and conv layers with the smallest magnitudes are set to
//! zero, globally or per layer, either once after `after_epochs` epochs
//! (then fine-tuned for the remaining epochs) or gradually over the first
//! `after_epochs` epochs with Zhu & Gupta's cubic schedule
//! `s_t = s_f (1 - (1 - t/n)^3)`. Masks are re-applied after every
//! optimizer step so pruned weights stay zero. Works as trainer `Hooks`.

pub use crate::config::technique::{PruneConfig, Schedule, Scope, Structure};
use crate::record::EpochRecord;
pub use crate::record::technique::{LayerSparsity, PruningRecord};
use crate::train::init::SeededVars;
use crate::train::{Control, Hooks};
use candle_core::{DType, Result, Tensor, Var};
use std::collections::BTreeMap;

/// Zhu & Gupta's cubic schedule: sparsity after `t` of `n` pruning steps.
pub fn cubic(target: f64, t: u64, n: u64) -> f64 {
    let f = (t as f64 / n.max(1) as f64).min(1.0);
    target * (1.0 - (1.0 - f).powi(3))
}

fn prunable(vars: &SeededVars) -> Vec<(String, Var)> {
    let map = vars
        .var_map()
        .data()
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let mut v: Vec<(String, Var)> = map
        .into_iter()
        .filter(|(n, v)| n.ends_with(".weight") && v.rank() >= 2)
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn magnitudes(v: &Var) -> Result<Vec<f32>> {
    v.as_tensor()
        .abs()?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}

/// The k-th smallest value (k >= 1), or -inf for k = 0.
fn kth(mut xs: Vec<f32>, k: usize) -> f32 {
    if k == 0 {
        return f32::NEG_INFINITY;
    }
    let k = k.min(xs.len());
    xs.select_nth_unstable_by(k - 1, f32::total_cmp);
    xs[k - 1]
}

/// Per layer, the score at or below which the smallest fraction `s` of the
/// scores falls: within each layer, or over all layers together.
fn thresholds(scores: &[Vec<f32>], s: f64, scope: Scope) -> Vec<f32> {
    match scope {
        Scope::Layer => scores
            .iter()
            .map(|m| kth(m.clone(), (s * m.len() as f64).round() as usize))
            .collect(),
        Scope::Global => {
            let all: Vec<f32> = scores.iter().flatten().copied().collect();
            let t = kth(all.clone(), (s * all.len() as f64).round() as usize);
            vec![t; scores.len()]
        }
    }
}

/// A weight as a (rows, cols) matrix: dim 0 by the rest (a conv kernel's
/// output channels by its inputs x taps).
fn matrix_shape(v: &Var) -> (usize, usize) {
    let rows = v.dims()[0].max(1);
    (rows, v.elem_count() / rows)
}

/// Mean |w| of every b x b block of a weight (row-major over block rows;
/// edge blocks average what they hold).
fn block_magnitudes(m: &[f32], (rows, cols): (usize, usize), b: usize) -> Vec<f32> {
    let (br, bc) = (rows.div_ceil(b), cols.div_ceil(b));
    let mut out = Vec::with_capacity(br * bc);
    for i in 0..br {
        for j in 0..bc {
            let (mut sum, mut n) = (0f32, 0usize);
            for r in i * b..((i + 1) * b).min(rows) {
                for c in j * b..((j + 1) * b).min(cols) {
                    sum += m[r * cols + c];
                    n += 1;
                }
            }
            out.push(sum / n.max(1) as f32);
        }
    }
    out
}

/// Masks (1 keep, 0 prune) that zero the smallest-magnitude fraction `s`
/// of single weights (`block` 1) or of b x b blocks, ranked by mean |w|.
pub fn masks(params: &[(String, Var)], s: f64, scope: Scope, block: usize) -> Result<Vec<Tensor>> {
    let weights: Vec<Vec<f32>> = params
        .iter()
        .map(|(_, v)| magnitudes(v))
        .collect::<Result<_>>()?;
    if block > 1 {
        return block_masks(params, &weights, s, scope, block);
    }
    let thresholds = thresholds(&weights, s, scope);
    params
        .iter()
        .zip(thresholds)
        .map(|((_, v), t)| {
            let a = v.as_tensor().abs()?.to_dtype(DType::F32)?;
            a.gt(t as f64)?.to_dtype(v.dtype())
        })
        .collect()
}

fn block_masks(
    params: &[(String, Var)],
    weights: &[Vec<f32>],
    s: f64,
    scope: Scope,
    b: usize,
) -> Result<Vec<Tensor>> {
    let scores: Vec<Vec<f32>> = params
        .iter()
        .zip(weights)
        .map(|((_, v), m)| block_magnitudes(m, matrix_shape(v), b))
        .collect();
    let thresholds = thresholds(&scores, s, scope);
    params
        .iter()
        .zip(scores.iter().zip(thresholds))
        .map(|((_, v), (sc, t))| {
            let (rows, cols) = matrix_shape(v);
            let bc = cols.div_ceil(b);
            let mask: Vec<f32> = (0..rows * cols)
                .map(|i| {
                    let (r, c) = (i / cols, i % cols);
                    if sc[(r / b) * bc + c / b] > t {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            Tensor::from_vec(mask, v.dims(), v.device())?.to_dtype(v.dtype())
        })
        .collect()
}

/// Measured sparsity of every prunable layer.
pub fn measure(vars: &SeededVars) -> Result<Vec<LayerSparsity>> {
    prunable(vars)
        .iter()
        .map(|(n, v)| {
            let total = v.elem_count() as u64;
            let nonzero = v
                .as_tensor()
                .ne(0.0)?
                .to_dtype(DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()? as u64;
            Ok(LayerSparsity {
                name: n.clone(),
                zeros: total - nonzero,
                total,
                sparsity: (total - nonzero) as f64 / total.max(1) as f64,
            })
        })
        .collect()
}

/// The pruning technique as trainer hooks.
pub struct Pruner {
    pub cfg: PruneConfig,
    steps_per_epoch: u64,
    masks: Option<Vec<Tensor>>,
    params: Vec<(String, Var)>,
    /// Sparsity currently enforced.
    pub current: f64,
}

impl Pruner {
    pub fn new(cfg: PruneConfig, vars: &SeededVars, steps_per_epoch: u64) -> Self {
        Self {
            cfg,
            steps_per_epoch,
            masks: None,
            params: prunable(vars),
            current: 0.0,
        }
    }

    fn prune_to(&mut self, s: f64) -> Result<()> {
        self.masks = Some(masks(
            &self.params,
            s,
            self.cfg.scope,
            self.cfg.block.max(1) as usize,
        )?);
        self.current = s;
        self.apply()
    }

    fn apply(&self) -> Result<()> {
        if let Some(ms) = &self.masks {
            for ((_, v), m) in self.params.iter().zip(ms) {
                v.set(&(v.as_tensor() * m)?)?;
            }
        }
        Ok(())
    }
}

impl Hooks for Pruner {
    fn after_step(&mut self, step: u64, _vars: &SeededVars) -> Result<()> {
        if self.cfg.schedule == Schedule::Gradual {
            let n = self.steps_per_epoch * self.cfg.after_epochs as u64;
            // Update the masks every 1/20 of the ramp (and at its end).
            let every = (n / 20).max(1);
            if step <= n && (step.is_multiple_of(every) || step == n) {
                return self.prune_to(cubic(self.cfg.sparsity, step, n));
            }
        }
        self.apply()
    }

    fn after_epoch(&mut self, epoch: &EpochRecord) -> Control {
        if self.cfg.schedule == Schedule::OneShot
            && epoch.epoch == self.cfg.after_epochs
            && let Err(e) = self.prune_to(self.cfg.sparsity)
        {
            tracing::warn!("pruning failed: {e}");
        }
        Control::Continue
    }
}

/// The pruning record of a trained model: its measured sparsity, and the
/// training energy before and after the pruning point.
pub fn pruning_record(
    cfg: PruneConfig,
    vars: &SeededVars,
    epochs: &[EpochRecord],
) -> Result<PruningRecord> {
    let layers = measure(vars)?;
    let (z, t) = layers
        .iter()
        .fold((0, 0), |a, l| (a.0 + l.zeros, a.1 + l.total));
    let split = |pre: bool| {
        epochs
            .iter()
            .filter(|e| (e.epoch <= cfg.after_epochs) == pre)
            .map(|e| e.train.joules)
            .sum()
    };
    Ok(PruningRecord {
        pretrain_joules: split(true),
        finetune_joules: split(false),
        overall_sparsity: z as f64 / t.max(1) as f64,
        layers,
        config: cfg,
    })
}

/// Per-layer sparsities by name (for tests and reports).
pub fn by_name(layers: &[LayerSparsity]) -> BTreeMap<String, f64> {
    layers
        .iter()
        .map(|l| (l.name.clone(), l.sparsity))
        .collect()
}
