//! Runs a suite's plan: one trial after another, each written to the run
//! folder the moment it ends.

use crate::config::plan::TrialSpec;
use crate::harness::datasets::{DataSets, DeviceData};
use crate::harness::options::RunOptions;
use crate::impact::ImpactSettings;
use crate::measure::Measurement;
use crate::meter::{self, Measurer, MeterError};
use crate::record::{DataRecord, TrialImpact, TrialRecord, TrialStatus};
use crate::runfolder::manifest::Manifest;
use crate::runfolder::store::{RunDir, StoreError};
use crate::suite::Suite;
use crate::technique::error::TrialError;
use crate::train::init::SeededVars;
use crate::train::{self, Progress};
use crate::util::device::DeviceError;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Data(#[from] crate::harness::datasets::DataSetError),
    #[error(transparent)]
    Meter(#[from] MeterError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Suite(#[from] crate::suite::SuiteError),
    #[error(transparent)]
    Impact(#[from] crate::impact::ImpactError),
    #[error(transparent)]
    GpuSettings(#[from] crate::gpu::control::GpuSettingsError),
    #[error(transparent)]
    Measure(#[from] crate::measure::MeasureError),
    /// A command-line option out of range.
    #[error("{0}")]
    Option(String),
    #[error("interrupted by {signal}; the finished trials are in {} (resume the claim suite with --resume)", run.display())]
    Interrupted { signal: String, run: PathBuf },
}

pub struct RunSummary {
    pub run_dir: PathBuf,
    /// The file the records went to (a shard's own file in a sharded run).
    pub trials_path: PathBuf,
    /// The signal that stopped the run early, if any: the trial in flight
    /// then was discarded (not recorded), so `--resume` runs it again.
    pub interrupted: Option<i32>,
    /// Every record of the run, earlier (resumed) ones included, in plan order.
    pub records: Vec<TrialRecord>,
    pub ran: usize,
    pub skipped: usize,
    pub discarded_bytes: usize,
}

/// Waits out the cool-down: fixed seconds, then (with a GPU meter) until
/// every measured GPU is at or below the temperature threshold (at most 120 s).
fn cool_down(m: &Measurement, measurer: &Measurer) {
    if m.cooldown_seconds > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(m.cooldown_seconds));
    }
    let Some(limit) = m.cooldown_temperature_c else {
        return;
    };
    let start = std::time::Instant::now();
    while start.elapsed().as_secs() < 120 {
        let hot = measurer
            .gpu_states()
            .iter()
            .any(|s| s.temperature_c.is_some_and(|t| t as f64 > limit));
        if !hot {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    tracing::warn!("GPU still above {limit} C after 120 s of cool-down; going on");
}

/// Runs one trial and returns its record; a failure or a panic inside the
/// trial becomes a `failed` record with the reason, and the suite goes on.
fn run_trial(
    suite: &Suite,
    run_dir: &std::path::Path,
    spec: &TrialSpec,
    data: &mut DeviceData,
    measurer: &mut Measurer,
    measurement: &Measurement,
    progress: &dyn Progress,
) -> TrialRecord {
    let mut record = TrialRecord::pending(
        &suite.name,
        spec,
        data.device_name.clone(),
        measurer.info().name.clone(),
        crate::util::timefmt::now_rfc3339(),
    );
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let trial = Trial {
            run_dir,
            spec,
            measurement,
            progress,
        };
        trial.run(&mut record, data, measurer)
    }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            record.status = TrialStatus::Failed {
                error: e.to_string(),
            }
        }
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
    record.finished_at = crate::util::timefmt::now_rfc3339();
    record
}

/// What one trial runs with, besides its data and meter.
struct Trial<'a> {
    run_dir: &'a std::path::Path,
    spec: &'a TrialSpec,
    measurement: &'a Measurement,
    progress: &'a dyn Progress,
}

impl Trial<'_> {
    /// Builds the model, measures the idle baseline, runs the techniques and
    /// the training loop, and fills `record` as it goes.
    fn run(
        &self,
        record: &mut TrialRecord,
        data: &mut DeviceData,
        measurer: &mut Measurer,
    ) -> Result<(), TrialFailure> {
        let spec = self.spec;
        let (info, train, validation, test) = data.get(spec)?;
        record.data = Some(DataRecord {
            dataset: info.name.clone(),
            source: info.source.clone(),
            train_samples: train.len() as u64,
            validation_samples: validation.len() as u64,
            test_samples: test.len() as u64,
        });
        preflight(spec, info.classes)?;
        let vars = SeededVars::new(spec.key.seed);
        let (master_dtype, _) = train::dtypes(spec.config.precision);
        let device = data.device.clone();
        let model = spec
            .config
            .model
            .build(
                vars.builder(master_dtype, &device),
                info.classes,
                &spec.config.size,
            )
            .map_err(TrialError::Build)?;
        record.parameters = vars.parameter_count();
        record.macs_per_sample = model.macs_per_sample();
        record.flops_per_train_sample = 6 * model.macs_per_sample();
        record.flops_per_inference_unit = 2 * model.macs_per_inference_unit();
        cool_down(self.measurement, measurer);
        if self.measurement.idle_seconds > 0.0 {
            let idle = measurer
                .measure_idle(self.measurement.idle_seconds)
                .map_err(TrialFailure::Idle)?;
            record.idle = Some(idle);
        }
        let inputs = crate::technique::pipeline::Inputs {
            spec,
            classes: info.classes,
            device: &device,
            train: &train,
            validation: &validation,
            test: &test,
            run_dir: self.run_dir,
        };
        let outcome = crate::technique::pipeline::run(&inputs, vars, measurer, self.progress)?;
        if spec.config.save_weights {
            record.weights_file = Some(save_weights(self.run_dir, spec, &outcome.vars)?);
        }
        fill(record, outcome, &self.measurement.impact);
        Ok(())
    }
}

