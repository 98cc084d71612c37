//! The data a run trains on: datasets loaded once before the run folder
//! exists, and their device copies cached per dataset and sample caps.

use crate::config::plan::TrialSpec;
use crate::data::text::{self, Corpus};
use crate::data::{DeviceSplit, Splits, fashion_mnist};
use crate::suite::Suite;
use candle_core::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why the data a plan needs could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DataSetError {
    #[error(transparent)]
    Data(#[from] fashion_mnist::DataError),
    #[error(transparent)]
    Corpus(#[from] text::CorpusError),
    /// A dataset the plan needs was not loaded (a bug: `DataSets::load` reads what the plan names).
    #[error("{0} not loaded")]
    NotLoaded(&'static str),
    /// The splits could not be copied to the device.
    #[error("{0}")]
    Device(candle_core::Error),
}

/// The datasets a plan needs, loaded before the run folder is created (so
/// a missing dataset leaves nothing behind).
pub struct DataSets {
    pub fashion_mnist: Option<Splits>,
    pub fashion_mnist_dir: PathBuf,
    pub corpus: Option<Corpus>,
    text: HashMap<usize, Splits>,
}

impl DataSets {
    pub fn load(
        suite: &Suite,
        data_dir: Option<&Path>,
        corpus_dir: Option<&Path>,
        plan: &crate::config::plan::Plan,
    ) -> Result<DataSets, DataSetError> {
        let fashion_mnist_dir =
            fashion_mnist::resolve_dir(data_dir, suite.data.fashion_mnist.as_deref());
        let needs_text = plan.trials.iter().any(|t| t.config.model.uses_text());
        let needs_images = plan.trials.iter().any(|t| !t.config.model.uses_text());
        let fashion_mnist = if needs_images {
            Some(fashion_mnist::load(&fashion_mnist_dir)?)
        } else {
            None
        };
        let corpus = if needs_text {
            let dir = text::resolve_dir(corpus_dir, suite.data.corpus.as_deref());
            Some(Corpus::load(&dir)?)
        } else {
            None
        };
        let mut sets = DataSets {
            fashion_mnist,
            fashion_mnist_dir,
            corpus,
            text: HashMap::new(),
        };
        for t in &plan.trials {
            sets.splits(&t.config)?;
        }
        Ok(sets)
    }

    /// The splits a trial trains on.
    pub fn splits(&mut self, cfg: &crate::config::TrialConfig) -> Result<&Splits, DataSetError> {
        if let crate::config::ModelSize::Transformer { context, .. } = cfg.size {
            let corpus = self
                .corpus
                .as_ref()
                .ok_or(DataSetError::NotLoaded("text corpus"))?;
            if let std::collections::hash_map::Entry::Vacant(e) = self.text.entry(context) {
                e.insert(corpus.splits(context)?);
            }
            return Ok(&self.text[&context]);
        }
        self.fashion_mnist
            .as_ref()
            .ok_or(DataSetError::NotLoaded("Fashion-MNIST"))
    }
}

/// Train, validation and test splits on the device.
type DeviceSplits = (DeviceSplit, DeviceSplit, DeviceSplit);

/// Device-resident splits, cached by dataset and sample caps.
pub(crate) struct DeviceData {
    pub(crate) sets: DataSets,
    pub(crate) device: Device,
    pub(crate) device_name: String,
    pub(crate) cache: HashMap<(String, Option<u64>, Option<u64>), DeviceSplits>,
}

/// What a trial needs to know of its data.
pub(crate) struct DataInfo {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) classes: usize,
}

impl DeviceData {
    pub(crate) fn get(
        &mut self,
        spec: &TrialSpec,
    ) -> Result<(DataInfo, DeviceSplit, DeviceSplit, DeviceSplit), DataSetError> {
        let tc = spec.config.max_train_samples;
        let ec = spec.config.max_eval_samples;
        let splits = self.sets.splits(&spec.config)?;
        let info = DataInfo {
            name: splits.name.clone(),
            source: splits.source.display().to_string(),
            classes: splits.classes,
        };
        let key = (
            format!("{}/{:?}", splits.name, splits.train.feature_shape),
            tc,
            ec,
        );
        if !self.cache.contains_key(&key) {
            let dev = &self.device;
            let f = || -> candle_core::Result<_> {
                Ok((
                    splits.train.take(tc).to_device(dev)?,
                    splits.validation.take(ec).to_device(dev)?,
                    splits.test.take(ec).to_device(dev)?,
                ))
            };
            let v = f().map_err(DataSetError::Device)?;
            self.cache.insert(key.clone(), v);
        }
        let (a, b, c) = self.cache[&key].clone();
        Ok((info, a, b, c))
    }
}
