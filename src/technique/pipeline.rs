//! How a trial's techniques compose around the one training loop:
//! plain training (with unstructured-pruning hooks), structured pruning
//! (train, shrink, fine-tune the smaller model), and distillation (train or
//! load a teacher, then train the student on its soft targets). Every phase
//! runs through `train::train`, so every phase is measured the same way.

use crate::config::plan::TrialSpec;
use crate::data::DeviceSplit;
use crate::meter::{EnergyReading, Measurer};
use crate::model::Model;
use crate::record::TrialStatus;
use crate::record::technique::StructuredRecord;
use crate::technique::distill::{DistillRecord, Distiller};
use crate::technique::error::TrialError;
use crate::technique::prune::{Pruner, PruningRecord, Structure};
use crate::train::init::SeededVars;
use crate::train::{self, NoHooks, Progress, TrainOutcome, TrialData};
use crate::util::units::Joules;
use candle_core::{DType, Device};
use std::path::Path;

pub struct Outcome {
    pub out: TrainOutcome,
    pub pruning: Option<PruningRecord>,
    pub structured: Option<StructuredRecord>,
    pub distillation: Option<DistillRecord>,
    /// The final model's variables (smaller after structured pruning).
    pub vars: SeededVars,
    pub final_macs: u64,
}

/// The trial's inputs.
pub struct Inputs<'a> {
    pub spec: &'a TrialSpec,
    pub classes: usize,
    pub device: &'a Device,
    pub train: &'a DeviceSplit,
    pub validation: &'a DeviceSplit,
    pub test: &'a DeviceSplit,
    pub run_dir: &'a Path,
}

fn data<'a>(i: &Inputs<'a>) -> TrialData<'a> {
    TrialData {
        train: i.train,
        validation: i.validation,
        test: i.test,
    }
}

fn train_vars(
    spec: &TrialSpec,
    vars: &SeededVars,
    i: &Inputs,
    measurer: &mut Measurer,
    hooks: &mut dyn train::Hooks,
    progress: &dyn Progress,
) -> Result<TrainOutcome, TrialError> {
    let (kind, size, classes, dev) = (
        spec.config.model,
        spec.config.size.clone(),
        i.classes,
        i.device.clone(),
    );
    let build = |dt: DType| kind.build(vars.builder(dt, &dev), classes, &size);
    Ok(train::train(
        spec,
        &build,
        vars,
        data(i),
        measurer,
        hooks,
        progress,
    )?)
}

fn model_of(spec: &TrialSpec, vars: &SeededVars, i: &Inputs) -> Result<Box<dyn Model>, TrialError> {
    spec.config
        .model
        .build(
            vars.builder(DType::F32, i.device),
            i.classes,
            &spec.config.size,
        )
        .map_err(TrialError::Build)
}

/// Runs the trial's techniques.
pub fn run(
    i: &Inputs,
    vars: SeededVars,
    measurer: &mut Measurer,
    progress: &dyn Progress,
) -> Result<Outcome, TrialError> {
    let cfg = &i.spec.config;
    if let Some(p) = cfg
        .prune
        .as_ref()
        .filter(|p| p.structure == Structure::Structured)
    {
        return structured(i, vars, p.clone(), measurer, progress);
    }
    if let Some(d) = &cfg.distill {
        return distill(i, vars, d.clone(), measurer, progress);
    }
    let steps_per_epoch = cfg.steps_per_epoch(i.train.len() as u64);
    let mut pruner = cfg
        .prune
        .clone()
        .map(|c| Pruner::new(c, &vars, steps_per_epoch));
    let hooks: &mut dyn train::Hooks = match pruner.as_mut() {
        Some(p) => p,
        None => &mut NoHooks,
    };
    let out = train_vars(i.spec, &vars, i, measurer, hooks, progress)?;
    let pruning = match &pruner {
        Some(p) => Some(
            crate::technique::prune::pruning_record(p.cfg.clone(), &vars, &out.epochs)
                .map_err(TrialError::Sparsity)?,
        ),
        None => None,
    };
    let final_macs = model_of(i.spec, &vars, i)?.macs_per_sample();
    Ok(Outcome {
        out,
        pruning,
        structured: None,
        distillation: None,
        vars,
        final_macs,
    })
}

