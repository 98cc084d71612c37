//! Gradient stores: accumulation over micro-batches, scaling, finiteness.

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};

/// Adds `new` into `acc` for every variable (the first call just takes `new`).
pub fn accumulate(acc: &mut Option<GradStore>, mut new: GradStore, vars: &[Var]) -> Result<()> {
    match acc {
        None => *acc = Some(new),
        Some(a) => {
            for v in vars {
                if let Some(g) = new.remove(v) {
                    let sum = match a.get(v) {
                        Some(old) => (old + g)?,
                        None => g,
                    };
                    a.insert(v, sum);
                }
            }
        }
    }
    Ok(())
}

/// Multiplies every variable's gradient by `factor`.
pub fn scale(store: &mut GradStore, vars: &[Var], factor: f64) -> Result<()> {
    if factor == 1.0 {
        return Ok(());
    }
    for v in vars {
        if let Some(g) = store.remove(v) {
            store.insert(v, (g * factor)?);
        }
    }
    Ok(())
}

/// The squared L2 norm of all gradients together (f64 on the host).
pub fn squared_norm(store: &GradStore, vars: &[Var]) -> Result<f64> {
    let mut total = 0.0;
    for v in vars {
        if let Some(g) = store.get(v) {
            let s = g
                .to_dtype(candle_core::DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()?;
            total += s as f64;
        }
    }
    Ok(total)
}

/// True if any gradient holds an inf or NaN.
pub fn any_non_finite(store: &GradStore, vars: &[Var]) -> Result<bool> {
    for v in vars {
        if let Some(g) = store.get(v) {
            let s = g
                .abs()?
                .to_dtype(candle_core::DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()?;
            if !s.is_finite() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
