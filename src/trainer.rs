//! The one training loop, shared by every workload and variant.
//!
//! Per epoch it opens a training window (batch assembly, forward, backward,
//! optimizer step), then a validation window. After the last epoch come a
//! test-evaluation window and an inference window (forward + argmax, the
//! predictions copied to the host, as a serving system would). The meter's
//! `Measurer` synchronises the device at every window edge.

use crate::data::DeviceSplit;
use crate::init::SeededVars;
use crate::meter::{Measurer, MeterError};
use crate::model::Model;
use crate::optim::TrainOptimizer;
use crate::plan::TrialSpec;
use crate::record::{EpochRecord, EvalRecord, InferenceRecord, TrialStatus};
use candle_core::{DType, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Meter(#[from] MeterError),
}

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
}

/// No technique hooks.
pub struct NoHooks;
impl Hooks for NoHooks {}

pub struct TrialData<'a> {
    pub train: &'a DeviceSplit,
    pub validation: &'a DeviceSplit,
    pub test: &'a DeviceSplit,
}

pub struct TrainOutcome {
    pub status: TrialStatus,
    pub epochs: Vec<EpochRecord>,
    pub test: Option<EvalRecord>,
    pub inference: Option<InferenceRecord>,
}

/// Mean loss and accuracy of `model` on `split`.
pub fn evaluate(
    model: &dyn Model,
    split: &DeviceSplit,
    batch: usize,
) -> candle_core::Result<(f64, f64)> {
    let device = split.x.device();
    let mut loss_sum = Tensor::zeros((), DType::F32, device)?;
    let mut correct = Tensor::zeros((), DType::F32, device)?;
    for b in split.batches(batch) {
        let (x, y) = b?;
        let n = y.dims()[0] as f64;
        let logits = model.forward(&x)?.to_dtype(DType::F32)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        loss_sum = (loss_sum + (loss * n)?)?;
        let hit = logits.argmax(1)?.eq(&y)?.to_dtype(DType::F32)?.sum_all()?;
        correct = (correct + hit)?;
    }
    let n = split.len().max(1) as f64;
    Ok((
        loss_sum.to_scalar::<f32>()? as f64 / n,
        correct.to_scalar::<f32>()? as f64 / n,
    ))
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Trains, evaluates and measures one trial.
pub fn train(
    spec: &TrialSpec,
    model: &dyn Model,
    vars: &SeededVars,
    data: TrialData,
    measurer: &mut Measurer,
    hooks: &mut dyn Hooks,
    progress: &dyn Progress,
) -> Result<TrainOutcome, TrainError> {
    let cfg = &spec.config;
    let label = spec.key.to_string();
    let device = data.train.x.device().clone();
    let mut opt = TrainOptimizer::new(&cfg.optimizer, vars.var_map().all_vars())?;
    let eval_batch = cfg.eval_batch_size as usize;
    let mut epochs = Vec::new();
    let mut status = TrialStatus::Completed;
    let mut global_step = 0u64;

    for epoch in 1..=cfg.epochs {
        let window = measurer.begin(&format!("train/epoch-{epoch}"))?;
        let batches = data
            .train
            .shuffled_batches(cfg.batch_size as usize, spec.key.seed, epoch)?;
        let mut loss_sum = Tensor::zeros((), DType::F32, &device)?;
        let steps = batches.len() as u64;
        for (x, y) in batches {
            let logits = model.forward(&x)?;
            let loss = candle_nn::loss::cross_entropy(&logits.to_dtype(DType::F32)?, &y)?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            global_step += 1;
            hooks.after_step(global_step, vars)?;
            loss_sum = (loss_sum + loss.detach())?;
            progress.step();
        }
        let train = measurer.end(window)?;
        let train_loss = loss_sum.to_scalar::<f32>()? as f64 / steps.max(1) as f64;
        let samples = data.train.len() as u64;
        let diverged = !train_loss.is_finite();

        let w = measurer.begin(&format!("validation/epoch-{epoch}"))?;
        let (val_loss, val_accuracy) = if diverged {
            (None, None)
        } else {
            let (l, a) = evaluate(model, data.validation, eval_batch)?;
            (finite(l), Some(a))
        };
        let validation = measurer.end(w)?;
        let rec = EpochRecord {
            epoch,
            steps,
            samples,
            train_loss: finite(train_loss),
            train_samples_per_second: samples as f64 / train.seconds.0.max(1e-9),
            train,
            validation,
            val_loss,
            val_accuracy,
        };
        progress.epoch_end(&label, &rec);
        let control = hooks.after_epoch(&rec);
        epochs.push(rec);
        if diverged {
            status = TrialStatus::Diverged { epoch };
            break;
        }
        if control == Control::Stop {
            break;
        }
    }

    if status != TrialStatus::Completed {
        return Ok(TrainOutcome {
            status,
            epochs,
            test: None,
            inference: None,
        });
    }

    let w = measurer.begin("test")?;
    let (loss, accuracy) = evaluate(model, data.test, eval_batch)?;
    let test = EvalRecord {
        window: measurer.end(w)?,
        samples: data.test.len() as u64,
        loss,
        accuracy,
    };

    let w = measurer.begin("inference")?;
    let mut n = 0u64;
    for b in data.test.batches(eval_batch) {
        let (x, _) = b?;
        let preds = model.forward(&x)?.argmax(1)?.to_vec1::<u32>()?;
        n += preds.len() as u64;
    }
    let window = measurer.end(w)?;
    let inference = InferenceRecord {
        samples: n,
        batch_size: cfg.eval_batch_size,
        samples_per_second: n as f64 / window.seconds.0.max(1e-9),
        joules_per_1k: window.joules.0 * 1000.0 / n.max(1) as f64,
        window,
    };
    Ok(TrainOutcome {
        status,
        epochs,
        test: Some(test),
        inference: Some(inference),
    })
}
