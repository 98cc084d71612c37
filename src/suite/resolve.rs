//! Resolution: the settings of one workload × variant from the layers
//! built-in defaults < `[defaults]` < `[[workload]]` < `[[variant]]`, into
//! a `TrialConfig`. Every value here was checked when the file was read.

use super::check::Ctx;
use super::settings::{Layers, Settings};
use super::{Suite, SuiteError, Variant, Workload};
use crate::config::{
    Attention, AttentionKind, BatchRule, BatchSchedule, DistillConfig, EarlyStopping, ModelSize,
    OptimizerConfig, PruneConfig, SparseConfig, SparseFormat, Structure, TrialConfig,
};

impl Suite {
    /// Resolves the settings of one workload × variant.
    pub fn resolve(&self, w: &Workload, v: &Variant) -> Result<TrialConfig, SuiteError> {
        let l = Layers([&self.defaults, &w.settings, &v.settings]);
        let cap = |v: Option<i64>| v.map(|x| x as u64);
        let batch_schedule = batch_schedule(&l);
        let batch_size = match batch_schedule {
            Some(b) => b.start(),
            None => l.batch_size() as u32,
        };
        let accumulation_steps = l.accumulation_steps() as u32;
        let lr_scaling = l.lr_scaling();
        let reference_batch_size = l.reference_batch_size() as u32;
        let base = optimizer(&l);
        let base_learning_rate = base.learning_rate;
        let cx = Ctx { path: &self.path };
        let effective = batch_size.checked_mul(accumulation_steps).ok_or_else(|| {
            cx.invalid(
                &format!("variant[{}].accumulation_steps", v.name),
                accumulation_steps,
                &format!(
                    "batch_size ({batch_size}) x accumulation_steps must stay within 4294967295 samples per step"
                ),
            )
        })?;
        let learning_rate = lr_scaling.apply(base_learning_rate, effective, reference_batch_size);
        if !(learning_rate.is_finite() && learning_rate > 0.0 && learning_rate <= 10.0) {
            return Err(cx.invalid(
                &format!("variant[{}].learning_rate", v.name),
                format!("{base_learning_rate} scaled {lr_scaling} to {learning_rate}"),
                &format!(
                    "the learning rate after lr_scaling (batch {effective} vs reference {reference_batch_size}) must stay in (0, 10]; lower learning_rate or raise reference_batch_size"
                ),
            ));
        }
        if let Some(b) = batch_schedule {
            let end = b.end().saturating_mul(accumulation_steps);
            let lr = lr_scaling.apply(base_learning_rate, end, reference_batch_size);
            if !(lr.is_finite() && lr > 0.0 && lr <= 10.0) {
                return Err(cx.invalid(
                    &format!("variant[{}].batch_schedule.end", v.name),
                    b.end(),
                    &format!(
                        "the learning rate at the schedule's largest batch ({base_learning_rate} scaled {lr_scaling} to {lr}) must stay in (0, 10]"
                    ),
                ));
            }
        }
        if let Some(b) = l.get(|s| &s.sparse_block)
            && l.get(|s| &s.sparse_inference) != Some(SparseFormat::Bsr)
        {
            return Err(cx.invalid(
                &format!("variant[{}].sparse_block", v.name),
                b,
                "sparse_block applies to sparse_inference = \"bsr\" only",
            ));
        }
        if l.prune_block() > 1 && l.prune_structure() == Structure::Structured {
            return Err(cx.invalid(
                &format!("variant[{}].prune_block", v.name),
                l.prune_block(),
                "prune_block applies to unstructured pruning (structured pruning removes whole neurons or channels)",
            ));
        }
        let optimizer = OptimizerConfig {
            learning_rate,
            ..base
        };
        let epochs = l.epochs() as u32;
        Ok(TrialConfig {
            workload: w.name.clone(),
            model: w.model,
            variant: v.name.clone(),
            epochs,
            batch_size,
            batch_schedule,
            optimizer,
            max_train_samples: cap(l.max_train_samples()),
            max_eval_samples: cap(l.max_eval_samples()),
            eval_batch_size: l.eval_batch_size() as u32,
            precision: l.precision(),
            accumulation_steps,
            lr_scaling,
            base_learning_rate,
            reference_batch_size,
            early_stopping: early_stopping(&l),
            eval_every_steps: cap(l.eval_every_steps()),
            loss_scale_init: l.loss_scale_init(),
            loss_scale_growth_interval: l.loss_scale_growth_interval() as u32,
            size: self.resolve_size(w, &l)?,
            generate_tokens: l.generate_tokens() as u32,
            quantize: l.quantize(),
            sparse_inference: l.sparse_inference().map(|format| SparseConfig {
                format,
                block: match format {
                    SparseFormat::Csr => 1,
                    SparseFormat::Bsr => l.sparse_block() as u32,
                },
            }),
            prune: prune(&l),
            distill: distill(&l, epochs),
            save_weights: l.save_weights(),
            gpu_power_limit_w: l.gpu_power_limit_w().map(|w| w as u32),
            gpu_sm_clock_mhz: l.gpu_sm_clock_mhz().map(|m| m as u32),
        })
    }

