//! One epoch: its optimizer steps in training windows, each validation pass
//! in its own window (a checkpoint), and the epoch's record. A checkpoint
//! may end training: the loss diverged, or early stopping fired.

use super::eval::evaluate;
use super::step::{PhaseClock, RunningLoss, StepTiming};
use super::{Loop, TrainError};
use crate::meter::EnergyReading;
use crate::meter::window::WindowStart;
use crate::model::Model;
use crate::record::{EpochRecord, EvalPoint, PhaseTimes, StopRecord};
use crate::util::units::{Joules, Seconds};
use candle_core::Tensor;

/// Why training ended before its epoch budget.
pub enum Ending {
    /// The running training loss became NaN or infinite in `epoch`.
    Diverged { epoch: u32 },
    /// Early stopping (patience or target accuracy) fired.
    Stopped(StopRecord),
}

/// Gross joules, net joules and seconds of all windows so far.
#[derive(Default)]
pub struct Cumulative {
    joules: Joules,
    net: Option<Joules>,
    seconds: Seconds,
}

impl Cumulative {
    fn add(&mut self, r: &EnergyReading) {
        self.joules += r.joules;
        self.seconds += r.seconds;
        if let Some(n) = r.net_joules {
            self.net = Some(self.net.unwrap_or(Joules::ZERO) + n);
        }
    }
}

/// The state of the epoch in progress.
pub struct Epoch {
    number: u32,
    window: Option<WindowStart>,
    train_windows: Vec<EnergyReading>,
    val_windows: Vec<EnergyReading>,
    last_eval: (Option<f64>, Option<f64>),
    timing: StepTiming,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Loop<'_> {
    /// Trains one epoch; its record, and an ending if training ends here.
    pub(super) fn epoch(
        &mut self,
        number: u32,
    ) -> Result<(EpochRecord, Option<Ending>), TrainError> {
        let cfg = &self.spec.config;
        let device = self.data.train.x.device().clone();
        let mut ep = Epoch {
            number,
            window: Some(self.measurer.begin(&format!("train/epoch-{number}"))?),
            train_windows: Vec::new(),
            val_windows: Vec::new(),
            last_eval: (None, None),
            timing: StepTiming {
                phases: PhaseTimes::default(),
                clock: PhaseClock::start(&device),
                loss: RunningLoss::new(&device)?,
            },
        };
        let plan = self.begin_epoch_batch(number);
        let batches =
            self.data
                .train
                .shuffled_batches(plan.micro as usize, self.spec.key.seed, number)?;
        ep.timing.phases.data_s += ep.timing.clock.lap()?;
        let chunks: Vec<&[(Tensor, Tensor)]> = batches.chunks(plan.per_step).collect();
        let n_steps = chunks.len();
        let mut ending = None;
        for (ci, chunk) in chunks.into_iter().enumerate() {
            if let Some(sig) = crate::util::interrupt::requested() {
                return Err(TrainError::Interrupted(sig));
            }
            if ep.window.is_none() {
                ep.window = Some(self.measurer.begin(&format!("train/epoch-{number}"))?);
            }
            if !self.optimizer_step(&mut ep.timing, chunk)? {
                continue;
            }
            let due = cfg
                .eval_every_steps
                .is_some_and(|n| self.step.is_multiple_of(n));
            if due || ci + 1 == n_steps {
                ending = self.checkpoint(&mut ep)?;
                if ending.is_some() {
                    break;
                }
            }
        }
        self.close_train_window(&mut ep)?;
        let mut rec = self.epoch_record(ep, n_steps as u64)?;
        rec.batch = self.end_epoch_batch(plan);
        Ok((rec, ending))
    }

    fn close_train_window(&mut self, ep: &mut Epoch) -> Result<(), TrainError> {
        if let Some(w) = ep.window.take() {
            let w = self.measurer.end(w)?;
            self.totals.add(&w);
            ep.train_windows.push(w);
        }
        Ok(())
    }

    /// Closes the training window, validates in a window of its own, records
    /// the evaluation point and asks early stopping.
    fn checkpoint(&mut self, ep: &mut Epoch) -> Result<Option<Ending>, TrainError> {
        self.close_train_window(ep)?;
        let epoch = ep.number;
        let diverged = !ep.timing.loss.mean()?.is_finite();
        let vw = self.measurer.begin(&format!("validation/epoch-{epoch}"))?;
        let (vl, va) = if diverged {
            (None, None)
        } else {
            let compute = self.precision.compute;
            let eval_model = if self.precision.mixed() {
                Some((self.build)(compute)?)
            } else {
                None
            };
            let m: &dyn Model = eval_model.as_deref().unwrap_or(self.master.as_ref());
            let batch = self.spec.config.eval_batch_size as usize;
            let (l, a) = evaluate(m, self.data.validation, batch, compute)?;
            (finite(l), Some(a))
        };
        let vr = self.measurer.end(vw)?;
        self.totals.add(&vr);
        ep.val_windows.push(vr);
        ep.last_eval = (vl, va);
        // Validation has its own window: restart the phase clock.
        ep.timing.clock.restart();
        self.evaluations.push(EvalPoint {
            step: self.step,
            epoch,
            samples_seen: self.samples_seen,
            cumulative_joules: self.totals.joules,
            cumulative_net_joules: self.totals.net,
            cumulative_seconds: self.totals.seconds,
            val_loss: vl,
            val_accuracy: va,
        });
        if diverged {
            return Ok(Some(Ending::Diverged { epoch }));
        }
        let stop = self.stopper.as_mut().and_then(|s| s.observe(vl, va));
        Ok(stop.map(|reason| {
            Ending::Stopped(StopRecord {
                reason,
                step: self.step,
                epoch,
            })
        }))
    }

    fn epoch_record(&self, ep: Epoch, steps: u64) -> Result<EpochRecord, TrainError> {
        let epoch = ep.number;
        let train = EnergyReading::sum(&format!("train/epoch-{epoch}"), &ep.train_windows);
        let validation = EnergyReading::sum(&format!("validation/epoch-{epoch}"), &ep.val_windows);
        let samples = self.data.train.len() as u64;
        Ok(EpochRecord {
            epoch,
            steps,
            samples,
            train_loss: finite(ep.timing.loss.mean()?),
            train_samples_per_second: samples as f64 / train.seconds.0.max(1e-9),
            train,
            validation,
            val_loss: ep.last_eval.0,
            val_accuracy: ep.last_eval.1,
            phases: Some(ep.timing.phases),
            batch: None,
        })
    }
}