/// Why a trial failed: its techniques or training, or the harness around them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrialFailure {
    #[error(transparent)]
    Technique(#[from] TrialError),
    #[error(transparent)]
    Data(#[from] crate::harness::datasets::DataSetError),
    #[error("idle window: {0}")]
    Idle(crate::meter::MeterError),
    #[error("{0}")]
    Memory(String),
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot save weights to {}: {source}", path.display())]
    SaveWeights {
        path: PathBuf,
        source: candle_core::Error,
    },
}

/// Refuses a trial whose estimated peak memory exceeds what is available
/// (90% of it), before anything is allocated (a failed allocation aborts).
fn preflight(spec: &TrialSpec, classes: usize) -> Result<(), TrialFailure> {
    let e = crate::model::memory::estimate(&spec.config, classes);
    let Some(avail) = crate::model::memory::available() else {
        return Ok(());
    };
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    if e.bytes as f64 > avail as f64 * 0.9 {
        return Err(TrialFailure::Memory(format!(
            "this trial needs about {:.1} GiB by estimate ({} parameters x 4-5 f32 copies, {} activation floats per sample at batch {}), but {:.1} GiB of memory is available; use a smaller model or batch",
            gib(e.bytes),
            e.parameters,
            e.activations_per_sample,
            spec.config.batch_size,
            gib(avail)
        )));
    }
    Ok(())
}

/// Saves the trained weights under `<run>/weights/`; the path relative to the run folder.
fn save_weights(
    run_dir: &std::path::Path,
    spec: &TrialSpec,
    vars: &SeededVars,
) -> Result<String, TrialFailure> {
    let dir = run_dir.join("weights");
    std::fs::create_dir_all(&dir).map_err(|source| TrialFailure::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let name = format!("{}.safetensors", spec.key.to_string().replace('/', "_"));
    let file = dir.join(&name);
    vars.var_map()
        .save(&file)
        .map_err(|source| TrialFailure::SaveWeights { path: file, source })?;
    Ok(format!("weights/{name}"))
}

/// Copies what the techniques and the training loop produced into the record,
/// with the training totals and the trial's impact.
fn fill(
    record: &mut TrialRecord,
    outcome: crate::technique::pipeline::Outcome,
    impact: &ImpactSettings,
) {
    record.pruning = outcome.pruning;
    record.structured = outcome.structured;
    record.distillation = outcome.distillation;
    let out = outcome.out;
    record.status = out.status;
    let training =
        crate::meter::EnergyReading::sum("training", out.epochs.iter().map(|e| &e.train));
    let samples: u64 = out.epochs.iter().map(|e| e.samples).sum();
    record.train_samples_per_second = Some(samples as f64 / training.seconds.0.max(1e-9));
    record.training = Some(training);
    record.epochs = out.epochs;
    record.test = out.test;
    record.inference = out.inference;
    record.evaluations = out.evaluations;
    record.precision = Some(out.precision);
    record.stop = out.stop;
    record.quantization = out.quantization;
    record.sparse = out.sparse;
    let total = record.total_energy();
    record.gpu_self_check = total
        .domains
        .iter()
        .filter_map(|d| crate::meter::window::self_check(d, total.seconds))
        .collect();
    for c in record.gpu_self_check.iter().filter(|c| c.warning) {
        tracing::warn!("{}: {}", record.key, c.describe());
    }
    let validity = trial_validity(record);
    if validity.verdict != crate::meter::validity::Verdict::Valid {
        let faults = validity
            .findings
            .iter()
            .filter(|f| f.verdict != crate::meter::validity::Verdict::Valid);
        let details: Vec<String> = faults
            .map(|f| format!("{}: {}", f.window.as_deref().unwrap_or("?"), f.detail))
            .collect();
        tracing::warn!(
            "{}: measurement {} ({})",
            record.key,
            validity.summary(),
            details.join("; ")
        );
    }
    record.validity = Some(validity);
    let spans = |net: bool| -> Option<Vec<crate::impact::hourly::Span>> {
        record
            .windows()
            .map(|w| {
                Some(crate::impact::hourly::Span {
                    start_unix: w.started_unix?,
                    seconds: w.seconds.0,
                    joules: if net { w.net_joules?.0 } else { w.joules.0 },
                })
            })
            .collect()
    };
    let hourly = spans(false).and_then(|g| impact.hourly_impact(&g, spans(true).as_deref()));
    record.impact = Some(TrialImpact {
        settings: impact.clone(),
        gross: impact.impact(total.joules),
        net: total.net_joules.map(|j| impact.impact(j)),
        hourly,
    });
}

/// The trial's verdict: every measured window's, the worst deciding (the
/// idle window's too: a disturbed baseline is a finding about the trial).
fn trial_validity(r: &TrialRecord) -> crate::meter::validity::Validity {
    use crate::record::{EvalRecord, InferenceRecord};
    fn evals<'a>(
        t: &'a Option<EvalRecord>,
        i: &'a Option<InferenceRecord>,
    ) -> Vec<&'a meter::EnergyReading> {
        let tests = t.iter().map(|t| &t.window);
        tests.chain(i.iter().map(|i| &i.window)).collect()
    }
    let q = r.quantization.as_ref();
    let s = r.sparse.as_ref();
    let windows = r
        .idle
        .iter()
        .chain(r.windows())
        .chain(q.map_or(vec![], |q| evals(&q.test, &q.inference)))
        .chain(s.map_or(vec![], |s| evals(&s.test, &s.inference)));
    crate::meter::validity::Validity::combine(
        windows.filter_map(|w| Some((w.window.as_str(), w.validity.as_ref()?))),
    )
}

