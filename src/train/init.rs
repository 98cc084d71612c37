//! Seeded initialisation.
//!
//! candle's `Init::var` draws from an unseeded generator, so two runs of one
//! config start from different weights. `SeededVars` is a `VarBuilder` back end
//! that draws every variable from a stream derived from (seed, variable name):
//! the same seed gives bit-identical initial weights, whatever the order in
//! which a model creates its variables. The variables land in a `VarMap`, which
//! the optimizer and `save` use as usual.

use crate::util::rng::Rng;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

#[derive(Clone)]
pub struct SeededVars {
    seed: u64,
    map: VarMap,
}

impl SeededVars {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            map: VarMap::new(),
        }
    }

    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// A `VarBuilder` that creates variables in this store.
    pub fn builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// Sets a variable's value (creating it if absent), e.g. to copy weights in.
    pub fn insert(&self, name: &str, value: &Tensor) -> Result<()> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable store lock poisoned".into()))?;
        match data.get(name) {
            Some(v) => v.set(value),
            None => {
                data.insert(name.to_string(), Var::from_tensor(value)?);
                Ok(())
            }
        }
    }

    /// A variable's current value.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable store lock poisoned".into()))?;
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))
    }

    /// Total number of parameters.
    pub fn parameter_count(&self) -> u64 {
        self.map
            .all_vars()
            .iter()
            .map(|v| v.elem_count() as u64)
            .sum()
    }

    /// Draws the initial values of `name` with shape `shape` from `init`.
    pub fn draw(&self, name: &str, shape: &Shape, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        let mut rng = Rng::derive(self.seed, &format!("init/{name}"));
        match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => (0..n).map(|_| rng.uniform(lo, up) as f32).collect(),
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| (mean + stdev * rng.normal()) as f32)
                .collect(),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let fan = fan.for_shape(shape);
                let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        (0..n).map(|_| rng.uniform(-b, b) as f32).collect()
                    }
                    NormalOrUniform::Normal => {
                        (0..n).map(|_| (std * rng.normal()) as f32).collect()
                    }
                }
            }
        }
    }
}

impl SimpleBackend for SeededVars {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable store lock poisoned".into()))?;
        if let Some(v) = data.get(name) {
            let t = v.as_tensor();
            if t.shape() != &s {
                candle_core::bail!(
                    "variable {name}: shape mismatch, have {:?}, asked {:?}",
                    t.shape(),
                    s
                );
            }
            return t.to_dtype(dtype);
        }
        let values = self.draw(name, &s, h);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let v = Var::from_tensor(&t)?;
        let out = v.as_tensor().clone();
        data.insert(name.to_string(), v);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable store lock poisoned".into()))?;
        match data.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("variable {name} does not exist"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}
