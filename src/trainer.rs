//! The one training loop, shared by every workload and variant.
//!
//! Training runs in measurement windows (batch assembly, forward, backward,
//! optimizer); each validation pass has its own window — once per epoch, or
//! every `eval_every_steps` steps. After training come a test-evaluation
//! window and an inference window (forward + argmax, predictions copied to
//! the host, as a serving system would). The `Measurer` synchronises the
//! device at every window edge.
//!
//! Techniques live in the loop's knobs: precision (mixed bf16/f16 with f32
//! master weights, pure bf16, tf32), gradient accumulation, early stopping,
//! and `Hooks` for techniques that act after steps or epochs.

use crate::data::DeviceSplit;
use crate::early_stopping::EarlyStopper;
use crate::grads;
use crate::init::SeededVars;
use crate::loss_scale::LossScaler;
use crate::meter::{EnergyReading, Measurer, MeterError};
use crate::model::Model;
use crate::optim::TrainOptimizer;
use crate::plan::TrialSpec;
use crate::record::{
    EpochRecord, EvalPoint, EvalRecord, InferenceRecord, PhaseTimes, PrecisionRecord,
    QuantizationRecord, StopRecord, TrialStatus,
};
use crate::suite::Precision;
use candle_core::{DType, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("tensor operation failed: {}", candle_message(.0))]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Meter(#[from] MeterError),
    #[error("{0}")]
    Unsupported(String),
}

/// Times consecutive phases of training steps. On a GPU each lap first waits
/// for the device's queued work, so every phase is charged its own kernels.
pub struct PhaseClock {
    device: candle_core::Device,
    last: std::time::Instant,
}

impl PhaseClock {
    pub fn start(device: &candle_core::Device) -> Self {
        Self {
            device: device.clone(),
            last: std::time::Instant::now(),
        }
    }

    /// Seconds since the previous lap (or the start).
    pub fn lap(&mut self) -> candle_core::Result<f64> {
        if self.device.is_cuda() {
            self.device.synchronize()?;
        }
        let now = std::time::Instant::now();
        let dt = (now - self.last).as_secs_f64();
        self.last = now;
        Ok(dt)
    }

    /// Starts timing afresh (after work that is not a training phase).
    pub fn restart(&mut self) {
        self.last = std::time::Instant::now();
    }
}

/// candle's message without the backtrace it carries when RUST_BACKTRACE is
/// set (records keep the reason, not 30 stack frames), and with a way out
/// for a kernel candle lacks on this device.
fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        candle_core::Error::UnsupportedDTypeForOp(dt, op) => format!(
            "{e}: candle has no {} {op} kernel on this device (on a CPU use f32 or f16; bf16 runs on a GPU, --device cuda:N)",
            dt.as_str()
        ),
        _ => e.to_string(),
    }
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

pub struct TrialData<'a> {
    pub train: &'a DeviceSplit,
    pub validation: &'a DeviceSplit,
    pub test: &'a DeviceSplit,
}

/// Builds the model's forward graph over the trial's variables in a dtype.
pub type ModelBuilder<'a> = &'a dyn Fn(DType) -> candle_core::Result<Box<dyn Model>>;

pub struct TrainOutcome {
    pub status: TrialStatus,
    pub epochs: Vec<EpochRecord>,
    pub evaluations: Vec<EvalPoint>,
    pub test: Option<EvalRecord>,
    pub inference: Option<InferenceRecord>,
    pub precision: PrecisionRecord,
    pub stop: Option<StopRecord>,
    pub quantization: Option<QuantizationRecord>,
}

/// Float inputs in the compute dtype; token ids stay integers.
fn inputs(x: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    if x.dtype().is_float() {
        x.to_dtype(dtype)
    } else {
        Ok(x.clone())
    }
}

/// (N, C) logits and (N,) labels: sequence outputs (B, T, V) are flattened
/// so language models share the classifiers' loss and accuracy.
fn flat(logits: &Tensor, y: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    if logits.rank() == 3 {
        let (b, t, v) = logits.dims3()?;
        Ok((logits.reshape((b * t, v))?, y.reshape(b * t)?))
    } else {
        Ok((logits.clone(), y.clone()))
    }
}

/// Cross-entropy (f32) of a batch's logits against its labels.
pub fn loss_of(logits: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let (l, y) = flat(&logits.to_dtype(DType::F32)?, y)?;
    crate::ops::cross_entropy::cross_entropy(&l, &y)
}