/// GPU settings: refused without the flag, checked against NVML's
/// constraints and the permission to write them, before any folder exists.
fn gpu_control(
    plan: &crate::config::plan::Plan,
    opts: &RunOptions,
    measurement: &Measurement,
) -> Result<Option<crate::gpu::control::GpuControl>, RunError> {
    use crate::gpu::control;
    if !control::check_allowed(plan.trials.iter(), opts.allow_gpu_settings)? {
        return Ok(None);
    }
    let m = &measurement.meter;
    let c = control::open(m.nvml_lib.as_deref(), &m.gpus, opts.device)?;
    c.check(plan.trials.iter())?;
    Ok(Some(c))
}

/// The run folder: a shard of a shared one, a resumed one, or a new one
/// (whose manifest `manifest` builds); its records so far and the bytes of
/// a half-written last line that were cut off.
fn open_run(
    suite: &Suite,
    opts: &RunOptions,
    manifest: impl Fn() -> Manifest,
) -> Result<(RunDir, Vec<TrialRecord>, usize), RunError> {
    let r = match (&opts.shared, &opts.resume) {
        (Some(sr), _) => {
            crate::runfolder::sharded::join(&sr.dir, suite, sr.shard.shard, &manifest())?
        }
        (None, Some(path)) => RunDir::resume(path, suite)?,
        (None, None) => {
            return Ok((
                RunDir::create(&opts.results_root, suite, &manifest())?,
                Vec::new(),
                0,
            ));
        }
    };
    if r.discarded_bytes > 0 {
        tracing::warn!(
            "discarded a half-written last record ({} bytes) in {}",
            r.discarded_bytes,
            r.run.trials_path().display()
        );
    }
    Ok((r.run, r.records, r.discarded_bytes))
}

/// The manifest's measurement fields: GPUs, driver, idle and cool-down, impact.
fn describe(
    m: &mut Manifest,
    measurer: &Measurer,
    measurement: &Measurement,
    device_selection: Option<String>,
) {
    m.device_selection = device_selection;
    m.gpus = measurer.gpu_states();
    m.gpu_driver = measurer.driver_version();
    m.idle_seconds = measurement.idle_seconds;
    m.cooldown_seconds = measurement.cooldown_seconds;
    m.impact = Some(measurement.impact.clone());
}