    /// The model's size from the layers; knobs that do not apply to the
    /// workload's model are errors.
    fn resolve_size(&self, w: &Workload, l: &Layers) -> Result<ModelSize, SuiteError> {
        let cx = Ctx { path: &self.path };
        let widths = |v: Option<Vec<i64>>| v.map(|v| v.into_iter().map(|x| x as usize).collect());
        let hidden: Option<Vec<usize>> = widths(l.get(|s| &s.hidden));
        let channels: Option<Vec<usize>> = widths(l.get(|s| &s.channels));
        let int = |f: fn(&Settings) -> &Option<i64>| l.get(f).map(|x| x as usize);
        let fc_width = int(|s| &s.fc_width);
        let d_model = int(|s| &s.d_model);
        let n_layers = int(|s| &s.layers);
        let heads = int(|s| &s.heads);
        let context = int(|s| &s.context);
        let tied = l.get(|s| &s.tied);
        let attention = l.get(|s| &s.attention);
        let window = int(|s| &s.attention_window);
        let misplaced = |knob: &str, applies: &str| misplaced(&cx, w, knob, applies);
        let transformer_knobs = [
            ("d_model", d_model.is_some()),
            ("layers", n_layers.is_some()),
            ("heads", heads.is_some()),
            ("context", context.is_some()),
            ("tied", tied.is_some()),
            ("attention", attention.is_some()),
            ("attention_window", window.is_some()),
        ];
        let transformer_knob = transformer_knobs.iter().any(|k| k.1);
        Ok(match w.model.default_size() {
            ModelSize::Mlp { hidden: h0 } => {
                let cnn_knobs = [
                    ("channels", channels.is_some()),
                    ("fc_width", fc_width.is_some()),
                ];
                for (k, set) in cnn_knobs.into_iter().chain(transformer_knobs) {
                    if set {
                        return Err(misplaced(k, "other models"));
                    }
                }
                ModelSize::Mlp {
                    hidden: hidden.unwrap_or(h0),
                }
            }
            ModelSize::Cnn {
                channels: c0,
                fc_width: f0,
            } => {
                if hidden.is_some() || transformer_knob {
                    return Err(misplaced(
                        "hidden/d_model/layers/heads/context/tied/attention",
                        "mlp or char-transformer",
                    ));
                }
                let channels = channels.unwrap_or(c0);
                if channels.len() != 2 {
                    return Err(cx.invalid(
                        &format!("workload[{}].channels", w.name),
                        format!("{channels:?}"),
                        "cnn takes exactly two widths, e.g. [32, 64]",
                    ));
                }
                ModelSize::Cnn {
                    channels,
                    fc_width: fc_width.unwrap_or(f0),
                }
            }
            ModelSize::MobileNet { channels: c0 } => {
                if hidden.is_some() || fc_width.is_some() || transformer_knob {
                    return Err(misplaced(
                        "hidden/fc_width/d_model/layers/heads/context/tied/attention",
                        "other models",
                    ));
                }
                let channels = channels.unwrap_or(c0);
                if channels.len() < 2 {
                    return Err(cx.invalid(
                        &format!("workload[{}].channels", w.name),
                        format!("{channels:?}"),
                        "a stem width and at least one block width, e.g. [32, 64, 128]",
                    ));
                }
                ModelSize::MobileNet { channels }
            }
            ModelSize::Transformer {
                d_model: d0,
                layers: l0,
                heads: h0,
                context: t0,
                tied: tied0,
                attention: a0,
            } => {
                if hidden.is_some() || channels.is_some() || fc_width.is_some() {
                    return Err(misplaced("hidden/channels/fc_width", "mlp and the CNNs"));
                }
                let d = d_model.unwrap_or(d0);
                let h = heads.unwrap_or(h0);
                if d % h != 0 {
                    return Err(cx.invalid(
                        &format!("workload[{}].heads", w.name),
                        h,
                        &format!("d_model ({d}) must be divisible by heads"),
                    ));
                }
                ModelSize::Transformer {
                    d_model: d,
                    layers: n_layers.unwrap_or(l0),
                    heads: h,
                    context: context.unwrap_or(t0),
                    tied: tied.unwrap_or(tied0),
                    attention: self.resolve_attention(w, attention, window)?.unwrap_or(a0),
                }
            }
        })
    }
}