/// Mean loss and accuracy (per label: per sample, or per token for language
/// models) of `model` on `split`, float inputs cast to `dtype`.
pub fn evaluate(
    model: &dyn Model,
    split: &DeviceSplit,
    batch: usize,
    dtype: DType,
) -> candle_core::Result<(f64, f64)> {
    let device = split.x.device();
    let mut loss_sum = Tensor::zeros((), DType::F32, device)?;
    let mut correct = Tensor::zeros((), DType::F32, device)?;
    let mut labels = 0usize;
    for b in split.batches(batch) {
        let (x, y) = b?;
        let logits = model.forward(&inputs(&x, dtype)?)?.to_dtype(DType::F32)?;
        let (l, y) = flat(&logits, &y)?;
        let n = y.dims()[0];
        labels += n;
        let loss = crate::ops::cross_entropy::cross_entropy(&l, &y)?;
        loss_sum = (loss_sum + (loss * n as f64)?)?;
        let hit = l.argmax(1)?.eq(&y)?.to_dtype(DType::F32)?.sum_all()?;
        correct = (correct + hit)?;
    }
    let n = labels.max(1) as f64;
    Ok((
        loss_sum.to_scalar::<f32>()? as f64 / n,
        correct.to_scalar::<f32>()? as f64 / n,
    ))
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// Weights dtype and compute dtype of a precision mode.
pub fn dtypes(p: Precision) -> (DType, DType) {
    match p {
        Precision::F32 | Precision::Tf32 => (DType::F32, DType::F32),
        Precision::Bf16 => (DType::F32, DType::BF16),
        Precision::F16 => (DType::F32, DType::F16),
        Precision::Bf16Pure => (DType::BF16, DType::BF16),
    }
}

/// Running totals of the windows so far.
#[derive(Default)]
struct Totals {
    joules: f64,
    net: Option<f64>,
    seconds: f64,
}

impl Totals {
    fn add(&mut self, r: &EnergyReading) {
        self.joules += r.joules.0;
        self.seconds += r.seconds.0;
        if let Some(n) = r.net_joules {
            self.net = Some(self.net.unwrap_or(0.0) + n.0);
        }
    }
}

/// Trains, evaluates and measures one trial.
pub fn train(
    spec: &TrialSpec,
    build: ModelBuilder,
    vars: &SeededVars,
    data: TrialData,
    measurer: &mut Measurer,
    hooks: &mut dyn Hooks,
    progress: &dyn Progress,
) -> Result<TrainOutcome, TrainError> {
    let cfg = &spec.config;
    let label = spec.key.to_string();
    let device = data.train.x.device().clone();
    let (master_dtype, compute) = dtypes(cfg.precision);
    if cfg.precision == Precision::Tf32 {
        if !device.is_cuda() {
            return Err(TrainError::Unsupported(
                "precision tf32 is a CUDA tensor-core matmul mode; on a CPU it would be plain f32, so this trial is not run (use --device cuda:N)".into(),
            ));
        }
        candle_core::cuda::set_gemm_reduced_precision_f32(true);
    } else if device.is_cuda() {
        candle_core::cuda::set_gemm_reduced_precision_f32(false);
    }
    let master = build(master_dtype)?;
    let mixed = compute != master_dtype;
    let all_vars = vars.var_map().all_vars();
    let mut opt = TrainOptimizer::new(&cfg.optimizer, all_vars.clone())?;
    let mut scaler = (cfg.precision == Precision::F16)
        .then(|| LossScaler::new(cfg.loss_scale_init, cfg.loss_scale_growth_interval));
    let mut stopper = cfg.early_stopping.clone().map(EarlyStopper::new);
    let eval_batch = cfg.eval_batch_size as usize;
    let accumulation = cfg.accumulation_steps.max(1) as usize;
    let mut epochs = Vec::new();
    let mut evaluations = Vec::new();
    let mut status = TrialStatus::Completed;
    let mut stop = None;
    let mut step = 0u64;
    let mut samples_seen = 0u64;
    let mut totals = Totals::default();

    'epochs: for epoch in 1..=cfg.epochs {
        let mut train_windows: Vec<EnergyReading> = Vec::new();
        let mut val_windows: Vec<EnergyReading> = Vec::new();
        let mut last_eval: (Option<f64>, Option<f64>) = (None, None);
        let mut window = Some(measurer.begin(&format!("train/epoch-{epoch}"))?);
        let mut phases = PhaseTimes::default();
        let mut clock = PhaseClock::start(&device);
        let batches = data
            .train
            .shuffled_batches(cfg.batch_size as usize, spec.key.seed, epoch)?;
        phases.data_s += clock.lap()?;
        let mut loss_sum = Tensor::zeros((), DType::F32, &device)?;
        let mut micro_count = 0u64;
        let chunks: Vec<&[(Tensor, Tensor)]> = batches.chunks(accumulation).collect();
        let n_steps = chunks.len();
        let mut diverged = false;
        for (ci, chunk) in chunks.into_iter().enumerate() {
            if window.is_none() {
                window = Some(measurer.begin(&format!("train/epoch-{epoch}"))?);
            }
            let step_model = if mixed { Some(build(compute)?) } else { None };
            let model: &dyn Model = step_model.as_deref().unwrap_or(master.as_ref());
            let loss_scale = scaler.as_ref().map_or(1.0, |s| s.scale);
            let mut acc = None;
            for (x, y) in chunk {
                let xin = inputs(x, compute)?;
                phases.data_s += clock.lap()?;
                let logits = model.forward(&xin)?.to_dtype(DType::F32)?;
                let loss = hooks.loss(&xin, &logits, y, measurer)?;
                phases.forward_s += clock.lap()?;
                loss_sum = (loss_sum + loss.detach())?;
                micro_count += 1;
                samples_seen += y.dims()[0] as u64;
                let g = if loss_scale != 1.0 {
                    (loss * loss_scale)?.backward()?
                } else {
                    loss.backward()?
                };
                phases.backward_s += clock.lap()?;
                grads::accumulate(&mut acc, g, &all_vars)?;
            }
            let Some(mut g) = acc else { continue };
            grads::scale(&mut g, &all_vars, 1.0 / (loss_scale * chunk.len() as f64))?;
            let may_step = match &mut scaler {
                Some(s) => s.update(grads::any_non_finite(&g, &all_vars)?),
                None => true,
            };
            if may_step {
                opt.step(&g)?;
            }
            step += 1;
            hooks.after_step(step, vars)?;
            phases.optimizer_s += clock.lap()?;
            progress.step();
            let epoch_end = ci + 1 == n_steps;
            let due = cfg.eval_every_steps.is_some_and(|n| step.is_multiple_of(n));
            if due || epoch_end {
                if let Some(w) = window.take() {
                    let w = measurer.end(w)?;
                    totals.add(&w);
                    train_windows.push(w);
                }
                let running = loss_sum.to_scalar::<f32>()? as f64 / micro_count.max(1) as f64;
                diverged = !running.is_finite();
                let vw = measurer.begin(&format!("validation/epoch-{epoch}"))?;
                let (vl, va) = if diverged {
                    (None, None)
                } else {
                    let eval_model = if mixed { Some(build(compute)?) } else { None };
                    let m: &dyn Model = eval_model.as_deref().unwrap_or(master.as_ref());
                    let (l, a) = evaluate(m, data.validation, eval_batch, compute)?;
                    (finite(l), Some(a))
                };
                let vr = measurer.end(vw)?;
                totals.add(&vr);
                val_windows.push(vr);
                last_eval = (vl, va);
                // Validation has its own window: restart the phase clock.
                clock.restart();
                evaluations.push(EvalPoint {
                    step,
                    epoch,
                    samples_seen,
                    cumulative_joules: totals.joules,
                    cumulative_net_joules: totals.net,
                    cumulative_seconds: totals.seconds,
                    val_loss: vl,
                    val_accuracy: va,
                });
                if diverged {
                    status = TrialStatus::Diverged { epoch };
                    break;
                }
                if let Some(reason) = stopper.as_mut().and_then(|s| s.observe(vl, va)) {
                    stop = Some(StopRecord {
                        reason,
                        step,
                        epoch,
                    });
                    break;
                }
            }
        }
        if let Some(w) = window.take() {
            let w = measurer.end(w)?;
            totals.add(&w);
            train_windows.push(w);
        }
        let train = EnergyReading::sum(&format!("train/epoch-{epoch}"), &train_windows);
        let validation = EnergyReading::sum(&format!("validation/epoch-{epoch}"), &val_windows);
        let epoch_samples = data.train.len() as u64;
        let train_loss = loss_sum.to_scalar::<f32>()? as f64 / micro_count.max(1) as f64;
        let rec = EpochRecord {
            epoch,
            steps: n_steps as u64,
            samples: epoch_samples,
            train_loss: finite(train_loss),
            train_samples_per_second: epoch_samples as f64 / train.seconds.0.max(1e-9),
            train,
            validation,
            val_loss: last_eval.0,
            val_accuracy: last_eval.1,
            phases: Some(phases),
        };
        progress.epoch_end(&label, &rec);
        let control = hooks.after_epoch(&rec);
        epochs.push(rec);
        if diverged || stop.is_some() {
            break 'epochs;
        }
        if control == Control::Stop {
            break;
        }
    }

    let precision = PrecisionRecord {
        mode: cfg.precision,
        weights: dtype_name(master_dtype),
        activations: dtype_name(compute),
        optimizer_state: dtype_name(master_dtype),
        final_loss_scale: scaler.as_ref().map(|s| s.scale),
        skipped_steps: scaler.as_ref().map_or(0, |s| s.skipped_steps),
    };
    if status != TrialStatus::Completed {
        return Ok(TrainOutcome {
            status,
            epochs,
            evaluations,
            test: None,
            inference: None,
            precision,
            stop,
            quantization: None,
        });
    }

    let final_model = if mixed { Some(build(compute)?) } else { None };
    let model: &dyn Model = final_model.as_deref().unwrap_or(master.as_ref());
    let w = measurer.begin("test")?;
    let (loss, accuracy) = evaluate(model, data.test, eval_batch, compute)?;
    let generative = model.generative();
    let test = EvalRecord {
        window: measurer.end(w)?,
        samples: data.test.len() as u64,
        loss,
        accuracy,
        bits_per_token: generative.map(|_| loss / std::f64::consts::LN_2),
    };

    let inference = inference_window(measurer, model, data.test, cfg, compute, "inference")?;
    let quantization = match &cfg.quantize {
        None => None,
        Some(q) => Some(quantized(measurer, model, &data, cfg, q, accuracy)?),
    };
    Ok(TrainOutcome {
        status,
        epochs,
        evaluations,
        test: Some(test),
        inference: Some(inference),
        precision,
        stop,
        quantization,
    })
}

