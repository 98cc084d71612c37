//! Datasets: splits held in memory, moved to the device once, batched by
//! seeded permutations.

pub mod fashion_mnist;
pub mod idx;
pub mod text;

use crate::util::rng::Rng;
use candle_core::{Device, Tensor};
use std::path::PathBuf;

/// Sample inputs: pixels (f32) or token ids (u32).
#[derive(Debug, Clone)]
pub enum Features {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

/// One split of a dataset, on the host: classification (one label per
/// sample) or next-token prediction (one label per input token).
#[derive(Debug, Clone)]
pub struct Split {
    /// Row-major features, `len == n * prod(feature_shape)`.
    pub features: Features,
    /// Row-major labels, `len == n * label_len`.
    pub labels: Vec<u32>,
    /// Shape of one sample, e.g. [1, 28, 28] or [context].
    pub feature_shape: Vec<usize>,
    /// Labels per sample: 1 for classification, the context for language models.
    pub label_len: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len() / self.label_len.max(1)
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
        let f = n * self.sample_size();
        Split {
            features: match &self.features {
                Features::F32(v) => Features::F32(v[..f].to_vec()),
                Features::U32(v) => Features::U32(v[..f].to_vec()),
            },
            labels: self.labels[..n * self.label_len].to_vec(),
            feature_shape: self.feature_shape.clone(),
            label_len: self.label_len,
        }
    }
    /// Moves the split to a device: x as (N, features...) f32 or u32, y as
    /// (N,) or (N, label_len) u32.
    pub fn to_device(&self, device: &Device) -> candle_core::Result<DeviceSplit> {
        let n = self.len();
        let mut shape = vec![n];
        shape.extend(&self.feature_shape);
        let x = match &self.features {
            Features::F32(v) => Tensor::from_slice(v, shape, device)?,
            Features::U32(v) => Tensor::from_slice(v, shape, device)?,
        };
        let y = if self.label_len == 1 {
            Tensor::from_slice(&self.labels, n, device)?
        } else {
            Tensor::from_slice(&self.labels, (n, self.label_len), device)?
        };
        Ok(DeviceSplit { x, y })
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