/// Train `after_epochs`, remove the lowest-L1 units, fine-tune the smaller model.
fn structured(
    i: &Inputs,
    vars: SeededVars,
    p: crate::technique::prune::PruneConfig,
    measurer: &mut Measurer,
    progress: &dyn Progress,
) -> Result<Outcome, TrialError> {
    let cfg = &i.spec.config;
    let mut pre = i.spec.clone();
    pre.config.epochs = p.after_epochs.min(cfg.epochs);
    pre.config.prune = None;
    pre.config.quantize = None;
    let out1 = train_vars(&pre, &vars, i, measurer, &mut NoHooks, progress)?;
    let before = model_of(&pre, &vars, i)?;
    if out1.status != TrialStatus::Completed {
        return Ok(Outcome {
            out: out1,
            pruning: None,
            structured: None,
            distillation: None,
            final_macs: before.macs_per_sample(),
            vars,
        });
    }
    let w = measurer.begin("prune")?;
    let keep = crate::technique::structured::plan(&vars, cfg.model, &cfg.size, p.sparsity)
        .map_err(TrialError::Shrink)?;
    let (small, size_after) =
        crate::technique::structured::shrink(&vars, cfg.model, &cfg.size, &keep, i.spec.key.seed)
            .map_err(TrialError::Shrink)?;
    let _prune_window = measurer.end(w)?;
    let mut post = i.spec.clone();
    post.config.epochs = cfg.epochs.saturating_sub(p.after_epochs);
    post.config.size = size_after.clone();
    post.config.prune = None;
    let after = model_of(&post, &small, i)?;
    let out2 = train_vars(&post, &small, i, measurer, &mut NoHooks, progress)?;
    let sum = |o: &TrainOutcome| o.epochs.iter().map(|e| e.train.joules).sum::<Joules>();
    let record = StructuredRecord {
        fraction_removed: p.sparsity,
        size_before: cfg.size.clone(),
        size_after,
        parameters_before: vars.parameter_count(),
        parameters_after: small.parameter_count(),
        macs_before: before.macs_per_sample(),
        macs_after: after.macs_per_sample(),
        pretrain_joules: sum(&out1),
        finetune_joules: sum(&out2),
        before_test_accuracy: out1.test.as_ref().map(|t| t.accuracy),
        before_inference_joules_per_1k: out1.inference.as_ref().map(|t| t.joules_per_1k),
    };
    let final_macs = after.macs_per_sample();
    Ok(Outcome {
        out: concat(out1, out2),
        pruning: None,
        structured: Some(record),
        distillation: None,
        vars: small,
        final_macs,
    })
}

/// Joins two phases: the second's epochs and evaluations continue the first's.
fn concat(a: TrainOutcome, mut b: TrainOutcome) -> TrainOutcome {
    let n = a.epochs.len() as u32;
    let last = a.evaluations.last().cloned();
    for e in &mut b.epochs {
        e.epoch += n;
    }
    for e in &mut b.evaluations {
        e.epoch += n;
        if let Some(l) = &last {
            e.step += l.step;
            e.samples_seen += l.samples_seen;
            e.cumulative_joules += l.cumulative_joules;
            e.cumulative_seconds += l.cumulative_seconds;
            e.cumulative_net_joules = match (e.cumulative_net_joules, l.cumulative_net_joules) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(y),
            };
        }
    }
    let mut epochs = a.epochs;
    epochs.extend(b.epochs);
    let mut evaluations = a.evaluations;
    evaluations.extend(b.evaluations);
    TrainOutcome {
        epochs,
        evaluations,
        ..b
    }
}

/// Train (or load) the teacher, then the student on soft targets.
fn distill(
    i: &Inputs,
    vars: SeededVars,
    d: crate::technique::distill::DistillConfig,
    measurer: &mut Measurer,
    progress: &dyn Progress,
) -> Result<Outcome, TrialError> {
    let mut tspec = i.spec.clone();
    tspec.config.model = d.teacher;
    tspec.config.size = d.teacher_size.clone();
    tspec.config.epochs = d.teacher_epochs;
    tspec.config.distill = None;
    tspec.config.prune = None;
    tspec.config.quantize = None;
    let tvars =
        SeededVars::new(crate::util::rng::Rng::derive(i.spec.key.seed, "teacher").next_u64());
    let teacher = model_of(&tspec, &tvars, i)?;
    let (teacher_training, teacher_test_accuracy) = match &d.teacher_weights {
        Some(path) => {
            let p = i.run_dir.join(path);
            let mut map = tvars.var_map().clone();
            map.load(&p)
                .map_err(|source| TrialError::TeacherWeights { path: p, source })?;
            (None, None)
        }
        None => {
            let out = train_vars(&tspec, &tvars, i, measurer, &mut NoHooks, progress)?;
            if out.status != TrialStatus::Completed {
                return Err(TrialError::TeacherFailed(out.status));
            }
            (
                Some(EnergyReading::sum(
                    "teacher-training",
                    out.epochs.iter().map(|e| &e.train),
                )),
                out.test.map(|t| t.accuracy),
            )
        }
    };
    let mut distiller = Distiller {
        teacher,
        temperature: d.temperature,
        alpha: d.alpha,
        teacher_inference: Vec::new(),
    };
    let out = train_vars(i.spec, &vars, i, measurer, &mut distiller, progress)?;
    let teacher_inference = EnergyReading::sum("teacher-inference", &distiller.teacher_inference);
    let student_total: Joules = out.epochs.iter().map(|e| e.train.joules).sum();
    let record = DistillRecord {
        teacher_parameters: tvars.parameter_count(),
        teacher_training,
        teacher_test_accuracy,
        student_only_joules: student_total - teacher_inference.joules,
        teacher_inference,
        config: d,
    };
    let final_macs = model_of(i.spec, &vars, i)?.macs_per_sample();
    Ok(Outcome {
        out,
        pruning: None,
        structured: None,
        distillation: Some(record),
        vars,
        final_macs,
    })
}
