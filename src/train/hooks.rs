//! Where techniques and the console plug into the training loop.

use super::TrainError;
use super::init::SeededVars;
use super::step::loss_of;
use crate::meter::Measurer;
use crate::record::EpochRecord;
use candle_core::Tensor;

/// What the training loop reports as it goes.
pub trait Progress {
    fn trial_start(&self, _index: usize, _total: usize, _label: &str, _steps: u64) {}
    fn step(&self) {}
    fn epoch_end(&self, _label: &str, _epoch: &EpochRecord) {}
    fn trial_end(&self, _label: &str, _summary: &str) {}
}

/// A progress sink that shows nothing.
pub struct Silent;
impl Progress for Silent {}

/// Decision after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Points where techniques plug into the loop.
pub trait Hooks {
    /// Called after every optimizer step.
    fn after_step(&mut self, _step: u64, _vars: &SeededVars) -> candle_core::Result<()> {
        Ok(())
    }
    /// Called after each epoch's validation; `Stop` ends training early.
    fn after_epoch(&mut self, _epoch: &EpochRecord) -> Control {
        Control::Continue
    }
    /// The training loss of a micro-batch (inputs `x`, the student's f32
    /// `logits`, labels `y`); cross-entropy unless a technique replaces it.
    fn loss(
        &mut self,
        _x: &Tensor,
        logits: &Tensor,
        y: &Tensor,
        _measurer: &mut Measurer,
    ) -> Result<Tensor, TrainError> {
        Ok(loss_of(logits, y)?)
    }
}

/// No technique hooks.
pub struct NoHooks;
impl Hooks for NoHooks {}
