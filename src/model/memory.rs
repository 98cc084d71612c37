//! A trial's peak memory, estimated before anything is allocated, so a
//! model or batch that cannot fit fails its trial with the numbers instead
//! of aborting the process.
//!
//! The estimate is an upper bound of the usual kind: parameters × 4 f32
//! copies (weights, gradients, AdamW's two moments; one more for mixed
//! precision's compute copy) plus the activations a batch keeps for the
//! backward pass (× 2: the values and their gradients) and one evaluation
//! batch's activations; inputs are 28×28 images, or `context` tokens.

use crate::config::{ModelSize, OptimizerKind, Precision, TrialConfig};

/// What one trial needs, by estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEstimate {
    pub parameters: u64,
    /// Floats kept per sample during training.
    pub activations_per_sample: u64,
    pub bytes: u64,
}

/// Parameters and activation floats per sample of a model size.
fn sizes(size: &ModelSize, classes: u64) -> (u64, u64) {
    let sat = |xs: &[u64]| xs.iter().fold(0u64, |a, &x| a.saturating_add(x));
    match size {
        ModelSize::Mlp { hidden } => {
            let mut widths = vec![784u64];
            widths.extend(hidden.iter().map(|&h| h as u64));
            widths.push(classes);
            let params = sat(&widths
                .windows(2)
                .map(|w| w[0].saturating_mul(w[1]).saturating_add(w[1]))
                .collect::<Vec<_>>());
            (params, sat(&widths).saturating_mul(2))
        }
        ModelSize::Cnn { channels, fc_width } => {
            let (c1, c2, fc) = (channels[0] as u64, channels[1] as u64, *fc_width as u64);
            let params = sat(&[
                9 * c1 + c1,
                9u64.saturating_mul(c1).saturating_mul(c2) + c2,
                (c2 * 49).saturating_mul(fc) + fc,
                fc.saturating_mul(classes) + classes,
            ]);
            // conv outputs, activations, pools and the im2col columns.
            let acts = sat(&[
                c1 * 784 * 3 + 9 * 784,
                c2 * 196 * 3 + 9u64.saturating_mul(c1) * 196,
                c2 * 49 + fc * 2 + classes,
            ]);
            (params, acts)
        }
        ModelSize::MobileNet { channels } => {
            let cs: Vec<u64> = channels.iter().map(|&c| c as u64).collect();
            let params = sat(&cs
                .windows(2)
                .map(|w| {
                    (9 * w[0])
                        .saturating_add(w[0].saturating_mul(w[1]))
                        .saturating_add(w[1])
                })
                .collect::<Vec<_>>())
            .saturating_add(9 * cs[0])
            .saturating_add(cs[cs.len() - 1].saturating_mul(classes));
            // Every block's maps at full resolution at most (an upper bound).
            let acts = sat(&cs
                .iter()
                .map(|c| c.saturating_mul(784 * 4))
                .collect::<Vec<_>>());
            (params, acts)
        }
        ModelSize::Transformer {
            d_model,
            layers,
            heads,
            context,
            attention,
            ..
        } => {
            let (d, l, h, t) = (
                *d_model as u64,
                *layers as u64,
                *heads as u64,
                *context as u64,
            );
            let params = sat(&[
                classes.saturating_mul(d) * 2,
                t.saturating_mul(d),
                l.saturating_mul(d.saturating_mul(d).saturating_mul(12)),
            ]);
            let acts = sat(&[
                l.saturating_mul(t.saturating_mul(d).saturating_mul(16)),
                l.saturating_mul(h.saturating_mul(scores_per_head(*attention, t, d / h.max(1)))),
                t.saturating_mul(classes).saturating_mul(2),
            ]);
            (params, acts)
        }
    }
}

/// Attention floats one head keeps per sequence (scores, their softmax and
/// mask; linear attention's chunk states): T^2 only for full attention.
fn scores_per_head(attention: crate::config::Attention, t: u64, hd: u64) -> u64 {
    use crate::config::Attention;
    match attention {
        Attention::Local { window } if (window as u64) < t => {
            let w = (window as u64).max(1);
            t.div_ceil(w)
                .saturating_mul(w)
                .saturating_mul(2 * w)
                .saturating_mul(3)
        }
        Attention::Full | Attention::Local { .. } => t.saturating_mul(t).saturating_mul(3),
        Attention::Linear => {
            let c = (crate::model::attention::LINEAR_CHUNK as u64).min(t).max(1);
            let n = t.div_ceil(c);
            (n * c)
                .saturating_mul(c)
                .saturating_mul(3)
                .saturating_add(n.saturating_mul(hd.saturating_mul(hd)).saturating_mul(2))
        }
    }
}

/// The estimate for one trial with `classes` outputs (the vocabulary for
/// language models).
pub fn estimate(cfg: &TrialConfig, classes: usize) -> MemoryEstimate {
    let (parameters, per_sample) = sizes(&cfg.size, classes as u64);
    let copies = match cfg.optimizer.kind {
        OptimizerKind::Adamw => 4,
        OptimizerKind::Sgd => 3,
    } + u64::from(!matches!(cfg.precision, Precision::F32 | Precision::Tf32));
    let floats = parameters
        .saturating_mul(copies)
        .saturating_add(
            per_sample
                .saturating_mul(cfg.batch_size as u64)
                .saturating_mul(2),
        )
        .saturating_add(per_sample.saturating_mul(cfg.eval_batch_size as u64));
    MemoryEstimate {
        parameters,
        activations_per_sample: per_sample,
        bytes: floats.saturating_mul(4),
    }
}

/// Memory this process may still use: MemAvailable, capped by a cgroup
/// limit where one is set (bytes; None where neither can be read).
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let avail = meminfo.lines().find_map(|l| {
        let v = l.strip_prefix("MemAvailable:")?;
        v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
    })? * 1024;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let used = std::fs::read_to_string("/sys/fs/cgroup/memory.current")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(match (cgroup, used) {
        (Some(max), Some(cur)) => avail.min(max.saturating_sub(cur)),
        _ => avail,
    })
}
