//! Why a trial's techniques or training failed: typed, so callers can match
//! on the cause; the record keeps the message (`TrialStatus::Failed`).

use crate::meter::MeterError;
use crate::record::TrialStatus;
use crate::train::TrainError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Meter(#[from] MeterError),
    #[error("cannot build model: {0}")]
    Build(candle_core::Error),
    #[error("measuring sparsity: {0}")]
    Sparsity(candle_core::Error),
    /// Structured pruning could not plan or rebuild the smaller model.
    #[error("{0}")]
    Shrink(candle_core::Error),
    #[error("cannot load teacher weights {path}: {source}")]
    TeacherWeights {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("the teacher did not train: {0:?}")]
    TeacherFailed(TrialStatus),
}
