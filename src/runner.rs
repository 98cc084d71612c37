//! Runs a suite's plan: one trial after another, each written to the run
//! folder the moment it ends.

use crate::data::{DeviceSplit, Splits, fashion_mnist};
use crate::device::{DeviceError, DeviceSpec};
use crate::init::SeededVars;
use crate::manifest::Manifest;
use crate::meter::{self, Measurer, MeterError, MeterOptions};
use crate::plan::TrialSpec;
use crate::record::{DataRecord, TrialRecord, TrialStatus};
use crate::store::{RunDir, StoreError};
use crate::suite::Suite;
use crate::trainer::{self, NoHooks, Progress, TrialData};
use crate::units::Watts;
use candle_core::{DType, Device};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Data(#[from] fashion_mnist::DataError),
    #[error(transparent)]
    Meter(#[from] MeterError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Suite(#[from] crate::suite::SuiteError),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub results_root: PathBuf,
    pub device: DeviceSpec,
    /// Dataset folder from the command line (highest precedence).
    pub data_dir: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    /// Meter from the command line; overrides the suite's.
    pub meter: Option<crate::suite::MeterChoice>,
    pub cpu_watts_per_core: Option<f64>,
}

pub struct RunSummary {
    pub run_dir: PathBuf,
    /// Every record of the run, earlier (resumed) ones included, in plan order.
    pub records: Vec<TrialRecord>,
    pub ran: usize,
    pub skipped: usize,
    pub discarded_bytes: usize,
}

/// The meter options in force: command line > suite > defaults.
pub fn meter_options(suite: &Suite, opts: &RunOptions) -> MeterOptions {
    let d = MeterOptions::default();
    MeterOptions {
        choice: opts.meter.or(suite.meter).unwrap_or(d.choice),
        cpu_watts_per_core: opts
            .cpu_watts_per_core
            .or(suite.cpu_watts_per_core)
            .map(Watts)
            .unwrap_or(d.cpu_watts_per_core),
    }
}

/// Device-resident splits, cached by sample cap.
struct DeviceData<'a> {
    splits: &'a Splits,
    device: Device,
    device_name: String,
    train: HashMap<Option<u64>, DeviceSplit>,
    eval: HashMap<Option<u64>, (DeviceSplit, DeviceSplit)>,
}

impl DeviceData<'_> {
    fn get(
        &mut self,
        spec: &TrialSpec,
    ) -> candle_core::Result<(DeviceSplit, DeviceSplit, DeviceSplit)> {
        let tc = spec.config.max_train_samples;
        let ec = spec.config.max_eval_samples;
        if !self.train.contains_key(&tc) {
            let t = self.splits.train.take(tc).to_device(&self.device)?;
            self.train.insert(tc, t);
        }
        if !self.eval.contains_key(&ec) {
            let v = self.splits.validation.take(ec).to_device(&self.device)?;
            let t = self.splits.test.take(ec).to_device(&self.device)?;
            self.eval.insert(ec, (v, t));
        }
        let (v, t) = self.eval[&ec].clone();
        Ok((self.train[&tc].clone(), v, t))
    }
}

