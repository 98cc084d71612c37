//! Datasets: splits held in memory, moved to the device once, batched by
//! seeded permutations.

pub mod fashion_mnist;
pub mod idx;

use crate::rng::Rng;
use candle_core::{Device, Tensor};
use std::path::PathBuf;

/// One split of a classification dataset, on the host.
#[derive(Debug, Clone)]
pub struct Split {
    /// Row-major features, `len() == labels.len() * prod(feature_shape)`.
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    /// Shape of one sample, e.g. [1, 28, 28].
    pub feature_shape: Vec<usize>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn sample_size(&self) -> usize {
        self.feature_shape.iter().product()
    }
    /// The first `n` samples (or all, if fewer).
    pub fn take(&self, n: Option<u64>) -> Split {
        let n = n.map_or(self.len(), |n| (n as usize).min(self.len()));
        Split {
            features: self.features[..n * self.sample_size()].to_vec(),
            labels: self.labels[..n].to_vec(),
            feature_shape: self.feature_shape.clone(),
        }
    }
    /// Moves the split to a device as (N, features...) f32 and (N,) u32 tensors.
    pub fn to_device(&self, device: &Device) -> candle_core::Result<DeviceSplit> {
        let mut shape = vec![self.len()];
        shape.extend(&self.feature_shape);
        Ok(DeviceSplit {
            x: Tensor::from_slice(&self.features, shape, device)?,
            y: Tensor::from_slice(&self.labels, self.len(), device)?,
        })
    }
}

/// Train / validation / test splits of one dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    pub name: String,
    pub source: PathBuf,
    pub classes: usize,
    pub train: Split,
    pub validation: Split,
    pub test: Split,
}

/// A split resident on the training device.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    pub x: Tensor,
    pub y: Tensor,
}

impl DeviceSplit {
    pub fn len(&self) -> usize {
        self.y.dims()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Contiguous batches in order (evaluation).
    pub fn batches(
        &self,
        batch: usize,
    ) -> impl Iterator<Item = candle_core::Result<(Tensor, Tensor)>> + '_ {
        let n = self.len();
        (0..n.div_ceil(batch)).map(move |i| {
            let start = i * batch;
            let len = batch.min(n - start);
            Ok((self.x.narrow(0, start, len)?, self.y.narrow(0, start, len)?))
        })
    }

    /// Batches of a seeded permutation (training). The same seed and epoch
    /// always give the same order. The last partial batch is kept.
    pub fn shuffled_batches(
        &self,
        batch: usize,
        seed: u64,
        epoch: u32,
    ) -> candle_core::Result<Vec<(Tensor, Tensor)>> {
        let perm = Rng::derive(seed, &format!("data-order/epoch-{epoch}")).permutation(self.len());
        let device = self.x.device();
        perm.chunks(batch)
            .map(|idx| {
                let idx = Tensor::from_slice(idx, idx.len(), device)?;
                Ok((self.x.index_select(&idx, 0)?, self.y.index_select(&idx, 0)?))
            })
            .collect()
    }
}