/// The inference window: greedy generation for language models, forward +
/// argmax over the test split (predictions copied to the host) for classifiers.
fn inference_window(
    measurer: &mut Measurer,
    model: &dyn Model,
    test: &DeviceSplit,
    cfg: &crate::suite::TrialConfig,
    compute: DType,
    name: &str,
) -> Result<InferenceRecord, TrainError> {
    let w = measurer.begin(name)?;
    let (n, unit) = match model.generative() {
        Some(context) => {
            let prompts = test.x.narrow(0, 0, test.len().min(8))?;
            let prompts = prompts.narrow(1, 0, (context / 2).max(1))?;
            let out = crate::model::transformer::generate(
                model,
                &prompts,
                cfg.generate_tokens as usize,
                context,
            )?;
            let _ = out.to_vec2::<u32>()?;
            (
                prompts.dim(0)? as u64 * cfg.generate_tokens as u64,
                "tokens",
            )
        }
        None => {
            let mut n = 0u64;
            for b in test.batches(cfg.eval_batch_size as usize) {
                let (x, _) = b?;
                let preds = model
                    .forward(&inputs(&x, compute)?)?
                    .argmax(1)?
                    .to_vec1::<u32>()?;
                n += preds.len() as u64;
            }
            (n, "samples")
        }
    };
    let window = measurer.end(w)?;
    Ok(InferenceRecord {
        samples: n,
        unit: unit.into(),
        batch_size: cfg.eval_batch_size,
        samples_per_second: n as f64 / window.seconds.0.max(1e-9),
        joules_per_1k: window.joules.0 * 1000.0 / n.max(1) as f64,
        window,
    })
}