impl Suite {
    /// The attention variant, when the layers set one: `attention_window`
    /// belongs to local attention and local attention needs it.
    fn resolve_attention(
        &self,
        w: &Workload,
        kind: Option<AttentionKind>,
        window: Option<usize>,
    ) -> Result<Option<Attention>, SuiteError> {
        let cx = Ctx { path: &self.path };
        Ok(match (kind, window) {
            (Some(AttentionKind::Local), Some(window)) => Some(Attention::Local { window }),
            (Some(AttentionKind::Local), None) => {
                return Err(cx.invalid(
                    &format!("workload[{}].attention_window", w.name),
                    "(unset)",
                    "local attention needs attention_window, the tokens each query sees (e.g. 64)",
                ));
            }
            (k, Some(window)) => {
                return Err(cx.invalid(
                    &format!("workload[{}].attention_window", w.name),
                    window,
                    &format!(
                        "attention_window applies to attention = \"local\" only; this trial's attention is {}",
                        k.unwrap_or(AttentionKind::Full)
                    ),
                ));
            }
            (Some(AttentionKind::Full), None) => Some(Attention::Full),
            (Some(AttentionKind::Linear), None) => Some(Attention::Linear),
            (None, None) => None,
        })
    }
}

/// The batch schedule, unless a higher layer than the one that set it gives
/// a fixed `batch_size` (the same layer may not set both: `check`).
fn batch_schedule(l: &Layers) -> Option<BatchSchedule> {
    let top = |f: fn(&Settings) -> bool| l.0.iter().rposition(|s| f(s));
    let sched = top(|s| s.batch_schedule.is_some())?;
    if top(|s| s.batch_size.is_some()).is_some_and(|b| b > sched) {
        return None;
    }
    let spec = l.0[sched].batch_schedule.as_ref()?;
    let (start, end) = (spec.start as u32, spec.end as u32);
    Some(match spec.rule {
        BatchRule::Ramp => BatchSchedule::Ramp {
            start,
            end,
            over_epochs: spec.over_epochs.unwrap_or(1) as u32,
        },
        BatchRule::Adaptive => BatchSchedule::Adaptive { start, end },
    })
}

/// A size knob set on a workload whose model does not have it.
fn misplaced(cx: &Ctx, w: &Workload, knob: &str, applies: &str) -> SuiteError {
    cx.invalid(
        &format!("workload[{}].{knob}", w.name),
        "(set)",
        &format!(
            "`{knob}` applies to {applies} only; workload `{}` is a {}",
            w.name,
            w.model.name()
        ),
    )
}

/// The optimizer with its learning rate before any batch-size scaling.
fn optimizer(l: &Layers) -> OptimizerConfig {
    let kind = l.optimizer();
    OptimizerConfig {
        kind,
        learning_rate: l.learning_rate().unwrap_or(kind.default_learning_rate()),
        momentum: l.momentum(),
        weight_decay: l.weight_decay().unwrap_or(kind.default_weight_decay()),
        fused: l.fused_optimizer(),
    }
}

fn early_stopping(l: &Layers) -> Option<EarlyStopping> {
    let patience = l.early_stopping_patience();
    let target_accuracy = l.target_accuracy();
    (patience.is_some() || target_accuracy.is_some()).then(|| EarlyStopping {
        patience: patience.map(|p| p as u32),
        min_delta: l.early_stopping_min_delta(),
        metric: l.early_stopping_metric(),
        target_accuracy,
    })
}

fn prune(l: &Layers) -> Option<PruneConfig> {
    l.prune_sparsity().map(|sparsity| PruneConfig {
        sparsity,
        scope: l.prune_scope(),
        schedule: l.prune_schedule(),
        after_epochs: l.prune_after_epochs() as u32,
        structure: l.prune_structure(),
        block: l.prune_block() as u32,
    })
}

fn distill(l: &Layers, epochs: u32) -> Option<DistillConfig> {
    l.distill_teacher().map(|teacher| DistillConfig {
        teacher,
        teacher_size: teacher.default_size(),
        teacher_epochs: l.teacher_epochs().map_or(epochs, |e| e as u32),
        teacher_weights: l.teacher_weights(),
        temperature: l.distill_temperature(),
        alpha: l.distill_alpha(),
    })
}