/// A shard's heartbeat, started (none for an unsharded run).
fn heartbeat(
    opts: &RunOptions,
    placement: &crate::record::Placement,
    done: usize,
    planned: usize,
) -> Option<crate::runfolder::sharded::HeartbeatWriter> {
    let sr = opts.shared.as_ref()?;
    Some(crate::runfolder::sharded::HeartbeatWriter::start(
        &crate::runfolder::sharded::shard_dir(&sr.dir, sr.shard.shard.index),
        crate::runfolder::sharded::Heartbeat {
            hostname: placement.hostname.clone(),
            pid: placement.pid,
            job_id: placement.job_id.clone(),
            restart_count: placement.restart_count,
            done,
            planned,
            ..Default::default()
        },
    ))
}

/// What every trial of a run shares.
struct TrialContext<'a> {
    suite: &'a Suite,
    measurement: &'a Measurement,
    placement: &'a crate::record::Placement,
    progress: &'a dyn Progress,
    total: usize,
}

impl TrialContext<'_> {
    /// The discarded warm-up before a workload's first trial: `spec`'s
    /// configuration for `steps` steps, without idle window or cool-down.
    fn warmup(
        &self,
        run_dir: &std::path::Path,
        spec: &crate::config::plan::TrialSpec,
        steps: u32,
        data: &mut DeviceData,
        measurer: &mut Measurer,
    ) -> crate::record::seeds::Warmup {
        let w = super::rounds::warmup_spec(spec, steps);
        let quiet = Measurement {
            idle_seconds: 0.0,
            cooldown_seconds: 0.0,
            cooldown_temperature_c: None,
            ..self.measurement.clone()
        };
        let t = std::time::Instant::now();
        let r = run_trial(
            self.suite,
            run_dir,
            &w,
            data,
            measurer,
            &quiet,
            &crate::train::Silent,
        );
        let outcome = match &r.status {
            TrialStatus::Failed { error } => format!("failed: {error}"),
            other => format!("{other:?}").to_lowercase(),
        };
        crate::record::seeds::Warmup {
            steps: r.epochs.iter().map(|e| e.steps).sum(),
            seconds: crate::util::units::Seconds(t.elapsed().as_secs_f64()),
            outcome,
        }
    }

    /// Runs one planned trial, its GPU settings applied around it, and
    /// returns its record (with where it ran).
    fn run(
        &self,
        run_dir: &std::path::Path,
        spec: &crate::config::plan::TrialSpec,
        data: &mut DeviceData,
        measurer: &mut Measurer,
        gpu_control: &mut Option<crate::gpu::control::GpuControl>,
    ) -> Result<TrialRecord, RunError> {
        let available = data.sets.splits(&spec.config)?.train.len() as u64;
        let n_train = spec
            .config
            .max_train_samples
            .map_or(available, |c| c.min(available));
        self.progress.trial_start(
            spec.index,
            self.total,
            &spec.key.to_string(),
            crate::config::plan::Plan::steps(spec, n_train),
        );
        let applied = match gpu_control {
            Some(c) => c.apply(spec)?,
            None => None,
        };
        // A power cap the trial set is expected, not a fault (validity rule throttle).
        measurer.rules_mut().trial_power_limit_w = applied
            .as_ref()
            .and_then(|a| a.requested_power_limit_w)
            .map(f64::from);
        let mut record = run_trial(
            self.suite,
            run_dir,
            spec,
            data,
            measurer,
            self.measurement,
            self.progress,
        );
        if let Some(c) = gpu_control {
            c.restore()?;
        }
        record.gpu_settings = applied;
        record.placement = Some(self.placement.clone());
        Ok(record)
    }
}

/// Writes the adaptive-seeds decisions into the run folder.
fn write_decisions(
    run: &std::path::Path,
    d: &crate::record::seeds::SeedDecisions,
) -> Result<(), RunError> {
    let path = run.join(crate::runfolder::store::SEEDS_FILE);
    let bytes = serde_json::to_vec_pretty(d).map_err(StoreError::from)?;
    crate::util::fsio::replace_file(&path, &bytes).map_err(|source| {
        RunError::Store(StoreError::Io {
            action: "write",
            path,
            source,
        })
    })
}

