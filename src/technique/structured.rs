//! Structured pruning: remove whole hidden neurons (MLP) or convolution
//! channels (CNN) with the lowest L1 norm of their incoming weights, and
//! rebuild a physically smaller dense model holding the kept weights.

use crate::model::{ModelKind, ModelSize};
use crate::train::init::SeededVars;
use candle_core::{DType, Result, Tensor};

/// Indices kept per prunable layer, in order.
pub type Keep = Vec<Vec<u32>>;

/// Rows of `w` (dim 0) ranked by L1 norm; the top `keep` indices, ascending.
fn top_rows(w: &Tensor, keep: usize) -> Result<Vec<u32>> {
    let n = w.dim(0)?;
    let norms: Vec<f32> = w
        .to_dtype(DType::F32)?
        .abs()?
        .flatten_from(1)?
        .sum(1)?
        .to_vec1()?;
    let mut idx: Vec<u32> = (0..n as u32).collect();
    idx.sort_by(|&a, &b| {
        norms[b as usize]
            .total_cmp(&norms[a as usize])
            .then(a.cmp(&b))
    });
    let mut kept: Vec<u32> = idx.into_iter().take(keep.clamp(1, n)).collect();
    kept.sort_unstable();
    Ok(kept)
}

fn kept_count(width: usize, sparsity: f64) -> usize {
    ((width as f64 * (1.0 - sparsity)).round() as usize).max(1)
}

/// Which units to keep at `sparsity` (fraction of units removed per layer).
pub fn plan(vars: &SeededVars, kind: ModelKind, size: &ModelSize, sparsity: f64) -> Result<Keep> {
    match (kind, size) {
        (ModelKind::Mlp, ModelSize::Mlp { hidden }) => hidden
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                top_rows(
                    &vars.get(&format!("fc{}.weight", i + 1))?,
                    kept_count(w, sparsity),
                )
            })
            .collect(),
        (ModelKind::Cnn, ModelSize::Cnn { channels, .. }) => Ok(vec![
            top_rows(
                &vars.get("conv1.weight")?,
                kept_count(channels[0], sparsity),
            )?,
            top_rows(
                &vars.get("conv2.weight")?,
                kept_count(channels[1], sparsity),
            )?,
        ]),
        (k, _) => candle_core::bail!(
            "structured pruning supports mlp (neurons) and cnn (channels), not {}",
            k.name()
        ),
    }
}

fn idx(keep: &[u32], dev: &candle_core::Device) -> Result<Tensor> {
    Tensor::from_slice(keep, keep.len(), dev)
}

/// Copies the kept units into a new, smaller set of variables. Returns the
/// new variables (seeded with `seed`) and the new size.
pub fn shrink(
    vars: &SeededVars,
    kind: ModelKind,
    size: &ModelSize,
    keep: &Keep,
    seed: u64,
) -> Result<(SeededVars, ModelSize)> {
    let out = SeededVars::new(seed);
    let get = |n: &str| vars.get(n);
    match (kind, size) {
        (ModelKind::Mlp, ModelSize::Mlp { hidden }) => {
            let layers = hidden.len() + 1;
            for l in 0..layers {
                let (w, b) = (
                    get(&format!("fc{}.weight", l + 1))?,
                    get(&format!("fc{}.bias", l + 1))?,
                );
                let dev = w.device().clone();
                // Rows: this layer's kept outputs; columns: the previous layer's kept outputs.
                let (w, b) = match keep.get(l) {
                    Some(k) => (
                        w.index_select(&idx(k, &dev)?, 0)?,
                        b.index_select(&idx(k, &dev)?, 0)?,
                    ),
                    None => (w, b),
                };
                let w = match l.checked_sub(1).and_then(|p| keep.get(p)) {
                    Some(k) => w.index_select(&idx(k, &dev)?, 1)?,
                    None => w,
                };
                out.insert(&format!("fc{}.weight", l + 1), &w.contiguous()?)?;
                out.insert(&format!("fc{}.bias", l + 1), &b.contiguous()?)?;
            }
            Ok((
                out,
                ModelSize::Mlp {
                    hidden: keep.iter().map(|k| k.len()).collect(),
                },
            ))
        }
        (ModelKind::Cnn, ModelSize::Cnn { fc_width, .. }) => {
            let dev = get("conv1.weight")?.device().clone();
            let (k1, k2) = (idx(&keep[0], &dev)?, idx(&keep[1], &dev)?);
            out.insert(
                "conv1.weight",
                &get("conv1.weight")?.index_select(&k1, 0)?.contiguous()?,
            )?;
            out.insert("conv1.bias", &get("conv1.bias")?.index_select(&k1, 0)?)?;
            let c2 = get("conv2.weight")?
                .index_select(&k2, 0)?
                .index_select(&k1, 1)?;
            out.insert("conv2.weight", &c2.contiguous()?)?;
            out.insert("conv2.bias", &get("conv2.bias")?.index_select(&k2, 0)?)?;
            // fc1 reads the flattened (channel, 7, 7) map: keep each kept channel's 49 columns.
            let cols: Vec<u32> = keep[1]
                .iter()
                .flat_map(|&c| (c * 49)..(c * 49 + 49))
                .collect();
            let fc1 = get("fc1.weight")?.index_select(&idx(&cols, &dev)?, 1)?;
            out.insert("fc1.weight", &fc1.contiguous()?)?;
            out.insert("fc1.bias", &get("fc1.bias")?)?;
            out.insert("fc2.weight", &get("fc2.weight")?)?;
            out.insert("fc2.bias", &get("fc2.bias")?)?;
            Ok((
                out,
                ModelSize::Cnn {
                    channels: vec![keep[0].len(), keep[1].len()],
                    fc_width: *fc_width,
                },
            ))
        }
        (k, _) => candle_core::bail!("structured pruning does not support {}", k.name()),
    }
}
