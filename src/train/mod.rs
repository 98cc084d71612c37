//! Layer 5: the one training loop, shared by every workload and variant.
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
//!
//! `train` below is the whole loop at a glance; `step` is one optimizer
//! step, `epoch` one epoch with its validation checkpoints, `eval` the
//! windows after training, `precision` the dtypes and loss scaling.

pub mod batch_schedule;
pub mod bench;
pub mod cuda;
pub mod early_stopping;
mod epoch;
pub mod eval;
pub mod fused_optim;
pub mod grads;
pub mod hooks;
pub mod init;
pub mod loss_scale;
pub mod optim;
pub mod precision;
pub mod step;

pub use eval::evaluate;
pub use hooks::{Control, Hooks, NoHooks, Progress, Silent};
pub use precision::dtypes;
pub use step::{PhaseClock, loss_of};

use crate::config::TrialSpec;
use crate::data::DeviceSplit;
use crate::meter::{Measurer, MeterError};
use crate::model::Model;
use crate::record::{
    EpochRecord, EvalPoint, EvalRecord, InferenceRecord, PrecisionRecord, QuantizationRecord,
    StopRecord, TrialStatus,
};
use candle_core::{DType, Var};
use early_stopping::EarlyStopper;
use epoch::{Cumulative, Ending};
use init::SeededVars;
use optim::TrainOptimizer;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("tensor operation failed: {}", candle_message(.0))]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Meter(#[from] MeterError),
    #[error("{0}")]
    Unsupported(String),
    /// SIGINT or SIGTERM asked the run to stop.
    #[error("interrupted by {}", crate::util::interrupt::name(*.0))]
    Interrupted(i32),
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

/// Self-checks every custom kernel that runs on `device` (once per process:
/// later calls return the first answer), switching off any that disagrees
/// with candle's reference ops; see `ops::selfcheck`.
pub fn self_check(device: &candle_core::Device) -> Vec<crate::ops::selfcheck::KernelCheck> {
    use crate::ops::selfcheck::{Kernel, verdict};
    static CHECKS: std::sync::OnceLock<Vec<crate::ops::selfcheck::KernelCheck>> =
        std::sync::OnceLock::new();
    CHECKS
        .get_or_init(|| {
            let mut out = crate::ops::selfcheck::check_ops(device);
            if device.is_cpu() {
                let err = std::panic::catch_unwind(fused_optim::self_check)
                    .unwrap_or_else(|_| candle_core::bail!("the kernel panicked"));
                out.push(verdict(Kernel::FusedOptimizer, "fused AdamW", err, 1e-5));
            }
            #[cfg(feature = "cuda")]
            if device.is_cuda() {
                let fault = crate::ops::selfcheck::faulty(Kernel::CudaAdamW);
                let err = std::panic::catch_unwind(|| cuda::self_check(device, fault))
                    .unwrap_or_else(|_| candle_core::bail!("the kernel panicked"));
                out.push(verdict(
                    Kernel::CudaAdamW,
                    "cuda fused AdamW (PTX)",
                    err,
                    1e-5,
                ));
            }
            out
        })
        .clone()
}

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
    pub sparse: Option<crate::record::SparseRecord>,
}

/// A trial in training: its inputs and the state carried across epochs.
struct Loop<'a> {
    spec: &'a TrialSpec,
    build: ModelBuilder<'a>,
    vars: &'a SeededVars,
    data: &'a TrialData<'a>,
    measurer: &'a mut Measurer,
    hooks: &'a mut dyn Hooks,
    progress: &'a dyn Progress,
    precision: precision::Setup,
    /// The model over the master weights.
    master: Box<dyn Model>,
    all_vars: Vec<Var>,
    opt: TrainOptimizer,
    stopper: Option<EarlyStopper>,
    /// The batch size of the epoch in progress (changes under a schedule).
    batch: u32,
    /// The adaptive schedule's gradient-noise measurement of this epoch.
    noise: Option<batch_schedule::NoiseScale>,
    step: u64,
    samples_seen: u64,
    totals: Cumulative,
    evaluations: Vec<EvalPoint>,
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
    let precision = precision::Setup::new(cfg, data.train.x.device())?;
    let _autocast = precision.autocast();
    let master = build(precision.master)?;
    let all_vars = vars.var_map().all_vars();
    let mut l = Loop {
        spec,
        build,
        vars,
        data: &data,
        measurer,
        hooks,
        progress,
        precision,
        master,
        opt: TrainOptimizer::new(&cfg.optimizer, all_vars.clone())?,
        all_vars,
        stopper: cfg.early_stopping.clone().map(EarlyStopper::new),
        batch: cfg.batch_size,
        noise: None,
        step: 0,
        samples_seen: 0,
        totals: Cumulative::default(),
        evaluations: Vec::new(),
    };
    let label = spec.key.to_string();
    let mut epochs = Vec::new();
    let mut ending = None;
    for number in 1..=cfg.epochs {
        let (rec, end) = l.epoch(number)?;
        l.progress.epoch_end(&label, &rec);
        let control = l.hooks.after_epoch(&rec);
        epochs.push(rec);
        ending = end;
        if ending.is_some() || control == Control::Stop {
            break;
        }
    }
    let (status, stop) = match ending {
        Some(Ending::Diverged { epoch }) => (TrialStatus::Diverged { epoch }, None),
        Some(Ending::Stopped(s)) => (TrialStatus::Completed, Some(s)),
        None => (TrialStatus::Completed, None),
    };
    let mut out = TrainOutcome {
        status,
        epochs,
        evaluations: std::mem::take(&mut l.evaluations),
        test: None,
        inference: None,
        precision: l.precision.record(),
        stop,
        quantization: None,
        sparse: None,
    };
    if out.status == TrialStatus::Completed {
        l.after_training(&mut out)?;
    }
    Ok(out)
}

impl Loop<'_> {
    /// The test, inference and (if asked) quantized windows of the trained model.
    fn after_training(&mut self, out: &mut TrainOutcome) -> Result<(), TrainError> {
        let cfg = &self.spec.config;
        let compute = self.precision.compute;
        let final_model = if self.precision.mixed() {
            Some((self.build)(compute)?)
        } else {
            None
        };
        let model: &dyn Model = final_model.as_deref().unwrap_or(self.master.as_ref());
        let test = self.data.test;
        let t = eval::test_window(self.measurer, model, test, cfg, compute, "test")?;
        let accuracy = t.accuracy;
        out.test = Some(t);
        let i = eval::inference_window(self.measurer, model, test, cfg, compute, "inference")?;
        out.inference = Some(i);
        if let Some(q) = cfg.quantize {
            let rec = eval::quantized(self.measurer, model, self.data, cfg, q, accuracy)?;
            out.quantization = Some(rec);
        }
        if let Some(s) = cfg.sparse_inference {
            out.sparse = Some(eval::sparse(self.measurer, model, self.data, cfg, s)?);
        }
        Ok(())
    }
}