/// Runs (or resumes) a suite.
pub fn run_suite(
    suite: &Suite,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunSummary, RunError> {
    let plan = suite.plan()?;
    let device = opts.device.open()?;
    let sets = DataSets::load(
        suite,
        opts.data_dir.as_deref(),
        opts.corpus_dir.as_deref(),
        &plan,
    )?;
    let data_dir = sets.fashion_mnist_dir.clone();
    let measurement = opts.measurement(Some(suite))?;
    let built = meter::build(&measurement.meter, opts.device)?;
    let unavailable = built.unavailable.iter();
    unavailable.for_each(|u| tracing::info!("meter {} unavailable: {}", u.meter, u.reason));
    let kernel_checks = crate::train::self_check(&device);
    let mut measurer =
        Measurer::new(built.meter, device.clone()).with_rules(measurement.rules.clone());
    let mut gpu_control = gpu_control(&plan, opts, &measurement)?;
    let shard = opts.shared.as_ref().map(|s| s.shard);
    let placement = crate::cluster::shard::placement(
        &crate::cluster::shard::process_env,
        shard,
        &measurer.gpu_states(),
        measurer.info(),
    );
    let new_manifest = || {
        let mut m = Manifest::new(
            suite,
            &opts.device.to_string(),
            measurer.info().clone(),
            &data_dir,
        );
        describe(&mut m, &measurer, &measurement, opts.device_reason.clone());
        m.unavailable_meters = built.unavailable.clone();
        m.placement = Some(placement.clone());
        m.kernel_checks = kernel_checks.clone();
        m
    };
    let (mut run, mut records, discarded_bytes) = open_run(suite, opts, new_manifest)?;
    if let Some(c) = &mut gpu_control
        && let Some(note) = c.attach(&run.path)?
    {
        tracing::warn!("{note}");
    }
    let done = crate::runfolder::store::done_keys(&records);
    let mut data = DeviceData {
        sets,
        device,
        device_name: opts.device.to_string(),
        cache: HashMap::new(),
    };
    let owned = |t: &crate::config::plan::TrialSpec| shard.is_none_or(|s| s.shard.owns(t.index));
    let mine = plan.trials.iter().filter(|t| owned(t)).count();
    let total = plan.trials.len();
    if suite.protocol.adaptive.is_some() && shard.is_some() {
        return Err(RunError::Option(
            "adaptive seeds (`seeds = { first, min, max, ... }`) decide the next seed from every trial so far, so they run in one process: give the suite a list of seeds to run it in shards".into(),
        ));
    }
    let rounds = super::rounds::Rounds::new(&plan, &suite.protocol, &suite.baseline, &suite.seeds);
    let heartbeat = heartbeat(opts, &placement, records.len(), mine);
    let mut ran = 0;
    let mut interrupted = None;
    // Workloads warmed up in this process (a resumed run warms up again).
    let mut warmed: std::collections::HashSet<String> = std::collections::HashSet::new();
    'rounds: loop {
        let todo: Vec<&crate::config::plan::TrialSpec> = rounds
            .next(&records)
            .into_iter()
            .filter(|t| owned(t) && !done.contains(&t.key))
            .collect();
        if todo.is_empty() {
            break;
        }
        for spec in todo {
            if let Some(sig) = crate::util::interrupt::requested() {
                interrupted = Some(sig);
                break 'rounds;
            }
            let ctx = TrialContext {
                suite,
                measurement: &measurement,
                placement: &placement,
                progress,
                total,
            };
            let steps = suite.protocol.warmup_steps;
            let warmup = (steps > 0 && warmed.insert(spec.key.workload.clone()))
                .then(|| ctx.warmup(&run.path, spec, steps, &mut data, &mut measurer));
            let mut record =
                ctx.run(&run.path, spec, &mut data, &mut measurer, &mut gpu_control)?;
            record.warmup = warmup;
            // A trial cut short by a signal is discarded: its partial windows
            // would read as a finished trial. Resume runs it again.
            if let Some(sig) = crate::util::interrupt::requested()
                && record.status != TrialStatus::Completed
            {
                tracing::warn!(
                    "{}: interrupted by {}; not recorded",
                    spec.key,
                    crate::util::interrupt::name(sig)
                );
                interrupted = Some(sig);
                break 'rounds;
            }
            run.append(&record)?;
            progress.trial_end(
                &spec.key.to_string(),
                &crate::console::summary::one_line(&record),
            );
            records.push(record);
            ran += 1;
            if let Some(h) = &heartbeat {
                h.update(|b| {
                    b.done = records.len();
                    b.current = None;
                });
            }
        }
        if let Some(d) = rounds.decisions(&records) {
            write_decisions(&run.path, &d)?;
        }
    }
    if let Some(h) = heartbeat {
        h.finish(crate::runfolder::sharded::final_state(interrupted));
    }
    records.sort_by_key(|r| r.trial_index);
    Ok(RunSummary {
        interrupted,
        run_dir: run.path.clone(),
        trials_path: run.trials_path(),
        skipped: records.len() - ran,
        records,
        ran,
        discarded_bytes,
    })
}
