//! The training loop: seeded initialisation, loss falls, real-data accuracy.

mod common;

use candle_core::{DType, Device};
use joulebench::config::{TrialKey, TrialSpec};
use joulebench::data::fashion_mnist;
use joulebench::model::ModelKind;
use joulebench::record::TrialStatus;
use joulebench::suite::Suite;
use joulebench::train::TrainOutcome;
use joulebench::train::init::SeededVars;
use std::path::Path;

fn weights(kind: ModelKind, seed: u64) -> Vec<(String, Vec<f32>)> {
    let vars = SeededVars::new(seed);
    kind.build_default(vars.builder(DType::F32, &Device::Cpu), 10)
        .unwrap();
    let map = vars.var_map().data().lock().unwrap();
    let mut out: Vec<(String, Vec<f32>)> = map
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn one_seed_gives_identical_initial_weights_and_another_seed_does_not() {
    for kind in [ModelKind::Mlp, ModelKind::Cnn] {
        let a = weights(kind, 42);
        let b = weights(kind, 42);
        let c = weights(kind, 43);
        assert_eq!(a, b, "{kind:?}: same seed must give bit-identical weights");
        for ((na, wa), (_, wc)) in a.iter().zip(&c) {
            assert_ne!(
                wa, wc,
                "{kind:?} {na}: another seed must give other weights"
            );
        }
        // Kaiming-normal weights: sane scale (fan-in 784 for mlp fc1 -> std ~0.05).
        let fc1 = &a.iter().find(|(n, _)| n == "fc1.weight").unwrap().1;
        let std = (fc1.iter().map(|x| x * x).sum::<f32>() / fc1.len() as f32).sqrt();
        assert!(std > 0.005 && std < 0.2, "{kind:?}: fc1 std {std}");
    }
}

fn spec(model: &str, epochs: u32, batch: u32, seed: u64, cap: Option<u64>) -> TrialSpec {
    let text = format!(
        "name = \"t\"\n[defaults]\nepochs = {epochs}\nbatch_size = {batch}\n{}[[workload]]\nname = \"w\"\nmodel = \"{model}\"\n",
        cap.map_or(String::new(), |c| format!("max_train_samples = {c}\n"))
    );
    let s = Suite::parse(Path::new("t.toml"), &text).unwrap();
    let mut t = s.plan().unwrap().trials.remove(0);
    t.key = TrialKey { seed, ..t.key };
    t
}

fn run(spec: &TrialSpec, dir: &Path) -> TrainOutcome {
    let splits = fashion_mnist::load(dir).unwrap();
    let dev = Device::Cpu;
    let train = splits
        .train
        .take(spec.config.max_train_samples)
        .to_device(&dev)
        .unwrap();
    let val = splits.validation.take(Some(1000)).to_device(&dev).unwrap();
    let test = splits
        .test
        .take(spec.config.max_eval_samples)
        .to_device(&dev)
        .unwrap();
    common::train_on(spec, 10, &train, &val, &test).0
}

#[test]
fn loss_falls_on_a_fixture_and_runs_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let s = spec("mlp", 3, 32, 5, None);
    let a = run(&s, &data);
    assert_eq!(a.status, TrialStatus::Completed);
    let losses: Vec<f64> = a.epochs.iter().map(|e| e.train_loss.unwrap()).collect();
    assert!(losses[2] < losses[0] * 0.7, "loss did not fall: {losses:?}");
    let acc = a.test.as_ref().unwrap().accuracy;
    assert!(acc > 0.6, "fixture accuracy {acc}");
    // Windows: one train + one validation per epoch, test, inference; fake meter at 10 W.
    for e in &a.epochs {
        assert_eq!(e.train.window, format!("train/epoch-{}", e.epoch));
        let w = e.train.joules.0 / e.train.seconds.0;
        assert!((w - 10.0).abs() < 0.5, "avg watts {w}");
        assert_eq!(e.train.provenance_label(), "fake");
    }
    let inf = a.inference.as_ref().unwrap();
    assert_eq!(inf.samples, 400);
    assert!(inf.joules_per_1k.0 > 0.0);
    // Same seed: same data order and weights, so the same losses (CPU is deterministic).
    let b = run(&s, &data);
    let losses_b: Vec<f64> = b.epochs.iter().map(|e| e.train_loss.unwrap()).collect();
    assert_eq!(losses, losses_b);
}

#[test]
fn cnn_trains_on_a_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let a = run(&spec("cnn", 2, 64, 1, Some(300)), &data);
    assert_eq!(a.status, TrialStatus::Completed);
    let l: Vec<f64> = a.epochs.iter().map(|e| e.train_loss.unwrap()).collect();
    assert!(l[1] < l[0], "{l:?}");
}

#[test]
fn diverging_run_is_recorded_not_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let mut s = spec("mlp", 3, 32, 5, None);
    s.config.optimizer.kind = joulebench::config::OptimizerKind::Sgd;
    s.config.optimizer.learning_rate = 1e6;
    s.config.optimizer.momentum = 0.0;
    let a = run(&s, &data);
    assert!(
        matches!(a.status, TrialStatus::Diverged { .. }),
        "{:?}",
        a.status
    );
    assert!(a.test.is_none());
    let last = a.epochs.last().unwrap();
    assert!(last.train_loss.is_none() && last.val_accuracy.is_none());
}

#[test]
fn mlp_reaches_84_percent_after_one_full_epoch_of_real_fashion_mnist() {
    let Some(dir) = common::real_dataset() else {
        return;
    };
    // f32, batch 128, AdamW 1e-3, the whole 55,000-image training split.
    let s = spec("mlp", 1, 128, 1, None);
    let out = run(&s, &dir);
    let acc = out.test.as_ref().unwrap().accuracy;
    eprintln!("MLP test accuracy after 1 epoch: {:.2}%", acc * 100.0);
    assert_eq!(out.test.as_ref().unwrap().samples, 10_000);
    assert!(acc >= 0.84, "test accuracy {acc}");
}