fn run_trial(
    suite: &Suite,
    spec: &TrialSpec,
    data: &mut DeviceData,
    measurer: &mut Measurer,
    progress: &dyn Progress,
) -> TrialRecord {
    let started_at = crate::timefmt::now_rfc3339();
    let mut record = TrialRecord {
        schema_version: crate::record::SCHEMA_VERSION,
        suite: suite.name.clone(),
        trial_index: spec.index,
        key: spec.key.clone(),
        config: spec.config.clone(),
        device: data.device_name.clone(),
        meter: measurer.info().name.clone(),
        status: TrialStatus::Completed,
        started_at,
        finished_at: String::new(),
        parameters: 0,
        macs_per_sample: 0,
        data: None,
        epochs: Vec::new(),
        training: None,
        train_samples_per_second: None,
        test: None,
        inference: None,
    };
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), String> {
            let (train, validation, test) = data.get(spec).map_err(|e| e.to_string())?;
            record.data = Some(DataRecord {
                dataset: data.splits.name.clone(),
                source: data.splits.source.display().to_string(),
                train_samples: train.len() as u64,
                validation_samples: validation.len() as u64,
                test_samples: test.len() as u64,
            });
            let vars = SeededVars::new(spec.key.seed);
            let model = spec
                .config
                .model
                .build(vars.builder(DType::F32, &data.device), data.splits.classes)
                .map_err(|e| format!("cannot build model: {e}"))?;
            record.parameters = vars.parameter_count();
            record.macs_per_sample = model.macs_per_sample();
            let out = trainer::train(
                spec,
                model.as_ref(),
                &vars,
                TrialData {
                    train: &train,
                    validation: &validation,
                    test: &test,
                },
                measurer,
                &mut NoHooks,
                progress,
            )
            .map_err(|e| e.to_string())?;
            record.status = out.status;
            let training =
                crate::meter::EnergyReading::sum("training", out.epochs.iter().map(|e| &e.train));
            let samples: u64 = out.epochs.iter().map(|e| e.samples).sum();
            record.train_samples_per_second = Some(samples as f64 / training.seconds.0.max(1e-9));
            record.training = Some(training);
            record.epochs = out.epochs;
            record.test = out.test;
            record.inference = out.inference;
            Ok(())
        }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => record.status = TrialStatus::Failed { error: e },
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            record.status = TrialStatus::Failed {
                error: format!("internal error (panic): {msg}"),
            };
        }
    }
    record.finished_at = crate::timefmt::now_rfc3339();
    record
}

/// Runs (or resumes) a suite.
pub fn run_suite(
    suite: &Suite,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunSummary, RunError> {
    let plan = suite.plan()?;
    let device = opts.device.open()?;
    let data_dir = fashion_mnist::resolve_dir(
        opts.data_dir.as_deref(),
        suite.data.fashion_mnist.as_deref(),
    );
    let splits = fashion_mnist::load(&data_dir)?;
    let meter = meter::build(&meter_options(suite, opts))?;
    let mut measurer = Measurer::new(meter, device.clone());

    let (mut run, mut records, discarded_bytes) = match &opts.resume {
        Some(path) => {
            let r = RunDir::resume(path, suite)?;
            (r.run, r.records, r.discarded_bytes)
        }
        None => {
            let manifest = Manifest::new(
                suite,
                &opts.device.to_string(),
                measurer.info().clone(),
                &data_dir,
            );
            (
                RunDir::create(&opts.results_root, suite, &manifest)?,
                Vec::new(),
                0,
            )
        }
    };
    if discarded_bytes > 0 {
        tracing::warn!(
            "discarded a half-written last record ({discarded_bytes} bytes) in {}",
            run.trials_path().display()
        );
    }
    let done = crate::store::done_keys(&records);
    let mut data = DeviceData {
        splits: &splits,
        device,
        device_name: opts.device.to_string(),
        train: HashMap::new(),
        eval: HashMap::new(),
    };
    let total = plan.trials.len();
    let mut ran = 0;
    for spec in &plan.trials {
        if done.contains(&spec.key) {
            continue;
        }
        let n_train = spec
            .config
            .max_train_samples
            .map_or(splits.train.len() as u64, |c| {
                c.min(splits.train.len() as u64)
            });
        progress.trial_start(
            spec.index,
            total,
            &spec.key.to_string(),
            crate::plan::Plan::steps(spec, n_train),
        );
        let record = run_trial(suite, spec, &mut data, &mut measurer, progress);
        run.append(&record)?;
        progress.trial_end(&spec.key.to_string(), &crate::summary::one_line(&record));
        records.push(record);
        ran += 1;
    }
    records.sort_by_key(|r| r.trial_index);
    Ok(RunSummary {
        run_dir: run.path.clone(),
        skipped: records.len() - ran,
        records,
        ran,
        discarded_bytes,
    })
}