/// Quantizes the trained model's linear layers and measures its test
/// accuracy and inference cost. A type or model that cannot be quantized
/// is recorded with the reason; the trial still completes.
fn quantized(
    measurer: &mut Measurer,
    model: &dyn Model,
    data: &TrialData,
    cfg: &crate::suite::TrialConfig,
    name: &str,
    f32_accuracy: f64,
) -> Result<QuantizationRecord, TrainError> {
    let mut rec = QuantizationRecord {
        dtype: name.to_string(),
        weight_bytes_f32: 0,
        weight_bytes_quantized: 0,
        size_ratio: f64::NAN,
        test: None,
        accuracy_change_pp: None,
        inference: None,
        error: None,
    };
    let Some(dtype) = crate::quantize::parse(name) else {
        rec.error = Some(format!("unknown quantization type {name}"));
        return Ok(rec);
    };
    let q = match model.quantized(dtype) {
        Ok(Some(q)) => q,
        Ok(None) => {
            rec.error = Some(format!(
                "model {} does not support post-training quantization",
                cfg.model.name()
            ));
            return Ok(rec);
        }
        Err(e) => {
            rec.error = Some(format!("{name} quantization failed on this device: {e}"));
            return Ok(rec);
        }
    };
    rec.weight_bytes_f32 = q.bytes.f32;
    rec.weight_bytes_quantized = q.bytes.quantized;
    rec.size_ratio = q.bytes.f32 as f64 / q.bytes.quantized.max(1) as f64;
    let w = measurer.begin("test/quantized")?;
    let (loss, accuracy) = evaluate(
        q.model.as_ref(),
        data.test,
        cfg.eval_batch_size as usize,
        DType::F32,
    )?;
    rec.test = Some(EvalRecord {
        window: measurer.end(w)?,
        samples: data.test.len() as u64,
        loss,
        accuracy,
        bits_per_token: None,
    });
    rec.accuracy_change_pp = Some((accuracy - f32_accuracy) * 100.0);
    rec.inference = Some(inference_window(
        measurer,
        q.model.as_ref(),
        data.test,
        cfg,
        DType::F32,
        "inference/quantized",
    )?);
    Ok(rec)
}
